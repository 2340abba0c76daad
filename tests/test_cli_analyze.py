"""`rocksynth analyze` end to end: table, --json, --report folder, --only, bad input."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from rocksynth.cli.app import app
from rocksynth.io import write_image, write_volume

runner = CliRunner()


@pytest.fixture(scope="module")
def ball_volume(tmp_path_factory):
    z, y, x = np.ogrid[:40, :40, :40]
    mask = (z - 19.5) ** 2 + (y - 20.2) ** 2 + (x - 19.8) ** 2 <= 12 ** 2
    path = tmp_path_factory.mktemp("vol") / "ball.tif"
    write_volume(path, mask)
    return path, mask


def test_json_has_requested_measures_only(ball_volume):
    path, mask = ball_volume
    result = runner.invoke(app, ["analyze", str(path), "--json", "--only", "porosity,minkowski", "--voxel-size", "2um"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["porosity"]["total"] == pytest.approx(mask.mean())
    assert report["voxel_size_m"] == pytest.approx(2e-6)
    assert "permeability" not in report and "correlation" not in report
    assert report["minkowski"]["euler_26"] == 1


def test_report_folder_has_json_markdown_and_figures(ball_volume, tmp_path):
    path, _ = ball_volume
    out = tmp_path / "report"
    result = runner.invoke(app, ["analyze", str(path), "--report", str(out), "--only", "porosity,correlation,psd,minkowski"])
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in out.iterdir())
    assert names == ["pore_size_distribution.png", "pore_space_3d.png", "report.json", "report.md", "s2.png", "slices.png"]
    report = json.loads((out / "report.json").read_text())
    assert report["correlation"]["s2"][0] == pytest.approx(report["porosity"]["total"])
    assert "| porosity (total) |" in (out / "report.md").read_text()
    assert (out / "pore_space_3d.png").stat().st_size > 10_000  # a real rendering, not an empty frame


def test_2d_image_gets_2d_measures(tmp_path):
    image = np.zeros((60, 60), np.uint8)
    image[10:30, 10:30] = 255
    path = tmp_path / "square.png"
    write_image(path, image)
    result = runner.invoke(app, ["analyze", str(path), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["dimensions"] == 2 and report["minkowski"]["euler"] == 1
    assert "permeability" not in report
    bad = runner.invoke(app, ["analyze", str(path), "--only", "permeability"])
    assert bad.exit_code != 0


def test_unknown_measure_and_existing_report_folder_are_refused(ball_volume, tmp_path):
    path, _ = ball_volume
    result = runner.invoke(app, ["analyze", str(path), "--only", "colour"])
    assert result.exit_code != 0 and "unknown measure" in str(result.exception)
    result = runner.invoke(app, ["analyze", str(path), "--only", " , "])
    assert result.exit_code != 0 and "names no measure" in str(result.exception)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep")
    result = runner.invoke(app, ["analyze", str(path), "--only", "porosity", "--report", str(tmp_path / "full")])
    assert result.exit_code != 0
    assert (tmp_path / "full" / "x").read_text() == "keep"
