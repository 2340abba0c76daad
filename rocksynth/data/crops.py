"""Random crops (cubes, or columns deeper than wide) of binary rock volumes, augmented with the cube's 48 symmetries
(or, for an anisotropic sample, those that keep its anisotropy: `symmetric_axis_orders`).

Each volume is split along z: the first part is for training, the last `holdout` fraction is kept
for evaluation only, so the learning curve and the benchmark never see training voxels.
"""

import itertools
from dataclasses import dataclass

import numpy as np

from rocksynth.errors import BadInputError

AXIS_ORDERS = list(itertools.permutations(range(3)))


@dataclass
class SplitVolume:
    name: str
    train: np.ndarray     # bool (z, y, x), first part along z
    held_out: np.ndarray  # bool (z, y, x), last part along z


def split_holdout(name: str, volume: np.ndarray, holdout: float = 0.25) -> SplitVolume:
    """Split off the last `holdout` fraction of a volume along z for evaluation."""
    if volume.ndim != 3:
        raise BadInputError(f"{name}: training needs a 3D volume, got shape {volume.shape}")
    if not 0 < holdout < 1:
        raise BadInputError(f"holdout fraction must be between 0 and 1, got {holdout}")
    cut = volume.shape[0] - int(round(volume.shape[0] * holdout))
    return SplitVolume(name, np.ascontiguousarray(volume[:cut]), np.ascontiguousarray(volume[cut:]))


def transitions_per_axis(volume: np.ndarray) -> np.ndarray:
    """Pore/solid transitions per voxel along z, y and x (each axis's share of the surface):
    equal on the three axes of an isotropic medium, zero along the axis a structure is extruded."""
    volume = np.asarray(volume, dtype=np.int8)
    return np.array([float((np.diff(volume, axis=axis) != 0).mean()) for axis in range(3)])


def symmetric_axis_orders(volume: np.ndarray, tolerance: float = 1.3) -> "list[tuple[int, int, int]]":
    """Axis permutations that keep the volume's measured anisotropy: two axes may swap only if
    their transitions per voxel agree within `tolerance` (a ratio). All 6 for an isotropic rock;
    only the identity for a fracture network extruded along z whose x and y differ. Rotating
    the crops of an anisotropic sample at random would teach a generator an average of its
    orientations (sheets along every axis at once: blobs) instead of the sample's structure."""
    return axis_orders_for(transitions_per_axis(volume), tolerance)


def is_extruded(rates: np.ndarray) -> bool:
    """Transitions per voxel (z, y, x) of a volume that is the same on every z-slice: a 2D
    pattern extruded along z (and not uniform in the plane)."""
    return bool(rates[0] == 0 and rates[1:].all())


def axis_orders_for(rates: np.ndarray, tolerance: float = 1.3) -> "list[tuple[int, int, int]]":
    """`symmetric_axis_orders` from the transitions per voxel along z, y, x."""
    def alike(a: int, b: int) -> bool:
        low, high = sorted((rates[a], rates[b]))
        return low == high or (low > 0 and high / low <= tolerance)

    return [order for order in AXIS_ORDERS if all(alike(axis, order[axis]) for axis in range(3))]


def random_symmetry(cube: np.ndarray, rng: np.random.Generator,
                    orders: "list[tuple[int, int, int]] | None" = None) -> np.ndarray:
    """One of the 48 symmetries of the cube: an axis permutation (one of `orders`, default all)
    and a flip of each axis."""
    orders = AXIS_ORDERS if orders is None else orders
    order = orders[rng.integers(len(orders))]
    cube = cube.transpose(order)
    flips = tuple(axis for axis in range(3) if rng.integers(2))
    return np.flip(cube, flips) if flips else cube


def random_crop(volume: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A size^3 crop at a uniformly random position."""
    if min(volume.shape) < size:
        raise BadInputError(f"volume of shape {volume.shape} is smaller than the crop {size}")
    z, y, x = (int(rng.integers(0, n - size + 1)) for n in volume.shape)
    return volume[z:z + size, y:y + size, x:x + size]


class RandomCrops:
    """Batches of augmented random crops from the training parts of several volumes."""

    def __init__(self, volumes: "list[np.ndarray]", seed: int = 0, symmetries: bool = True):
        if not volumes:
            raise BadInputError("no training volumes given")
        self.volumes = volumes
        self.symmetries = symmetries
        self.rng = np.random.default_rng(seed)

    def reseed(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def batch(self, size: int, count: int, depth: "int | None" = None) -> np.ndarray:
        """(count, depth, size, size) bool crops (depth defaults to size: cubes); each volume is drawn
        equally often, so a small rock is not drowned out by a large one when one model learns
        several. A deeper crop is a random size x size column of an augmented depth^3 cube."""
        depth = size if depth is None else depth
        if depth < size:
            raise BadInputError(f"crop depth {depth} is smaller than its side {size}")
        usable = [index for index, v in enumerate(self.volumes) if min(v.shape) >= depth]
        if not usable:
            raise BadInputError(f"every training volume is smaller than the crop {depth}")
        picks = self.rng.choice(usable, size=count)
        crops = []
        for index in picks:
            crop = random_crop(self.volumes[index], depth, self.rng)
            if self.symmetries:
                crop = random_symmetry(crop, self.rng)
            if depth > size:
                y, x = (int(self.rng.integers(0, depth - size + 1)) for _ in range(2))
                crop = crop[:, y:y + size, x:x + size]
            crops.append(np.ascontiguousarray(crop))
        return np.stack(crops)


def held_out_cubes(volume: np.ndarray, size: int, count: int, seed: int = 0) -> np.ndarray:
    """`count` size^3 cubes at random positions of a held-out block (they may overlap when
    the block holds fewer disjoint cubes than asked; the benchmark reports this)."""
    rng = np.random.default_rng(seed)
    return np.stack([np.ascontiguousarray(random_crop(volume, size, rng)) for _ in range(count)])


def disjoint_cube_count(volume: np.ndarray, size: int) -> int:
    """How many non-overlapping size^3 cubes fit in a volume."""
    return int(np.prod([n // size for n in volume.shape]))
