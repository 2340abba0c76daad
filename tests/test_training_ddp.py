"""Multi-process training under torchrun (DistributedDataParallel, gloo, 2 CPU processes) against
one process with the same total batch, stopping together at a time budget, and the trainers that
refuse several processes, for `train video --stage predictor` and `train clean` (~50 s: each
torchrun start costs a few seconds)."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from rocksynth.cli.main import main
from rocksynth.errors import BadInputError

# A tiny frame predictor: 6 iterations of batch 4 (2 clips per process in the 2-process run).
PREDICTOR = ["train", "video", "balls", "--stage", "predictor", "--iters", "6", "--eval-every", "3", "--size", "32",
             "--widths", "4,8,8", "--layers", "1", "--batch", "4", "--pool", "16", "--device", "cpu"]


def _run(args: "list[str]", cwd) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def _curve(path) -> "list[dict]":
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# The command docs/training.md gives, with torchrun's own free port (--standalone).
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
            "-m", "rocksynth.cli.main"]


def _same_curve(one: "list[dict]", two: "list[dict]", iterations=("3", "6"), wall: str = "wall_s",
                absolute: "dict[str, float] | None" = None) -> None:
    """The two learning curves evaluate at `iterations` and agree in every column but the wall time
    (`absolute`: column -> the absolute tolerance of a column counted in pixels)."""
    assert [r["iteration"] for r in one] == [r["iteration"] for r in two] == list(iterations)
    for a, b in zip(one, two):
        for column in a:
            if column != wall:
                # The CSV keeps 5 significant digits; the mean of the two processes' losses sums in
                # another order than one process does, which could flip a last digit.
                assert float(b[column]) == pytest.approx(float(a[column]), rel=1e-4,
                                                         abs=(absolute or {}).get(column, 0)), column


def _same_weights(first: dict, second: dict, module: str = "predictor", atol: float = 1e-6) -> None:
    """The two checkpoints hold the same weights of `module`, to `atol` (the callers say why)."""
    assert first["state"][module].keys() == second["state"][module].keys()
    for name, weight in first["state"][module].items():
        torch.testing.assert_close(second["state"][module][name], weight, rtol=1e-5, atol=atol)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A folder with the tiny run in one process (one.pt) and in two (two.pt)."""
    folder = tmp_path_factory.mktemp("ddp")
    _run([sys.executable, "-m", "rocksynth.cli.main", *PREDICTOR, "--out", "one.pt"], folder)
    _run([*TORCHRUN, *PREDICTOR, "--out", "two.pt"], folder)
    return folder


def _two_runs_agree(folder: Path, curve: str, same_curve, same_weights, outputs: "tuple[str, ...]",
                    ignored: "tuple[str, ...]") -> "tuple[dict, dict]":
    """The one-process run (one.pt) and the two-process run (two.pt) in `folder`: the same curves
    (`one<curve>`, `two<curve>`) of a run that trained, 6 iterations each, the same weights, and
    only rank 0 wrote, once: each run's `outputs` suffixes and no stray files (names starting with
    `ignored` left out). Returns both checkpoints."""
    one, two = _curve(folder / f"one{curve}"), _curve(folder / f"two{curve}")
    same_curve(one, two)
    assert one[0]["loss"] != one[1]["loss"]  # the run trained
    first = torch.load(folder / "one.pt", weights_only=True)
    second = torch.load(folder / "two.pt", weights_only=True)
    assert first["meta"]["iterations"] == second["meta"]["iterations"] == 6
    same_weights(first, second)
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(ignored)) == sorted(
        f"{stem}{suffix}" for stem in ("one", "two") for suffix in outputs)
    return first, second


def test_two_processes_train_the_one_process_run(runs):
    # The gradients of two half batches, averaged by DDP, differ from the whole batch's in the
    # order float32 sums them (about 1e-7 relative); six Adam steps keep that near 1e-8.
    first, second = _two_runs_agree(runs, ".predictor.csv", _same_curve, _same_weights,
                                    (".pt", ".best.pt", ".predictor.csv", ".predictor.png", ".toml"), ("parts",))
    assert first["state"]["rng"] == second["state"]["rng"]  # the clip sampler: same state on every rank


def test_two_processes_stop_together_at_the_budget_and_resume_on_one(runs):
    """Rank 0's clock stops both processes after the first iteration (torchrun would hang or fail
    if one went on); the checkpoint rank 0 wrote resumes in one process to the two-process run."""
    tmp_path = runs
    _run([*TORCHRUN, *PREDICTOR, "--out", "parts.pt", "--time-budget", "0.000001s"], tmp_path)
    assert torch.load(tmp_path / "parts.pt", weights_only=True)["meta"]["iterations"] == 1
    _run([sys.executable, "-m", "rocksynth.cli.main", *PREDICTOR, "--out", "parts.pt", "--resume"], tmp_path)
    _same_curve(_curve(tmp_path / "two.predictor.csv"), _curve(tmp_path / "parts.predictor.csv"))
    _same_weights(torch.load(tmp_path / "two.pt", weights_only=True),
                  torch.load(tmp_path / "parts.pt", weights_only=True))


# A tiny `train clean` on procedural drawings: 6 iterations of batch 4, evaluated and saved every 2.
# The command line has no evaluation interval, so a script calls the trainer (as torchrun can).
# lr 2e-4, not the default 2e-3: Adam's steps scale the float32 rounding a run cannot avoid (one
# process fed the same batches in reversed sample order ends 8e-4 away at 2e-3, 4e-6 at 2e-4),
# while two processes with per-share batch norms still end 3e-2 away.
CLEAN_SCRIPT = """
import sys
from pathlib import Path

from rocksynth.training.clean import train_clean

out = Path(sys.argv[1])
train_clean(out, 6, resume="--resume" in sys.argv, batch=4, crop=32, lr=2e-4, widths=(4, 8, 8, 8, 8),
            validate_every=2, checkpoint_every=2, validation_count=4, curve_csv=out.with_suffix(".csv"),
            time_budget=1e-6 if "--budget" in sys.argv else None)
"""


def _same_clean_curve(one: "list[dict]", two: "list[dict]") -> None:
    # The validation IoU counts thresholded pixels: float rounding (which differs between CPUs'
    # kernels) can flip a pixel at the threshold, 3e-6 of an IoU near 0.006 seen, a relative 4e-4.
    _same_curve(one, two, iterations=("2", "4", "6"), wall="wall_time_s", absolute={"val_iou": 2e-5})


def _same_clean_weights(first: dict, second: dict) -> None:
    # Batch-norm running statistics included. Adam moves a weight by about lr (2e-4) a step
    # whatever its gradient's size, so a weight whose gradient is small moves by a fraction of that
    # set by float32 rounding: one process fed the same batches in reversed sample order ends 4e-6
    # away; two processes, which sum in another order from run to run, up to 5e-5 on some CPUs.
    # Half a step allowed; the per-share batch norms this guards against end 3e-2 away.
    _same_weights(first, second, module="model", atol=1e-4)


@pytest.fixture(scope="module")
def clean_runs(tmp_path_factory):
    """A folder with the tiny `train clean` run in one process (one.pt) and in two (two.pt)."""
    folder = tmp_path_factory.mktemp("ddp_clean")
    (folder / "run_clean.py").write_text(CLEAN_SCRIPT)
    _run([sys.executable, "run_clean.py", "one.pt"], folder)
    _run([*TORCHRUN[:-2], "run_clean.py", "two.pt"], folder)
    return folder


def test_two_processes_train_clean_as_one_process(clean_runs):
    _two_runs_agree(clean_runs, ".csv", _same_clean_curve, _same_clean_weights, (".pt", ".best.pt", ".csv", ".png"),
                    ("parts", "run_clean"))


def test_two_processes_stop_train_clean_together_and_resume_on_one(clean_runs):
    """The checkpoint rank 0 writes at the budget (after iteration 1) resumes in one process to
    the two-process run: nothing else of the step is random, and the norms' statistics are the same."""
    tmp_path = clean_runs
    _run([*TORCHRUN[:-2], "run_clean.py", "parts.pt", "--budget"], tmp_path)
    assert torch.load(tmp_path / "parts.pt", weights_only=True)["meta"]["iterations"] == 1
    _run([sys.executable, "run_clean.py", "parts.pt", "--resume"], tmp_path)
    _same_clean_curve(_curve(tmp_path / "two.csv"), _curve(tmp_path / "parts.csv"))
    _same_clean_weights(torch.load(tmp_path / "two.pt", weights_only=True),
                        torch.load(tmp_path / "parts.pt", weights_only=True))


class _Pairs:
    """Stands in for a folder of (scan, clean) pairs: numbered images, picked by the generator."""

    def sample(self, rng):
        index = int(rng.integers(100))
        return np.full((48, 48), index, np.float32), np.zeros((48, 48), bool)


@pytest.mark.parametrize("pairs", [None, _Pairs()], ids=["procedural", "pairs"])
def test_each_rank_draws_its_share_of_the_one_process_clean_batch(pairs):
    from rocksynth.models.unet import UNet
    from rocksynth.training.clean import _CleanTask

    def task():
        return _CleanTask(UNet((2, 2, 2, 2, 2)), 1e-3, 4, 4, 32, 0, pairs, [], {})

    whole, first, second = task(), task(), task()
    first.distribute(lambda m: m, 0, 2)
    second.distribute(lambda m: m, 1, 2)
    for step in range(2):
        scans, targets = whole._batch(step)
        parts = [t._batch(step) for t in (first, second)]
        assert [p[0].shape[0] for p in parts] == [2, 2]
        torch.testing.assert_close(torch.cat([p[0] for p in parts]), scans, rtol=0, atol=0)
        torch.testing.assert_close(torch.cat([p[1] for p in parts]), targets, rtol=0, atol=0)
    with pytest.raises(BadInputError, match="multiple of the 3 processes"):
        task().distribute(lambda m: m, 0, 3)


def test_trainers_without_ddp_refuse_several_processes(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    rock = tmp_path / "rock.npy"
    np.save(rock, (np.random.default_rng(0).random((24, 24, 24)) < 0.3).astype(np.uint8) * 255)
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    code = main(["train", "texture", f"rock={rock}", "--out", str(outputs / "t.pt"), "--iters", "1", "--set", "crop=16",
                 "--set", "eval_size=16", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2
    assert "only train video --stage predictor and train clean run on several processes" in " ".join(err.split())
    assert list(outputs.iterdir()) == []


@pytest.mark.parametrize("command", [PREDICTOR[:-2], ["train", "clean", "--iters", "1"],
                                     ["train", "texture", "rock=porespy:blobs", "--iters", "1"],
                                     ["train", "reconstruct", "ROCK", "--iters", "1"]],
                         ids=["video", "clean", "texture", "reconstruct"])
def test_every_train_command_refuses_a_missing_gpu_in_one_line(tmp_path, capsys, command):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    rock = tmp_path / "rock.npy"
    np.save(rock, np.zeros((32, 32, 32), np.uint8))
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    command = [str(rock) if arg == "ROCK" else arg for arg in command]
    code = main([*command, "--device", "cuda", "--out", str(outputs / "p.pt")])
    err = capsys.readouterr().err
    assert code == 2
    assert "--device cuda: no CUDA device" in err and len(err.strip().splitlines()) == 1
    assert list(outputs.iterdir()) == []


class _Recorder(torch.nn.Module):
    """Stands in for DistributedDataParallel: records the contexts a training step rolls out."""

    def __init__(self, module: torch.nn.Module):
        super().__init__()
        self.module, self.seen = module, []

    def forward(self, context: torch.Tensor) -> torch.Tensor:
        self.seen.append(context.clone())
        return self.module(context)


def test_each_rank_trains_its_share_of_the_one_process_batch():
    from rocksynth.training.loop import seed_everything
    from rocksynth.training.predictor import _PredictorTask

    config = {"channels": 1, "context": 4, "widths": [4, 8, 8], "blocks": 1}
    frame = {"size": 32, "channels": 1, "clip_frames": 7, "rollout": 3}
    seen = []
    for rank in (None, 0, 1):
        seed_everything(0)
        task = _PredictorTask(["balls"], config, frame, batch=4, lr=1e-3, pool=16, seed=0)
        task.distribute(_Recorder, 0, 1) if rank is None else task.distribute(_Recorder, rank, 2)
        for iteration in range(2):
            task.step(iteration)
        seen.append(task.train_rollout.seen)
    whole, first, second = seen
    for step in range(2):
        assert first[step].shape[0] == second[step].shape[0] == 2
        torch.testing.assert_close(torch.cat([first[step], second[step]]), whole[step], rtol=0, atol=0)
