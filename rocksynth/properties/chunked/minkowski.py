"""Minkowski functionals of a chunked volume, equal to `rocksynth.properties.minkowski`.

The functionals are dot products of the histogram of 2x2x2 configurations (2x2 in 2D) with fixed
tables, and a histogram is additive over any partition of the blocks. Each 2x2x2 block is assigned
to the chunk holding its origin (lowest corner): a chunk counts the blocks whose origin is in it,
which needs one voxel of context on the high side of each axis. A chunk on the high face of the
volume has no context there, so blocks whose origin is on that face (which would stick out of the
image) are not counted, exactly as in the whole-volume count. `closed=True` counts the blocks of
the volume padded with one voxel of solid on every side, as the one-shot function does: the
chunks on the faces of the volume add that solid layer on their face side. The per-chunk histograms
are integers and sum exactly, and the conversion is the one-shot function's, so results are
identical to float precision.
"""

import numpy as np

from rocksynth.properties import minkowski as one_shot
from rocksynth.properties.chunked.blocks import as_dask_mask, extended_blocks


def configuration_histogram(mask, closed: bool = False, chunks=None) -> np.ndarray:
    """Counts of the 256 configurations of 2x2x2 blocks (16 of 2x2 blocks in 2D), chunk by chunk.

    Parameters
    ----------
    mask : dask.array.Array or array_like
        Binary volume (z, y, x) or image (y, x), True/non-zero = pore.
    closed : bool
        Pad with one voxel of solid on every side first (the pore phase as a closed object).
    chunks : int, tuple or str, optional
        Chunk shape (see `as_dask_mask`).

    Returns
    -------
    numpy.ndarray
        int64 counts, equal to `rocksynth.properties.minkowski.configuration_histogram` (or
        `configuration_histogram_2d`) of the whole array.
    """
    import dask

    array = as_dask_mask(mask, chunks)
    ndim = array.ndim
    task = dask.delayed(_block_histogram, pure=True)
    parts = []
    for block in extended_blocks(array, (0,) * ndim, (1,) * ndim):
        # closed: the chunks on the volume's faces add the one-voxel solid border there.
        pad = tuple((int(closed and low), int(closed and high)) for low, high in zip(block.at_low, block.at_high))
        parts.append(task(block.data, pad))
    return np.sum(dask.compute(*parts), axis=0).astype(np.int64)


def _block_histogram(block: np.ndarray, pad: tuple) -> np.ndarray:
    """Configurations of the 2x2(x2) blocks whose origin lies in this chunk.

    `block` is the chunk plus one voxel of context on the high side of each axis; `pad` says on
    which sides it gets a layer of solid (closed objects, on the faces of the volume).
    """
    block = np.ascontiguousarray(np.pad(block, pad) if any(any(p) for p in pad) else block)
    if block.ndim == 2:
        return one_shot.configuration_histogram_2d(block).astype(np.int64)
    return one_shot.configuration_histogram(block)


def minkowski_functionals(mask, voxel_size: "float | None" = None, connectivity: int = 6, closed: bool = False,
                          section_connectivity: int = 8, chunks=None) -> dict:
    """Volume, surface area, mean breadth, integral of mean curvature and Euler number of the pores.

    Parameters
    ----------
    mask : dask.array.Array or array_like
        Binary volume (z, y, x) or image (y, x), True/non-zero = pore.
    voxel_size : float, optional
        Voxel edge in metres; totals and densities are then in metres.
    connectivity : int
        Connectivity of the pore phase for the Euler number: 6 or 26 (4 or 8 for 2D images, where
        6 means 4 and anything else 8, as in the one-shot function).
    closed : bool
        Treat the pore phase as a closed object (pad with solid) instead of a window into a medium.
    section_connectivity : int
        Connectivity of planar sections for the mean breadth (8 or 4).
    chunks : int, tuple or str, optional
        Chunk shape (see `as_dask_mask`).

    Returns
    -------
    dict
        The dict of `rocksynth.properties.minkowski.minkowski_functionals` (or `_2d`), equal to
        it to float precision.
    """
    array = as_dask_mask(mask, chunks)
    if array.ndim == 2:
        connectivity = 4 if connectivity == 6 else 8
        one_shot.check_image(array.shape, connectivity)
        histogram = configuration_histogram(array, closed)
        return one_shot.functionals_2d_from_histogram(histogram, array.shape, voxel_size, connectivity, closed)
    one_shot.check_volume(array.shape, connectivity, closed)
    histogram = configuration_histogram(array, closed)
    return one_shot.functionals_from_histogram(histogram, array.shape, voxel_size, connectivity, closed,
                                               section_connectivity)
