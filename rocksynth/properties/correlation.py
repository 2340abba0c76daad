"""Two-point correlation S2(r) of the pore phase, computed with FFTs.

S2(r) is the probability that two points a distance r apart, along one of the image axes, are both
pore. It is computed per axis as the non-periodic autocorrelation of every line of voxels (zero
padding, so nothing wraps around) divided by the number of voxel pairs at that lag, then averaged
over the axes. Hence S2(0) = porosity exactly and S2(r) -> porosity^2 for r beyond the
correlation length.
"""

import numpy as np
import scipy.fft

from rocksynth.errors import BadInputError
from rocksynth.properties.porosity import as_mask


def _axis_pair_counts(field: np.ndarray, axis: int, r_max: int) -> np.ndarray:
    """Sum over all lines along `axis` of sum_i f[i] f[i + r], for r = 0..r_max."""
    length = field.shape[axis]
    # Zero padding to >= L + r_max: lags up to r_max never wrap around.
    size = scipy.fft.next_fast_len(length + r_max + 1, real=True)
    spectrum = scipy.fft.rfft(field, n=size, axis=axis)
    auto = scipy.fft.irfft(spectrum * np.conj(spectrum), n=size, axis=axis)
    lags = np.take(auto, np.arange(r_max + 1), axis=axis)
    return lags.sum(axis=tuple(a for a in range(field.ndim) if a != axis), dtype=np.float64)


def _axis_correlation(mask: np.ndarray, axis: int, r_max: int, slab: int = 16) -> np.ndarray:
    # Slabs cut along another axis keep the complex spectrum small (memory) and in cache.
    cut = 0 if axis != 0 else mask.ndim - 1
    total = np.zeros(r_max + 1)
    for start in range(0, mask.shape[cut], slab):
        index = [slice(None)] * mask.ndim
        index[cut] = slice(start, start + slab)
        total += _axis_pair_counts(mask[tuple(index)].astype(np.float32), axis, r_max)
    length = mask.shape[axis]
    return pair_counts_to_s2(total, length, mask.size // length)


def pair_counts_to_s2(pair_counts: np.ndarray, length: int, lines: int) -> np.ndarray:
    """S2 along one axis from the pore-pore pair counts at lags 0..r_max (non-periodic).

    `pair_counts[r]` is the number of pairs (i, i + r) along the axis, both inside the image and
    both pore, summed over the `lines` lines of `length` voxels; there are (length - r) * lines
    such pairs in all.
    """
    return pair_counts / ((length - np.arange(len(pair_counts))) * lines)


def two_point_correlation_axes(mask, r_max: int) -> np.ndarray:
    """S2 along each axis: array of shape (ndim, r_max + 1), axes in array order (z, y, x)."""
    mask = as_mask(mask)
    r_max = check_r_max(mask.shape, r_max)
    curves = np.stack([_axis_correlation(mask, axis, r_max) for axis in range(mask.ndim)])
    # FFT round-off: S2 is a probability.
    return np.clip(curves, 0.0, 1.0)


def check_r_max(shape: "tuple[int, ...]", r_max: int) -> int:
    """`r_max` as an int; BadInputError unless the image is 2D or 3D and 0 <= r_max < its smallest side."""
    if len(shape) not in (2, 3):
        raise BadInputError(f"two-point correlation needs a 2D or 3D image, got {len(shape)}D")
    r_max = int(r_max)
    if r_max < 0 or r_max >= min(shape):
        raise BadInputError(f"r_max must be between 0 and {min(shape) - 1} for shape {tuple(shape)}, got {r_max}")
    return r_max


def two_point_correlation(mask, r_max: int) -> np.ndarray:
    """S2[0..r_max] averaged over the image axes; S2[0] equals the porosity."""
    curves = two_point_correlation_axes(mask, r_max)
    s2 = curves.mean(axis=0)
    s2[0] = np.count_nonzero(as_mask(mask)) / np.asarray(mask).size  # exact, not FFT-rounded
    return s2


def correlation_length(s2: np.ndarray, tolerance: float = 0.05) -> "float | None":
    """First lag (voxels, linearly interpolated) where S2 comes within `tolerance`·(phi - phi²) of phi².

    None when S2 never gets there within the computed range (r_max too small).
    """
    s2 = np.asarray(s2, dtype=float)
    phi = s2[0]
    target = phi * phi + tolerance * (phi - phi * phi)
    below = np.nonzero(s2 <= target)[0]
    if phi <= 0 or phi >= 1 or below.size == 0:
        return None
    r = int(below[0])
    if r == 0:
        return 0.0
    hi, lo = s2[r - 1], s2[r]
    return float(r - 1 + (hi - target) / (hi - lo)) if hi != lo else float(r)
