"""`rocksynth models`: list the shipped checkpoints."""

import json

import typer


def models(as_json: bool = typer.Option(False, "--json", help="Machine-readable list on stdout.")) -> None:
    """List shipped pretrained models (use them with --model NAME)."""
    from rich.table import Table

    from rocksynth.pretrained.registry import shipped_models
    from rocksynth.progress import stderr_console, stdout_console
    from rocksynth.training.checkpoint import load_checkpoint

    rows = []
    for name, path in shipped_models().items():
        meta = load_checkpoint(path)["meta"]
        rows.append({"name": name, "kind": name.split("_", 1)[0], "size_mb": round(path.stat().st_size / 1e6, 2),
                     "data": meta.get("data", ""), "iterations": meta.get("iterations")})
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("name", "kind", "size (MB)", "trained on", "iterations")
    for row in rows:
        table.add_row(row["name"], row["kind"], f"{row['size_mb']:.2f}", str(row["data"]), str(row["iterations"]))
    if not rows:
        stderr_console.print("no shipped models in this installation")
        return
    stdout_console().print(table)
