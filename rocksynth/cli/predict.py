"""`rocksynth predict` (continue a video with the latent video transformer) and `rocksynth train video`."""

import json
from pathlib import Path
from typing import List, Optional

import typer

from rocksynth.cli import options


def predict(
    clip: str = typer.Argument(..., help="Input video: MP4, folder of frames or TIFF stack ('-' = stdin)."),
    out: str = typer.Option(..., "--out", "-o", help="Output: .mp4, .tif stack or a folder (ends in /); context + predicted frames."),
    context: int = typer.Option(5, "--context", help="Number of input frames the prediction is primed on (1 = video from one image)."),
    frames: int = typer.Option(16, "--frames", help="Number of frames to predict."),
    model: str = typer.Option("shapes", "--model", help="Shipped model name (shapes, rocks) or a checkpoint path."),
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same output)."),
    temperature: float = typer.Option(1.0, "--temperature", help="Sampling temperature; 0 = most likely code each time."),
    samples: int = typer.Option(1, "--samples", help="Number of independent continuations; N > 1 writes NAME_1.ext ... NAME_N.ext."),
    parallel: bool = typer.Option(True, "--parallel/--sequential", help="MaskGIT-style parallel decoding of each frame (default: 3-4x faster and, measured, no worse on PSNR/SSIM than one sequential sample; docs/predict.md) or code-by-code sequential sampling."),
    steps: int = typer.Option(8, "--steps", help="Parallel decoding rounds per frame."),
    fps: Optional[float] = typer.Option(None, "--fps", help="Frame rate of an MP4 output (default: the input's)."),
    as_json: bool = options.Json,
) -> None:
    """Predict the next frames of a video (or the next slices of an image stack)."""
    from rocksynth.pipelines.predict import predict_file

    summary = predict_file(clip, out, context=context, n_frames=frames, model=model, seed=seed,
                           temperature=temperature, samples=samples, parallel=parallel, steps=steps, fps=fps)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))


def train_video(
    data: List[str] = typer.Argument(None, help="Procedural sets (balls, shapes, moving) and/or MP4s, frame folders, TIFF stacks."),
    stage: str = typer.Option(..., "--stage", help="vqvae (frame autoencoder, first) or transformer (needs --vqvae or --resume)."),
    out: Path = typer.Option(..., "--out", "-o", help="Checkpoint to write (a CSV learning curve is written beside it)."),
    iters: int = typer.Option(1500, "--iters", help="Total iterations of this stage (resume continues up to it)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the checkpoint at --out."),
    vqvae: Optional[Path] = typer.Option(None, "--vqvae", help="Transformer stage: the checkpoint of the trained VQ-VAE."),
    size: int = typer.Option(64, "--size", help="VQ-VAE: frame side in pixels (training clips are crops of this size)."),
    channels: int = typer.Option(1, "--channels", help="VQ-VAE: 1 (gray) or 3 (RGB)."),
    n_down: int = typer.Option(3, "--downsample", help="VQ-VAE: number of 2x downsamplings (latent side = size / 2**N)."),
    widths: str = typer.Option("32,64,64", "--widths", help="VQ-VAE: channel width of each downsampling stage."),
    parts: int = typer.Option(2, "--parts", help="VQ-VAE: n_c, codebooks the latent channels are split into."),
    codes: int = typer.Option(64, "--codes", help="VQ-VAE: K, codes per codebook (<= 256)."),
    clip_frames: int = typer.Option(8, "--clip-frames", help="Transformer: frames per training clip (its window)."),
    dim: int = typer.Option(128, "--dim", help="Transformer: width."),
    layers: int = typer.Option(4, "--layers", help="Transformer: number of blocks."),
    batch: int = typer.Option(0, "--batch", help="Batch size (0 = 32 frames for the VQ-VAE, 12 clips for the transformer)."),
    lr: float = typer.Option(0.0, "--lr", help="Learning rate (0 = 1e-3 VQ-VAE, 5e-4 transformer)."),
    pool: int = typer.Option(0, "--pool", help="Training clips drawn up front (0 = 2000 VQ-VAE, 4000 transformer)."),
    eval_every: int = typer.Option(100, "--eval-every", help="Held-out evaluation and checkpoint every N iterations."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
) -> None:
    """Train the latent video model: --stage vqvae first, then --stage transformer."""
    import torch

    from rocksynth.errors import BadInputError
    from rocksynth.training import video

    torch.set_num_threads(1)
    data = list(data or [])
    if stage == "vqvae":
        if not data and not resume:
            raise BadInputError("give DATA: a procedural set (balls, shapes, moving) or videos / TIFF stacks")
        if not 2 <= codes <= 256:
            raise BadInputError("--codes must be between 2 and 256")
        try:
            width_list = [int(w) for w in widths.split(",")]
        except ValueError:
            raise BadInputError(f"--widths {widths!r}: expected comma-separated integers like 32,64,64") from None
        if len(width_list) != n_down:
            raise BadInputError(f"--widths needs {n_down} values, one per downsampling")
        video.train_vqvae(data, out, iters=iters, size=size, channels=channels, n_down=n_down, widths=width_list,
                          n_parts=parts, n_codes=codes, batch=batch or 32, lr=lr or 1e-3, clip_frames=clip_frames,
                          pool=pool or 2000, eval_every=eval_every, resume=resume, seed=seed)
    elif stage == "transformer":
        video.train_transformer(data, out, vqvae_checkpoint=vqvae, iters=iters, frames=clip_frames, dim=dim,
                                layers=layers, batch=batch or 12, lr=lr or 5e-4, pool=pool or 4000,
                                eval_every=eval_every, resume=resume, seed=seed)
    else:
        raise BadInputError(f"--stage {stage!r}: choose vqvae or transformer")
