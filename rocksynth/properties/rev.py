"""Representative elementary volume (REV): is the scan big enough for its measures?

Each image measure is taken on subvolumes of growing side L, two ways:

- the *growing cube*: one cube of side L centred in the volume (a square in 2D);
- the *grid*: the volume tiled with disjoint L-cubes (all of them, or a seeded random choice of at
  most `max_cubes`), with the mean, standard deviation and number of cubes.

Where the standard deviation over the grid has shrunk to a small fraction of the mean, one cube of
that side already gives the property of the whole scan. The measures are porosity, specific
surface S_V (perimeter density in 2D), Euler density (Minkowski functionals) and the correlation
length (S2). The pore network and the permeability are not measured: one network extraction takes
minutes, hundreds of them would take hours.

Subvolumes of at most `IN_MEMORY_VOXELS` are read into memory (several per dask compute, so a
chunk of a lazy volume is read once for many cubes) and measured with the one-shot functions;
larger ones stay lazy and are measured chunk by chunk (`rocksynth.properties.chunked`, equal to
the one-shot results). Memory is bounded by that budget and the chunk, not by the volume.
"""

import time
from typing import Iterator

import numpy as np

from rocksynth.errors import BadInputError

SMALLEST_SIZE = 32  # below it S2 has too few lags for a correlation length and Euler counts are a handful
SIZE_COUNT = 8
SIZE_STEP = 8  # sizes between the first and the last are rounded to a multiple of this
MAX_CUBES = 64
TOLERANCE = 0.05  # relative sd of the grid below which a size is called representative
IN_MEMORY_VOXELS = 256 ** 3  # 16 MB as bool; larger subvolumes are measured lazily
R_MAX = 100  # largest S2 lag, as `analyze` (and at most L / 2)


def rev_sizes(shape: "tuple[int, ...]", count: int = SIZE_COUNT, smallest: int = SMALLEST_SIZE) -> "list[int]":
    """Sides of the subvolumes: a geometric series from `smallest` to the smallest side of the volume.

    L_k = smallest * (M / smallest) ** (k / (count - 1)) for k = 0 .. count - 1, M the smallest
    side; the inner sizes are rounded to a multiple of 8, the last is M itself, and repeats are
    dropped (a volume of side 400 gets 32, 48, 64, 96, 136, 192, 280, 400).

    Parameters
    ----------
    shape : tuple of int
        Shape of the volume (z, y, x) or image (y, x).
    count : int
        Number of sizes at most (fewer when the volume is small).
    smallest : int
        First side, in voxels.

    Returns
    -------
    list of int
        Increasing sides in voxels.

    Raises
    ------
    BadInputError
        If the smallest side of the volume is below `smallest`.
    """
    side = int(min(shape))
    if side < smallest:
        raise BadInputError(f"--rev needs at least {smallest} voxels along every axis; this image is "
                            f"{'x'.join(map(str, shape))}")
    ratio = side / smallest
    sizes = [smallest] + [int(SIZE_STEP * round(smallest * ratio ** (k / (count - 1)) / SIZE_STEP))
                          for k in range(1, count - 1)] + [side]
    return sorted({min(max(s, smallest), side) for s in sizes})


def centred_cube(shape: "tuple[int, ...]", size: int) -> "tuple[slice, ...]":
    """The slices of the cube (square) of side `size` centred in an array of `shape`."""
    return tuple(slice((n - size) // 2, (n - size) // 2 + size) for n in shape)


def grid_cubes(shape: "tuple[int, ...]", size: int, max_cubes: int = MAX_CUBES,
               seed: int = 0) -> "tuple[list[tuple[slice, ...]], int]":
    """Disjoint cubes of side `size` tiling the array (the grid centred), at most `max_cubes` of them.

    Returns the chosen cubes' slices (a seeded random choice when the grid holds more than
    `max_cubes`, in array order) and the number of cubes in the whole grid.
    """
    counts = [n // size for n in shape]
    offsets = [(n - c * size) // 2 for n, c in zip(shape, counts)]  # leftover split between both ends
    total = int(np.prod(counts))
    chosen = np.arange(total)
    if total > max_cubes:
        chosen = np.sort(np.random.default_rng(seed).choice(total, max_cubes, replace=False))
    cubes = []
    for flat in chosen:
        index = np.unravel_index(flat, counts)
        cubes.append(tuple(slice(o + i * size, o + (i + 1) * size) for o, i in zip(offsets, index)))
    return cubes, total


def rev_analysis(mask, voxel_size: "float | None" = None, sizes: "list[int] | None" = None,
                 max_cubes: int = MAX_CUBES, tolerance: float = TOLERANCE, seed: int = 0,
                 on_size=None) -> dict:
    """Image measures over growing centred cubes and over grids of disjoint cubes.

    Parameters
    ----------
    mask : numpy.ndarray or dask.array.Array
        Binary volume (z, y, x) or image (y, x), True/non-zero = pore. A dask array is read
        only cube by cube.
    voxel_size : float, optional
        Voxel edge in metres; lengths and densities are then in metres, else in voxels.
    sizes : list of int, optional
        Cube sides in voxels (default `rev_sizes(mask.shape)`: 32 up to the smallest side, 8
        sizes in a geometric series).
    max_cubes : int
        Largest number of grid cubes measured per size (a seeded random choice beyond it).
    tolerance : float
        A property is called representative at the smallest size whose grid has at least two
        cubes along every axis and whose relative standard deviation (sd / mean) is below this.
    seed : int
        Seed of the random choice of grid cubes.
    on_size : callable, optional
        `on_size(size)` as each size starts (progress display).

    Returns
    -------
    dict
        JSON-ready: `sizes_voxels`, `sizes_m`, per property (`properties[name]`) the unit, the
        growing-cube values and the grid `mean`, `sd`, `relative_sd` and `n` per size, the
        representative size per property (`rev_size_voxels`, `rev_size_m`; None if not reached),
        the grid sizes and the rules used.

    Raises
    ------
    BadInputError
        If the image is not 2D or 3D, a size is out of range or the tolerance is not positive.
    """
    shape = tuple(int(n) for n in mask.shape)
    if len(shape) not in (2, 3):
        raise BadInputError(f"--rev needs a 2D image or a 3D volume, got {len(shape)}D")
    sizes = rev_sizes(shape) if sizes is None else _checked_sizes(sizes, shape)
    if not tolerance > 0:
        raise BadInputError(f"the REV tolerance must be a positive fraction (0.05 = 5 %), got {tolerance}")
    start = time.perf_counter()
    names = _property_names(len(shape))
    growing, grids, totals = [], [], []
    for size in sizes:
        if on_size:
            on_size(size)
        growing.append(_measure(_read(mask, [centred_cube(shape, size)])[0], voxel_size))
        cubes, total = grid_cubes(shape, size, max_cubes, seed)
        if total == 1:  # the one grid cube is the centred cube: measured already
            grids.append([growing[-1]])
        else:
            grids.append([_measure(cube, voxel_size) for cube in _read_batches(mask, cubes)])
        totals.append(total)
    properties = {name: _property_table(name, growing, grids, voxel_size, len(shape)) for name in names}
    enough = [all(n // s >= 2 for n in shape) for s in sizes]  # a sd needs a few cubes per axis
    rev_size = {name: _first_size_below(sizes, properties[name]["relative_sd"], enough, tolerance) for name in names}
    return {
        "sizes_voxels": sizes,
        "sizes_m": [s * voxel_size for s in sizes] if voxel_size else None,
        "properties": properties,
        "grid_cubes_total": totals,
        "max_cubes": max_cubes,
        "seed": seed,
        "tolerance": tolerance,
        "rev_size_voxels": rev_size,
        "rev_size_m": {k: (v * voxel_size if v is not None and voxel_size else None) for k, v in rev_size.items()},
        "rules": {
            "sizes": "geometric series from 32 voxels to the smallest side, 8 sizes, inner ones rounded to 8",
            "growing": "one cube (square in 2D) of side L centred in the volume",
            "grid": f"disjoint L-cubes tiling the volume (grid centred); a seeded random {max_cubes} when more",
            "sd": "sample standard deviation (ddof = 1) over the grid cubes; relative sd = sd / |mean|",
            "rev_size": f"smallest L with at least 2 grid cubes along every axis and relative sd < {tolerance:g}",
            "correlation_length": f"per cube with r_max = min({R_MAX}, L / 2); cubes where S2 does not reach "
                                  "phi^2 within r_max are left out of the mean (see missing)",
            "not_measured": "pore network and permeability (minutes per subvolume)",
        },
        "seconds": round(time.perf_counter() - start, 3),
    }


def _checked_sizes(sizes, shape) -> "list[int]":
    sizes = sorted({int(s) for s in sizes})
    if not sizes or sizes[0] < 2 or sizes[-1] > min(shape):
        raise BadInputError(f"REV sizes must be between 2 and the smallest side {min(shape)}, got {sizes}")
    return sizes


def _property_names(ndim: int) -> "list[str]":
    surface = "surface_density" if ndim == 3 else "perimeter_density"
    return ["porosity", surface, "euler_density", "correlation_length"]


def _read(mask, cubes: "list[tuple[slice, ...]]") -> list:
    """The cubes as numpy arrays, in one dask compute (a lazy cube larger than the budget stays lazy)."""
    import dask

    voxels = int(np.prod([s.stop - s.start for s in cubes[0]]))
    if voxels > IN_MEMORY_VOXELS:
        from rocksynth.properties.chunked import as_dask_mask

        return [as_dask_mask(mask)[cube] for cube in cubes]
    if not hasattr(mask, "dask"):
        return [np.asarray(mask[cube]) for cube in cubes]  # numpy: views, no copy
    return list(dask.compute(*[mask[cube] for cube in cubes]))


def _read_batches(mask, cubes: "list[tuple[slice, ...]]") -> Iterator:
    """The cubes, read as many per compute as fit in `IN_MEMORY_VOXELS` (at least one)."""
    if not cubes:
        return
    voxels = int(np.prod([s.stop - s.start for s in cubes[0]]))
    per_batch = max(1, IN_MEMORY_VOXELS // voxels)
    for first in range(0, len(cubes), per_batch):
        yield from _read(mask, cubes[first:first + per_batch])


def _measure(cube, voxel_size: "float | None") -> dict:
    """Porosity, S_V (perimeter density in 2D), Euler density and correlation length of one cube.

    A numpy cube is measured with the one-shot functions, a lazy (dask) one chunk by chunk with
    the chunked functions, which give the same numbers.
    """
    from rocksynth.properties import chunked
    from rocksynth.properties import correlation, minkowski
    from rocksynth.properties.porosity import as_mask, porosity

    r_max = min(R_MAX, min(cube.shape) // 2)
    if hasattr(cube, "dask"):
        phi = chunked.porosity(cube)
        functionals = chunked.minkowski_functionals(cube, voxel_size=voxel_size)
        s2 = chunked.two_point_correlation_axes(cube, r_max).mean(axis=0)
    else:
        cube = as_mask(cube)
        phi = porosity(cube)
        functionals = minkowski.minkowski_functionals(cube, voxel_size=voxel_size)
        s2 = correlation.two_point_correlation_axes(cube, r_max).mean(axis=0)
    s2[0] = phi  # exact, not FFT-rounded (as `analyze`)
    length = correlation.correlation_length(s2)
    surface = "surface_density" if cube.ndim == 3 else "perimeter_density"
    return {
        "porosity": phi,
        surface: functionals[surface],
        "euler_density": functionals["euler_density"],
        "correlation_length": None if length is None else length * (voxel_size or 1.0),
    }


def _property_table(name: str, growing: "list[dict]", grids: "list[list[dict]]", voxel_size, ndim: int) -> dict:
    """Growing-cube values and grid statistics of one property, one entry per size."""
    table: dict = {"unit": _unit(name, voxel_size, ndim), "growing": [g[name] for g in growing],
                   "mean": [], "sd": [], "relative_sd": [], "n": [], "missing": []}
    for cubes in grids:
        values = np.array([c[name] for c in cubes if c[name] is not None], dtype=float)
        mean = float(values.mean()) if len(values) else None
        sd = float(values.std(ddof=1)) if len(values) >= 2 else None
        table["mean"].append(mean)
        table["sd"].append(sd)
        table["relative_sd"].append(sd / abs(mean) if sd is not None and mean else None)
        table["n"].append(len(values))
        table["missing"].append(len(cubes) - len(values))
    return table


def _unit(name: str, voxel_size, ndim: int) -> str:
    length = "m" if voxel_size else "voxel"
    return {"porosity": "-", "surface_density": f"{length}^-1", "perimeter_density": f"{length}^-1",
            "euler_density": f"{length}^-{ndim}", "correlation_length": length}[name]


def _first_size_below(sizes, relative_sd, enough, tolerance) -> "int | None":
    for size, value, ok in zip(sizes, relative_sd, enough):
        if ok and value is not None and value < tolerance:
            return size
    return None
