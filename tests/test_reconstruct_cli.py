"""`rocksynth reconstruct`: shape, voxel size and central slice of what it writes; bad slices."""

import json

import numpy as np
import pytest
import tifffile

from rocksynth.io import read_volume, write_image
from rocksynth.training.reconstruct import TrainSettings, train_reconstruct

from conftest import help_options, help_settings

# Without the slice-porosity channel: in a 2-iteration model that channel (about 2 for the 42 %
# porous piece below) saturates the output to solid, and these tests need output that varies with the seed.
TINY_MODEL = {"enc_channels": (2, 4, 8), "channels": (2, 4, 8), "noise_channels": (2, 1), "quarter_blocks": 1,
              "slice_porosity": False}


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """A 2-iteration model trained on 16^3 crops (crop 16: slices must be at least 16 x 16)."""
    from scipy.ndimage import gaussian_filter

    field = gaussian_filter(np.random.default_rng(0).standard_normal((64, 32, 32)), 1.5)
    volume = field > np.quantile(field, 0.7)
    out = tmp_path_factory.mktemp("model") / "tiny.pt"
    settings = TrainSettings(iters=2, crop=16, batch=1, warmup_crop=16, warmup_iters=2, warmup_batch=1,
                             eval_every=2, eval_cubes=1, save_every=2, slices_per_axis=1, model=TINY_MODEL,
                             final_cubes=0)
    train_reconstruct([("blobs", volume)], out, settings, voxel_size=3e-6)
    return out


@pytest.fixture(scope="module")
def section(shared_data) -> np.ndarray:
    """A 40 x 36 piece of the Berea section (uint8 0/255)."""
    from rocksynth.io import read_image

    return read_image(shared_data / "berea_section_400.png")[100:140, 200:236]


def test_writes_volume_with_shape_voxel_size_and_central_slice(tmp_path, run_cli_in_process, tiny_checkpoint, section):
    write_image(tmp_path / "s.png", section)
    code, stdout, stderr = run_cli_in_process("reconstruct", tmp_path / "s.png", "--out", tmp_path / "v.tif", "--model",
                                   tiny_checkpoint, "--depth", 22, "--voxel-size", "5.345um", "--seed", 3, "--json")
    assert code == 0, stderr
    volume = read_volume(tmp_path / "v.tif")
    assert volume.data.shape == (22, 40, 36)
    assert volume.voxel_size == pytest.approx(5.345e-6, rel=1e-3)
    assert np.array_equal(volume.data[11] > 0, section > 0)
    summary = json.loads(stdout)
    assert 0 <= summary["volumes"][0]["raw_central_slice_agreement"] <= 1
    assert "raw central-slice agreement" in stderr


def test_a_tiff_slice_passes_its_voxel_size_to_the_volume(tmp_path, run_cli_in_process, tiny_checkpoint, section):
    """The pixel size in a TIFF slice's resolution tags is the volume's voxel size, as `info` reads
    it; --voxel-size overrides it."""
    per_cm = 0.01 / 4.2e-6
    tifffile.imwrite(tmp_path / "s.tif", section, resolution=(per_cm, per_cm), resolutionunit="CENTIMETER")
    code, _, stderr = run_cli_in_process("reconstruct", tmp_path / "s.tif", "--out", tmp_path / "v.tif", "--model",
                                         tiny_checkpoint, "--depth", 8)
    assert code == 0, stderr
    code, stdout, stderr = run_cli_in_process("info", tmp_path / "v.tif", "--json")
    assert code == 0, stderr
    assert json.loads(stdout)["voxel_size_m"] == pytest.approx(4.2e-6, rel=1e-6)
    code, _, stderr = run_cli_in_process("reconstruct", tmp_path / "s.tif", "--out", tmp_path / "w.tif", "--model",
                                         tiny_checkpoint, "--depth", 8, "--voxel-size", "5.345um")
    assert code == 0, stderr
    assert read_volume(tmp_path / "w.tif").voxel_size == pytest.approx(5.345e-6, rel=1e-6)


def test_samples_seed_and_default_depth(tmp_path, run_cli_in_process, tiny_checkpoint, section):
    write_image(tmp_path / "s.png", section)
    code, _, stderr = run_cli_in_process("reconstruct", tmp_path / "s.png", "--out", tmp_path / "v.tif", "--model",
                              tiny_checkpoint, "--samples", 2, "--seed", 5)
    assert code == 0, stderr
    first, second = (tifffile.imread(tmp_path / f"v_{i}.tif") for i in range(2))
    assert first.shape == (40, 40, 36) and not np.array_equal(first, second)
    # Without --voxel-size the model's training voxel size is used, and said so.
    assert read_volume(tmp_path / "v_0.tif").voxel_size == pytest.approx(3e-6)
    code, _, _ = run_cli_in_process("reconstruct", tmp_path / "s.png", "--out", tmp_path / "again.tif", "--model",
                         tiny_checkpoint, "--seed", 5)
    assert code == 0 and np.array_equal(tifffile.imread(tmp_path / "again.tif"), first)


def test_grayscale_slice_is_segmented(tmp_path, run_cli_in_process, tiny_checkpoint, section):
    gray = np.where(section > 0, 40, 180).astype(np.uint8)  # dark pores, as in micro-CT
    gray = (gray + np.random.default_rng(0).integers(0, 20, gray.shape)).astype(np.uint8)
    write_image(tmp_path / "g.png", gray)
    code, _, stderr = run_cli_in_process("reconstruct", tmp_path / "g.png", "--out", tmp_path / "v.tif", "--model",
                              tiny_checkpoint, "--depth", 8)
    assert code == 0, stderr
    assert "Otsu" in stderr
    assert np.array_equal(tifffile.imread(tmp_path / "v.tif")[4] > 0, section > 0)


@pytest.mark.parametrize("case, message", [
    ("rgb", "colour"),
    ("solid", "no pore"),
    ("pore", "all pore"),
    ("small", "smaller than the smallest the model was trained or evaluated on"),
    ("empty", "empty"),
])
def test_bad_slices_exit_2_with_one_line_and_no_output(tmp_path, run_cli_in_process, tiny_checkpoint, section, case, message):
    path = tmp_path / "bad.png"
    if case == "rgb":
        rng = np.random.default_rng(1)
        write_image(path, rng.integers(0, 255, (40, 40, 3), dtype=np.uint8))
    elif case == "solid":
        write_image(path, np.zeros((40, 40), np.uint8))
    elif case == "pore":
        write_image(path, np.full((40, 40), 255, np.uint8))
    elif case == "small":
        write_image(path, section[:12, :30])
    else:
        path.write_bytes(b"")
    code, _, stderr = run_cli_in_process("reconstruct", path, "--out", tmp_path / "v.tif", "--model", tiny_checkpoint)
    assert code == 2, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0].lower(), stderr
    assert not (tmp_path / "v.tif").exists()


def test_train_rejects_non_positive_learning_rates(tmp_path, run_cli_in_process):
    for option in (["--set", "lr_g=0"], ["--set", "lr_d=-1e-4"]):
        code, _, err = run_cli_in_process("train", "reconstruct", "../shared/data/ketton_256.tif",
                                          "--out", tmp_path / "r.pt", *option)
        assert code == 2 and "learning rates must be positive" in err, (option, err)
    assert not (tmp_path / "r.pt").exists()


def test_threshold_at_one_half_by_default_and_calibrated_on_request(tmp_path, run_cli_in_process, tiny_checkpoint,
                                                                     section):
    from rocksynth.training.checkpoint import load_checkpoint

    calibration = load_checkpoint(tiny_checkpoint)["meta"]["calibration"]
    write_image(tmp_path / "s.png", section)
    thresholds = []
    for extra in ([], ["--calibrated"]):
        code, stdout, stderr = run_cli_in_process("reconstruct", tmp_path / "s.png", "--out", tmp_path / "v.tif",
                                                  "--model", tiny_checkpoint, "--json", *extra)
        assert code == 0, stderr
        thresholds.append(json.loads(stdout)["logit_threshold"])
    assert thresholds == [0.0, pytest.approx(calibration["logit_threshold"])]


def test_train_from_a_shipped_model_with_deep_crops_keeps_the_best_checkpoint(tmp_path, run_cli_in_process):
    """`train reconstruct --init berea` (a shipped model's name) on crops deeper than wide with the
    slice at random depths; the best checkpoint is written beside the curve and is a model; the run ends
    with the held-out comparison of the trained model and the one it started from."""
    from scipy.ndimage import gaussian_filter

    from rocksynth.training.checkpoint import load_checkpoint

    field = gaussian_filter(np.random.default_rng(1).standard_normal((96, 40, 40)), 1.5)
    tifffile.imwrite(tmp_path / "vol.tif", (field > np.quantile(field, 0.8)).astype(np.uint8) * 255)
    code, _, stderr = run_cli_in_process("train", "reconstruct", tmp_path / "vol.tif", "--out", tmp_path / "m.pt",
                                         "--init", "berea", "--crop", "16", "--set", "crop_depth=32", "--batch", "1",
                                         "--set", "warmup_iters=0", "--iters", "2", "--eval-every", "2",
                                         "--set", "whole_side=16", "--set", "calibration_cubes=0", "--set", "final_cubes=3",
                                         "--set", "init_ramp=4")
    assert code == 0, stderr
    assert "weights from berea" in stderr and "best checkpoint" in stderr
    payload = load_checkpoint(tmp_path / "m.pt")
    # The run ends with the trained model and the one it started from on held-out cubes.
    assert "held-out comparison on 3 cubes of 16³" in stderr and "| m W (mean) | berea W (mean) |" in stderr
    comparison = payload["meta"]["comparison"]
    assert set(comparison["models"]) == {"m", "berea"} and comparison["floor"]["score"] == pytest.approx(1)
    assert "closest to the held-out rock: " in stderr
    settings = payload["meta"]["settings"]
    assert (settings["crop_depth"], settings["slice_position"], settings["porosity_weight"]) == (32, "random", 200.0)
    assert payload["meta"]["curve"][-1]["lr_g"] == pytest.approx(2e-4 * 2 / 4)
    source = payload["meta"]["init"]["iteration"]  # the shipped model's own count
    assert load_checkpoint(tmp_path / "m.best.pt")["meta"]["best"]["iteration"] == source + 2
    write_image(tmp_path / "s.png", (field[-1, :16, :16] > np.quantile(field, 0.8)).astype(np.uint8) * 255)
    code, _, stderr = run_cli_in_process("reconstruct", tmp_path / "s.png", "--out", tmp_path / "v.tif",
                                         "--model", tmp_path / "m.best.pt", "--depth", 24)
    assert code == 0, stderr
    assert tifffile.imread(tmp_path / "v.tif").shape == (24, 16, 16)


@pytest.mark.parametrize("option, message", [
    (["--set", "slice_position=middle"], "slice position 'middle'"),
    (["--crop", "32", "--set", "warmup_crop=16", "--set", "crop_depth=30"], "crop_depth 30"),
    (["--crop", "32", "--set", "warmup_crop=16", "--set", "crop_depth=16"], "at least --crop"),
    (["--init", "granite"], "unknown model"),
])
def test_train_refuses_bad_crop_depth_slice_position_and_init(tmp_path, run_cli_in_process, option, message):
    code, _, err = run_cli_in_process("train", "reconstruct", "../shared/data/ketton_256.tif",
                                      "--out", tmp_path / "r.pt", *option)
    assert code == 2 and message in err, (option, err)
    assert not list(tmp_path.iterdir())


def test_a_far_field_porosity_unlike_the_slice_is_reported(tmp_path, run_cli_in_process):
    """A slice of porosity 0.67, far from the rocks the model knows: the volume's far field is not
    that porous, and the command says so on stderr with both figures (and still writes the volume)."""
    import json

    import tifffile
    from scipy import ndimage

    image = ndimage.gaussian_filter(np.random.default_rng(0).random((128, 128)), 3) > 0.49
    tifffile.imwrite(tmp_path / "porous.tif", image.astype(np.uint8) * 255)
    code, stdout, stderr = run_cli_in_process("reconstruct", tmp_path / "porous.tif", "--out", tmp_path / "v.tif",
                                              "--depth", "80", "--json")
    assert code == 0, stderr
    volume = json.loads(stdout)["volumes"][0]
    assert volume["far_field_porosity"] < 0.5
    assert "does not follow this slice's porosity" in stderr and f"{image.mean():.3f}" in stderr
    assert f"{volume['far_field_porosity']:.3f}" in stderr


def test_far_field_porosity_and_its_warning():
    from rocksynth.pipelines.reconstruct import FAR_FIELD, far_field_porosity, porosity_warning

    per_slice = np.full(2 * FAR_FIELD + 1, 10)
    per_slice[0] = per_slice[-1] = 30  # only the two end slices are FAR_FIELD from the centre
    assert far_field_porosity(per_slice, 100) == pytest.approx(0.3)
    assert far_field_porosity(per_slice[1:-1], 100) is None  # too shallow for a far field
    assert porosity_warning(0.28, 0.30, "m") is None
    assert "0.200" in porosity_warning(0.20, 0.30, "m")


def test_train_reconstruct_help_keeps_to_the_common_flags_and_lists_every_setting(run_cli_in_process):
    import dataclasses

    from rocksynth.cli.reconstruct import _RECONSTRUCT_FLAGS, _reconstruct_settings

    code, out, err = run_cli_in_process("train", "reconstruct", "--help")
    assert code == 0, err
    text = out.decode()
    options = help_options(text)
    assert {"--set", "--iters", "--crop", "--config"} <= set(options) and "--warmup-iters" not in options
    assert len(options) <= 16, options
    listed = help_settings(text)
    settable = {f.name: f.default for f in dataclasses.fields(_reconstruct_settings())
                if f.type in (int, float, str, bool) and f.name not in _RECONSTRUCT_FLAGS}
    assert set(listed) == set(settable)
    assert {name: type(settable[name])(value) for name, value in listed.items()} == settable


def test_set_reaches_the_settings_and_the_recorded_configuration(tmp_path, run_cli_in_process):
    """A 1-iteration run: --set warmup_iters reaches the library (at most --iters, as the flag did) and
    meta['train_config'] / <out>.toml record the value given."""
    import tomllib

    from scipy.ndimage import gaussian_filter

    from rocksynth.training.checkpoint import load_checkpoint

    field = gaussian_filter(np.random.default_rng(2).standard_normal((64, 32, 32)), 1.5)
    tifffile.imwrite(tmp_path / "vol.tif", (field > np.quantile(field, 0.7)).astype(np.uint8) * 255)
    code, _, err = run_cli_in_process("-q", "train", "reconstruct", tmp_path / "vol.tif", "--out", tmp_path / "m.pt",
                                      "--iters", "1", "--crop", "16", "--batch", "1", "--set", "warmup_iters=5500",
                                      "--set", "warmup_crop=16", "--set", "warmup_batch=1", "--set", "whole_side=0",
                                      "--set", "calibration_cubes=0", "--set", "lr_g=5e-5", "--set", "global_channels=2",
                                      "--set", "final_cubes=0")
    assert code == 0, err
    payload = load_checkpoint(tmp_path / "m.pt")
    settings = payload["meta"]["settings"]
    assert (settings["warmup_iters"], settings["warmup_crop"], settings["lr_g"], settings["model"]) == (
        1, 16, 5e-5, {"global_channels": 2})
    assert payload["config"]["global_channels"] == 2
    options = payload["meta"]["train_config"]["options"]
    assert options == tomllib.loads((tmp_path / "m.toml").read_text())
    assert (options["warmup_iters"], options["lr_g"], options["threads"], options["crop_depth"]) == (5500, 5e-5, 1, 0)


@pytest.mark.parametrize("setting, message", [
    ("warmup-itres=5", "--set warmup_itres: unknown setting; settable: calibration_cubes, "),
    ("iters=5", "--set iters: use --iters"),
    ("warmup_iters=1.5", "--set warmup_iters=1.5: expected a whole number"),
    ("global_channels=-2", "global_channels: -2: expected -1 (the default) or at least 0"),
    ("ema=1", "ema: "),
    ("ema=-0.1", "ema: "),
    ("holdout=0", "holdout: "),
])
def test_a_bad_set_is_one_line_exit_2_and_writes_nothing(tmp_path, run_cli_in_process, setting, message):
    code, _, err = run_cli_in_process("train", "reconstruct", "../shared/data/ketton_256.tif",
                                      "--out", tmp_path / "r.pt", "--set", setting)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not list(tmp_path.iterdir())


def test_a_warm_start_is_checked_against_the_final_crops(tmp_path, run_cli_in_process):
    """`--init berea --iters 10` continues past the warm-up (berea has 8500 iterations), so it
    trains on the final 64-wide, 128-deep crops: a volume too small for them is refused before any
    work, although it would fit the warm-up's crops."""
    tifffile.imwrite(tmp_path / "vol.tif", (np.random.default_rng(0).random((120, 72, 72)) < 0.3).astype(np.uint8) * 255)
    code, _, err = run_cli_in_process("train", "reconstruct", tmp_path / "vol.tif", "--out", tmp_path / "m.pt",
                                      "--init", "berea", "--iters", "10")
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and "training part (90, 72, 72) is smaller than the 128-voxel deep crop" in errors[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vol.tif"]


def test_the_smallest_slice_is_the_smallest_the_model_was_trained_or_evaluated_on():
    """A model trained on 96-wide crops and evaluated on 64^3 held-out cubes takes 64^2 slices; one
    trained and evaluated at its crop takes the crop."""
    from pathlib import Path

    from rocksynth.pipelines.reconstruct import LoadedModel

    def side(settings):
        return LoadedModel(None, {"settings": settings}, Path("m.pt")).min_side

    assert side({"crop": 96, "eval_crop": 64}) == 64
    assert side({"crop": 64, "eval_crop": 0}) == 64
    assert side({"crop": 32, "eval_crop": 64}) == 32
    assert side({}) == 64
