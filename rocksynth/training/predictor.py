"""Training of the deterministic next-frame predictor (`rocksynth.models.frame_predictor`).

Clips are drawn up front from the sources of `rocksynth.training.video` (procedural sets, videos,
frame stacks). Each iteration rolls the predictor out `rollout` frames from `context` true
frames and takes the MSE against the true frames, so it learns from its own outputs as it will
be used. Held-out evaluation: 5 context frames, 10 predicted frames of clips from seeds never used
in training; the PSNR (MSE pooled over clips and steps) of the prediction and of repeating the
last context frame are written to the learning curve.
"""

import time

import numpy as np
import torch

from rocksynth.models.frame_predictor import FramePredictor
from rocksynth.progress import log, progress_bar
from rocksynth.training.checkpoint import load_checkpoint, save_checkpoint
from rocksynth.training.outputs import video_plan
from rocksynth.training.video import (HELDOUT_CLIPS, KIND, _curve, _flip, _row, load_sources, psnr, restore,
                                     to_tensor)

COLUMNS = ["iteration", "wall_s", "loss", "heldout_psnr_pred", "heldout_psnr_repeat_last", "heldout_gain_db"]
EVAL_CONTEXT, EVAL_FRAMES = 5, 10


def train_predictor(data: "list[str]", out, iters: int = 3000, size: int = 64, channels: int = 3, context: int = 4,
                    widths=(24, 48, 64), blocks: int = 4, rollout: int = 3, batch: int = 8, lr: float = 1e-3,
                    pool: int = 2000, eval_every: int = 100, resume: bool = False, seed: int = 0,
                    ssim_weight: "float | None" = None) -> dict:
    """Train (or resume) the predictor; returns the last held-out metrics.

    The loss is the MSE of the rolled-out frames plus `ssim_weight` times (1 - SSIM): the MSE alone
    averages the futures it cannot tell apart, and late frames blur. `ssim_weight` None keeps a
    resumed run's weight (0 for a new run); a number sets it from here on, and is saved.

    Its outputs (`rocksynth.training.outputs.video_plan`, stage 'predictor') are checked before any
    work; a run that fails or is interrupted before its first checkpoint leaves nothing."""
    plan = video_plan(out, resume, "predictor").check()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    payload = load_checkpoint(plan.checkpoint, KIND) if resume and plan.checkpoint.exists() else None
    if payload is not None:
        if payload["meta"].get("stage") != "predictor":
            from rocksynth.errors import BadInputError

            raise BadInputError(f"{plan.checkpoint} is not a frame-predictor checkpoint; choose another --out")
        config, frame, data = payload["config"]["predictor"], payload["config"]["frame"], payload["meta"]["sources"]
        if ssim_weight is not None and ssim_weight != frame.get("ssim_weight", 0.0):
            log(f"SSIM weight {frame.get('ssim_weight', 0.0):g} -> {ssim_weight:g} from iteration "
                f"{payload['meta']['iterations']}")
            frame = dict(frame, ssim_weight=float(ssim_weight))
    else:
        config = {"channels": channels, "context": context, "widths": list(widths), "blocks": blocks}
        frame = {"size": size, "channels": channels, "clip_frames": context + rollout, "rollout": rollout,
                 "ssim_weight": float(ssim_weight or 0.0)}
    with plan:
        return _train(plan, payload, data, config, frame, iters, batch, lr, pool, eval_every, seed, rng)


def _train(plan, payload, data, config, frame, iters, batch, lr, pool, eval_every, seed, rng) -> dict:
    size, channels, rollout = frame["size"], frame["channels"], frame["rollout"]
    source = load_sources(data, channels)
    model = FramePredictor(**config)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    done, wall = restore(payload, model, optimizer, "predictor")
    train_pool = source.clips(pool, config["context"] + rollout, size, "train", rng)
    heldout = to_tensor(source.clips(HELDOUT_CLIPS, EVAL_CONTEXT + EVAL_FRAMES, size, "heldout",
                                     np.random.default_rng(10**6 + seed)))
    curve = _curve(plan, COLUMNS, done if payload is not None else None)
    metrics: dict = {}
    start = time.time() - wall
    with progress_bar(iters - done, "train predictor", status=True) as bar:
        for it in range(done + 1, iters + 1):
            model.train()
            x = _augment(to_tensor(train_pool[rng.integers(0, len(train_pool), batch)]), rng)
            pred = model.rollout(x[:, :config["context"]], rollout)
            target = x[:, config["context"]:]
            loss = ((pred - target) ** 2).mean()
            if frame.get("ssim_weight", 0.0):
                loss = loss + frame["ssim_weight"] * (1 - ssim(pred.flatten(0, 1), target.flatten(0, 1)))
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            bar.advance(1, status=f"loss {loss.item():.4g}")
            if it % eval_every == 0 or it == iters:
                metrics = {"iteration": it, "wall_s": time.time() - start, "loss": loss.item(),
                           **evaluate(model, heldout)}
                curve.append(_row(metrics, COLUMNS))
                log(f"predictor it {it}: held-out PSNR {metrics['heldout_psnr_pred']:.2f} dB, "
                    f"repeat-last {metrics['heldout_psnr_repeat_last']:.2f} dB")
                meta = {"data": ", ".join(data), "sources": list(data), "iterations": it,
                        "wall_time_s": time.time() - start, "stage": "predictor", "metrics": {"predictor": metrics}}
                save_checkpoint(plan.checkpoint, KIND, {"predictor": config, "frame": frame},
                                {"predictor": model.state_dict(), "optimizer": optimizer.state_dict()}, meta)
                plan.saved(it)
    return metrics


@torch.no_grad()
def evaluate(model: FramePredictor, clips: torch.Tensor, chunk: int = 16) -> dict:
    """PSNR of the rolled-out prediction and of repeat-last over clips (n, T, C, H, W)."""
    model.eval()
    truth = clips[:, EVAL_CONTEXT:EVAL_CONTEXT + EVAL_FRAMES]
    pred = torch.cat([model.rollout(c[:, :EVAL_CONTEXT], EVAL_FRAMES) for c in clips.split(chunk)])
    last = clips[:, EVAL_CONTEXT - 1:EVAL_CONTEXT].expand_as(truth)
    scores = {"heldout_psnr_pred": psnr(pred, truth), "heldout_psnr_repeat_last": psnr(last, truth)}
    scores["heldout_gain_db"] = scores["heldout_psnr_pred"] - scores["heldout_psnr_repeat_last"]
    return scores


def ssim(a: torch.Tensor, b: torch.Tensor, window: int = 7) -> torch.Tensor:
    """Mean SSIM of images (N, C, H, W) in [0, 1], differentiable: a uniform `window`² window (as
    scikit-image's default), per channel, over the positions the window fits."""
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    channels = a.shape[1]
    kernel = torch.full((channels, 1, window, window), 1.0 / window ** 2, dtype=a.dtype, device=a.device)

    def mean(x):
        return torch.nn.functional.conv2d(x, kernel, groups=channels)

    mu_a, mu_b = mean(a), mean(b)
    # Sample (co)variances, as scikit-image computes them (N / (N - 1)).
    correction = window ** 2 / (window ** 2 - 1)
    var_a = (mean(a * a) - mu_a ** 2) * correction
    var_b = (mean(b * b) - mu_b ** 2) * correction
    cov = (mean(a * b) - mu_a * mu_b) * correction
    index = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return index.mean()


def _augment(x: torch.Tensor, rng) -> torch.Tensor:
    """Random flips, transposes and time reversal of a batch of clips (B, T, C, H, W): motion in
    the sets has no preferred direction."""
    x = _flip(x, rng)
    if rng.random() < 0.5:
        x = x.flip(1)
    return x

