"""rocksynth's Python API: what each command does, on arrays, with typed arguments.

Every function here is importable from the package itself::

    import rocksynth

    volume = rocksynth.reconstruct(slice_mask, model="berea", depth=128)
    report = rocksynth.analyze(volume, voxel_size=5.345e-6)
    cube = rocksynth.synthesize((128, 128, 128), texture="ketton")

They run the same code as the commands (`rocksynth reconstruct`, ...), so a seed gives the same
output here as on the command line (`tests/test_api.py`). Files are read and written with
`rocksynth.io` (`read_volume`, `write_volume`, `open_lazy`, `read_video`, ...). Inputs that cannot
be used raise `rocksynth.errors.BadInputError` with a one-line message.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["analyze", "clean", "compare", "predict", "reconstruct", "synthesize"]


def reconstruct(slice_mask: np.ndarray, model: str = "berea", depth: int | None = None, seed: int = 0,
                calibrated: bool = False, device=None) -> np.ndarray:
    """A 3D volume whose central slice is the given 2D slice (`rocksynth reconstruct`).

    Parameters
    ----------
    slice_mask : ndarray of bool
        The slice, (y, x), True = pore; each side at least the smallest the model was trained or
        evaluated on (`LoadedModel.min_side`; 64 for the shipped model).
    model : str
        A shipped model ('berea', 'ketton'; see `rocksynth models`) or a checkpoint path.
    depth : int, optional
        Depth of the volume in voxels (default: the slice's height).
    seed : int
        Random seed: the same seed gives the same volume.
    calibrated : bool
        Threshold at the model's porosity calibration instead of probability 0.5.
    device : torch.device, optional
        Where the network runs (default: the CPU).

    Returns
    -------
    ndarray of bool
        (depth, y, x), True = pore; index depth // 2 is the input slice.
    """
    from rocksynth.pipelines.reconstruct import check_slice, load_model, reconstruct as _reconstruct

    mask = np.asarray(slice_mask, dtype=bool)
    loaded = load_model(model, calibrated=calibrated, device=device)
    check_slice(mask, loaded.min_side)
    volume, _ = _reconstruct(loaded.model, mask, depth=depth, seed=seed)
    return volume


def synthesize(shape: Sequence[int], texture: str = "berea", model: str = "rocks", seed: int = 0,
               device=None) -> np.ndarray:
    """A binary volume of one rock texture, of any shape (`rocksynth synthesize --texture`).

    Parameters
    ----------
    shape : sequence of 3 int
        (z, y, x) in voxels.
    texture : str
        A texture of the model (`rocksynth synthesize --list`).
    model : str
        A shipped texture model or a checkpoint path.
    seed : int
        Random seed: the same seed gives the same volume.
    device : torch.device, optional
        Where the generator runs (default: the CPU).

    Returns
    -------
    ndarray of bool
        The volume, True = pore.
    """
    from rocksynth.errors import BadInputError
    from rocksynth.pipelines.synthesize import code_field_for, load_texture_model, output_latent, stream_volume

    shape = tuple(int(n) for n in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise BadInputError(f"shape must be three positive sizes (z, y, x), got {shape}")
    loaded = load_texture_model(model, device)
    field, description = code_field_for(loaded, shape, texture=texture)
    collected = _Collector(shape)
    stream_volume(loaded.generator, output_latent(loaded, shape, seed, field, description), shape, collected)
    return collected.volume


class _Collector:
    """A volume writer into memory: `stream_volume` hands it slabs from top to bottom."""

    def __init__(self, shape):
        self.volume = np.empty(shape, dtype=bool)
        self._at = 0

    def write(self, slab: np.ndarray) -> None:
        self.volume[self._at:self._at + len(slab)] = slab
        self._at += len(slab)


def analyze(mask, voxel_size: float | None = None, only: tuple[str, ...] | None = None, **options) -> dict:
    """Porosity, S2, Minkowski functionals, pore sizes, pore network and permeability of a binary
    image or volume (`rocksynth analyze`); see `rocksynth.properties.report.analyze` for the
    options (`jobs`, `chunks`, `network`, `memory_limit`, `r_max`).

    Parameters
    ----------
    mask : array_like or dask.array.Array
        2D image or 3D volume, True / non-zero = pore. A dask array (`rocksynth.io.open_lazy`
        then `rocksynth.io.load_binary_lazy`) is measured chunk by chunk, out of core.
    voxel_size : float, optional
        Voxel size in metres; without it lengths are in voxels.
    only : tuple of str, optional
        Measures to compute: porosity, correlation, minkowski, psd, network, permeability.

    Returns
    -------
    dict
        The report, JSON-ready, with units, timings and notes.
    """
    from rocksynth.properties.report import analyze as _analyze

    return _analyze(mask, voxel_size, only=only, **options)


def compare(real: Sequence[np.ndarray], generated: Sequence[np.ndarray], voxel_size: float | None = None,
            with_permeability: bool = True, jobs: int = 2, bootstrap: int = 1000, seed: int = 0) -> dict:
    """Compare two sets of binary samples property by property (`rocksynth compare`): KDE and
    50-bin KL divergences with bootstrap errors, Wasserstein distances and real-vs-real floors.

    Parameters
    ----------
    real, generated : sequence of ndarray
        Binary images or volumes (True / non-zero = pore), all 2D or all 3D.
    voxel_size : float, optional
        Voxel size in metres of every sample; without it the properties are in voxel units.
    with_permeability : bool
        Also extract each sample's pore network and its permeability (3D).
    jobs : int
        Processes measuring the samples.
    bootstrap : int
        Bootstrap resamples for the KL standard deviations.
    seed : int
        Seed of the bootstrap and of the real-vs-real splits.

    Returns
    -------
    dict
        Counts, the property table, a small-sample warning (or None) and every sample's values.
    """
    from rocksynth.properties.compare import compare_samples

    def pairs(samples):
        return [(np.asarray(sample), voxel_size) for sample in samples]

    return compare_samples(pairs(real), pairs(generated), with_permeability=with_permeability, jobs=jobs,
                           resamples=bootstrap, seed=seed)


def predict(frames: np.ndarray, n_frames: int = 16, model: str = "scenes", seed: int = 0,
            temperature: float = 1.0, samples: int = 1, parallel: bool = True, steps: int = 8,
            device=None, fallback: bool = True) -> np.ndarray:
    """Continue a clip of frames (`rocksynth predict`).

    Parameters
    ----------
    frames : ndarray of uint8
        The context frames, (t, y, x) gray or (t, y, x, 3) colour.
    n_frames : int
        Frames to predict.
    model : str
        A shipped video model or a checkpoint path (`rocksynth models`).
    seed, temperature, samples, parallel, steps
        Sampling of a latent-transformer model: temperature 0 gives its most likely frames;
        `parallel` (the default, as the command's) decodes MaskGIT-style in `steps` steps, else
        code by code. A frame predictor is deterministic.
    device : torch.device, optional
        Where the networks run (default: the CPU).
    fallback : bool
        A frame predictor's change is scaled by the gain fitted on the context (`--fallback`,
        the default; `rocksynth.pipelines.predict.predict_clip`).

    Returns
    -------
    ndarray of uint8
        (samples, n_frames, y, x, c): the predicted frames at the input's size.
    """
    import torch

    from rocksynth.errors import BadInputError
    from rocksynth.pipelines.predict import load_predictor, predict_clip

    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = frames[..., None]
    if frames.ndim != 4 or frames.shape[-1] not in (1, 3) or frames.dtype != np.uint8:
        raise BadInputError(f"frames must be uint8 (t, y, x) or (t, y, x, 3), got {frames.dtype} {frames.shape}")
    torch.manual_seed(seed)  # as the command: before the model is loaded
    predicted, _ = predict_clip(frames, n_frames, load_predictor(model, device), temperature=temperature,
                                samples=samples, parallel=parallel, steps=steps, seed=seed, fallback=fallback)
    return predicted


def clean(image: np.ndarray, model: str = "drawings", threshold: float = 0.5, soft: bool = False,
          device=None) -> np.ndarray:
    """A scanned technical drawing made clean and binary (`rocksynth clean`).

    Parameters
    ----------
    image : ndarray
        Gray (y, x) or colour (y, x, 3) scan, uint8.
    model : str
        A shipped cleaning model or a checkpoint path.
    threshold : float
        Ink probability above which a pixel is ink, in (0, 1).
    soft : bool
        Return 255 * (1 - ink probability) instead of a binary image.
    device : torch.device, optional
        Where the network runs (default: the CPU).

    Returns
    -------
    ndarray of uint8
        (y, x): white (255) background, black (0) ink.
    """
    import torch

    from rocksynth.pipelines.clean import clean_image, load_cleaner

    cleaner = load_cleaner(model, threads=torch.get_num_threads(), device=device)  # keep the caller's threads
    return clean_image(np.asarray(image), cleaner, threshold=threshold, soft=soft)
