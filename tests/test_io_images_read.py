"""What image and TIFF readers return: alpha, photometric interpretation, EXIF orientation, codecs,
and `info` describing images as analyze segments them."""

import json

import numpy as np
import pytest
import tifffile
from PIL import Image

from rocksynth.errors import BadInputError
from rocksynth.io import open_lazy, read_image, read_volume
from rocksynth.io.describe import describe_file
from rocksynth.io.volumes import TiffStackReader


@pytest.fixture(scope="module")
def drawing() -> np.ndarray:
    """A 40x60 bool drawing (True = ink): a frame and a diagonal."""
    ink = np.zeros((40, 60), bool)
    ink[5, 5:55] = ink[34, 5:55] = ink[5:35, 5] = ink[5:35, 54] = True
    ink[np.arange(5, 35), np.arange(10, 40)] = True
    return ink


# --- gray + alpha -------------------------------------------------------------------------------

def _line_la(path, drawing):
    """An LA PNG whose ink is drawn only through alpha (L = 0 everywhere)."""
    la = np.zeros(drawing.shape + (2,), np.uint8)
    la[..., 1] = np.where(drawing, 255, 0)
    Image.fromarray(la).save(path)  # 2 channels: mode LA
    return la


def test_gray_alpha_is_read_as_rgba(tmp_path, drawing):
    la = _line_la(tmp_path / "la.png", drawing)
    image = read_image(tmp_path / "la.png")
    assert image.shape == drawing.shape + (4,)
    assert np.array_equal(image[..., :3], np.repeat(la[..., :1], 3, axis=-1))
    assert np.array_equal(image[..., 3], la[..., 1])


def test_gray_alpha_is_composited_over_white_as_rgba_is(tmp_path, drawing):
    from rocksynth.data.degrade import scan_to_gray

    _line_la(tmp_path / "la.png", drawing)
    rgba = np.zeros(drawing.shape + (4,), np.uint8)
    rgba[..., 3] = np.where(drawing, 255, 0)
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    gray = scan_to_gray(read_image(tmp_path / "la.png"))
    assert np.array_equal(gray, scan_to_gray(read_image(tmp_path / "rgba.png")))
    assert np.array_equal(gray < 0.5, drawing)  # black ink on white paper


def test_a_folder_of_gray_alpha_slices_is_a_gray_volume(tmp_path):
    slices = np.random.default_rng(0).integers(0, 2, (3, 8, 9)).astype(np.uint8) * 255
    (tmp_path / "slices").mkdir()
    for index, gray in enumerate(slices):
        la = Image.fromarray(np.dstack([gray, np.full_like(gray, 255)]))  # 2 channels: mode LA
        la.save(tmp_path / "slices" / f"s{index}.png")
    assert np.array_equal(read_volume(tmp_path / "slices").data, slices)


def test_clean_finds_ink_drawn_only_through_alpha(tmp_path, drawing, run_cli_in_process):
    _line_la(tmp_path / "la.png", drawing)
    code, out, err = run_cli_in_process("clean", tmp_path / "la.png", "--out", tmp_path / "o.png", "--tta", "1",
                                        "--json")
    assert code == 0, err
    assert json.loads(out)["ink_fraction"] > 0.5 * drawing.mean()


# --- MinIsWhite ---------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype, bits", [(np.uint8, None), (np.uint16, 12), (np.uint16, None), (np.int16, None),
                                         (bool, None)])
def test_miniswhite_tiff_reads_with_zero_black(tmp_path, dtype, bits):
    rng = np.random.default_rng(1)
    if dtype is bool:
        black = rng.random((20, 30)) < 0.3  # as stored in MinIsWhite: True = black
        expected = ~black
    else:
        top = 2 ** (bits or np.iinfo(dtype).bits) - 1 if np.dtype(dtype).kind == "u" else -1
        low = np.iinfo(dtype).min if top == -1 else 0
        black = rng.integers(low, top if top > 0 else np.iinfo(dtype).max, (20, 30), endpoint=True).astype(dtype)
        expected = (top - black.astype(np.int64)).astype(dtype)
    tifffile.imwrite(tmp_path / "mw.tif", black, photometric="miniswhite", **({"bitspersample": bits} if bits else {}))
    image = read_image(tmp_path / "mw.tif")
    assert image.dtype == np.dtype(dtype) and np.array_equal(image, expected)


def test_miniswhite_inverts_gray_but_not_alpha(tmp_path):
    data = np.zeros((8, 9, 2), np.uint8)
    data[..., 0], data[..., 1] = 200, 255
    tifffile.imwrite(tmp_path / "mwa.tif", data, photometric="miniswhite", extrasamples=["unassalpha"])
    image = read_image(tmp_path / "mwa.tif")
    assert (image[..., :3] == 55).all() and (image[..., 3] == 255).all()


def test_miniswhite_float_tiff_uses_its_sample_range_or_is_refused(tmp_path):
    data = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)
    tifffile.imwrite(tmp_path / "tagged.tif", data, photometric="miniswhite",
                     extratags=[(340, "f", 1, 0.0, True), (341, "f", 1, 1.0, True)])
    assert np.allclose(read_image(tmp_path / "tagged.tif"), 1 - data)
    tifffile.imwrite(tmp_path / "bare.tif", data, photometric="miniswhite")
    with pytest.raises(BadInputError, match="MinIsWhite"):
        read_image(tmp_path / "bare.tif")


def test_miniswhite_stack_reads_alike_whole_streamed_and_lazy(tmp_path):
    stored = np.random.default_rng(2).integers(0, 256, (4, 10, 12), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "mw.tif", stored, photometric="miniswhite")
    expected = 255 - stored
    assert np.array_equal(read_volume(tmp_path / "mw.tif").data, expected)
    assert np.array_equal(read_volume(tmp_path / "mw.tif", slices=slice(1, 3)).data, expected[1:3])
    with TiffStackReader.open(tmp_path / "mw.tif") as stack:
        assert np.array_equal(np.concatenate(list(stack.slabs(3))), expected)
    assert np.array_equal(open_lazy(tmp_path / "mw.tif").data.compute(), expected)


def test_convert_writes_a_miniswhite_tiff_upright(tmp_path, drawing, run_cli_in_process):
    tifffile.imwrite(tmp_path / "mw8.tif", np.where(drawing, 255, 0).astype(np.uint8), photometric="miniswhite")
    code, _, err = run_cli_in_process("convert", tmp_path / "mw8.tif", tmp_path / "c.png")
    assert code == 0, err
    assert np.array_equal(np.asarray(Image.open(tmp_path / "c.png")) == 0, drawing)  # ink black


# --- CMYK ---------------------------------------------------------------------------------------

def test_cmyk_tiff_is_read_as_rgb_like_pillow(tmp_path):
    rgb = np.random.default_rng(3).integers(0, 256, (16, 20, 3), dtype=np.uint8)
    rgb[:8] = (20, 20, 160)  # blue ink
    cmyk = Image.fromarray(rgb).convert("CMYK")
    cmyk.save(tmp_path / "cmyk.tif")
    image = read_image(tmp_path / "cmyk.tif")
    assert image.shape == rgb.shape and image.dtype == np.uint8
    assert np.abs(image.astype(int) - np.asarray(cmyk.convert("RGB"), int)).max() <= 1
    assert (image[:8] == (20, 20, 160)).all()


def test_16bit_cmyk_tiff_is_read_as_16bit_rgb(tmp_path):
    cmyk = np.zeros((4, 5, 4), np.uint16)
    cmyk[..., 2] = 65535  # full yellow ink
    cmyk[1, :, 3] = 65535  # a black row
    tifffile.imwrite(tmp_path / "cmyk16.tif", cmyk, photometric="separated")
    image = read_image(tmp_path / "cmyk16.tif")
    assert image.dtype == np.uint16 and (image[0] == (65535, 65535, 0)).all() and (image[1] == 0).all()


@pytest.mark.parametrize("samples, extra", [(5, {"extrasamples": ["unassalpha"]}), (5, {}), (4, {"inkset": 2})])
def test_separated_tiff_other_than_plain_cmyk_is_refused(tmp_path, run_cli_in_process, samples, extra):
    tags = {"extratags": [(332, "H", 1, extra.pop("inkset"), True)]} if "inkset" in extra else {}
    tifffile.imwrite(tmp_path / "inks.tif", np.zeros((6, 7, samples), np.uint8), photometric="separated",
                     **extra, **tags)
    with pytest.raises(BadInputError, match="CMYK"):
        read_image(tmp_path / "inks.tif")
    code, _, err = run_cli_in_process("info", tmp_path / "inks.tif")
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1


# --- EXIF orientation ---------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_exif_orientation_is_applied(tmp_path, drawing, suffix):
    upright = np.where(drawing, 0, 255).astype(np.uint8)
    stored = np.rot90(upright)  # orientation 6: the viewer turns it 90 degrees clockwise
    exif = Image.Exif()
    exif[0x0112] = 6
    quality = {"quality": 100} if suffix == ".jpg" else {}
    Image.fromarray(stored).save(tmp_path / f"phone{suffix}", exif=exif, **quality)
    image = read_image(tmp_path / f"phone{suffix}")
    assert image.shape == upright.shape
    assert np.abs(image.astype(int) - upright).mean() < 3


# --- compressed TIFFs ---------------------------------------------------------------------------

@pytest.mark.parametrize("compression", ["tiff_lzw", "tiff_adobe_deflate"])
def test_compressed_tiffs_read_equal_to_uncompressed(tmp_path, compression):
    gray = np.random.default_rng(5).integers(0, 256, (30, 40), dtype=np.uint8)
    Image.fromarray(gray).save(tmp_path / "plain.tif")
    Image.fromarray(gray).save(tmp_path / "packed.tif", compression=compression)
    assert tifffile.TiffFile(tmp_path / "packed.tif").pages[0].compression != 1
    assert np.array_equal(read_image(tmp_path / "packed.tif"), read_image(tmp_path / "plain.tif"))


def test_lzw_tiff_stack_reads_lazily(tmp_path):
    stack = np.random.default_rng(6).integers(0, 256, (3, 10, 12), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "lzw.tif", stack, photometric="minisblack", compression="lzw")
    assert np.array_equal(read_volume(tmp_path / "lzw.tif").data, stack)
    assert np.array_equal(open_lazy(tmp_path / "lzw.tif").data.compute(), stack)


# --- info -----------------------------------------------------------------------------------------

def test_info_porosity_of_an_rgba_image_agrees_with_analyze(tmp_path, shared_data, run_cli_in_process):
    section = np.asarray(Image.open(shared_data / "berea_section_400.png").convert("L"))
    Image.fromarray(section).convert("RGBA").save(tmp_path / "berea_rgba.png")  # opaque
    code, out, err = run_cli_in_process("info", tmp_path / "berea_rgba.png", "--json")
    assert code == 0, err
    info = json.loads(out)
    code, out, err = run_cli_in_process("analyze", tmp_path / "berea_rgba.png", "--only", "porosity", "--json")
    assert code == 0, err
    analyzed = json.loads(out)["porosity"]["total"]
    assert info["porosity"] == pytest.approx(analyzed) and info["porosity"] == pytest.approx((section == 255).mean())


def test_info_gives_no_porosity_for_a_colour_image(tmp_path):
    rgb = np.zeros((10, 12, 3), np.uint8)
    rgb[:5, :, 0] = 255  # red and black: two values per channel, but a colour image
    Image.fromarray(rgb).save(tmp_path / "red.png")
    info = describe_file(tmp_path / "red.png")
    assert info["binary"] is False and "porosity" not in info


def test_info_of_a_bool_volume_gives_numeric_range(tmp_path, run_cli_in_process):
    np.save(tmp_path / "b.npy", np.arange(24).reshape(2, 3, 4) % 3 == 0)
    code, out, err = run_cli_in_process("info", tmp_path / "b.npy", "--json")
    assert code == 0, err
    info = json.loads(out)
    assert (info["min"], info["max"]) == (0, 1)
    assert type(info["min"]) is int and type(info["max"]) is int
    assert info["porosity"] == pytest.approx(8 / 24)
