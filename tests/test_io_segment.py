"""Segmentation of gray input, field-of-view detection and length parsing."""

import numpy as np
import pytest

from rocksynth.errors import BadInputError
from rocksynth.io.segment import binarize, detect_circular_fov
from rocksynth.units import parse_length


def test_binary_input_is_kept_with_255_as_pore():
    data = np.array([[0, 255], [255, 255]], np.uint8)
    seg = binarize(data)
    assert seg.mask.tolist() == [[False, True], [True, True]] and seg.threshold is None
    assert binarize(data, pore_value="0").mask.tolist() == [[True, False], [False, False]]


def test_otsu_separates_two_gray_phases_and_says_so():
    rng = np.random.default_rng(0)
    truth = rng.random((64, 64)) < 0.25
    gray = np.where(truth, 40, 180) + rng.normal(0, 10, truth.shape)
    seg = binarize(gray)
    assert 60 < seg.threshold < 160 and "Otsu" in seg.note
    assert (seg.mask == truth).mean() > 0.99
    bright = binarize(gray, pore_value="bright")
    assert (bright.mask == ~truth).mean() > 0.99


def test_given_threshold_is_used():
    seg = binarize(np.arange(10, dtype=np.float32), threshold=3.5)
    assert seg.mask.sum() == 4 and "given threshold 3.5" in seg.note


def test_a_threshold_does_not_invert_a_binary_volume():
    """255 = pore stays pore: the gray rule (pores dark) would have made the solid the pore."""
    binary = np.array([[0, 255], [255, 255]], np.uint8)
    seg = binarize(binary, threshold=128)
    assert seg.mask.tolist() == [[False, True], [True, True]] and "--threshold 128 not used" in seg.note
    assert binarize(binary, threshold=128, pore_value="0").mask.tolist() == [[True, False], [False, False]]


def test_constant_image_and_bad_pore_value_are_refused():
    with pytest.raises(BadInputError, match="constant"):
        binarize(np.full((5, 5), 7, np.uint16))
    with pytest.raises(BadInputError, match="pore-value"):
        binarize(np.zeros((3, 3), np.uint8), pore_value="grey")


def test_circular_field_of_view_is_found_and_a_full_frame_rock_is_not(berea_crop):
    assert detect_circular_fov(berea_crop[0].astype(np.uint8) * 255) is None
    yy, xx = np.mgrid[:100, :100]
    disc = (yy - 50) ** 2 + (xx - 48) ** 2 <= 40 ** 2
    fov = detect_circular_fov(np.where(disc, berea_crop[0] * 200 + 30, 0).astype(np.uint8))
    assert fov is not None and fov.radius == pytest.approx(40, abs=2)
    rows, cols = fov.inscribed_square((100, 100))
    assert disc[rows, cols].all()


def test_one_grain_or_pore_in_the_middle_is_not_a_field_of_view():
    yy, xx = np.mgrid[:48, :48]
    for radius in (5, 11):
        ball = ((yy - 24) ** 2 + (xx - 24) ** 2 <= radius ** 2).astype(np.uint8) * 255
        assert detect_circular_fov(ball) is None and detect_circular_fov(255 - ball) is None


@pytest.mark.parametrize("text,metres", [("5.345um", 5.345e-6), ("5.345 µm", 5.345e-6), ("0.005mm", 5e-6),
                                         ("2e-6", 2e-6), ("300nm", 3e-7)])
def test_parse_length(text, metres):
    assert parse_length(text) == pytest.approx(metres)


def test_a_negative_length_is_called_negative():
    with pytest.raises(BadInputError, match="must be positive"):
        parse_length("-1um")


@pytest.mark.parametrize("text", ["5.345", "abc", "-1um", "3 furlongs"])
def test_parse_length_refuses_nonsense(text):
    with pytest.raises(BadInputError):
        parse_length(text)


@pytest.mark.parametrize("threshold", [99999, -1, 9])
def test_a_threshold_outside_the_values_is_refused(threshold):
    """At or above the largest value (or below the smallest) every voxel would be one phase."""
    with pytest.raises(BadInputError, match="outside the input's values"):
        binarize(np.arange(10, dtype=np.uint16), threshold=threshold)
    assert binarize(np.arange(10, dtype=np.uint16), threshold=8.5).mask.sum() == 9
