"""Bad input: exit code 2, one line naming the problem, no traceback, no output file left behind."""

import numpy as np
import pytest
import tifffile

from rocksynth.errors import BadInputError
from rocksynth.io import read_volume, write_image, write_volume


def _make_bad_input(case: str, folder):
    if case == "empty file":
        path = folder / "empty.tif"
        path.write_bytes(b"")
        return ["convert", path, folder / "out.tif"], "empty"
    if case == "text named .tif":
        path = folder / "notes.tif"
        path.write_text("porosity 0.2\n" * 20)
        return ["convert", path, folder / "out.tif"], "not a TIFF"
    if case == "truncated TIFF":
        write_volume(folder / "full.tif", np.random.default_rng(0).integers(0, 255, (8, 64, 64), dtype=np.uint8))
        data = (folder / "full.tif").read_bytes()
        path = folder / "cut.tif"
        path.write_bytes(data[: len(data) // 3])
        return ["convert", path, folder / "out.npy"], "TIFF"
    if case == "2D where 3D is needed":
        path = folder / "slice.png"
        write_image(path, np.zeros((16, 16), np.uint8))
        return ["convert", path, folder / "out.png", "--slice", "z=3"], "2D"
    if case == "RGB where gray is needed":
        path = folder / "photo.png"
        write_image(path, np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8))
        return ["convert", path, folder / "out.png", "--binarize"], "RGB"
    if case == "NaN-filled float volume":
        path = folder / "nan.tif"
        tifffile.imwrite(path, np.full((4, 8, 8), np.nan, np.float32), photometric="minisblack")
        return ["convert", path, folder / "out.tif"], "NaN"
    if case == ".raw without --shape":
        path = folder / "v.raw"
        path.write_bytes(bytes(512))
        return ["convert", path, folder / "out.tif"], "--shape"
    if case == "mixed slice sizes":
        slices = folder / "slices"
        slices.mkdir()
        write_image(slices / "s1.png", np.zeros((16, 16), np.uint8))
        write_image(slices / "s2.png", np.zeros((16, 20), np.uint8))
        return ["convert", slices, folder / "out.tif"], "s2.png"
    if case == "MP4 that is not a video":
        path = folder / "clip.mp4"
        path.write_bytes(b"\x00\x00\x00\x18ftypisom" + bytes(range(256)) * 4)
        return ["convert", path, folder / "out.mp4"], "MP4"
    if case == "text named .mp4":
        path = folder / "clip.mp4"
        path.write_text("not a video at all")
        return ["info", path], "MP4"
    if case == "output in a missing folder":
        path = folder / "ok.tif"
        write_volume(path, np.zeros((3, 8, 8), np.uint8))
        return ["convert", path, folder / "missing" / "out.tif"], "does not exist"
    if case == "missing input":
        return ["info", folder / "nowhere.tif"], "no such file"
    if case == "overwrite the input":
        path = folder / "in.tif"
        write_volume(path, np.zeros((3, 8, 8), np.uint8))
        return ["convert", path, path], "overwrite"
    raise AssertionError(case)


CASES = ["empty file", "text named .tif", "truncated TIFF", "2D where 3D is needed", "RGB where gray is needed",
         "NaN-filled float volume", ".raw without --shape", "mixed slice sizes", "MP4 that is not a video",
         "text named .mp4", "output in a missing folder", "missing input", "overwrite the input"]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_gives_one_line_exit_2_and_no_output(tmp_path, run_cli, case):
    args, expected_words = _make_bad_input(case, tmp_path)
    before = {p.name for p in tmp_path.rglob("*")}
    code, stdout, stderr = run_cli("--quiet", *args)
    assert code == 2, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert expected_words.lower() in lines[0].lower()
    assert "Traceback" not in stderr
    after = {p.name for p in tmp_path.rglob("*")}
    assert after == before, f"files left behind: {after - before}"


def test_library_refuses_2d_where_3d_is_needed(tmp_path):
    write_image(tmp_path / "s.png", np.zeros((8, 8), np.uint8))
    with pytest.raises(BadInputError, match="2D image"):
        read_volume(tmp_path / "s.png")


def test_debug_shows_the_traceback(tmp_path, run_cli):
    (tmp_path / "e.tif").write_bytes(b"")
    code, _, stderr = run_cli("--debug", "info", tmp_path / "e.tif")
    assert code == 2 and "Traceback" in stderr
