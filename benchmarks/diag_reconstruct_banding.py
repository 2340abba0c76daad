"""Where the depth bands of `rocksynth reconstruct` come from (issue #25): small inference-only
experiments with the shipped slice-to-volume model, each printing its figures. Nothing is trained.

Inputs are windows of the README's Berea slice (`examples/berea_section_400.png`); porosity is
pooled over both sides of the input slice in 4-voxel bins of distance (as `bench_reconstruct.py
--whole-slice` does), averaged over the windows (one seed each). The pipeline call is the CLI's
(`rocksynth.pipelines.reconstruct.reconstruct`); ablations patch the model at inference only.

--stitching  the same volume generated in slabs of 4, 16, 32 voxels and in one piece: identical?
             And a 128^2 window against the whole 400^2 slice: does the plane's size matter?
--seeds      per-z porosity of one slice under several seeds: how much of the per-z spread is a
             fixed function of depth (same for every seed) and how much is noise.
--noise      the noise made exactly zero-mean and unit-variance on every depth plane (so no
             depth plane can carry a shared offset), against the pipeline's i.i.d. noise.
--depth      volumes 64, 96, 128, 192 and 256 deep: porosity against the distance from the slice
             and against the distance from the volume's end; and the far field (no code, no slice
             feature within the receptive field) with and without an end within reach.
--codes      ablations of the depth-dependent inputs: the depth code (one value per depth across
             the plane), the damped slice features, or both, set to their far-field value (zero).
--features   the encoder's features reduced to their plane means (a per-depth code set by the
             slice), or with those means removed.
--activations  per-depth plane means of the quarter-resolution features (after the 3D convs) and
             of the logits, for a 64-deep and a 192-deep volume.
--phi        far-field porosity against the slice-porosity input channel (the only thing the far
             field knows of the slice).
--all        everything (about 5 minutes on one thread).

Run:  OMP_NUM_THREADS=1 python benchmarks/diag_reconstruct_banding.py --all
"""

import argparse
import contextlib
import time
from pathlib import Path

import numpy as np
import torch

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "berea_section_400.png"
SIDE = 128
BIN = 4


def load():
    from rocksynth.io import read_image
    from rocksynth.pipelines.reconstruct import load_model

    return load_model("berea").model, read_image(EXAMPLE) > 0


def windows(mask: np.ndarray, count: int = 4, side: int = SIDE) -> "list[np.ndarray]":
    """`count` side^2 windows of the slice (corners first, then the centre)."""
    h, w = mask.shape
    corners = [(0, 0), (h - side, w - side), (0, w - side), (h - side, 0), ((h - side) // 2, (w - side) // 2)]
    return [np.ascontiguousarray(mask[y:y + side, x:x + side]) for y, x in corners[:count]]


def by_distance(per_z: np.ndarray, max_distance: int = 128) -> "dict[str, float]":
    """Per-z porosity pooled over both sides of the central slice in BIN-voxel bins."""
    distance = np.abs(np.arange(per_z.size) - per_z.size // 2)
    out = {"0": float(per_z[distance == 0].mean())}
    for lo in range(1, min(max_distance, distance.max()) + 1, BIN):
        keep = (distance >= lo) & (distance < lo + BIN)
        out[f"{lo}-{lo + BIN - 1}"] = float(per_z[keep].mean())
    return out


def per_z(volume: np.ndarray) -> np.ndarray:
    return volume.mean((1, 2))


def profile(model, masks, depth: int, seed: int = 0, **kwargs) -> np.ndarray:
    """Mean per-z porosity over the windows (window i with seed + i)."""
    from rocksynth.pipelines.reconstruct import reconstruct

    return np.mean([per_z(reconstruct(model, m, depth=depth, seed=seed + i, **kwargs)[0]) for i, m in enumerate(masks)], 0)


def table(columns: "dict[str, dict[str, float]]", title: str) -> None:
    labels = list(dict.fromkeys(k for c in columns.values() for k in c))
    print(f"\n{title}\n| distance | " + " | ".join(columns) + " |\n|---|" + "---|" * len(columns))
    for label in labels:
        print(f"| {label} | " + " | ".join(f"{c[label]:.3f}" if label in c else "" for c in columns.values()) + " |")


def stitching(model, mask) -> None:
    from rocksynth.pipelines.reconstruct import reconstruct

    m = windows(mask, 1)[0]
    whole, _ = reconstruct(model, m, depth=128, seed=0, slab=128)
    for slab in (4, 16, 32):
        other, _ = reconstruct(model, m, depth=128, seed=0, slab=slab)
        print(f"slab {slab:>3} vs one piece: {int((other != whole).sum())} of {whole.size} voxels differ")
    tick = time.perf_counter()
    full = per_z(reconstruct(model, mask, depth=128, seed=0)[0])
    print(f"whole 400^2 slice, 128 deep: {time.perf_counter() - tick:.1f} s")
    crops = profile(model, windows(mask, 4), 128)
    table({"whole 400^2": by_distance(full), "4 windows 128^2": by_distance(crops)},
          "porosity vs distance: the whole slice against 128^2 windows of it (128 deep)")
    print(f"per-z sd: whole {full.std():.4f}, windows' mean profile {crops.std():.4f}")


def seeds(model, mask, count: int = 4) -> None:
    from rocksynth.pipelines.reconstruct import reconstruct

    big = mask[100:300, 100:300]
    rows = np.stack([per_z(reconstruct(model, big, depth=128, seed=s)[0]) for s in range(count)])
    mean = rows.mean(0)
    residual = rows - mean
    print(f"\n{count} seeds, the central 200^2 of the slice, 128 deep: per-z porosity sd per seed "
          f"{', '.join(f'{r.std():.4f}' for r in rows)}; of the seeds' mean profile {mean.std():.4f}; "
          f"seed-to-seed residual sd {residual.std(ddof=1):.4f}")
    corr = np.corrcoef(rows)
    print(f"correlation of the per-z curves between seeds: {corr[np.triu_indices(count, 1)].mean():.3f} (mean of pairs)")


@contextlib.contextmanager
def patched_noise(model, kind: str):
    """Replace the model's noise sampler for the duration."""
    original = model.sample_noise

    def standardized(batch, depth, height, width, generator=None, device=None):
        out = []
        for n in original(batch, depth, height, width, generator, device):
            # Every (channel, depth plane) exactly mean 0, sd 1 over the plane.
            mean = n.mean((3, 4), keepdim=True)
            sd = n.std((3, 4), keepdim=True)
            out.append((n - mean) / sd)
        return tuple(out)

    def plane_shared(batch, depth, height, width, generator=None, device=None):
        # One value per (channel, depth) over the whole plane: what "noise shared across the plane" would do.
        return tuple(n[:, :, :, :1, :1].expand_as(n).contiguous() for n in original(batch, depth, height, width, generator, device))

    model.sample_noise = {"standardized": standardized, "plane_shared": plane_shared}[kind]
    try:
        yield
    finally:
        del model.sample_noise


def noise(model, mask) -> None:
    masks = windows(mask, 4)
    base = profile(model, masks, 128)
    with patched_noise(model, "standardized"):
        standard = profile(model, masks, 128)
    with patched_noise(model, "plane_shared"):
        shared = profile(model, masks, 128)
    table({"i.i.d. noise (pipeline)": by_distance(base), "per-plane standardized": by_distance(standard),
           "one noise value per plane": by_distance(shared)},
          "porosity vs distance under three noises (4 windows 128^2, 128 deep)")
    print(f"per-z sd of the mean profile: i.i.d. {base.std():.4f}, standardized {standard.std():.4f}, "
          f"shared across the plane {shared.std():.4f}")


def depth_scan(model, mask) -> None:
    from rocksynth.models.slice2vol import far_field_distance

    masks = windows(mask, 4)
    far = far_field_distance(model)
    columns, edge_rows = {}, []
    for depth in (64, 96, 128, 192, 256):
        p = profile(model, masks, depth)
        columns[f"depth {depth}"] = by_distance(p)
        z = np.arange(depth)
        distance, to_end = np.abs(z - depth // 2), np.minimum(z, depth - 1 - z)
        reach = model.halo_cells() * 4
        interior = (distance >= far) & (to_end >= reach)
        near_end = (distance >= far) & (to_end < reach)
        edge_rows.append((depth, p[interior].mean() if interior.any() else None, interior.sum(),
                          p[near_end].mean() if near_end.any() else None, near_end.sum(),
                          p[(distance >= 17) & (distance <= 24)].mean()))
    table(columns, "porosity vs distance from the slice, by the volume's depth (4 windows 128^2)")
    print(f"\nfar field = more than {far} voxels from the slice (`far_field_distance`: no depth code or slice "
          f"feature within the receptive field); 'near an end': within {model.halo_cells() * 4} voxels "
          "(the receptive field) of the volume's first or last z-slice")
    print("| depth | far field, no end in reach | z-slices | far field, near an end | z-slices | 17-24 from the slice |\n"
          "|---|---|---|---|---|---|")
    for depth, inner, n_inner, edge, n_edge, band in edge_rows:
        print(f"| {depth} | {'-' if inner is None else f'{inner:.3f}'} | {n_inner} | "
              f"{'-' if edge is None else f'{edge:.3f}'} | {n_edge} | {band:.3f} |")
    # Porosity against the distance from the volume's end, far from the slice (depth 256).
    p = profile(model, masks, 256)
    z = np.arange(256)
    to_end = np.minimum(z, 255 - z)
    print("\ndepth 256, porosity against the distance from the volume's end (both ends pooled; the slice is 128 away):")
    print("| voxels from the end | " + " | ".join(f"{lo}-{lo + 3}" for lo in range(0, 32, 4)) + " |\n|---|" + "---|" * 8)
    print("| porosity | " + " | ".join(f"{p[(to_end >= lo) & (to_end < lo + 4)].mean():.3f}" for lo in range(0, 32, 4)) + " |")


@contextlib.contextmanager
def patched_codes(which: str):
    """Zero the depth-dependent inputs at inference: 'code' (the depth code, lengths codes2), 'slice'
    (the damped slice features at every resolution), or 'both'. Zero is their far-field value."""
    import rocksynth.models.slice2vol as s2v

    original = s2v.depth_code
    code_lengths = (4.0, 8.0, 16.0)  # VolumeGenerator.codes2

    def patched(depth, centre, scale, lengths, device=None):
        out = original(depth, centre, scale, lengths, device)
        is_code = tuple(lengths) == code_lengths
        if which == "both" or (which == "code" and is_code) or (which == "slice" and not is_code):
            return torch.zeros_like(out)
        return out

    s2v.depth_code = patched
    try:
        yield
    finally:
        s2v.depth_code = original


def codes(model, mask) -> None:
    assert tuple(model.generator.codes2) == (4.0, 8.0, 16.0)
    masks = windows(mask, 4)
    columns = {"as shipped": by_distance(profile(model, masks, 128))}
    for which, label in (("code", "no depth code"), ("slice", "no slice features"), ("both", "neither (far field everywhere)")):
        with patched_codes(which):
            columns[label] = by_distance(profile(model, masks, 128))
    table(columns, "porosity vs distance with the depth-dependent inputs zeroed (4 windows 128^2, 128 deep; "
                   "the slice is pasted at distance 0 in every case)")
    with patched_codes("both"):
        for depth in (64, 128):
            p = profile(model, masks, depth)
            z = np.arange(depth)
            to_end = np.minimum(z, depth - 1 - z)
            print(f"neither input, depth {depth}: porosity {p.mean():.3f}; z-slices within 16 of an end "
                  f"{p[to_end < 16].mean():.3f}, further {p[to_end >= 16].mean() if (to_end >= 16).any() else float('nan'):.3f}")


def activations(model, mask) -> None:
    from rocksynth.pipelines.reconstruct import reconstruct

    m = windows(mask, 1)[0]
    for depth in (64, 192):
        captured = {}
        hooks = [model.generator.at_quarter.register_forward_hook(lambda mod, i, o: captured.__setitem__("q", o)),
                 model.generator.at_full.register_forward_hook(lambda mod, i, o: captured.__setitem__("logit", o))]
        try:
            volume, _ = reconstruct(model, m, depth=depth, seed=0, slab=depth)  # one slab: whole depth
        finally:
            for h in hooks:
                h.remove()
        q = captured["q"][0].mean((2, 3)).numpy()        # (channels, cells): plane mean per depth cell
        logit = captured["logit"][0, 0].mean((1, 2)).numpy()
        cells = q.shape[1]
        centre_cell = (depth // 2 + (-(depth // 2)) % 4) // 4
        dist = np.abs(np.arange(cells) - centre_cell) * 4
        to_end = np.minimum(np.arange(cells), cells - 1 - np.arange(cells)) * 4
        varied = np.argsort(q.std(1))[::-1][:4]
        print(f"\ndepth {depth}: plane mean of the 4 quarter-resolution channels that vary most with depth "
              f"(of {q.shape[0]}), and of the logit")
        print("| cell distance | to the end | " + " | ".join(f"ch {c}" for c in varied) + " | mean logit | porosity |\n"
              "|---|---|" + "---|" * (len(varied) + 2))
        before = (-(depth // 2)) % 4
        for k in range(0, cells, 2 if depth > 64 else 1):
            if dist[k] > 96:
                continue
            zs = slice(max(k * 4 - before, 0), max(k * 4 + 4 - before, 0))
            print(f"| {dist[k]} | {to_end[k]} | " + " | ".join(f"{q[c, k]:+.2f}" for c in varied)
                  + f" | {logit[k * 4:k * 4 + 4].mean():+.2f} | {volume[zs].mean() if volume[zs].size else float('nan'):.3f} |")


def phi(model, mask) -> None:
    """Far-field porosity of 192-deep volumes against the porosity the slice-porosity channel is given.

    The generator's `slice_` argument reaches the output in two ways only: its mean (the
    slice-porosity channel, everywhere) and the raw slice injected at full resolution within 4
    voxels of the centre. Handing the generator a random slice of a chosen porosity (the encoder's
    features still come from the real slice) changes only the first in the far field."""
    from rocksynth.pipelines.reconstruct import reconstruct

    masks = windows(mask, 2)
    generator = model.generator
    original = generator.forward
    print("\nfar field (> 40 voxels from the slice, >= 16 from an end; 192 deep, 2 windows 128^2) against the "
          "porosity the slice-porosity channel is given:")
    print("| porosity given to the channel | far-field porosity |\n|---|---|")
    for target in (0.10, 0.15, 0.20, 0.25, 0.30):
        def forward(slice_, *args, **kwargs):
            fake = (torch.rand(slice_.shape, generator=torch.Generator().manual_seed(1)) < target).float()
            return original(fake, *args, **kwargs)
        generator.forward = forward
        try:
            values = []
            for i, m in enumerate(masks):
                v, _ = reconstruct(model, m, depth=192, seed=i)
                z = np.arange(192)
                keep = (np.abs(z - 96) > 40) & (np.minimum(z, 191 - z) >= 16)
                values.append(v[keep].mean())
        finally:
            del generator.forward
        print(f"| {target:.2f} | {np.mean(values):.3f} |")
    print(f"(the Berea windows' own porosity: {np.mean([m.mean() for m in masks]):.3f}; real Berea 0.196, Ketton 0.127)")


@contextlib.contextmanager
def patched_features(model, keep: str):
    """The encoder's feature maps reduced to their plane means per channel ('mean': what the damped
    features add uniformly over each depth plane, a per-depth code) or with those means removed
    ('detail'). Both are inputs the model never saw; they only say which part drives the bands."""
    encoder = model.encoder
    original = encoder.forward

    def forward(slice_):
        out = []
        for f in original(slice_):
            mean = f.mean((2, 3), keepdim=True)
            out.append(mean.expand_as(f).contiguous() if keep == "mean" else f - mean)
        return tuple(out)

    encoder.forward = forward
    try:
        yield
    finally:
        del encoder.forward


def features(model, mask) -> None:
    masks = windows(mask, 4)
    columns = {"as shipped": by_distance(profile(model, masks, 128))}
    for keep, label in (("mean", "plane means only"), ("detail", "plane means removed")):
        with patched_features(model, keep):
            columns[label] = by_distance(profile(model, masks, 128))
    with patched_codes("slice"):
        columns["no slice features"] = by_distance(profile(model, masks, 128))
    table(columns, "porosity vs distance with the encoder's features split into their plane means and the rest "
                   "(4 windows 128^2, 128 deep)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    names = ["stitching", "seeds", "noise", "depth", "codes", "features", "activations", "phi"]
    for name in names:
        parser.add_argument(f"--{name}", action="store_true")
    parser.add_argument("--all", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    model, mask = load()
    run = {"stitching": stitching, "seeds": seeds, "noise": noise, "depth": depth_scan, "codes": codes, "features": features,
           "activations": activations, "phi": phi}
    chosen = [n for n in names if args.all or getattr(args, n)] or parser.error("choose an experiment or --all")
    for name in chosen:
        tick = time.perf_counter()
        print(f"\n## {name}", flush=True)
        run[name](model, mask)
        print(f"({name}: {time.perf_counter() - tick:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
