"""The widened procedural video set `scenes`: colour, seeded per clip, split-separated, moving."""

import numpy as np

from rocksynth.data.videos import procedural_clips


def test_scenes_are_colour_uint8_and_reproducible():
    first = procedural_clips("scenes", 6, frames=6, size=48)
    again = procedural_clips("scenes", 6, frames=6, size=48)
    assert first.shape == (6, 6, 48, 48, 3) and first.dtype == np.uint8
    assert np.array_equal(first, again)
    # Colour: some clips differ between channels (a third of the colours are gray by design).
    assert any(np.abs(clip[..., 0].astype(int) - clip[..., 2]).mean() > 2 for clip in first)


def test_scenes_held_out_clips_never_repeat_training_ones():
    train = procedural_clips("scenes", 8, frames=4, size=32, split="train")
    held = procedural_clips("scenes", 8, frames=4, size=32, split="heldout")
    assert not any(np.array_equal(a, b) for a in train for b in held)


def test_scenes_move_and_their_frames_change_by_bounded_amounts():
    clips = procedural_clips("scenes", 20, frames=8, size=64).astype(float) / 255
    change = np.abs(np.diff(clips, axis=1)).mean(axis=(2, 3, 4))  # (clip, step)
    assert (change.max(axis=1) > 1e-3).mean() > 0.5  # most clips have visible motion
    assert change.max() < 0.25  # objects of <= 15 px at <= 4 px/frame: no scene cuts


def test_start_offsets_give_the_same_clips():
    whole = procedural_clips("scenes", 4, frames=4, size=32)
    tail = procedural_clips("scenes", 2, frames=4, size=32, start=2)
    assert np.array_equal(whole[2:], tail)


def test_the_background_of_a_clip_is_the_clip_without_its_objects():
    """`scenes_with_truth` draws what `procedural_clips` draws, and the backgrounds are those clips
    with their objects left out: they differ only where an object is (a small part)."""
    from rocksynth.data.scenes import scene_clip
    from rocksynth.data.videos import procedural_clips, scenes_with_truth

    clip, background = scene_clip(np.random.default_rng(4), 6, 48, with_background=True)
    assert np.array_equal(clip, scene_clip(np.random.default_rng(4), 6, 48))
    clips = procedural_clips("scenes", 5, 6, 48, "heldout", 7)
    drawn, backgrounds, motion = scenes_with_truth(5, 6, 48, "heldout", 7, background=True, motion=True)
    assert np.array_equal(drawn, clips) and motion.flow.shape == (5, 6, 4, 48, 48)
    assert scenes_with_truth(5, 6, 48, "heldout", 7)[1:] == (None, None)
    clips, backgrounds = clips.astype(int), backgrounds.astype(int)
    differs = (clips != backgrounds).any(-1)
    assert differs.any(axis=(2, 3)).all()  # every frame of every clip shows an object
    assert differs.mean() < 0.3


def test_the_true_motion_moves_each_frame_onto_its_neighbours():
    """Sampling the frames before and after along a clip's true flows gives each frame back where
    its content is seen there (to the blur of bilinear sampling), far closer than the neighbours
    themselves; the clip is the same with or without its motion."""
    import torch

    from rocksynth.data.scenes import scene_clip
    from rocksynth.models.frame_predictor import sample_along

    for seed in range(4):
        clip, motion = scene_clip(np.random.default_rng(seed), 6, 48, with_motion=True)
        assert np.array_equal(clip, scene_clip(np.random.default_rng(seed), 6, 48))
        assert not motion.visible[0, 0].any() and not motion.visible[-1, 1].any()
        x, flow = torch.from_numpy(clip).permute(0, 3, 1, 2).float(), torch.from_numpy(motion.flow)
        for t in range(1, 5):
            for half, s in enumerate((t - 1, t + 1)):
                seen = torch.from_numpy(motion.visible[t, half])
                moved = sample_along(x[s:s + 1], flow[t:t + 1, 2 * half:2 * half + 2])[0]
                error = ((moved - x[t]) ** 2).mean(0)[seen].mean()
                still = ((x[s] - x[t]) ** 2).mean(0)[seen].mean()
                assert error < 1e-3 and (still < 1e-4 or error < 0.5 * still)


def test_a_colour_clip_for_a_one_channel_model_is_averaged_to_gray_with_a_note(tmp_path, capsys):
    from rocksynth.io.videos import write_video
    from rocksynth.training.video import load_sources

    write_video(tmp_path / "c.tif", procedural_clips("scenes", 1, 4, 32)[0])
    source = load_sources([str(tmp_path / "c.tif")], channels=1)
    assert source.stacks[0].shape == (4, 32, 32, 1)
    assert "colour frames averaged to gray" in capsys.readouterr().err
    assert load_sources([str(tmp_path / "c.tif")], channels=3).stacks[0].shape == (4, 32, 32, 3)
    assert "averaged" not in capsys.readouterr().err
