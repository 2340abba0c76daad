"""Slice-to-volume GAN: networks, crops, a few training iterations, checkpoint round trip."""

import numpy as np
import pytest
import torch
from conftest import blobs

from rocksynth.data.crops import RandomCrops, held_out_cubes, random_symmetry, split_holdout
from rocksynth.errors import BadInputError
from rocksynth.models.slice2vol import Slice2Vol, far_field_distance, voxel_shuffle
from rocksynth.pipelines.reconstruct import load_model, reconstruct
from rocksynth.training.checkpoint import load_checkpoint, load_widened
from rocksynth.training.reconstruct import TrainSettings, train_reconstruct

# Untrained tiny models with the slice-porosity channel saturate to all solid, which hides whether
# noise matters; that channel is tested on its own below.
TINY_MODEL = {"enc_channels": (2, 4, 8), "channels": (2, 4, 8), "noise_channels": (2, 1), "quarter_blocks": 1,
              "slice_porosity": False}


def test_voxel_shuffle_moves_channels_to_space():
    x = torch.arange(16.0).view(1, 16, 1, 1, 1)
    y = voxel_shuffle(x)
    assert y.shape == (1, 2, 2, 2, 2)
    assert y[0, 0, 0, 0, 1] == 1 and y[0, 0, 1, 0, 0] == 4 and y[0, 1, 0, 0, 0] == 8


def test_generator_is_fully_convolutional_and_slabs_join_exactly():
    torch.manual_seed(0)
    model = Slice2Vol(**TINY_MODEL).eval()
    mask = blobs((1, 36, 44), seed=1, porosity=0.25)[0]
    whole, agree_whole = reconstruct(model, mask, depth=30, seed=3)
    slabbed, agree_slab = reconstruct(model, mask, depth=30, seed=3, slab=4)
    assert whole.shape == (30, 36, 44)
    assert np.array_equal(whole, slabbed) and agree_whole == agree_slab
    assert np.array_equal(whole[15], mask)  # input pasted at the centre
    other, _ = reconstruct(model, mask, depth=30, seed=4)
    assert not np.array_equal(whole, other)  # the noise matters
    with_porosity = Slice2Vol(**{**TINY_MODEL, "slice_porosity": True}).eval()
    whole, _ = reconstruct(with_porosity, mask, depth=30, seed=3)
    assert np.array_equal(whole, reconstruct(with_porosity, mask, depth=30, seed=3, slab=4)[0])


def test_far_field_depends_on_the_slice_only_through_its_porosity():
    """Beyond far_field_distance the generator sees only noise and the slice's porosity: a slice
    and its mirror image (same porosity, other pores) with the same noise give identical voxels
    there; a slice of another porosity does not."""
    torch.manual_seed(0)
    model = Slice2Vol().eval()
    torch.nn.init.normal_(model.generator.at_quarter[0].weight, std=0.1)  # let porosity matter
    far = far_field_distance(model)
    depth = 2 * far + 24
    first = blobs((1, 16, 16), seed=1)[0]
    slices = np.stack([first, first[:, ::-1], blobs((1, 16, 16), seed=2, porosity=0.5)[0]])
    slices = torch.from_numpy(slices[:, None].astype(np.float32))
    noise = [n.expand(3, *n.shape[1:]) for n in model.sample_noise(1, depth, 16, 16, torch.Generator().manual_seed(0))]
    with torch.no_grad():
        volumes = model(slices, depth=depth, noise=noise, logits=True)[:, 0]
    centre = depth // 2
    near = volumes[:, centre - 4:centre + 4]
    assert not torch.allclose(near[0], near[1])
    for part in (slice(0, centre - far), slice(centre + far + 1, depth)):
        assert torch.equal(volumes[0, part], volumes[1, part])
        assert not torch.allclose(volumes[0, part], volumes[2, part])


def test_crops_split_and_symmetries():
    volume = blobs((40, 24, 24))
    split = split_holdout("v", volume)
    assert split.train.shape == (30, 24, 24) and split.held_out.shape == (10, 24, 24)
    assert np.array_equal(split.held_out, volume[30:])
    rng = np.random.default_rng(0)
    cube = np.arange(27).reshape(3, 3, 3)
    seen = {random_symmetry(cube, rng).tobytes() for _ in range(400)}
    assert len(seen) == 48  # all the cube's symmetries occur
    batch = RandomCrops([split.train], seed=1).batch(16, 3)
    assert batch.shape == (3, 16, 16, 16) and batch.dtype == bool
    assert held_out_cubes(split.held_out, 8, 5).shape == (5, 8, 8, 8)
    with pytest.raises(BadInputError):
        RandomCrops([split.train]).batch(32, 1)
    # Columns twice as deep as wide (training reaches the far field) come from one augmented cube.
    columns = RandomCrops([split.train], seed=1).batch(8, 4, depth=16)
    assert columns.shape == (4, 16, 8, 8) and columns.dtype == bool


def test_a_few_iterations_move_the_loss_and_the_checkpoint_round_trips(tmp_path):
    torch.manual_seed(0)
    volume = blobs((64, 32, 32), seed=2)
    settings = TrainSettings(iters=12, crop=16, batch=2, warmup_crop=16, warmup_iters=12, warmup_batch=2,
                             eval_every=6, eval_cubes=2, save_every=6, slices_per_axis=2, model=TINY_MODEL,
                             lr_g=2e-3, lr_d=2e-3, final_cubes=0)
    out = tmp_path / "r.pt"
    train_reconstruct([("blobs", volume)], out, settings)
    payload = load_checkpoint(out, "reconstruct")
    curve = payload["meta"]["curve"]
    assert [row["iteration"] for row in curve] == [6, 12]
    assert curve[1]["loss_slice"] < curve[0]["loss_slice"]
    # The connectivity term and the held-out Euler densities are logged.
    assert all(np.isfinite(row[k]) for row in curve for k in ("eval_euler_real", "eval_euler_generated"))
    assert (tmp_path / "r.csv").read_text().count("\n") == 3 and (tmp_path / "r.png").is_file()
    # Resume continues from the saved iteration and appends to the curve.
    settings.iters = 18
    train_reconstruct([("blobs", volume)], out, settings, resume=True)
    payload2 = load_checkpoint(out, "reconstruct")
    assert payload2["meta"]["iterations"] == 18 and len(payload2["meta"]["curve"]) == 3
    loaded = load_model(out)
    for name, tensor in loaded.model.state_dict().items():
        assert torch.equal(tensor, payload2["state"]["model"][name])
    assert loaded.min_side == 16
    # A resume with other learning rates uses them, not the ones stored with the optimizer.
    settings.iters, settings.lr_g, settings.lr_d = 19, 1e-5, 3e-5
    train_reconstruct([("blobs", volume)], out, settings, resume=True)
    state = load_checkpoint(out, "reconstruct")["state"]
    assert [g["lr"] for g in state["opt_g"]["param_groups"]] == [1e-5]
    assert {g["lr"] for g in state["opt_d"]["param_groups"]} == {3e-5}


def test_the_output_threshold_is_calibrated_on_training_cubes(tmp_path):
    torch.manual_seed(0)
    volume = blobs((64, 32, 32), seed=4)
    settings = TrainSettings(iters=4, crop=16, batch=2, warmup_crop=16, warmup_iters=4, warmup_batch=2,
                             eval_every=4, eval_cubes=2, save_every=4, slices_per_axis=2, model=TINY_MODEL,
                             calibration_cubes=6, final_cubes=0)
    out = tmp_path / "c.pt"
    train_reconstruct([("blobs", volume)], out, settings)
    calibration = load_checkpoint(out, "reconstruct")["meta"]["calibration"]
    assert calibration["cubes"] == 6 and calibration["data"] == "training blocks"
    assert load_model(out).model.logit_threshold == 0.0  # unless asked for
    loaded = load_model(out, calibrated=True)
    assert loaded.model.logit_threshold == pytest.approx(calibration["logit_threshold"])
    assert [v["porosity_real"] for v in calibration["per_volume"]] == [calibration["porosity_real"]]
    # The same cubes and noise, thresholded there, have the real cubes' mean porosity.
    train = split_holdout("blobs", volume, settings.holdout).train
    cubes = held_out_cubes(train, 16, 6, calibration["seed"])
    generator = torch.Generator().manual_seed(calibration["seed"])
    with torch.no_grad():
        logits = torch.cat([loaded.model(torch.from_numpy(c[8][None, None].astype(np.float32)), depth=16,
                                         generator=generator, logits=True).flatten() for c in cubes])
    porosity = float((logits > loaded.model.logit_threshold).float().mean())
    assert porosity == pytest.approx(float(cubes.mean()), abs=1e-3)
    assert calibration["porosity_real"] == pytest.approx(float(cubes.mean()), abs=1e-4)
    # A checkpoint without a calibration says so when one is asked for.
    from rocksynth.training.checkpoint import save_checkpoint
    payload = load_checkpoint(out, "reconstruct")
    save_checkpoint(tmp_path / "bare.pt", "reconstruct", payload["config"], payload["state"],
                    {k: v for k, v in payload["meta"].items() if k != "calibration"})
    with pytest.raises(BadInputError, match="no porosity calibration"):
        load_model(tmp_path / "bare.pt", calibrated=True)
    # The pipeline thresholds there: a threshold above every logit leaves only the pasted slice.
    slice_ = volume[-8, :16, :16]
    loaded.model.logit_threshold = 1e9
    generated, _ = reconstruct(loaded.model, slice_, depth=16)
    assert not generated[:8].any() and np.array_equal(generated[8], slice_)


def test_the_whole_slice_code_reaches_the_far_field_and_widening_keeps_the_output(tmp_path):
    """With global_channels the far field hears the slice's mean features (two slices of one
    porosity but different texture differ there); a network widened from one without them gives
    the same volume until it trains; --init continues the source's iterations."""
    torch.manual_seed(0)
    plain = Slice2Vol(**TINY_MODEL).eval()
    wide = Slice2Vol(**{**TINY_MODEL, "global_channels": 3}).eval()
    changed = load_widened(wide, plain.state_dict())
    assert set(changed) == {"generator.global_code.weight", "generator.global_code.bias", "generator.at_quarter.0.weight"}
    mask = blobs((1, 32, 32), seed=5)[0]
    assert np.array_equal(reconstruct(plain, mask, depth=24, seed=1)[0], reconstruct(wide, mask, depth=24, seed=1)[0])
    with pytest.raises(BadInputError, match="shape"):
        load_widened(Slice2Vol(**{**TINY_MODEL, "channels": (2, 4, 6)}), plain.state_dict())

    torch.nn.init.normal_(wide.generator.at_quarter[0].weight, std=0.3)
    far = far_field_distance(wide)
    depth = 2 * far + 24
    first = blobs((1, 16, 16), seed=1, porosity=0.3)[0]
    rearranged = np.roll(first, 3, axis=0)[:, ::-1].T  # same porosity, pores elsewhere
    slices = torch.from_numpy(np.stack([first, rearranged])[:, None].astype(np.float32))
    assert float(slices[0].mean()) == float(slices[1].mean())
    noise = [n.expand(2, *n.shape[1:]) for n in wide.sample_noise(1, depth, 16, 16, torch.Generator().manual_seed(0))]
    with torch.no_grad():
        volumes = wide(slices, depth=depth, noise=noise, logits=True)[:, 0]
    assert not torch.allclose(volumes[0, :depth // 2 - far], volumes[1, :depth // 2 - far])

    volume = blobs((64, 32, 32), seed=2)
    settings = TrainSettings(iters=4, crop=16, batch=2, warmup_crop=16, warmup_iters=4, warmup_batch=2,
                             eval_every=2, eval_cubes=2, save_every=2, slices_per_axis=2, model=TINY_MODEL,
                             calibration_cubes=0, final_cubes=0)
    train_reconstruct([("blobs", volume)], tmp_path / "a.pt", settings)
    settings.iters, settings.model = 2, {"global_channels": 2}  # 2 beyond a.pt's 4
    train_reconstruct([("blobs", volume)], tmp_path / "b.pt", settings, init=tmp_path / "a.pt")
    payload = load_checkpoint(tmp_path / "b.pt", "reconstruct")
    assert payload["config"]["global_channels"] == 2 and payload["config"]["channels"] == [2, 4, 8]
    assert [row["iteration"] for row in payload["meta"]["curve"]] == [2, 4, 6]


def test_the_saved_model_is_the_moving_average_of_the_generator(tmp_path):
    """With `ema`, the checkpoint's "model" (what inference, --init and the evaluation use) is the
    moving average of the generator, "model_raw" the generator a resume continues; after one
    iteration from an --init source, average = d * source + (1 - d) * generator, d = 2 / 11."""
    volume = blobs((64, 32, 32), seed=2)
    settings = TrainSettings(iters=2, crop=16, batch=2, warmup_crop=16, warmup_iters=2, warmup_batch=2,
                             eval_every=2, eval_cubes=2, save_every=2, slices_per_axis=2, model=TINY_MODEL,
                             calibration_cubes=0, final_cubes=0, ema=0)
    train_reconstruct([("blobs", volume)], tmp_path / "a.pt", settings)
    source = load_checkpoint(tmp_path / "a.pt", "reconstruct")["state"]
    assert "model_raw" not in source
    settings.iters, settings.ema, settings.lr_g, settings.init_ramp = 1, 0.5, 1e-2, 0
    train_reconstruct([("blobs", volume)], tmp_path / "b.pt", settings, init=tmp_path / "a.pt")
    state = load_checkpoint(tmp_path / "b.pt", "reconstruct")["state"]
    decay = 2 / 11
    moved = 0
    for key, average in state["model"].items():
        expected = decay * source["model"][key] + (1 - decay) * state["model_raw"][key]
        torch.testing.assert_close(average, expected, rtol=1e-5, atol=1e-6)
        moved += not torch.equal(state["model_raw"][key], source["model"][key])
    assert moved > 10  # the generator did move, so the check above means something


def test_a_starting_model_gone_since_skips_the_comparison_with_a_warning(tmp_path, capsys):
    """A run resumed after its --init checkpoint was deleted still trains and saves; only the
    end-of-run comparison with that model is skipped, with a warning naming it."""
    volume = blobs((64, 32, 32), seed=2)
    settings = TrainSettings(iters=2, crop=16, batch=2, warmup_crop=16, warmup_iters=2, warmup_batch=2,
                             eval_every=2, eval_cubes=2, save_every=2, slices_per_axis=2, model=TINY_MODEL,
                             calibration_cubes=0, final_cubes=0)
    train_reconstruct([("blobs", volume)], tmp_path / "a.pt", settings)
    settings.final_cubes, settings.iters = 2, 1
    train_reconstruct([("blobs", volume)], tmp_path / "b.pt", settings, init=tmp_path / "a.pt")
    assert set(load_checkpoint(tmp_path / "b.pt", "reconstruct")["meta"]["comparison"]["models"]) == {"b", "a"}
    (tmp_path / "a.pt").unlink()
    capsys.readouterr()
    settings.iters = 2
    train_reconstruct([("blobs", volume)], tmp_path / "b.pt", settings, resume=True)
    err = capsys.readouterr().err
    assert "no held-out comparison with" in err and "a.pt" in err
    assert load_checkpoint(tmp_path / "b.pt", "reconstruct")["meta"]["iterations"] == 4


def test_the_comparison_includes_the_best_checkpoint_when_it_is_not_the_last(tmp_path, monkeypatch):
    """The first evaluation scores best here (a rising score stands in for the real one), so the run
    ends with three models in its comparison: the final one, the best checkpoint and the start."""
    import itertools

    import rocksynth.training.reconstruct as training

    scores = itertools.count()
    monkeypatch.setattr(training, "evaluation_score", lambda row: float(next(scores)))
    volume = blobs((64, 32, 32), seed=2)
    settings = TrainSettings(iters=2, crop=16, batch=2, warmup_crop=16, warmup_iters=2, warmup_batch=2,
                             eval_every=2, eval_cubes=2, save_every=2, slices_per_axis=2, model=TINY_MODEL,
                             calibration_cubes=0, final_cubes=0)
    train_reconstruct([("blobs", volume)], tmp_path / "a.pt", settings)
    settings.eval_every, settings.save_every, settings.iters, settings.final_cubes = 1, 1, 3, 2
    train_reconstruct([("blobs", volume)], tmp_path / "b.pt", settings, init=tmp_path / "a.pt")
    meta = load_checkpoint(tmp_path / "b.pt", "reconstruct")["meta"]
    assert meta["best"]["iteration"] == 3 and meta["iterations"] == 5
    assert set(meta["comparison"]["models"]) == {"b", "b.best (it 3)", "a"}


def test_the_evaluation_score_counts_each_goal_and_the_euler_density():
    """Each term is 1 at its goal; an Euler density of the wrong sign (isolated pores) costs more
    than the whole-slice terms at their goals, so such a checkpoint is not the best."""
    from rocksynth.training.reconstruct import evaluation_score

    at_goals = {"eval_whole_sd_ratio": 1.5, "eval_whole_far_field_error": 0.02, "eval_whole_slice_error": 0.03,
                "eval_porosity_generated": 0.22, "eval_porosity_real": 0.2, "eval_s2_error": 0.01,
                "eval_euler_real": -1.2, "eval_euler_generated": -0.6}
    assert evaluation_score(at_goals) == pytest.approx(6)
    isolated = dict(at_goals, eval_euler_generated=1.2)  # the error twice the real magnitude: 4 goals
    assert evaluation_score(isolated) == pytest.approx(9)
    without_euler = {k: v for k, v in at_goals.items() if not k.startswith("eval_euler")}
    assert evaluation_score(without_euler) == pytest.approx(5)


def test_anisotropy_is_one_for_an_isotropic_texture_and_the_stretch_along_z():
    """The correlation length along z over that in the plane: about 1 for an isotropic Gaussian
    field, about 2 for the same field drawn out twice along z; the score pays for the log of its
    ratio to the real rock's, a factor 1.25 costing 1."""
    from scipy.ndimage import gaussian_filter

    from rocksynth.training.reconstruct import anisotropy, evaluation_score

    field = gaussian_filter(np.random.default_rng(0).standard_normal((96, 96, 96)), 2.0)
    isotropic = field > np.quantile(field, 0.8)
    stretched = np.repeat(isotropic[:48], 2, axis=0)
    assert anisotropy(isotropic) == pytest.approx(1, abs=0.1)
    assert anisotropy(stretched) == pytest.approx(2, abs=0.25)
    row = {"eval_porosity_generated": 0.2, "eval_porosity_real": 0.2, "eval_s2_error": 0.0,
           "eval_whole_anisotropy_error": float(np.log(1.25))}
    assert evaluation_score(row) == pytest.approx(1)


def test_without_the_3d_critic_only_the_slices_critic_learns_and_the_generator_follows_it(tmp_path):
    """`critic3d_weight=0`: the 3D critic is built and saved (one checkpoint layout) but neither
    learns nor moves the generator; the slices' critic and the generator do train. With the 3D
    critic on (the default), it learns."""
    volume = blobs((64, 32, 32), seed=3)
    settings = TrainSettings(iters=2, crop=16, batch=2, warmup_crop=16, warmup_iters=2, warmup_batch=2,
                             eval_every=2, eval_cubes=2, save_every=2, slices_per_axis=2, model=TINY_MODEL,
                             calibration_cubes=0, final_cubes=0, ema=0, whole_side=0, seed=5)
    torch.manual_seed(0)
    train_reconstruct([("blobs", volume)], tmp_path / "a.pt", settings)
    start = load_checkpoint(tmp_path / "a.pt", "reconstruct")["state"]
    changed = {}
    for weight in (0.0, 1.0):
        settings.iters, settings.critic3d_weight, settings.init_ramp = 2, weight, 0
        out = tmp_path / f"w{weight}.pt"
        train_reconstruct([("blobs", volume)], out, settings, init=tmp_path / "a.pt")
        state = load_checkpoint(out, "reconstruct")["state"]
        changed[weight] = {part: any(not torch.equal(value, start[part][key]) for key, value in state[part].items())
                           for part in ("d3", "d2", "model")}
    assert changed[0.0] == {"d3": False, "d2": True, "model": True}
    assert changed[1.0] == {"d3": True, "d2": True, "model": True}


def test_resuming_on_other_volumes_than_the_checkpoints_warns(capsys):
    from rocksynth.training.reconstruct import _check_same_data

    _check_same_data("r.pt", ["/data/berea_400.tif"], ["berea_400.tif"])  # the same file, another folder
    assert capsys.readouterr().err == ""
    _check_same_data("r.pt", ["berea_400.tif"], ["/data/ketton_256.tif"])
    err = capsys.readouterr().err
    assert "trained on berea_400.tif and is resumed on ketton_256.tif" in err and "--init" in err
