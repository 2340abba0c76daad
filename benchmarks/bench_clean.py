"""Benchmark `rocksynth clean`: ink IoU, PSNR and the DIBCO metrics of the U-Net vs classical binarizations, and an A0 sheet.

Quality: N procedural drawings (seeds from BENCHMARK_SEEDS, never used in training or validation),
sizes cycling through SIZES, every degradation switched on at random (each in a good share of the
images). Sauvola's window and k are tuned on 24 validation-seed images first, so the classical
baseline is at its best. IoU is per image (images with ink), averaged, and pooled over all pixels;
PSNR is of the 0/255 output against the 0/255 target (MSE over the image, capped at 60 dB); for
the U-Net also of its `--soft` output (8-bit gray ink probability). The U-Net is scored with the
CLI's default test-time augmentation (--tta, 8 dihedral views) and with one view.

A second table adds doxapy's Otsu, Sauvola, Wolf, ISauvola and Su at doxapy's default parameters
and scores every method on the document binarization contests' (DIBCO) metrics: F-measure,
pseudo-F-measure, PSNR and DRD (benchmarks/clean_metrics.py; needs `pip install doxapy`). F, p-F
and DRD are averaged over the images with ink, PSNR over all (capped at 60 dB, as above).

A0: a 10000 x 14000 gray scan (a 1000 x 1400 degraded sheet tiled 10 x 10) is written as PNG and
cleaned by the real CLI in a subprocess; its peak RSS and megapixels per second are printed.
--a4 does the same with a 3000 x 2800 sheet (about A4 at 300 dpi), --threads sets the CLI's threads.

    OMP_NUM_THREADS=1 python benchmarks/bench_clean.py --images 200 [--a0] [--model drawings] [--tta 8]
    OMP_NUM_THREADS=1 python benchmarks/bench_clean.py --no-quality --figures docs/img --curve CSV
    OMP_NUM_THREADS=1 python benchmarks/bench_clean.py --no-quality --one-at-a-time 60
    OMP_NUM_THREADS=1 python benchmarks/bench_clean.py --no-quality --threshold-check 60
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import clean_metrics

SIZES = [(256, 256), (256, 384), (384, 384), (384, 512), (512, 512)]


def _metrics(predicted, target):
    from rocksynth.training.clean import binary_psnr, ink_iou

    return (ink_iou(predicted, target), binary_psnr(predicted, target),
            int(np.logical_and(predicted, target).sum()), int(np.logical_or(predicted, target).sum()))


def _summary(rows, targets):
    iou = [r[0] for r, t in zip(rows, targets) if t.any()]
    return {"iou_mean": float(np.mean(iou)), "iou_pooled": sum(r[2] for r in rows) / max(sum(r[3] for r in rows), 1),
            "psnr_mean": float(np.mean([r[1] for r in rows]))}


def _sauvola(gray, window, k):
    from skimage.filters import threshold_sauvola

    return gray < threshold_sauvola(gray, window_size=window, k=k)


def _otsu(gray):
    from skimage.filters import threshold_otsu

    return gray < threshold_otsu(gray)


def tune_sauvola():
    from rocksynth.training.clean import VALIDATION_SEEDS, ink_iou, procedural_pair

    pairs = [procedural_pair(VALIDATION_SEEDS + 1000 + i, *SIZES[i % len(SIZES)]) for i in range(24)]
    best = None
    for window in (15, 25, 41, 61):
        for k in (0.05, 0.1, 0.2, 0.3, 0.4, 0.5):
            score = np.mean([ink_iou(_sauvola(s, window, k), t) for s, t in pairs if t.any()])
            if best is None or score > best[0]:
                best = (score, window, k)
    return best[1], best[2]


def threshold_check(count, model_name, tile, overlap, tta):
    """IoU / PSNR of the U-Net at several thresholds on validation-seed drawings (not the benchmark's)."""
    from rocksynth.pipelines.clean import ink_probability, load_cleaner
    from rocksynth.training.clean import VALIDATION_SEEDS, binary_psnr, ink_iou, procedural_pair

    model = load_cleaner(model_name)
    thresholds = (0.4, 0.45, 0.5, 0.55, 0.6)
    scores = {t: [] for t in thresholds}
    for i in range(count):
        scan, target = procedural_pair(VALIDATION_SEEDS + 2000 + i, *SIZES[i % len(SIZES)])
        probability = ink_probability(scan, model, tile=tile, overlap=overlap, tta=tta)
        for t in thresholds:
            ink = probability > t
            scores[t].append((ink_iou(ink, target), binary_psnr(ink, target)))
    print(f"\nThreshold on {count} validation-seed drawings ({tta} views):\n| threshold | IoU mean | PSNR (dB) |\n|---|---|---|")
    for t, values in scores.items():
        values = np.array(values)
        print(f"| {t:.2f} | {100 * values[:, 0].mean():.1f} % | {values[:, 1].mean():.2f} |")


def benchmark_image(i: int):
    """(scan, target, degradation switches) of benchmark image i."""
    from rocksynth.data.degrade import DEGRADATIONS, degraded_pair
    from rocksynth.data.drawings import render_drawing
    from rocksynth.training.clean import BENCHMARK_SEEDS

    rng = np.random.default_rng(BENCHMARK_SEEDS + i)
    h, w = SIZES[i % len(SIZES)]
    # Record which degradations this image got: draw the switches first, then force them.
    switches = {name: bool(rng.random() < 0.5) for name in DEGRADATIONS}
    scan, target = degraded_pair(rng, render_drawing(rng, h, w), force=switches)
    return scan, target, switches


def error_location(count, model_name, tile, overlap, tta):
    """Where the U-Net's wrong pixels lie: within 1 pixel of the target's ink boundary (where
    the place of an edge is a matter of a pixel) or farther (missed or invented strokes)."""
    from scipy import ndimage

    from rocksynth.pipelines.clean import ink_probability, load_cleaner

    model = load_cleaner(model_name)
    ink, wrong, at_edge, far = 0, {}, {}, {}
    for i in range(count):
        scan, target, _ = benchmark_image(i)
        ours = ink_probability(scan, model, tile=tile, overlap=overlap, tta=tta) > 0.5
        ink += int(target.sum())
        for kind, mask, distance in (("false ink", ours & ~target, ndimage.distance_transform_edt(~target)),
                                     ("missed ink", ~ours & target, ndimage.distance_transform_edt(target))):
            wrong[kind] = wrong.get(kind, 0) + int(mask.sum())
            at_edge[kind] = at_edge.get(kind, 0) + int((mask & (distance <= 1)).sum())
            far[kind] = far.get(kind, 0) + int((mask & (distance > 2)).sum())
    print(f"\nerror location on the first {count} benchmark images ({ink} target ink pixels):")
    for kind in wrong:
        print(f"{kind}: {wrong[kind]} pixels ({wrong[kind] / ink:.1%} of the ink); within 1 px of the target's "
              f"boundary {at_edge[kind] / max(wrong[kind], 1):.1%}, more than 2 px away {far[kind] / max(wrong[kind], 1):.1%}")


def one_at_a_time(count, model_name, tile, overlap, tta):
    """U-Net IoU / PSNR with no degradation (paper colour only) and with each degradation alone:
    which degradations cost the points the mixed benchmark loses."""
    from rocksynth.data.degrade import DEGRADATIONS, degraded_pair
    from rocksynth.data.drawings import render_drawing
    from rocksynth.pipelines.clean import ink_probability, load_cleaner
    from rocksynth.training.clean import BENCHMARK_SEEDS

    model = load_cleaner(model_name)
    print(f"\nEach degradation alone, {count} images each (paper colour random, all else off; U-Net with {tta} views):")
    print("| degradation | IoU mean | PSNR (dB) |\n|---|---|---|")
    for name in ("none",) + DEGRADATIONS:
        rows, targets = [], []
        for i in range(count):
            rng = np.random.default_rng(BENCHMARK_SEEDS + 200_000 + i)  # the same drawings for every row
            h, w = SIZES[i % len(SIZES)]
            force = {d: d == name for d in DEGRADATIONS}
            scan, target = degraded_pair(rng, render_drawing(rng, h, w), force=force)
            rows.append(_metrics(ink_probability(scan, model, tile=tile, overlap=overlap, tta=tta) > 0.5, target))
            targets.append(target)
        s = _summary(rows, targets)
        print(f"| {name} | {100 * s['iou_mean']:.1f} % | {s['psnr_mean']:.2f} |", flush=True)


def _dibco_summary(values, targets):
    """Means of the DIBCO metrics: F, p-F and DRD over the images with ink, PSNR over all (capped at 60 dB)."""
    has_ink = [t.any() for t in targets]
    inked = [v for v, ink in zip(values, has_ink) if ink]
    return {"fm": float(np.mean([v["fm"] for v in inked])), "pfm": float(np.mean([v["pfm"] for v in inked])),
            "drd": float(np.mean([v["drd"] for v in inked])),
            "dibco_psnr": float(np.mean([min(v["psnr"], 60.0) for v in values]))}


def _version(package):
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "?"


def quality(count, model_name, tile, overlap, tta):
    from rocksynth.data.degrade import DEGRADATIONS, scan_to_gray
    from rocksynth.pipelines.clean import ink_probability, load_cleaner
    from rocksynth.training.clean import soft_psnr

    clean_metrics.doxapy()  # before the long part: a missing doxapy stops here with a one-line message
    model = load_cleaner(model_name)
    window, k = tune_sauvola()
    print(f"Sauvola tuned on validation seeds: window {window}, k {k}")
    views = sorted({tta, 1}, reverse=True)
    unet = {v: f"U-Net (ours, {v} view{'s' if v > 1 else ''})" for v in views}
    first = list(unet.values()) + ["Otsu", f"Sauvola (w={window}, k={k})"]  # the methods of the first table
    doxa = {f"{name} (doxapy)": name for name in clean_metrics.BASELINES}
    rows = {name: [] for name in first + list(doxa)}  # IoU / PSNR tuples (_metrics) per image
    dibco = {name: [] for name in rows}  # DIBCO metrics per image
    soft = {name: [] for name in unet.values()}
    targets, all_switches, seconds, pixels = [], [], {v: 0.0 for v in views}, 0
    for i in range(count):
        scan, target, switches = benchmark_image(i)
        gray = scan_to_gray(scan)
        ink = {}
        for v in views:
            start = time.perf_counter()
            probability = ink_probability(scan, model, tile=tile, overlap=overlap, tta=v)
            seconds[v] += time.perf_counter() - start
            ink[unet[v]] = probability > 0.5
            soft[unet[v]].append(soft_psnr(probability, target))
        pixels += gray.size
        ink["Otsu"] = _otsu(gray)
        ink[f"Sauvola (w={window}, k={k})"] = _sauvola(gray, window, k)
        for label, name in doxa.items():
            ink[label] = clean_metrics.binarize(gray, name)
        skeleton = clean_metrics.skeleton(target)
        for name, found in ink.items():
            rows[name].append(_metrics(found, target))
            dibco[name].append(clean_metrics.dibco_metrics(found, target, skeleton))
        targets.append(target)
        all_switches.append(switches)
    speeds = ", ".join(f"{v} view{'s' if v > 1 else ''} {pixels / 1e6 / seconds[v]:.2f} MP/s" for v in views)
    print(f"\n{count} evaluation images, sizes {', '.join(f'{h}x{w}' for h, w in SIZES)}, "
          f"{sum(t.any() for t in targets)} with ink; U-Net speed {speeds}\n")
    print("| method | IoU of ink, mean per image | IoU pooled | PSNR (dB) | PSNR of --soft output (dB) |\n|---|---|---|---|---|")
    results = {}
    for name, r in rows.items():
        results[name] = _summary(r, targets)
        results[name].update(_dibco_summary(dibco[name], targets))
        s = results[name]
        if name in soft:
            s["soft_psnr_mean"] = float(np.mean(soft[name]))
        if name in first:
            soft_text = f"{s['soft_psnr_mean']:.2f}" if name in soft else "-"
            print(f"| {name} | {100 * s['iou_mean']:.1f} % | {100 * s['iou_pooled']:.1f} % | {s['psnr_mean']:.2f} | "
                  f"{soft_text} |")
    print(f"\nDIBCO metrics (doxapy {_version('doxapy')}: F-measure, PSNR, DRD; "
          f"pseudo-F-measure on the skeleton of the target ink). IoU, F, p-F and DRD are means over the "
          f"{sum(t.any() for t in targets)} images with ink, PSNR over all {count} (capped at 60 dB); doxapy's "
          f"baselines at its default parameters:\n")
    print("| method | IoU of ink | F-measure (%) | pseudo-F-measure (%) | PSNR (dB) | DRD |\n|---|---|---|---|---|---|")
    for name, s in results.items():
        parameters = clean_metrics.BASELINES[doxa[name]][1] if name in doxa else {}
        label = name + (f", {', '.join(f'{key} {value}' for key, value in parameters.items())}" if parameters else "")
        print(f"| {label} | {100 * s['iou_mean']:.1f} % | {s['fm']:.2f} | {s['pfm']:.2f} | {s['dibco_psnr']:.2f} | "
              f"{s['drd']:.2f} |")
    print(f"\nU-Net ({tta} views) on the images with and without each degradation (each is on in about half of them):")
    print("| degradation | images with it | IoU with | PSNR with (dB) | PSNR without (dB) |\n|---|---|---|---|---|")
    iou, psnr = (np.array([r[k] for r in rows[unet[tta]]]) for k in (0, 1))
    has_ink = np.array([t.any() for t in targets])
    for name in DEGRADATIONS:
        on = np.array([sw[name] for sw in all_switches])
        print(f"| {name} | {on.sum()} | {100 * iou[on & has_ink].mean():.1f} % | {psnr[on].mean():.2f} | "
              f"{psnr[~on].mean():.2f} |")
    either = np.array([sw["bleed"] or sw["blur"] for sw in all_switches])
    print(f"PSNR on the {(~either).sum()} images with neither bleed nor blur {psnr[~either].mean():.2f} dB, "
          f"on the {either.sum()} others {psnr[either].mean():.2f} dB")
    return results


SHEETS = {"a0": (10, 10), "a4": (3, 2)}  # tiles of the 1000 x 1400 scan: 10000 x 14000 and 3000 x 2800 px


def sheet(name, model_name, tile, overlap, tta, threads):
    """Clean a large sheet (the 1000 x 1400 degraded scan tiled) with the real CLI in a subprocess:
    MP/s and peak RSS."""
    from PIL import Image

    from rocksynth.data.degrade import degraded_pair
    from rocksynth.data.drawings import render_drawing
    from rocksynth.training.clean import BENCHMARK_SEEDS

    rng = np.random.default_rng(BENCHMARK_SEEDS + 999_999)
    scan, _ = degraded_pair(rng, render_drawing(rng, 1000, 1400), force={"gray": True})
    image = np.tile(scan, SHEETS[name])
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as folder:
        source, out = Path(folder) / f"{name}.png", Path(folder) / f"{name}_clean.png"
        Image.fromarray(image).save(source, compress_level=1)
        del image
        env = dict(os.environ, OMP_NUM_THREADS=str(threads))
        start = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "rocksynth.cli.main", "--quiet", "clean", str(source), "--out",
                                 str(out), "--model", model_name, "--tile", str(tile), "--overlap", str(overlap),
                                 "--tta", str(tta), "--threads", str(threads), "--json"],
                                capture_output=True, text=True, env=env)
        wall = time.perf_counter() - start
        if result.returncode:
            raise SystemExit(f"{name} clean failed: {result.stderr.strip()}")
        summary = json.loads(result.stdout)
        peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 ** 2
    print(f"\n{name.upper()} sheet {summary['width']} x {summary['height']} ({summary['megapixels']:.0f} MP): cleaning "
          f"{summary['megapixels_per_s']:.2f} MP/s ({summary['seconds']:.0f} s), whole command {wall:.0f} s "
          f"(read + clean + write PNG), peak RSS {peak_gb:.2f} GB, tile {tile}, overlap {overlap}, {tta} view{'s' if tta > 1 else ''}, "
          f"{threads} thread{'s' if threads > 1 else ''}")
    return summary, peak_gb


FIGURES = {  # name: degradations forced on (all others off)
    "stains": ("stains", "texture"),
    "illumination": ("illumination", "texture", "noise"),
    "fading_gaps": ("fading", "gaps", "speckle"),
    "blur_noise_jpeg": ("blur", "noise", "jpeg"),
    "bleed_skew": ("bleed", "skew", "dust"),
    "everything": ("skew", "gaps", "bleed", "fading", "texture", "stains", "illumination", "blur", "noise", "jpeg"),
}


def figures(folder, model_name, tta, curve_csv=None):
    """Before / after pictures (scan | U-Net | Sauvola | target) for docs/clean.md, and the learning curve."""
    from PIL import Image

    from rocksynth.data.degrade import DEGRADATIONS, degraded_pair, scan_to_gray
    from rocksynth.data.drawings import render_drawing
    from rocksynth.pipelines.clean import clean_image, load_cleaner
    from rocksynth.training.clean import BENCHMARK_SEEDS

    folder = Path(folder)
    model = load_cleaner(model_name)
    window, k = tune_sauvola()
    for i, (name, active) in enumerate(FIGURES.items()):
        rng = np.random.default_rng(BENCHMARK_SEEDS + 500_000 + i)
        force = {d: d in active for d in DEGRADATIONS}
        scan, target = degraded_pair(rng, render_drawing(rng, 288, 384, density=1.2), force=force)
        rgb = np.dstack([scan] * 3) if scan.ndim == 2 else scan
        ours = clean_image(scan, model, tta=tta)
        sauvola = np.where(_sauvola(scan_to_gray(scan), window, k), 0, 255).astype(np.uint8)
        truth = np.where(target, 0, 255).astype(np.uint8)
        gap = np.full((rgb.shape[0], 6, 3), 128, np.uint8)
        panels = [rgb, gap, np.dstack([ours] * 3), gap, np.dstack([sauvola] * 3), gap, np.dstack([truth] * 3)]
        Image.fromarray(np.concatenate(panels, axis=1)).save(folder / f"clean_{name}.png")
        print(f"wrote {folder / f'clean_{name}.png'}")
    if curve_csv:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        data = np.genfromtxt(curve_csv, delimiter=",", names=True)
        fig, axes = plt.subplots(1, 3, figsize=(11, 3))
        for ax, key, label in zip(axes, ("loss", "val_iou", "val_psnr"),
                                  ("training BCE", "held-out IoU of ink", "held-out PSNR (dB)")):
            ax.plot(data["iteration"], data[key])
            ax.set_xlabel("iteration")
            ax.set_title(label)
            ax.grid(alpha=0.3)
        axes[0].set_yscale("log")
        fig.tight_layout()
        fig.savefig(folder / "clean_learning_curve.png", dpi=90)
        print(f"wrote {folder / 'clean_learning_curve.png'}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--model", default="drawings")
    from rocksynth.pipelines.clean import DEFAULT_OVERLAP, DEFAULT_TILE, DEFAULT_TTA, TTA_CHOICES

    parser.add_argument("--tile", type=int, default=DEFAULT_TILE)
    parser.add_argument("--overlap", type=int, default=DEFAULT_OVERLAP)
    parser.add_argument("--tta", type=int, default=DEFAULT_TTA, choices=TTA_CHOICES,
                        help="test-time views of the U-Net (the quality table also shows 1 view)")
    parser.add_argument("--a0", action="store_true", help="also clean a 10000 x 14000 sheet (A0 at 300 dpi)")
    parser.add_argument("--a4", action="store_true", help="also clean a 3000 x 2800 sheet (about A4 at 300 dpi)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the sheet runs")
    parser.add_argument("--no-quality", action="store_true", help="skip the quality benchmark")
    parser.add_argument("--figures", help="write the docs pictures into this folder")
    parser.add_argument("--curve", help="learning-curve CSV to plot with --figures")
    parser.add_argument("--error-location", type=int, metavar="N",
                        help="also tell, on the first N benchmark images, how many wrong pixels lie at the ink boundary")
    parser.add_argument("--threshold-check", type=int, metavar="N",
                        help="also score thresholds 0.4-0.6 on N validation-seed drawings")
    parser.add_argument("--one-at-a-time", type=int, metavar="N",
                        help="also score N images with no degradation and with each degradation alone")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    if not args.no_quality:
        quality(args.images, args.model, args.tile, args.overlap, args.tta)
    if args.figures:
        figures(args.figures, args.model, args.tta, args.curve)
    if args.error_location:
        error_location(args.error_location, args.model, args.tile, args.overlap, args.tta)
    if args.threshold_check:
        threshold_check(args.threshold_check, args.model, args.tile, args.overlap, args.tta)
    if args.one_at_a_time:
        one_at_a_time(args.one_at_a_time, args.model, args.tile, args.overlap, args.tta)
    for name in ("a4", "a0"):
        if getattr(args, name):
            sheet(name, args.model, args.tile, args.overlap, args.tta, args.threads)


if __name__ == "__main__":
    main()
