"""Sets of rock samples for `compare`: files and folders read as binary masks, optionally cut
into random crops."""

from pathlib import Path

import numpy as np

from rocksynth.errors import BadInputError

_VOLUME_SUFFIXES = (".tif", ".tiff", ".npy", ".raw", ".png")


def random_crops(volume: np.ndarray, count: int, size: int, rng: np.random.Generator) -> "list[np.ndarray]":
    """`count` cubes (squares in 2D) of side `size` at uniformly random positions.

    Parameters
    ----------
    volume : numpy.ndarray
        The image to cut.
    count, size : int
        Number of crops and their side in voxels.
    rng : numpy.random.Generator
        Source of the positions (the same seed gives the same crops).

    Returns
    -------
    list of numpy.ndarray
        Contiguous copies.
    """
    if any(s < size for s in volume.shape):
        raise BadInputError(f"--crop-size {size} is larger than the volume {volume.shape}")
    crops = []
    for _ in range(count):
        start = [int(rng.integers(0, s - size + 1)) for s in volume.shape]
        crops.append(np.ascontiguousarray(volume[tuple(slice(a, a + size) for a in start)]))
    return crops


def collect_samples(paths, crops: "int | None", crop_size: int, seed: int, threshold=None, pore_value="auto",
                    voxel_size=None) -> "list[tuple[np.ndarray, float | None]]":
    """(mask, voxel size) samples from files and folders, optionally cut into random crops.

    A folder whose files are 3D volumes gives one sample per file; any other folder is read as
    one volume made of its slices.

    Parameters
    ----------
    paths : list of str
        Files, folders, or '-' (stdin).
    crops : int, optional
        Cut this many random crops from every volume (None: each volume is one sample).
    crop_size : int
        Side of the crops in voxels.
    seed : int
        Seed of the crop positions.
    threshold, pore_value, voxel_size
        As `rocksynth.io.load_binary_volume`.

    Returns
    -------
    list of (numpy.ndarray, float or None)
    """
    from rocksynth.io.binary import load_binary_volume
    from rocksynth.io.paths import check_input_file

    files: "list[str]" = []
    for path in paths:
        if path != "-" and Path(path).is_dir() and _holds_volumes(Path(path)):
            files += [str(p) for p in sorted(Path(path).iterdir()) if p.suffix.lower() in _VOLUME_SUFFIXES]
        else:
            if path != "-":
                check_input_file(path)
            files.append(path)
    rng = np.random.default_rng(seed)
    samples = []
    for name in files:
        mask, size = load_binary_volume(name, threshold=threshold, pore_value=pore_value, voxel_size=voxel_size,
                                        allow_2d=True, crop_flag=None)  # compare has no --crop
        if crops:
            samples += [(crop, size) for crop in random_crops(mask, crops, crop_size, rng)]
        else:
            samples.append((mask, size))
    if not samples:
        raise BadInputError(f"no samples found in {', '.join(map(str, paths))}")
    return samples


def _holds_volumes(folder: Path) -> bool:
    """Whether a folder holds volume files (its first .npy/.tif is 3D) rather than 2D slices.

    Read from the header alone; a damaged first file is the user's bad input (exit 2)."""
    from rocksynth.io.volumes import declared_ndim

    for path in sorted(folder.iterdir()):
        if path.suffix.lower() in (".npy", ".tif", ".tiff"):
            return declared_ndim(path) == 3
    return False
