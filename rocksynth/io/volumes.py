"""3D volumes: multi-page TIFF stacks, folders of 2D slices, .npy and .raw; axes (z, y, x).

Writing streams z-slabs to a (Big)TIFF through `VolumeWriter`, so a volume never has to be in
memory whole; every write is atomic.
"""

import contextlib
import math
import os
import queue
import re
import struct
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rocksynth.errors import BadInputError, RocksynthError
from rocksynth.interrupts import check as check_interrupts, deferred
from rocksynth.io import tiff_metadata
from rocksynth.io.formats import detect_file_format, sniff
from rocksynth.io.images import is_colour_image
from rocksynth.io.limits import check_compression, check_decoded_size
from rocksynth.io.paths import STDIO, atomic_output, check_input_file, place_error, read_stdin_bytes, stdin_stream

SLICE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg")
# Stay clear of the 4 GiB classic-TIFF limit, leaving room for tags and offsets.
BIGTIFF_THRESHOLD = 2**32 - 2**25


@dataclass
class Volume:
    data: np.ndarray
    voxel_size: "float | None" = None
    source: str = ""
    voxel_size_origin: str = ""
    colour_image: bool = False  # the file declares one (y, x, 3|4) colour image, not a stack
    slices_in_file: "int | None" = None  # of a stack read in part (`read_volume(slices=...)`), all it holds


def natural_key(name: str):
    """Sort key so that 's2' comes before 's10'."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def read_volume(path, raw_shape=None, raw_dtype=None, allow_2d: bool = False, allow_rgb: bool = False,
                slices: "slice | None" = None) -> Volume:
    """Read a volume from a TIFF stack, a folder of slices, .npy, .raw, or '-' (stdin).

    A 2D image is refused unless `allow_2d` (then it is returned as a (y, x) array); colour
    stacks unless `allow_rgb` (frames of a video). `slices` (step 1): only those z-slices are
    wanted; a TIFF stack or a folder of slices then decodes only those."""
    if str(path) == STDIO:
        volume = _read_stdin_volume(raw_shape, raw_dtype)
    else:
        path = check_input_file(path)
        if _is_zarr(path):
            from rocksynth.io.zarr_io import read_zarr

            volume = read_zarr(path)
        elif path.is_dir():
            volume = _read_slice_folder(path, slices)
        else:
            kind = detect_file_format(path, expected=("tiff", "npy", "png", "jpeg"))
            if kind == "raw":
                volume = _read_raw(path, raw_shape, raw_dtype, str(path))
            elif kind == "npy":
                volume = _read_npy(path, str(path))
            elif kind == "tiff":
                volume = read_tiff(path, str(path), slices)
            else:
                from rocksynth.io.images import read_image

                image = read_image(path)
                volume = Volume(image, source=str(path), colour_image=image.ndim == 3)
    if slices is not None and volume.slices_in_file is None and volume.data.ndim >= 3 and not volume.colour_image:
        volume.slices_in_file = volume.data.shape[0]
        taken = _slices_of(volume.data.shape[0], slices, volume.source)
        volume.data = volume.data[taken.start:taken.stop]
    return _validated(volume, allow_2d, allow_rgb)


def declared_ndim(path) -> int:
    """The dimensions a volume file declares, read from its header alone: 3 for a TIFF stack or a
    3D .npy, 2 for one image (gray or colour).

    Parameters
    ----------
    path : str or Path
        A .tif/.tiff, .npy, .png or .jpg file (a .raw file declares nothing: 3 is assumed).

    Raises
    ------
    BadInputError
        For a missing, empty, misnamed, damaged or pickled file, as the readers would.
    """
    path = check_input_file(path)
    if _is_zarr(path):
        from rocksynth.io.lazy import open_lazy

        return open_lazy(path).data.ndim
    kind = detect_file_format(path, expected=("tiff", "npy", "png", "jpeg"))
    if kind == "npy":
        with open(path, "rb") as handle:
            return len(_npy_header(handle, str(path))[0])
    if kind == "tiff":
        with _open_tiff(path) as tif:
            series = _first_series(tif, str(path))
            return 2 if _is_single_image(series) else series.ndim
    return 3 if kind == "raw" else 2


def _is_zarr(path: Path) -> bool:
    """A Zarr store (a folder with Zarr metadata), or a path named .zarr (then opening it says what is wrong)."""
    from rocksynth.io.formats import is_zarr_store

    return path.suffix.lower() == ".zarr" or (path.is_dir() and is_zarr_store(path))


def _read_stdin_volume(raw_shape, raw_dtype) -> Volume:
    data = read_stdin_bytes()
    kind = sniff(data[:16])
    if kind == "tiff":
        return read_tiff(stdin_stream(), "stdin")
    if kind == "npy":
        return _read_npy(stdin_stream(), "stdin")
    if kind in ("png", "jpeg"):
        from rocksynth.io.images import read_image

        image = read_image(STDIO)
        return Volume(image, source="stdin", colour_image=image.ndim == 3)
    if raw_shape is not None:
        return _read_raw(data, raw_shape, raw_dtype, "stdin")
    raise BadInputError("stdin: not a TIFF, NPY or PNG stream (for raw bytes give --shape and --dtype)")


def read_tiff(source, name: str, slices: "slice | None" = None) -> Volume:
    """A TIFF (stack or single image) with its voxel size; damaged files and files that declare
    more than the decoding limits (rocksynth.io.limits) raise BadInputError before decoding.
    `slices`: of a stack of one page per slice, only those pages are decoded."""
    import tifffile

    with _tifffile_complaints() as complaints:
        try:
            with tifffile.TiffFile(source) as tif:
                series = _first_series(tif, name)
                image = _is_single_image(series)
                if complaints:  # a broken IFD chain: refuse before decoding what is left
                    raise _damaged(name, complaints)
                pages, in_file = None, None
                if slices is not None and not image and series.shape[0] == len(tif.pages) >= 2:
                    in_file = len(tif.pages)
                    pages = _slices_of(in_file, slices, name)
                shape = series.shape if pages is None else (len(pages),) + series.shape[1:]
                check_decoded_size(name, shape, series.dtype, file_size=None if pages else tif.filehandle.size,
                                   image=image)
                check_photometric(series.keyframe, name)  # before decoding what would be refused
                data = tif.asarray() if pages is None else tif.asarray(key=pages).reshape(shape)
                data = as_minisblack(data, series.keyframe, series.axes, name)
                voxel_size, origin = tiff_metadata.read_voxel_size(tif)
        except _tiff_errors() as exc:
            raise BadInputError(f"{name}: {_tiff_problem(exc)} ({_short(exc)})") from exc
    if complaints:  # tifffile reads what it can of a damaged file and only logs the rest
        raise _damaged(name, complaints)
    colour = image and series.ndim == 3 and series.shape[-1] in (3, 4)
    return Volume(data, voxel_size, name, origin, colour_image=colour, slices_in_file=in_file)


def _slices_of(count: int, slices: slice, name: str) -> range:
    """The indices `slices` takes of `count` slices; none is a BadInputError."""
    taken = range(count)[slices]
    if not taken:
        raise BadInputError(f"{name}: has {count} slices, so none from slice {slices.start} on")
    return taken


def _open_tiff(path: Path):
    """An open tifffile.TiffFile with every page's header read; a damaged file is a BadInputError."""
    import tifffile

    tif = None
    with _tifffile_complaints() as complaints:
        try:
            tif = tifffile.TiffFile(path)
            len(tif.pages)  # reads the whole IFD chain, where truncation shows
        except _tiff_errors() as exc:
            if tif is not None:
                tif.close()
            raise BadInputError(f"{path}: {_tiff_problem(exc)} ({_short(exc)})") from exc
    if complaints:
        tif.close()
        raise _damaged(str(path), complaints)
    return tif


def _is_plain_stack(tif, name: str) -> bool:
    """Two or more 2D pages forming one series: what `TiffStackReader` can stream."""
    try:
        return len(tif.pages) >= 2 and tif.pages[0].ndim == 2 and len(tif.series) == 1
    except _tiff_errors() as exc:
        raise BadInputError(f"{name}: not a readable TIFF file ({_short(exc)})") from exc


def _first_series(tif, name: str):
    """The series `asarray()` decodes (the first), or a clear error for a file with no image."""
    if not tif.pages or not tif.series:
        raise BadInputError(f"{name}: TIFF file holds no image")
    return tif.series[0]


def _is_single_image(series) -> bool:
    """One 2D page, gray (y, x) or with samples (y, x, s): an image, not a stack of slices."""
    return series.ndim == 2 or (series.ndim == 3 and series.axes.endswith("S"))


def check_photometric(page, name: str) -> None:
    """Refuse, in one line, a TIFF whose samples `as_minisblack` cannot turn into gray or RGB.

    Parameters
    ----------
    page : tifffile.TiffPage
        The page (a series' keyframe) whose tags describe the samples.
    name : str
        The file as the user named it, for the message.

    Raises
    ------
    BadInputError
        For separated samples other than plain CMYK, and for a float MinIsWhite page without
        sample value tags.
    """
    import tifffile

    if page.photometric == tifffile.PHOTOMETRIC.MINISWHITE:
        miniswhite_top(page, name)
    elif page.photometric == tifffile.PHOTOMETRIC.SEPARATED:
        _check_cmyk(page, name)


def as_minisblack(data: np.ndarray, page, axes: str, name: str) -> np.ndarray:
    """Decoded TIFF samples as rocksynth reads images: 0 is black, colour is RGB.

    MinIsWhite gray is inverted and CMYK (photometric Separated) is converted to RGB; other
    samples are returned as they are.

    Parameters
    ----------
    data : numpy.ndarray
        What tifffile decoded from pages like `page`.
    page : tifffile.TiffPage
        The page whose tags describe the samples.
    axes : str
        tifffile's axes of `data` ('S' is the samples axis).
    name : str
        The file as the user named it, for errors.

    Returns
    -------
    numpy.ndarray
        Of `data`'s dtype; CMYK comes back with 3 samples on the last axis.
    """
    import tifffile

    if page.photometric == tifffile.PHOTOMETRIC.MINISWHITE:
        return _inverted_samples(data, page, axes, name)
    if page.photometric == tifffile.PHOTOMETRIC.SEPARATED:
        _check_cmyk(page, name)
        return _cmyk_to_rgb(np.moveaxis(data, axes.index("S"), -1), page.bitspersample)
    return data


def miniswhite_top(page, name: str) -> "int | float | None":
    """The value T that maps a MinIsWhite sample v to its MinIsBlack value T - v; None for other pages.

    Unsigned integers mirror in the range their bits per sample can hold (a 12-bit scan in uint16
    is 4095 - v, not 65535 - v), signed ones give -1 - v (two's complement: lowest <-> highest),
    bool gives 1 (`invert_miniswhite` uses logical not). A float TIFF has no white level of its
    own: only its SMinSampleValue/SMaxSampleValue tags give one (T = min + max); without them,
    guessing 1 or the data's maximum could silently shift every value, so it is refused.

    Raises
    ------
    BadInputError
        For a float MinIsWhite page without both sample value tags.
    """
    import tifffile

    if page.photometric != tifffile.PHOTOMETRIC.MINISWHITE:
        return None
    dtype = np.dtype(page.dtype)
    if dtype == bool:
        return 1
    if dtype.kind == "u":
        return 2 ** int(page.bitspersample) - 1
    if dtype.kind == "i":
        return -1
    low, high = page.tags.valueof(340), page.tags.valueof(341)  # SMinSampleValue, SMaxSampleValue
    if low is None or high is None:
        raise BadInputError(f"{name}: float TIFF stored as MinIsWhite without SMinSampleValue/SMaxSampleValue "
                            "tags, so its white level is unknown; save it as MinIsBlack (0 = black)")
    return float(np.min(low)) + float(np.max(high))


def invert_miniswhite(data: np.ndarray, top: "int | float") -> np.ndarray:
    """MinIsWhite samples as MinIsBlack: `top - data` in `data`'s dtype (logical not for bool)."""
    if data.dtype == bool:
        return ~data
    return np.subtract(data.dtype.type(top), data, dtype=data.dtype)


def _inverted_samples(data: np.ndarray, page, axes: str, name: str) -> np.ndarray:
    """Invert the gray sample of a MinIsWhite page, leaving extra samples (alpha) as they are."""
    top = miniswhite_top(page, name)
    extra = len(page.extrasamples or ())
    if not extra or "S" not in axes:
        return invert_miniswhite(data, top)
    gray = [slice(None)] * data.ndim
    gray[axes.index("S")] = slice(0, page.samplesperpixel - extra)
    data = data.copy()
    data[tuple(gray)] = invert_miniswhite(data[tuple(gray)], top)
    return data


def _check_cmyk(page, name: str) -> None:
    """Separated samples are read only as plain CMYK: 4 unsigned-integer inks, no extra samples."""
    inkset = page.tags.valueof(332, 1)  # InkSet: 1 = CMYK (the default), 2 = another ink set
    if inkset != 1:
        raise BadInputError(f"{name}: TIFF of separated inks other than CMYK (InkSet {inkset}); save it as RGB or gray")
    if page.samplesperpixel != 4 or page.extrasamples:
        raise BadInputError(f"{name}: separated TIFF of {page.samplesperpixel} samples, not plain CMYK (4); "
                            "save it as RGB or gray")
    if np.dtype(page.dtype).kind != "u":
        raise BadInputError(f"{name}: CMYK TIFF of {np.dtype(page.dtype)} samples; only 8- or 16-bit CMYK is read; "
                            "save it as RGB or gray")


def _cmyk_to_rgb(cmyk: np.ndarray, bits: int) -> np.ndarray:
    """(..., 4) CMYK as (..., 3) RGB in the same dtype: R = (max - C)(max - K) / max, rounded.

    The naive conversion Pillow's `convert('RGB')` makes (no colour profile)."""
    top = 2 ** int(bits) - 1
    ink = top - cmyk.astype(np.int64)
    rgb = (ink[..., :3] * ink[..., 3:] * 2 + top) // (2 * top)
    return rgb.astype(cmyk.dtype)


def _tiff_errors() -> "tuple[type, ...]":
    """What tifffile and its codecs raise on damaged input (zlib.error on a truncated strip)."""
    import tifffile

    return (tifffile.TiffFileError, ValueError, OSError, EOFError, IndexError, KeyError, TypeError,
            struct.error, zlib.error, RuntimeError)


def _tiff_problem(exc: BaseException) -> str:
    """A cut-off compressed strip surfaces as a zlib, struct or codec error: say so."""
    # With imagecodecs installed, tifffile decodes (even deflate) through it: its errors, such as
    # DeflateError, are RuntimeErrors of that module.
    codec = type(exc).__module__.partition(".")[0] == "imagecodecs"
    truncated = codec or isinstance(exc, (zlib.error, struct.error, EOFError))
    return "truncated or damaged TIFF file" if truncated else "not a readable TIFF file"


def _damaged(name: str, complaints: "list[str]") -> BadInputError:
    # "<TiffTag.fromfile> raised TiffFileError('<tifffile.TiffTag 270 @70> invalid value offset 194')"
    # -> "invalid value offset 194": tifffile's object reprs mean nothing to a user.
    reason = re.sub(r"<[^<>]*>\s*", "", complaints[0]).strip()
    reason = re.sub(r"^raised \w+\((['\"])(.*)\1\)$", r"\2", reason)
    return BadInputError(f"{name}: truncated or damaged TIFF file ({reason})")


@contextlib.contextmanager
def _tifffile_complaints():
    """Collect tifffile's logged warnings (instead of printing them) while reading."""
    import logging

    messages: "list[str]" = []

    class Collector(logging.Handler):
        def emit(self, record):
            messages.append(record.getMessage().splitlines()[0][:160])

    logger = logging.getLogger("tifffile")
    handler, propagate = Collector(level=logging.WARNING), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield messages
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


class TiffStackReader:
    """Slab-by-slab access to a multi-page gray TIFF stack on disk, for volumes larger than memory.

    `open()` returns None when the file is not a plain stack of equal 2D pages (then read it whole).
    Only one page is decoded at a time, so the decoding limits apply to a page (as one 2D image)
    and the decompression-bomb rule to the whole file, not the memory limit to the whole stack."""

    def __init__(self, tif, name: str):
        self._tif, self.name = tif, name
        page = tif.pages[0]
        self.shape = (len(tif.pages),) + tuple(page.shape)
        self.dtype = page.dtype
        self._top = miniswhite_top(page, name)  # pages are gray: only MinIsWhite needs undoing
        self.voxel_size, self.voxel_size_origin = tiff_metadata.read_voxel_size(tif)

    @classmethod
    def open(cls, path) -> "TiffStackReader | None":
        path = check_input_file(path)
        if path.is_dir() or detect_file_format(path, expected=("tiff", "npy", "png", "jpeg")) != "tiff":
            return None
        tif = _open_tiff(path)
        try:
            if not _is_plain_stack(tif, str(path)):
                tif.close()
                return None
            reader = cls(tif, str(path))
            check_compression(reader.name, reader.shape, reader.dtype, tif.filehandle.size)
            check_decoded_size(reader.name, reader.shape[1:], reader.dtype, image=True)
        except BaseException:
            tif.close()
            raise
        return reader

    def page(self, index: int) -> np.ndarray:
        with _tifffile_complaints() as complaints:
            try:
                page = self._tif.pages[index]
                if tuple(page.shape) != self.shape[1:] or page.dtype != self.dtype:  # refuse before decoding
                    raise BadInputError(f"{self.name}: page {index} is damaged or of another size")
                image = page.asarray()
            except _tiff_errors() as exc:
                raise BadInputError(f"{self.name}: page {index} is unreadable ({_short(exc)})") from exc
        if complaints or image.shape != self.shape[1:]:
            raise BadInputError(f"{self.name}: page {index} is damaged or of another size")
        if image.dtype.kind == "f" and not np.isfinite(image).all():
            raise BadInputError(f"{self.name}: page {index} contains NaN or infinite values")
        return image if self._top is None else invert_miniswhite(image, self._top)

    def slabs(self, depth: int = 32):
        """Yield (depth, y, x) arrays from top to bottom."""
        for start in range(0, self.shape[0], depth):
            yield np.stack([self.page(i) for i in range(start, min(start + depth, self.shape[0]))])

    def sample(self, pages: int = 16) -> np.ndarray:
        """Evenly spaced pages, enough to choose a threshold for the whole stack."""
        return np.stack([self.page(int(i)) for i in np.linspace(0, self.shape[0] - 1, min(pages, self.shape[0]))])

    def close(self) -> None:
        self._tif.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _read_npy(source, name: str) -> Volume:
    """A .npy array, its header checked first: never unpickled, never larger than the limits."""
    if isinstance(source, Path):
        with open(source, "rb") as handle:
            return _read_npy_stream(handle, name)
    return _read_npy_stream(source, name)


def _read_npy_stream(handle, name: str) -> Volume:
    shape, dtype = _npy_header(handle, name)
    check_decoded_size(name, shape, dtype)  # no ratio rule: .npy is not compressed
    handle.seek(0)
    try:
        data = np.load(handle, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise BadInputError(f"{name}: not a readable .npy array ({_short(exc)})") from exc
    return Volume(np.asarray(data), None, name)


def _npy_header(handle, name: str) -> "tuple[tuple[int, ...], np.dtype]":
    """(shape, dtype) from a .npy header, refusing arrays of Python objects (they need unpickling)
    and files shorter than the data their header declares."""
    from numpy.lib import format as npy_format

    try:
        version = npy_format.read_magic(handle)
        read_header = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
        shape, _, dtype = read_header(handle)
    except (ValueError, OSError, EOFError, SyntaxError, TypeError) as exc:
        raise BadInputError(f"{name}: not a readable .npy array ({_short(exc)})") from exc
    if dtype.hasobject:
        raise BadInputError(f"{name}: .npy array of Python objects (pickled data); rocksynth reads only numeric "
                            "arrays and never unpickles files")
    start, end = handle.tell(), handle.seek(0, os.SEEK_END)
    handle.seek(start)
    declared = math.prod(shape) * dtype.itemsize
    if declared > end - start:  # refuse before np.load allocates what the header claims
        raise BadInputError(f"{name}: truncated .npy file (its header declares {declared} bytes of data, "
                            f"the file holds {end - start})")
    return tuple(shape), dtype


def _read_raw(source, raw_shape, raw_dtype, name: str) -> Volume:
    """Headerless bytes (a file or stdin's bytes) laid out as `raw_shape` of `raw_dtype`, in C order."""
    if raw_shape is None:
        raise BadInputError(f"{name}: a .raw file has no header; give its size with --shape ZxYxX (and --dtype)")
    shape = parse_shape(raw_shape) if isinstance(raw_shape, str) else tuple(raw_shape)
    dtype = np.dtype(raw_dtype or "uint8")
    expected = int(np.prod(shape)) * dtype.itemsize
    size = len(source) if isinstance(source, bytes) else source.stat().st_size
    if size != expected:
        raise BadInputError(f"{name}: has {size} bytes but --shape {'x'.join(map(str, shape))} "
                            f"--dtype {dtype.name} needs {expected}")
    check_decoded_size(name, shape, dtype)  # --shape is the declaration; checked before reading the file
    if isinstance(source, bytes):
        return Volume(np.frombuffer(source, dtype=dtype).reshape(shape).copy(), None, name)
    return Volume(np.fromfile(source, dtype=dtype).reshape(shape), None, name)


def _read_slice_folder(folder: Path, slices: "slice | None" = None) -> Volume:
    from rocksynth.io.images import read_image

    files = sorted((p for p in folder.iterdir() if p.suffix.lower() in SLICE_SUFFIXES and not p.name.startswith(".")),
                   key=lambda p: natural_key(p.name))
    if not files:
        raise BadInputError(f"{folder}: folder holds no slice images ({', '.join(SLICE_SUFFIXES)})")
    in_folder = len(files)
    if slices is not None:
        files = [files[index] for index in _slices_of(in_folder, slices, str(folder))]
    first = read_image(files[0], keep_alpha=False)  # a volume has no alpha: gray + alpha slices are gray
    # Each slice was checked as an image; the stack they make must fit the memory limit too.
    check_decoded_size(str(folder), (len(files),) + first.shape, first.dtype)
    data = np.empty((len(files),) + first.shape, dtype=first.dtype)
    data[0] = first
    for index, file in enumerate(files[1:], start=1):
        image = read_image(file, keep_alpha=False)
        if image.shape != first.shape or image.dtype != first.dtype:
            raise BadInputError(f"{folder}: slice {file.name} is {_describe(image)} but {files[0].name} is "
                                f"{_describe(first)}; all slices must match")
        data[index] = image
    return Volume(data, None, str(folder), slices_in_file=None if slices is None else in_folder)


def _validated(volume: Volume, allow_2d: bool, allow_rgb: bool) -> Volume:
    data = volume.data
    if data.size == 0:
        raise BadInputError(f"{volume.source}: holds no voxels (shape {data.shape})")
    if data.dtype.kind == "f" and not np.isfinite(data).all():
        bad = int((~np.isfinite(data)).sum())
        raise BadInputError(f"{volume.source}: contains {bad} NaN or infinite values")
    if allow_rgb and data.ndim in (3, 4):
        return volume
    if data.ndim == 4 and data.shape[-1] in (3, 4):
        raise BadInputError(f"{volume.source}: is an RGB{'A' if data.shape[-1] == 4 else ''} stack; "
                            "a gray or binary volume is needed")
    if not allow_2d and is_colour_image(data):
        raise BadInputError(f"{volume.source}: is an RGB image ({data.shape[1]}x{data.shape[0]}); "
                            "a gray or binary volume is needed")
    if data.ndim == 2 and not allow_2d:
        raise BadInputError(f"{volume.source}: is a 2D image ({data.shape[1]}x{data.shape[0]}); this needs a 3D volume")
    if data.ndim not in (2, 3):
        raise BadInputError(f"{volume.source}: has {data.ndim} dimensions (shape {data.shape}); expected a 3D volume")
    if data.dtype.kind not in "biuf":
        raise BadInputError(f"{volume.source}: unsupported data type {data.dtype}")
    return volume


def parse_shape(text: str) -> "tuple[int, ...]":
    """'400x400x400' or '400,400,400' -> (400, 400, 400); a single N means a cube."""
    parts = [p for p in re.split(r"[x×,]", str(text).strip().lower()) if p]
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        raise BadInputError(f"cannot read shape {text!r}: use ZxYxX, e.g. 400x400x400") from None
    if len(shape) == 1:
        shape = shape * 3
    if len(shape) != 3 or min(shape) <= 0:
        raise BadInputError(f"cannot read shape {text!r}: use ZxYxX with positive sizes")
    return shape


def to_storable(array: np.ndarray) -> np.ndarray:
    """Binary (bool) volumes are stored as uint8 0/255, 255 = pore."""
    if array.dtype == bool:
        return array.astype(np.uint8) * 255
    return array


def write_volume(path, data: np.ndarray, voxel_size: "float | None" = None) -> None:
    """Write a whole volume (or 2D image as a one-page stack) by the output's suffix:
    .tif/.tiff stack, .npy, .raw, or a folder of PNG slices when `path` ends with '/'."""
    data = to_storable(np.asarray(data))
    if data.ndim == 2:
        data = data[None]
    target = str(path)
    kind = "tiff" if target == STDIO else _output_kind(target)
    if kind == "npy":
        with atomic_output(path) as tmp:
            np.save(tmp, data)
    elif kind == "raw":
        with atomic_output(path) as tmp:
            data.tofile(tmp)
    elif kind == "folder":
        write_slice_folder(path, data)
    elif kind == "zarr":
        from rocksynth.io.zarr_io import ZarrVolumeWriter

        with ZarrVolumeWriter(path, data.shape, data.dtype, voxel_size) as writer:
            for start in range(0, data.shape[0], writer.chunks[0]):
                writer.write(data[start:start + writer.chunks[0]])
    else:
        with VolumeWriter(path, data.shape, data.dtype, voxel_size) as writer:
            for start in range(0, data.shape[0], 64):
                writer.write(data[start:start + 64])


def _output_kind(target: str) -> str:
    suffix = Path(target).suffix.lower()
    if suffix == ".zarr":
        return "zarr"
    if target.endswith(("/", os.sep)) or (suffix == "" and Path(target).is_dir()):
        return "folder"
    if suffix in (".tif", ".tiff"):
        return "tiff"
    if suffix in (".npy", ".raw"):
        return suffix[1:]
    raise BadInputError(f"{target}: unknown volume output type; use .tif, .zarr, .npy, .raw or a folder ending in /")


def write_slice_folder(path, data: np.ndarray) -> None:
    """One PNG per z-slice (slice_0000.png ...), written into a new folder atomically."""
    from rocksynth.io.images import check_writable_image, write_image_file
    from rocksynth.io.paths import atomic_output_dir

    check_writable_image(path, to_storable(data[0]), "png")  # before the temporary folder: name the output
    digits = max(4, len(str(data.shape[0] - 1)))
    with atomic_output_dir(path) as tmp:
        for index, image in enumerate(data):
            write_image_file(tmp / f"slice_{index:0{digits}d}.png", to_storable(image))


def put_while_alive(items: "queue.Queue", worker: threading.Thread, item) -> None:
    """Queue an item for a writer's worker thread, giving up if the worker has stopped.

    A signal is held back during each put (at most its 0.2 s timeout): an `Interrupted` raised
    inside `queue.put` can leave the queue's lock held, and then the cleanup's own put and the
    worker's get wait on it for ever (a command hung after SIGTERM)."""
    while worker.is_alive():
        with deferred():
            try:
                items.put(item, timeout=0.2)
                return
            except queue.Full:
                pass


class VolumeWriter:
    """Stream z-slabs of a volume of known shape into a TIFF stack (BigTIFF when over ~4 GB).

    tifffile pulls pages from an iterator; it runs in a worker thread fed through a short queue,
    so at most a couple of slabs are held in memory. Use as a context manager and call
    `write(slab)` with (n, y, x) arrays until `shape[0]` slices are written. The file appears
    at `path` only if every slice was written and the block raised nothing.
    """

    _DONE = object()

    def __init__(self, path, shape, dtype, voxel_size: "float | None" = None, compress: bool = True):
        self.path, self.shape, self.dtype = path, tuple(int(s) for s in shape), np.dtype(dtype)
        if self.dtype == bool:
            self.dtype = np.dtype(np.uint8)
        rgb_stack = len(self.shape) == 4 and self.shape[-1] in (3, 4)  # frames of a video
        if not (len(self.shape) == 3 or rgb_stack) or min(self.shape) <= 0:
            raise BadInputError(f"cannot write a volume of shape {self.shape}")
        self.photometric = "rgb" if rgb_stack else "minisblack"
        self.voxel_size, self.compress = voxel_size, compress
        self.written = 0

    def __enter__(self):
        # Imported here, in the main thread, not first in the worker: a signal that interrupts the
        # main thread while the worker holds the import lock could leave it held, and the
        # cleanup's join of the worker would then wait for ever.
        import tifffile  # noqa: F401

        self._atomic = atomic_output(self.path, suffix=".tif")
        self._tmp = self._atomic.__enter__()
        self._queue: "queue.Queue" = queue.Queue(maxsize=2)
        self._error: "list[BaseException]" = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        try:
            self._thread.start()
        except BaseException as exc:  # an interrupt before `with` owns us: __exit__ would never run
            self._stop_worker()
            self._atomic.__exit__(type(exc), exc, exc.__traceback__)
            raise
        return self

    def _stop_worker(self) -> None:
        """Let the worker finish (it may be creating the temporary file) before that file is removed."""
        if self._thread.is_alive() or self._thread.ident is not None:
            self._put(self._DONE)
            self._thread.join()

    def write(self, slab: np.ndarray) -> None:
        check_interrupts()  # a signal whose exception was lost stops the stream at the next slab
        slab = to_storable(np.asarray(slab))
        if slab.ndim == len(self.shape) - 1:
            slab = slab[None]
        if slab.shape[1:] != self.shape[1:]:
            raise RocksynthError(f"slab of shape {slab.shape} does not fit a volume of shape {self.shape}")
        if self.written + slab.shape[0] > self.shape[0]:
            raise RocksynthError(f"more than {self.shape[0]} slices written to a volume of shape {self.shape}")
        self._put(slab.astype(self.dtype, copy=False))
        self._raise_worker_error()
        self.written += slab.shape[0]

    def _put(self, item) -> None:
        put_while_alive(self._queue, self._thread, item)

    def _pages(self):
        while True:
            slab = self._queue.get()
            if slab is self._DONE:
                return
            yield from slab

    def _run(self) -> None:
        import tifffile

        nbytes = int(np.prod(self.shape)) * self.dtype.itemsize
        resolution, unit = tiff_metadata.resolution_for(self.voxel_size)
        try:
            with tifffile.TiffWriter(self._tmp, bigtiff=nbytes > BIGTIFF_THRESHOLD) as tif:
                tif.write(self._pages(), shape=self.shape, dtype=self.dtype,
                          compression="zlib" if self.compress else None,
                          compressionargs={"level": 1} if self.compress else None,
                          resolution=resolution, resolutionunit=unit, photometric=self.photometric,
                          description=tiff_metadata.description_for(self.voxel_size, self.shape),
                          metadata=None)
        except BaseException as exc:  # reported to the producer thread
            self._error.append(exc)

    def _raise_worker_error(self) -> None:
        if self._error:
            raise self._worker_error() from self._error[0]

    def _worker_error(self) -> RocksynthError:
        shown = "stdout" if str(self.path) == STDIO else str(self.path)
        return place_error(self._error[0], shown) or RocksynthError(f"writing {shown} failed: {_short(self._error[0])}")

    def __exit__(self, exc_type, exc, tb):
        self._stop_worker()
        if exc_type is None:
            if self.written != self.shape[0]:
                exc = RocksynthError(f"only {self.written} of {self.shape[0]} slices were written to {self.path}")
            elif self._error:
                exc = self._worker_error()
            if exc is not None:
                self._atomic.__exit__(type(exc), exc, None)  # removes the temporary file
                raise exc
        return self._atomic.__exit__(exc_type, exc, tb)


def streamed_output_kind(path) -> str:
    """'zarr' or 'tiff': what `volume_writer` writes to `path` ('-', stdout, is TIFF).

    Any other suffix is refused, so that `--out cube.npy` is not a TIFF stack under another name.
    """
    target = str(path)
    if target == STDIO:
        return "tiff"
    suffix = Path(target.rstrip("/" + os.sep)).suffix.lower()
    if suffix == ".zarr":
        return "zarr"
    if suffix in (".tif", ".tiff"):
        return "tiff"
    raise BadInputError(f"{target}: this volume is written as a .tif stack or a .zarr store; name the output so")


def volume_writer(path, shape, dtype, voxel_size: "float | None" = None, **options):
    """A streaming writer chosen by the output's suffix (`streamed_output_kind`): `ZarrVolumeWriter`
    (an OME-Zarr image) for `.zarr` / `.ome.zarr`, `VolumeWriter` (a TIFF stack) for `.tif`,
    `.tiff` and '-' (stdout).

    Both are context managers taking (n, y, x) slabs through `write(slab)`; `options` go to the
    writer (`compress` for TIFF, `chunks` for Zarr)."""
    target = str(path)
    if streamed_output_kind(target) == "zarr":
        from rocksynth.io.zarr_io import ZarrVolumeWriter

        return ZarrVolumeWriter(target.rstrip("/" + os.sep), shape, dtype, voxel_size, **options)
    return VolumeWriter(path, shape, dtype, voxel_size, **options)


def _describe(image: np.ndarray) -> str:
    return f"{'x'.join(map(str, image.shape[::-1]))} {image.dtype}"


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:160] if text else type(exc).__name__
