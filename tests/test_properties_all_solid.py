"""Single-phase samples are measured, not refused: all solid (e.g. a failed generator's output) has
porosity 0 and K = 0; all pore has porosity 1 and no pore sizes or network (no walls)."""

import json

import numpy as np

from rocksynth.io import write_volume
from rocksynth.properties.compare import sample_properties
from rocksynth.properties.report import analyze


def test_analyze_reports_zero_porosity_and_permeability():
    report = analyze(np.zeros((24, 24, 24), bool), voxel_size=5e-6, jobs=1)
    assert report["porosity"]["total"] == 0.0
    assert {axis: r["k_md"] for axis, r in report["permeability"].items()} == {"x": 0.0, "y": 0.0, "z": 0.0}
    assert "psd" not in report and "network" not in report
    assert any("no pore voxels" in note for note in report["notes"])


def test_compare_measures_an_all_solid_crop_as_impermeable():
    values = sample_properties(np.zeros((16, 16, 16), bool), 5e-6, with_permeability=True)
    assert values["porosity"] == 0.0 and values["permeability"] == 0.0


def test_cli_analyze_all_solid_exits_0(run_cli, tmp_path):
    write_volume(tmp_path / "solid.tif", np.zeros((20, 20, 20), bool))
    code, stdout, stderr = run_cli("-q", "analyze", tmp_path / "solid.tif", "--json")
    assert code == 0, stderr
    assert json.loads(stdout)["porosity"]["total"] == 0.0


def test_analyze_an_all_pore_volume_reports_the_image_measures_and_no_network():
    report = analyze(np.ones((24, 24, 24), bool), voxel_size=5e-6, jobs=1)
    assert report["porosity"]["total"] == 1.0 and report["minkowski"]["surface_density"] == 0
    assert "psd" not in report and "network" not in report and "permeability" not in report
    assert any("no solid voxels" in note for note in report["notes"])


def test_cli_analyze_all_pore_exits_0(run_cli, tmp_path):
    write_volume(tmp_path / "pore.tif", np.ones((20, 20, 20), bool))
    code, stdout, stderr = run_cli("-q", "analyze", tmp_path / "pore.tif", "--json")
    assert code == 0, stderr
    assert json.loads(stdout)["porosity"]["total"] == 1.0
