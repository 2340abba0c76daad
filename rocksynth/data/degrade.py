"""A scanner-and-paper degradation model: clean drawing -> realistic scan, with its target.

`degraded_pair(rng, clean)` returns (scan uint8 RGB or gray, target bool). The target is the clean
drawing (after the same slight skew as the scan), *without* the gaps punched into the scan's lines,
so a model trained on the pairs learns to fill gaps, whiten any paper and drop stains and noise.
Each degradation is switched on at random, so every combination occurs in the data.
"""

import io

import numpy as np
from PIL import Image
from scipy import ndimage

LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def float_scale(array: np.ndarray) -> float:
    """The value that white paper has in a float image: 1, 255 or 65535 (or its maximum)."""
    top = float(np.nanmax(array)) if array.size else 1.0
    return 1.0 if top <= 1.0 else 255.0 if top <= 255.0 else 65535.0 if top <= 65535.0 else top


def scan_to_gray(array: np.ndarray, white: "float | None" = None) -> np.ndarray:
    """Any image (y, x) / (y, x, c), uint8/uint16/float -> float32 gray in [0, 1] (1 = white paper).

    Alpha is composited over white paper; RGB becomes luma. Integer images are scaled by their
    dtype's range; float images by `white` (default `float_scale(array)`; pass it when converting
    an image piece by piece so every piece is scaled alike)."""
    a = np.asarray(array)
    if a.dtype == bool:
        a = a.astype(np.float32)
    elif np.issubdtype(a.dtype, np.integer):
        a = a.astype(np.float32) / float(np.iinfo(a.dtype).max)
    else:
        a = np.nan_to_num(a.astype(np.float32) / (white or float_scale(a)), nan=1.0)
    if a.ndim == 3:
        channels = a.shape[2]
        alpha = None
        if channels in (2, 4):
            alpha, a = a[..., -1:], a[..., :-1]
        gray = a[..., 0] if a.shape[2] == 1 else a[..., :3] @ LUMA if a.shape[2] >= 3 else a.mean(axis=2)
        if alpha is not None:
            gray = gray * alpha[..., 0] + (1.0 - alpha[..., 0])
        a = gray
    return np.clip(a, 0.0, 1.0).astype(np.float32, copy=False)


def _smooth_field(rng, shape, sigma, low, high):
    """A smooth random field in [low, high] (Gaussian-filtered noise on a coarse grid)."""
    h, w = shape
    step = max(1, int(sigma / 2))
    coarse = rng.standard_normal((h // step + 3, w // step + 3)).astype(np.float32)
    coarse = ndimage.gaussian_filter(coarse, max(sigma / step, 0.5), mode="wrap")
    field = ndimage.zoom(coarse, step, order=1)[:h, :w]
    field = (field - field.min()) / max(float(np.ptp(field)), 1e-6)
    return low + (high - low) * field


def skew(clean: np.ndarray, rng: np.random.Generator, max_degrees: float = 1.5) -> np.ndarray:
    """Rotate a drawing slightly (as a sheet placed askew on the scanner); bool in, bool out.

    Each pixel takes the drawing's value at its rotated centre (nearest neighbour), which keeps
    1-pixel strokes whole: rotating with linear interpolation and thresholding at 0.5, as before,
    broke thin oblique strokes into dashes (1158 connected pieces instead of 678 on 20 sheets of
    384^2; 689 now), gaps in a target that must have none. The scan is made from this target, so
    the two stay consistent to the pixel. (Anti-aliased scan ink with a nearest-neighbour target
    was tried: which pixel a thin oblique stroke keeps is then not visible in the scan, and the
    benchmark IoU on skewed sheets fell from 88 % to 81 %.)"""
    angle = rng.uniform(-max_degrees, max_degrees)
    return ndimage.rotate(clean, angle, reshape=False, order=0, mode="constant", cval=False)


EIGHT = np.ones((3, 3), bool)  # 8-connectivity
_RAYS = {}  # reach -> integer offsets (16 directions, steps 1..reach, 2)


def _rays(reach: int) -> np.ndarray:
    if reach not in _RAYS:
        angles = np.arange(16) * np.pi / 16  # every 11.25 degrees over a half turn
        unit = np.stack([np.sin(angles), np.cos(angles)], axis=-1)
        _RAYS[reach] = np.rint(np.arange(1, reach + 1)[None, :, None] * unit[:, None, :]).astype(int)
    return _RAYS[reach]


def bridged_share(kept: np.ndarray, points: np.ndarray, reach: int) -> float:
    """Share of `points` ((m, 2) pixel indices into `kept`) with ink on *both* sides along one of
    16 directions, within `reach` pixels: where a stroke continues on both sides of them.

    Ink is taken to within a pixel (kept dilated by 3 x 3), so a rasterized oblique or curved
    stroke is found by the rays; beyond `kept`'s edge there is no ink. (A morphological closing by
    a square, tried first, only bridges axis-aligned strokes: it rejected 82-100 % of the holes
    in 1-3 px lines at 10-60 degrees and 85-92 % in circles.)"""
    near = ndimage.maximum_filter(kept, 3, mode="constant")
    h, w = near.shape
    both = None
    for sign in (1, -1):
        q = points[:, None, None, :] + sign * _rays(reach)[None]  # (m, 16, reach, 2)
        inside = (q[..., 0] >= 0) & (q[..., 0] < h) & (q[..., 1] >= 0) & (q[..., 1] < w)
        hit = (near[np.clip(q[..., 0], 0, h - 1), np.clip(q[..., 1], 0, w - 1)] & inside).any(axis=2)
        both = hit if both is None else both & hit
    return float(both.any(axis=1).mean())


def _gaps(ink: np.ndarray, rng) -> np.ndarray:
    """Punch small holes into strokes (worn toner, dropped-out lines); returns the ink kept.

    The target keeps the ink, so a hole is only worth punching where a reader of the scan could
    put it back: where the stroke continues on both sides of it. A square hole of side 3, 5 or 7
    (2r + 1) centred on a random ink pixel is therefore kept only if
    - at least 90 % of the ink it removes has ink left on both sides of it, along one direction,
      within 2r + 2 pixels (`bridged_share`): true for a gap across a line of any width and
      direction, a notch in the edge of a wide stroke or a hole inside it; false at a line's end
      (which only shortens the line), on a dot or arrow head;
    - it is at least 2 pixels from every earlier hole (so gaps stay 3-7 pixels long);
    - and no connected piece of ink (a dash, a small letter, a dot) loses more than half of its pixels.
    (Before, holes were punched anywhere; see docs/clean.md for what that cost.) A rejected
    candidate is redrawn, up to 20 tries per hole, so the number of holes stays as before (Poisson,
    mean 0.5-2 per 4000 pixels) where the drawing has strokes to hold them."""
    ys, xs = np.nonzero(ink)
    if ys.size == 0:
        return ink
    count = int(rng.poisson(ink.size / 4000 * rng.uniform(0.5, 2.0)))
    out = ink.copy()
    pieces, _ = ndimage.label(ink, EIGHT)
    size = np.bincount(pieces.ravel())
    left = size.copy()  # ink pixels each piece still has
    punched = 0
    for _ in range(20 * count):
        if punched == count:
            break
        i, r = int(rng.integers(0, ys.size)), int(rng.integers(1, 4))
        reach = 2 * r + 2
        pad = r + reach + 1  # the window holds every ray from the hole
        y0, x0 = max(ys[i] - pad, 0), max(xs[i] - pad, 0)
        window = (slice(y0, ys[i] + pad + 1), slice(x0, xs[i] + pad + 1))
        kept = out[window].copy()
        hole = np.zeros_like(kept)
        hole[max(ys[i] - r, 0) - y0:ys[i] + r + 1 - y0, max(xs[i] - r, 0) - x0:xs[i] + r + 1 - x0] = True
        removed = hole & kept
        # Holes stay apart (2 px at least): two touching holes would make one longer gap.
        near_hole = (slice(max(ys[i] - r - 2, 0) - y0, ys[i] + r + 3 - y0),
                     slice(max(xs[i] - r - 2, 0) - x0, xs[i] + r + 3 - x0))
        if not removed.any() or (ink[window][near_hole] & ~kept[near_hole]).any():
            continue
        kept[hole] = False
        if bridged_share(kept, np.argwhere(removed), reach) < 0.9:
            continue
        ids, n = np.unique(pieces[window][removed], return_counts=True)
        if np.any(left[ids] - n < size[ids] / 2):
            continue
        left[ids] -= n
        out[window] = kept
        punched += 1
    return out


def _paper(rng, shape, on) -> np.ndarray:
    """Paper colour (white, cream, gray, brown, blue-ish) with fibre texture, RGB float."""
    kind = rng.choice(["white", "cream", "gray", "brown", "blue"], p=[0.3, 0.25, 0.2, 0.15, 0.1])
    base = {"white": (0.97, 0.97, 0.96), "cream": (0.95, 0.91, 0.80), "gray": (0.80, 0.80, 0.80),
            "brown": (0.80, 0.68, 0.52), "blue": (0.82, 0.87, 0.93)}[kind]
    base = np.clip(np.array(base) * rng.uniform(0.85, 1.04), 0.3, 1.0)
    paper = np.broadcast_to(base, shape + (3,)).astype(np.float32).copy()
    if on("texture", 0.7):  # fibres: anisotropic filtered noise
        texture = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32),
                                          (rng.uniform(0.5, 2.0), rng.uniform(0.5, 4.0)))
        paper *= 1.0 + rng.uniform(0.02, 0.12) * texture[..., None] / max(float(texture.std()), 1e-6) / 3
    return paper


def _illumination(rng, shape) -> np.ndarray:
    """Multiplicative lighting: a linear gradient plus a vignette or a smooth shadow."""
    h, w = shape
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    span = max(h, w) * rng.uniform(1.0, 4.0)
    grad = ((x - w / 2) * np.cos(angle) + (y - h / 2) * np.sin(angle)) / span
    light = 1.0 + rng.uniform(0.1, 0.6) * grad
    if rng.random() < 0.5:
        light *= _smooth_field(rng, shape, rng.uniform(20, 80), rng.uniform(0.55, 0.95), 1.0)
    return np.clip(light, 0.3, 1.2).astype(np.float32)


def _stains(rng, shape, paper):
    """Coffee stains, blotches and rings: blobs of brownish, gray or coloured tint."""
    h, w = shape
    for _ in range(int(rng.integers(1, 5))):
        blob = _smooth_field(rng, shape, rng.uniform(6, 40), 0.0, 1.0)
        level = rng.uniform(0.55, 0.9)
        mask = np.clip((blob - level) / 0.05, 0, 1)
        if rng.random() < 0.3:  # a ring: the dried edge of a drop
            mask = np.clip(mask - ndimage.uniform_filter(mask, int(rng.integers(3, 9))) ** 2 * 1.3, 0, 1)
        colour = rng.choice([(0.6, 0.45, 0.3), (0.5, 0.5, 0.5), (0.75, 0.7, 0.4), (0.55, 0.6, 0.8), (0.3, 0.3, 0.3)])
        strength = rng.uniform(0.2, 0.8)
        tint = 1.0 - strength * (1.0 - np.array(colour, dtype=np.float32))
        paper *= 1.0 - mask[..., None] * (1.0 - tint)
    return paper


def _ink_density(ink_kept, rng, on):
    """Ink coverage in [0, 1] with bleed (spread into paper) and fading (uneven, pale toner)."""
    density = ink_kept.astype(np.float32)
    if on("bleed", 0.4):  # bleed: ink spreads into the fibres
        spread = ndimage.gaussian_filter(density, rng.uniform(0.6, 1.6))
        density = np.maximum(density, np.clip(spread * rng.uniform(1.2, 2.2), 0, 1))
    if on("fading", 0.5):  # fading
        density *= _smooth_field(rng, ink_kept.shape, rng.uniform(8, 60), rng.uniform(0.35, 0.8), 1.0)
    if on("speckle", 0.3):  # speckled toner
        density *= 1.0 - rng.uniform(0.1, 0.5) * (rng.random(ink_kept.shape) < rng.uniform(0.05, 0.3))
    return density


def _jpeg(rgb_uint8: np.ndarray, rng) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(rgb_uint8).save(buffer, format="JPEG", quality=int(rng.integers(15, 85)))
    buffer.seek(0)
    return np.asarray(Image.open(buffer).convert(Image.fromarray(rgb_uint8).mode))


DEGRADATIONS = ("skew", "gaps", "bleed", "fading", "speckle", "texture", "stains", "illumination", "blur", "noise",
                "dust", "gray", "jpeg")


def _switches(rng: np.random.Generator, force: "dict[str, bool] | None"):
    """`on(name, p)`: whether a degradation applies (random with probability p unless forced).

    The random number is drawn either way, so forcing one switch leaves the rest of the scan alike."""
    force = force or {}
    unknown = set(force) - set(DEGRADATIONS)
    if unknown:
        raise ValueError(f"unknown degradations {sorted(unknown)}; known: {', '.join(DEGRADATIONS)}")

    def on(name: str, probability: float) -> bool:
        chosen = rng.random() < probability
        return force.get(name, chosen)

    return on


def degraded_pair(rng: np.random.Generator, clean: np.ndarray,
                  force: "dict[str, bool] | None" = None) -> "tuple[np.ndarray, np.ndarray]":
    """(scan, target) from a clean drawing: scan uint8 (y, x, 3) or (y, x); target bool (y, x).

    `force` switches named degradations (see DEGRADATIONS) on or off instead of at random;
    paper colour is always random (white included)."""
    shape = clean.shape
    on = _switches(rng, force)
    target = skew(clean, rng) if on("skew", 0.5) else clean
    # The gaps draw from their own generator, seeded either way: how many candidate holes they
    # try then changes nothing else in the scan, and with gaps forced on or off the rest is alike.
    gap_rng = np.random.default_rng(int(rng.integers(2 ** 63)))
    kept = _gaps(target, gap_rng) if on("gaps", 0.6) else target
    density = _ink_density(kept, rng, on)
    paper = _paper(rng, shape, on)
    if on("stains", 0.5):
        paper = _stains(rng, shape, paper)
    ink_colour = np.array(rng.choice([(0.05, 0.05, 0.05), (0.15, 0.15, 0.15), (0.1, 0.1, 0.3),
                                      (0.3, 0.3, 0.3), (0.25, 0.15, 0.1)]), dtype=np.float32)
    ink_colour = np.clip(ink_colour * rng.uniform(0.5, 1.6), 0, 0.55)
    # Ink absorbs light: paper * (1 - d) + ink * d, darkened ink stays darker than the paper under it.
    scan = paper * (1.0 - density[..., None]) + (paper * ink_colour) * density[..., None]
    if on("illumination", 0.85):
        scan *= _illumination(rng, shape)[..., None]
    if on("blur", 0.6):
        scan = ndimage.gaussian_filter(scan, (rng.uniform(0.3, 1.3),) * 2 + (0,))
    if on("noise", 0.8):
        scan = scan + rng.uniform(0.005, 0.07) * rng.standard_normal(scan.shape).astype(np.float32)
    if on("dust", 0.3):  # dust and specks
        specks = rng.random(shape) < rng.uniform(1e-4, 2e-3)
        specks = ndimage.binary_dilation(specks, iterations=int(rng.integers(0, 2))) if rng.random() < 0.5 else specks
        scan[specks] *= rng.uniform(0.2, 0.7)
    scan = (np.clip(scan, 0, 1) * 255 + 0.5).astype(np.uint8)
    if on("gray", 0.3):  # a gray rather than colour scan
        scan = scan @ LUMA
        scan = (scan + 0.5).astype(np.uint8)
    if on("jpeg", 0.5):
        scan = _jpeg(scan, rng)
    return scan, target
