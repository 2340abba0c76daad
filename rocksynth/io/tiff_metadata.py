"""Voxel size in TIFF files: written as resolution tags plus a JSON description; read from either,
from ImageJ metadata, or from a free-text description such as 'Berea ..., 5.345 um voxels'."""

import json
import re

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
    if tif.is_imagej and tif.imagej_metadata:
        unit = str(tif.imagej_metadata.get("unit", "")).replace("\\u00B5", "µ").replace("micron", "um")
        spacing = tif.imagej_metadata.get("spacing")
        if spacing and unit:
            try:
                return parse_length(f"{spacing}{unit}"), "ImageJ metadata (z spacing)"
            except Exception:
                pass
    size = _from_resolution_tags(page)
    if size:
        return size, "TIFF resolution tags"
    match = _TEXT_VOXEL_RE.search(description)
    if match:
        return parse_length(match.group(1) + match.group(2)), f"TIFF description ('{match.group(0)}')"
    return None, ""


def _from_resolution_tags(page) -> "float | None":
    tag, unit_tag = page.tags.get("XResolution"), page.tags.get("ResolutionUnit")
    if tag is None or unit_tag is None:
        return None
    numerator, denominator = tag.value
    unit = int(unit_tag.value)
    if not numerator or not denominator or unit not in (2, 3):  # 2 = inch, 3 = centimetre
        return None
    pixels_per_unit = numerator / denominator
    return (0.0254 if unit == 2 else 0.01) / pixels_per_unit
