"""Shipped checkpoints are package data: found through importlib.resources in the installed package."""

import hashlib
import json
import re
from pathlib import Path

import pytest
import torch

from rocksynth.errors import BadInputError
from rocksynth.models.checkpoints import load_checkpoint, published_meta
from rocksynth.pretrained.registry import model_card, resolve_model, short_names, shipped_models

SOURCE_PRETRAINED = Path(__file__).resolve().parents[1] / "rocksynth" / "pretrained"


def test_every_checkpoint_in_the_repository_is_installed_with_its_card():
    in_repository = {path.stem for path in SOURCE_PRETRAINED.glob("*.pt")}
    installed = shipped_models()
    assert set(installed) == in_repository
    for name, path in installed.items():
        assert path.is_file() and path.stat().st_size > 0
        assert model_card(name), f"{name} has no model card"


def test_unknown_model_names_the_shipped_ones():
    with pytest.raises(BadInputError, match="unknown model 'nope'"):
        resolve_model("nope", "reconstruct")


def test_a_checkpoint_path_is_accepted_and_a_missing_one_refused(tmp_path):
    (tmp_path / "mine.pt").write_bytes(b"x")
    assert resolve_model(str(tmp_path / "mine.pt"), "clean") == tmp_path / "mine.pt"
    with pytest.raises(BadInputError, match="not found"):
        resolve_model(str(tmp_path / "missing.pt"), "clean")


def _tensors(state: dict) -> "list[torch.Tensor]":
    return [t for module in state.values() if isinstance(module, dict) for t in module.values() if torch.is_tensor(t)]


def test_each_model_ships_once():
    """No two shipped checkpoints hold the same weights (a model for several data ships once, with aliases)."""
    weights = {}
    for name, path in shipped_models().items():
        tensors = _tensors(load_checkpoint(path)["state"])
        digest = hashlib.sha256(b"".join(t.numpy().tobytes() for t in tensors)).hexdigest()
        assert digest not in weights, f"{name} has the same weights as {weights.get(digest)}"
        weights[digest] = name


def test_aliases_select_the_one_reconstruct_model():
    rocks = resolve_model("rocks", "reconstruct")
    assert resolve_model("berea", "reconstruct") == resolve_model("ketton", "reconstruct") == rocks
    assert resolve_model("reconstruct_berea", "reconstruct") == rocks
    assert model_card("reconstruct_ketton") == model_card("reconstruct_rocks")
    assert short_names("reconstruct_rocks") == ["rocks", "berea", "ketton"]
    with pytest.raises(BadInputError, match="shipped reconstruct models: rocks, berea, ketton"):
        resolve_model("sandstone", "reconstruct")


def test_dataset_paths_are_published_as_file_names():
    meta = {"data": "/data/rocks/berea_400.tif, moving", "sources": ["/data/rocks/berea_400.tif", "moving"],
            "textures": [{"name": "k", "source": "..\\data\\ketton_256.tif"}, {"name": "s", "source": "porespy {'r': 8}"}],
            "iterations": 3}
    assert published_meta(meta) == {"data": "berea_400.tif, moving", "sources": ["berea_400.tif", "moving"],
                                    "textures": [{"name": "k", "source": "ketton_256.tif"},
                                                 {"name": "s", "source": "porespy {'r': 8}"}], "iterations": 3}
    assert published_meta({"data": ["a/b.tif", "c.tif"]})["data"] == ["b.tif", "c.tif"]
    warm = {"init": {"checkpoint": "/runs/recon/rocks_v2.best.pt", "iteration": 8600}}
    assert published_meta(warm)["init"] == {"checkpoint": "rocks_v2.best.pt", "iteration": 8600}
    assert published_meta({"init": {"checkpoint": "berea", "iteration": 1}})["init"]["checkpoint"] == "berea"


def test_shipped_checkpoints_hold_no_optimiser_states():
    """Optimiser states serve only a resumed run, and a warm start (--init) makes fresh ones."""
    for name, path in shipped_models().items():
        state = load_checkpoint(path)["state"]
        assert not [key for key in state if key.startswith("opt")], f"{name}: optimiser states shipped"


def test_shipped_metadata_holds_no_paths():
    for name, path in shipped_models().items():
        meta = load_checkpoint(path)["meta"]
        assert published_meta(meta) == meta, f"{name}: dataset paths in the checkpoint metadata"


def test_models_lists_one_entry_per_model_without_paths(run_cli_in_process):
    code, out, err = run_cli_in_process("models", "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert [row["name"] for row in rows] == list(shipped_models())
    assert next(row for row in rows if row["name"] == "reconstruct_rocks")["model_names"] == ["rocks", "berea", "ketton"]
    assert not re.search(r"(^|[\s\"'])(/|\.\./|[A-Za-z]:\\)", out.decode()), "a path in the listing"
    code, table, err = run_cli_in_process("models")
    assert code == 0 and b"reconstruct_rocks" in table and b"/" not in table, err
