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
                    pool: int = 2000, eval_every: int = 100, resume: bool = False, seed: int = 0) -> dict:
    """Train (or resume) the predictor; returns the last held-out metrics.

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
    else:
        config = {"channels": channels, "context": context, "widths": list(widths), "blocks": blocks}
        frame = {"size": size, "channels": channels, "clip_frames": context + rollout, "rollout": rollout}
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
            loss = ((pred - x[:, config["context"]:]) ** 2).mean()
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


def _augment(x: torch.Tensor, rng) -> torch.Tensor:
    """Random flips, transposes and time reversal of a batch of clips (B, T, C, H, W): motion in
    the sets has no preferred direction."""
    x = _flip(x, rng)
    if rng.random() < 0.5:
        x = x.flip(1)
    return x

