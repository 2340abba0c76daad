"""The differentiable Euler density used as a training term equals the benchmark's Minkowski
estimate, and its gradient is the exact change of a single voxel flip."""

import numpy as np
import pytest
import torch

from rocksynth.properties.minkowski import minkowski_functionals
from rocksynth.training.topology import boundary_gradient_only, euler_density


@pytest.mark.parametrize("porosity", [0.1, 0.5, 0.85])
def test_euler_density_equals_minkowski_estimate(porosity):
    masks = np.random.default_rng(1).random((3, 10, 12, 13)) < porosity
    ours = euler_density(torch.from_numpy(masks).float()[:, None]).numpy()
    reference = [minkowski_functionals(mask)["euler_density"] for mask in masks]
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=1e-7)


def test_euler_of_known_shapes():
    ring = np.zeros((3, 5, 5), bool)  # a square ring of 8 voxels in one plane: one loop, chi 0
    ring[1, 1:4, 1:4] = True
    ring[1, 2, 2] = False
    ball = np.zeros((5, 5, 5), bool)  # a solid block: chi 1
    ball[1:4, 1:4, 1:4] = True
    for mask, chi in ((ring, 0), (ball, 1)):
        density = float(euler_density(torch.from_numpy(mask).float()[None, None])[0])
        assert density * np.prod([s - 1 for s in mask.shape]) == pytest.approx(chi)


def test_gradient_is_the_change_of_one_flip():
    volume = torch.from_numpy(np.random.default_rng(2).random((1, 1, 8, 9, 10)) < 0.5).float()
    volume.requires_grad_(True)
    euler_density(volume).sum().backward()
    base = float(euler_density(volume.detach())[0])
    rng = np.random.default_rng(3)
    for _ in range(20):
        index = (0, 0, *(int(rng.integers(n)) for n in volume.shape[2:]))
        flipped = volume.detach().clone()
        flipped[index] = 1 - flipped[index]
        change = float(euler_density(flipped)[0]) - base
        sign = 1.0 if volume[index] == 0 else -1.0
        assert change == pytest.approx(sign * float(volume.grad[index]), abs=1e-6)


def test_boundary_gradient_only_keeps_values_and_drops_interior_gradient():
    hard = np.zeros((1, 1, 9, 9, 9), np.float32)
    hard[..., :4] = 1  # pore slab x < 4, solid beyond: the boundary is x = 3 and x = 4
    logits = torch.from_numpy(hard * 4 - 2).requires_grad_(True)
    soft = torch.sigmoid(logits)
    straight = torch.from_numpy(hard) + soft - soft.detach()
    masked = boundary_gradient_only(straight)
    assert torch.equal(masked.detach(), torch.from_numpy(hard))
    masked.sum().backward()
    has_gradient = logits.grad[0, 0].abs().sum(dim=(0, 1)) > 0
    assert has_gradient.tolist() == [False, False, False, True, True, False, False, False, False]


def test_boundary_is_face_neighbours_only():
    hard = np.zeros((1, 1, 5, 5, 5), np.float32)
    hard[0, 0, 2, 2, 2] = 1  # one pore voxel: it and its 6 face neighbours are boundary, not the diagonals
    volume = torch.from_numpy(hard).requires_grad_(True)
    boundary_gradient_only(volume).sum().backward()
    assert int((volume.grad != 0).sum()) == 7
    assert float(volume.grad[0, 0, 1, 1, 2]) == 0.0
