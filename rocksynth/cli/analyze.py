"""`rocksynth analyze FILE`: porosity, S2, Minkowski functionals, pore sizes, network, permeability."""

from typing import Optional

import typer

from rocksynth.cli import options


def analyze(
    file: str = typer.Argument(..., help="Binary or grayscale 3D volume (or 2D image); '-' = stdin."),
    voxel_size: Optional[str] = options.VoxelSize,
    as_json: bool = options.Json,
    report_dir: Optional[str] = typer.Option(None, "--report", help="Write report.json, report.md and PNG figures into this new folder."),
    only: Optional[str] = typer.Option(None, "--only", help="Comma list of measures: porosity,correlation,minkowski,psd,network,permeability."),
    r_max: Optional[int] = options.positive_int(None, "--r-max", help="Largest lag of S2 in voxels (default: min(100, size/2))."),
    jobs: int = options.positive_int(2, "--jobs", help="Processes: with 2, image measures run beside the network extraction."),
    threshold: Optional[float] = options.Threshold,
    pore_value: str = options.PoreValue,
    crop: bool = options.Crop,
    raw_shape: Optional[str] = options.RawShape,
    raw_dtype: str = options.RawDtype,
) -> None:
    """Physical properties of a rock image: a table on the terminal, --json on stdout, --report DIR."""
    from rocksynth.io import load_binary_volume
    from rocksynth.io.paths import atomic_output_dir
    from rocksynth.progress import log, progress_bar
    from rocksynth.properties.report import analyze as analyze_image, parse_only, to_json, write_report

    mask, size = load_binary_volume(file, threshold=threshold, pore_value=pore_value, voxel_size=voxel_size,
                                    crop=crop, raw_shape=raw_shape, raw_dtype=raw_dtype, allow_2d=True)
    measures = parse_only(only, mask.ndim)
    if jobs < 1:
        from rocksynth.errors import BadInputError

        raise BadInputError("--jobs must be at least 1")
    with progress_bar(len(measures), "analyze", status=True) as bar:
        started = []

        def on_stage(name):
            if started:
                bar.advance(1)
            started.append(name)
            bar.advance(0, status=name)

        report = analyze_image(mask, size, measures, r_max=r_max, source=str(file), on_stage=on_stage,
                                jobs=jobs)
        # Stages run in the second process are not reported one by one: complete the bar here.
        bar.advance(len(measures) - max(len(started) - 1, 0), status="done")
    if report_dir:
        with atomic_output_dir(report_dir) as folder:
            written = write_report(report, mask, folder)
        log(f"wrote {', '.join(written)} to {report_dir}")
    for note in report["notes"]:
        log(f"note: {note}")
    if as_json:
        typer.echo(to_json(report))
    else:
        _print_table(report)


def _print_table(report: dict) -> None:
    from rich.table import Table

    from rocksynth.progress import stdout_console
    from rocksynth.properties.report import summary_rows

    title = f"{report['source']}  {'x'.join(map(str, report['shape']))}"
    table = Table("measure", "value", "unit", title=title)
    for row in summary_rows(report):
        table.add_row(*row)
    stdout_console().print(table)
