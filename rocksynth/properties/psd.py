"""Pore-size distribution by local thickness.

The local thickness of a pore voxel is the diameter of the largest ball that fits in the pore
space and contains the voxel (Hildebrand & Rüegsegger 1997), computed with PoreSpy's
`local_thickness` (brute-force ball insertion over `sizes` radii, the fastest of its methods
here). The distribution is volume weighted: the fraction of pore volume at each diameter.
"""

import numpy as np

from rocksynth.errors import BadInputError
from rocksynth.properties.porosity import as_mask


def local_thickness(mask, sizes: int = 25) -> np.ndarray:
    """Local thickness *radius* map in voxels (0 in the solid)."""
    mask = as_mask(mask)
    if not mask.any():
        raise BadInputError("no pore voxels: no pore-size distribution")
    return porespy_local_thickness(mask, sizes)


def porespy_local_thickness(mask: np.ndarray, sizes, dt: "np.ndarray | None" = None) -> np.ndarray:
    """PoreSpy's brute-force local thickness of a bool array: `sizes` is a count or explicit radii.

    `dt` is the distance transform of `mask` when already known (PoreSpy computes it otherwise).
    """
    import porespy as ps

    from rocksynth.properties.network import _quiet_porespy

    _quiet_porespy()
    return ps.filters.local_thickness(mask, dt=dt, method="bf", sizes=sizes)


def pore_size_distribution(mask, voxel_size: "float | None" = None, sizes: int = 25, bins: int = 30) -> dict:
    """Volume-weighted histogram of local-thickness diameters, with mean and percentiles.

    Diameters are 2 * radius in voxels, or metres when `voxel_size` is given.
    """
    mask = as_mask(mask)
    radii = local_thickness(mask, sizes)[mask]
    h = voxel_size or 1.0
    diameters = 2.0 * radii.astype(np.float64) * h
    # Local thickness takes only `sizes` distinct values: one bin per value (edges half-way
    # between them), so the histogram has no empty bins between quantisation levels.
    values, counts = np.unique(diameters, return_counts=True)
    if values.size > bins:  # many distinct values (e.g. large `sizes`): regular bins instead
        counts, edges = np.histogram(diameters, bins=bins)
    else:
        edges = level_edges(values, h)
    d10, d50, d90 = np.percentile(diameters, [10, 50, 90])
    return {
        "diameter_mean": float(diameters.mean()),
        "diameter_d10": float(d10),
        "diameter_d50": float(d50),
        "diameter_d90": float(d90),
        "diameter_max": float(diameters.max()),
        "bin_edges": edges.tolist(),
        "volume_fraction": (counts / counts.sum()).tolist(),
        "units": "m" if voxel_size else "voxel",
    }


def level_edges(values: np.ndarray, h: float) -> np.ndarray:
    """Bin edges half-way between sorted distinct diameters (one bin per quantisation level)."""
    middles = (values[1:] + values[:-1]) / 2
    first = values[0] - (middles[0] - values[0] if values.size > 1 else 0.5 * h)
    last = values[-1] + (values[-1] - middles[-1] if values.size > 1 else 0.5 * h)
    return np.concatenate([[max(first, 0.0)], middles, [last]])
