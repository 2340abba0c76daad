"""`rocksynth clean` outputs: checked before any work, never two inputs onto one file, dpi carried,
JPEG only for --soft; folder outputs of any command refuse a file in one line."""

import numpy as np
import pytest
import tifffile
from PIL import Image


@pytest.fixture
def scan():
    """A tiny gray scan: a dark frame on light paper (cleaning it with --tta 1 takes well under a second)."""
    image = np.full((48, 64), 230, np.uint8)
    image[8:40, 8:11] = image[8:11, 8:56] = 40
    return image


@pytest.fixture
def no_model(monkeypatch):
    """Fail the run if the U-Net is loaded: the refusals under test must come before any work."""
    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the output was checked")

    monkeypatch.setattr("rocksynth.pipelines.clean.load_cleaner", refuse)


def _one_line_error(code: int, err: str, *words: str) -> None:
    assert code == 2, err
    assert err.strip().startswith("error:") and len(err.strip().splitlines()) == 1, err
    for word in words:
        assert word in err, err


def test_two_inputs_writing_one_output_are_refused_before_cleaning(run_cli_in_process, tmp_path, scan, no_model):
    folder = tmp_path / "coll"
    folder.mkdir()
    Image.fromarray(scan).save(folder / "part.png")
    Image.fromarray(scan).save(folder / "part.jpg")
    code, _, err = run_cli_in_process("clean", folder, "--out", tmp_path / "out", "--tta", "1")
    _one_line_error(code, err, "part.jpg and part.png would both write part.png")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("out, words", [
    ("nodir/clean.png", ["output folder", "does not exist"]),
    ("scan.png", ["refusing to overwrite an input file", "--out"]),
    ("clean.bmp", ["unknown image type"]),
    ("clean.jpg", ["JPEG would blur the binary drawing", ".png or .tif"]),
])
def test_a_single_images_output_is_checked_before_any_work(run_cli_in_process, tmp_path, monkeypatch, scan,
                                                            no_model, out, words):
    Image.fromarray(scan).save(tmp_path / "scan.png")
    before = (tmp_path / "scan.png").read_bytes()
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli_in_process("clean", "scan.png", "--out", out, "--tta", "1")
    _one_line_error(code, err, out, *words)
    assert (tmp_path / "scan.png").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scan.png"]


def test_an_existing_file_as_output_folder_is_one_line(run_cli_in_process, tmp_path, scan, no_model):
    folder = tmp_path / "scans"
    folder.mkdir()
    Image.fromarray(scan).save(folder / "a.png")
    (tmp_path / "existing.txt").write_text("x\n")
    code, _, err = run_cli_in_process("clean", folder, "--out", tmp_path / "existing.txt", "--tta", "1")
    _one_line_error(code, err, "exists and is not a folder", "choose another --out")
    assert (tmp_path / "existing.txt").read_text() == "x\n"


def test_convert_names_its_positional_output_not_out(run_cli_in_process, tmp_path):
    tifffile.imwrite(tmp_path / "vol.tif", np.zeros((3, 8, 8), np.uint8), photometric="minisblack")
    (tmp_path / "afile").write_text("x\n")
    code, _, err = run_cli_in_process("convert", tmp_path / "vol.tif", f"{tmp_path / 'afile'}/")
    _one_line_error(code, err, "exists and is not a folder", "choose another output")
    assert "--out" not in err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x\n")
    code, _, err = run_cli_in_process("convert", tmp_path / "vol.tif", f"{tmp_path / 'full'}/")
    _one_line_error(code, err, "is not empty", "choose another output")
    assert "--out" not in err


def test_a_folder_that_cannot_be_made_is_one_line(run_cli_in_process, tmp_path, monkeypatch):
    """mkdtemp can fail where the folder looks writable (/proc gives ENOENT): bad input, exit 2."""
    import tempfile

    def fail(*args, **kwargs):
        raise FileNotFoundError(2, "No such file or directory")

    tifffile.imwrite(tmp_path / "vol.tif", np.zeros((3, 8, 8), np.uint8), photometric="minisblack")
    monkeypatch.setattr(tempfile, "mkdtemp", fail)
    code, _, err = run_cli_in_process("convert", tmp_path / "vol.tif", tmp_path / "x.ome.zarr")
    _one_line_error(code, err, "x.ome.zarr", "cannot create a folder")


def _tiff_dpi(path) -> "tuple[float, float]":
    """The TIFF's resolution tags in dots per inch (its unit: inch 2, centimetre 3)."""
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        per_inch = {2: 1.0, 3: 2.54}[int(page.resolutionunit)]
        return tuple(r * per_inch for r in page.resolution)


def test_the_inputs_dpi_is_carried_into_the_cleaned_image(run_cli_in_process, tmp_path, scan):
    Image.fromarray(scan).save(tmp_path / "dpi.png", dpi=(300, 300))
    tifffile.imwrite(tmp_path / "dpi.tif", scan, resolution=(600 / 2.54, 600 / 2.54), resolutionunit="CENTIMETER")
    Image.fromarray(scan).save(tmp_path / "plain.png")
    for source, out in (("dpi.png", "a.png"), ("dpi.png", "a.tif"), ("dpi.tif", "b.tif"), ("plain.png", "c.png")):
        code, _, err = run_cli_in_process("clean", tmp_path / source, "--out", tmp_path / out, "--tta", "1")
        assert code == 0, err
    assert Image.open(tmp_path / "a.png").info["dpi"] == pytest.approx((300, 300), abs=0.01)
    assert _tiff_dpi(tmp_path / "a.tif") == pytest.approx((300, 300))
    assert _tiff_dpi(tmp_path / "b.tif") == pytest.approx((600, 600))
    assert "dpi" not in Image.open(tmp_path / "c.png").info
    # Folder mode carries each image's own.
    folder = tmp_path / "scans"
    folder.mkdir()
    (tmp_path / "dpi.png").rename(folder / "dpi.png")
    (tmp_path / "plain.png").rename(folder / "plain.png")
    code, _, err = run_cli_in_process("clean", folder, "--out", tmp_path / "cleaned", "--tta", "1")
    assert code == 0, err
    assert Image.open(tmp_path / "cleaned" / "dpi.png").info["dpi"] == pytest.approx((300, 300), abs=0.01)
    assert "dpi" not in Image.open(tmp_path / "cleaned" / "plain.png").info


def test_jpeg_output_only_for_the_soft_probability(run_cli_in_process, tmp_path, scan):
    Image.fromarray(scan).save(tmp_path / "scan.png")
    code, _, err = run_cli_in_process("clean", tmp_path / "scan.png", "--out", tmp_path / "soft.jpg", "--soft",
                                      "--tta", "1")
    assert code == 0, err
    with Image.open(tmp_path / "soft.jpg") as image:
        assert image.format == "JPEG" and image.size == (64, 48)
