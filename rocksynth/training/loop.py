"""One training harness for every model: the loop, and everything around the loop that is not
the model's business.

A model is trained through a *task* (`TrainingTask`): an object that gives one optimisation step,
a held-out evaluation and its state (weights, optimisers, its own random generators, its data
position). `train` owns the rest, the same way for every model:

- seeding (python, numpy and torch) before the task is built;
- resume: a checkpoint written by `train` holds the task's state and the loop's (global random
  states, the losses since the last evaluation, the best metric), so a resumed run continues
  bit for bit where it stopped;
- warm start (``--init``): the task loads the weights it starts from; the loop ramps the
  learning rates linearly from ``1/ramp`` to full over the first ``ramp`` iterations, because a
  fresh optimiser's first steps move every weight by about the learning rate;
- evaluation every ``eval_every`` iterations and a best checkpoint by a named metric;
- the CSV learning curve and its PNG plot, and a progress bar;
- a time budget: at the first iteration boundary after ``time_budget`` seconds the run saves its
  checkpoint and stops, to be continued with ``--resume``;
- the device: the task is built on the CPU and moved (``task.to(device)``) before its state is
  loaded; on the CPU nothing is moved, so CPU runs are bit for bit those of a build without devices;
- several processes started by ``torchrun`` (``WORLD_SIZE`` > 1): the harness joins the process
  group (nccl on CUDA, gloo on the CPU), hands the task a `DistributedDataParallel` wrapper and
  its rank (``task.distribute``), averages the step's losses over the ranks, and lets rank 0 alone
  evaluate and write; every rank stops at the same iteration.

Checkpoints keep each model's own format (`rocksynth.models.checkpoints`): the loop adds its
state under ``state['loop']``, and ``meta['curve']`` and ``meta['best']``, which inference
ignores. A run started by a ``train`` command also records the command's resolved configuration
in ``meta['train_config']`` (`recording_config`).
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Mapping, Protocol, Sequence

import numpy as np
import torch

from rocksynth import interrupts
from rocksynth.errors import BadInputError
from rocksynth.progress import log, progress_bar, set_quiet
from rocksynth.training.checkpoint import save_checkpoint
from rocksynth.training.outputs import TrainingOutputs

__all__ = ["DISTRIBUTED_TRAINERS", "LoopResult", "LoopSettings", "TrainingTask", "process_rank", "random_states",
           "recording_config", "seed_everything", "set_random_states", "train"]

# The trainers whose task has `distribute` (multi-process training under torchrun).
DISTRIBUTED_TRAINERS = "train video --stage predictor and train clean"

# The resolved configuration of the `train` command now running (None outside one). A context
# variable, so the CLI hands it to every checkpoint without threading it through each trainer.
_TRAIN_CONFIG: "contextvars.ContextVar[dict | None]" = contextvars.ContextVar("train_config", default=None)


@contextlib.contextmanager
def recording_config(config: dict):
    """Record `config` in ``meta['train_config']`` of every checkpoint `train` writes inside the block.

    Parameters
    ----------
    config : dict
        ``{'command': 'train KIND', 'options': {...}}``: the command and its resolved options,
        the values `rocksynth.cli.config` writes to ``<out>.toml``.
    """
    token = _TRAIN_CONFIG.set(config)
    try:
        yield
    finally:
        _TRAIN_CONFIG.reset(token)


class TrainingTask(Protocol):
    """What a model gives the harness.

    Attributes
    ----------
    kind : str
        The checkpoint kind ('clean', 'video', ...).
    optimizers : sequence of torch.optim.Optimizer
        Every optimiser of the task; the loop sets their learning rates before each step.

    A task may also define:

    - ``lr_scale(iteration) -> float``: its schedule, the factor on each optimiser group's
      initial learning rate at step `iteration` (without it the rate is constant);
    - ``ramped``: the optimisers a warm start ramps (default: all of them);
    - ``status(losses) -> str``: the progress bar's summary of a step;
    - ``to(device)``: move its modules to a `torch.device` other than the CPU, with its batches
      following them (needed for ``LoopSettings.device`` other than the CPU);
    - ``distribute(wrap, rank, world)``: for multi-process training, take share `rank` of `world`
      equal shares of each batch (drawn from the same seeded generators on every rank, so the
      shares together are the one-process batch) and run the training forward passes through
      ``wrap(module)`` (a `DistributedDataParallel`, which averages the gradients over the
      ranks). Its losses must be means over its share, so that their mean over the ranks is the
      one-process loss.
    """

    kind: str
    optimizers: Sequence[torch.optim.Optimizer]

    def step(self, iteration: int) -> Mapping[str, float]:
        """Run optimisation step `iteration` (0-based) and return its losses by name."""

    def evaluate(self) -> Mapping[str, float]:
        """Held-out metrics of the current weights. It runs at the same iterations in a run and in
        its stopped and resumed parts, so what it draws from the global generators is the same in
        both; it must not depend on anything else that a resume changes."""

    def state_dict(self) -> dict[str, Any]:
        """The checkpoint's ``state``: module and optimiser state dicts, the task's own random
        generators and data position. Tensors and JSON-like values only."""

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore `state_dict()` (a resumed run)."""

    def checkpoint_config(self) -> dict[str, Any]:
        """The checkpoint's ``config`` (the constructor arguments of the models)."""

    def checkpoint_meta(self, metrics: Mapping[str, float]) -> dict[str, Any]:
        """The checkpoint's ``meta`` besides what the loop writes (``iterations``,
        ``wall_time_s``, ``curve``, ``init``, ``best``); `metrics` is the last evaluation."""

    def curve_row(self, row: dict[str, Any]) -> dict[str, Any]:
        """The CSV row of an evaluation: `row` holds ``iteration``, ``wall_time_s``, ``lr``, the
        mean of each loss since the previous evaluation and the metrics; return it renamed or
        formatted as the model's curve has it."""


@dataclass
class LoopSettings:
    """How `train` runs a task.

    Parameters
    ----------
    iters : int
        Total iterations of the run (a resumed run continues up to it); 0 writes the starting
        point (e.g. the weights of a warm start) as the checkpoint.
    seed : int
        Seeds python's, numpy's and torch's global generators before the task is built.
    eval_every : int
        Held-out evaluation (and a row of the learning curve) every this many iterations and at
        the end.
    save_every : int or None
        Checkpoint every this many iterations and at the end (default: `eval_every`).
    time_budget : float or None
        Seconds from the start of `train`: at the first iteration boundary after it, save and
        stop (resumable); at least one iteration runs.
    ramp : int
        Iterations of the linear learning-rate ramp of a warm-started run.
    best_metric : str or None
        Metric of `TrainingTask.evaluate` that picks the best checkpoint (written to `best_path`).
    best_mode : {'min', 'max'}
        Whether lower or higher `best_metric` is better.
    best_path : Path or None
        Where the best checkpoint goes (one of the run's planned files).
    curve_fields : sequence of str
        Columns of the CSV learning curve.
    curve_path : Path or None
        The CSV learning curve (None: none); its plot goes beside it as .png when `plot` is set.
    plot : bool or callable
        Write the PNG plot of the curve (beside `curve_path`) after each evaluation: True for
        `plot_curve`, or a function ``plot(rows, png_path)`` drawing the model's own figure.
    description : str
        The progress bar's label.
    device : torch.device or None
        Where the task trains (None: the CPU); under torchrun with CUDA each process takes
        ``cuda:LOCAL_RANK``.
    """

    iters: int
    seed: int = 0
    eval_every: int = 100
    save_every: int | None = None
    time_budget: float | None = None
    ramp: int = 0
    best_metric: str | None = None
    best_mode: Literal["min", "max"] = "min"
    best_path: Path | None = None
    curve_fields: Sequence[str] = ()
    curve_path: Path | None = None
    plot: bool | Callable[[list[dict], Path], None] = False
    description: str = "train"
    device: torch.device | None = None

    def check(self) -> None:
        """Refuse settings no run can use.

        Raises
        ------
        BadInputError
            On a negative iteration count, a non-positive interval, a negative budget or ramp, or an
            unknown `best_mode`.
        """
        if self.iters < 0 or self.eval_every < 1 or (self.save_every is not None and self.save_every < 1):
            raise BadInputError("the iterations must not be negative and the evaluation and checkpoint "
                                "intervals must be at least 1")
        if self.time_budget is not None and not self.time_budget >= 0:
            raise BadInputError(f"the time budget must not be negative, got {self.time_budget}")
        if self.ramp < 0 or self.best_mode not in ("min", "max"):
            raise BadInputError("the learning-rate ramp must not be negative and the best mode is min or max")


@dataclass
class LoopResult:
    """What a run ended with.

    Attributes
    ----------
    iteration : int
        Iterations done (in this run and the ones it continues).
    metrics : dict
        The last held-out evaluation (empty if none ran).
    meta : dict
        The ``meta`` of the last checkpoint written.
    stopped : bool
        True when the time budget stopped the run before `LoopSettings.iters`.
    """

    iteration: int
    metrics: dict
    meta: dict
    stopped: bool


def seed_everything(seed: int) -> None:
    """Seed python's `random`, numpy's global generator and torch's."""
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


def random_states() -> dict[str, Any]:
    """The global random states (python, numpy, torch) as checkpointable values."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"python": random.getstate(), "numpy": [name, keys.tolist(), pos, has_gauss, gauss],
            "torch": torch.get_rng_state()}


def set_random_states(states: Mapping[str, Any]) -> None:
    """Restore `random_states()`."""
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, gauss = states["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(states["torch"])


def _better(value: float, best: float | None, mode: str) -> bool:
    if best is None:
        return True
    return value < best if mode == "min" else value > best


def train(build: Callable[[], TrainingTask], plan: TrainingOutputs, settings: LoopSettings, *,
          payload: dict | None = None, init: dict | None = None, continues: Mapping[str, Any] | None = None,
          progress=None) -> LoopResult:
    """Build a task and train it to `settings.iters` iterations (or until the time budget).

    Parameters
    ----------
    build : callable
        Makes the task (models, optimisers, data), after the global generators are seeded.
    plan : TrainingOutputs
        The run's files (checked already); the checkpoint goes to ``plan.checkpoint``.
    settings : LoopSettings
        Iterations, evaluation, best checkpoint, curve, time budget.
    payload : dict or None
        The checkpoint a resumed run continues (``plan.checkpoint`` loaded); its ``state`` is
        given to the task, its ``state['loop']`` (absent in checkpoints written before this
        harness) restores the loop.
    init : dict or None
        The record of a warm start (what the task's weights came from), kept in ``meta['init']``;
        the learning rates ramp over `settings.ramp` iterations from ``init['iteration']`` (0 if
        absent). A resumed run takes it from its checkpoint. Only the optimisers in the task's
        ``ramped`` attribute ramp, if it has one (e.g. a generator, not its fresh critics).
    continues : mapping or None
        The ``meta`` of the checkpoint a warm start continues the iteration count, wall time and
        learning curve of (None: a warm start begins at iteration 0).
    progress : object or None
        A progress task with ``advance(n, status=...)`` to report to instead of a new bar.

    Returns
    -------
    LoopResult
        The iterations done, the last metrics and checkpoint meta, and whether the budget
        stopped the run (on ranks other than 0 of a torchrun run: no metrics, and the meta of
        the checkpoint it resumed, if any, since only rank 0 evaluates and writes).

    Raises
    ------
    BadInputError
        Under torchrun with several processes, for a task without ``distribute``; for a device
        other than the CPU, for a task without ``to``.
    """
    settings.check()
    started = time.monotonic()
    rank, world, local_rank = process_rank()
    device = torch.device("cpu") if settings.device is None else torch.device(settings.device)
    if world > 1 and device.type == "cuda":
        device = torch.device("cuda", local_rank)  # one GPU per process
    seed_everything(settings.seed)
    task = build()
    if world > 1 and not hasattr(task, "distribute"):
        raise BadInputError(f"{world} processes (WORLD_SIZE={world}): only {DISTRIBUTED_TRAINERS} run on "
                            f"several processes; run this trainer as one process")
    if device.type != "cpu":
        if not hasattr(task, "to"):
            raise BadInputError(f"--device {device}: {settings.description} trains on the CPU only")
        task.to(device)
    processes = _ProcessGroup.join(device) if world > 1 else None
    try:
        result = _run(task, plan, settings, payload, init, continues, progress, started, rank, processes)
        if processes is not None:
            processes.barrier()  # rank 0 writes last: no rank leaves the group before it is done
        return result
    finally:
        if processes is not None:
            processes.close()


def _run(task: TrainingTask, plan: TrainingOutputs, settings: LoopSettings, payload, init, continues, progress,
         started: float, rank: int, processes: "_ProcessGroup | None") -> LoopResult:
    """The body of `train` once the task is built and placed: resume, then the loop."""
    writer = rank == 0  # the process that evaluates and writes
    if not writer:
        set_quiet(True)
        plan.written_elsewhere()
    # The schedule's base: the rates the task's optimisers were built with, before any resumed
    # optimiser state overwrites them with the rate of its last step.
    base_lrs = [[group["lr"] for group in opt.param_groups] for opt in task.optimizers]
    start, wall, rows, pending, best, best_iteration, metrics = 0, 0.0, [], {}, None, None, {}
    if payload is not None:
        task.load_state_dict(payload["state"])
        meta = payload["meta"]
        start, wall = int(meta["iterations"]), float(meta.get("wall_time_s", 0.0))
        init = meta.get("init")
        loop = payload["state"].get("loop")
        if loop is not None:
            set_random_states(loop["random"])
            pending = {k: list(v) for k, v in loop["pending"].items()}
            best, metrics = loop["best"], dict(loop["metrics"])
            best_iteration = (meta.get("best") or {}).get("iteration")
        plan.resumed_from(start)
        if writer:
            log(f"resumed {plan.checkpoint} at iteration {start}")
        rows = [dict(row) for row in meta.get("curve", []) if int(float(row["iteration"])) <= start]
    elif continues is not None:
        start, wall = int(continues["iterations"]), float(continues.get("wall_time_s", 0.0))
        rows = [dict(row) for row in continues.get("curve", [])]
    if payload is None and plan.resume and writer:
        log(f"{plan.checkpoint} does not exist yet: starting a new run")
    if processes is not None:  # after the resumed weights are in: every rank wraps the same ones
        task.distribute(processes.wrap, processes.rank, processes.world)
    curve = None
    if settings.curve_path is not None and writer:
        curve = plan.curve(settings.curve_path, list(settings.curve_fields))
        if payload is not None and "curve" not in payload["meta"]:
            # A checkpoint written before this harness: its CSV is the curve's only record.
            rows = curve.load().rows
            curve.keep_until(start)
        curve.rows = rows
        curve.write()
    if payload is not None and "loop" not in payload["state"] and settings.best_metric is not None:
        # A checkpoint from before this harness: the best so far is the curve's (its weights
        # were not kept), so a later evaluation must beat it to be the best checkpoint.
        recorded = payload["meta"].get("best")
        if isinstance(recorded, dict) and recorded.get("metric") == settings.best_metric:
            best, best_iteration = float(recorded["value"]), recorded.get("iteration")
        else:
            scored = [(value, row) for row in rows
                      if (value := _number(row.get(settings.best_metric))) is not None]
            if scored:
                pick = min if settings.best_mode == "min" else max
                best, row = pick(scored, key=lambda pair: pair[0])
                best_iteration = int(float(row["iteration"]))
    save_every = settings.save_every or settings.eval_every
    # This run's command line; else a resumed checkpoint keeps the one it was started with.
    recorded = _TRAIN_CONFIG.get() or (payload["meta"].get("train_config") if payload is not None else None)
    last_meta: dict = dict(payload["meta"]) if payload is not None else {}

    def checkpoint(done: int) -> "tuple[dict, dict]":
        meta = dict(task.checkpoint_meta(metrics), iterations=done, wall_time_s=round(wall, 1), curve=rows)
        if init is not None:  # the weights it started from
            meta["init"] = init
        if recorded is not None:
            meta["train_config"] = recorded
        if best is not None:
            meta["best"] = {"metric": settings.best_metric, "value": best, "iteration": best_iteration}
        state = dict(task.state_dict(), loop={"random": random_states(), "pending": pending, "best": best,
                                              "metrics": metrics})
        return state, meta

    def save(done: int) -> dict:
        state, meta = checkpoint(done)
        save_checkpoint(plan.checkpoint, task.kind, task.checkpoint_config(), state, meta)
        plan.saved(done)
        return meta

    ramp_from = int(init.get("iteration", 0)) if init is not None else 0
    lr_scale = getattr(task, "lr_scale", None) or (lambda iteration: 1.0)
    ramped = list(getattr(task, "ramped", task.optimizers))
    # The bar shows the task's own summary of a step, or its first three losses.
    status = getattr(task, "status", None) or (lambda losses: " ".join(
        f"{k} {float(v):.4g}" for k, v in list(losses.items())[:3]))
    done, stopped = start, False
    bar_context = progress_bar(max(0, settings.iters - start), settings.description, status=True) if progress is None \
        else contextlib.nullcontext(progress)  # the caller's bar: not closed here
    with bar_context as bar:
        for iteration in range(start, settings.iters):
            interrupts.check()  # a signal whose exception some C code swallowed still stops the run
            t0 = time.perf_counter()
            ramp = min(1.0, (iteration + 1 - ramp_from) / settings.ramp) if init is not None and settings.ramp else 1.0
            scale = lr_scale(iteration)
            for opt, bases in zip(task.optimizers, base_lrs):
                factor = ramp if any(opt is r for r in ramped) else 1.0
                for group, base in zip(opt.param_groups, bases):
                    group["lr"] = factor * base * scale
            losses = task.step(iteration)
            if processes is not None:
                losses = processes.mean(losses)
            for name, value in losses.items():
                pending.setdefault(name, []).append(float(value))
            wall += time.perf_counter() - t0
            done = iteration + 1
            bar.advance(1, status=status(losses))
            evaluated = False
            if (done % settings.eval_every == 0 or done == settings.iters) and not writer:
                pending = {}  # rank 0 keeps the curve
            elif done % settings.eval_every == 0 or done == settings.iters:
                metrics = dict(task.evaluate())
                row = task.curve_row({
                    "iteration": done, "wall_time_s": round(wall, 1),
                    "lr": task.optimizers[0].param_groups[0]["lr"] if task.optimizers else None,
                    **{k: float(np.mean(v)) for k, v in pending.items()}, **metrics})
                pending = {}
                rows.append(row)
                evaluated = True
                if curve is not None:
                    curve.write()  # `rows` is the curve's list
                    if callable(settings.plot):
                        settings.plot(rows, settings.curve_path.with_suffix(".png"))
                    elif settings.plot:
                        plot_curve(rows, settings.curve_path.with_suffix(".png"), settings.description)
            out_of_time = settings.time_budget is not None and time.monotonic() - started >= settings.time_budget \
                and done < settings.iters
            if processes is not None and settings.time_budget is not None:
                out_of_time = processes.agree(out_of_time)  # rank 0's clock decides for all
            improved = evaluated and settings.best_metric is not None and settings.best_metric in metrics \
                and _better(metrics[settings.best_metric], best, settings.best_mode)
            if improved:
                best, best_iteration = float(metrics[settings.best_metric]), done
            if improved and settings.best_path is not None:
                state, meta = checkpoint(done)
                save_checkpoint(settings.best_path, task.kind, task.checkpoint_config(), state, meta)
            if writer and (out_of_time or done % save_every == 0 or done == settings.iters):
                last_meta = save(done)
            if out_of_time:
                stopped = True
                log(f"time budget of {settings.time_budget:g} s reached after iteration {done} of "
                    f"{settings.iters}: saved {plan.checkpoint}; run the same command with --resume to continue")
                break
    if writer and (not last_meta or int(last_meta.get("iterations", -1)) != done):  # a finished run resumed
        last_meta = save(done)
    return LoopResult(iteration=done, metrics=metrics, meta=last_meta, stopped=stopped)


def process_rank() -> "tuple[int, int, int]":
    """(rank, world size, local rank) of this process in a run started by ``torchrun`` (its
    ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``); (0, 1, 0) in a plain run."""
    return (int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")),
            int(os.environ.get("LOCAL_RANK", "0")))


class _ProcessGroup:
    """The processes of a torchrun run, as the loop uses them: DDP wrappers, losses averaged over
    the ranks, and rank 0's decisions broadcast to all."""

    def __init__(self, device: torch.device, created: bool):
        import torch.distributed as dist

        self.dist, self.device, self.created = dist, device, created
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        # nccl moves only CUDA tensors; gloo only CPU ones.
        self.tensor_device = device if device.type == "cuda" else torch.device("cpu")

    @classmethod
    def join(cls, device: torch.device) -> "_ProcessGroup":
        """Join (or use the already joined) default process group: nccl on CUDA, gloo elsewhere."""
        import torch.distributed as dist

        created = not dist.is_initialized()
        if created:
            if device.type == "cuda":
                torch.cuda.set_device(device)
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        return cls(device, created)

    def wrap(self, module: torch.nn.Module) -> torch.nn.Module:
        """`module` in a `DistributedDataParallel`: its gradients are averaged over the ranks."""
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(module, device_ids=[self.device.index] if self.device.type == "cuda" else None)

    def mean(self, losses: Mapping[str, float]) -> dict[str, float]:
        """Each loss averaged over the ranks (every rank's losses have the same names in order)."""
        names = list(losses)
        values = torch.tensor([float(losses[name]) for name in names], dtype=torch.float64, device=self.tensor_device)
        self.dist.all_reduce(values)
        return {name: float(value) / self.world for name, value in zip(names, values.tolist())}

    def agree(self, flag: bool) -> bool:
        """Rank 0's `flag`, on every rank."""
        value = torch.tensor([int(flag)], device=self.tensor_device)
        self.dist.broadcast(value, 0)
        return bool(value.item())

    def barrier(self) -> None:
        """Wait for every rank."""
        self.dist.barrier()

    def close(self) -> None:
        """Leave the process group if `join` created it."""
        # gloo's worker threads drop the last collectives' tensors just after the waits on them
        # return, taking the GIL to do so; freeing the DistributedDataParallel wrappers joins those
        # threads with the GIL held, and hung one run in a few. A pause without the GIL lets them end.
        time.sleep(0.1)
        if self.created and self.dist.is_initialized():
            self.dist.destroy_process_group()


def plot_curve(rows: Sequence[Mapping[str, Any]], path: Path, title: str) -> None:
    """Plot every numeric column of the curve against the iteration, one panel each, to `path`
    (PNG, written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rocksynth.training.outputs import save_curve_figure

    skip = {"iteration", "wall_time_s", "wall_s"}
    names = [k for k in rows[-1] if k not in skip and _number(rows[-1][k]) is not None]
    fig, axes = plt.subplots(1, max(1, len(names)), figsize=(3.2 * max(1, len(names)), 2.6), squeeze=False)
    x = [int(float(row["iteration"])) for row in rows]
    for ax, name in zip(axes[0], names):
        ax.plot(x, [_number(row.get(name)) for row in rows])
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("iteration", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_curve_figure(fig, path)


def _number(value: Any) -> float | None:
    """A curve value as a float (rows read from a CSV hold strings); None when it is not one."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return None
