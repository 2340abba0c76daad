"""Every shipped model has its training configuration (`rocksynth/pretrained/<name>.toml`), and it
reproduces the model: the model builds from the checkpoint's saved config, and the file, through
the real `rocksynth train` command, trains a model of that same config."""

import tomllib

import pytest

from rocksynth.models.checkpoints import inference_models, load_checkpoint
from rocksynth.pretrained.registry import model_config, shipped_models

# Per shipped model: the data of its card's command (names in ../shared/data, or procedural) and the
# smallest command-line overrides (the command line wins over the file) that make it run in seconds.
# The recipes' last stages start from an earlier stage's checkpoint (--init, --vqvae); here the
# shipped checkpoint stands in for it, which sets the same architecture.
CASES = {
    "clean_drawings": ([], ["--init", "drawings", "--iters", "1", "--crop", "32", "--batch", "1"]),
    "reconstruct_rocks": (["berea_400.tif", "ketton_256.tif"],
                          ["--iters", "1", "--crop", "16", "--set", "crop_depth=32", "--batch", "1",
                           "--eval-every", "1", "--set", "save_every=1", "--set", "eval_crop=16",
                           "--set", "eval_cubes=1", "--set", "whole_side=0",
                           "--set", "calibration_cubes=0", "--set", "final_cubes=0"]),
    "texture_rocks": (["berea=berea_400.tif", "ketton=ketton_256.tif", "fractures=fractures_100.tif",
                       "spherepack=porespy:spherepack"],
                      ["--iters", "1", "--set", "crop=16", "--set", "batch=1", "--set", "eval_size=16",
                       "--set", "eval_volumes=1", "--set", "eval_every=1"]),
    "video_rocks": (["berea_400.tif", "ketton_256.tif"], ["--iters", "1", "--eval-every", "1", "--pool", "4", "--batch", "2"]),
    "video_scenes": (["scenes"], ["--iters", "1", "--eval-every", "1", "--pool", "4", "--batch", "2"]),
    "video_shapes": (["moving"], ["--vqvae", "SHIPPED", "--iters", "1", "--eval-every", "1", "--pool", "4",
                                  "--batch", "2"]),
}

# Architecture changes since a model shipped (none: every shipped model is what its file trains).
SINCE: "dict[str, dict]" = {}


def test_every_shipped_model_has_a_config_file():
    assert set(shipped_models()) == set(CASES)
    for name in CASES:
        table = tomllib.loads(model_config(name))
        assert table, name


def test_models_name_config_prints_the_file_and_refuses_an_unknown_name(run_cli_in_process):
    code, out, err = run_cli_in_process("models", "clean_drawings", "--config")
    assert code == 0, err
    assert out.decode() == model_config("clean_drawings") and tomllib.loads(out.decode())["widths"] == "12,24,48,72,96"
    code, out, _ = run_cli_in_process("models", "berea", "--config")
    assert code == 2  # --model names are not model names here: the full name or an alias
    code, out, err = run_cli_in_process("models", "reconstruct_berea", "--config")
    assert code == 0 and out.decode() == model_config("reconstruct_rocks"), err
    code, out, err = run_cli_in_process("models", "nope", "--config")
    assert code == 2 and not out and "unknown model 'nope'" in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_model_builds_from_the_checkpoints_saved_config(name):
    payload = load_checkpoint(shipped_models()[name])
    modules = inference_models(payload)  # each built from payload['config'], its weights loaded strictly
    assert modules and all(not module.training for module in modules.values())


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_config_file_trains_the_shipped_models_architecture(name, tmp_path, shared_data, run_cli_in_process):
    shipped = shipped_models()[name]
    config = tmp_path / f"{name}.toml"
    config.write_text(model_config(name))
    data, overrides = CASES[name]
    data = [_data_path(item, shared_data) for item in data]
    overrides = [str(shipped) if item == "SHIPPED" else item for item in overrides]
    kind = load_checkpoint(shipped)["kind"]  # the train command of each kind has its name
    code, _, err = run_cli_in_process("-q", "train", kind, *data, "--config", config, *overrides,
                                      "--out", tmp_path / "x.pt")
    assert code == 0, err
    assert load_checkpoint(tmp_path / "x.pt")["config"] == dict(load_checkpoint(shipped)["config"], **SINCE.get(name, {}))



def _data_path(item: str, shared_data) -> str:
    """A card's data item with its file under ../shared/data ('name=file' for textures)."""
    label, _, source = item.rpartition("=")
    if (shared_data / source).is_file():
        source = str(shared_data / source)
    return f"{label}={source}" if label else source
