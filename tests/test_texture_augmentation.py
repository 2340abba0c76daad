"""Training crops keep an anisotropic sample's orientation; an isotropic one gets all 48 symmetries."""

import numpy as np
from scipy import ndimage

from rocksynth.data.crops import AXIS_ORDERS, symmetric_axis_orders, transitions_per_axis
from rocksynth.data.textures import TextureCrops, make_texture


def _isotropic(size: int = 48) -> np.ndarray:
    field = ndimage.gaussian_filter(np.random.default_rng(0).standard_normal((size,) * 3), 2.0)
    return field > np.quantile(field, 0.8)


def _extruded_network(size: int = 48) -> np.ndarray:
    """A 2D crack pattern (different along y and x) repeated along z, like fractures_100.tif."""
    plane = np.zeros((size, size), bool)
    plane[:, 5:8] = plane[:, 30:33] = True  # two cracks running along y
    plane[20:22, :] = True                  # one thin crack along x
    return np.broadcast_to(plane, (size, size, size)).copy()


def test_isotropic_sample_keeps_every_axis_order():
    assert symmetric_axis_orders(_isotropic()) == AXIS_ORDERS


def test_extruded_sample_keeps_its_orientation():
    volume = _extruded_network()
    rates = transitions_per_axis(volume)
    assert rates[0] == 0 and rates[1] > 0 and rates[2] > 0
    assert symmetric_axis_orders(volume) == [(0, 1, 2)]
    # Equal y and x statistics allow swapping those two axes only.
    square = np.broadcast_to(_isotropic()[0], (48, 48, 48))
    assert set(symmetric_axis_orders(square)) == {(0, 1, 2), (0, 2, 1)}


def test_training_crops_of_an_extruded_sample_stay_extruded_along_z():
    textures = [make_texture("fractures", _extruded_network(64)), make_texture("rock", _isotropic(64))]
    assert textures[0].axis_orders == [(0, 1, 2)] and "anisotropic" in textures[0].augmentation()
    assert "isotropic" in textures[1].augmentation()
    labels, first, second = TextureCrops(textures, seed=0).pairs(16, 40)
    fractures = np.concatenate([first[labels == 0], second[labels == 0]])
    rocks = np.concatenate([first[labels == 1], second[labels == 1]])
    assert len(fractures) and len(rocks)
    # Every fracture crop is constant along z; rotated rock crops are not all alike in orientation.
    assert all(np.all(crop == crop[:1]) for crop in fractures)
    assert not all(np.all(crop == crop[:1]) for crop in rocks)
