"""Convert between every supported format, optionally segmenting, cropping or extracting a slice."""

import re

import numpy as np

from rocksynth.errors import BadInputError
from rocksynth.io.binary import _crop_field_of_view, _voxel_size
from rocksynth.io.formats import format_from_suffix
from rocksynth.io.images import is_colour_image, to_gray, write_image
from rocksynth.io.paths import STDIO, check_output, register_input
from rocksynth.io.segment import binarize
from rocksynth.io.videos import DEFAULT_FPS, read_video, write_video
from rocksynth.io.volumes import TiffStackReader, read_volume, write_volume
from rocksynth.progress import log, progress_bar, warn
from rocksynth.units import format_length

_AXES = {"z": 0, "y": 1, "x": 2}
WRITE_SLICES = 32  # slices handed to a streaming writer at a time


def convert_file(source, target, *, segment=False, threshold=None, pore_value="auto", crop=False,
                 slice_spec=None, raw_shape=None, raw_dtype=None, voxel_size=None, fps=None) -> str:
    """Read `source`, transform, write `target`; returns a one-line summary of what was written."""
    register_input(source)
    source_kind = format_from_suffix(str(source)) if str(source) != STDIO else None
    target_kind = None if str(target) == STDIO else format_from_suffix(str(target))
    if target_kind is not None or str(target).endswith("/"):  # before reading: a large volume takes minutes
        # A Zarr store or a folder of slices is checked as a folder (the trailing '/').
        check_output(str(target).rstrip("/") + "/" if target_kind in (None, "zarr") else target)
    if source_kind == "mp4" or target_kind == "mp4":
        return _convert_video(source, target, fps)
    if source_kind == "tiff" and target_kind == "tiff" and slice_spec is None and not crop:
        stack = TiffStackReader.open(source)
        if stack is not None:
            with stack:
                return _convert_streaming(stack, stack.name, stack.slabs(), target, segment or threshold is not None,
                                          threshold, pore_value, voxel_size)
    if _streams(source, source_kind, target_kind, slice_spec, crop):
        from rocksynth.io.lazy import open_lazy

        volume = open_lazy(source, raw_shape, raw_dtype)
        return _convert_streaming(volume, volume.source, (slab for _, slab in volume.slabs()), target,
                                  segment or threshold is not None, threshold, pore_value, voxel_size)
    volume = read_volume(source, raw_shape=raw_shape, raw_dtype=raw_dtype, allow_2d=True, allow_rgb=True)
    data = volume.data
    colour = volume.colour_image or is_colour_image(data)
    if slice_spec is not None:
        if data.ndim != 3 or colour:
            raise BadInputError(f"{volume.source}: --slice needs a 3D volume, this is a 2D image")
        data = _take_slice(data, slice_spec)
    if crop or segment or threshold is not None:
        if data.ndim == 2 or colour:
            data = to_gray(data, volume.source)
        data = _crop_field_of_view(data, volume.source, crop)
    if segment or threshold is not None:
        segmentation = binarize(data, threshold, pore_value)
        log(f"{volume.source}: {segmentation.note}")
        data = segmentation.mask
    size = _voxel_size(voxel_size, volume.voxel_size, volume.voxel_size_origin, volume.source)
    _write(target, target_kind, data, size, colour=colour and data.ndim == 3)
    return _written(target, data.shape, "uint8 0/255" if data.dtype == bool else data.dtype, size)


def _convert_streaming(source, name: str, slabs, target, segment, threshold, pore_value, voxel_size) -> str:
    """A volume read slab by slab (a `TiffStackReader` or a lazily opened volume, whose `slabs` are
    given) -> TIFF stack or OME-Zarr: memory stays bounded whatever the volume size."""
    from rocksynth.io.volumes import volume_writer

    dtype = source.dtype
    if segment:
        # One rule for the whole volume, chosen on evenly spaced slices.
        rule = binarize(source.sample(), threshold, pore_value)
        log(f"{name}: {rule.note}" + (" (chosen on 16 evenly spaced slices)" if threshold is None else ""))
        dtype = np.uint8
    size = _voxel_size(voxel_size, source.voxel_size, source.voxel_size_origin, name)
    with volume_writer(target, source.shape, dtype, size) as writer, \
            progress_bar(source.shape[0], "converting") as bar:
        for slab in slabs:
            if segment:
                try:
                    slab = rule.apply(slab)
                except BadInputError as exc:
                    raise BadInputError(f"{name}: {exc}") from None
            for start in range(0, len(slab), WRITE_SLICES):  # the TIFF writer queues what it is given
                writer.write(slab[start:start + WRITE_SLICES])
            bar.advance(len(slab))
    return _written(target, source.shape, "uint8 0/255" if segment else dtype)


def _streams(source, source_kind, target_kind, slice_spec, crop) -> bool:
    """Whether `convert` streams chunk by chunk: a volume that opens lazily (rocksynth.io.lazy) to a
    TIFF stack or Zarr, when Zarr is one of the two (TIFF -> TIFF streams through TiffStackReader)
    or the source is .npy/.raw; --slice and --crop need the whole volume."""
    from rocksynth.io.lazy import is_lazy_volume

    if slice_spec is not None or crop or str(source) == STDIO or target_kind not in ("tiff", "zarr"):
        return False
    if "zarr" not in (source_kind, target_kind) and source_kind not in ("npy", "raw"):
        return False
    return is_lazy_volume(source)


def _written(target, shape, dtype, voxel_size: "float | None" = None) -> str:
    """The summary line, with how to read back what the output's format does not hold."""
    summary = f"wrote {target if str(target) != STDIO else 'stdout'} ({'x'.join(map(str, shape))}, {dtype})"
    kind = format_from_suffix(str(target))
    size = f"--voxel-size {format_length(voxel_size).replace(' ', '').replace('µ', 'u')}" if voxel_size else None
    if kind == "raw":  # bare bytes: nothing in the file says how to read it
        summary += (f"; a .raw file holds no shape, type or voxel size: read it with --shape {'x'.join(map(str, shape))} "
                    f"--dtype {str(dtype).split()[0]} ({size or 'and --voxel-size'})")
    elif size and str(target) != STDIO and (kind == "npy" or (kind is None and len(shape) == 3)):
        what = "a .npy file" if kind == "npy" else "a folder of PNG slices"
        summary += f"; {what} holds no voxel size: give {size} when reading it"
    return summary


def _take_slice(data: np.ndarray, spec: str) -> np.ndarray:
    match = re.fullmatch(r"(?:([zyx])\s*=\s*)?(mid|-?\d+)", str(spec).strip().lower())
    if not match:
        raise BadInputError(f"cannot read --slice {spec!r}: use AXIS=INDEX, e.g. z=200, x=mid")
    axis = _AXES[match.group(1) or "z"]
    length = data.shape[axis]
    index = length // 2 if match.group(2) == "mid" else int(match.group(2))
    if not -length <= index < length:
        raise BadInputError(f"--slice {spec}: index out of range for axis of length {length}")
    return np.take(data, index, axis=axis)


def _write(target, kind, data: np.ndarray, voxel_size, colour: bool = False) -> None:
    single = data.ndim == 2 or colour or is_colour_image(data)
    if kind in ("png", "jpeg"):
        if not single:
            if data.shape[0] != 1:
                raise BadInputError(f"{target}: a {kind.upper()} holds one 2D image but the data is 3D "
                                    f"{'x'.join(map(str, data.shape))}; pick one with --slice z=INDEX")
            data = data[0]
        write_image(target, data, voxel_size)
    elif single and (kind == "tiff" or str(target) == STDIO):  # stdout: PNG for an image, TIFF for a volume
        write_image(target, data, voxel_size)
    else:
        if single and data.ndim == 3 and kind is None:  # a folder of one colour slice, not one per row
            data = data[None]
        write_volume(target, data, voxel_size)


def _convert_video(source, target, fps) -> str:
    video = read_video(source)
    if format_from_suffix(str(target)) == "mp4" and video.frames.shape[-1] == 1 and np.isin(video.frames, (0, 255)).all():
        warn(f"{target}: H.264 blurs binary frames into gray levels; a .tif stack keeps them binary")
    write_video(target, video.frames, fps or video.fps or DEFAULT_FPS)
    t, y, x, c = video.frames.shape
    return f"wrote {target} ({t} frames of {x}x{y}, {'gray' if c == 1 else 'RGB'})"
