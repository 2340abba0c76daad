"""Lazy volumes (rocksynth.io.lazy) and the streaming OME-Zarr writer (rocksynth.io.zarr_io):
every format opens as a dask array without reading voxels, equals the eager reader, keeps its voxel
size through TIFF -> OME-Zarr -> TIFF, and a failed or interrupted Zarr write leaves nothing."""

import json
import pickle
import shutil
import subprocess
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import tifffile
import zarr

from rocksynth.errors import BadInputError, RocksynthError
from rocksynth.io import limits, open_lazy, read_volume, volume_writer, write_volume
from rocksynth.io.lazy import _Source
from rocksynth.io.zarr_io import ZarrVolumeWriter

from conftest import signal_while_writing

VOXEL = 5.345e-6


def _gray(shape=(20, 30, 40), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _files(folder) -> "set[str]":
    return {str(p.relative_to(folder)) for p in Path(folder).rglob("*")}


@pytest.fixture
def reads(monkeypatch):
    """Count the reads of voxels: every lazily opened format reads through `_Source.__getitem__`."""
    calls = []
    original = _Source.__getitem__

    def counted(self, key):
        calls.append(key)
        return original(self, key)

    monkeypatch.setattr(_Source, "__getitem__", counted)
    return calls


def _write(kind: str, folder: Path, data: np.ndarray) -> "tuple[Path, dict]":
    if kind == "tiff":
        write_volume(folder / "v.tif", data, VOXEL)
        return folder / "v.tif", {}
    if kind == "npy":
        np.save(folder / "v.npy", data)
        return folder / "v.npy", {}
    if kind == "raw":
        data.tofile(folder / "v.raw")
        return folder / "v.raw", {"raw_shape": data.shape}
    if kind == "ome-zarr":
        write_volume(folder / "v.ome.zarr", data, VOXEL)
        return folder / "v.ome.zarr", {}
    if kind in ("zarr v2 array", "zarr v3 array"):
        array = zarr.create_array(folder / "v.zarr", shape=data.shape, chunks=(8, 16, 16), dtype=data.dtype,
                                  zarr_format=2 if "v2" in kind else 3)
        array[:] = data
        return folder / "v.zarr", {}
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["tiff", "npy", "raw", "ome-zarr", "zarr v2 array", "zarr v3 array"])
def test_each_format_opens_lazily_and_equals_the_eager_reader(tmp_path, kind, reads):
    data = _gray()
    path, options = _write(kind, tmp_path, data)
    volume = open_lazy(path, **options)
    assert isinstance(volume.data, da.Array) and volume.shape == data.shape and volume.dtype == data.dtype
    assert reads == []  # opening read headers and metadata only
    assert np.array_equal(volume.data.compute(), read_volume(path, **options).data)
    assert np.array_equal(volume.data.compute(), data)
    assert reads
    # Picklable (reopened by path), as a dask.distributed worker process needs it.
    assert np.array_equal(pickle.loads(pickle.dumps(volume.data)).compute(), data)
    known = kind in ("tiff", "ome-zarr")
    assert volume.voxel_size == (pytest.approx(VOXEL, rel=1e-9) if known else None)


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_reads_ome_zarr_written_by_ome_zarr_itself(tmp_path, version):
    import warnings

    from ome_zarr.format import FormatV04, FormatV05

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from ome_zarr.writer import write_image

    fmt = FormatV04() if version == "0.4" else FormatV05()
    data = _gray()
    group = zarr.open_group(tmp_path / "o.zarr", mode="w", zarr_format=fmt.zarr_format)
    write_image(data[None, None], group, axes="tczyx", fmt=fmt, scale={"t": 1.0, "c": 1.0, "z": 2.0, "y": 2.0,
                                                                        "x": 2.0},
                axes_units=dict.fromkeys("zyx", "micrometer"), scale_factors=(2,))
    volume = open_lazy(tmp_path / "o.zarr")
    assert volume.format == f"OME-Zarr {version}" and volume.voxel_size == pytest.approx(2e-6)
    assert np.array_equal(volume.data.compute(), data)  # t and c (length 1) dropped


def test_a_volume_over_the_memory_limit_opens_without_reading(tmp_path, monkeypatch):
    import psutil

    path = tmp_path / "big.npy"
    big = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(512, 512, 512))
    big[100, 7, 9] = 42
    big.flush()
    del big
    monkeypatch.setenv(limits.ENV_VAR, str(2**20))  # 1 MiB: the whole volume is 128 times more
    with pytest.raises(BadInputError, match=limits.ENV_VAR):
        read_volume(path)
    before = psutil.Process().memory_info().rss
    volume = open_lazy(path)
    assert volume.data.nbytes == 512**3 and volume.data.chunksize[0] <= 128
    assert int(volume.data[100, 7, 9].compute()) == 42
    assert psutil.Process().memory_info().rss - before < 32e6  # 128 MB file: never loaded whole


def test_voxel_size_round_trips_tiff_ome_zarr_tiff(tmp_path, run_cli_in_process):
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader
    from ome_zarr_models.v05 import Image

    data = np.random.default_rng(1).random((40, 36, 50)) < 0.3
    write_volume(tmp_path / "a.tif", data, VOXEL)
    code, _, stderr = run_cli_in_process("convert", tmp_path / "a.tif", tmp_path / "a.ome.zarr")
    assert code == 0, stderr
    code, _, stderr = run_cli_in_process("convert", tmp_path / "a.ome.zarr", tmp_path / "b.tif")
    assert code == 0, stderr
    back = read_volume(tmp_path / "b.tif")
    assert np.array_equal(back.data, data.astype(np.uint8) * 255)
    assert back.voxel_size == pytest.approx(VOXEL, rel=1e-9)
    # What napari reads (napari-ome-zarr reads through ome-zarr's Reader): levels, scale, units.
    node = next(iter(Reader(parse_url(str(tmp_path / "a.ome.zarr")))()))
    assert [tuple(level.shape) for level in node.data] == [(40, 36, 50), (20, 18, 25)]
    assert node.metadata["coordinateTransformations"][0][0]["scale"] == pytest.approx([5.345] * 3)
    assert [axis["unit"] for axis in node.metadata["axes"]] == ["micrometer"] * 3
    Image.from_zarr(zarr.open_group(tmp_path / "a.ome.zarr", mode="r"))  # valid OME-NGFF 0.5 (ome-zarr's models)
    assert not any(p.name.startswith(".rocksynth-") for p in tmp_path.iterdir())


def test_synthesize_streams_into_zarr_and_info_describes_it(tmp_path):
    rocksynth = shutil.which("rocksynth")
    assert rocksynth, "the rocksynth console script is not installed"
    run = subprocess.run([rocksynth, "synthesize", "--texture", "berea", "--size", "64", "--out", "x.zarr"],
                         cwd=tmp_path, capture_output=True, timeout=300)
    assert run.returncode == 0, run.stderr.decode()
    run = subprocess.run([rocksynth, "info", "x.zarr", "--json"], cwd=tmp_path, capture_output=True, timeout=120)
    assert run.returncode == 0, run.stderr.decode()
    report = json.loads(run.stdout)
    assert report["format"] == "OME-Zarr 0.5" and report["shape"] == [64, 64, 64] and report["dtype"] == "uint8"
    assert report["voxel_size_m"] == pytest.approx(VOXEL) and report["stored_chunks"] == [32, 64, 64]
    assert report["levels"] == [[64, 64, 64], [32, 32, 32]] and report["size_on_disk_bytes"] > 0
    assert report["binary"] and 0.05 < report["porosity"] < 0.4


def test_info_of_a_large_volume_reads_no_voxels(tmp_path, monkeypatch, reads):
    from rocksynth.io import describe

    write_volume(tmp_path / "v.tif", _gray() > 100)
    small = describe.describe_file(tmp_path / "v.tif")
    assert small["binary"] and "chunks" not in small  # small files: the description of before
    monkeypatch.setattr(describe, "STATS_BYTES", 1000)
    for path in (tmp_path / "v.tif", _write("ome-zarr", tmp_path, _gray())[0]):
        report = describe.describe_file(path)
        assert report["min"] is None and report["binary"] is None and "--stats" in report["statistics"]
        assert report["shape"] == [20, 30, 40] and report["chunks"][1:] == [30, 40]
    assert reads == []
    assert describe.describe_file(tmp_path / "v.tif", stats=True)["porosity"] == small["porosity"]


def test_a_zarr_array_without_voxel_size_is_unknown(tmp_path, run_cli_in_process):
    _write("zarr v3 array", tmp_path, _gray())
    assert open_lazy(tmp_path / "v.zarr").voxel_size is None
    code, stdout, stderr = run_cli_in_process("info", tmp_path / "v.zarr", "--json")
    assert code == 0, stderr
    report = json.loads(stdout)
    assert report["voxel_size_m"] is None and report["format"] == "Zarr v3 array"
    assert report["stored_chunks"] == [8, 16, 16]
    write_volume(tmp_path / "n.ome.zarr", _gray(), None)  # written without one: scale 1, no unit
    assert open_lazy(tmp_path / "n.ome.zarr").voxel_size is None


@pytest.mark.parametrize("case, words", [
    ("chunk larger than the volume", ["does not fit", "64x64x64"]),
    ("chunk of two sizes", ["three positive sizes"]),
    ("group of two arrays", ["2 arrays", "name one"]),
    ("2D zarr array", ["3D (z, y, x) volume"]),
    ("folder named .zarr", ["not a Zarr store"]),
    ("damaged chunk", ["damaged"]),
    ("2D tiff", ["2D image"]),
])
def test_bad_zarr_input_is_one_line(tmp_path, case, words):
    chunks = None
    if case.startswith("chunk"):
        _write("zarr v3 array", tmp_path, _gray())
        chunks = "64x64x64" if "larger" in case else (4, 4)
    elif case == "group of two arrays":
        group = zarr.open_group(tmp_path / "v.zarr", mode="w")
        group.create_array("a", shape=(4, 4, 4), dtype="u1")
        group.create_array("b", shape=(4, 4, 4), dtype="u1")
    elif case == "2D zarr array":
        zarr.create_array(tmp_path / "v.zarr", shape=(8, 8), dtype="u1")
    elif case == "folder named .zarr":
        (tmp_path / "v.zarr").mkdir()
        (tmp_path / "v.zarr" / "x.txt").write_text("x")
    elif case == "damaged chunk":
        _write("zarr v3 array", tmp_path, _gray())
        chunk = next(p for p in (tmp_path / "v.zarr").rglob("*") if p.is_file() and p.name != "zarr.json")
        chunk.write_bytes(b"not zstd data at all")
    elif case == "2D tiff":
        tifffile.imwrite(tmp_path / "v.tif", _gray((1, 30, 40))[0])
    path = tmp_path / ("v.tif" if "tiff" in case else "v.zarr")
    with pytest.raises(BadInputError) as error:
        open_lazy(path, chunks=chunks).data.compute()
    message = str(error.value)
    assert "\n" not in message and str(path) in message
    for word in words:
        assert word in message


def test_zarr_writer_checks_chunks_and_targets(tmp_path):
    with pytest.raises(BadInputError, match="does not fit"):
        ZarrVolumeWriter(tmp_path / "o.zarr", (8, 8, 8), np.uint8, chunks="16x8x8")
    (tmp_path / "file.zarr").write_text("x")
    with pytest.raises(BadInputError, match="not a folder"):
        with volume_writer(tmp_path / "file.zarr", (8, 8, 8), np.uint8):
            pass
    assert isinstance(volume_writer(tmp_path / "o.ome.zarr", (8, 8, 8), bool), ZarrVolumeWriter)
    assert not isinstance(volume_writer(tmp_path / "o.tif", (8, 8, 8), bool), ZarrVolumeWriter)


def _interrupted():
    from rocksynth.interrupts import Interrupted

    return Interrupted(2)  # what the SIGINT handler raises in the main thread


@pytest.mark.parametrize("failure", ["error", "interrupt", "too few slices"])
def test_a_failed_zarr_write_leaves_nothing(tmp_path, failure):
    before = _files(tmp_path)
    data = _gray((70, 40, 40))
    expected = {"error": RuntimeError, "interrupt": BaseException, "too few slices": RocksynthError}[failure]
    with pytest.raises(expected):
        with volume_writer(tmp_path / "out.ome.zarr", data.shape, data.dtype, VOXEL) as writer:
            writer.write(data[:40])  # one chunk of level 0 is already on disk, in the temporary folder
            assert any(p.name.startswith(".rocksynth-") for p in tmp_path.iterdir())
            if failure == "error":
                raise RuntimeError("the model failed")
            if failure == "interrupt":
                raise _interrupted()
    assert _files(tmp_path) == before


def test_sigint_stops_synthesize_into_zarr_and_leaves_nothing(tmp_path):
    import signal

    # Sent once chunks of level 0 are being written.
    code, stderr = signal_while_writing([shutil.which("rocksynth"), "synthesize", "--texture", "berea", "--size",
                                         "256", "--out", "x.ome.zarr"], tmp_path, signal.SIGINT, ".rocksynth-*/0/c")
    assert code == 130, stderr
    assert stderr.strip() == "interrupted"
    assert _files(tmp_path) == set(), "files were left behind"


def test_the_lazy_binary_mask_equals_the_eager_one(tmp_path):
    from rocksynth.io import load_binary_volume
    from rocksynth.io.lazy import load_binary_lazy

    rng = np.random.default_rng(3)
    truth = rng.random((24, 40, 40)) < 0.3
    gray = (np.where(truth, 60, 190) + rng.normal(0, 12, truth.shape)).clip(0, 255).astype(np.uint8)
    write_volume(tmp_path / "gray.tif", gray, VOXEL)
    write_volume(tmp_path / "binary.ome.zarr", truth, VOXEL)
    for name in ("gray.tif", "binary.ome.zarr"):
        lazy, size = load_binary_lazy(tmp_path / name, chunks=(8, 40, 40))
        mask, eager_size = load_binary_volume(tmp_path / name)
        assert isinstance(lazy, da.Array) and lazy.dtype == bool and size == pytest.approx(eager_size)
        assert (lazy.compute() == mask).mean() > 0.999  # gray: Otsu on 16 slices vs on the whole volume
    assert np.array_equal(lazy.compute(), truth)


def test_every_chunk_is_cut_by_the_volumes_rule_not_its_own(tmp_path):
    """A chunk of one value (padding around a scan) or of two gray values follows the gray rule
    chosen for the volume, and a 0/128 binary volume is kept: lazy equals eager."""
    from rocksynth.io import load_binary_volume
    from rocksynth.io.lazy import load_binary_lazy

    rng = np.random.default_rng(4)
    gray = (np.where(rng.random((24, 40, 40)) < 0.3, 60, 190) + rng.normal(0, 12, (24, 40, 40))).clip(0, 255)
    gray = gray.astype(np.uint8)
    gray[:8] = 0  # one chunk of padding: dark, so pore under the volume's rule
    gray[8:16] = np.where(rng.random((8, 40, 40)) < 0.5, 40, 200)  # one of two gray values
    binary = np.where(rng.random((24, 40, 40)) < 0.3, 128, 0).astype(np.uint8)
    binary[:8] = 0  # a chunk all solid
    for name, data in (("gray.tif", gray), ("binary.tif", binary)):
        write_volume(tmp_path / name, data, VOXEL)
        lazy, _ = load_binary_lazy(tmp_path / name, threshold=100 if name == "gray.tif" else None, chunks=(8, 40, 40))
        mask, _ = load_binary_volume(tmp_path / name, threshold=100 if name == "gray.tif" else None)
        assert np.array_equal(lazy.compute(), mask), name
    assert lazy.compute()[8:].mean() == pytest.approx((binary[8:] == 128).mean())


def test_streamed_binarize_keeps_a_binary_volume_of_any_two_values(tmp_path, run_cli_in_process):
    from rocksynth.io import read_volume

    data = np.where(np.random.default_rng(5).random((20, 16, 16)) < 0.3, 128, 0).astype(np.uint8)
    np.save(tmp_path / "v.npy", data)
    code, _, err = run_cli_in_process("convert", tmp_path / "v.npy", tmp_path / "b.tif", "--binarize")
    assert code == 0, err
    assert np.array_equal(read_volume(tmp_path / "b.tif").data == 255, data == 128)


def test_analyze_refuses_a_zarr_array_without_voxel_size(tmp_path, run_cli_in_process):
    data = (_gray() > 128).astype(np.uint8) * 255
    path, _ = _write("zarr v3 array", tmp_path, data)
    report = tmp_path / "report"
    code, out, err = run_cli_in_process("analyze", path, "--only", "porosity", "--report", report)
    assert code == 2 and out == b"" and not report.exists()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "no voxel size" in lines[0] and "--voxel-size" in lines[0]
    code, out, err = run_cli_in_process("analyze", path, "--only", "porosity", "--voxel-size", "2um", "--json")
    assert code == 0, err


def test_analyze_refuses_gray_values_outside_the_sampled_slices(tmp_path, run_cli_in_process):
    """Binary on the 16 slices the rule is chosen on, gray on another: one line, exit 2."""
    data = (np.random.default_rng(0).random((40, 24, 24)) < 0.3).astype(np.uint8) * 255
    sampled = {int(i) for i in np.linspace(0, 39, 16)}
    data[next(i for i in range(40) if i not in sampled), 3, 3] = 7
    path = tmp_path / "v.tif"
    write_volume(path, data, VOXEL)
    code, out, err = run_cli_in_process("-q", "analyze", path, "--only", "porosity", "--json")
    assert code == 2 and out == b""
    assert "others hold more values" in err and len(err.strip().splitlines()) == 1


def test_a_large_tiff_stack_is_analysed_from_a_temporary_chunked_copy(tmp_path, run_cli, monkeypatch):
    """Each page decoded once: the stack is copied into $ROCKSYNTH_TMPDIR, measured, removed."""
    from rocksynth.io.lazy import TIFF_COPY_VOXELS

    data = (np.random.default_rng(1).random((264, 256, 256)) < 0.3).astype(np.uint8) * 255
    assert data.size > TIFF_COPY_VOXELS
    path = tmp_path / "stack.tif"
    write_volume(path, data, VOXEL)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setenv("ROCKSYNTH_TMPDIR", str(scratch))
    code, out, err = run_cli("analyze", path, "--only", "porosity,minkowski", "--json")
    assert code == 0, err
    assert "copied into a temporary chunked store" in err
    report = json.loads(out)
    assert report["porosity"]["total"] == pytest.approx(data.mean() / 255, abs=1e-12)
    assert list(scratch.iterdir()) == []  # removed at exit
