"""Clean scanned drawings with the U-Net: any size, in overlapping tiles, streamed in row bands.

Tiles sit on a grid whose origins are multiples of 16 (the U-Net's down-sampling factor), so a
pixel sees the same network arithmetic in every tile that covers it. An output pixel of the U-Net
depends on input pixels up to CONTEXT away (measured by a test), and within that distance of a tile
edge the tile's zero padding changes it. Neighbouring tiles overlap by `overlap` pixels: each tile
ignores the outer (overlap - fade) / 2 pixels of the overlap and the two tiles cross-fade over the
central `fade` pixels with smoothstep weights that sum to exactly one. With the default overlap the
ignored margin covers CONTEXT, so the tiled result equals the whole-image result (to float
rounding) away from the image borders, and there can be no seams; a smaller --overlap trades that
exactness for speed and is still blended smoothly. Only one row of tiles (tile x image width
floats) is held at a time, so memory does not grow with image height.

Test-time augmentation (`tta`): each tile is also cleaned flipped (and transposed) and the ink
probabilities, mapped back, are averaged. Tiles are multiples of 16 on a side, so a flipped tile
keeps every pixel on one phase of the 16-pixel grid and the tiling stays exact.
"""

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rocksynth.data.degrade import float_scale, scan_to_gray
from rocksynth.errors import BadInputError
from rocksynth.io.paths import STDIO

if TYPE_CHECKING:  # torch is imported where it is used
    import torch

KIND = "clean"
MULTIPLE = 16
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff"}


def load_cleaner(model: str = "drawings", threads: int = 1, device: "torch.device | None" = None):
    """The U-Net in eval mode from a shipped model name or a checkpoint path, on `device`
    (None: the CPU)."""
    import torch

    from rocksynth.models.checkpoints import inference_models, load_checkpoint
    from rocksynth.pretrained.registry import resolve_model

    torch.set_num_threads(threads)
    return inference_models(load_checkpoint(resolve_model(model, KIND), KIND))["model"].to(device or "cpu")


def _ceil_to(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _reflect_index(n_padded: int, n: int) -> np.ndarray:
    """Indices 0..n_padded-1 folded back into 0..n-1 by mirror reflection (any padding length)."""
    index = np.arange(n_padded)
    if n == 1:
        return np.zeros(n_padded, dtype=np.intp)
    period = 2 * (n - 1)
    index = index % period
    return np.where(index < n, index, period - index)


# Input pixels either side that one output pixel of the shipped U-Net depends on (at most 92,
# measured in tests/test_clean_cli.py), rounded up to the down-sampling factor.
CONTEXT = 96
FADE = 32
DEFAULT_TILE = 1024
DEFAULT_OVERLAP = 2 * CONTEXT + FADE  # exact tiling
# Dihedral views of a tile: 1 = as is, 2 = + upside down, 4 = + the mirror images, 8 = + transposed.
TTA_CHOICES = (1, 2, 4, 8)
DEFAULT_TTA = 8


def _view(tile, index: int, inverse: bool = False):
    """Dihedral view `index` of a (..., y, x) tensor (bit 0: flip y, bit 1: flip x, bit 2: transpose),
    or with `inverse` its inverse."""
    transpose = bool(index & 4)
    if transpose and not inverse:
        tile = tile.transpose(-2, -1)
    if index & 1:  # the flips commute, so their order does not matter either way
        tile = tile.flip(-2)
    if index & 2:
        tile = tile.flip(-1)
    if transpose and inverse:
        tile = tile.transpose(-2, -1)
    return tile


def _tile_probability(model, tile, tta: int):
    """Ink probability (y, x) of one gray tile tensor (1, 1, y, x), averaged over `tta` dihedral views,
    computed on the model's device."""
    import torch

    from rocksynth.devices import mixed_precision, module_device, to_numpy

    device = module_device(model)
    tile = tile.to(device)
    total = None
    for index in range(tta):
        with mixed_precision(device):
            logits = model(_view(tile, index))
        p = _view(torch.sigmoid(logits.float()), index, inverse=True)  # the average in float32
        total = p if total is None else total + p
    return to_numpy((total / tta)[0, 0])


def _check_tta(tta: int) -> None:
    if tta not in TTA_CHOICES:
        raise BadInputError(f"--tta must be one of {', '.join(map(str, TTA_CHOICES))} (got {tta})")


def _blend_weights(length: int, overlap: int, ramp_start: bool, ramp_end: bool) -> np.ndarray:
    """1D tile weights: 1 inside, 0 on the outer part of each overlap, a smoothstep cross-fade over
    its central `fade` pixels (so the weights of two neighbours sum to one)."""
    w = np.ones(length, dtype=np.float32)
    if overlap <= 0:
        return w
    fade = min(FADE, overlap // 2)
    margin = (overlap - fade) // 2
    u = np.clip((np.arange(overlap) + 0.5 - margin) / fade, 0.0, 1.0)
    ramp = (u * u * (3 - 2 * u)).astype(np.float32)  # smoothstep(u) + smoothstep(1 - u) == 1
    if ramp_start:
        w[:overlap] = ramp
    if ramp_end:
        w[length - overlap:] = ramp[::-1]
    return w


def _check_tiling(tile: int, overlap: int) -> None:
    if tile < 64 or tile % MULTIPLE:
        raise BadInputError(f"--tile must be a multiple of {MULTIPLE} and at least 64 (got {tile})")
    if overlap < 0 or overlap % MULTIPLE or overlap > tile // 2:
        raise BadInputError(f"--overlap must be a multiple of {MULTIPLE} between 0 and tile/2 (got {overlap}; "
                            f"{DEFAULT_OVERLAP} makes tiles exact)")


def _axis_tiles(n: int, tile: int, overlap: int) -> "tuple[int, int, int]":
    """(tile length, step, padded length) along one axis of length n."""
    if n <= tile:
        length = _ceil_to(n, MULTIPLE)
        return length, length, length
    step = tile - overlap
    count = -(-(n - overlap) // step)
    return tile, step, step * count + overlap


def ink_probability_bands(image: np.ndarray, model, tile: int = DEFAULT_TILE, overlap: int = DEFAULT_OVERLAP,
                          tta: int = DEFAULT_TTA):
    """Yield (y0, probability rows float32) covering the image top to bottom; ink probability in [0, 1].

    `image` is any scan array (y, x) or (y, x, c), converted to gray a band at a time."""
    import torch

    _check_tiling(tile, overlap)
    _check_tta(tta)
    height, width = image.shape[:2]
    white = float_scale(image) if image.dtype.kind == "f" else None
    tile_y, step_y, padded_h = _axis_tiles(height, tile, overlap)
    tile_x, step_x, padded_w = _axis_tiles(width, tile, overlap)
    rows_index, cols_index = _reflect_index(padded_h, height), _reflect_index(padded_w, width)
    over_y, over_x = tile_y - step_y, tile_x - step_x
    origins_x = list(range(0, padded_w - tile_x + 1, step_x))
    weights_x = [_blend_weights(tile_x, over_x, i > 0, i < len(origins_x) - 1) for i in range(len(origins_x))]
    origins_y = list(range(0, padded_h - tile_y + 1, step_y))
    carry = None
    for row, y0 in enumerate(origins_y):
        band = scan_to_gray(image[rows_index[y0:y0 + tile_y]][:, cols_index], white)
        weight_y = _blend_weights(tile_y, over_y, row > 0, row < len(origins_y) - 1)[:, None]
        acc = np.zeros((tile_y, padded_w), dtype=np.float32)
        if carry is not None:
            acc[:carry.shape[0]] = carry
        with torch.no_grad():
            for x0, weight_x in zip(origins_x, weights_x):
                tile_in = torch.from_numpy(np.ascontiguousarray(band[:, x0:x0 + tile_x]))[None, None]
                probability = _tile_probability(model, tile_in, tta)
                acc[:, x0:x0 + tile_x] += probability * weight_y * weight_x[None, :]
        last = row == len(origins_y) - 1
        done = tile_y if last else step_y
        carry = None if last else acc[done:].copy()
        stop = min(y0 + done, height)
        if stop > y0:
            yield y0, acc[:stop - y0, :width]


def ink_probability(image: np.ndarray, model, tile: "int | None" = DEFAULT_TILE, overlap: int = DEFAULT_OVERLAP,
                    tta: int = DEFAULT_TTA) -> np.ndarray:
    """The whole (height, width) ink probability; `tile=None` runs the network on the image at once."""
    if tile is None:
        tile = max(_ceil_to(max(image.shape[:2]), MULTIPLE), 64)
        overlap = 0
    out = np.empty(image.shape[:2], dtype=np.float32)
    for y0, rows in ink_probability_bands(image, model, tile, overlap, tta):
        out[y0:y0 + rows.shape[0]] = rows
    return out


def clean_image(image: np.ndarray, model, threshold: float = 0.5, soft: bool = False,
                tile: int = DEFAULT_TILE, overlap: int = DEFAULT_OVERLAP, tta: int = DEFAULT_TTA) -> np.ndarray:
    """uint8 (y, x): white (255) background, black (0) ink; with `soft`, 255 * (1 - probability)."""
    if not 0.0 < threshold < 1.0:
        raise BadInputError(f"--threshold must be between 0 and 1 (got {threshold})")
    if image.ndim not in (2, 3) or min(image.shape[:2]) == 0:
        raise BadInputError(f"image has unusable shape {image.shape}")
    out = np.empty(image.shape[:2], dtype=np.uint8)
    for y0, rows in ink_probability_bands(image, model, tile, overlap, tta):
        target = out[y0:y0 + rows.shape[0]]
        if soft:
            target[:] = np.rint(255.0 * (1.0 - rows)).astype(np.uint8)
        else:
            target[:] = np.where(rows > threshold, 0, 255).astype(np.uint8)
    return out


def _output_name(source: Path) -> str:
    return source.stem + (".tif" if source.suffix.lower() in (".tif", ".tiff") else ".png")


def _check_folder_output(files: "list[Path]", out: str) -> "list[str]":
    """The output name of each input of a folder, after checking `out` can be written as a folder
    and that no two inputs would write one file (compared ignoring case, as on some disks)."""
    from rocksynth.io.paths import check_output

    if out == STDIO:
        raise BadInputError("a folder of scans needs --out FOLDER, not '-'")
    names = [_output_name(path) for path in files]
    seen: "dict[str, Path]" = {}
    for path, name in zip(files, names):
        other = seen.setdefault(name.casefold(), path)
        if other is not path:
            raise BadInputError(f"{other.name} and {path.name} would both write {name}; rename one")
    check_output(out.rstrip("/" + os.sep) + "/", what="--out")  # the trailing '/' checks it as a folder
    return names


def _check_single_output(source: str, out: str, soft: bool) -> str:
    """The format of a single image's output ('png', 'tiff' or, with `soft`, 'jpeg'; '-' is PNG),
    after checking `out` can be written and is not `source`."""
    from rocksynth.io.formats import format_from_suffix
    from rocksynth.io.paths import check_input_file, check_output

    kind = "png" if out == STDIO else format_from_suffix(out)
    if kind == "jpeg" and not soft:  # lossy: the 0/255 drawing would come back with grey edges
        raise BadInputError(f"{out}: JPEG would blur the binary drawing; use .png or .tif "
                            "(JPEG is allowed with --soft)")
    if kind not in ("png", "tiff", "jpeg"):
        raise BadInputError(f"{out}: unknown image type; use .png or .tif")
    if source != STDIO:
        check_input_file(source)  # registered as an input, so --out cannot replace it
    check_output(out, what="--out")
    return kind


def _input_dpi(source: "str | Path") -> "tuple[float, float] | None":
    """The dots per inch (x, y) the input declares: PNG pHYs, JPEG density, TIFF resolution tags.

    For a drawing the dpi is its scale, so the cleaned image carries it. None if the input has none."""
    from rocksynth.io.formats import sniff
    from rocksynth.io.paths import stdin_stream

    try:
        stream = stdin_stream() if str(source) == STDIO else open(source, "rb")
        with stream:
            kind = sniff(stream.read(16))
            stream.seek(0)
            dpi = _tiff_dpi(stream) if kind == "tiff" else _pillow_dpi(stream)
    except Exception:  # the pixels were read already; metadata we cannot parse only loses the dpi
        return None
    if dpi is None or not all(np.isfinite(d) and d > 0 for d in dpi):
        return None
    # PNG stores whole pixels per metre, so 300 dpi reads back as 299.9994.
    return round(float(dpi[0]), 2), round(float(dpi[1]), 2)


def _tiff_dpi(stream) -> "tuple[float, float] | None":
    """A TIFF's dpi from its resolution tags (or rocksynth's voxel-size metadata), as volumes read it."""
    import tifffile

    from rocksynth.io.tiff_metadata import read_voxel_size

    with tifffile.TiffFile(stream) as tif:
        size, _ = read_voxel_size(tif)
    return (0.0254 / size,) * 2 if size else None


def _pixel_size(dpi: "tuple[float, float] | None") -> "float | None":
    """The pixel size in metres of a drawing scanned at `dpi` (x, y); a scan's pixels are square."""
    return 0.0254 / dpi[0] if dpi else None


def _pillow_dpi(stream) -> "tuple[float, float] | None":
    import warnings

    from PIL import Image

    with warnings.catch_warnings():  # read_image has applied (and reported) the size limits
        warnings.simplefilter("ignore")
        with Image.open(stream) as image:
            return image.info.get("dpi")


def clean_paths(source: str, out: str, model: str = "drawings", threshold: float = 0.5, soft: bool = False,
                tile: int = DEFAULT_TILE, overlap: int = DEFAULT_OVERLAP, threads: int = 1, tta: int = DEFAULT_TTA,
                device: "torch.device | None" = None) -> dict:
    """Clean one image (or '-') into `out`, or every image of a folder into the folder `out`; the
    U-Net runs on `device` (None: the CPU)."""
    from rocksynth.io.formats import format_from_suffix
    from rocksynth.io.images import check_writable_image, read_image, write_image_file
    from rocksynth.io.paths import atomic_output, atomic_output_dir, check_input_file
    from rocksynth.progress import log, progress_bar

    _check_tiling(tile, overlap)
    _check_tta(tta)
    if not 0.0 < threshold < 1.0:
        raise BadInputError(f"--threshold must be between 0 and 1 (got {threshold})")
    if source != STDIO and Path(source).is_dir():
        folder = check_input_file(source)
        files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise BadInputError(f"{folder}: no PNG, JPEG or TIFF images in this folder")
        names = _check_folder_output(files, out)  # before the model loads
        net = load_cleaner(model, threads, device)
        start, pixels, results = time.perf_counter(), 0, []
        with atomic_output_dir(out, what="--out") as tmp, progress_bar(len(files), "clean") as bar:
            for path, name in zip(files, names):  # one image in memory at a time
                image = read_image(path)
                dpi = _input_dpi(path)
                cleaned = clean_image(image, net, threshold, soft, tile, overlap, tta)
                write_image_file(tmp / name, cleaned, format_from_suffix(name), _pixel_size(dpi))
                pixels += cleaned.size
                results.append({"input": str(path), "output": str(Path(out) / name),
                                "ink_fraction": float(np.mean(cleaned < 128)), "dpi": dpi})
                bar.advance(1)
        seconds = time.perf_counter() - start
        log(f"cleaned {len(files)} images into {out} ({pixels / 1e6:.1f} MP, {pixels / 1e6 / seconds:.2f} MP/s)")
        return {"inputs": len(files), "output": str(out), "megapixels": pixels / 1e6, "seconds": round(seconds, 2),
                "megapixels_per_s": pixels / 1e6 / seconds, "tta": tta, "images": results}
    kind = _check_single_output(source, out, soft)  # before the work: a big scan takes minutes
    image = read_image(source)
    check_writable_image(out, np.broadcast_to(np.uint8(0), image.shape[:2]), kind)  # JPEG's size limit
    dpi = _input_dpi(source)
    net = load_cleaner(model, threads, device)
    start = time.perf_counter()
    cleaned = clean_image(image, net, threshold, soft, tile, overlap, tta)
    seconds = time.perf_counter() - start
    with atomic_output(out) as tmp:
        write_image_file(tmp, cleaned, kind, _pixel_size(dpi))
    megapixels = cleaned.size / 1e6
    if out != STDIO:
        log(f"wrote {out} ({cleaned.shape[1]}x{cleaned.shape[0]}, {megapixels / seconds:.2f} MP/s)")
    return {"input": str(source), "output": str(out), "height": int(cleaned.shape[0]), "width": int(cleaned.shape[1]),
            "megapixels": megapixels, "seconds": round(seconds, 2), "megapixels_per_s": megapixels / seconds,
            "ink_fraction": float(np.mean(cleaned < 128)), "soft": soft, "threshold": threshold, "tta": tta,
            "dpi": dpi}
