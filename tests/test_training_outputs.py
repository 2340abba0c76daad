"""Training runs through the installed console script: every output planned and checked before any
work, nothing left behind by a run that is refused, fails or is interrupted before its first
checkpoint, `-` as a volume input, and numeric options refused by their range while the command
line is parsed. Each refusal asserts exit code 2, exactly one line on stderr, no traceback, and
that the folder holding the inputs and outputs is unchanged."""

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from conftest import SHARED_DATA, Stop, StopAt, default_signals


def _command() -> str:
    script = Path(sys.executable).with_name("rocksynth")
    return str(script) if script.exists() else shutil.which("rocksynth")


def _listing(folder: Path) -> "dict[str, int]":
    return {str(p.relative_to(folder)): p.stat().st_size if p.is_file() else -1 for p in folder.rglob("*")}


def _run(args, cwd: Path, stdin: "bytes | None" = None):
    result = subprocess.run([_command(), *map(str, args)], input=stdin if stdin is not None else b"",
                            capture_output=True, cwd=cwd, timeout=300)
    return result.returncode, result.stdout, result.stderr.decode(errors="replace")


def _refused(args, cwd: Path) -> str:
    """Run, and assert: exit 2, one line on stderr, no traceback, nothing written or removed."""
    before = _listing(cwd)
    code, _, stderr = _run(args, cwd)
    assert code == 2, stderr
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), stderr
    assert _listing(cwd) == before, "files were left behind or changed"
    return lines[0]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """A folder with a small Berea crop (64 x 48 x 48, 0/255), an all-pore volume, a pairs folder
    for `train clean`, and an existing checkpoint-like file."""
    folder = tmp_path_factory.mktemp("training_outputs")
    berea = tifffile.imread(SHARED_DATA / "berea_400.tif")[:64, :48, :48]
    tifffile.imwrite(folder / "vol.tif", berea)
    tifffile.imwrite(folder / "pore.tif", np.full((48, 48, 48), 255, np.uint8))
    from PIL import Image

    rng = np.random.default_rng(0)
    for sub in ("scans", "clean"):
        (folder / "P" / sub).mkdir(parents=True)
        Image.fromarray((rng.random((64, 64)) > 0.5).astype(np.uint8) * 255).save(folder / "P" / sub / "p0.png")
    (folder / "old.pt").write_bytes(b"an earlier run's checkpoint")
    from rocksynth.models.frame_predictor import FramePredictor
    from rocksynth.training.checkpoint import save_checkpoint

    predictor = FramePredictor(channels=1, context=4, widths=(4, 8, 8), blocks=1)
    save_checkpoint(folder / "pred.pt", "video", {"predictor": predictor.config, "frame": {"size": 32, "channels": 1}},
                    {"predictor": predictor.state_dict()}, {"stage": "predictor", "iterations": 1, "sources": ["balls"]})
    return folder


@pytest.mark.parametrize("args, message", [
    # An input as --out: refused before anything is written (used to leave vol.csv / vol.best.pt);
    # it is not a checkpoint's name either.
    (["train", "reconstruct", "vol.tif", "--out", "vol.tif", "--resume"], "a checkpoint is a .pt file"),
    (["train", "texture", "t=vol.tif", "--out", "vol.tif", "--resume"], "a checkpoint is a .pt file"),
    # A checkpoint named like its own configuration, curve or plot would be overwritten by it.
    (["train", "reconstruct", "vol.tif", "--out", "r.toml"], "a checkpoint is a .pt file"),
    (["train", "texture", "t=vol.tif", "--out", "t.csv"], "a checkpoint is a .pt file"),
    (["train", "video", "balls", "--stage", "vqvae", "--out", "v.png"], "a checkpoint is a .pt file"),
    (["train", "clean", "--out", "c"], "a checkpoint is a .pt file"),
    (["train", "reconstruct", "vol.tif", "--out", "vol.tif"], "vol.tif"),
    # --out inside the training pairs (used to leave P/scans/p0.csv, which broke the next run).
    (["train", "clean", "--pairs", "P", "--out", "P/scans/p0.png"], "a checkpoint is a .pt file"),
    (["train", "clean", "--pairs", "P", "--out", "P/clean/new.pt", "--resume"], "--pairs"),
    # An existing checkpoint is never replaced without --resume, by any trainer.
    (["train", "reconstruct", "vol.tif", "--out", "old.pt"], "--resume"),
    (["train", "texture", "t=vol.tif", "--out", "old.pt"], "--resume"),
    (["train", "video", "balls", "--stage", "vqvae", "--out", "old.pt"], "--resume"),
    (["train", "clean", "--out", "old.pt"], "--resume"),
    # A checkpoint with a learning curve beside it needs a file path, not stdout.
    (["train", "reconstruct", "vol.tif", "--out", "-"], "--out -"),
    (["train", "texture", "t=vol.tif", "--out", "-"], "--out -"),
    (["train", "video", "balls", "--stage", "vqvae", "--out", "-"], "--out -"),
    (["train", "clean", "--out", "-"], "--out -"),
    # Settings no run could use, refused before the data is read.
    (["train", "reconstruct", "vol.tif", "--out", "r.pt", "--crop", "18"], "multiple of 4"),
    (["train", "reconstruct", "vol.tif", "--out", "r.pt", "--crop", "16", "--set", "warmup_crop=32"], "warmup_crop"),
    (["train", "reconstruct", "vol.tif", "--out", "x.pt", "--set", "warmup_crop=8"], "warmup_crop: 8 is not in"),
    (["train", "reconstruct", "vol.tif", "--out", "x.pt", "--set", "save_every=0"], "save_every: 0 is not in"),
    (["train", "texture", "t=vol.tif", "--out", "t.pt", "--set", "crop=20"], "multiple of 8"),
    (["train", "texture", "t=vol.tif", "--out", "t.pt", "--set", "lr_g=nan"], "lr_g"),
    (["train", "texture", "t=vol.tif", "--out", "t.pt", "--set", "threads=0"], "threads must be at least 1"),
    (["train", "video", "balls", "--stage", "vqvae", "--out", "v.pt", "--size", "20"], "--size"),
    (["train", "video", "--stage", "transformer", "--out", "v.pt", "--dim", "6"], "--dim"),
    # A frame predictor's checkpoint is not a two-stage model's (used to be a KeyError, exit 1).
    (["train", "video", "balls", "--stage", "vqvae", "--out", "pred.pt", "--resume"], "frame predictor checkpoint"),
    (["train", "video", "--stage", "transformer", "--vqvae", "pred.pt", "--out", "t.pt"], "frame predictor checkpoint"),
    # One value per channel at the U-Net's deepest level: batch norm cannot train (was exit 1).
    (["train", "clean", "--out", "c.pt", "--batch", "1", "--crop", "16", "--iters", "1"], "batch norm needs"),
    # Checks that need the data, still before any work (-q: the one line is the error).
    (["-q", "train", "texture", "t=pore.tif", "--out", "m.pt", "--set", "crop=16", "--iters", "1"], "all pore"),
    (["-q", "train", "texture", "t=vol.tif", "--out", "m.pt", "--set", "crop=64", "--iters", "1"], "smaller than the crop"),
    (["-q", "train", "reconstruct", "vol.tif", "--out", "m.pt", "--crop", "32", "--iters", "1"], "smaller than"),
])
def test_a_refused_training_run_leaves_nothing(data, args, message):
    assert message in _refused(args, data)


@pytest.mark.parametrize("args", [
    ["train", "clean", "--out", "x.pt", "--threads", "0"],
    ["clean", "scan.png", "--out", "o.png", "--threads", "0"],
    ["train", "reconstruct", "vol.tif", "--out", "x.pt", "--eval-every", "0"],
    ["train", "video", "balls", "--stage", "vqvae", "--out", "x.pt", "--size", "0"],
    ["train", "video", "balls", "--stage", "vqvae", "--out", "x.pt", "--batch", "-1"],
    ["train", "video", "balls", "--stage", "vqvae", "--out", "x.pt", "--parts", "0"],
    ["train", "video", "balls", "--stage", "vqvae", "--out", "x.pt", "--eval-every", "0"],
    ["train", "video", "balls", "--stage", "vqvae", "--out", "x.pt", "--iters", "0"],
    ["train", "clean", "--out", "x.pt", "--lr", "-1"],
    ["predict", "clip.mp4", "--out", "o.mp4", "--fps", "-5"],
    ["predict", "clip.mp4", "--out", "o.mp4", "--frames", "0"],
    ["reconstruct", "s.png", "--out", "v.tif", "--depth", "0"],
    ["synthesize", "--texture", "berea", "--out", "v.tif", "--seed", "-1"],
    ["compare", "vol.tif", "--vs", "vol.tif", "--bootstrap", "0"],
    ["convert", "vol.tif", "o.mp4", "--fps", "0"],
])
def test_numeric_options_out_of_range_are_usage_errors(data, args):
    line = _refused(args, data)
    assert f"'{next(a for a in reversed(args) if a.startswith('--'))}'" in line


@pytest.mark.parametrize("command", ["reconstruct", "texture"])
def test_a_volume_can_come_from_stdin(data, tmp_path, command):
    if command == "reconstruct":
        args = ["train", "reconstruct", "-", "--out", "m.pt", "--iters", "1", "--crop", "16", "--set", "warmup_crop=16",
                "--set", "calibration_cubes=0", "--set", "final_cubes=0"]
    else:
        args = ["train", "texture", "t=-", "--out", "m.pt", "--iters", "1", "--set", "crop=16"]
    code, _, stderr = _run(args, tmp_path, stdin=(data / "vol.tif").read_bytes())
    assert code == 0, stderr
    written = {p.name for p in tmp_path.iterdir()}
    assert {"m.pt", "m.csv", "m.png"} <= written
    import torch

    meta = torch.load(tmp_path / "m.pt", weights_only=True)["meta"]
    assert meta["iterations"] == 1


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_run_before_its_first_checkpoint_leaves_nothing(tmp_path, signum):
    """SIGINT or SIGTERM during `train clean` (procedural drawings; first checkpoint after 100
    iterations, far away at this crop and batch): exit 130/143, one line, no file left."""
    process = subprocess.Popen([_command(), "train", "clean", "--out", "c.pt", "--iters", "100000",
                                "--crop", "256", "--batch", "16"], cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=default_signals)
    started = time.monotonic()
    # The run has started once it wrote its learning curve's header (or, failing that, after 5 s).
    while not (tmp_path / "c.csv").exists() and time.monotonic() - started < 5 and process.poll() is None:
        time.sleep(0.05)
    assert process.poll() is None, process.communicate()[1].decode(errors="replace")
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=120)
    stderr = stderr.decode(errors="replace")
    assert process.returncode == 128 + signum, stderr
    assert "Traceback" not in stderr
    assert [line for line in stderr.splitlines() if line.strip()] == ["interrupted"], stderr
    assert list(tmp_path.iterdir()) == []


def test_a_run_stopped_after_a_checkpoint_keeps_it_and_its_curve_up_to_it(tmp_path):
    """In the library: a failure after the checkpoint at iteration 2 keeps that checkpoint and the
    curve's rows up to it (not the row of iteration 3), and the run resumes from there; a new run
    stopped before its first checkpoint leaves nothing."""
    import torch

    from rocksynth.training.clean import train_clean

    kwargs = dict(batch=1, crop=32, widths=(2, 4, 4, 4, 4), validate_every=1, checkpoint_every=2,
                  validation_count=1)
    out, curve = tmp_path / "c.pt", tmp_path / "c.csv"
    with pytest.raises(Stop):
        train_clean(out, 6, progress=StopAt(4), curve_csv=curve, **kwargs)  # rows 1-3, checkpoint at 2
    assert torch.load(out, weights_only=True)["meta"]["iterations"] == 2
    assert [line.split(",")[0] for line in curve.read_text().splitlines()] == ["iteration", "1", "2"]
    meta = train_clean(out, 3, resume=True, curve_csv=curve, **kwargs)
    assert meta["iterations"] == 3
    assert [line.split(",")[0] for line in curve.read_text().splitlines()] == ["iteration", "1", "2", "3"]
    with pytest.raises(Stop):
        train_clean(tmp_path / "d.pt", 6, progress=StopAt(1), curve_csv=tmp_path / "d.csv", **kwargs)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.best.pt", "c.csv", "c.png", "c.pt"]
