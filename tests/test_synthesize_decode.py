"""Texture generator: exact margin, tiled decode == one-shot decode, code fields, sizes."""

import numpy as np
import pytest
import torch

from rocksynth.errors import BadInputError
from rocksynth.models.texture import SCALE, TextureGenerator, voxel_shuffle
from rocksynth.pipelines.synthesize import (LatentGrid, blend_code_field, constant_code_field, decode_one_shot,
                                            decode_slabs, grid_cells, layout_code_field, parse_size,
                                            unpack_slices)


def _whole(code_plane, n):
    return torch.stack([code_plane(k) for k in range(n)], 1)


@pytest.fixture(scope="module")
def generator():
    torch.manual_seed(0)
    g = TextureGenerator(code_channels=4, noise_channels=4, widths=(16, 8, 8), fine_noise=(1, 1)).eval()
    # Random weights give a near-constant output: scale the last layer and centre its logits
    # so that thresholded volumes are part pore, part solid.
    with torch.no_grad():
        g.out.weight.mul_(20)
        g.out.bias.sub_(g(torch.randn(1, g.in_channels, 12, 12, 12), pad="valid").median())
    return g


def test_voxel_shuffle_places_subvoxels():
    x = torch.arange(8.0).view(1, 8, 1, 1, 1)
    y = voxel_shuffle(x)
    assert y.shape == (1, 1, 2, 2, 2)
    assert y[0, 0, 1, 0, 1] == 5  # channel index = 4 z + 2 y + x


def test_margin_is_38_voxels():
    assert TextureGenerator(widths=(16, 8, 8), fine_noise=(1, 1)).margin_voxels == 38
    with pytest.raises(ValueError, match="fine_noise"):
        TextureGenerator(fine_noise=(2, 1, 1))  # full-resolution noise maps: a removed experiment


def test_valid_and_circular_sizes(generator):
    z = torch.randn(1, generator.in_channels, 13, 14, 15)
    assert generator(z, pad="circular").shape == (1, 1, 104, 112, 120)
    m = generator.margin_voxels
    assert generator(z, pad="valid").shape == (1, 1, 104 - 2 * m, 112 - 2 * m, 120 - 2 * m)


def test_receptive_field_is_the_declared_margin(generator):
    """Perturbing one latent cell changes only voxels within the margin of its region."""
    shape = (160, 16, 16)
    cells = grid_cells(generator, shape)
    latent = torch.randn(1, generator.in_channels, *cells)
    base = decode_one_shot(generator, latent, shape)
    c = 12
    bumped = latent.clone()
    bumped[0, :, c, 3, 3] += 3.0
    changed = np.nonzero(np.abs(decode_one_shot(generator, bumped, shape) - base).max(axis=(1, 2)) > 0)[0]
    # Cell c covers circular-frame voxels 8c..8c+7; valid output voxel j is circular voxel j + margin.
    m = generator.margin_voxels
    low, high = SCALE * c - 2 * m, SCALE * c + SCALE - 1
    assert changed.min() >= low and changed.max() <= high
    # The trim of valid decoding (the margin) is what exactness needs; the influence itself stops
    # a little short of it (trilinear weights reach half a cell), but within one latent cell.
    assert changed.min() < low + SCALE and changed.max() > high - SCALE


@pytest.mark.parametrize("tile", [16, (8, 24, 16)])
def test_tiled_decode_equals_one_shot(generator, tile):
    shape = (40, 27, 33)  # sizes that are not multiples of the tile or of 8
    cells = grid_cells(generator, shape)
    code = torch.randn(4, generator=torch.Generator().manual_seed(3))  # not the global stream: test order varies
    latent = LatentGrid(cells, generator.noise_channels, seed=11, code_plane=constant_code_field(code, cells))
    one_shot = decode_one_shot(generator, latent.full(), shape)
    tiled = np.concatenate(list(decode_slabs(generator, latent, shape, tile=tile)))
    assert tiled.shape == shape
    np.testing.assert_allclose(tiled, one_shot, atol=1e-5)
    assert 0.05 < (one_shot > 0.5).mean() < 0.95  # a non-trivial volume was compared
    slabs = list(decode_slabs(generator, latent, shape, tile=tile, threshold=0.5))
    assert slabs[0].dtype == bool and np.array_equal(np.concatenate(slabs), tiled > 0.5)
    packed = list(decode_slabs(generator, latent, shape, tile=tile, threshold=0.5, packed=True))
    assert packed[0].dtype == np.uint8 and packed[0].shape[2] == -(-shape[2] // 8)
    assert np.array_equal(np.concatenate([unpack_slices(p, shape[2]) for p in packed]), tiled > 0.5)


def test_latent_planes_do_not_depend_on_the_range_asked():
    cells = (9, 11, 19)  # several noise chunks along y and x
    grid = LatentGrid(cells, 3, seed=2, code_plane=constant_code_field(torch.arange(2.0), cells))
    whole = grid.full()
    assert whole.shape == (1, 5, 9, 11, 19)
    assert torch.equal(grid.planes(3, 7), whole[:, :, 3:7])
    assert torch.equal(grid.block(slice(2, 5), slice(1, 4), slice(3, 6)), whole[:, :, 2:5, 1:4, 3:6])
    assert not torch.equal(whole[0, 2:, 0], whole[0, 2:, 1])  # fresh noise per plane
    other = LatentGrid(cells, 3, seed=3, code_plane=constant_code_field(torch.arange(2.0), cells)).full()
    assert not torch.equal(other, whole)


@pytest.mark.parametrize("axis", [0, 2])
def test_blend_field_moves_from_a_to_b(axis):
    a, b = torch.zeros(3), torch.ones(3)
    cells = [4, 5, 4]
    cells[axis] = 20
    field = _whole(blend_code_field(a, b, cells, axis=axis, margin_voxels=26, length=108), cells[0])
    field = field.movedim(axis + 1, 1)
    assert field.shape[:2] == (3, 20)
    profile = field[0, :, 0, 0].numpy()
    assert profile[0] == 0 and profile[-1] == 1 and np.all(np.diff(profile) >= 0)
    assert bool((field[:, 7] == field[:, 7, :1, :1]).all())  # constant across the other axes


def test_layout_field_follows_labels():
    labels = np.zeros((64, 64, 64), np.uint8)
    labels[:, :, 32:] = 1
    codes = torch.tensor([[0.0], [1.0]])
    cells = (15, 15, 15)
    field = _whole(layout_code_field(labels, codes, (64, 64, 64), cells, margin_voxels=26), 15)[0].numpy()
    assert field[7, 7, 3] < 0.1 and field[7, 7, -4] > 0.9
    assert 0.2 < field[7, 7, 7] < 0.8  # smoothed at the boundary


@pytest.mark.parametrize("text, expected", [("64", (64, 64, 64)), ("16x32x48", (16, 32, 48)), ("8X8X8", (8, 8, 8))])
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["0", "7", "abc", "16x16", "16x16x16x16", "-8", "99999", "1.5"])
def test_bad_sizes(text):
    with pytest.raises(BadInputError):
        parse_size(text)


def test_extruded_texture_is_the_same_on_every_z_slice(generator):
    """Noise constant along z at every scale (extrude_noise) makes the volume z-invariant exactly,
    in training (circular padding) and in the tiled decode, which still equals the one-shot one."""
    torch.manual_seed(1)
    c = generator.code_channels
    z = torch.randn(1, generator.in_channels, 4, 5, 6)
    z[:, :c] = torch.randn(1, c, 1, 1, 1)
    with torch.no_grad():
        free = generator(z)
        extruded = generator(torch.cat([z[:, :c], generator.extrude_noise(z[:, c:])], 1))
    assert (free - free[:, :, :1]).abs().max() > 0.1
    assert torch.allclose(extruded, extruded[:, :, :1].expand_as(extruded), atol=1e-4)  # float32 round-off
    shape = (40, 27, 33)
    cells = grid_cells(generator, shape)
    latent = LatentGrid(cells, generator.noise_channels, seed=11, code_plane=constant_code_field(torch.randn(4), cells),
                        extrude=generator)
    one_shot = decode_one_shot(generator, latent.full(), shape)
    tiled = np.concatenate(list(decode_slabs(generator, latent, shape, tile=16)))
    np.testing.assert_allclose(tiled, one_shot, atol=1e-5)
    assert np.array_equal(one_shot > 0.5, np.broadcast_to(one_shot[:1] > 0.5, shape))
    assert 0.05 < (one_shot > 0.5).mean() < 0.95
