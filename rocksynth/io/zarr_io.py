"""Zarr and OME-Zarr volumes: opening (for `rocksynth.io.lazy`) and a streaming, atomic writer.

Written: an OME-Zarr 0.5 image (Zarr format 3), the format `ome-zarr` writes by default and
napari (napari-ome-zarr) opens. Level `0` holds the volume (uint8 0/255 for binary volumes,
255 = pore), levels `1`, `2`, ... halve every axis (the mean of 2×2×2 blocks, for viewing) until
the largest side is at most `SMALLEST_LEVEL`. The voxel size is the `scale` of each level's
`coordinateTransformations` in micrometres, with axis unit "micrometer"; a volume of unknown
voxel size gets scale 1 and no unit.

Read: Zarr arrays and groups, format 2 or 3; OME-Zarr 0.4 and 0.5 images (level 0), their
voxel size from the `scale` of level 0 (and of the image, when given) and the spatial axes'
units. Axes other than z, y, x (t, c) must have length 1.
"""

import math
import os
from pathlib import Path

import numpy as np

from rocksynth.errors import BadInputError, RocksynthError
from rocksynth.interrupts import check as check_interrupts

DEFAULT_CHUNKS = (32, 256, 256)  # the writer holds one chunk-deep slab per level
SMALLEST_LEVEL = 32  # stop halving once the largest side is at most this
MAX_LEVELS = 10
OME_VERSION = "0.5"

# OME-NGFF space units (UDUNITS-2 names) in metres.
_UNITS = {
    "angstrom": 1e-10, "picometer": 1e-12, "nanometer": 1e-9, "micrometer": 1e-6, "millimeter": 1e-3,
    "centimeter": 1e-2, "decimeter": 1e-1, "meter": 1.0, "inch": 0.0254, "foot": 0.3048,
    "nm": 1e-9, "um": 1e-6, "µm": 1e-6, "micron": 1e-6, "mm": 1e-3, "cm": 1e-2, "m": 1.0,
}


# ---------------------------------------------------------------------------------------------
# Reading

def open_zarr_source(path: Path, name: str):
    """(`_Source`, LazyVolume fields) for a Zarr array or (OME-)Zarr group at `path`."""
    import zarr

    from rocksynth.io.lazy import _check_chunk_bytes, _check_voxels, _Source
    from rocksynth.io.volumes import _short

    try:
        node = zarr.open(str(path), mode="r")
    except Exception as exc:  # zarr's errors for missing or malformed metadata vary by version
        raise BadInputError(f"{name}: not a readable Zarr store ({_short(exc)})") from exc
    multiscale, array_path, levels = None, "", None
    try:
        if isinstance(node, zarr.Array):
            array = node
            multiscale = _parent_multiscale(path)  # e.g. image.ome.zarr/0 named directly
        else:
            multiscale = _multiscales(node.attrs)
            if multiscale is not None:
                datasets = multiscale.get("datasets") or []
                if not datasets or "path" not in datasets[0]:
                    raise BadInputError(f"{name}: OME-Zarr multiscales metadata lists no datasets")
                array_path = str(datasets[0]["path"])
                array = node[array_path]
                levels = [tuple(node[str(d["path"])].shape) for d in datasets if "path" in d and d["path"] in node]
            else:
                names = sorted(node.array_keys())
                if len(names) != 1:
                    listed = ", ".join(names[:5]) or "none"
                    raise BadInputError(f"{name}: a Zarr group without OME-Zarr multiscales metadata, holding "
                                        f"{len(names)} arrays ({listed}); name one, e.g. {name.rstrip('/')}/"
                                        f"{names[0] if names else 'ARRAY'}")
                array_path = names[0]
                array = node[array_path]
            if not isinstance(array, zarr.Array):
                raise BadInputError(f"{name}: {array_path} is not a Zarr array")
        shape, dtype = tuple(int(n) for n in array.shape), np.dtype(array.dtype)
        stored = tuple(int(n) for n in array.chunks)  # the decoded unit (inner chunks when sharded)
        shards = getattr(array, "shards", None)
        align = tuple(int(n) for n in shards) if shards else stored
        zarr_format = array.metadata.zarr_format
    except BadInputError:
        raise
    except Exception as exc:
        raise BadInputError(f"{name}: not a readable Zarr store ({_short(exc)})") from exc
    axes = _axis_names(multiscale, len(shape))
    spatial = _spatial_axes(multiscale, axes, len(shape))
    extra = [i for i in range(len(shape)) if i not in spatial]
    if len(spatial) != 3 or any(shape[i] != 1 for i in extra):
        described = f"axes {''.join(axes)}, " if axes else ""
        raise BadInputError(f"{name}: a Zarr array of shape {'x'.join(map(str, shape))} ({described}{len(shape)}D); "
                            "a 3D (z, y, x) volume is needed (other axes of length 1)")
    volume_shape = tuple(shape[i] for i in spatial)
    _check_voxels(name, volume_shape, dtype)
    volume_chunks = tuple(stored[i] for i in spatial)
    _check_chunk_bytes(name, volume_chunks, dtype)  # one stored chunk is what a read decodes
    voxel_size, origin = _voxel_size(multiscale, spatial, axes, len(shape), array_path)
    source = _Source("zarr", path, name, volume_shape, dtype, array_path=array_path, stored_chunks=volume_chunks,
                     align=tuple(align[i] for i in spatial), singletons=tuple(extra), stored_ndim=len(shape))
    version = _ome_version(node if multiscale is not None and not isinstance(node, zarr.Array) else None,
                           multiscale)
    kind = f"OME-Zarr {version}" if multiscale is not None else f"Zarr v{zarr_format} array"
    return source, {"voxel_size": voxel_size, "voxel_size_origin": origin, "format": kind,
                    "stored_chunks": volume_chunks,
                    "levels": [tuple(level[i] for i in spatial) for level in levels] if levels else None}


def read_zarr(path, name: "str | None" = None):
    """A whole Zarr volume in memory (`read_volume` for Zarr): the memory rule of limits applies."""
    from rocksynth.io.lazy import open_lazy
    from rocksynth.io.limits import check_decoded_size
    from rocksynth.io.volumes import Volume

    lazy = open_lazy(path)
    check_decoded_size(name or str(path), lazy.shape, lazy.dtype)
    return Volume(np.asarray(lazy.data.compute()), lazy.voxel_size, name or str(path), lazy.voxel_size_origin)


def _multiscales(attrs) -> "dict | None":
    """The first multiscales entry of OME-Zarr 0.5 (`ome` key) or 0.4 and earlier attributes."""
    attrs = dict(attrs)
    ome = attrs.get("ome") if isinstance(attrs.get("ome"), dict) else {}
    entries = ome.get("multiscales") or attrs.get("multiscales")
    if isinstance(entries, list) and entries and isinstance(entries[0], dict):
        return entries[0]
    return None


def _ome_version(group, multiscale) -> str:
    attrs = dict(group.attrs) if group is not None else {}
    ome = attrs.get("ome") if isinstance(attrs.get("ome"), dict) else {}
    return str(ome.get("version") or (multiscale or {}).get("version") or "?")


def _parent_multiscale(path: Path) -> "dict | None":
    """The multiscales entry of the group holding the array at `path`, when it lists that array."""
    import zarr

    try:
        parent = zarr.open_group(str(path.parent), mode="r")
    except Exception:
        return None
    multiscale = _multiscales(parent.attrs)
    if multiscale is None:
        return None
    for dataset in multiscale.get("datasets") or []:
        if str(dataset.get("path")) == path.name:
            return dict(multiscale, datasets=[dataset], version=_ome_version(parent, multiscale))
    return None


def _axis_names(multiscale, ndim: int) -> "list[str] | None":
    """Lower-case axis names: from OME 0.3+ axes; OME 0.1/0.2 images are (t, c, z, y, x)."""
    if multiscale is None:
        return None
    axes = multiscale.get("axes")
    if axes is None:
        return list("tczyx")[-ndim:] if ndim <= 5 else None
    names = [str(a.get("name", "") if isinstance(a, dict) else a).lower() for a in axes]
    return names if len(names) == ndim else None


def _spatial_axes(multiscale, names, ndim: int) -> "list[int]":
    """Indices of the space axes: typed 'space' in OME metadata, else named z, y, x; else the last three."""
    axes = (multiscale or {}).get("axes") or []
    if len(axes) == ndim and all(isinstance(a, dict) for a in axes) and any("type" in a for a in axes):
        return [i for i, axis in enumerate(axes) if axis.get("type") == "space"]
    if names:
        return [i for i, name in enumerate(names) if name in ("z", "y", "x")]
    return list(range(ndim))[-3:]


def _voxel_size(multiscale, spatial, axes, ndim: int, array_path: str) -> "tuple[float | None, str]":
    """(metres, origin) from OME metadata: the scale of level 0 (times the image's), in the axes' unit."""
    if multiscale is None or not axes:
        return None, ""
    units = []
    for axis in multiscale.get("axes") or []:
        units.append(str(axis.get("unit") or "").lower() if isinstance(axis, dict) else "")
    if len(units) != ndim or any(units[i] not in _UNITS for i in spatial):
        return None, ""
    scale = np.ones(ndim)
    for transforms in (multiscale["datasets"][0].get("coordinateTransformations"),
                       multiscale.get("coordinateTransformations")):
        for transform in transforms or []:
            if isinstance(transform, dict) and transform.get("type") == "scale":
                values = transform.get("scale")
                if not isinstance(values, list) or len(values) != ndim:
                    return None, ""
                scale = scale * np.asarray(values, dtype=float)
    sizes = [float(scale[i]) * _UNITS[units[i]] for i in spatial]
    if not all(math.isfinite(s) and s > 0 for s in sizes):
        return None, ""
    size = sizes[-1]  # x
    origin = "OME-Zarr metadata"
    if not np.allclose(sizes, size, rtol=1e-6):
        from rocksynth.units import format_length

        origin += f" (x axis; z, y, x voxels are {', '.join(format_length(s) for s in sizes)})"
    return float(f"{size:.12g}"), origin


# ---------------------------------------------------------------------------------------------
# Writing

def level_shapes(shape) -> "list[tuple[int, int, int]]":
    """Level 0 and its 2× reductions (ceil) until the largest side is at most `SMALLEST_LEVEL`."""
    levels = [tuple(int(n) for n in shape)]
    while max(levels[-1]) > SMALLEST_LEVEL and len(levels) < MAX_LEVELS:
        levels.append(tuple((n + 1) // 2 for n in levels[-1]))
    return levels


def _storable_dtype(dtype) -> np.dtype:
    dtype = np.dtype(dtype)
    return np.dtype(np.uint8) if dtype == bool else dtype


class ZarrVolumeWriter:
    """Stream z-slabs of a volume of known shape into a multiscale OME-Zarr image.

    The same interface as `VolumeWriter`: use as a context manager and call `write(slab)` with
    (n, y, x) arrays until `shape[0]` slices are written. Everything is written into a temporary
    folder next to `path`, which is renamed onto `path` only if every slice was written and the
    block raised nothing; a failure or an interrupt removes it. Memory holds one chunk-deep
    slab per level (32 slices of level 0 by default).

    Parameters
    ----------
    path : str or Path
        The output folder, e.g. 'volume.ome.zarr' (it must not exist, or be an empty folder).
    shape : tuple of int
        (z, y, x).
    dtype : numpy dtype
        Of the slabs; bool is stored as uint8 0/255 (255 = pore).
    voxel_size : float, optional
        In metres; written as the scale in micrometres.
    chunks : str or tuple of int, optional
        Chunk shape of level 0 (default (32, 256, 256), cut to the volume).
    """

    def __init__(self, path, shape, dtype, voxel_size: "float | None" = None, chunks=None):
        from rocksynth.io.lazy import _check_chunk_bytes, parse_chunks
        from rocksynth.io.paths import STDIO

        if str(path) == STDIO:
            raise BadInputError("a Zarr store is a folder and cannot be written to stdout; give a path ending in .zarr")
        self.path, self.shape = Path(path), tuple(int(s) for s in shape)
        if len(self.shape) != 3 or min(self.shape) <= 0:
            raise BadInputError(f"cannot write a volume of shape {self.shape}")
        self.dtype = _storable_dtype(dtype)
        if self.dtype.kind not in "iuf":
            raise BadInputError(f"{path}: cannot write data type {self.dtype} to Zarr")
        self.voxel_size = voxel_size
        if chunks is None:
            self.chunks = tuple(min(c, s) for c, s in zip(DEFAULT_CHUNKS, self.shape))
        else:
            self.chunks = parse_chunks(chunks, self.shape, str(path))
            _check_chunk_bytes(str(path), self.chunks, self.dtype)
        self.levels = level_shapes(self.shape)
        self.written = 0

    def __enter__(self):
        import queue
        import threading

        from rocksynth.io.paths import atomic_output_dir

        if self.path.exists() and not self.path.is_dir():
            raise BadInputError(f"{self.path}: exists and is not a folder; choose another output")
        # The worker's imports, done here in the main thread: a signal that interrupts the main
        # thread while the worker holds an import lock could leave it held, and the cleanup's join
        # of the worker would then wait for ever (as it did for the TIFF writer).
        _metadata_writers()
        self._atomic = atomic_output_dir(self.path)
        self._tmp = self._atomic.__enter__()
        try:
            self._group, self._chain = self._create()
        except BaseException as exc:
            self._atomic.__exit__(type(exc), exc, exc.__traceback__)
            raise self._error(exc) if isinstance(exc, Exception) else exc
        self._queue: "queue.Queue" = queue.Queue(maxsize=2)
        self._failures: "list[BaseException]" = []
        self._abort = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _create(self):
        import zarr

        group = zarr.open_group(str(self._tmp), mode="w", zarr_format=3)
        chain = None
        for index in reversed(range(len(self.levels))):
            shape = self.levels[index]
            chunks = tuple(min(c, s) for c, s in zip(self.chunks, shape))
            array = group.create_array(str(index), shape=shape, chunks=chunks, dtype=self.dtype, fill_value=0,
                                       compressors=zarr.codecs.ZstdCodec(level=3), dimension_names=("z", "y", "x"))
            chain = _Level(array, chunks[0], chain)
        return group, chain

    def write(self, slab: np.ndarray) -> None:
        from rocksynth.io.volumes import to_storable

        check_interrupts()  # a signal whose exception was lost stops the stream at the next slab
        slab = to_storable(np.asarray(slab))
        if slab.ndim == 2:
            slab = slab[None]
        if slab.shape[1:] != self.shape[1:]:
            raise RocksynthError(f"slab of shape {slab.shape} does not fit a volume of shape {self.shape}")
        if self.written + slab.shape[0] > self.shape[0]:
            raise RocksynthError(f"more than {self.shape[0]} slices written to a volume of shape {self.shape}")
        self._raise_worker_error()
        self._put(np.array(slab, dtype=self.dtype, copy=True))  # the caller may reuse its buffer
        self.written += slab.shape[0]

    # The chunks are compressed and stored by a worker thread, fed through a short queue: signals
    # interrupt only the main thread, so a store under way always completes before the temporary
    # folder is removed (zarr would otherwise finish it afterwards, recreating the folder).
    _DONE = object()

    def _put(self, item) -> None:
        from rocksynth.io.volumes import put_while_alive

        put_while_alive(self._queue, self._thread, item)

    def _run(self) -> None:
        try:
            while True:
                item = self._queue.get()
                if self._abort:  # the block failed or was interrupted: store nothing more
                    return
                if item is self._DONE:
                    self._chain.finish()
                    self._write_metadata()
                    return
                self._chain.add(item)
        except BaseException as exc:  # reported to the producer
            self._failures.append(exc)

    def _raise_worker_error(self) -> None:
        if self._failures:
            raise self._error(self._failures[0]) from self._failures[0]

    def _write_metadata(self) -> None:
        FormatV05, write_multiscales_metadata = _metadata_writers()

        import rocksynth

        micrometres = float(f"{self.voxel_size * 1e6:.12g}") if self.voxel_size else None
        step = micrometres or 1.0
        datasets = []
        for index in range(len(self.levels)):
            factor = 2 ** index
            transforms = [{"type": "scale", "scale": [step * factor] * 3}]
            if index:  # the centre of a 2^k block of level-0 voxels
                transforms.append({"type": "translation", "translation": [step * (factor - 1) / 2] * 3})
            datasets.append({"path": str(index), "coordinateTransformations": transforms})
        axes = [dict({"name": name, "type": "space"}, **({"unit": "micrometer"} if micrometres else {}))
                for name in "zyx"]
        write_multiscales_metadata(self._group, datasets, fmt=FormatV05(), axes=axes, name=self.path.name,
                                   metadata={"method": "mean of 2x2x2 blocks (levels 1+, for viewing; "
                                                       "level 0 holds the data)",
                                             "creator": f"rocksynth {rocksynth.__version__}"})

    def _error(self, exc: BaseException) -> RocksynthError:
        from rocksynth.io.paths import place_error
        from rocksynth.io.volumes import _short

        if isinstance(exc, RocksynthError):
            return exc
        return place_error(exc, str(self.path)) or RocksynthError(f"writing {self.path} failed: {_short(exc)}")

    def __exit__(self, exc_type, exc, tb):
        complete = exc_type is None and self.written == self.shape[0] and not self._failures
        if not complete:
            self._abort = True  # the worker stops after the store under way
        self._put(self._DONE)
        self._thread.join()
        if exc_type is None:
            failure = None
            if self.written != self.shape[0]:
                failure = RocksynthError(f"only {self.written} of {self.shape[0]} slices were written to {self.path}")
            elif self._failures:
                failure = self._error(self._failures[0])
                failure.__cause__ = self._failures[0]
            if failure is not None:
                self._atomic.__exit__(type(failure), failure, None)  # removes the temporary folder
                raise failure
        return self._atomic.__exit__(exc_type, exc, tb)


class _Level:
    """One level of the pyramid: buffers slices into chunk-deep slabs, hands 2×-reduced slices on."""

    def __init__(self, array, depth: int, coarser: "_Level | None"):
        self.array, self.depth, self.coarser = array, depth, coarser
        self.buffer: "list[np.ndarray]" = []
        self.buffered = 0
        self.z = 0
        self.odd: "np.ndarray | None" = None  # a slice waiting for its z-pair

    def add(self, slab: np.ndarray) -> None:
        self.buffer.append(slab)
        self.buffered += slab.shape[0]
        if self.buffered >= self.depth:
            data = np.concatenate(self.buffer) if len(self.buffer) > 1 else self.buffer[0]
            full = (self.buffered // self.depth) * self.depth
            self._store(data[:full])
            rest = data[full:]
            self.buffer, self.buffered = ([rest.copy()] if len(rest) else []), len(rest)
        if self.coarser is not None:
            data = slab if self.odd is None else np.concatenate([self.odd, slab])
            pairs = len(data) // 2
            if pairs:
                self.coarser.add(_halve(data[:2 * pairs]))
            self.odd = data[2 * pairs:].copy() if len(data) % 2 else None

    def finish(self) -> None:
        if self.buffered:
            self._store(np.concatenate(self.buffer))
            self.buffer, self.buffered = [], 0
        if self.z != self.array.shape[0]:
            raise RocksynthError(f"level of shape {self.array.shape} got {self.z} slices")
        if self.coarser is not None:
            if self.odd is not None:
                self.coarser.add(_halve(np.concatenate([self.odd, self.odd])))
                self.odd = None
            self.coarser.finish()

    def _store(self, data: np.ndarray) -> None:
        self.array[self.z:self.z + len(data)] = data
        self.z += len(data)


def _halve(data: np.ndarray) -> np.ndarray:
    """(2n, y, x) -> (n, ceil(y/2), ceil(x/2)): the mean of 2×2×2 blocks (odd sides repeat their edge)."""
    n, y, x = data.shape[0] // 2, data.shape[1], data.shape[2]
    pad = ((0, 0), (0, y % 2), (0, x % 2))
    values = np.pad(data, pad, mode="edge") if y % 2 or x % 2 else data
    if values.dtype == np.uint8:  # the usual case (binary 0/255): sums of 8 fit in uint16, 4x faster
        total = values[0::2].astype(np.uint16) + values[1::2]
        total = total[:, 0::2] + total[:, 1::2]
        total = total[:, :, 0::2] + total[:, :, 1::2]
        return ((total + 4) >> 3).astype(np.uint8)  # rounded, halves up
    mean = values.reshape(n, 2, (y + 1) // 2, 2, (x + 1) // 2, 2).mean(axis=(1, 3, 5), dtype=np.float32)
    if data.dtype.kind in "iu":
        info = np.iinfo(data.dtype)
        return np.clip(np.rint(mean), info.min, info.max).astype(data.dtype)
    return mean.astype(data.dtype)


def size_on_disk(path) -> int:
    """Bytes of every file under a Zarr folder."""
    total = 0
    for folder, _, files in os.walk(path):
        for file in files:
            try:
                total += os.path.getsize(os.path.join(folder, file))
            except OSError:
                pass
    return total


def _metadata_writers():
    """ome-zarr's format and multiscales writer (imported quietly: ome-zarr 0.18 warns of its own
    deprecated Scaler on import)."""
    import warnings

    from ome_zarr.format import FormatV05

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from ome_zarr.writer import write_multiscales_metadata
    return FormatV05, write_multiscales_metadata
