"""compare: KL / bootstrap / Wasserstein on known distributions, and the CLI on synthetic rocks."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from rocksynth.cli.app import app
from rocksynth.io import write_volume
from rocksynth.io.samples import random_crops
from rocksynth.properties.compare import (bootstrap_std, compare_property_sets, kde_kl, kl_divergence,
                                         split_floor, spread_notes, wasserstein)


def test_wasserstein_of_shifted_samples_is_the_shift():
    a = np.random.default_rng(0).normal(0, 1, 400)
    assert wasserstein(a, a + 2.5) == pytest.approx(2.5)


def test_bootstrap_std_is_positive_and_deterministic():
    rng = np.random.default_rng(1)
    a, b = rng.normal(0, 1, 200), rng.normal(0.5, 1, 200)
    first = bootstrap_std(kl_divergence, a, b, resamples=50, seed=3)
    assert first > 0 and first == bootstrap_std(kl_divergence, a, b, resamples=50, seed=3)


def test_property_table_separates_different_media():
    rng = np.random.default_rng(2)
    same_a = [{"porosity": v} for v in rng.normal(0.2, 0.01, 300)]
    same_b = [{"porosity": v} for v in rng.normal(0.2, 0.01, 300)]
    other = [{"porosity": v} for v in rng.normal(0.12, 0.01, 300)]
    for samples in (same_a, same_b, other):
        for s in samples:
            s.update(permeability=np.nan, specific_surface=np.nan, euler_density=np.nan,
                     mean_breadth_density=np.nan, correlation_length=np.nan)
    near = compare_property_sets(same_a, same_b, resamples=20)["porosity"]
    far = compare_property_sets(same_a, other, resamples=20)["porosity"]
    assert list(compare_property_sets(same_a, other, resamples=5)) == ["porosity"]  # NaN-only properties skipped
    assert near["kl"] < 1.5 < 10 < far["kl"]
    assert far["wasserstein"] == pytest.approx(0.08, abs=0.005)


def test_a_collapsed_generator_gets_a_note_on_its_kde_kl_and_keeps_its_wasserstein():
    others = dict(permeability=np.nan, specific_surface=np.nan, euler_density=np.nan, mean_breadth_density=np.nan,
                  correlation_length=np.nan)
    real = [{"porosity": v, **others} for v in np.random.default_rng(5).normal(0.2, 0.02, 40)]
    collapsed = [{"porosity": 0.3, **others} for _ in range(40)]
    table = compare_property_sets(real, collapsed, resamples=5)
    assert np.isnan(table["porosity"]["kl"]) and table["porosity"]["wasserstein"] == pytest.approx(0.1, abs=0.01)
    notes = spread_notes(table)
    assert notes[-1] == ("porosity: the generated values have no spread, so the KDE KL is not a number; "
                         "the Wasserstein distance still compares the sets")
    assert [n.split(":")[0] for n in notes[:-1]] == [name for name in others]  # all NaN: not compared
    assert all("not compared" in n for n in notes[:-1])
    assert len(spread_notes(compare_property_sets(real, real[::-1], resamples=5))) == len(others)
    # A property left out on purpose (--no-permeability) is not reported as not comparable.
    assert not any(n.startswith("permeability") for n in spread_notes(table, {"permeability"}))


def test_random_crops_are_seeded_and_sized():
    volume = np.arange(20 ** 3).reshape(20, 20, 20)
    a = random_crops(volume, 3, 8, np.random.default_rng(5))
    b = random_crops(volume, 3, 8, np.random.default_rng(5))
    assert all(c.shape == (8, 8, 8) for c in a)
    assert all((x == y).all() for x, y in zip(a, b))


def _blobs(seed, radius, n=48, count=30):
    rng = np.random.default_rng(seed)
    z, y, x = np.ogrid[:n, :n, :n]
    mask = np.zeros((n, n, n), bool)
    for cz, cy, cx in rng.uniform(0, n, (count, 3)):
        mask |= (z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2 <= radius ** 2
    return mask


def test_cli_compare_json(tmp_path):
    write_volume(tmp_path / "a.tif", _blobs(0, 4))
    write_volume(tmp_path / "b.tif", _blobs(1, 7))
    runner = CliRunner()
    result = runner.invoke(app, ["compare", str(tmp_path / "a.tif"), "--vs", str(tmp_path / "b.tif"), "--crops", "6",
                                 "--crop-size", "24", "--no-permeability", "--jobs", "1", "--bootstrap", "20", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["real_samples"] == 6 and report["generated_samples"] == 6
    porosity = report["properties"]["porosity"]
    assert porosity["generated_mean"] > porosity["real_mean"]  # bigger blobs, more pore
    assert porosity["kl"] > 0 and porosity["wasserstein"] > 0
    assert not any(n.startswith("permeability") for n in report["notes"])  # left out on request


def test_kde_kl_matches_the_analytic_kl_of_two_gaussians():
    rng = np.random.default_rng(4)
    a, b = rng.normal(0, 1, 3000), rng.normal(1, 1, 3000)
    # KL(N(0,1) || N(1,1)) = (mu1 - mu2)^2 / 2 = 0.5 nats; the kernels widen both a little.
    assert kde_kl(a, b) == pytest.approx(0.5, abs=0.08)
    assert kde_kl(a, a) == pytest.approx(0.0, abs=1e-12)


def test_kde_kl_tells_same_rock_from_another_at_twenty_samples_where_bins_cannot():
    rng = np.random.default_rng(5)
    same_a, same_b = rng.normal(0.2, 0.01, 20), rng.normal(0.2, 0.01, 20)
    other = rng.normal(0.23, 0.01, 20)
    # 50 bins: mostly empty, the same rock scores within a factor 2 of a rock 3 sd away.
    assert kl_divergence(same_a, same_b, 50) > 0.5 * kl_divergence(same_a, other, 50) > 3
    same, different = kde_kl(same_a, same_b), kde_kl(same_a, other)
    assert same < 0.5 and different > 8 * same  # analytic KL of a 3 sd shift: 4.5
    floor = split_floor(kde_kl, same_a, seed=1)
    assert 0 < floor < 1 and different > 4 * floor
    assert np.isnan(split_floor(kde_kl, same_a[:3]))


def test_samples_of_different_voxel_sizes_get_a_warning(capsys):
    from rocksynth.properties.compare import compare_samples

    rng = np.random.default_rng(6)
    crops = [rng.random((16, 16, 16)) < 0.3 for _ in range(4)]
    compare_samples([(c, 5e-6) for c in crops[:2]], [(c, 1e-5) for c in crops[2:]], with_permeability=False,
                    jobs=1, resamples=2)
    assert "different voxel sizes (5 µm, 10 µm)" in capsys.readouterr().err
    compare_samples([(c, 5e-6) for c in crops[:2]], [(c, 5e-6) for c in crops[2:]], with_permeability=False,
                    jobs=1, resamples=2)
    assert "different voxel sizes" not in capsys.readouterr().err
