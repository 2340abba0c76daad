"""`rocksynth synthesize` (large multi-texture volumes) and `rocksynth train texture`."""

from pathlib import Path
from typing import List, Optional

import typer

from rocksynth.cli import options


def synthesize(
    out: Optional[str] = typer.Option(None, "--out", "-o", help="Output volume (.tif, BigTIFF when large); '-' = stdout."),
    texture: Optional[str] = typer.Option(None, "--texture", "-t", help="Texture name (see --list)."),
    size: str = typer.Option("128", "--size", "-s", help="Output size: N (a cube) or ZxYxX, in voxels."),
    like: Optional[str] = typer.Option(None, "--like", help="Exemplar volume: synthesize its texture (through the encoder)."),
    blend: Optional[str] = typer.Option(None, "--blend", help="A:B - a smooth transition from texture A to texture B along --axis."),
    axis: str = typer.Option("z", "--axis", help="Axis of --blend: z, y or x."),
    layout: Optional[str] = typer.Option(None, "--layout", help="Label volume or image (0, 1, 2...): region k gets the k-th texture of --textures."),
    textures: Optional[str] = typer.Option(None, "--textures", help="Comma-separated textures for the labels of --layout (label 0 first)."),
    seed: int = typer.Option(0, "--seed", help="Random seed: the same seed gives the same volume."),
    voxel_size: Optional[str] = typer.Option(None, "--voxel-size", help="Voxel size written to the file (default: the texture's, when known)."),
    model: str = typer.Option("rocks", "--model", "-m", help="Shipped texture model name or a checkpoint path."),
    tile: int = typer.Option(128, "--tile", help="Side of the decoded tiles in voxels (multiple of 8; bounds memory)."),
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
                                        help="Textures to learn: name=volume file, or name=porespy:spherepack (generated)."),
    out: Path = typer.Option(..., "--out", "-o", help="Checkpoint to write (.pt); also <out>.csv and <out>.png learning curve."),
    crop: int = typer.Option(64, "--crop", help="Training crop side in voxels (multiple of 8); larger than the pores."),
    iters: int = typer.Option(3000, "--iters", help="Total iterations."),
    batch: int = typer.Option(2, "--batch", help="Textures (crop pairs) per iteration."),
    eval_every: int = typer.Option(100, "--eval-every", help="Evaluate held-out porosity and specific surface every N iterations (best checkpoint kept as <out>.best.pt)."),
    save_every: int = typer.Option(100, "--save-every", help="Write the checkpoint every N iterations."),
    holdout: float = typer.Option(0.25, "--holdout", help="Fraction of each volume (last part along z) kept for evaluation."),
    lr: float = typer.Option(5e-5, "--lr", help="Adam learning rate of the generator, encoder and texture codes."),
    critic_lr: float = typer.Option(1e-4, "--critic-lr", help="Adam learning rate of the three critics."),
    warmup_iters: int = typer.Option(100, "--warmup-iters", help="First iterations with the statistics terms only (critics already train)."),
    porosity_weight: float = typer.Option(10.0, "--porosity-weight", help="Weight of the porosity term."),
    euler_weight: float = typer.Option(0.0, "--euler-weight", help="Weight of the Euler-density (3D connectivity) term (default off; see docs/synthesize.md)."),
    euler_textures: str = typer.Option("", "--euler-textures", metavar="NAME,…", help="Apply the Euler term to these textures only (default: all)."),
    critic_3d_weight: float = typer.Option(0.0, "--critic-3d-weight", help="Weight of a 3D patch critic on whole crops, which sees how pores connect (default off; see docs/synthesize.md)."),
    critic_3d_warmup: int = typer.Option(200, "--critic-3d-warmup", help="Iterations the new 3D critic trains alone before it reaches the generator."),
    critic_3d_lr: float = typer.Option(0.0, "--critic-3d-lr", help="Adam learning rate of the 3D critic (default: --critic-lr)."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    resume: bool = typer.Option(False, "--resume", help="Continue from --out if it exists."),
    init: Optional[Path] = typer.Option(None, "--init", help="Start from the network weights of another texture checkpoint."),
    deepen: str = typer.Option("0,0", "--deepen", metavar="D1,D2", help="Add D1 and D2 residual convolutions at 1/4 and 1/2 resolution to the generator (with --init: to the source's; zero-initialised, so a warm start begins at its output)."),
    grown_lr: float = typer.Option(0.0, "--grown-lr", help="Adam learning rate of the layers --deepen / --full-res add (default: --lr)."),
    full_res: int = typer.Option(0, "--full-res", metavar="F", help="Add a full-resolution output stage of F channels to the generator (with --init: to the source's; zero-initialised)."),
    full_res_noise: int = typer.Option(0, "--full-res-noise", metavar="N", help="N full-resolution noise maps for the --full-res stage, so it can draw random one-voxel detail (throats, specks)."),
    refine: int = typer.Option(0, "--refine", metavar="R", help="Add a refinement of R channels that reads the finished logit and corrects it locally (two full-resolution convolutions; zero-initialised; needs --full-res or a source that has it)."),
    out_fields: int = typer.Option(0, "--out-fields", metavar="K", help="A new generator whose pore logit is the minimum of K output fields: pores are the gaps of K overlapping solid phases, as between grains (from scratch only; default: one field)."),
    threads: int = typer.Option(1, "--threads", help="Torch CPU threads."),
    threshold: Optional[float] = options.Threshold,
    pore_value: str = options.PoreValue,
) -> None:
    """Train the multi-texture GAN (generator, encoder, three critics) on named volumes (resumable)."""
    import torch

    from rocksynth.errors import BadInputError
    from rocksynth.progress import log
    from rocksynth.training.texture import TrainSettings, train_texture as train
    from rocksynth.pipelines.synthesize import load_training_textures

    if iters < 1 or batch < 1 or eval_every < 1 or save_every < 1 or warmup_iters < 0 or not 0 < lr < 1 \
            or not 0 < critic_lr < 1 or euler_weight < 0 or critic_3d_weight < 0 or critic_3d_warmup < 0 \
            or not 0 <= critic_3d_lr < 1 or not 0 <= grown_lr < 1:
        raise BadInputError("--iters, --batch, --eval-every and --save-every must be positive, --warmup-iters, "
                            "--euler-weight, --critic-3d-weight and --critic-3d-warmup not negative, --lr and "
                            "--critic-lr in (0, 1), --critic-3d-lr and --grown-lr in [0, 1)")
    try:
        extra = tuple(int(part) for part in deepen.split(","))
    except ValueError:
        extra = ()
    if len(extra) != 2:
        raise BadInputError(f"--deepen {deepen!r}: give two whole numbers, e.g. 1,2")
    torch.set_num_threads(threads)
    textures = load_training_textures(sources, holdout=holdout, threshold=threshold, pore_value=pore_value)
    euler_names = tuple(name for name in euler_textures.split(",") if name)
    unknown = sorted(set(euler_names) - {t.name for t in textures})
    if unknown:
        raise BadInputError(f"--euler-textures: no texture named {', '.join(unknown)}; "
                            f"textures: {', '.join(t.name for t in textures)}")
    settings = TrainSettings(iters=iters, crop=crop, batch=batch, eval_every=eval_every, save_every=save_every,
                             holdout=holdout, seed=seed, lr_g=lr, lr_d=critic_lr, warmup_iters=warmup_iters,
                             porosity_weight=porosity_weight, euler_weight=euler_weight, euler_textures=euler_names,
                             critic_3d_weight=critic_3d_weight, critic_3d_warmup=critic_3d_warmup,
                             critic_3d_lr=critic_3d_lr, lr_grown=grown_lr)
    metrics = train(textures, out, settings, resume=resume, init=init, deepen=extra, full_res=full_res,
                    out_fields=out_fields, full_res_noise=full_res_noise, refine=refine)
    log(f"wrote {out} (learning curve {out.with_suffix('.csv')}, {out.with_suffix('.png')})")
    if metrics:
        log("held-out porosity, specific surface (real / generated): " + ", ".join(
            f"{t.name} {metrics[f'porosity_{t.name}_real']:.3f}/{metrics[f'porosity_{t.name}_generated']:.3f}, "
            f"{metrics[f'surface_{t.name}_real']:.3f}/{metrics[f'surface_{t.name}_generated']:.3f}"
            for t in textures))
