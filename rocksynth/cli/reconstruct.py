"""`rocksynth reconstruct` (a 3D volume from one 2D slice) and `rocksynth train reconstruct`."""

from pathlib import Path
from typing import List, Optional

import typer

from rocksynth.cli import options


def reconstruct(
    slice_path: str = typer.Argument(..., metavar="SLICE", help="2D slice (PNG/TIFF; binary, or grayscale segmented with Otsu); '-' = stdin."),
    out: str = typer.Option(..., "--out", "-o", help="Output volume (.tif); with --samples N > 1, '{i}' in the name or _<i> is appended; '-' = stdout."),
    model: str = typer.Option("berea", "--model", "-m", help="Shipped model name (berea, ketton) or a checkpoint path."),
    depth: Optional[int] = typer.Option(None, "--depth", help="Output depth in voxels (default: the slice's side)."),
    samples: int = typer.Option(1, "--samples", "-n", help="Number of realisations to write."),
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same volumes)."),
    voxel_size: Optional[str] = typer.Option(None, "--voxel-size", help="Voxel size, e.g. 5.345um (default: the slice's, else the model's training data)."),
    threshold: Optional[float] = options.Threshold,
    pore_value: str = options.PoreValue,
    slab: Optional[int] = typer.Option(None, "--slab", help="Depth generated at a time (default: about 4M voxels per slab, which bounds memory)."),
    calibrated: bool = typer.Option(False, "--calibrated", help="Threshold the generator at the model's porosity calibration (training cubes' porosity) instead of probability 0.5: less porous, less connected (docs/reconstruct.md)."),
    json_out: bool = options.Json,
) -> None:
    """A 3D rock volume whose central slice is SLICE (slice-conditioned GAN)."""
    import json

    from rocksynth.errors import BadInputError
    from rocksynth.pipelines.reconstruct import reconstruct_files

    if json_out and out == "-":
        raise BadInputError("--json and --out - both use stdout; pick one")
    summary = reconstruct_files(slice_path, out, model=model, depth=depth, samples=samples, seed=seed,
                                voxel_size=voxel_size, threshold=threshold, pore_value=pore_value, slab=slab,
                                calibrated=calibrated)
    if json_out:
        typer.echo(json.dumps(summary, indent=2))


def train_reconstruct(
    volumes: List[Path] = typer.Argument(..., metavar="VOLUME...", help="Binary (or grayscale) 3D training volumes."),
    out: Path = typer.Option(..., "--out", "-o", help="Checkpoint to write (.pt); also <out>.csv and <out>.png learning curve."),
    crop: int = typer.Option(64, "--crop", help="Final training crop side (voxels)."),
    iters: int = typer.Option(3000, "--iters", help="Total iterations (including warm-up)."),
    batch: int = typer.Option(2, "--batch", help="Batch size at the final crop."),
    warmup_crop: int = typer.Option(32, "--warmup-crop", help="Crop side for the first --warmup-iters iterations."),
    warmup_iters: int = typer.Option(2000, "--warmup-iters", help="Iterations on the small warm-up crops."),
    warmup_batch: int = typer.Option(4, "--warmup-batch", help="Batch size on warm-up crops."),
    depth_ratio: int = typer.Option(2, "--depth-ratio", help="Training crops are this many times deeper than wide, so they reach the far field beyond the slice's influence."),
    eval_every: int = typer.Option(100, "--eval-every", help="Evaluate on held-out cubes every N iterations."),
    save_every: int = typer.Option(200, "--save-every", help="Write the checkpoint every N iterations."),
    holdout: float = typer.Option(0.25, "--holdout", help="Fraction of each volume (last part along z) kept for evaluation."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    resume: bool = typer.Option(False, "--resume", help="Continue from --out if it exists."),
    threads: int = typer.Option(1, "--threads", help="Torch CPU threads."),
    lr_g: float = typer.Option(2e-4, "--lr-g", help="Adam learning rate of the encoder + generator (also applied on --resume)."),
    lr_d: float = typer.Option(4e-4, "--lr-d", help="Adam learning rate of the critics (also applied on --resume)."),
    calibration_cubes: int = typer.Option(32, "--calibration-cubes", help="Training cubes per volume on which the output threshold is calibrated to the real porosity at the end (0: threshold at probability 0.5)."),
    init: Optional[Path] = typer.Option(None, "--init", help="Start from this reconstruct checkpoint's weights (fresh optimisers; continues its iteration count)."),
    global_channels: Optional[int] = typer.Option(None, "--global-channels", help="Channels of the whole-slice code fed to every depth (default: the --init/--resume checkpoint's, else 0)."),
    euler_weight: float = typer.Option(0.0, "--euler-weight", help="Weight of the Euler-density (3D connectivity) term (default off; see docs/reconstruct.md)."),
    threshold: Optional[float] = options.Threshold,
    pore_value: str = options.PoreValue,
) -> None:
    """Train the slice-to-volume GAN on your own volumes (resumable, CSV learning curve)."""
    import torch

    from rocksynth.errors import BadInputError
    from rocksynth.io import load_binary_volume
    from rocksynth.io.binary import require_3d
    from rocksynth.io.paths import check_input_file
    from rocksynth.progress import log
    from rocksynth.training.reconstruct import TrainSettings, train_reconstruct as train

    if iters < 1 or crop < 8 or crop % 4 or warmup_crop % 4 or batch < 1 or warmup_batch < 1:
        raise BadInputError("--iters and batches must be positive; --crop and --warmup-crop multiples of 4 (>= 8)")
    if not (lr_g > 0 and lr_d > 0):
        raise BadInputError(f"--lr-g {lr_g} / --lr-d {lr_d}: learning rates must be positive")
    if global_channels is not None and global_channels < 0:
        raise BadInputError(f"--global-channels {global_channels}: must not be negative")
    if init is not None:
        check_input_file(init)
    if euler_weight < 0 or calibration_cubes < 0:
        raise BadInputError(f"--euler-weight {euler_weight} / --calibration-cubes {calibration_cubes}: must not be negative")
    torch.set_num_threads(threads)
    loaded, voxel_sizes = [], []
    for path in volumes:
        check_input_file(path)
        mask, voxel = load_binary_volume(path, threshold=threshold, pore_value=pore_value)
        loaded.append((path.name, require_3d(mask, str(path))))
        voxel_sizes.append(voxel)
    settings = TrainSettings(iters=iters, crop=crop, batch=batch, warmup_crop=warmup_crop,
                             warmup_iters=min(warmup_iters, iters), warmup_batch=warmup_batch, depth_ratio=depth_ratio,
                             eval_every=eval_every, save_every=save_every, holdout=holdout, seed=seed,
                             lr_g=lr_g, lr_d=lr_d, euler_weight=euler_weight,
                             calibration_cubes=calibration_cubes,
                             model={} if global_channels is None else {"global_channels": global_channels})
    metrics = train(loaded, out, settings, resume=resume, voxel_size=voxel_sizes[0], init=init)
    log(f"wrote {out} (learning curve {out.with_suffix('.csv')}, {out.with_suffix('.png')})")
    if metrics:
        log("held-out: porosity real {eval_porosity_real:.3f} generated {eval_porosity_generated:.3f}, "
            "S2 error {eval_s2_error:.4f}, raw central-slice agreement {eval_slice_agreement:.4f}".format(**metrics))
