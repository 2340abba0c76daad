"""Video prediction: encode the context frames to codes, continue them with the latent
transformer, decode the new codes to frames.

Frames of another size than the model's are converted to it (and the prediction back to the
input's), and the user is told so on stderr. A gray clip given to a colour model is repeated on
its three channels and comes back gray; a colour clip given to a gray model is refused, since its
colour would be lost (`check_channels`).
"""

import os
import time
from pathlib import Path

import numpy as np
import torch

from rocksynth.devices import mixed_precision, module_device, to_numpy
from rocksynth.errors import BadInputError, RocksynthError
from rocksynth.progress import log, progress_bar


def load_predictor(model: str, device: "torch.device | None" = None):
    """(vqvae, transformer, checkpoint dict) of a shipped name or a checkpoint path, the networks on
    `device` (None: the CPU); for a frame predictor checkpoint (`train video --stage predictor`):
    (None, FramePredictor, checkpoint dict)."""
    from rocksynth.models.checkpoints import inference_models, load_checkpoint
    from rocksynth.pretrained.registry import resolve_model

    path = resolve_model(model, "video")
    payload = load_checkpoint(path, "video")
    models = {name: module.to(device or "cpu") for name, module in inference_models(payload).items()}
    if "predictor" in models:
        return None, models["predictor"], payload
    vqvae, transformer = models["vqvae"], models.get("transformer")
    if transformer is None:
        raise BadInputError(f"{path}: holds only a VQ-VAE; train its transformer first (rocksynth train video --stage transformer)")
    return vqvae, transformer, payload


def to_model_frames(frames: np.ndarray, size: int, channels: int) -> np.ndarray:
    """(t, y, x, c) uint8 -> float32 (t, channels, size, size) in [0, 1]."""
    from skimage.transform import resize

    x = _as_channels(frames, channels)
    if x.shape[1:3] != (size, size):
        x = resize(x, (x.shape[0], size, size, channels), order=1, anti_aliasing=True, preserve_range=True)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2), dtype=np.float32)


def from_model_frames(x: np.ndarray, height: int, width: int, channels: int) -> np.ndarray:
    """float (t, C, s, s) in [0, 1] -> uint8 (t, height, width, channels)."""
    from skimage.transform import resize

    x = x.transpose(0, 2, 3, 1)
    if x.shape[1:3] != (height, width):
        x = resize(x, (x.shape[0], height, width, x.shape[3]), order=1, preserve_range=True)
    if channels == 3 and x.shape[-1] == 1:
        x = np.repeat(x, 3, -1)
    elif channels == 1 and x.shape[-1] == 3:
        x = x.mean(-1, keepdims=True)
    return np.clip(np.round(x * 255), 0, 255).astype(np.uint8)


@torch.no_grad()
def predict_frames(vqvae, transformer, context: np.ndarray, n_frames: int, temperature: float = 1.0,
                   parallel: bool = False, steps: int = 8, samples: int = 1, seed: int = 0) -> np.ndarray:
    """context float (t0, C, s, s) in [0, 1] -> predicted frames float (samples, n_frames, C, s, s).

    Samples are drawn as one batch; the same seed gives the same output. The networks run on their
    device; the random numbers are drawn on the CPU, the same on every device."""
    generator = torch.Generator().manual_seed(seed)
    device = module_device(transformer)
    # Encoding stays in float32: the nearest-code search subtracts large squared norms.
    codes = vqvae.encode(torch.from_numpy(context).to(device))  # (t0, h, w, P)
    window = codes.unsqueeze(0).expand(samples, *codes.shape)
    predicted = []
    with progress_bar(n_frames, "predict frames") as bar, mixed_precision(device):
        # Frame by frame, so the progress bar moves.
        for nxt in transformer.stream(window, n_frames, temperature=temperature,
                                      parallel=parallel, steps=steps, generator=generator):
            predicted.append(vqvae.decode(nxt))
            bar.advance(1)
    return to_numpy(torch.stack(predicted, 1))


def predict_file(clip, out, context: int = 5, n_frames: int = 16, model: str = "scenes", seed: int = 0,
                 temperature: float = 1.0, samples: int = 1, parallel: bool = False, steps: int = 8,
                 fps=None, device: "torch.device | None" = None, fallback: bool = True, start: int = 0) -> dict:
    """Read a video, predict `n_frames` after its `context` frames from frame `start` (negative:
    counted from the end, so -context continues the clip past its end) on `device` (None: the
    CPU), write context + prediction; `fallback`: see `predict_clip`."""
    from rocksynth.io.paths import check_input_file, prepare_outputs
    from rocksynth.io.videos import frame_slice, mp4_rate, read_video, video_output_kind, write_video

    if context < 1:
        raise BadInputError("--context must be at least 1 frame")
    _check_settings(n_frames, samples, temperature, parallel, steps)
    if str(clip) != "-":
        check_input_file(clip)  # registered as an input before the outputs are checked against it
    kind = video_output_kind(out)  # an unknown output type is refused before the model runs
    if kind == "mp4" and fps is not None:
        mp4_rate(fps, "--fps")  # a rate an MP4 cannot hold is refused before the model runs too
    out = _folder_path(out, kind)
    targets = [str(p) for p in prepare_outputs(_sample_paths(out, samples))]  # every sample's name, before any is written
    torch.manual_seed(seed)
    loaded = load_predictor(model, device)
    video = read_video(clip, frame_slice(start, context))  # a long clip or a large stack is not decoded whole
    if video.total == 1 and context > 1:
        raise BadInputError(f"{clip}: is one image, not a sequence of frames; continue it with --context 1")
    if video.frames.shape[0] < context:
        raise BadInputError(f"{clip}: has {video.total} frames, fewer than --context {context}" if start == 0 else
                            f"{clip}: has {video.total} frames, so fewer than --context {context} from frame "
                            f"{video.first} on (--start {start})")
    frames = video.frames[:context]
    predicted, info = predict_clip(frames, n_frames, loaded, temperature=temperature, samples=samples,
                                   parallel=parallel, steps=steps, seed=seed, fallback=fallback)
    # On stdout a TIFF stack in, or binary frames (which H.264 would blur), go out as a TIFF stack.
    stdout = "tiff" if video.kind == "tiff" or info.get("binary") else "mp4"
    for path, sample in zip(targets, predicted):
        # A stack's voxel size goes with its predicted slices (a TIFF output keeps it).
        write_video(path, np.concatenate([frames, sample]), fps=fps or video.fps, voxel_size=video.voxel_size,
                    stdout=stdout)
        log(f"wrote {path}: {context} context + {n_frames} predicted frames"
            + (f" at {frames.shape[2]}x{frames.shape[1]}" if info["decoding"] == "deterministic" else ""))
    return {"outputs": targets, "context_frames": context, "predicted_frames": n_frames, **info}


def predict_clip(frames: np.ndarray, n_frames: int, loaded, temperature: float = 1.0, samples: int = 1,
                 parallel: bool = False, steps: int = 8, seed: int = 0,
                 fallback: bool = True) -> "tuple[np.ndarray, dict]":
    """Continue a clip by `n_frames` frames.

    Parameters
    ----------
    frames : ndarray of uint8
        The context frames, (t, y, x, c) with c = 1 or 3.
    n_frames : int
        Frames to predict.
    loaded : tuple
        `load_predictor`'s (vqvae, transformer, checkpoint) or (None, frame predictor, checkpoint).
    temperature, samples, parallel, steps, seed
        Sampling of the latent transformer (a frame predictor is deterministic: one sample).
    fallback : bool
        A frame predictor's change over the last frame is scaled by the gain fitted on the
        context (`FramePredictor.context_gain`): towards repeating the last frame where the
        network mispredicts the clip's own frames. False: the network as is.

    Returns
    -------
    predicted : ndarray of uint8
        (samples, n_frames, y, x, c), at the input's size and channels. A binary clip (one
        channel, only 0 and 255 or only 0 and 1: segmented micro-CT slices, `binary_pore_value`)
        gets binary frames in its own two values, with the last context frame's pore fraction
        (`binarize_keeping_porosity`).
    info : dict
        Samples, decoding, seconds, frames per second and frame sizes (and a frame predictor's
        ``gain``; ``binary`` True for a binary clip).
    """
    _check_settings(n_frames, samples, temperature, parallel, steps)
    pore = binary_pore_value(frames)
    # The models know binary frames as 0/255: a 0/1 stack (1 = pore) is shown to them as 0/255,
    # and its prediction given back in 0/1, the values of the context frames written with it.
    model_frames = frames * np.uint8(255) if pore == 1 else frames
    predicted, info = _predict_frames(model_frames, n_frames, loaded, temperature, samples, parallel, steps, seed,
                                      fallback)
    if pore is None:
        return predicted, info
    return _binarize_like(frames, predicted, pore), dict(info, binary=True)


def _predict_frames(frames: np.ndarray, n_frames: int, loaded, temperature: float, samples: int, parallel: bool,
                    steps: int, seed: int, fallback: bool) -> "tuple[np.ndarray, dict]":
    """`predict_clip` with the model's own frames as output (not made binary)."""
    vqvae, transformer, payload = loaded
    if vqvae is None:
        if temperature != 1.0:
            log("this model is deterministic: --temperature does not apply to it")
        return _predict_deterministic(transformer, frames, n_frames, samples, fallback)
    context = frames.shape[0]
    size, channels = payload["config"]["frame"]["size"], payload["config"]["frame"]["channels"]
    height, width, in_channels = frames.shape[1:]
    check_channels(in_channels, channels)
    _check_memory(samples * n_frames * channels * size * size * 4  # predicted frames, float32
                  + samples * n_frames * height * width * in_channels  # at the input's size, uint8
                  + (context + n_frames) * height * width * in_channels * 5, n_frames, samples)  # one output
    if (height, width) != (size, size):
        log(f"frames are {width}x{height}: resized to the model's {size}x{size} and the prediction back to {width}x{height}")
    max_context = transformer.frames - 1
    if context > max_context:
        log(f"the model sees at most {max_context} frames at once: the prediction is primed on the last {max_context}")
    model_in = to_model_frames(frames, size, channels)[-max_context:]
    started = time.time()
    predicted = predict_frames(vqvae, transformer, model_in, n_frames, temperature=temperature, parallel=parallel,
                               steps=steps, samples=samples, seed=seed)
    elapsed = time.time() - started
    if not np.isfinite(predicted).all():
        raise RocksynthError("the model produced non-finite frames; the checkpoint may be damaged")
    mode = f"parallel, {steps} steps" if parallel else "sequential"
    log(f"{samples * n_frames} frames predicted in {elapsed:.1f} s ({samples * n_frames / elapsed:.1f} frames/s, {mode})")
    out = np.stack([from_model_frames(sample, height, width, in_channels) for sample in predicted])
    return out, {
        "samples": samples, "decoding": "parallel" if parallel else "sequential", "seconds": round(elapsed, 3),
        "frames_per_second": round(samples * n_frames / elapsed, 3), "model_frame_size": size,
        "input_frame_size": [height, width]}


def binary_pore_value(frames: np.ndarray) -> "int | None":
    """255 or 1 if `frames` are binary (one channel holding only 0 and 255, or only 0 and 1, the
    higher value pore, as segmented micro-CT slices are), else None. All-0 frames count as 0/255."""
    if frames.shape[-1] != 1:
        return None
    pore = int(frames.max()) or 255
    if pore not in (1, 255) or not ((frames == 0) | (frames == pore)).all():
        return None
    return pore


def _binarize_like(frames: np.ndarray, predicted: np.ndarray, pore: int) -> np.ndarray:
    """Binary `predicted` frames (0 and `pore`) for the binary context `frames`, so that a segmented
    stack is continued by segmented slices (`binarize_keeping_porosity`, at the last context
    frame's pore fraction)."""
    fraction = float((frames[-1] == pore).mean())
    log(f"binary input (0 and {pore} only): each predicted frame is made binary with the last context frame's "
        f"fraction of {pore} ({fraction:.3f})")
    binary = binarize_keeping_porosity(predicted[..., 0], fraction)
    return np.where(binary, pore, 0).astype(np.uint8)[..., None]


def binarize_keeping_porosity(frames: np.ndarray, fraction: float, seed: int = 0) -> np.ndarray:
    """Binary frames with a given fraction of True: in each frame (the last two axes) the
    round(fraction * pixels) pixels of highest value.

    A model that predicts the conditional mean blurs as it rolls out, and a fixed threshold of
    one half then loses the uncertain pores: the porosity of predicted rock slices fell from 0.15
    to 0.10 within 10 slices. Keeping the fraction of the last known slice keeps the porosity of a
    stationary rock. Ties (clamped values, uint8 levels) are broken in a seeded random order, not
    in raster order, so no part of the frame is favoured.

    Parameters
    ----------
    frames : ndarray
        (..., H, W) values, higher for True (pore).
    fraction : float
        Fraction of True pixels in each frame, in [0, 1].
    seed : int
        Seed of the tie-breaking order.

    Returns
    -------
    ndarray of bool
        The shape of `frames`.
    """
    flat = frames.reshape(-1, frames.shape[-2] * frames.shape[-1])
    count = int(round(min(max(fraction, 0.0), 1.0) * flat.shape[1]))
    ties = np.random.default_rng(seed).random(flat.shape[1])
    out = np.zeros(flat.shape, dtype=bool)
    for row, values in zip(out, flat):
        row[np.lexsort((ties, -values.astype(np.float64)))[:count]] = True
    return out.reshape(frames.shape)


def _check_settings(n_frames: int, samples: int, temperature: float, parallel: bool, steps: int) -> None:
    if n_frames < 1:
        raise BadInputError("--frames must be at least 1")
    if samples < 1:
        raise BadInputError("--samples must be at least 1")
    if temperature < 0:
        raise BadInputError("--temperature must be >= 0")
    if parallel and steps < 1:
        raise BadInputError("--steps must be at least 1")


@torch.no_grad()
def _predict_deterministic(predictor, frames: np.ndarray, n_frames: int, samples: int,
                           fallback: bool = True) -> "tuple[np.ndarray, dict]":
    """A frame-predictor checkpoint: one prediction at the clip's own size (fully convolutional),
    its change over the last frame scaled by the context's gain when `fallback`."""
    if samples > 1:
        raise BadInputError("this model is deterministic and gives one prediction; --samples needs a "
                            "latent-transformer model (e.g. --model shapes)")
    context, height, width, in_channels = frames.shape
    check_channels(in_channels, predictor.channels)
    _check_memory((context + n_frames) * height * width * max(in_channels, predictor.channels) * 4 * 3, n_frames, 1)
    x = torch.from_numpy(np.ascontiguousarray(_as_channels(frames, predictor.channels).transpose(0, 3, 1, 2)))
    device = module_device(predictor)
    started = time.time()
    with mixed_precision(device):
        clip = x[None].to(device)
        gain = predictor.context_gain(clip) if fallback else None
        predicted = to_numpy(predictor.rollout(clip, n_frames, gain=gain)[0])
    elapsed = time.time() - started
    gain = 1.0 if gain is None else float(gain[0])
    if fallback and context <= predictor.context:
        log(f"the gain on the network's change is 1: a context of {context} frames leaves none to fit it on "
            f"(the model reads {predictor.context}; give --context {predictor.context + 1} or more)")
    elif fallback:
        log(f"the network's change over the last frame is scaled by {gain:.2f}, the gain that best predicts "
            "the last context frame from those before it (1: the network as is, 0: repeat the last frame)")
    log(f"{n_frames} frames predicted in {elapsed:.1f} s ({n_frames / elapsed:.1f} frames/s, deterministic)")
    return from_model_frames(predicted, height, width, in_channels)[None], {
        "samples": 1, "decoding": "deterministic", "seconds": round(elapsed, 3),
        "frames_per_second": round(n_frames / elapsed, 3), "input_frame_size": [height, width], "gain": gain}


def check_channels(clip_channels: int, model_channels: int) -> None:
    """Refuse a colour clip for a gray model (the prediction would lose its colour); say on
    stderr that a gray clip is repeated on a colour model's three channels."""
    if clip_channels == 3 and model_channels == 1:
        raise BadInputError("the clip is in colour and this model is gray, so its colour would be lost: "
                            "use a colour model (--model scenes), or convert the clip to gray first")
    if clip_channels == 1 and model_channels == 3:
        log("the clip is gray: its frames are repeated on the colour model's three channels, and the "
            "prediction is written back in gray")


def _as_channels(frames: np.ndarray, channels: int) -> np.ndarray:
    """uint8 (t, y, x, c) -> float32 (t, y, x, channels) in [0, 1]: colour averaged to gray, or gray repeated."""
    x = frames.astype(np.float32) / 255
    if channels == 1 and x.shape[-1] == 3:
        x = x.mean(-1, keepdims=True)
    elif channels == 3 and x.shape[-1] == 1:
        x = np.repeat(x, 3, -1)
    return x


def _check_memory(nbytes: int, n_frames: int, samples: int) -> None:
    """Refuse a prediction whose frames would not fit in the memory available now."""
    import psutil

    available = psutil.virtual_memory().available
    if nbytes > available:
        raise BadInputError(f"--frames {n_frames} x --samples {samples} needs about {nbytes / 1e9:.3g} GB of memory, "
                            f"{available / 1e9:.3g} GB is available; predict fewer frames")


def _folder_path(out, kind: str) -> str:
    """`out` as a folder path (ending in '/') when it is written as a folder, so that an existing
    empty folder named without the '/' is taken as one, not as a file the folder would replace."""
    text = str(out)
    return text + "/" if kind == "folder" and not text.endswith(("/", os.sep)) else text


def _sample_paths(out, samples: int) -> "list[str]":
    if samples == 1:
        return [str(out)]
    if str(out) == "-":
        raise BadInputError("--samples > 1 needs a file or folder --out, not stdout")
    text = str(out)
    if text.endswith("/"):
        return [f"{text.rstrip('/')}_{i}/" for i in range(1, samples + 1)]
    path = Path(text)
    return [str(path.with_name(f"{path.stem}_{i}{path.suffix}")) for i in range(1, samples + 1)]
