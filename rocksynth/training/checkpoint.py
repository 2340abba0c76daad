"""One checkpoint file per model: weights, constructor config and training metadata.

Saved with `torch.save` as plain dicts of tensors and JSON-like values, and loaded with
`torch.load(weights_only=True)`, so loading never unpickles arbitrary objects.
"""

import os
from pathlib import Path

import torch

from rocksynth.errors import BadInputError
from rocksynth.io.paths import atomic_output

FORMAT_VERSION = 1


def save_checkpoint(path: "str | os.PathLike", kind: str, config: dict, state: dict, meta: dict) -> None:
    """Write atomically. `kind` names the model family ('clean', 'reconstruct', ...);
    `state` maps module names to state dicts (e.g. {'generator': ..., 'optimizer_g': ...})."""
    payload = {"format": FORMAT_VERSION, "kind": kind, "config": config, "state": state, "meta": meta}
    with atomic_output(path, suffix=".pt") as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: "str | os.PathLike", kind: "str | None" = None) -> dict:
    """The checkpoint dict; a clear error if it is missing, corrupt or of another model kind."""
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"{path}: checkpoint not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt files
        raise BadInputError(f"{path}: not a readable rocksynth checkpoint ({type(exc).__name__})") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_VERSION:
        raise BadInputError(f"{path}: not a rocksynth checkpoint")
    if kind is not None and payload["kind"] != kind:
        raise BadInputError(f"{path}: checkpoint is a '{payload['kind']}' model, expected '{kind}'")
    return payload


def inference_copy(source: "str | os.PathLike", target: "str | os.PathLike", modules: "list[str]") -> None:
    """The checkpoint `source` with only the named modules' weights (no critics, no optimiser
    states): what is shipped. Config and metadata are kept; `meta['shipped_from']` says so."""
    payload = load_checkpoint(source)
    missing = [m for m in modules if m not in payload["state"]]
    if missing:
        raise BadInputError(f"{source}: no module(s) {', '.join(missing)} in the checkpoint")
    meta = dict(payload["meta"], shipped_from="full training checkpoint (critics and optimiser states removed)")
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
