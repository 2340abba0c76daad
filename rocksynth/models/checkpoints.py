"""Checkpoint files and the models built from them, for inference and training alike.

A checkpoint is one file per model: weights, the constructor config and the training metadata,
saved with `torch.save` as plain dicts of tensors and JSON-like values and loaded with
`torch.load(weights_only=True)`, so loading never unpickles arbitrary objects.

Building a model from a checkpoint lives here, beside the models, so inference never imports
the training code.
"""

import os
from pathlib import Path, PurePosixPath, PureWindowsPath

import torch
from torch import nn

from rocksynth.errors import BadInputError
from rocksynth.io.paths import atomic_output
from rocksynth.models.frame_predictor import from_checkpoint as frame_predictor
from rocksynth.models.latent_transformer import LatentVideoTransformer
from rocksynth.models.slice2vol import Slice2Vol
from rocksynth.models.texture import TextureEncoder, TextureGenerator
from rocksynth.models.unet import UNet
from rocksynth.models.vqvae import VQVAE

FORMAT_VERSION = 1


def save_checkpoint(path: "str | os.PathLike", kind: str, config: dict, state: dict, meta: dict) -> None:
    """Write a checkpoint atomically.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write.
    kind : str
        The model family ('clean', 'reconstruct', 'texture', 'video').
    config : dict
        The constructor arguments of the model(s).
    state : dict
        Module name -> state dict (e.g. ``{'generator': ..., 'optimizer_g': ...}``).
    meta : dict
        Training metadata (data, iterations, wall time, metrics).
    """
    payload = {"format": FORMAT_VERSION, "kind": kind, "config": config, "state": state, "meta": meta}
    with atomic_output(path, suffix=".pt") as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: "str | os.PathLike", kind: "str | None" = None) -> dict:
    """The checkpoint dict of `path`.

    Raises
    ------
    BadInputError
        If the file is missing, corrupt, not a rocksynth checkpoint or of another `kind`.
    """
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


# --- dataset names in the metadata ----------------------------------------------------------------
def file_name(source: str) -> str:
    """The last component of a path ('/data/berea_400.tif' -> 'berea_400.tif'); other text
    (procedural set names such as 'moving') unchanged. Both separators count, so a checkpoint
    trained on Windows reads the same."""
    if "/" not in source and "\\" not in source:
        return source
    return PureWindowsPath(PurePosixPath(source).name).name or source


def published_meta(meta: dict) -> dict:
    """`meta` with every dataset path reduced to its file name: the training machine's folders
    mean nothing to a user and are not to be shown or shipped.

    Reduced: ``data`` (a list, or a comma-separated string), ``sources``, each texture's
    ``source``, the ``checkpoint`` a warm start (``init``) came from, and every text containing a
    path separator among the options of
    ``train_config`` (the training command's configuration: its data and checkpoint options are
    paths). Other values are kept as they are.
    """
    meta = dict(meta)
    if isinstance(meta.get("data"), str):
        meta["data"] = ", ".join(file_name(part.strip()) for part in meta["data"].split(","))
    elif isinstance(meta.get("data"), list):
        meta["data"] = [file_name(str(part)) for part in meta["data"]]
    if isinstance(meta.get("sources"), list):
        meta["sources"] = [file_name(str(part)) for part in meta["sources"]]
    if isinstance(meta.get("textures"), list):
        meta["textures"] = [dict(t, source=file_name(str(t.get("source", "")))) for t in meta["textures"]]
    if isinstance(meta.get("init"), dict) and isinstance(meta["init"].get("checkpoint"), str):
        meta["init"] = dict(meta["init"], checkpoint=file_name(meta["init"]["checkpoint"]))
    if isinstance(meta.get("train_config"), dict):
        meta["train_config"] = _published_config(meta["train_config"])
    return meta


def _published_config(config: dict) -> dict:
    """A ``train_config`` with each path among its option values (texts, or in lists) reduced to
    its file name; `file_name` leaves other text (e.g. '8,16,32') as it is."""
    def reduce(value):
        if isinstance(value, str):
            return file_name(value)
        if isinstance(value, list):
            return [reduce(item) for item in value]
        return value

    options = config.get("options")
    if not isinstance(options, dict):
        return dict(config)
    return dict(config, options={key: reduce(value) for key, value in options.items()})


# --- models from their config ---------------------------------------------------------------------
# Generator options of training experiments that were never shipped and have been removed
# (docs/notes/2026-12-06-removed-training-experiments.md), with their off values. Checkpoints
# written before the removal save them at these values, which change nothing, so they still load.
REMOVED_GENERATOR_OPTIONS = {"depth": [0, 0], "full_res": 0, "out_fields": 1, "refine": 0}


def _generator_config(config: dict) -> dict:
    """A generator config without the removed experiments' keys (at their off values) and with
    `fine_noise` cut to its two maps when a third (full-resolution) entry is 0.

    Raises
    ------
    BadInputError
        If the checkpoint uses one of the removed experiments.
    """
    config = dict(config)
    for key, off in REMOVED_GENERATOR_OPTIONS.items():
        value = config.pop(key, off)
        if (list(value) if isinstance(value, (list, tuple)) else value) != off:
            raise BadInputError(f"this texture checkpoint's generator uses {key} = {value}, an experiment "
                                f"removed from rocksynth; it cannot be loaded by this version")
    fine_noise = list(config.get("fine_noise", (2, 1)))
    if len(fine_noise) == 3 and fine_noise[2] == 0:
        config["fine_noise"] = fine_noise[:2]
    elif len(fine_noise) == 3:
        raise BadInputError(f"this texture checkpoint's generator uses full-resolution noise maps "
                            f"(fine_noise = {fine_noise}), an experiment removed from rocksynth")
    return config


def texture_models(config: dict) -> "tuple[TextureGenerator, TextureEncoder]":
    """The multi-texture generator and its exemplar encoder from a 'texture' checkpoint's config
    (``{'generator': {...}, 'encoder': {...}}``), with fresh weights.

    Raises
    ------
    BadInputError
        If the config uses a removed experiment (`REMOVED_GENERATOR_OPTIONS`).
    """
    generator = TextureGenerator(**_generator_config(config.get("generator", {})))
    encoder = TextureEncoder(code_channels=generator.code_channels, **config.get("encoder", {}))
    return generator, encoder


def video_models(payload: dict) -> "tuple[VQVAE, LatentVideoTransformer | None]":
    """The VQ-VAE and the latent transformer (None before its stage is trained) of a 'video'
    checkpoint dict, with its weights, in eval mode."""
    vqvae = VQVAE(**payload["config"]["vqvae"])
    vqvae.load_state_dict(payload["state"]["vqvae"])
    vqvae.eval()
    transformer = None
    if payload["config"].get("transformer"):
        transformer = LatentVideoTransformer(**payload["config"]["transformer"])
        transformer.load_state_dict(payload["state"]["transformer"])
        transformer.eval()
    return vqvae, transformer


def inference_models(payload: dict) -> "dict[str, nn.Module]":
    """Every network a checkpoint dict holds for inference, built from its saved config, with its
    weights, in eval mode: name -> module.

    Raises
    ------
    BadInputError
        For a kind of checkpoint this version of rocksynth does not know.
    """
    kind, config, state = payload["kind"], payload["config"], payload["state"]
    if kind == "reconstruct":
        models = {"model": Slice2Vol(**config)}
    elif kind == "clean":
        models = {"model": UNet(**config)}
    elif kind == "texture":
        models = dict(zip(("generator", "encoder"), texture_models(config)))
    elif kind == "video" and payload["meta"].get("stage") == "predictor":
        return {"predictor": frame_predictor(payload)}
    elif kind == "video":
        vqvae, transformer = video_models(payload)
        return {"vqvae": vqvae} | ({"transformer": transformer} if transformer is not None else {})
    else:
        raise BadInputError(f"unknown kind of checkpoint {kind!r}")
    for name, module in models.items():
        module.load_state_dict(state[name])
        module.eval()
    return models
