"""Texture GAN training: a few iterations on tiny textures, checkpoint round trip, resume, CLI."""

import copy
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
    # The learning curve logs the 3D connectivity term and the Euler density per texture.
    assert all(r["loss_euler"] and r["euler_fine_generated"] and r["euler_fine_real"] for r in rows)
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
    copy.write_bytes(out.read_bytes())
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
    assert resumed[0]["loss_euler"] == "" and resumed[2]["loss_euler"] != ""
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


def _grown(trained, tmp_path, **grow):
    """The trained tiny model, a warm start of it grown by `grow` (no iterations), and that one loaded."""
    out, _ = trained
    grown_out = tmp_path / "grown.pt"
    train_texture(_textures(), grown_out, _settings(0), init=out, **grow)
    return load_texture_model(str(out)), grown_out, load_texture_model(str(grown_out))


def _resume_with_grown_lr(path, lr_grown: float = 1e-3) -> TrainSettings:
    """Two more iterations of a grown checkpoint, its added layers at their own learning rate."""
    settings = _settings(2)
    settings.lr_grown = lr_grown
    train_texture(_textures(), path, settings, resume=True)
    return settings


def test_a_deepened_warm_start_adds_residual_convolutions_and_keeps_the_output(trained, tmp_path):
    out, _ = trained
    old = load_texture_model(str(out))
    deep_out = tmp_path / "deep.pt"
    train_texture(_textures(), deep_out, _settings(0), init=out, deepen=(1, 2), full_res=2)
    deep = load_texture_model(str(deep_out))
    assert deep.generator.depth == (1, 2) and len(deep.generator.res2) == 2 and deep.generator.full_res == 2
    assert deep.generator.margin_voxels == old.generator.margin_voxels + 4 + 2 * 2
    shape = (8, 8, 8)
    cells_old, cells_deep = grid_cells(old.generator, shape), grid_cells(deep.generator, shape)
    latent = torch.randn(1, old.generator.in_channels, *cells_deep)
    trim = [(a - b) // 2 for a, b in zip(cells_deep, cells_old)]  # the same voxels: the centre of the larger grid
    inner = latent[:, :, trim[0]:trim[0] + cells_old[0], trim[1]:trim[1] + cells_old[1], trim[2]:trim[2] + cells_old[2]]
    np.testing.assert_allclose(decode_one_shot(deep.generator, latent, shape),
                               decode_one_shot(old.generator, inner, shape), atol=1e-4)
    # It trains on from there (resume keeps the deeper architecture) and the residual weights move,
    # at their own learning rate.
    settings = _resume_with_grown_lr(deep_out)
    state = torch.load(deep_out, weights_only=True)["state"]["opt_g"]
    assert [group["lr"] for group in state["param_groups"]] == [settings.lr_g, 1e-3]
    trained_deep = load_texture_model(str(deep_out))
    assert trained_deep.generator.depth == (1, 2)
    assert trained_deep.generator.res1[0].weight.abs().sum() > 0
    assert trained_deep.generator.fine_c.weight.abs().sum() > 0


def test_a_warm_start_with_full_resolution_noise_keeps_the_output_and_trains_the_new_stage(trained, tmp_path):
    old, noisy_out, noisy = _grown(trained, tmp_path, full_res=2, full_res_noise=1)
    assert noisy.generator.fine_noise[2] == 1
    assert noisy.generator.noise_channels == old.generator.noise_channels + 512
    shape = (8, 8, 8)
    latent = torch.randn(1, old.generator.in_channels, *grid_cells(old.generator, shape))
    extra = torch.randn(1, 512, *latent.shape[2:])  # the new maps come last in a cell
    np.testing.assert_allclose(decode_one_shot(noisy.generator, torch.cat([latent, extra], 1), shape),
                               decode_one_shot(old.generator, latent, shape), atol=1e-4)
    settings = _resume_with_grown_lr(noisy_out)
    trained_noisy = load_texture_model(str(noisy_out))
    # The new stage's first convolution reads the noise maps (its last input channel), and moves.
    before = noisy.generator.fine_b.weight[:, -1]
    assert not torch.equal(trained_noisy.generator.fine_b.weight[:, -1], before)
    assert trained_noisy.generator.fine_c.weight.abs().sum() > 0


def test_a_refinement_warm_start_keeps_the_output_and_learns(trained, tmp_path):
    out, _ = trained
    old, refined_out, refined = _grown(trained, tmp_path, full_res=2, refine=3)
    assert refined.generator.refine == 3 and refined.generator.margin_voxels == old.generator.margin_voxels + 2
    # On one latent grid the refined decode is 2 voxels shorter each side (its margin) and otherwise the same.
    latent = torch.randn(1, old.generator.in_channels, 12, 12, 12)
    with torch.no_grad():
        before, after = old.generator(latent, pad="valid"), refined.generator(latent, pad="valid")
    assert after.shape[2] == before.shape[2] - 4
    torch.testing.assert_close(after, before[:, :, 2:-2, 2:-2, 2:-2], atol=1e-5, rtol=1e-5)
    settings = _resume_with_grown_lr(refined_out)
    assert load_texture_model(str(refined_out)).generator.ref_c.weight.abs().sum() > 0
    with pytest.raises(BadInputError, match="--refine"):
        train_texture(_textures(), tmp_path / "x.pt", _settings(1), init=out, refine=2)
    assert not (tmp_path / "x.pt").exists()


def test_full_resolution_noise_needs_the_full_resolution_stage(trained, tmp_path):
    out, _ = trained
    with pytest.raises(BadInputError, match="--full-res-noise"):
        train_texture(_textures(), tmp_path / "x.pt", _settings(1), init=out, full_res_noise=1)
    assert not (tmp_path / "x.pt").exists()


@pytest.mark.parametrize("kwargs", [{"deepen": (-1, 0), "init": True}, {"deepen": (0, -2)}, {"full_res": -1, "init": True}])
def test_deepen_and_full_res_must_not_be_negative(trained, tmp_path, kwargs):
    out, _ = trained
    kwargs = dict(kwargs, init=out if kwargs.get("init") else None)
    with pytest.raises(BadInputError, match="--deepen"):
        train_texture(_textures(), tmp_path / "x.pt", _settings(1), **kwargs)
    assert not (tmp_path / "x.pt").exists()


def test_resume_refuses_a_new_architecture_for_an_existing_checkpoint(trained, tmp_path):
    out, _ = trained
    resumed = tmp_path / "r.pt"
    resumed.write_bytes(out.read_bytes())
    with pytest.raises(BadInputError, match="keeps its architecture"):
        train_texture(_textures(), resumed, _settings(6), resume=True, full_res=2)
    assert resumed.read_bytes() == out.read_bytes()


def test_a_deeper_generator_trains_from_scratch(tmp_path):
    out = tmp_path / "deep.pt"
    train_texture(_textures(), out, _settings(2), deepen=(1, 1), full_res=2)
    model = load_texture_model(str(out))
    assert model.generator.depth == (1, 1) and model.generator.full_res == 2
    # Zero-initialised last layers still get a gradient from scratch: they move.
    assert model.generator.fine_c.weight.abs().sum() > 0 and model.generator.res2[0].weight.abs().sum() > 0


def test_a_several_field_generator_trains_from_scratch_and_round_trips(tmp_path):
    out = tmp_path / "fields.pt"
    train_texture(_textures(), out, _settings(2), out_fields=3)
    model = load_texture_model(str(out))
    assert model.generator.out_fields == 3 and model.generator.out.weight.shape[0] == 3
    volume = decode_one_shot(model.generator, torch.randn(1, model.generator.in_channels, *grid_cells(model.generator, (8, 8, 8))),
                             (8, 8, 8))
    assert volume.shape == (8, 8, 8)


@pytest.mark.parametrize("kwargs", [{"out_fields": -1}, {"out_fields": 2, "init": True}, {"out_fields": 2, "resume": True}])
def test_out_fields_only_for_a_new_generator(trained, tmp_path, kwargs):
    out, _ = trained
    target = tmp_path / "x.pt"
    if kwargs.get("resume"):
        target.write_bytes(out.read_bytes())
    kwargs = dict(kwargs, init=out if kwargs.get("init") else None)
    before = target.read_bytes() if target.exists() else None
    with pytest.raises(BadInputError, match="--out-fields"):
        train_texture(_textures(), target, _settings(4), **kwargs)
    assert (target.read_bytes() if target.exists() else None) == before


def test_a_3d_critic_added_on_resume_starts_fresh_and_reaches_the_generator_after_its_warm_up(trained, tmp_path):
    out, _ = trained  # trained without a 3D critic
    resumed = tmp_path / "with3d.pt"
    resumed.write_bytes(out.read_bytes())
    settings = _settings(10)
    settings.critic_3d_weight, settings.critic_3d_warmup = 1.0, 3
    settings.warmup_iters = 0  # the adversarial terms (the 3D critic's too) from the first iteration
    train_texture(_textures(), resumed, settings, resume=True)
    checkpoint = torch.load(resumed, weights_only=True)
    assert "d_3d" in checkpoint["state"] and "opt_d3" in checkpoint["state"]
    assert checkpoint["meta"]["critic_3d_start"] == 4  # created when the run was resumed at 4
    rows = list(csv.DictReader(open(resumed.with_suffix(".csv"))))
    assert all(float(r["loss_d_3d"]) > 0 for r in rows if int(r["iteration"]) > 4)

    # Its score is part of the generator's loss only after the warm-up.
    torch.manual_seed(0)
    trainer = TextureTrainer(_textures(), settings)
    trainer.iteration, trainer.critic_3d_start = 4, 4
    trainer.load_state(checkpoint["state"])
    assert trainer.critic_3d_start == 4  # loaded, not fresh

    def generator_gradients(iteration):
        """The generator's gradient of one step without and with the 3D critic's weight, from the
        same state (critics and optimisers included) and the same crops and noise."""
        snapshot = copy.deepcopy(trainer.state())
        saved, grads = trainer.s.critic_3d_weight, []
        for weight in (0.0, saved):
            trainer.load_state(copy.deepcopy(snapshot))
            trainer.iteration, trainer.s.critic_3d_weight = iteration, weight
            torch.manual_seed(1)
            trainer.crops.reseed(1)
            trainer.step()
            grads.append(torch.cat([p.grad.flatten() for p in trainer.generator.parameters() if p.grad is not None]))
        trainer.s.critic_3d_weight = saved
        return grads

    before, with_critic = generator_gradients(5)  # within the warm-up (4 + 3)
    assert torch.allclose(before, with_critic)
    after, with_critic = generator_gradients(8)
    assert not torch.allclose(after, with_critic)


def test_the_euler_term_applies_to_the_named_textures_only():
    def euler_loss(euler_textures, label):
        torch.manual_seed(0)
        settings = _settings(1)
        settings.euler_weight, settings.euler_textures = 1.0, euler_textures
        trainer = TextureTrainer(_textures(), settings)
        pairs = trainer.crops.pairs
        trainer.crops.pairs = lambda crop, batch: (np.full(batch, label),) + tuple(pairs(crop, batch)[1:])
        return trainer.step()["loss_euler"]

    assert euler_loss((), 0) > 0 and euler_loss((), 1) > 0  # default: every texture
    assert euler_loss(("fine",), 0) == 0  # a batch of "coarse" crops only
    assert euler_loss(("fine",), 1) == pytest.approx(euler_loss((), 1))


def test_cli_train_texture_rejects_an_unknown_euler_texture(tmp_path, capsys):
    volume = tmp_path / "blobs.tif"
    tifffile.imwrite(volume, _blobs(0, 2.0, 0.3, size=24).astype(np.uint8) * 255)
    out = tmp_path / "t.pt"
    code = _main("train", "texture", f"blobs={volume}", "--crop", "16", "--iters", "1", "--euler-weight", "1",
                 "--euler-textures", "granite", "--out", out)
    stderr = capsys.readouterr().err
    assert code == 2 and "--euler-textures: no texture named granite" in stderr and "Traceback" not in stderr
    assert not out.exists()
