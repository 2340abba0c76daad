"""Decoding limits and damaged input in rocksynth.io: bombs and broken files are bad input (exit 2,
one line, no traceback, nothing left behind), refused from their declared size before decoding."""

import json
import os
import pickle
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile

from rocksynth.errors import BadInputError
from rocksynth.io import limits, read_video, write_image, write_volume
from rocksynth.io.volumes import declared_ndim

GB = 1e9
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"  # as in conftest.py


def _command() -> "list[str]":
    """The installed console script (on PATH, else beside this interpreter); the module as a last resort."""
    beside = Path(sys.executable).with_name("rocksynth")
    script = shutil.which("rocksynth") or (str(beside) if beside.exists() else None)
    return [script] if script else [sys.executable, "-m", "rocksynth.cli.main"]


def _run(*args, cwd, env=None):
    """The installed console script in `cwd`; (exit code, stderr text)."""
    environment = {k: v for k, v in os.environ.items() if k != limits.ENV_VAR}
    environment.update(env or {})
    result = subprocess.run(_command() + [str(a) for a in args], capture_output=True, cwd=cwd, env=environment,
                            timeout=120)
    return result.returncode, result.stderr.decode(errors="replace")


def _assert_bad_input(code: int, stderr: str, *words: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert code == 2, stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr and ".rocksynth-" not in stderr
    for word in words:
        assert word.lower() in lines[0].lower(), lines[0]
    return lines[0]


def _files(folder) -> "set[str]":
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


# --- bombs, made without holding their decoded bytes -------------------------------------------

def _deflate_zeros(nbytes: int, chunk: int = 1 << 24) -> bytes:
    """A zlib stream of `nbytes` zero bytes: one full-flushed deflate block of `chunk` zeros,
    repeated (a full flush makes each block independent), so nothing large is ever allocated."""
    raw = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = raw.compress(bytes(chunk)) + raw.flush(zlib.Z_FULL_FLUSH)
    whole, rest = divmod(nbytes, chunk)
    tail = zlib.compressobj(9, zlib.DEFLATED, -15)
    end = tail.compress(bytes(rest)) + tail.flush()
    adler, zeros = 1, bytes(chunk)
    for _ in range(whole):
        adler = zlib.adler32(zeros, adler)
    adler = zlib.adler32(bytes(rest), adler)
    return b"\x78\xda" + block * whole + end + adler.to_bytes(4, "big")


def _tiff_bomb(path, side: int = 20000):
    """The issue's bomb: one zlib strip of side² zeros (389 KB for 20000², 400 MB decoded)."""
    with tifffile.TiffWriter(path) as tif:
        tif.write(iter([_deflate_zeros(side * side)]), shape=(side, side), dtype=np.uint8, rowsperstrip=side,
                  compression="zlib")
    return path


def _png_bomb(path, side: int = 20000):
    """A valid 8-bit gray PNG of side² zeros."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                     + chunk(b"IDAT", _deflate_zeros(side * (side + 1))) + chunk(b"IEND", b""))
    return path


_MEASURE = """
import json, resource, subprocess, sys, time
start = time.monotonic()
result = subprocess.run(sys.argv[1:], capture_output=True)
print(json.dumps({"code": result.returncode, "stderr": result.stderr.decode(errors="replace"),
                  "seconds": time.monotonic() - start,
                  "max_rss_bytes": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024}))
"""


def _measured(*args, cwd) -> dict:
    """Run the CLI under a fresh wrapper process whose only child is the command, so the children's
    ru_maxrss it reports is the command's own peak RSS."""
    env = {k: v for k, v in os.environ.items() if k != limits.ENV_VAR}
    result = subprocess.run([sys.executable, "-c", _MEASURE, *_command(), *map(str, args)], capture_output=True,
                            cwd=cwd, env=env, timeout=120, check=True)
    return json.loads(result.stdout)


def test_tiff_bomb_is_refused_fast_and_small(tmp_path):
    _tiff_bomb(tmp_path / "bomb.tif")
    before = _files(tmp_path)
    run = _measured("analyze", "bomb.tif", "--only", "porosity", cwd=tmp_path)
    line = _assert_bad_input(run["code"], run["stderr"], "bomb.tif", "20000x20000", limits.ENV_VAR)
    assert "decompression bomb" in line
    assert run["max_rss_bytes"] < 1.5 * GB, run
    assert run["seconds"] < 10, run
    assert _files(tmp_path) == before


@pytest.mark.parametrize("command", [["info"], ["analyze"], ["convert", "out.tif"]])
def test_png_bomb_is_bad_input_not_pillows_error(tmp_path, command):
    _png_bomb(tmp_path / "bomb.png")
    before = _files(tmp_path)
    code, stderr = _run(command[0], "bomb.png", *command[1:], cwd=tmp_path)
    _assert_bad_input(code, stderr, "bomb.png", "20000x20000", limits.ENV_VAR)
    assert "DecompressionBomb" not in stderr
    assert _files(tmp_path) == before


def test_png_beyond_pillows_own_cap_is_bad_input(tmp_path):
    _png_bomb(tmp_path / "huge.png", side=24000)  # 576 M pixels: over twice Image.MAX_IMAGE_PIXELS
    code, stderr = _run("info", "huge.png", cwd=tmp_path)
    _assert_bad_input(code, stderr, "huge.png", "576000000", limits.ENV_VAR)


def test_the_environment_variable_lets_a_refused_file_through(tmp_path):
    # 3 x 5000 x 5000 zeros: 75 MB decoded at ~1000:1, a bomb by default.
    side = 5000
    with tifffile.TiffWriter(tmp_path / "blank.tif") as tif:
        tif.write(iter([_deflate_zeros(side * side)] * 3), shape=(3, side, side), dtype=np.uint8,
                  rowsperstrip=side, compression="zlib", photometric="minisblack")
    code, stderr = _run("info", "blank.tif", cwd=tmp_path)
    _assert_bad_input(code, stderr, "decompression bomb", f"{limits.ENV_VAR}=75000000")
    code, stderr = _run("info", "blank.tif", cwd=tmp_path, env={limits.ENV_VAR: "1e6"})
    _assert_bad_input(code, stderr, f"{limits.ENV_VAR}=1000000")
    code, stderr = _run("convert", "blank.tif", "blank.npy", cwd=tmp_path, env={limits.ENV_VAR: "75000000"})
    assert code == 0, stderr
    assert np.load(tmp_path / "blank.npy", mmap_mode="r").shape == (3, side, side)


def _small_input(kind: str, folder) -> "list[str]":
    """An input of each reader, each over 1000 decoded bytes; the `info` arguments that read it."""
    from rocksynth.io import write_video

    if kind == "tiff stack (streamed)":
        write_volume(folder / "v.tif", np.ones((4, 64, 64), np.uint8))
        return ["v.tif"]
    if kind == "tiff image":
        write_image(folder / "i.tif", np.ones((64, 64), np.uint8))
        return ["i.tif"]
    if kind in ("png", "jpg"):
        write_image(folder / f"i.{kind}", np.ones((64, 64), np.uint8))
        return [f"i.{kind}"]
    if kind == "npy":
        np.save(folder / "v.npy", np.ones((4, 16, 16), np.uint8))
        return ["v.npy"]
    if kind == "raw":
        np.ones((4, 16, 16), np.uint8).tofile(folder / "v.raw")
        return ["v.raw", "--shape", "4x16x16"]
    if kind == "slice folder":  # each slice (256 bytes) is under the limit, the stack is not
        (folder / "slices").mkdir()
        for index in range(8):
            write_image(folder / "slices" / f"s{index}.png", np.ones((16, 16), np.uint8))
        return ["slices"]
    if kind == "mp4":  # each frame (768 bytes) is under the limit, the clip is not
        write_video(folder / "c.mp4", np.ones((6, 16, 16, 3), np.uint8))
        return ["c.mp4"]
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["tiff stack (streamed)", "tiff image", "png", "jpg", "npy", "raw", "slice folder",
                                  "mp4"])
def test_every_reader_checks_the_declared_size(tmp_path, kind):
    args = _small_input(kind, tmp_path)
    before = _files(tmp_path)
    code, stderr = _run("info", *args, cwd=tmp_path, env={limits.ENV_VAR: "1000"})
    _assert_bad_input(code, stderr, args[0], f"{limits.ENV_VAR}=1000")
    assert _files(tmp_path) == before
    code, stderr = _run("info", *args, cwd=tmp_path)
    assert code == 0, stderr


def test_stdin_is_checked_too(tmp_path):
    _tiff_bomb(tmp_path / "bomb.tif")
    result = subprocess.run(_command() + ["info", "-"], input=(tmp_path / "bomb.tif").read_bytes(),
                            capture_output=True, timeout=120)
    _assert_bad_input(result.returncode, result.stderr.decode(), "stdin", "decompression bomb")


def test_bad_environment_value_is_one_line(tmp_path):
    write_volume(tmp_path / "v.tif", np.zeros((3, 8, 8), np.uint8))
    code, stderr = _run("info", "v.tif", cwd=tmp_path, env={limits.ENV_VAR: "lots"})
    _assert_bad_input(code, stderr, limits.ENV_VAR, "lots")


# --- damaged and misnamed files -----------------------------------------------------------------

def _zlib_stack(path):
    data = np.random.default_rng(0).integers(0, 255, (8, 64, 64), dtype=np.uint8)
    tifffile.imwrite(path, data, compression="zlib", photometric="minisblack")
    return path.read_bytes()


def _bad_file(case: str, folder):
    """Write the damaged file of `case` into `folder`; return its name."""
    if case == "berea cut at 1000 bytes":  # the issue's case: `head -c 1000 berea_400.tif` (zlib-compressed)
        (folder / "t.tif").write_bytes((SHARED_DATA / "berea_400.tif").read_bytes()[:1000])
    elif case == "zlib strip cut short":
        data = _zlib_stack(folder / "full.tif")
        (folder / "full.tif").unlink()
        (folder / "t.tif").write_bytes(data[: len(data) - 3000])
    elif case == "header cut short":
        (folder / "t.tif").write_bytes(_zlib_stack(folder / "full.tif")[:120])
        (folder / "full.tif").unlink()
    elif case == "random bytes":
        (folder / "t.tif").write_bytes(np.random.default_rng(1).bytes(4000))
    elif case == "random bytes after a TIFF signature":
        (folder / "t.tif").write_bytes(b"II*\x00" + np.random.default_rng(2).bytes(4000))
    elif case == "empty":
        (folder / "t.tif").write_bytes(b"")
    elif case == "pickled objects":
        np.save(folder / "t.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
        return "t.npy"
    elif case == "plain pickle named .npy":
        (folder / "t.npy").write_bytes(pickle.dumps({"a": 1}))
        return "t.npy"
    elif case == ".npy header larger than its data":
        np.save(folder / "t.npy", np.zeros((64, 64, 64), np.uint16))
        data = (folder / "t.npy").read_bytes()
        (folder / "t.npy").write_bytes(data[:4096])
        return "t.npy"
    else:
        raise AssertionError(case)
    return "t.tif"


DAMAGED = ["berea cut at 1000 bytes", "zlib strip cut short", "header cut short", "random bytes",
           "random bytes after a TIFF signature", "empty", "pickled objects", "plain pickle named .npy",
           ".npy header larger than its data"]


@pytest.mark.parametrize("command", ["info", "analyze"])
@pytest.mark.parametrize("case", DAMAGED)
def test_damaged_file_is_one_line_bad_input(tmp_path, case, command):
    name = _bad_file(case, tmp_path)
    before = _files(tmp_path)
    code, stderr = _run(command, name, cwd=tmp_path)
    _assert_bad_input(code, stderr, name)
    assert _files(tmp_path) == before


def test_truncated_zlib_tiff_says_so(tmp_path):
    _bad_file("zlib strip cut short", tmp_path)
    code, stderr = _run("convert", "t.tif", "out.npy", cwd=tmp_path)
    _assert_bad_input(code, stderr, "t.tif", "truncated")
    assert not (tmp_path / "out.npy").exists()


@pytest.mark.parametrize("case", [case for case in DAMAGED if case != "zlib strip cut short"])  # headers intact
def test_header_readers_raise_bad_input(tmp_path, case):
    # What `compare` needs to sort folders of volumes from folders of slices (see declared_ndim).
    name = _bad_file(case, tmp_path)
    with pytest.raises(BadInputError, match=name.replace(".", r"\.")):
        declared_ndim(tmp_path / name)


def test_declared_ndim_reads_headers_only(tmp_path):
    write_volume(tmp_path / "v.tif", np.zeros((3, 8, 8), np.uint8))
    write_image(tmp_path / "rgb.tif", np.zeros((8, 8, 3), np.uint8))
    np.save(tmp_path / "v.npy", np.zeros((2, 3, 4), np.uint8))
    _tiff_bomb(tmp_path / "bomb.tif")
    assert [declared_ndim(tmp_path / n) for n in ("v.tif", "rgb.tif", "v.npy", "bomb.tif")] == [3, 2, 3, 2]


# --- videos and images as frames ----------------------------------------------------------------

def test_colour_tiff_image_is_one_frame_not_a_stack(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 255, (128, 96, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    video = read_video(tmp_path / "rgb.tif")
    assert video.frames.shape == (1, 128, 96, 3)
    assert np.array_equal(video.frames[0], rgb)
    code, stderr = _run("convert", "rgb.tif", "clip.mp4", cwd=tmp_path)  # through the video reader
    assert code == 0, stderr
    assert read_video(tmp_path / "clip.mp4").frames.shape == (1, 128, 96, 3)
    code, stderr = _run("convert", "rgb.tif", "slices/", cwd=tmp_path)
    assert code == 0, stderr
    assert [p.name for p in (tmp_path / "slices").iterdir()] == ["slice_0000.png"]


def test_gray_stack_is_still_frames(tmp_path):
    write_volume(tmp_path / "s.tif", np.zeros((5, 16, 3), np.uint8))  # 5 slices, 3 pixels wide: a stack
    assert read_video(tmp_path / "s.tif").frames.shape == (5, 16, 3, 1)


def test_a_line_is_not_a_video_frame(tmp_path):
    write_image(tmp_path / "wide.png", np.zeros((1, 65535), np.uint8))
    before = _files(tmp_path)
    code, stderr = _run("convert", "wide.png", "out.mp4", cwd=tmp_path)
    _assert_bad_input(code, stderr, "wide.png", "65535x1")
    assert _files(tmp_path) == before


def test_mp4_too_wide_for_h264_is_refused_before_writing(tmp_path):
    from rocksynth.io import write_video

    with pytest.raises(BadInputError, match=r"^.*out\.mp4: frames of 16385x2"):
        write_video(tmp_path / "out.mp4", np.zeros((1, 2, 16385), np.uint8))
    assert _files(tmp_path) == set()


# --- writers name the user's output -------------------------------------------------------------

@pytest.mark.parametrize("target", ["o.png", "o.jpg", "slices/"])
def test_writer_errors_name_the_output_not_a_temporary_file(tmp_path, target):
    tifffile.imwrite(tmp_path / "float.tif", np.random.default_rng(0).random((3, 16, 16)).astype(np.float32),
                     photometric="minisblack")
    args = ["convert", "float.tif", target] + (["--slice", "z=1"] if target != "slices/" else [])
    before = _files(tmp_path)
    code, stderr = _run(*args, cwd=tmp_path)
    line = _assert_bad_input(code, stderr, "8-bit")
    assert line.startswith(f"error: {target}") or line.startswith(f"error: {target.rstrip('/')}"), line
    assert _files(tmp_path) == before


# --- the limit function -------------------------------------------------------------------------

@pytest.fixture
def machine_of(monkeypatch):
    """Pretend the machine has `total` bytes of memory and no limit is set (restored afterwards,
    whatever a test sets through `set_max_voxels`)."""
    monkeypatch.setenv(limits.ENV_VAR, "1")  # records the variable's original state for teardown
    monkeypatch.delenv(limits.ENV_VAR)

    def set_memory(total: float):
        monkeypatch.setattr(limits, "_total_memory", lambda: int(total))

    return set_memory


def test_default_limit_takes_a_real_scan_and_refuses_what_would_not_fit(machine_of):
    machine_of(24 * GB)
    assert limits.max_voxels() == 12 * GB
    limits.check_decoded_size("scan.tif", (2000, 2000, 2000), np.uint8, file_size=int(8 * GB / 20))
    with pytest.raises(BadInputError, match=r"scan\.tif: declares a 2000x2000x2000 uint16 .*ROCKSYNTH_MAX_VOXELS="):
        limits.check_decoded_size("scan.tif", (2000, 2000, 2000), np.uint16)  # 16 GB: over half of 24 GB
    machine_of(8 * GB)
    with pytest.raises(BadInputError, match="half of this machine's memory"):
        limits.check_decoded_size("scan.tif", (2000, 2000, 2000), np.uint8)


def test_image_and_compression_rules(machine_of):
    machine_of(24 * GB)
    limits.check_decoded_size("a.png", (16384, 16384), np.uint8, image=True)
    with pytest.raises(BadInputError, match="one 2D image"):
        limits.check_decoded_size("a.png", (20000, 20000), np.uint8, file_size=10**8, image=True)
    with pytest.raises(BadInputError, match=r"compression 1028:1.*decompression bomb.*--max-voxels 400000000 .*=400000000\)$"):
        limits.check_decoded_size("bomb.tif", (20000, 20000), np.uint8, file_size=389051, image=True)
    limits.check_decoded_size("blank.tif", (64, 512, 512), np.uint8, file_size=1000)  # 16 MB: under the floor
    limits.check_decoded_size("scan.tif", (400, 400, 400), np.uint8, file_size=2995033)  # Berea: 21:1


def test_environment_overrides_every_rule(machine_of, monkeypatch):
    machine_of(24 * GB)
    monkeypatch.setenv(limits.ENV_VAR, "5e8")
    assert limits.max_voxels() == limits.max_image_voxels() == 500_000_000
    limits.check_decoded_size("bomb.tif", (20000, 20000), np.uint8, file_size=389051, image=True)
    with pytest.raises(BadInputError, match="more than ROCKSYNTH_MAX_VOXELS=500000000"):
        limits.check_decoded_size("big.npy", (1000, 1000, 1000), np.uint8)


def test_set_max_voxels_is_what_a_cli_option_calls(machine_of):
    machine_of(24 * GB)
    limits.set_max_voxels(10**10)
    assert os.environ[limits.ENV_VAR] == "10000000000" and limits.max_voxels() == 10**10
    limits.set_max_voxels(None)
    assert limits.ENV_VAR not in os.environ and limits.max_voxels() == 12 * GB
    with pytest.raises(BadInputError):
        limits.set_max_voxels(0)


@pytest.mark.parametrize("value", ["lots", "0", "-5", "1.5", "inf", "nan", "8 GB"])
def test_bad_environment_value_is_a_bad_input_error(monkeypatch, value):
    monkeypatch.setenv(limits.ENV_VAR, value)
    with pytest.raises(BadInputError, match=f"^{limits.ENV_VAR}=.*not a positive whole number") as error:
        limits.max_voxels()
    assert "\n" not in str(error.value)


def test_pillow_is_capped_at_the_image_limit(machine_of):
    from PIL import Image

    machine_of(24 * GB)
    limits.configure_pillow()
    assert Image.MAX_IMAGE_PIXELS == limits.MAX_IMAGE_BYTES
