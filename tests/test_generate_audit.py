"""`reconstruct` and `synthesize --like` input handling from a user audit: a circular field of
view (`--crop`, and what its outside is segmented as), segmentation options and the voxel size of
`--like`, ImageJ calibration and the voxel size of a slice (stdin too, printed, checked against
`--voxel-size`), and noise drawn slab by slab (memory bounded, same output)."""

import re

import numpy as np
import pytest
import tifffile
import torch
from conftest import blobs

from rocksynth.io import read_volume, write_image
from rocksynth.io.binary import load_binary_volume
from rocksynth.models import slice2vol
from rocksynth.models.slice2vol import GRID, NoiseSlabs, Slice2Vol
from rocksynth.pipelines.reconstruct import generate_slabs

BEREA_UM = 5.345


@pytest.fixture(scope="module")
def berea_slice(shared_data) -> np.ndarray:
    """A 128² Berea slice, bool (True = pore)."""
    return tifffile.imread(shared_data / "berea_400.tif")[0, :128, :128] > 0


def _gray_disc(mask: np.ndarray, outside: int, radius: int = 60) -> np.ndarray:
    """A micro-CT-like gray image (pores dark, 60; grains 180; noise) with `outside` beyond a disc."""
    gray = np.where(mask, 60, 180) + np.random.default_rng(0).normal(0, 8, mask.shape)
    yy, xx = np.mgrid[:mask.shape[-2], :mask.shape[-1]]
    gray[..., (yy - mask.shape[-2] / 2) ** 2 + (xx - mask.shape[-1] / 2) ** 2 > radius ** 2] = outside
    return np.clip(gray, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# 1. A circular field of view

def test_reconstruct_crops_a_field_of_view_and_says_what_its_outside_became(tmp_path, run_cli_in_process,
                                                                            berea_slice):
    write_image(tmp_path / "fov.png", _gray_disc(berea_slice, outside=0))
    code, _, err = run_cli_in_process("reconstruct", tmp_path / "fov.png", "--out", tmp_path / "a.tif", "--depth", 4)
    assert code == 0, err
    # The black outside is dark, so pore: not "material" as the warning used to say.
    assert "the area outside it is segmented as pore (" in err and "% of the image); use --crop" in err
    code, _, err = run_cli_in_process("reconstruct", tmp_path / "fov.png", "--out", tmp_path / "b.tif", "--depth", 4,
                                      "--crop")
    assert code == 0, err
    assert "cropped to rows" in err and "area outside" not in err
    volume = read_volume(tmp_path / "b.tif").data
    assert volume.shape[1] == volume.shape[2] < 128 and abs((volume > 0).mean() - berea_slice.mean()) < 0.08


def test_the_outside_of_a_field_of_view_is_reported_as_the_phase_it_got(tmp_path, capsys, berea_slice):
    for name, outside in (("black.tif", 0), ("white.tif", 255)):
        tifffile.imwrite(tmp_path / name, np.stack([_gray_disc(berea_slice, outside)] * 4), photometric="minisblack")
    mask, _ = load_binary_volume(tmp_path / "black.tif")
    found = re.search(r"segmented as pore \((\d+) % of the image\); use --crop", capsys.readouterr().err)
    assert found and abs(int(found.group(1)) - 100 * (1 - np.pi * 60 ** 2 / 128 ** 2)) <= 2  # about 31 %
    assert mask.mean() > berea_slice.mean() + 0.2  # what the message explains
    load_binary_volume(tmp_path / "white.tif", crop_flag=None)  # a command whose --crop is something else
    err = capsys.readouterr().err.replace("\n", " ")
    assert "segmented as solid (" in err and "first with rocksynth convert --crop" in err
    # The out-of-core path of analyze says the same.
    from rocksynth.io.lazy import load_binary_lazy

    load_binary_lazy(tmp_path / "black.tif")
    err = capsys.readouterr().err.replace("\n", " ")
    assert f"segmented as pore ({found.group(1)} % of the image); use --crop" in err


# ---------------------------------------------------------------------------------------------
# 2, 3. synthesize --like: segmentation options, --crop and the exemplar's voxel size

@pytest.fixture(scope="module")
def exemplar(shared_data, tmp_path_factory) -> "tuple":
    """A 32 x 64 x 64 Berea exemplar, binary with its voxel size and gray with bright pores."""
    from rocksynth.io.volumes import write_volume

    folder = tmp_path_factory.mktemp("exemplar")
    berea = tifffile.imread(shared_data / "berea_400.tif")[:32, :64, :64] > 0
    write_volume(folder / "berea.tif", berea.astype(np.uint8) * 255, voxel_size=BEREA_UM * 1e-6)
    bright = np.where(berea, 190, 70) + np.random.default_rng(1).normal(0, 6, berea.shape)
    tifffile.imwrite(folder / "bright.tif", np.clip(bright, 0, 255).astype(np.uint8))
    return folder / "berea.tif", folder / "bright.tif"


def test_synthesize_like_segments_its_exemplar_with_threshold_and_pore_value(tmp_path, run_cli_in_process,
                                                                             exemplar):
    _, bright = exemplar
    code, _, err = run_cli_in_process("synthesize", "--like", bright, "--size", 16, "--out", tmp_path / "a.tif",
                                      "--pore-value", "bright")
    assert code == 0, err
    assert "pores above (bright)" in err
    code, _, err = run_cli_in_process("synthesize", "--like", bright, "--size", 16, "--out", tmp_path / "b.tif",
                                      "--threshold", 130, "--pore-value", "bright")
    assert code == 0, err
    assert "given threshold 130, pores above (bright)" in err
    code, _, err = run_cli_in_process("synthesize", "--texture", "berea", "--size", 16, "--out", tmp_path / "c.tif",
                                      "--pore-value", "bright")
    assert code == 2 and "segment a --like exemplar" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "c.tif").exists()


def test_synthesize_like_crops_a_field_of_view(tmp_path, run_cli_in_process, berea_slice):
    tifffile.imwrite(tmp_path / "fov.tif", np.stack([_gray_disc(berea_slice, outside=0)] * 16))
    code, _, err = run_cli_in_process("synthesize", "--like", tmp_path / "fov.tif", "--size", 16,
                                      "--out", tmp_path / "a.tif")
    assert code == 0, err
    assert "segmented as pore (" in err and "use --crop" in err
    code, _, err = run_cli_in_process("synthesize", "--like", tmp_path / "fov.tif", "--size", 16,
                                      "--out", tmp_path / "b.tif", "--crop")
    assert code == 0, err
    assert "cropped to rows" in err and "area outside" not in err


def test_synthesize_like_keeps_the_exemplars_voxel_size(tmp_path, run_cli_in_process, exemplar):
    berea, _ = exemplar
    code, _, err = run_cli_in_process("synthesize", "--like", berea, "--size", 16, "--out", tmp_path / "a.tif")
    assert code == 0, err
    assert read_volume(tmp_path / "a.tif").voxel_size == pytest.approx(BEREA_UM * 1e-6)
    assert "voxel size 5.345 µm (from " in err and "voxel 5.345 µm" in err
    code, _, err = run_cli_in_process("synthesize", "--like", berea, "--size", 16, "--out", tmp_path / "b.tif",
                                      "--voxel-size", "4um")
    assert code == 0, err
    assert read_volume(tmp_path / "b.tif").voxel_size == pytest.approx(4e-6)
    assert "--voxel-size 4 µm overrides the file's 5.345 µm" in err


# ---------------------------------------------------------------------------------------------
# 4. Voxel sizes of slices: ImageJ calibration, stdin, printed, checked against --voxel-size

def test_imagej_calibration_of_a_slice_and_of_stacks(tmp_path, berea_slice):
    image = berea_slice.astype(np.uint8) * 255
    per_mm = 1 / (BEREA_UM * 1e-3)
    tifffile.imwrite(tmp_path / "slice.tif", image, imagej=True, resolution=(per_mm, per_mm), metadata={"unit": "mm"})
    stack = np.stack([image] * 3)
    tifffile.imwrite(tmp_path / "spacing.tif", stack, imagej=True, resolution=(per_mm, per_mm),
                     metadata={"unit": "mm", "spacing": BEREA_UM * 1e-3})
    tifffile.imwrite(tmp_path / "stack.tif", stack, imagej=True, resolution=(1 / BEREA_UM, 1 / BEREA_UM),
                     metadata={"unit": "micron"})
    for name in ("slice.tif", "spacing.tif", "stack.tif"):
        volume = read_volume(tmp_path / name, allow_2d=True)
        assert volume.voxel_size == pytest.approx(BEREA_UM * 1e-6), name
        assert volume.voxel_size_origin.startswith("ImageJ metadata")
    # Resolution unit NONE outside ImageJ is still no physical size.
    tifffile.imwrite(tmp_path / "none.tif", image, resolution=(per_mm, per_mm), resolutionunit="NONE")
    assert read_volume(tmp_path / "none.tif", allow_2d=True).voxel_size is None


def test_reconstruct_prints_and_checks_the_slices_voxel_size(tmp_path, run_cli_in_process, berea_slice):
    image = berea_slice.astype(np.uint8) * 255
    per_mm = 1 / (BEREA_UM * 1e-3)
    tifffile.imwrite(tmp_path / "ij.tif", image, imagej=True, resolution=(per_mm, per_mm), metadata={"unit": "mm"})
    code, _, err = run_cli_in_process("reconstruct", tmp_path / "ij.tif", "--out", tmp_path / "a.tif", "--depth", 4)
    assert code == 0, err
    assert read_volume(tmp_path / "a.tif").voxel_size == pytest.approx(BEREA_UM * 1e-6)
    assert "voxel size 5.345 µm (from ImageJ metadata" in err
    # An image editor's 72 dpi: printed with its source, and --voxel-size says it overrides it.
    tifffile.imwrite(tmp_path / "dpi.tif", image, resolution=(72, 72), resolutionunit="INCH")
    code, _, err = run_cli_in_process("reconstruct", tmp_path / "dpi.tif", "--out", tmp_path / "b.tif", "--depth", 4)
    assert code == 0 and "voxel size 352.8 µm (from TIFF resolution tags)" in err
    code, _, err = run_cli_in_process("reconstruct", tmp_path / "dpi.tif", "--out", tmp_path / "c.tif", "--depth", 4,
                                      "--voxel-size", "5um")
    assert code == 0 and "--voxel-size 5 µm overrides the file's 352.8 µm" in err
    assert read_volume(tmp_path / "c.tif").voxel_size == pytest.approx(5e-6)


def test_reconstruct_keeps_the_voxel_size_of_a_tiff_on_stdin(tmp_path, run_cli, berea_slice):
    from rocksynth.io.volumes import write_volume

    write_volume(tmp_path / "slice.tif", berea_slice[None].astype(np.uint8) * 255, voxel_size=BEREA_UM * 1e-6)
    code, _, err = run_cli("reconstruct", "-", "--out", tmp_path / "out.tif", "--depth", 4,
                           stdin=(tmp_path / "slice.tif").read_bytes())
    assert code == 0, err
    assert "stdin: voxel size 5.345 µm" in err
    assert read_volume(tmp_path / "out.tif").voxel_size == pytest.approx(BEREA_UM * 1e-6)


# ---------------------------------------------------------------------------------------------
# 5. Noise drawn slab by slab

@pytest.mark.parametrize("depth, height, width, step", [(12, 68, 52, 1), (36, 20, 12, 3), (400, 100, 100, 8),
                                                        (4, 4, 4, 1)])
def test_noise_slabs_are_the_noise_sample_noise_draws(depth, height, width, step):
    """Any shape (16 not dividing a channel or a draw, draws under 16 values), slabs narrower than
    the halo: the same numbers, and the generator left where the whole draw leaves it."""
    model = Slice2Vol()
    halo = model.halo_cells()
    generator = torch.Generator().manual_seed(3)
    noise2, noise1 = model.sample_noise(1, depth, height, width, generator=generator)
    after = torch.rand(4, generator=generator)
    generator = torch.Generator().manual_seed(3)
    slabs = NoiseSlabs(model, depth, height, width, generator)
    assert torch.equal(torch.rand(4, generator=generator), after)
    for first in range(0, depth // GRID, step):
        lo, hi = first, min(depth // GRID, first + step) + 2 * halo
        part2, part1 = slabs.take(lo, hi)
        assert torch.equal(part2, noise2[:, :, lo:hi]) and torch.equal(part1, noise1[:, :, 2 * lo:2 * hi])


def test_generate_slabs_draws_noise_slab_by_slab_with_the_same_output(monkeypatch):
    """Memory does not grow with the depth: no draw holds the whole depth's noise (which at
    --depth 100000000 asked for 819 GB); the volume is still the model's forward of that noise."""
    torch.manual_seed(0)
    model = Slice2Vol(enc_channels=(2, 4, 8), channels=(2, 4, 8), noise_channels=(2, 1), quarter_blocks=1,
                      slice_porosity=False).eval()
    mask = blobs((1, 16, 16), seed=1, porosity=0.3)[0]
    depth = 2048
    slice_t = torch.from_numpy(mask.astype(np.float32))[None, None]
    with torch.no_grad():
        expected = model(slice_t, depth=depth, generator=torch.Generator().manual_seed(3), logits=True)[0, 0] > 0
    expected[depth // 2] = torch.from_numpy(mask)
    whole = depth // 2 * 8 * 8  # values of the larger draw, noise1: 1 channel, depth / 2, (16 / 2)²
    sizes, randn = [], torch.randn
    monkeypatch.setattr(slice2vol, "_SKIP", 1024)  # advance in small draws too

    def recording(*args, **kwargs):
        out = randn(*args, **kwargs)
        sizes.append(out.numel())
        return out

    monkeypatch.setattr(torch, "randn", recording)
    volume = np.empty((depth, 16, 16), bool)
    for start, block in generate_slabs(model, mask, depth, seed=3, slab=16):
        if start != "agreement":
            volume[start:start + len(block)] = block
    assert max(sizes) < whole / 8
    assert np.array_equal(volume, expected.numpy())
