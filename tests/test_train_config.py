"""`rocksynth train KIND --config FILE.toml`: the file under the command line, its errors in one
line, and the resolved configuration written to <out>.toml repeating the run."""

import tomllib

import numpy as np
import pytest
import tifffile
import torch

from rocksynth.models.checkpoints import load_checkpoint

# The tiniest clean run of tests/test_training_loop.py, as a file; its --iters is overridden below.
TINY_CLEAN = 'widths = "2,4,4,4,4"\ncrop = 32\nbatch = 1\niters = 5\nseed = 3\n'


def test_flags_override_the_file_and_the_written_config_repeats_the_run(tmp_path, run_cli_in_process):
    config = tmp_path / "tiny.toml"
    config.write_text(TINY_CLEAN)
    code, _, err = run_cli_in_process("-q", "train", "clean", "--config", config, "--iters", "2",
                                      "--out", tmp_path / "a.pt")
    assert code == 0, err
    written = tomllib.loads((tmp_path / "a.toml").read_text())
    assert written == {"iters": 2, "batch": 1, "crop": 32, "lr": 0.002, "seed": 3, "threads": 1,
                       "widths": "2,4,4,4,4", "device": "auto"}
    first = load_checkpoint(tmp_path / "a.pt")
    assert first["meta"]["iterations"] == 2
    code, _, err = run_cli_in_process("-q", "train", "clean", "--config", tmp_path / "a.toml", "--out", tmp_path / "b.pt")
    assert code == 0, err
    again = load_checkpoint(tmp_path / "b.pt")
    assert again["meta"]["iterations"] == 2
    weights = first["state"]["model"]
    assert all(torch.equal(weights[key], again["state"]["model"][key]) for key in weights)
    assert tomllib.loads((tmp_path / "b.toml").read_text()) == written


@pytest.mark.parametrize("text, message", [
    ("nope = 1\n", "unknown key 'nope'; known: batch, crop"),
    ("out = 'x.pt'\n", "unknown key 'out'"),
    ("crop = 1.5\n", "crop = 1.5: expected a whole number"),
    ("crop = '32'\n", "crop = '32': expected a whole number"),
    ("iters = true\n", "iters = True: expected a whole number"),
    ("resume = 'yes'\n", "resume = 'yes': expected true or false"),
    ("lr = 'fast'\n", "lr = 'fast': expected a number"),
    ("crop = 8\n", "crop: 8 is not in the range x>=16"),
    ("crop = \n", "not a TOML file"),
    (None, "--config"),
])
def test_bad_config_is_one_line_exit_2_and_writes_nothing(tmp_path, run_cli_in_process, text, message):
    config = tmp_path / "c.toml"
    if text is not None:
        config.write_text(text)
    code, _, err = run_cli_in_process("train", "clean", "--config", config, "--out", tmp_path / "a.pt")
    assert code == 2 and message in err and str(config.name) in err, err
    assert len(err.strip().splitlines()) == 1
    assert sorted(path.name for path in tmp_path.iterdir()) == (["c.toml"] if text is not None else [])


def test_a_recipe_where_the_run_writes_its_configuration_is_kept_unless_resuming(tmp_path, run_cli_in_process):
    """`--config a.toml --out a.pt` would replace the user's recipe (comments and all) with the
    run's resolved values: refused; resuming from the configuration a run wrote is fine (and a
    --resume says whether it resumed or started a new run)."""
    recipe = tmp_path / "a.toml"
    recipe.write_text("# my notes\n" + TINY_CLEAN)
    code, _, err = run_cli_in_process("train", "clean", "--config", recipe, "--iters", "2", "--out", tmp_path / "a.pt")
    assert code == 2 and "writes its own configuration there" in err and len(err.strip().splitlines()) == 1
    assert recipe.read_text().startswith("# my notes") and sorted(p.name for p in tmp_path.iterdir()) == ["a.toml"]
    code, _, err = run_cli_in_process("train", "clean", "--config", recipe, "--iters", "2", "--out", tmp_path / "b.pt",
                                      "--resume")
    assert code == 0 and "b.pt does not exist yet: starting a new run" in err, err
    code, _, err = run_cli_in_process("train", "clean", "--config", tmp_path / "b.toml", "--iters", "3",
                                      "--out", tmp_path / "b.pt", "--resume")
    assert code == 0 and "resumed" in err and "b.pt at iteration 2" in err, err
    assert load_checkpoint(tmp_path / "b.pt")["meta"]["iterations"] == 3


@pytest.mark.parametrize("command", [["clean"], ["texture", "rock=porespy:blobs"], ["reconstruct", "ROCK.tif"],
                                     ["video", "balls", "--stage", "vqvae"]])
def test_every_train_command_reads_its_own_option_names(tmp_path, run_cli_in_process, command):
    config = tmp_path / "c.toml"
    config.write_text("iters = 2\nseed = 1\nsurely_not_an_option = 0\n")
    code, _, err = run_cli_in_process("train", *command, "--config", config, "--out", tmp_path / "a.pt")
    assert code == 2 and "unknown key 'surely_not_an_option'; known: " in err and "iters" in err, err
    assert not (tmp_path / "a.pt").exists() and not (tmp_path / "a.toml").exists()


def test_texture_file_takes_set_keys_and_set_on_the_command_line_wins(tmp_path, run_cli_in_process):
    volume = tmp_path / "blobs.tif"
    rng = np.random.default_rng(0)
    tifffile.imwrite(volume, (rng.random((24, 24, 24)) < 0.3).astype(np.uint8) * 255)
    config = tmp_path / "c.toml"
    config.write_text("iters = 1\ncrop = 24\neval_size = 16\nporosity-weight = 30\nlr_g = 1e-5\n")
    code, _, err = run_cli_in_process("-q", "train", "texture", f"blobs={volume}", "--config", config,
                                      "--set", "crop=16", "--out", tmp_path / "t.pt")
    assert code == 0, err
    settings = load_checkpoint(tmp_path / "t.pt")["meta"]["settings"]
    assert (settings["crop"], settings["eval_size"], settings["porosity_weight"], settings["lr_g"],
            settings["iters"]) == (16, 16, 30.0, 1e-5, 1)
    written = tomllib.loads((tmp_path / "t.toml").read_text())
    assert {key: written[key] for key in ("iters", "crop", "eval_size", "porosity_weight", "lr_g", "batch")} == {
        "iters": 1, "crop": 16, "eval_size": 16, "porosity_weight": 30.0, "lr_g": 1e-5, "batch": 2}
    config.write_text("crop = 16.5\n")
    code, _, err = run_cli_in_process("train", "texture", f"blobs={volume}", "--config", config,
                                      "--out", tmp_path / "u.pt")
    assert code == 2 and "crop = 16.5: expected a whole number" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "u.pt").exists()


def test_every_checkpoint_of_a_run_holds_its_resolved_configuration(tmp_path, run_cli_in_process):
    """meta['train_config'] of the checkpoint and of the best checkpoint is what <out>.toml holds,
    with the command's name; published, its paths are file names."""
    from rocksynth.models.checkpoints import published_meta

    config = tmp_path / "tiny.toml"
    config.write_text(TINY_CLEAN)
    init = tmp_path / "start.pt"
    code, _, err = run_cli_in_process("-q", "train", "clean", "--config", config, "--iters", "1", "--out", init)
    assert code == 0, err
    code, _, err = run_cli_in_process("-q", "train", "clean", "--config", config, "--iters", "2", "--init", init,
                                      "--out", tmp_path / "a.pt")
    assert code == 0, err
    expected = {"command": "train clean", "options": tomllib.loads((tmp_path / "a.toml").read_text())}
    assert expected["options"]["init"] == str(init)
    for name in ("a.pt", "a.best.pt"):
        meta = torch.load(tmp_path / name, weights_only=True)["meta"]
        assert meta["train_config"] == expected, name
    published = published_meta(meta)["train_config"]
    assert published["options"] == dict(expected["options"], init="start.pt")


def test_a_required_option_may_come_from_the_file(tmp_path, run_cli_in_process):
    """train video --stage is required: from the command line or the file, else one line, exit 2."""
    code, _, err = run_cli_in_process("train", "video", "balls", "--out", tmp_path / "a.pt")
    assert code == 2 and "missing option '--stage'" in err and len(err.strip().splitlines()) == 1, err
    config = tmp_path / "c.toml"
    config.write_text('stage = "vqvae"\nsize = 32\ndownsample = 2\nwidths = "4,4"\ncodes = 4\nbatch = 2\npool = 4\n'
                      'iters = 1\neval_every = 1\n')
    code, _, err = run_cli_in_process("-q", "train", "video", "balls", "--config", config, "--out", tmp_path / "a.pt")
    assert code == 0, err
    assert load_checkpoint(tmp_path / "a.pt")["meta"]["stage"] == "vqvae"
    assert tomllib.loads((tmp_path / "a.toml").read_text())["downsample"] == 2
