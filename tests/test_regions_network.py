"""Our `regions_to_network` and `snow_network` against PoreSpy's: every array of the network,
its shape, dtype and values, on rock crops, a random 3D volume and a 2D image."""

import numpy as np
import pytest
from conftest import blobs

ps = pytest.importorskip("porespy")


def _assert_same_network(ours: dict, theirs: dict) -> None:
    assert ours.keys() == theirs.keys()
    for key in theirs:
        a, b = np.asarray(ours[key]), np.asarray(theirs[key])
        assert a.shape == b.shape and a.dtype == b.dtype, key
        assert np.array_equal(a, b), key


@pytest.mark.parametrize("source", ["berea", "ketton", "random", "random2d"])
def test_regions_to_network_equals_porespys(source, berea_crop, shared_data):
    from rocksynth.properties.regions_network import regions_to_network
    from rocksynth.properties.snow_peaks import snow_markers

    import tifffile

    ketton = lambda: tifffile.imread(shared_data / "ketton_256.tif")[:80, :80, :80] > 0  # noqa: E731
    mask = {"berea": lambda: berea_crop, "ketton": ketton,
            "random": lambda: blobs((48, 40, 44)), "random2d": lambda: blobs((120, 100))}[source]()
    snow = ps.filters.snow_partitioning(mask, peaks=snow_markers(mask) if mask.ndim == 3 else None)
    regions = ps.networks.add_boundary_regions(snow.regions.astype(int), pad_width=3)
    phases = np.pad(mask.astype(int), 3, mode="edge")
    theirs = ps.networks.regions_to_network(regions, phases=phases, voxel_size=2.5, accuracy="standard")
    _assert_same_network(regions_to_network(regions, phases, voxel_size=2.5), theirs)


def test_snow_network_equals_snow2(berea_crop):
    from rocksynth.properties.network import BOUNDARY_WIDTH, snow_network
    from rocksynth.properties.snow_peaks import snow_markers

    theirs = ps.networks.snow2(berea_crop, voxel_size=1, boundary_width=BOUNDARY_WIDTH, parallel_kw=None,
                               peaks=snow_markers(berea_crop)).network
    _assert_same_network(snow_network(berea_crop), theirs)
