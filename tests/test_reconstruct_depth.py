"""Issue #25 (depth bands): the slice at any depth, the volume's ends hidden behind a halo of noise,
a per-depth porosity term, whole-slice evaluation and the best checkpoint, a warm start from a
shipped model, and the shipped checkpoints still loading and running."""

import csv

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import blobs

from rocksynth.models.slice2vol import GRID, Slice2Vol, without_depth_code
from rocksynth.pipelines.reconstruct import load_model, reconstruct
from rocksynth.training.checkpoint import load_checkpoint
from rocksynth.training.reconstruct import (DISTANCE_BINS, TrainSettings, distance_bin_porosity, slice_position,
                                            train_reconstruct)

TINY_MODEL = {"enc_channels": (2, 4, 8), "channels": (2, 4, 8), "noise_channels": (2, 1), "quarter_blocks": 1,
              "slice_porosity": False}


def _randomised(config: dict, seed: int = 0) -> Slice2Vol:
    """A model whose output varies (untrained tiny models saturate): larger random weights."""
    torch.manual_seed(seed)
    model = Slice2Vol(**config).eval()
    for module in model.generator.modules():
        if isinstance(module, torch.nn.Conv3d):
            torch.nn.init.normal_(module.weight, std=0.3)
    return model


@pytest.mark.parametrize("depth_code", [True, False])
def test_tiled_generation_equals_one_shot_and_the_model_forward(depth_code):
    """With the halo past both ends every slab, the first and the last too, is the same voxels as
    one piece; and the pipeline gives what the model's forward gives from the same noise."""
    model = _randomised({**TINY_MODEL, "depth_code": depth_code})
    mask = blobs((1, 36, 44), seed=1, porosity=0.25)[0]
    for depth in (30, 40, 64):
        whole, agreement = reconstruct(model, mask, depth=depth, seed=3)
        assert whole.shape == (depth, 36, 44) and np.array_equal(whole[depth // 2], mask)
        assert 0.02 < whole.mean() < 0.98
        for slab in (4, 8, 12):
            tiled, tiled_agreement = reconstruct(model, mask, depth=depth, seed=3, slab=slab)
            assert np.array_equal(whole, tiled), (depth, slab)
            assert tiled_agreement == agreement
    # The model's forward (slice at depth // 2, a multiple of GRID here): the same voxels.
    padded = torch.from_numpy(mask.astype(np.float32))[None, None]  # 36 x 44: no padding
    with torch.no_grad():
        logits = model(padded, depth=64, generator=torch.Generator().manual_seed(3), logits=True)[0, 0].numpy()
    volume = logits > 0
    volume[32] = mask
    assert np.array_equal(volume, reconstruct(model, mask, depth=64, seed=3)[0])


def test_the_ends_are_no_position_cue():
    """A volume's last planes are what a deeper volume (the same noise, continued) has there: no
    voxel's receptive field meets the end. Without the halo (replicate padding at the end) they
    differ. The slice may sit at any depth (`centre`)."""
    model = _randomised({**TINY_MODEL, "depth_code": False})
    mask = torch.from_numpy(blobs((1, 16, 16), seed=2)[0][None, None].astype(np.float32))
    halo = model.halo_cells()
    depth, extra = 32, 8
    short = model.sample_noise(1, depth, 16, 16, torch.Generator().manual_seed(0))
    more = model.sample_noise(1, extra, 16, 16, torch.Generator().manual_seed(1), halo=False)
    # The deeper volume's noise: the shorter one's (its own cells and both halos), then new cells.
    longer = [torch.cat([n, m], 2) for n, m in zip(short, more)]
    with torch.no_grad():
        for centre in (0, 12, 16, 28):
            a = model(mask, depth=depth, noise=short, centre=centre, logits=True)
            b = model(mask, depth=depth + extra, noise=longer, centre=centre, logits=True)
            assert torch.equal(a, b[:, :, :depth]), centre
        # The old pipeline's generation (no halo: the end is padding) differs at the end.
        feats = model.encoder(mask)
        core = [n[:, :, k * halo:n.shape[2] - k * halo] for k, n in zip((1, 2), short)]
        old = model.generator(mask, feats, core[0], core[1], centre=16)
        new = model(mask, depth=depth, noise=short, centre=16, logits=True)
        assert not torch.equal(old[:, :, -1], new[:, :, -1])
        assert torch.equal(old[:, :, halo * GRID:depth - halo * GRID], new[:, :, halo * GRID:depth - halo * GRID])
    with pytest.raises(ValueError, match="outside"):
        model(mask, depth=depth, centre=depth)


@pytest.mark.parametrize("name", ["berea", "ketton"])
def test_shipped_models_load_and_run(name, shared_data):
    """The shipped models reconstruct a piece of the Berea section: the slice at the centre, raw
    agreement with it, a rock-like porosity."""
    from rocksynth.io import read_image

    loaded = load_model(name)
    mask = read_image(shared_data / "berea_section_400.png")[100:164, 50:114] > 0
    volume, agreement = reconstruct(loaded.model, mask, depth=64, seed=0)
    assert agreement > 0.999 and np.array_equal(volume[32], mask)
    assert 0.1 < volume.mean() < 0.3


def test_a_checkpoint_with_the_depth_code_loads_and_warm_starts_without_it(tmp_path):
    """Checkpoints saved before the depth code was dropped (no `depth_code` in their config) load
    with it and run; a warm start from one builds the new model without it, from the same weights
    but the code's input columns."""
    from rocksynth.models.checkpoints import save_checkpoint

    model = _randomised({**TINY_MODEL, "depth_code": True})
    config = {k: v for k, v in model.config.items() if k != "depth_code"}
    old = tmp_path / "old.pt"
    save_checkpoint(old, "reconstruct", config, {"model": model.state_dict()}, {"iterations": 5, "curve": []})
    loaded = load_model(old).model
    assert loaded.generator.codes2
    mask = blobs((1, 32, 32), seed=5)[0]
    assert np.array_equal(reconstruct(loaded, mask, depth=24, seed=1)[0],
                          reconstruct(model, mask, depth=24, seed=1)[0])
    plain = Slice2Vol(**{**config, "depth_code": False})
    plain.load_state_dict(without_depth_code(model.state_dict(), config))  # strict: every weight fits
    settings = TrainSettings(iters=1, crop=16, crop_depth=32, batch=1, warmup_iters=0, eval_every=1, eval_cubes=1,
                             save_every=1, slices_per_axis=1, calibration_cubes=0, final_cubes=0, whole_side=0)
    train_reconstruct([("blobs", blobs((96, 32, 32), seed=3))], tmp_path / "new.pt", settings, init=str(old))
    payload = load_checkpoint(tmp_path / "new.pt", "reconstruct")
    assert payload["config"]["depth_code"] is False and payload["meta"]["iterations"] == 6


def test_slice_positions_and_distance_bins():
    settings = TrainSettings()
    rng = np.random.default_rng(0)
    positions = {slice_position(settings, 128, rng) for _ in range(2000)}
    assert positions == set(range(0, 128, GRID))  # both ends, every cell
    settings.slice_position = "centre"
    assert slice_position(settings, 128, rng) == 64
    volumes = torch.zeros(2, 1, 40, 4, 4)
    volumes[:, :, 10:12] = 1  # planes 10 and 11
    k = len(DISTANCE_BINS)
    porosity, reached = distance_bin_porosity(volumes, 0)  # the slice at the first plane: one side only
    assert porosity.shape == (2, 2 * k) and reached.tolist() == [False] * k + [True] * 5 + [False]
    assert porosity[0, k:].tolist() == [0, 0.25, 0, 0, 0, 0]  # distances 10, 11 of the 8 in 9-16
    porosity, reached = distance_bin_porosity(volumes, 20)  # planes 10, 11 are before the slice
    assert porosity[0, 1] == pytest.approx(2 / 8) and porosity[0, k + 1] == 0
    assert reached.tolist() == [True] * 3 + [False] * 3 + [True] * 3 + [False] * 3
    flipped = distance_bin_porosity(volumes.flip(2), 39 - 20)[0]  # the mirror image: the sides swap
    assert torch.equal(flipped[:, :k], porosity[:, k:]) and torch.equal(flipped[:, k:], porosity[:, :k])


def _curve(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_deep_crops_random_slice_whole_slice_evaluation_and_best_checkpoint(tmp_path):
    torch.manual_seed(0)
    volume = blobs((96, 48, 48), seed=2)
    settings = TrainSettings(iters=8, crop=16, crop_depth=48, batch=2, warmup_iters=0, eval_every=4, eval_cubes=2,
                             save_every=3, slices_per_axis=2, model=TINY_MODEL, lr_g=2e-3, lr_d=2e-3,
                             calibration_cubes=0, whole_side=24, whole_depth=88, final_cubes=0)
    out = tmp_path / "r.pt"
    train_reconstruct([("blobs", volume)], out, settings)
    payload = load_checkpoint(out, "reconstruct")
    assert payload["config"]["depth_code"] is False  # new models have no depth code
    curve = payload["meta"]["curve"]
    assert [row["iteration"] for row in curve] == [4, 8]
    assert curve[0]["loss_porosity"] != curve[1]["loss_porosity"] and curve[1]["loss_slice"] < curve[0]["loss_slice"]
    for row in curve:
        # The anisotropy needs correlation lengths within reach (NaN for this tiny model's planes).
        assert "eval_whole_anisotropy" in row and not row["eval_whole_anisotropy_error"] < 0
        for key in ("eval_whole_sd_ratio", "eval_whole_far_field_error", "eval_whole_slice_error", "eval_score"):
            assert np.isfinite(row[key]) and row[key] >= 0, key
    written = _curve(tmp_path / "r.csv")
    assert [float(r["eval_score"]) for r in written] == pytest.approx([r["eval_score"] for r in curve])
    # The best checkpoint is the evaluation with the lowest score; it loads and runs.
    best = payload["meta"]["best"]
    scores = {row["iteration"]: row["eval_score"] for row in curve}
    assert best["metric"] == "eval_score" and best["value"] == min(scores.values())
    assert scores[best["iteration"]] == best["value"]
    best_model = load_model(tmp_path / "r.best.pt")
    assert load_checkpoint(tmp_path / "r.best.pt")["meta"]["iterations"] == best["iteration"]
    assert reconstruct(best_model.model, volume[-1, :16, :16], depth=24)[0].shape == (24, 16, 16)
    # Resume continues, knows the best so far, and the checkpoint round-trips.
    settings.iters = 12
    train_reconstruct([("blobs", volume)], out, settings, resume=True)
    resumed = load_checkpoint(out, "reconstruct")
    assert resumed["meta"]["iterations"] == 12 and len(resumed["meta"]["curve"]) == 3
    assert resumed["meta"]["best"]["value"] == min(row["eval_score"] for row in resumed["meta"]["curve"])
    loaded = load_model(out)
    for name, tensor in loaded.model.state_dict().items():
        assert torch.equal(tensor, resumed["state"]["model"][name])


def test_warm_start_from_a_shipped_model_ramps_the_learning_rate(tmp_path):
    """--init berea: the shipped weights (without a depth code), fresh critics, the generator's
    learning rate ramped up from the source's iteration on; the curve continues the source's, and
    --iters counts this run's iterations (2 beyond berea's own), on a resume too."""
    from rocksynth.pretrained.registry import resolve_model

    source = load_checkpoint(resolve_model("berea", "reconstruct"))["meta"]["iterations"]
    volume = blobs((96, 32, 32), seed=3)
    settings = TrainSettings(iters=2, crop=16, crop_depth=32, batch=1, warmup_iters=0, eval_every=1,
                             eval_cubes=1, save_every=2, slices_per_axis=1, calibration_cubes=0, final_cubes=0, whole_side=16,
                             whole_depth=88, init_ramp=10, lr_g=1e-4)
    out = tmp_path / "w.pt"
    train_reconstruct([("blobs", volume)], out, settings, init="berea")
    payload = load_checkpoint(out, "reconstruct")
    assert payload["config"]["depth_code"] is False
    assert payload["meta"]["init"] == {"checkpoint": "berea", "iteration": source}
    rows = payload["meta"]["curve"]
    assert rows[-3]["iteration"] == source and [r["iteration"] for r in rows[-2:]] == [source + 1, source + 2]
    assert [r["lr_g"] for r in rows[-2:]] == pytest.approx([1e-5, 2e-5])
    # The ramp continues across a resume.
    settings.iters = 3
    train_reconstruct([("blobs", volume)], out, settings, resume=True)
    resumed = load_checkpoint(out, "reconstruct")["meta"]
    assert resumed["iterations"] == source + 3 and resumed["curve"][-1]["lr_g"] == pytest.approx(3e-5)


def test_the_full_resolution_layer_equals_the_convolution_of_the_lifted_tensor():
    """`VolumeGenerator._full_res_conv` convolves the lifted slice features without building them:
    the same numbers to float rounding near the slice and at the window's ends, and in the far
    field, where the lifted features are zero, to the rounding of one float32 sum."""
    from rocksynth.models.slice2vol import depth_code

    generator = Slice2Vol().generator.eval()
    torch.manual_seed(0)
    channels = (generator.at_full[0].in_channels - generator.at_full[0].out_channels) // len(generator.decays0)
    for depth, centre in ((24, 11.5), (16, 1.0), (12, 40.0)):
        x = torch.randn(2, generator.at_full[0].out_channels, depth, 20, 28)
        skip = torch.randn(2, channels, 20, 28)
        decays = depth_code(depth, centre, 1, generator.decays0)
        with torch.no_grad():
            lifted = torch.cat([x, generator._lift(skip, depth, decays)], 1)
            expected = generator.at_full[0](lifted)
            got = generator._full_res_conv(x, skip, decays)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
        if centre > depth + 8:  # far from the slice: no lifted input at all
            # Not bit for bit: over more input channels (the zero ones) a CPU's convolution kernel
            # may sum in another order (4e-7 seen on values near 1).
            torch.testing.assert_close(got, expected, rtol=0, atol=2e-6)


def test_the_inference_path_gives_the_plain_networks_voxels(monkeypatch):
    """What `reconstruct` runs (the separated full-resolution layer that skips the far field,
    channels-last convolutions of the finer stages, the quarter-resolution stage over several
    slabs at once) against the plain network (lifted tensor, default layout, one slab at a time):
    for slabs of every size, the same voxels in the far field; near the slice the separated layer
    sums in another order, which may flip a voxel whose logit is within rounding of the threshold
    (1 of 0.8 M with the shipped model), never a block of them (a wrong margin of the finer stages
    changes thousands)."""
    import rocksynth.models.slice2vol as networks
    import rocksynth.pipelines.reconstruct as pipeline

    def lifted(self, x, skip, decays):
        return self.at_full[0](torch.cat([x, self._lift(skip, x.shape[2], decays)], 1))

    def default_layout(conv, x, weight=None):
        return F.conv3d(F.pad(x, (1,) * 6, mode="replicate"), conv.weight if weight is None else weight, conv.bias)

    model = load_model("berea").model
    mask = blobs((1, 96, 80), seed=4)[0]
    # One thread: with more, oneDNN may order its sums differently, which moves logits by rounding
    # (2 of 64 M voxels flip at 400^3 with 2 threads: benchmarks/bench_reconstruct_inference.py).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        fast = {slab: reconstruct(model, mask, depth=104, seed=2, slab=slab)[0] for slab in (8, 24)}
        monkeypatch.setattr(networks.VolumeGenerator, "_full_res_conv", lifted)
        monkeypatch.setattr(networks, "_replicate_conv", default_layout)
        monkeypatch.setattr(pipeline, "QUARTER_SLABS", 1)
        plain = reconstruct(model, mask, depth=104, seed=2, slab=8)[0]
    finally:
        torch.set_num_threads(threads)
    far = np.abs(np.arange(104) - 52) > networks.far_field_distance(model)
    for slab, volume in fast.items():
        assert np.array_equal(volume[far], plain[far]), slab
        assert (volume != plain).sum() <= 8, (slab, int((volume != plain).sum()))
