"""Progress bars on stderr, shared by the library and the CLI.

Bars are shown only when stderr is a terminal and the user did not ask for `--quiet`.
"""

import contextlib
import sys

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

_state = {"quiet": False}
stderr_console = Console(stderr=True, highlight=False, soft_wrap=True)


def stdout_console() -> Console:
    """Console for tables on stdout; wide when piped so rows are not folded."""
    return Console(highlight=False, width=None if sys.stdout.isatty() else 200)


def route_library_logs() -> None:
    """Send the log records of the libraries we call (PoreSpy, OpenPNM, dask) to stderr.

    PoreSpy and OpenPNM install, when imported, a root handler that prints to stdout, which
    would mix log lines into a command's output (`--json`, a volume written to stdout). Their
    stdout handlers are removed, whenever they were installed, and one stderr handler is kept.
    """
    import logging

    root = logging.getLogger()
    for handler in list(root.handlers):
        console = getattr(handler, "console", None)  # rich's RichHandler
        stream = console.file if console is not None else getattr(handler, "stream", None)
        if stream is sys.stdout or stream is sys.__stdout__:
            root.removeHandler(handler)
    if not any(getattr(h, "_rocksynth", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(name)s: %(levelname)s: %(message)s"))
        handler._rocksynth = True
        root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > logging.WARNING:
        root.setLevel(logging.WARNING)


def set_quiet(quiet: bool) -> None:
    _state["quiet"] = quiet


def log(message: str) -> None:
    """An informational line on stderr (what was inferred, what was written), unless quiet."""
    if not _state["quiet"]:
        stderr_console.print(message, markup=False)


def warn(message: str) -> None:
    if not _state["quiet"]:
        stderr_console.print(f"warning: {message}", style="yellow", markup=False)


class _Task:
    def __init__(self, progress, task_id):
        self._progress, self._task_id = progress, task_id

    def advance(self, steps: int = 1, **fields) -> None:
        if self._progress is not None:
            self._progress.update(self._task_id, advance=steps, **fields)

    def update(self, **fields) -> None:
        """Set `completed`, `total` (None: unknown) or a field such as `status`."""
        if self._progress is not None:
            self._progress.update(self._task_id, **fields)


@contextlib.contextmanager
def progress_bar(total: "int | None", description: str, status: bool = False):
    """Yield a task with `.advance(n, status="loss 0.1")`; a no-op when quiet or not a TTY."""
    if _state["quiet"] or not sys.stderr.isatty():
        yield _Task(None, None)
        return
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn()]
    if status:
        columns.append(TextColumn("{task.fields[status]}"))
    with Progress(*columns, console=stderr_console, transient=False) as progress:
        task_id = progress.add_task(description, total=total, status="")
        yield _Task(progress, task_id)
