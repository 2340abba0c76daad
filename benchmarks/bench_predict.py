"""Benchmark of `rocksynth predict` on held-out clips: procedural moving objects and rock slices.

Per predicted time step: PSNR and SSIM (skimage) of the model's frames against the true frames,
beside two baselines (repeat the last context frame; linear extrapolation of the last two) and
the VQ-VAE round trip of the true frames (the best any code prediction can do). Bits/dim: the
transformer's teacher-forced negative log-likelihood of the codes of frames context..T-1 of the
first T frames (T = its window), in bits per pixel. Speed: frames/s of sequential (KV cache)
and parallel (MaskGIT) decoding at batch 1.

    OMP_NUM_THREADS=2 python benchmarks/bench_predict.py [--clips 32] [--context 3] [--predict 6]
"""

import argparse
import json
import math
import time

import numpy as np
import torch
from skimage.metrics import structural_similarity

from rocksynth.data.videos import procedural_clips, stack_clips
from rocksynth.pipelines.predict import load_predictor, predict_frames
from rocksynth.training.video import bits_per_dim, encode_clips, load_sources, to_tensor

ROCKS = ["/work/shared/data/berea_400.tif", "/work/shared/data/ketton_256.tif"]


def psnr(a, b):
    return -10 * math.log10(max(float(((a - b) ** 2).mean()), 1e-10))


def ssim(a, b):
    return float(np.mean([structural_similarity(x[0], y[0], data_range=1.0) for x, y in zip(a, b)]))


def per_step(pred, truth):
    """pred/truth float (n, P, 1, s, s) -> lists of mean PSNR and SSIM per step."""
    steps = pred.shape[1]
    return ([float(np.mean([psnr(pred[i, t], truth[i, t]) for i in range(len(pred))])) for t in range(steps)],
            [ssim(pred[:, t], truth[:, t]) for t in range(steps)])


def heldout_clips(kind, n, frames, size):
    if kind == "moving":
        return procedural_clips("moving", n, frames, size, split="heldout", start=1000)
    source = load_sources(ROCKS, channels=1)
    rng = np.random.default_rng(12345)
    half = [stack_clips(stack, n // 2, frames, size, rng, split="heldout", augment=False) for stack in source.stacks]
    return np.concatenate(half)


def bench(name, model, kind, n_clips, context, n_pred, samples, seed):
    vqvae, transformer, payload = load_predictor(model)
    size = payload["config"]["frame"]["size"]
    clips = heldout_clips(kind, n_clips, context + n_pred, size)
    x = to_tensor(clips).numpy()  # (n, T, 1, s, s)
    truth = x[:, context:]
    results = {}
    # Baselines.
    last = np.repeat(x[:, context - 1:context], n_pred, 1)
    results["repeat last"] = per_step(last, truth)
    if context >= 2:
        delta = x[:, context - 1] - x[:, context - 2]
        linear = np.clip(np.stack([x[:, context - 1] + (k + 1) * delta for k in range(n_pred)], 1), 0, 1)
        results["linear extrapolation"] = per_step(linear, truth)
    recon = np.stack([vqvae.decode(vqvae.encode(torch.from_numpy(c))).numpy() for c in truth])
    results["VQ-VAE round trip (bound)"] = per_step(recon, truth)
    # Model: sampled (temperature 1, mean over samples), greedy, and parallel.
    modes = {"model sequential T=1": dict(temperature=1.0, parallel=False, samples=samples),
             "model sequential greedy": dict(temperature=0.0, parallel=False, samples=1),
             "model parallel T=1": dict(temperature=1.0, parallel=True, samples=samples)}
    for mode, opts in modes.items():
        preds = []
        for i in range(n_clips):
            out = predict_frames(vqvae, transformer, x[i, :context], n_pred, temperature=opts["temperature"],
                                 parallel=opts["parallel"], samples=opts["samples"], seed=seed + i)
            preds.append(out)  # (samples, P, 1, s, s)
        preds = np.stack(preds, 1)  # (samples, n, P, ...)
        scores = [per_step(p, truth) for p in preds]
        results[mode] = ([float(np.mean([s[0][t] for s in scores])) for t in range(n_pred)],
                         [float(np.mean([s[1][t] for s in scores])) for t in range(n_pred)])
    # Bits/dim within the model's window.
    window = transformer.frames
    codes = encode_clips(vqvae, clips[:, :window]) if clips.shape[1] >= window else None
    bpd = None
    if codes is not None and context < window:
        bpd, _ = bits_per_dim(transformer, codes, context, size * size)
    # Speed at batch 1.
    speed = {}
    for mode, parallel in (("sequential", False), ("parallel (8 steps)", True)):
        start = time.perf_counter()
        for i in range(4):
            predict_frames(vqvae, transformer, x[i, :context], n_pred, parallel=parallel, seed=i)
        speed[mode] = 4 * n_pred / (time.perf_counter() - start)
    return {"name": name, "frame": size, "clips": n_clips, "context": context, "predicted": n_pred,
            "bits_per_dim": bpd, "results": results, "frames_per_s": speed}


def report(r):
    print(f"\n## {r['name']}: {r['clips']} held-out clips, {r['frame']}x{r['frame']}, context {r['context']}, "
          f"{r['predicted']} predicted frames")
    if r["bits_per_dim"] is not None:
        print(f"bits/dim (teacher-forced, frames {r['context']}..window end): {r['bits_per_dim']:.4f}")
    steps = r["predicted"]
    print("| method | mean PSNR | mean SSIM | PSNR per step | SSIM per step |")
    print("|---|---|---|---|---|")
    for method, (p, s) in r["results"].items():
        print(f"| {method} | {np.mean(p):.2f} | {np.mean(s):.3f} | {' '.join(f'{v:.1f}' for v in p)} | "
              f"{' '.join(f'{v:.2f}' for v in s)} |")
    print("speed (batch 1, " + f"{torch.get_num_threads()} threads): "
          + ", ".join(f"{k} {v:.2f} frames/s" for k, v in r["frames_per_s"].items()))
    del steps


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=32)
    parser.add_argument("--context", type=int, default=3)
    parser.add_argument("--predict", type=int, default=6)
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--shapes-model", default="shapes")
    parser.add_argument("--rocks-model", default="rocks")
    parser.add_argument("--only", choices=["shapes", "rocks"])
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    runs = []
    if args.only in (None, "shapes"):
        runs.append(bench("moving objects (balls + shapes)", args.shapes_model, "moving", args.clips, args.context,
                          args.predict, args.samples, 0))
        report(runs[-1])
    if args.only in (None, "rocks"):
        runs.append(bench("rock slices (Berea + Ketton, held-out last quarter of x)", args.rocks_model, "rocks",
                          args.clips, args.context, args.predict, args.samples, 0))
        report(runs[-1])
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(runs, handle, indent=2)


if __name__ == "__main__":
    main()
