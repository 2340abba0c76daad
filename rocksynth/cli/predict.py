"""`rocksynth predict` (continue a video or an image stack: the frame predictor or a latent video transformer) and `rocksynth train video`."""

import json
from pathlib import Path
from typing import List, Optional

import typer

from rocksynth.cli import options
from rocksynth.cli.config import configurable


def predict(
    clip: str = typer.Argument(..., help="Input video: MP4, folder of frames or TIFF stack ('-' = stdin)."),
    out: str = typer.Option(..., "--out", "-o", help="Output: .mp4, .tif stack or a folder (ends in /); context + predicted frames."),
    context: int = options.positive_int(5, "--context", help="Number of input frames the prediction is primed on (1 = video from one image)."),
    start: int = typer.Option(0, "--start", help="Index of the first context frame; negative counts from the end (--start -5 --context 5: the last 5 frames, so the prediction continues past the clip's end)."),
    frames: int = options.positive_int(16, "--frames", help="Number of frames to predict."),
    model: str = typer.Option("scenes", "--model", help="Shipped model (scenes: video, colour or gray; rocks: segmented micro-CT slices; both any frame size, one deterministic prediction; shapes: a latent transformer that samples, at 64x64) or a checkpoint path."),
    seed: int = options.seed_option("Random seed (same seed, same output)."),
    temperature: float = options.number(1.0, "--temperature", min=0, help="Sampling temperature; 0 = most likely code each time."),
    samples: int = options.positive_int(1, "--samples", help="Number of independent continuations; N > 1 writes NAME_1.ext ... NAME_N.ext."),
    parallel: bool = typer.Option(True, "--parallel/--sequential", help="MaskGIT-style parallel decoding of each frame (default: 3-4x faster and, measured, no worse on PSNR/SSIM than one sequential sample; docs/predict.md) or code-by-code sequential sampling."),
    steps: int = options.positive_int(8, "--steps", help="Parallel decoding rounds per frame."),
    fallback: bool = typer.Option(True, "--fallback/--no-fallback", help="Frame predictors (scenes, rocks): scale the predicted change over the last frame by the gain that best predicts the last context frame from those before it, so a scene the network mispredicts falls back towards repeating the last frame (needs a --context longer than the model's 4 frames; docs/predict.md)."),
    fps: Optional[float] = options.number(None, "--fps", min=0, min_open=True, help="Frame rate of an MP4 output, 0.0001 to 1e6 (default: the input's)."),
    device: str = options.Device,
    as_json: bool = options.Json,
) -> None:
    """Predict the next frames of a video (or the next slices of an image stack)."""
    from rocksynth.errors import BadInputError
    from rocksynth.pipelines.predict import predict_file

    if as_json and out == "-":
        raise BadInputError("--json and --out - both use stdout; pick one")
    summary = predict_file(clip, out, context=context, n_frames=frames, model=model, seed=seed,
                           temperature=temperature, samples=samples, parallel=parallel, steps=steps, fps=fps,
                           device=options.parse_device(device), fallback=fallback, start=start)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))


@configurable()
def train_video(
    data: List[str] = typer.Argument(None, help="Procedural sets (balls, shapes, moving: gray; scenes: colour) and/or MP4s, frame folders, TIFF stacks."),
    stage: str = typer.Option(..., "--stage", help="vqvae (frame autoencoder, first), transformer (needs --vqvae or --resume), or predictor (a deterministic convolutional next-frame model, on its own)."),
    out: str = typer.Option(..., "--out", "-o", help="Checkpoint to write (a CSV learning curve is written beside it)."),
    iters: int = options.positive_int(1500, "--iters", help="Total iterations of this stage (resume continues up to it)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the checkpoint at --out."),
    vqvae: Optional[Path] = typer.Option(None, "--vqvae", help="Transformer stage: the checkpoint of the trained VQ-VAE."),
    size: int = options.number(64, "--size", min=2, help="VQ-VAE: frame side in pixels, a multiple of 2**--downsample (training clips are crops of this size)."),
    channels: int = options.number(1, "--channels", min=1, max=3, help="VQ-VAE: 1 (gray) or 3 (RGB)."),
    n_down: int = options.number(3, "--downsample", min=1, max=10, help="VQ-VAE: number of 2x downsamplings (latent side = size / 2**N)."),
    widths: str = typer.Option("32,64,64", "--widths", help="VQ-VAE: channel width of each downsampling stage."),
    parts: int = options.positive_int(2, "--parts", help="VQ-VAE: n_c, codebooks the latent channels are split into."),
    codes: int = options.number(64, "--codes", min=2, max=256, help="VQ-VAE: K, codes per codebook."),
    clip_frames: int = options.number(8, "--clip-frames", min=2, help="Transformer: frames per training clip (its window)."),
    dim: int = options.number(128, "--dim", min=4, help="Transformer: width (a multiple of its 4 attention heads)."),
    layers: int = options.positive_int(4, "--layers", help="Transformer: number of blocks."),
    batch: int = options.number(0, "--batch", min=0, help="Batch size (0 = 32 frames for the VQ-VAE, 12 clips for the transformer)."),
    lr: float = options.learning_rate(0.0, "--lr", zero_means_default=True, help="Learning rate (0 = 1e-3 VQ-VAE, 5e-4 transformer)."),
    pool: int = options.number(0, "--pool", min=0, help="Training clips drawn up front (0 = 2000 VQ-VAE, 4000 transformer)."),
    eval_every: int = options.positive_int(100, "--eval-every", help="Held-out evaluation and checkpoint every N iterations."),
    init: Optional[str] = typer.Option(None, "--init", help="Predictor: start a new run from this predictor's weights (a checkpoint or a shipped name, e.g. scenes), with a fresh optimiser and a learning-rate ramp; --iters then counts on from its iterations. Its network, frame size and data (unless DATA is given) are kept."),
    warp: bool = typer.Option(False, "--warp", help="Predictor: also predict a flow field and move the last frame's pixels along it (sharper moving objects); with --init, added to that network."),
    loss: str = typer.Option("mse", "--loss", help="Predictor: mse; sharp (mean absolute error plus the gradient difference loss: sharper moving objects than the MSE's blurred mean); objects (the MSE plus a term for every true object the prediction does not show near its place, whatever its size and contrast; scenes data only); or motion (the MSE plus the distance between the predicted flow and the generator's true motion; adds the flow head; scenes data only)."),
    seed: int = options.seed_option("Random seed."),
    time_budget: Optional[str] = options.time_budget_option(),
    device: str = options.TrainDevice,
    config: Optional[Path] = options.config_option(),
) -> None:
    """Train the latent video model (--stage vqvae first, then --stage transformer) or the deterministic
    frame predictor (--stage predictor: --size, --channels, --widths (three), --layers (residual blocks),
    --clip-frames (4 context frames + the frames it is rolled out over in training))."""
    from rocksynth.errors import BadInputError
    from rocksynth.io.paths import check_input_file
    from rocksynth.training.outputs import video_plan

    if stage not in ("vqvae", "transformer", "predictor"):
        raise BadInputError(f"--stage {stage!r}: choose vqvae, transformer or predictor")
    budget = options.parse_duration(time_budget)
    place = options.parse_device(device)
    data = list(data or [])
    if (init is not None or warp or loss != "mse") and stage != "predictor":
        raise BadInputError("--init, --warp and --loss are for --stage predictor")
    if stage == "predictor":
        if not data and not resume and init is None:
            raise BadInputError("give DATA: a procedural set (balls, shapes, moving, scenes) or videos / TIFF stacks")
        width_list = _widths(widths, 3)
        if clip_frames < PREDICTOR_CONTEXT + 1:
            raise BadInputError(f"--clip-frames must be at least {PREDICTOR_CONTEXT + 1} for the predictor "
                                f"({PREDICTOR_CONTEXT} context frames and at least one to predict)")
    elif stage == "vqvae":
        if not data and not resume:
            raise BadInputError("give DATA: a procedural set (balls, shapes, moving, scenes) or videos / TIFF stacks")
        if channels == 2:
            raise BadInputError("--channels must be 1 (gray) or 3 (RGB)")
        width_list = _widths(widths, n_down)
        if size % (2 ** n_down):
            raise BadInputError(f"--size {size} must be a multiple of {2 ** n_down} (2**--downsample)")
    elif dim % 4:
        raise BadInputError(f"--dim {dim} must be a multiple of 4 (the attention heads)")
    # Inputs first (so no output may replace one), then every output, all before any work.
    for item in data:
        if Path(item).exists():
            check_input_file(item)
    if vqvae is not None:
        check_input_file(vqvae)
    plan = video_plan(out, resume, stage).check()

    import torch

    from rocksynth.training import video

    torch.set_num_threads(1)
    if stage == "predictor":
        from rocksynth.training.predictor import train_predictor

        train_predictor(data, plan.checkpoint, iters=iters, size=size, channels=channels, context=PREDICTOR_CONTEXT,
                        widths=width_list, blocks=layers, rollout=clip_frames - PREDICTOR_CONTEXT, batch=batch or 8,
                        lr=lr or 1e-3, pool=pool or 2000, eval_every=eval_every, resume=resume, seed=seed,
                        time_budget=budget, device=place, init=init, warp=warp, loss=loss)
    elif stage == "vqvae":
        video.train_vqvae(data, plan.checkpoint, iters=iters, size=size, channels=channels, n_down=n_down,
                          widths=width_list, n_parts=parts, n_codes=codes, batch=batch or 32, lr=lr or 1e-3,
                          clip_frames=clip_frames, pool=pool or 2000, eval_every=eval_every, resume=resume, seed=seed,
                          time_budget=budget)
    else:
        video.train_transformer(data, plan.checkpoint, vqvae_checkpoint=vqvae, iters=iters, frames=clip_frames, dim=dim,
                                layers=layers, batch=batch or 12, lr=lr or 5e-4, pool=pool or 4000,
                                eval_every=eval_every, resume=resume, seed=seed, time_budget=budget)


PREDICTOR_CONTEXT = 4  # frames the deterministic predictor reads


def _widths(text: str, count: int) -> "list[int]":
    from rocksynth.errors import BadInputError

    try:
        values = [int(w) for w in text.split(",")]
    except ValueError:
        raise BadInputError(f"--widths {text!r}: expected comma-separated integers like 32,64,64") from None
    if len(values) != count or min(values) < 1:
        raise BadInputError(f"--widths needs {count} positive values")
    return values
