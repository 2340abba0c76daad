"""Binary segmentation of gray input (True = pore) and detection of a circular micro-CT field of view."""

from dataclasses import dataclass

import numpy as np

from rocksynth.errors import BadInputError

PORE_VALUES = ("auto", "0", "255", "dark", "bright")


@dataclass
class Segmentation:
    mask: np.ndarray          # bool, True = pore
    threshold: "float | None"  # None when the input was already binary
    note: str                 # what was inferred, for the user
    phases: "tuple | None" = None  # binary input: its (solid, pore) values
    pores_bright: bool = False     # gray input: pores above the threshold

    def apply(self, array: np.ndarray) -> np.ndarray:
        """The same rule on other data of the same volume (a slab of one streamed slice by slice).

        Not `binarize` again: a slab that holds one phase, or two gray values, must still be cut
        at this threshold, and a binary slab must hold this volume's two values."""
        if self.threshold is not None:
            if array.dtype.kind == "f" and not np.isfinite(array).all():
                raise BadInputError("input contains NaN or infinite values")
            return array > self.threshold if self.pores_bright else array <= self.threshold
        solid, pore = self.phases
        mask = array == pore
        if not (mask | (array == solid)).all():
            raise BadInputError(f"the sampled slices hold only {solid:g} and {pore:g} but others hold more values; "
                                "give --threshold")
        return mask


def binarize(array: np.ndarray, threshold: "float | None" = None, pore_value: str = "auto") -> Segmentation:
    """Binary input is kept (255/1/True = pore unless pore_value says '0'; a `threshold` is not
    used on it); gray input is cut at `threshold` (Otsu when None), pores dark unless pore_value
    is 'bright'."""
    pore_value = str(pore_value).lower()
    if pore_value not in PORE_VALUES:
        raise BadInputError(f"--pore-value must be one of {', '.join(PORE_VALUES)}, got {pore_value!r}")
    if array.dtype == bool:
        pore = pore_value in ("auto", "255", "bright")
        return Segmentation(array == pore, None, f"binary input, {pore} = pore", (not pore, pore))
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise BadInputError("input contains NaN or infinite values")
    values = _two_values(array)
    if values is not None:
        # Already segmented: a threshold could only pick which phase is pore, and the dark-pore
        # rule of gray input would silently invert a 255 = pore volume; --pore-value decides that.
        low, high = values
        pore_is_high = pore_value in ("auto", "255", "bright")
        mask = array == high if pore_is_high else array == low
        note = f"binary input ({low:g}/{high:g}), pore = {high if pore_is_high else low:g}"
        if threshold is not None:
            note += f"; --threshold {threshold:g} not used (use --pore-value to choose the pore phase)"
        return Segmentation(mask, None, note, (low, high) if pore_is_high else (high, low))
    origin = "given"
    if threshold is None:
        from skimage.filters import threshold_otsu

        threshold, origin = float(threshold_otsu(_sample(array))), "Otsu"
    else:
        sample = _sample(array)
        low, high = float(sample.min()), float(sample.max())
        if not low <= threshold < high:  # at or above the top (or below the bottom): all one phase
            raise BadInputError(f"--threshold {threshold:g} is outside the input's values ({low:g} to {high:g}): "
                                "every voxel would be one phase")
    pores_bright = pore_value in ("bright", "255")
    mask = array > threshold if pores_bright else array <= threshold
    side = "above (bright)" if pores_bright else "at or below (dark)"
    note = f"gray input ({array.dtype}) segmented: {origin} threshold {threshold:g}, pores {side}"
    if pore_value == "auto":
        note += "; use --pore-value bright if pores are bright"
    return Segmentation(mask, threshold, note, pores_bright=pores_bright)


def _two_values(array: np.ndarray):
    """(low, high) if the array holds at most two distinct values (a binary image), else None."""
    sample = _sample(array)
    low, high = sample.min(), sample.max()
    if not ((array == low) | (array == high)).all():
        return None
    if low == high:  # all one phase: only meaningful with the binary values 0 (solid) or 1/255 (pore)
        if low not in (0, 1, 255):
            raise BadInputError(f"input is constant (every value {low}); nothing to segment")
        return (0, low) if low != 0 else (0, 255)
    return low, high


def _sample(array: np.ndarray, limit: int = 4_000_000) -> np.ndarray:
    """A strided subsample, enough for Otsu and value checks on huge volumes."""
    flat = array.reshape(-1)
    step = max(1, flat.size // limit)
    return flat[::step]


@dataclass
class FieldOfView:
    centre: "tuple[float, float]"  # (y, x)
    radius: float

    def inscribed_square(self, shape) -> "tuple[slice, slice]":
        """The largest axis-aligned square inside the circle, clipped to the image."""
        half = self.radius / np.sqrt(2) - 1
        cy, cx = self.centre
        y0, y1 = max(0, int(np.ceil(cy - half))), min(shape[0], int(np.floor(cy + half)) + 1)
        x0, x1 = max(0, int(np.ceil(cx - half))), min(shape[1], int(np.floor(cx + half)) + 1)
        return slice(y0, y1), slice(x0, x1)


def detect_circular_fov(image: np.ndarray) -> "FieldOfView | None":
    """A circular field of view: the four corners share one value that fills the outside of a
    central disc. Returns None when the image fills its frame (no such disc)."""
    from scipy import ndimage

    corners = [image[0, 0], image[0, -1], image[-1, 0], image[-1, -1]]
    if len(set(np.asarray(corners).tolist())) != 1:
        return None
    outside = image == corners[0]
    labels, _ = ndimage.label(outside)
    corner_labels = {labels[0, 0], labels[0, -1], labels[-1, 0], labels[-1, -1]}
    background = np.isin(labels, list(corner_labels))
    ys, xs = np.nonzero(~background)
    if ys.size == 0:
        return None
    height, width = ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
    if abs(height - width) > 0.05 * max(height, width) + 2:
        return None
    if min(height, width) < 0.5 * min(image.shape):  # a grain or a pore in the middle, not a scanner's view
        return None
    centre = ((ys.max() + ys.min()) / 2, (xs.max() + xs.min()) / 2)
    radius = (height + width) / 4
    # Everything clearly outside the disc must be the corner value: a rock that merely has solid
    # corners fails this, a micro-CT reconstruction circle passes it.
    yy, xx = np.ogrid[:image.shape[0], :image.shape[1]]
    ring = (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 > (radius + 2) ** 2
    if ring.sum() < 0.05 * image.size or background[ring].mean() < 0.99:
        return None
    return FieldOfView(centre, radius)
