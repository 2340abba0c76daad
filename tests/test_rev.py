"""REV analysis (`analyze --rev`): growing centred cubes and grids of disjoint cubes."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from rocksynth.cli.app import app
from rocksynth.errors import BadInputError
from rocksynth.io import write_image, write_volume
from rocksynth.properties import rev

runner = CliRunner()


@pytest.fixture(scope="module")
def noise():
    """Uncorrelated pores of probability 0.3: a cube of side L has porosity sd sqrt(p (1 - p) / L³)."""
    return np.random.default_rng(1).random((96, 96, 96)) < 0.3


@pytest.fixture(scope="module")
def noise_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("rev") / "noise40.tif"
    write_volume(path, np.random.default_rng(2).random((40, 40, 40)) < 0.4)
    return path


def test_sizes_follow_the_stated_rule():
    assert rev.rev_sizes((400, 400, 400)) == [32, 48, 64, 96, 136, 192, 280, 400]
    assert rev.rev_sizes((40, 500, 500)) == [32, 40]  # the smallest side bounds them
    with pytest.raises(BadInputError, match="at least 32 voxels"):
        rev.rev_sizes((20, 64, 64))


def test_grid_cubes_are_disjoint_and_capped():
    cubes, total = rev.grid_cubes((100, 100, 100), 10, max_cubes=64, seed=0)
    assert total == 1000 and len(cubes) == 64
    starts = {tuple(s.start for s in cube) for cube in cubes}
    assert len(starts) == 64 and all(s % 10 == 0 for start in starts for s in start)
    assert rev.grid_cubes((100, 100, 100), 10, seed=0)[0] == cubes  # seeded
    few, total = rev.grid_cubes((70, 40, 40), 32)
    assert total == 2 and few == [(slice(3, 35), slice(4, 36), slice(4, 36)),
                                  (slice(35, 67), slice(4, 36), slice(4, 36))]  # grid centred


def test_grid_mean_is_the_porosity_and_sd_shrinks_as_for_independent_voxels(noise):
    result = rev.rev_analysis(noise, sizes=[8, 16, 32])
    p = result["properties"]["porosity"]
    phi = noise.mean()
    assert p["n"] == [64, 64, 27] and result["grid_cubes_total"] == [1728, 216, 27]
    for size, mean, sd, n in zip(result["sizes_voxels"], p["mean"], p["sd"], p["n"]):
        assert abs(mean - phi) < 4 * sd / np.sqrt(n)
        expected = np.sqrt(phi * (1 - phi) / size ** 3)
        assert sd == pytest.approx(expected, rel=0.35)  # sd ~ L^(-3/2) for uncorrelated voxels
    assert p["sd"][0] > p["sd"][1] > p["sd"][2]
    assert result["rev_size_voxels"]["porosity"] == 16  # relative sd 0.022 < 5 %, 0.069 at L = 8
    assert result["properties"]["porosity"]["relative_sd"][0] > 0.05


def test_half_pore_half_solid_along_z():
    """Centred cubes straddle the flat interface: porosity 1/2 at every L, S_V proportional to
    1 / (L - 1) (an (L - 1)² interface in an (L - 1)³ window), Euler density 0 and no correlation
    length; the grid cubes are all pore or all solid, so their sd does not shrink: no REV."""
    mask = np.zeros((64, 64, 64), bool)
    mask[:32] = True
    result = rev.rev_analysis(mask)
    sizes = result["sizes_voxels"]
    assert sizes == [32, 40, 48, 56, 64]
    props = result["properties"]
    assert props["porosity"]["growing"] == [0.5] * len(sizes)
    scaled = [s_v * (size - 1) for size, s_v in zip(sizes, props["surface_density"]["growing"])]
    assert scaled == pytest.approx([scaled[0]] * len(sizes), rel=1e-9) and scaled[0] == pytest.approx(1, abs=0.1)
    assert props["euler_density"]["growing"] == [0.0] * len(sizes)
    assert props["correlation_length"]["growing"] == [None] * len(sizes)
    assert props["porosity"]["mean"][0] == 0.5 and props["porosity"]["n"][0] == 8
    assert props["porosity"]["relative_sd"][0] > 1  # sd of four 0s and four 1s
    assert props["surface_density"]["mean"][0] == 0  # no grid cube holds the interface
    assert result["rev_size_voxels"]["porosity"] is None


def test_lazy_input_and_lazy_cubes_give_the_numpy_result(noise, monkeypatch):
    from rocksynth.properties.chunked import as_dask_mask

    expected = rev.rev_analysis(noise[:64, :64, :64], sizes=[16, 48])
    monkeypatch.setattr(rev, "IN_MEMORY_VOXELS", 20 ** 3)  # the 48-cubes are measured chunk by chunk
    lazy = rev.rev_analysis(as_dask_mask(noise[:64, :64, :64], 24), sizes=[16, 48])
    for name, table in expected["properties"].items():
        for key in ("growing", "mean", "sd", "n"):
            got, want = lazy["properties"][name][key], table[key]
            assert [v is None for v in got] == [v is None for v in want], (name, key)
            assert [v for v in got if v is not None] == pytest.approx([v for v in want if v is not None], rel=1e-9)


def test_2d_image_gets_squares_and_perimeter_density():
    image = np.random.default_rng(3).random((80, 96)) < 0.5
    result = rev.rev_analysis(image)
    assert result["sizes_voxels"][0] == 32 and result["sizes_voxels"][-1] == 80
    assert set(result["properties"]) == {"porosity", "perimeter_density", "euler_density", "correlation_length"}
    assert result["properties"]["euler_density"]["unit"] == "voxel^-2"


def test_cli_rev_json_has_the_keys(noise_file):
    result = runner.invoke(app, ["analyze", str(noise_file), "--only", "porosity", "--rev", "--json",
                                 "--voxel-size", "2um", "--rev-tolerance", "0.1"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    r = report["rev"]
    assert r["sizes_voxels"] == [32, 40] and r["sizes_m"] == pytest.approx([64e-6, 80e-6])
    assert set(r["properties"]) == {"porosity", "surface_density", "euler_density", "correlation_length"}
    assert set(r["properties"]["porosity"]) >= {"growing", "mean", "sd", "relative_sd", "n", "unit"}
    assert r["properties"]["surface_density"]["unit"] == "m^-1" and r["tolerance"] == 0.1
    assert r["properties"]["porosity"]["growing"][-1] == pytest.approx(report["porosity"]["total"])  # whole volume
    assert "rev" in report["timings"]


def test_cli_rev_table_and_report_figure(noise_file, tmp_path):
    table = runner.invoke(app, ["analyze", str(noise_file), "--only", "porosity", "--rev"])
    assert table.exit_code == 0, table.output
    assert "REV" in table.stdout and "porosity: relative sd < 5 %" in table.stdout
    out = tmp_path / "report"
    result = runner.invoke(app, ["analyze", str(noise_file), "--only", "porosity", "--rev", "--report", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "rev.png").stat().st_size > 10_000
    assert "![rev.png](rev.png)" in (out / "report.md").read_text()
    assert "rev" in json.loads((out / "report.json").read_text())


def test_cli_rev_refuses_a_small_volume_before_any_work(tmp_path, run_cli_in_process):
    path = tmp_path / "small.tif"
    write_volume(path, np.ones((20, 40, 40), bool))
    out = tmp_path / "report"
    code, stdout, stderr = run_cli_in_process("analyze", path, "--rev", "--report", out)
    assert code == 2 and "at least 32 voxels" in stderr and not stdout
    assert not out.exists()
    code, _, stderr = run_cli_in_process("analyze", path, "--rev", "--rev-tolerance", "0")
    assert code == 2 and "--rev-tolerance" in stderr


def test_cli_rev_on_a_2d_image(tmp_path):
    path = tmp_path / "noise.png"
    write_image(path, ((np.random.default_rng(4).random((64, 64)) < 0.5) * 255).astype(np.uint8))
    result = runner.invoke(app, ["analyze", str(path), "--only", "porosity", "--rev", "--json"])
    assert result.exit_code == 0, result.output
    assert "perimeter_density" in json.loads(result.stdout)["rev"]["properties"]
