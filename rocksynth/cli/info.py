"""`rocksynth info FILE...`: what each file holds."""

import json
from typing import List, Optional

import typer

from rocksynth.cli import options


def info(
    files: List[str] = typer.Argument(..., help="Volumes, images, videos or slice folders ('-' = stdin)."),
    raw_shape: Optional[str] = options.RawShape,
    raw_dtype: str = options.RawDtype,
    stats: Optional[bool] = typer.Option(None, "--stats/--no-stats", help="Read every voxel for the value range and porosity (default: only for volumes up to 256 MiB; larger ones are described from their metadata alone)."),
    as_json: bool = options.Json,
) -> None:
    """Kind, shape, dtype, value range, voxel size, porosity (if binary), chunks (lazily opened volumes) and size on disk."""
    from rocksynth.io.describe import describe_file

    reports = [describe_file(path, raw_shape, raw_dtype, stats=stats) for path in files]
    if as_json:
        typer.echo(json.dumps(reports if len(reports) > 1 else reports[0], indent=2))
        return
    _print_table(reports)


def _print_table(reports: list) -> None:
    from rich.table import Table

    from rocksynth.progress import stdout_console
    from rocksynth.units import format_length

    chunked = any(report.get("chunks") for report in reports)
    table = Table("file", "kind", "shape", "dtype", "range", "voxel size", "porosity",
                  *(["chunks"] if chunked else []), "on disk")
    for report in reports:
        voxel = format_length(report["voxel_size_m"]) if report.get("voxel_size_m") else "-"
        porosity = f"{report['porosity']:.4f}" if report.get("binary") else "-"
        kind = f"{report['kind']} ({report['format']})" if report.get("format") else report["kind"]
        value_range = "not read" if report["min"] is None else f"{report['min']:g} .. {report['max']:g}"
        chunks = ["x".join(map(str, report["chunks"])) if report.get("chunks") else "-"] if chunked else []
        table.add_row(report["path"], kind, "x".join(map(str, report["shape"])), report["dtype"],
                      value_range, voxel, porosity, *chunks, f"{report['size_on_disk_bytes'] / 1e6:.2f} MB")
    stdout_console().print(table)
