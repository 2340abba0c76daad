"""The full-resolution layer of the reconstruct generator, separated (`VolumeGenerator._full_res_conv`,
what `reconstruct` runs) against the convolution of the lifted tensor it replaces, in the same run.

Both reconstruct the README's Berea section (400², or a centred crop of `--side`) to `--depth`
voxels with the shipped model, alternating, `--repeats` times each; printed: the seconds of each,
their ratio, and how many voxels of the two volumes differ (the layers agree to float rounding,
so a voxel flips only if its logit sits within rounding of the threshold).

    OMP_NUM_THREADS=2 python benchmarks/bench_reconstruct_fullres.py [--side 400] [--depth 400] [--repeats 2]
"""

import argparse
import time
from pathlib import Path

import torch

from rocksynth.io import read_image
from rocksynth.models.slice2vol import VolumeGenerator
from rocksynth.pipelines.reconstruct import load_model, reconstruct

SECTION = Path(__file__).resolve().parents[2] / "shared" / "data" / "berea_section_400.png"


def lifted_reference(self, x, skip, decays):
    """The layer as a plain convolution of ``cat([x, lifted])``: the lifted tensor built in full."""
    return self.at_full[0](torch.cat([x, self._lift(skip, x.shape[2], decays)], 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--side", type=int, default=400)
    parser.add_argument("--depth", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    section = read_image(SECTION) > 0
    start = (section.shape[0] - args.side) // 2
    section = section[start:start + args.side, start:start + args.side]
    model = load_model("berea").model
    separated = VolumeGenerator._full_res_conv
    seconds, volumes = {"separated": [], "lifted": []}, {}
    for _ in range(args.repeats):
        for name, layer in (("lifted", lifted_reference), ("separated", separated)):
            VolumeGenerator._full_res_conv = layer
            tick = time.perf_counter()
            volumes[name] = reconstruct(model, section, depth=args.depth, seed=1)[0]
            seconds[name].append(time.perf_counter() - tick)
    VolumeGenerator._full_res_conv = separated
    best = {name: min(times) for name, times in seconds.items()}
    print(f"{args.side}² slice -> {args.side}²x{args.depth}, {args.threads} threads, best of {args.repeats}:")
    for name, times in seconds.items():
        print(f"  {name:9s} {', '.join(f'{t:.1f}' for t in times)} s")
    print(f"  speed-up {best['lifted'] / best['separated']:.2f}x; voxels differing: "
          f"{int((volumes['lifted'] != volumes['separated']).sum())} of {volumes['lifted'].size}")


if __name__ == "__main__":
    main()
