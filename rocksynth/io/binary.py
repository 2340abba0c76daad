"""Load a binary rock image (True = pore) from any supported file, saying what was inferred."""

import numpy as np

from rocksynth.errors import BadInputError
from rocksynth.io.formats import sniff
from rocksynth.io.images import is_colour_image, read_image, to_gray
from rocksynth.io.paths import STDIO, stdin_stream
from rocksynth.io.segment import FieldOfView, binarize, detect_circular_fov
from rocksynth.io.volumes import read_volume
from rocksynth.progress import log, warn
from rocksynth.units import format_length, parse_length


CROP_FLAG = "--crop"


def load_binary_volume(path, threshold=None, pore_value="auto", voxel_size=None, crop=False,
                       raw_shape=None, raw_dtype=None, allow_2d=False,
                       crop_flag: "str | None" = CROP_FLAG) -> "tuple[np.ndarray, float | None]":
    """(mask, voxel size in metres or None) for a volume file; `allow_2d` also accepts a 2D image.

    `crop_flag` is the option that sets `crop`, named when a circular field of view is left in
    place (None: the command has none; `rocksynth convert --crop` is suggested)."""
    volume = read_volume(path, raw_shape=raw_shape, raw_dtype=raw_dtype, allow_2d=allow_2d)
    data = volume.data
    if data.ndim == 2 or (allow_2d and is_colour_image(data)):
        data = to_gray(data, volume.source)
    data, fov = _field_of_view(data, volume.source, crop)
    mask = _segment(data, volume.source, threshold, pore_value, fov, crop_flag)
    return mask, _voxel_size(voxel_size, volume.voxel_size, volume.voxel_size_origin, volume.source)


def load_binary_image(path, threshold=None, pore_value="auto", crop=False,
                      crop_flag: "str | None" = CROP_FLAG) -> np.ndarray:
    """A 2D binary image (True = pore); colour images are refused unless their channels are equal.
    `crop_flag` as in `load_binary_volume`."""
    name = _shown(path)
    image = to_gray(read_image(path), name)
    image, fov = _field_of_view(image, name, crop)
    return _segment(image, name, threshold, pore_value, fov, crop_flag)


def load_binary_slice(path, threshold: "float | None" = None, pore_value: str = "auto", voxel_size=None,
                      crop: bool = False, crop_flag: "str | None" = CROP_FLAG) -> "tuple[np.ndarray, float | None]":
    """A 2D binary image (as `load_binary_image`) and its pixel size, as `load_binary_volume` gives them.

    Parameters
    ----------
    path : str or Path
        A PNG, JPEG or TIFF image, or '-' (stdin).
    threshold, pore_value, crop, crop_flag
        As `load_binary_volume`.
    voxel_size : float or str, optional
        Given pixel size (metres, or a string such as '5.345um'); overrides the file's, with a
        warning when they disagree.

    Returns
    -------
    (numpy.ndarray, float or None)
        The bool mask (True = pore) and the pixel size in metres: `voxel_size`, else the TIFF's
        (its source printed), else None.
    """
    mask = load_binary_image(path, threshold, pore_value, crop, crop_flag)
    size, origin = _image_voxel_size(path)
    return mask, _voxel_size(voxel_size, size, origin, _shown(path))


def _shown(path) -> str:
    return "stdin" if str(path) == STDIO else str(path)


def _image_voxel_size(path) -> "tuple[float | None, str]":
    """(pixel size in metres or None, where it came from) stored in a TIFF image, a file or stdin;
    PNG and JPEG: (None, '')."""
    import tifffile

    from rocksynth.io.tiff_metadata import read_voxel_size

    with (stdin_stream() if str(path) == STDIO else open(path, "rb")) as source:
        if sniff(source.read(16)) != "tiff":
            return None, ""
        source.seek(0)
        with tifffile.TiffFile(source) as tif:  # the header only: the image was read already
            return read_voxel_size(tif)


def _field_of_view(data: np.ndarray, source: str, crop: bool) -> "tuple[np.ndarray, FieldOfView | None]":
    """(data, the circular field of view left in it or None): `crop` crops a detected one to its
    inscribed square, which is then no longer in the data."""
    reference = data if data.ndim == 2 else data[data.shape[0] // 2]
    fov = detect_circular_fov(reference)
    if fov is None:
        if crop:
            log(f"{source}: no circular field of view found; nothing cropped")
        return data, None
    if not crop:
        return data, fov
    rows, cols = fov.inscribed_square(reference.shape)
    log(f"{source}: circular field of view (radius {fov.radius:.0f} px) cropped to rows {rows.start}:{rows.stop}, "
        f"columns {cols.start}:{cols.stop}")
    return data[..., rows, cols], None


def _crop_field_of_view(data: np.ndarray, source: str, crop: bool) -> np.ndarray:
    """`data`, a circular field of view cropped with `crop`, for callers that segment later if at
    all (`convert`): one left in place is reported as kept, since what it becomes is not known yet."""
    data, fov = _field_of_view(data, source, crop)
    if fov is not None:
        warn(f"{source}: circular field of view detected (radius {fov.radius:.0f} px); the area outside it "
             f"is kept; use {CROP_FLAG} to keep only the inscribed square")
    return data


def _segment(data: np.ndarray, source: str, threshold, pore_value, fov: "FieldOfView | None",
             crop_flag: "str | None") -> np.ndarray:
    """The bool mask of `data`, saying how it was segmented and what became of the outside of `fov`."""
    segmentation = binarize(data, threshold, pore_value)
    log(f"{source}: {segmentation.note}")
    if fov is not None:
        warn(f"{source}: {outside_note(segmentation.mask, fov)}; " + (
            f"use {crop_flag} to keep only the inscribed square" if crop_flag
            else "crop it to the inscribed square first with rocksynth convert --crop"))
    return segmentation.mask


# Beyond this distance outside the disc's edge (px) the image is the scanner's background, as
# `detect_circular_fov` checks; nearer, the detected radius may be a pixel or two off.
_EDGE = 2


def outside_note(mask: np.ndarray, fov: FieldOfView) -> str:
    """What segmentation made of the area outside a circular field of view, e.g. 'circular field of
    view detected (radius 96 px); the area outside it is segmented as pore (29 % of the image)'.

    Parameters
    ----------
    mask : numpy.ndarray
        Bool (y, x) image or (z, y, x) volume, True = pore; of a volume, the middle slice is looked
        at, as `detect_circular_fov` was.
    fov : FieldOfView
        The field of view detected in it.
    """
    reference = mask if mask.ndim == 2 else mask[mask.shape[0] // 2]
    distance2 = _squared_distance(reference.shape, fov.centre)
    outside = distance2 > fov.radius ** 2
    background = distance2 > (fov.radius + _EDGE) ** 2
    pore = float(reference[background if background.any() else outside].mean())
    if pore >= 0.99:
        phase = "pore"
    elif pore <= 0.01:
        phase = "solid"
    else:
        phase = f"{pore * 100:.0f} % pore"
    return (f"circular field of view detected (radius {fov.radius:.0f} px); the area outside it is segmented "
            f"as {phase} ({outside.mean() * 100:.0f} % of the image)")


def _squared_distance(shape, centre) -> np.ndarray:
    yy, xx = np.ogrid[:shape[0], :shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2


def _voxel_size(given, from_file, origin: str, source: str) -> "float | None":
    if given is not None:
        size = parse_length(given)
        if from_file and abs(from_file - size) > 1e-3 * size:
            warn(f"{source}: --voxel-size {format_length(size)} overrides the file's {format_length(from_file)}")
        else:
            log(f"{source}: voxel size {format_length(size)} (from --voxel-size)")
        return size
    if from_file:
        log(f"{source}: voxel size {format_length(from_file)} (from {origin})")
    return from_file


def require_3d(mask: np.ndarray, source: str) -> np.ndarray:
    if mask.ndim != 3:
        raise BadInputError(f"{source}: is 2D; this needs a 3D volume")
    return mask
