"""The block-wise SNOW network against PoreSpy's one-shot snow2 on a Berea crop."""

import numpy as np
import pytest

from rocksynth.properties.chunked.network import _even_split, extract_network_blocks
from rocksynth.properties.network import extract_network, network_statistics
from rocksynth.properties.permeability import network_permeability


def test_even_split():
    assert _even_split(400, 192) == (134, 133, 133)
    assert _even_split(100, 100) == (100,)
    assert sum(_even_split(1000, 192)) == 1000 and max(_even_split(1000, 192)) <= 192


def test_block_network_equals_the_one_shot_network(berea_crop):
    whole = extract_network(berea_crop)
    blocks = extract_network_blocks(berea_crop, core=48, depth=32, scheduler="synchronous")
    a, b = network_statistics(whole), network_statistics(blocks)
    assert b["pores"] == a["pores"] and b["boundary_pores"] == a["boundary_pores"]
    assert abs(b["throats"] - a["throats"]) <= 0.02 * a["throats"]
    assert np.sum(blocks.network["pore.volume"]) == pytest.approx(np.sum(whole.network["pore.volume"]), rel=1e-3)
    assert np.sort(blocks.network["pore.inscribed_diameter"]) == pytest.approx(
        np.sort(whole.network["pore.inscribed_diameter"]))
    for one, chunked in zip(network_permeability(whole, None, formation_factor=False),
                            network_permeability(blocks, None, formation_factor=False)):
        assert chunked.k_voxel2 == pytest.approx(one.k_voxel2, rel=0.03), one.axis


def test_block_network_of_a_solid_volume_is_bad_input():
    from rocksynth.errors import BadInputError

    with pytest.raises(BadInputError, match="no pore voxels"):
        extract_network_blocks(np.zeros((40, 40, 40), bool), core=20, depth=8, scheduler="synchronous")


def test_block_network_of_a_lazy_zarr_volume_equals_that_of_the_array(tmp_path, berea_crop):
    """Blocks read straight from the file give the network the in-memory blocks give."""
    from rocksynth.io import load_binary_lazy, volume_writer

    volume = berea_crop[:64, :64, :64]
    with volume_writer(tmp_path / "v.zarr", volume.shape, np.uint8, 5e-6) as writer:
        writer.write(volume.astype(np.uint8) * 255)
    lazy, _ = load_binary_lazy(tmp_path / "v.zarr")
    in_memory = extract_network_blocks(volume, core=32, depth=32, scheduler="synchronous")
    from_file = extract_network_blocks(lazy, core=32, depth=32, scheduler="synchronous")
    assert set(from_file.network) == set(in_memory.network)
    for name, values in in_memory.network.items():
        assert np.array_equal(np.asarray(from_file.network[name]), np.asarray(values)), name
