"""Checkpoints: weights, config and metadata round-trip; foreign or corrupt files are refused."""

import pytest
import torch

from rocksynth.errors import BadInputError
from rocksynth.training.checkpoint import load_checkpoint, save_checkpoint


def test_checkpoint_round_trip(tmp_path):
    layer = torch.nn.Linear(3, 2)
    save_checkpoint(tmp_path / "c.pt", "clean", {"width": 3}, {"model": layer.state_dict()}, {"iterations": 5})
    loaded = load_checkpoint(tmp_path / "c.pt", kind="clean")
    assert loaded["config"] == {"width": 3} and loaded["meta"]["iterations"] == 5
    assert torch.equal(loaded["state"]["model"]["weight"], layer.weight.detach())


def test_wrong_kind_and_corrupt_files_are_refused(tmp_path):
    save_checkpoint(tmp_path / "c.pt", "clean", {}, {}, {})
    with pytest.raises(BadInputError, match="'clean' model, expected 'video'"):
        load_checkpoint(tmp_path / "c.pt", kind="video")
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(BadInputError, match="not a readable"):
        load_checkpoint(tmp_path / "bad.pt")


def test_arbitrary_pickles_are_not_loaded(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("executed",))

    torch.save({"format": 1, "kind": "clean", "x": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(BadInputError):
        load_checkpoint(tmp_path / "evil.pt")


def test_inference_copy_keeps_only_the_named_modules(tmp_path):
    from rocksynth.training.checkpoint import inference_copy

    layer = torch.nn.Linear(3, 2)
    state = {"model": layer.state_dict(), "critic": layer.state_dict(), "opt": {"lr": 1.0}}
    save_checkpoint(tmp_path / "full.pt", "reconstruct", {"width": 3}, state, {"iterations": 7})
    inference_copy(tmp_path / "full.pt", tmp_path / "ship.pt", ["model"])
    shipped = load_checkpoint(tmp_path / "ship.pt", kind="reconstruct")
    assert list(shipped["state"]) == ["model"] and shipped["meta"]["iterations"] == 7
    assert "removed" in shipped["meta"]["shipped_from"]
    with pytest.raises(BadInputError, match="no module"):
        inference_copy(tmp_path / "full.pt", tmp_path / "x.pt", ["generator"])


def test_inference_copy_ships_dataset_file_names_not_paths(tmp_path):
    from rocksynth.training.checkpoint import inference_copy

    meta = {"data": "/data/rocks/berea_400.tif, moving", "sources": ["/data/rocks/berea_400.tif", "moving"]}
    save_checkpoint(tmp_path / "full.pt", "video", {}, {"vqvae": torch.nn.Linear(2, 2).state_dict()}, meta)
    inference_copy(tmp_path / "full.pt", tmp_path / "ship.pt", ["vqvae"])
    shipped = load_checkpoint(tmp_path / "ship.pt", kind="video")["meta"]
    assert shipped["data"] == "berea_400.tif, moving" and shipped["sources"] == ["berea_400.tif", "moving"]
