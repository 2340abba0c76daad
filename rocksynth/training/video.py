"""Training of the latent video model in two stages: the VQ-VAE frame autoencoder, then the
latent transformer on the codes the frozen VQ-VAE gives to a pool of clips.

Both stages write one checkpoint of kind 'video' (the transformer stage copies the VQ-VAE into
it), resume from it, and append a CSV learning curve with periodic held-out evaluation:
reconstruction PSNR for the VQ-VAE; bits/dim, parallel-head bits/dim and the PSNR of predicted
frames for the transformer. Held-out data: procedural clips from seeds never used in training,
and, for frame stacks, clips from the last quarter of the x axis (never cropped for training).
Both stages run on the harness of `rocksynth.training.loop` (bit-exact resume, time budget, the
curve's plot).
"""

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from rocksynth.data.videos import COLOUR_SETS, PROCEDURAL, procedural_clips, stack_clips
from rocksynth.devices import grad_scaler, mixed_precision, module_device
from rocksynth.errors import BadInputError
from rocksynth.models.checkpoints import file_name
from rocksynth.models.latent_transformer import LatentVideoTransformer
from rocksynth.models.vqvae import VQVAE
from rocksynth.progress import log
from rocksynth.training.checkpoint import load_checkpoint
from rocksynth.training.loop import LoopSettings, train
from rocksynth.training.outputs import VIDEO_BEST, TrainingOutputs, video_plan

KIND = "video"
HELDOUT_CLIPS = 64


# --- data ---------------------------------------------------------------------------------------
@dataclass
class ClipSource:
    """Where clips come from: procedural set names and/or frame stacks ((t, y, x, c) uint8)."""

    procedural: "list[str]" = field(default_factory=list)
    stacks: "list[np.ndarray]" = field(default_factory=list)
    names: "list[str]" = field(default_factory=list)

    def clips(self, n: int, frames: int, size: int, split: str, rng, start: int = 0) -> np.ndarray:
        """n clips (n, T, size, size, C) spread evenly over the sources."""
        parts = []
        n_sources = len(self.procedural) + len(self.stacks)
        counts = [n // n_sources + (i < n % n_sources) for i in range(n_sources)]
        for kind, count in zip(self.procedural, counts):
            parts.append(procedural_clips(kind, count, frames, size, split=split, start=start))
        for stack, count in zip(self.stacks, counts[len(self.procedural):]):
            parts.append(stack_clips(stack, count, frames, size, rng, split=split, augment=split == "train"))
        return np.concatenate(parts)


def load_sources(data: "list[str]", channels: int) -> ClipSource:
    """DATA arguments: procedural set names ('balls', 'shapes', 'moving' gray; 'scenes' colour), MP4s, frame folders or
    TIFF stacks (read with rocksynth.io.videos.read_video; colour is averaged to gray when the
    model has one channel)."""
    from rocksynth.io.videos import read_video, to_gray

    source = ClipSource()
    for item in data:
        name = item.split(":", 1)[1] if item.startswith("procedural:") else item
        if name in PROCEDURAL and not Path(item).exists():
            source.procedural.append(name)
        else:
            frames = read_video(item).frames
            if channels == 1 and frames.shape[-1] == 3:
                log(f"{item}: colour frames averaged to gray for a one-channel model (--channels 3 keeps colour)")
                frames = to_gray(frames)
            elif channels == 3 and frames.shape[-1] == 1:
                frames = np.repeat(frames, 3, -1)
            source.stacks.append(frames)
        source.names.append(name)
    if not source.names:
        raise BadInputError("give at least one DATA source: a procedural set (balls, shapes, moving, scenes) or a video/stack")
    for name in source.procedural:
        wanted = 3 if name in COLOUR_SETS else 1
        if channels != wanted:
            raise BadInputError(f"the procedural set {name} is {'colour' if wanted == 3 else 'gray'}: "
                                f"use --channels {wanted} with it")
    return source


def to_tensor(clips: np.ndarray) -> torch.Tensor:
    """uint8 (..., H, W, C) -> float (..., C, H, W) in [0, 1]."""
    t = torch.from_numpy(np.ascontiguousarray(clips)).float() / 255
    return t.movedim(-1, -3)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a - b) ** 2).mean())
    return -10 * math.log10(max(mse, 1e-10))


VQVAE_COLUMNS = ["iteration", "wall_s", "loss", "train_psnr", "perplexity", "heldout_psnr"]
TRANSFORMER_COLUMNS = ["iteration", "wall_s", "train_bpd", "heldout_bpd", "heldout_parallel_bits_per_code",
                       "heldout_psnr_pred", "heldout_psnr_repeat_last"]


def _row(metrics: dict, columns: "list[str]") -> dict:
    return {c: _fmt(metrics.get(c, "")) for c in columns}


def _fmt(value):
    return f"{value:.5g}" if isinstance(value, float) else value


def _check_iterations(iters: int, eval_every: int, batch: int, pool: int) -> None:
    if iters < 1 or eval_every < 1 or batch < 1 or pool < 1:
        raise BadInputError("--iters, --eval-every, --batch and --pool must be at least 1")


def _resume_payload(out: Path, resume: bool, stage: str):
    if not resume:
        return None  # an existing `out` was refused by the output plan
    if not out.exists():
        return None  # a new run (the harness says so)
    payload = _with_vqvae(load_checkpoint(out, KIND), out)
    if stage == "transformer" and "transformer" not in payload["state"]:
        return None
    if stage == "vqvae" and payload["meta"].get("stage") == "transformer":
        raise BadInputError(f"{out} already holds a trained transformer; retraining its VQ-VAE would invalidate it")
    return payload


def _with_vqvae(payload: dict, path) -> dict:
    """`payload`, a video checkpoint of the two-stage model; a frame predictor's is refused."""
    if "vqvae" not in payload["state"]:
        raise BadInputError(f"{path}: a frame predictor checkpoint (--stage predictor), not a VQ-VAE or transformer")
    return payload


# --- stage 1: VQ-VAE ----------------------------------------------------------------------------
def train_vqvae(data: "list[str]", out, iters: int = 1500, size: int = 64, channels: int = 1, n_down: int = 3,
                widths=(32, 64, 64), n_parts: int = 2, n_codes: int = 64, code_dim: int = 32, batch: int = 32,
                lr: float = 1e-3, clip_frames: int = 8, pool: int = 2000, eval_every: int = 100,
                curve=None, resume: bool = False, seed: int = 0, time_budget: "float | None" = None) -> dict:
    """Train (or resume) the frame autoencoder on the training harness (`rocksynth.training.loop`);
    returns the final metrics (with the ``iteration`` reached). `time_budget` (seconds): stop
    cleanly at the first iteration after it, with a checkpoint to resume.

    Its outputs (`rocksynth.training.outputs.video_plan`) are checked before any work; a run that fails or is interrupted
    before its first checkpoint leaves none of them behind."""
    _check_iterations(iters, eval_every, batch, pool)
    plan = video_plan(out, resume, "vqvae", curve).check()
    out = plan.checkpoint
    payload = _resume_payload(out, resume, "vqvae")
    if payload is not None:
        vq_config = payload["config"]["vqvae"]
        frame = payload["config"]["frame"]
        size, channels, clip_frames = frame["size"], frame["channels"], frame["clip_frames"]
        data = payload["meta"]["sources"]
    else:
        vq_config = dict(channels=channels, n_down=n_down, widths=list(widths), n_parts=n_parts,
                         n_codes=n_codes, code_dim=code_dim)
        frame = dict(size=size, channels=channels, clip_frames=clip_frames)
    if size < 1 or size % (2 ** vq_config["n_down"]):
        raise BadInputError(f"--size {size} must be a multiple of {2 ** vq_config['n_down']}")
    settings = video_settings(plan, "vqvae", VQVAE_COLUMNS, iters, eval_every, seed, time_budget)
    with plan:
        result = train(lambda: _VQVAETask(data, vq_config, frame, batch, lr, pool, seed), plan, settings,
                       payload=payload)
    return dict(result.metrics, iteration=result.iteration)


def video_settings(plan: TrainingOutputs, stage: str, columns: "list[str]", iters: int, eval_every: int, seed: int,
                   time_budget: "float | None", device: "torch.device | None" = None, ramp: int = 0) -> LoopSettings:
    """The harness settings of a video stage (`video_plan`'s files): evaluation and checkpoint
    every `eval_every`, the stage's curve and its plot, its best checkpoint by `VIDEO_BEST`, the
    device it trains on (None: the CPU), the learning-rate ramp of a warm start."""
    curve, _, best = plan.companions
    metric, mode = VIDEO_BEST[stage]
    return LoopSettings(iters=iters, seed=seed, eval_every=eval_every, time_budget=time_budget, best_metric=metric,
                        best_mode=mode, best_path=best, curve_fields=columns, curve_path=curve, plot=True,
                        description=f"train {stage}", device=device, ramp=ramp)


class ClipTask:
    """What the video-family tasks share (VQ-VAE, transformer, frame predictor): one trained
    module under the checkpoint key `key`, its optimiser, and the numpy generator `rng` that
    draws their training clips; subclasses set `model`, `optimizer`, `rng` and `columns`.

    The generator is saved with the checkpoint; a checkpoint from before the harness has none,
    and the run goes on from the generator's state after the pool, as it did then.
    """

    kind = KIND
    key: str
    columns: "list[str]"
    # Until `to`: the CPU, and a disabled scaler (stateless) that passes the steps through unchanged.
    device = torch.device("cpu")
    scaler = grad_scaler(None)

    def to(self, device: torch.device) -> None:
        """Train on `device` (mixed precision on CUDA): the trained module and a frozen VQ-VAE
        move; batches and held-out data follow them from the CPU."""
        self.model.to(device)
        if getattr(self, "vqvae", None) is not None:
            self.vqvae.to(device)
        self.device, self.scaler = device, grad_scaler(device)

    def _clipped_step(self, loss: torch.Tensor) -> None:
        """One optimiser step on `loss` through the (mixed-precision) scaler, the gradient norm
        clipped to 1."""
        self.optimizer.zero_grad()
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)  # clip the true gradients
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.scaler.step(self.optimizer)
        self.scaler.update()

    def state_dict(self) -> dict:
        return {self.key: self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state) -> None:
        self.model.load_state_dict(state[self.key])
        self.optimizer.load_state_dict(state["optimizer"])
        if "rng" in state:
            self.rng.bit_generator.state = state["rng"]

    def curve_row(self, row: dict) -> dict:
        return _row(dict(row, wall_s=row["wall_time_s"]), self.columns)


class _VQVAETask(ClipTask):
    """The VQ-VAE's step (its reconstruction + commitment loss on a batch of frames from the
    pool), its held-out reconstruction PSNR and its state, for the harness."""

    key, columns = "vqvae", VQVAE_COLUMNS

    def __init__(self, data, vq_config, frame, batch, lr, pool, seed):
        size, channels = frame["size"], frame["channels"]
        self.data, self.vq_config, self.frame, self.batch = list(data), vq_config, frame, batch
        source = load_sources(self.data, channels)
        self.flip = bool(source.stacks and not source.procedural)
        self.model = VQVAE(**vq_config)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr)
        self.optimizers = [self.optimizer]
        self.rng = np.random.default_rng(seed)
        self.pool = source.clips(pool, frame["clip_frames"], size, "train", self.rng).reshape(-1, size, size, channels)
        self.heldout = to_tensor(source.clips(HELDOUT_CLIPS, 2, size, "heldout", np.random.default_rng(10**6 + seed))
                                 .reshape(-1, size, size, channels))
        self.done, self.perplexity = 0, float("nan")

    def step(self, iteration: int) -> "dict[str, float]":
        self.model.train()
        x = to_tensor(self.pool[self.rng.integers(0, len(self.pool), self.batch)])
        if self.flip:
            x = _flip(x, self.rng)
        with mixed_precision(self.device):
            _, loss, _, diag = self.model(x.to(self.device))
        self.optimizer.zero_grad()
        self.scaler.scale(loss.float()).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.done, self.perplexity = iteration + 1, float(diag["perplexity"])
        return {"loss": loss.item(), "train_psnr": float(diag["psnr"]), "perplexity": self.perplexity}

    @torch.no_grad()
    def evaluate(self) -> "dict[str, float]":
        self.model.eval()
        with mixed_precision(self.device):
            recon = torch.cat([self.model.decode(self.model.encode(c.to(self.device))).float().cpu()
                               for c in self.heldout.split(64)])
        metrics = {"heldout_psnr": psnr(recon, self.heldout)}
        log(f"vqvae it {self.done}: held-out PSNR {metrics['heldout_psnr']:.2f} dB, perplexity {self.perplexity:.1f}")
        return metrics

    def checkpoint_config(self) -> dict:
        return {"vqvae": self.vq_config, "frame": self.frame, "transformer": None}

    def checkpoint_meta(self, metrics) -> dict:
        return _meta(self.data, "vqvae", {"vqvae": dict(metrics)})


def _flip(x, rng):
    """Random flips/transposes of a batch of frames (rock slices have no preferred orientation)."""
    if rng.random() < 0.5:
        x = x.flip(-1)
    if rng.random() < 0.5:
        x = x.flip(-2)
    if rng.random() < 0.5:
        x = x.transpose(-1, -2)
    return x


def _meta(data, stage: str, metrics: dict) -> dict:
    # `data` names the training data by file name; `sources` keeps the paths as given, which a
    # --resume reads again (`inference_copy` reduces them to file names for shipping)
    return {"data": ", ".join(file_name(d) for d in data), "sources": list(data), "stage": stage, "metrics": metrics}


@torch.no_grad()
def encode_clips(vqvae: VQVAE, clips: np.ndarray, chunk: int = 256) -> torch.Tensor:
    """uint8 clips (n, T, H, W, C) -> codes (n, T, h, w, P) as uint8 (K <= 256)."""
    n, t = clips.shape[:2]
    frames = clips.reshape(n * t, *clips.shape[2:])
    codes = [vqvae.encode(to_tensor(frames[i:i + chunk])).to(torch.uint8) for i in range(0, len(frames), chunk)]
    codes = torch.cat(codes)
    return codes.view(n, t, *codes.shape[1:])


# --- stage 2: transformer ------------------------------------------------------------------------
@torch.no_grad()
def bits_per_dim(transformer, codes, context: int, pixels_per_frame: int, chunk: int = 16) -> "tuple[float, float]":
    """Teacher-forced bits/dim of frames context..T-1 (sequential model) and of the parallel head
    on masked tokens of the last frame (at a fixed 50% mask ratio, per masked code in bits)."""
    nll_sum, par_sum, par_n = 0.0, 0.0, 0
    hw, device = transformer.frame_tokens, module_device(transformer)
    for part in codes.split(chunk):
        with mixed_precision(device):
            nll, par = transformer(part.long().to(device), parallel_frame=part.shape[1] - 1, mask_ratio=0.5)
        nll_sum += float(nll[:, context * hw:].float().sum())
        par_sum += float(par) * len(part)
        par_n += len(part)
    n_pixels = codes.shape[0] * (codes.shape[1] - context) * pixels_per_frame
    return nll_sum / math.log(2) / n_pixels, par_sum / par_n / math.log(2)


def train_transformer(data: "list[str]", out, vqvae_checkpoint=None, iters: int = 1500, frames: int = 8,
                      dim: int = 128, layers: int = 4, heads: int = 4, batch: int = 12, lr: float = 5e-4,
                      pool: int = 4000, eval_every: int = 100, parallel_weight: float = 0.5, curve=None,
                      resume: bool = False, seed: int = 0, time_budget: "float | None" = None) -> dict:
    """Train (or resume) the latent transformer on codes of the frozen VQ-VAE, on the training
    harness (`rocksynth.training.loop`); returns the final metrics (with the ``iteration``
    reached). `time_budget` (seconds): stop cleanly at the first iteration after it, with a
    checkpoint to resume.

    Its outputs (`rocksynth.training.outputs.video_plan`) are checked before any work; a run that fails or is interrupted
    before its first checkpoint leaves none of them behind."""
    _check_iterations(iters, eval_every, batch, pool)
    if frames < 2 or dim < 1 or layers < 1 or heads < 1 or dim % heads:
        raise BadInputError(f"need --clip-frames >= 2, --layers >= 1 and --dim a positive multiple of {heads} "
                            f"(the attention heads)")
    plan = video_plan(out, resume, "transformer", curve).check()
    out = plan.checkpoint
    payload = _resume_payload(out, resume, "transformer")
    if payload is None:
        if vqvae_checkpoint is None:
            if resume and out.exists():
                vqvae_checkpoint = out  # a VQ-VAE-only checkpoint: train its transformer in place
            else:
                raise BadInputError("the transformer stage needs a trained VQ-VAE: pass --vqvae CKPT (from --stage vqvae)")
        base = _with_vqvae(load_checkpoint(vqvae_checkpoint, KIND), vqvae_checkpoint)
    else:
        base = payload
    settings = video_settings(plan, "transformer", TRANSFORMER_COLUMNS, iters, eval_every, seed, time_budget)
    with plan:
        result = train(lambda: _TransformerTask(payload, base, data, iters, frames, dim, layers, heads, batch, lr, pool,
                                                parallel_weight, seed), plan, settings, payload=payload)
    return dict(result.metrics, iteration=result.iteration)


class _TransformerTask(ClipTask):
    """The latent transformer's step (teacher-forced NLL + the parallel head's, on codes of the
    frozen VQ-VAE), its held-out bits/dim and predicted-frame PSNR and its state, for the harness."""

    key, columns = "transformer", TRANSFORMER_COLUMNS
    WARMUP = 100  # iterations of the transformer's own learning-rate warm-up

    def __init__(self, payload, base, data, iters, frames, dim, layers, heads, batch, lr, pool, parallel_weight, seed):
        self.vq_config, self.frame = base["config"]["vqvae"], dict(base["config"]["frame"])
        self.vqvae = VQVAE(**self.vq_config)
        self.vqvae.load_state_dict(base["state"]["vqvae"])
        self.vqvae.eval()
        self.vq_metrics = base["meta"]["metrics"].get("vqvae", {})
        data = data or base["meta"]["sources"]
        if payload is not None:
            self.tr_config = payload["config"]["transformer"]
            data = payload["meta"]["sources"]
        else:
            latent = self.frame["size"] // self.vqvae.factor
            self.tr_config = dict(frames=frames, height=latent, width=latent, n_parts=self.vq_config["n_parts"],
                                  n_codes=self.vq_config["n_codes"], dim=dim, layers=layers, heads=heads,
                                  relative_time=True)
        self.data, self.iters, self.batch, self.parallel_weight = list(data), iters, batch, parallel_weight
        self.frames = self.tr_config["frames"]
        self.frame["clip_frames"] = self.frames
        size, channels = self.frame["size"], self.frame["channels"]
        source = load_sources(self.data, channels)
        self.model = LatentVideoTransformer(**self.tr_config)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.95))
        self.optimizers = [self.optimizer]
        self.rng = np.random.default_rng(seed + 1)
        log(f"encoding {pool} training clips and {HELDOUT_CLIPS} held-out clips with the VQ-VAE")
        self.codes = encode_clips(self.vqvae, source.clips(pool, self.frames, size, "train", self.rng))
        self.heldout_clips = source.clips(HELDOUT_CLIPS, self.frames, size, "heldout",
                                          np.random.default_rng(10**6 + seed))
        self.heldout_codes = encode_clips(self.vqvae, self.heldout_clips)
        self.pixels = size * size * channels
        self.done = 0

    def lr_scale(self, iteration: int) -> float:
        it = iteration + 1
        scale = min(1.0, it / self.WARMUP) * 0.5 * (1 + math.cos(math.pi * min(1.0, it / self.iters)))
        return max(scale, 0.05)

    def step(self, iteration: int) -> "dict[str, float]":
        self.model.train()
        x = self.codes[self.rng.integers(0, len(self.codes), self.batch)].long()
        if self.rng.random() < 0.5:
            x = x.flip(1)  # time reversal: reversible motion and rock stacks read either way
        with mixed_precision(self.device):
            nll, par = self.model(x.to(self.device), parallel_frame=int(self.rng.integers(1, self.frames)))
        nll, par = nll.float(), par.float()
        loss = nll.mean() + self.parallel_weight * par
        self._clipped_step(loss)
        self.done = iteration + 1
        return {"train_bpd": float(nll.detach().sum()) / math.log(2) / (self.batch * self.frames * self.pixels)}

    def evaluate(self) -> "dict[str, float]":
        self.model.eval()
        context = self.frames // 2
        bpd, par_bits = bits_per_dim(self.model, self.heldout_codes, context, self.pixels)
        pred_psnr, repeat_psnr = _prediction_psnr(self.vqvae, self.model, self.heldout_clips[:8],
                                                  self.heldout_codes[:8], context)
        log(f"transformer it {self.done}: held-out bits/dim {bpd:.4f}, parallel {par_bits:.3f} bits/code, "
            f"predicted PSNR {pred_psnr:.2f} dB (repeat-last {repeat_psnr:.2f} dB)")
        return {"heldout_bpd": bpd, "heldout_parallel_bits_per_code": par_bits, "heldout_psnr_pred": pred_psnr,
                "heldout_psnr_repeat_last": repeat_psnr}

    def state_dict(self) -> dict:
        return dict(super().state_dict(), vqvae=self.vqvae.state_dict())  # the frozen VQ-VAE goes with it

    def checkpoint_config(self) -> dict:
        return {"vqvae": self.vq_config, "frame": self.frame, "transformer": self.tr_config}

    def checkpoint_meta(self, metrics) -> dict:
        return _meta(self.data, "transformer", {"vqvae": self.vq_metrics, "transformer": dict(metrics)})


@torch.no_grad()
def _prediction_psnr(vqvae, model, clips, codes, context) -> "tuple[float, float]":
    """PSNR of greedily predicted frames context..T-1 and of repeating the last context frame."""
    generator = torch.Generator().manual_seed(0)
    device = module_device(model)
    with mixed_precision(device):
        predicted = model.generate(codes[:, :context].long().to(device), codes.shape[1] - context, temperature=0.0,
                                   generator=generator)
        n, t = predicted.shape[:2]
        frames = vqvae.decode(predicted.reshape(n * t, *predicted.shape[2:])).float().cpu()
    truth = to_tensor(clips[:, context:]).reshape(frames.shape)
    last = to_tensor(clips[:, context - 1:context]).expand(-1, t, -1, -1, -1).reshape(frames.shape)
    return psnr(frames, truth), psnr(last, truth)
