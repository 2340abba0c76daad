"""Training of the latent video model in two stages: the VQ-VAE frame autoencoder, then the
latent transformer on the codes the frozen VQ-VAE gives to a pool of clips.

Both stages write one checkpoint of kind 'video' (the transformer stage copies the VQ-VAE into
it), resume from it, and append a CSV learning curve with periodic held-out evaluation:
reconstruction PSNR for the VQ-VAE; bits/dim, parallel-head bits/dim and the PSNR of predicted
frames for the transformer. Held-out data: procedural clips from seeds never used in training,
and, for frame stacks, clips from the last quarter of the x axis (never cropped for training).
"""

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from rocksynth.data.videos import COLOUR_SETS, PROCEDURAL, procedural_clips, stack_clips
from rocksynth.errors import BadInputError
from rocksynth.models.checkpoints import file_name
from rocksynth.models.latent_transformer import LatentVideoTransformer
from rocksynth.models.vqvae import VQVAE
from rocksynth.progress import log, progress_bar
from rocksynth.training.checkpoint import load_checkpoint, save_checkpoint
from rocksynth.training.outputs import TrainingOutputs, video_plan

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
    from rocksynth.io.videos import read_video

    source = ClipSource()
    for item in data:
        name = item.split(":", 1)[1] if item.startswith("procedural:") else item
        if name in PROCEDURAL and not Path(item).exists():
            source.procedural.append(name)
        else:
            frames = read_video(item).frames
            if channels == 1 and frames.shape[-1] == 3:
                frames = frames.mean(-1, keepdims=True).round().astype(np.uint8)
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


def _curve(plan: TrainingOutputs, columns: "list[str]", resumed_at: "int | None"):
    """The stage's learning curve; a resumed run continues its rows up to the checkpoint's iteration."""
    curve = plan.curve(plan.companions[0], columns)
    if resumed_at is not None:
        plan.resumed_from(resumed_at)
        curve.load().keep_until(resumed_at)
    curve.write()
    return curve


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
        log(f"{out} does not exist yet: starting from scratch")
        return None
    payload = load_checkpoint(out, KIND)
    if stage == "transformer" and "transformer" not in payload["state"]:
        return None
    if stage == "vqvae" and payload["meta"].get("stage") == "transformer":
        raise BadInputError(f"{out} already holds a trained transformer; retraining its VQ-VAE would invalidate it")
    return payload


# --- stage 1: VQ-VAE ----------------------------------------------------------------------------
def train_vqvae(data: "list[str]", out, iters: int = 1500, size: int = 64, channels: int = 1, n_down: int = 3,
                widths=(32, 64, 64), n_parts: int = 2, n_codes: int = 64, code_dim: int = 32, batch: int = 32,
                lr: float = 1e-3, clip_frames: int = 8, pool: int = 2000, eval_every: int = 100,
                curve=None, resume: bool = False, seed: int = 0) -> dict:
    """Train (or resume) the frame autoencoder; returns the final metrics.
    Its outputs (`rocksynth.training.outputs.video_plan`) are checked before any work; a run that fails or is interrupted
    before its first checkpoint leaves none of them behind."""
    _check_iterations(iters, eval_every, batch, pool)
    plan = video_plan(out, resume, "vqvae", curve).check()
    out = plan.checkpoint
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
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
    with plan:
        return _train_vqvae(plan, payload, data, vq_config, frame, iters, batch, lr, pool, eval_every, seed, rng)


def _train_vqvae(plan, payload, data, vq_config, frame, iters, batch, lr, pool, eval_every, seed, rng) -> dict:
    out = plan.checkpoint
    size, channels, clip_frames = frame["size"], frame["channels"], frame["clip_frames"]
    source = load_sources(data, channels)
    model = VQVAE(**vq_config)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    done, wall = restore(payload, model, optimizer, "vqvae")
    train_pool = source.clips(pool, clip_frames, size, "train", rng).reshape(-1, size, size, channels)
    heldout = to_tensor(source.clips(HELDOUT_CLIPS, 2, size, "heldout", np.random.default_rng(10**6 + seed))
                        .reshape(-1, size, size, channels))
    curve = _curve(plan, VQVAE_COLUMNS, done if payload is not None else None)
    metrics = {}
    start = time.time() - wall
    with progress_bar(iters - done, "train vqvae", status=True) as bar:
        for it in range(done + 1, iters + 1):
            model.train()
            pick = rng.integers(0, len(train_pool), batch)
            x = to_tensor(train_pool[pick])
            if source.stacks and not source.procedural:
                x = _flip(x, rng)
            _, loss, _, diag = model(x)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            bar.advance(1, status=f"psnr {diag['psnr']:.1f} perplexity {diag['perplexity']:.0f}")
            if it % eval_every == 0 or it == iters:
                model.eval()
                with torch.no_grad():
                    recon = torch.cat([model.decode(model.encode(c)) for c in heldout.split(64)])
                metrics = {"iteration": it, "wall_s": time.time() - start, "loss": loss.item(),
                           "train_psnr": diag["psnr"], "perplexity": diag["perplexity"],
                           "heldout_psnr": psnr(recon, heldout)}
                curve.append(_row(metrics, VQVAE_COLUMNS))
                log(f"vqvae it {it}: held-out PSNR {metrics['heldout_psnr']:.2f} dB, perplexity {diag['perplexity']:.1f}")
                _save(out, vq_config, frame, None, {"vqvae": model.state_dict(), "optimizer": optimizer.state_dict()},
                      data, it, time.time() - start, "vqvae", {"vqvae": metrics})
                plan.saved(it)
    return metrics


def restore(payload: "dict | None", model, optimizer, key: str) -> "tuple[int, float]":
    """Load a resumed run's weights (`payload["state"][key]`) and optimizer state; return the
    iterations done and the wall time so far ((0, 0.0) for a new run, payload None)."""
    if payload is None:
        return 0, 0.0
    model.load_state_dict(payload["state"][key])
    optimizer.load_state_dict(payload["state"]["optimizer"])
    return payload["meta"]["iterations"], payload["meta"]["wall_time_s"]


def _flip(x, rng):
    """Random flips/transposes of a batch of frames (rock slices have no preferred orientation)."""
    if rng.random() < 0.5:
        x = x.flip(-1)
    if rng.random() < 0.5:
        x = x.flip(-2)
    if rng.random() < 0.5:
        x = x.transpose(-1, -2)
    return x


def _save(out, vq_config, frame, tr_config, state, data, iterations, wall, stage, metrics):
    config = {"vqvae": vq_config, "frame": frame, "transformer": tr_config}
    # `data` names the training data by file name; `sources` keeps the paths as given, which a
    # --resume reads again (`inference_copy` reduces them to file names for shipping)
    meta = {"data": ", ".join(file_name(d) for d in data), "sources": list(data), "iterations": iterations, "wall_time_s": wall,
            "stage": stage, "metrics": metrics}
    save_checkpoint(out, KIND, config, state, meta)


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
    hw = transformer.frame_tokens
    for part in codes.split(chunk):
        nll, par = transformer(part.long(), parallel_frame=part.shape[1] - 1, mask_ratio=0.5)
        nll_sum += float(nll[:, context * hw:].sum())
        par_sum += float(par) * len(part)
        par_n += len(part)
    n_pixels = codes.shape[0] * (codes.shape[1] - context) * pixels_per_frame
    return nll_sum / math.log(2) / n_pixels, par_sum / par_n / math.log(2)


def train_transformer(data: "list[str]", out, vqvae_checkpoint=None, iters: int = 1500, frames: int = 8,
                      dim: int = 128, layers: int = 4, heads: int = 4, batch: int = 12, lr: float = 5e-4,
                      pool: int = 4000, eval_every: int = 100, parallel_weight: float = 0.5, curve=None,
                      resume: bool = False, seed: int = 0) -> dict:
    """Train (or resume) the latent transformer on codes of the frozen VQ-VAE.
    Its outputs (`rocksynth.training.outputs.video_plan`) are checked before any work; a run that fails or is interrupted
    before its first checkpoint leaves none of them behind."""
    _check_iterations(iters, eval_every, batch, pool)
    if frames < 2 or dim < 1 or layers < 1 or heads < 1 or dim % heads:
        raise BadInputError(f"need --clip-frames >= 2, --layers >= 1 and --dim a positive multiple of {heads} "
                            f"(the attention heads)")
    plan = video_plan(out, resume, "transformer", curve).check()
    out = plan.checkpoint
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed + 1)
    payload = _resume_payload(out, resume, "transformer")
    if payload is None:
        if vqvae_checkpoint is None:
            if resume and out.exists():
                vqvae_checkpoint = out  # a VQ-VAE-only checkpoint: train its transformer in place
            else:
                raise BadInputError("the transformer stage needs a trained VQ-VAE: pass --vqvae CKPT (from --stage vqvae)")
        base = load_checkpoint(vqvae_checkpoint, KIND)
    else:
        base = payload
    with plan:
        return _train_transformer(plan, payload, base, data, iters, frames, dim, layers, heads, batch, lr, pool,
                                  eval_every, parallel_weight, seed, rng)


def _train_transformer(plan, payload, base, data, iters, frames, dim, layers, heads, batch, lr, pool, eval_every,
                       parallel_weight, seed, rng) -> dict:
    out = plan.checkpoint
    vq_config, frame = base["config"]["vqvae"], dict(base["config"]["frame"])
    vqvae = VQVAE(**vq_config)
    vqvae.load_state_dict(base["state"]["vqvae"])
    vqvae.eval()
    if not data:
        data = base["meta"]["sources"]
    if payload is not None:
        tr_config = payload["config"]["transformer"]
        data = payload["meta"]["sources"]
    else:
        latent = frame["size"] // vqvae.factor
        tr_config = dict(frames=frames, height=latent, width=latent, n_parts=vq_config["n_parts"],
                         n_codes=vq_config["n_codes"], dim=dim, layers=layers, heads=heads)
    frames = tr_config["frames"]
    frame["clip_frames"] = frames
    size, channels = frame["size"], frame["channels"]
    source = load_sources(data, channels)
    model = LatentVideoTransformer(**tr_config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.95))
    done, wall = restore(payload, model, optimizer, "transformer")
    log(f"encoding {pool} training clips and {HELDOUT_CLIPS} held-out clips with the VQ-VAE")
    train_codes = encode_clips(vqvae, source.clips(pool, frames, size, "train", rng))
    heldout_clips = source.clips(HELDOUT_CLIPS, frames, size, "heldout", np.random.default_rng(10**6 + seed))
    heldout_codes = encode_clips(vqvae, heldout_clips)
    context = frames // 2
    pixels = size * size * channels
    curve = _curve(plan, TRANSFORMER_COLUMNS, done if payload is not None else None)
    warmup = 100
    metrics = {}
    start = time.time() - wall
    with progress_bar(iters - done, "train transformer", status=True) as bar:
        for it in range(done + 1, iters + 1):
            scale = min(1.0, it / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, it / iters)))
            for group in optimizer.param_groups:
                group["lr"] = lr * max(scale, 0.05)
            model.train()
            x = train_codes[rng.integers(0, len(train_codes), batch)].long()
            if rng.random() < 0.5:
                x = x.flip(1)  # time reversal: reversible motion and rock stacks read either way
            nll, par = model(x, parallel_frame=int(rng.integers(1, frames)))
            loss = nll.mean() + parallel_weight * par
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            train_bpd = float(nll.detach().sum()) / math.log(2) / (batch * frames * pixels)
            bar.advance(1, status=f"bits/dim {train_bpd:.4f}")
            if it % eval_every == 0 or it == iters:
                model.eval()
                bpd, par_bits = bits_per_dim(model, heldout_codes, context, pixels)
                pred_psnr, repeat_psnr = _prediction_psnr(vqvae, model, heldout_clips[:8], heldout_codes[:8], context)
                metrics = {"iteration": it, "wall_s": time.time() - start, "train_bpd": train_bpd,
                           "heldout_bpd": bpd, "heldout_parallel_bits_per_code": par_bits,
                           "heldout_psnr_pred": pred_psnr, "heldout_psnr_repeat_last": repeat_psnr}
                curve.append(_row(metrics, TRANSFORMER_COLUMNS))
                log(f"transformer it {it}: held-out bits/dim {bpd:.4f}, parallel {par_bits:.3f} bits/code, "
                    f"predicted PSNR {pred_psnr:.2f} dB (repeat-last {repeat_psnr:.2f} dB)")
                state = {"vqvae": vqvae.state_dict(), "transformer": model.state_dict(), "optimizer": optimizer.state_dict()}
                vq_metrics = base["meta"]["metrics"].get("vqvae", {})
                _save(out, vq_config, frame, tr_config, state, data, it, time.time() - start, "transformer",
                      {"vqvae": vq_metrics, "transformer": metrics})
                plan.saved(it)
    return metrics


@torch.no_grad()
def _prediction_psnr(vqvae, model, clips, codes, context) -> "tuple[float, float]":
    """PSNR of greedily predicted frames context..T-1 and of repeating the last context frame."""
    generator = torch.Generator().manual_seed(0)
    predicted = model.generate(codes[:, :context].long(), codes.shape[1] - context, temperature=0.0, generator=generator)
    n, t = predicted.shape[:2]
    frames = vqvae.decode(predicted.reshape(n * t, *predicted.shape[2:]))
    truth = to_tensor(clips[:, context:]).reshape(frames.shape)
    last = to_tensor(clips[:, context - 1:context]).expand(-1, t, -1, -1, -1).reshape(frames.shape)
    return psnr(frames, truth), psnr(last, truth)
