"""Network permeability of Berea per conduit model and conduit length, and the tube check.

    OMP_NUM_THREADS=1 python benchmarks/bench_conduits.py [--crop 200] [--cache net.pkl] [--tubes]

Extracts the SNOW network once (about 5 min for 400^3 on a loaded 2-core machine; --cache keeps
it in a pickle for the next run), then solves K and F along x, y, z for every conduit model with
SNOW's total throat length (what rocksynth uses) and with the straight pore-centre distance.
"""

import argparse
import pickle
import sys
import time
from pathlib import Path

import rocksynth.properties.permeability as permeability
from rocksynth.properties.network import extract_network
from rocksynth.properties.porosity import porosity

BEREA = Path(__file__).parents[2] / "shared" / "data" / "berea_400.tif"
VOXEL = 5.345e-6
SPACINGS = {"total length": "throat.total_length", "straight distance": "throat.direct_length"}


def berea_network(crop, cache):
    if cache and Path(cache).exists():
        return pickle.loads(Path(cache).read_bytes())
    import tifffile

    mask = tifffile.imread(BEREA) > 0
    if crop:
        start = (mask.shape[0] - crop) // 2
        mask = mask[start:start + crop, start:start + crop, start:start + crop]
    extracted = extract_network(mask)
    if cache:
        Path(cache).write_bytes(pickle.dumps(extracted))
    return extracted


def tubes():
    sys.path.insert(0, str(Path(__file__).parents[1]))
    from tests.test_properties_permeability import _tubes

    print("| tubes | spacing | conduit | K / (phi r^2/8) | F phi |\n|---|---|---|---|---|")
    for n, r in ((48, 5.0), (60, 4.0), (60, 6.0)):
        mask, r = _tubes(n, r)
        extracted, phi = extract_network(mask), porosity(mask)
        for label, key in SPACINGS.items():
            permeability.SPACING = key
            for conduit in permeability.CONDUITS:
                a = permeability.network_permeability(extracted, None, ("x",), conduit)[0]
                print(f"| r = {r:g}, {n}^3 | {label} | {conduit} | {a.k_voxel2 / (phi * r * r / 8):.3f} "
                      f"| {a.formation_factor * phi:.2f} |", flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--crop", type=int, default=0, help="central cube of this size (0 = whole 400^3)")
    parser.add_argument("--cache", help="pickle of the extracted network (read if present, else written)")
    parser.add_argument("--tubes", action="store_true", help="the Hagen-Poiseuille tube networks instead")
    args = parser.parse_args()
    if args.tubes:
        return tubes()
    start = time.perf_counter()
    extracted = berea_network(args.crop, args.cache)
    print(f"network: {time.perf_counter() - start:.0f} s", file=sys.stderr)
    print("| conduit | spacing | K_x | K_y | K_z (D) | F_x | F_y | F_z |\n|---|---|---|---|---|---|---|---|")
    for label, key in SPACINGS.items():
        permeability.SPACING = key
        for conduit in permeability.CONDUITS:
            r = permeability.network_permeability(extracted, VOXEL, conduit=conduit)
            print(f"| {conduit} | {label} | " + " | ".join(f"{a.k_md / 1e3:.3f}" for a in r) + " | "
                  + " | ".join(f"{a.formation_factor:.1f}" for a in r) + " |", flush=True)
    permeability.SPACING = SPACINGS["total length"]


if __name__ == "__main__":
    main()
