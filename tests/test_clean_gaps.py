"""Line gaps of the cleaning data: only holes a reader of the scan could bridge."""

import numpy as np

from rocksynth.data.degrade import DEGRADATIONS, _gaps, degraded_pair


def _sheet():
    """Horizontal and vertical lines of widths 1-5 px, 3x3 and 2x2 dots and short dashes."""
    ink = np.zeros((120, 200), bool)
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
    return ink, lines, dots


def test_gaps_are_bridged_on_both_sides_and_spare_small_pieces():
    ink, lines, dots = _sheet()
    holes = 0
    for seed in range(60):
        kept = _gaps(ink, np.random.default_rng(seed))
        assert not (kept & ~ink).any()
        holes += int((ink & ~kept).sum())
        for line in lines:
            piece = kept[line] if line[0].stop - line[0].start < line[1].stop - line[1].start else kept[line].T
            # The line keeps both its ends (a hole there would only shorten it) ...
            assert piece[:, 0].all() and piece[:, -1].all(), seed
            # ... and every gap across it is short, with the line continuing on both sides.
            run = 0
            for column in piece.any(axis=0):
                run = 0 if column else run + 1
                assert run <= 8, seed
        for dot in dots:  # a dot or a short dash never loses more than half of itself
            assert kept[dot].sum() >= ink[dot].sum() / 2, seed
    assert holes > 60 * 60  # and holes are punched (about 100 ink pixels per sheet)


def test_gaps_draw_their_own_random_numbers():
    """Forcing gaps on or off leaves the rest of the scan alike (same paper, ink colour, ...)."""
    ink, _, _ = _sheet()
    off = {d: False for d in DEGRADATIONS}
    scan_off, target_off = degraded_pair(np.random.default_rng(5), ink, force=off)
    scan_on, target_on = degraded_pair(np.random.default_rng(5), ink, force=dict(off, gaps=True))
    assert np.array_equal(target_on, target_off)
    same = (scan_on == scan_off).all(axis=-1) if scan_on.ndim == 3 else scan_on == scan_off
    assert 0 < (~same).sum() == (~same & ink).sum()  # only ink pixels differ: the holes
