"""What a file holds: kind, shape, dtype, value range, voxel size, porosity if binary, size on disk."""

import os
from pathlib import Path

import numpy as np

from rocksynth.io.formats import detect_file_format, is_zarr_store, sniff
from rocksynth.io.paths import STDIO, check_input_file, read_stdin_bytes
from rocksynth.io.volumes import TiffStackReader, read_volume


# Volumes decoding to more than this are described from their headers alone (no value range,
# no porosity) unless statistics are asked for: reading a 1024³ scan takes longer than a glance.
STATS_BYTES = 2**28


def describe_file(path, raw_shape=None, raw_dtype=None, stats: "bool | None" = None) -> dict:
    """A JSON-ready description of a volume, image or video file (or folder of slices, or Zarr store).

    Parameters
    ----------
    path : str or Path
        The file ('-' for stdin).
    raw_shape, raw_dtype : optional
        The layout of a .raw file.
    stats : bool or None
        Read every voxel for the value range and porosity: None (default) only for volumes of at
        most `STATS_BYTES` (and always for images, videos and stdin), True always, False never
        for volumes that open lazily (Zarr, TIFF stacks, .npy, .raw).

    Zarr stores and volumes over `STATS_BYTES` are opened lazily (rocksynth.io.lazy): the
    description then adds the format, the chunks and, for OME-Zarr, the shapes of its levels;
    statistics are read chunk by chunk, so memory stays bounded either way.
    """
    if str(path) != STDIO:
        from rocksynth.io.lazy import declared_nbytes, open_lazy

        check_input_file(path)
        if Path(path).suffix.lower() == ".zarr" or (Path(path).is_dir() and is_zarr_store(path)):
            small = open_lazy(path).data.nbytes <= STATS_BYTES
            return _describe_lazy(path, raw_shape, raw_dtype, small if stats is None else stats)
        if stats is not True and _kind_of(path) == "volume":
            nbytes = declared_nbytes(path, raw_shape, raw_dtype)
            if nbytes is not None and (stats is False or nbytes > STATS_BYTES):
                return _describe_lazy(path, raw_shape, raw_dtype, False)
    kind = _kind_of(path)
    if kind == "video":
        from rocksynth.io.videos import read_video

        video = read_video(path)
        data, info = video.frames, {"kind": "video", "frames": int(video.frames.shape[0]), "fps": video.fps}
    else:
        stack = TiffStackReader.open(path) if kind == "volume" and str(path) != STDIO else None
        if stack is not None:  # statistics slab by slab: the volume may not fit in memory
            with stack:
                return _summary(path, {"kind": "volume", "voxel_size_m": stack.voxel_size,
                                       "voxel_size_from": stack.voxel_size_origin or None},
                                stack.shape, stack.dtype, stack.slabs())
        volume = read_volume(path, raw_shape=raw_shape, raw_dtype=raw_dtype, allow_2d=True, allow_rgb=True)
        data = volume.data
        colour = volume.colour_image or (data.ndim == 3 and data.shape[-1] in (3, 4) and kind == "image")
        is_image = data.ndim == 2 or colour
        info = {"kind": "image" if is_image else "volume",
                "voxel_size_m": volume.voxel_size, "voxel_size_from": volume.voxel_size_origin or None}
        if colour:  # what analyze segments: the gray of equal channels, or nothing of a colour photo
            return _summary(path, info, data.shape, data.dtype, [data], segmented=[_analysed_gray(data, str(path))])
    return _summary(path, info, data.shape, data.dtype, [data])


def _analysed_gray(image: np.ndarray, name: str) -> "np.ndarray | None":
    """The gray image analyze segments of a (y, x, 3|4) image (`to_gray`: equal colour channels,
    alpha dropped), or None for a colour image, which analyze refuses."""
    from rocksynth.errors import BadInputError
    from rocksynth.io.images import to_gray

    try:
        return to_gray(image, name)
    except BadInputError:
        return None


def _describe_lazy(path, raw_shape, raw_dtype, with_stats: bool) -> dict:
    """Describe a lazily opened volume: from its metadata, plus statistics read chunk by chunk."""
    from rocksynth.io.lazy import open_lazy

    volume = open_lazy(path, raw_shape, raw_dtype)
    info = {"kind": "volume", "format": volume.format, "voxel_size_m": volume.voxel_size,
            "voxel_size_from": volume.voxel_size_origin or None}
    extra = {"chunks": list(volume.data.chunksize)}
    if volume.stored_chunks:
        extra["stored_chunks"] = list(volume.stored_chunks)
    if volume.levels:
        extra["levels"] = [list(level) for level in volume.levels]
    if with_stats:
        report = _summary(path, info, volume.shape, volume.dtype, (slab for _, slab in volume.slabs()))
    else:
        report = dict(info, path=str(path), shape=list(volume.shape), axes="zyx", dtype=str(volume.dtype),
                      min=None, max=None, size_on_disk_bytes=_size_on_disk(path), binary=None,
                      statistics=f"not read ({volume.data.nbytes / 1e9:.3g} GB of voxels); pass --stats to read "
                                 "every voxel for the value range and porosity")
    report.update(extra)
    return report


def _summary(path, info: dict, shape, dtype, chunks, segmented=None) -> dict:
    """`info` completed with the value range of `chunks` and, if they are binary, the porosity.

    Parameters
    ----------
    path : str or Path
        The file described.
    info : dict
        The description so far; its 'kind' is 'image', 'volume' or 'video' (never binary).
    shape, dtype
        Of the whole file.
    chunks : iterable of numpy.ndarray
        Every value of the file, in pieces (read once); the value range is theirs.
    segmented : list of (numpy.ndarray or None), optional
        What analyze segments when it is not `chunks` (a colour image's gray); None in it means
        analyze segments nothing (a colour photograph), so no porosity is given.
    """
    low, high, phases = None, None, _Phases()
    for chunk in chunks:
        low = chunk.min() if low is None else min(low, chunk.min())
        high = chunk.max() if high is None else max(high, chunk.max())
        if segmented is None and info["kind"] != "video":
            phases.add(chunk)
    for piece in segmented or ():
        phases.add(piece)
    info.update({
        "path": str(path),
        "shape": list(shape),
        "axes": {"video": "tyxc", "image": "yx" if len(shape) == 2 else "yxc", "volume": "zyx"}[info["kind"]],
        "dtype": str(dtype),
        "min": _number(low), "max": _number(high),
        "size_on_disk_bytes": _size_on_disk(path),
    })
    info["binary"] = phases.binary()
    if info["binary"]:
        info["porosity"], pore = phases.porosity()
        info["porosity_convention"] = f"pore = {pore}"
    return info


class _Phases:
    """Running counts telling whether values are binary (0/255 or 0/1) and, if so, the porosity."""

    def __init__(self) -> None:
        self.values: "set | None" = set()
        self.counts, self.total = {1: 0, 255: 0}, 0

    def add(self, piece: "np.ndarray | None") -> None:
        """Count one piece; None (nothing analyze would segment) makes the whole not binary."""
        if piece is None or self.values is None:
            self.values = None
            return
        self.values |= set(np.unique(piece).tolist())
        if len(self.values) > 2:  # more than two values: not binary, stop counting
            self.values = None
            return
        for pore in self.counts:
            self.counts[pore] += int(np.count_nonzero(piece == pore))
        self.total += piece.size

    def binary(self) -> bool:
        return bool(self.values and (self.values <= {0, 255} or self.values <= {0, 1}))

    def porosity(self) -> "tuple[float, int]":
        """(porosity, pore value): the documented convention, 255 (or 1) = pore, as `binarize` reads it."""
        pore = 255 if 255 in self.values or self.values == {0} else 1
        return self.counts[pore] / self.total, pore


def _number(value) -> "int | float":
    """A numpy scalar as a JSON number; bool as 0/1, like the other dtypes' values."""
    value = value.item()
    return int(value) if isinstance(value, bool) else value


def _kind_of(path) -> str:
    if str(path) == STDIO:
        sniffed = sniff(read_stdin_bytes()[:16])
        return "video" if sniffed == "mp4" else "image" if sniffed in ("png", "jpeg") else "volume"
    path = check_input_file(path)
    if path.is_dir():
        return "volume"
    kind = detect_file_format(path, expected=("tiff", "png", "jpeg", "npy", "mp4"))
    return {"mp4": "video", "png": "image", "jpeg": "image"}.get(kind, "volume")


def _size_on_disk(path) -> "int | None":
    if str(path) == STDIO:
        return len(read_stdin_bytes())
    path = Path(path)
    if path.is_dir():
        from rocksynth.io.formats import is_zarr_store

        if is_zarr_store(path):
            from rocksynth.io.zarr_io import size_on_disk

            return size_on_disk(path)
        return sum(f.stat().st_size for f in path.iterdir() if f.is_file())
    return os.path.getsize(path)
