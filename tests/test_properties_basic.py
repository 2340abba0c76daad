"""Porosity, two-point correlation and KL divergence on cases with known answers."""

import numpy as np
import pytest

from rocksynth.errors import BadInputError
from rocksynth.properties.compare import kl_divergence
from rocksynth.properties.correlation import correlation_length, two_point_correlation, two_point_correlation_axes
from rocksynth.properties.porosity import porosity


def test_porosity_counts_pore_voxels():
    mask = np.zeros((10, 10, 10), bool)
    mask[:3] = True
    assert porosity(mask) == pytest.approx(0.3)
    assert porosity(mask.astype(np.uint8) * 255) == pytest.approx(0.3)


@pytest.mark.parametrize("shape", [(40, 50), (20, 24, 28)])
def test_s2_matches_brute_force_pair_counts(shape):
    rng = np.random.default_rng(0)
    mask = rng.random(shape) < 0.3
    curves = two_point_correlation_axes(mask, 6)
    for axis in range(mask.ndim):
        for r in (1, 4, 6):
            a = np.take(mask, np.arange(shape[axis] - r), axis=axis)
            b = np.take(mask, np.arange(r, shape[axis]), axis=axis)
            assert curves[axis, r] == pytest.approx(np.mean(a & b), abs=1e-6)
    s2 = two_point_correlation(mask, 6)
    assert s2[0] == porosity(mask)  # S2(0) = phi exactly
    # Uncorrelated noise: S2(r > 0) = phi^2.
    assert s2[3] == pytest.approx(porosity(mask) ** 2, abs=0.01)


def test_s2_of_layers_has_known_period():
    # Pore layers 4 voxels thick every 10 voxels along x: S2_x(10) = phi, S2_x(5) = 0.
    x = np.arange(40)
    mask = np.broadcast_to((x % 10) < 4, (12, 12, 40))
    curves = two_point_correlation_axes(mask, 10)
    assert curves[2, 10] == pytest.approx(0.4, abs=1e-6)
    assert curves[2, 5] == pytest.approx(0.0, abs=1e-6)
    assert curves[0, 7] == pytest.approx(0.4, abs=1e-6)  # constant along z


def test_correlation_length_of_exponential_curve():
    phi = 0.2
    r = np.arange(200)
    s2 = phi * phi + (phi - phi * phi) * np.exp(-r / 10.0)
    assert correlation_length(s2, tolerance=0.05) == pytest.approx(10 * np.log(20), abs=0.2)


def test_s2_rejects_too_large_r():
    with pytest.raises(BadInputError):
        two_point_correlation(np.ones((5, 5), bool), 5)


def test_kl_zero_for_identical_and_positive_for_shifted():
    rng = np.random.default_rng(1)
    a = rng.normal(0, 1, 500)
    assert kl_divergence(a, a) == pytest.approx(0.0, abs=1e-12)
    near = kl_divergence(a, rng.normal(0, 1, 500))
    far = kl_divergence(a, rng.normal(3, 1, 500))
    assert 0 < near < far
    assert np.isfinite(far)
