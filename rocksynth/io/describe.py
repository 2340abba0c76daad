"""What a file holds: kind, shape, dtype, value range, voxel size, porosity if binary, size on disk."""

import os
from pathlib import Path

import numpy as np

from rocksynth.io.formats import detect_file_format, sniff
from rocksynth.io.paths import STDIO, check_input_file, read_stdin_bytes
from rocksynth.io.volumes import TiffStackReader, read_volume


def describe_file(path, raw_shape=None, raw_dtype=None) -> dict:
    """A JSON-ready description of a volume, image or video file (or folder of slices)."""
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
    return _summary(path, info, data.shape, data.dtype, [data])


def _summary(path, info: dict, shape, dtype, chunks) -> dict:
    low, high, values, counts, total = None, None, set(), {1: 0, 255: 0}, 0
    for chunk in chunks:
        low = chunk.min() if low is None else min(low, chunk.min())
        high = chunk.max() if high is None else max(high, chunk.max())
        if values is not None and info["kind"] != "video":
            values |= set(np.unique(chunk).tolist())
            values = values if len(values) <= 2 else None  # more than two values: not binary
        for pore in counts:
            counts[pore] += int(np.count_nonzero(chunk == pore))
        total += chunk.size
    info.update({
        "path": str(path),
        "shape": list(shape),
        "axes": {"video": "tyxc", "image": "yx" if len(shape) == 2 else "yxc", "volume": "zyx"}[info["kind"]],
        "dtype": str(dtype),
        "min": low.item(), "max": high.item(),
        "size_on_disk_bytes": _size_on_disk(path),
    })
    info["binary"] = bool(info["kind"] != "video" and values and (values <= {0, 255} or values <= {0, 1}))
    if info["binary"]:
        pore = 255 if 255 in values or values == {0} else 1  # the documented convention: 255 (or 1) = pore
        info["porosity"] = counts[pore] / total
        info["porosity_convention"] = f"pore = {pore}"
    return info


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
        return sum(f.stat().st_size for f in path.iterdir() if f.is_file())
    return os.path.getsize(path)
