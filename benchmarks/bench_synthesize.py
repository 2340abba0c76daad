"""Speed and peak memory of `rocksynth synthesize` against a PorousMediaGAN-style 3D DCGAN.

For each size N (default 128, 256, 512, 1024) and each generator, a fresh subprocess decodes an
N^3 volume and reports wall time, voxels per second and its peak RSS (getrusage maxrss):
- ours: the texture generator decoding its latent grid tile by tile, thresholding and streaming
  z-slabs to a BigTIFF (zlib level 1) through VolumeWriter, exactly as the CLI does; the time spent
  in the generator alone is reported too.
- dcgan: the generator of Mosser et al. (2017), PorousMediaGAN: nz 512, ngf 64, five transposed
  3D convolutions with BatchNorm + ReLU and tanh, random weights, whole volume at once from a
  (512, s, s, s) latent where N = 16 (s + 3). Sizes whose estimated activations exceed
  --dcgan-max-gb are skipped (and printed as such).

Run:  OMP_NUM_THREADS=1 python benchmarks/bench_synthesize.py --threads 1 [--repeat 3]
(`--repeat N` alternates the generators N times per size and keeps each one's fastest run; every
run also reports its CPU seconds, which waiting for a busy core does not inflate.)
`--anisotropy` prints per-axis transitions and pore chords of real vs generated crops.

`--quality` instead follows the paper's protocol at CPU scale, per texture of the model: N
generated 64^3 volumes (independent seeds, the texture's code) against N real 64^3 crops of the
held-out part of its volume; KL divergence (20 bins over the pooled range) of porosity,
specific surface and Euler density, and of permeability on the first --k-count crops of each set
(a pore-network Stokes solve per crop, about 1 s each on this CPU), beside a real-vs-real floor (held-out crops vs training crops). It also checks `--like`
(held-out crops encoded, a volume synthesized from the code, then the texture whose real crops are
nearest in the four properties above, each scaled by the spread of the textures' means; also in
porosity and surface alone) and, with `--figures DIR`,
draws the `--blend` porosity profile and real/generated slices.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------------------------------------
# Children (one per measurement)

def run_ours(size: int, model: str, tile: int) -> dict:
    import torch

    from rocksynth.io.volumes import VolumeWriter
    from rocksynth.models.texture import TextureGenerator
    from rocksynth.pipelines import synthesize as synth

    try:
        loaded = synth.load_texture_model(model)
        generator, code = loaded.generator, loaded.codes[0]
        weights = f"model {model}"
    except Exception:  # no checkpoint yet: the speed does not depend on the weights
        generator, code = TextureGenerator().eval(), torch.zeros(8)
        weights = "random weights"
    shape = (size,) * 3
    start, start_cpu = time.perf_counter(), time.process_time()
    cells = synth.grid_cells(generator, shape)
    latent = synth.LatentGrid(cells, generator.noise_channels, 0, synth.constant_code_field(code, cells))
    decode_time, pores = 0.0, 0
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as folder:
        path = os.path.join(folder, "big.tif")
        with VolumeWriter(path, shape, bool) as writer:
            # The loop of synth.stream_volume, timing the generator apart from the writing.
            slabs = synth.decode_slabs(generator, latent, shape, tile=(min(synth.SLAB_DEPTH, tile), tile, tile),
                                       threshold=0.5, packed=True)
            while True:
                t0 = time.perf_counter()
                slab = next(slabs, None)
                decode_time += time.perf_counter() - t0
                if slab is None:
                    break
                pores += synth.write_packed_slab(writer, slab, size)
                # Progress on stderr, so a run cut short still tells its pace and memory.
                print(f"{writer.written}/{size} slices, {time.perf_counter() - start:.0f} s, "
                      f"peak RSS {_peak_rss_mb():.0f} MB", file=sys.stderr, flush=True)
        wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
        file_mb = os.path.getsize(path) / 2 ** 20
    voxels = size ** 3
    return {"generator": "ours", "size": size, "wall_s": wall, "cpu_s": cpu, "decode_s": decode_time,
            "voxels_per_s": voxels / wall, "ns_per_voxel_decode": decode_time / voxels * 1e9,
            "peak_rss_mb": _peak_rss_mb(), "porosity": pores / voxels, "file_mb": file_mb, "weights": weights,
            "tile": tile, "latent_cells": list(latent.cells)}


def dcgan_generator(nz: int = 512, ngf: int = 64):
    """PorousMediaGAN generator (Mosser et al. 2017): 4^3 -> 64^3 from a 1^3 latent."""
    from torch import nn

    def up(c_in, c_out):
        return [nn.ConvTranspose3d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm3d(c_out), nn.ReLU(True)]

    return nn.Sequential(
        nn.ConvTranspose3d(nz, ngf * 8, 4, 1, 0, bias=False), nn.BatchNorm3d(ngf * 8), nn.ReLU(True),
        *up(ngf * 8, ngf * 4), *up(ngf * 4, ngf * 2), *up(ngf * 2, ngf),
        nn.ConvTranspose3d(ngf, 1, 4, 2, 1, bias=False), nn.Tanh(),
    ).eval()


def dcgan_estimated_gb(size: int, ngf: int = 64) -> float:
    """Largest input + output activation pair (float32): the last layer's ngf channels at N/2."""
    return (ngf * (size // 2) ** 3 + size ** 3 + 2 * ngf * (size // 4) ** 3) * 4 / 2 ** 30


def run_dcgan(size: int) -> dict:
    import torch

    if size % 16 or size < 64:
        raise ValueError("DCGAN sizes are multiples of 16, at least 64")
    latent_side = size // 16 - 3
    generator = dcgan_generator()
    z = torch.randn(1, 512, latent_side, latent_side, latent_side)
    start, start_cpu = time.perf_counter(), time.process_time()
    with torch.no_grad():
        volume = generator(z) > 0
    wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    assert volume.shape[-1] == size
    voxels = size ** 3
    return {"generator": "dcgan", "size": size, "wall_s": wall, "cpu_s": cpu, "decode_s": wall, "voxels_per_s": voxels / wall,
            "ns_per_voxel_decode": wall / voxels * 1e9, "peak_rss_mb": _peak_rss_mb(),
            "porosity": float(volume.float().mean()), "latent_cells": [latent_side] * 3}


# ---------------------------------------------------------------------------------------------
# Quality (paper protocol at CPU scale)

QUALITY_BINS = 20
PAPER_PERMEABILITY_KL = {"Berea": 0.49, "Doddington": 0.42, "Estaillades": 0.80, "Bentheimer": 0.47, "Ketton": 5.06}


def _permeability_available() -> bool:
    try:
        import rocksynth.properties.permeability  # noqa: F401
    except ImportError:
        return False
    return True


def crop_permeability(crop) -> float:
    """Permeability along x in voxel-side^2 (PoreSpy SNOW network + OpenPNM Stokes flow, as
    `rocksynth analyze`); 0 when no pore path spans the crop. KL does not depend on the unit."""
    from rocksynth.properties.network import extract_network
    from rocksynth.properties.permeability import network_permeability

    try:
        return float(network_permeability(extract_network(crop), None, ("x",), formation_factor=False)[0].k_voxel2)
    except Exception:  # e.g. no pores at all
        return 0.0


def crop_properties(crops, voxel_size, permeability_count: int = 0) -> dict:
    """Porosity, specific surface (per voxel side) and Euler density (per voxel) of every crop;
    permeability of the first `permeability_count` crops."""
    import numpy as np

    from rocksynth.properties.minkowski import minkowski_functionals
    from rocksynth.properties.porosity import porosity

    values = {"porosity": [], "specific_surface": [], "euler_density": []}
    for crop in crops:
        values["porosity"].append(porosity(crop))
        functionals = minkowski_functionals(crop)
        values["specific_surface"].append(functionals["surface_density"])
        values["euler_density"].append(functionals["euler_density"])
    if permeability_count:
        values["permeability"] = [crop_permeability(crop) for crop in crops[:permeability_count]]
    return {k: np.asarray(v, float) for k, v in values.items()}


def like_names(with_permeability) -> "list[str]":
    return ["porosity", "specific surface", "Euler density"] + (["log10 permeability"] if with_permeability else [])


def like_vector(values: dict):
    """The properties `--like` is judged on, as a vector (porosity and surface first)."""
    import numpy as np

    vector = [values["porosity"], values["specific_surface"], values["euler_density"]]
    if "permeability" in values:
        vector.append(np.log10(max(values["permeability"], 1e-6)))
    return np.array(vector, float)


def real_crop_sets(model, count: int, size: int):
    """Held-out and training crops of each texture of the model, re-made from its recorded sources."""
    import numpy as np

    from rocksynth.data.crops import random_crop
    from rocksynth.pipelines.synthesize import load_training_textures

    sources = []
    for texture in model.textures:
        source = texture["source"]
        sources.append(f"{texture['name']}=porespy:{texture['name']}" if source.startswith("porespy")
                       else f"{texture['name']}={source}")
    textures = load_training_textures(sources, holdout=model.meta["settings"]["holdout"])
    sets = {}
    for texture in textures:
        rng = np.random.default_rng(0)
        block, note = texture.held_out, "held-out block"
        if min(block.shape) < size:  # e.g. fractures: the held-out quarter is thinner than a crop
            whole = np.concatenate([texture.train, texture.held_out])
            block, note = whole, f"whole volume (held-out block {texture.held_out.shape} is thinner than {size})"
        held = np.stack([random_crop(block, size, rng) for _ in range(count)])
        train = np.stack([random_crop(texture.train, size, rng) for _ in range(count)]) \
            if min(texture.train.shape) >= size else None
        sets[texture.name] = {"held_out": held, "train": train, "note": note, "texture": texture}
    return sets


def generated_crops(model, code, count: int, size: int, seed0: int = 1000, extruded: bool = False):
    import numpy as np

    from rocksynth.pipelines import synthesize as synth

    g = model.generator
    shape = (size,) * 3
    cells = synth.grid_cells(g, shape)
    field = synth.constant_code_field(code, cells)
    extrude = g if extruded else None
    return np.stack([synth.decode_one_shot(g, synth.LatentGrid(cells, g.noise_channels, seed0 + i, field, extrude).full(),
                                           shape) > 0.5 for i in range(count)])


def axis_statistics(volumes) -> dict:
    """Per axis (z, y, x), averaged over the volumes: pore/solid transitions per voxel and the
    mean pore chord length (runs of pore voxels along the axis). Equal on every axis for an
    isotropic medium."""
    import numpy as np

    from rocksynth.data.crops import transitions_per_axis

    transitions = np.mean([transitions_per_axis(volume) for volume in volumes], axis=0)
    stats = {}
    for axis, name in enumerate("zyx"):
        chords = []
        for volume in volumes:
            lines = np.moveaxis(volume, axis, -1).reshape(-1, volume.shape[axis]).astype(np.int8)
            edges = np.diff(np.pad(lines, ((0, 0), (1, 1))), axis=1)
            starts, ends = np.nonzero(edges == 1)[1], np.nonzero(edges == -1)[1]
            chords.append((ends - starts).mean() if len(starts) else 0.0)
        stats[name] = (float(transitions[axis]), float(np.mean(chords)))
    return stats


def anisotropy(args) -> None:
    from rocksynth.pipelines import synthesize as synth

    model = synth.load_texture_model(args.model)
    sets = real_crop_sets(model, args.count, args.crop)
    print(f"{args.count} real and {args.count} generated {args.crop}^3 crops per texture; per axis z / y / x")
    print("| texture | set | transitions per voxel | mean pore chord (voxels) | y/z transitions |")
    print("|---|---|---|---|---|")
    for name in model.names():
        for label, volumes in (("real", sets[name]["held_out"]),
                               ("generated", generated_crops(model, model.code_of(name), args.count, args.crop,
                                                             extruded=model.is_extruded(name)))):
            stats = axis_statistics(volumes)
            ratio = stats["y"][0] / stats["z"][0] if stats["z"][0] else float("inf")
            print(f"| {name} | {label} | {' / '.join(f'{stats[a][0]:.4f}' for a in 'zyx')} | "
                  f"{' / '.join(f'{stats[a][1]:.1f}' for a in 'zyx')} | {ratio:.2f} |", flush=True)


def quality(args) -> None:
    import numpy as np
    import torch

    from rocksynth.data.crops import is_extruded, transitions_per_axis
    from rocksynth.pipelines import synthesize as synth
    from rocksynth.properties.compare import kl_divergence

    torch.set_num_threads(args.threads)
    model = synth.load_texture_model(args.model)
    k_count = min(args.k_count, args.count) if _permeability_available() else 0
    print(f"model {args.model}: textures {', '.join(model.names())}; {args.count} generated vs {args.count} real "
          f"{args.crop}³ crops; KL with {QUALITY_BINS} bins; permeability on the first {k_count} of each set; "
          f"torch threads {args.threads}; load {os.getloadavg()[0]:.1f}")
    sets = real_crop_sets(model, args.count, args.crop)
    results, means, generated_vectors, real_vectors = {}, {}, {}, {}
    for name in model.names():
        start = time.perf_counter()
        real = sets[name]
        voxel = real["texture"].voxel_size
        gen = generated_crops(model, model.code_of(name), args.count, args.crop, extruded=model.is_extruded(name))
        p_real = crop_properties(real["held_out"], voxel, k_count)
        p_gen = crop_properties(gen, voxel, k_count)
        p_train = crop_properties(real["train"], voxel, k_count) if real["train"] is not None else None
        row = {"real_crops": real["note"]}
        for prop in p_real:
            row[prop] = {"real_mean": float(p_real[prop].mean()), "generated_mean": float(p_gen[prop].mean()),
                         "real_std": float(p_real[prop].std()), "generated_std": float(p_gen[prop].std()),
                         "kl": kl_divergence(p_real[prop], p_gen[prop], bins=QUALITY_BINS),
                         "kl_real_vs_train": (kl_divergence(p_real[prop], p_train[prop], bins=QUALITY_BINS)
                                              if p_train is not None else None)}
        results[name] = row
        # Each generated crop's properties (those with a permeability when it is measured).
        n = k_count or args.count
        generated_vectors[name] = [like_vector({k: v[i] for k, v in p_gen.items()}) for i in range(n)]
        real_vectors[name] = [like_vector({k: v[i] for k, v in p_real.items()}) for i in range(n)]
        # Mean properties (geometric mean for permeability, which is compared as log10 K).
        means[name] = like_vector({k: 10 ** np.log10(np.maximum(v, 1e-6)).mean() if k == "permeability" else v.mean()
                                   for k, v in p_real.items()})
        print(f"{name}: {time.perf_counter() - start:.0f} s", flush=True)
    print()
    props = [p for p in ("porosity", "permeability", "specific_surface", "euler_density") if p in results[model.names()[0]]]
    print("| texture | property | real mean ± sd | generated mean ± sd | KL(real‖gen) | KL floor (held-out vs train crops) |")
    print("|---|---|---|---|---|---|")
    for name, row in results.items():
        for prop in props:
            r = row[prop]
            floor = "–" if r["kl_real_vs_train"] is None else f"{r['kl_real_vs_train']:.2f}"
            print(f"| {name} | {prop} | {r['real_mean']:.4g} ± {r['real_std']:.2g} | {r['generated_mean']:.4g} ± "
                  f"{r['generated_std']:.2g} | {r['kl']:.2f} | {floor} |")
    print("paper (Alanov et al. 2020, Table 2) permeability KL: "
          + ", ".join(f"{k} {v}" for k, v in PAPER_PERMEABILITY_KL.items()))
    for name, row in results.items():
        print(f"{name}: real crops from the {row['real_crops']}")

    # --like: held-out crops of each texture -> code -> generated volume -> nearest texture in the
    # benchmark's properties (porosity, specific surface, Euler density and, when it is measured,
    # log10 permeability), each normalised by the spread of the textures' real means; and, as
    # reported before that, in porosity and specific surface alone.
    scale = np.std(np.stack(list(means.values())), axis=0) + 1e-12
    like = {}

    def nearest(vector, use=slice(None)):
        return min(means, key=lambda k: np.linalg.norm((vector[use] - means[k][use]) / scale[use]))

    # The same verdict for the generator's own textures (`--texture NAME`, no encoder): `--like`
    # cannot land nearer a texture than the model's own version of it does.
    own = {name: sum(nearest(v) == name for v in vectors) for name, vectors in generated_vectors.items()}
    # And for real held-out crops: how often a real crop of a texture is nearest its own texture's
    # mean, the most a generated crop can be expected to reach with this rule.
    real_own = {name: sum(nearest(v) == name for v in vectors) for name, vectors in real_vectors.items()}
    print()
    print("`--texture NAME` crops nearest to NAME in the same properties: "
          + ", ".join(f"{name} {hits}/{len(generated_vectors[name])}" for name, hits in own.items()))
    print("real held-out crops nearest their own texture (the rule's ceiling): "
          + ", ".join(f"{name} {hits}/{len(real_vectors[name])}" for name, hits in real_own.items()))
    print()
    print(f"| exemplar (held-out crop) | nearest texture code | nearest in {', '.join(like_names(k_count))} "
          "| nearest in porosity, surface |")
    print("|---|---|---|---|")
    for name in model.names():
        crops = sets[name]["held_out"][: args.like_count]
        hits_code, hits_props, hits_two = 0, 0, 0
        for index, crop in enumerate(crops):
            code = synth.encode_exemplar(model, crop)
            hits_code += synth.nearest_textures(model, code)[0][0] == name
            gen = generated_crops(model, code, 1, args.crop, seed0=5000 + index,
                                  extruded=is_extruded(transitions_per_axis(crop)))[0]
            vector = like_vector({k: v[0] for k, v in crop_properties([gen], None, 1 if k_count else 0).items()})
            hits_props += nearest(vector) == name
            hits_two += nearest(vector, slice(0, 2)) == name
        like[name] = (hits_code, hits_props, len(crops), hits_two)
        print(f"| {name} | {hits_code}/{len(crops)} | {hits_props}/{len(crops)} | {hits_two}/{len(crops)} |")
    if args.json_out:
        with open(args.json_out, "w") as handle:
            json.dump({"quality": results, "like": like, "texture_nearest_own": own, "real_nearest_own": real_own}, handle, indent=2)
    if args.figures:
        figures(model, sets, args.figures)


def figures(model, sets, folder) -> None:
    """docs/img/synthesize_blend.png (porosity profile of a --blend volume) and
    synthesize_slices.png (a real and a generated slice per texture)."""
    import matplotlib
    import numpy as np

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rocksynth.pipelines import synthesize as synth

    os.makedirs(folder, exist_ok=True)
    names = model.names()
    g = model.generator
    a, b = names[0], names[1]
    shape = (256, 96, 96)
    cells = synth.grid_cells(g, shape)
    field = synth.blend_code_field(model.code_of(a), model.code_of(b), cells, 0, g.margin_voxels, shape[0])
    volume = np.concatenate(list(synth.decode_slabs(g, synth.LatentGrid(cells, g.noise_channels, 7, field), shape,
                                                    threshold=0.5)))
    profile = volume.mean(axis=(1, 2))
    window = 9
    smooth = np.convolve(profile, np.ones(window) / window, mode="same")
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), gridspec_kw={"width_ratios": [2, 1]})
    left.plot(profile, color="0.7", lw=0.8, label="per slice")
    left.plot(np.arange(window, shape[0] - window), smooth[window:-window], color="C0", label=f"{window}-slice mean")
    for name, colour in ((a, "C1"), (b, "C2")):
        left.axhline(sets[name]["held_out"].mean(), color=colour, ls="--", label=f"{name} real (held-out)")
    left.axvspan(shape[0] * 0.25, shape[0] * 0.75, color="0.9", zorder=0, label="transition of the codes")
    left.set_xlabel("z (voxels)")
    left.set_ylabel("porosity")
    left.set_title(f"synthesize --blend {a}:{b} --axis z --size {'x'.join(map(str, shape))}")
    left.legend(fontsize=7)
    right.imshow(~volume[:, :, shape[2] // 2], cmap="gray", aspect="auto", vmin=0, vmax=1)
    right.set_title("x = 48 section (black = pore)")
    right.set_xlabel("y")
    right.set_ylabel("z")
    fig.tight_layout()
    fig.savefig(os.path.join(folder, "synthesize_blend.png"), dpi=90)
    plt.close(fig)

    fig, axes = plt.subplots(2, len(names), figsize=(3 * len(names), 6.2))
    for column, name in enumerate(names):
        gen = generated_crops(model, model.code_of(name), 1, 128, seed0=42, extruded=model.is_extruded(name))[0]
        real = sets[name]["texture"].held_out
        real_slice = real[real.shape[0] // 2, :128, :128]
        axes[0, column].imshow(~real_slice, cmap="gray", vmin=0, vmax=1)
        axes[0, column].set_title(f"{name}: real (held-out)", fontsize=9)
        axes[1, column].imshow(~gen[64], cmap="gray", vmin=0, vmax=1)
        axes[1, column].set_title(f"{name}: generated", fontsize=9)
        for ax in axes[:, column]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(os.path.join(folder, "synthesize_slices.png"), dpi=90)
    plt.close(fig)
    print(f"figures written to {folder}")


def child(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    result = run_ours(args.size, args.model, args.tile) if args.child == "ours" else run_dcgan(args.size)
    result["threads"] = args.threads
    print("RESULT " + json.dumps(result), flush=True)


# ---------------------------------------------------------------------------------------------
# Parent

def fastest(runs: "list[dict]") -> dict:
    """The fastest of several fresh-process runs (on a shared machine the least disturbed one),
    with the highest peak RSS of them all. The CPU seconds (`cpu_s`) of a run are less disturbed
    by other jobs than its wall time: a process waiting for a core accrues none."""
    good = [r for r in runs if "decode_s" in r]
    if not good:
        return runs[-1]
    best = dict(min(good, key=lambda r: r["decode_s"]))
    best["peak_rss_mb"] = max(r["peak_rss_mb"] for r in good)
    best["cpu_s"] = min(r["cpu_s"] for r in good)
    best["runs"] = len(good)
    return best


def measure_once(kind: str, size: int, args) -> dict:
    command = [sys.executable, __file__, "--child", kind, "--size", str(size), "--threads", str(args.threads),
               "--model", args.model, "--tile", str(args.tile)]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    return {"generator": kind, "size": size, "error": (done.stderr.strip().splitlines() or ["failed"])[-1]}


def throats(args) -> None:
    """At what scale each texture's pore loops close: the Euler density (per 10^4 voxels) of its
    held-out block as it is, without pore components under 50 voxels (specks), after an opening
    with the 6-neighbour cross (removes throats one voxel wide) and after a 2x block average
    interpolated back (trilinear) and thresholded at the same porosity (what a half-resolution
    field can draw without fitting each voxel), for the model's textures and for its own volumes."""
    import numpy as np
    from scipy import ndimage

    from rocksynth.pipelines import synthesize as synth
    from rocksynth.properties.minkowski import minkowski_functionals

    def euler(volume):
        return minkowski_functionals(volume)["euler_density"] * 1e4

    def variants(volume):
        labels, _ = ndimage.label(volume)
        sizes = np.bincount(labels.ravel())
        big = (sizes >= 50)[labels] & volume
        opened = ndimage.binary_opening(volume, ndimage.generate_binary_structure(3, 1))
        even = volume[tuple(slice(0, n - n % 2) for n in volume.shape)]
        low = even.reshape(even.shape[0] // 2, 2, even.shape[1] // 2, 2, even.shape[2] // 2, 2).mean(axis=(1, 3, 5))
        smooth = ndimage.zoom(low, 2, order=1)
        coarse = smooth > np.quantile(smooth, 1 - even.mean())
        return (f"{volume.mean():.3f} | {euler(volume):+.2f} | {euler(big):+.2f} | {opened.mean():.3f} | "
                f"{euler(opened):+.2f} | {euler(coarse):+.2f} ({(coarse == even).mean():.1%} of voxels kept)")

    model = synth.load_texture_model(args.model)
    sets = real_crop_sets(model, 1, args.crop)
    print("| texture | volume | porosity | Euler density ×10⁴ | without specks < 50 voxels | porosity opened | "
          "Euler opened | Euler, 2× coarser field |")
    print("|---|---|---|---|---|---|---|---|")
    for name in model.names():
        texture = sets[name]["texture"]
        print(f"| {name} | held-out block {texture.held_out.shape} | {variants(texture.held_out)} |", flush=True)
        gen = generated_crops(model, model.code_of(name), 1, 128, extruded=model.is_extruded(name))[0]
        print(f"| {name} | generated 128³ | {variants(gen)} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="128,256,512,1024")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--model", default="rocks")
    parser.add_argument("--tile", type=int, default=128)
    parser.add_argument("--dcgan-max-gb", type=float, default=8.0)
    parser.add_argument("--skip-dcgan", action="store_true")
    parser.add_argument("--repeat", type=int, default=1,
                        help="Runs per size and generator, alternating; the fastest is reported (use 3 on a shared machine).")
    parser.add_argument("--quality", action="store_true", help="Quality protocol instead of speed.")
    parser.add_argument("--anisotropy", action="store_true",
                        help="Per-axis transitions and pore chords of real vs generated crops, instead of speed.")
    parser.add_argument("--throats", action="store_true",
                        help="Euler density of each texture with specks removed, opened and coarsened, instead of speed.")
    parser.add_argument("--count", type=int, default=100, help="Crops per side for --quality.")
    parser.add_argument("--crop", type=int, default=64)
    parser.add_argument("--like-count", type=int, default=10)
    parser.add_argument("--k-count", type=int, default=50, help="Crops per set whose permeability is computed (0: none).")
    parser.add_argument("--figures", help="Folder for the figures of --quality (e.g. docs/img).")
    parser.add_argument("--json-out", help="Write the --quality results as JSON here.")
    parser.add_argument("--child", choices=["ours", "dcgan"])
    parser.add_argument("--size", type=int)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if args.quality:
        quality(args)
        return
    if args.anisotropy:
        anisotropy(args)
        return
    if args.throats:
        throats(args)
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"load before: {os.getloadavg()[0]:.2f} (1-min average; {os.cpu_count()} cores), torch threads {args.threads}, "
          f"fastest of {args.repeat} run(s) each")
    rows = []
    for size in sizes:
        estimate = dcgan_estimated_gb(size)
        with_dcgan = not args.skip_dcgan and estimate <= args.dcgan_max_gb
        runs = {"ours": [], "dcgan": []}
        for _ in range(args.repeat):  # alternate, so both generators meet the same load
            for kind in ("ours", "dcgan") if with_dcgan else ("ours",):
                runs[kind].append(measure_once(kind, size, args))
        rows.append(fastest(runs["ours"]))
        print(json.dumps(rows[-1]), flush=True)
        if args.skip_dcgan:
            continue
        if with_dcgan:
            rows.append(fastest(runs["dcgan"]))
        else:
            rows.append({"generator": "dcgan", "size": size,
                         "skipped": f"estimated activations {estimate:.0f} GB > {args.dcgan_max_gb:.0f} GB"})
        print(json.dumps(rows[-1]), flush=True)
    print(f"load after: {os.getloadavg()[0]:.2f}")
    print()
    print("| size | generator | wall s | generator s | voxels/s | ns/voxel (generator) | CPU s (whole run) | peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        label = f"{row['size']}³"
        if "skipped" in row or "error" in row:
            print(f"| {label} | {row['generator']} | – | – | – | – | – | {row.get('skipped') or row.get('error')} |")
            continue
        print(f"| {label} | {row['generator']} | {row['wall_s']:.1f} | {row['decode_s']:.1f} | "
              f"{row['voxels_per_s'] / 1e6:.2f} M | {row['ns_per_voxel_decode']:.0f} | {row['cpu_s']:.1f} | {row['peak_rss_mb']:.0f} |")
    ours = {r["size"]: r for r in rows if r["generator"] == "ours" and "wall_s" in r}
    dcgan = {r["size"]: r for r in rows if r["generator"] == "dcgan" and "wall_s" in r}
    for size in sorted(set(ours) & set(dcgan)):
        print(f"{size}³: generator speed-up over DCGAN {dcgan[size]['ns_per_voxel_decode'] / ours[size]['ns_per_voxel_decode']:.1f}x "
              f"(end to end incl. writing: {dcgan[size]['wall_s'] / ours[size]['wall_s']:.1f}x; in CPU seconds of the "
              f"whole run, which time-slicing by other jobs does not inflate: {dcgan[size]['cpu_s'] / ours[size]['cpu_s']:.1f}x)")
    if 1024 in ours and 256 in ours:
        ratio = ours[1024]["peak_rss_mb"] / ours[256]["peak_rss_mb"]
        print(f"peak RSS 1024³ / 256³: {ratio:.2f} (goal < 1.3); 1024³ peak {ours[1024]['peak_rss_mb']:.0f} MB (goal < 1536)")


if __name__ == "__main__":
    main()
