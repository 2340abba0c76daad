"""Checkpoint helpers of training: the shipped copy of a checkpoint and warm starts.

The file format itself (`save_checkpoint`, `load_checkpoint`) lives beside the models in
`rocksynth.models.checkpoints`, so inference never imports training; it is re-exported here for
the trainers.
"""

import os

import torch

from rocksynth.errors import BadInputError
from rocksynth.models.checkpoints import FORMAT_VERSION, load_checkpoint, published_meta, save_checkpoint

__all__ = ["FORMAT_VERSION", "inference_copy", "load_checkpoint", "load_widened", "save_checkpoint"]


def inference_copy(source: "str | os.PathLike", target: "str | os.PathLike", modules: "list[str]") -> None:
    """The checkpoint `source` with only the named modules' weights (no critics, no optimiser
    states): what is shipped. Config and metadata are kept, with dataset paths reduced to file
    names (the training machine's folders are not shipped); `meta['shipped_from']` says so."""
    payload = load_checkpoint(source)
    missing = [m for m in modules if m not in payload["state"]]
    if missing:
        raise BadInputError(f"{source}: no module(s) {', '.join(missing)} in the checkpoint")
    meta = dict(published_meta(payload["meta"]), shipped_from="full training checkpoint (critics and optimiser states removed)")
    save_checkpoint(target, payload["kind"], payload["config"], {m: payload["state"][m] for m in modules}, meta)


def load_widened(module: torch.nn.Module, state: dict) -> "list[str]":
    """Load `state` into `module`, whose layers may take more input channels than the saved ones
    (new inputs appended at the end) or have new parameters: the extra input weights start at
    zero and new parameters keep their initial values, so the widened network computes exactly
    what the saved one did until training moves them. Returns the names of the widened or new
    parameters. Any other shape mismatch is an error."""
    own = module.state_dict()
    changed = []
    for name, target in own.items():
        if name not in state:
            changed.append(name)
            continue
        saved = state[name]
        if saved.shape == target.shape:
            target.copy_(saved)
        elif saved.dim() >= 2 and saved.shape[0] == target.shape[0] and saved.shape[2:] == target.shape[2:] \
                and saved.shape[1] < target.shape[1]:
            target.zero_()
            target[:, :saved.shape[1]] = saved
            changed.append(name)
        else:
            raise BadInputError(f"cannot start from the saved weights: {name} has shape "
                                f"{tuple(saved.shape)}, the new network {tuple(target.shape)}")
    unknown = set(state) - set(own)
    if unknown:
        raise BadInputError(f"the saved weights have parameters the new network lacks: {', '.join(sorted(unknown))}")
    module.load_state_dict(own)
    return changed
