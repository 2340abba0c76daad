"""The held-out comparison `train reconstruct` prints at the end: the right sets compared, a good
model scored below a bad one, cubes without a pore network kept, and the table in the log."""

import numpy as np
import pytest
import tifffile
import torch

from rocksynth.models.slice2vol import Slice2Vol
from rocksynth.pipelines.reconstruct import load_model
from rocksynth.properties.compare import wasserstein
from rocksynth.training.reconstruct_comparison import (COMPARED, CubeSets, compare_models, cube_properties, draw_cubes,
                                                       format_comparison, reconstruct_cubes, score)

from conftest import SHARED_DATA


@pytest.fixture(scope="module")
def berea_cubes():
    volume = tifffile.imread(SHARED_DATA / "berea_400.tif") > 0
    return draw_cubes([volume[300:, :200, :200]], [volume[:300, :200, :200]], 32, 4, run_seed=0)


def test_the_trained_model_beats_an_untrained_one_and_each_distance_is_the_sets(berea_cubes):
    torch.manual_seed(0)
    untrained = Slice2Vol(enc_channels=(2, 4, 8), channels=(2, 4, 8), noise_channels=(2, 1), quarter_blocks=1).eval()
    berea = load_model("berea").model
    result = compare_models({"berea": berea, "untrained": untrained}, berea_cubes, with_permeability=False)
    real = cube_properties(berea_cubes.real, with_permeability=False)
    floor = cube_properties(berea_cubes.training, with_permeability=False)
    generated = cube_properties(reconstruct_cubes(berea, berea_cubes.real), with_permeability=False)
    for name in ("porosity", "specific_surface", "euler_density"):
        assert result["floor"]["distances"][name] == pytest.approx(wasserstein(real[name], floor[name]))
        assert result["models"]["berea"]["distances"][name] == pytest.approx(wasserstein(real[name], generated[name]))
        assert result["real_mean"][name] == pytest.approx(real[name].mean())
    assert result["cubes"] == 4 and result["size"] == 32
    assert result["floor"]["score"] == pytest.approx(1.0)
    assert result["models"]["berea"]["score"] < result["models"]["untrained"]["score"]
    lines = format_comparison(result)
    assert lines[-1].startswith("closest to the held-out rock: berea")
    assert any(line.startswith("| porosity |") for line in lines)


def test_reconstructions_keep_each_cubes_central_slice(berea_cubes):
    volumes = reconstruct_cubes(load_model("berea").model, berea_cubes.real)
    assert volumes.shape == berea_cubes.real.shape
    np.testing.assert_array_equal(volumes[:, 16], berea_cubes.real[:, 16])


def test_a_cube_without_a_pore_network_has_no_permeability_rather_than_an_error(berea_cubes):
    lonely = np.zeros((32, 32, 32), bool)
    lonely[15:17, 15:17, 15:17] = True  # one pore: SNOW finds no throat
    values = cube_properties(np.stack([lonely, berea_cubes.real[0]]))
    assert np.isnan(values["log10_permeability"][0]) and np.isnan(values["percolating"][0])
    assert values["porosity"][0] == pytest.approx(8 / 32 ** 3)
    assert values["percolating"][1] == 1 and np.isfinite(values["log10_permeability"][1])


def test_the_score_is_the_mean_ratio_to_the_floor_over_the_measured_properties():
    floor = dict.fromkeys(COMPARED, 0.5)
    assert score(dict.fromkeys(COMPARED, 1.0), floor) == pytest.approx(2.0)
    partial = dict(dict.fromkeys(COMPARED, 1.0), log10_permeability=float("nan"))
    assert score(partial, floor) == pytest.approx(2.0)
    assert np.isnan(score(dict.fromkeys(COMPARED, 1.0), dict.fromkeys(COMPARED, 0.0)))


def test_cube_sets_come_from_the_held_out_and_the_training_blocks():
    held_out, training = np.ones((40, 40, 40), bool), np.zeros((40, 40, 40), bool)
    cubes = draw_cubes([held_out, held_out], [training, training], 16, 3, run_seed=0)
    assert isinstance(cubes, CubeSets)
    assert cubes.real.shape == cubes.training.shape == (6, 16, 16, 16)
    assert cubes.real.all() and not cubes.training.any()
