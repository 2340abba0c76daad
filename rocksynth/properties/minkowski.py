"""Minkowski functionals (intrinsic volumes) of the pore phase, after Legland, Kiêu & Devaux (2011).

Method: every 2x2x2 block of neighbouring voxels (a "configuration", one of 256) is counted once
in a histogram; each functional is then the dot product of that histogram with a look-up table
giving the contribution of each configuration. The tables are derived here from the geometry of
the unit cell, not typed in:

- volume: pore corners / 8 (each voxel belongs to 8 blocks);
- surface area: Crofton formula over the 13 lattice directions. A pore/solid pair of voxels along
  direction v crosses the surface once; S = 2 * sum_d c_d * N_d / |v_d|, where N_d counts those
  pairs and c_d is the fraction of the unit sphere closest to +-d (spherical Voronoi areas of the
  26 neighbour directions; the c_d sum to 1). A pair along an axis lies in 4 blocks, along a face
  diagonal in 2, along the body diagonal in 1, hence the weights 1/4, 1/2, 1;
- mean breadth: Crofton formula for planar sections. For each of the 13 directions, planes normal
  to it through lattice points are spaced 1/|u x v| apart (u, v lattice vectors spanning them) and
  b = sum_d c_d * spacing_d * sum_planes chi(section). The sections inside a block are its 6
  square faces (each shared by 2 blocks), its 6 1 x sqrt2 rectangles (face-diagonal normals) and
  its 8 triangles (body-diagonal normals). Square and rectangular tiles use 8-connectivity
  (a polygonal reconstruction, as Legland et al.) unless `section_connectivity=4`;
- Euler characteristic of the pore phase with 6-connectivity: chi = V/8 - E/4 + F/2 - C over the
  cubical complex (voxel corners, edges between face neighbours, full squares, full cubes); with
  26-connectivity, by digital duality, the 6-connected contribution of the complementary block.

The integral of mean curvature is M = 2 pi b (b: mean breadth).

Two ways of treating the image border:
- `closed=False` (default, for rock samples): the image is a window into a larger medium; only
  blocks inside the image are counted and the faces of the box are not surface. Densities are
  totals divided by the window volume (nz-1)(ny-1)(nx-1) voxels (the box of voxel centres),
  which is the unbiased estimator of Legland et al.
- `closed=True` (for objects): the image is padded with solid, so the pore phase is a closed
  object (a ball in a box has its full area, and its Euler number is 1).
"""

import itertools
from functools import lru_cache

import numpy as np

from rocksynth.errors import BadInputError
from rocksynth.properties.porosity import as_mask

# Corner k of a 2x2x2 block is (z, y, x) = bits of k: z = bit 2, y = bit 1, x = bit 0.
_CORNERS = np.array([((k >> 2) & 1, (k >> 1) & 1, k & 1) for k in range(8)])


def _corner_index(point) -> int:
    z, y, x = point
    return 4 * z + 2 * y + x


def _configurations() -> np.ndarray:
    """(256, 8) bool: which corners are pore in each configuration."""
    return (np.arange(256)[:, None] >> np.arange(8)[None, :]) & 1 == 1


@lru_cache(maxsize=None)
def _direction_weights() -> "dict[tuple, float]":
    """c_d for each of the 13 directions (keyed by a canonical integer vector), summing to 1."""
    from scipy.spatial import SphericalVoronoi

    vectors = [v for v in itertools.product((-1, 0, 1), repeat=3) if any(v)]
    unit = np.array(vectors, float)
    unit /= np.linalg.norm(unit, axis=1)[:, None]
    areas = SphericalVoronoi(unit).calculate_areas() / (4 * np.pi)
    weights: "dict[tuple, float]" = {}
    for vector, area in zip(vectors, areas):
        key = _canonical(vector)
        weights[key] = weights.get(key, 0.0) + float(area)
    return weights


def _canonical(vector) -> tuple:
    """v and -v are the same direction: keep the one whose first non-zero entry is positive."""
    vector = tuple(int(c) for c in vector)
    first = next(c for c in vector if c != 0)
    return vector if first > 0 else tuple(-c for c in vector)


def _quad_euler(present: np.ndarray, connectivity: int) -> np.ndarray:
    """Euler contribution of a quadrilateral tile (corners in cyclic order, shape (n, 4)).

    Vertices count 1/4 (4 tiles meet at a lattice point), sides -1/2 (2 tiles share a side);
    with 8-connectivity a diagonal joining two opposite corners (-1) and the triangle or square
    they span (+1) are part of the tile.
    """
    n = present.sum(axis=1)
    sides = sum(present[:, i] & present[:, (i + 1) % 4] for i in range(4))
    chi = n / 4 - sides / 2 + (n == 4)
    if connectivity == 8:
        # Two opposite corners alone are joined by a diagonal edge (-1). With three corners the
        # diagonal (-1) and the triangle it closes (+1) cancel, so only this case changes.
        opposite = (n == 2) & ((present[:, 0] & present[:, 2]) | (present[:, 1] & present[:, 3]))
        chi = chi - opposite
    return chi


def _triangle_euler(present: np.ndarray) -> np.ndarray:
    """Euler contribution of a triangular tile: 6 triangles meet at a vertex, 2 share an edge."""
    n = present.sum(axis=1)
    edges = n * (n - 1) // 2
    return n / 6 - edges / 2 + (n == 3)


@lru_cache(maxsize=None)
def _lookup_tables(section_connectivity: int = 8) -> "dict[str, np.ndarray]":
    configs = _configurations()
    weights = _direction_weights()

    volume = configs.sum(axis=1) / 8.0

    # Surface: pore/solid pairs, each weighted by 1/(blocks sharing it) and its Crofton factor.
    surface = np.zeros(256)
    for a, b in itertools.combinations(range(8), 2):
        step = _CORNERS[b] - _CORNERS[a]
        blocks_sharing = {1: 4, 2: 2, 3: 1}[int(np.abs(step).sum())]
        crossing = configs[:, a] != configs[:, b]
        surface += crossing * 2 * weights[_canonical(step)] / np.linalg.norm(step) / blocks_sharing

    # Euler, 6-connectivity: vertices, axis edges, square faces, the cube.
    corners = configs.sum(axis=1)
    axis_edges = sum(configs[:, a] & configs[:, b] for a, b in itertools.combinations(range(8), 2)
                     if np.abs(_CORNERS[b] - _CORNERS[a]).sum() == 1)
    faces = _square_faces()
    full_faces = sum(configs[:, list(face)].all(axis=1) for face, _ in faces)
    euler6 = corners / 8 - axis_edges / 4 + full_faces / 2 - configs.all(axis=1)
    euler26 = euler6[255 - np.arange(256)]  # contribution of the complementary block

    # Mean breadth: Euler numbers of planar sections, Crofton over 13 directions.
    breadth = np.zeros(256)
    for face, normal in faces:  # axis normals, plane spacing 1, each face in 2 blocks
        breadth += weights[normal] * _quad_euler(configs[:, list(face)], section_connectivity) / 2
    for rectangle, normal in _diagonal_rectangles():  # face-diagonal normals, spacing 1/sqrt2
        breadth += weights[normal] * _quad_euler(configs[:, list(rectangle)], section_connectivity) / np.sqrt(2)
    for triangle, normal in _triangles():  # body-diagonal normals, spacing 1/sqrt3
        breadth += weights[normal] * _triangle_euler(configs[:, list(triangle)]) / np.sqrt(3)

    return {"volume": volume, "surface": surface, "breadth": breadth, "euler6": euler6, "euler26": euler26}


def _square_faces():
    """The 6 faces of the block: (corner indices in cyclic order, canonical normal)."""
    faces = []
    for axis in range(3):
        u, v = [a for a in range(3) if a != axis]
        for level in (0, 1):
            cycle = []
            for du, dv in ((0, 0), (1, 0), (1, 1), (0, 1)):
                point = [0, 0, 0]
                point[axis], point[u], point[v] = level, du, dv
                cycle.append(_corner_index(point))
            normal = [0, 0, 0]
            normal[axis] = 1
            faces.append((tuple(cycle), tuple(normal)))
    return faces


def _diagonal_rectangles():
    """The 6 rectangles spanned by one axis and one face diagonal of the block."""
    rectangles = []
    for axis in range(3):
        u, v = [a for a in range(3) if a != axis]
        for sign in (1, -1):
            start = [0, 0, 0]
            if sign < 0:
                start[v] = 1
            diagonal = [0, 0, 0]
            diagonal[u], diagonal[v] = 1, sign
            along = [0, 0, 0]
            along[axis] = 1
            p0 = np.array(start)
            cycle = [p0, p0 + diagonal, p0 + diagonal + along, p0 + along]
            normal = np.cross(diagonal, along)
            rectangles.append((tuple(_corner_index(p) for p in cycle), _canonical(normal)))
    return rectangles


def _triangles():
    """The 8 triangles cut from the block by planes normal to its 4 body diagonals."""
    triangles = []
    for normal in ((1, 1, 1), (1, 1, -1), (1, -1, 1), (-1, 1, 1)):
        levels = _CORNERS @ np.array(normal)
        for level in np.unique(levels):
            members = tuple(int(k) for k in np.nonzero(levels == level)[0])
            if len(members) == 3:
                triangles.append((members, _canonical(normal)))
    return triangles


def configuration_histogram(mask: np.ndarray, closed: bool = False, slab: int = 32) -> np.ndarray:
    """Counts of the 256 configurations of 2x2x2 blocks (z-slabs, so memory stays small)."""
    if closed:
        mask = np.pad(mask, 1)
    nz = mask.shape[0]
    histogram = np.zeros(256, dtype=np.int64)
    for start in range(0, nz - 1, slab):
        block = mask[start:min(start + slab + 1, nz)]
        code = np.zeros(tuple(s - 1 for s in block.shape), dtype=np.uint8)
        for k, (dz, dy, dx) in enumerate(_CORNERS):
            view = block[dz:dz + code.shape[0], dy:dy + code.shape[1], dx:dx + code.shape[2]]
            code |= view.view(np.uint8) << np.uint8(k)
        histogram += np.bincount(code.ravel(), minlength=256)
    return histogram


def minkowski_functionals(mask, voxel_size: "float | None" = None, connectivity: int = 6,
                          closed: bool = False, section_connectivity: int = 8) -> dict:
    """Volume, surface area, mean breadth, integral of mean curvature and Euler number of the pores.

    Totals are in voxel units, or metres when `voxel_size` (metres) is given; densities are per
    unit window volume. `connectivity` (6 or 26) is that of the pore phase for the Euler number.
    """
    mask = as_mask(mask)
    if mask.ndim == 2:
        return minkowski_functionals_2d(mask, voxel_size, connectivity=4 if connectivity == 6 else 8,
                                        closed=closed)
    check_volume(mask.shape, connectivity, closed)
    histogram = configuration_histogram(np.ascontiguousarray(mask), closed=closed)
    return functionals_from_histogram(histogram, mask.shape, voxel_size, connectivity, closed, section_connectivity)


def check_volume(shape: "tuple[int, ...]", connectivity: int, closed: bool) -> None:
    """Raise BadInputError unless a volume of `shape` can be measured with these options."""
    if len(shape) != 3:
        raise BadInputError(f"Minkowski functionals need a 2D or 3D image, got {len(shape)}D")
    if connectivity not in (6, 26):
        raise BadInputError(f"3D connectivity must be 6 or 26, got {connectivity}")
    if min(shape) < 2 and not closed:
        raise BadInputError(f"image {tuple(shape)} is too thin: need at least 2 voxels along each axis")


def functionals_from_histogram(histogram: np.ndarray, shape: "tuple[int, ...]", voxel_size: "float | None" = None,
                               connectivity: int = 6, closed: bool = False, section_connectivity: int = 8) -> dict:
    """The functionals of `minkowski_functionals` from the 256 configuration counts of a volume.

    `histogram` is `configuration_histogram(mask, closed)` of a volume of `shape` (or the sum of
    such counts over a partition of its 2x2x2 blocks: the counts are additive).
    """
    tables = _lookup_tables(section_connectivity)
    h = voxel_size or 1.0
    volume = float(histogram @ tables["volume"]) * h ** 3
    surface = float(histogram @ tables["surface"]) * h ** 2
    breadth = float(histogram @ tables["breadth"]) * h
    euler = float(histogram @ tables[f"euler{connectivity}"])
    window_voxels = float(np.prod(shape)) if closed else float(np.prod([s - 1 for s in shape]))
    window = window_voxels * h ** 3
    return {
        "volume": volume,
        "surface_area": surface,
        "mean_breadth": breadth,
        "integral_mean_curvature": 2 * np.pi * breadth,
        "euler": round(euler, 6),
        "window_volume": window,
        "volume_density": volume / window,
        "surface_density": surface / window,
        "mean_breadth_density": breadth / window,
        "integral_mean_curvature_density": 2 * np.pi * breadth / window,
        "euler_density": euler / window,
        "connectivity": connectivity,
        "closed": closed,
        "units": "m" if voxel_size else "voxel",
    }


# ---------------------------------------------------------------------------------------------
# 2D: area, perimeter (Crofton over 4 directions), Euler number, from 2x2 configurations.

_PIXELS = np.array([((k >> 1) & 1, k & 1) for k in range(4)])  # corner k = (y, x)


@lru_cache(maxsize=None)
def _lookup_tables_2d() -> "dict[str, np.ndarray]":
    configs = (np.arange(16)[:, None] >> np.arange(4)[None, :]) & 1 == 1
    area = configs.sum(axis=1) / 4.0
    # Crofton in the plane: P = (pi/2) * sum_d c_d N_d / |v_d| with 4 directions, c_d = 1/4.
    # Axis pairs lie in 2 blocks, diagonal pairs in 1.
    perimeter = np.zeros(16)
    for a, b in itertools.combinations(range(4), 2):
        step = _PIXELS[b] - _PIXELS[a]
        blocks_sharing = 2 if np.abs(step).sum() == 1 else 1
        crossing = configs[:, a] != configs[:, b]
        perimeter += crossing * (np.pi / 2) * 0.25 / np.linalg.norm(step) / blocks_sharing
    cycle = [0, 1, 3, 2]  # (0,0) (0,1) (1,1) (1,0)
    euler4 = _quad_euler(configs[:, cycle], 4)
    euler8 = _quad_euler(configs[:, cycle], 8)
    return {"area": area, "perimeter": perimeter, "euler4": euler4, "euler8": euler8}


def configuration_histogram_2d(mask: np.ndarray, closed: bool = False) -> np.ndarray:
    if closed:
        mask = np.pad(mask, 1)
    code = np.zeros((mask.shape[0] - 1, mask.shape[1] - 1), dtype=np.uint8)
    for k, (dy, dx) in enumerate(_PIXELS):
        code |= mask[dy:dy + code.shape[0], dx:dx + code.shape[1]].view(np.uint8) << np.uint8(k)
    return np.bincount(code.ravel(), minlength=16)


def minkowski_functionals_2d(mask, pixel_size: "float | None" = None, connectivity: int = 4,
                             closed: bool = False) -> dict:
    """Area, perimeter and Euler number (4- or 8-connected pores) of a 2D image, with densities."""
    mask = np.ascontiguousarray(as_mask(mask))
    check_image(mask.shape, connectivity)
    histogram = configuration_histogram_2d(mask, closed)
    return functionals_2d_from_histogram(histogram, mask.shape, pixel_size, connectivity, closed)


def check_image(shape: "tuple[int, ...]", connectivity: int) -> None:
    """Raise BadInputError unless a 2D image of `shape` can be measured with this connectivity."""
    if len(shape) != 2:
        raise BadInputError(f"expected a 2D image, got {len(shape)}D")
    if connectivity not in (4, 8):
        raise BadInputError(f"2D connectivity must be 4 or 8, got {connectivity}")


def functionals_2d_from_histogram(histogram: np.ndarray, shape: "tuple[int, ...]", pixel_size: "float | None" = None,
                                  connectivity: int = 4, closed: bool = False) -> dict:
    """The functionals of `minkowski_functionals_2d` from the 16 configuration counts of an image."""
    tables = _lookup_tables_2d()
    h = pixel_size or 1.0
    area = float(histogram @ tables["area"]) * h ** 2
    perimeter = float(histogram @ tables["perimeter"]) * h
    euler = float(histogram @ tables[f"euler{connectivity}"])
    window = (float(np.prod(shape)) if closed else float(np.prod([s - 1 for s in shape]))) * h ** 2
    return {
        "area": area,
        "perimeter": perimeter,
        "euler": round(euler, 6),
        "window_area": window,
        "area_density": area / window,
        "perimeter_density": perimeter / window,
        "euler_density": euler / window,
        "connectivity": connectivity,
        "closed": closed,
        "units": "m" if pixel_size else "pixel",
    }
