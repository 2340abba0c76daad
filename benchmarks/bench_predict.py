"""Benchmark of `rocksynth predict` on held-out clips: procedural moving objects and rock slices.

Per predicted time step: PSNR and SSIM (skimage) of the model's frames against the true frames,
beside two baselines (repeat the last context frame; linear extrapolation of the last two) and
the VQ-VAE round trip of the true frames (the best any code prediction can do). Bits/dim: the
transformer's teacher-forced negative log-likelihood of the codes of frames context..T-1 of the
first T frames (T = its window), in bits per pixel. Speed: frames/s of sequential (KV cache)
and parallel (MaskGIT, `--steps` rounds per frame) decoding at batch 1, and their ratio beside
the PSNR of each. Objects (`scenes`, whose backgrounds the generator knows): per step, the
fraction of clips whose predicted frame shows as many objects as the true one, and the objects
matched one by one (`lost_and_invented`).

    OMP_NUM_THREADS=2 python benchmarks/bench_predict.py [--clips 32] [--context 3] [--predict 6]
"""

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from skimage.metrics import structural_similarity

from rocksynth.data.videos import procedural_clips, stack_clips
from rocksynth.pipelines.predict import load_predictor, predict_frames
from rocksynth.training.predictor import OBJECT_MIN_PIXELS, OBJECT_TOLERANCE
from rocksynth.training.predictor import object_regions as masks_of_objects
from rocksynth.training.video import bits_per_dim, encode_clips, load_sources, to_tensor

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"  # ../shared/data beside the repository
HELDOUT_START = 1000  # the held-out procedural clips used: 1000 on
ROCKS = [str(SHARED_DATA / "berea_400.tif"), str(SHARED_DATA / "ketton_256.tif")]


def psnr(a, b):
    return -10 * math.log10(max(float(((a - b) ** 2).mean()), 1e-10))


def ssim(a, b):
    """Mean SSIM of frames (n, C, s, s); colour frames over their channels."""
    if a.shape[1] == 1:
        return float(np.mean([structural_similarity(x[0], y[0], data_range=1.0) for x, y in zip(a, b)]))
    return float(np.mean([structural_similarity(x, y, data_range=1.0, channel_axis=0) for x, y in zip(a, b)]))


def per_step(pred, truth):
    """pred/truth float (n, P, 1, s, s) -> lists of PSNR (pooled MSE) and mean SSIM per step."""
    steps = pred.shape[1]
    # PSNR of the MSE pooled over clips: a clip whose true slices do not change would otherwise
    # give the repeat-last baseline an unbounded PSNR and dominate the mean.
    return ([psnr(pred[:, t], truth[:, t]) for t in range(steps)],
            [ssim(pred[:, t], truth[:, t]) for t in range(steps)])


def heldout_clips(kind, n, frames, size):
    if kind in ("moving", "scenes"):
        return procedural_clips(kind, n, frames, size, split="heldout", start=HELDOUT_START)
    source = load_sources(ROCKS, channels=1)
    rng = np.random.default_rng(12345)
    counts = [n // 2 + (i < n % 2) for i in range(2)]
    half = [stack_clips(stack, c, frames, size, rng, split="heldout", augment=False)
            for stack, c in zip(source.stacks, counts)]
    return np.concatenate(half)


@torch.no_grad()
def batched_prediction(vqvae, transformer, context, n_pred, temperature, parallel, samples, seed, steps=8):
    """All clips (and samples) in one batch, as `predict_frames` does for one clip:
    context (n, t0, C, s, s) -> (samples, n, n_pred, C, s, s)."""
    n, t0 = context.shape[:2]
    codes = vqvae.encode(torch.from_numpy(context.reshape(n * t0, *context.shape[2:])))
    codes = codes.view(n, t0, *codes.shape[1:]).repeat(samples, 1, 1, 1, 1)
    generator = torch.Generator().manual_seed(seed)
    new = transformer.generate(codes, n_pred, temperature=temperature, parallel=parallel, steps=steps,
                               generator=generator)
    frames = vqvae.decode(new.reshape(-1, *new.shape[2:])).numpy()
    return frames.reshape(samples, n, n_pred, *frames.shape[1:])


def bench(name, model, kind, n_clips, context, n_pred, samples, seed, steps=(1, 2, 8)):
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
    # Model: sampled (temperature 1, mean over samples), greedy, and parallel in `steps` rounds.
    modes = {"model sequential T=1": dict(temperature=1.0, parallel=False, samples=samples),
             "model sequential greedy": dict(temperature=0.0, parallel=False, samples=1)}
    modes.update({f"model parallel T=1, {k} steps": dict(temperature=1.0, parallel=True, steps=k, samples=samples)
                  for k in steps})
    for mode, opts in modes.items():
        preds = batched_prediction(vqvae, transformer, x[:, :context], n_pred, seed=seed, **opts)
        scores = [per_step(p, truth) for p in preds]
        results[mode] = ([float(np.mean([s[0][t] for s in scores])) for t in range(n_pred)],
                         [float(np.mean([s[1][t] for s in scores])) for t in range(n_pred)])
    # Bits/dim within the model's window.
    window = transformer.frames
    codes = encode_clips(vqvae, clips[:, :window]) if clips.shape[1] >= window else None
    bpd = None
    if codes is not None and context < window:
        bpd, _ = bits_per_dim(transformer, codes, context, size * size)
    # Speed at batch 1: the best of 3 interleaved rounds (the machine is shared), 2 clips each;
    # `predict_frames` end to end (encode, decode, progress bar) and the transformer's decoding alone.
    decoders = {"sequential": dict(parallel=False)}
    decoders.update({f"parallel ({k} steps)": dict(parallel=True, steps=k) for k in steps})
    speed, decoding = dict.fromkeys(decoders, 0.0), dict.fromkeys(decoders, 0.0)
    context_codes = encode_clips(vqvae, clips[:2, :context]).long()
    for _ in range(3):
        for mode, opts in decoders.items():
            start = time.perf_counter()
            for i in range(2):
                predict_frames(vqvae, transformer, x[i, :context], n_pred, seed=i, **opts)
            speed[mode] = max(speed[mode], 2 * n_pred / (time.perf_counter() - start))
            start = time.perf_counter()
            for i in range(2):
                transformer.generate(context_codes[i:i + 1], n_pred, generator=torch.Generator().manual_seed(i), **opts)
            decoding[mode] = max(decoding[mode], 2 * n_pred / (time.perf_counter() - start))
    sequential = float(np.mean(results["model sequential T=1"][0]))
    versus = [{"steps": k, "speedup": decoding[f"parallel ({k} steps)"] / decoding["sequential"],
               "speedup_end_to_end": speed[f"parallel ({k} steps)"] / speed["sequential"],
               "psnr": float(np.mean(results[f"model parallel T=1, {k} steps"][0])), "psnr_sequential": sequential}
              for k in steps]
    return {"name": name, "frame": size, "clips": n_clips, "context": context, "predicted": n_pred,
            "bits_per_dim": bpd, "results": results, "frames_per_s": speed, "parallel_vs_sequential": versus}


@torch.no_grad()
def bench_predictor(checkpoint, kind, n_clips, context, n_pred, size=64, chunk=16):
    """A frame-predictor checkpoint (`train video --stage predictor`) beside repeat-last and linear
    extrapolation on held-out clips of `kind`."""
    model = frame_predictor(checkpoint)
    x = to_tensor(heldout_clips(kind, n_clips, context + n_pred, size)).numpy()
    truth = x[:, context:]
    delta = x[:, context - 1] - x[:, context - 2]
    repeat = np.repeat(x[:, context - 1:context], n_pred, 1)
    results = {"repeat last": per_step(repeat, truth),
               "linear extrapolation": per_step(np.clip(np.stack([x[:, context - 1] + (k + 1) * delta
                                                                  for k in range(n_pred)], 1), 0, 1), truth)}
    chunks = np.array_split(x[:, :context], max(1, n_clips // chunk))
    # The output of `predict` (its change scaled by the gain fitted on the context), and the network alone.
    start = time.perf_counter()
    pred = np.concatenate([rollout_with_gain(model, torch.from_numpy(c), n_pred) for c in chunks])
    seconds = time.perf_counter() - start
    alone = np.concatenate([model.rollout(torch.from_numpy(c), n_pred).numpy() for c in chunks])
    results["frame predictor"] = per_step(pred, truth)
    results["frame predictor, network alone (--no-fallback)"] = per_step(alone, truth)
    objects = absent = matched = None
    if kind == "scenes":  # objects told from the scene by its background, drawn with the same seeds
        from rocksynth.data.videos import scenes_with_truth

        _, backgrounds, _ = scenes_with_truth(n_clips, context + n_pred, size, "heldout", HELDOUT_START, background=True)
        scene = to_tensor(backgrounds).numpy()[:, context:]
        counts = object_counts(truth, scene)
        predicted_counts = {"repeat last": object_counts(repeat, scene),
                            "frame predictor": object_counts(pred, scene),
                            "frame predictor, network alone": object_counts(alone, scene)}
        objects = {}
        for method, found in predicted_counts.items():
            objects[method] = same_count(found, counts)
            # Which way the count is wrong: objects lost (merged, faded) or invented (split, ghosts).
            objects[f"{method}: fewer than the truth"] = list((found < counts).mean(0))
            objects[f"{method}: more than the truth"] = list((found > counts).mean(0))
        # Object by object: a lost and an invented object leave the count right; these do not.
        matched = {}
        for method, frames in (("repeat last", repeat), ("frame predictor", pred)):
            lost, invented = lost_and_invented(frames, truth, scene)
            matched[f"{method}: no object lost or invented"] = list(((lost == 0) & (invented == 0)).mean(0))
            matched[f"{method}: true objects lost"] = list(lost.sum(0) / np.maximum(counts.sum(0), 1))
            matched[f"{method}: regions invented per clip"] = list(invented.mean(0))
        absent = absent_objects(pred, truth, scene, steps=tuple(k for k in (1, 5) if k <= pred.shape[1]))
    porosity = None
    if kind == "rocks":  # binary slices, 1 = pore: `predict` makes the prediction binary as here
        from rocksynth.pipelines.predict import binarize_keeping_porosity

        last = (x[:, context - 1] > 0.5).mean((1, 2, 3))
        binary = np.stack([binarize_keeping_porosity(clip, fraction) for clip, fraction in zip(pred, last)])
        results["frame predictor, binary (the output)"] = per_step(binary.astype(np.float32), truth)
        true_porosity = (truth > 0.5).mean((2, 3, 4))
        porosity = {"truth": list(true_porosity.mean(0))}
        for method, frames in (("repeat last", repeat),
                               ("frame predictor, thresholded at one half", pred),
                               ("frame predictor, binary (the output)", binary)):
            predicted = (frames > 0.5).mean((2, 3, 4))
            porosity[method] = list(predicted.mean(0))
            porosity[f"{method}: mean abs. error per clip"] = list(np.abs(predicted - true_porosity).mean(0))
    return {"name": f"{kind}: frame predictor {Path(checkpoint).name}", "frame": size, "clips": n_clips,
            "context": context, "predicted": n_pred, "bits_per_dim": None, "results": results,
            "frames_per_s": {"batched": n_clips * n_pred / seconds}, "objects": objects, "matched_objects": matched, "absent_objects": absent,
            "porosity": porosity}


@torch.no_grad()
def rollout_with_gain(model, context: torch.Tensor, n_pred: int) -> np.ndarray:
    """The frame predictor's rollout as `predict` makes it: each clip's change scaled by the gain
    fitted on its context (`FramePredictor.context_gain`)."""
    return model.rollout(context, n_pred, gain=model.context_gain(context)).numpy()


def object_regions(frame, background, tolerance=OBJECT_TOLERANCE, min_pixels=OBJECT_MIN_PIXELS):
    """The objects of one frame (C, s, s): boolean masks of its 8-connected components of at
    least `min_pixels` pixels that differ from the scene's background by more than `tolerance` in
    some channel, as the `objects` training loss finds them. Objects that overlap are one region."""
    return masks_of_objects((np.abs(frame - background) > tolerance).any(0), min_pixels)


def object_counts(frames, backgrounds, tolerance=OBJECT_TOLERANCE, min_pixels=OBJECT_MIN_PIXELS):
    """Objects (`object_regions`) in each frame of clips (n, P, C, s, s), counted the same way in
    the truth and in a prediction."""
    counts = np.zeros(frames.shape[:2], dtype=int)
    for index in np.ndindex(*frames.shape[:2]):
        counts[index] = len(object_regions(frames[index], backgrounds[index], tolerance, min_pixels))
    return counts


def absent_objects(pred, truth, backgrounds, steps=(1, 5), tolerance=OBJECT_TOLERANCE, min_pixels=OBJECT_MIN_PIXELS):
    """For the true objects (`object_regions`) at the given steps: how many the prediction does
    not show where they are (fewer than `min_pixels` of their pixels differ from the background
    by more than `tolerance`), and the median contrast and size of those absent and of those
    shown."""
    rows = {}
    for step in steps:
        shown, absent = [], []
        for p, t, b in zip(pred[:, step - 1], truth[:, step - 1], backgrounds[:, step - 1]):
            contrast = np.abs(t - b).max(0)
            seen = np.abs(p - b).max(0) > tolerance
            for region in object_regions(t, b, tolerance, min_pixels):
                (shown if seen[region].sum() >= min_pixels else absent).append((contrast[region].mean(), region.sum()))
        rows[step] = {"objects": len(shown) + len(absent), "absent": len(absent),
                      "absent_contrast": float(np.median([c for c, _ in absent])) if absent else None,
                      "absent_pixels": float(np.median([s for _, s in absent])) if absent else None,
                      "shown_contrast": float(np.median([c for c, _ in shown])) if shown else None,
                      "shown_pixels": float(np.median([s for _, s in shown])) if shown else None}
    return rows


def lost_and_invented(pred, truth, backgrounds, tolerance=OBJECT_TOLERANCE, min_pixels=OBJECT_MIN_PIXELS):
    """Per clip and predicted step (n, P), of clips (n, P, C, s, s): the true objects
    (`object_regions`) that the prediction does not show where they are (fewer than `min_pixels`
    of their pixels differ from the background by more than `tolerance`), and the regions of the
    prediction that show no true object (fewer than `min_pixels` of their pixels are where the
    truth differs from its background): objects lost and objects invented."""
    lost = np.zeros(pred.shape[:2], dtype=int)
    invented = np.zeros(pred.shape[:2], dtype=int)
    for index in np.ndindex(*pred.shape[:2]):
        p, t, b = pred[index], truth[index], backgrounds[index]
        shown, real = (np.abs(p - b) > tolerance).any(0), (np.abs(t - b) > tolerance).any(0)
        lost[index] = sum(shown[region].sum() < min_pixels for region in masks_of_objects(real, min_pixels))
        invented[index] = sum(real[region].sum() < min_pixels for region in masks_of_objects(shown, min_pixels))
    return lost, invented


def same_count(counts, truth):
    """Per predicted step, the fraction of clips whose object count equals the truth's."""
    return list((counts == truth).mean(0))


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
    if r.get("objects"):
        step_table("objects counted as in the truth, and fewer or more than the truth (fraction of clips), per step:", r["objects"], steps, 2)
    if r.get("matched_objects"):
        step_table("object by object: clips with no true object lost and no region invented (fraction), true objects "
                   "lost (fraction of all) and regions invented (mean per clip), per step:", r["matched_objects"], steps, 2)
    for step, row in (r.get("absent_objects") or {}).items():
        if not row["absent"] or row["absent"] == row["objects"]:
            print(f"step {step}: {row['absent']} of {row['objects']} true objects absent from the output where they are")
            continue
        print(f"step {step}: {row['absent']} of {row['objects']} true objects absent from the output where they are; "
              f"median contrast {row['absent_contrast']:.3f} and size {row['absent_pixels']:.0f} px of those, against "
              f"{row['shown_contrast']:.3f} and {row['shown_pixels']:.0f} px of those shown")
    if r.get("porosity"):
        step_table("porosity of the slices, mean over clips, and its mean error per clip:", r["porosity"], steps, 3)
    speed = r["frames_per_s"]
    print(f"speed ({torch.get_num_threads()} threads; sequential and parallel at batch 1): "
          + ", ".join(f"{k} {v:.2f} frames/s" for k, v in speed.items()))
    for row in r.get("parallel_vs_sequential", []):
        print(f"parallel ({row['steps']} steps): {row['speedup']:.1f}x the sequential decoding speed "
              f"({row['speedup_end_to_end']:.1f}x end to end), mean PSNR {row['psnr']:.2f} dB against "
              f"{row['psnr_sequential']:.2f} dB (both T=1)")


def step_table(title, rows, steps, digits):
    """Print a Markdown table of one value per predicted step for each named row."""
    print(title)
    print("| method | " + " | ".join(f"step {t + 1}" for t in range(steps)) + " |")
    print("|---|" + "---|" * steps)
    for method, values in rows.items():
        print(f"| {method} | " + " | ".join(f"{v:.{digits}f}" for v in values) + " |")


def strip_figure(path, model, kind, context, n_pred, seed=0, n_clips=3):
    """PNG: for a few held-out clips, the true frames above the latent transformer's."""
    vqvae, transformer, payload = load_predictor(model)
    clips = to_tensor(heldout_clips(kind, max(n_clips, 2), context + n_pred, payload["config"]["frame"]["size"]))
    draw_strip(path, clips.numpy()[:n_clips], context,
               lambda i, frames: predict_frames(vqvae, transformer, frames, n_pred, seed=seed + i)[0])


@torch.no_grad()
def predictor_strip(path, checkpoint, kind, context, n_pred, n_clips=3, size=64):
    """PNG: for a few held-out clips, the true frames above the frame predictor's, as `predict` makes
    them (the change scaled by the context gain)."""
    model = frame_predictor(checkpoint)
    clips = to_tensor(heldout_clips(kind, max(n_clips, 2), context + n_pred, size)).numpy()[:n_clips]
    draw_strip(path, clips, context, lambda i, frames: rollout_with_gain(model, torch.from_numpy(frames)[None], n_pred)[0])


def is_predictor(model) -> bool:
    """Whether a shipped video model or checkpoint is a frame predictor (not a latent transformer)."""
    return load_predictor(model)[0] is None


def frame_predictor(model):
    """The frame predictor of a shipped video model or checkpoint (`load_predictor`'s)."""
    vqvae, predictor, _ = load_predictor(model)
    if vqvae is not None:
        raise SystemExit(f"{model}: a latent transformer, not a frame predictor")
    return predictor


def draw_strip(path, clips, context, predict):
    """Rows of true and predicted frames of clips (n, T, C, s, s) in [0, 1]; `predict(i, frames)`
    continues clip i's context frames (context, C, s, s). Context frames are framed in blue,
    predicted ones in orange."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_clips, steps = clips.shape[:2]
    fig, axes = plt.subplots(2 * n_clips, steps, figsize=(1.1 * steps, 2.3 * n_clips))
    for i in range(n_clips):
        pred = predict(i, clips[i, :context])
        rows = [("true", clips[i]), ("model", np.concatenate([clips[i, :context], pred]))]
        for r, (label, frames) in enumerate(rows):
            for t in range(steps):
                ax = axes[2 * i + r, t]
                image = frames[t].transpose(1, 2, 0).clip(0, 1)
                ax.imshow(image if image.shape[-1] == 3 else image[..., 0], cmap="gray", vmin=0, vmax=1,
                          interpolation="nearest")
                ax.set_xticks([]), ax.set_yticks([])
                for spine in ax.spines.values():
                    spine.set_color("tab:blue" if t < context else "tab:orange")
                    spine.set_linewidth(2)
                if t == 0:
                    ax.set_ylabel(label, fontsize=8)
                if i == 0 and r == 0:
                    ax.set_title(f"t={t}" + (" (ctx)" if t < context else ""), fontsize=7)
    fig.tight_layout(pad=0.2)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def curve_figure(path, model):
    """PNG of a latent transformer's learning curve, from the curve its checkpoint carries:
    held-out bits/dim, and the PSNR of greedily predicted frames beside repeat-last."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = load_predictor(model)[2]["meta"]["curve"]
    curve = {k: np.array([float(r[k]) for r in rows]) for k in rows[0]}
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    axes[0].plot(curve["iteration"], curve["heldout_bpd"])
    axes[1].plot(curve["iteration"], curve["heldout_psnr_pred"], label="model (greedy)")
    axes[1].plot(curve["iteration"], curve["heldout_psnr_repeat_last"], "--", label="repeat last")
    axes[0].set(xlabel="transformer iteration", ylabel="held-out bits/dim")
    axes[1].set(xlabel="transformer iteration", ylabel="held-out predicted-frame PSNR (dB)")
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main():
    global HELDOUT_START  # --heldout-start
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=32)
    parser.add_argument("--context", type=int, default=3)
    parser.add_argument("--predict", type=int, default=6)
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--steps", default="1,2,8", help="parallel decoding rounds per frame to compare, comma-separated")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--shapes-model", default="shapes")
    parser.add_argument("--rocks-model", default="rocks")
    parser.add_argument("--only", choices=["shapes", "rocks", "none"])
    parser.add_argument("--predictor", help="a frame-predictor checkpoint or shipped name (scenes): benchmark it (alone) on --set")
    parser.add_argument("--set", default="scenes", choices=["scenes", "moving", "rocks"],
                        help="held-out set for --predictor (rocks: 64x64 crops of the held-out last quarter of x)")
    parser.add_argument("--size", type=int, default=64, help="frame side of the held-out clips of a frame predictor (--predictor, or a predictor as --rocks-model)")
    parser.add_argument("--heldout-start", type=int, default=HELDOUT_START,
                        help="first held-out procedural clip (seed): another range, e.g. 3000, chooses among "
                             "checkpoints without touching the benchmark's clips")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--strips", help="write docs figures predict_{shapes,rocks}_strip.png into this folder (the rocks "
                                         "one if --rocks-model is a transformer; with --predictor: predict_SET_strip.png)")
    parser.add_argument("--curves", action="store_true",
                        help="with --strips: also plot the shapes transformer's learning curve (predict_curves.png), "
                             "from its checkpoint")
    args = parser.parse_args()
    HELDOUT_START = args.heldout_start
    steps = [int(k) for k in args.steps.split(",")]
    torch.set_num_threads(args.threads)
    if args.strips and args.predictor:
        predictor_strip(Path(args.strips) / f"predict_{args.set}_strip.png", args.predictor, args.set, args.context,
                        args.predict)
        return
    if args.strips:
        folder = Path(args.strips)
        strip_figure(folder / "predict_shapes_strip.png", args.shapes_model, "moving", args.context, args.predict)
        if not is_predictor(args.rocks_model):  # a frame predictor's strip: --predictor ROCKS --set rocks
            strip_figure(folder / "predict_rocks_strip.png", args.rocks_model, "rocks", args.context, args.predict)
        if args.curves:
            curve_figure(folder / "predict_curves.png", args.shapes_model)
        return
    runs = []
    if args.predictor:
        runs.append(bench_predictor(args.predictor, args.set, args.clips, args.context, args.predict, args.size))
        report(runs[-1])
        args.only = "none"
    if args.only in (None, "shapes"):
        runs.append(bench("moving objects (balls + shapes)", args.shapes_model, "moving", args.clips, args.context,
                          args.predict, args.samples, 0, steps))
        report(runs[-1])
    if args.only in (None, "rocks"):
        if is_predictor(args.rocks_model):
            runs.append(bench_predictor(args.rocks_model, "rocks", args.clips, args.context, args.predict, args.size))
        else:
            runs.append(bench("rock slices (Berea + Ketton, held-out last quarter of x)", args.rocks_model, "rocks",
                              args.clips, args.context, args.predict, args.samples, 0, steps))
        report(runs[-1])
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(runs, handle, indent=2)


if __name__ == "__main__":
    main()
