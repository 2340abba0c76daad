"""SNOW's markers (rocksynth.properties.snow_peaks) equal PoreSpy's voxel for voxel."""

import numpy as np
import porespy as ps
import pytest
from porespy.tools import get_edt
from scipy import ndimage

from rocksynth.properties import snow_peaks


def _volumes(berea_crop):
    yield "berea", berea_crop[:80, :80, :80]
    rng = np.random.default_rng(3)
    yield "blobs", ps.generators.blobs([40, 50, 60], porosity=0.4, blobiness=1.5, seed=1)
    yield "thin", rng.random((3, 30, 40)) < 0.7  # an axis shorter than the ball: repeated reflection
    yield "2d", ps.generators.blobs([120, 90], porosity=0.5, seed=2)
    plateau = np.zeros((30, 30, 30), bool)
    plateau[5:25, 8:22, 8:22] = True  # a box: flat ridges and many equal values
    yield "box", plateau


@pytest.fixture(scope="module")
def cases(berea_crop):
    out = []
    for name, im in _volumes(berea_crop):
        dt = get_edt()(im)
        blurred = ndimage.gaussian_filter(dt, sigma=0.4) * im
        out.append((name, im, dt, blurred))
    return out


def test_find_peaks_equals_porespy(cases):
    for name, im, dt, blurred in cases:
        for r_max in (1, 4):
            ours = snow_peaks.find_peaks(blurred, r_max=r_max)
            theirs = ps.filters.find_peaks(blurred, r_max=r_max, parallel_kw={"divs": 1})
            assert ours.any(), name
            assert np.array_equal(ours, theirs), (name, r_max)


def test_trim_saddle_points_equals_porespy(cases):
    for name, im, dt, blurred in cases:
        peaks = ps.filters.find_peaks(blurred, r_max=4, parallel_kw={"divs": 1})
        for maxiter in (20, 2):
            ours = snow_peaks.trim_saddle_points(peaks, dt, maxiter=maxiter)
            theirs = ps.filters.trim_saddle_points(peaks, dt, maxiter=maxiter)
            assert np.array_equal(ours, theirs), (name, maxiter)


def test_long_climbs_leave_the_small_window_and_still_agree():
    """A flat ridge 31 voxels long: the climb from its end grows one voxel per step, past the
    first window, and is kept only when maxiter allows it to cover the ridge."""
    z, y, x = np.mgrid[:9, :9, :60].astype(float)
    dt = 10 - np.hypot(z - 4, y - 4) - 0.01 * (np.maximum(10 - x, 0) + np.maximum(x - 40, 0))
    dt[0] = dt[-1] = 0  # solid walls
    peaks = np.zeros(dt.shape, bool)
    peaks[4, 4, 10] = True
    for maxiter in (20, 60):
        ours = snow_peaks.trim_saddle_points(peaks, dt, maxiter=maxiter)
        assert np.array_equal(ours, ps.filters.trim_saddle_points(peaks, dt, maxiter=maxiter)), maxiter
        assert ours.any() == (maxiter == 60)


def test_snow2_with_our_markers_is_snow2(berea_crop):
    """The network `extract_network` gets by handing our markers to snow2 is snow2's own."""
    im = berea_crop[:64, :64, :64]
    ours = ps.networks.snow2(im, voxel_size=1, parallel_kw=None, peaks=snow_peaks.snow_markers(im)).network
    theirs = ps.networks.snow2(im, voxel_size=1, parallel_kw=None).network
    assert set(ours) == set(theirs)
    for key, value in theirs.items():
        assert np.array_equal(np.asarray(ours[key]), np.asarray(value)), key
