"""Texture GAN training: a few iterations on tiny textures, checkpoint round trip, resume, CLI."""

import csv
import json

import numpy as np
import pytest
import tifffile
import torch
from scipy import ndimage

from rocksynth.data.textures import GENERATED_MEDIA, make_texture, parse_texture_source
from rocksynth.errors import BadInputError
from rocksynth.pipelines.synthesize import decode_one_shot, grid_cells, load_texture_model
from rocksynth.training.texture import TextureTrainer, TrainSettings, train_texture

from conftest import help_options, help_settings


def _blobs(seed: int, sigma: float, porosity: float, size: int = 40) -> np.ndarray:
    field = ndimage.gaussian_filter(np.random.default_rng(seed).standard_normal((size,) * 3), sigma)
    return field > np.quantile(field, 1 - porosity)


def _textures():
    return [make_texture("coarse", _blobs(0, 3.0, 0.3), 2e-6, "test"),
            make_texture("fine", _blobs(1, 1.0, 0.1), None, "test")]


def _settings(iters: int) -> TrainSettings:
    return TrainSettings(iters=iters, crop=16, batch=2, slices_per_axis=2, eval_every=2, save_every=2,
                         eval_size=16, seed=3)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("texture") / "tiny.pt"
    metrics = train_texture(_textures(), out, _settings(4))
    return out, metrics


def test_a_step_moves_the_generator_and_losses():
    torch.manual_seed(0)
    trainer = TextureTrainer(_textures(), _settings(3))
    z = torch.randn(1, trainer.generator.in_channels, 2, 2, 2)
    with torch.no_grad():
        before = trainer.generator(z).clone()
    first = trainer.step()
    second = trainer.step()
    with torch.no_grad():
        after = trainer.generator(z)
    assert not torch.allclose(before, after)
    assert all(np.isfinite(v) for v in first.values())
    assert first != second


def test_training_writes_curve_and_checkpoint_round_trips(trained):
    out, metrics = trained
    rows = list(csv.DictReader(open(out.with_suffix(".csv"))))
    assert [int(r["iteration"]) for r in rows] == [2, 4]
    assert out.with_suffix(".png").is_file()
    assert metrics["porosity_coarse_real"] == pytest.approx(float(_textures()[0].held_out.mean()))
    # The learning curve logs the Euler density per texture.
    assert all(r["euler_fine_generated"] and r["euler_fine_real"] for r in rows)
    model = load_texture_model(str(out))
    assert model.names() == ["coarse", "fine"]
    assert model.voxel_size_of("coarse") == 2e-6 and model.voxel_size_of("fine") is None
    assert model.codes.shape == (2, model.generator.code_channels)
    assert model.meta["iterations"] == 4
    # The loaded generator decodes the same volume as a second load (weights, not randomness).
    latent = torch.randn(1, model.generator.in_channels, *grid_cells(model.generator, (8, 8, 8)))
    again = load_texture_model(str(out))
    np.testing.assert_array_equal(decode_one_shot(model.generator, latent, (8, 8, 8)),
                                  decode_one_shot(again.generator, latent, (8, 8, 8)))


def test_resume_continues_the_run(trained, tmp_path):
    out, _ = trained
    copy = tmp_path / "resumed.pt"
    copy.write_bytes(out.read_bytes())
    copy.with_suffix(".csv").write_bytes(out.with_suffix(".csv").read_bytes())
    train_texture(_textures(), copy, _settings(6), resume=True)
    rows = list(csv.DictReader(open(copy.with_suffix(".csv"))))
    assert [int(r["iteration"]) for r in rows] == [2, 4, 6]
    with pytest.raises(BadInputError):
        train_texture(_textures()[:1], copy, _settings(8), resume=True)


def test_resume_rewrites_an_older_curve_with_the_new_columns(trained, tmp_path):
    out, _ = trained
    copy = tmp_path / "old.pt"
    payload = torch.load(out, weights_only=True)
    # As saved before the training harness: the CSV is the curve's only record.
    del payload["meta"]["curve"], payload["state"]["loop"]
    torch.save(payload, copy)
    rows = list(csv.DictReader(open(out.with_suffix(".csv"))))
    old_fields = [k for k in rows[0] if "euler" not in k]  # as written before the Euler term
    with open(copy.with_suffix(".csv"), "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=old_fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    train_texture(_textures(), copy, _settings(6), resume=True)
    resumed = list(csv.DictReader(open(copy.with_suffix(".csv"))))
    assert list(resumed[0]) == list(rows[0])
    assert [int(r["iteration"]) for r in resumed] == [2, 4, 6]
    assert resumed[0]["euler_fine_generated"] == "" and resumed[2]["euler_fine_generated"] != ""
    assert resumed[0]["loss_x"] == rows[0]["loss_x"]


def test_texture_sources_are_checked():
    assert parse_texture_source("berea=a/b.tif") == ("berea", "a/b.tif")
    for bad in ["berea", "=x.tif", "berea="]:
        with pytest.raises(BadInputError):
            parse_texture_source(bad)
    assert "spherepack" in GENERATED_MEDIA


def test_cli_synthesize_writes_the_right_volume(trained, run_cli, tmp_path):
    out, _ = trained
    target = tmp_path / "v.tif"
    code, stdout, stderr = run_cli("synthesize", "--model", out, "--texture", "coarse", "--size", "24x16x40",
                                   "--tile", "16", "--seed", "5", "--out", target, "--json")
    assert code == 0, stderr
    volume = tifffile.imread(target)
    assert volume.shape == (24, 16, 40) and set(np.unique(volume)) <= {0, 255}
    summary = json.loads(stdout)
    assert summary["voxel_size_m"] == pytest.approx(2e-6)
    assert summary["porosity"] == pytest.approx((volume == 255).mean())
    # Same seed, same volume, whatever the tile size.
    code, _, stderr = run_cli("--quiet", "synthesize", "--model", out, "--texture", "coarse", "--size", "24x16x40",
                              "--seed", "5", "--out", tmp_path / "w.tif")
    assert code == 0, stderr
    assert np.array_equal(tifffile.imread(tmp_path / "w.tif"), volume)


def _main(*args):
    """The CLI entry point in this process (faster than a subprocess): exit code."""
    from rocksynth.cli.main import main

    return main([str(a) for a in args])


def test_cli_blend_layout_like_and_list(trained, tmp_path, capsys):
    out, _ = trained
    code = _main("synthesize", "--model", out, "--blend", "coarse:fine", "--axis", "x",
                              "--size", "16", "--out", tmp_path / "b.tif")
    assert code == 0
    assert tifffile.imread(tmp_path / "b.tif").shape == (16, 16, 16)
    labels = np.zeros((16, 16), np.uint8)
    labels[8:] = 1
    tifffile.imwrite(tmp_path / "labels.tif", labels)
    code = _main("synthesize", "--model", out, "--layout", tmp_path / "labels.tif",
                              "--textures", "coarse,fine", "--size", "8x16x16", "--out", tmp_path / "l.tif")
    assert code == 0
    assert tifffile.imread(tmp_path / "l.tif").shape == (8, 16, 16)
    tifffile.imwrite(tmp_path / "ex.tif", (_blobs(5, 3.0, 0.3, 24) * 255).astype(np.uint8))
    capsys.readouterr()
    code = _main("synthesize", "--model", out, "--like", tmp_path / "ex.tif", "--size", "16",
                 "--out", tmp_path / "k.tif", "--json")
    assert code == 0
    assert {name for name, _ in json.loads(capsys.readouterr().out)["nearest_textures"]} == {"coarse", "fine"}
    code = _main("synthesize", "--model", out, "--list", "--json")
    assert code == 0
    assert [row["name"] for row in json.loads(capsys.readouterr().out)] == ["coarse", "fine"]


@pytest.mark.parametrize("args", [
    ["--texture", "coarse", "--size", "7"],
    ["--texture", "coarse", "--size", "16x16"],
    ["--texture", "granite", "--size", "16"],
    ["--blend", "coarse", "--size", "16"],
    ["--size", "16"],
    ["--texture", "coarse", "--like", "x.tif", "--size", "16"],
])
def test_cli_bad_input_exits_2_without_output(trained, tmp_path, capsys, args):
    out, _ = trained
    target = tmp_path / "bad.tif"
    code = _main("synthesize", "--model", out, *args, "--out", target)
    stderr = capsys.readouterr().err
    assert code == 2, stderr
    assert "Traceback" not in stderr and not target.exists()


def test_warm_start_keeps_architecture_codes_and_output(trained, tmp_path):
    out, _ = trained
    old = load_texture_model(str(out))
    settings = _settings(0)  # no training step: the checkpoint as warm-started
    settings.model = {"generator": {"widths": [8, 8, 8]}}  # ignored: the source's architecture is kept
    new_out = tmp_path / "warm.pt"
    train_texture(_textures(), new_out, settings, init=out)
    new = load_texture_model(str(new_out))
    assert new.generator.widths == old.generator.widths
    assert torch.equal(new.codes, old.codes)
    latent = torch.randn(1, old.generator.in_channels, *grid_cells(old.generator, (8, 8, 8)))
    np.testing.assert_array_equal(decode_one_shot(new.generator, latent, (8, 8, 8)),
                                  decode_one_shot(old.generator, latent, (8, 8, 8)))


def _as_saved_before_the_removal(source, target, **generator):
    """A copy of checkpoint `source` as the trainer saved it before the experiments were removed:
    their generator keys (at their off values unless given), a three-entry fine_noise, the 3D
    critic's start and the removed settings in the metadata."""
    payload = torch.load(source, weights_only=True)
    g = payload["config"]["generator"]
    g.update({"depth": [0, 0], "full_res": 0, "out_fields": 1, "refine": 0, "fine_noise": [*g["fine_noise"], 0]})
    g.update(generator)
    payload["meta"]["critic_3d_start"] = 0
    payload["meta"]["settings"].update(lr_grown=0.0, euler_weight=0.0, euler_textures=[], critic_3d_weight=0.0,
                                       critic_3d_warmup=200, critic_3d_lr=0.0)
    torch.save(payload, target)
    return target


def test_a_checkpoint_saved_before_the_removal_loads_resumes_and_warm_starts(trained, tmp_path):
    out, _ = trained
    old = _as_saved_before_the_removal(out, tmp_path / "old.pt")
    reference, loaded = load_texture_model(str(out)), load_texture_model(str(old))
    latent = torch.randn(1, reference.generator.in_channels, *grid_cells(reference.generator, (8, 8, 8)))
    np.testing.assert_array_equal(decode_one_shot(loaded.generator, latent, (8, 8, 8)),
                                  decode_one_shot(reference.generator, latent, (8, 8, 8)))
    train_texture(_textures(), old, _settings(6), resume=True)
    resumed = torch.load(old, weights_only=True)
    assert resumed["meta"]["iterations"] == 6 and "full_res" not in resumed["config"]["generator"]
    warm = tmp_path / "warm.pt"
    train_texture(_textures(), warm, _settings(0), init=_as_saved_before_the_removal(out, tmp_path / "old2.pt"))
    np.testing.assert_array_equal(decode_one_shot(load_texture_model(str(warm)).generator, latent, (8, 8, 8)),
                                  decode_one_shot(reference.generator, latent, (8, 8, 8)))


@pytest.mark.parametrize("generator", [{"full_res": 4}, {"depth": [1, 0]}, {"out_fields": 3}, {"refine": 8},
                                       {"fine_noise": [2, 1, 2]}])
def test_a_checkpoint_that_uses_a_removed_experiment_is_refused_in_one_line(trained, tmp_path, generator):
    out, _ = trained
    old = _as_saved_before_the_removal(out, tmp_path / "old.pt", **generator)
    with pytest.raises(BadInputError, match="removed from rocksynth"):
        load_texture_model(str(old))
    with pytest.raises(BadInputError, match="removed from rocksynth"):
        train_texture(_textures(), tmp_path / "warm.pt", _settings(1), init=old)
    assert not (tmp_path / "warm.pt").exists()


def test_train_texture_help_lists_at_most_ten_options(capsys):
    assert _main("train", "texture", "--help") == 0
    options = help_options(capsys.readouterr().out)
    assert "--set" in options and "--iters" in options
    assert len(options) <= 10, options


def test_train_texture_help_lists_every_settable_key_with_its_default(capsys):
    import dataclasses

    assert _main("train", "texture", "--help") == 0
    listed = help_settings(capsys.readouterr().out)
    settable = {f.name: f.default for f in dataclasses.fields(TrainSettings)
                if f.type in (int, float, str, bool) and f.name not in ("iters", "seed")}
    assert set(listed) == set(settable)
    assert {name: float(value) for name, value in listed.items()} == settable


def test_cli_set_changes_settings_and_saves_them(tmp_path):
    volume = tmp_path / "blobs.tif"
    tifffile.imwrite(volume, _blobs(0, 2.0, 0.3, size=24).astype(np.uint8) * 255)
    out = tmp_path / "t.pt"
    code = _main("-q", "train", "texture", f"blobs={volume}", "--iters", "1", "--set", "crop=16",
                 "--set", "porosity-weight=30", "--set", "lr_g=1e-5", "--set", "eval_size=16", "--out", out)
    assert code == 0
    settings = torch.load(out, weights_only=True)["meta"]["settings"]
    assert (settings["crop"], settings["porosity_weight"], settings["lr_g"], settings["iters"]) == (16, 30.0, 1e-5, 1)


@pytest.mark.parametrize("setting, message", [
    ("crop=16.5", "--set crop=16.5: expected a whole number"),
    ("lr_g=fast", "--set lr_g=fast: expected a finite number"),
    ("lr_g=nan", "--set lr_g=nan: expected a finite number"),
    ("euler_weight=1", "--set euler_weight: unknown setting; settable: "),
    ("model=x", "--set model: unknown setting"),
    ("iters=5", "--set iters: use --iters"),
    ("crop", "expected KEY=VALUE"),
    ("crop=20", "crop must be a multiple of 8"),
    ("lr_d=2", "learning rates lr_g and lr_d must be positive and below 1"),
    ("holdout=1", "holdout must be between 0 and 1"),
    ("porosity_weight=-1", "porosity_weight must not be negative"),
])
def test_cli_set_refuses_unknown_keys_and_bad_values_in_one_line(tmp_path, capsys, setting, message):
    volume = tmp_path / "blobs.tif"
    tifffile.imwrite(volume, _blobs(0, 2.0, 0.3, size=24).astype(np.uint8) * 255)
    out = tmp_path / "t.pt"
    code = _main("train", "texture", f"blobs={volume}", "--iters", "1", "--set", setting, "--out", out)
    stderr = capsys.readouterr().err
    assert code == 2 and message in stderr and "Traceback" not in stderr, stderr
    assert len(stderr.strip().splitlines()) == 1
    assert not out.exists()
