"""The markers of SNOW (peaks of the distance transform), equal voxel for voxel to PoreSpy's and
found in less time.

PoreSpy's `snow_partitioning` finds its markers with `find_peaks` (a maximum filter with a ball
footprint over the whole volume) and `trim_saddle_points` (from each peak, a climb in a window 20
voxels wider than the peak on every side). Here:

- the ball filter is evaluated only where a 3x3x3 maximum filter (separable, and inside the
  ball) already finds a maximum, which is a small fraction of the voxels;
- each climb works in a window that grows with it, and in the full window only when it climbs
  further than that.

`tests/test_snow_peaks.py` checks both against PoreSpy on rock and random volumes, and
`benchmarks/bench_snow_peaks.py` measures the time of each.
"""

import numpy as np
from scipy import ndimage

# A climb starts in the peak's box grown by this many voxels (it needs one more per step).
_CLIMB_PAD = 3


def find_peaks(dt: np.ndarray, r_max: int = 4) -> np.ndarray:
    """`porespy.filters.find_peaks(dt, r_max=r_max)`, serial: the voxels of the pore space
    (dt > 0) whose value is the largest in the ball of radius `r_max` around them, solid voxels
    counting as 2 and the image extended by reflection.

    Parameters
    ----------
    dt : ndarray
        Distance transform (usually blurred) of the pore space, zero in the solid.
    r_max : int
        Radius of the ball footprint, PoreSpy's `ps_round(r_max)`.

    Returns
    -------
    ndarray of bool
        True at the peaks.
    """
    from porespy.tools import ps_round

    im = dt > 0
    values = dt + 2.0 * (~im)  # as PoreSpy: no peak at the pore-solid interface
    ball = ps_round(r=r_max, ndim=dt.ndim)
    centre = tuple(slice(n // 2 - 1, n // 2 + 2) for n in ball.shape)
    if ball.shape[0] >= 3 and ball[centre].all():
        # The 3^3 cube lies inside the ball, so a ball maximum is first a cube maximum.
        candidates = np.flatnonzero((dt == ndimage.maximum_filter(values, size=3)) & im)
    else:
        candidates = np.flatnonzero(im)
    offsets = np.argwhere(ball) - np.array(ball.shape) // 2
    coords = np.array(np.unravel_index(candidates, dt.shape))
    top = dt.ravel()[candidates]
    flat_values = values.ravel()
    alive = np.arange(candidates.size)
    for offset in offsets:
        if not offset.any() or alive.size == 0:
            continue
        position = tuple(_reflect(coords[axis, alive] + offset[axis], n) for axis, n in enumerate(dt.shape))
        alive = alive[flat_values[np.ravel_multi_index(position, dt.shape)] <= top[alive]]
    peaks = np.zeros(dt.shape, bool)
    peaks.flat[candidates[alive]] = True
    return peaks


def _reflect(index: np.ndarray, n: int) -> np.ndarray:
    """Index into an axis of length n extended by reflection (scipy.ndimage's 'reflect':
    d c b a | a b c d | d c b a)."""
    period = index % (2 * n)
    return np.where(period < n, period, 2 * n - 1 - period)


def trim_saddle_points(peaks: np.ndarray, dt: np.ndarray, maxiter: int = 20) -> np.ndarray:
    """`porespy.filters.trim_saddle_points(peaks, dt, maxiter)`: keep the peaks (face-connected
    groups) that are true maxima of `dt`, found by climbing from each.

    Parameters
    ----------
    peaks : ndarray of bool
        Candidate peaks (`find_peaks`).
    dt : ndarray
        Distance transform of the pore space (not blurred).
    maxiter : int
        Steps of a climb before the peak is given up, as PoreSpy's.

    Returns
    -------
    ndarray of bool
        The kept peaks: the voxels of `peaks` in each successful climb's final set.
    """
    from porespy.tools import extend_slice
    from porespy.tools._label import _label_components

    labels, _ = _label_components(im=peaks > 0, conn="min")
    kept = np.zeros(peaks.shape, bool)
    pad = min(_CLIMB_PAD, maxiter)
    for label, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None:
            continue
        window = extend_slice(box, shape=peaks.shape, pad=pad)
        found = _climb(labels, label, dt, window, maxiter, steps=pad)
        if found is None:  # it climbed further than the small window reaches: PoreSpy's full window
            window = extend_slice(box, shape=peaks.shape, pad=maxiter)
            found = _climb(labels, label, dt, window, maxiter, steps=maxiter)
        if found is not False:
            kept[window] |= found
    return kept & (peaks > 0)  # as PoreSpy: a climb's plateau keeps only the voxels that were peaks


def _climb(labels, label, dt, window, maxiter, steps):
    """PoreSpy's climb of one peak within `window`: its final voxels if it is a true peak, False
    for a saddle point or a climb of `maxiter` steps, None when it needs more than `steps`
    steps (after k steps it reaches k voxels beyond the peak's box, so up to `steps` the window
    gives what the full one gives)."""
    cube = np.ones((3,) * dt.ndim, bool)
    current = labels[window] == label
    dt_w = dt[window]
    pore = dt_w > 0
    for step in range(1, maxiter + 1):
        if step > steps:
            return None
        grown = ndimage.binary_dilation(current, structure=cube)
        extended = (grown * np.amax(dt_w * grown) == dt_w) & pore
        if np.array_equal(extended, current):
            return current
        if not (extended & current).any():
            return False
        current = extended
    return False


def snow_markers(im: np.ndarray, sigma: float = 0.4, r_max: int = 4) -> np.ndarray:
    """The peaks `porespy.filters.snow_partitioning` finds itself with these settings (its and
    `snow2`'s defaults), to hand to it or to `snow2` as `peaks`.

    Parameters
    ----------
    im : ndarray of bool
        The pore space.
    sigma : float
        Gaussian blur of the distance transform before the peaks are sought.
    r_max : int
        Radius of the peaks' ball footprint.

    Returns
    -------
    ndarray of bool
        The markers: peaks with saddle points and nearby peaks trimmed.
    """
    from porespy.filters import trim_nearby_peaks
    from porespy.tools import get_edt

    dt = get_edt()(im)
    blurred = ndimage.gaussian_filter(dt, sigma=sigma) * im if sigma > 0 else np.copy(dt)
    peaks = trim_saddle_points(find_peaks(blurred, r_max=r_max), dt)
    return trim_nearby_peaks(peaks=peaks, dt=dt)
