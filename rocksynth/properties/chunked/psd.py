"""Local-thickness pore sizes of a chunked volume, equal to `rocksynth.properties.psd`.

The one-shot function is PoreSpy's brute-force local thickness with `sizes` radii spread between 1
and R = floor(max EDT) (the largest inscribed-sphere radius it uses): a voxel's value is the largest
radius r such that it lies in a ball of radius r centred on a pore voxel whose Euclidean distance
to the solid (EDT) is at least r. Chunked, in two passes:

1. **The global EDT maximum**, exactly, from chunks with a margin m of context (`max_distance`). The
   EDT of a chunk's extended block can only overestimate the true one (it sees fewer solid
   voxels), and it is exact at every core voxel where it is at most m + 1, the distance to the
   nearest voxel it did not see. Chunks where that fails are recomputed with a larger margin
   (enough for their overestimate, doubled when they saw no solid at all) until all are exact.
2. **The local thickness** of each chunk, from its block extended by `depth` voxels on every side
   (clipped at the faces of the volume, as PoreSpy sees them), with the radii fixed from pass 1.

Depth rule: **depth >= 2 R**. A core voxel is covered by balls of radius <= R, so their centres
lie within R of the core; deciding whether a centre qualifies (EDT >= r, r <= R) needs every solid
voxel closer than R to it, i.e. within R - 1 voxels along each axis; and PoreSpy also looks at the
centres' face neighbours (1 more voxel). R + (R - 1) + 1 = 2 R. With it every chunk's core equals
the whole-volume result voxel for voxel.
"""

import math
import threading

import numpy as np

from rocksynth.errors import BadInputError
from rocksynth.properties import psd as one_shot
from rocksynth.properties.chunked.blocks import as_dask_mask, extended_blocks, runs

# PoreSpy's local thickness runs numba-parallel kernels. Numba's fallback 'workqueue' threading
# layer (used where neither TBB nor OpenMP is available) aborts when two threads launch them at
# once, so chunks take turns within a process; each call is itself parallel.
_NUMBA = threading.Lock()

DEFAULT_MARGIN = 16
# Blocks of the local thickness: runs of chunks at least this long per axis. Its overlap is 2 R
# on every side, so small blocks would mostly be overlap.
PSD_BLOCK = 256


def _partition(array) -> "tuple[tuple[int, ...], ...]":
    """The array's chunks merged into runs of at least `PSD_BLOCK` voxels per axis."""
    return tuple(runs(sizes, PSD_BLOCK) for sizes in array.chunks)


def _edt(block: np.ndarray) -> np.ndarray:
    from porespy.tools import get_edt

    return get_edt()(block)  # the transform PoreSpy's local thickness uses (float32)


def max_distance(mask, depth: int = DEFAULT_MARGIN, chunks=None) -> float:
    """The largest Euclidean distance from a pore voxel to the solid, computed chunk by chunk.

    Parameters
    ----------
    mask : dask.array.Array or array_like
        Binary volume (z, y, x) or image (y, x), True/non-zero = pore.
    depth : int
        Starting margin of context around each chunk. Chunks whose distances cannot be certified
        with it (a pore wider than about 2 * depth) are recomputed with a larger one, so the
        result does not depend on it; a margin near the answer saves the second pass.
    chunks : int, tuple or str, optional
        Chunk shape (see `as_dask_mask`).

    Returns
    -------
    float
        max EDT over pore voxels, exactly as PoreSpy's `edt` of the whole volume gives it (0.0
        when there is no pore, inf when there is no solid).
    """
    import dask

    array = as_dask_mask(mask, chunks)
    margin = max(1, int(depth))
    pending = None  # regions of the volume (slices) still to certify; None: all of it
    best = 0.0
    task = dask.delayed(_block_max_distance, pure=True)
    while True:
        context = (margin,) * array.ndim
        blocks = [block for block in extended_blocks(array, context, context, _partition(array))
                  if pending is None or any(_overlaps(block.region, region) for region in pending)]
        results = dask.compute(*[task(block.data, block.core, margin, array.shape) for block in blocks])
        best = max([best] + [value for value, exact in results if exact])
        uncertain = [(block.region, value) for block, (value, exact) in zip(blocks, results) if not exact]
        if not uncertain:
            return float(best)
        finite = [value for _, value in uncertain if np.isfinite(value)]
        # A finite overestimate v is certified by a margin of ceil(v) - 1; no solid seen: double.
        wanted = max([math.ceil(value) - 1 for value in finite] + [2 * margin if len(finite) < len(uncertain) else 0])
        margin = min(max(wanted, margin + 1), max(array.shape))
        pending = [region for region, _ in uncertain]


def _overlaps(a: "tuple[slice, ...]", b: "tuple[slice, ...]") -> bool:
    return all(x.start < y.stop and y.start < x.stop for x, y in zip(a, b))


def _block_max_distance(block: np.ndarray, core: tuple, margin: int, shape: tuple) -> "tuple[float, bool]":
    """(max EDT over the core's pores, whether that value is certainly the whole-volume one)."""
    inner = block[core]
    if not inner.any():
        return 0.0, True
    if block.all():  # no solid seen: the distance is at least the distance to the unseen voxels
        return math.inf, block.shape == tuple(shape)
    value = float(_edt(np.ascontiguousarray(block))[core][inner].max())
    return value, value <= margin + 1 or block.shape == tuple(shape)


def local_thickness_radii(largest: float, sizes: int = 25) -> np.ndarray:
    """The radii PoreSpy's local thickness uses: `sizes` integers from 1 to floor(largest), descending.

    Parameters
    ----------
    largest : float
        Maximum of the distance transform over the pore space.
    sizes : int
        Number of radii requested (duplicates after rounding down are dropped).

    Returns
    -------
    numpy.ndarray
        Descending int radii (empty when floor(largest) < 1).
    """
    if isinstance(sizes, bool) or not isinstance(sizes, (int, np.integer)) or sizes < 1:
        raise BadInputError(f"sizes must be a positive integer, got {sizes!r}")
    top = int(np.floor(largest))
    if top < 1:
        return np.empty(0, dtype=int)
    return np.unique(np.linspace(1, top, num=int(sizes), dtype=int))[::-1]


def _plan(array, sizes: int, depth: "int | None") -> "tuple[np.ndarray, int]":
    """Radii and overlap depth for the local thickness of `array` (checks the inputs)."""
    largest = max_distance(array)
    if largest == 0:
        raise BadInputError("no pore voxels: no pore-size distribution")
    if not np.isfinite(largest):
        raise BadInputError("no solid voxels: the pore space has no walls, so pore sizes are unbounded")
    radii = local_thickness_radii(largest, sizes)
    needed = 2 * int(radii[0]) if radii.size else 0
    if depth is None:
        depth = needed
    elif int(depth) < needed:
        raise BadInputError(f"depth {depth} is too small for local thickness here: the largest sphere has radius "
                            f"{int(radii[0])} voxels, so chunks need depth >= {needed}")
    return radii, int(depth)


def _block_local_thickness(block: np.ndarray, core: tuple, radii: np.ndarray) -> np.ndarray:
    """PoreSpy's local thickness of the extended block, with the global radii, cut to the core."""
    shape = tuple(s.stop - s.start for s in core)
    if radii.size == 0 or not block.any():
        return np.zeros(shape)
    block = np.ascontiguousarray(block)
    dt = _edt(block)
    # Values above R + 1/2 change nothing about which centres qualify (EDT >= r, r <= R), but
    # PoreSpy starts from floor(max EDT); the whole volume's is R, and a block can overestimate it.
    np.minimum(dt, np.float32(radii[0]) + np.float32(0.5), out=dt)
    with _NUMBA:
        lt = one_shot.porespy_local_thickness(block, radii, dt=dt)
    return np.ascontiguousarray(lt[core])


def local_thickness(mask, sizes: int = 25, depth: "int | None" = None, chunks=None):
    """Local thickness radius map (voxels) from overlapping chunks, as a lazy dask array.

    Parameters
    ----------
    mask : dask.array.Array or array_like
        Binary volume (z, y, x) or image (y, x), True/non-zero = pore.
    sizes : int
        Number of radii, as in `rocksynth.properties.psd.local_thickness`.
    depth : int, optional
        Overlap (voxels) on every side of each chunk. Default and minimum: 2 R, where R is the
        largest sphere radius, floor(max EDT), found exactly in a first chunked pass (see the
        module docstring for why 2 R). A smaller value raises BadInputError.
    chunks : int, tuple or str, optional
        Chunk shape (see `as_dask_mask`).

    Returns
    -------
    dask.array.Array
        float64, same shape and chunks as the mask; computed chunk by chunk, it equals
        `rocksynth.properties.psd.local_thickness(mask, sizes)` voxel for voxel. (The chunked
        pass that fixes R runs when this function is called.) A task holds its chunk grown by
        `depth` on every side, about 17 bytes per voxel of that block.
    """
    import dask
    import dask.array as da

    array = as_dask_mask(mask, chunks)
    radii, depth = _plan(array, sizes, depth)
    task = dask.delayed(_block_local_thickness, pure=True)
    blocks = list(extended_blocks(array, (depth,) * array.ndim, (depth,) * array.ndim, _partition(array)))
    grid = np.empty(tuple(n + 1 for n in blocks[-1].index), dtype=object)
    for block in blocks:
        shape = tuple(s.stop - s.start for s in block.core)
        grid[block.index] = da.from_delayed(task(block.data, block.core, radii), shape=shape, dtype=np.float64)
    result = da.block(grid.tolist())
    # overlap() merges chunks thinner than the depth; give back the mask's chunks.
    return result if result.chunks == array.chunks else result.rechunk(array.chunks)


def _block_radius_counts(block: np.ndarray, core: tuple, radii: np.ndarray) -> np.ndarray:
    """How many pore voxels of the core have local thickness 0, radii[-1], ..., radii[0] (ascending)."""
    lt = _block_local_thickness(block, core, radii)
    levels = np.concatenate([[0], radii[::-1]]).astype(np.float64)
    found = np.searchsorted(levels, lt[block[core]])
    return np.bincount(found, minlength=levels.size).astype(np.int64)


def pore_size_distribution(mask, voxel_size: "float | None" = None, sizes: int = 25, bins: int = 30,
                           depth: "int | None" = None, chunks=None) -> dict:
    """Volume-weighted histogram of local-thickness diameters, with mean and percentiles, from chunks.

    Parameters
    ----------
    mask : dask.array.Array or array_like
        Binary volume (z, y, x) or image (y, x), True/non-zero = pore.
    voxel_size : float, optional
        Voxel edge in metres; diameters are then in metres.
    sizes : int
        Number of local-thickness radii.
    bins : int
        Regular bins used when there are more distinct diameters than this.
    depth : int, optional
        Chunk overlap, >= 2 R (the default; see `local_thickness`).
    chunks : int, tuple or str, optional
        Chunk shape (see `as_dask_mask`).

    Returns
    -------
    dict
        The dict of `rocksynth.properties.psd.pore_size_distribution`. Each chunk returns only
        how many of its pore voxels have each of the <= `sizes` radii, so histogram, percentiles
        and maximum are exact; the mean is the correctly rounded sum / count (the one-shot
        function's float summation may differ in the last bit).
    """
    import dask

    array = as_dask_mask(mask, chunks)
    radii, depth = _plan(array, sizes, depth)
    task = dask.delayed(_block_radius_counts, pure=True)
    context = (depth,) * array.ndim
    parts = dask.compute(*[task(block.data, block.core, radii) for block in extended_blocks(array, context, context,
                                                                                                     _partition(array))])
    counts = np.sum(parts, axis=0)
    levels = np.concatenate([[0], radii[::-1]])
    present = counts > 0
    h = voxel_size or 1.0
    values = 2.0 * levels[present].astype(np.float64) * h  # as the one-shot: 2 * radius * h, per voxel
    counts = counts[present]
    if values.size > bins:
        weighted, edges = np.histogram(values, bins=bins, weights=counts)
        histogram = np.rint(weighted).astype(np.int64)
    else:
        histogram, edges = counts, one_shot.level_edges(values, h)
    d10, d50, d90 = percentiles_of_counts(values, counts, [10, 50, 90])
    total = int(counts.sum())
    return {
        "diameter_mean": math.fsum((values * counts).tolist()) / total,
        "diameter_d10": float(d10),
        "diameter_d50": float(d50),
        "diameter_d90": float(d90),
        "diameter_max": float(values[-1]),
        "bin_edges": edges.tolist(),
        "volume_fraction": (histogram / histogram.sum()).tolist(),
        "units": "m" if voxel_size else "voxel",
    }


def percentiles_of_counts(values: np.ndarray, counts: np.ndarray, q) -> np.ndarray:
    """`numpy.percentile(np.repeat(values, counts), q)` (linear method) without the repeated array.

    Parameters
    ----------
    values : numpy.ndarray
        Sorted distinct values.
    counts : numpy.ndarray
        How many times each occurs (positive integers).
    q : array_like
        Percentiles in [0, 100].

    Returns
    -------
    numpy.ndarray
        The same floats numpy computes: virtual index (n - 1) q / 100, then its interpolation
        between the neighbouring order statistics.
    """
    values = np.asarray(values, dtype=np.float64)
    n = int(np.sum(counts))
    quantiles = np.true_divide(np.asanyarray(q), 100)
    virtual = (n - 1) * quantiles
    previous = np.floor(virtual)
    gamma = virtual - previous
    before = np.minimum(previous.astype(np.intp), n - 1)
    after = np.minimum(before + 1, n - 1)
    ends = np.cumsum(counts)  # order statistic k is values[first i with ends[i] > k]
    a = values[np.searchsorted(ends, before, side="right")]
    b = values[np.searchsorted(ends, after, side="right")]
    difference = b - a
    result = a + difference * gamma
    upper = gamma >= 0.5
    result[upper] = (b - difference * (1 - gamma))[upper]
    return result
