"""Inference: a 3D volume from one 2D slice with a trained slice-to-volume GAN.

The slice is padded to a multiple of the model's grid, encoded once, and the volume is generated
in depth slabs (each with a margin of `halo_cells()` on either side, so slabs join exactly), which
bounds memory for large slices. The margin is generated past the volume's ends too (from noise
cells beyond them) and dropped, so the ends look like the inside of a deeper volume: no voxel's
receptive field meets a z-boundary (before, the ends were a position cue: issue #25). The raw
generator output is thresholded at the model's logit threshold (0, i.e. probability 0.5, or on request the checkpoint's porosity calibration); its agreement with
the input at the central slice is measured, then the input slice is pasted there exactly.
"""

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rocksynth.devices import mixed_precision, module_device, to_numpy
from rocksynth.errors import BadInputError
from rocksynth.models.checkpoints import inference_models, load_checkpoint
from rocksynth.models.slice2vol import GRID, NoiseSlabs, Slice2Vol
from rocksynth.progress import log, progress_bar, warn

KIND = "reconstruct"
# Voxels per full-resolution window of a slab (bounds peak memory to a few hundred MB).
WINDOW_VOXELS = 1 << 22
QUARTER_SLABS = 8


@dataclass
class LoadedModel:
    model: Slice2Vol
    meta: dict
    path: Path

    @property
    def min_side(self) -> int:
        """The smallest slice side the model was trained or evaluated on: its training crop, or
        its held-out evaluation cubes' side (`eval_crop`) when smaller. Smaller slices are refused:
        the whole-slice code would average too few pixels for what the model learned."""
        settings = self.meta.get("settings", {})
        crop = int(settings.get("crop", 64))
        return min(crop, int(settings.get("eval_crop") or crop))

    @property
    def voxel_size(self) -> "float | None":
        """The training volume's voxel size, only for a model trained on one volume (a model of
        several rocks cannot know which one a slice comes from)."""
        return self.meta.get("voxel_size") if len(self.meta.get("data", [])) == 1 else None


def load_model(name_or_path: "str | os.PathLike", calibrated: bool = False,
               device: "torch.device | None" = None) -> LoadedModel:
    """A shipped model by name (berea, ketton) or a checkpoint written by `train reconstruct`, on
    `device` (None: the CPU); thresholded at probability 0.5, or with `calibrated` at its porosity
    calibration."""
    from rocksynth.pretrained.registry import resolve_model

    path = resolve_model(str(name_or_path), KIND)
    payload = load_checkpoint(path, KIND)
    model = inference_models(payload)["model"].to(device or "cpu")
    if calibrated:
        if "logit_threshold" not in payload["meta"].get("calibration", {}):
            raise BadInputError(f"{path}: this model has no porosity calibration (train or resume it with "
                                "`rocksynth train reconstruct ... --resume` to add one)")
        model.logit_threshold = float(payload["meta"]["calibration"]["logit_threshold"])
    return LoadedModel(model, payload["meta"], path)


def check_slice(mask: np.ndarray, min_side: int, source: str = "slice") -> None:
    """Refuse slices the model cannot condition on, with an actionable message."""
    if mask.ndim != 2:
        raise BadInputError(f"{source}: expected a 2D slice, got an array of shape {mask.shape}")
    if min(mask.shape) < min_side:
        raise BadInputError(f"{source}: slice is {mask.shape[1]}x{mask.shape[0]} pixels, smaller than the "
                            f"smallest the model was trained or evaluated on ({min_side}); "
                            f"give a slice at least {min_side}x{min_side}")
    pores = int(np.count_nonzero(mask))
    if pores == 0:
        raise BadInputError(f"{source}: slice has no pore pixels (all solid); check --threshold / --pore-value")
    if pores == mask.size:
        raise BadInputError(f"{source}: slice is all pore (no solid); check --threshold / --pore-value")


def _slab_depth(height: int, width: int, slab: "int | None") -> int:
    """Kept depth per slab, a multiple of GRID: `slab` if given, else bounded by WINDOW_VOXELS."""
    if slab is None:
        slab = WINDOW_VOXELS // (height * width)
    return max(GRID, slab - slab % GRID)


def generate_slabs(model: Slice2Vol, mask: np.ndarray, depth: int, seed: int, slab: "int | None" = None):
    """Yield (z_start, bool slab (d, H, W)) covering depth `depth`, and finally ('agreement', value).

    The volume's central slice (index depth // 2) is the input slice: the raw output there is
    compared with it (the agreement is yielded last) and then replaced by it exactly.
    Every slab, the first and last included, is generated with `halo_cells()` cells of margin
    on both sides (noise is drawn for them past the ends as well), so the slabs are the same
    voxels as one piece, and the volume's own noise cells are drawn as before halos existed:
    voxels farther than the margin from both ends are what the pipeline gave before.
    The network runs on the model's device; the noise is drawn on the CPU (the same numbers on
    every device), slab by slab (`NoiseSlabs`: the numbers `sample_noise` draws for the whole
    depth), and moved there.
    """
    height, width = mask.shape
    centre = depth // 2
    # Put the central voxel on the first voxel of a quarter-resolution cell, as in training.
    before = (-centre) % GRID
    total = -(-(depth + before) // GRID) * GRID
    pad_h, pad_w = (-height) % GRID, (-width) % GRID
    padded = np.pad(mask, ((0, pad_h), (0, pad_w)), mode="symmetric") if pad_h or pad_w else mask
    device = module_device(model)
    slice_t = torch.from_numpy(padded.astype(np.float32))[None, None].to(device)
    torch_gen = torch.Generator().manual_seed(int(seed))
    # Cell k of the volume is noise cell k + halo: `halo` cells are drawn past each end. The noise
    # is `sample_noise`'s, drawn slab by slab so that memory does not grow with the depth.
    noise = NoiseSlabs(model, total, padded.shape[0], padded.shape[1], torch_gen)
    cells = total // GRID
    fine = _slab_depth(padded.shape[0], padded.shape[1], slab) // GRID
    # The quarter-resolution stage runs QUARTER_SLABS slabs at a time: its halo (about as deep as
    # a slab of a large slice) is then paid once for several, while the finer stages, which hold
    # most of the memory, still run slab by slab.
    step = fine * QUARTER_SLABS
    halo = model.halo_cells()
    agreement = None
    with torch.no_grad(), mixed_precision(device):
        feats = model.encoder(slice_t)
        for first in range(0, cells, step):
            end = min(cells, first + step)
            lo, hi = first - halo, end + halo  # past the ends too: no end cue
            noise2, noise1 = noise.take(lo + halo, hi + halo)
            out = model.generator(slice_t, feats, noise2.to(device), noise1.to(device),
                                  centre=centre + before, z0=lo, keep=(first, end), fine_cells=fine)
            block = to_numpy(out[0, 0, :, :height, :width]) > model.logit_threshold
            # Map generated voxels [first*GRID, end*GRID) to output depth, dropping the padding.
            z_from, z_to = first * GRID - before, end * GRID - before
            keep_from, keep_to = max(z_from, 0), min(z_to, depth)
            if keep_to <= keep_from:
                continue
            block = block[keep_from - z_from:keep_to - z_from]
            if keep_from <= centre < keep_to:
                index = centre - keep_from
                agreement = float(np.mean(block[index] == mask))
                block[index] = mask
            yield keep_from, block
    yield "agreement", agreement


def reconstruct(model: Slice2Vol, mask: np.ndarray, depth: "int | None" = None, seed: int = 0,
                slab: "int | None" = None) -> "tuple[np.ndarray, float]":
    """(volume bool (depth, H, W), raw central-slice agreement) in memory."""
    depth = mask.shape[0] if depth is None else depth
    volume = np.empty((depth,) + mask.shape, dtype=bool)
    agreement = None
    for start, block in generate_slabs(model, mask, depth, seed, slab):
        if start == "agreement":
            agreement = block
        else:
            volume[start:start + len(block)] = block
    return volume, agreement


def _output_paths(out: str, samples: int) -> "list[str]":
    if samples == 1:
        return [out]
    if out == "-":
        raise BadInputError("--samples > 1 cannot write to stdout; give a file name")
    if "{i}" in out:
        return [out.replace("{i}", str(i)) for i in range(samples)]
    path = Path(out)
    suffix = "".join(path.suffixes) or ".tif"
    stem = path.name[:-len("".join(path.suffixes))] if path.suffixes else path.name
    return [str(path.with_name(f"{stem}_{i}{suffix}")) for i in range(samples)]


# Far field: voxels at least this far from the input slice, where the model's output no longer
# depends on it; its porosity should match the slice's within the rock's natural spread: the
# per-slice porosity of Berea 400³ varies with sd 0.016 along z, so 0.03 is about two sd.
FAR_FIELD = 32
POROSITY_TOLERANCE = 0.03


def far_field_porosity(pores_per_slice: np.ndarray, slice_voxels: int) -> "float | None":
    """Porosity of the slices at least `FAR_FIELD` from the central (input) slice, or None if none are."""
    z = np.arange(len(pores_per_slice))
    far = np.abs(z - len(pores_per_slice) // 2) >= FAR_FIELD
    if not far.any():
        return None
    return float(pores_per_slice[far].sum()) / (int(far.sum()) * slice_voxels)


def porosity_warning(slice_porosity: float, far: "float | None", model: str) -> "str | None":
    """A warning when the far field's porosity is not the slice's (a rock unlike the training data)."""
    if far is None or abs(far - slice_porosity) <= POROSITY_TOLERANCE:
        return None
    return (f"the volume's porosity {FAR_FIELD} or more voxels from the slice is {far:.3f}, the slice's "
            f"{slice_porosity:.3f}: model {model} does not follow this slice's porosity (more than "
            f"{POROSITY_TOLERANCE} apart); to fix it, train the model on this rock (rocksynth train reconstruct --init)")


def reconstruct_files(slice_path: str, out: str, model: str = "berea", depth: "int | None" = None,
                      samples: int = 1, seed: int = 0, voxel_size=None, threshold=None,
                      pore_value: str = "auto", slab: "int | None" = None, calibrated: bool = False,
                      device: "torch.device | None" = None, crop: bool = False) -> dict:
    """The `rocksynth reconstruct` command: read and segment the slice (`crop`: a circular field
    of view cropped to its inscribed square), write `samples` volumes; the network runs on
    `device` (None: the CPU). `voxel_size` (metres) overrides the slice's."""
    from rocksynth.io.binary import load_binary_slice
    from rocksynth.io.volumes import streamed_output_kind, volume_writer
    from rocksynth.io.paths import BINARY_TIFF_BYTES_PER_VOXEL, check_free_space, check_input_file, prepare_outputs
    from rocksynth.properties.porosity import porosity

    if samples < 1:
        raise BadInputError(f"--samples must be at least 1, got {samples}")
    if depth is not None and depth < 1:
        raise BadInputError(f"--depth must be positive, got {depth}")
    if slab is not None and slab < GRID:
        raise BadInputError(f"--slab must be at least {GRID}, got {slab}")
    if slice_path != "-":
        check_input_file(slice_path)
    streamed_output_kind(out)  # a .tif, .zarr or stdout, refused otherwise before the model runs
    paths = [str(p) for p in prepare_outputs(_output_paths(out, samples))]  # all names, before any is written
    loaded = load_model(model, calibrated=calibrated, device=device)
    mask, voxel = load_binary_slice(slice_path, threshold=threshold, pore_value=pore_value, voxel_size=voxel_size,
                                    crop=crop)
    check_slice(mask, loaded.min_side, str(slice_path))
    depth = depth or max(mask.shape)
    check_free_space(paths[0], int(samples * depth * mask.size * BINARY_TIFF_BYTES_PER_VOXEL),
                     ("a" if samples == 1 else f"{samples} volumes of") + f" {depth}x{mask.shape[0]}x{mask.shape[1]} "
                     + ("volume" if samples == 1 else "voxels"))
    voxel = voxel or _model_voxel_size(loaded)
    slice_porosity = porosity(mask)
    results = []
    with progress_bar(samples * depth, "reconstructing") as bar:
        for index, path in enumerate(paths):
            tick = time.perf_counter()
            agreement, per_slice = None, np.zeros(depth, np.int64)
            with volume_writer(path, (depth,) + mask.shape, np.uint8, voxel_size=voxel) as writer:
                for start, block in generate_slabs(loaded.model, mask, depth, seed + index, slab):
                    if start == "agreement":
                        agreement = block
                        continue
                    per_slice[start:start + len(block)] = np.count_nonzero(block, axis=(1, 2))
                    writer.write(block.astype(np.uint8) * 255)
                    bar.advance(len(block))
            seconds = time.perf_counter() - tick
            pores = int(per_slice.sum())
            far = far_field_porosity(per_slice, mask.size)
            results.append({"path": path, "shape": [depth, *mask.shape], "porosity": pores / (depth * mask.size),
                            "far_field_porosity": far, "raw_central_slice_agreement": agreement,
                            "seconds": round(seconds, 3)})
            warning = porosity_warning(slice_porosity, far, loaded.path.stem)
            if warning:
                warn(warning)
            if path != "-":
                log(f"wrote {path}: {depth}x{mask.shape[0]}x{mask.shape[1]}, porosity {pores / (depth * mask.size):.3f} "
                    f"(slice {slice_porosity:.3f}); raw central-slice agreement {agreement:.4f} before pasting "
                    f"the input slice; {seconds:.1f} s")
    return {"model": str(loaded.path.name), "slice": str(slice_path), "slice_porosity": slice_porosity,
            "logit_threshold": loaded.model.logit_threshold,
            "voxel_size_m": voxel, "seed": seed, "volumes": results}


def _model_voxel_size(loaded: LoadedModel) -> "float | None":
    """The voxel size of a slice that has none: the model's training volume's, when it has one."""
    from rocksynth.units import format_length

    if loaded.voxel_size:
        log(f"voxel size {format_length(loaded.voxel_size)} taken from the model's training data "
            "(override with --voxel-size)")
    else:
        log("voxel size unknown (the slice has none): none written; give --voxel-size")
    return loaded.voxel_size
