"""What a file holds: kind, shape, dtype, value range, voxel size, porosity if binary, size on disk."""

import os
from pathlib import Path

import numpy as np

from rocksynth.io.formats import detect_file_format, sniff
from rocksynth.io.paths import STDIO, check_input_file, read_stdin_bytes


def describe_file(path, raw_shape=None, raw_dtype=None) -> dict:
    """A JSON-ready description of a volume, image or video file (or folder of slices)."""
    kind = _kind_of(path)
    if kind == "video":
        from rocksynth.io.videos import read_video

        video = read_video(path)
        data, info = video.frames, {"kind": "video", "frames": int(video.frames.shape[0]), "fps": video.fps}
    else:
        from rocksynth.io.volumes import read_volume

        volume = read_volume(path, raw_shape=raw_shape, raw_dtype=raw_dtype, allow_2d=True, allow_rgb=True)
        data = volume.data
        is_image = data.ndim == 2 or (data.ndim == 3 and data.shape[-1] in (3, 4) and kind == "image")
        info = {"kind": "image" if is_image else "volume",
                "voxel_size_m": volume.voxel_size, "voxel_size_from": volume.voxel_size_origin or None}
    low, high = (data.min(), data.max())
    info.update({
        "path": str(path),
        "shape": list(data.shape),
        "axes": {"video": "tyxc", "image": "yx" if data.ndim == 2 else "yxc", "volume": "zyx"}[info["kind"]],
        "dtype": str(data.dtype),
        "min": low.item(), "max": high.item(),
        "size_on_disk_bytes": _size_on_disk(path),
    })
    values = np.unique(data) if info["kind"] != "video" else np.array([])
    info["binary"] = bool(0 < len(values) <= 2 and (set(values.tolist()) <= {0, 255} or set(values.tolist()) <= {0, 1}))
    if info["binary"]:
        pore = 255 if 255 in values else 1  # the documented convention: 255 (or 1/True) = pore
        info["porosity"] = float((data == pore).mean())
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
