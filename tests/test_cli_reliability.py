"""Reliability of every command run through the installed console script: interrupts and
termination signals, outputs planned before any is written, absurd sizes refused up front, and
unwritable output places reported as bad input. Each case asserts the exit code, exactly one
line on stderr, no traceback, and that nothing is left beside the inputs."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import EXAMPLES, signal_while_writing


def _command() -> str:
    script = Path(sys.executable).with_name("rocksynth")
    return str(script) if script.exists() else shutil.which("rocksynth")


def _listing(folder: Path) -> "set[str]":
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def _assert_one_line(stderr: str) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1, stderr


@pytest.fixture
def slice_png(tmp_path) -> Path:
    path = tmp_path / "a_1.png"
    shutil.copy(EXAMPLES / "berea_section_400.png", path)
    return path


@pytest.fixture
def clip_mp4(tmp_path) -> Path:
    from rocksynth.io.videos import write_video

    rng = np.random.default_rng(0)
    frames = np.repeat(rng.integers(0, 255, (6, 64, 64, 1), dtype=np.uint8), 1, axis=-1)
    path = tmp_path / "x_2.mp4"
    write_video(path, frames, fps=10)
    return path


def _quiet_error(args, cwd, expect=2):
    before = _listing(cwd)
    result = subprocess.run([_command(), *map(str, args)], capture_output=True, cwd=cwd, timeout=300)
    stderr = result.stderr.decode(errors="replace")
    assert result.returncode == expect, stderr
    assert [line for line in stderr.splitlines() if line.strip()][-1].startswith("error:"), stderr
    assert "Traceback" not in stderr
    assert _listing(cwd) == before, "files were left behind"
    return stderr


@pytest.mark.parametrize("case", ["reconstruct", "predict"])
def test_samples_check_every_output_name_before_writing_any(tmp_path, slice_png, clip_mp4, case):
    # The second sample's name is the input: refused before the first sample is written.
    if case == "reconstruct":  # samples are named a_0.tif, a_1.tif
        source = slice_png.with_suffix(".tif")
        subprocess.run([_command(), "convert", slice_png.name, source.name], cwd=tmp_path, check=True, timeout=120)
        args = ["reconstruct", source.name, "--depth", "8", "--samples", "2", "--out", "a.tif"]
    else:
        args = ["predict", clip_mp4.name, "--model", "shapes", "--context", "3", "--frames", "2", "--samples", "2",
                "--out", "x.mp4"]
    stderr = _quiet_error(args, tmp_path)
    assert "input" in stderr


@pytest.mark.parametrize("args", [
    ["reconstruct", "a_1.png", "--depth", "8", "--out", "cube.npy"],
    ["synthesize", "--texture", "berea", "--size", "16", "--out", "cube.png"],
    ["predict", "x_2.mp4", "--context", "3", "--frames", "2", "--out", "pred.avi"],
], ids=["reconstruct", "synthesize", "predict"])
def test_an_output_of_another_type_than_the_command_writes_is_refused(tmp_path, slice_png, clip_mp4, args):
    # Not written in another format under the name given (a TIFF stack named cube.npy).
    _assert_one_line(_quiet_error(args, tmp_path))


@pytest.mark.parametrize("args", [
    ["synthesize", "--texture", "berea", "--size", "16384", "--out", "big.tif"],
    ["reconstruct", "a_1.png", "--depth", "100000000", "--out", "deep.tif"],
    ["predict", "x_2.mp4", "--context", "3", "--frames", "100000000", "--out", "long.mp4"],
], ids=["synthesize-size", "reconstruct-depth", "predict-frames"])
def test_absurd_sizes_are_refused_up_front(tmp_path, slice_png, clip_mp4, args):
    started = time.perf_counter()
    _quiet_error(args, tmp_path)
    assert time.perf_counter() - started < 60


def test_stdout_to_a_full_disk_is_one_line_exit_2(tmp_path, slice_png):
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full here")
    with open("/dev/full", "wb") as full:
        result = subprocess.run([_command(), "convert", slice_png.name, "-"], stdout=full, stderr=subprocess.PIPE,
                                cwd=tmp_path, timeout=120)
    stderr = result.stderr.decode()
    assert result.returncode == 2, stderr
    _assert_one_line(stderr)
    assert "no space left" in stderr
    assert not [p for p in Path(os.environ.get("TMPDIR", "/tmp")).glob(".rocksynth-*") if p.stat().st_mtime > time.time() - 60]


def test_closed_stdout_is_one_line_exit_2(tmp_path, slice_png):
    result = subprocess.run([_command(), "convert", slice_png.name, "-"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, cwd=tmp_path, timeout=120,
                            preexec_fn=lambda: os.close(1))
    stderr = result.stderr.decode()
    assert result.returncode == 2, stderr
    _assert_one_line(stderr)
    assert "stdout is closed" in stderr


def test_a_reader_that_goes_away_ends_the_command_silently_with_sigpipes_code(tmp_path):
    # `rocksynth convert big.tif - | head -c 10`: exit 141 (128 + SIGPIPE), as other Unix tools.
    # 256 kB that do not compress: more than a pipe holds, written in one call, of which the pipe
    # takes a part before the reader goes away (a short count, not an error, for that call).
    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 64), dtype=np.uint8)
    np.save(tmp_path / "v.npy", noise)
    process = subprocess.Popen([_command(), "convert", "v.npy", "-"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, cwd=tmp_path)
    os.read(process.stdout.fileno(), 10)
    process.stdout.close()
    assert process.wait(timeout=120) == 141
    assert "error" not in process.stderr.read().decode()


def _unwritable_folder(tmp_path: Path) -> Path:
    """A folder this process cannot create files in: a read-only folder, or for root /sys."""
    if os.geteuid() != 0:
        folder = tmp_path / "ro"
        folder.mkdir()
        folder.chmod(0o555)
        return folder
    if Path("/sys").is_dir() and not os.access("/sys", os.W_OK):
        return Path("/sys")
    try:  # root may write almost anywhere; sysfs refuses new files even to root
        fd = os.open("/sys/.rocksynth-probe", os.O_CREAT | os.O_WRONLY)
    except OSError:
        return Path("/sys")
    os.close(fd)
    pytest.skip("no unwritable folder available to this user")


def test_output_into_an_unwritable_folder_is_one_line_exit_2(tmp_path, slice_png):
    folder = _unwritable_folder(tmp_path)
    stderr = _quiet_error(["convert", slice_png.name, str(folder / "out.png")], tmp_path)
    assert str(folder / "out.png") in stderr and ".rocksynth-" not in stderr


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP],
                         ids=["SIGINT", "SIGTERM", "SIGHUP"])
def test_a_signal_stops_synthesize_with_one_line_and_nothing_left(tmp_path, signum):
    code, stderr = signal_while_writing([_command(), "synthesize", "--texture", "berea", "--size", "256",
                                         "--out", "x.tif"], tmp_path, signum, ".rocksynth-*")
    assert code == 128 + signum, stderr
    _assert_one_line(stderr)
    assert stderr.strip() == "interrupted"
    assert _listing(tmp_path) == set(), "files were left behind"


@pytest.mark.parametrize("case", ["random-bytes.tif", "empty.tif", "pickled.npy"])
def test_compare_folder_with_a_damaged_first_file_is_bad_input(tmp_path, berea_crop, case):
    for side in ("real", "gen"):
        folder = tmp_path / side
        folder.mkdir()
        np.save(folder / "b.npy", berea_crop[:40, :40, :40])
    bad = tmp_path / "gen" / ("a_" + case)
    if case == "random-bytes.tif":
        bad.write_bytes(np.random.default_rng(0).bytes(4096))
    elif case == "empty.tif":
        bad.write_bytes(b"")
    else:
        np.save(bad, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    stderr = _quiet_error(["compare", "real", "--vs", "gen", "--no-permeability"], tmp_path)
    assert "a_" + case.split(".")[0] in stderr


def test_a_full_disk_while_streaming_a_volume_is_bad_input_and_leaves_nothing(tmp_path, monkeypatch):
    import errno

    import tifffile

    from rocksynth.errors import BadInputError
    from rocksynth.io.volumes import VolumeWriter

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tifffile, "TiffWriter", full_disk)
    with pytest.raises(BadInputError, match=r"v\.tif: writing failed \(no space left on device\)"):
        with VolumeWriter(tmp_path / "v.tif", (4, 8, 8), np.uint8) as writer:
            for _ in range(4):
                writer.write(np.zeros((1, 8, 8), np.uint8))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args", [
    ["--max-voxels", "0", "info", "a_1.png"],
    ["--max-voxels", "1.5", "info", "a_1.png"],
    ["reconstruct", "a_1.png", "--depth", "-3", "--out", "x.tif"],
    ["info"],
    ["nonsense"],
], ids=["max-voxels-0", "max-voxels-fraction", "range", "missing-argument", "unknown-command"])
def test_usage_errors_are_one_line_exit_2(tmp_path, slice_png, args):
    stderr = _quiet_error(args, tmp_path)
    assert "--help" in stderr


def test_max_voxels_option_sets_the_decoding_limit(tmp_path, slice_png):
    stderr = _quiet_error(["--max-voxels", "1e5", "info", "a_1.png"], tmp_path)
    assert "more than ROCKSYNTH_MAX_VOXELS=100000" in stderr


def test_compare_crops_too_small_for_a_pore_network_is_bad_input(tmp_path):
    import tifffile

    volume = (np.random.default_rng(0).random((64, 64, 64)) < 0.2).astype(np.uint8) * 255
    tifffile.imwrite(tmp_path / "v.tif", volume)
    stderr = _quiet_error(["-q", "compare", "v.tif", "--vs", "v.tif", "--crops", "3", "--crop-size", "8"], tmp_path)
    assert "no pore network" in stderr


def test_predict_on_a_single_colour_tiff_image_says_it_is_one_image(tmp_path):
    import tifffile

    tifffile.imwrite(tmp_path / "rgb.tif", np.random.default_rng(0).integers(0, 255, (128, 128, 3), dtype=np.uint8))
    stderr = _quiet_error(["predict", "rgb.tif", "--out", "p.mp4"], tmp_path)
    assert "one image, not a sequence of frames" in stderr


def test_a_signal_inside_deferred_is_raised_when_the_block_ends():
    from rocksynth.interrupts import Interrupted, deferred, handled

    finished = []
    with pytest.raises(Interrupted) as caught:
        with handled():
            with deferred():
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.05)  # the handler runs here, and must only take note
                finished.append(True)
    assert finished == [True]
    assert caught.value.exit_code == 143


def test_a_signal_during_a_writers_queue_put_waits_for_the_put(tmp_path):
    """A signal that arrives while an item is being queued for a writer's worker is raised only
    once the put is done, so it cannot leave the queue's lock held (the cleanup's own put and the
    worker's get would then wait for ever)."""
    import os
    import queue
    import threading

    from rocksynth.interrupts import Interrupted, handled
    from rocksynth.io.volumes import put_while_alive

    class SignalledQueue(queue.Queue):
        def put(self, item, block=True, timeout=None):
            os.kill(os.getpid(), signal.SIGTERM)  # delivered to this (main) thread during the put
            super().put(item, block, timeout)

    items = SignalledQueue(maxsize=2)
    worker = threading.Thread(target=threading.Event().wait, args=(5,), daemon=True)
    worker.start()
    with pytest.raises(Interrupted), handled():
        put_while_alive(items, worker, "slab")
    assert items.get_nowait() == "slab"


def _swallow_a_signal(signum: int) -> None:
    """Deliver `signum` to this process where its `Interrupted` is lost, as C code that clears
    errors loses it (seen: a signal during the first import of numpy.random)."""
    from rocksynth.interrupts import Interrupted

    try:
        os.kill(os.getpid(), signum)
        time.sleep(0.05)  # the handler runs here
    except Interrupted:
        pass


def test_a_signal_whose_exception_was_lost_still_stops_the_output(tmp_path):
    """The output is not committed and the signal's exit code stands: the signal was recorded,
    and the commit checks for it."""
    from rocksynth.interrupts import Interrupted, check, handled
    from rocksynth.io.paths import atomic_output

    with pytest.raises(Interrupted) as caught, handled():
        with atomic_output(tmp_path / "x.tif") as tmp:
            tmp.write_bytes(b"data")
            _swallow_a_signal(signal.SIGTERM)  # not SIGHUP or SIGINT: a run under nohup or `&` ignores those
    assert caught.value.exit_code == 143
    assert _listing(tmp_path) == set()
    check()  # outside handled() nothing is left of that signal


def test_a_lost_signal_stops_a_streamed_volume_at_the_next_slab(tmp_path):
    from rocksynth.interrupts import Interrupted, handled
    from rocksynth.io.volumes import VolumeWriter

    written = []
    with pytest.raises(Interrupted), handled():
        with VolumeWriter(tmp_path / "v.tif", (4, 8, 8), np.uint8) as writer:
            for z in range(4):
                writer.write(np.zeros((1, 8, 8), np.uint8))
                written.append(z)
                if z == 1:
                    _swallow_a_signal(signal.SIGTERM)
    assert written == [0, 1]
    assert _listing(tmp_path) == set()


def test_cleanup_after_a_lost_signal_can_still_write(tmp_path):
    """Cleanup (`unwinding()`) may rewrite files, e.g. cut a learning curve back to its checkpoint."""
    from rocksynth.interrupts import handled, received, unwinding
    from rocksynth.io.paths import atomic_output

    with handled():
        _swallow_a_signal(signal.SIGTERM)
        assert received() == signal.SIGTERM
        with unwinding(), atomic_output(tmp_path / "curve.csv") as tmp:
            tmp.write_text("iteration\n")
    assert (tmp_path / "curve.csv").read_text() == "iteration\n"


@pytest.mark.parametrize("target", ["nodir/v.npy", "nodir/v.zarr", "nodir/slices/", "v.npy/"])
def test_convert_checks_its_output_before_reading_the_input(tmp_path, monkeypatch, run_cli_in_process, target):
    import rocksynth.io.convert as convert

    np.save(tmp_path / "v.npy", np.zeros((4, 8, 8), np.uint8))
    monkeypatch.setattr(convert, "read_volume", lambda *a, **k: pytest.fail("read before the output was checked"))
    monkeypatch.setattr(convert, "open_lazy", lambda *a, **k: pytest.fail("read before the output was checked"),
                        raising=False)
    code, _, err = run_cli_in_process("convert", tmp_path / "v.npy", f"{tmp_path}/{target}")  # keeps a trailing /
    assert code == 2 and len(err.strip().splitlines()) == 1, err
