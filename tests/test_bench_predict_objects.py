"""The predict benchmark's object-by-object measure (benchmarks/bench_predict.py) on frames with
known objects: a lost and an invented object leave the count right, and are still found."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from bench_predict import lost_and_invented, object_counts  # noqa: E402


def _frame(*squares):
    """One gray frame (1, 16, 16) on a background of 0.5 with 3x3 squares of 0.9 at (y, x)."""
    frame = np.full((1, 16, 16), 0.5)
    for y, x in squares:
        frame[0, y:y + 3, x:x + 3] = 0.9
    return frame


def test_a_lost_and_an_invented_object_are_found_where_the_count_is_right():
    background = _frame()[None, None]
    truth = _frame((1, 1), (10, 10))[None, None]
    pred = _frame((1, 2), (1, 10))[None, None]  # the first moved by a pixel; the second lost, one invented
    assert object_counts(pred, background) == object_counts(truth, background) == 2
    lost, invented = lost_and_invented(pred, truth, background)
    assert lost.tolist() == [[1]] and invented.tolist() == [[1]]


def test_objects_shown_where_they_are_are_neither_lost_nor_invented():
    background = _frame()[None, None]
    truth = _frame((1, 1), (10, 10))[None, None]
    faint = truth.copy()
    faint[..., 10:13, 10:13] = 0.55  # within the tolerance of the background: not shown
    lost, invented = lost_and_invented(truth, truth, background)
    assert lost.tolist() == [[0]] and invented.tolist() == [[0]]
    lost, invented = lost_and_invented(faint, truth, background)
    assert lost.tolist() == [[1]] and invented.tolist() == [[0]]
