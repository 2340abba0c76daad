"""Input and output paths: `-` for stdin/stdout, atomic writes, never overwriting an input."""

import contextlib
import io
import os
import sys
import tempfile
from pathlib import Path

from rocksynth.errors import BadInputError

STDIO = "-"
_inputs: "set[str]" = set()


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


@contextlib.contextmanager
def atomic_output(path: "str | os.PathLike", suffix: str = ""):
    """Yield a temporary path next to `path`; rename it onto `path` only if the block succeeds.

    For `-` the temporary file is copied to stdout at the end instead. A failure removes the
    temporary file, so no truncated output is ever left behind.
    """
    to_stdout = str(path) == STDIO
    if to_stdout:
        folder = Path(tempfile.gettempdir())
        suffix = suffix or ""
    else:
        path = Path(path)
        folder = path.parent if str(path.parent) else Path(".")
        if not folder.is_dir():
            raise BadInputError(f"{path}: output folder {folder} does not exist")
        if os.path.realpath(path) in _inputs:
            raise BadInputError(f"{path}: refusing to overwrite an input file; choose another --out")
        if path.is_dir():
            raise BadInputError(f"{path}: is a directory, expected a file path")
        suffix = suffix or path.suffix
    fd, tmp_name = tempfile.mkstemp(prefix=".rocksynth-", suffix=suffix, dir=folder)
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; outputs get the usual permissions
    try:
        yield tmp
        if to_stdout:
            with open(tmp, "rb") as handle:
                while chunk := handle.read(1 << 20):
                    sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_output_dir(path: "str | os.PathLike"):
    """Yield a temporary folder next to `path`; rename it onto `path` only if the block succeeds."""
    import shutil

    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise BadInputError(f"{path}: output folder {parent} does not exist")
    if path.exists() and any(path.iterdir()):
        raise BadInputError(f"{path}: folder exists and is not empty; choose another --out")
    tmp = Path(tempfile.mkdtemp(prefix=".rocksynth-", dir=parent))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        if path.exists():
            path.rmdir()
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
