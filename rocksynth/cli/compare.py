"""`rocksynth compare REAL... --vs GENERATED...`: how far apart two sets of rock samples are."""

from typing import List, Optional

import typer

from rocksynth.cli import options


def compare(
    real: List[str] = typer.Argument(..., help="Reference samples: volume files or folders of volume files."),
    generated: List[str] = typer.Option(..., "--vs", help="Samples to compare with (repeat --vs, or give a folder)."),
    crops: Optional[int] = options.positive_int(None, "--crops", help="Cut N random crops from every input volume."),
    crop_size: int = options.number(64, "--crop-size", min=8, help="Side of the random crops, in voxels."),
    seed: int = options.Seed,
    voxel_size: Optional[str] = options.VoxelSize,
    no_permeability: bool = typer.Option(False, "--no-permeability", help="Skip the (slowest) permeability."),
    jobs: int = options.positive_int(2, "--jobs", help="Processes that measure samples in parallel (or, with "
                                     "--memory-limit, local dask worker processes)."),
    memory_limit: Optional[str] = options.MemoryLimit,
    scheduler: Optional[str] = options.Scheduler,
    bootstrap: int = options.positive_int(1000, "--bootstrap", help="Bootstrap resamples for the KL standard deviation."),
    as_json: bool = options.Json,
    threshold: Optional[float] = options.Threshold,
    pore_value: str = options.PoreValue,
) -> None:
    """How far apart two sample sets are, per property: KL between kernel density estimates (with
    its bootstrap std and the real-vs-real floor), the 50-bin KL of the papers, and the
    Wasserstein distance."""
    import json

    from rocksynth.engine import dask_engine, parse_bytes
    from rocksynth.io.samples import collect_samples
    from rocksynth.progress import log, progress_bar, warn
    from rocksynth.properties.compare import compare_samples

    limit = parse_bytes(memory_limit) if memory_limit else None
    load = dict(threshold=threshold, pore_value=pore_value, voxel_size=voxel_size)
    real_samples = collect_samples(real, crops, crop_size, seed, **load)
    generated_samples = collect_samples(generated, crops, crop_size, seed + 1, **load)
    with progress_bar(len(real_samples) + len(generated_samples), "measuring samples") as bar:
        with dask_engine(jobs, limit, scheduler, lambda done, total: bar.update(completed=done)) as engine:
            log(f"measuring on {engine.description if engine.distributed else f'{jobs} processes'}")
            result = compare_samples(real_samples, generated_samples, with_permeability=not no_permeability,
                                     jobs=jobs, resamples=bootstrap, seed=seed, distributed=engine.distributed)
    if result["warning"]:
        warn(result["warning"])
    for note in result["notes"]:
        log(f"note: {note}")
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        _print_table(result)


def _print_table(result: dict) -> None:
    from rich.table import Table

    from rocksynth.progress import stdout_console

    table = Table("property", "unit", "real mean ± std", "generated mean ± std", "KL (KDE) ± std", "real-vs-real",
                  f"KL ({result['bins']} bins)", "real-vs-real", "Wasserstein", "real-vs-real",
                  title=f"{result['real_samples']} real vs {result['generated_samples']} generated samples")
    for name, row in result["properties"].items():
        table.add_row(name, row["unit"], f"{row['real_mean']:.4g} ± {row['real_std']:.2g}",
                      f"{row['generated_mean']:.4g} ± {row['generated_std']:.2g}",
                      f"{row['kl']:.3f} ± {row['kl_bootstrap_std']:.2f}", f"{row['kl_floor']:.3f}",
                      f"{row['kl_bins']:.3f}", f"{row['kl_bins_floor']:.3f}",
                      f"{row['wasserstein']:.4g}", f"{row['wasserstein_floor']:.4g}")
    stdout_console().print(table)
