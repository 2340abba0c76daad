"""A rock the shipped reconstruct models never saw, and the held-out comparison on it (issue #25,
"your own rock in one night").

`write` makes the rock: a PoreSpy grain pack (overlapping solid spheres of radius 8 voxels, pore
space their complement, porosity 0.30), 256^3, a fixed seed. Berea (0.196) and Ketton (0.127) are
less porous and not granular in this way, so the shipped model's far field must move.

`compare` prints the comparison `rocksynth train reconstruct` prints at the end of a run, for any
models (`rocksynth.training.reconstruct_comparison`): the same held-out part (the last quarter
along z), the same cubes (those of a run with `--seed`, default 0, as `rocksynth train reconstruct`), the same table.

    python benchmarks/own_rock.py write pack.tif
    OMP_NUM_THREADS=1 rocksynth train reconstruct pack.tif --out pack.pt --init berea --time-budget 8h
    OMP_NUM_THREADS=1 python benchmarks/own_rock.py compare pack.tif --models pack.pt berea
"""

import argparse
import time

import numpy as np

RECIPE = {"shape": 256, "r": 8, "porosity": 0.30, "seed": 11}


def grain_pack() -> np.ndarray:
    """The grain pack (bool, True = pore)."""
    import porespy

    volume = porespy.generators.overlapping_spheres([RECIPE["shape"]] * 3, r=RECIPE["r"], porosity=RECIPE["porosity"],
                                                    seed=RECIPE["seed"])
    return np.asarray(volume, dtype=bool)


def write(out: str) -> None:
    from rocksynth.io import VolumeWriter

    tick = time.perf_counter()
    volume = grain_pack()
    with VolumeWriter(out, volume.shape, np.uint8) as writer:
        writer.write(volume.astype(np.uint8) * 255)
    print(f"wrote {out}: {volume.shape}, porosity {volume.mean():.4f} ({time.perf_counter() - tick:.1f} s; "
          f"PoreSpy overlapping_spheres {RECIPE})")


def compare(volume_path: str, models: "list[str]", cubes: int, size: int, seed: int, holdout: float) -> None:
    from pathlib import Path

    from rocksynth.data.crops import split_holdout
    from rocksynth.io import load_binary_volume
    from rocksynth.pipelines.reconstruct import load_model
    from rocksynth.training.reconstruct_comparison import compare_models, draw_cubes, format_comparison, model_label

    mask, _ = load_binary_volume(volume_path)
    split = split_holdout(Path(volume_path).name, mask, holdout)
    sets = draw_cubes([split.held_out], [split.train], size, cubes, seed)
    loaded = {model_label(m): load_model(m).model for m in models}
    tick = time.perf_counter()
    result = compare_models(loaded, sets)
    print("\n".join(format_comparison(result)))
    print(f"({time.perf_counter() - tick:.0f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    writing = commands.add_parser("write", help="write the grain pack as a TIFF stack")
    writing.add_argument("out")
    comparing = commands.add_parser("compare", help="models on held-out cubes against the real-vs-real floor")
    comparing.add_argument("volume")
    comparing.add_argument("--models", nargs="+", required=True, help="checkpoints or shipped names")
    comparing.add_argument("--cubes", type=int, default=16, help="held-out cubes (the run's final_cubes)")
    comparing.add_argument("--size", type=int, default=64, help="cube side (the run's --crop or eval_crop)")
    comparing.add_argument("--seed", type=int, default=0, help="the run's --seed")
    comparing.add_argument("--holdout", type=float, default=0.25, help="the run's holdout")
    args = parser.parse_args()
    if args.command == "write":
        write(args.out)
    else:
        compare(args.volume, args.models, args.cubes, args.size, args.seed, args.holdout)


if __name__ == "__main__":
    main()
