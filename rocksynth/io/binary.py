"""Load a binary rock image (True = pore) from any supported file, saying what was inferred."""

import numpy as np

from rocksynth.errors import BadInputError
from rocksynth.io.images import is_colour_image, read_image, to_gray
from rocksynth.io.segment import binarize, detect_circular_fov
from rocksynth.io.volumes import read_volume
from rocksynth.progress import log, warn
from rocksynth.units import format_length, parse_length


def load_binary_volume(path, threshold=None, pore_value="auto", voxel_size=None, crop=False,
                       raw_shape=None, raw_dtype=None, allow_2d=False) -> "tuple[np.ndarray, float | None]":
    """(mask, voxel size in metres or None) for a volume file; `allow_2d` also accepts a 2D image."""
    volume = read_volume(path, raw_shape=raw_shape, raw_dtype=raw_dtype, allow_2d=allow_2d)
    data = volume.data
    if data.ndim == 2 or (allow_2d and is_colour_image(data)):
        data = to_gray(data, volume.source)
    data = _crop_field_of_view(data, volume.source, crop)
    segmentation = binarize(data, threshold, pore_value)
    log(f"{volume.source}: {segmentation.note}")
    return segmentation.mask, _voxel_size(voxel_size, volume.voxel_size, volume.voxel_size_origin, volume.source)


def load_binary_image(path, threshold=None, pore_value="auto", crop=False) -> np.ndarray:
    """A 2D binary image (True = pore); colour images are refused unless their channels are equal."""
    image = to_gray(read_image(path), str(path))
    image = _crop_field_of_view(image, str(path), crop)
    segmentation = binarize(image, threshold, pore_value)
    log(f"{path}: {segmentation.note}")
    return segmentation.mask


def _crop_field_of_view(data: np.ndarray, source: str, crop: bool) -> np.ndarray:
    reference = data if data.ndim == 2 else data[data.shape[0] // 2]
    fov = detect_circular_fov(reference)
    if fov is None:
        if crop:
            log(f"{source}: no circular field of view found; nothing cropped")
        return data
    rows, cols = fov.inscribed_square(reference.shape)
    if not crop:
        warn(f"{source}: circular field of view detected (radius {fov.radius:.0f} px); the area outside it "
             f"is counted as material; use --crop to keep only the inscribed square")
        return data
    log(f"{source}: circular field of view (radius {fov.radius:.0f} px) cropped to rows {rows.start}:{rows.stop}, "
        f"columns {cols.start}:{cols.stop}")
    return data[..., rows, cols]


def _voxel_size(given, from_file, origin: str, source: str) -> "float | None":
    if given is not None:
        size = parse_length(given)
        if from_file and abs(from_file - size) > 1e-3 * size:
            warn(f"{source}: --voxel-size {format_length(size)} overrides the file's {format_length(from_file)}")
        return size
    if from_file:
        log(f"{source}: voxel size {format_length(from_file)} (from {origin})")
    return from_file


def require_3d(mask: np.ndarray, source: str) -> np.ndarray:
    if mask.ndim != 3:
        raise BadInputError(f"{source}: is 2D; this needs a 3D volume")
    return mask
