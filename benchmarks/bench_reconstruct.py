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
        except (IndexError, ValueError):  # SNOW fails on cubes with (almost) no pore: no flow
            out["permeability"], out["network_failed"] = 0.0, True
    return out


def _quiet_properties(args):
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return properties(*args)


def kde_kl(real: np.ndarray, other: np.ndarray) -> float:
    """KL(real || other) between Gaussian kernel density estimates (Scott's bandwidth) on a fine grid:
    a smooth estimate that, unlike histograms of 50 samples, does not blow up on empty bins."""
    from scipy.stats import gaussian_kde

    if np.ptp(real) == 0 or np.ptp(other) == 0:
        return float("nan")
    low, high = min(real.min(), other.min()), max(real.max(), other.max())
    pad = 0.25 * (high - low)
    grid = np.linspace(low - pad, high + pad, 2000)
    p, q = gaussian_kde(real)(grid), gaussian_kde(other)(grid)
    p, q = p / p.sum(), np.maximum(q / q.sum(), 1e-300)
    keep = p > 0
    return float(np.sum(p[keep] * np.log(p[keep] / q[keep])))


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
    from rocksynth.properties.compare import kl_divergence

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


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="berea", help="shipped model name or checkpoint path")
    parser.add_argument("--rocks", nargs="+", default=["berea", "ketton"], choices=sorted(ROCKS))
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-permeability", action="store_true")
    parser.add_argument("--no-timing", action="store_true")
    parser.add_argument("--cache", type=Path, default=None, help="folder caching the real cubes' properties")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    parser.add_argument("--bootstrap", type=int, default=200, metavar="N",
                        help="bootstrap resamples for the KDE-KL's spread (0: none)")
    parser.add_argument("--calibrated", action="store_true", help="threshold at the model's porosity calibration")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="also the porosity vs distance from the slice of N deep reconstructions per rock")
    parser.add_argument("--no-kl", action="store_true", help="skip the KL protocol (e.g. with --profile)")
    parser.add_argument("--slice-axes", choices=("z", "xyz"), default="xyz",
                        help="input slice of each cube: normal to z, y, x in turn (default), or its central z-slice")
    parser.add_argument("--repeats", type=int, default=1, metavar="R",
                        help="R draws of the cubes (seeds --seed + 1000 k) and the KL's mean and spread over them")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    torch.set_num_threads(1)
    from rocksynth.pipelines.reconstruct import load_model

    loaded = load_model(args.model, calibrated=args.calibrated)
    print(f"model {loaded.path} ({loaded.meta.get('iterations')} iterations, threshold logit {loaded.model.logit_threshold}, "
          f"{loaded.meta.get('wall_time_s', 0) / 60:.0f} min training on {', '.join(loaded.meta.get('data', []))})")
    if args.cache:
        args.cache.mkdir(parents=True, exist_ok=True)
    results = {}
    for rock in [] if args.no_kl else args.rocks:
        runs = [run_rock(rock, loaded.model, args.count, args.size, args.seed + 1000 * k, not args.no_permeability,
                         args.cache, args.bootstrap, args.slice_axes) for k in range(args.repeats)]
        results[rock] = runs[0] if args.repeats == 1 else {
            "draws": runs, "summary": summarize_repeats(rock, runs, not args.no_permeability)}
    if args.profile:
        results["profile"] = {rock: depth_profile(rock, loaded.model, args.profile, 192, 192) for rock in args.rocks}
    if not args.no_timing:
        results["timing"] = timing(args.model, loaded.model)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
