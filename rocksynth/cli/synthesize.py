"""`rocksynth synthesize` (large multi-texture volumes) and `rocksynth train texture`."""

from pathlib import Path
from typing import List, Optional

import typer

from rocksynth.cli import options
from rocksynth.cli.config import configurable


def synthesize(
    out: Optional[str] = typer.Option(None, "--out", "-o", help="Output volume: .tif (BigTIFF when large) or .zarr (OME-Zarr, multiscale); '-' = stdout (TIFF)."),
    texture: Optional[str] = typer.Option(None, "--texture", "-t", help="Texture name (see --list)."),
    size: str = typer.Option("128", "--size", "-s", help="Output size: N (a cube) or ZxYxX, in voxels."),
    like: Optional[str] = typer.Option(None, "--like", help="Exemplar volume: synthesize its texture (through the encoder); --threshold, --pore-value and --crop segment it."),
    blend: Optional[str] = typer.Option(None, "--blend", help="A:B - a smooth transition from texture A to texture B along --axis."),
    axis: str = typer.Option("z", "--axis", help="Axis of --blend: z, y or x."),
    layout: Optional[str] = typer.Option(None, "--layout", help="Label volume or image (0, 1, 2...): region k gets the k-th texture of --textures."),
    textures: Optional[str] = typer.Option(None, "--textures", help="Comma-separated textures for the labels of --layout (label 0 first)."),
    seed: int = options.seed_option("Random seed: the same seed gives the same volume."),
    voxel_size: Optional[str] = typer.Option(None, "--voxel-size", help="Voxel size written to the file (default: the texture's, when known)."),
    model: str = typer.Option("rocks", "--model", "-m", help="Shipped texture model name or a checkpoint path."),
    tile: int = options.number(128, "--tile", min=8, help="Side of the decoded tiles in voxels (multiple of 8; bounds memory)."),
    list_textures: bool = typer.Option(False, "--list", help="List the model's textures and exit."),
    threshold: Optional[float] = options.Threshold,
    pore_value: str = options.PoreValue,
    crop: bool = options.Crop,
    device: str = options.Device,
    json_out: bool = options.Json,
) -> None:
    """Synthesize a (large) binary rock volume from a multi-texture GAN, streamed to disk in tiles."""
    import json

    from rocksynth.errors import BadInputError
    from rocksynth.pipelines.synthesize import list_model_textures, synthesize_file
    from rocksynth.units import parse_length

    if list_textures:
        rows = list_model_textures(model)
        if json_out:
            typer.echo(json.dumps(rows, indent=2))
        else:
            for row in rows:
                typer.echo(f"{row['name']:<12} porosity {row['porosity']:.3f}  voxel {row['voxel']}  {row['source']}")
        return
    if out is None:
        raise BadInputError("--out is required (or --list)")
    if json_out and out == "-":
        raise BadInputError("--json and --out - both use stdout; pick one")
    summary = synthesize_file(out, model=model, texture=texture, size=size, like=like, blend=blend, axis=axis,
                              layout=layout, layout_textures=textures, seed=seed, voxel_size=parse_length(voxel_size),
                              tile=tile, device=options.parse_device(device), threshold=threshold,
                              pore_value=pore_value, crop=crop)
    if json_out:
        typer.echo(json.dumps(summary, indent=2))


# Settings with a flag of their own (not settable through --set).
_TEXTURE_FLAGS = {"iters": "--iters", "seed": "--seed"}


def _texture_settings() -> type:
    from rocksynth.training.texture import TrainSettings

    return TrainSettings


@configurable(settings=_texture_settings, flags=_TEXTURE_FLAGS)
def train_texture(
    sources: List[str] = typer.Argument(..., metavar="NAME=VOLUME...",
                                        help="Textures to learn: name=volume file ('-' = stdin), or name=porespy:spherepack (generated)."),
    out: str = typer.Option(..., "--out", "-o", help="Checkpoint to write (.pt); also <out>.csv and <out>.png learning curve and <out>.best.pt."),
    iters: int = options.positive_int(3000, "--iters", help="Total iterations."),
    seed: int = options.seed_option("Random seed."),
    resume: bool = typer.Option(False, "--resume", help="Continue from --out if it exists."),
    init: Optional[Path] = typer.Option(None, "--init", help="Start from the network weights of another texture checkpoint (learning-rate ramp: --set init_ramp=N)."),
    time_budget: Optional[str] = options.time_budget_option(),
    settings_text: Optional[List[str]] = options.Set("Set a training setting, e.g. --set crop=48 --set lr_g=1e-5 "
                                                     "(repeatable; the keys are listed above)."),
    threshold: Optional[float] = options.Threshold,
    pore_value: str = options.PoreValue,
    device: str = options.TrainDevice,
    config: Optional[Path] = options.config_option(hidden=True),
) -> None:
    """Train the multi-texture GAN (generator, encoder, three critics) on named volumes (resumable).

    Options and settings can also come from --config FILE.toml (keys: the option names and the
    --set keys below; the command line overrides the file); the run's resolved configuration is
    written to <out>.toml (docs/training.md).

    \b
    Settings (--set KEY=VALUE, defaults in brackets):
      crop [64]           training crop side in voxels (multiple of 8), larger than the pores
      batch [2]           textures (crop pairs) per iteration
      lr_g [5e-05]        Adam learning rate of the generator, encoder and texture codes
      lr_d [0.0001]       Adam learning rate of the three critics
      porosity_weight [10.0], correlation_weight [1000.0], saturation_weight [1.0]
                          weights of the porosity, per-axis S2 and logit-saturation terms
      alpha_x, alpha_xx, beta_z, beta_xx [1.0]
                          weights of the generator, pair and latent matching terms
      warmup_iters [100]  first iterations with the statistics terms only
      eval_every [100]    held-out evaluation every N iterations (best kept as <out>.best.pt)
      save_every [100]    checkpoint every N iterations
      init_ramp [0]       iterations of linear learning-rate ramp after --init
      holdout [0.25]      fraction of each volume (last part along z) kept for evaluation
      threads [1]         torch CPU threads
      eval_size [64], eval_volumes [2]
                          side and number of the generated volumes per texture evaluated
      correlation_range [24], slices_per_axis [4], prior_std [0.3], output_contrast [8.0],
      gradient_temperature [2.0], saturation_logit [6.0]
                          see docs/synthesize.md
    """
    from rocksynth.data.textures import parse_texture_source
    from rocksynth.errors import BadInputError
    from rocksynth.io.paths import STDIO, check_input_file
    from rocksynth.training.outputs import texture_plan

    # Inputs first (so no output may replace one), then every output: all before torch is imported.
    parsed = [parse_texture_source(text) for text in sources]
    if sum(source == STDIO for _, source in parsed) > 1:
        raise BadInputError("only one texture can come from stdin ('-')")
    for _, source in parsed:
        if source != STDIO and not source.startswith("porespy:"):
            check_input_file(source)
    if init is not None:
        check_input_file(init)
    budget = options.parse_duration(time_budget)
    place = options.parse_device(device)
    plan = texture_plan(out, resume).check()

    import torch

    from rocksynth.pipelines.synthesize import load_training_textures
    from rocksynth.progress import log
    from rocksynth.training.texture import TrainSettings, check_settings, train_texture as train

    settings = options.apply_settings(TrainSettings(iters=iters, seed=seed), settings_text, _TEXTURE_FLAGS)
    check_settings(settings)  # before any data is read
    torch.set_num_threads(settings.threads)
    textures = load_training_textures(sources, holdout=settings.holdout, threshold=threshold, pore_value=pore_value)
    metrics = train(textures, plan.checkpoint, settings, resume=resume, init=init, time_budget=budget, device=place)
    curve_csv, png, _ = plan.companions
    log(f"wrote {plan.checkpoint} (learning curve {curve_csv}, {png})")
    if metrics:
        log("held-out porosity, specific surface (real / generated): " + ", ".join(
            f"{t.name} {metrics[f'porosity_{t.name}_real']:.3f}/{metrics[f'porosity_{t.name}_generated']:.3f}, "
            f"{metrics[f'surface_{t.name}_real']:.3f}/{metrics[f'surface_{t.name}_generated']:.3f}"
            for t in textures))
