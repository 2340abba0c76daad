"""Pore and throat geometry of a watershed partition: PoreSpy's `regions_to_network`
(``accuracy='standard'``) computed for all regions at once, equal to it and faster.

PoreSpy visits the regions one by one: for each it takes the distance transform of the region
alone, its centre of mass, and the region's neighbours through a dilation of its box. Here:

- the distance transforms of all regions come from one multi-label EDT of the region image (the
  ``edt`` package treats each label as its own object, as the padded per-region call does);
- centres of mass are sums of voxel coordinates per label (exact integer sums in float64,
  divided as scipy divides them);
- throats are the face-adjacent voxel pairs of two different regions: the throat of regions
  i < j is made of the voxels of j that touch i, as in PoreSpy's dilation of region i.

The per-region loop that remains only takes maxima over boxes. `tests/test_regions_network.py`
checks every output array against PoreSpy's on rock and random volumes, and
`benchmarks/bench_snow_peaks.py` times both.
"""

import numpy as np
from scipy import ndimage


def regions_to_network(regions: np.ndarray, phases: np.ndarray, voxel_size: float = 1.0) -> dict:
    """`porespy.networks.regions_to_network(regions, phases, voxel_size, accuracy='standard')`.

    Parameters
    ----------
    regions : ndarray of int
        The watershed partition (0 = not a pore region), 2D or 3D.
    phases : ndarray of int
        The phase of each voxel, the shape of `regions` (1 everywhere in a one-phase image).
    voxel_size : float
        Side of a voxel; lengths, areas and volumes are scaled by it.

    Returns
    -------
    dict
        The network in OpenPNM form, with the same keys and values as PoreSpy's.
    """
    import edt
    from porespy.tools import get_edt

    im = _contiguous(regions)
    if im.size != phases.size:
        raise ValueError("regions and phases have different sizes")
    ndim, voxel_size = im.ndim, float(voxel_size)
    porespy_edt = get_edt()
    dt = np.zeros(phases.shape, dtype="float32")
    for value in np.unique(phases[phases.nonzero()]):
        dt += porespy_edt(phases == value)
    # The distance of each region's voxels to the nearest voxel outside the region.
    own_dt = edt.edt(im, black_border=True, parallel=1)
    n_pores = int(im.max())
    flat = im.ravel()
    inside = np.flatnonzero(flat)
    labels = flat[inside]
    counts = np.bincount(labels, minlength=n_pores + 1)[1:]
    coords = np.unravel_index(inside, im.shape)
    slices = ndimage.find_objects(im)

    p_coords_cm = np.zeros((n_pores, ndim))
    p_coords_dt_global = np.zeros((n_pores, ndim))
    p_dia_global = np.zeros(n_pores)
    p_label = np.arange(1, n_pores + 1)
    boxes = [tuple(slice(max(b.start - 1, 0), min(b.stop + 1, n)) for b, n in zip(box, im.shape)) for box in slices]
    offsets = np.array([[b.start for b in box] for box in boxes], dtype=int).reshape(-1, ndim)  # extend_slice
    for axis in range(ndim):
        # scipy sums the box coordinates in float64 (exact for integers) and divides by the count.
        local = np.bincount(labels, coords[axis], minlength=n_pores + 1)[1:] - counts * offsets[:, axis]
        p_coords_cm[:, axis] = local / counts + offsets[:, axis]
    # The first voxel (C order) of each region where its own distance is largest.
    values = own_dt.ravel()[inside]
    largest = np.full(n_pores + 1, -np.inf, dtype=values.dtype)
    np.maximum.at(largest, labels, values)
    p_dia_local = 2 * largest[1:].astype(float)
    at_peak = values == largest[labels]
    first = _first_of_each(labels[at_peak], inside[at_peak], n_pores + 1)
    # PoreSpy finds it in the region's box padded by one voxel, and keeps that frame's index.
    p_coords_dt = np.array(np.unravel_index(first[1:], im.shape), dtype=float).T.reshape(n_pores, ndim) + 1
    p_area_surf = np.bincount(labels[values == 1], minlength=n_pores + 1)[1:].astype(int)
    phase_of = np.zeros(n_pores + 1, dtype=phases.dtype)
    np.maximum.at(phase_of, labels, phases.ravel()[inside])
    p_phase = phase_of[1:].astype(int)
    peaks = np.zeros(n_pores, dtype=int)
    for pore, box in enumerate(boxes):
        sub_dt = dt[box]
        peaks[pore] = np.argmax(sub_dt)  # the first largest, in C order
        p_dia_global[pore] = 2 * sub_dt.flat[peaks[pore]]
    sizes = np.array([[b.stop - b.start for b in box] for box in boxes], dtype=int).reshape(-1, ndim)
    for axis in reversed(range(ndim)):
        peaks, p_coords_dt_global[:, axis] = np.divmod(peaks, sizes[:, axis])
    p_coords_dt_global += offsets

    conns, throat_voxels = _throats(im)
    t_dt = dt.ravel()[throat_voxels[:, 1]]
    n_throats = len(conns)
    key = throat_voxels[:, 0]
    t_area = np.bincount(key, minlength=n_throats)
    t_max = np.full(n_throats, -np.inf, dtype="float32")
    np.maximum.at(t_max, key, t_dt)
    t_perimeter = np.bincount(key[t_dt < 2], minlength=n_throats)
    at_max = t_dt == t_max[key]
    t_first = _first_of_each(key[at_max], throat_voxels[at_max, 1], n_throats)
    t_coords = np.array(np.unravel_index(t_first, im.shape)).T.reshape(n_throats, ndim)
    np.subtract.at(p_area_surf, conns[:, 0], t_area)

    return _as_network(im, conns, p_coords_cm, p_coords_dt, p_coords_dt_global, counts, p_dia_local,
                       p_dia_global, p_label, p_area_surf, p_phase, 2 * t_max, t_area, t_perimeter,
                       t_coords, voxel_size)


def _first_of_each(groups: np.ndarray, where: np.ndarray, n: int) -> np.ndarray:
    """For each group 0..n-1, its first `where` (in the order given, C order here; -1 if none)."""
    first = np.full(n, -1)
    found, at = np.unique(groups, return_index=True)
    first[found] = where[at]
    return first


def _throats(im: np.ndarray) -> "tuple[np.ndarray, np.ndarray]":
    """The throats (i, j), i < j, in PoreSpy's order (by i, then j; pores counted from 0), and
    their voxels: rows (throat, flat index) of every voxel of region j face-adjacent to region
    i, once each, by throat then in C order."""
    lows, highs, voxels = [], [], []
    for axis in range(im.ndim):
        a = [slice(None)] * im.ndim
        b = [slice(None)] * im.ndim
        a[axis], b[axis] = slice(None, -1), slice(1, None)
        la, lb = im[tuple(a)], im[tuple(b)]
        where = np.nonzero((la != lb) & (la > 0) & (lb > 0))
        la, lb = la[where], lb[where]
        ia = np.ravel_multi_index(where, im.shape)
        ib = ia + int(np.prod(im.shape[axis + 1:]))  # the next voxel along `axis`
        # The throat voxel is the one in the region with the larger label.
        lows.append(np.minimum(la, lb))
        highs.append(np.maximum(la, lb))
        voxels.append(np.where(la > lb, ia, ib))
    low, high, voxel = (np.concatenate(v).astype(np.int64) for v in (lows, highs, voxels))
    # Sorted by i, j, then voxel (C order), each voxel once.
    n, size = int(im.max()) + 1, im.size
    if n * n * size < 2 ** 63:  # one int64 key per row: a 1D sort, much faster
        key = np.unique((low * n + high) * size + voxel)
        rows = np.stack([key // size // n, key // size % n, key % size], 1)
    else:
        rows = np.unique(np.stack([low, high, voxel], 1), axis=0)
    pairs, throat = np.unique(rows[:, 0] * n + rows[:, 1], return_inverse=True)
    conns = np.stack([pairs // n, pairs % n], 1) - 1
    return conns.astype(int), np.stack([throat.ravel(), rows[:, 2]], 1)


def _contiguous(regions: np.ndarray) -> np.ndarray:
    """PoreSpy's `make_contiguous` (zeros kept, the other labels renumbered 1, 2, ... in
    order) for labels >= 0, through a lookup table instead of a sort."""
    if regions.size and regions.min() < 0:
        from porespy.tools import make_contiguous

        return make_contiguous(regions)
    present = np.zeros(int(regions.max(initial=0)) + 1, dtype=bool)
    present[regions] = True
    table = np.cumsum(present) - present[0]
    # 32-bit labels: half the memory traffic, and the multi-label EDT is twice as fast on them.
    return table.astype(np.uint32 if table[-1] < 2 ** 32 else np.int64)[regions]


def _as_network(im, conns, p_coords_cm, p_coords_dt, p_coords_dt_global, p_volume, p_dia_local, p_dia_global,
                p_label, p_area_surf, p_phase, t_dia_inscribed, t_area, t_perimeter, t_coords, voxel_size) -> dict:
    """The network dictionary, keys and formulas as in PoreSpy's `regions_to_network`."""
    ndim = im.ndim
    n_pores, n_throats = len(p_label), len(conns)
    p_coords = p_coords_cm
    t_coords = np.asarray(t_coords, dtype=float)
    if ndim == 2:
        p_coords = np.vstack((p_coords_cm.T, np.zeros(n_pores))).T
        t_coords = np.vstack((t_coords.T, np.zeros(n_throats))).T
    if n_throats == 0:
        t_coords, conns = np.empty((0, 3)), np.empty((0, 2), dtype=int)
    net = {"throat.conns": np.asarray(conns), "pore.coords": np.array(p_coords) * voxel_size}
    net["pore.all"] = np.ones_like(net["pore.coords"][:, 0], dtype=bool)
    net["throat.all"] = np.ones_like(net["throat.conns"][:, 0], dtype=bool)
    net["pore.region_label"] = p_label
    net["pore.phase"] = p_phase
    net["throat.phases"] = net["pore.phase"][net["throat.conns"]]
    volume = np.asarray(p_volume, dtype=float) * voxel_size ** ndim
    net["pore.region_volume"] = volume
    f = 3 / 4 if ndim == 3 else 1.0
    net["pore.equivalent_diameter"] = 2 * (volume / np.pi * f) ** (1 / ndim)
    net["pore.local_peak"] = p_coords_dt * voxel_size
    net["pore.global_peak"] = p_coords_dt_global * voxel_size
    net["pore.geometric_centroid"] = p_coords_cm * voxel_size
    net["throat.global_peak"] = t_coords * voxel_size
    net["pore.inscribed_diameter"] = p_dia_local * voxel_size
    net["pore.extended_diameter"] = p_dia_global * voxel_size
    net["throat.inscribed_diameter"] = t_dia_inscribed * voxel_size
    p12 = net["throat.conns"]
    pt1 = np.sqrt(np.sum(((p_coords[p12[:, 0]] - t_coords) * voxel_size) ** 2, axis=1))
    pt2 = np.sqrt(np.sum(((p_coords[p12[:, 1]] - t_coords) * voxel_size) ** 2, axis=1))
    net["throat.total_length"] = pt1 + pt2
    dist = (p_coords[p12[:, 0]] - p_coords[p12[:, 1]]) * voxel_size
    net["throat.direct_length"] = np.sqrt(np.sum(dist ** 2, axis=1, dtype=np.float64))
    net["throat.perimeter"] = t_perimeter * voxel_size
    net["pore.volume"] = volume.copy()  # its own array, as in PoreSpy
    net["pore.surface_area"] = p_area_surf * voxel_size ** 2
    area = t_area * voxel_size ** 2
    net["throat.cross_sectional_area"] = area
    net["throat.equivalent_diameter"] = (4 * area / np.pi) ** (1 / 2)
    net["param.voxel_size"] = np.asarray(voxel_size)
    net["param.ndim"] = np.asarray(ndim)
    return net
