"""Round trips of every format: values, dtype, shape and voxel size preserved; MP4 within codec tolerance."""

import numpy as np
import pytest
import tifffile

from rocksynth.io import read_image, read_video, read_volume, write_image, write_video, write_volume
from rocksynth.errors import BadInputError
from rocksynth.io.videos import frame_slice
from rocksynth.io.volumes import VolumeWriter, natural_key


@pytest.fixture
def volume16():
    rng = np.random.default_rng(1)
    return rng.integers(0, 65535, size=(7, 19, 23), dtype=np.uint16)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, bool])
def test_tiff_stack_roundtrip_keeps_values_dtype_and_voxel_size(tmp_path, dtype):
    rng = np.random.default_rng(0)
    data = (rng.random((6, 17, 21)) * 200).astype(dtype) if dtype is not bool else rng.random((6, 17, 21)) > 0.5
    write_volume(tmp_path / "v.tif", data, voxel_size=5.345e-6)
    volume = read_volume(tmp_path / "v.tif")
    expected = data.astype(np.uint8) * 255 if dtype is bool else data
    assert volume.data.dtype == expected.dtype
    assert np.array_equal(volume.data, expected)
    assert volume.voxel_size == pytest.approx(5.345e-6)


def test_voxel_size_is_readable_by_other_tools_through_resolution_tags(tmp_path, volume16):
    write_volume(tmp_path / "v.tif", volume16, voxel_size=2e-6)
    with tifffile.TiffFile(tmp_path / "v.tif") as tif:
        numerator, denominator = tif.pages[0].tags["XResolution"].value
        assert tif.pages[0].tags["ResolutionUnit"].value == 3  # centimetre
        assert 0.01 / (numerator / denominator) == pytest.approx(2e-6, rel=1e-6)
        assert len(tif.pages) == volume16.shape[0]


@pytest.mark.parametrize("suffix", [".npy", ".raw"])
def test_npy_and_raw_roundtrip(tmp_path, volume16, suffix):
    write_volume(tmp_path / f"v{suffix}", volume16)
    options = {"raw_shape": "7x19x23", "raw_dtype": "uint16"} if suffix == ".raw" else {}
    volume = read_volume(tmp_path / f"v{suffix}", **options)
    assert volume.data.dtype == np.uint16 and np.array_equal(volume.data, volume16)


def test_slice_folder_roundtrip_and_natural_order(tmp_path, volume16):
    write_volume(str(tmp_path / "slices") + "/", volume16)
    assert np.array_equal(read_volume(tmp_path / "slices").data, volume16)
    # natural sort: s2 before s10
    folder = tmp_path / "natural"
    folder.mkdir()
    for index in (10, 2, 1):
        write_image(folder / f"s{index}.png", np.full((4, 5), index, np.uint8))
    assert read_volume(folder).data[:, 0, 0].tolist() == [1, 2, 10]
    assert sorted(["s10", "s2", "s1"], key=natural_key) == ["s1", "s2", "s10"]


@pytest.mark.parametrize("suffix", [".png", ".tif"])
@pytest.mark.parametrize("kind", ["gray8", "gray16", "rgb", "rgba"])
def test_image_roundtrip(tmp_path, suffix, kind):
    rng = np.random.default_rng(2)
    shape = {"gray8": (13, 17), "gray16": (13, 17), "rgb": (13, 17, 3), "rgba": (13, 17, 4)}[kind]
    dtype = np.uint16 if kind == "gray16" else np.uint8
    image = rng.integers(0, np.iinfo(dtype).max, size=shape, dtype=dtype)
    write_image(tmp_path / f"i{suffix}", image)
    back = read_image(tmp_path / f"i{suffix}")
    assert back.dtype == dtype and np.array_equal(back, image)


def test_jpeg_roundtrip_within_tolerance(tmp_path):
    image = np.tile(np.linspace(0, 255, 64, dtype=np.uint8), (48, 1))
    write_image(tmp_path / "i.jpg", image)
    back = read_image(tmp_path / "i.jpg")
    assert back.shape == image.shape and np.abs(back.astype(int) - image).mean() < 2


@pytest.mark.parametrize("height,width", [(48, 64), (37, 51), (30, 18)])
def test_mp4_roundtrip_keeps_frame_count_and_size(tmp_path, height, width):
    yy, xx = np.mgrid[:height, :width]
    frames = np.stack([np.stack([(128 + 100 * np.sin(xx / 6 + t)).astype(np.uint8),
                                 (128 + 100 * np.cos(yy / 5 - t)).astype(np.uint8),
                                 np.full((height, width), 90, np.uint8)], -1) for t in range(11)])
    write_video(tmp_path / "v.mp4", frames, fps=12)
    video = read_video(tmp_path / "v.mp4")
    assert video.frames.shape == frames.shape  # exact count, odd sides cropped back, never resized
    assert video.fps == pytest.approx(12)
    assert np.abs(video.frames.astype(int) - frames).mean() < 6  # H.264 4:2:0 at crf 17


def test_gray_mp4_comes_back_gray(tmp_path):
    frames = np.repeat(np.linspace(0, 255, 40, dtype=np.uint8)[None, None, :, None], 32, axis=1)
    frames = np.repeat(frames, 5, axis=0)
    write_video(tmp_path / "g.mp4", frames)
    video = read_video(tmp_path / "g.mp4")
    assert video.frames.shape == (5, 32, 40, 1)
    assert np.abs(video.frames.astype(int) - frames).mean() < 2


def test_frame_folder_and_tiff_stack_as_video_roundtrip(tmp_path):
    frames = np.random.default_rng(3).integers(0, 255, size=(4, 10, 12, 3), dtype=np.uint8)
    write_video(str(tmp_path / "frames") + "/", frames)
    assert np.array_equal(read_video(tmp_path / "frames").frames, frames)
    write_video(tmp_path / "frames.tif", frames)
    assert np.array_equal(read_video(tmp_path / "frames.tif").frames, frames)


@pytest.mark.parametrize("first,count", [(0, 5), (4, 5), (-5, 5), (-7, 3), (0, 50), (-50, None), (9, None)])
def test_a_window_of_frames_equals_that_part_of_the_whole_clip(tmp_path, first, count):
    frames = np.random.default_rng(4).integers(0, 255, size=(12, 16, 20, 3), dtype=np.uint8)
    write_video(tmp_path / "v.mp4", frames)
    write_video(tmp_path / "v.tif", frames)
    write_video(str(tmp_path / "folder") + "/", frames)
    write_video(tmp_path / "g.tif", frames[..., :1])
    for name in ("v.mp4", "v.tif", "folder", "g.tif"):
        whole = read_video(tmp_path / name).frames
        video = read_video(tmp_path / name, frame_slice(first, count))
        expected = range(12)[frame_slice(first, count)]
        assert np.array_equal(video.frames, whole[expected.start:expected.stop]), name
        assert video.first == expected.start and video.total in (12, None), name


def test_a_window_is_read_within_a_limit_the_whole_clip_exceeds_and_one_past_the_end_is_refused(tmp_path, monkeypatch):
    """`predict` reads only its context frames: a clip or stack too large to hold whole still
    gives them, from its start or from its end (an MP4 is decoded through, holding the last)."""
    frames = np.random.default_rng(4).integers(0, 255, size=(12, 16, 20, 3), dtype=np.uint8)
    write_video(tmp_path / "v.mp4", frames)
    write_video(tmp_path / "v.tif", frames)
    write_video(str(tmp_path / "folder") + "/", frames)
    monkeypatch.setenv("ROCKSYNTH_MAX_VOXELS", str(6 * 16 * 20 * 3))  # 6 colour frames, not 12
    for name in ("v.mp4", "v.tif", "folder"):
        with pytest.raises(BadInputError):
            read_video(tmp_path / name)
        assert read_video(tmp_path / name, frame_slice(0, 5)).frames.shape == (5, 16, 20, 3), name
        assert read_video(tmp_path / name, frame_slice(-5, 5)).frames.shape == (5, 16, 20, 3), name
        with pytest.raises(BadInputError, match="has 12 .*none from .* 12 on"):
            read_video(tmp_path / name, frame_slice(12, 5))


def test_streaming_writer_writes_more_than_it_holds(tmp_path):
    """A 64 MB volume written from a generator of 1 MB slabs: the writer holds at most a few slabs."""
    import tracemalloc

    shape = (256, 512, 512)
    slab_depth = 4

    pattern = ((np.arange(shape[1])[:, None] + np.arange(shape[2])) % 251).astype(np.uint8)

    def slab(index):  # made in uint8 so that the test itself stays small in memory
        return np.stack([pattern + np.uint8(index * slab_depth + k) for k in range(slab_depth)])

    tracemalloc.start()
    with VolumeWriter(tmp_path / "big.tif", shape, np.uint8, voxel_size=1e-6) as writer:
        for index in range(shape[0] // slab_depth):
            writer.write(slab(index))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    total = int(np.prod(shape))
    assert peak < total / 8, f"writer held {peak / 1e6:.1f} MB for a {total / 1e6:.0f} MB volume"
    with tifffile.TiffFile(tmp_path / "big.tif") as tif:
        assert len(tif.pages) == shape[0]
        for index in (0, 31, 63):
            assert np.array_equal(tif.pages[index * slab_depth].asarray(), slab(index)[0])


def test_bigtiff_is_chosen_above_the_classic_limit(tmp_path, monkeypatch):
    import rocksynth.io.volumes as volumes

    monkeypatch.setattr(volumes, "BIGTIFF_THRESHOLD", 1000)
    write_volume(tmp_path / "b.tif", np.ones((3, 30, 30), np.uint8))
    with tifffile.TiffFile(tmp_path / "b.tif") as tif:
        assert tif.is_bigtiff
    assert read_volume(tmp_path / "b.tif").data.shape == (3, 30, 30)


def test_real_berea_reads_with_voxel_size_from_its_description(shared_data):
    volume = read_volume(shared_data / "berea_400.tif")
    assert volume.data.shape == (400, 400, 400)
    assert volume.voxel_size == pytest.approx(5.345e-6)
    assert (volume.data == 255).mean() == pytest.approx(0.196, abs=0.001)


def _moving_square(count: int = 12, height: int = 64, width: int = 96) -> np.ndarray:
    """Gray 128 frames with a moving 200 square: similar frames, so x264 uses B-frames."""
    frames = np.full((count, height, width, 3), 128, np.uint8)
    for t in range(count):
        frames[t, 20:36, 4 + 4 * t:20 + 4 * t] = 200
    return frames


def test_a_clip_gray_but_for_its_last_frame_comes_back_in_colour(tmp_path):
    frames = np.full((8, 64, 64, 3), 128, np.uint8)
    for t in range(8):
        frames[t, 8:16, 2 + 2 * t:10 + 2 * t] = 200
    frames[7, 40:56, 40:56] = (0, 0, 255)  # a blue object in the last frame only
    write_video(tmp_path / "late.mp4", frames)
    video = read_video(tmp_path / "late.mp4")
    assert video.frames.shape == (8, 64, 64, 3)
    blue = video.frames[7, 44:52, 44:52].reshape(-1, 3).mean(0)
    assert blue[2] > 200 and blue[0] < 60  # not made gray (nor black)


@pytest.mark.parametrize("fps", [10, 5000, 30000])
def test_mp4_at_any_frame_rate_decodes_every_frame_at_that_rate(tmp_path, fps):
    import av

    frames = _moving_square()
    write_video(tmp_path / "v.mp4", frames, fps=fps)
    with av.open(str(tmp_path / "v.mp4")) as container:
        stream = container.streams.video[0]
        decoded = sum(1 for _ in container.decode(stream))
        rate, duration = stream.average_rate, float(stream.duration * stream.time_base)
    assert decoded == len(frames)  # x264's B-frames made decoders drop frames from ~2000 fps
    assert rate == fps and duration == pytest.approx(len(frames) / fps)
    video = read_video(tmp_path / "v.mp4")
    assert video.frames.shape[0] == len(frames) and video.fps == pytest.approx(fps)


@pytest.mark.parametrize("fps", [1e-5, 2e6, float("nan")])
def test_a_frame_rate_an_mp4_cannot_hold_is_refused_in_one_line(tmp_path, fps):
    with pytest.raises(BadInputError, match="an MP4 frame rate must be 0.0001 to 1e\\+06"):
        write_video(tmp_path / "v.mp4", _moving_square(2), fps=fps)
    assert not (tmp_path / "v.mp4").exists()


def test_the_size_comment_of_a_resized_copy_is_ignored(tmp_path):
    import av

    write_video(tmp_path / "odd.mp4", _moving_square(4, 49, 65))  # comment rocksynth-size=65x49
    with av.open(str(tmp_path / "odd.mp4")) as source:
        comment = source.metadata["comment"]
        frames = [frame.to_ndarray(format="rgb24") for frame in source.decode(video=0)]
    # Re-encoded at twice the size, keeping the comment (as ffmpeg -i odd.mp4 -vf scale=2*iw:-2 does).
    with av.open(str(tmp_path / "big.mp4"), "w", format="mp4") as out:
        out.metadata["comment"] = comment
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 132, 100, "yuv420p"
        for frame in frames:
            big = np.ascontiguousarray(frame.repeat(2, 0).repeat(2, 1))
            for packet in stream.encode(av.VideoFrame.from_ndarray(big, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    assert comment == "rocksynth-size=65x49"
    assert read_video(tmp_path / "big.mp4").frames.shape[1:3] == (100, 132)  # was cropped to 49x65
    assert read_video(tmp_path / "odd.mp4").frames.shape[1:3] == (49, 65)  # our own padding still undone
