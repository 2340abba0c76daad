"""The training harness (`rocksynth.training.loop`): bit-exact stop and resume, the warm-start
learning-rate ramp, the best checkpoint, and the trainers that run on it."""

import itertools

import numpy as np
import pytest
import torch

from rocksynth.training import loop
from rocksynth.training.checkpoint import load_checkpoint
from rocksynth.training.outputs import TrainingOutputs


class TinyTask:
    """A linear regression with dropout, on batches drawn from the task's own numpy generator:
    every kind of random state the harness must carry across a resume."""

    kind = "tiny"

    def __init__(self, lr=0.05, metrics=None):
        self.model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Dropout(0.3), torch.nn.Linear(8, 1))
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=lr, momentum=0.9)
        self.optimizers = [self.optimizer]
        self.rng = np.random.default_rng(7)
        self.lrs, self.losses, self.scripted = [], [], iter(metrics) if metrics is not None else None

    def step(self, iteration):
        self.lrs.append(self.optimizer.param_groups[0]["lr"])
        x = torch.from_numpy(self.rng.normal(size=(8, 4)).astype(np.float32))
        y = x.sum(1, keepdim=True) + float(np.random.normal())  # the global numpy generator too
        loss = ((self.model(x) - y) ** 2).mean()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.losses.append(float(loss.detach()))
        return {"loss": self.losses[-1]}

    def evaluate(self):
        if self.scripted is not None:
            return {"score": next(self.scripted)}
        with torch.no_grad():
            return {"score": float(self.model[0].weight.abs().mean())}

    def state_dict(self):
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state):
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.rng.bit_generator.state = state["rng"]

    def checkpoint_config(self):
        return {}

    def checkpoint_meta(self, metrics):
        return {"metrics": dict(metrics)}

    def curve_row(self, row):
        return row


def _run(tmp_path, name, iters, resume=False, tasks=None, **settings):
    plan = TrainingOutputs(tmp_path / f"{name}.pt", [tmp_path / f"{name}.csv"], resume=resume).check()
    payload = load_checkpoint(plan.checkpoint) if plan.resuming else None
    made = []

    def build():
        made.append(TinyTask(**(tasks or {})))
        return made[0]

    settings = loop.LoopSettings(iters=iters, seed=3, eval_every=2, curve_fields=["iteration", "loss", "score", "lr"],
                                 curve_path=tmp_path / f"{name}.csv", **settings)
    with plan:
        result = loop.train(build, plan, settings, payload=payload)
    return result, made[0]


def _csv_without_wall_time(path):
    import csv

    with open(path, newline="") as handle:
        return [{k: v for k, v in row.items() if not k.startswith("wall")} for row in csv.DictReader(handle)]


def _weights(path):
    return load_checkpoint(path)["state"]["model"]


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("stop", ["budget", "iterations"])
def test_a_stopped_and_resumed_run_equals_one_run_bit_for_bit(tmp_path, monkeypatch, stop):
    whole, whole_task = _run(tmp_path, "whole", 10)
    if stop == "budget":
        # A clock that advances one second per reading: the budget of 5 s runs out after step 5.
        ticks = itertools.count()
        monkeypatch.setattr(loop.time, "monotonic", lambda: float(next(ticks)))
        first, first_task = _run(tmp_path, "parts", 10, time_budget=5)
        monkeypatch.undo()
        assert first.stopped and first.iteration == 5
    else:
        first, first_task = _run(tmp_path, "parts", 5)
        assert not first.stopped
    assert load_checkpoint(tmp_path / "parts.pt")["meta"]["iterations"] == 5
    second, second_task = _run(tmp_path, "parts", 10, resume=True)
    assert second.iteration == 10 and not second.stopped
    assert whole_task.losses == first_task.losses + second_task.losses
    assert _same(_weights(tmp_path / "whole.pt"), _weights(tmp_path / "parts.pt"))
    assert whole.metrics == second.metrics
    if stop == "budget":
        # The learning curves agree too: the mean losses since the last evaluation crossed the stop.
        assert _csv_without_wall_time(tmp_path / "whole.csv") == _csv_without_wall_time(tmp_path / "parts.csv")


def test_a_resume_without_the_saved_random_states_differs(tmp_path):
    """The equality above is the harness's doing: dropping its random states breaks it."""
    _run(tmp_path, "whole", 6)
    _run(tmp_path, "parts", 3)
    payload = load_checkpoint(tmp_path / "parts.pt")
    del payload["state"]["loop"]
    torch.save(payload, tmp_path / "parts.pt")
    _run(tmp_path, "parts", 6, resume=True)
    assert not _same(_weights(tmp_path / "whole.pt"), _weights(tmp_path / "parts.pt"))


def test_a_warm_start_ramps_the_learning_rate(tmp_path):
    plan = TrainingOutputs(tmp_path / "w.pt").check()
    made = []
    settings = loop.LoopSettings(iters=6, eval_every=6, ramp=4)
    with plan:
        result = loop.train(lambda: made.append(TinyTask(lr=0.08)) or made[0], plan, settings,
                            init={"checkpoint": "earlier.pt"})
    assert made[0].lrs == pytest.approx([0.02, 0.04, 0.06, 0.08, 0.08, 0.08])
    assert result.meta["init"] == {"checkpoint": "earlier.pt"}
    # Without a warm start the rate is the task's from the first step.
    _, plain = _run(tmp_path, "plain", 2, ramp=4)
    assert plain.lrs == pytest.approx([0.05, 0.05])


@pytest.mark.parametrize("mode", ["min", "max"])
def test_the_best_checkpoint_follows_the_named_metric(tmp_path, mode):
    scores = [3.0, 1.0, 4.0, 0.5, 2.0]  # evaluations at iterations 2, 4, 6, 8, 10
    result, _ = _run(tmp_path, "b", 10, tasks={"metrics": scores}, best_metric="score", best_mode=mode,
                     best_path=tmp_path / "b.best.pt")
    best = load_checkpoint(tmp_path / "b.best.pt")
    expected = {"min": 0.5, "max": 4.0}[mode]
    assert best["meta"]["best"] == {"metric": "score", "value": expected, "iteration": {"min": 8, "max": 6}[mode]}
    assert best["meta"]["iterations"] == best["meta"]["best"]["iteration"]
    assert result.iteration == 10


def test_settings_no_run_can_use_are_refused():
    from rocksynth.errors import BadInputError

    for bad in (dict(iters=-1), dict(iters=2, eval_every=0), dict(iters=2, time_budget=-1.0),
                dict(iters=2, best_mode="lowest")):
        with pytest.raises(BadInputError):
            loop.LoopSettings(**bad).check()


@pytest.mark.parametrize("text, seconds", [("2h", 7200.0), ("90m", 5400.0), ("3600s", 3600.0), ("45", 45.0),
                                           ("1.5H", 5400.0), ("0.001s", 0.001)])
def test_durations_are_parsed_in_the_cli(text, seconds):
    from rocksynth.cli.options import parse_duration

    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "h", "2x", "-1h", "0s", "nanm", "inf"])
def test_bad_durations_are_one_line_errors(text):
    from rocksynth.cli.options import parse_duration
    from rocksynth.errors import BadInputError

    with pytest.raises(BadInputError, match="--time-budget"):
        parse_duration(text)


# --- the trainers on the harness, through the CLI ------------------------------------------------
def _whole_and_in_parts(run, args, whole, parts, first=()):
    """Run `args` (2 iterations) once to `whole`; then to `parts` with a time budget that stops
    it after its first iteration (any step takes longer than a microsecond), and resume it.
    `first`: options of the first runs only. Returns both final checkpoints."""
    code, _, err = run(*args, *first, "--out", whole)
    assert code == 0, err
    code, _, err = run(*args, *first, "--out", parts, "--time-budget", "0.000001s")
    assert code == 0 and "--resume" in err, err
    assert load_checkpoint(parts)["meta"]["iterations"] == 1
    code, _, err = run(*args, "--out", parts, "--resume")
    assert code == 0, err
    whole, parts = load_checkpoint(whole), load_checkpoint(parts)
    assert whole["meta"]["iterations"] == parts["meta"]["iterations"] == 2
    return whole, parts


CLEAN = ["train", "clean", "--widths", "2,4,4,4,4", "--crop", "32", "--batch", "1", "--iters", "2"]


def test_train_clean_stops_at_its_time_budget_and_resumes_bit_for_bit(tmp_path, run_cli_in_process):
    whole, parts = _whole_and_in_parts(run_cli_in_process, CLEAN, tmp_path / "whole.pt", tmp_path / "parts.pt")
    assert _same(whole["state"]["model"], parts["state"]["model"])
    assert (tmp_path / "parts.png").stat().st_size > 0
    best = load_checkpoint(tmp_path / "parts.best.pt")["meta"]["best"]
    assert best["metric"] == "iou" and best["value"] == max(row["val_iou"] for row in parts["meta"]["curve"])
    code, _, err = run_cli_in_process(*CLEAN, "--out", tmp_path / "x.pt", "--time-budget", "soon")
    assert code == 2 and "--time-budget" in err and not (tmp_path / "x.pt").exists()


PREDICTOR = ["train", "video", "scenes", "--stage", "predictor", "--size", "32", "--channels", "3", "--widths", "4,8,8",
             "--layers", "1", "--clip-frames", "6", "--batch", "2", "--pool", "8", "--eval-every", "1", "--iters", "2"]


def test_train_predictor_stops_at_its_time_budget_and_resumes_bit_for_bit(tmp_path, run_cli_in_process):
    whole, parts = _whole_and_in_parts(run_cli_in_process, PREDICTOR, tmp_path / "whole.pt", tmp_path / "parts.pt")
    assert _same(whole["state"]["predictor"], parts["state"]["predictor"])
    # The best checkpoint holds the evaluation with the highest held-out PSNR.
    rows = whole["meta"]["curve"]
    best = load_checkpoint(tmp_path / "whole.best.pt")["meta"]["best"]
    top = max(rows, key=lambda row: float(row["heldout_psnr_pred"]))  # the curve keeps 5 digits
    assert best["iteration"] == int(top["iteration"]) and best["value"] == pytest.approx(float(top["heldout_psnr_pred"]),
                                                                                         rel=1e-4)


def test_a_predictor_checkpoint_from_before_the_harness_resumes(tmp_path, run_cli_in_process):
    """A checkpoint without the harness's state (no random states, no curve in its meta): it
    resumes from its iteration with the curve of its CSV, and the best checkpoint must beat the
    best PSNR of that curve."""
    import torch

    code, _, err = run_cli_in_process(*PREDICTOR, "--out", tmp_path / "p.pt")
    assert code == 0, err
    payload = torch.load(tmp_path / "p.pt", weights_only=True)
    for key in ("loop", "rng"):
        del payload["state"][key]
    del payload["meta"]["curve"], payload["meta"]["best"]
    torch.save(payload, tmp_path / "p.pt")
    csv = tmp_path / "p.predictor.csv"
    lines = csv.read_text().splitlines()
    csv.write_text("\n".join([lines[0], lines[1], lines[2].replace(lines[2].split(",")[3], "99")]) + "\n")
    (tmp_path / "p.best.pt").unlink()
    code, _, err = run_cli_in_process(*PREDICTOR[:-1], "3", "--out", tmp_path / "p.pt", "--resume")
    assert code == 0, err
    assert [row.split(",")[0] for row in csv.read_text().splitlines()] == ["iteration", "1", "2", "3"]
    assert not (tmp_path / "p.best.pt").exists()  # no evaluation beat the 99 dB of the old curve
    assert load_checkpoint(tmp_path / "p.pt")["meta"]["best"] == {"metric": "heldout_psnr_pred", "value": 99.0,
                                                                  "iteration": 2}


VQVAE = ["train", "video", "balls", "--stage", "vqvae", "--size", "32", "--downsample", "3", "--widths", "4,4,4",
         "--codes", "8", "--pool", "6", "--batch", "4", "--eval-every", "1", "--iters", "2"]
TRANSFORMER = ["train", "video", "--stage", "transformer", "--clip-frames", "3", "--dim", "8", "--layers", "1",
               "--pool", "6", "--batch", "2", "--eval-every", "1", "--iters", "2"]


def test_train_video_stages_stop_at_their_time_budget_and_resume_bit_for_bit(tmp_path, run_cli_in_process):
    for stage, args, first in (("vqvae", VQVAE, []), ("transformer", TRANSFORMER, ["--vqvae", tmp_path / "vqvae.pt"])):
        whole, parts = _whole_and_in_parts(run_cli_in_process, args, tmp_path / f"{stage}.pt",
                                           tmp_path / f"{stage}-parts.pt", first)
        assert parts["meta"]["stage"] == stage
        assert _same(whole["state"][stage], parts["state"][stage])
        rows = (tmp_path / f"{stage}-parts.{stage}.csv").read_text().splitlines()
        assert [row.split(",")[0] for row in rows[1:]] == ["1", "2"]
        assert (tmp_path / f"{stage}.{stage}.png").stat().st_size > 0
        assert load_checkpoint(tmp_path / f"{stage}.best.pt")["meta"]["best"] == whole["meta"]["best"]
        assert whole["meta"]["best"]["metric"] == {"vqvae": "heldout_psnr", "transformer": "heldout_bpd"}[stage]


def _rock(path, shape, seed):
    from scipy import ndimage
    import tifffile

    field = ndimage.gaussian_filter(np.random.default_rng(seed).standard_normal(shape), 2.0)
    tifffile.imwrite(path, np.where(field > np.quantile(field, 0.7), 255, 0).astype(np.uint8))
    return path


def test_train_texture_stops_at_its_time_budget_and_resumes_bit_for_bit(tmp_path, run_cli_in_process):
    args = ["train", "texture", f"rock={_rock(tmp_path / 'rock.tif', (40, 40, 40), 0)}", "--iters", "2"]
    for setting in ("crop=16", "slices_per_axis=2", "eval_every=1", "save_every=1", "eval_size=16", "warmup_iters=1"):
        args += ["--set", setting]
    whole, parts = _whole_and_in_parts(run_cli_in_process, args, tmp_path / "whole.pt", tmp_path / "parts.pt")
    for name in ("generator", "encoder", "d_x", "texture_codes"):
        assert _same(whole["state"][name], parts["state"][name]), name
    assert _csv_without_wall_time(tmp_path / "whole.csv") == _csv_without_wall_time(tmp_path / "parts.csv")
    best = load_checkpoint(tmp_path / "whole.best.pt")["meta"]["best"]
    assert best["value"] == min(row["quality_error"] for row in whole["meta"]["curve"])


def test_train_reconstruct_stops_at_its_time_budget_and_resumes_bit_for_bit(tmp_path, run_cli_in_process):
    args = ["train", "reconstruct", _rock(tmp_path / "rock.tif", (64, 32, 32), 1), "--iters", "2", "--crop", "16",
            "--set", "warmup_crop=16", "--set", "warmup_iters=0", "--batch", "1", "--set", "crop_depth=32",
            "--eval-every", "1", "--set", "save_every=1", "--set", "whole_side=0", "--set", "calibration_cubes=1",
            "--set", "final_cubes=0"]
    code, _, err = run_cli_in_process(*args, "--out", tmp_path / "stopped.pt", "--time-budget", "0.000001s")
    assert code == 0, err
    assert load_checkpoint(tmp_path / "stopped.pt")["meta"]["calibration"] == {}  # calibrated when the run ends
    whole, parts = _whole_and_in_parts(run_cli_in_process, args, tmp_path / "whole.pt", tmp_path / "parts.pt")
    for name in ("model", "d3", "d2"):
        assert _same(whole["state"][name], parts["state"][name]), name
    assert parts["meta"]["calibration"] == whole["meta"]["calibration"] != {}
    assert parts["meta"]["best"] == whole["meta"]["best"]
