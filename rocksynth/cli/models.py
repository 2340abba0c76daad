"""`rocksynth models`: list the shipped checkpoints, one entry per model; `rocksynth models NAME
--config`: the training configuration of one of them."""

import json
from typing import Optional

import typer


def models(
    name: Optional[str] = typer.Argument(None, metavar="[NAME]", help="A shipped model (with --config)."),
    config: bool = typer.Option(False, "--config", help="Print NAME's training configuration (TOML) on stdout: "
                                "rocksynth models NAME --config > my.toml, then rocksynth train KIND DATA --config my.toml --out my.pt."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable list on stdout."),
) -> None:
    """List shipped pretrained models (use them with --model NAME), or print one's training configuration."""
    if name is not None or config:
        _print_config(name, config)
        return
    from rich.table import Table

    from rocksynth.models.checkpoints import load_checkpoint, published_meta
    from rocksynth.pretrained.registry import short_names, shipped_models
    from rocksynth.progress import stderr_console, stdout_console

    rows = []
    for name, path in shipped_models().items():
        payload = load_checkpoint(path)
        meta = published_meta(payload["meta"])  # file names only, whatever the checkpoint holds
        data = meta.get("data", "")
        rows.append({"name": name, "kind": payload["kind"], "model_names": short_names(name),
                     "size_mb": round(path.stat().st_size / 1e6, 2),
                     "data": ", ".join(data) if isinstance(data, list) else data, "iterations": meta.get("iterations")})
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        stderr_console.print("no shipped models in this installation")
        return
    table = Table("name", "kind", "--model", "size (MB)", "trained on", "iterations")
    for row in rows:
        table.add_row(row["name"], row["kind"], ", ".join(row["model_names"]), f"{row['size_mb']:.2f}", row["data"],
                      str(row["iterations"]))
    stdout_console().print(table)


def _print_config(name: "str | None", config: bool) -> None:
    """Print the shipped model `name`'s TOML training configuration.

    Raises
    ------
    BadInputError
        Without NAME or --config, or for a name that is not a shipped model (naming them).
    """
    from rocksynth.errors import BadInputError
    from rocksynth.pretrained.registry import ALIASES, model_config, shipped_models

    if name is None or not config:
        raise BadInputError("rocksynth models NAME --config prints a shipped model's training configuration; "
                            "give both (rocksynth models lists the names)")
    text = model_config(name) if ALIASES.get(name, name) in shipped_models() else None
    if text is None:
        known = [model for model in shipped_models() if model_config(model) is not None]
        raise BadInputError(f"unknown model {name!r}; shipped models with a configuration: {', '.join(known) or 'none'}")
    typer.echo(text, nl=False)
