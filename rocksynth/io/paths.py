"""Input and output paths: `-` for stdin/stdout, atomic writes, never overwriting an input."""

import contextlib
import errno
import io
import os
import sys
import tempfile
from pathlib import Path

from rocksynth.errors import BadInputError
from rocksynth.interrupts import check as check_interrupts, deferred

STDIO = "-"
_inputs: "set[str]" = set()
# Temporary files and folders of atomic outputs under way; removed by `remove_temporaries`.
_temporaries: "set[Path]" = set()


def register_input(path: "str | os.PathLike") -> None:
    """Remember an input so that no output of this process may overwrite it."""
    if str(path) != STDIO:
        _inputs.add(os.path.realpath(path))


def check_input_file(path: "str | os.PathLike") -> Path:
    """The path of an existing, non-empty input file (or directory), with a clear error otherwise."""
    path = Path(path)
    if not path.exists():
        raise BadInputError(f"{path}: no such file or directory")
    if path.is_file() and path.stat().st_size == 0:
        raise BadInputError(f"{path}: file is empty")
    register_input(path)
    return path


_stdin_cache: "dict[str, bytes]" = {}


def read_stdin_bytes() -> bytes:
    """All of stdin as bytes (read once; a pipeline can only be read once)."""
    if "data" not in _stdin_cache:
        if sys.stdin is None or sys.stdin.isatty():
            raise BadInputError("input '-' means stdin, but nothing is piped in")
        _stdin_cache["data"] = sys.stdin.buffer.read()
    data = _stdin_cache["data"]
    if not data:
        raise BadInputError("stdin is empty")
    return data


def stdin_stream() -> io.BytesIO:
    return io.BytesIO(read_stdin_bytes())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_output(path: "str | os.PathLike", *, new: bool = False, what: str = "output") -> "Path | str":
    """Refuse an output a run could not write, before any work: a missing or read-only folder,
    an input of this run, a folder where a file is expected, and (with `new`) an existing file.

    Returns the path (`-`, stdout, is returned as is)."""
    if str(path) == STDIO:
        if sys.stdout is None or sys.stdout.closed:
            raise BadInputError("output '-' means stdout, but stdout is closed")
        return STDIO
    if str(path).endswith(("/", os.sep)) or Path(path).suffix.lower() == ".zarr":  # written as a folder
        return _check_output_folder(Path(str(path).rstrip("/" + os.sep) or "."), what)
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise BadInputError(f"{path}: output folder {folder} does not exist")
    if os.path.realpath(path) in _inputs:
        raise BadInputError(f"{path}: refusing to overwrite an input file; choose another {what}")
    if path.is_dir():
        raise BadInputError(f"{path}: is a directory, expected a file path")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise BadInputError(f"{path}: output folder {folder} is not writable")
    if new and path.exists():
        raise BadInputError(f"{path} exists; choose another {what} (or pass --resume where the command has it)")
    return path


def _check_output_folder(path: Path, what: str = "output") -> Path:
    """An output that is a folder (of frames or slices): new or empty, in a writable parent.

    `what` names the output in messages: the option (`--out`), or `output` for a positional one."""
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise BadInputError(f"{path}: output folder {parent} does not exist")
    if path.exists() and not path.is_dir():
        raise BadInputError(f"{path}: exists and is not a folder; choose another {what}")
    if path.is_dir() and any(path.iterdir()):
        raise BadInputError(f"{path}: folder exists and is not empty; choose another {what}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise BadInputError(f"{path}: output folder {parent} is not writable")
    return path


def check_free_space(path: "str | os.PathLike", nbytes: int, what: str = "the output") -> None:
    """Refuse a run whose output would not fit on the disk it goes to, before any work.

    `-` (stdout) is staged in the temporary folder first, so that is the disk checked."""
    import shutil

    folder = Path(tempfile.gettempdir()) if str(path) == STDIO else Path(path).parent
    free = shutil.disk_usage(folder if str(folder) else ".").free
    if nbytes > free:
        raise BadInputError(f"{path}: {what} needs about {_gigabytes(nbytes)} but {folder or '.'} has "
                            f"{_gigabytes(free)} free; choose a smaller size or another disk")


# zlib level 1 stores a synthesized binary 0/255 volume in 0.06-0.09 byte per voxel (256^3 of
# Berea, Ketton, fractures: `rocksynth synthesize --size 256`, then the file size). The up-front
# check asks for a third of the lowest, so it never refuses a run that would fit; a run that
# outgrows the disk anyway stops with a one-line error and leaves nothing.
BINARY_TIFF_BYTES_PER_VOXEL = 0.02


def _gigabytes(nbytes: float) -> str:
    return f"{nbytes / 1e9:.3g} GB" if nbytes >= 1e8 else f"{nbytes / 1e6:.3g} MB"


def prepare_outputs(paths, *, new: "bool | set" = False, what: str = "--out") -> "list[Path | str]":
    """Check every output a run will write, all before the first is written.

    Parameters
    ----------
    paths : iterable of path-like
        Every file the run will write (outputs of all samples, learning curves, checkpoints).
    new : bool or set of str
        True: none of them may exist yet; a set: the paths (as given) that may not exist.
    what : str
        The option to name in error messages.

    Returns
    -------
    list
        The checked paths, in order.
    """
    paths = list(paths)
    seen: "dict[str, str]" = {}
    checked = []
    for path in paths:
        must_be_new = new is True or (isinstance(new, (set, frozenset)) and str(path) in new)
        checked.append(check_output(path, new=must_be_new, what=what))
        key = STDIO if str(path) == STDIO else os.path.realpath(path)
        if key in seen:
            raise BadInputError(f"{path}: written twice by this run (as {seen[key]}); choose distinct outputs")
        seen[key] = str(path)
    return checked


# Errors of the place written to (the disk, the folder, the stream), not of rocksynth.
_PLACE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EBADF, errno.EIO,
                 errno.ENOENT, errno.EFBIG}


def _reason(exc: OSError) -> str:
    return (exc.strerror or type(exc).__name__).lower()


def place_error(exc: BaseException, shown: str) -> "BadInputError | None":
    """The one-line bad-input error for a failure of the place written to (a full disk, a
    read-only folder, a closed stream), naming the user's output; None for any other failure."""
    if isinstance(exc, OSError) and exc.errno in _PLACE_ERRORS:
        return BadInputError(f"{shown}: writing failed ({_reason(exc)})")
    return None


def remove_temporaries() -> None:
    """Remove the temporary files of atomic outputs still under way (on interrupt or failure)."""
    import shutil

    for tmp in list(_temporaries):
        with contextlib.suppress(OSError):
            shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink()
        _temporaries.discard(tmp)


@contextlib.contextmanager
def atomic_output(path: "str | os.PathLike", suffix: str = ""):
    """Yield a temporary path next to `path`; rename it onto `path` only if the block succeeds.

    For `-` the temporary file is copied to stdout at the end instead. A failure (or an
    interrupt) removes the temporary file, so no truncated output is ever left behind.
    """
    checked = check_output(path)
    to_stdout = checked == STDIO
    if to_stdout:
        folder = Path(tempfile.gettempdir())
    else:
        path = checked
        folder = path.parent if str(path.parent) else Path(".")
        suffix = suffix or path.suffix
    shown = "stdout" if to_stdout else str(path)
    with deferred():  # an interrupt here must not leave a temporary file nobody knows of
        try:
            fd, tmp_name = tempfile.mkstemp(prefix=".rocksynth-", suffix=suffix, dir=folder)
        except OSError as exc:
            raise BadInputError(f"{shown}: cannot create a file in {folder} ({_reason(exc)})") from exc
        tmp = Path(tmp_name)
        _temporaries.add(tmp)
    try:
        os.close(fd)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; outputs get the usual permissions
        yield tmp
        check_interrupts()  # a signal whose exception was lost must not let the output through
        if to_stdout:
            with open(tmp, "rb") as handle:
                while chunk := handle.read(1 << 20):
                    _write_all(sys.stdout.buffer, chunk)
            sys.stdout.buffer.flush()
        else:
            os.replace(tmp, path)
    except OSError as exc:
        error = place_error(exc, shown)  # names the user's output, not our temporary file
        if error is None:
            raise
        raise error from exc
    finally:
        _temporaries.discard(tmp)
        if tmp.exists():
            tmp.unlink()


def _write_all(stream, data: bytes) -> None:
    """Write all of `data`: a pipe whose reader goes away mid-write takes part of it and says so
    only by the count; the next write raises the broken pipe instead of losing the rest silently."""
    view = memoryview(data)
    while view:
        view = view[stream.write(view):]


@contextlib.contextmanager
def atomic_output_dir(path: "str | os.PathLike", what: str = "output"):
    """Yield a temporary folder next to `path`; rename it onto `path` only if the block succeeds.

    `path` must be new or an empty folder; `what` names it in messages (e.g. `--out`)."""
    import shutil

    path = _check_output_folder(Path(path), what)
    parent = path.parent if str(path.parent) else Path(".")
    with deferred():
        try:
            tmp = Path(tempfile.mkdtemp(prefix=".rocksynth-", dir=parent))
        except OSError as exc:  # e.g. /proc: writable by its mode, yet no folder can be made there
            raise BadInputError(f"{path}: cannot create a folder in {parent} ({_reason(exc)})") from exc
        _temporaries.add(tmp)
    try:
        os.chmod(tmp, 0o777 & ~_umask())
        yield tmp
        check_interrupts()
        if path.exists():
            path.rmdir()
        os.replace(tmp, path)
    finally:
        _temporaries.discard(tmp)
        if tmp.exists():
            shutil.rmtree(tmp)
