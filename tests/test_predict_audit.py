"""`rocksynth predict` on the inputs of a user audit: a clip that turns colour late, an MP4 frame
rate an MP4 cannot hold, a 0/1 segmented stack, `--json` with `--out -`, a tiny temperature and
an existing empty output folder. Each through the real CLI entry point, reading back what it wrote."""

import numpy as np
import pytest
import tifffile
import torch

from rocksynth.cli.main import main
from rocksynth.io.videos import read_video, write_video
from rocksynth.models.latent_transformer import LatentVideoTransformer, _sample
from rocksynth.models.vqvae import VQVAE
from rocksynth.training.checkpoint import save_checkpoint


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """An untrained gray VQ-VAE + latent transformer at 16x16: fast, for the plumbing."""
    torch.manual_seed(0)
    vq_config = dict(channels=1, n_down=2, widths=[8, 16], n_parts=2, n_codes=16, code_dim=4)
    tr_config = dict(frames=4, height=4, width=4, n_parts=2, n_codes=16, dim=16, layers=1, heads=2)
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    save_checkpoint(path, "video", {"vqvae": vq_config, "transformer": tr_config,
                                    "frame": {"size": 16, "channels": 1, "clip_frames": 4}},
                    {"vqvae": VQVAE(**vq_config).state_dict(),
                     "transformer": LatentVideoTransformer(**tr_config).state_dict()},
                    {"data": "test", "sources": ["balls"], "iterations": 0, "wall_time_s": 0.0})
    return path


def _square_clip(count: int = 8, size: int = 32) -> np.ndarray:
    """Gray 128 frames with a moving 200 square, (t, y, x, 3)."""
    frames = np.full((count, size, size, 3), 128, np.uint8)
    for t in range(count):
        frames[t, 8:16, 2 + 2 * t:10 + 2 * t] = 200
    return frames


@pytest.fixture(scope="module")
def gray_clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("clip") / "gray.mp4"
    write_video(path, _square_clip()[..., :1])
    return path


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_a_clip_coloured_only_in_its_last_context_frame_is_predicted_in_colour(tmp_path):
    frames = _square_clip(8, 64)
    frames[7, 40:56, 40:56] = (0, 0, 255)
    write_video(tmp_path / "late_colour.mp4", frames)
    out = tmp_path / "lc.tif"
    assert main(["predict", str(tmp_path / "late_colour.mp4"), "--context", "8", "--frames", "2",
                 "--out", str(out)]) == 0
    written = read_video(out).frames
    assert written.shape == (10, 64, 64, 3)
    assert written[7, 44:52, 44:52, 2].min() > 200 and written[7, 44:52, 44:52, 0].max() < 60  # blue, as read


def test_an_fps_an_mp4_cannot_hold_is_refused_before_the_model_runs(gray_clip, tmp_path, capsys):
    out = tmp_path / "slow.mp4"
    code = main(["predict", str(gray_clip), "--context", "2", "--frames", "1", "--out", str(out), "--fps", "1e-5"])
    err = _one_error_line(capsys)
    assert code == 2 and not out.exists()
    assert "--fps: an MP4 frame rate must be 0.0001 to 1e+06 frames per second, not 1e-05" in err


def test_a_high_fps_output_keeps_every_frame_and_its_rate(gray_clip, tmp_path):
    out = tmp_path / "fast.mp4"
    assert main(["predict", str(gray_clip), "--context", "3", "--frames", "4", "--out", str(out),
                 "--fps", "10000"]) == 0
    video = read_video(out)
    assert video.frames.shape[0] == 7 and video.fps == pytest.approx(10000)


def test_a_0_1_stack_is_binary_and_predicted_in_0_1(shared_data, tmp_path, capsys):
    stack = (tifffile.imread(shared_data / "berea_400.tif", key=range(10))[:, :64, :64] == 255).astype(np.uint8)
    tifffile.imwrite(tmp_path / "seg01.tif", stack)  # 1 = pore
    out = tmp_path / "next.tif"
    assert main(["predict", str(tmp_path / "seg01.tif"), "--model", "rocks", "--context", "8", "--frames", "2",
                 "--out", str(out)]) == 0
    assert "binary input (0 and 1 only)" in capsys.readouterr().err
    written = tifffile.imread(out)
    assert written.shape == (10, 64, 64) and np.array_equal(written[:8], stack[:8])  # context as read
    assert set(np.unique(written[8:])) <= {0, 1}
    assert written[8].mean() == pytest.approx(stack[7].mean(), abs=1 / 64 ** 2)  # the last slice's porosity


def test_json_and_stdout_output_are_refused_together(gray_clip, run_cli_in_process):
    code, out, err = run_cli_in_process("predict", gray_clip, "--context", "2", "--frames", "1", "--out", "-", "--json")
    assert code == 2 and out == b""  # not the MP4 bytes and the JSON mixed on stdout
    assert err.strip() == "error: --json and --out - both use stdout; pick one"


def test_a_temperature_below_the_floor_is_argmax():
    logits = torch.tensor([[1.0, 3.0, -2.0], [-5.0, -4.0, -4.5]])
    for temperature in (1e-40, 1e-8):  # logits / 1e-40 overflowed to inf: NaN probabilities
        assert torch.equal(_sample(logits, temperature, torch.Generator().manual_seed(0)), logits.argmax(-1))


@pytest.mark.parametrize("decoding", ["--parallel", "--sequential"])
def test_a_tiny_temperature_predicts_as_temperature_0(tiny_model, gray_clip, tmp_path, decoding):
    outs = {}
    for temperature in ("1e-40", "0"):
        outs[temperature] = tmp_path / f"t{temperature}.tif"
        assert main(["predict", str(gray_clip), "--context", "3", "--frames", "2", "--model", str(tiny_model),
                     "--temperature", temperature, decoding, "--out", str(outs[temperature])]) == 0
    assert np.array_equal(tifffile.imread(outs["1e-40"]), tifffile.imread(outs["0"]))


def test_an_existing_empty_folder_named_without_a_slash_is_a_folder_output(gray_clip, tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    assert main(["predict", str(gray_clip), "--context", "2", "--frames", "3", "--out", str(folder)]) == 0
    assert len(sorted(folder.glob("frame_*.png"))) == 5
    assert read_video(folder).frames.shape == (5, 32, 32, 1)
