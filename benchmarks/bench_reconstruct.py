"""Benchmark `rocksynth reconstruct` on the held-out part of the rocks (Volkhonskiy et al. 2022 protocol).

For each rock: N random 64^3 cubes of the held-out block (the last quarter along z, never seen in
training); the input is each cube's central slice normal to z, y and x in turn (`--slice-axes z`:
the central z-slice of every cube, which in Ketton's 64-deep held-out block is the same plane for
all of them). Every property below is the same for a cube however it is turned, so a
reconstruction from an x-slice (its depth along x) is compared as it is. `--repeats R` draws the
cubes R times (seeds s, s + 1000, ...) and prints the KL's mean and spread over the draws: one
draw of 50 cubes moves the KL by about its own size. Three sets of N cubes are compared:
- real: the held-out cubes themselves;
- gan: `reconstruct` of each central slice (depth 64, seed i; the slice is pasted at the centre);
- grf: a classical baseline that also sees only the slice: a Gaussian random field whose
  covariance is the slice's S2 inverted through the thresholding relation
  S2(r) = P(X > t, Y > t | corr rho(r)), generated in 3D (isotropic, FFT), thresholded at the
  slice's porosity.
Per set: porosity, S2 (r <= 24, mean of the three axes), Euler density (6-connected pores),
permeability (PoreSpy SNOW + OpenPNM Stokes, `rocksynth.properties.permeability`, mean of x, y, z).
A fourth set, real cubes of the training block, gives the floor: the KL a perfect model of the
training data would score against the held-out block (the two blocks of one rock differ).
Reported: KL(real || set) of porosity, log10 permeability and Euler density, three ways: between
Gaussian kernel density estimates (smooth; the figure to read against the paper), and with
`rocksynth.properties.compare.kl_divergence` on 10- and 50-bin pooled histograms (with 50 samples
those are dominated by empty bins, each costing up to log(1/1e-10) = 23), the mean absolute S2 error, raw central-slice agreement of the GAN, and the paper's Table 1 for reference.
Then inference timing: a 128^2 slice -> 128^3 (2 threads), and a 400^2 slice -> 400^3 through the
CLI in a child process with its peak resident memory.

    OMP_NUM_THREADS=1 python benchmarks/bench_reconstruct.py                   # both rocks, 50 cubes
    OMP_NUM_THREADS=1 python benchmarks/bench_reconstruct.py --no-timing --repeats 5   # the docs' figures
    OMP_NUM_THREADS=1 python benchmarks/bench_reconstruct.py --rocks ketton --count 20 --no-permeability
    OMP_NUM_THREADS=1 python benchmarks/bench_reconstruct.py --no-kl --no-timing --profile 4   # porosity vs depth

Whole-slice mode (`--whole-slice`, issue #25): what a user of `rocksynth reconstruct` sees first. The
README's Berea slice (400^2) and a held-out z-slice of Ketton (256^2) and of the fractures volume
(100^2) are each reconstructed 128 deep in one call of `rocksynth.pipelines.reconstruct.reconstruct`
(the CLI's), with the rock's shipped model (berea for Berea and fractures, ketton for Ketton). Printed
as markdown tables: the per-z porosity sd against the real rock's over full-plane windows as deep
(goal <= 1.5x), porosity vs distance from the slice in 4-voxel bins, the far field's (beyond 40
voxels) against the real rock's (goal within 0.02), the volume's against the slice's (within 0.03;
beside it the real rock's own porosity in the same z window around the slice),
S2 along z against S2 in the plane, and the time.

    OMP_NUM_THREADS=1 python benchmarks/bench_reconstruct.py --whole-slice --figure docs/img/reconstruct_cuts.png --json-out whole.json

With `--repeats R` the whole slices are also reconstructed with R noise seeds (seed, seed + 1, ...)
and the goal figures are printed as mean +- sd over the draws, the goals judged on the mean: one
draw's far field moves by about 0.01 with the seed.

    OMP_NUM_THREADS=1 python benchmarks/bench_reconstruct.py --whole-slice --repeats 5 --json-out whole.json
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from rocksynth.properties.compare import kde_kl, kl_divergence

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
ROCKS = {"berea": ("berea_400.tif", 5.345e-6), "ketton": ("ketton_256.tif", None)}
PAPER_TABLE1 = {"berea": {"porosity": 0.27, "permeability": 0.25}, "ketton": {"porosity": 0.14, "permeability": 0.06}}
R_MAX = 24
K_FLOOR_MD = 1e-3  # non-percolating cubes (K = 0) enter the log-permeability histogram here


def grf_baseline(slice_mask: np.ndarray, depth: int, seed: int) -> np.ndarray:
    """A thresholded Gaussian random field with the slice's porosity and (inverted) S2."""
    from scipy.stats import multivariate_normal, norm

    from rocksynth.properties.correlation import two_point_correlation

    phi = float(slice_mask.mean())
    t = norm.ppf(1 - phi)  # pore = field > t
    s2 = two_point_correlation(slice_mask, min(R_MAX, min(slice_mask.shape) - 1))
    rhos = np.linspace(-0.3, 1.0, 131)
    upper = [1 - 2 * norm.cdf(t) + multivariate_normal([0, 0], [[1, r], [r, 1]], allow_singular=True).cdf([t, t])
             for r in rhos]
    rho = np.interp(s2, upper, rhos)  # S2 is increasing in rho
    rho[0] = 1.0
    size = (depth, *slice_mask.shape)
    grid = [np.fft.fftfreq(2 * n) * 2 * n for n in size]  # signed lags on a 2x padded periodic grid
    dist = np.sqrt(sum(np.meshgrid(*[g ** 2 for g in grid], indexing="ij", sparse=True)))
    cov = np.interp(dist, np.arange(len(rho)), rho, right=0.0)
    spectrum = np.clip(np.fft.rfftn(cov).real, 0, None)
    noise = np.random.default_rng(seed).standard_normal(cov.shape)
    field = np.fft.irfftn(np.fft.rfftn(noise) * np.sqrt(spectrum), s=cov.shape, axes=(0, 1, 2))[:size[0], :size[1], :size[2]]
    return field > np.quantile(field, 1 - phi)


def properties(cube: np.ndarray, voxel_size, with_permeability: bool) -> dict:
    from rocksynth.errors import BadInputError
    from rocksynth.properties.correlation import two_point_correlation
    from rocksynth.properties.minkowski import minkowski_functionals
    from rocksynth.properties.network import extract_network
    from rocksynth.properties.permeability import network_permeability

    out = {"porosity": float(cube.mean()), "s2": two_point_correlation(cube, R_MAX).tolist(),
           "euler_density": minkowski_functionals(cube)["euler_density"]}
    if with_permeability:
        try:
            results = network_permeability(extract_network(cube), voxel_size or 1.0, ("x", "y", "z"),
                                           formation_factor=False)
            # Without a voxel size K is in voxel^2; it is still compared like with like.
            out["permeability"] = float(np.mean([r.k_md if voxel_size else r.k_voxel2 for r in results]))
        except (IndexError, ValueError, BadInputError):  # no pore network (SNOW finds no throats): no flow
            out["permeability"], out["network_failed"] = 0.0, True
    return out


def _quiet_properties(args):
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return properties(*args)


def bootstrap_kde_kl(real: np.ndarray, others: "dict[str, np.ndarray]", resamples: int, seed: int = 0) -> dict:
    """KDE-KL(real || set) over `resamples` bootstrap resamples, the same resample of the real cubes
    for every set (so the sets are compared on equal footing), each set resampled on its own.

    Returns per set the standard deviation of the KL and, for every other set, the share of
    resamples in which this set's KL is the smaller: with 50 cubes a side, KLs that differ by
    less than about one standard deviation do not say which set is closer to the real one."""
    rng = np.random.default_rng(seed)
    draws = {label: [] for label in others}
    for _ in range(resamples):
        r = rng.choice(real, real.size)
        for label, values in others.items():
            draws[label].append(kde_kl(r, rng.choice(values, values.size)))
    draws = {label: np.array(v) for label, v in draws.items()}
    return {label: {"kl_kde_sd": float(np.nanstd(v, ddof=1)),
                    "kl_kde_smaller_share": {other: float(np.mean(v < w)) for other, w in draws.items() if other != label}}
            for label, v in draws.items()}


def _property_values(rows: "list[dict]", key: str) -> np.ndarray:
    v = np.array([row[key] for row in rows], float)
    return np.log10(np.maximum(v, K_FLOOR_MD)) if key == "permeability" else v


def _property_keys(with_permeability: bool) -> "list[str]":
    return ["porosity", "euler_density"] + (["permeability"] if with_permeability else [])


def summarize(real: "list[dict]", other: "list[dict]", with_permeability: bool) -> dict:

    out = {}
    for key in _property_keys(with_permeability):
        r, o = _property_values(real, key), _property_values(other, key)
        out[key] = {"kl10": kl_divergence(r, o, bins=10), "kl50": kl_divergence(r, o, bins=50), "kl_kde": kde_kl(r, o),
                    "mean": float(np.mean(o)), "std": float(np.std(o))}
    s2r, s2o = np.mean([row["s2"] for row in real], 0), np.mean([row["s2"] for row in other], 0)
    out["s2_mae"] = float(np.mean(np.abs(s2r - s2o)))
    out["s2_rel"] = float(np.mean(np.abs(s2r - s2o)) / np.mean(s2r))
    return out


def properties_code_version() -> str:
    """A hash of the code that computes the cached properties (rocksynth/properties/*.py), part of
    the cache key: a cache written before a change of that code is not reused. (The figures of
    this benchmark published before commit 8da518a give the real cubes log10 K 3.05 (Berea) where
    today's code gives 2.96 for the same cubes: their cache predates the conduit-length fix of
    4f93549, while the generated cubes were measured after it.)"""
    import hashlib

    import rocksynth.properties

    digest = hashlib.sha1()
    for path in sorted(Path(rocksynth.properties.__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:10]


def slice_normal_axes(count: int, axes: str) -> "list[int]":
    """The axis each cube's input slice is normal to: z for all, or z, y, x in turn ("xyz")."""
    return [0] * count if axes == "z" else [i % 3 for i in range(count)]


def run_rock(rock: str, model, count: int, size: int, seed: int, with_permeability: bool, cache: "Path | None",
             resamples: int = 0, slice_axes: str = "xyz") -> dict:
    import tifffile

    from rocksynth.data.crops import disjoint_cube_count, held_out_cubes, split_holdout
    from rocksynth.pipelines.reconstruct import reconstruct

    name, voxel = ROCKS[rock]
    split = split_holdout(rock, tifffile.imread(DATA / name) > 0)
    cubes = held_out_cubes(split.held_out, size, count, seed)
    # Real cubes of the training block: how far apart the two blocks of the same rock are
    # (the KL a perfect model of the training data would score on the held-out block).
    train_cubes = held_out_cubes(split.train, size, count, seed)
    print(f"\n== {rock}: {count} held-out {size}^3 cubes from a {split.held_out.shape} block "
          f"({disjoint_cube_count(split.held_out, size)} disjoint cubes fit; the rest overlap)", flush=True)
    # The input is each cube's central slice normal to its axis. Every property compared here
    # (porosity, Euler density, K and S2 averaged over the three axes) does not depend on how a
    # cube is turned, so a reconstruction is compared as it comes out, its depth along axis 0.
    # z-slices only: in a held-out block one cube deep (Ketton's, 64 voxels) every input is a
    # window of the same plane; "xyz" gives every cube its own slice.
    slices = [np.moveaxis(cube, axis, 0)[size // 2] for cube, axis in zip(cubes, slice_normal_axes(count, slice_axes))]
    tick = time.perf_counter()
    gan, grf, agreement = [], [], []
    for i, section in enumerate(slices):
        volume, agree = reconstruct(model, section, depth=size, seed=seed + i)
        gan.append(volume)
        agreement.append(agree)
    gan_seconds = time.perf_counter() - tick
    tick = time.perf_counter()
    grf = [grf_baseline(section, size, seed + i) for i, section in enumerate(slices)]
    grf_seconds = time.perf_counter() - tick
    slice_porosity = float(np.mean([section.mean() for section in slices]))
    print(f"input slices normal to {'z' if slice_axes == 'z' else 'z, y, x in turn'}: mean porosity "
          f"{slice_porosity:.4f} (cubes {np.mean([cube.mean() for cube in cubes]):.4f})", flush=True)
    print(f"generated {count} GAN cubes in {gan_seconds:.1f} s, {count} GRF cubes in {grf_seconds:.1f} s; "
          f"GAN raw central-slice agreement {np.mean(agreement):.4f} (min {np.min(agreement):.4f})", flush=True)

    sets, code_version = {}, properties_code_version()
    for label, group in (("real", list(cubes)), ("train", list(train_cubes)), ("gan", gan), ("grf", grf)):
        key = f"{rock}_{label}_{count}_{size}_{seed}_{int(with_permeability)}_{code_version}"
        path = cache / f"{key}.json" if cache and label in ("real", "train") else None
        if path and path.is_file():
            sets[label] = json.loads(path.read_text())
            continue
        tick = time.perf_counter()
        sets[label] = [_quiet_properties((cube, voxel, with_permeability)) for cube in group]
        print(f"  properties of {label}: {time.perf_counter() - tick:.0f} s", flush=True)
        if path:
            path.write_text(json.dumps(sets[label]))
    failed = {label: sum(row.get("network_failed", False) for row in rows) for label, rows in sets.items()}
    if any(failed.values()):
        print(f"  network extraction failed (no pore network; K = 0) on: {failed}")
    result = {"slice_axes": slice_axes, "slice_porosity": slice_porosity, "failed_networks": failed, "agreement_mean": float(np.mean(agreement)), "agreement_min": float(np.min(agreement)),
              "real": summarize(sets["real"], sets["real"], with_permeability)}
    for label in ("gan", "grf", "train"):
        result[label] = summarize(sets["real"], sets[label], with_permeability)
    keys = _property_keys(with_permeability)
    result["values"] = {label: {key: _property_values(rows, key).tolist() for key in keys} for label, rows in sets.items()}
    if resamples:
        for key in keys:
            boot = bootstrap_kde_kl(np.array(result["values"]["real"][key]),
                                    {label: np.array(result["values"][label][key]) for label in ("gan", "grf", "train")},
                                    resamples, seed)
            for label, figures in boot.items():
                result[label][key].update(figures)
    _print_rock(rock, result, with_permeability)
    return result


def _print_rock(rock: str, result: dict, with_permeability: bool) -> None:
    keys = _property_keys(with_permeability)
    print(f"{'property':<22}{'real mean±std':>22}{'GAN mean±std':>22}{'GRF mean±std':>22}"
          f"{'KDE-KL GAN':>11}{'KDE-KL GRF':>11}{'KL10 GAN':>10}{'KL10 GRF':>10}{'KL50 GAN':>10}{'KL50 GRF':>10}"
          f"{'paper KL':>10}{'floor':>8}")
    for key in keys:
        label = "log10 K" + (" (mD)" if ROCKS[rock][1] else " (vox²)") if key == "permeability" else key
        paper = PAPER_TABLE1[rock].get(key)
        fmt = (lambda s: f"{s['mean']:.3e}±{s['std']:.1e}") if key == "euler_density" else \
              (lambda s: f"{s['mean']:.3f}±{s['std']:.3f}")
        print(f"{label:<22}{fmt(result['real'][key]):>22}{fmt(result['gan'][key]):>22}{fmt(result['grf'][key]):>22}"
              f"{result['gan'][key]['kl_kde']:>11.3f}{result['grf'][key]['kl_kde']:>11.3f}"
              f"{result['gan'][key]['kl10']:>10.3f}{result['grf'][key]['kl10']:>10.3f}"
              f"{result['gan'][key]['kl50']:>10.3f}{result['grf'][key]['kl50']:>10.3f}"
              f"{(f'{paper:.2f}' if paper is not None else '-'):>10}{result['train'][key]['kl_kde']:>8.3f}")
    print(f"{'S2 mean abs error':<22}{'':>22}{result['gan']['s2_mae']:>22.4f}{result['grf']['s2_mae']:>22.4f}"
          f"   (relative {result['gan']['s2_rel']:.3f} vs {result['grf']['s2_rel']:.3f}; training-block cubes "
          f"{result['train']['s2_mae']:.4f})")
    if "kl_kde_sd" in result["gan"]["porosity"]:
        print("bootstrap (same resample of the real cubes for every set): KDE-KL ± sd; share of resamples "
              "in which the GAN's KL is below the GRF's / below the floor's")
        for key in keys:
            gan, grf, train = result["gan"][key], result["grf"][key], result["train"][key]
            print(f"  {key:<20} GAN {gan['kl_kde']:.3f} ± {gan['kl_kde_sd']:.3f}   GRF {grf['kl_kde']:.3f} ± "
                  f"{grf['kl_kde_sd']:.3f}   floor {train['kl_kde']:.3f} ± {train['kl_kde_sd']:.3f}   "
                  f"GAN < GRF in {gan['kl_kde_smaller_share']['grf']:.0%}, GAN < floor in "
                  f"{gan['kl_kde_smaller_share']['train']:.0%}")
    print(f"floor: KDE-KL between the held-out cubes and as many real cubes of the training block "
          f"(porosity {result['train']['porosity']['mean']:.3f} vs {result['real']['porosity']['mean']:.3f} held out)")


def summarize_repeats(rock: str, runs: "list[dict]", with_permeability: bool) -> dict:
    """KDE-KL of each set over repeated draws of the cubes (seeds s, s + 1000, ...): with 50 cubes
    a side one draw's KL moves by about its own size from one draw to the next, so the mean over
    draws and the count of draws the GAN wins are the figures that say which set is closer."""
    out = {}
    print(f"\n== {rock}: KDE-KL over {len(runs)} draws of the cubes (mean ± sd; draws with GAN < GRF)")
    for key in _property_keys(with_permeability):
        figures = {label: np.array([run[label][key]["kl_kde"] for run in runs]) for label in ("gan", "grf", "train")}
        wins = int(np.sum(figures["gan"] < figures["grf"]))
        out[key] = {label: {"mean": float(v.mean()), "sd": float(v.std(ddof=1)) if v.size > 1 else 0.0,
                            "each": v.tolist()} for label, v in figures.items()}
        out[key]["gan_below_grf"] = wins
        paper = PAPER_TABLE1[rock].get(key)
        print(f"  {key:<16} GAN {figures['gan'].mean():.3f} ± {out[key]['gan']['sd']:.3f}   GRF "
              f"{figures['grf'].mean():.3f} ± {out[key]['grf']['sd']:.3f}   floor {figures['train'].mean():.3f} ± "
              f"{out[key]['train']['sd']:.3f}   GAN < GRF in {wins}/{len(runs)}"
              + (f"   paper {paper:.2f}" if paper is not None else ""))
    return out


PROFILE_BANDS = ((1, 8), (9, 16), (17, 32), (33, 64), (65, 95))


def depth_profile(rock: str, model, slices: int, side: int, depth: int) -> dict:
    """Porosity of deep reconstructions against the distance from the input slice.

    `slices` held-out slices of side^2 (evenly spaced in z, windows moved across the plane) each
    give a side^2 x depth volume (seed i); the porosity in bands of distance from the central
    slice is compared with the held-out block's. A reconstruction should be as porous far from
    the slice as near it: the 64^3 cubes of the KL benchmark reach only 32 voxels out, while
    `rocksynth reconstruct` makes volumes as deep as the slice is wide by default."""
    import tifffile

    from rocksynth.data.crops import split_holdout
    from rocksynth.pipelines.reconstruct import reconstruct

    name, _ = ROCKS[rock]
    block = split_holdout(rock, tifffile.imread(DATA / name) > 0).held_out
    side = min(side, block.shape[1], block.shape[2])
    sums, slice_porosity = np.zeros(depth), []
    for i in range(slices):
        z = int(block.shape[0] * (i + 0.5) / slices)
        y0 = (i * 37) % (block.shape[1] - side + 1)
        x0 = (i * 61) % (block.shape[2] - side + 1)
        mask = block[z, y0:y0 + side, x0:x0 + side]
        slice_porosity.append(float(mask.mean()))
        volume, _ = reconstruct(model, mask, depth=depth, seed=i)
        sums += volume.mean(axis=(1, 2))
    profile = sums / slices
    distance = np.abs(np.arange(depth) - depth // 2)
    bands = {f"{lo}-{hi}": float(profile[(distance >= lo) & (distance <= hi)].mean())
             for lo, hi in PROFILE_BANDS if (distance >= lo).any()}
    result = {"real_block": float(block.mean()), "slices": float(np.mean(slice_porosity)), "bands": bands,
              "side": side, "depth": depth, "count": slices}
    print(f"\n{rock}: porosity vs distance from the slice ({slices} held-out {side}^2 slices -> depth {depth}; "
          f"held-out block {result['real_block']:.3f}, input slices {result['slices']:.3f})")
    print("| distance (voxels) | " + " | ".join(bands) + " |\n|---|" + "---|" * len(bands))
    print("| generated porosity | " + " | ".join(f"{v:.3f}" for v in bands.values()) + " |", flush=True)
    return result


def timing(model_name: str, model) -> dict:
    import torch

    from rocksynth.io import read_image
    from rocksynth.pipelines.reconstruct import reconstruct

    section = read_image(DATA / "berea_section_400.png") > 0
    torch.set_num_threads(2)
    small = section[:128, :128]
    times = []
    for i in range(3):
        tick = time.perf_counter()
        reconstruct(model, small, depth=128, seed=i)
        times.append(time.perf_counter() - tick)
    torch.set_num_threads(1)
    print(f"\n128^2 -> 128^3, 2 threads: {', '.join(f'{t:.2f}' for t in times)} s (first call includes warm-up)")
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "v400.tif"
        env = dict(os.environ, OMP_NUM_THREADS="2")
        code = ("import resource, sys, time; from rocksynth.cli.main import main; t = time.perf_counter(); "
                f"rc = main(['--quiet', 'reconstruct', {str(DATA / 'berea_section_400.png')!r}, '--out', {str(out)!r}, "
                f"'--model', {model_name!r}]); "
                "print(rc, time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
        rc, seconds, peak_kb = result.stdout.split()
        size_mb = out.stat().st_size / 1e6 if out.exists() else 0
    print(f"400^2 -> 400^3 via the CLI (2 threads, written to a compressed TIFF of {size_mb:.1f} MB): "
          f"exit {rc}, {float(seconds):.1f} s, peak resident memory {int(peak_kb) / 1e6:.2f} GB")
    return {"t128": times, "t400": float(seconds), "peak_gb_400": int(peak_kb) / 1e6}


# --- whole-slice mode (issue #25): what a user sees first ------------------------------------
# The cube protocol above judges 64^3 cubes one by one: they reach only 32 voxels from the input
# slice. `rocksynth reconstruct` turns a whole slice into a volume as deep as the slice is wide,
# and there the porosity is a function of the distance from the slice (depth bands). This mode
# reconstructs a whole slice per rock, `--depth` deep, through the same library call as the CLI.

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
# rock -> (real volume, shipped model). There is no fractures model: Berea's is the closest.
WHOLE_SLICE_ROCKS = {"berea": ("berea_400.tif", "berea"), "ketton": ("ketton_256.tif", "ketton"),
                     "fractures": ("fractures_100.tif", "berea")}
WHOLE_SLICE_GOALS = {"sd_ratio": 1.5, "far_field": 0.02, "mean_vs_slice": 0.03}
FAR_FIELD = 40        # voxels from the slice beyond which the far field starts
DISTANCE_BIN = 4      # voxels per bin of the porosity-vs-distance profile
DISTANCE_MAX = 64
S2_LAGS = (1, 2, 4, 8, 12, 16, 20)
S2_MAX = 32           # lags computed (correlation lengths need S2 to reach porosity^2)
REAL_WINDOWS = 5      # windows of the real volume for its per-z porosity sd


def whole_slice_input(rock: str, volume: np.ndarray) -> "tuple[np.ndarray, str, int]":
    """The input slice of a rock, where it comes from and its z in the volume. Berea: the README's example slice
    (`examples/berea_section_400.png`, the volume's z = 0 plane, in the training block). Ketton and
    fractures: the central z-plane of the held-out block (the last quarter along z, as in the cube
    protocol: never seen in training)."""
    from rocksynth.data.crops import split_holdout
    from rocksynth.io import read_image

    if rock == "berea":
        return read_image(EXAMPLES / "berea_section_400.png") > 0, "examples/berea_section_400.png (z = 0)", 0
    cut = split_holdout(rock, volume).held_out.shape[0]
    z = volume.shape[0] - cut + cut // 2
    return np.ascontiguousarray(volume[z]), f"held-out z = {z} of {WHOLE_SLICE_ROCKS[rock][0]}", z


def per_z_porosity(volume: np.ndarray) -> np.ndarray:
    from rocksynth.properties.porosity import porosity

    return np.array([porosity(plane) for plane in volume])


def distance_profile(volume: np.ndarray) -> "dict[str, float]":
    """Porosity in bins of signed distance from the central slice (index depth // 2, as in
    `reconstruct`): '0' is the slice itself, '1..4' the 4 planes after it, '-4..-1' the 4 before,
    out to DISTANCE_MAX. The sides are apart: a model can be too solid on one side and too porous
    on the other."""
    from rocksynth.properties.porosity import porosity

    offset = np.arange(volume.shape[0]) - volume.shape[0] // 2
    reach = min(DISTANCE_MAX, int(np.abs(offset).max()))
    before, after = {}, {}
    for lo in range(1, reach + 1, DISTANCE_BIN):
        hi = lo + DISTANCE_BIN - 1
        before[f"-{hi}..-{lo}"] = volume[(offset >= -hi) & (offset <= -lo)]
        after[f"{lo}..{hi}"] = volume[(offset >= lo) & (offset <= hi)]
    bins = {**dict(reversed(list(before.items()))), "0": volume[offset == 0], **after}
    return {label: porosity(planes) for label, planes in bins.items() if planes.size}


def s2_along_and_across(volume: np.ndarray) -> dict:
    """S2 along z (x-z / y-z cuts) and in the plane (mean of y and x), lags 0..S2_MAX, and
    their correlation lengths."""
    from rocksynth.properties.correlation import correlation_length, two_point_correlation_axes

    curves = two_point_correlation_axes(volume, min(S2_MAX, min(volume.shape) - 1))
    along, across = curves[0], curves[1:].mean(0)
    return {"z": along.tolist(), "xy": across.tolist(),
            "length_z": correlation_length(along), "length_xy": correlation_length(across)}


def real_reference(volume: np.ndarray, depth: int, windows: int = REAL_WINDOWS) -> dict:
    """The real rock over `windows` full-plane windows `depth` deep (or as deep as the volume),
    evenly spaced along z: per-z porosity sd (mean over windows and each), S2 along z vs in the
    plane, and x-z / y-z cuts of the first window for the figure."""
    from rocksynth.properties.porosity import porosity

    depth = min(depth, volume.shape[0])
    starts = sorted({int(s) for s in np.linspace(0, volume.shape[0] - depth, windows)})
    sds = [float(per_z_porosity(volume[s:s + depth]).std()) for s in starts]
    middle = volume[starts[len(starts) // 2]:starts[len(starts) // 2] + depth]
    return {"porosity": porosity(volume), "window_depth": depth, "window_starts": starts,
            "sd_per_z": float(np.mean(sds)), "sd_per_z_each": sds, "s2": s2_along_and_across(volume),
            "cuts": (middle[:, middle.shape[1] // 2], middle[:, :, middle.shape[2] // 2])}


def whole_slice_goals(sd_ratio: "float | None", far_field_error: "float | None", mean_vs_slice_error: float) -> dict:
    """Which whole-slice goals the figures meet (None: an infinite ratio or no far field)."""
    return {"sd_ratio": sd_ratio is not None and sd_ratio <= WHOLE_SLICE_GOALS["sd_ratio"],
            "far_field": far_field_error is not None and abs(far_field_error) <= WHOLE_SLICE_GOALS["far_field"],
            "mean_vs_slice": abs(mean_vs_slice_error) <= WHOLE_SLICE_GOALS["mean_vs_slice"]}


def whole_slice_rock(rock: str, depth: int, seeds: "list[int]", model_name: "str | None", calibrated: bool,
                     slab: "int | None" = None) -> "tuple[list[dict], tuple]":
    """Reconstruct one rock's whole slice `depth` deep once per noise seed and measure each volume
    against the real rock (read, and its reference figures computed, once); returns the figures per
    seed and (the first volume, real cuts) for the figure."""
    import tifffile
    import torch

    from rocksynth.pipelines.reconstruct import load_model, reconstruct
    from rocksynth.properties.porosity import porosity

    name, default_model = WHOLE_SLICE_ROCKS[rock]
    real_volume = tifffile.imread(DATA / name) > 0
    mask, source, z = whole_slice_input(rock, real_volume)
    # The real rock itself around the slice (the same depth window, cut at the volume's ends): how
    # far from the slice's porosity the rock's own volume there is, beside the goal of +-0.03.
    around = porosity(real_volume[max(0, z - depth // 2):z + depth // 2])
    loaded = load_model(model_name or default_model, calibrated=calibrated)
    real = real_reference(real_volume, depth)
    # A real volume extruded along z (the fractures image: every z-slice the same) has no per-z
    # spread at all: any is infinitely more (float round-off gives ~1e-17, not 0).
    real_sd = real["sd_per_z"] if real["sd_per_z"] > 1e-9 else 0.0
    distance = np.abs(np.arange(depth) - depth // 2)
    results, first_volume = [], None
    for seed in seeds:
        tick = time.perf_counter()
        volume, agreement = reconstruct(loaded.model, mask, depth=depth, seed=seed, slab=slab)
        seconds = time.perf_counter() - tick
        first_volume = volume if first_volume is None else first_volume
        profile_z = per_z_porosity(volume)
        far = volume[distance > FAR_FIELD]
        result = {
            "rock": rock, "slice": source, "shape": list(volume.shape), "model": loaded.path.name,
            "threads": torch.get_num_threads(), "seconds": seconds, "seed": seed,
            "slice_porosity": porosity(mask), "porosity": porosity(volume),
            "far_field_porosity": porosity(far) if far.size else None,
            "near_porosity": porosity(volume[(distance >= 1) & (distance <= FAR_FIELD)]),
            "real_porosity": real["porosity"], "real_around_slice_porosity": around,
            "real_around_slice_window": [max(0, z - depth // 2), min(len(real_volume), z + depth // 2)],
            "sd_per_z": float(profile_z.std()),
            "min_per_z": float(profile_z.min()), "max_per_z": float(profile_z.max()),
            "real_sd_per_z": real_sd, "real_sd_per_z_each": real["sd_per_z_each"],
            "real_window_depth": real["window_depth"], "real_window_starts": real["window_starts"],
            "per_z": profile_z.tolist(), "profile": distance_profile(volume),
            "s2": s2_along_and_across(volume), "real_s2": real["s2"], "raw_central_slice_agreement": agreement,
        }
        result["sd_ratio"] = result["sd_per_z"] / real_sd if real_sd > 0 else None  # infinite
        result["far_field_error"] = (result["far_field_porosity"] - result["real_porosity"]
                                     if result["far_field_porosity"] is not None else None)
        result["mean_vs_slice_error"] = result["porosity"] - result["slice_porosity"]
        result["goals_met"] = whole_slice_goals(result["sd_ratio"], result["far_field_error"],
                                                result["mean_vs_slice_error"])
        print(f"  {rock}: {source} ({mask.shape[1]}x{mask.shape[0]}, porosity {result['slice_porosity']:.3f}) -> "
              f"{depth} deep with {loaded.path.name}, seed {seed}, in {seconds:.1f} s ({result['threads']} thread(s))",
              flush=True)
        results.append(result)
    return results, (first_volume, real["cuts"])


def _yes(flag: bool) -> str:
    return "yes" if flag else "**no**"


def print_whole_slice(results: "list[dict]") -> None:
    rocks = [r["rock"] for r in results]
    head = "| figure | " + " | ".join(rocks) + " |\n|---|" + "---|" * len(rocks)
    rows = [
        ("input slice", lambda r: f"{r['slice']}, {r['shape'][2]}x{r['shape'][1]}"),
        ("model", lambda r: r["model"]),
        ("reconstruction time (s)", lambda r: f"{r['seconds']:.1f} ({r['threads']} thread{'s' if r['threads'] > 1 else ''}, "
                                             f"{np.prod(r['shape']) / 1e6:.1f} M voxels)"),
        ("per-z porosity sd, generated", lambda r: f"{r['sd_per_z']:.4f} (z-slices {r['min_per_z']:.3f}-{r['max_per_z']:.3f})"),
        ("per-z porosity sd, real (windows)", lambda r: f"{r['real_sd_per_z']:.4f} ({len(r['real_window_starts'])} x "
                                                       f"{r['real_window_depth']} deep)"),
        (f"sd ratio (goal <= {WHOLE_SLICE_GOALS['sd_ratio']})",
         lambda r: (f"{r['sd_ratio']:.2f}x" if r["sd_ratio"] is not None else "inf (real: the same on every z-slice)")
         + f": {_yes(r['goals_met']['sd_ratio'])}"),
        ("slice porosity", lambda r: f"{r['slice_porosity']:.3f}"),
        ("volume porosity (goal: slice +-0.03)", lambda r: f"{r['porosity']:.3f} ({r['mean_vs_slice_error']:+.3f}): "
                                                          f"{_yes(r['goals_met']['mean_vs_slice'])}"),
        (f"porosity 1-{FAR_FIELD} voxels from the slice", lambda r: f"{r['near_porosity']:.3f}"),
        (f"far field > {FAR_FIELD} voxels (goal: real +-0.02)",
         lambda r: "-" if r["far_field_porosity"] is None else
         f"{r['far_field_porosity']:.3f} ({r['far_field_error']:+.3f}): {_yes(r['goals_met']['far_field'])}"),
        ("real rock porosity", lambda r: f"{r['real_porosity']:.3f}"),
        ("real rock around the slice (z window), - slice",
         lambda r: f"{r['real_around_slice_porosity']:.3f} (z {r['real_around_slice_window'][0]}-"
                   f"{r['real_around_slice_window'][1] - 1}), {r['real_around_slice_porosity'] - r['slice_porosity']:+.3f}"),
        ("correlation length along z / in plane, generated",
         lambda r: f"{_length(r['s2']['length_z'])} / {_length(r['s2']['length_xy'])}"),
        ("correlation length along z / in plane, real",
         lambda r: f"{_length(r['real_s2']['length_z'])} / {_length(r['real_s2']['length_xy'])}"),
    ]
    print("\n### Whole-slice reconstructions\n\n" + head)
    for label, cell in rows:
        print(f"| {label} | " + " | ".join(cell(r) for r in results) + " |")
    labels = list(dict.fromkeys(label for r in results for label in r["profile"]))
    print("\n### Porosity vs distance from the input slice (voxels; negative: before the slice, positive: after it)\n")
    print("| distance | " + " | ".join(rocks) + " |\n|---|" + "---|" * len(rocks))
    for label in labels:
        print(f"| {label} | " + " | ".join(f"{r['profile'][label]:.3f}" if label in r["profile"] else "-"
                                           for r in results) + " |")
    print("| real rock | " + " | ".join(f"{r['real_porosity']:.3f}" for r in results) + " |")
    print("\n### S2 along z (x-z cuts) vs in the plane (x-y), generated and real\n")
    print("| lag | " + " | ".join(f"{r['rock']} gen z | gen xy | real z | real xy" for r in results)
          + " |\n|---|" + "---|" * (4 * len(results)))
    for lag in (0,) + S2_LAGS:
        print(f"| {lag} | " + " | ".join(f"{r['s2']['z'][lag]:.4f} | {r['s2']['xy'][lag]:.4f} | "
                                         f"{r['real_s2']['z'][lag]:.4f} | {r['real_s2']['xy'][lag]:.4f}"
                                         for r in results) + " |")
    print("(S2(0) is the porosity; S2 tends to porosity^2 beyond the correlation length. Porosity that "
          "changes with depth keeps S2 along z above porosity^2 at long lags.)", flush=True)


def _length(value) -> str:
    return "-" if value is None else f"{value:.1f}"


def whole_slice_figure(path: Path, results: "list[dict]", volumes: "list[tuple]") -> None:
    """x-z and y-z cuts (through the middle of the plane) of each generated volume beside the real
    rock's (a full-plane window as deep, from the middle of the volume), z down the page; a tick
    marks the input slice."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ratios = [max(v[0].shape[0], v[1][0].shape[0]) / max(v[0].shape[1:]) for v in volumes]
    fig, axes = plt.subplots(len(results), 4, figsize=(16, 0.6 + sum(4 * r + 0.4 for r in ratios)), dpi=110,
                             squeeze=False, gridspec_kw={"height_ratios": ratios, "hspace": 0.25, "wspace": 0.04})
    for row, (result, (volume, (real_xz, real_yz))) in enumerate(zip(results, volumes)):
        centre = volume.shape[0] // 2
        panels = [("generated x-z", volume[:, volume.shape[1] // 2]), ("generated y-z", volume[:, :, volume.shape[2] // 2]),
                  (f"real x-z ({real_xz.shape[0]} deep)", real_xz), (f"real y-z ({real_yz.shape[0]} deep)", real_yz)]
        for col, (title, image) in enumerate(panels):
            ax = axes[row, col]
            ax.imshow(image, cmap="gray", interpolation="nearest", vmin=0, vmax=1, aspect="equal")
            ax.set_title(f"{result['rock']}: {title}", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([centre] if col < 2 else [])
            ax.set_yticklabels(["slice ▶"] if col == 0 else [""] * (col < 2), fontsize=7, color="tab:red")
            ax.tick_params(axis="y", color="tab:red", length=6, width=1.5)
    fig.suptitle("x-z and y-z cuts through the middle of the plane (z down, white = pore)", fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    print(f"\nwrote {path}")


WHOLE_SLICE_FIGURES = ("sd_ratio", "far_field_error", "mean_vs_slice_error")


def summarize_whole_slice_draws(draws: "list[dict]") -> dict:
    """The goal figures of one rock's whole-slice draws (one noise seed each): per draw, and their
    mean and sd. The goals are judged on the mean: one 128-deep draw moves the far field by about
    0.01 (the noise, not the model)."""
    summary = {"seeds": [d["seed"] for d in draws]}
    for key in WHOLE_SLICE_FIGURES:
        values = [d[key] for d in draws]
        finite = None not in values
        summary[key] = {"each": values, "mean": float(np.mean(values)) if finite else None,
                        "sd": float(np.std(values)) if finite else None}
    summary["goals_met"] = whole_slice_goals(*(summary[key]["mean"] for key in WHOLE_SLICE_FIGURES))
    summary["draws_meeting_all_goals"] = sum(all(d["goals_met"].values()) for d in draws)
    return summary


def print_whole_slice_draws(summaries: "dict[str, dict]") -> None:
    rocks = list(summaries)
    count = len(next(iter(summaries.values()))["seeds"])
    print(f"\n### Over {count} draws (noise seeds {summaries[rocks[0]]['seeds'][0]}-{summaries[rocks[0]]['seeds'][-1]}; "
          "mean +- sd, goals judged on the mean)\n")
    print("| figure | " + " | ".join(rocks) + " |\n|---|" + "---|" * len(rocks))
    labels = {"sd_ratio": f"sd ratio (goal <= {WHOLE_SLICE_GOALS['sd_ratio']})",
              "far_field_error": f"far field - real (goal +-{WHOLE_SLICE_GOALS['far_field']})",
              "mean_vs_slice_error": f"volume - slice (goal +-{WHOLE_SLICE_GOALS['mean_vs_slice']})"}
    goal = {"sd_ratio": "sd_ratio", "far_field_error": "far_field", "mean_vs_slice_error": "mean_vs_slice"}
    for key, label in labels.items():
        cells = []
        for rock in rocks:
            figure = summaries[rock][key]
            if figure["mean"] is None:
                cells.append("inf (real: the same on every z-slice)")
                continue
            text = f"{figure['mean']:.2f}x +- {figure['sd']:.2f}" if key == "sd_ratio" else f"{figure['mean']:+.3f} +- {figure['sd']:.3f}"
            cells.append(f"{text}: {_yes(summaries[rock]['goals_met'][goal[key]])}")
        print(f"| {label} | " + " | ".join(cells) + " |")
    print("| draws meeting all three goals | " + " | ".join(
        f"{summaries[rock]['draws_meeting_all_goals']}/{count}" for rock in rocks) + " |", flush=True)


def whole_slice(args) -> dict:
    """The whole-slice figures of each rock at `args.seed` (tables, figure), and with `--repeats R`
    over R noise seeds from `args.seed` (only the goal figures; the volumes are not kept)."""
    print(f"whole-slice reconstructions, {args.depth} deep (seed {args.seed}; far field beyond {FAR_FIELD} voxels)",
          flush=True)
    seeds = [args.seed + k for k in range(args.repeats)]
    results, volumes = [], []
    for rock in args.whole_rocks:
        draws, pair = whole_slice_rock(rock, args.depth, seeds, args.model, args.calibrated, args.slab)
        if len(draws) > 1:
            draws[0]["repeats"] = summarize_whole_slice_draws(draws)
        results.append(draws[0])
        volumes.append(pair)
    print_whole_slice(results)
    if args.figure:
        whole_slice_figure(args.figure, results, volumes)
    if args.repeats > 1:
        print_whole_slice_draws({r["rock"]: r["repeats"] for r in results})
    return {r["rock"]: r for r in results}


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None,
                        help="shipped model name or checkpoint path for every rock (default: each rock's own: "
                             "berea for Berea, ketton for Ketton, and berea for fractures in --whole-slice; the "
                             "timing uses berea)")
    parser.add_argument("--rocks", nargs="+", default=["berea", "ketton"], choices=sorted(ROCKS))
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-permeability", action="store_true")
    parser.add_argument("--no-timing", action="store_true")
    parser.add_argument("--cache", type=Path, default=None, help="folder caching the real cubes' properties")
    parser.add_argument("--json", "--json-out", dest="json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--whole-slice", action="store_true",
                        help="only the whole-slice mode: the Berea example slice and held-out Ketton and fractures "
                             "z-slices, each reconstructed --depth deep (per-z porosity sd, porosity vs distance "
                             "from the slice, S2 along z vs in the plane, time)")
    parser.add_argument("--whole-rocks", nargs="+", default=list(WHOLE_SLICE_ROCKS), choices=list(WHOLE_SLICE_ROCKS))
    parser.add_argument("--depth", type=int, default=128, help="depth of the whole-slice reconstructions")
    parser.add_argument("--slab", type=int, default=None, help="slab depth of the whole-slice reconstructions")
    parser.add_argument("--figure", type=Path, default=None,
                        help="with --whole-slice: PNG of x-z and y-z cuts, generated beside real")
    parser.add_argument("--bootstrap", type=int, default=200, metavar="N",
                        help="bootstrap resamples for the KDE-KL's spread (0: none)")
    parser.add_argument("--calibrated", action="store_true", help="threshold at the model's porosity calibration")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="also the porosity vs distance from the slice of N deep reconstructions per rock")
    parser.add_argument("--no-kl", action="store_true", help="skip the KL protocol (e.g. with --profile)")
    parser.add_argument("--slice-axes", choices=("z", "xyz"), default="xyz",
                        help="input slice of each cube: normal to z, y, x in turn (default), or its central z-slice")
    parser.add_argument("--repeats", type=int, default=1, metavar="R",
                        help="R draws of the cubes (seeds --seed + 1000 k) and the KL's mean and spread over them; "
                             "with --whole-slice, R noise seeds (--seed + k) and the goal figures' mean and sd")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    torch.set_num_threads(1)
    if args.whole_slice:
        results = {"whole_slice": whole_slice(args)}
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
        return
    from rocksynth.pipelines.reconstruct import load_model

    # Each rock's shipped model (berea, ketton) unless --model names one for all.
    names = {rock: args.model or rock for rock in args.rocks}
    models = {}
    for rock, name in names.items():
        loaded = load_model(name, calibrated=args.calibrated)
        models[rock] = loaded.model
        print(f"{rock}: model {name} ({loaded.meta.get('iterations')} iterations, threshold logit "
              f"{loaded.model.logit_threshold}, {loaded.meta.get('wall_time_s', 0) / 60:.0f} min training on "
              f"{', '.join(loaded.meta.get('data', []))})")
    if args.cache:
        args.cache.mkdir(parents=True, exist_ok=True)
    results = {}
    for rock in [] if args.no_kl else args.rocks:
        runs = [run_rock(rock, models[rock], args.count, args.size, args.seed + 1000 * k, not args.no_permeability,
                         args.cache, args.bootstrap, args.slice_axes) for k in range(args.repeats)]
        results[rock] = runs[0] if args.repeats == 1 else {
            "draws": runs, "summary": summarize_repeats(rock, runs, not args.no_permeability)}
    if args.profile:
        results["profile"] = {rock: depth_profile(rock, models[rock], args.profile, 192, 192) for rock in args.rocks}
    if not args.no_timing:
        name = args.model or "berea"
        model = models["berea"] if names.get("berea") == name else load_model(name, calibrated=args.calibrated).model
        results["timing"] = timing(name, model)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
