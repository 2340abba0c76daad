"""The reconstruct generator's inference path against its plain formulation, in the same run.

`reconstruct` (what the command runs) differs from the plain network in four ways that keep the
function (tests/test_reconstruct_depth.py):
- the first full-resolution layer convolves the slice's plane in 2D and weighs it by depth
  (`VolumeGenerator._full_res_conv`) instead of convolving the lifted tensor, and skips that part
  where the lifted channels are zero (beyond a few voxels of the slice);
- the few-channel 3x3x3 convolutions of the finer stages run on channels-last copies of their
  input (oneDNN's faster kernels, the same numbers);
- the quarter-resolution stage runs `QUARTER_SLABS` slabs at a time, so its halo is paid once for
  several, while the finer stages still run slab by slab.
The plain formulation: the lifted tensor built in full, the default layout, one slab at a time.

Both reconstruct the README's Berea section (400², or a centred crop of `--side`) to `--depth`
voxels with the shipped model, alternating, `--repeats` times each. Printed: the seconds of each,
their ratio, how many voxels of the two volumes differ, and each one's peak memory (a child
process per path, its maximum resident set).

    OMP_NUM_THREADS=2 python benchmarks/bench_reconstruct_inference.py [--side 400] [--depth 400] [--repeats 2]
"""

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

SECTION = Path(__file__).resolve().parents[2] / "shared" / "data" / "berea_section_400.png"


@contextlib.contextmanager
def plain_generator():
    """Within: the generator as the plain network (see the module docstring)."""
    import rocksynth.models.slice2vol as networks
    import rocksynth.pipelines.reconstruct as pipeline

    def lifted(self, x, skip, decays):
        return self.at_full[0](torch.cat([x, self._lift(skip, x.shape[2], decays)], 1))

    def default_layout(conv, x, weight=None):
        return F.conv3d(F.pad(x, (1,) * 6, mode="replicate"), conv.weight if weight is None else weight, conv.bias)

    saved = networks.VolumeGenerator._full_res_conv, networks._replicate_conv, pipeline.QUARTER_SLABS
    networks.VolumeGenerator._full_res_conv, networks._replicate_conv, pipeline.QUARTER_SLABS = lifted, default_layout, 1
    try:
        yield
    finally:
        networks.VolumeGenerator._full_res_conv, networks._replicate_conv, pipeline.QUARTER_SLABS = saved


def section(side: int) -> np.ndarray:
    from rocksynth.io import read_image

    image = read_image(SECTION) > 0
    start = (image.shape[0] - side) // 2
    return image[start:start + side, start:start + side]


def run_one(path: str, side: int, depth: int, threads: int, out: str) -> None:
    """One reconstruction in this (child) process; writes the volume and the seconds."""
    import resource

    from rocksynth.pipelines.reconstruct import load_model, reconstruct

    torch.set_num_threads(threads)
    model = load_model("berea").model
    mask = section(side)
    with plain_generator() if path == "plain" else contextlib.nullcontext():
        tick = time.perf_counter()
        volume = reconstruct(model, mask, depth=depth, seed=1)[0]
        seconds = time.perf_counter() - tick
    np.save(out, volume)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"seconds": seconds, "peak_bytes": peak}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--side", type=int, default=400)
    parser.add_argument("--depth", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", choices=["plain", "pipeline"], help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_one(args.child, args.side, args.depth, args.threads, args.out)
        return
    results = {"plain": [], "pipeline": []}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            for path in results:
                out = str(Path(tmp) / f"{path}.npy")
                done = subprocess.run([sys.executable, __file__, "--child", path, "--out", out, "--side", str(args.side),
                                       "--depth", str(args.depth), "--threads", str(args.threads)],
                                      capture_output=True, text=True, check=True)
                results[path].append(json.loads(done.stdout.strip().splitlines()[-1]))
        differing = int((np.load(Path(tmp) / "plain.npy") != np.load(Path(tmp) / "pipeline.npy")).sum())
    best = {path: min(r["seconds"] for r in runs) for path, runs in results.items()}
    print(f"{args.side}² slice -> {args.side}²x{args.depth}, {args.threads} threads, best of {args.repeats}:")
    for path, runs in results.items():
        times = ", ".join(f"{r['seconds']:.1f}" for r in runs)
        print(f"  {path:9s} {times} s, peak memory "
              f"{max(r['peak_bytes'] for r in runs) / 1e9:.2f} GB")
    print(f"  speed-up {best['plain'] / best['pipeline']:.2f}x; voxels differing: {differing} of "
          f"{args.side * args.side * args.depth}")


if __name__ == "__main__":
    main()
