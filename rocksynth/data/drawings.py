"""Procedural clean technical drawings: the targets of the cleaning U-Net.

A drawing is a boolean array (y, x), True = ink. It is rendered with PIL's ImageDraw from random
primitives found on engineering sheets: straight lines of many widths (mostly axis-aligned),
rectangles, circles, arcs, polylines, dashed and dash-dot centre lines, hatched regions, dimension
lines with arrows and numbers, and text. Element sizes are in pixels of a scan at roughly
200-400 dpi, independent of the canvas size, so a 128-pixel training crop and a 1000-pixel
evaluation sheet show the same kind of drawing.
"""

import functools
import string

import numpy as np
from scipy import ndimage
from PIL import Image, ImageDraw, ImageFont

# Line widths in pixels and how often they occur: thin and medium strokes dominate real sheets.
LINE_WIDTHS = np.array([1, 2, 3, 4, 5, 6, 8, 10])
LINE_WIDTH_WEIGHTS = np.array([0.10, 0.22, 0.22, 0.16, 0.11, 0.09, 0.06, 0.04])

_TEXT_CHARS = string.ascii_uppercase + string.digits + "  .,-/()=±"


@functools.lru_cache(maxsize=64)
def _font(size: int) -> ImageFont.ImageFont:
    # Pillow's bundled scalable font: available wherever Pillow is, so data are reproducible.
    return ImageFont.load_default(size=size)


def _span(height: int, width: int) -> float:
    """Size scale of shapes: the canvas, capped so large sheets hold many parts rather than huge ones."""
    return float(min(max(height, width, 160), 480))


def _width(rng: np.random.Generator) -> int:
    return int(rng.choice(LINE_WIDTHS, p=LINE_WIDTH_WEIGHTS))


def _point(rng, height, width, margin=0.2):
    """A point in the canvas extended by `margin` so shapes may run off the edges."""
    return (float(rng.uniform(-margin * width, (1 + margin) * width)),
            float(rng.uniform(-margin * height, (1 + margin) * height)))


def _axis_aligned_end(rng, start, length):
    angle = rng.choice([0.0, 0.5 * np.pi, np.pi, 1.5 * np.pi]) if rng.random() < 0.75 else rng.uniform(0, 2 * np.pi)
    return (start[0] + length * np.cos(angle), start[1] + length * np.sin(angle))


def _line(draw, rng, h, w):
    start = _point(rng, h, w)
    end = _axis_aligned_end(rng, start, rng.uniform(20, 1.2 * _span(h, w)))
    draw.line([start, end], fill=255, width=_width(rng))


def _dashed(draw, rng, h, w):
    """Dashed (hidden edges) or dash-dot (centre lines) straight line."""
    start = np.array(_point(rng, h, w))
    end = np.array(_axis_aligned_end(rng, tuple(start), rng.uniform(40, 1.5 * _span(h, w))))
    length = np.linalg.norm(end - start)
    direction = (end - start) / max(length, 1e-6)
    dash, gap = rng.uniform(6, 30), rng.uniform(3, 10)
    dot = rng.random() < 0.5
    line_width = int(rng.choice([1, 2, 2, 3, 3, 4]))
    t = 0.0
    while t < length:
        a, b = start + direction * t, start + direction * min(t + dash, length)
        draw.line([tuple(a), tuple(b)], fill=255, width=line_width)
        t += dash + gap
        if dot and t < length:
            c = start + direction * t
            draw.line([tuple(c), tuple(c + direction * max(line_width, 1.5))], fill=255, width=line_width)
            t += max(line_width, 1.5) + gap


def _rectangle(draw, rng, h, w):
    x0, y0 = _point(rng, h, w)
    rw, rh = rng.uniform(15, 0.8 * _span(h, w)), rng.uniform(15, 0.8 * _span(h, w))
    draw.rectangle([x0, y0, x0 + rw, y0 + rh], outline=255, width=_width(rng))


def _circle(draw, rng, h, w):
    cx, cy = _point(rng, h, w)
    r = rng.uniform(4, 0.5 * _span(h, w))
    line_width = _width(rng)
    if r < 6 and rng.random() < 0.5:  # small filled dots and holes
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
    else:
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=255, width=min(line_width, int(r)))


def _arc(draw, rng, h, w):
    cx, cy = _point(rng, h, w)
    r = rng.uniform(8, 0.6 * _span(h, w))
    start = rng.uniform(0, 360)
    draw.arc([cx - r, cy - r, cx + r, cy + r], start, start + rng.uniform(20, 300), fill=255, width=_width(rng))


def _polyline(draw, rng, h, w):
    points = [_point(rng, h, w)]
    for _ in range(int(rng.integers(2, 7))):
        points.append(_axis_aligned_end(rng, points[-1], rng.uniform(10, 0.5 * _span(h, w))))
    draw.line(points, fill=255, width=_width(rng), joint="curve")


def _hatching(canvas, rng, h, w):
    """Parallel thin lines clipped to a polygon or rectangle (a section view)."""
    x0, y0 = _point(rng, h, w)
    size = rng.uniform(25, 0.7 * _span(h, w))
    region = Image.new("L", canvas.size, 0)
    region_draw = ImageDraw.Draw(region)
    if rng.random() < 0.5:
        region_draw.rectangle([x0, y0, x0 + size, y0 + rng.uniform(0.3, 1.0) * size], fill=255)
    else:
        angles = np.sort(rng.uniform(0, 2 * np.pi, int(rng.integers(3, 7))))
        radii = size * rng.uniform(0.4, 0.7, angles.size)
        region_draw.polygon([(x0 + r * np.cos(a), y0 + r * np.sin(a)) for a, r in zip(angles, radii)], fill=255)
    hatch = Image.new("L", canvas.size, 0)
    hatch_draw = ImageDraw.Draw(hatch)
    angle = np.deg2rad(rng.choice([45.0, 135.0, 30.0, 60.0]))
    spacing = rng.uniform(5, 16)
    line_width = int(rng.choice([1, 1, 2, 2, 3]))
    diag = float(np.hypot(*canvas.size))
    direction = np.array([np.cos(angle), np.sin(angle)])
    normal = np.array([-direction[1], direction[0]])
    centre = np.array(canvas.size) / 2
    for offset in np.arange(-diag, diag, spacing):
        p = centre + normal * offset
        hatch_draw.line([tuple(p - direction * diag), tuple(p + direction * diag)], fill=255, width=line_width)
    canvas.paste(255, mask=Image.fromarray(np.minimum(np.asarray(hatch), np.asarray(region))))
    if rng.random() < 0.8:  # the section's outline
        outline = np.asarray(region) > 0
        edge = outline & ~ndimage.binary_erosion(outline, iterations=int(rng.integers(1, 4)))
        canvas.paste(255, mask=Image.fromarray((edge * 255).astype(np.uint8)))


def _arrow_head(draw, tip, direction, size):
    normal = np.array([-direction[1], direction[0]])
    back = tip - direction * size
    draw.polygon([tuple(tip), tuple(back + normal * size * 0.35), tuple(back - normal * size * 0.35)], fill=255)


def _dimension(draw, rng, h, w):
    """A dimension line with arrow heads, extension lines and its number."""
    horizontal = rng.random() < 0.5
    a = np.array(_point(rng, h, w, margin=0.05))
    length = rng.uniform(30, 0.9 * _span(h, w))
    b = a + (np.array([length, 0.0]) if horizontal else np.array([0.0, length]))
    direction = (b - a) / length
    normal = np.array([-direction[1], direction[0]])
    line_width = int(rng.choice([1, 1, 2, 2, 3]))
    draw.line([tuple(a), tuple(b)], fill=255, width=line_width)
    head = rng.uniform(6, 16)
    _arrow_head(draw, a, -direction, head)
    _arrow_head(draw, b, direction, head)
    ext = rng.uniform(8, 40)
    for end in (a, b):
        draw.line([tuple(end - normal * 4), tuple(end + normal * ext)], fill=255, width=line_width)
    size = int(rng.integers(10, 30))
    label = f"{rng.uniform(1, 999):.{int(rng.integers(0, 3))}f}"
    mid = (a + b) / 2 - normal * (size * 0.9)
    _text_at(draw, label, tuple(mid), size, vertical=not horizontal)


def _text_at(draw, text, xy, size, vertical=False):
    font = _font(size)
    if not vertical:
        draw.text(xy, text, fill=255, font=font, anchor="mm")
        return
    # Vertical text: render horizontally and paste rotated by 90 degrees.
    box = draw.textbbox((0, 0), text, font=font)
    patch = Image.new("L", (box[2] - box[0] + 2, box[3] - box[1] + 2), 0)
    ImageDraw.Draw(patch).text((-box[0] + 1, -box[1] + 1), text, fill=255, font=font)
    patch = patch.rotate(90, expand=True)
    image = draw._image
    image.paste(255, (int(xy[0] - patch.width / 2), int(xy[1] - patch.height / 2)), mask=patch)


def _text(draw, rng, h, w):
    length = int(rng.integers(1, 14))
    text = "".join(rng.choice(list(_TEXT_CHARS), length)).strip() or "A"
    size = int(rng.integers(9, 42))
    _text_at(draw, text, _point(rng, h, w, margin=0.05), size, vertical=rng.random() < 0.15)


_PRIMITIVES = [(_line, 3.0), (_dashed, 1.0), (_rectangle, 1.2), (_circle, 1.2), (_arc, 1.0),
               (_polyline, 1.0), (_dimension, 0.8), (_text, 1.8)]


def render_drawing(rng: np.random.Generator, height: int, width: int, density: "float | None" = None) -> np.ndarray:
    """A clean drawing, bool (height, width), True = ink.

    `density` is the mean number of primitives per 100x100 pixels (random when None)."""
    if density is None:
        density = rng.uniform(0.5, 2.0)
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    area = height * width / 1e4
    count = max(1, int(rng.poisson(density * area)))
    functions = [f for f, _ in _PRIMITIVES]
    weights = np.array([p for _, p in _PRIMITIVES])
    choices = rng.choice(len(functions), size=count, p=weights / weights.sum())
    for index in choices:
        functions[index](draw, rng, height, width)
    for _ in range(int(rng.poisson(0.25 * area ** 0.5))):
        _hatching(canvas, rng, height, width)
    return np.asarray(canvas) > 127
