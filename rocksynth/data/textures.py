"""Training textures for the multi-texture GAN: named binary volumes, split into a training part
and a held-out part (the last quarter along z), sampled as random augmented crops (rotated only
in ways that keep an anisotropic sample's orientation, e.g. a fracture network extruded along z).

Besides real volumes, a PoreSpy-generated medium can be made at run time from a fixed recipe
(`porespy:spherepack`), so nothing generated has to be stored.
"""

from dataclasses import dataclass

import numpy as np

from rocksynth.data.crops import (AXIS_ORDERS, axis_orders_for, is_extruded, random_crop, random_symmetry, split_holdout,
                                  transitions_per_axis)
from rocksynth.errors import BadInputError

# Procedural media: name -> (PoreSpy generator recipe). Fixed seeds: same volume on every run.
GENERATED_MEDIA = {
    "spherepack": {"generator": "overlapping_spheres", "shape": 160, "r": 8, "porosity": 0.3, "seed": 7},
}


def generated_medium(name: str, seed_offset: int = 0) -> np.ndarray:
    """The PoreSpy medium `name` (bool, True = pore): overlapping solid spheres (grains) whose
    complement is the pore space, at the recipe's porosity. `seed_offset` 1 gives an independent
    realisation (used as the held-out volume)."""
    if name not in GENERATED_MEDIA:
        raise BadInputError(f"unknown generated medium {name!r}; known: {', '.join(GENERATED_MEDIA)}")
    recipe = GENERATED_MEDIA[name]
    import porespy

    shape = [recipe["shape"]] * 3
    volume = porespy.generators.overlapping_spheres(shape, r=recipe["r"], porosity=recipe["porosity"],
                                                    seed=recipe["seed"] + seed_offset)
    return np.asarray(volume, dtype=bool)


@dataclass
class Texture:
    name: str
    train: np.ndarray       # bool (z, y, x)
    held_out: np.ndarray    # bool (z, y, x), the last `holdout` fraction along z
    voxel_size: "float | None"
    source: str
    # Pore/solid transitions per voxel along z, y, x of the training part (None: not measured;
    # then every axis order is allowed and the texture is not extruded).
    transitions: "np.ndarray | None" = None

    @property
    def axis_orders(self) -> list:
        """Axis permutations allowed in augmentation (all six unless the sample is anisotropic)."""
        return list(AXIS_ORDERS) if self.transitions is None else axis_orders_for(self.transitions)

    @property
    def extruded(self) -> bool:
        """The same on every z-slice (a 2D pattern extruded along z, like fractures_100.tif)."""
        return self.transitions is not None and is_extruded(self.transitions)

    def augmentation(self) -> str:
        if len(self.axis_orders) == len(AXIS_ORDERS):
            return "all 48 cube symmetries (isotropic)"
        text = (f"{len(self.axis_orders)} of 6 axis orders x 8 flips (anisotropic: pore/solid transitions per voxel "
                f"z/y/x {' / '.join(f'{r:.4f}' for r in self.transitions)})")
        return text + ("; extruded along z: generated from noise constant along z" if self.extruded else "")


def make_texture(name: str, volume: np.ndarray, voxel_size=None, source: str = "", holdout: float = 0.25) -> Texture:
    if not name.isidentifier():
        raise BadInputError(f"texture name {name!r} must be a plain word (letters, digits, _)")
    split = split_holdout(name, np.asarray(volume, dtype=bool), holdout)
    return Texture(name, split.train, split.held_out, voxel_size, source, transitions_per_axis(split.train))


def generated_texture(name: str) -> Texture:
    """A generated medium as a texture: trained on one realisation, evaluated on another."""
    recipe = GENERATED_MEDIA.get(name, {})
    train = generated_medium(name)
    return Texture(name, train, generated_medium(name, seed_offset=1), None,
                   f"porespy.generators.{recipe.get('generator')} {recipe}", transitions_per_axis(train))


def parse_texture_source(text: str) -> "tuple[str, str]":
    """'NAME=PATH' or 'NAME=porespy:MEDIUM' -> (name, source)."""
    name, sep, source = text.partition("=")
    if not sep or not name or not source:
        raise BadInputError(f"texture {text!r}: expected NAME=VOLUME or NAME=porespy:MEDIUM (e.g. berea=berea.tif)")
    return name, source


class TextureCrops:
    """Batches of crops with their texture index; `pairs` gives a second crop of the same texture."""

    def __init__(self, textures: "list[Texture]", seed: int = 0):
        if not textures:
            raise BadInputError("no training textures given")
        self.textures = textures
        self.rng = np.random.default_rng(seed)

    def reseed(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def _crop(self, index: int, size: int) -> np.ndarray:
        crop = random_crop(self.textures[index].train, size, self.rng)
        return np.ascontiguousarray(random_symmetry(crop, self.rng, self.textures[index].axis_orders))

    def pairs(self, size: int, count: int) -> "tuple[np.ndarray, np.ndarray, np.ndarray]":
        """(labels (count,), x (count, s, s, s), x2 (count, s, s, s)): textures drawn uniformly
        (so a small volume is seen as often as a large one), x and x2 from the same texture."""
        for texture in self.textures:
            if min(texture.train.shape) < size:
                raise BadInputError(f"{texture.name}: training part {texture.train.shape} is smaller than the crop {size}")
        labels = self.rng.integers(0, len(self.textures), size=count)
        first = np.stack([self._crop(k, size) for k in labels])
        second = np.stack([self._crop(k, size) for k in labels])
        return labels, first, second
