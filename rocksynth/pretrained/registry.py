"""Find shipped checkpoints by name or alias, or accept a user's checkpoint path."""

import importlib.resources
from pathlib import Path

from rocksynth.errors import BadInputError

# Other names a shipped model answers to. The reconstruct model is one model trained on Berea and
# Ketton: it ships once, and `--model berea` / `--model ketton` both select it.
ALIASES = {"reconstruct_berea": "reconstruct_rocks", "reconstruct_ketton": "reconstruct_rocks"}


def _package_files():
    return importlib.resources.files("rocksynth.pretrained")


def shipped_models() -> "dict[str, Path]":
    """Name -> path of every shipped checkpoint (`rocksynth/pretrained/<name>.pt`), one per model."""
    models = {}
    for entry in _package_files().iterdir():
        if entry.name.endswith(".pt"):
            models[entry.name[:-3]] = Path(str(entry))
    return dict(sorted(models.items()))


def aliases(name: str) -> "list[str]":
    """The other full names of the shipped model `name` (e.g. 'reconstruct_berea'), sorted."""
    return sorted(alias for alias, target in ALIASES.items() if target == name)


def short_names(name: str) -> "list[str]":
    """What `--model` accepts for the shipped model `name`: its name and its aliases without the
    kind prefix ('reconstruct_rocks' -> ['rocks', 'berea', 'ketton'])."""
    kind = name.split("_", 1)[0]
    return [full[len(kind) + 1:] if full.startswith(kind + "_") else full for full in [name, *aliases(name)]]


def model_card(name: str) -> "str | None":
    """The model card (Markdown) of a shipped model given by name or alias; None if it has none."""
    card = _package_files() / f"{ALIASES.get(name, name)}.md"
    return card.read_text(encoding="utf-8") if card.is_file() else None


def model_config(name: str) -> "str | None":
    """The training configuration (TOML, `rocksynth train KIND DATA --config FILE` takes it) of the
    last stage of a shipped model given by name or alias; None if it has none."""
    config = _package_files() / f"{ALIASES.get(name, name)}.toml"
    return config.read_text(encoding="utf-8") if config.is_file() else None


def resolve_model(name_or_path: str, kind: str) -> Path:
    """Path of a checkpoint given a shipped name, an alias or a file path.

    Shipped checkpoints are named `<kind>_<name>.pt` (e.g. `reconstruct_rocks.pt`), so
    `resolve_model('rocks', 'reconstruct')` finds that file, and so does its alias `'berea'`;
    full names work too.

    Raises
    ------
    BadInputError
        For an unknown name (naming the shipped ones) or a checkpoint path that is not a file.
    """
    models = shipped_models()
    for candidate in (f"{kind}_{name_or_path}", name_or_path):
        candidate = ALIASES.get(candidate, candidate)
        if candidate in models:
            return models[candidate]
    path = Path(name_or_path)
    if path.suffix == ".pt" or path.exists():
        if not path.is_file():
            raise BadInputError(f"{path}: checkpoint not found")
        return path
    names = [short for name in models if name.startswith(kind + "_") for short in short_names(name)]
    raise BadInputError(f"unknown model {name_or_path!r}; shipped {kind} models: {', '.join(names) or 'none'}")
