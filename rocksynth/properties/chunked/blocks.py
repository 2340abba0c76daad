"""Blocks of a chunked volume, each with the context (overlap) a measure needs around it.

The measures in this package run one task per chunk of a dask array. A task sees its chunk (the
*core*) plus `before` voxels on the low side and `after` voxels on the high side of every axis,
clipped at the faces of the volume: nothing is padded or mirrored there, so a block at a face
sees exactly what the whole-volume computation sees at that face. Tasks return small arrays
(counts, sums) that are added on the client; no task returns the volume (except
`local_thickness`, whose lazy result is the map itself).
"""

from typing import Iterator, NamedTuple, Sequence

import numpy as np

from rocksynth.errors import BadInputError

# Edge of a cubic chunk when a numpy array is wrapped: 128³ bool voxels are 2 MiB.
DEFAULT_CHUNK_3D = 128
DEFAULT_CHUNK_2D = 1024


def as_dask_mask(mask, chunks=None):
    """A lazy boolean pore mask (True = pore) as a dask array.

    Parameters
    ----------
    mask : dask.array.Array or array_like
        Binary image, True/non-zero = pore (bool, 0/1 or 0/255). A numpy array (or memmap) is
        wrapped without copying.
    chunks : int, tuple or str, optional
        Chunk shape (anything `dask.array.rechunk` accepts). Default: keep a dask array's chunks;
        wrap a numpy array in 128³ chunks (1024² in 2D).

    Returns
    -------
    dask.array.Array
        Boolean array with the requested chunks.

    Raises
    ------
    BadInputError
        If the image is empty.
    """
    import dask.array as da

    if isinstance(mask, da.Array):
        reader = source_reader(mask) if chunks is not None else None
        if getattr(reader, "block_reads", False):
            # Read the new chunks straight from the source: rechunking would hold whole source
            # chunks in memory until every new chunk cut from them is done.
            array = _wrap(reader, da.core.normalize_chunks(chunks, mask.shape, dtype=mask.dtype), mask.dtype)
        else:
            array = mask if chunks is None else mask.rechunk(chunks)
    else:
        data = np.asarray(mask)
        if chunks is None:
            chunks = DEFAULT_CHUNK_3D if data.ndim >= 3 else DEFAULT_CHUNK_2D
        # _NoCopy: from_array copies arrays that have a .copy() (all of a memmap's file, into memory).
        array = _wrap(_NoCopy(data), da.core.normalize_chunks(chunks, data.shape, dtype=data.dtype), data.dtype)
    if array.size == 0:
        raise BadInputError("empty image: nothing to analyse")
    if array.dtype != bool:
        array = array > 0
    return array


def _wrap(reader, chunks, dtype):
    """`dask.array.from_array` of a reader, named without hashing its data (it can be gigabytes)."""
    import dask.array as da

    return da.from_array(reader, chunks=chunks, name=False, asarray=True, fancy=False,
                         meta=np.empty((0,) * len(chunks), dtype=dtype))


class _NoCopy:
    """A numpy array (or memmap) seen through indexing only, so that dask reads it chunk by chunk."""

    block_reads = True  # any block is read at the cost of its own size

    def __init__(self, data: np.ndarray):
        self._data = data
        self.shape, self.dtype, self.ndim = data.shape, data.dtype, data.ndim

    def __getitem__(self, key):
        return self._data[key]


class Block(NamedTuple):
    """One task's input: a chunk (the core) with its context."""

    index: "tuple[int, ...]"  # position in the block grid
    data: object  # Delayed or dask array: the extended block (core plus context); numpy inside a task
    core: "tuple[slice, ...]"  # where the core lies inside the extended block
    region: "tuple[slice, ...]"  # where the core lies in the volume
    at_low: "tuple[bool, ...]"  # the core touches the volume's low face, per axis
    at_high: "tuple[bool, ...]"  # ... and its high face
    outer: "tuple[slice, ...]"  # where the extended block lies in the volume


def extended_blocks(array, before: "Sequence[int]", after: "Sequence[int]", partition=None) -> "Iterator[Block]":
    """Every chunk of `array` with `before`/`after` voxels of context per axis, clipped at the faces.

    Built with `dask.array.overlap.overlap(..., boundary="none")`, which adds no context beyond
    the faces of the volume and merges chunks thinner than the context they must lend (so the
    blocks may be fewer and larger than the chunks), and `to_delayed`: a compact graph, and
    tasks that can run on any dask scheduler. With a `partition` other than the chunks (runs of
    chunks), each block is sliced from the array instead: rechunking first would make dask hold
    many merged runs at once (600 MB instead of 110 MB for S2 of a 1024³ volume).

    Parameters
    ----------
    array : dask.array.Array
        The volume.
    before, after : sequence of int
        Context (voxels) wanted on the low and the high side of each axis.
    partition : tuple of tuple of int, optional
        Blocks to use instead of `array.chunks`, e.g. runs of several chunks along an axis.

    Yields
    ------
    Block
        Index, lazy extended block, and where its core lies in it and in the volume.
    """
    # Context of n - 1 already reaches across a whole axis of n voxels from any chunk.
    before = [min(int(depth), n - 1) for depth, n in zip(before, array.shape)]
    after = [min(int(depth), n - 1) for depth, n in zip(after, array.shape)]
    reader = source_reader(array)
    if getattr(reader, "block_reads", False):
        yield from _read_blocks(array, reader, before, after, partition or array.chunks)
        return
    if partition is not None and tuple(map(tuple, partition)) != array.chunks:
        yield from _sliced_blocks(array, before, after, partition)
        return
    import dask.array as da

    if any(before) or any(after):
        depth = {axis: (low, high) for axis, (low, high) in enumerate(zip(before, after))}
        extended = da.overlap.overlap(array, depth=depth, boundary="none")
    else:
        extended = array
    grid = extended.numblocks
    lows = [before[axis] * (np.arange(n) > 0) for axis, n in enumerate(grid)]
    highs = [after[axis] * (np.arange(n) < n - 1) for axis, n in enumerate(grid)]
    lengths = [np.array(sizes) - low - high for sizes, low, high in zip(extended.chunks, lows, highs)]
    starts = [np.concatenate([[0], np.cumsum(length)[:-1]]) for length in lengths]
    blocks = extended.to_delayed()
    for index in np.ndindex(*grid):
        core, region, outer = [], [], []
        for axis, i in enumerate(index):
            low, length, start = int(lows[axis][i]), int(lengths[axis][i]), int(starts[axis][i])
            core.append(slice(low, low + length))
            region.append(slice(start, start + length))
            outer.append(slice(start - low, start - low + int(extended.chunks[axis][i])))
        yield Block(index, blocks[index], tuple(core), tuple(region), tuple(i == 0 for i in index),
                    tuple(i == n - 1 for i, n in zip(index, grid)), tuple(outer))


def source_reader(array):
    """The object a `dask.array.from_array` array reads through (a file source, a numpy array), when
    `array` is exactly that array; None for anything computed from it."""
    layers = array.__dask_graph__().layers
    key = f"original-{array.name}"
    original = layers.get(key)
    if len(layers) != 2 or original is None or key not in original:
        return None
    reader = original[key]
    return reader if hasattr(reader, "__getitem__") and not isinstance(reader, np.ndarray) else None


def _read(reader, key: tuple) -> np.ndarray:
    return np.asarray(reader[key])


def _read_blocks(array, reader, before, after, partition) -> "Iterator[Block]":
    """Blocks that each read their extended region straight from the source, in one task.

    Through dask's overlap, a chunk's context is sliced from its neighbours' chunks, so each
    chunk stays in memory until all its neighbours are done: a whole layer of chunks, which
    grows with the volume's cross-section (1 GB for Minkowski of a 1024³ volume). Read
    directly, a task holds only its own block; the context voxels are read twice.
    """
    import dask

    shared = dask.delayed(reader, name=f"reader-{array.name}")  # one graph key, sent to workers once
    read = dask.delayed(_read, pure=True)
    for block in _partition_blocks(array.shape, before, after, partition):
        yield block._replace(data=read(shared, block.outer))


def _sliced_blocks(array, before, after, partition) -> "Iterator[Block]":
    """Blocks sliced from the dask array (its graph reads the source chunks they overlap)."""
    for block in _partition_blocks(array.shape, before, after, partition):
        yield block._replace(data=array[block.outer])


def _partition_blocks(shape, before, after, partition) -> "Iterator[Block]":
    """Where each block of a partition lies, with its context clipped at the faces (no data yet)."""
    grid = tuple(len(sizes) for sizes in partition)
    starts = [np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int) for sizes in partition]
    for index in np.ndindex(*grid):
        outer, core, region = [], [], []
        for axis, i in enumerate(index):
            start = int(starts[axis][i])
            stop = start + int(partition[axis][i])
            low = max(0, start - before[axis])
            high = min(shape[axis], stop + after[axis])
            outer.append(slice(low, high))
            core.append(slice(start - low, stop - low))
            region.append(slice(start, stop))
        yield Block(index, None, tuple(core), tuple(region), tuple(i == 0 for i in index),
                    tuple(i == n - 1 for i, n in zip(index, grid)), tuple(outer))


def runs(sizes: "Sequence[int]", minimum: int) -> "tuple[int, ...]":
    """Consecutive chunk sizes merged into runs of at least `minimum` (the last one may be shorter)."""
    merged, current = [], 0
    for size in sizes:
        current += size
        if current >= minimum:
            merged.append(current)
            current = 0
    if current:
        merged.append(current)
    return tuple(merged)
