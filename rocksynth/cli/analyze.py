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
    rev: bool = typer.Option(False, "--rev", help="Also porosity, S_V, Euler density and correlation length over growing "
                             "and disjoint subvolumes: is the scan big enough? (not the network)"),
    rev_tolerance: float = options.number(0.05, "--rev-tolerance", min=0, max=1, min_open=True,
                                          help="--rev: relative sd of the subvolumes below which a size is representative."),
    jobs: int = options.Jobs,
    memory_limit: Optional[str] = options.MemoryLimit,
    scheduler: Optional[str] = options.Scheduler,
    chunks: Optional[str] = options.Chunks,
    network: str = typer.Option("auto", "--network", help="Network extraction: 'whole' volume in memory (PoreSpy "
                                "snow2), 'blocks' (memory bounded by the block), or 'auto' (whole when it fits)."),
    threshold: Optional[float] = options.Threshold,
    pore_value: str = options.PoreValue,
    crop: bool = options.Crop,
    raw_shape: Optional[str] = options.RawShape,
    raw_dtype: str = options.RawDtype,
) -> None:
    """Physical properties of a rock image: a table on the terminal, --json on stdout, --report DIR.

    3D volumes in TIFF, Zarr / OME-Zarr, .npy and .raw files are read chunk by chunk, so they
    need not fit in memory (except for the pore network, extracted in memory)."""
    from rocksynth.engine import dask_engine, parse_bytes
    from rocksynth.io.paths import atomic_output_dir, check_output
    from rocksynth.progress import log, progress_bar
    from rocksynth.properties.report import (analyze as analyze_image, check_network_choice, parse_only, to_json,
                                             write_report)

    limit = parse_bytes(memory_limit) if memory_limit else None
    check_network_choice(network)  # before the volume is read
    if report_dir:
        check_output(report_dir.rstrip("/") + "/", what="--report")  # before any work
    mask, size = _load(file, threshold, pore_value, voxel_size, crop, raw_shape, raw_dtype, chunks)
    measures = parse_only(only, mask.ndim)
    if rev:
        from rocksynth.properties.rev import rev_sizes

        rev_sizes(mask.shape)  # a volume too small for --rev is refused before any work
    with progress_bar(None, "analyze", status=True) as bar:
        state = {"stage": ""}

        def on_stage(name):
            state["stage"] = name
            bar.update(status=name, completed=0, total=None)

        def on_task(done, total):
            bar.update(completed=done, total=total, status=state["stage"])

        with dask_engine(jobs, limit, scheduler, on_task) as engine:
            log(f"measuring on {engine.description}")
            report = analyze_image(mask, size, measures, r_max=r_max, source=str(file), on_stage=on_stage,
                                   jobs=jobs, chunks=_chunk_shape(chunks, mask.shape),
                                   distributed=engine.distributed, network=network, memory_limit=limit)
            if rev:
                report["rev"] = _rev(mask, size, rev_tolerance, report, on_stage)
            bar.update(status="done")
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
        if rev:
            _print_rev_table(report)


def _load(file, threshold, pore_value, voxel_size, crop, raw_shape, raw_dtype, chunks):
    """A lazy mask for volumes that can be read chunk by chunk, else the image in memory."""
    from rocksynth.io import load_binary_lazy, load_binary_volume
    from rocksynth.io.lazy import is_lazy_volume

    if is_lazy_volume(file):
        return load_binary_lazy(file, threshold=threshold, pore_value=pore_value, voxel_size=voxel_size, crop=crop,
                                raw_shape=raw_shape, raw_dtype=raw_dtype, chunks=chunks)
    return load_binary_volume(file, threshold=threshold, pore_value=pore_value, voxel_size=voxel_size, crop=crop,
                              raw_shape=raw_shape, raw_dtype=raw_dtype, allow_2d=True)


def _chunk_shape(chunks: "str | None", shape) -> "tuple[int, ...] | None":
    from rocksynth.io.lazy import parse_chunks

    if chunks is None:
        return None
    if len(shape) != 3:
        from rocksynth.errors import BadInputError

        raise BadInputError("--chunks applies to 3D volumes; this image is 2D")
    return parse_chunks(chunks, shape)


def _print_table(report: dict) -> None:
    from rich.table import Table

    from rocksynth.progress import stdout_console
    from rocksynth.properties.report import summary_rows

    title = f"{report['source']}  {'x'.join(map(str, report['shape']))}"
    table = Table("measure", "value", "unit", title=title)
    for row in summary_rows(report):
        table.add_row(*row)
    stdout_console().print(table)


def _rev(mask, voxel_size, tolerance: float, report: dict, on_stage) -> dict:
    """The REV analysis of the mask, timed as a stage of the report."""
    from rocksynth.properties.report import StageMeter
    from rocksynth.properties.rev import rev_analysis

    meter = StageMeter()
    with meter.stage("rev"):
        result = rev_analysis(mask, voxel_size, tolerance=tolerance, on_size=lambda L: on_stage(f"rev L = {L}"))
    report["timings"].update(meter.stages)
    return result


def _print_rev_table(report: dict) -> None:
    """Grid mean ± sd (n cubes) per size, with the centred cube's porosity, and the REV size per property."""
    from rich.table import Table

    from rocksynth.progress import stdout_console

    from rocksynth.properties.figures import REV_LABELS

    rev = report["rev"]
    props = rev["properties"]
    table = Table("L (voxels)", "cubes", "porosity, centred cube",
                  *[f"{REV_LABELS[name]} ({p['unit']})" for name, p in props.items()],
                  title="REV: mean ± sd over disjoint L-cubes")
    for i, size in enumerate(rev["sizes_voxels"]):
        n = rev["properties"]["porosity"]["n"][i]
        cells = [_mean_sd(p["mean"][i], p["sd"][i]) for p in props.values()]
        table.add_row(str(size), f"{n} of {rev['grid_cubes_total'][i]}", f"{props['porosity']['growing'][i]:.4f}", *cells)
    console = stdout_console()
    console.print(table)
    for name, size in rev["rev_size_voxels"].items():
        metres = rev["rev_size_m"][name]
        found = "not reached within the scan" if size is None else f"from L = {size} voxels" + (
            f" ({metres * 1e3:.3g} mm)" if metres else "")
        console.print(f"{REV_LABELS[name]}: relative sd < {100 * rev['tolerance']:g} % {found}")


def _mean_sd(mean, sd) -> str:
    if mean is None:
        return "-"
    return f"{mean:.4g}" if sd is None else f"{mean:.4g} ± {sd:.2g}"
