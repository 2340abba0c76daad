"""Chunked measures (rocksynth.properties.chunked) equal the one-shot ones on the whole volume.

Chunk shapes deliberately do not divide the volume. Where a measure needs more context than a chunk
holds (S2 at large lags, local thickness), dask's overlap merges the thin chunks first; the
results are still exact.
"""

import numpy as np
import pytest
from scipy import ndimage

from rocksynth.errors import BadInputError
from rocksynth.properties import chunked
from rocksynth.properties import correlation, minkowski, porosity, psd


def _blobs(shape, seed, sigma=1.5, level=0.5):
    rng = np.random.default_rng(seed)
    return ndimage.gaussian_filter(rng.random(shape), sigma) > level


def _assert_same(chunked_result: dict, whole: dict, rtol=1e-12):
    assert chunked_result.keys() == whole.keys()
    for key, value in whole.items():
        if isinstance(value, float):
            assert chunked_result[key] == pytest.approx(value, rel=rtol, abs=1e-300), key
        else:
            assert chunked_result[key] == value, key


VOLUMES = [((37, 41, 29), (10, 13, 8), 0), ((30, 30, 30), (7, 11, 30), 1), ((23, 19), (6, 5), 2)]


@pytest.mark.parametrize("shape, chunks, seed", VOLUMES)
def test_porosity_and_connected_porosity_equal_one_shot(shape, chunks, seed):
    for level in (0.5, 0.52):  # one percolating phase, then fragmented clusters
        mask = _blobs(shape, seed, level=level)
        assert chunked.porosity(mask, chunks=chunks) == porosity.porosity(mask)
        assert chunked.connected_porosity(mask, chunks=chunks) == porosity.connected_porosity(mask)
    solid = np.zeros(shape, dtype=np.uint8)
    assert chunked.connected_porosity(solid, chunks=chunks) == porosity.connected_porosity(solid)


def test_connected_porosity_of_a_spiral_through_many_chunks():
    # One face-connected path that leaves and re-enters chunks many times: merged across faces.
    mask = np.zeros((20, 21, 22), dtype=bool)
    mask[:, 10, 10] = True  # spans z
    mask[5, 2:19, 2] = mask[5, 2, 2:19] = mask[5, 18, 2:19] = mask[5, 2:11, 18] = True
    mask[5, 10, 10:19] = True
    mask[12, 3:8, 3:8] = True  # isolated
    assert chunked.connected_porosity(mask, chunks=5) == porosity.connected_porosity(mask)


@pytest.mark.parametrize("shape, chunks, seed", VOLUMES)
def test_minkowski_chunked_equals_whole_volume(shape, chunks, seed):
    mask = _blobs(shape, seed)
    for closed in (False, True):
        for connectivity in (6, 26):
            _assert_same(chunked.minkowski_functionals(mask, 3e-6, connectivity, closed, chunks=chunks),
                         minkowski.minkowski_functionals(mask, 3e-6, connectivity, closed))
    for level in (0.3, 0.7):  # voxel noise: every configuration occurs, at chunk faces too
        noise = np.random.default_rng(seed).random(shape) > level
        whole = (minkowski.configuration_histogram(noise) if noise.ndim == 3
                 else minkowski.configuration_histogram_2d(noise))
        assert np.array_equal(chunked.configuration_histogram(noise, chunks=chunks), whole)
        _assert_same(chunked.minkowski_functionals(noise, chunks=chunks), minkowski.minkowski_functionals(noise))


def test_minkowski_chunked_ball_and_torus():
    n = 40
    z, y, x = np.ogrid[:n, :n, :n]
    ball = (z - 19.6) ** 2 + (y - 20.2) ** 2 + (x - 19.9) ** 2 <= 14.3 ** 2
    torus = (np.sqrt((y - 19.7) ** 2 + (x - 20.1) ** 2) - 11.0) ** 2 + (z - 19.5) ** 2 <= 4.2 ** 2
    for shape, euler in ((ball, 1), (torus, 0)):
        for connectivity in (6, 26):
            result = chunked.minkowski_functionals(shape, connectivity=connectivity, closed=True, chunks=(9, 14, 11))
            _assert_same(result, minkowski.minkowski_functionals(shape, connectivity=connectivity, closed=True))
            assert result["euler"] == euler
    assert chunked.minkowski_functionals(ball, closed=True, chunks=9)["volume"] == pytest.approx(
        4 / 3 * np.pi * 14.3 ** 3, rel=0.02)


def test_minkowski_chunked_accepts_dask_uint8():
    import dask.array as da

    mask = _blobs((25, 26, 27), 3)
    lazy = da.from_array(mask.astype(np.uint8) * 255, chunks=(8, 9, 10))
    _assert_same(chunked.minkowski_functionals(lazy), minkowski.minkowski_functionals(mask))
    with pytest.raises(BadInputError, match="too thin"):
        chunked.minkowski_functionals(np.ones((1, 5, 5), bool))


def _exact_pair_counts(mask, axis, r_max):
    n = mask.shape[axis]
    first = [np.take(mask, np.arange(n - r), axis=axis) for r in range(r_max + 1)]
    second = [np.take(mask, np.arange(r, n), axis=axis) for r in range(r_max + 1)]
    return np.array([np.count_nonzero(a & b) for a, b in zip(first, second)])


@pytest.mark.parametrize("shape, chunks, seed", VOLUMES)
def test_s2_chunked_is_exact_on_small_random_volumes(shape, chunks, seed):
    mask = np.random.default_rng(seed).random(shape) > 0.7
    r_max = min(shape) - 1  # context larger than the chunks: overlap merges them
    counts = chunked.pair_counts(mask, r_max, chunks=chunks)
    for axis in range(mask.ndim):
        assert np.array_equal(counts[axis], _exact_pair_counts(mask, axis, r_max))
    curves = chunked.two_point_correlation_axes(mask, r_max, chunks=chunks)
    exact = np.stack([counts[a] / ((mask.shape[a] - np.arange(r_max + 1)) * (mask.size // mask.shape[a]))
                      for a in range(mask.ndim)])
    assert np.array_equal(curves, exact)
    assert np.abs(curves - correlation.two_point_correlation_axes(mask, r_max)).max() < 1e-6  # one-shot: float32 FFT
    s2 = chunked.two_point_correlation(mask, r_max, chunks=chunks)
    assert s2[0] == correlation.two_point_correlation(mask, r_max)[0] == porosity.porosity(mask)
    with pytest.raises(BadInputError, match="r_max"):
        chunked.two_point_correlation(mask, min(shape), chunks=chunks)


def test_s2_chunked_berea_400_matches_whole_volume(shared_data):
    import tifffile

    mask = tifffile.imread(shared_data / "berea_400.tif") > 0
    r_max = 100  # analyze's default: min(100, side // 2)
    whole = correlation.two_point_correlation_axes(mask, r_max)
    lazy = chunked.two_point_correlation_axes(mask, r_max, chunks=128)  # 400 = 3 x 128 + 16
    assert lazy.shape == (3, r_max + 1)
    # Non-periodic in both; the chunked counts are exact, the one-shot has float32 FFT round-off.
    assert np.abs(lazy - whole).max() < 1e-6
    assert lazy[0, 0] == porosity.porosity(mask)


def _balls():
    n = 48
    z, y, x = np.ogrid[:n, :n, :n]
    small = (z - 14) ** 2 + (y - 14) ** 2 + (x - 15) ** 2 <= 7 ** 2
    large = (z - 31) ** 2 + (y - 30) ** 2 + (x - 29) ** 2 <= 10 ** 2
    return small, large


def test_local_thickness_chunked_equals_one_shot_on_balls():
    small, large = _balls()
    mask = small | large
    from porespy.tools import get_edt

    # Exact although the first margin (2) is far too small: uncertain chunks are redone wider.
    assert chunked.max_distance(mask, depth=2, chunks=20) == float(get_edt()(mask).max())
    whole = psd.local_thickness(mask)
    lazy = chunked.local_thickness(mask, chunks=(20, 28, 48))  # depth 2 R = 20 > the last chunks
    assert lazy.chunks == ((20, 20, 8), (28, 20), (48,))  # the mask's chunks
    result = lazy.compute()
    assert np.array_equal(result, whole)
    # Known radii: the balls' bulk has the ball's radius.
    assert np.median(result[small]) == 7 and np.median(result[large]) == 10
    _assert_same(chunked.pore_size_distribution(mask, 5e-6, chunks=(20, 28, 48)), psd.pore_size_distribution(mask, 5e-6))
    with pytest.raises(BadInputError, match="depth >= 20"):
        chunked.local_thickness(mask, depth=19, chunks=20)


@pytest.mark.parametrize("shape, chunks, seed", [((36, 33, 30), (16, 13, 11), 4), ((60, 50), (17, 23), 5)])
def test_local_thickness_chunked_equals_one_shot_on_blobs(shape, chunks, seed):
    mask = _blobs(shape, seed, sigma=2.0)
    assert np.array_equal(chunked.local_thickness(mask, chunks=chunks).compute(), psd.local_thickness(mask))
    for sizes, bins in ((25, 30), (25, 3)):  # one bin per level; regular bins
        _assert_same(chunked.pore_size_distribution(mask, sizes=sizes, bins=bins, chunks=chunks),
                     psd.pore_size_distribution(mask, sizes=sizes, bins=bins))


def test_pore_size_distribution_chunked_bad_input():
    with pytest.raises(BadInputError, match="no pore"):
        chunked.pore_size_distribution(np.zeros((10, 10, 10), bool), chunks=4)
    with pytest.raises(BadInputError, match="no solid"):
        chunked.pore_size_distribution(np.ones((10, 10, 10), bool), chunks=4)


def test_percentiles_of_counts_equal_numpy():
    from rocksynth.properties.chunked.psd import percentiles_of_counts

    rng = np.random.default_rng(6)
    for _ in range(200):
        values = np.unique(rng.choice(np.arange(1, 40) * 0.7, size=rng.integers(1, 8)))
        counts = rng.integers(1, 50, size=values.size)
        q = [0, 10, 33.3, 50, 90, 100]
        assert np.array_equal(percentiles_of_counts(values, counts, q), np.percentile(np.repeat(values, counts), q))
