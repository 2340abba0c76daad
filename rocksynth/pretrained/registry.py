"""Find shipped checkpoints by name, or accept a user's checkpoint path."""

import importlib.resources
from pathlib import Path

from rocksynth.errors import BadInputError


def _package_files():
    return importlib.resources.files("rocksynth.pretrained")


def shipped_models() -> "dict[str, Path]":
    """Name -> path of every shipped checkpoint (`rocksynth/pretrained/<name>.pt`)."""
    models = {}
    for entry in _package_files().iterdir():
        if entry.name.endswith(".pt"):
            models[entry.name[:-3]] = Path(str(entry))
    return dict(sorted(models.items()))


def model_card(name: str) -> "str | None":
    card = _package_files() / f"{name}.md"
    return card.read_text(encoding="utf-8") if card.is_file() else None


def resolve_model(name_or_path: str, kind: str) -> Path:
    """Path of a checkpoint given a shipped name or a file path.

    Shipped checkpoints are named `<kind>_<name>.pt` (e.g. `reconstruct_berea.pt`), so
    `resolve_model('berea', 'reconstruct')` finds that file; a full name works too."""
    models = shipped_models()
    for candidate in (f"{kind}_{name_or_path}", name_or_path):
        if candidate in models:
            return models[candidate]
    path = Path(name_or_path)
    if path.suffix == ".pt" or path.exists():
        if not path.is_file():
            raise BadInputError(f"{path}: checkpoint not found")
        return path
    names = [name[len(kind) + 1:] for name in models if name.startswith(kind + "_")]
    raise BadInputError(f"unknown model {name_or_path!r}; shipped {kind} models: {', '.join(names) or 'none'}")
