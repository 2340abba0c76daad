"""`rocksynth clean` (scanned drawing -> clean binary drawing) and `rocksynth train clean`."""

from pathlib import Path
from typing import Optional

import typer

from rocksynth.cli import options
from rocksynth.cli.config import configurable


def clean(
    scan: str = typer.Argument(..., metavar="SCAN", help="Scanned drawing (PNG/JPEG/TIFF; gray, RGB or RGBA; 8/16-bit) or a folder of them; '-' = stdin."),
    out: str = typer.Option(..., "--out", "-o", help="Output image (.png/.tif), or a folder when SCAN is a folder; '-' = PNG on stdout."),
    model: str = typer.Option("drawings", "--model", "-m", help="Shipped model name (drawings) or a checkpoint path."),
    threshold: float = options.number(0.5, "--threshold", min=0, max=1, min_open=True, max_open=True, help="Ink probability above which a pixel is ink."),
    soft: bool = typer.Option(False, "--soft", help="Write the ink probability as gray (0 = surely ink) instead of black/white."),
    tile: int = options.number(1024, "--tile", min=64, help="Tile side in pixels, a multiple of 16 (memory grows with it, not with the image)."),
    overlap: int = options.number(224, "--overlap", min=0, help="Overlap of neighbouring tiles: at 224 or more the tiled result equals cleaning the whole image at once; less is faster, still blended without seams."),
    tta: int = options.number(8, "--tta", min=1, max=8, help="Test-time augmentation: average the ink probability over 1, 2, 4 or 8 flipped/transposed views of each tile (8 is the most accurate; time grows with it, memory does not)."),
    threads: int = options.threads_option(),
    device: str = options.Device,
    json_out: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout."),
) -> None:
    """Clean a scanned technical drawing: white background, black ink, short line gaps bridged (U-Net)."""
    import json

    from rocksynth.errors import BadInputError
    from rocksynth.pipelines.clean import clean_paths

    if json_out and out == "-":
        raise BadInputError("--json and --out - both use stdout; pick one")
    summary = clean_paths(scan, out, model=model, threshold=threshold, soft=soft, tile=tile, overlap=overlap,
                          threads=threads, tta=tta, device=options.parse_device(device))
    if json_out:
        typer.echo(json.dumps(summary, indent=2))


@configurable()
def train_clean(
    out: str = typer.Option(..., "--out", "-o", help="Checkpoint to write (.pt); the learning curve goes to <out>.csv."),
    iters: int = options.positive_int(3000, "--iters", help="Total iterations (the learning-rate schedule spans them)."),
    pairs: Optional[Path] = typer.Option(None, "--pairs", help="Folder with scans/ and clean/ subfolders of same-named images (default: procedural drawings)."),
    batch: int = options.positive_int(8, "--batch", help="Crops per iteration."),
    crop: int = options.number(128, "--crop", min=16, help="Crop side in pixels (multiple of 16)."),
    lr: float = options.learning_rate(2e-3, "--lr", help="Adam learning rate (cosine decay to 5 %)."),
    seed: int = options.seed_option("Random seed (selects the procedural training seeds)."),
    resume: bool = typer.Option(False, "--resume", help="Continue from --out if it exists."),
    threads: int = options.threads_option(),
    widths: Optional[str] = typer.Option(None, "--widths", help="U-Net channels per level, e.g. 16,32,64,96,128 (default 8,16,32,48,64, the network the shipped one was grown from; with --init: that checkpoint's, or wider); ignored with --resume."),
    init: Optional[str] = typer.Option(None, "--init", help="Start a new run from this clean checkpoint's (or shipped model's, e.g. drawings) weights, widened to --widths where those are wider (same output at the start), with a learning-rate ramp; ignored with --resume once --out exists."),
    time_budget: Optional[str] = options.time_budget_option(),
    device: str = options.TrainDevice,
    config: Optional[Path] = options.config_option(),
) -> None:
    """Train the drawing-cleaning U-Net (resumable; CSV learning curve with held-out IoU and PSNR, and its plot)."""
    from rocksynth.errors import BadInputError
    from rocksynth.training.outputs import checkpoint_path, clean_plan, register_pair_images

    if pairs is not None and not pairs.is_dir():
        raise BadInputError(f"{pairs}: --pairs must be a folder with scans/ and clean/ subfolders")
    if crop % 16:
        raise BadInputError(f"--crop {crop}: must be a multiple of 16")
    width_list = _parse_widths(widths) if widths else None
    budget = options.parse_duration(time_budget)
    place = options.parse_device(device)
    # The training images are inputs (no output may replace one); every output is checked before any work.
    register_pair_images(pairs)
    out_path = checkpoint_path(out)
    plan = clean_plan(out_path, resume, out_path.with_suffix(".csv"), pairs).check()

    from rocksynth.progress import log
    from rocksynth.training.clean import train_clean as train

    meta = train(plan.checkpoint, iters, pairs_dir=pairs, resume=resume, batch=batch, crop=crop, lr=lr, seed=seed,
                 widths=width_list, curve_csv=out_path.with_suffix(".csv"), threads=threads, init=init,
                 time_budget=budget, device=place)
    metrics = meta.get("metrics") or {}
    log(f"wrote {plan.checkpoint} after {meta['iterations']} iterations ({meta['wall_time_s']:.0f} s); held-out IoU "
        f"{metrics.get('iou', float('nan')):.3f}, PSNR {metrics.get('psnr', float('nan')):.2f} dB")


def _parse_widths(text: str) -> "tuple[int, ...]":
    from rocksynth.errors import BadInputError

    try:
        values = tuple(int(w) for w in text.split(","))
    except ValueError:
        raise BadInputError(f"--widths {text!r}: expected comma-separated integers like 16,32,64,96,128") from None
    if len(values) != 5 or min(values) < 1:
        # Four downsamplings: the tiling margin (rocksynth.pipelines.clean) is measured for that depth.
        raise BadInputError(f"--widths {text!r}: need 5 positive channel counts (four downsamplings)")
    return values
