"""The shipped `scenes` frame predictor, the default of `predict`: better than repeating the last
frame on held-out colour clips, at any frame size, through the same code as the command."""

import math

import numpy as np

from rocksynth.data.videos import procedural_clips
from rocksynth.pipelines.predict import load_predictor, predict_clip


def _psnr_gain(clips: np.ndarray, context: int, loaded) -> float:
    """PSNR of the prediction minus that of repeat-last, the MSE pooled over clips and steps."""
    model_err = last_err = 0.0
    for clip in clips:
        truth = clip[context:].astype(float) / 255
        predicted, info = predict_clip(clip[:context], len(truth), loaded)
        assert info["decoding"] == "deterministic" and predicted.shape == (1, *truth.shape)
        model_err += ((predicted[0] / 255 - truth) ** 2).mean()
        last_err += ((clip[context - 1] / 255 - truth) ** 2).mean()
    return 10 * math.log10(last_err / model_err)


def test_the_default_model_beats_repeat_last_on_held_out_scenes():
    loaded = load_predictor("scenes")
    clips = procedural_clips("scenes", 12, frames=10, size=64, split="heldout", start=5000)
    assert _psnr_gain(clips, 5, loaded) > 3.0


def test_it_runs_at_the_clip_size_and_still_beats_repeat_last():
    """Frames of 72x96 (not the 64x64 it trained on, not square): fully convolutional, no resizing."""
    loaded = load_predictor("scenes")
    clips = procedural_clips("scenes", 6, frames=8, size=96, split="heldout", start=6000)[:, :, 12:84]
    assert clips.shape[2:] == (72, 96, 3)
    assert _psnr_gain(clips, 4, loaded) > 1.0
