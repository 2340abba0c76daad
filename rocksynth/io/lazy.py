"""Volumes opened lazily as chunked dask arrays: TIFF stacks, Zarr / OME-Zarr, `.npy` and `.raw`.

`open_lazy(path)` reads headers and metadata only; voxels are read chunk by chunk when (a part
of) the dask array is computed, so a volume larger than memory can be opened, sliced, measured
and written. Every format is read through one picklable source object (`_Source`) that reopens
the file by path in whichever process computes a chunk (threads, processes or a
`dask.distributed` cluster) and turns a damaged chunk into a one-line `BadInputError`:

- TIFF stacks through tifffile's zarr store (`TiffFile.aszarr()` opened with `zarr.open`);
- Zarr arrays and OME-Zarr images (level 0 of a multiscale image; the voxel size from its
  `coordinateTransformations` scale and axis units), Zarr format 2 or 3;
- `.npy` memory-mapped (`np.load(mmap_mode='r')`), `.raw` as an `np.memmap`.

Decoding limits (rocksynth.io.limits): a lazily opened volume never has to fit in memory, so
the whole-volume memory rule does not apply. What is decoded at once is limited instead, as for
streamed TIFF stacks: the image limit applies to one TIFF page, one slice of a `.npy`/`.raw` and
one stored Zarr chunk, and the decompression-bomb rule to the whole TIFF file. `.npy` and `.raw`
are not compressed (their size is checked against the header or `--shape`), and Zarr needs no
ratio rule: a chunk, bounded by the image limit, is the most any read decodes (and Zarr does not
store chunks that hold only the fill value, so its ratio says nothing). `ROCKSYNTH_MAX_VOXELS`,
when set, replaces these per-chunk limits as everywhere else.
"""

import math
import os
import threading
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from rocksynth.errors import BadInputError

# Bytes of one dask chunk made of whole slices (TIFF pages, .npy/.raw slices): 64 to 128 slices
# for the usual 400²-1024² scans, fewer for wider slices, so one task decodes at most ~64 MiB.
CHUNK_BYTES = 2**26
MAX_CHUNK_SLICES = 128
ZARR_CHUNK = 128


@dataclass
class LazyVolume:
    """A volume opened without reading its voxels.

    Attributes
    ----------
    data : dask.array.Array
        The voxels, axes (z, y, x), chunked; compute a part of it (or all) to read it.
    voxel_size : float or None
        Voxel size in metres, or None when the file does not say.
    source : str
        The path as the user named it.
    voxel_size_origin : str
        Where the voxel size was read (empty when unknown).
    format : str
        'TIFF stack', 'OME-Zarr 0.5', 'Zarr v3 array', 'NPY' or 'raw'.
    stored_chunks : tuple of int or None
        The chunk shape stored on disk (Zarr), or None.
    levels : list of tuple or None
        Shapes of every level of an OME-Zarr multiscale image (level 0 first), or None.
    """

    data: object
    voxel_size: "float | None" = None
    source: str = ""
    voxel_size_origin: str = ""
    format: str = ""
    stored_chunks: "tuple[int, ...] | None" = None
    levels: "list[tuple[int, ...]] | None" = None
    reader: object = None  # the picklable object `data` reads through (`_Source`)

    @property
    def shape(self) -> "tuple[int, ...]":
        return tuple(self.data.shape)

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    def slabs(self):
        """Yield (start, numpy slab) pairs from top to bottom, one dask z-chunk at a time."""
        start = 0
        for depth in self.data.chunks[0]:
            yield start, np.asarray(self.data[start:start + depth].compute())
            start += depth

    def sample(self, slices: int = 16) -> np.ndarray:
        """Evenly spaced z-slices, enough to choose a threshold for the whole volume."""
        count = min(slices, self.shape[0])
        index = sorted({int(i) for i in np.linspace(0, self.shape[0] - 1, count)})
        return np.stack([np.asarray(self.data[i].compute()) for i in index])


def open_lazy(path, raw_shape=None, raw_dtype=None, chunks=None) -> LazyVolume:
    """Open a 3D volume as a chunked dask array without reading its voxels.

    Parameters
    ----------
    path : str or Path
        A TIFF stack (.tif/.tiff), a Zarr array or (OME-)Zarr group (a folder, .zarr / .ome.zarr),
        a .npy file or a .raw file. Not '-': stdin cannot be read lazily.
    raw_shape : str or tuple of int, optional
        Shape of a .raw file, 'ZxYxX' or a tuple.
    raw_dtype : str, optional
        Data type of a .raw file (default uint8).
    chunks : str or tuple of int, optional
        Shape of the dask chunks, 'ZxYxX' or a tuple, each side at most the volume's; default:
        whole slices, ~64 MiB per chunk (for Zarr, cubes of about 128 voxels per
        side made of whole stored chunks).

    Returns
    -------
    LazyVolume

    Raises
    ------
    BadInputError
        One line for a missing, empty, damaged or misnamed file, a 2D image, a volume whose
        decoded unit is over the limits, or a chunk shape that does not fit.
    """
    from rocksynth.io.formats import detect_file_format, is_zarr_store
    from rocksynth.io.paths import STDIO, check_input_file

    if str(path) == STDIO:
        raise BadInputError("stdin ('-') cannot be opened lazily; write it to a file first")
    name = str(path)
    path = check_input_file(path)
    if path.is_dir() or path.suffix.lower() == ".zarr":
        if not is_zarr_store(path):
            raise BadInputError(f"{name}: not a Zarr store (no zarr.json, .zarray or .zgroup in it)")
        from rocksynth.io.zarr_io import open_zarr_source

        source, extra = open_zarr_source(path, name)
    else:
        kind = detect_file_format(path, expected=("tiff", "npy", "png", "jpeg"))
        if kind == "tiff":
            source, extra = _tiff_source(path, name)
        elif kind == "npy":
            source, extra = _npy_source(path, name)
        elif kind == "raw":
            source, extra = _raw_source(path, name, raw_shape, raw_dtype)
        else:
            raise BadInputError(f"{name}: is a 2D {kind.upper()} image; this needs a 3D volume")
    data = _as_dask(source, _chunks_for(source, chunks, name))
    return LazyVolume(data, source=name, reader=source, **extra)


def load_binary_lazy(path, threshold=None, pore_value="auto", voxel_size=None, crop=False, raw_shape=None,
                     raw_dtype=None, chunks=None) -> "tuple[object, float | None]":
    """(lazy bool mask, True = pore; voxel size in metres or None): `load_binary_volume` for volumes
    that need not fit in memory, saying what was inferred in the same words.

    The segmentation rule (binary values, or the Otsu / given threshold of gray input) is chosen
    on 16 evenly spaced slices and applied to every chunk; a circular field of view is looked for
    on the middle slice (and cropped with `crop`). Parameters as `load_binary_volume`, plus
    `chunks` as `open_lazy`. Nothing but those slices is read before the mask is computed.
    """
    from rocksynth.io.binary import _voxel_size, outside_note
    from rocksynth.io.segment import binarize, detect_circular_fov
    from rocksynth.progress import log, warn

    volume = open_lazy(path, raw_shape, raw_dtype, chunks)
    if volume.format == "TIFF stack" and math.prod(volume.shape) > TIFF_COPY_VOXELS:
        volume = chunked_copy(volume, chunks)
    data, source = volume.data, volume.source
    if "Zarr" in volume.format and volume.voxel_size is None and voxel_size is None:
        # A Zarr store carries its scale in its metadata (OME-Zarr coordinateTransformations); one
        # without it is a bare array export, and physical figures would be silently in voxel units.
        raise BadInputError(f"{source}: the {volume.format} has no voxel size in its metadata; "
                            f"pass --voxel-size (e.g. --voxel-size 5.345um)")
    middle = np.asarray(data[data.shape[0] // 2].compute())
    fov = detect_circular_fov(middle)
    offset = (0, 0, 0)
    if fov is None and crop:
        log(f"{source}: no circular field of view found; nothing cropped")
    elif fov is not None:
        rows, cols = fov.inscribed_square(middle.shape)
        if crop:
            log(f"{source}: circular field of view (radius {fov.radius:.0f} px) cropped to rows "
                f"{rows.start}:{rows.stop}, columns {cols.start}:{cols.stop}")
            data = data[:, rows, cols]
            offset = (0, rows.start, cols.start)
    rule = binarize(volume.sample(), threshold, pore_value)
    log(f"{source}: {rule.note}" + (" (chosen on 16 evenly spaced slices)" if rule.threshold is not None and threshold is None else ""))
    if fov is not None and not crop:
        warn(f"{source}: {outside_note(rule.apply(middle), fov)}; use --crop to keep only the inscribed square")
    rule = replace(rule, mask=None)  # the sample's mask: not to be sent with every task
    import dask.array as da
    from dask.base import tokenize

    reader = _MaskSource(volume.reader, offset, data.shape, rule)
    # A from_array over a reader, not map_blocks over the file's chunks: the chunked measures find
    # the reader (`chunked.blocks.source_reader`) and each task reads its block with its context
    # straight from the file, instead of dask keeping whole neighbouring chunks in memory.
    mask = da.from_array(reader, chunks=data.chunks, name=f"rocksynth-mask-{tokenize(reader)}", lock=False,
                         asarray=True, fancy=False, meta=np.empty((0,) * data.ndim, bool))
    return mask, _voxel_size(voxel_size, volume.voxel_size, volume.voxel_size_origin, source)


# TIFF stacks larger than this are copied into a chunked store before they are analysed: a chunk
# of a stack costs decoding its whole pages, so cube after cube would decode each page again.
TIFF_COPY_VOXELS = 256 ** 3
TMPDIR_VARIABLE = "ROCKSYNTH_TMPDIR"


def chunked_copy(volume: LazyVolume, chunks=None) -> LazyVolume:
    """The volume copied slab by slab into a temporary OME-Zarr store, opened lazily.

    Each slab is read once, so each page of a TIFF stack is decoded once. The store goes into
    `$ROCKSYNTH_TMPDIR` (else the system's temporary folder) and is removed when the process
    exits, also after an error or an interrupt. When that folder has less free space than the
    file takes, the volume is returned as it is (slower, with a warning).

    Parameters
    ----------
    volume : LazyVolume
        An opened volume (a TIFF stack).
    chunks : optional
        Chunk shape of the copy as `open_lazy` takes it (default: whole stored chunks).

    Returns
    -------
    LazyVolume
        The copy, with the original's name, voxel size and format.
    """
    import atexit
    import shutil
    import tempfile
    import time

    from rocksynth.io.limits import _size as format_bytes
    from rocksynth.io.paths import _temporaries
    from rocksynth.io.volumes import volume_writer
    from rocksynth.progress import log, progress_bar, warn

    where = os.environ.get(TMPDIR_VARIABLE) or tempfile.gettempdir()
    try:
        free = shutil.disk_usage(where).free
        needed = os.path.getsize(volume.reader.path) if os.path.isfile(volume.reader.path) else volume.data.nbytes
    except OSError as exc:
        raise BadInputError(f"${TMPDIR_VARIABLE} {where}: {exc.strerror or exc}") from exc
    if free < needed:
        warn(f"{volume.source}: {format_bytes(free)} free in {where}, less than the {format_bytes(needed)} a chunked "
             f"copy may take; reading the stack directly (slower); set ${TMPDIR_VARIABLE} or convert it to Zarr")
        return volume
    folder = Path(tempfile.mkdtemp(prefix="rocksynth-", dir=where))
    _temporaries.add(folder)
    atexit.register(shutil.rmtree, folder, True)
    start = time.perf_counter()
    target = folder / "copy.zarr"
    with volume_writer(target, volume.shape, volume.dtype, volume.voxel_size) as writer, \
            progress_bar(volume.shape[0], "copying the stack into chunks") as bar:
        for _, slab in volume.slabs():
            writer.write(slab)
            bar.advance(len(slab))
    log(f"{volume.source}: copied into a temporary chunked store in {time.perf_counter() - start:.0f} s "
        f"(each page decoded once; removed at exit)")
    copy = open_lazy(target, chunks=chunks)
    copy.source, copy.voxel_size, copy.voxel_size_origin = volume.source, volume.voxel_size, volume.voxel_size_origin
    copy.format = volume.format
    copy.reader.name = volume.source
    return copy


class _MaskSource:
    """The pore mask of a lazily opened volume, for `dask.array.from_array`: each read takes the
    region from the file (`_Source`, shifted by a crop offset) and cuts it with the segmentation
    rule chosen on the sampled slices."""

    def __init__(self, source, offset: tuple, shape: tuple, rule):
        self.source, self.offset = source, tuple(int(o) for o in offset)
        self.shape, self.dtype, self.ndim = tuple(int(n) for n in shape), np.dtype(bool), len(shape)
        self.rule = rule  # a `Segmentation` without its mask
        # A block of a TIFF stack costs reading its whole pages; of the other formats, its own size.
        self.block_reads = source.kind != "tiff"

    def __dask_tokenize__(self):
        from dask.base import tokenize

        rule = self.rule
        return ("rocksynth-mask", tokenize(self.source), self.offset, self.shape, rule.threshold, rule.phases,
                rule.pores_bright)

    def __getitem__(self, key) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        key = key + (slice(None),) * (self.ndim - len(key))
        shifted = []
        for index, start, n in zip(key, self.offset, self.shape):
            if isinstance(index, slice):
                low, high, step = index.indices(n)
                shifted.append(slice(low + start, high + start, step))
            else:
                shifted.append(int(index) + start if index >= 0 else int(index) + n + start)
        try:
            return self.rule.apply(self.source[tuple(shifted)])
        except BadInputError as exc:
            raise BadInputError(f"{self.source.name}: {exc}") from None


def is_lazy_volume(path) -> bool:
    """Whether `path` is a file or folder `open_lazy` can open as a 3D volume (read from headers)."""
    from rocksynth.io.formats import format_from_suffix, is_zarr_store
    from rocksynth.io.paths import STDIO

    if str(path) == STDIO:
        return False
    path = Path(path)
    if path.is_dir():
        return is_zarr_store(path)
    if format_from_suffix(str(path)) == "raw":
        return True
    from rocksynth.io.volumes import declared_ndim

    return path.is_file() and format_from_suffix(str(path)) in ("tiff", "npy") and declared_ndim(path) == 3


def declared_nbytes(path, raw_shape=None, raw_dtype=None) -> "int | None":
    """Bytes a lazily openable volume decodes to, from its header alone; None for anything else."""
    from rocksynth.io.volumes import parse_shape

    if not is_lazy_volume(path):
        return None
    if Path(path).suffix.lower() == ".raw":
        if raw_shape is None:
            return None
        try:
            shape = parse_shape(raw_shape) if isinstance(raw_shape, str) else tuple(raw_shape)
            return math.prod(shape) * np.dtype(raw_dtype or "uint8").itemsize
        except (BadInputError, TypeError, ValueError):
            return None  # the eager reader says what is wrong
    volume = open_lazy(path, raw_shape, raw_dtype)
    return int(volume.data.nbytes)


# ---------------------------------------------------------------------------------------------
# The sources: picklable, reopened by path in the process that reads

class _Source:
    """A 3D array on disk read by slices: shape, dtype and `__getitem__`, as `dask.array.from_array`
    needs. Opened on first read and reopened after unpickling; read errors become BadInputError."""

    def __init__(self, kind: str, path: Path, name: str, shape, dtype, **params):
        self.kind, self.path, self.name = kind, str(path), name
        self.shape, self.dtype = tuple(int(s) for s in shape), np.dtype(dtype)
        self.ndim = len(self.shape)
        self.params = params
        self.stored_chunks = params.get("stored_chunks")
        self._array = None
        self._lock = threading.Lock()

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_array"], state["_lock"] = None, None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __dask_tokenize__(self):
        try:
            stat = os.stat(self.path)
            stamp = (stat.st_mtime_ns, stat.st_size)
        except OSError:
            stamp = None
        return ("rocksynth-source", self.kind, os.path.realpath(self.path), stamp, self.shape, str(self.dtype),
                repr(sorted(self.params.items())))

    def _opened(self):
        if self.kind in _MAPPED:  # mapped afresh for each read, so read pages leave the RSS with it
            return _OPENERS[self.kind](self)
        with self._lock:
            if self._array is None:
                self._array = _OPENERS[self.kind](self)
            return self._array

    def __getitem__(self, key) -> np.ndarray:
        try:
            data = self._opened()[self._key(key)]
            data = np.array(data, copy=True) if self.kind in _MAPPED else np.asarray(data)  # no view of a mapping
        except BadInputError:
            raise
        except Exception as exc:  # a codec's, zarr's or the file system's error, mid-computation
            raise self._read_error(exc) from exc
        if data.dtype.kind == "f" and data.size and not np.isfinite(data).all():
            raise BadInputError(f"{self.name}: contains NaN or infinite values")
        top = self.params.get("miniswhite_top")
        if top is not None:  # a MinIsWhite TIFF: read with 0 = black, as `read_tiff` reads it
            from rocksynth.io.volumes import invert_miniswhite

            data = invert_miniswhite(data, top)
        return data

    def _read_error(self, exc: Exception) -> BadInputError:
        from rocksynth.io.paths import place_error
        from rocksynth.io.volumes import _short, _tiff_problem

        error = place_error(exc, self.name)
        if error is not None:
            return error
        problem = _tiff_problem(exc) if self.kind == "tiff" else f"damaged or unreadable {_FORMAT_NAMES[self.kind]}"
        return BadInputError(f"{self.name}: {problem} ({_short(exc)})")

    def _key(self, key):
        """Map a (z, y, x) index onto the stored array, whose extra axes (t, c) have length 1."""
        singletons = self.params.get("singletons") or ()
        if not singletons:
            return key
        key = key if isinstance(key, tuple) else (key,)
        parts = iter(key)
        full = self.params["stored_ndim"]
        return tuple(0 if axis in singletons else next(parts, slice(None)) for axis in range(full))


_FORMAT_NAMES = {"tiff": "TIFF file", "zarr": "Zarr chunk", "npy": ".npy file", "raw": ".raw file"}


def _open_tiff_array(source: _Source):
    import tifffile
    import zarr

    tif = tifffile.TiffFile(source.path)
    store = tif.aszarr(series=0, level=0)
    array = zarr.open(store, mode="r")
    array._rocksynth_tif = tif  # keep the file open as long as the array lives
    return array


def _open_zarr_array(source: _Source):
    import zarr

    return zarr.open_array(source.path, mode="r", path=source.params.get("array_path") or None)


def _open_npy_array(source: _Source):
    return np.load(source.path, mmap_mode="r", allow_pickle=False)


def _open_raw_array(source: _Source):
    return np.memmap(source.path, dtype=source.dtype, mode="r", shape=source.shape)


# Memory-mapped formats. A mapping kept open would keep every page a computation has touched in
# the process's resident set (file-backed, so reclaimable, but counted in RSS and by schedulers):
# reading a 1 GB .npy would show 1 GB. Mapping per read costs one mmap call per chunk.
_MAPPED = ("npy", "raw")

_OPENERS = {"tiff": _open_tiff_array, "zarr": _open_zarr_array, "npy": _open_npy_array, "raw": _open_raw_array}


def _tiff_source(path: Path, name: str):
    """A TIFF stack checked from its headers: the IFD chain, the decoding limits, the voxel size."""
    from rocksynth.io import tiff_metadata
    from rocksynth.io.limits import check_compression, check_decoded_size
    from rocksynth.io.volumes import _first_series, _is_single_image, _open_tiff, _short, _tiff_errors, miniswhite_top

    with _open_tiff(path) as tif:
        try:
            series = _first_series(tif, name)
            if _is_single_image(series):
                raise BadInputError(f"{name}: is a 2D image ({series.shape[1]}x{series.shape[0]}); "
                                    "this needs a 3D volume")
            shape, dtype = tuple(series.shape), series.dtype
            page_shape = tuple(series.keyframe.shape)
            top = miniswhite_top(series.keyframe, name)  # refuses a float MinIsWhite stack
            voxel_size, origin = tiff_metadata.read_voxel_size(tif)
            file_size = tif.filehandle.size
        except _tiff_errors() as exc:
            raise BadInputError(f"{name}: not a readable TIFF file ({_short(exc)})") from exc
    singletons = tuple(axis for axis, n in enumerate(shape[:-3]) if n == 1)
    if len(shape) - len(singletons) != 3:
        what = "an RGB stack" if shape[-1] in (3, 4) and series.axes.endswith("S") else \
            f"a {len(shape)}-dimensional TIFF ({series.axes}, {'x'.join(map(str, shape))})"
        raise BadInputError(f"{name}: is {what}; a gray or binary 3D volume is needed")
    check_compression(name, shape, dtype, file_size)
    check_decoded_size(name, page_shape, dtype, image=True)  # one page is decoded at a time
    _check_voxels(name, shape, dtype)
    source = _Source("tiff", path, name, tuple(n for axis, n in enumerate(shape) if axis not in singletons), dtype,
                     singletons=singletons, stored_ndim=len(shape), miniswhite_top=top)
    return source, {"voxel_size": voxel_size, "voxel_size_origin": origin, "format": "TIFF stack"}


def _npy_source(path: Path, name: str):
    from rocksynth.io.limits import check_decoded_size
    from rocksynth.io.volumes import _npy_header

    with open(path, "rb") as handle:
        shape, dtype = _npy_header(handle, name)  # refuses pickled objects and truncated files
    if len(shape) != 3:
        raise BadInputError(f"{name}: holds a {len(shape)}D array (shape {'x'.join(map(str, shape))}); "
                            "this needs a 3D volume")
    check_decoded_size(name, shape[1:], dtype, image=True)  # a slice is what one read touches
    _check_voxels(name, shape, dtype)
    return _Source("npy", path, name, shape, dtype), {"format": "NPY"}


def _raw_source(path: Path, name: str, raw_shape, raw_dtype):
    from rocksynth.io.limits import check_decoded_size
    from rocksynth.io.volumes import parse_shape

    if raw_shape is None:
        raise BadInputError(f"{name}: a .raw file has no header; give its size with --shape ZxYxX (and --dtype)")
    shape = parse_shape(raw_shape) if isinstance(raw_shape, str) else tuple(int(n) for n in raw_shape)
    try:
        dtype = np.dtype(raw_dtype or "uint8")
    except TypeError as exc:
        raise BadInputError(f"{name}: unknown --dtype {raw_dtype!r}") from exc
    expected, size = math.prod(shape) * dtype.itemsize, path.stat().st_size
    if size != expected:
        raise BadInputError(f"{name}: has {size} bytes but --shape {'x'.join(map(str, shape))} "
                            f"--dtype {dtype.name} needs {expected}")
    check_decoded_size(name, shape[1:], dtype, image=True)
    _check_voxels(name, shape, dtype)
    return _Source("raw", path, name, shape, dtype), {"format": "raw"}


def _check_voxels(name: str, shape, dtype) -> None:
    if 0 in shape:
        raise BadInputError(f"{name}: holds no voxels (shape {'x'.join(map(str, shape))})")
    if np.dtype(dtype).kind not in "biuf":
        raise BadInputError(f"{name}: unsupported data type {np.dtype(dtype)}")


# ---------------------------------------------------------------------------------------------
# Chunks

def parse_chunks(chunks, shape, name: str = "--chunks") -> "tuple[int, int, int]":
    """A user's chunk shape ('64', '32x256x256' or a tuple) checked against the volume's shape."""
    from rocksynth.io.volumes import parse_shape

    shown = chunks if isinstance(chunks, str) else "x".join(map(str, chunks))
    try:
        parsed = parse_shape(chunks) if isinstance(chunks, str) else tuple(int(n) for n in chunks)
    except (BadInputError, TypeError, ValueError):
        raise BadInputError(f"{name}: cannot read chunk shape {shown!r}; use ZxYxX, e.g. 64x256x256") from None
    if len(parsed) == 1:
        parsed = parsed * 3
    if len(parsed) != 3 or min(parsed) <= 0:
        raise BadInputError(f"{name}: chunk shape {shown} must be three positive sizes ZxYxX")
    if any(c > s for c, s in zip(parsed, shape)):
        raise BadInputError(f"{name}: chunk shape {'x'.join(map(str, parsed))} does not fit the volume "
                            f"{'x'.join(map(str, shape))} (each side at most the volume's)")
    return parsed


def slab_depth(shape, dtype) -> int:
    """Whole slices per chunk: ~`CHUNK_BYTES`, at most `MAX_CHUNK_SLICES`, at least one."""
    slice_bytes = max(1, math.prod(shape[1:]) * np.dtype(dtype).itemsize)
    return int(max(1, min(MAX_CHUNK_SLICES, CHUNK_BYTES // slice_bytes, shape[0])))


def _chunks_for(source: _Source, chunks, name: str):
    if chunks is not None:
        parsed = parse_chunks(chunks, source.shape, name)
        _check_chunk_bytes(name, parsed, source.dtype)
        return parsed
    if source.stored_chunks:
        # Zarr: cubes of whole stored chunks (or shards), about ZARR_CHUNK voxels per side: what the
        # chunked measures work on, so they read each stored chunk once and never rechunk slabs.
        stored = tuple(min(c, s) for c, s in zip(source.params.get("align") or source.stored_chunks, source.shape))
        return tuple(min(n, max(c, ZARR_CHUNK // c * c)) for c, n in zip(stored, source.shape))
    return (slab_depth(source.shape, source.dtype),) + source.shape[1:]


def _check_chunk_bytes(name: str, chunks, dtype) -> None:
    """A chunk is decoded at once: the image limit applies to it."""
    from rocksynth.io.limits import ENV_VAR, _size, explicit_max_voxels, max_image_voxels

    nbytes = math.prod(chunks) * np.dtype(dtype).itemsize
    limit = max_image_voxels()
    if nbytes > limit:
        setting = f"{ENV_VAR}={explicit_max_voxels()}" if explicit_max_voxels() is not None else \
            f"the {_size(limit)} one chunk may decode to"
        raise BadInputError(f"{name}: chunks of {'x'.join(map(str, chunks))} {np.dtype(dtype).name} decode to "
                            f"{_size(nbytes)} each, more than {setting}; use smaller chunks or set "
                            f"{ENV_VAR}={nbytes}")


def _as_dask(source: _Source, chunks):
    import dask.array as da
    from dask.base import tokenize

    return da.from_array(source, chunks=chunks, name=f"rocksynth-{source.kind}-{tokenize(source, chunks)}",
                         lock=False, asarray=True, fancy=False, meta=np.empty((0,) * source.ndim, source.dtype))
