"""The real `rocksynth` entry point: info, convert, pipes, global options."""

import json

import numpy as np
import pytest
import tifffile

from rocksynth import __version__
from rocksynth.io import read_image, read_video, read_volume, write_video, write_volume


def test_version_and_help(run_cli):
    code, stdout, _ = run_cli("--version")
    assert code == 0 and stdout.decode().strip() == f"rocksynth {__version__}"
    code, stdout, _ = run_cli("--help")
    assert code == 0 and b"convert" in stdout and b"info" in stdout


def test_unknown_option_is_a_usage_error(run_cli):
    code, _, stderr = run_cli("info", "--no-such-option", "x.tif")
    assert code == 2 and "Traceback" not in stderr


def test_pipe_convert_to_info_json(run_cli, shared_data):
    code, tiff_bytes, stderr = run_cli("convert", shared_data / "berea_400.tif", "-")
    assert code == 0, stderr
    code, stdout, stderr = run_cli("info", "-", "--json", stdin=tiff_bytes)
    assert code == 0, stderr
    report = json.loads(stdout)
    assert report["shape"] == [400, 400, 400]
    assert report["porosity"] == pytest.approx(0.196, abs=0.001)
    assert report["voxel_size_m"] == pytest.approx(5.345e-6)


def test_info_reports_every_kind(run_cli, tmp_path):
    write_volume(tmp_path / "v.tif", np.zeros((3, 4, 5), bool), voxel_size=1e-6)
    write_video(tmp_path / "c.mp4", np.zeros((6, 16, 16, 3), np.uint8))
    code, stdout, stderr = run_cli("info", "--json", tmp_path / "v.tif", tmp_path / "c.mp4")
    assert code == 0, stderr
    volume, video = json.loads(stdout)
    assert volume["kind"] == "volume" and volume["shape"] == [3, 4, 5] and volume["porosity"] == 0.0
    assert video["kind"] == "video" and video["frames"] == 6


def test_convert_extracts_a_slice_as_png(run_cli, tmp_path):
    volume = np.random.default_rng(0).random((10, 12, 14)) > 0.5
    write_volume(tmp_path / "v.tif", volume)
    code, _, stderr = run_cli("convert", tmp_path / "v.tif", tmp_path / "x.png", "--slice", "x=3")
    assert code == 0, stderr
    assert np.array_equal(read_image(tmp_path / "x.png") == 255, volume[:, :, 3])


def test_convert_binarizes_a_16bit_ct_stack(run_cli, tmp_path):
    rng = np.random.default_rng(4)
    truth = rng.random((8, 40, 40)) < 0.3
    gray = np.where(truth, 9000, 30000) + rng.normal(0, 1500, truth.shape)
    tifffile.imwrite(tmp_path / "ct.tif", gray.clip(0, 65535).astype(np.uint16), photometric="minisblack")
    code, _, stderr = run_cli("convert", tmp_path / "ct.tif", tmp_path / "bin.tif", "--binarize", "--voxel-size", "2um")
    assert code == 0, stderr
    assert "Otsu threshold" in stderr and "dark" in stderr  # what was inferred is said
    out = read_volume(tmp_path / "bin.tif")
    assert out.data.dtype == np.uint8 and set(np.unique(out.data)) <= {0, 255}
    assert ((out.data == 255) == truth).mean() > 0.99
    assert out.voxel_size == pytest.approx(2e-6)


def test_convert_mp4_to_frames_and_back(run_cli, tmp_path):
    frames = np.zeros((7, 24, 30, 3), np.uint8)
    for t in range(7):
        frames[t, 5:15, 3 + 3 * t:9 + 3 * t] = (250, 40, 40)
    write_video(tmp_path / "in.mp4", frames, fps=8)
    code, _, stderr = run_cli("convert", tmp_path / "in.mp4", str(tmp_path / "frames") + "/")
    assert code == 0, stderr
    assert len(list((tmp_path / "frames").glob("*.png"))) == 7
    code, _, stderr = run_cli("convert", tmp_path / "frames", tmp_path / "out.mp4", "--fps", "8")
    assert code == 0, stderr
    video = read_video(tmp_path / "out.mp4")
    assert video.frames.shape == frames.shape and np.abs(video.frames.astype(int) - frames).mean() < 6


def test_convert_raw_with_shape(run_cli, tmp_path):
    data = np.arange(2 * 3 * 4, dtype=np.uint16).reshape(2, 3, 4)
    data.tofile(tmp_path / "v.raw")
    code, _, stderr = run_cli("convert", tmp_path / "v.raw", tmp_path / "v.npy", "--shape", "2x3x4", "--dtype", "uint16")
    assert code == 0, stderr
    assert np.array_equal(np.load(tmp_path / "v.npy"), data)
    code, _, stderr = run_cli("convert", tmp_path / "v.npy", tmp_path / "w.raw")
    assert code == 0 and "read it with --shape 2x3x4 --dtype uint16" in stderr, stderr
    code, _, stderr = run_cli("convert", tmp_path / "w.raw", tmp_path / "w.npy", "--shape", "2x3x4", "--dtype", "uint16")
    assert code == 0 and np.array_equal(np.load(tmp_path / "w.npy"), data), stderr


def test_convert_crops_a_circular_field_of_view(run_cli, tmp_path):
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[:120, :120]
    disc = (yy - 60) ** 2 + (xx - 60) ** 2 <= 50 ** 2
    ct = np.where(disc, rng.integers(50, 200, (6, 120, 120)), 0).astype(np.uint8)
    write_volume(tmp_path / "ct.tif", ct)
    code, _, stderr = run_cli("convert", tmp_path / "ct.tif", tmp_path / "crop.tif", "--crop")
    assert code == 0, stderr
    assert "field of view" in stderr
    cropped = read_volume(tmp_path / "crop.tif").data
    assert 60 <= cropped.shape[1] <= 72 and cropped.shape[1] == cropped.shape[2]
    assert (cropped > 0).all()  # nothing from outside the circle


def test_quiet_silences_stderr(run_cli, shared_data, tmp_path):
    code, _, stderr = run_cli("--quiet", "convert", shared_data / "berea_section_400.png", tmp_path / "s.tif")
    assert code == 0 and stderr == ""


def test_stack_conversion_streams_and_matches_whole_volume_segmentation(run_cli, tmp_path):
    from rocksynth.io.segment import binarize
    from rocksynth.io.volumes import TiffStackReader

    rng = np.random.default_rng(6)
    truth = rng.random((70, 30, 30)) < 0.3
    gray = (np.where(truth, 9000, 30000) + rng.normal(0, 1500, truth.shape)).clip(0, 65535).astype(np.uint16)
    tifffile.imwrite(tmp_path / "ct.tif", gray, photometric="minisblack")
    with TiffStackReader.open(tmp_path / "ct.tif") as stack:
        assert stack.shape == gray.shape
        assert np.array_equal(np.concatenate(list(stack.slabs(depth=16))), gray)
    code, _, stderr = run_cli("convert", tmp_path / "ct.tif", tmp_path / "bin.tif", "--threshold", "20000")
    assert code == 0, stderr
    expected = binarize(gray, threshold=20000).mask
    assert np.array_equal(read_volume(tmp_path / "bin.tif").data == 255, expected)


def test_library_log_records_go_to_stderr_not_into_the_output():
    """PoreSpy installs a root log handler printing to stdout; the CLI routes records to stderr."""
    import subprocess
    import sys

    code = ("import logging, porespy; from rocksynth.progress import route_library_logs; "
            "route_library_logs(); logging.getLogger('porespy').warning('a record')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and "porespy: WARNING: a record" in result.stderr


def test_convert_writes_a_slices_voxel_size_into_a_2d_tiff(run_cli, tmp_path):
    volume = (np.random.default_rng(0).random((4, 16, 16)) < 0.3).astype(np.uint8) * 255
    write_volume(tmp_path / "v.tif", volume, 5.345e-6)
    for args in (("--slice", "z=1"), ("--slice", "z=1", "--voxel-size", "2um")):
        code, _, stderr = run_cli("convert", tmp_path / "v.tif", tmp_path / "s.tif", *args)
        assert code == 0, stderr
        slice_ = read_volume(tmp_path / "s.tif", allow_2d=True)
        assert np.array_equal(slice_.data, volume[1])
        assert slice_.voxel_size == pytest.approx(2e-6 if "--voxel-size" in args else 5.345e-6)
        (tmp_path / "s.tif").unlink()


def test_convert_says_how_to_read_back_what_a_format_does_not_hold(run_cli, tmp_path):
    volume = (np.random.default_rng(0).random((4, 16, 16)) < 0.3).astype(np.uint8) * 255
    write_volume(tmp_path / "v.tif", volume, 5.345e-6)
    for target in ("v.npy", "slices/"):
        code, _, stderr = run_cli("convert", tmp_path / "v.tif", f"{tmp_path}/{target}")
        assert code == 0 and "holds no voxel size: give --voxel-size 5.345um" in stderr, stderr
    code, _, stderr = run_cli("convert", tmp_path / "v.npy", tmp_path / "again.npy")  # none known: nothing to say
    assert code == 0 and "voxel size" not in stderr, stderr
    code, _, stderr = run_cli("convert", tmp_path / "v.tif", tmp_path / "v.mp4")
    assert code == 0 and "H.264 blurs binary frames" in stderr, stderr
