"""Network permeability against Hagen–Poiseuille, percolation handling, and a small Berea crop."""

from pathlib import Path

import numpy as np
import pytest

from rocksynth.properties.network import extract_network, network_statistics
from rocksynth.properties.permeability import network_permeability
from rocksynth.properties.porosity import connected_porosity, porosity
from rocksynth.properties.psd import pore_size_distribution

DATA = Path(__file__).parents[2] / "shared" / "data"


def _tubes(n=48, r=5.0):
    """Four straight circular tubes along x (array axis 2)."""
    y, z = np.ogrid[:n, :n]
    mask = np.zeros((n, n, n), bool)
    for cz in (n / 4, 3 * n / 4):
        for cy in (n / 4, 3 * n / 4):
            mask |= (((z - cz + 0.5) ** 2 + (y - cy + 0.5) ** 2) <= r * r)[:, :, None]
    return mask, r


@pytest.fixture(scope="module")
def tube_network():
    mask, r = _tubes()
    return mask, r, extract_network(mask)


def test_tubes_match_hagen_poiseuille(tube_network):
    mask, r, extracted = tube_network
    h = 2e-6
    result = network_permeability(extracted, h, axes=("x",))[0]
    hagen_poiseuille = porosity(mask) * (r * h) ** 2 / 8  # K = phi r^2 / 8
    assert result.percolating
    assert result.k_m2 == pytest.approx(hagen_poiseuille, rel=0.25)
    assert result.k_md == pytest.approx(result.k_m2 / 9.869233e-13 * 1e3)
    # Straight tubes: formation factor = 1 / porosity.
    assert result.formation_factor == pytest.approx(1 / porosity(mask), rel=0.25)


def test_a_formation_factor_below_one_over_porosity_gets_a_note():
    """F >= 1 / porosity for any pore space (Wiener bound; straight channels reach it)."""
    from rocksynth.properties.permeability import formation_factor_notes

    notes = formation_factor_notes({"x": 0.9 / 0.2, "y": 1 / 0.2, "z": None}, 0.2)
    assert len(notes) == 1 and notes[0].startswith("F_x = 4.5 is below 1/porosity = 5")


def test_analyze_notes_the_tubes_formation_factor_below_the_bound(tube_network):
    """The default conduit model gives straight tubes F about 0.9 / porosity: analyze says so."""
    from rocksynth.properties.report import analyze

    mask, _, _ = tube_network
    report = analyze(mask, jobs=1, only=("porosity", "network", "permeability"))
    assert report["permeability"]["x"]["formation_factor"] * porosity(mask) < 1
    assert [note[:4] for note in report["notes"] if "1/porosity" in note] == ["F_x "]


def test_non_percolating_axis_gives_zero_with_note(tube_network):
    mask, _, extracted = tube_network
    across = network_permeability(extracted, 1e-6, axes=("y", "z"))
    for result in across:
        assert result.k_m2 == 0.0 and not result.percolating
        assert "no connected pore path" in result.note
    phi = connected_porosity(mask)
    assert phi["x"] == pytest.approx(porosity(mask)) and phi["y"] == 0.0 and phi["z"] == 0.0


def test_network_statistics_of_tubes(tube_network):
    _, _, extracted = tube_network
    stats = network_statistics(extracted)
    assert stats["pores"] >= 4  # at least one pore per tube
    assert stats["boundary_pores"] >= 8  # each tube meets both x faces


def test_small_berea_crop_is_plausible():
    tifffile = pytest.importorskip("tifffile")
    path = DATA / "berea_400.tif"
    if not path.exists():
        pytest.skip("shared Berea data not available")
    mask = tifffile.imread(path)[:80, :80, :80] > 0
    results = network_permeability(extract_network(mask), 5.345e-6, axes=("x",))
    # A 80^3 crop is far below a representative volume: only check the order of magnitude of
    # Berea (1.36 D over 400^3) and of its formation factor (23 by direct simulation).
    assert 200 < results[0].k_md < 6000
    assert 8 < results[0].formation_factor < 60
    psd = pore_size_distribution(mask, 5.345e-6, sizes=10)
    assert 5e-6 < psd["diameter_d50"] < 60e-6
    assert sum(psd["volume_fraction"]) == pytest.approx(1.0)


def test_conduit_length_is_snows_total_length(tube_network):
    # OpenPNM's regenerate_models() used to overwrite throat.spacing (aliased to total_length)
    # with the straight pore-centre distance: K_x of Berea 400^3 was 1.63 D instead of 1.39 D.
    from rocksynth.properties.permeability import _openpnm_network

    _, _, extracted = tube_network
    keep = np.arange(len(extracted.network["pore.coords"]))
    network = _openpnm_network(extracted.network, keep, "pyramids_and_cuboids")
    total = np.asarray(extracted.network["throat.total_length"])
    assert np.array_equal(network["throat.spacing"], total)
    assert np.array_equal(network["throat.total_length"], total)
    conns = network["throat.conns"]
    straight = np.linalg.norm(np.diff(network["pore.coords"][conns], axis=1)[:, 0], axis=1)
    assert not np.allclose(network["throat.spacing"], straight)  # the two lengths differ here


def test_ball_and_stick_matches_openpnm_where_openpnm_applies():
    import openpnm as op

    from rocksynth.properties.conduits import ball_and_stick_size_factors

    network = op.network.Cubic(shape=[4, 1, 1], spacing=10.0)
    network["pore.diameter"] = np.array([8.0, 6.0, 9.0, 7.0])
    network["throat.diameter"] = np.array([3.0, 4.0, 2.5])
    network["throat.spacing"] = np.array([10.0, 10.0, 7.0])  # the last pair overlaps (split at the plane)
    expected = op.models.geometry.hydraulic_size_factors.spheres_and_cylinders(network)
    expected_diffusive = op.models.geometry.diffusive_size_factors.spheres_and_cylinders(network)
    hydraulic, diffusive, counts = ball_and_stick_size_factors(
        network["pore.diameter"], network["throat.diameter"], network["throat.conns"],
        network["throat.spacing"], np.zeros(4, bool))
    finite = np.isfinite(expected) & (expected < 1e12)
    assert np.allclose(hydraulic[finite], expected[finite], rtol=1e-6)
    assert np.allclose(diffusive[finite], np.asarray(expected_diffusive)[finite], rtol=1e-6)
    assert counts == {"throats": 3, "throat_clipped_to_pore": 0, "spheres_scaled": 0}


def test_ball_and_stick_tubes_match_hagen_poiseuille(tube_network):
    mask, r, extracted = tube_network
    result = network_permeability(extracted, None, axes=("x",), conduit="spheres_and_cylinders")[0]
    # Measured 0.82 (circular throats of the inscribed diameter, spherical pore sections).
    assert result.k_voxel2 == pytest.approx(porosity(mask) * r * r / 8, rel=0.25)
    assert result.formation_factor == pytest.approx(1 / porosity(mask), rel=0.25)


def _thin_outlet(n=32):
    """A wide channel along x that reaches the x-max face only through a 1-voxel line: the pore
    space connects the x faces, but SNOW gives that face no boundary pore."""
    mask = np.zeros((n, n, n), bool)
    mask[8:24, 8:24, : n - 4] = True
    mask[16, 16, n - 4:] = True
    return mask


def test_a_path_the_network_misses_gives_no_permeability_rather_than_a_false_zero():
    from rocksynth.properties.compare import sample_properties
    from rocksynth.properties.report import analyze

    mask = _thin_outlet()
    assert connected_porosity(mask)["x"] > 0
    report = analyze(mask, jobs=1, only=("porosity", "network", "permeability"))
    k_x = report["permeability"]["x"]
    assert not k_x["percolating"] and k_x["k_voxel2"] is None and "not computed, rather than a false 0" in k_x["note"]
    assert not any("no connected pore path between the two faces normal to x" in n for n in report["notes"])
    assert report["permeability"]["y"]["k_voxel2"] == 0.0  # the pore space does not cross y: a true 0
    assert sample_properties(mask, None)["permeability"] == 0.0  # the mean of y and z, without x's false 0
