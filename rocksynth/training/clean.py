"""Train the drawing-cleaning U-Net: pixel-wise binary cross-entropy, Adam, fresh pairs every step.

Procedural data by default (`rocksynth.data.drawings` + `rocksynth.data.degrade`): every iteration
draws new (scan, target) crops from seeds that never overlap the validation or benchmark seeds.
With `pairs_dir`, random crops of the user's (scan, clean) image pairs are used instead.
Trained on the harness of `rocksynth.training.loop`: resumable bit for bit (the checkpoint holds
the model, optimizer, iteration, learning curve and random states), `--init` warm starts with a
learning-rate ramp, a time budget; a CSV learning curve with held-out IoU / PSNR and its plot are
written while training. Under torchrun several processes share each batch (`_CleanTask.distribute`).
"""

import math
from pathlib import Path

import numpy as np
import torch

from rocksynth.data.degrade import degraded_pair, scan_to_gray
from rocksynth.data.drawings import render_drawing
from rocksynth.devices import grad_scaler, mixed_precision, module_device, to_numpy
from rocksynth.errors import BadInputError
from rocksynth.training.outputs import clean_plan, register_pair_images

KIND = "clean"
# Seed ranges: training draws seeds below VALIDATION_SEEDS; validation and the benchmark use
# their own ranges, so no evaluation image is ever seen in training.
VALIDATION_SEEDS = 900_000_000
BENCHMARK_SEEDS = 950_000_000
DEFAULT_WIDTHS = (8, 16, 32, 48, 64)
INIT_WARMUP = 500  # iterations of linear learning-rate ramp in a run started from --init


def procedural_pair(seed: int, height: int, width: int) -> "tuple[np.ndarray, np.ndarray]":
    """(gray scan float32 in [0, 1], target bool) for one seed: the unit of every data set here."""
    rng = np.random.default_rng(seed)
    scan, target = degraded_pair(rng, render_drawing(rng, height, width))
    return scan_to_gray(scan), target


def ink_iou(predicted: np.ndarray, target: np.ndarray) -> float:
    """Intersection over union of the ink pixels (1.0 when both are blank)."""
    union = np.logical_or(predicted, target).sum()
    return float(np.logical_and(predicted, target).sum() / union) if union else 1.0


def binary_psnr(predicted: np.ndarray, target: np.ndarray) -> float:
    """PSNR in dB of a 0/255 image against the 0/255 target (capped at 60 dB for a perfect match)."""
    errors = float(np.mean(predicted != target))
    return 60.0 if errors == 0 else min(60.0, -10.0 * math.log10(errors))


def soft_psnr(probability: np.ndarray, target: np.ndarray) -> float:
    """PSNR in dB of the `--soft` output (8-bit gray, 255 * (1 - ink probability)) against the 0/255 target."""
    gray = np.rint(255.0 * (1.0 - probability.astype(np.float64)))
    mse = float(np.mean((gray - np.where(target, 0.0, 255.0)) ** 2))
    return 60.0 if mse == 0 else min(60.0, 10.0 * math.log10(255.0 ** 2 / mse))


class _PairsFolder:
    """Random crops from a folder with `scans/` and `clean/` subfolders of same-named images."""

    def __init__(self, folder: Path, crop: int):
        from rocksynth.io.images import read_image

        scans, cleans = folder / "scans", folder / "clean"
        if not scans.is_dir() or not cleans.is_dir():
            raise BadInputError(f"{folder}: expected subfolders 'scans/' and 'clean/' with same-named images")
        self.items = []
        for scan_path in sorted(p for p in scans.iterdir() if p.is_file()):
            clean_path = next((c for c in cleans.glob(scan_path.stem + ".*")), None)
            if clean_path is None:
                raise BadInputError(f"{scan_path}: no clean image of the same name in {cleans}")
            scan, clean = scan_to_gray(read_image(scan_path)), scan_to_gray(read_image(clean_path)) < 0.5
            if scan.shape != clean.shape:
                raise BadInputError(f"{scan_path}: size {scan.shape} differs from its clean image {clean.shape}")
            if min(scan.shape) < crop:
                raise BadInputError(f"{scan_path}: smaller than the {crop}-pixel training crop")
            self.items.append((scan, clean))
        if not self.items:
            raise BadInputError(f"{scans}: no images")

    def sample(self, rng: np.random.Generator):
        scan, clean = self.items[int(rng.integers(len(self.items)))]
        return scan, clean


def _crop(rng, scan, target, crop):
    y = int(rng.integers(0, scan.shape[0] - crop + 1))
    x = int(rng.integers(0, scan.shape[1] - crop + 1))
    return scan[y:y + crop, x:x + crop], target[y:y + crop, x:x + crop]


def validation_set(count: int = 12, size: int = 192) -> "list[tuple[np.ndarray, np.ndarray]]":
    return [procedural_pair(VALIDATION_SEEDS + i, size, size) for i in range(count)]


def evaluate(model, pairs, threshold: float = 0.5) -> "dict[str, float]":
    """Mean ink IoU and PSNR of the thresholded prediction on (scan, target) pairs of multiple-of-16 size;
    the model runs on its own device (in mixed precision on CUDA)."""
    was_training = model.training
    model.eval()
    device = module_device(model)
    ious, psnrs = [], []
    with torch.no_grad():
        for scan, target in pairs:
            with mixed_precision(device):
                logits = model(torch.from_numpy(scan)[None, None].to(device))
            prob = to_numpy(torch.sigmoid(logits.float()))[0, 0]
            ink = prob > threshold
            ious.append(ink_iou(ink, target))
            psnrs.append(binary_psnr(ink, target))
    model.train(was_training)
    return {"iou": float(np.mean(ious)), "psnr": float(np.mean(psnrs))}


CURVE_FIELDS = ["iteration", "loss", "val_iou", "val_psnr", "lr", "wall_time_s"]


def train_clean(out: Path, iters: int, pairs_dir: "Path | None" = None, resume: bool = False, batch: int = 8,
                crop: int = 128, lr: float = 2e-3, seed: int = 0, widths=None, validate_every: int = 100,
                checkpoint_every: int = 100, curve_csv: "Path | None" = None, threads: int = 1,
                validation_count: int = 12, init: "str | Path | None" = None, progress=None,
                time_budget: "float | None" = None, device=None) -> dict:
    """Train (or resume) to `iters` iterations; write the checkpoint to `out`; return its meta.

    Runs on the training harness (`rocksynth.training.loop.train`).

    Parameters
    ----------
    out : Path
        The checkpoint to write (and, with `resume`, to continue).
    iters : int
        Total iterations; the cosine learning-rate schedule spans them.
    pairs_dir : Path or None
        A folder of (scans/, clean/) image pairs; None: procedural drawings.
    widths : tuple of int or None
        U-Net channels per level: default DEFAULT_WIDTHS, or with `init` that checkpoint's.
    init : str or Path or None
        Start a new run from that checkpoint's (or shipped model's) weights, widened to `widths`
        where they are wider (`rocksynth.models.unet.widened`: the same output at the start);
        fresh optimizer, the learning rate ramps up over INIT_WARMUP iterations. A resumed run
        (`resume` with `out` present) continues `out` and ignores `init`.
    curve_csv : Path or None
        The CSV learning curve (with held-out IoU and PSNR); its plot goes beside it as .png.
    time_budget : float or None
        Seconds: stop cleanly at the first iteration after it, with a checkpoint to resume.
    progress : object or None
        A progress task (``advance(n, status=...)``) instead of the harness's own bar.
    device : torch.device or None
        Where to train (None: the CPU); mixed precision on CUDA. Under ``torchrun`` the run is
        split over the processes (`rocksynth.training.loop`): `batch` is the total over them, a
        multiple of their number.

    Returns
    -------
    dict
        The meta of the last checkpoint written.

    Every output (`rocksynth.training.outputs.clean_plan`) is checked before any work; a run that
    fails or is interrupted before its first checkpoint leaves none of them behind."""
    if iters < 1 or batch < 1 or crop < 16 or crop % 16:
        raise BadInputError("need --iters >= 1, --batch >= 1 and --crop a multiple of 16")
    if not lr > 0 or threads < 1 or seed < 0 or validate_every < 1 or checkpoint_every < 1:
        raise BadInputError("--lr must be positive, --threads at least 1, --seed not negative and the validation "
                            "and checkpoint intervals at least 1")
    register_pair_images(pairs_dir)
    plan = clean_plan(out, resume, curve_csv, pairs_dir).check()
    torch.set_num_threads(threads)
    with plan:
        return _train(plan, iters, pairs_dir, batch, crop, lr, seed, widths, validate_every, checkpoint_every,
                      validation_count, init, progress, time_budget, device)


class _CleanTask:
    """The U-Net's step (binary cross-entropy on a fresh batch), evaluation (held-out IoU, PSNR)
    and state, for the harness."""

    kind = KIND

    def __init__(self, model, lr: float, iters: int, batch: int, crop: int, seed: int, pairs, validation,
                 meta: dict):
        self.model, self.lr, self.iters, self.batch, self.crop, self.seed = model, lr, iters, batch, crop, seed
        self.optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        self.optimizers = [self.optimizer]
        self.pairs, self.validation, self.meta = pairs, validation, meta
        self.model.train()
        self.device, self.scaler = torch.device("cpu"), grad_scaler(None)
        # The training forward, and this process's share of each batch (all of it in one process).
        self.train_model = model
        self.share = range(batch)

    def to(self, device) -> None:
        """Train on `device` (mixed precision on CUDA); batches follow."""
        self.model.to(device)
        self.device, self.scaler = device, grad_scaler(device)

    def lr_scale(self, iteration: int) -> float:
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(iteration / self.iters, 1.0)))  # cosine to 5 %

    def distribute(self, wrap, rank: int, world: int) -> None:
        """Train share `rank` of `world` of each batch through `wrap` (DistributedDataParallel).

        The samples of a step are those of the one-process run (`_batch`), so the shares together
        are its batch; there is no generator state across steps to keep equal. The U-Net's batch
        norms take their statistics over the whole batch (`_RanksBatchNorm`), as in one process.

        Raises
        ------
        BadInputError
            When `batch` is not a multiple of `world`.
        """
        if self.batch % world:
            raise BadInputError(f"--batch {self.batch} must be a multiple of the {world} processes")
        self.share = range(rank * self.batch // world, (rank + 1) * self.batch // world)
        _sync_batch_norms(self.model)
        self.train_model = wrap(self.model)

    def _batch(self, step: int):
        """This process's share of step `step`'s batch: (scans, targets), (n, 1, crop, crop) float32."""
        rng = np.random.default_rng([self.seed, step])  # the data of a step depends on the step only
        scans, targets = [], []
        for j in range(self.batch):
            if self.pairs is None:
                if j not in self.share:
                    continue  # seeded per sample: the other ranks' drawings are not needed
                # Seeds below VALIDATION_SEEDS and distinct per (seed, step, j).
                s, t = procedural_pair((self.seed * 10_000_003 + step * self.batch + j) % VALIDATION_SEEDS,
                                       self.crop, self.crop)
            else:
                # One generator for the whole batch: every rank draws every crop (cheap: slices) so
                # that its share's draws are the one-process run's.
                s, t = _crop(rng, *self.pairs.sample(rng), self.crop)
                if rng.random() < 0.5:
                    s, t = s[:, ::-1], t[:, ::-1]
                if j not in self.share:
                    continue
            scans.append(s)
            targets.append(t)
        return (torch.from_numpy(np.stack(scans)[:, None].copy()),
                torch.from_numpy(np.stack(targets)[:, None].astype(np.float32)))

    def step(self, iteration: int) -> "dict[str, float]":
        import torch.nn.functional as F

        x, y = (t.to(self.device) for t in self._batch(iteration))
        with mixed_precision(self.device):
            logits = self.train_model(x)
        loss = F.binary_cross_entropy_with_logits(logits.float(), y)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return {"loss": float(loss.detach())}

    def evaluate(self) -> "dict[str, float]":
        return evaluate(self.model, self.validation)

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])

    def checkpoint_config(self) -> dict:
        return self.model.config

    def checkpoint_meta(self, metrics) -> dict:
        return dict(self.meta, metrics=dict(metrics))

    def curve_row(self, row: dict) -> dict:
        return {"iteration": row["iteration"], "loss": row["loss"], "val_iou": row["iou"], "val_psnr": row["psnr"],
                "lr": row["lr"], "wall_time_s": row["wall_time_s"]}


def _sync_batch_norms(model) -> None:
    """Replace every `BatchNorm2d` of `model` by a `_RanksBatchNorm` holding the same parameter
    and buffer tensors: the optimiser, the checkpoint's keys and the evaluation are unchanged."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is torch.nn.BatchNorm2d:
                synced = _RanksBatchNorm(child.num_features, child.eps, child.momentum, child.affine,
                                         child.track_running_stats)
                synced._parameters, synced._buffers = child._parameters, child._buffers
                synced.train(child.training)
                setattr(parent, name, synced)


class _RanksBatchNorm(torch.nn.BatchNorm2d):
    """A batch norm whose training statistics are over the whole batch of all ranks, as the
    one-process run takes them; in evaluation it is a `BatchNorm2d`.

    Each rank holding only its share, a plain batch norm would normalise by the share's statistics
    and train another model than one process does. torch's `SyncBatchNorm` does this on GPUs
    only; this one runs on any device (gloo on the CPU, nccl on CUDA). It assumes equal shares.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super().forward(x)
        import torch.distributed as dist

        xf = x.float()  # float32 statistics, also of a float16 activation under autocast
        total = xf.numel() // xf.shape[1] * dist.get_world_size()  # values per channel over the ranks
        # Two passes as one batch norm does (mean, then the mean squared deviation from it): a
        # sum of squares would lose digits the one-process run keeps.
        mean = _SumOverRanks.apply(xf.sum((0, 2, 3))) / total
        centred = xf - mean[None, :, None, None]
        var = _SumOverRanks.apply((centred * centred).sum((0, 2, 3))) / total
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - factor).add_(mean, alpha=factor)
                self.running_var.mul_(1 - factor).add_(var * (total / max(total - 1, 1)), alpha=factor)
        y = centred * torch.rsqrt(var + self.eps)[None, :, None, None]
        if self.affine:
            y = y * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return y.to(x.dtype)


class _SumOverRanks(torch.autograd.Function):
    """The sum of a tensor over the ranks, with its gradient: each rank's input feeds every rank's
    loss, so its gradient is the sum of theirs (DistributedDataParallel then averages)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        import torch.distributed as dist

        x = x.clone()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        import torch.distributed as dist

        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


def _check_crop(model, crop: int, batch: int) -> None:
    """Refuse crops the network cannot train on: a side that its downsamplings do not divide, or
    so few values at its deepest level that batch norm has one per channel."""
    if crop % model.multiple:
        raise BadInputError(f"--crop {crop}: must be a multiple of {model.multiple} for this network "
                            f"({len(model.downs)} downsamplings)")
    deepest = crop // model.multiple
    if batch * deepest ** 2 < 2:
        raise BadInputError(f"--batch {batch} --crop {crop}: the network's deepest level sees {deepest}x{deepest} "
                            f"pixels per crop and batch norm needs 2 or more values; use --batch 2 or a larger --crop")


def _train(plan, iters, pairs_dir, batch, crop, lr, seed, widths, validate_every, checkpoint_every,
           validation_count, init, progress, time_budget, device) -> dict:
    from rocksynth.models.unet import UNet, widened
    from rocksynth.pretrained.registry import resolve_model
    from rocksynth.training.checkpoint import load_checkpoint
    from rocksynth.training.loop import LoopSettings, train

    payload = load_checkpoint(plan.checkpoint, KIND) if plan.resuming else None
    source = None
    if init is not None and payload is None:
        source = load_checkpoint(resolve_model(str(init), KIND), KIND)
    origin = None if source is None else {
        "checkpoint": str(init), "widths": source["config"]["widths"],
        "iterations": source["meta"]["iterations"], "wall_time_s": source["meta"]["wall_time_s"]}
    pairs = _PairsFolder(Path(pairs_dir), crop) if pairs_dir else None
    validation = validation_set(validation_count)
    meta = {"data": f"user pairs {pairs_dir}" if pairs_dir else "procedural drawings + degradations",
            "batch": batch, "crop": crop, "lr": lr, "seed": seed,
            "validation": "%d procedural 192x192 pairs, seeds from %d" % (validation_count, VALIDATION_SEEDS)}

    def build() -> _CleanTask:
        model = UNet(widths or DEFAULT_WIDTHS)  # drawn first in every case: the same torch stream as before
        if source is not None:
            small = UNet(**source["config"])
            small.load_state_dict(source["state"]["model"])
            try:
                model = widened(small, tuple(widths or source["config"]["widths"]))
            except ValueError as error:
                raise BadInputError(f"--init {init}: {error}") from None
        if payload is not None:
            model = UNet(**payload["config"])
        _check_crop(model, crop, batch)
        return _CleanTask(model, lr, iters, batch, crop, seed, pairs, validation, meta)

    best, *curve = plan.companions
    curve = curve[0] if curve else None
    # From --init, a fresh Adam's first steps move every weight by about lr: two steps at 2e-3
    # took the shipped weights from held-out IoU 0.935 to 0.913. So the rate ramps up first.
    settings = LoopSettings(iters=iters, seed=seed, eval_every=validate_every, save_every=checkpoint_every,
                            time_budget=time_budget, ramp=INIT_WARMUP, best_metric="iou", best_mode="max",
                            best_path=best, curve_fields=CURVE_FIELDS, curve_path=curve, plot=curve is not None,
                            description="train clean", device=device)
    return train(build, plan, settings, payload=payload, init=origin, progress=progress).meta
