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
    except BrokenPipeError:  # the reader of our stdout went away (e.g. `| head`); not an error of ours
        sys.stderr.close()
        return 1
    except KeyboardInterrupt:
        stderr_console.print("interrupted", style="bold red")
        return 130
    except Exception as exc:
        code = _click_exit_code(exc)
        if code is not None:
            return code
        if debug:
            stderr_console.print_exception()
        else:
            message = str(exc).splitlines()[0] if str(exc) else ""
            stderr_console.print(f"error: unexpected {type(exc).__name__}: {message} (rerun with --debug for the traceback)",
                                 style="bold red", markup=False, highlight=False, soft_wrap=True)
        return 1
    return 0


def _click_exit_code(exc: Exception) -> "int | None":
    """Exit code for click's own exceptions (usage errors exit 2), or None for anything else.

    Matched by class name because typer may ship its own copy of click."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    if "Exit" in names:
        return exc.exit_code
    if "Abort" in names:
        return 1
    if "ClickException" in names:
        exc.show()
        return 2 if "UsageError" in names else exc.exit_code
    return None


if __name__ == "__main__":
    sys.exit(main())
