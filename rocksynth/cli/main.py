"""Entry point: runs the Typer app and turns RocksynthError into one red line and an exit code."""

import sys

from rocksynth.errors import RocksynthError
from rocksynth.progress import stderr_console


def main(argv: "list[str] | None" = None) -> int:
    """Run the CLI; return the exit code (the console script passes it to sys.exit)."""
    from rocksynth.cli.app import app

    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    try:
        app(args=argv, prog_name="rocksynth", standalone_mode=False)
    except RocksynthError as exc:
        if debug:
            stderr_console.print_exception()
        stderr_console.print(f"error: {exc}", style="bold red", markup=False, highlight=False, soft_wrap=True)
        return exc.exit_code
    except KeyboardInterrupt:
        stderr_console.print("interrupted", style="bold red")
        return 130
    except Exception as exc:
        import click

        if isinstance(exc, click.exceptions.Exit):
            return exc.exit_code
        if isinstance(exc, click.ClickException):
            exc.show()
            return 2 if isinstance(exc, click.UsageError) else exc.exit_code
        if isinstance(exc, click.exceptions.Abort):
            return 1
        if debug:
            stderr_console.print_exception()
        else:
            message = str(exc).splitlines()[0] if str(exc) else ""
            stderr_console.print(f"error: unexpected {type(exc).__name__}: {message} (rerun with --debug for the traceback)",
                                 style="bold red", markup=False, highlight=False, soft_wrap=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
