"""Recognise file formats by their first bytes, so misnamed files and stdin get clear errors."""

from rocksynth.errors import BadInputError

_MAGIC = (
    (b"II*\x00", "tiff"), (b"MM\x00*", "tiff"), (b"II+\x00", "tiff"), (b"MM\x00+", "tiff"),
    (b"\x89PNG\r\n\x1a\n", "png"), (b"\xff\xd8\xff", "jpeg"), (b"\x93NUMPY", "npy"),
)
_SUFFIX = {".tif": "tiff", ".tiff": "tiff", ".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".npy": "npy",
           ".raw": "raw", ".mp4": "mp4", ".m4v": "mp4", ".mov": "mp4", ".zarr": "zarr"}


def sniff(head: bytes) -> "str | None":
    """Format named by the leading bytes, or None."""
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return "mp4"
    return None


def format_from_suffix(name: str) -> "str | None":
    from pathlib import Path

    return _SUFFIX.get(Path(name).suffix.lower())


def detect_file_format(path, expected: "tuple[str, ...]") -> str:
    """The format of a file on disk, checked against its content; raw files are trusted by suffix."""
    by_suffix = format_from_suffix(str(path))
    if by_suffix == "raw":
        return "raw"
    with open(path, "rb") as handle:
        head = handle.read(16)
    kind = sniff(head)
    if kind is None:
        wanted = by_suffix or "/".join(expected)
        raise BadInputError(f"{path}: not a {wanted.upper()} file (unrecognised content)")
    if kind not in expected:
        raise BadInputError(f"{path}: is a {kind.upper()} file; expected {' or '.join(e.upper() for e in expected)}")
    return kind


ZARR_METADATA = ("zarr.json", ".zarray", ".zgroup", ".zattrs")


def is_zarr_store(path) -> bool:
    """Whether `path` is a folder holding Zarr (format 2 or 3) metadata."""
    from pathlib import Path

    path = Path(path)
    return path.is_dir() and any((path / name).is_file() for name in ZARR_METADATA)
