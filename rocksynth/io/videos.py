"""Videos as (t, y, x, c) uint8 arrays: MP4 (H.264 through PyAV), folders of PNG frames, TIFF stacks.

H.264 in the widely playable yuv420p format needs even frame sides. Odd sides are padded by
repeating the last row/column (never resized); the true size is stored in the MP4 comment and
cropped back on reading (when the frames are that size padded), and the padding is reported.
"""

import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from rocksynth.errors import BadInputError, RocksynthError
from rocksynth.io.formats import detect_file_format, format_from_suffix, sniff
from rocksynth.io.limits import check_decoded_size, max_voxels
from rocksynth.io.paths import STDIO, atomic_output, atomic_output_dir, check_input_file, read_stdin_bytes, stdin_stream
from rocksynth.progress import log

DEFAULT_FPS = 10.0
# A frame is a picture: at least 2 pixels a side, at most what H.264 (libx264) can encode.
MIN_FRAME_SIDE, MAX_FRAME_SIDE = 2, 16384
_SIZE_TAG = re.compile(r"rocksynth-size=(\d+)x(\d+)")
# Frame rates an MP4 is written at. Measured: FFmpeg's MP4 muxer writes frames of 10^4 s but
# refuses frames of 5 * 10^4 s, and above 10^6 fps a frame lasts less than the microsecond that
# players count durations in.
MIN_MP4_FPS, MAX_MP4_FPS = 1e-4, 1e6


@dataclass
class Video:
    frames: np.ndarray  # (t, y, x, c) uint8, c = 1 (gray) or 3 (RGB)
    fps: float = DEFAULT_FPS
    source: str = ""
    voxel_size: "float | None" = None  # metres, of a TIFF stack that declares one
    kind: str = "mp4"  # what it was read from: mp4, tiff, folder, png or jpeg
    first: int = 0  # index in the source of the first frame read
    total: "int | None" = None  # frames in the source, when all were counted


def frame_slice(start: int = 0, count: "int | None" = None) -> slice:
    """The frames `count` from `start` (negative: from the end; `count` None: to the end)."""
    if count is None:
        return slice(start, None)
    stop = start + count
    return slice(start, None if start < 0 <= stop else stop)


def read_video(path, frames: slice = slice(None)) -> Video:
    """Read an MP4, a folder of frames (natural order) or a TIFF stack (frames = z-slices).

    A single image (PNG, JPEG, a one-page gray or colour TIFF) is a video of one frame.
    `frames` (see `frame_slice`; its step must be 1): only those frames are kept, and of a TIFF
    stack or a folder only those are decoded; an MP4 is decoded up to the last of them, holding
    no more than them when both ends count from the same side (a long clip or a large stack is
    not read whole)."""
    if frames.step not in (None, 1):
        raise ValueError("read_video reads consecutive frames")
    if str(path) == STDIO:
        kind = sniff(read_stdin_bytes()[:16])
        source, name = stdin_stream(), "stdin"
    else:
        source = check_input_file(path)
        name = str(path)
        kind = "folder" if source.is_dir() else detect_file_format(source, expected=("mp4", "tiff", "png", "jpeg"))
    if kind == "mp4":
        video = _read_mp4(source, name, frames)
    elif kind in ("folder", "tiff"):
        from rocksynth.io.volumes import read_volume

        volume = read_volume(path, allow_2d=True, allow_rgb=True, slices=frames)
        # A (y, x, 3|4) colour TIFF is one frame, not y frames 3 or 4 pixels wide.
        data = volume.data[None] if volume.colour_image else volume.data
        total = 1 if volume.colour_image or data.ndim == 2 else volume.slices_in_file or data.shape[0]
        video = Video(_as_frames(data, name), DEFAULT_FPS, name, volume.voxel_size, kind,
                      range(total)[frames].start, total)
    elif kind in ("png", "jpeg"):
        from rocksynth.io.images import read_image

        video = Video(_as_frames(read_image(path)[None], name), DEFAULT_FPS, name, kind=kind, total=1)
    else:
        raise BadInputError(f"{name}: not an MP4 video, frame folder or TIFF stack")
    if video.frames.shape[0] == 0:
        raise BadInputError(f"{name}: video holds no frames")
    check_frame_size(name, *video.frames.shape[1:3])
    return video


def check_frame_size(name: str, height: int, width: int) -> None:
    """Refuse frames that are not pictures (a 65535x1 line) or too large for an MP4."""
    if min(height, width) < MIN_FRAME_SIDE or max(height, width) > MAX_FRAME_SIDE:
        raise BadInputError(f"{name}: {width}x{height} pixels is not a usable video frame (each side must be "
                            f"{MIN_FRAME_SIDE} to {MAX_FRAME_SIDE} pixels)")


def _as_frames(data: np.ndarray, name: str) -> np.ndarray:
    """(t, y, x[, c]) of any dtype -> (t, y, x, c) uint8."""
    if data.ndim == 2:
        data = data[None]
    if data.ndim == 3:
        data = data[..., None]
    if data.ndim != 4 or data.shape[-1] not in (1, 3, 4):
        raise BadInputError(f"{name}: cannot read frames of shape {data.shape[1:]}")
    if data.shape[-1] == 4:
        data = data[..., :3]
    if data.dtype == bool:
        return data.astype(np.uint8) * 255
    if data.dtype != np.uint8:
        low, high = float(data.min()), float(data.max())
        log(f"{name}: {data.dtype} frames scaled from [{low:g}, {high:g}] to 8-bit")
        scale = 255.0 / (high - low) if high > low else 0.0
        data = ((data.astype(np.float32) - low) * scale).round().astype(np.uint8)
    return data


def _read_mp4(source, name: str, wanted: slice = slice(None)) -> Video:
    import av

    try:
        with av.open(str(source) if isinstance(source, Path) else source, mode="r") as container:
            if not container.streams.video:
                raise BadInputError(f"{name}: file holds no video stream")
            stream = container.streams.video[0]
            fps = float(stream.average_rate) if stream.average_rate else DEFAULT_FPS
            frames, first, total = _decode_frames(container, stream, name, wanted)
            comment = container.metadata.get("comment", "")
    except BadInputError:
        raise
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        raise BadInputError(f"{name}: not a readable MP4 video ({str(exc).splitlines()[0][:120]})") from exc
    if not frames:
        raise BadInputError(f"{name}: has {total} frames, so none from frame {wanted.start} on" if total
                            else f"{name}: video holds no frames")
    data = _crop_padding(np.stack(frames), comment or "", name)
    if _is_gray(data):
        data = data[..., :1]
    return Video(np.ascontiguousarray(data), fps, name, first=first, total=total)


def _crop_padding(data: np.ndarray, comment: str, name: str) -> np.ndarray:
    """Undo the even-size padding of our own writer (`_encode_mp4`), as its MP4 comment says.

    The comment survives re-encoding (a resized or recropped copy keeps it), so it is trusted
    only when the frames are the size it implies: the true size, or that size padded to even."""
    match = _SIZE_TAG.search(comment)
    if not match:
        return data
    width, height = int(match.group(1)), int(match.group(2))
    if data.shape[1:3] not in ((height, width), _even_size(height, width)):
        log(f"{name}: its comment gives a frame size of {width}x{height}, but its frames are "
            f"{data.shape[2]}x{data.shape[1]}; the comment is ignored")
        return data
    return data[:, :height, :width]


def _even_size(height: int, width: int) -> "tuple[int, int]":
    """The frame size H.264 (yuv420p) stores: each odd side padded by one pixel."""
    return height + height % 2, width + width % 2


def _decode_frames(container, stream, name: str, wanted: slice) -> "tuple[list[np.ndarray], int, int | None]":
    """The `wanted` RGB frames of `stream`, the index of the first and the stream's frame count
    (None if decoding stopped before its end). The declared frame size and count are checked
    against the decoding limits first, and the frames held while decoding (a stream may hold
    more than it declares). Counted from the end, the last frames are kept in a bounded queue."""
    from collections import deque

    height, width = stream.codec_context.height, stream.codec_context.width
    check_frame_size(name, height, width)
    check_decoded_size(name, (height, width, 3), np.uint8, image=True)
    if stream.frames:
        check_decoded_size(name, (len(range(stream.frames)[wanted]), height, width, 3), np.uint8)
    start, stop = wanted.start or 0, wanted.stop
    from_end = start < 0 or (stop is not None and stop < 0)
    limit, seen = max_voxels(), 0
    held: deque = deque(maxlen=-start if start < 0 else None)
    for frame in container.decode(stream):
        if not from_end and stop is not None and seen >= stop:
            return list(held), start, None
        if (frame.height, frame.width) != (height, width):
            raise BadInputError(f"{name}: frame {seen} is {frame.width}x{frame.height} but the video "
                                f"{width}x{height}; videos whose frame size changes are not supported")
        seen += 1
        if seen <= start:
            continue  # decoded (later frames depend on it), not kept
        if (len(held) + 1) * height * width * 3 > limit:  # raises: more held than allowed
            check_decoded_size(name, (len(held) + 1, height, width, 3), np.uint8, verb="decodes to at least")
        held.append(frame.to_ndarray(format="rgb24"))
    window = range(seen)[wanted]
    # `held` is the frames from index seen - len(held) to the end; the window lies within them.
    offset = window.start - (seen - len(held)) if window else 0
    return list(held)[offset:offset + len(window)], window.start if window else seen, seen


def to_gray(frames: np.ndarray) -> np.ndarray:
    """Colour frames (..., 3) uint8 -> gray (..., 1) uint8: the mean of the channels, rounded."""
    return frames.mean(-1, keepdims=True).round().astype(np.uint8)


def _is_gray(frames: np.ndarray) -> bool:
    """H.264 chroma of a gray video is flat, so its decoded RGB channels differ by at most a level
    or two. Every frame is checked (one coloured object in one frame makes the clip colour), one
    at a time so that no int16 copy of the whole clip is made."""
    for frame in frames:
        frame = frame.astype(np.int16)
        if np.abs(frame[..., 0] - frame[..., 1]).max() > 2 or np.abs(frame[..., 0] - frame[..., 2]).max() > 2:
            return False
    return True


def video_output_kind(path, stdout: str = "mp4") -> str:
    """'mp4', 'tiff' or 'folder': what `write_video` writes to `path` (`stdout` for '-').

    A folder is a path ending in '/' or without a suffix; any other suffix than an MP4's or a
    TIFF's is refused, so that `--out pred.avi` is not silently made a folder of PNGs.
    """
    target = str(path)
    if target == STDIO:
        return stdout
    if target.endswith("/") or not Path(target).suffix:
        return "folder"
    kind = format_from_suffix(target)
    if kind not in ("mp4", "tiff"):
        raise BadInputError(f"{path}: unknown video output type; use .mp4, .tif or a folder ending in /")
    return kind


def write_video(path, frames: np.ndarray, fps: float = DEFAULT_FPS, quality: int = 17,
                voxel_size: "float | None" = None, stdout: str = "mp4") -> None:
    """Write (t, y, x[, c]) frames: MP4 (H.264, crf `quality`), a folder of PNGs (path ends in '/'
    or has no suffix), or a TIFF stack (.tif, with `voxel_size` in metres in its metadata); '-'
    writes `stdout` ('mp4' or 'tiff') to stdout."""
    kind = video_output_kind(path, stdout)
    frames = _as_frames(np.asarray(frames), str(path))
    target = str(path)
    if kind == "tiff":
        from rocksynth.io.volumes import write_volume

        write_volume(path, frames[..., 0] if frames.shape[-1] == 1 else frames, voxel_size)
    elif kind == "mp4":
        name = str(path) if target != STDIO else "stdout"
        _check_mp4_size(path, frames)  # before the temporary file, so errors name the user's output
        rate = mp4_rate(fps, name)
        with atomic_output(path, suffix=".mp4") as tmp:
            _write_mp4(tmp, frames, rate, quality, name)
    else:
        from rocksynth.io.images import write_image_file

        digits = max(4, len(str(len(frames) - 1)))
        with atomic_output_dir(path) as tmp:
            for index, frame in enumerate(frames):
                write_image_file(tmp / f"frame_{index:0{digits}d}.png", frame[..., 0] if frame.shape[-1] == 1 else frame)


def _check_mp4_size(path, frames: np.ndarray) -> None:
    """H.264 frames (after padding odd sides to even) are at most MAX_FRAME_SIDE pixels a side."""
    if max(_even_size(*frames.shape[1:3])) > MAX_FRAME_SIDE:
        height, width = frames.shape[1:3]
        raise BadInputError(f"{'stdout' if str(path) == STDIO else path}: frames of {width}x{height} are too large "
                            f"for H.264 (at most {MAX_FRAME_SIDE} pixels a side); write a .tif stack or a folder")


def mp4_rate(fps: float, name: str = "--fps") -> Fraction:
    """The frame rate an MP4 stores for `fps`: a fraction within 1e-4 of it (relative).

    Raises `BadInputError`, naming `name` (the option or the output), for a rate outside
    MIN_MP4_FPS to MAX_MP4_FPS, or NaN."""
    if not MIN_MP4_FPS <= fps <= MAX_MP4_FPS:
        raise BadInputError(f"{name}: an MP4 frame rate must be {MIN_MP4_FPS:g} to {MAX_MP4_FPS:g} frames per "
                            f"second, not {fps:g}")
    # Denominators up to 10^4 represent 10^-4 fps and NTSC's 30000/1001 exactly; fewer at high
    # rates keep the numerator (the track's clock) within MP4's 32-bit timescales.
    return Fraction(fps).limit_denominator(min(10_000, int(1e9 // fps)))


def _movie_timescale(rate: Fraction) -> int:
    """Ticks per second of the MP4 movie header: the track's clock (the rate's numerator,
    doubled up to at least 10^4, as FFmpeg's MP4 muxer picks it), so every frame's time is exact.

    The default, 1000 (milliseconds), is too coarse for the edit list that hides x264's B-frame
    delay: at 10^4 fps 12 frames last 1.2 ms, rounded to 1 ms, and decoders dropped the frames
    past it (from 3 * 10^4 fps every frame)."""
    scale = rate.numerator
    while scale < 10_000:
        scale *= 2
    return scale


def _write_mp4(path: Path, frames: np.ndarray, rate: Fraction, quality: int, name: str) -> None:
    """Encode to `path` (a temporary file); failures are reported under `name`, the user's output."""
    import av

    try:
        _encode_mp4(path, frames, rate, quality)
    except (av.error.FFmpegError, ValueError) as exc:
        raise RocksynthError(f"{name}: writing the MP4 failed ({str(exc).splitlines()[0][:120]})") from exc


def _encode_mp4(path: Path, frames: np.ndarray, rate: Fraction, quality: int) -> None:
    import av

    height, width = frames.shape[1:3]
    padded = _even_size(height, width)
    if padded != (height, width):
        log(f"frames are {width}x{height}: H.264 needs even sides, so they are padded to "
            f"{padded[1]}x{padded[0]} in the file (cropped back when rocksynth reads it)")
        frames = np.pad(frames, ((0, 0), (0, padded[0] - height), (0, padded[1] - width), (0, 0)), mode="edge")
    if frames.shape[-1] == 1:
        frames = np.repeat(frames, 3, axis=-1)
    options = {"movie_timescale": str(_movie_timescale(rate))}
    with av.open(str(path), mode="w", format="mp4", options=options) as container:
        container.metadata["comment"] = f"rocksynth-size={width}x{height}"
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(quality), "preset": "medium"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
