"""Interrupts and termination signals, turned into one exception that unwinds the command.

SIGINT, SIGTERM and SIGHUP raise `Interrupted` in the main thread, so every `with` block and
`finally` of the running command (atomic outputs above all) cleans up before the process exits
with 128 + the signal number. `Interrupted` derives from BaseException, not KeyboardInterrupt:
click/typer turn a KeyboardInterrupt into exit code 130 and swallow it, and `except Exception`
in library code must not catch it either.
"""

import contextlib
import signal

HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(BaseException):
    """The process received SIGINT, SIGTERM or SIGHUP; `exit_code` is 128 + its number."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.exit_code = 128 + int(signum)


def _raise_interrupted(signum, frame) -> None:
    # Ignore further signals while the command unwinds, so cleanup cannot itself be cut short.
    for sig in HANDLED:
        signal.signal(sig, signal.SIG_IGN)
    raise Interrupted(signum)


@contextlib.contextmanager
def handled():
    """Route the handled signals to `Interrupted` inside the block; restore the old handlers after.

    Only the main thread can set handlers; elsewhere (an embedding application) this does nothing."""
    previous = {}
    try:
        for sig in HANDLED:
            if signal.getsignal(sig) is not signal.SIG_IGN:  # nohup'd processes keep ignoring SIGHUP
                previous[sig] = signal.signal(sig, _raise_interrupted)
    except ValueError:  # not the main thread
        pass
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
