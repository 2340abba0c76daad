"""Shared test fixtures: the real rock data in ../shared/data and a CLI runner."""

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
EXAMPLES = REPO / "examples"

# Keep each test process to one thread: CI runs two pytest workers on two cores.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True)
def _not_quiet():
    """Each test starts with messages on: `main(["-q", ...])` run in this process leaves
    `--quiet` set, and a later test calling the library would see no warnings."""
    from rocksynth.progress import set_quiet

    set_quiet(False)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.fail(f"real rock data not found at {SHARED_DATA} (expected ../shared/data beside the repository)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def berea_crop(shared_data) -> np.ndarray:
    """A 100³ Berea crop as bool (True = pore)."""
    import tifffile

    return tifffile.imread(shared_data / "berea_400.tif")[:100, :100, :100] > 0


@pytest.fixture(scope="session")
def slice_64(tmp_path_factory) -> Path:
    """A 64² crop of the example Berea section (0/255, 255 = pore) as a TIFF."""
    import tifffile
    from PIL import Image

    section = np.asarray(Image.open(EXAMPLES / "berea_section_400.png"))
    path = tmp_path_factory.mktemp("slice") / "slice.tif"
    tifffile.imwrite(path, np.ascontiguousarray(section[100:164, 100:164]))
    return path


@pytest.fixture
def run_cli():
    """Run `rocksynth ARGS` through the real entry point; returns (exit code, stdout bytes, stderr text)."""
    import shutil
    import subprocess
    import sys

    # The installed console script, next to this interpreter (CI tests the non-editable install).
    script = Path(sys.executable).with_name("rocksynth")
    command = str(script) if script.exists() else shutil.which("rocksynth")

    def run(*args, stdin: bytes = None, cwd=None):
        result = subprocess.run([command, *map(str, args)], input=stdin if stdin is not None else b"",
                                capture_output=True, cwd=cwd, timeout=600)
        return result.returncode, result.stdout, result.stderr.decode(errors="replace")

    return run


@pytest.fixture
def run_cli_in_process(capsysbinary):
    """`rocksynth ARGS` through the same entry function, in this process: no torch start-up per call."""
    from rocksynth.cli.main import main
    from rocksynth.io.paths import _inputs

    def run(*args):
        _inputs.clear()  # inputs of earlier calls in this process are not inputs of this one
        code = main([str(arg) for arg in args])
        captured = capsysbinary.readouterr()
        return code, captured.out, captured.err.decode(errors="replace")

    return run


class Stop(Exception):
    """Raised by `StopAt` to cut a training run short at a chosen step."""


class StopAt:
    """A progress-bar stand-in that raises `Stop` once `step` steps have advanced."""

    def __init__(self, step):
        self.step, self.done = step, 0

    def advance(self, n, status=None):
        self.done += n
        if self.done == self.step:
            raise Stop


def default_signals() -> None:
    """`preexec_fn` for a child that is sent signals: a test run started under `nohup` or as a
    background job inherits SIGHUP / SIGINT ignored, and rocksynth (rightly) keeps them ignored."""
    import signal

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)


def signal_while_writing(command: "list[str]", cwd: Path, signum: int, started: str, attempts: int = 3):
    """Run `command` in `cwd`, send it `signum` once a file matching the glob `started` exists
    (it is writing its output), and return (exit code, stderr text).

    On a loaded machine this process can wake so late that the command has already finished; such
    an attempt says nothing about the signal, so it is run again, up to `attempts` times.
    """
    import shutil
    import subprocess
    import time

    for _ in range(attempts):
        for leftover in cwd.iterdir():  # a finished attempt's output
            shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
        process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   preexec_fn=default_signals)
        try:
            deadline = time.monotonic() + 120
            while not list(cwd.glob(started)) and process.poll() is None:
                assert time.monotonic() < deadline, "the command never started writing"
                time.sleep(0.05)
            if process.poll() is None:
                process.send_signal(signum)
                _, stderr = process.communicate(timeout=120)
                return process.returncode, stderr.decode()
            _, stderr = process.communicate()
            assert process.returncode == 0, stderr.decode()  # it failed before writing: not a race
        finally:
            process.kill()
    raise AssertionError(f"in all {attempts} attempts the command finished before it was signalled")


def blobs(shape, seed=0, porosity=0.3) -> np.ndarray:
    """A smooth random binary volume (thresholded filtered noise): pores form blobs."""
    from scipy.ndimage import gaussian_filter

    field = gaussian_filter(np.random.default_rng(seed).standard_normal(shape), 1.5)
    return field > np.quantile(field, 1 - porosity)


def help_options(text: str) -> "list[str]":
    """The option names of a typer --help text (one per option line), --help itself left out.
    Option lines are indented 2 spaces; the wrapped help text below them (which may begin with an
    option it names, like '--set init_ramp=N') much further."""
    section = text.split("Options:", 1)[1]
    names = [line.split()[0].rstrip(",") for line in section.splitlines() if line.startswith("  -")]
    return [name for name in names if name != "--help"]


def help_settings(text: str) -> "dict[str, str]":
    """The `--set` keys a `train` command's --help lists, with their defaults as printed: in
    'KEY [DEFAULT]', and in 'A, B, C [DEFAULT]' (one default for the group)."""
    import re

    block = text.split("Settings (--set", 1)[1].split("Arguments:", 1)[0]
    listed = {}
    for names, default in re.findall(r"((?:[a-z_0-9]+, )*[a-z_0-9]+) \[([^\]]+)\]", block):
        listed.update({name: default for name in names.split(", ")})
    return listed

