"""Drawing-cleaning U-Net: data, a few training steps, checkpoint round-trip and resume."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rocksynth.data.degrade import degraded_pair, scan_to_gray
from rocksynth.errors import BadInputError
from rocksynth.models.unet import UNet, widened
from rocksynth.training.clean import (BENCHMARK_SEEDS, VALIDATION_SEEDS, binary_psnr, ink_iou, procedural_pair,
                                      soft_psnr, train_clean)

from conftest import Stop, StopAt

TINY = (4, 8, 8, 8, 8)


def test_procedural_pairs_are_reproducible_and_degraded():
    scan_a, target_a = procedural_pair(VALIDATION_SEEDS + 3, 96, 128)
    scan_b, target_b = procedural_pair(VALIDATION_SEEDS + 3, 96, 128)
    assert np.array_equal(scan_a, scan_b) and np.array_equal(target_a, target_b)
    assert scan_a.shape == target_a.shape == (96, 128) and scan_a.dtype == np.float32
    assert 0.0 <= scan_a.min() and scan_a.max() <= 1.0
    pairs = [procedural_pair(VALIDATION_SEEDS + i, 96, 96) for i in range(8)]
    assert sum(target.any() for _, target in pairs) >= 6
    for scan, target in pairs:
        assert target.mean() < 0.7
        if target.any():
            assert scan[target].mean() < scan[~target].mean()  # ink is darker than paper
    # ... but a fixed threshold does not recover the target: the scans are degraded.
    assert np.mean([ink_iou(scan < 0.5, target) for scan, target in pairs if target.any()]) < 0.9


def test_scan_to_gray_handles_depths_and_alpha():
    gray8 = np.array([[0, 255]], dtype=np.uint8)
    assert np.allclose(scan_to_gray(gray8), [[0, 1]])
    assert np.allclose(scan_to_gray(gray8.astype(np.uint16) * 257), [[0, 1]])
    rgba = np.zeros((1, 2, 4), dtype=np.uint8)
    rgba[..., 3] = [255, 0]  # black ink, then a transparent pixel (white paper)
    assert np.allclose(scan_to_gray(rgba), [[0, 1]])


def test_degradation_skews_scan_and_target_together():
    clean = np.zeros((96, 256), bool)
    clean[47:50] = True  # one horizontal line, 3 px wide
    skewed, followed = 0, []
    for seed in range(8):
        scan, target = degraded_pair(np.random.default_rng(seed), clean)
        gray = scan_to_gray(scan)
        if np.array_equal(target, clean):
            continue
        skewed += 1
        columns = np.nonzero(target.any(axis=0))[0][5:-5]
        centre = np.array([np.nonzero(target[:, c])[0].mean() for c in columns])
        darkest = gray[:, columns].argmin(axis=0)
        followed.append(np.mean(np.abs(darkest - centre) <= 2))
    assert skewed >= 2
    assert np.median(followed) > 0.8  # the scan's line runs where the target's (rotated) line runs


def test_skew_keeps_thin_strokes_whole():
    """A 1-pixel oblique line stays (nearly) one piece in the skewed target, where rotating the
    pixel grid with linear interpolation and thresholding broke it into 14-18 dashes."""
    from PIL import Image, ImageDraw
    from scipy import ndimage

    from rocksynth.data.degrade import skew

    canvas = Image.new("L", (200, 200), 0)
    ImageDraw.Draw(canvas).line([(20, 40), (180, 150)], fill=255, width=1)
    clean = np.asarray(canvas) > 127
    breaks, old_breaks = 0, 0
    for seed in range(8):
        target = skew(clean, np.random.default_rng(seed))
        assert target.dtype == bool and abs(int(target.sum()) - int(clean.sum())) < 0.05 * clean.sum()
        breaks += ndimage.label(target, np.ones((3, 3)))[1] - 1
        angle = np.random.default_rng(seed).uniform(-1.5, 1.5)
        old = ndimage.rotate(clean.astype(np.float32), angle, reshape=False, order=1) > 0.5
        old_breaks += ndimage.label(old, np.ones((3, 3)))[1] - 1
    assert breaks <= 12 and old_breaks >= 80


def test_metrics():
    a = np.zeros((10, 10), bool)
    a[2:4] = True
    assert ink_iou(a, a) == 1.0 and binary_psnr(a, a) == 60.0
    b = a.copy()
    b[5, 5] = True
    assert ink_iou(b, a) == pytest.approx(20 / 21)
    assert binary_psnr(b, a) == pytest.approx(20.0)
    assert VALIDATION_SEEDS < BENCHMARK_SEEDS


def test_soft_psnr_of_the_8bit_gray_output():
    target = np.zeros((10, 10), bool)
    target[:, :3] = True
    sure = target.astype(np.float32)
    assert soft_psnr(sure, target) == 60.0
    wrong = sure.copy()
    wrong[0, 5] = 1.0  # one pixel of false ink: as the binary PSNR
    assert soft_psnr(wrong, target) == pytest.approx(binary_psnr(wrong > 0.5, target)) == pytest.approx(20.0)
    # p = 0.5 everywhere is written as gray 128: 128 from black, 127 from white.
    mse = (30 * 128 ** 2 + 70 * 127 ** 2) / 100
    assert soft_psnr(np.full((10, 10), 0.5), target) == pytest.approx(10 * np.log10(255 ** 2 / mse))


def test_training_moves_loss_and_checkpoint_round_trips(tmp_path):
    torch.manual_seed(0)
    fixed = [procedural_pair(VALIDATION_SEEDS + i, 64, 64) for i in range(4)]
    x = torch.from_numpy(np.stack([s for s, _ in fixed])[:, None])
    y = torch.from_numpy(np.stack([t for _, t in fixed])[:, None].astype(np.float32))

    def loss_of(model):
        model.train()  # batch statistics: 8 steps are too few for BatchNorm's running averages
        with torch.no_grad():
            return float(F.binary_cross_entropy_with_logits(model(x), y))

    torch.manual_seed(0)
    initial = loss_of(UNet(TINY))
    out = tmp_path / "clean.pt"
    meta = train_clean(out, 8, batch=4, crop=64, lr=5e-3, widths=TINY, validate_every=4, checkpoint_every=4,
                       curve_csv=tmp_path / "curve.csv", validation_count=2)
    assert meta["iterations"] == 8 and len(meta["curve"]) == 2
    assert (tmp_path / "curve.csv").read_text().count("\n") == 3

    from rocksynth.pipelines.clean import load_cleaner
    model = load_cleaner(str(out))
    # Same weights, same output after the round trip.
    payload = torch.load(out, weights_only=True)
    again = UNet(**payload["config"])
    again.load_state_dict(payload["state"]["model"])
    again.eval()
    with torch.no_grad():
        assert torch.equal(again(x), model(x))
    assert loss_of(model) < initial - 0.05
    # Resume continues from iteration 8.
    meta = train_clean(out, 10, resume=True, batch=2, crop=64, widths=TINY, validate_every=100,
                       validation_count=1)
    assert meta["iterations"] == 10 and len(meta["curve"]) == 3


def test_a_stopped_run_resumes_to_the_same_weights(tmp_path):
    """A run stopped after a checkpoint and resumed ends with the weights of one uninterrupted run;
    a checkpoint from before weight averaging was removed (an "swa" state beside the model) resumes too."""
    kwargs = dict(batch=2, crop=32, widths=TINY, validate_every=2, checkpoint_every=2, validation_count=1)
    train_clean(tmp_path / "whole.pt", 8, **kwargs)
    with pytest.raises(Stop):
        train_clean(tmp_path / "parts.pt", 8, progress=StopAt(7), **kwargs)  # after the save at 6
    payload = torch.load(tmp_path / "parts.pt", weights_only=True)
    assert payload["meta"]["iterations"] == 6
    payload["state"]["swa"] = dict(payload["state"]["model"])  # as an averaging run saved it
    torch.save(payload, tmp_path / "parts.pt")
    train_clean(tmp_path / "parts.pt", 8, resume=True, **kwargs)
    a = torch.load(tmp_path / "whole.pt", weights_only=True)["state"]["model"]
    b = torch.load(tmp_path / "parts.pt", weights_only=True)["state"]["model"]
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-6) for k in a)


@pytest.mark.parametrize("training", [False, True])
def test_a_widened_unet_computes_what_the_narrow_one_does(training):
    torch.manual_seed(0)
    narrow = UNet(TINY)
    narrow.train()
    for _ in range(3):  # non-trivial batch-norm statistics
        narrow(torch.rand(2, 1, 32, 32))
    wide = widened(narrow, (6, 8, 12, 8, 16))
    assert wide.config["widths"] == [6, 8, 12, 8, 16]
    narrow.train(training)
    wide.train(training)
    x = torch.rand(2, 1, 48, 48)
    with torch.no_grad():
        torch.testing.assert_close(wide(x), narrow(x), atol=1e-5, rtol=0)
    # The added channels are live: one training step changes the output.
    loss = wide(x).mean()
    loss.backward()
    assert wide.ups[-1].fuse[0][0].weight.grad[:, TINY[0]:].abs().sum() > 0
    with pytest.raises(ValueError, match="cannot widen"):
        widened(narrow, (2, 8, 8, 8, 8))


def test_a_run_from_init_starts_from_its_weights_and_ramps_the_rate(tmp_path):
    source = tmp_path / "small.pt"
    train_clean(source, 4, batch=2, crop=32, widths=TINY, validate_every=4, validation_count=1)
    out = tmp_path / "wide.pt"
    meta = train_clean(out, 2, batch=2, crop=32, widths=(6, 8, 12, 8, 16), validate_every=1,
                       validation_count=1, init=source)
    assert meta["init"]["iterations"] == 4 and meta["init"]["widths"] == list(TINY)
    assert meta["iterations"] == 2 and meta["curve"][0]["lr"] < 2e-3 / 100  # first step of the ramp
    payload = torch.load(out, weights_only=True)
    assert payload["config"]["widths"] == [6, 8, 12, 8, 16]
    # Without widths, a run from --init keeps the source's network (a plain fine-tune).
    same = train_clean(tmp_path / "same.pt", 1, batch=2, crop=32, validate_every=1, validation_count=1, init=out)
    assert torch.load(tmp_path / "same.pt", weights_only=True)["config"]["widths"] == [6, 8, 12, 8, 16]
    assert same["init"]["widths"] == [6, 8, 12, 8, 16]
    with pytest.raises(BadInputError, match="--init"):
        train_clean(tmp_path / "bad.pt", 1, batch=2, crop=32, widths=(2, 8, 8, 8, 8), init=source)
    assert not (tmp_path / "bad.pt").exists()
