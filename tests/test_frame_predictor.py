"""The deterministic frame predictor: starts as repeat-last, any frame size, rollout, training."""

import numpy as np
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


def test_sample_along_a_flow_moves_pixels_and_a_zero_flow_keeps_them():
    from rocksynth.models.frame_predictor import sample_along

    image = torch.rand(2, 3, 9, 13)
    flow = torch.zeros(2, 2, 9, 13)
    assert torch.allclose(sample_along(image, flow), image, atol=1e-5)
    flow[:, 0], flow[:, 1] = 2, -1  # each pixel comes from 2 to the right, 1 up
    moved = sample_along(image, flow)
    assert torch.allclose(moved[..., 1:, :-2], image[..., :-1, 2:], atol=1e-5)
    assert torch.allclose(moved[..., 0, :-2], image[..., 0, 2:], atol=1e-5)  # above the frame: its edge
    flow[:] = 0.5  # half-way between pixels: the mean of the four
    half = sample_along(image, flow)
    four = (image[..., :-1, :-1] + image[..., 1:, :-1] + image[..., :-1, 1:] + image[..., 1:, 1:]) / 4
    assert torch.allclose(half[..., :-1, :-1], four, atol=1e-5)


def test_a_warping_predictor_widened_from_a_plain_one_predicts_what_it_did():
    """--init with --warp: the flow head starts at zero, so the new network's first prediction is
    the source's; the flow then moves the last frame (a shifted clip is followed exactly)."""
    from rocksynth.training.checkpoint import load_widened

    torch.manual_seed(0)
    plain = FramePredictor(channels=3, context=4, widths=(4, 8, 8), blocks=1).eval()
    torch.nn.init.normal_(plain.head.weight, std=0.05)
    warping = FramePredictor(channels=3, context=4, widths=(4, 8, 8), blocks=1, warp=True).eval()
    assert sorted(load_widened(warping, plain.state_dict())) == ["flow.bias", "flow.weight"]
    assert warping.config == dict(plain.config, warp=True) and "warp" not in plain.config
    clip = torch.rand(2, 5, 3, 20, 24)
    with torch.no_grad():
        assert torch.allclose(warping(clip), plain(clip), atol=1e-5)
        warping.head.weight.zero_(), warping.head.bias.zero_()
        warping.flow.bias.copy_(torch.tensor([-1.0, 0.0]))  # every pixel from 1 to the left
        nxt = warping(clip)
    assert torch.allclose(nxt[..., 1:], clip[:, -1, ..., :-1], atol=1e-5)


def test_training_from_init_continues_the_source_and_adds_the_flow(tmp_path, monkeypatch):
    """`train video --stage predictor --init CKPT --warp`: the source's iteration count and curve
    go on, `--iters` counts from them, the learning rate ramps up from the source's count, and a
    resumed run keeps the record of where it started."""
    from rocksynth.training import predictor
    from rocksynth.training.predictor import INIT_RAMP, train_predictor

    ramps = []
    real_train = predictor.train

    def spy(build, plan, settings, **kwargs):
        ramps.append((settings.ramp, kwargs["init"]))
        return real_train(build, plan, settings, **kwargs)

    monkeypatch.setattr(predictor, "train", spy)
    kwargs = dict(rollout=2, batch=2, pool=8, eval_every=2)
    train_predictor(["scenes"], tmp_path / "a.pt", iters=2, size=32, channels=3, widths=(4, 8, 8), blocks=1,
                    **kwargs)
    out = tmp_path / "b.pt"
    result = train_predictor([], out, iters=2, init=str(tmp_path / "a.pt"), warp=True, **kwargs)
    payload = load_checkpoint(out, "video")
    meta = payload["meta"]
    assert result["iteration"] == 4 and meta["iterations"] == 4
    assert meta["init"] == {"checkpoint": str(tmp_path / "a.pt"), "iteration": 2}
    assert meta["sources"] == ["scenes"] and payload["config"]["frame"]["size"] == 32
    assert payload["config"]["predictor"]["warp"] is True and "flow" in str(list(payload["state"]["predictor"]))
    assert [int(float(r["iteration"])) for r in meta["curve"]] == [2, 4]
    assert ramps[1] == (INIT_RAMP, meta["init"])  # the loop ramps from the source's count
    warnings = []
    monkeypatch.setattr(predictor, "warn", warnings.append)
    train_predictor([], out, iters=4, resume=True, init=str(tmp_path / "a.pt"), **kwargs)
    meta = load_checkpoint(out, "video")["meta"]
    assert meta["iterations"] == 6 and meta["init"]["iteration"] == 2
    assert any("--init" in w for w in warnings)  # a resumed run says it does not use --init


def test_the_sharp_loss_prefers_one_possible_frame_to_their_blurred_mean():
    """Two futures in three have the object at the left, the third at the right. Averaged over
    them, the MSE is lower for their blurred mean than for the likelier frame; the sharp loss
    (absolute error plus gradient difference) is lower for the likelier frame."""
    from rocksynth.training.predictor import frame_loss

    left, right = torch.zeros(1, 1, 16, 16), torch.zeros(1, 1, 16, 16)
    left[..., 4:8, 2:6], right[..., 4:8, 10:14] = 1, 1
    mean = (2 * left + right) / 3

    def expected(pred, kind):
        return (2 * frame_loss(pred, left, kind) + frame_loss(pred, right, kind)) / 3

    assert expected(mean, "mse") < expected(left, "mse")
    assert expected(left, "sharp") < expected(mean, "sharp")
    assert frame_loss(left, left, "sharp") == 0


def test_the_object_error_counts_faded_and_invented_objects_not_their_place():
    """A faded object costs 1 whatever its size and contrast, and so does a ghost; an object
    shown within reach of its place costs nothing; a frame with no object costs nothing."""
    from rocksynth.training.predictor import OBJECT_REACH, object_error

    background = torch.full((1, 3, 32, 32), 0.5)
    truth = background.clone()
    truth[..., 2:4, 2:4] = 0.62  # small and faint: 4 px, contrast 0.12
    truth[..., 10:20, 10:20] = 1.0  # large and bright: 100 px, contrast 0.5
    assert object_error(truth, truth, background) == 0
    lost_small = truth.clone()
    lost_small[..., 2:4, 2:4] = 0.5
    lost_large = truth.clone()
    lost_large[..., 10:20, 10:20] = 0.5
    # The mean over the two objects.
    assert object_error(lost_small, truth, background).item() == pytest.approx(0.5, rel=1e-5)
    assert object_error(lost_large, truth, background).item() == pytest.approx(0.5, rel=1e-5)
    # Shown 10 px (its side) away, it is both lost and a ghost: 2 terms of 1 among 3.
    for shift, cost in ((OBJECT_REACH, 0.0), (OBJECT_REACH + 10, 2 / 3)):
        moved = background.clone()
        moved[..., 2:4, 2:4] = 0.62
        moved[..., 10 + shift:20 + shift, 10:20] = 1.0
        assert object_error(moved, truth, background).item() == pytest.approx(cost, abs=1e-6)
    ghost = truth.clone()
    ghost[..., 25:28, 25:28] = 0.2  # 9 px, contrast 0.3
    assert object_error(ghost, truth, background).item() == pytest.approx(1 / 3, rel=1e-5)
    assert object_error(background, background, background) == 0
    pred = lost_small.clone().requires_grad_()
    object_error(pred, truth, background).backward()
    # It pulls the faded object back: brighter (its colour) within reach of its place, nowhere else.
    near = pred.grad[..., :4 + OBJECT_REACH, :4 + OBJECT_REACH]
    assert near.sum() < 0 and (near <= 0).all() and pred.grad.abs().sum() == -near.sum()


def test_the_objects_loss_trains_on_scenes_with_backgrounds_flipped_with_their_clips(tmp_path, monkeypatch):
    """Each clip's background goes through the same flips, transposes and time reversal as the
    clip: with backgrounds equal to the clips, the loss sees them equal. Other data is refused."""
    from rocksynth.training import predictor

    seen = []

    def spy(pred, truth, kind="mse", background=None, flows=None):
        seen.append((truth.clone(), background.clone(), kind))
        return ((pred - truth) ** 2).mean()

    monkeypatch.setattr(predictor, "frame_loss", spy)
    task = predictor._PredictorTask(["scenes"], {"channels": 3, "context": 2, "widths": [4, 8, 8], "blocks": 1},
                                    {"size": 32, "channels": 3, "clip_frames": 4, "rollout": 2, "loss": "objects"},
                                    batch=4, lr=1e-3, pool=6, seed=0)
    assert task.backgrounds.shape == task.pool.shape
    task.backgrounds = task.pool.copy()
    task.device = torch.device("cpu")
    for iteration in range(6):
        task.step(iteration)
    assert all(kind == "objects" and torch.equal(truth, background) for truth, background, kind in seen)
    with pytest.raises(Exception, match="needs the procedural set scenes"):
        predictor._PredictorTask(["balls"], {"channels": 1, "context": 2, "widths": [4, 8, 8], "blocks": 1},
                                 {"size": 32, "channels": 1, "clip_frames": 4, "rollout": 2, "loss": "objects"},
                                 batch=2, lr=1e-3, pool=2, seed=0)


def test_the_motion_loss_sees_each_clip_with_its_true_motion_through_every_flip(monkeypatch):
    """The true flows reach the loss flipped, transposed and time-reversed with their clips: the
    frame before each predicted one, sampled along its true flow, is far closer to that frame
    than unmoved where the loss asks for a flow (the content is seen and its motion shows). The
    network's own flows come with them."""
    from rocksynth.models.frame_predictor import sample_along
    from rocksynth.training import predictor

    seen = []

    def spy(pred, truth, kind="mse", background=None, flows=None):
        seen.append((truth.clone(), flows, kind))
        return ((pred - truth) ** 2).mean() + predictor.motion_error(*flows)

    monkeypatch.setattr(predictor, "frame_loss", spy)
    task = predictor._PredictorTask(["scenes"], {"channels": 3, "context": 2, "widths": [4, 8, 8], "blocks": 1,
                                                 "warp": True},
                                    {"size": 32, "channels": 3, "clip_frames": 4, "rollout": 2, "loss": "motion"},
                                    batch=4, lr=1e-3, pool=6, seed=0)
    task.device = torch.device("cpu")
    for iteration in range(8):
        task.step(iteration)
    for truth, (flow, true_flow, visible), kind in seen:
        assert kind == "motion" and flow.shape == true_flow.shape == (4, 2, 2, 32, 32)
        moved = sample_along(truth[:, 0], true_flow[:, 1])  # predicted frame 2 from predicted frame 1
        error = ((moved - truth[:, 1]) ** 2).mean(1)[visible[:, 1]]
        still = ((truth[:, 0] - truth[:, 1]) ** 2).mean(1)[visible[:, 1]]
        assert visible.any() and error.mean() < 0.3 * still.mean()
    with pytest.raises(Exception, match="needs the procedural set scenes"):
        predictor._PredictorTask(["balls"], {"channels": 1, "context": 2, "widths": [4, 8, 8], "blocks": 1},
                                 {"size": 32, "channels": 1, "clip_frames": 4, "rollout": 2, "loss": "motion"},
                                 batch=2, lr=1e-3, pool=2, seed=0)


def test_the_motion_error_is_the_mean_distance_where_the_content_is_seen():
    from rocksynth.training.predictor import motion_error

    true = torch.zeros(1, 2, 4, 4)
    flow = true.clone()
    flow[0, 0, 0, 0], flow[0, 1, 0, 0] = 3.0, 4.0  # 5 px off at one pixel
    flow[0, 0, 3, 3] = 100.0  # far off where the content is not seen
    visible = torch.ones(1, 4, 4, dtype=torch.bool)
    visible[0, 3, 3] = False
    assert motion_error(flow, true, visible) == pytest.approx(5 / 15)
    assert motion_error(flow, true, torch.zeros_like(visible)) == 0


def test_motion_is_asked_for_only_where_it_shows():
    """A flat frame looks the same moved anywhere; a step edge moved across shows its motion at
    the edge only."""
    from rocksynth.training.predictor import motion_shows

    flow = torch.zeros(1, 2, 8, 8)
    flow[:, 0] = 1.0  # every pixel comes from one to its right
    assert not motion_shows(torch.full((1, 3, 8, 8), 0.4), flow).any()
    edge = torch.zeros(1, 3, 8, 8)
    edge[..., 4:] = 1.0
    shows = motion_shows(edge, flow)[0]
    assert shows[:, 3].all() and shows.sum() == 8


def test_the_loss_is_kept_by_a_resumed_run_and_checked(tmp_path):
    from rocksynth.training.predictor import train_predictor

    out = tmp_path / "p.pt"
    kwargs = dict(size=32, channels=1, widths=(4, 8, 8), blocks=1, rollout=1, batch=2, pool=4, eval_every=1)
    train_predictor(["balls"], out, iters=1, loss="sharp", **kwargs)
    train_predictor(["balls"], out, iters=2, resume=True, **kwargs)  # the default loss is not read
    assert load_checkpoint(out, "video")["config"]["frame"]["loss"] == "sharp"
    # A warm start trains on its own loss, the MSE by default, which the config leaves out (as
    # the checkpoints from before the option).
    train_predictor([], tmp_path / "m.pt", iters=1, init=str(out), rollout=1, batch=2, pool=4, eval_every=1)
    assert "loss" not in load_checkpoint(tmp_path / "m.pt", "video")["config"]["frame"]
    with pytest.raises(Exception, match="choose mse, sharp, objects or motion"):
        train_predictor(["balls"], tmp_path / "q.pt", iters=1, loss="l2", **kwargs)
    assert not (tmp_path / "q.pt").exists()


def test_init_refuses_what_is_not_a_frame_predictor(tmp_path, run_cli):
    code, _, stderr = run_cli("train", "video", "--stage", "predictor", "--init", "shapes", "--out", "x.pt",
                              cwd=tmp_path)
    assert code == 2 and "not a frame-predictor checkpoint" in stderr
    code, _, stderr = run_cli("train", "video", "scenes", "--stage", "vqvae", "--warp", "--out", "x.pt", cwd=tmp_path)
    assert code == 2 and "--stage predictor" in stderr
    code, _, stderr = run_cli("train", "video", "scenes", "--stage", "predictor", "--loss", "l2", "--out", "x.pt",
                              cwd=tmp_path)
    assert code == 2 and "--loss 'l2'" in stderr
    assert not list(tmp_path.iterdir())


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


def test_on_stdout_a_binary_clip_or_a_tiff_stack_stays_a_tiff_stack_and_a_video_an_mp4(run_cli, tmp_path):
    """H.264 would blur segmented slices into tens of gray levels, so stdout carries them as a TIFF."""
    import numpy as np
    import tifffile

    from rocksynth.io.videos import read_video, write_video
    from rocksynth.training.checkpoint import save_checkpoint

    model = FramePredictor(channels=1, context=4, widths=(4, 8, 8), blocks=1)
    save_checkpoint(tmp_path / "p.pt", "video", {"predictor": model.config, "frame": {"size": 64, "channels": 1}},
                    {"predictor": model.state_dict()}, {"stage": "predictor", "iterations": 0, "sources": ["rocks"]})
    binary = np.where(np.random.default_rng(0).random((5, 24, 32)) < 0.3, 255, 0).astype(np.uint8)
    (tmp_path / "slices").mkdir()
    for index, frame in enumerate(binary):
        tifffile.imwrite(tmp_path / "slices" / f"{index}.tif", frame)  # binary, from a folder
    tifffile.imwrite(tmp_path / "gray.tif", (binary // 2 + 20).astype(np.uint8))  # gray, a TIFF stack
    write_video(tmp_path / "gray.mp4", (binary // 2 + 20).astype(np.uint8)[..., None])
    for source, tiff in (("slices", True), ("gray.tif", True), ("gray.mp4", False)):
        code, stdout, stderr = run_cli("predict", source, "--model", "p.pt", "--context", "5", "--frames", "2",
                                       "--out", "-", cwd=tmp_path)
        assert code == 0, stderr
        assert (stdout[:4] in (b"II*\x00", b"MM\x00*")) == tiff and (stdout[4:8] == b"ftyp") != tiff, source
    (tmp_path / "out.tif").write_bytes(run_cli("predict", "slices", "--model", "p.pt", "--context", "5",
                                               "--frames", "2", "--out", "-", cwd=tmp_path)[1])
    out = read_video(tmp_path / "out.tif").frames
    assert out.shape == (7, 24, 32, 1) and set(np.unique(out)) == {0, 255}


def test_a_gray_clip_for_a_colour_predictor_comes_back_gray_and_a_colour_clip_for_a_gray_one_is_refused():
    import numpy as np

    from rocksynth.errors import BadInputError
    from rocksynth.pipelines.predict import predict_clip

    colour_model = (None, FramePredictor(channels=3, context=4, widths=(4, 8, 8), blocks=1).eval(), {})
    gray = np.random.default_rng(0).integers(0, 256, (5, 20, 24, 1), dtype=np.uint8)
    predicted, _ = predict_clip(gray, 2, colour_model)
    assert predicted.shape == (1, 2, 20, 24, 1)
    gray_model = (None, FramePredictor(channels=1, context=4, widths=(4, 8, 8), blocks=1).eval(), {})
    with pytest.raises(BadInputError, match="colour would be lost"):
        predict_clip(np.repeat(gray, 3, -1), 2, gray_model)


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


def _shifting_clip(frames: int, step: int, size: int = 24) -> torch.Tensor:
    """(1, frames, 1, size, size): a bright square moving `step` pixels right per frame."""
    clip = torch.zeros(1, frames, 1, size, size)
    for t in range(frames):
        clip[0, t, 0, 8:14, 2 + step * t:8 + step * t] = 1
    return clip


class _Mover(FramePredictor):
    """A stand-in network that shifts the last frame `step` pixels right (a known motion model)."""

    def __init__(self, step: int):
        super().__init__(channels=1, context=4, widths=(4, 8, 8), blocks=1)
        self.step = step

    def forward(self, frames):
        return torch.roll(frames[:, -1], self.step, dims=-1)


def test_the_context_gain_trusts_a_network_that_predicts_the_context_and_not_one_that_does_not():
    clip = _shifting_clip(5, 2)
    assert torch.allclose(_Mover(2).context_gain(clip), torch.ones(1))  # right motion: the network as is
    wrong = _Mover(-2)  # the square moved right; this network moves it left
    gain = wrong.context_gain(clip)
    assert float(gain) == 0.0  # clipped: a negative least-squares gain is not used
    frames = wrong.rollout(clip, 3, gain=gain)
    assert torch.equal(frames, clip[:, -1:].expand(1, 3, 1, 24, 24))  # falls back to repeating the last frame
    # Half the true motion is explained by a network that overshoots by 2x: the gain is 1/2 over
    # the changed pixels (least squares), and the scaled prediction is a blend of two frames in [0, 1].
    clip1 = _shifting_clip(5, 1)
    gain = _Mover(2).context_gain(clip1)
    assert 0.2 < float(gain) < 0.8
    frames = _Mover(2).rollout(clip1, 2, gain=gain)
    assert frames.min() >= 0 and frames.max() <= 1


def test_the_context_gain_is_one_when_the_context_leaves_no_frame_to_test_on():
    model = _Mover(-2)
    assert torch.equal(model.context_gain(_shifting_clip(4, 2)), torch.ones(1))  # 4 frames: the network reads them all
    still = torch.full((2, 6, 1, 24, 24), 0.5)
    model = FramePredictor(channels=1, context=4, widths=(4, 8, 8), blocks=1).eval()  # predicts no change
    assert torch.equal(model.context_gain(still), torch.ones(2))  # nothing to scale: no division by zero
    assert torch.equal(model.rollout(still, 2, gain=model.context_gain(still)), model.rollout(still, 2))


def test_predict_falls_back_on_a_clip_the_network_mispredicts_and_no_fallback_keeps_it(tmp_path):
    from rocksynth.pipelines.predict import predict_clip

    clip = (_shifting_clip(8, 2)[0, :, 0].numpy() * 200 + 20).astype("uint8")[..., None]  # (t, y, x, 1), not binary
    wrong = (None, _Mover(-2).eval(), {})
    fallen, info = predict_clip(clip[:6], 2, wrong)
    assert info["gain"] == 0.0 and (fallen[0] == clip[5]).all()
    raw, info = predict_clip(clip[:6], 2, wrong, fallback=False)
    assert info["gain"] == 1.0 and (raw[0, 0] == np.roll(clip[5], -2, axis=1)).all()
