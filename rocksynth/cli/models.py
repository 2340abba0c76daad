"""`rocksynth models`: list the shipped checkpoints, one entry per model."""

import json

import typer


def models(as_json: bool = typer.Option(False, "--json", help="Machine-readable list on stdout.")) -> None:
    """List shipped pretrained models (use them with --model NAME)."""
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
