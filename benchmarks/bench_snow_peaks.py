"""Time the parts of SNOW that rocksynth replaces, PoreSpy's against ours, on a centred Berea
crop, in one process and one thread, and check that both give the same result:
- the marker steps, `find_peaks` and `trim_saddle_points` (`rocksynth.properties.snow_peaks`);
- the pore and throat geometry of the partition with its boundary pores, `regions_to_network`
  (`rocksynth.properties.regions_network`): every array of the network equal.

    OMP_NUM_THREADS=1 python benchmarks/bench_snow_peaks.py --size 400
"""

import argparse
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "berea_400.tif"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=400)
    args = parser.parse_args()
    import porespy as ps
    import tifffile
    from porespy.tools import get_edt
    from scipy import ndimage

    from rocksynth.properties import snow_peaks

    ps.settings.tqdm["disable"] = True
    volume = tifffile.imread(DATA) > 0
    start = (volume.shape[0] - min(args.size, volume.shape[0])) // 2
    im = np.ascontiguousarray(volume[start:start + args.size, start:start + args.size, start:start + args.size])
    dt = get_edt()(im)
    blurred = ndimage.gaussian_filter(dt, sigma=0.4) * im
    print(f"Berea {'x'.join(map(str, im.shape))}, SNOW's defaults (sigma 0.4, r_max 4, maxiter 20)\n")
    print("| step | PoreSpy (s) | rocksynth (s) | ratio | same result |\n|---|---|---|---|---|")
    timings = {}
    for name, theirs, ours in (
            ("find_peaks", lambda: ps.filters.find_peaks(blurred, r_max=4, parallel_kw={"divs": 1}),
             lambda: snow_peaks.find_peaks(blurred, r_max=4)),
            ("trim_saddle_points", lambda: ps.filters.trim_saddle_points(timings["peaks"], dt),
             lambda: snow_peaks.trim_saddle_points(timings["peaks"], dt))):
        t0 = time.perf_counter()
        a = theirs()
        t1 = time.perf_counter()
        b = ours()
        t2 = time.perf_counter()
        timings.setdefault("peaks", a)
        print(f"| {name} | {t1 - t0:.2f} | {t2 - t1:.2f} | {(t2 - t1) / (t1 - t0):.3f} | {np.array_equal(a, b)} |")
    from rocksynth.properties.regions_network import regions_to_network

    snow = ps.filters.snow_partitioning(im, peaks=snow_peaks.snow_markers(im))
    regions = ps.networks.add_boundary_regions(snow.regions.astype(int), pad_width=3)
    phases = np.pad(im.astype(int), 3, mode="edge")
    t0 = time.perf_counter()
    a = ps.networks.regions_to_network(regions, phases=phases, voxel_size=1, accuracy="standard")
    t1 = time.perf_counter()
    b = regions_to_network(regions, phases, voxel_size=1)
    t2 = time.perf_counter()
    same = a.keys() == b.keys() and all(np.asarray(a[k]).dtype == np.asarray(b[k]).dtype
                                        and np.array_equal(a[k], b[k]) for k in a)
    print(f"| regions_to_network | {t1 - t0:.2f} | {t2 - t1:.2f} | {(t2 - t1) / (t1 - t0):.3f} | {same} |")


if __name__ == "__main__":
    main()
