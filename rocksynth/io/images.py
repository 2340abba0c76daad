"""2D images: PNG, JPEG and TIFF; 8/16-bit (and float TIFF); gray, RGB or RGBA. Arrays are (y, x) or (y, x, c)."""

from pathlib import Path

import numpy as np

from rocksynth.errors import BadInputError
from rocksynth.io.formats import detect_file_format, format_from_suffix, sniff
from rocksynth.io.paths import STDIO, atomic_output, check_input_file, read_stdin_bytes, stdin_stream


def read_image(path) -> np.ndarray:
    """An image as a numpy array: (y, x) for gray, (y, x, 3|4) for RGB(A); dtype as stored."""
    if str(path) == STDIO:
        kind, source, name = sniff(read_stdin_bytes()[:16]), stdin_stream(), "stdin"
        if kind not in ("png", "jpeg", "tiff"):
            raise BadInputError("stdin: not a PNG, JPEG or TIFF image")
    else:
        source = check_input_file(path)
        if source.is_dir():
            raise BadInputError(f"{path}: is a folder; expected an image file")
        kind, name = detect_file_format(source, expected=("png", "jpeg", "tiff")), str(path)
    image = _read_tiff(source, name) if kind == "tiff" else _read_pillow(source, name)
    if image.size == 0:
        raise BadInputError(f"{name}: image has zero size")
    if image.ndim == 3 and image.shape[0] == 1:
        image = image[0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] not in (1, 2, 3, 4)):
        raise BadInputError(f"{name}: is not a single 2D image (shape {image.shape})")
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim == 3 and image.shape[-1] == 2:  # gray + alpha: alpha carries no structure here
        image = image[..., 0]
    if image.dtype.kind == "f" and not np.isfinite(image).all():
        raise BadInputError(f"{name}: contains NaN or infinite values")
    return image


def _read_tiff(source, name: str) -> np.ndarray:
    from rocksynth.io.volumes import read_tiff

    return read_tiff(source, name).data


def _read_pillow(source, name: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(source) as image:
            image.load()
            if image.mode == "P":
                image = image.convert("RGBA" if "transparency" in image.info else "RGB")
            elif image.mode in ("1", "CMYK", "YCbCr", "LAB", "HSV"):
                image = image.convert("L" if image.mode == "1" else "RGB")
            array = np.array(image)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise BadInputError(f"{name}: not a readable image ({str(exc).splitlines()[0][:120]})") from exc
    if array.dtype in (np.int32, np.uint32) and array.max(initial=0) <= 65535 and array.min(initial=0) >= 0:
        array = array.astype(np.uint16)  # Pillow opens 16-bit PNGs as 32-bit integers
    return array


def is_colour_image(array: np.ndarray) -> bool:
    """A single (y, x, 3|4) colour image, as opposed to a thin (z, y, x) stack of 3 or 4 wide slices."""
    return array.ndim == 3 and array.shape[-1] in (3, 4) and array.shape[0] > 4


def to_gray(image: np.ndarray, name: str = "image") -> np.ndarray:
    """A gray (y, x) image; RGB(A) is accepted only if its colour channels are equal."""
    if image.ndim == 2:
        return image
    rgb = image[..., :3]
    if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
        return rgb[..., 0]
    raise BadInputError(f"{name}: is a colour (RGB) image; a gray or binary image is needed")


def write_image(path, image: np.ndarray) -> None:
    """Write atomically; the format follows the suffix (.png, .tif, .jpg); '-' writes PNG to stdout."""
    kind = "png" if str(path) == STDIO else format_from_suffix(str(path))
    if kind not in ("png", "tiff", "jpeg"):
        raise BadInputError(f"{path}: unknown image type; use .png, .tif or .jpg")
    with atomic_output(path, suffix={"png": ".png", "tiff": ".tif", "jpeg": ".jpg"}[kind]) as tmp:
        write_image_file(tmp, image, kind)


def write_image_file(path: Path, image: np.ndarray, kind: "str | None" = None) -> None:
    """Write straight to `path` (callers handle atomicity). bool is written as 0/255."""
    image = np.asarray(image)
    if image.dtype == bool:
        image = image.astype(np.uint8) * 255
    kind = kind or format_from_suffix(str(path))
    if kind == "tiff":
        import tifffile

        tifffile.imwrite(path, image, photometric="rgb" if image.ndim == 3 else "minisblack", compression="zlib")
        return
    from PIL import Image

    if image.dtype == np.uint16 and image.ndim == 2 and kind == "png":
        Image.fromarray(image).save(path, format="PNG")
        return
    if image.dtype != np.uint8:
        raise BadInputError(f"{path}: {kind.upper()} needs 8-bit data (got {image.dtype}); write a .tif instead")
    if kind == "jpeg" and image.ndim == 3 and image.shape[-1] == 4:
        raise BadInputError(f"{path}: JPEG has no alpha channel; write a .png instead")
    Image.fromarray(image).save(path, format="PNG" if kind == "png" else "JPEG", quality=95)
