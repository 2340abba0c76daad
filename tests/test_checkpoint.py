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
