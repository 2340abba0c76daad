"""How much a file may decode to: every reader checks the size a file *declares* before decoding it.

The limit counts bytes of the decoded array, i.e. 8-bit voxels (a 16-bit voxel counts twice, an
RGB pixel three times), because memory is what a decompression bomb exhausts. With the environment
variable `ROCKSYNTH_MAX_VOXELS` unset, three rules apply (docs/formats.md, "Limits"):

- a file may decode to at most half of the machine's memory (a 2000³ 8-bit scan, 8 GB, is
  accepted on a 24 GB machine);
- a single 2D image (a PNG, JPEG, one-page TIFF or video frame) to at most 256 MiB (16384² 8-bit);
- a file that declares more than 64 MiB and over 1000 times its own size is refused as a
  decompression bomb (zlib cannot compress better than ~1030:1; real scans compress 10-50:1).

Setting `ROCKSYNTH_MAX_VOXELS=N` (or `set_max_voxels(N)`) replaces all three with one limit of N.
"""

import math
import os

from rocksynth.errors import BadInputError

ENV_VAR = "ROCKSYNTH_MAX_VOXELS"
MEMORY_FRACTION = 0.5  # the decoded array and a working copy of it fit in memory
MAX_IMAGE_BYTES = 2**28  # 16384 x 16384 8-bit: beyond what any image command needs
MAX_RATIO = 1000  # declared size / file size
RATIO_FLOOR = 2**26  # below 64 MiB decoded, no ratio is worth refusing (blank test images, all-solid masks)


def set_max_voxels(voxels: "int | None") -> None:
    """Set the decoding limit for this process and its children (what a `--max-voxels` option calls).

    Parameters
    ----------
    voxels : int or None
        Bytes of decoded data (8-bit voxels) any one file may decode to; None restores the defaults.
    """
    if voxels is None:
        os.environ.pop(ENV_VAR, None)
        return
    os.environ[ENV_VAR] = str(_parse(str(voxels), f"max voxels {voxels!r}"))


def explicit_max_voxels() -> "int | None":
    """The limit set through `ROCKSYNTH_MAX_VOXELS`, or None when the defaults apply."""
    text = os.environ.get(ENV_VAR, "").strip()
    return _parse(text, f"{ENV_VAR}={text!r}") if text else None


def max_voxels() -> int:
    """Bytes of decoded data (8-bit voxels) one file may decode to.

    Returns
    -------
    int
        `ROCKSYNTH_MAX_VOXELS` if set, else half of this machine's total memory.
    """
    explicit = explicit_max_voxels()
    return explicit if explicit is not None else int(_total_memory() * MEMORY_FRACTION)


def max_image_voxels() -> int:
    """Bytes of decoded data one 2D image (or video frame) may decode to."""
    explicit = explicit_max_voxels()
    return explicit if explicit is not None else min(MAX_IMAGE_BYTES, max_voxels())


def check_decoded_size(name: str, shape, dtype, *, file_size: "int | None" = None, image: bool = False,
                       verb: str = "declares") -> None:
    """Refuse, before decoding, a file whose declared array is too large for the limits.

    Parameters
    ----------
    name : str
        The file as the user named it (or 'stdin'), for the message.
    shape : tuple of int
        The shape the file's header declares, channels included.
    dtype : numpy dtype
        The decoded data type.
    file_size : int, optional
        Bytes the file (or stream) holds; enables the compression-ratio rule.
    image : bool
        The array is one 2D image, so the image limit applies.
    verb : str
        How the message introduces the size ('declares', or 'decodes to' when counted while decoding).

    Raises
    ------
    BadInputError
        One line naming the file, its declared size and how to raise the limit.
    """
    nbytes = _nbytes(shape, dtype)
    explicit = explicit_max_voxels()
    if explicit is not None:
        if nbytes > explicit:
            raise BadInputError(f"{name}: {_declared(verb, shape, dtype, image)}, more than {ENV_VAR}={explicit}; "
                                "raise it to read this file")
        return
    check_compression(name, shape, dtype, file_size, image=image)
    limit = max_image_voxels() if image else max_voxels()
    if nbytes > limit:
        what = f"the {_size(limit)} allowed for one 2D image" if image and limit == MAX_IMAGE_BYTES else \
            f"the {_size(limit)} allowed (half of this machine's memory)"
        raise BadInputError(f"{name}: {_declared(verb, shape, dtype, image)}, more than {what}; "
                            f"to read it anyway give rocksynth --max-voxels {nbytes} (or set {ENV_VAR}={nbytes})")


def check_compression(name: str, shape, dtype, file_size: "int | None", image: bool = False) -> None:
    """The decompression-bomb rule alone, for readers that stream (so the memory limit is per slice).

    Refuses a file of `file_size` bytes declaring more than `RATIO_FLOOR` bytes and over
    `MAX_RATIO` times its size; does nothing when `ROCKSYNTH_MAX_VOXELS` is set or the size is unknown.
    """
    nbytes = _nbytes(shape, dtype)
    if not file_size or explicit_max_voxels() is not None:
        return
    if nbytes > RATIO_FLOOR and nbytes > MAX_RATIO * file_size:
        raise BadInputError(f"{name}: {_declared('declares', shape, dtype, image)} from {_size(file_size)} "
                            f"(compression {nbytes / file_size:.0f}:1, over {MAX_RATIO}:1): refused as a likely "
                            f"decompression bomb; to read it anyway give rocksynth --max-voxels {nbytes} (or set "
                            f"{ENV_VAR}={nbytes})")


def configure_pillow() -> None:
    """Cap Pillow's own decompression-bomb check at our image limit (in pixels, its unit)."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = max_image_voxels()


def _parse(text: str, label: str) -> int:
    """A positive whole number of voxels: '8000000000', '8e9' or '8_000_000_000'."""
    try:
        value = int(text)
    except ValueError:
        try:
            value = float(text.replace("_", ""))
        except ValueError:
            value = 0.0
    if not math.isfinite(value) or value < 1 or value != int(value):
        raise BadInputError(f"{label}: not a positive whole number of voxels (e.g. 8000000000 or 8e9)")
    return int(value)


def _nbytes(shape, dtype) -> int:
    import numpy as np

    return math.prod(int(n) for n in shape) * np.dtype(dtype).itemsize


def _declared(verb: str, shape, dtype, image: bool) -> str:
    import numpy as np

    return (f"{verb} a {'x'.join(map(str, shape))} {np.dtype(dtype).name} {'image' if image else 'array'} "
            f"({_size(_nbytes(shape, dtype))} decoded)")


def _total_memory() -> int:
    import psutil

    return int(psutil.virtual_memory().total)


def _size(nbytes: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if nbytes >= scale:
            return f"{nbytes / scale:.3g} {unit}"
    return f"{int(nbytes)} bytes"
