"""Interrupts and termination signals, turned into one exception that unwinds the command.

SIGINT, SIGTERM and SIGHUP raise `Interrupted` in the main thread, so every `with` block and
`finally` of the running command (atomic outputs above all) cleans up before the process exits
with 128 + the signal number. `Interrupted` derives from BaseException, not KeyboardInterrupt:
click/typer turn a KeyboardInterrupt into exit code 130 and swallow it, and `except Exception`
in library code must not catch it either.

`deferred()` holds a signal back over a few statements that must not be cut in two (creating a
temporary file and registering it for removal); it is raised as soon as the block ends.

The exception can be lost: a handler runs wherever the main thread is, and some C code clears
any error raised inside it (seen: a signal arriving during the first import of `numpy.random`,
inside its extension module's `abc.register` call; the command then ran to a clean exit 0).
So a received signal is also recorded, and `check()` raises it again at the points that must not
go ahead after one: before an output is committed, and at each training iteration.
"""

import contextlib
import signal

HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_state = {"deferring": 0, "pending": None, "received": None, "unwinding": 0}


class Interrupted(BaseException):
    """The process received SIGINT, SIGTERM or SIGHUP; `exit_code` is 128 + its number."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.exit_code = 128 + int(signum)


def _raise_interrupted(signum, frame) -> None:
    if _state["received"] is None:
        _state["received"] = signum
    if _state["deferring"]:
        _state["pending"] = signum
        return
    # Ignore further signals while the command unwinds, so cleanup cannot itself be cut short.
    for sig in HANDLED:
        signal.signal(sig, signal.SIG_IGN)
    raise Interrupted(signum)


@contextlib.contextmanager
def deferred():
    """Hold the handled signals back inside the block; one that arrived is raised at its end."""
    _state["deferring"] += 1
    try:
        yield
    finally:
        _state["deferring"] -= 1
        if not _state["deferring"] and _state["pending"] is not None:
            signum, _state["pending"] = _state["pending"], None
            _raise_interrupted(signum, None)


def received() -> "int | None":
    """The first handled signal received inside `handled()`, if any."""
    return _state["received"]


def check() -> None:
    """Raise `Interrupted` if a handled signal was received, even if its first `Interrupted` was lost.

    It does nothing inside `unwinding()`: the cleanup after an interrupt must run to its end."""
    if _state["received"] is not None and not _state["unwinding"]:
        raise Interrupted(_state["received"])


@contextlib.contextmanager
def unwinding():
    """Mark cleanup code (which may itself write, e.g. cut a learning curve back): `check()` lets it through."""
    _state["unwinding"] += 1
    try:
        yield
    finally:
        _state["unwinding"] -= 1


@contextlib.contextmanager
def handled():
    """Route the handled signals to `Interrupted` inside the block; restore the old handlers after.

    Only the main thread can set handlers; elsewhere (an embedding application) this does nothing."""
    previous = {}
    _state["received"] = _state["pending"] = None  # nothing left over from an earlier block
    try:
        for sig in HANDLED:
            if signal.getsignal(sig) is not signal.SIG_IGN:  # nohup'd processes keep ignoring SIGHUP
                previous[sig] = signal.signal(sig, _raise_interrupted)
    except ValueError:  # not the main thread
        pass
    try:
        yield
    finally:
        _state["received"] = _state["pending"] = None
        for sig, handler in previous.items():
            signal.signal(sig, handler)
