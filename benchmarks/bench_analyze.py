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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="200,400")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.child:
        child(args.child, sizes[0])
        return
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
        print(f"time ours / bare: {runs['ours']['process_seconds'] / runs['bare']['process_seconds']:.3f}")
        print("block-wise / whole-volume network: " + ", ".join(
            f"K_{a} {blocks[f'K_{a}_mD'] / whole[f'K_{a}_mD']:.4f}" for a in "xyz"
            if whole[f"K_{a}_mD"]) + f", pores {blocks['pores']} / {whole['pores']}, "
            f"throats {blocks['throats']} / {whole['throats']}")


if __name__ == "__main__":
    main()
