"""Voxel size in TIFF files: written as resolution tags plus a JSON description; read from either,
from ImageJ metadata, or from a free-text description such as 'Berea ..., 5.345 um voxels'."""

import json
import re

from rocksynth.errors import BadInputError
from rocksynth.units import parse_length

_TEXT_VOXEL_RE = re.compile(r"([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(um|µm|micron|microns|nm|mm)\s*(?:voxel|pixel)",
                            re.IGNORECASE)


def description_for(voxel_size: "float | None", shape) -> str:
    """JSON written into the first page's ImageDescription; tifffile reads 'shape' back."""
    meta = {"shape": list(shape), "creator": "rocksynth"}
    if voxel_size:
        meta["voxel_size_m"] = voxel_size
    return json.dumps(meta)


def resolution_for(voxel_size: "float | None"):
    """(x, y) pixels per centimetre and the unit, as tifffile's `resolution`/`resolutionunit`."""
    if not voxel_size:
        return None, None
    per_cm = 0.01 / voxel_size
    return (per_cm, per_cm), "CENTIMETER"


def read_voxel_size(tif) -> "tuple[float | None, str]":
    """(voxel size in metres or None, where it came from) for an open tifffile.TiffFile."""
    page = tif.pages[0]
    description = page.description or ""
    try:
        meta = json.loads(description)
        if isinstance(meta, dict) and meta.get("voxel_size_m"):
            return float(meta["voxel_size_m"]), "rocksynth metadata"
    except ValueError:
        pass
    size, origin = _from_imagej(tif)
    if size:
        return size, origin
    size = _from_resolution_tags(page)
    if size:
        return size, "TIFF resolution tags"
    match = _TEXT_VOXEL_RE.search(description)
    if match:
        return parse_length(match.group(1) + match.group(2)), f"TIFF description ('{match.group(0)}')"
    return None, ""


def _from_imagej(tif) -> "tuple[float | None, str]":
    """ImageJ's z `spacing`, else its X resolution, both in the `unit` of its metadata.

    ImageJ writes `spacing` only for stacks, and the resolution unit tag NONE with its own unit
    in the metadata, so a calibrated 2D slice has its pixel size only this way."""
    meta = tif.imagej_metadata if tif.is_imagej else None
    unit = _imagej_unit(meta.get("unit", "")) if meta else ""
    if not unit:
        return None, ""
    spacing = meta.get("spacing")
    if spacing:
        size = _length(spacing, unit)
        if size:
            return size, "ImageJ metadata (z spacing)"
    per_unit = _pixels_per_unit(tif.pages[0])
    size = _length(1 / per_unit, unit) if per_unit else None
    return (size, f"ImageJ metadata, X resolution in {unit}") if size else (None, "")


def _imagej_unit(text) -> str:
    unit = str(text).strip().replace("\\u00B5", "µ")
    return "um" if unit.lower() in ("micron", "microns") else unit


def _length(value, unit: str) -> "float | None":
    """`value` `unit` in metres, or None for a unit that is not a length (ImageJ's 'pixel', 'inch')."""
    try:
        return parse_length(f"{float(value)!r}{unit}")
    except (BadInputError, ValueError):
        return None


def _pixels_per_unit(page) -> "float | None":
    tag = page.tags.get("XResolution")
    if tag is None:
        return None
    numerator, denominator = tag.value
    return numerator / denominator if numerator and denominator else None


def _from_resolution_tags(page) -> "float | None":
    unit_tag = page.tags.get("ResolutionUnit")
    pixels_per_unit = _pixels_per_unit(page)
    if unit_tag is None or not pixels_per_unit:
        return None
    unit = int(unit_tag.value)
    if unit not in (2, 3):  # 2 = inch, 3 = centimetre; 1 (NONE) is no physical size
        return None
    return (0.0254 if unit == 2 else 0.01) / pixels_per_unit
