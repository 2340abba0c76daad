"""Training of the deterministic next-frame predictor (`rocksynth.models.frame_predictor`).

Clips are drawn up front from the sources of `rocksynth.training.video` (procedural sets, videos,
frame stacks). Each iteration rolls the predictor out `rollout` frames from `context` true
frames and takes the loss against the true frames, so it learns from its own outputs as it will
be used. The loss is the MSE, or (``sharp``) the mean absolute error plus the gradient difference
loss of Mathieu et al. (ICLR 2016): the MSE's optimum under uncertain motion is the blurred mean
of the possible frames, while the absolute error's is their median and the gradient term asks
for edges as strong as the true frame's. ``objects`` (the `scenes` set only, whose backgrounds
are known) adds to the MSE a term for every true object the prediction does not show near its
place and for every object it shows where there is none (`object_error`), whatever their size
and contrast: under the MSE alone, a small faint object whose place is uncertain costs least
when it fades into the background. ``motion`` (`scenes` only, whose true motion the generator
gives; it adds the flow head) adds to the MSE the mean distance, in pixels, between the flow the
network samples the last frame along and the true one, where that content is seen in the last
frame (`motion_error`): the network is taught where each pixel moves instead of having to find
it through the sampling's gradients. Held-out evaluation: 5 context frames, 10 predicted
frames of clips from seeds never used in training; the PSNR (MSE pooled over clips and steps)
of the prediction and of repeating the last context frame are written to the learning curve
(with the mean training loss since the previous evaluation). Trained on the harness of `rocksynth.training.loop`: a time budget, a bit-exact resume
(the sampling generator is saved) and the best checkpoint by held-out PSNR. A run started from
another predictor (`init`, e.g. the shipped `scenes`) continues its iteration count and learning
curve, with a fresh optimiser whose learning rate ramps up over `INIT_RAMP` iterations.
"""

import numpy as np
import torch

from rocksynth.data.videos import scenes_with_truth
from rocksynth.devices import mixed_precision, module_device
from rocksynth.errors import BadInputError
from rocksynth.models.frame_predictor import FramePredictor, sample_along
from rocksynth.progress import log, warn
from rocksynth.training.checkpoint import load_checkpoint, load_widened
from rocksynth.training.loop import train
from rocksynth.training.outputs import video_plan
from rocksynth.training.video import (HELDOUT_CLIPS, KIND, ClipTask, _flip, load_sources, psnr, to_tensor,
                                     video_settings)

COLUMNS = ["iteration", "wall_s", "loss", "heldout_psnr_pred", "heldout_psnr_repeat_last", "heldout_gain_db"]
EVAL_CONTEXT, EVAL_FRAMES = 5, 10
LOSSES = ("mse", "sharp", "objects", "motion")
MOTION_WEIGHT = 1e-2  # of the mean flow error (pixels) against the MSE: 0.1 px weighs as an MSE of 1e-3
MOTION_SHOWS = 0.02  # a flow is asked for where moving the frame along it changes it by more than this
OBJECT_WEIGHT = 0.01  # of the per-object term against the MSE (about 3e-3 for the shipped model)
OBJECT_TOLERANCE, OBJECT_MIN_PIXELS = 0.1, 4  # what an object is, here and in benchmarks/bench_predict.py
CONTRAST_FLOOR = 0.1  # an object's error is taken relative to its contrast, at least this
OBJECT_REACH = 2  # pixels around a true object where the prediction may show it
INIT_RAMP = 300  # iterations of learning-rate ramp after --init: a fresh Adam's first steps are large


def train_predictor(data: "list[str]", out, iters: int = 3000, size: int = 64, channels: int = 3, context: int = 4,
                    widths=(24, 48, 64), blocks: int = 4, rollout: int = 3, batch: int = 8, lr: float = 1e-3,
                    pool: int = 2000, eval_every: int = 100, resume: bool = False, seed: int = 0,
                    time_budget: "float | None" = None, device: "torch.device | None" = None,
                    init: "str | None" = None, warp: bool = False, loss: str = "mse") -> dict:
    """Train (or resume) the predictor on the training harness (`rocksynth.training.loop`).

    Parameters
    ----------
    data : list of str
        Procedural set names and/or videos / frame stacks (a resumed run reads its checkpoint's).
    out : str or os.PathLike
        The checkpoint; its learning curve `<out>.predictor.csv`, the curve's plot and
        `<out>.best.pt` (best held-out PSNR) go beside it.
    eval_every : int
        Held-out evaluation and checkpoint every this many iterations.
    time_budget : float or None
        Seconds: stop cleanly at the first iteration after it, with a checkpoint to resume.
    device : torch.device or None
        Where to train (None: the CPU). Under ``torchrun`` the run is split over the processes
        (`rocksynth.training.loop`): `batch` is the total over them, a multiple of their number.
    init : str or None
        A new run starts from this predictor's weights (a checkpoint or a shipped name, e.g.
        scenes): its network, frame size and channels (`size`, `channels`, `widths`, `blocks` are
        not read), its data when `data` is empty; `iters` counts on from its iterations.
    warp : bool
        The network also predicts a flow field (`FramePredictor`'s ``warp``); with `init`, added
        to the source's network, starting at no motion.
    loss : str
        'mse', 'sharp', 'objects' or 'motion' (`LOSSES`; a resumed run keeps its own). 'objects'
        and 'motion' need the procedural set scenes as the only data; 'motion' adds the flow head.

    Returns
    -------
    dict
        The last held-out metrics, with the ``iteration`` reached.

    Its outputs (`rocksynth.training.outputs.video_plan`, stage 'predictor') are checked before any
    work; a run that fails or is interrupted before its first checkpoint leaves nothing."""
    if loss not in LOSSES:
        raise BadInputError(f"--loss {loss!r}: choose {', '.join(LOSSES[:-1])} or {LOSSES[-1]}")
    plan = video_plan(out, resume, "predictor").check()
    payload = load_checkpoint(plan.checkpoint, KIND) if resume and plan.checkpoint.exists() else None
    source, origin = None, None
    if payload is not None:
        if payload["meta"].get("stage") != "predictor":
            raise BadInputError(f"{plan.checkpoint} is not a frame-predictor checkpoint; choose another --out")
        config, frame, data = payload["config"]["predictor"], payload["config"]["frame"], payload["meta"]["sources"]
        origin = payload["meta"].get("init")
        if init is not None:
            warn(f"--init {init} is not used: --resume continues {plan.checkpoint}, which has its own weights")
    elif init is not None:
        from rocksynth.pretrained.registry import resolve_model

        source = load_checkpoint(resolve_model(str(init), KIND), KIND)
        if source["meta"].get("stage") != "predictor":
            raise BadInputError(f"--init {init}: not a frame-predictor checkpoint")
        config = dict(source["config"]["predictor"])
        frame = _with_loss(dict(source["config"]["frame"], clip_frames=config["context"] + rollout, rollout=rollout),
                           loss)
        data = list(data) or list(source["meta"]["sources"])
        origin = {"checkpoint": str(init), "iteration": int(source["meta"]["iterations"])}
    else:
        config = {"channels": channels, "context": context, "widths": list(widths), "blocks": blocks}
        frame = _with_loss({"size": size, "channels": channels, "clip_frames": context + rollout, "rollout": rollout},
                           loss)
    if payload is None and (warp or loss == "motion"):  # a new run, or one from --init, gets the flow head
        config["warp"] = True
    # --iters counts on from the model a run started from (as `train reconstruct --init` does).
    start = int(origin["iteration"]) if origin is not None else 0
    settings = video_settings(plan, "predictor", COLUMNS, start + iters, eval_every, seed, time_budget, device,
                              ramp=INIT_RAMP)
    weights = source["state"]["predictor"] if source is not None else None
    with plan:
        result = train(lambda: _PredictorTask(data, config, frame, batch, lr, pool, seed, weights), plan, settings,
                       payload=payload, init=origin, continues=source["meta"] if source is not None else None)
    return dict(result.metrics, iteration=result.iteration)


class _PredictorTask(ClipTask):
    """The predictor's step (a rollout of `rollout` frames from `context` true ones, on clips
    drawn up front), its held-out evaluation and its state, for the harness."""

    key, columns = "predictor", COLUMNS

    def __init__(self, data, config, frame, batch, lr, pool, seed, weights=None):
        self.data, self.config, self.frame, self.batch = list(data), config, frame, batch
        source = load_sources(self.data, frame["channels"])
        self.model = FramePredictor(**config)
        if weights is not None:  # --init: new layers (a flow head) start where they add nothing
            widened = load_widened(self.model, weights)
            if widened:
                log(f"new layers, starting at zero: {', '.join(widened)}")
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr)
        self.optimizers = [self.optimizer]
        self.rng = np.random.default_rng(seed)
        loss = frame.get("loss", "mse")
        objects = loss == "objects"
        if loss in ("objects", "motion") and (source.procedural != ["scenes"] or source.stacks):  # before drawing any clip
            raise BadInputError(f"--loss {loss} needs the procedural set scenes as the only data: "
                                "its generator knows the objects' backgrounds and motion")
        frames = config["context"] + frame["rollout"]
        if loss in ("objects", "motion"):  # the clips that `source.clips` draws, with their truth, drawn once
            self.pool, self.backgrounds, self.motion = scenes_with_truth(
                pool, frames, frame["size"], "train", background=objects, motion=loss == "motion")
        else:
            self.pool, self.backgrounds, self.motion = source.clips(pool, frames, frame["size"], "train", self.rng), None, None
        self.heldout = to_tensor(source.clips(HELDOUT_CLIPS, EVAL_CONTEXT + EVAL_FRAMES, frame["size"], "heldout",
                                              np.random.default_rng(10**6 + seed)))
        self.done = 0
        # The training rollout, and this process's share of each batch (all of it in one process).
        self.train_rollout: torch.nn.Module = _Rollout(self.model, frame["rollout"], self.motion is not None)
        self.share = slice(None)

    def distribute(self, wrap, rank: int, world: int) -> None:
        """Train share `rank` of `world` of each batch through `wrap` (DistributedDataParallel).

        Every rank draws the whole batch's clip indices and augmentation from the same seeded
        generator (cheap: the pool is shared) and keeps its share, so the shares together are the
        one-process batch and the generator's state is the same on every rank (and in the
        checkpoint rank 0 writes).
        """
        if self.batch % world:
            raise BadInputError(f"--batch {self.batch} must be a multiple of the {world} processes")
        self.share = slice(rank * self.batch // world, (rank + 1) * self.batch // world)
        self.train_rollout = wrap(self.train_rollout)

    def step(self, iteration: int) -> "dict[str, float]":
        self.model.train()
        chosen = self.rng.integers(0, len(self.pool), self.batch)[self.share]
        x, background, flows = to_tensor(self.pool[chosen]), None, None
        context = self.config["context"]
        if self.motion is not None:
            x, flow, visible = _augment_motion(x, torch.from_numpy(self.motion.flow[chosen]).float(),
                                               torch.from_numpy(self.motion.visible[chosen]), self.rng)
            # Each predicted frame's flow back to the frame before it, where it shows (`motion_shows`).
            flows = (flow[:, context:, :2].to(self.device),
                     (visible[:, context:, 0] & motion_shows(x[:, context - 1:-1], flow[:, context:, :2])).to(self.device))
        elif self.backgrounds is not None:  # flipped with its clip: stacked on the channels
            both = _augment(torch.cat([x, to_tensor(self.backgrounds[chosen])], 2), self.rng)
            x, background = both.chunk(2, dim=2)
            background = background[:, context:]
        else:
            x = _augment(x, self.rng)
        x = x.to(self.device)
        with mixed_precision(self.device):
            pred = self.train_rollout(x[:, :context])
        if flows is not None:  # (frames, flows): the flows against the true ones
            pred, pred_flow = pred
            flows = (pred_flow.float(),) + flows
        loss = frame_loss(pred.float(), x[:, context:], self.frame.get("loss", "mse"), background, flows)
        self._clipped_step(loss)
        self.done = iteration + 1
        return {"loss": loss.item()}

    def evaluate(self) -> "dict[str, float]":
        metrics = evaluate(self.model, self.heldout)
        log(f"predictor it {self.done}: held-out PSNR {metrics['heldout_psnr_pred']:.2f} dB, "
            f"repeat-last {metrics['heldout_psnr_repeat_last']:.2f} dB")
        return metrics

    def checkpoint_config(self) -> dict:
        return {"predictor": self.config, "frame": self.frame}

    def checkpoint_meta(self, metrics) -> dict:
        return {"data": ", ".join(self.data), "sources": list(self.data), "stage": "predictor",
                "metrics": {"predictor": dict(metrics)}}


class _Rollout(torch.nn.Module):
    """The predictor rolled out `frames` frames in one `forward`: what DistributedDataParallel
    wraps, since it synchronises the gradients of what runs through its own forward."""

    def __init__(self, model: FramePredictor, frames: int, with_flows: bool = False):
        super().__init__()
        self.model, self.frames, self.with_flows = model, frames, with_flows

    def forward(self, context: torch.Tensor):
        return self.model.rollout(context, self.frames, with_flows=self.with_flows)


def _with_loss(frame: dict, loss: str) -> dict:
    """The run's frame settings with its loss; the MSE, the default, is not written (a run's
    config then equals that of checkpoints from before the option)."""
    frame = {k: v for k, v in frame.items() if k != "loss"}
    return frame if loss == "mse" else dict(frame, loss=loss)


def frame_loss(pred: torch.Tensor, truth: torch.Tensor, kind: str = "mse",
               background: "torch.Tensor | None" = None, flows: "tuple | None" = None) -> torch.Tensor:
    """The training loss of predicted frames against the true ones (..., C, H, W): 'mse';
    'objects', the MSE plus `OBJECT_WEIGHT` times `object_error` (needs the frames'
    `background`); 'motion', the MSE plus `MOTION_WEIGHT` times `motion_error` (needs `flows`:
    the predicted flows, the true ones and where they are seen); or 'sharp', the mean absolute
    error plus the mean gradient difference (Mathieu et al. 2016, exponent 1): the difference
    between the true and the predicted absolute differences of neighbouring pixels, along x and y."""
    if kind in ("mse", "objects", "motion"):
        mse = ((pred - truth) ** 2).mean()
        if kind == "mse":
            return mse
        if kind == "motion":
            return mse + MOTION_WEIGHT * motion_error(*flows)
        return mse + OBJECT_WEIGHT * object_error(pred, truth, background)
    gradient = 0
    for axis in (-1, -2):
        true_edges, pred_edges = truth.diff(dim=axis).abs(), pred.diff(dim=axis).abs()
        gradient = gradient + (true_edges - pred_edges).abs().mean()
    return (pred - truth).abs().mean() + gradient


def motion_shows(before: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Where moving the frames `before` (..., C, H, W) along `flow` (..., 2, H, W) changes them by
    more than `MOTION_SHOWS` in some channel: (..., H, W). Elsewhere the content is flat (a
    plain background, an object's inside) and any flow gives the same frame, so its true
    motion cannot be seen and is not asked for."""
    shape = before.shape
    moved = sample_along(before.reshape(-1, *shape[-3:]), flow.reshape(-1, 2, *shape[-2:])).reshape(shape)
    return (moved - before).abs().amax(-3) > MOTION_SHOWS


def motion_error(flow: torch.Tensor, true_flow: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
    """Mean distance in pixels between predicted and true flows (..., 2, H, W), over the pixels
    where `visible` (..., H, W) is true; 0 where none is."""
    distance = (flow - true_flow).norm(dim=-3)
    return (distance * visible).sum() / visible.sum().clamp(min=1)


def object_error(pred: torch.Tensor, truth: torch.Tensor, background: torch.Tensor) -> torch.Tensor:
    """How much the prediction fails to show each true object near its place, and shows objects
    that are not there, each in [0, 1], averaged over the objects and ghosts.

    An object is an 8-connected region of at least `OBJECT_MIN_PIXELS` pixels that differs from
    the `background` by more than `OBJECT_TOLERANCE` in some channel of the true frame (objects
    that overlap are one); a ghost is such a region of the prediction that covers no object of
    the truth. Contrast is measured along the region's mean colour change over the background.

    - An object's n pixel contrasts, sorted, are compared with the n largest contrasts of the
      prediction within `OBJECT_REACH` pixels of it, also sorted: the mean of relu(true -
      shown)², divided by the object's squared mean contrast (at least `CONTRAST_FLOOR`). It is
      0 when the prediction shows an object as large and as strong, in its colour, anywhere
      within reach (its exact place is left to the MSE), and 1 when the object has faded.
    - A ghost's term is the mean of its squared contrasts over its squared mean contrast (at
      least `CONTRAST_FLOOR`): about 1, whatever its size.

    So a faded object, an invented one and a split one each cost about the same, as in an object
    count. Frames (..., C, H, W); 0 when no frame has an object or a ghost."""
    from scipy import ndimage

    c, h, w = pred.shape[-3:]
    change = (pred - background).reshape(-1, c, h * w)
    with torch.no_grad():
        true_change = (truth - background).reshape(-1, c, h * w)
        true_away = true_change.abs().amax(1).reshape(-1, h, w).cpu().numpy()
        pred_away = change.abs().amax(1).reshape(-1, h, w).cpu().numpy()
    grow = ndimage.generate_binary_structure(2, 2)
    terms = []
    for k, (frame, seen) in enumerate(zip(true_away, pred_away)):
        objects = frame > OBJECT_TOLERANCE
        for mask in object_regions(objects):
            near = _on(change, ndimage.binary_dilation(mask, grow, iterations=OBJECT_REACH))
            own = _on(change, mask)
            colour = _direction(true_change[k][:, own])
            wanted = (colour @ true_change[k][:, own]).sort(descending=True).values
            shown = (colour @ change[k][:, near]).topk(len(wanted)).values
            scale = max(float(wanted.mean()), CONTRAST_FLOOR) ** 2
            terms.append(((wanted - shown).clamp(min=0) ** 2).mean() / scale)
        for mask in object_regions(seen > OBJECT_TOLERANCE):
            if (mask & objects).any():
                continue
            own = _on(change, mask)
            with torch.no_grad():
                colour = _direction(change[k][:, own])
            shown = colour @ change[k][:, own]
            scale = max(float(shown.detach().mean()), CONTRAST_FLOOR) ** 2  # a constant, not a gradient path
            terms.append((shown ** 2).mean() / scale)
    if not terms:
        return change.sum() * 0
    return torch.stack(terms).mean()


def object_regions(mask: np.ndarray, min_pixels: int = OBJECT_MIN_PIXELS) -> "list[np.ndarray]":
    """The objects of a 2D mask of where a frame differs from its background: its 8-connected
    regions of at least `min_pixels` pixels, as boolean masks (objects that overlap are one)."""
    from scipy import ndimage

    labels, n = ndimage.label(mask, structure=np.ones((3, 3)))
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    return [labels == label for label in range(1, n + 1) if sizes[label] >= min_pixels]


def _on(tensor: torch.Tensor, mask: np.ndarray) -> torch.Tensor:
    """A 2D mask, flattened, on the device of `tensor` (for indexing its pixels)."""
    return torch.from_numpy(mask.ravel()).to(tensor.device)


def _direction(changes: torch.Tensor) -> torch.Tensor:
    """The unit mean colour change of a region's pixels (C, n)."""
    colour = changes.mean(1)
    return colour / colour.norm().clamp(min=1e-6)


@torch.no_grad()
def evaluate(model: FramePredictor, clips: torch.Tensor, chunk: int = 16) -> dict:
    """PSNR of the rolled-out prediction and of repeat-last over clips (n, T, C, H, W) held on
    the CPU; the model runs on its own device in mixed precision where that has it."""
    model.eval()
    device = module_device(model)
    truth = clips[:, EVAL_CONTEXT:EVAL_CONTEXT + EVAL_FRAMES]
    with mixed_precision(device):
        pred = torch.cat([model.rollout(c[:, :EVAL_CONTEXT].to(device), EVAL_FRAMES).float().cpu()
                          for c in clips.split(chunk)])
    last = clips[:, EVAL_CONTEXT - 1:EVAL_CONTEXT].expand_as(truth)
    scores = {"heldout_psnr_pred": psnr(pred, truth), "heldout_psnr_repeat_last": psnr(last, truth)}
    scores["heldout_gain_db"] = scores["heldout_psnr_pred"] - scores["heldout_psnr_repeat_last"]
    return scores


def _augment_motion(x: torch.Tensor, flow: torch.Tensor, visible: torch.Tensor, rng):
    """`_augment` of clips (B, T, C, H, W) with their `Motion` fields (B, T, 4, H, W) and
    (B, T, 2, H, W) moved alike: a flip negates its axis's components, a transpose swaps x and y,
    and time reversal swaps the flows back and forward."""
    for axis, components in ((-1, [0, 2]), (-2, [1, 3])):  # the draws of `_flip`, in its order
        if rng.random() < 0.5:
            x, flow, visible = x.flip(axis), flow.flip(axis), visible.flip(axis)
            flow[:, :, components] *= -1
    if rng.random() < 0.5:
        x, flow, visible = x.transpose(-1, -2), flow.transpose(-1, -2)[:, :, [1, 0, 3, 2]], visible.transpose(-1, -2)
    if rng.random() < 0.5:
        x, flow, visible = x.flip(1), flow.flip(1)[:, :, [2, 3, 0, 1]], visible.flip(1)[:, :, [1, 0]]
    return x, flow, visible


def _augment(x: torch.Tensor, rng) -> torch.Tensor:
    """Random flips, transposes and time reversal of a batch of clips (B, T, C, H, W): motion in
    the sets has no preferred direction."""
    x = _flip(x, rng)
    if rng.random() < 0.5:
        x = x.flip(1)
    return x

