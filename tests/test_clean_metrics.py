"""The clean benchmark's DIBCO metric wrapper (benchmarks/clean_metrics.py) on cases with known values."""

import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
pytest.importorskip("doxapy")  # in the test extra
import clean_metrics  # noqa: E402


def _target():
    """16 x 16, a 3 x 3 ink square at rows / columns 11-13: one non-uniform 8 x 8 block."""
    target = np.zeros((16, 16), bool)
    target[11:14, 11:14] = True
    return target


def test_perfect_prediction():
    target = _target()
    m = clean_metrics.dibco_metrics(target.copy(), target)
    assert m["fm"] == 100.0 and m["pfm"] == 100.0
    assert m["psnr"] == math.inf
    assert m["drd"] == 0.0


def test_inverted_prediction():
    target = _target()
    m = clean_metrics.dibco_metrics(~target, target)
    assert m["fm"] == 0.0 and m["pfm"] == 0.0
    assert m["psnr"] == 0.0  # every pixel wrong: MSE 1
    assert m["drd"] > 10


def test_one_flipped_background_pixel():
    target = _target()
    predicted = target.copy()
    predicted[3, 3] = True  # its 5 x 5 neighbourhood is all background: DRD_k = 1 (weights sum to 1)
    m = clean_metrics.dibco_metrics(predicted, target)
    precision = 9 / 10
    assert m["fm"] == pytest.approx(100 * 2 * precision / (precision + 1))
    assert m["pfm"] == pytest.approx(100 * 2 * precision / (precision + 1))  # the skeleton is found whole
    assert m["psnr"] == pytest.approx(10 * math.log10(256))
    assert m["drd"] == pytest.approx(1.0, abs=1e-5)  # one non-uniform block


def test_one_missed_skeleton_pixel_lowers_pseudo_recall():
    target = np.zeros((16, 16), bool)
    target[4:7, 2:14] = True  # a 3-px thick horizontal stroke; its skeleton is the middle row
    predicted = target.copy()
    predicted[5, 8] = False
    m = clean_metrics.dibco_metrics(predicted, target)
    assert m["fm"] < 100 and m["pfm"] < m["fm"]  # a skeleton pixel weighs more than one of 36


def test_polarity_and_memory_layout():
    """Polarity: the ground truth is ink, not paper. Layout: a transposed view (not C-contiguous)
    scores as its contiguous copy (doxapy reads raw memory)."""
    rng = np.random.default_rng(0)
    target = rng.random((40, 24)) < 0.2
    predicted = target ^ (rng.random((40, 24)) < 0.05)
    views = clean_metrics.dibco_metrics(predicted.T, target.T)
    copies = clean_metrics.dibco_metrics(np.ascontiguousarray(predicted.T), np.ascontiguousarray(target.T))
    assert views == copies
    ink = target.sum()
    precision = (predicted & target).sum() / predicted.sum()
    recall = (predicted & target).sum() / ink
    assert views["fm"] == pytest.approx(100 * 2 * precision * recall / (precision + recall))


def test_baselines_find_dark_ink():
    gray = np.full((96, 96), 220, np.uint8)
    gray[40:46, 10:86] = 30
    truth = gray < 128
    for name in clean_metrics.BASELINES:
        ink = clean_metrics.binarize(gray, name)
        assert ink.dtype == bool and ink.shape == gray.shape
        assert clean_metrics.dibco_metrics(ink, truth)["fm"] > 75, name  # with ink and paper swapped: about 0
