"""`rocksynth clean`: tiling equals the whole image, 16-bit / RGBA / folders / pipes work, bad input fails cleanly."""

import numpy as np
import pytest
import tifffile
from PIL import Image

from rocksynth.pipelines.clean import CONTEXT, DEFAULT_OVERLAP, _blend_weights, clean_image, ink_probability, load_cleaner
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
    for tile, overlap in ((128, 64), (448, DEFAULT_OVERLAP)):
        step = tile - overlap
        total = np.zeros(step * 3 + tile)
        for i in range(4):
            total[i * step:i * step + tile] += _blend_weights(tile, overlap, i > 0, i < 3)
        assert np.allclose(total, 1.0)
    # The default overlap ignores at least CONTEXT pixels of every tile edge.
    weights = _blend_weights(448, DEFAULT_OVERLAP, True, True)
    assert not weights[:CONTEXT].any() and not weights[-CONTEXT:].any()


def test_context_covers_the_unets_receptive_field(model):
    """An output pixel's gradient reaches input pixels at most CONTEXT away, at every grid phase."""
    import torch

    x = torch.rand(1, 1, 320, 320, requires_grad=True)
    y = model(x)
    reach = 0
    for c in range(160, 176):  # one pixel of each phase of the 16-pixel grid
        x.grad = None
        y[0, 0, c, c].backward(retain_graph=True)
        rows = (x.grad[0, 0].abs() > 0).any(1).nonzero()[:, 0]
        reach = max(reach, c - int(rows.min()), int(rows.max()) - c)
    assert 60 < reach <= CONTEXT


def test_tiled_equals_untiled_away_from_borders(model):
    # 672 x 896 needs no padding either way (tile 448, overlap 224: step 224), so tiling is exact everywhere.
    scan, _ = procedural_pair(BENCHMARK_SEEDS + 10_001, 672, 896)
    whole = ink_probability(scan, model, tile=None)
    tiled = ink_probability(scan, model, tile=448, overlap=DEFAULT_OVERLAP)
    assert whole.shape == tiled.shape == scan.shape
    assert np.abs(whole - tiled).max() < 1e-4
    assert np.array_equal(whole > 0.5, tiled > 0.5)
    # Any size: the border rows and columns see other reflection padding, the interior does not change.
    scan = scan[:601, :817]
    whole = ink_probability(scan, model, tile=None)
    tiled = ink_probability(scan, model, tile=448, overlap=DEFAULT_OVERLAP)
    inner = (slice(0, -CONTEXT - 16), slice(0, -CONTEXT - 16))
    assert np.abs(whole - tiled)[inner].max() < 1e-4
    # A small overlap is not exact but still blended: no seam, the ink almost never moves (how
    # often depends on the weights: 0.9986 of the pixels agree for the 29000-iteration model, 0.9985
    # with the default 8-view test-time augmentation).
    quick = ink_probability(scan, model, tile=128, overlap=64)
    assert np.mean((whole > 0.5)[inner] == (quick > 0.5)[inner]) > 0.998
    binary = clean_image(scan, model, tile=448, overlap=DEFAULT_OVERLAP)
    assert binary.dtype == np.uint8 and np.array_equal(binary == 0, tiled > 0.5)


def test_dihedral_views_invert_and_average():
    import torch

    from rocksynth.pipelines.clean import TTA_CHOICES, _tile_probability, _view

    tile = torch.arange(2 * 3, dtype=torch.float32).reshape(1, 1, 2, 3)
    views = [_view(tile, i) for i in range(8)]
    assert len({tuple(v.flatten().tolist()) + tuple(v.shape) for v in views}) == 8  # eight different views
    for i, v in enumerate(views):
        assert torch.equal(_view(v, i, inverse=True), tile)
    # A "model" that marks the first column of a tile: averaged over the flips of x, half of it
    # lands on the last column.
    first_column = lambda t: torch.where(torch.arange(t.shape[-1]) == 0, 20.0, -20.0).expand(t.shape)
    p = _tile_probability(first_column, tile, 4)
    assert np.allclose(p[:, 0], 0.5, atol=1e-6) and np.allclose(p[:, -1], 0.5, atol=1e-6) and max(TTA_CHOICES) == 8


def test_tta_averages_the_flipped_scans(model):
    scan, _ = procedural_pair(BENCHMARK_SEEDS + 10_002, 192, 256)
    single = ink_probability(scan, model, tile=None, tta=1)
    flip_y = ink_probability(scan[::-1].copy(), model, tile=None, tta=1)[::-1]
    flip_x = ink_probability(scan[:, ::-1].copy(), model, tile=None, tta=1)[:, ::-1]
    flip_both = ink_probability(scan[::-1, ::-1].copy(), model, tile=None, tta=1)[::-1, ::-1]
    four = ink_probability(scan, model, tile=None, tta=4)
    assert np.abs(four - (single + flip_y + flip_x + flip_both) / 4).max() < 1e-5
    assert np.abs(four - single).max() > 0.05  # the views do disagree somewhere


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
    for option in (["--threshold", "1.5"], ["--tile", "100"], ["--model", "nonexistent"], ["--tta", "3"]):
        code, _, err = run_cli_in_process("clean", tmp_path / "scan.png", "--out", tmp_path / "o.png", *option)
        assert code == 2, (option, err)
    assert not (tmp_path / "o.png").exists()


def test_train_clean_widths_option(run_cli_in_process, tmp_path):
    for widths in ("1,2", "8,16,x,32,64", "8,16,0,32,64"):
        code, _, err = run_cli_in_process("train", "clean", "--out", tmp_path / "w.pt", "--iters", "1",
                                          "--widths", widths)
        assert code == 2 and "--widths" in err, (widths, err)
    assert not (tmp_path / "w.pt").exists()
    code, _, err = run_cli_in_process("train", "clean", "--out", tmp_path / "w.pt", "--iters", "1", "--batch", "1",
                                      "--crop", "32", "--widths", "4,4,8,8,8")
    assert code == 0, err
    import torch
    assert torch.load(tmp_path / "w.pt", weights_only=True)["config"]["widths"] == [4, 4, 8, 8, 8]


def test_cli_defaults_are_the_pipelines():
    """The CLI spells its tile defaults as literals (importing the pipeline would slow every
    `rocksynth` call); they must stay the pipeline's, whose overlap makes tiling exact."""
    import inspect

    from rocksynth.cli.clean import clean
    from rocksynth.pipelines.clean import DEFAULT_TILE, DEFAULT_TTA

    options = inspect.signature(clean).parameters
    assert options["tile"].default.default == DEFAULT_TILE
    assert options["tta"].default.default == DEFAULT_TTA
    assert options["overlap"].default.default == DEFAULT_OVERLAP
