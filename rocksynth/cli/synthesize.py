"""`rocksynth synthesize` (large multi-texture volumes) and `rocksynth train texture`."""

from pathlib import Path
from typing import List, Optional

import typer

from rocksynth.cli import options


def synthesize(
    out: Optional[str] = typer.Option(None, "--out", "-o", help="Output volume: .tif (BigTIFF when large) or .zarr (OME-Zarr, multiscale); '-' = stdout (TIFF)."),
    texture: Optional[str] = typer.Option(None, "--texture", "-t", help="Texture name (see --list)."),
    size: str = typer.Option("128", "--size", "-s", help="Output size: N (a cube) or ZxYxX, in voxels."),
    like: Optional[str] = typer.Option(None, "--like", help="Exemplar volume: synthesize its texture (through the encoder)."),
    blend: Optional[str] = typer.Option(None, "--blend", help="A:B - a smooth transition from texture A to texture B along --axis."),
    axis: str = typer.Option("z", "--axis", help="Axis of --blend: z, y or x."),
    layout: Optional[str] = typer.Option(None, "--layout", help="Label volume or image (0, 1, 2...): region k gets the k-th texture of --textures."),
    textures: Optional[str] = typer.Option(None, "--textures", help="Comma-separated textures for the labels of --layout (label 0 first)."),
    seed: int = options.seed_option("Random seed: the same seed gives the same volume."),
    voxel_size: Optional[str] = typer.Option(None, "--voxel-size", help="Voxel size written to the file (default: the texture's, when known)."),
    model: str = typer.Option("rocks", "--model", "-m", help="Shipped texture model name or a checkpoint path."),
    tile: int = options.number(128, "--tile", min=8, help="Side of the decoded tiles in voxels (multiple of 8; bounds memory)."),
    list_textures: bool = typer.Option(False, "--list", help="List the model's textures and exit."),
    json_out: bool = options.Json,
) -> None:
    """Synthesize a (large) binary rock volume from a multi-texture GAN, streamed to disk in tiles."""
    import json

    from rocksynth.errors import BadInputError
    from rocksynth.pipelines.synthesize import list_model_textures, synthesize_file

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
                              layout=layout, layout_textures=textures, seed=seed, voxel_size=voxel_size, tile=tile)
    if json_out:
        typer.echo(json.dumps(summary, indent=2))


def train_texture(
    sources: List[str] = typer.Argument(..., metavar="NAME=VOLUME...",
                                        help="Textures to learn: name=volume file ('-' = stdin), or name=porespy:spherepack (generated)."),
    out: str = typer.Option(..., "--out", "-o", help="Checkpoint to write (.pt); also <out>.csv and <out>.png learning curve and <out>.best.pt."),
    crop: int = options.number(64, "--crop", min=16, help="Training crop side in voxels (multiple of 8); larger than the pores."),
    iters: int = options.positive_int(3000, "--iters", help="Total iterations."),
    batch: int = options.positive_int(2, "--batch", help="Textures (crop pairs) per iteration."),
    eval_every: int = options.positive_int(100, "--eval-every", help="Evaluate held-out porosity and specific surface every N iterations (best checkpoint kept as <out>.best.pt)."),
    save_every: int = options.positive_int(100, "--save-every", help="Write the checkpoint every N iterations."),
    holdout: float = options.Holdout,
    lr: float = options.learning_rate(5e-5, "--lr", help="Adam learning rate of the generator, encoder and texture codes."),
    critic_lr: float = options.learning_rate(1e-4, "--critic-lr", help="Adam learning rate of the three critics."),
    warmup_iters: int = options.number(100, "--warmup-iters", min=0, help="First iterations with the statistics terms only (critics already train)."),
    porosity_weight: float = options.number(10.0, "--porosity-weight", min=0, help="Weight of the porosity term."),
    euler_weight: float = options.number(0.0, "--euler-weight", min=0, help="Weight of the Euler-density (3D connectivity) term (default off; see docs/synthesize.md)."),
    euler_textures: str = typer.Option("", "--euler-textures", metavar="NAME,…", help="Apply the Euler term to these textures only (default: all)."),
    critic_3d_weight: float = options.number(0.0, "--critic-3d-weight", min=0, help="Weight of a 3D patch critic on whole crops, which sees how pores connect (default off; see docs/synthesize.md)."),
    critic_3d_warmup: int = options.number(200, "--critic-3d-warmup", min=0, help="Iterations the new 3D critic trains alone before it reaches the generator."),
    critic_3d_lr: float = options.learning_rate(0.0, "--critic-3d-lr", zero_means_default=True, help="Adam learning rate of the 3D critic (0: --critic-lr)."),
    seed: int = options.seed_option("Random seed."),
    resume: bool = typer.Option(False, "--resume", help="Continue from --out if it exists."),
    init: Optional[Path] = typer.Option(None, "--init", help="Start from the network weights of another texture checkpoint."),
    deepen: str = typer.Option("0,0", "--deepen", metavar="D1,D2", help="Add D1 and D2 residual convolutions at 1/4 and 1/2 resolution to the generator (with --init: to the source's; zero-initialised, so a warm start begins at its output)."),
    grown_lr: float = options.learning_rate(0.0, "--grown-lr", zero_means_default=True, help="Adam learning rate of the layers --deepen / --full-res add (0: --lr)."),
    full_res: int = options.number(0, "--full-res", min=0, metavar="F", help="Add a full-resolution output stage of F channels to the generator (with --init: to the source's; zero-initialised)."),
    full_res_noise: int = options.number(0, "--full-res-noise", min=0, metavar="N", help="N full-resolution noise maps for the --full-res stage, so it can draw random one-voxel detail (throats, specks)."),
    refine: int = options.number(0, "--refine", min=0, metavar="R", help="Add a refinement of R channels that reads the finished logit and corrects it locally (two full-resolution convolutions; zero-initialised; needs --full-res or a source that has it)."),
    out_fields: int = options.number(0, "--out-fields", min=0, metavar="K", help="A new generator whose pore logit is the minimum of K output fields: pores are the gaps of K overlapping solid phases, as between grains (from scratch only; default: one field)."),
    threads: int = options.threads_option(),
    threshold: Optional[float] = options.Threshold,
    pore_value: str = options.PoreValue,
) -> None:
    """Train the multi-texture GAN (generator, encoder, three critics) on named volumes (resumable)."""
    from rocksynth.data.textures import parse_texture_source
    from rocksynth.errors import BadInputError
    from rocksynth.io.paths import STDIO, check_input_file
    from rocksynth.training.outputs import texture_plan

    try:
        extra = tuple(int(part) for part in deepen.split(","))
    except ValueError:
        extra = ()
    if len(extra) != 2 or min(extra) < 0:
        raise BadInputError(f"--deepen {deepen!r}: give two whole numbers, not negative, e.g. 1,2")
    # Inputs first (so no output may replace one), then every output: all before torch is imported.
    parsed = [parse_texture_source(text) for text in sources]
    if sum(source == STDIO for _, source in parsed) > 1:
        raise BadInputError("only one texture can come from stdin ('-')")
    for _, source in parsed:
        if source != STDIO and not source.startswith("porespy:"):
            check_input_file(source)
    if init is not None:
        check_input_file(init)
    plan = texture_plan(out, resume).check()

    import torch

    from rocksynth.pipelines.synthesize import load_training_textures
    from rocksynth.progress import log
    from rocksynth.training.texture import TrainSettings, check_settings, train_texture as train

    euler_names = tuple(name for name in euler_textures.split(",") if name)
    settings = TrainSettings(iters=iters, crop=crop, batch=batch, eval_every=eval_every, save_every=save_every,
                             holdout=holdout, seed=seed, lr_g=lr, lr_d=critic_lr, warmup_iters=warmup_iters,
                             porosity_weight=porosity_weight, euler_weight=euler_weight, euler_textures=euler_names,
                             critic_3d_weight=critic_3d_weight, critic_3d_warmup=critic_3d_warmup,
                             critic_3d_lr=critic_3d_lr, lr_grown=grown_lr)
    check_settings(settings)  # before any data is read
    torch.set_num_threads(threads)
    textures = load_training_textures(sources, holdout=holdout, threshold=threshold, pore_value=pore_value)
    unknown = sorted(set(euler_names) - {t.name for t in textures})
    if unknown:
        raise BadInputError(f"--euler-textures: no texture named {', '.join(unknown)}; "
                            f"textures: {', '.join(t.name for t in textures)}")
    metrics = train(textures, plan.checkpoint, settings, resume=resume, init=init, deepen=extra, full_res=full_res,
                    out_fields=out_fields, full_res_noise=full_res_noise, refine=refine)
    curve_csv, png, _ = plan.companions
    log(f"wrote {plan.checkpoint} (learning curve {curve_csv}, {png})")
    if metrics:
        log("held-out porosity, specific surface (real / generated): " + ", ".join(
            f"{t.name} {metrics[f'porosity_{t.name}_real']:.3f}/{metrics[f'porosity_{t.name}_generated']:.3f}, "
            f"{metrics[f'surface_{t.name}_real']:.3f}/{metrics[f'surface_{t.name}_generated']:.3f}"
            for t in textures))


