"""Line gaps of the cleaning data: only holes a reader of the scan could bridge."""

import numpy as np
from PIL import Image, ImageDraw

from rocksynth.data.degrade import DEGRADATIONS, _gaps, degraded_pair


def _sheet():
    """Straight lines of widths 1-5 px, a 1-px line at 30 degrees, a circle, dots and short dashes."""
    ink = np.zeros((170, 260), bool)
    lines = []
    for row, width in zip((15, 35, 55, 75), (1, 2, 3, 5)):
        ink[row:row + width, 30:170] = True
        lines.append((slice(row, row + width), slice(30, 170)))
    ink[10:110, 185:187] = True  # vertical, 2 px
    lines.append((slice(10, 110), slice(185, 187)))
    dots = []
    for x in range(30, 170, 20):
        ink[95:98, x:x + 3] = True
        ink[105:107, x + 8:x + 10] = True
        dots += [(slice(95, 98), slice(x, x + 3)), (slice(105, 107), slice(x + 8, x + 10))]
    for x in range(5, 110, 12):
        ink[x:x + 6, 10:11] = True  # dashes of 6 x 1 px (a hidden line's dashes)
        dots.append((slice(x, x + 6), slice(10, 11)))
    canvas = Image.new("L", (260, 170), 0)
    draw = ImageDraw.Draw(canvas)
    draw.line([(20, 160), (120, 102)], fill=255, width=1)  # about 30 degrees
    draw.ellipse([195, 115, 245, 165], outline=255, width=2)
    oblique, circle = np.zeros_like(ink), np.zeros_like(ink)
    oblique[100:170, :130] = np.asarray(canvas)[100:170, :130] > 127
    circle[110:, 190:] = np.asarray(canvas)[110:, 190:] > 127
    return ink | oblique | circle, lines, dots, oblique, circle


def test_gaps_are_bridged_on_both_sides_and_spare_small_pieces():
    ink, lines, dots, oblique, circle = _sheet()
    ends = [(160, 20), (102, 120)]  # of the oblique line
    assert all(oblique[end] for end in ends)
    holes, curved = 0, {"oblique": 0, "circle": 0}
    for seed in range(60):
        kept = _gaps(ink, np.random.default_rng(seed))
        assert not (kept & ~ink).any()
        holes += int((ink & ~kept).sum())
        for line in lines:
            piece = kept[line] if line[0].stop - line[0].start < line[1].stop - line[1].start else kept[line].T
            # The line keeps both its ends: a hole there would only shorten it. (A notch in the
            # corner of a wide line's end may be cut: the line's edges show where it was.)
            assert piece[:, 0].any() and piece[:, -1].any(), seed
            # Every gap across the line is short, with the line continuing on both sides.
            run = 0
            for column in piece.any(axis=0):
                run = 0 if column else run + 1
                assert run <= 8, seed
        assert all(kept[end] for end in ends), seed
        for dot in dots:  # a dot or a short dash never loses more than half of itself
            assert kept[dot].sum() >= ink[dot].sum() / 2, seed
        curved["oblique"] += bool((oblique & ~kept).any())
        curved["circle"] += bool((circle & ~kept).any())
    assert holes > 60 * 60  # holes are punched (about 100 ink pixels per sheet) ...
    assert min(curved.values()) >= 5, curved  # ... in oblique and curved strokes too


def test_gaps_draw_their_own_random_numbers():
    """Forcing gaps on or off leaves the rest of the scan alike (same paper, ink colour, ...)."""
    ink = _sheet()[0]
    off = {d: False for d in DEGRADATIONS}
    scan_off, target_off = degraded_pair(np.random.default_rng(5), ink, force=off)
    scan_on, target_on = degraded_pair(np.random.default_rng(5), ink, force=dict(off, gaps=True))
    assert np.array_equal(target_on, target_off)
    same = (scan_on == scan_off).all(axis=-1) if scan_on.ndim == 3 else scan_on == scan_off
    assert 0 < (~same).sum() == (~same & ink).sum()  # only ink pixels differ: the holes
