"""The Python API (`rocksynth.reconstruct`, ...) gives what the commands give, at the same seed."""

import json

import numpy as np
import pytest
import tifffile
import torch

import rocksynth
from rocksynth.io import read_video, read_volume, write_image, write_video, write_volume


def test_the_package_exports_the_api_lazily():
    assert set(rocksynth.__all__) == {"analyze", "clean", "compare", "predict", "reconstruct", "synthesize"}
    assert all(callable(getattr(rocksynth, name)) for name in rocksynth.__all__)
    with pytest.raises(AttributeError):
        rocksynth.no_such_function


def test_reconstruct_equals_the_command(slice_64, tmp_path, run_cli_in_process):
    out = tmp_path / "cube.tif"
    code, _, err = run_cli_in_process("reconstruct", slice_64, "--out", out, "--depth", "32", "--seed", "3")
    assert code == 0, err
    volume = rocksynth.reconstruct(tifffile.imread(slice_64) > 0, depth=32, seed=3)
    assert volume.dtype == bool and volume.shape == (32, 64, 64)
    assert np.array_equal(volume, read_volume(out).data > 0)


def test_synthesize_equals_the_command(tmp_path, run_cli_in_process):
    out = tmp_path / "s.tif"
    code, _, err = run_cli_in_process("synthesize", "--texture", "ketton", "--size", "24x32x40", "--seed", "2",
                                      "--out", out)
    assert code == 0, err
    volume = rocksynth.synthesize((24, 32, 40), texture="ketton", seed=2)
    assert np.array_equal(volume, read_volume(out).data > 0)
    with pytest.raises(rocksynth.errors.BadInputError):
        rocksynth.synthesize((24, 32), texture="ketton")


def test_analyze_and_compare_equal_the_commands(tmp_path, run_cli_in_process):
    rng = np.random.default_rng(5)
    real = [rng.random((24, 24, 24)) < 0.3 for _ in range(4)]
    generated = [rng.random((24, 24, 24)) < 0.35 for _ in range(4)]
    for i, sample in enumerate(real + generated):
        write_volume(tmp_path / f"s{i}.tif", sample)
    code, out, err = run_cli_in_process("analyze", tmp_path / "s0.tif", "--only", "porosity,minkowski", "--json")
    assert code == 0, err
    report = rocksynth.analyze(real[0], only=("porosity", "minkowski"))
    assert json.loads(out)["minkowski"] == report["minkowski"]
    assert json.loads(out)["porosity"] == report["porosity"]
    paths = [tmp_path / f"s{i}.tif" for i in range(8)]
    code, out, err = run_cli_in_process("compare", *paths[:4], *sum((["--vs", p] for p in paths[4:]), []),
                                        "--no-permeability", "--jobs", "1", "--bootstrap", "20", "--json")
    assert code == 0, err
    result = rocksynth.compare(real, generated, with_permeability=False, jobs=1, bootstrap=20)
    assert json.loads(out)["properties"] == json.loads(json.dumps(result["properties"]))


def test_predict_equals_the_command(tmp_path, run_cli_in_process):
    from rocksynth.data.videos import procedural_clips
    from rocksynth.models.latent_transformer import LatentVideoTransformer
    from rocksynth.models.vqvae import VQVAE
    from rocksynth.training.checkpoint import save_checkpoint

    torch.manual_seed(0)
    vq_config = dict(channels=1, n_down=2, widths=[8, 16], n_parts=2, n_codes=16, code_dim=4)
    tr_config = dict(frames=4, height=4, width=4, n_parts=2, n_codes=16, dim=16, layers=1, heads=2)
    model = tmp_path / "tiny.pt"
    save_checkpoint(model, "video", {"vqvae": vq_config, "transformer": tr_config,
                                     "frame": {"size": 16, "channels": 1, "clip_frames": 4}},
                    {"vqvae": VQVAE(**vq_config).state_dict(),
                     "transformer": LatentVideoTransformer(**tr_config).state_dict()},
                    {"data": "test", "sources": ["balls"], "iterations": 0, "wall_time_s": 0.0})
    clip = tmp_path / "clip.tif"
    write_video(clip, procedural_clips("balls", 1, 4, 32)[0, :, 4:28, 4:28])
    out = tmp_path / "out.tif"
    code, _, err = run_cli_in_process("predict", clip, "--out", out, "--context", "4", "--frames", "3",
                                      "--model", model, "--seed", "7", "--samples", "2")
    assert code == 0, err
    predicted = rocksynth.predict(read_video(clip).frames, n_frames=3, model=str(model), seed=7, samples=2)
    assert predicted.shape == (2, 3, 24, 24, 1) and predicted.dtype == np.uint8
    written = read_video(str(out).replace(".tif", "_1.tif")).frames
    assert np.array_equal(predicted[0], written[4:])


def test_clean_equals_the_command(tmp_path, run_cli_in_process):
    from rocksynth.data.degrade import degraded_pair
    from rocksynth.data.drawings import render_drawing

    rng = np.random.default_rng(11)
    scan, _ = degraded_pair(rng, render_drawing(rng, 120, 150))
    write_image(tmp_path / "scan.png", scan)
    code, _, err = run_cli_in_process("clean", tmp_path / "scan.png", "--out", tmp_path / "clean.png")
    assert code == 0, err
    from rocksynth.io import read_image

    assert np.array_equal(rocksynth.clean(scan), read_image(tmp_path / "clean.png"))
