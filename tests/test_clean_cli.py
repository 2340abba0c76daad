"""`rocksynth clean`: tiling equals the whole image, 16-bit / RGBA / folders / pipes work, bad input fails cleanly."""

import numpy as np
import pytest
import tifffile
from PIL import Image

from rocksynth.pipelines.clean import _blend_weights, clean_image, ink_probability, load_cleaner
from rocksynth.training.clean import BENCHMARK_SEEDS, procedural_pair


@pytest.fixture(scope="module")
def model():
    return load_cleaner("drawings")


@pytest.fixture(scope="module")
def scan_rgb():
    from rocksynth.data.degrade import degraded_pair
    from rocksynth.data.drawings import render_drawing

    rng = np.random.default_rng(BENCHMARK_SEEDS + 10_000)
    scan, target = degraded_pair(rng, render_drawing(rng, 150, 190))
    return np.dstack([scan] * 3) if scan.ndim == 2 else scan


def test_blend_weights_partition_unity():
    tile, overlap, step = 128, 64, 64
    total = np.zeros(step * 3 + tile)
    for i in range(4):
        total[i * step:i * step + tile] += _blend_weights(tile, overlap, i > 0, i < 3)
    assert np.allclose(total, 1.0)


def test_tiled_equals_untiled_away_from_borders(model):
    # 320 x 448 needs no padding either way, so any difference comes from the tiling itself.
    scan, _ = procedural_pair(BENCHMARK_SEEDS + 10_001, 320, 448)
    whole = ink_probability(scan, model, tile=None)
    tiled = ink_probability(scan, model, tile=128, overlap=64)
    assert whole.shape == tiled.shape == scan.shape
    # The U-Net's receptive field is wider than a tile's ignored margin, so probabilities at seams
    # move a little (measured: max 0.07, 0.04 % of pixels by more than 0.01), the ink almost never.
    difference = np.abs(whole - tiled)
    assert difference.max() < 0.15 and np.mean(difference > 0.01) < 2e-3
    assert np.mean((whole > 0.5) == (tiled > 0.5)) > 0.9999
    # Any size: the border rows and columns see other reflection padding, the interior does not change.
    scan = scan[:301, :407]
    whole = ink_probability(scan, model, tile=None)
    tiled = ink_probability(scan, model, tile=128, overlap=64)
    inner = (slice(64, -96), slice(64, -96))
    difference = np.abs(whole - tiled)[inner]
    assert difference.max() < 0.15 and np.mean(difference > 0.01) < 2e-3
    assert np.mean((whole > 0.5)[inner] == (tiled > 0.5)[inner]) > 0.9999
    binary = clean_image(scan, model, tile=128, overlap=64)
    assert binary.dtype == np.uint8 and np.array_equal(binary == 0, tiled > 0.5)


def test_clean_16bit_tiff_and_rgba_png(run_cli_in_process, tmp_path, scan_rgb):
    gray16 = (scan_rgb.astype(np.float32) @ [0.299, 0.587, 0.114] * 257).astype(np.uint16)
    tifffile.imwrite(tmp_path / "scan16.tif", gray16)
    rgba = np.dstack([scan_rgb, np.full(scan_rgb.shape[:2], 255, np.uint8)])
    Image.fromarray(rgba).save(tmp_path / "scan_rgba.png")
    Image.fromarray(scan_rgb).save(tmp_path / "scan.png")
    outputs = {}
    for name in ("scan16.tif", "scan_rgba.png", "scan.png"):
        out = tmp_path / f"clean_{name}.png"
        code, _, err = run_cli_in_process("clean", tmp_path / name, "--out", out)
        assert code == 0, err
        outputs[name] = np.asarray(Image.open(out))
        assert outputs[name].shape == scan_rgb.shape[:2] and set(np.unique(outputs[name])) <= {0, 255}
        assert 0.005 < np.mean(outputs[name] == 0) < 0.6
    # The same drawing as 8-bit RGB, RGBA or 16-bit gray gives (nearly) the same cleaning.
    assert np.mean(outputs["scan16.tif"] == outputs["scan.png"]) > 0.995
    assert np.array_equal(outputs["scan_rgba.png"], outputs["scan.png"])
    code, _, err = run_cli_in_process("clean", tmp_path / "scan.png", "--out", tmp_path / "soft.png", "--soft")
    soft = np.asarray(Image.open(tmp_path / "soft.png"))
    assert code == 0 and len(np.unique(soft)) > 2


def test_clean_folder_and_json(run_cli_in_process, tmp_path, scan_rgb):
    import json

    folder = tmp_path / "scans"
    folder.mkdir()
    Image.fromarray(scan_rgb).save(folder / "a.png")
    Image.fromarray(scan_rgb[:100, :120]).save(folder / "b.jpg")
    code, out, err = run_cli_in_process("clean", folder, "--out", tmp_path / "cleaned", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["inputs"] == 2
    assert sorted(p.name for p in (tmp_path / "cleaned").iterdir()) == ["a.png", "b.png"]


@pytest.mark.parametrize("content", [b"", b"this is not an image\n", "corrupt"])
def test_bad_input_exits_2_without_output(run_cli_in_process, tmp_path, scan_rgb, content):
    path = tmp_path / "bad.png"
    if content == "corrupt":
        Image.fromarray(scan_rgb).save(tmp_path / "good.png")
        content = (tmp_path / "good.png").read_bytes()[:200]
    path.write_bytes(content)
    out = tmp_path / "out.png"
    code, stdout, err = run_cli_in_process("clean", path, "--out", out)
    assert code == 2
    assert err.strip().startswith("error:") and len(err.strip().splitlines()) == 1
    assert not out.exists() and stdout == b""
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".rocksynth")] == []


def test_bad_options_exit_2(run_cli_in_process, tmp_path, scan_rgb):
    Image.fromarray(scan_rgb).save(tmp_path / "scan.png")
    for option in (["--threshold", "1.5"], ["--tile", "100"], ["--model", "nonexistent"]):
        code, _, err = run_cli_in_process("clean", tmp_path / "scan.png", "--out", tmp_path / "o.png", *option)
        assert code == 2, (option, err)
    assert not (tmp_path / "o.png").exists()
