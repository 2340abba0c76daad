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
