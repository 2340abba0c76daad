"""Training crops keep an anisotropic sample's orientation; an isotropic one gets all 48 symmetries;
an extruded sample is generated extruded."""

import numpy as np
import tifffile
import torch
from scipy import ndimage

from rocksynth.data.crops import AXIS_ORDERS, symmetric_axis_orders, transitions_per_axis
from rocksynth.data.textures import TextureCrops, make_texture
from rocksynth.pipelines.synthesize import (LatentGrid, constant_code_field, decode_one_shot, grid_cells,
                                            load_texture_model, synthesize_file)
from rocksynth.training.texture import TrainSettings, train_texture


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


def test_an_extruded_texture_is_trained_and_synthesized_extruded(tmp_path):
    """A sample that is the same on every z-slice is flagged, trained from noise constant along z
    and synthesized the same on every z-slice."""
    torch.set_num_threads(1)
    textures = [make_texture("fractures", _extruded_network(48)), make_texture("rock", _isotropic(48))]
    assert textures[0].extruded and not textures[1].extruded
    out = tmp_path / "tiny.pt"
    train_texture(textures, out, TrainSettings(iters=2, crop=16, batch=2, slices_per_axis=2, eval_every=2,
                                               save_every=2, eval_size=16, seed=3))
    model = load_texture_model(str(out))
    assert model.is_extruded("fractures") and not model.is_extruded("rock")
    summary = synthesize_file(str(tmp_path / "f.tif"), model=str(out), texture="fractures", size="24")
    assert summary["extruded"] is True
    volume = tifffile.imread(tmp_path / "f.tif") > 0
    assert np.array_equal(volume, np.broadcast_to(volume[:1], volume.shape))
    # The probabilities themselves (2 iterations leave the volume mostly one phase): constant along z only.
    g, shape = model.generator, (24, 24, 24)
    cells = grid_cells(g, shape)
    field = constant_code_field(model.code_of("fractures"), cells)
    probability = decode_one_shot(g, LatentGrid(cells, g.noise_channels, 0, field, extrude=g).full(), shape)
    assert np.allclose(probability, probability[:1], atol=1e-5) and probability[0].std() > 1e-4
