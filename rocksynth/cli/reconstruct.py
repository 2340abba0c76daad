"""`rocksynth reconstruct` (a 3D volume from one 2D slice) and `rocksynth train reconstruct`."""

from pathlib import Path
from typing import List, Optional

import typer

from rocksynth.cli import options
from rocksynth.cli.config import configurable


def reconstruct(
    slice_path: str = typer.Argument(..., metavar="SLICE", help="2D slice (PNG/TIFF; binary, or grayscale segmented with Otsu); '-' = stdin."),
    out: str = typer.Option(..., "--out", "-o", help="Output volume (.tif); with --samples N > 1, '{i}' in the name or _<i> is appended; '-' = stdout."),
    model: str = typer.Option("berea", "--model", "-m", help="Shipped model name (berea, ketton) or a checkpoint path."),
    depth: Optional[int] = options.positive_int(None, "--depth", help="Output depth in voxels (default: the slice's side)."),
    samples: int = options.positive_int(1, "--samples", "-n", help="Number of realisations to write."),
    seed: int = options.seed_option("Random seed (same seed, same volumes)."),
    voxel_size: Optional[str] = typer.Option(None, "--voxel-size", help="Voxel size, e.g. 5.345um (default: the slice's, else the model's training data)."),
    threshold: Optional[float] = options.Threshold,
    pore_value: str = options.PoreValue,
    slab: Optional[int] = options.number(None, "--slab", min=4, help="Depth generated at a time (default: about 4M voxels per slab, which bounds memory)."),
    calibrated: bool = typer.Option(False, "--calibrated", help="Threshold the generator at the model's porosity calibration (training cubes' porosity) instead of probability 0.5: less porous, less connected (docs/reconstruct.md)."),
    device: str = options.Device,
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
                                calibrated=calibrated, device=options.parse_device(device))
    if json_out:
        typer.echo(json.dumps(summary, indent=2, default=str))


@configurable()
def train_reconstruct(
    volumes: List[str] = typer.Argument(..., metavar="VOLUME...", help="Binary (or grayscale) 3D training volumes; '-' = stdin."),
    out: str = typer.Option(..., "--out", "-o", help="Checkpoint to write (.pt); also <out>.csv and <out>.png learning curve."),
    crop: int = options.number(64, "--crop", min=16, help="Final training crop side (voxels; a multiple of 4)."),
    iters: int = options.positive_int(3000, "--iters", help="Total iterations (including warm-up)."),
    batch: int = options.positive_int(2, "--batch", help="Batch size at the final crop."),
    warmup_crop: int = options.number(32, "--warmup-crop", min=16, help="Crop side for the first --warmup-iters iterations (a multiple of 4, at most --crop)."),
    warmup_iters: int = options.number(2000, "--warmup-iters", min=0, help="Iterations on the small warm-up crops."),
    warmup_batch: int = options.positive_int(4, "--warmup-batch", help="Batch size on warm-up crops."),
    depth_ratio: int = options.positive_int(2, "--depth-ratio", help="Training crops are this many times deeper than wide, so they reach the far field beyond the slice's influence (unless --crop-depth)."),
    crop_depth: Optional[int] = options.number(None, "--crop-depth", min=16, help="Depth of every training crop (a multiple of 4, at least --crop; default --crop x --depth-ratio), e.g. 128 with --crop 48."),
    slice_position: str = typer.Option("random", "--slice-position", help="Depth of the conditioning slice in each training crop: 'random' (every distance from the slice on both sides is trained) or 'centre'."),
    porosity_weight: float = options.number(200.0, "--porosity-weight", min=0, help="Weight of the per-depth porosity term (porosity in bins of distance from the slice against the real crop's)."),
    eval_every: int = options.positive_int(100, "--eval-every", help="Evaluate on held-out cubes and whole held-out planes every N iterations; the best checkpoint (lowest eval_score) is kept as <out>.best.pt."),
    eval_crop: Optional[int] = options.number(None, "--eval-crop", min=16, help="Side of the held-out evaluation cubes (default --crop)."),
    whole_side: int = options.number(256, "--whole-side", min=0, help="Whole-slice evaluation: a held-out plane of each volume (at most this wide) reconstructed 128 deep, per-z porosity sd and far field against the real rock's (0: off)."),
    save_every: int = options.positive_int(200, "--save-every", help="Write the checkpoint every N iterations."),
    holdout: float = options.Holdout,
    seed: int = options.seed_option("Random seed."),
    resume: bool = typer.Option(False, "--resume", help="Continue from --out if it exists."),
    threads: int = options.threads_option(),
    lr_g: float = options.learning_rate(2e-4, "--lr-g", help="Adam learning rate of the encoder + generator (also applied on --resume)."),
    lr_d: float = options.learning_rate(4e-4, "--lr-d", help="Adam learning rate of the critics (also applied on --resume)."),
    calibration_cubes: int = options.number(32, "--calibration-cubes", min=0, help="Training cubes per volume on which the output threshold is calibrated to the real porosity at the end (0: threshold at probability 0.5)."),
    init: Optional[str] = typer.Option(None, "--init", help="Start from this reconstruct checkpoint's (or shipped model's: berea, ketton) weights (fresh optimisers, the generator's learning rate ramped up over --init-ramp iterations; continues its iteration count)."),
    init_ramp: int = options.number(300, "--init-ramp", min=0, help="Iterations of linear learning-rate ramp of the generator after --init."),
    time_budget: Optional[str] = options.time_budget_option(),
    global_channels: Optional[int] = options.number(None, "--global-channels", min=0, help="Channels of the whole-slice code fed to every depth (default: the --init/--resume checkpoint's, else 0)."),
    threshold: Optional[float] = options.Threshold,
    pore_value: str = options.PoreValue,
    device: str = options.TrainDevice,
    config: Optional[Path] = options.config_option(),
) -> None:
    """Train the slice-to-volume GAN on your own volumes (resumable, CSV learning curve)."""
    from rocksynth.errors import BadInputError
    from rocksynth.io.paths import STDIO, check_input_file
    from rocksynth.pretrained.registry import resolve_model
    from rocksynth.training.outputs import reconstruct_plan

    # Inputs first (so no output may replace one), then every output: all before torch is imported.
    for path in volumes:
        if path != STDIO:
            check_input_file(path)
    if init is not None:
        check_input_file(resolve_model(init, "reconstruct"))
    if slice_position not in ("random", "centre"):
        raise BadInputError(f"--slice-position {slice_position}: expected 'random' or 'centre'")
    budget = options.parse_duration(time_budget)
    place = options.parse_device(device)
    plan = reconstruct_plan(out, resume).check()

    import torch

    from rocksynth.io import load_binary_volume
    from rocksynth.io.binary import require_3d
    from rocksynth.progress import log
    from rocksynth.training.reconstruct import TrainSettings, check_settings, train_reconstruct as train

    settings = TrainSettings(iters=iters, crop=crop, batch=batch, warmup_crop=warmup_crop,
                             warmup_iters=min(warmup_iters, iters), warmup_batch=warmup_batch, depth_ratio=depth_ratio,
                             crop_depth=crop_depth or 0, slice_position=slice_position,
                             porosity_weight=porosity_weight, eval_every=eval_every, eval_crop=eval_crop or 0,
                             whole_side=whole_side, init_ramp=init_ramp, save_every=save_every, holdout=holdout,
                             seed=seed, lr_g=lr_g, lr_d=lr_d,
                             calibration_cubes=calibration_cubes,
                             model={} if global_channels is None else {"global_channels": global_channels})
    check_settings(settings)  # before any data is read
    torch.set_num_threads(threads)
    loaded, voxel_sizes = [], []
    for path in volumes:
        mask, voxel = load_binary_volume(path, threshold=threshold, pore_value=pore_value)
        name = "stdin" if path == STDIO else Path(path).name
        loaded.append((name, require_3d(mask, name)))
        voxel_sizes.append(voxel)
    metrics = train(loaded, plan.checkpoint, settings, resume=resume, voxel_size=voxel_sizes[0], init=init,
                    time_budget=budget, device=place)
    curve_csv, png, best = plan.companions
    log(f"wrote {plan.checkpoint} (learning curve {curve_csv}, {png}; best checkpoint {best})")
    if metrics:
        log("held-out: porosity real {eval_porosity_real:.3f} generated {eval_porosity_generated:.3f}, "
            "S2 error {eval_s2_error:.4f}, raw central-slice agreement {eval_slice_agreement:.4f}".format(**metrics))
