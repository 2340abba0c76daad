"""2D images: PNG, JPEG and TIFF; 8/16-bit (and float TIFF); gray, RGB or RGBA (gray + alpha is read as RGBA).

Arrays are (y, x) or (y, x, c)."""

import re
import warnings
from pathlib import Path

import numpy as np

from rocksynth.errors import BadInputError
from rocksynth.io.formats import detect_file_format, format_from_suffix, sniff
from rocksynth.io.limits import (ENV_VAR, check_decoded_size, configure_pillow, explicit_max_voxels,
                                 max_image_voxels)
from rocksynth.io.paths import STDIO, atomic_output, check_input_file, read_stdin_bytes, stdin_stream


def read_image(path, keep_alpha: bool = True) -> np.ndarray:
    """An image as a numpy array: (y, x) for gray, (y, x, 3|4) for RGB(A); dtype as stored.

    Parameters
    ----------
    path : str or Path
        A PNG, JPEG or TIFF file, or '-' (stdin).
    keep_alpha : bool
        Gray + alpha comes back as RGBA (`gray_alpha_as_rgba`), so its alpha is used as RGBA's is;
        False: as its gray alone (a slice of a volume, which has no alpha).

    Returns
    -------
    numpy.ndarray
        A JPEG or PNG turned upright by its EXIF orientation; a MinIsWhite TIFF with 0 = black and
        a CMYK TIFF as RGB (`rocksynth.io.volumes.read_tiff`).
    """
    if str(path) == STDIO:
        kind, source, name = sniff(read_stdin_bytes()[:16]), stdin_stream(), "stdin"
        if kind not in ("png", "jpeg", "tiff"):
            raise BadInputError("stdin: not a PNG, JPEG or TIFF image")
        file_size = len(read_stdin_bytes())
    else:
        source = check_input_file(path)
        if source.is_dir():
            raise BadInputError(f"{path}: is a folder; expected an image file")
        kind, name = detect_file_format(source, expected=("png", "jpeg", "tiff")), str(path)
        file_size = source.stat().st_size
    image = _read_tiff(source, name) if kind == "tiff" else _read_pillow(source, name, file_size)
    if image.size == 0:
        raise BadInputError(f"{name}: image has zero size")
    if image.ndim == 3 and image.shape[0] == 1:
        image = image[0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] not in (1, 2, 3, 4)):
        raise BadInputError(f"{name}: is not a single 2D image (shape {image.shape})")
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim == 3 and image.shape[-1] == 2:
        image = gray_alpha_as_rgba(image) if keep_alpha else image[..., 0]
    if image.dtype.kind == "f" and not np.isfinite(image).all():
        raise BadInputError(f"{name}: contains NaN or infinite values")
    return image


def gray_alpha_as_rgba(image: np.ndarray) -> np.ndarray:
    """A (y, x, 2) gray + alpha image as (y, x, 4) RGBA with the gray in each colour channel.

    Every reader then treats its alpha as RGBA's: `clean` composites it over white paper, and
    gray commands take the gray (`to_gray`), so ink drawn only through alpha is not lost."""
    gray, alpha = image[..., :1], image[..., 1:]
    return np.concatenate([gray, gray, gray, alpha], axis=-1)


def _read_tiff(source, name: str) -> np.ndarray:
    from rocksynth.io.volumes import read_tiff

    return read_tiff(source, name).data


def _read_pillow(source, name: str, file_size: int) -> np.ndarray:
    """PNG or JPEG through Pillow, its declared size checked against the limits before decoding."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    configure_pillow()
    try:
        with warnings.catch_warnings():
            # Pillow warns above MAX_IMAGE_PIXELS; the check below refuses those with a clearer line.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(source) as image:
                shape, dtype = _pillow_layout(image)
                check_decoded_size(name, shape, dtype, file_size=file_size, image=True)
                image.load()
                image = ImageOps.exif_transpose(image)  # upright, as a viewer shows a phone photo
                if image.mode == "PA":
                    image = image.convert("RGBA")
                elif image.mode == "P":
                    image = image.convert("RGBA" if "transparency" in image.info else "RGB")
                elif image.mode in ("1", "CMYK", "YCbCr", "LAB", "HSV"):
                    image = image.convert("L" if image.mode == "1" else "RGB")
                array = np.array(image)
    except Image.DecompressionBombError as exc:  # over twice the cap: Pillow refuses before we see the size
        raise BadInputError(_pillow_bomb_message(name, exc)) from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
        raise BadInputError(f"{name}: not a readable image ({str(exc).splitlines()[0][:120]})") from exc
    if array.dtype in (np.int32, np.uint32) and array.max(initial=0) <= 65535 and array.min(initial=0) >= 0:
        array = array.astype(np.uint16)  # Pillow opens 16-bit PNGs as 32-bit integers
    return array


_PILLOW_WIDE_MODES = {"I": np.int32, "F": np.float32}  # one sample per pixel, wider than 8 bits


def _pillow_layout(image) -> "tuple[tuple[int, ...], np.dtype]":
    """The (y, x[, c]) shape and dtype an opened Pillow image decodes to, from its header alone."""
    width, height = image.size
    if image.mode in _PILLOW_WIDE_MODES or image.mode.startswith("I;16"):
        return (height, width), np.dtype(_PILLOW_WIDE_MODES.get(image.mode, np.uint16))
    if image.mode == "P":
        channels = 4 if "transparency" in image.info else 3
    else:  # gray + alpha is read as RGBA (`gray_alpha_as_rgba`)
        channels = 4 if image.mode in ("LA", "PA") else len(image.getbands())
    return ((height, width) if channels == 1 else (height, width, channels)), np.dtype(np.uint8)


def _pillow_bomb_message(name: str, exc: Exception) -> str:
    """Our wording for Pillow's refusal of an image over twice its cap (in pixels; no size is known)."""
    found = re.search(r"\((\d+) pixels\)", str(exc))
    declared = f"declares {found.group(1)} pixels" if found else "declares more pixels than Pillow allows"
    explicit = explicit_max_voxels()
    if explicit is not None:
        return f"{name}: {declared}, more than {ENV_VAR}={explicit}; raise it to read this file"
    raise_to = f"--max-voxels {found.group(1)} or more" if found else "a higher --max-voxels"
    return (f"{name}: {declared}, more than the {max_image_voxels()} allowed for one 2D image; "
            f"to read it anyway give rocksynth {raise_to} (or set {ENV_VAR})")


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


def write_image(path, image: np.ndarray, pixel_size: "float | None" = None) -> None:
    """Write atomically; the format follows the suffix (.png, .tif, .jpg); '-' writes PNG to stdout.
    `pixel_size` (metres) is written as `write_image_file` writes it."""
    kind = "png" if str(path) == STDIO else format_from_suffix(str(path))
    if kind not in ("png", "tiff", "jpeg"):
        raise BadInputError(f"{path}: unknown image type; use .png, .tif or .jpg")
    check_writable_image(path, image, kind)  # before the temporary file, so errors name the user's output
    with atomic_output(path, suffix={"png": ".png", "tiff": ".tif", "jpeg": ".jpg"}[kind]) as tmp:
        write_image_file(tmp, image, kind, pixel_size)


def check_writable_image(path, image: np.ndarray, kind: "str | None" = None) -> None:
    """Refuse data the format cannot hold, naming `path` ('-' is stdout); call before making any file.

    Parameters
    ----------
    path : str or Path
        The output as the user named it.
    image : numpy.ndarray
        (y, x) or (y, x, c) data; bool is written as 0/255.
    kind : {'png', 'jpeg', 'tiff'}, optional
        The format; by default from the suffix of `path`.
    """
    kind = kind or format_from_suffix(str(path))
    problem = _image_problem(np.asarray(image), kind)
    if problem:
        raise BadInputError(f"{'stdout' if str(path) == STDIO else path}: {problem}")


def _image_problem(image: np.ndarray, kind: str) -> "str | None":
    """Why `kind` cannot hold `image`, or None."""
    if kind == "tiff" or image.dtype == bool:
        return None
    if image.dtype == np.uint16 and image.ndim == 2 and kind == "png":
        return None
    if image.dtype != np.uint8:
        return f"{(kind or 'this format').upper()} needs 8-bit data (got {image.dtype}); write a .tif instead"
    if kind == "jpeg" and image.ndim == 3 and image.shape[-1] == 4:
        return "JPEG has no alpha channel; write a .png instead"
    if kind == "jpeg" and max(image.shape[:2]) > 65500:  # the JPEG format's own limit
        return f"JPEG sides are at most 65500 pixels (this is {image.shape[1]}x{image.shape[0]}); write a .png instead"
    return None


def write_image_file(path: Path, image: np.ndarray, kind: "str | None" = None,
                     pixel_size: "float | None" = None) -> None:
    """Write straight to `path` (callers handle atomicity). bool is written as 0/255.

    `pixel_size` (metres), when known, goes where readers look for it: a TIFF's resolution tags
    and description, as volumes carry their voxel size; a PNG's or JPEG's dpi."""
    image = np.asarray(image)
    if image.dtype == bool:
        image = image.astype(np.uint8) * 255
    kind = kind or format_from_suffix(str(path))
    check_writable_image(path, image, kind)
    if kind == "tiff":
        import tifffile

        from rocksynth.io import tiff_metadata

        size = {}
        if pixel_size:
            resolution, unit = tiff_metadata.resolution_for(pixel_size)
            size = {"resolution": resolution, "resolutionunit": unit, "metadata": None,
                    "description": tiff_metadata.description_for(pixel_size, image.shape)}
        tifffile.imwrite(path, image, photometric="rgb" if image.ndim == 3 else "minisblack", compression="zlib",
                         **size)
        return
    from PIL import Image

    dpi = {"dpi": (0.0254 / pixel_size,) * 2} if pixel_size else {}
    Image.fromarray(image).save(path, format="PNG" if kind == "png" else "JPEG", quality=95, **dpi)
