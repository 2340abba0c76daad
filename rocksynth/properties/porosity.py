"""Porosity: the fraction of voxels (or pixels) that are pore."""

import numpy as np

from rocksynth.errors import BadInputError


def as_mask(mask) -> np.ndarray:
    """A boolean pore mask (True = pore) from any 0/1, 0/255 or bool array."""
    array = np.asarray(mask)
    if array.dtype == bool:
        return array
    if array.size == 0:
        raise BadInputError("empty image: nothing to analyse")
    return array > 0


def porosity(mask) -> float:
    """Total porosity: pore voxels / all voxels."""
    mask = as_mask(mask)
    if mask.size == 0:
        raise BadInputError("empty image: nothing to analyse")
    return float(np.count_nonzero(mask)) / mask.size


_AXIS_NAMES = {"x": 2, "y": 1, "z": 0}  # arrays are (z, y, x)


def connected_porosity(mask) -> dict:
    """Porosity of the pore clusters that span the sample, per axis, plus the isolated fraction.

    Pores are face-connected (6-connectivity in 3D, 4 in 2D): the connectivity a fluid needs.
    Returns {"x": phi_x, "y": phi_y[, "z": phi_z], "isolated": fraction of pore space that touches
    no face pair along any axis} as fractions of the whole image volume.
    """
    from scipy import ndimage

    mask = as_mask(mask)
    labels, count = ndimage.label(mask)  # default structure: face neighbours
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    sizes[0] = 0
    spans = {}
    for name, axis in spanning_axes(mask.ndim).items():
        first = np.unique(np.take(labels, 0, axis=axis))
        last = np.unique(np.take(labels, -1, axis=axis))
        spanning = np.zeros(count + 1, dtype=bool)
        spanning[np.intersect1d(first, last)] = True
        spanning[0] = False
        spans[name] = spanning
    return spanning_fractions(sizes, spans, mask.size)


def spanning_axes(ndim: int) -> "dict[str, int]":
    """Axis names in report order and their array axis: x, y[, z] of (z, y, x) or (y, x) arrays."""
    return dict(_AXIS_NAMES) if ndim == 3 else {"x": 1, "y": 0}


def spanning_fractions(sizes: np.ndarray, spans: "dict[str, np.ndarray]", size: int) -> dict:
    """The result of `connected_porosity` from cluster sizes and which clusters span which axis.

    `sizes[i]` is the voxel count of cluster i, `spans[name][i]` whether it touches both faces
    across axis `name`, `size` the number of voxels in the image.
    """
    result = {}
    spanning_any = np.zeros(len(sizes), dtype=bool)
    for name, spanning in spans.items():
        spanning_any |= spanning
        result[name] = float(sizes[spanning].sum()) / size
    total = float(sizes.sum())
    result["isolated"] = float(sizes[~spanning_any].sum()) / total if total else 0.0
    return result
