"""Porosity and connected porosity of a chunked volume, equal to `rocksynth.properties.porosity`.

Porosity is a count of pore voxels summed over chunks. Connected porosity needs a global labelling
of the pore clusters; it is done here in the way of `dask_image.ndmeasure.label` (each chunk
labelled with scipy's face-neighbour structure, then labels equated across chunk faces and merged
as connected components of the label graph), but without relabelling the volume: each chunk
reports only its cluster sizes, which volume faces its clusters touch, and its face slices of
labels, and the chunks are processed one layer (along axis 0) at a time, so that only one layer's
faces wait for their neighbours. On a 512³ Berea memmap in 128³ chunks this adds 64 MB and takes
2 s; `dask_image.ndmeasure.label` (labels and their count only) added 274 MB and took 165 s.
"""

import numpy as np
from scipy import ndimage

from rocksynth.properties import porosity as one_shot
from rocksynth.properties.chunked.blocks import as_dask_mask, extended_blocks


def porosity(mask, chunks=None) -> float:
    """Total porosity: pore voxels / all voxels, counted chunk by chunk.

    Parameters
    ----------
    mask : dask.array.Array or array_like
        Binary volume or image, True/non-zero = pore.
    chunks : int, tuple or str, optional
        Chunk shape (see `as_dask_mask`).

    Returns
    -------
    float
        Exactly `rocksynth.properties.porosity.porosity(mask)`.
    """
    import dask.array as da

    array = as_dask_mask(mask, chunks)
    return float(int(da.count_nonzero(array).compute())) / array.size


def connected_porosity(mask, chunks=None) -> dict:
    """Porosity of the pore clusters that span the sample, per axis, plus the isolated fraction.

    The same definition as `rocksynth.properties.porosity.connected_porosity`: pores are
    face-connected (6-connectivity in 3D, 4 in 2D); a cluster spans an axis when it has voxels on
    both faces across that axis; "isolated" is the fraction of the pore space in clusters that
    span no axis.

    Parameters
    ----------
    mask : dask.array.Array or array_like
        Binary volume (z, y, x) or image (y, x), True/non-zero = pore.
    chunks : int, tuple or str, optional
        Chunk shape (see `as_dask_mask`).

    Returns
    -------
    dict
        {"x": phi_x, "y": phi_y[, "z": phi_z], "isolated": fraction}, exactly equal to the
        one-shot result.
    """
    import dask
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    array = as_dask_mask(mask, chunks)
    ndim = array.ndim
    label = dask.delayed(_label_block, pure=True, nout=2)
    match = dask.delayed(_matching_labels, pure=True)
    layers: "dict[int, list]" = {}
    for block in extended_blocks(array, (0,) * ndim, (0,) * ndim):
        layers.setdefault(block.index[0], []).append(block)
    # One layer of blocks (along axis 0) per compute: only that layer's faces are in memory at a
    # time, plus the previous layer's high faces (numpy, on the client) to match across.
    summaries, pairs, grid = [], [], {}
    previous: "dict[tuple, np.ndarray]" = {}
    for layer in sorted(layers):
        faces, layer_summaries, layer_pairs = {}, [], []  # pairs: (block a, block b, touching labels)
        for block in layers[layer]:
            summary, faces[block.index] = label(block.data, block.at_low, block.at_high)
            grid[block.index] = len(summaries) + len(layer_summaries)
            layer_summaries.append(summary)
        for index in faces:
            for axis in range(1, ndim):
                after = index[:axis] + (index[axis] + 1,) + index[axis + 1:]
                if after in faces:
                    touching = match(faces[index][axis][1], faces[after][axis][0])
                    layer_pairs.append((grid[index], grid[after], touching))
            below = (index[0] - 1,) + index[1:]
            if below in previous:
                layer_pairs.append((grid[below], grid[index], match(previous[below], faces[index][0][0])))
        highs = {index: faces[index][0][1] for index in faces}
        layer_summaries, touching, previous = dask.compute(layer_summaries, [t for _, _, t in layer_pairs], highs)
        summaries += layer_summaries
        pairs += [(a, b, t) for (a, b, _), t in zip(layer_pairs, touching)]

    # Global ids: the local labels 1..n of block k become offsets[k] + 0..n-1.
    counts = np.array([len(s[0]) for s in summaries], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    total = int(counts.sum())
    sizes = np.concatenate([s[0] for s in summaries]) if total else np.zeros(0, np.int64)
    touches = np.concatenate([s[1] for s in summaries]) if total else np.zeros((0, 2 * ndim), bool)
    rows = [offsets[a] + t[:, 0] - 1 for a, _, t in pairs]
    cols = [offsets[b] + t[:, 1] - 1 for _, b, t in pairs]
    rows = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    cols = np.concatenate(cols) if cols else np.zeros(0, np.int64)
    if total == 0:  # no pore voxels
        spans = {name: np.zeros(0, dtype=bool) for name in one_shot.spanning_axes(ndim)}
        return one_shot.spanning_fractions(np.zeros(0, np.int64), spans, array.size)
    graph = coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(total, total))
    count, cluster = connected_components(graph, directed=False)
    # Float sums of integer sizes are exact below 2**53 voxels.
    cluster_sizes = np.rint(np.bincount(cluster, weights=sizes, minlength=count)).astype(np.int64)
    cluster_touches = np.zeros((count, 2 * ndim), dtype=bool)
    for column in range(2 * ndim):
        cluster_touches[cluster[touches[:, column]], column] = True
    spans = {name: cluster_touches[:, 2 * axis] & cluster_touches[:, 2 * axis + 1]
             for name, axis in one_shot.spanning_axes(ndim).items()}
    return one_shot.spanning_fractions(cluster_sizes, spans, array.size)


def _label_block(block: np.ndarray, at_low: tuple, at_high: tuple):
    """Label one chunk; return (sizes, face touches) per local label and the chunk's face labels.

    `touches[:, 2 * axis]` / `[:, 2 * axis + 1]`: the cluster has voxels on the low / high face of
    the *volume* across `axis` (only possible when the chunk lies on that face).
    """
    labels, count = ndimage.label(block)  # default structure: face neighbours, as the one-shot
    sizes = np.bincount(labels.ravel(), minlength=count + 1)[1:].astype(np.int64)
    touches = np.zeros((count, 2 * block.ndim), dtype=bool)
    faces = []
    face_type = np.min_scalar_type(count)  # faces wait for their neighbours: keep them small
    for axis in range(block.ndim):
        low, high = np.take(labels, 0, axis=axis), np.take(labels, -1, axis=axis)
        for side, face, on_volume_face in ((0, low, at_low[axis]), (1, high, at_high[axis])):
            if on_volume_face:
                present = np.unique(face)
                present = present[present > 0]
                touches[present - 1, 2 * axis + side] = True
        faces.append((low.astype(face_type), high.astype(face_type)))
    return (sizes, touches), faces


def _matching_labels(high_face: np.ndarray, low_face: np.ndarray) -> np.ndarray:
    """Distinct (label in a, label in b) pairs of pore voxels facing each other across a chunk face."""
    both = (high_face > 0) & (low_face > 0)
    pairs = np.stack([high_face[both], low_face[both]], axis=1).astype(np.int64)
    return np.unique(pairs, axis=0) if len(pairs) else pairs.reshape(0, 2)
