"""Shipped checkpoints are package data: found through importlib.resources in the installed package."""

from pathlib import Path

import pytest

from rocksynth.errors import BadInputError
from rocksynth.pretrained.registry import model_card, resolve_model, shipped_models

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
