"""`rocksynth reconstruct` (a 3D volume from one 2D slice) and `rocksynth train reconstruct`."""

import dataclasses
import functools
from pathlib import Path
from typing import List, Optional

import typer

from rocksynth.cli import options
from rocksynth.cli.config import configurable


def reconstruct(
    slice_path: str = typer.Argument(..., metavar="SLICE", help="2D slice (PNG/TIFF; binary, or grayscale segmented with Otsu); '-' = stdin."),
    out: str = typer.Option(..., "--out", "-o", help="Output volume: .tif stack or .zarr (OME-Zarr); with --samples N > 1, '{i}' in the name or _<i> is appended; '-' = stdout."),
    model: str = typer.Option("berea", "--model", "-m", help="Shipped model name (berea, ketton) or a checkpoint path."),
    depth: Optional[int] = options.positive_int(None, "--depth", help="Output depth in voxels (default: the slice's side)."),
    samples: int = options.positive_int(1, "--samples", "-n", help="Number of realisations to write."),
    seed: int = options.seed_option("Random seed (same seed, same volumes)."),
    voxel_size: Optional[str] = typer.Option(None, "--voxel-size", help="Voxel size, e.g. 5.345um (default: the slice's, else the model's training data)."),
    threshold: Optional[float] = options.Threshold,
    pore_value: str = options.PoreValue,
    crop: bool = options.Crop,
    slab: Optional[int] = options.number(None, "--slab", min=4, help="Depth generated at a time (default: about 4M voxels per slab, which bounds memory)."),
    calibrated: bool = typer.Option(False, "--calibrated", help="Threshold the generator at the model's porosity calibration (training cubes' porosity) instead of probability 0.5: less porous, less connected (docs/reconstruct.md)."),
    device: str = options.Device,
    json_out: bool = options.Json,
) -> None:
    """A 3D rock volume whose central slice is SLICE (slice-conditioned GAN)."""
    import json

    from rocksynth.errors import BadInputError
    from rocksynth.pipelines.reconstruct import reconstruct_files
    from rocksynth.units import parse_length

    if json_out and out == "-":
        raise BadInputError("--json and --out - both use stdout; pick one")
    summary = reconstruct_files(slice_path, out, model=model, depth=depth, samples=samples, seed=seed,
                                voxel_size=parse_length(voxel_size), threshold=threshold, pore_value=pore_value,
                                slab=slab, calibrated=calibrated, device=options.parse_device(device), crop=crop)
    if json_out:
        typer.echo(json.dumps(summary, indent=2, default=str))


# Settings with a flag of their own (not settable through --set).
_RECONSTRUCT_FLAGS = {"iters": "--iters", "crop": "--crop", "batch": "--batch", "eval_every": "--eval-every",
                      "seed": "--seed"}
# The ranges the settings had as flags (low, high[, low end open, high end open]), kept
# so that a value the flag refused is still refused before any data is read; the `_UNSET` values
# stand for "the default", as the flags' absence did.
_RANGES = {"warmup_crop": (16, None), "warmup_iters": (0, None), "warmup_batch": (1, None), "depth_ratio": (1, None),
           "crop_depth": (16, None), "porosity_weight": (0, None), "eval_crop": (16, None), "whole_side": (0, None),
           "save_every": (1, None), "holdout": (0, 1, True, True), "threads": (1, None), "lr_g": (0, 1, True, True),
           "lr_d": (0, 1, True, True), "calibration_cubes": (0, None), "final_cubes": (0, None), "ema": (0, 1, False, True), "init_ramp": (0, None), "global_channels": (0, None),
           "critic3d_weight": (0, None)}
_UNSET = {"crop_depth": 0, "eval_crop": 0, "global_channels": -1}


@functools.lru_cache(maxsize=None)  # one class, so every call gives the same fields
def _reconstruct_settings() -> type:
    """The library's `TrainSettings` with the command's two settings that are not the recipe's:
    `threads` (torch's CPU threads) and `global_channels` (-1: the --init/--resume checkpoint's,
    else 0), which becomes `model={'global_channels': N}`."""
    from rocksynth.training.reconstruct import TrainSettings

    @dataclasses.dataclass
    class ReconstructCommandSettings(TrainSettings):
        threads: int = 1
        global_channels: int = -1

    return ReconstructCommandSettings


def _library_settings(command):
    """The library's `TrainSettings` of the command's settings, as the flags used to build them
    (warm-up no longer than the run); a value outside its former flag's range is refused.

    Raises
    ------
    BadInputError
        One line naming the setting.
    """
    from rocksynth.errors import BadInputError
    from rocksynth.training.reconstruct import TrainSettings

    for key, bounds in _RANGES.items():
        low, high, low_open, high_open = (*bounds, False, False)[:4]
        value = getattr(command, key)
        if key in _UNSET and value == _UNSET[key]:
            continue
        message = "learning rates must be positive and below 1" if key.startswith("lr_") else None
        if key in _UNSET:
            message = f"expected {_UNSET[key]} (the default) or at least {low}"
        try:
            options.range_check(low, high, low_open, high_open, message)(value)
        except options.OptionRangeError as exc:
            raise BadInputError(f"{key}: {exc.message}") from None
    values = {f.name: getattr(command, f.name) for f in dataclasses.fields(TrainSettings) if f.name != "model"}
    values["warmup_iters"] = min(command.warmup_iters, command.iters)
    model = {} if command.global_channels == _UNSET["global_channels"] else {"global_channels": command.global_channels}
    return TrainSettings(**values, model=model)


@configurable(settings=_reconstruct_settings, flags=_RECONSTRUCT_FLAGS)
def train_reconstruct(
    volumes: List[str] = typer.Argument(..., metavar="VOLUME...", help="Binary (or grayscale) 3D training volumes; '-' = stdin."),
    out: str = typer.Option(..., "--out", "-o", help="Checkpoint to write (.pt); also <out>.csv and <out>.png learning curve."),
    crop: int = options.number(64, "--crop", min=16, help="Final training crop side (voxels; a multiple of 4)."),
    iters: int = options.positive_int(3000, "--iters", help="Iterations to train, warm-up included (after --init: beyond the starting model's own; a --resume continues up to the same count)."),
    batch: int = options.positive_int(2, "--batch", help="Batch size at the final crop."),
    eval_every: int = options.positive_int(100, "--eval-every", help="Evaluate on held-out cubes and whole held-out planes every N iterations; the best checkpoint (lowest eval_score) is kept as <out>.best.pt."),
    seed: int = options.seed_option("Random seed."),
    resume: bool = typer.Option(False, "--resume", help="Continue from --out if it exists."),
    init: Optional[str] = typer.Option(None, "--init", help="Start from this reconstruct checkpoint's (or shipped model's: berea, ketton) weights (fresh optimisers, the generator's learning rate ramped up over --set init_ramp=N iterations; continues its iteration count)."),
    time_budget: Optional[str] = options.time_budget_option(),
    settings_text: Optional[List[str]] = options.Set("Set a training setting, e.g. --set warmup_iters=500 "
                                                     "--set lr_g=5e-5 (repeatable; the keys are listed above)."),
    threshold: Optional[float] = options.Threshold,
    pore_value: str = options.PoreValue,
    device: str = options.TrainDevice,
    config: Optional[Path] = options.config_option(),
) -> None:
    """Train the slice-to-volume GAN on your own volumes (resumable, CSV learning curve).

    Options and settings can also come from --config FILE.toml (keys: the option names and the
    --set keys below; the command line overrides the file); the run's resolved configuration is
    written to <out>.toml (docs/training.md).

    \b
    Settings (--set KEY=VALUE, defaults in brackets):
      warmup_iters [2000]  first iterations on the small warm-up crops (at most --iters)
      warmup_crop [32]     warm-up crop side (a multiple of 4, at most --crop)
      warmup_batch [4]     batch size on the warm-up crops
      depth_ratio [2]      training crops this many times deeper than wide, to reach the far field
      crop_depth [0]       depth of every training crop (a multiple of 4, at least --crop;
                           0: --crop x depth_ratio)
      slice_position [random]
                           depth of the conditioning slice in each crop: random or centre
      porosity_weight [200.0]
                           weight of the per-depth porosity term (bins of distance from the slice)
      slice_weight [50.0], s2_weight [200.0], s2_lags [12], slices_per_axis [8]
                           weights of the slice and S2 terms, S2 lags, critic slices per axis
      critic3d_weight [1.0]
                           weight of the 3D critic of whole crops beside the slices' critic
                           (0: slices only; a retrain then keeps the pores connected longer)
      lr_g [0.0002]        Adam learning rate of the encoder + generator (also applied on --resume)
      lr_d [0.0004]        Adam learning rate of the critics (also applied on --resume)
      init_ramp [300]      iterations of linear learning-rate ramp of the generator after --init
      global_channels [-1] channels of the whole-slice code fed to every depth (-1: the --init/--resume
                           checkpoint's, else 0)
      holdout [0.25]       fraction of each volume (last part along z) kept for evaluation
      eval_crop [0]        side of the held-out evaluation cubes (0: --crop)
      eval_cubes [8]       held-out cubes per evaluation
      whole_side [256], whole_depth [128]
                           whole-slice evaluation: a held-out plane (at most this wide) reconstructed
                           this deep, per-z porosity sd and far field against the rock's (whole_side=0: off)
      save_every [200]     write the checkpoint every N iterations
      calibration_cubes [32]
                           training cubes per volume on which the output threshold is calibrated to the
                           real porosity at the end (0: threshold at probability 0.5)
      final_cubes [16]     held-out cubes per volume on which the trained model and the one it started
                           from (--init, else berea) are compared at the end, against real-vs-real (0: off)
      ema [0.999]          decay of the generator's moving average, which is evaluated and saved (0: none)
      threads [1]          torch CPU threads
    """
    from rocksynth.io.paths import STDIO, check_input_file
    from rocksynth.pretrained.registry import resolve_model
    from rocksynth.training.outputs import reconstruct_plan

    # Inputs first (so no output may replace one), then every output: all before torch is imported.
    for path in volumes:
        if path != STDIO:
            check_input_file(path)
    if init is not None:
        check_input_file(resolve_model(init, "reconstruct"))
    budget = options.parse_duration(time_budget)
    place = options.parse_device(device)
    plan = reconstruct_plan(out, resume).check()

    import torch

    from rocksynth.io import load_binary_volume
    from rocksynth.io.binary import require_3d
    from rocksynth.progress import log
    from rocksynth.training.reconstruct import check_settings, train_reconstruct as train

    command = options.apply_settings(_reconstruct_settings()(iters=iters, crop=crop, batch=batch, eval_every=eval_every,
                                                             seed=seed), settings_text, _RECONSTRUCT_FLAGS)
    settings = _library_settings(command)
    check_settings(settings)  # before any data is read
    torch.set_num_threads(command.threads)
    loaded, voxel_sizes = [], []
    for path in volumes:
        # crop_flag=None: this command's --crop is the training crop, not a field of view's.
        mask, voxel = load_binary_volume(path, threshold=threshold, pore_value=pore_value, crop_flag=None)
        name = "stdin" if path == STDIO else Path(path).name
        loaded.append((name, require_3d(mask, name)))
        voxel_sizes.append(voxel)
    metrics = train(loaded, plan.checkpoint, settings, resume=resume, voxel_size=voxel_sizes[0], init=init,
                    time_budget=budget, device=place)
    curve_csv, png, best = plan.companions
    log(f"wrote {plan.checkpoint} (learning curve {curve_csv}, {png}"
        + (f"; best checkpoint {best})" if Path(best).is_file() else ")"))
    if metrics:
        log("held-out: porosity real {eval_porosity_real:.3f} generated {eval_porosity_generated:.3f}, "
            "S2 error {eval_s2_error:.4f}, raw central-slice agreement {eval_slice_agreement:.4f}".format(**metrics))
