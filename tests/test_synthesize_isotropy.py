"""Texture GAN and axes: the generator treats z, y and x alike, and the S2 training term sees
anisotropy (the shipped model's pores came out 12 voxels long along z and x and 7 along y while
its axis-averaged S2 matched Berea's)."""

import copy
import itertools

import numpy as np
import torch

from rocksynth.models.texture import TextureGenerator
from rocksynth.training.texture import axis_correlation, correlation_mismatch, latent_grid, window_correlation


def _stripes(axis: int, n: int = 32, period: int = 8, width: int = 2) -> torch.Tensor:
    """(1, 1, n, n, n) pore layers `width` thick every `period` voxels, normal to `axis` (0 = z)."""
    volume = np.zeros((n,) * 3, dtype=np.float32)
    index = [slice(None)] * 3
    for start in range(0, n, period):
        index[axis] = slice(start, start + width)
        volume[tuple(index)] = 1
    return torch.from_numpy(volume)[None, None]


def test_correlation_is_measured_per_axis():
    curves = axis_correlation(_stripes(0), 8)[0]
    assert curves.shape == (3, 9)
    assert torch.allclose(curves[1], torch.full((9,), 0.25)) and torch.allclose(curves[2], curves[1])
    assert abs(float(curves[0, 4])) < 1e-6  # layers 2 thick every 8: no pore pairs 4 apart along z
    assert torch.allclose(window_correlation(_stripes(0), 8)[0, 1:], curves[1:])


def test_mismatch_sees_anisotropy_that_the_axis_mean_hides():
    layered = axis_correlation(_stripes(0), 12)
    isotropic = layered.mean(1, keepdim=True).expand_as(layered)  # same S2 averaged over the axes
    assert float(((layered.mean(1) - isotropic.mean(1)) ** 2).mean()) < 1e-12
    assert float(correlation_mismatch(layered, isotropic)) > 1e-3


def test_mismatch_ignores_orientation():
    # Crops are rotated at random in training, so layers normal to y match layers normal to z.
    along_z, along_y = axis_correlation(_stripes(0), 12), axis_correlation(_stripes(1), 12)
    assert float(correlation_mismatch(along_y, along_z)) < 1e-12
    assert float(correlation_mismatch(along_y, axis_correlation(_stripes(0, period=16, width=4), 12))) > 1e-3


def _subvoxel_order(channels: int, levels: int, perm) -> torch.Tensor:
    """Channel order of unshuffled noise (C * 8^levels, voxel_shuffle layout) after permuting the axes."""
    index = torch.arange(channels * 8 ** levels).view(channels, *([2, 2, 2] * levels))
    dims = [0] + [1 + 3 * level + p for level in range(levels) for p in perm]
    return index.permute(*dims).reshape(-1)


def test_generator_is_equivariant_to_axis_permutations():
    """Kernels and latent with permuted axes give the permuted volume: no axis is special in the
    generator (voxel_shuffle, trilinear upsampling, noise crops, padding)."""
    torch.manual_seed(0)
    g = TextureGenerator(code_channels=2, noise_channels=2, widths=(6, 5, 4), fine_noise=(2, 1)).double()
    z = latent_grid(torch.randn(1, 2), 4, g.noise_channels).double()
    n1, n2 = g.fine_noise
    c = g.code_channels + g.cell_noise
    with torch.no_grad():
        volume = g(z)
        for perm in itertools.permutations(range(3)):
            spatial = [2 + p for p in perm]
            permuted = copy.deepcopy(g)
            for conv in permuted.modules():
                if isinstance(conv, torch.nn.Conv3d):
                    conv.weight.copy_(conv.weight.permute(0, 1, *spatial).clone())
            channels = torch.cat([torch.arange(c), c + _subvoxel_order(n1, 1, perm),
                                  c + 8 * n1 + _subvoxel_order(n2, 2, perm)])
            out = permuted(z[:, channels].permute(0, 1, *spatial))
            assert torch.allclose(out, volume.permute(0, 1, *spatial), atol=1e-10), perm
