"""Entry point: runs the Typer app and turns every outcome into one line and an exit code.

Exit codes: 0 success; 2 the input or the options are unusable (`BadInputError`, usage errors,
an output place that cannot be written); 1 a failure of ours (`RocksynthError`, anything
unexpected); 128 + N when signal N (SIGINT 130, SIGHUP 129, SIGTERM 143) stopped the command, and
141 (SIGPIPE's) when the reader of stdout went away (`| head`).
"""

import errno
import sys

from rocksynth import interrupts
from rocksynth.errors import RocksynthError
from rocksynth.io.paths import remove_temporaries
from rocksynth.progress import stderr_console

# Operating-system errors that are about the place the user asked us to write or read.
_OS_ERRORS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EBADF: "the stream is closed",
}


def main(argv: "list[str] | None" = None) -> int:
    """Run the CLI; return the exit code (the console script passes it to sys.exit)."""
    from rocksynth.cli.app import app

    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    try:
        with interrupts.handled():
            code = app(args=argv, prog_name="rocksynth", standalone_mode=False)
            interrupts.check()  # a signal whose exception was lost still ends with its exit code
        return code if isinstance(code, int) else 0
    except interrupts.Interrupted as exc:
        _error_line("interrupted")
        return exc.exit_code
    except KeyboardInterrupt:  # a SIGINT that arrived before the handler was installed
        _error_line("interrupted")
        return 130
    except RocksynthError as exc:
        if debug:
            stderr_console.print_exception()
        _error_line(f"error: {exc}")
        return exc.exit_code
    except BrokenPipeError:  # the reader of our stdout went away (e.g. `| head`)
        return _reader_gone()
    except SystemExit as exc:  # Click turns a broken pipe into exit 1, which would read as our failure
        if isinstance(exc.__context__, OSError) and exc.__context__.errno == errno.EPIPE:
            return _reader_gone()
        raise
    except OSError as exc:
        if exc.errno not in _OS_ERRORS:
            return _unexpected(exc, debug)
        if debug:
            stderr_console.print_exception()
        where = f"{exc.filename}: " if exc.filename else ""
        _error_line(f"error: {where}{_OS_ERRORS[exc.errno]}")
        return 2
    except Exception as exc:
        code = _click_exit_code(exc)
        return code if code is not None else _unexpected(exc, debug)
    finally:
        remove_temporaries()  # a last resort: atomic outputs remove their own on the way out


def _unexpected(exc: Exception, debug: bool) -> int:
    if debug:
        stderr_console.print_exception()
    else:
        message = str(exc).splitlines()[0] if str(exc) else ""
        _error_line(f"error: unexpected {type(exc).__name__}: {message} (rerun with --debug for the traceback)")
    return 1


def _error_line(text: str) -> None:
    try:
        stderr_console.print(text, style="bold red", markup=False, highlight=False, soft_wrap=True)
    except (OSError, ValueError):  # stderr itself is closed or full: the exit code must speak
        pass


def _reader_gone() -> int:
    """End silently with 141 (128 + SIGPIPE), as Unix tools killed by SIGPIPE do."""
    _close_stderr_quietly()
    return 141


def _close_stderr_quietly() -> None:
    try:
        sys.stderr.close()
    except OSError:
        pass


def _print_help(text: str) -> None:
    try:
        print(text, file=sys.stderr)
    except (OSError, ValueError):
        pass


def _click_exit_code(exc: Exception) -> "int | None":
    """Exit code for click's own exceptions (usage errors exit 2, one line), or None for anything else.

    Matched by class name because typer may ship its own copy of click."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    if "Exit" in names:
        return exc.exit_code
    if "Abort" in names:
        return 1
    if "NoArgsIsHelpError" in names:  # `rocksynth` or `rocksynth train` alone: the help, as asked
        _print_help(exc.format_message())
        return 2
    if "ClickException" in names:
        message = " ".join(exc.format_message().split())
        if "UsageError" in names:  # one line, like every other error, with where to look
            ctx = getattr(exc, "ctx", None)
            command = ctx.command_path if ctx is not None else "rocksynth"
            _error_line(f"error: {message} (see '{command} --help')")
            return 2
        _error_line(f"error: {message}")
        return exc.exit_code
    return None


if __name__ == "__main__":
    sys.exit(main())
