"""Two-point correlation S2 of a chunked volume, per axis, with the one-shot function's definition.

Edge handling (the same as `rocksynth.properties.correlation`): **non-periodic**. Along an axis of
length L, S2(r) is the number of voxel pairs (i, i + r) on the same line, both inside the volume
and both pore, divided by the number of such pairs inside the volume, (L - r) per line. Nothing
wraps around and nothing is padded.

Chunked: a pair is counted by the block holding its first voxel i, where a block is a run of
consecutive chunks along the axis, at least 2 r_max long (one chunk when chunks are that long),
so that the context costs little. A block sees r_max voxels of context on the high side of the
axis (none on the other axes, none beyond the volume's high face, where pairs would leave the
volume), and counts, line by line, the cross-correlation of its core with core + context. The
counts come from a zero-padded real FFT (no wrap-around for lags up to r_max) rounded to
integers, which they are: the round-off is checked to be below 1/4, with a float64 retry
otherwise. Summed over blocks these are the exact pair counts, so the chunked S2 is exact; the
one-shot function sums unrounded float32 FFT values and differs from it by that round-off
(3e-9 on Berea 400³, r_max = 100).
"""

import numpy as np
import scipy.fft

from rocksynth.properties import correlation as one_shot
from rocksynth.properties.chunked.blocks import as_dask_mask, extended_blocks, runs

RUN_LAGS = 2  # runs of >= 2 r_max: context costs <= 50 %; longer runs hold more memory per task


def pair_counts(mask, r_max: int, axes: "tuple[int, ...] | None" = None, chunks=None) -> np.ndarray:
    """Pore-pore pair counts at lags 0..r_max along each axis, summed over the volume.

    Parameters
    ----------
    mask : dask.array.Array or array_like
        Binary volume (z, y, x) or image (y, x), True/non-zero = pore.
    r_max : int
        Largest lag in voxels, 0 <= r_max < smallest side.
    axes : tuple of int, optional
        Axes to compute (default: all, in array order).
    chunks : int, tuple or str, optional
        Chunk shape (see `as_dask_mask`).

    Returns
    -------
    numpy.ndarray
        int64 array (len(axes), r_max + 1): entry [a, r] is the number of pairs (i, i + r) along
        axis `axes[a]`, both inside the volume and both pore. Entry [a, 0] is the pore voxel count.
    """
    import dask

    array = as_dask_mask(mask, chunks)
    r_max = one_shot.check_r_max(array.shape, r_max)
    axes = tuple(range(array.ndim)) if axes is None else tuple(axes)
    tasks = []
    task = dask.delayed(_block_pair_counts, pure=True)
    for axis in axes:
        after = tuple(r_max if a == axis else 0 for a in range(array.ndim))
        # Tasks take runs of chunks along the axis, at least RUN_LAGS * r_max long, so that the
        # r_max of context is a small overhead (memory per task: such a run, not the volume).
        partition = tuple(runs(sizes, RUN_LAGS * r_max) if a == axis else sizes for a, sizes in enumerate(array.chunks))
        tasks.append([task(block.data, block.core, axis, r_max)
                      for block in extended_blocks(array, (0,) * array.ndim, after, partition)])
    parts = dask.compute(*tasks)  # one graph for all axes: the source chunks are shared
    return np.stack([np.sum(per_block, axis=0) for per_block in parts]).astype(np.int64)


def _block_pair_counts(block: np.ndarray, core: tuple, axis: int, r_max: int, slab: int = 8) -> np.ndarray:
    """sum over lines of sum_{i in core} f[i] f[i + r], r = 0..r_max, as exact integers."""
    length = core[axis].stop - core[axis].start  # the core starts at 0 along `axis` (no low context)
    size = scipy.fft.next_fast_len(length + r_max, real=True)  # >= i + r for all i < length: no wrap
    cut = 0 if axis != 0 else block.ndim - 1
    total = np.zeros(r_max + 1, dtype=np.int64)
    for start in range(0, block.shape[cut], slab):  # slabs keep the spectra small and in cache
        index = [slice(None)] * block.ndim
        index[cut] = slice(start, start + slab)
        part = block[tuple(index)]
        for dtype in (np.float32, np.float64):
            lags = _cross_correlation(part, axis, length, size, r_max, dtype)
            counts = np.rint(lags)
            if np.abs(lags - counts).max(initial=0.0) < 0.25:
                break
        total += counts.sum(axis=tuple(a for a in range(block.ndim) if a != axis), dtype=np.float64).astype(np.int64)
    return total


def _cross_correlation(part: np.ndarray, axis: int, length: int, size: int, r_max: int, dtype) -> np.ndarray:
    field = part.astype(dtype)
    spectrum_all = scipy.fft.rfft(field, n=size, axis=axis)
    if field.shape[axis] == length:  # no context (the volume's high face): an autocorrelation
        spectrum_core = spectrum_all
    else:
        spectrum_core = scipy.fft.rfft(np.take(field, np.arange(length), axis=axis), n=size, axis=axis)
    cross = scipy.fft.irfft(np.conj(spectrum_core) * spectrum_all, n=size, axis=axis)
    return np.take(cross, np.arange(r_max + 1), axis=axis)


def two_point_correlation_axes(mask, r_max: int, chunks=None) -> np.ndarray:
    """S2 along each axis from chunks: array (ndim, r_max + 1), axes in array order (z, y, x).

    Parameters
    ----------
    mask : dask.array.Array or array_like
        Binary volume (z, y, x) or image (y, x), True/non-zero = pore.
    r_max : int
        Largest lag in voxels; it is also the context (overlap) each chunk reads on the high side
        of the axis being measured.
    chunks : int, tuple or str, optional
        Chunk shape (see `as_dask_mask`).

    Returns
    -------
    numpy.ndarray
        float64 (ndim, r_max + 1): exact pair counts / pairs in the volume (non-periodic, see the
        module docstring); equal to `rocksynth.properties.correlation.two_point_correlation_axes`
        up to that function's float32 FFT round-off.
    """
    array = as_dask_mask(mask, chunks)
    counts = pair_counts(array, r_max)
    curves = [one_shot.pair_counts_to_s2(counts[axis].astype(np.float64), length, array.size // length)
              for axis, length in enumerate(array.shape)]
    return np.clip(np.stack(curves), 0.0, 1.0)


def two_point_correlation(mask, r_max: int, chunks=None) -> np.ndarray:
    """S2[0..r_max] averaged over the axes; S2[0] is the porosity exactly.

    Parameters
    ----------
    mask, r_max, chunks
        As `two_point_correlation_axes`.

    Returns
    -------
    numpy.ndarray
        float64 (r_max + 1,), as `rocksynth.properties.correlation.two_point_correlation`.
    """
    curves = two_point_correlation_axes(mask, r_max, chunks)
    s2 = curves.mean(axis=0)
    s2[0] = curves[0, 0]  # pore voxels / voxels exactly (exact counts), not a mean of rounded copies
    return s2
