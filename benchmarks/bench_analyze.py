"""Benchmark `rocksynth analyze` against the bare PoreSpy + OpenPNM permeability pipeline.

For each Berea size (200^3 centre crop, 400^3 full sample at 5.345 um) it runs, each in a fresh
process with single-threaded numerical libraries (so both pay the same imports and numba
compilation), both allowed the machine's 2 cores:
- bare: `porespy.networks.snow2` with its defaults (its dask-chunked watershed uses
  `porespy.settings.ncores` = 2 threads), then the OpenPNM example's `StokesFlow` along
  PoreSpy's x axis (array axis 0 = our z) and along our x axis;
- ours: the whole `rocksynth.properties.report.analyze` (porosity, connected porosity, S2,
  Minkowski, local-thickness PSD in a second process while the main one extracts the network
  with serial snow2, then permeability and formation factor along x, y, z).
It prints wall time and peak resident memory of every stage and the permeabilities.

    OMP_NUM_THREADS=1 python benchmarks/bench_analyze.py            # 200 and 400
    OMP_NUM_THREADS=1 python benchmarks/bench_analyze.py --sizes 200

At 400^3 it also runs the full report with the block-wise network (`--network blocks`) and
prints its permeabilities over the whole-volume ones.

With `--scale 256,512,1024` it measures out-of-core scaling (after the `--sizes` given, if any), on
Berea volumes that `rocksynth synthesize` writes as OME-Zarr into `--scale-dir` (kept): each size's
`rocksynth analyze --only porosity,correlation,minkowski` (wall time, peak RSS of all its
processes, the ratio to the smallest size), the same on a 2*N x N x N volume streamed from the
largest one and its mirror image (`--long`), each size also as a TIFF stack (`--tiff`), and the
full report with permeability on the largest size (`--full`):

    python benchmarks/bench_analyze.py --scale 256,512,1024 --scale-dir DIR --long --full
    python benchmarks/bench_analyze.py --sizes 400 --scale 256,512,1024 --scale-dir DIR --long --full  # all
    python benchmarks/bench_analyze.py --scale 512 --scale-dir DIR --full --network blocks
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "berea_400.tif"
VOXEL = 5.345e-6
SINGLE_THREAD = {v: "1" for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS")}


def load(size: int):
    import tifffile

    volume = tifffile.imread(DATA) > 0
    if size >= volume.shape[0]:
        return volume
    start = (volume.shape[0] - size) // 2
    return volume[start:start + size, start:start + size, start:start + size].copy()


def run_bare(size: int) -> dict:
    """PoreSpy snow2 (defaults) + OpenPNM StokesFlow as in OpenPNM's Berea example."""
    import numpy as np
    import openpnm as op
    import porespy as ps

    from rocksynth.properties.report import StageMeter

    ps.settings.tqdm["disable"] = True
    op.Workspace().settings["loglevel"] = 50
    meter = StageMeter()
    image = load(size)
    with meter.stage("snow2 (PoreSpy defaults)"):
        snow = ps.networks.snow2(image, voxel_size=VOXEL)
    results = {}
    with meter.stage("StokesFlow x2 (OpenPNM example)"):
        for label, ours in (("x", "z"), ("z", "x")):
            pn = op.io.network_from_porespy(snow.network)
            pn["pore.diameter"] = pn["pore.equivalent_diameter"]
            pn["throat.diameter"] = pn["throat.inscribed_diameter"]
            pn["throat.spacing"] = pn["throat.total_length"]
            pn.add_model(propname="throat.hydraulic_size_factors",
                         model=op.models.geometry.hydraulic_size_factors.pyramids_and_cuboids)
            pn.regenerate_models()
            health = op.utils.check_network_health(pn)
            op.topotools.trim(network=pn, pores=health["disconnected_pores"])
            phase = op.phase.Phase(network=pn)
            phase["pore.viscosity"] = 1.0
            phase.add_model_collection(op.models.collections.physics.basic)
            phase.regenerate_models()
            flow = op.algorithms.StokesFlow(network=pn, phase=phase)
            inlet = pn.pores(f"{label}min")
            flow.set_value_BC(pores=inlet, values=1.0)
            flow.set_value_BC(pores=pn.pores(f"{label}max"), values=0.0)
            flow.run()
            axis = "xyz".index(label)
            length = (image.shape[axis] + 6) * VOXEL  # as in the OpenPNM example
            area = np.prod([s for i, s in enumerate(image.shape) if i != axis]) * VOXEL ** 2
            k = float(flow.rate(pores=inlet)[0]) * length / area
            results[f"K_{ours}_mD"] = k / 9.869233e-13 * 1e3
    return {"stages": meter.stages, "results": results}


def run_ours(size: int, network: str = "whole") -> dict:
    from rocksynth.properties.report import StageMeter, analyze

    meter = StageMeter()
    with meter.stage("load"):
        image = load(size)
    report = analyze(image, VOXEL, network=network)
    stages = dict(meter.stages)
    stages.update(report["timings"])
    results = {f"K_{a}_mD": r["k_md"] for a, r in report["permeability"].items()}
    results.update({f"F_{a}": r["formation_factor"] for a, r in report["permeability"].items()})
    results.update(porosity=report["porosity"]["total"], S_V_per_voxel=report["minkowski"]["surface_density"] * VOXEL,
                   euler_per_voxel3=report["minkowski"]["euler_density"] * VOXEL ** 3,
                   pores=report["network"]["pores"], throats=report["network"]["throats"],
                   coordination=report["network"]["coordination_number_mean"])
    return {"stages": stages, "results": results}


def child(kind: str, size: int) -> None:
    start = time.perf_counter()
    out = run_bare(size) if kind == "bare" else run_ours(size, "blocks" if kind == "blocks" else "whole")
    out["total_seconds"] = time.perf_counter() - start
    print("RESULT " + json.dumps(out))


def tree_peak_rss(command: "list[str]", env: dict) -> "tuple[str, float, float]":
    """Run a command; (stdout, wall seconds, peak RSS in MB of it and all its child processes
    together, sampled every 50 ms)."""
    import psutil

    start = time.perf_counter()
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        root, peak = psutil.Process(proc.pid), 0
        while proc.poll() is None:
            try:
                tree = [root] + root.children(recursive=True)
                peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
            except psutil.Error:
                pass
            time.sleep(0.05)
        stdout, stderr = proc.communicate()
    if proc.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{stderr[-2000:]}")
    return stdout, time.perf_counter() - start, peak / 2**20


def measure(kind: str, size: int) -> dict:
    env = dict(os.environ, **SINGLE_THREAD)
    stdout, seconds, peak = tree_peak_rss([sys.executable, __file__, "--child", kind, "--sizes", str(size)], env)
    line = next(l for l in stdout.splitlines() if l.startswith("RESULT "))
    out = json.loads(line[len("RESULT "):])
    out["process_seconds"] = seconds  # includes interpreter start and imports
    out["tree_peak_mb"] = peak
    return out


CHEAP = "porosity,correlation,minkowski"


def synthesized(folder: Path, size: int) -> Path:
    """A synthesized Berea volume of side `size` as OME-Zarr (written once, then reused)."""
    path = folder / f"berea_{size}.zarr"
    if not path.exists():
        stdout, seconds, peak = tree_peak_rss(["rocksynth", "synthesize", "--texture", "berea", "--size", str(size),
                                               "--out", str(path)], dict(os.environ))
        print(f"synthesized {path.name} in {seconds:.0f} s (peak {peak:.0f} MB)")
    return path


def stacked(folder: Path, source: Path) -> Path:
    """A 2N x N x N volume: the N^3 source followed by its mirror image along z, streamed slab by slab."""
    import numpy as np

    from rocksynth.io import open_lazy, volume_writer

    lazy = open_lazy(source)
    n = lazy.shape[0]
    path = folder / f"berea_{2 * n}x{n}x{n}.zarr"
    if path.exists():
        return path
    depth = lazy.data.chunks[0][0]
    with volume_writer(path, (2 * n,) + lazy.shape[1:], np.uint8, lazy.voxel_size) as writer:
        for start in range(0, n, depth):
            writer.write(np.asarray(lazy.data[start:start + depth]))
        for stop in range(n, 0, -depth):
            writer.write(np.asarray(lazy.data[max(0, stop - depth):stop])[::-1])
    return path


def analyze_command(path: Path, *options: str) -> dict:
    """`rocksynth analyze PATH OPTIONS --json` in its own process: report, seconds, peak MB of all processes."""
    stdout, seconds, peak = tree_peak_rss(["rocksynth", "-q", "analyze", str(path), *options, "--json"],
                                          dict(os.environ))
    return {"report": json.loads(stdout), "seconds": seconds, "peak_mb": peak}


def as_tiff(path: Path) -> Path:
    """The same volume as a TIFF stack (`rocksynth convert`, written once)."""
    tiff = path.with_suffix(".tif")
    if not tiff.exists():
        subprocess.run(["rocksynth", "-q", "convert", str(path), str(tiff)], check=True)
    return tiff


def scale(sizes: "list[int]", folder: Path, long: bool, full: bool, network: str = "auto",
          tiff: bool = False) -> dict:
    """Print the out-of-core tables; return the figures the summary repeats."""
    summary = {}
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\n## Out of core: rocksynth analyze --only {CHEAP} on synthesized Berea (OME-Zarr)\n")
    print("| volume | seconds | peak RSS, all processes (MB) | peak / smallest's |\n|---|---|---|---|")
    first = None
    for size in sizes:
        run = analyze_command(synthesized(folder, size), "--only", CHEAP)
        first = first or run["peak_mb"]
        summary[f"cheap measures {size}^3: peak MB, / smallest's"] = f"{run['peak_mb']:.0f}, {run['peak_mb'] / first:.2f}"
        print(f"| {size}^3 | {run['seconds']:.1f} | {run['peak_mb']:.0f} | {run['peak_mb'] / first:.2f} |")
        sys.stdout.flush()
        if tiff:
            run = analyze_command(as_tiff(synthesized(folder, size)), "--only", CHEAP)
            print(f"| {size}^3, TIFF stack | {run['seconds']:.1f} | {run['peak_mb']:.0f} | "
                  f"{run['peak_mb'] / first:.2f} |")
            sys.stdout.flush()
    if long:
        path = stacked(folder, folder / f"berea_{sizes[-1]}.zarr")
        run = analyze_command(path, "--only", CHEAP)
        print(f"| {path.stem.split('_')[1]} | {run['seconds']:.1f} | {run['peak_mb']:.0f} | "
              f"{run['peak_mb'] / first:.2f} |")
        summary[f"cheap measures {path.stem.split('_')[1]}: peak MB"] = f"{run['peak_mb']:.0f}"
    if full:
        run = analyze_command(folder / f"berea_{sizes[-1]}.zarr", "--network", network)
        report = run["report"]
        print(f"\n## Full report of berea_{sizes[-1]}^3 ({report['network_extraction']} network): "
              f"{run['seconds']:.0f} s, peak RSS of all processes {run['peak_mb']:.0f} MB\n")
        print("| stage | seconds |\n|---|---|")
        for name, stage in report["timings"].items():
            print(f"| {name} | {stage['seconds']:.1f} |")
        print("permeability: " + ", ".join(f"K_{a} = {r['k_md']:.4g} mD" for a, r in report["permeability"].items()))
        for note in report["notes"]:
            print(f"note: {note}")
        summary[f"full report {sizes[-1]}^3: seconds, peak MB (all processes)"] = (
            f"{run['seconds']:.0f}, {run['peak_mb']:.0f}")
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default=None,
                        help="Berea sizes to compare with the bare pipeline (default 200,400; none with --scale).")
    parser.add_argument("--scale", default=None, help="Comma list of synthesized sizes for the out-of-core run.")
    parser.add_argument("--scale-dir", default="bench_analyze_volumes", help="Where the synthesized volumes are kept.")
    parser.add_argument("--long", action="store_true", help="Also a 2N x N x N volume of the largest size.")
    parser.add_argument("--full", action="store_true", help="Also the full report of the largest size.")
    parser.add_argument("--tiff", action="store_true", help="Also each size as a TIFF stack.")
    parser.add_argument("--network", default="auto", choices=["auto", "whole", "blocks"],
                        help="Network extraction of the full report (analyze --network).")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, int(args.sizes))
        return
    sizes = [int(s) for s in (args.sizes or ("" if args.scale else "200,400")).split(",") if s]
    summary = compare_with_bare(sizes)
    if args.scale:
        summary.update(scale([int(s) for s in args.scale.split(",")], Path(args.scale_dir), args.long, args.full,
                             args.network, args.tiff))
    print("\n## Summary\n\n| figure | value |\n|---|---|")
    for name, value in summary.items():
        print(f"| {name} | {value} |")


def compare_with_bare(sizes: "list[int]") -> dict:
    """Print each size's bare and rocksynth runs; return the figures the summary repeats."""
    summary = {}
    titles = {"bare": "bare PoreSpy snow2 + OpenPNM StokesFlow", "ours": "rocksynth analyze (full report)",
              "blocks": "rocksynth analyze --network blocks (full report)"}
    for size in sizes:
        print(f"\n## Berea {size}^3 at 5.345 um (single thread per process)\n")
        runs = {}
        for kind in ("bare", "ours", "blocks"):
            out = runs[kind] = measure(kind, size)
            print(f"{titles[kind]}: {out['process_seconds']:.1f} s for the whole process "
                  f"({out['total_seconds']:.1f} s after imports), peak RSS of all its processes "
                  f"{out['tree_peak_mb']:.0f} MB")
            print("| stage | seconds | peak RSS (MB) |\n|---|---|---|")
            for name, stage in out["stages"].items():
                print(f"| {name} | {stage['seconds']:.2f} | {stage['peak_rss_mb']:.0f} |")
            print("results: " + ", ".join(f"{k} = {v:.4g}" if isinstance(v, float) else f"{k} = {v}"
                                          for k, v in out["results"].items()))
            print()
            sys.stdout.flush()
        whole, blocks = runs["ours"]["results"], runs["blocks"]["results"]
        ratio = runs["ours"]["process_seconds"] / runs["bare"]["process_seconds"]
        k_ratios = ", ".join(f"K_{a} {blocks[f'K_{a}_mD'] / whole[f'K_{a}_mD']:.4f}" for a in "xyz" if whole[f"K_{a}_mD"])
        print(f"time ours / bare: {ratio:.3f}")
        print(f"block-wise / whole-volume network: {k_ratios}, pores {blocks['pores']} / {whole['pores']}, "
              f"throats {blocks['throats']} / {whole['throats']}")
        summary[f"full report {size}^3: time ours / bare"] = f"{ratio:.3f}"
        summary[f"full report {size}^3: block-wise / whole K"] = k_ratios
    return summary


if __name__ == "__main__":
    main()
