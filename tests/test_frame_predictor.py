"""The deterministic frame predictor: starts as repeat-last, any frame size, rollout, training."""

import pytest
import torch

from rocksynth.models.frame_predictor import FramePredictor, from_checkpoint
from rocksynth.training.checkpoint import load_checkpoint


def test_untrained_predictor_repeats_the_last_frame_at_any_size():
    model = FramePredictor(channels=3, context=4, widths=(4, 8, 8), blocks=1).eval()
    clip = torch.rand(2, 5, 3, 37, 50)  # not a multiple of 4
    with torch.no_grad():
        nxt = model(clip)
    assert nxt.shape == (2, 3, 37, 50)
    assert torch.equal(nxt, clip[:, -1])


def test_rollout_feeds_back_its_own_frames_and_takes_short_contexts():
    torch.manual_seed(0)
    model = FramePredictor(channels=1, context=4, widths=(4, 8, 8), blocks=2).eval()
    torch.nn.init.normal_(model.head.weight, std=0.1)
    clip = torch.rand(1, 2, 1, 16, 16)  # shorter than the model's context
    with torch.no_grad():
        frames = model.rollout(clip, 3)
        second = model(torch.cat([clip, frames[:, :1]], 1))
    assert frames.shape == (1, 3, 1, 16, 16)
    assert torch.allclose(frames[:, 1], second)
    assert frames.min() >= 0 and frames.max() <= 1


def test_training_moves_the_loss_and_the_checkpoint_round_trips_and_resumes(tmp_path):
    from rocksynth.training.predictor import train_predictor

    out = tmp_path / "p.pt"
    kwargs = dict(size=32, channels=3, widths=(4, 8, 8), blocks=1, rollout=2, batch=2, pool=8, eval_every=2)
    first = train_predictor(["scenes"], out, iters=2, **kwargs)
    payload = load_checkpoint(out, "video")
    assert payload["meta"]["stage"] == "predictor" and payload["meta"]["iterations"] == 2
    model = from_checkpoint(payload)
    assert isinstance(model, FramePredictor) and not model.training
    assert model.head.weight.abs().sum() > 0  # it trained away from repeat-last
    last = train_predictor(["scenes"], out, iters=4, resume=True, **kwargs)
    assert load_checkpoint(out, "video")["meta"]["iterations"] == 4
    assert first["iteration"] == 2 and last["iteration"] == 4
    rows = (tmp_path / "p.predictor.csv").read_text().splitlines()
    assert len(rows) == 3  # header + iterations 2 and 4


def test_predict_with_a_predictor_checkpoint_works_at_the_clip_size(tmp_path, run_cli):
    """`rocksynth predict --model CKPT` of an untrained predictor (zero change): the predicted
    frames repeat the last context frame, in colour, at the clip's own 40x56 size."""
    import numpy as np

    from rocksynth.io.videos import read_video, write_video
    from rocksynth.training.checkpoint import save_checkpoint

    model = FramePredictor(channels=3, context=4, widths=(4, 8, 8), blocks=1)
    save_checkpoint(tmp_path / "p.pt", "video", {"predictor": model.config, "frame": {"size": 64, "channels": 3}},
                    {"predictor": model.state_dict()}, {"stage": "predictor", "iterations": 0, "sources": ["scenes"]})
    frames = np.zeros((5, 40, 56, 3), np.uint8)
    frames[..., 0] = 200  # a flat red clip survives H.264 nearly exactly
    write_video(tmp_path / "c.mp4", frames, fps=8)
    code, _, stderr = run_cli("predict", "c.mp4", "--model", "p.pt", "--context", "5", "--frames", "3",
                              "--out", "o.mp4", cwd=tmp_path)
    assert code == 0, stderr
    out = read_video(tmp_path / "o.mp4").frames
    assert out.shape == (8, 40, 56, 3)
    assert np.abs(out[5:].astype(int) - out[4].astype(int)).max() <= 2
    code, _, stderr = run_cli("predict", "c.mp4", "--model", "p.pt", "--samples", "2", "--out", "s.mp4", cwd=tmp_path)
    assert code == 2 and "deterministic" in stderr


def test_a_binary_stack_is_continued_by_binary_slices():
    """Segmented slices (0 and 255 only) in, segmented slices out, with the last slice's fraction
    of 255 (its porosity); a gray clip keeps its gray values."""
    import numpy as np

    from rocksynth.pipelines.predict import predict_clip

    model = FramePredictor(channels=1, context=4, widths=(4, 8, 8), blocks=1).eval()
    with torch.no_grad():
        model.head.bias.fill_(0.3)  # a change that leaves gray values: 0 -> 77, 255 -> 255
    loaded = (None, model, {})
    binary = np.where(np.random.default_rng(0).random((4, 24, 24, 1)) < 0.3, 255, 0).astype(np.uint8)
    predicted, info = predict_clip(binary, 2, loaded)
    assert info["binary"] and set(np.unique(predicted)) <= {0, 255}
    assert np.array_equal(predicted[0, 0], binary[-1])  # the 255 pixels are the highest predicted
    assert all((frame == 255).sum() == (binary[-1] == 255).sum() for frame in predicted[0])
    gray = (binary // 2 + 20).astype(np.uint8)
    predicted, info = predict_clip(gray, 1, loaded)
    assert "binary" not in info and not np.isin(predicted, (0, 255)).all()


def test_binarize_keeping_porosity_keeps_the_fraction_and_breaks_ties_anywhere():
    import numpy as np

    from rocksynth.pipelines.predict import binarize_keeping_porosity

    ramp = np.linspace(0, 1, 100).reshape(1, 10, 10)
    kept = binarize_keeping_porosity(ramp, 0.23)
    assert kept.sum() == 23 and kept[0].ravel()[-23:].all()  # the 23 highest values
    flat = binarize_keeping_porosity(np.zeros((3, 40, 40)), 0.25)  # all tied
    assert (flat.sum((1, 2)) == 400).all()
    assert 0.15 < flat[:, :20].mean() < 0.35  # spread over the frame (raster order would fill the top half: 0.5)
    assert not binarize_keeping_porosity(ramp, 0.0).any() and binarize_keeping_porosity(ramp, 1.0).all()


def test_predicted_slices_of_a_stack_keep_its_voxel_size(tmp_path, run_cli):
    """`predict stack.tif --model rocks --out next.tif`: the stack's voxel size goes with its
    predicted slices, so `analyze next.tif` reports in micrometres as for the stack."""
    import numpy as np

    from rocksynth.io.volumes import read_volume, write_volume

    stack = np.where(np.random.default_rng(1).random((6, 40, 48)) < 0.2, 255, 0).astype(np.uint8)
    write_volume(tmp_path / "stack.tif", stack, 5.345e-6)
    code, _, stderr = run_cli("predict", "stack.tif", "--model", "rocks", "--context", "5", "--frames", "2",
                              "--out", "next.tif", cwd=tmp_path)
    assert code == 0, stderr
    written = read_volume(tmp_path / "next.tif")
    assert written.data.shape == (7, 40, 48) and written.voxel_size == pytest.approx(5.345e-6)


def test_prediction_records_no_autograd_graph():
    """Inference keeps no graph: with one, a 1280x720 clip held every frame's activations (8.6 GB
    for 5 frames, against 1.9 GB without)."""
    import numpy as np

    from rocksynth.pipelines.predict import predict_clip

    model = FramePredictor(channels=3, context=4, widths=(4, 8, 8), blocks=1).eval()
    grad_enabled = []
    model.register_forward_hook(lambda *_: grad_enabled.append(torch.is_grad_enabled()))
    frames = np.random.default_rng(0).integers(0, 255, (4, 24, 24, 3), dtype=np.uint8)
    predict_clip(frames, 3, (None, model, {}))
    assert grad_enabled == [False, False, False]
