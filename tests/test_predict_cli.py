"""`rocksynth predict` and `rocksynth train video` through the real CLI entry point, reading back
the files they write. A tiny untrained checkpoint keeps the tests fast: they check the
plumbing (frame counts, sizes, formats, errors), not prediction quality."""

import numpy as np
import pytest
import torch

from rocksynth.cli.main import main
from rocksynth.data.videos import procedural_clips
from rocksynth.io.videos import read_video, write_video
from rocksynth.models.latent_transformer import LatentVideoTransformer
from rocksynth.models.vqvae import VQVAE
from rocksynth.training.checkpoint import save_checkpoint


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    torch.manual_seed(0)
    vq_config = dict(channels=1, n_down=2, widths=[8, 16], n_parts=2, n_codes=16, code_dim=4)
    tr_config = dict(frames=4, height=4, width=4, n_parts=2, n_codes=16, dim=16, layers=1, heads=2)
    vqvae, transformer = VQVAE(**vq_config), LatentVideoTransformer(**tr_config)
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    save_checkpoint(path, "video", {"vqvae": vq_config, "transformer": tr_config,
                                    "frame": {"size": 16, "channels": 1, "clip_frames": 4}},
                    {"vqvae": vqvae.state_dict(), "transformer": transformer.state_dict()},
                    {"data": "test", "sources": ["balls"], "iterations": 0, "wall_time_s": 0.0})
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("clip") / "balls.mp4"
    write_video(path, procedural_clips("balls", 1, 6, 32)[0, :, 4:28, 4:28], fps=8)  # 24x24: not the model's 16x16
    return path


def test_predict_writes_context_plus_predicted_frames_as_mp4(tiny_model, clip, tmp_path, capsys):
    out = tmp_path / "pred.mp4"
    code = main(["predict", str(clip), "--context", "3", "--frames", "5", "--model", str(tiny_model),
                 "--out", str(out), "--seed", "1"])
    assert code == 0
    assert "resized to the model's 16x16" in capsys.readouterr().err
    written = read_video(out).frames
    original = read_video(clip).frames
    assert written.shape == (3 + 5, 24, 24, 1)
    assert np.abs(written[:3].astype(int) - original[:3].astype(int)).mean() < 3  # context kept (up to H.264)


def test_predict_from_one_image_to_a_tiff_stack_and_parallel(tiny_model, clip, tmp_path):
    out = tmp_path / "pred.tif"
    assert main(["predict", str(clip), "--context", "1", "--frames", "6", "--model", str(tiny_model),
                 "--out", str(out), "--parallel", "--steps", "3"]) == 0
    assert read_video(out).frames.shape == (7, 24, 24, 1)


def test_same_seed_same_prediction_and_samples(tiny_model, clip, tmp_path):
    outs = [tmp_path / "a/", tmp_path / "b/"]
    for out in outs:
        assert main(["predict", str(clip), "--context", "2", "--frames", "3", "--model", str(tiny_model),
                     "--out", str(out) + "/", "--seed", "7"]) == 0
    assert np.array_equal(read_video(outs[0]).frames, read_video(outs[1]).frames)
    assert main(["predict", str(clip), "--context", "2", "--frames", "2", "--model", str(tiny_model),
                 "--out", str(tmp_path / "s.tif"), "--samples", "2"]) == 0
    assert read_video(tmp_path / "s_2.tif").frames.shape[0] == 4


def test_start_picks_the_context_frames_and_negative_counts_from_the_end(tiny_model, clip, tmp_path, capsys):
    original = read_video(clip).frames  # 6 frames
    for start, first in (("-3", 3), ("2", 2)):
        out = tmp_path / f"from_{first}.tif"
        assert main(["predict", str(clip), "--start", start, "--context", "3", "--frames", "2",
                     "--model", str(tiny_model), "--out", str(out)]) == 0
        written = read_video(out).frames
        assert written.shape[0] == 5 and np.array_equal(written[:3], original[first:first + 3])
    capsys.readouterr()
    out = tmp_path / "late.mp4"
    code = main(["predict", str(clip), "--start", "4", "--context", "3", "--frames", "2",
                 "--model", str(tiny_model), "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and not out.exists() and len(err.splitlines()) == 1
    assert "has 6 frames, so fewer than --context 3 from frame 4 on" in err


def test_bad_context_is_a_one_line_error_without_output(tiny_model, clip, tmp_path, capsys):
    out = tmp_path / "pred.mp4"
    code = main(["predict", str(clip), "--context", "9", "--frames", "2", "--model", str(tiny_model), "--out", str(out)])
    assert code == 2 and not out.exists()
    assert "fewer than --context 9" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["pred.avi", "pred.txt", "pred.png"])
def test_an_unknown_output_type_is_a_one_line_error_without_output(tiny_model, clip, tmp_path, capsys, name):
    """Only .mp4, .tif and folders (ending in / or without a suffix) are video outputs."""
    out = tmp_path / name
    code = main(["predict", str(clip), "--context", "2", "--frames", "2", "--model", str(tiny_model), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and not out.exists()
    assert "unknown video output type" in err and len(err.strip().splitlines()) == 1


def test_an_output_without_a_suffix_is_a_folder_of_frames(tiny_model, clip, tmp_path):
    out = tmp_path / "frames"
    assert main(["predict", str(clip), "--context", "2", "--frames", "2", "--model", str(tiny_model), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [f"frame_{i:04d}.png" for i in range(4)]


def test_a_colour_clip_for_a_gray_model_is_a_one_line_error_without_output(tiny_model, tmp_path, capsys):
    """Its colour would be lost, so it is refused (a gray clip for a colour model is accepted)."""
    clip = tmp_path / "colour.mp4"
    write_video(clip, procedural_clips("scenes", 1, 4, 32)[0], fps=8)
    assert read_video(clip).frames.shape[-1] == 3
    out = tmp_path / "pred.mp4"
    code = main(["predict", str(clip), "--context", "3", "--frames", "2", "--model", str(tiny_model), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and not out.exists() and not list(tmp_path.glob("pred*"))
    assert "the clip is in colour and this model is gray" in err and len(err.strip().splitlines()) == 1


def test_train_video_both_stages_and_resume(tmp_path):
    vq, full = tmp_path / "vq.pt", tmp_path / "full.pt"
    common = ["--pool", "12", "--eval-every", "2", "--batch", "4"]
    assert main(["train", "video", "balls", "--stage", "vqvae", "--size", "32", "--downsample", "3",
                 "--widths", "8,8,16", "--codes", "8", "--iters", "2", "--out", str(vq), *common]) == 0
    assert main(["train", "video", "--stage", "transformer", "--vqvae", str(vq), "--clip-frames", "3",
                 "--dim", "16", "--layers", "1", "--iters", "2", "--out", str(full), *common]) == 0
    assert main(["train", "video", "--stage", "transformer", "--resume", "--iters", "4", "--out", str(full), *common]) == 0
    rows = (tmp_path / "full.transformer.csv").read_text().splitlines()
    assert rows[0].startswith("iteration,") and [r.split(",")[0] for r in rows[1:]] == ["2", "4"]
    payload = torch.load(full, weights_only=True)
    assert payload["meta"]["iterations"] == 4 and set(payload["state"]) >= {"vqvae", "transformer"}
