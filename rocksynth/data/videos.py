"""Video datasets for the latent video transformer: procedural moving objects and clips cut from
frame stacks (a micro-CT volume read slice after slice is a video).

Clips are uint8 arrays (n, T, H, W, C). Procedural clip i of a split is drawn from its own random
generator seeded with (split, i), so the held-out split never shares a seed with training.
"""

import numpy as np

from rocksynth.errors import BadInputError

PROCEDURAL = ("balls", "shapes", "moving", "scenes")
COLOUR_SETS = ("scenes",)  # RGB clips; the others are gray
_SPLITS = {"train": 0, "heldout": 1}


# --- bouncing balls with elastic collisions --------------------------------------------------
def _simulate_balls(rng, frames, size, substeps=4):
    n = int(rng.integers(1, 4))
    radius = rng.uniform(5.0, 9.0, n)
    mass = radius ** 2
    pos = np.zeros((n, 2))
    for i in range(n):  # place without overlap (rejection sampling; always succeeds at these sizes)
        for _ in range(1000):
            p = rng.uniform(radius[i], size - radius[i], 2)
            if all(np.hypot(*(p - pos[j])) > radius[i] + radius[j] + 1 for j in range(i)):
                break
        pos[i] = p
    angle = rng.uniform(0, 2 * np.pi, n)
    speed = rng.uniform(1.5, 3.5, n)
    vel = np.stack([np.cos(angle), np.sin(angle)], 1) * speed[:, None]
    track = np.zeros((frames, n, 2))
    for t in range(frames):
        track[t] = pos
        for _ in range(substeps):
            pos += vel / substeps
            for axis in range(2):  # walls
                low, high = pos[:, axis] < radius, pos[:, axis] > size - radius
                vel[low | high, axis] *= -1
                pos[low, axis] = 2 * radius[low] - pos[low, axis]
                pos[high, axis] = 2 * (size - radius[high]) - pos[high, axis]
            for i in range(n):  # pairwise elastic collisions of discs
                for j in range(i + 1, n):
                    d = pos[j] - pos[i]
                    dist = np.hypot(*d)
                    if dist >= radius[i] + radius[j] or dist == 0:
                        continue
                    normal = d / dist
                    closing = np.dot(vel[i] - vel[j], normal)
                    if closing > 0:
                        impulse = 2 * closing / (mass[i] + mass[j])
                        vel[i] -= impulse * mass[j] * normal
                        vel[j] += impulse * mass[i] * normal
    return track, radius, rng.uniform(0.6, 1.0, n)


def bouncing_balls_clip(rng, frames=8, size=64):
    """(T, size, size) float in [0, 1]: 1-3 discs of different size, mass and brightness bouncing
    elastically off the walls and each other, drawn anti-aliased."""
    track, radius, level = _simulate_balls(rng, frames, size)
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    out = np.zeros((frames, size, size))
    for t in range(frames):
        for (y, x), r, v in zip(track[t], radius, level):
            cover = np.clip(r + 0.5 - np.hypot(yy - y, xx - x), 0, 1) * v
            np.maximum(out[t], cover, out=out[t])
    return out


# --- moving convex shapes ---------------------------------------------------------------------
def _polygon(kind, size):
    if kind == "square":
        angles = np.pi / 4 + np.arange(4) * np.pi / 2
    elif kind == "diamond":
        angles = np.arange(4) * np.pi / 2
    else:  # triangle
        angles = np.arange(3) * 2 * np.pi / 3
    return np.stack([np.cos(angles), np.sin(angles)], 1) * size


def _convex_coverage(vertices, yy, xx):
    """Anti-aliased coverage of a convex polygon (vertices counter-clockwise, (x, y))."""
    d = np.full(yy.shape, -np.inf)
    for a, b in zip(vertices, np.roll(vertices, -1, 0)):
        edge = b - a
        normal = np.array([edge[1], -edge[0]]) / np.hypot(*edge)  # outward for CCW order
        d = np.maximum(d, (xx - a[0]) * normal[0] + (yy - a[1]) * normal[1])
    return np.clip(0.5 - d, 0, 1)


def moving_shapes_clip(rng, frames=8, size=64):
    """(T, size, size) float in [0, 1]: 1-3 squares, diamonds or triangles drifting and spinning
    at constant speed, reflected by the walls (they pass over each other)."""
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    out = np.zeros((frames, size, size))
    for _ in range(int(rng.integers(1, 4))):
        kind = rng.choice(["square", "diamond", "triangle"])
        extent = rng.uniform(6.0, 10.0)
        shape = _polygon(kind, extent)
        pos = rng.uniform(extent, size - extent, 2)
        angle = rng.uniform(0, 2 * np.pi)
        vel = rng.uniform(1.5, 3.5) * np.array([np.cos(angle), np.sin(angle)])
        theta, spin = rng.uniform(0, 2 * np.pi), rng.uniform(-0.15, 0.15)
        level = rng.uniform(0.6, 1.0)
        for t in range(frames):
            rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
            np.maximum(out[t], _convex_coverage(shape @ rot.T + pos, yy, xx) * level, out=out[t])
            pos = pos + vel
            for axis in range(2):
                if pos[axis] < extent or pos[axis] > size - extent:
                    vel[axis] *= -1
                    pos[axis] = np.clip(pos[axis], extent, size - extent)
            theta += spin
    return out


def procedural_clips(kind: str, n: int, frames: int = 8, size: int = 64, split: str = "train",
                     start: int = 0) -> np.ndarray:
    """Clips start .. start+n-1 of a procedural set as uint8 (n, T, size, size, C).

    `kind` is 'balls', 'shapes' or 'moving' (two balls clips for one shapes clip), all gray
    (C = 1), or 'scenes' (`rocksynth.data.scenes`, colour, C = 3)."""
    from rocksynth.data.scenes import scene_clip

    if kind not in PROCEDURAL:
        raise BadInputError(f"unknown procedural video set {kind!r}; choose from {', '.join(PROCEDURAL)}")
    if size < 32:
        raise BadInputError(f"procedural clips need frames of at least 32x32 (got {size}); use --size 32 or more")
    channels = 3 if kind in COLOUR_SETS else 1
    out = np.zeros((n, frames, size, size, channels), dtype=np.uint8)
    for k in range(n):
        index = start + k
        rng = _clip_generator(kind, split, index)
        if kind == "scenes":
            clip = scene_clip(rng, frames, size)
        elif kind == "balls" or (kind == "moving" and index % 3 != 2):
            clip = bouncing_balls_clip(rng, frames, size)[..., None]
        else:
            clip = moving_shapes_clip(rng, frames, size)[..., None]
        out[k] = np.round(clip * 255).astype(np.uint8)
    return out


def _clip_generator(kind: str, split: str, index: int) -> np.random.Generator:
    """The random generator of clip `index` of a procedural set's split (one per clip)."""
    return np.random.default_rng([_SPLITS[split], PROCEDURAL.index(kind), index])


def scenes_with_truth(n: int, frames: int = 8, size: int = 64, split: str = "train", start: int = 0,
                      background: bool = False, motion: bool = False):
    """`scenes` clips start .. start+n-1 of `procedural_clips` (the same seeds and clips), each drawn
    once, with what their generator knows of them.

    Returns
    -------
    clips : ndarray
        uint8 (n, T, size, size, 3), as `procedural_clips("scenes", ...)` gives them.
    backgrounds : ndarray or None
        With `background`: the clips without their objects, uint8 (n, T, size, size, 3).
    motion : Motion or None
        With `motion`: their true motion (`rocksynth.data.scenes.Motion`), stacked: flows float16
        (n, T, 4, size, size) in pixels, visibility bool (n, T, 2, size, size) and the camera's
        drift (n, 2).
    """
    from rocksynth.data.scenes import Motion, scene_clip

    clips, backgrounds, motions = [], [], []
    for k in range(n):
        drawn = scene_clip(_clip_generator("scenes", split, start + k), frames, size,
                           with_background=True, with_motion=motion)
        clips.append(np.round(drawn[0] * 255).astype(np.uint8))
        if background:
            backgrounds.append(np.round(drawn[1] * 255).astype(np.uint8))
        if motion:
            motions.append(drawn[2])
    truth = Motion(np.stack([m.flow.astype(np.float16) for m in motions]), np.stack([m.visible for m in motions]),
                   np.stack([m.camera for m in motions])) if motion else None
    return np.stack(clips), np.stack(backgrounds) if background else None, truth


# --- clips cut from frame stacks ----------------------------------------------------------------
def stack_clips(video: np.ndarray, n: int, frames: int, size: int, rng, split: str = "train",
                heldout_fraction: float = 0.25, augment: bool = True) -> np.ndarray:
    """n random clips (n, frames, size, size, C) cut from a (t, y, x, C) frame stack.

    The last `heldout_fraction` of the x axis is reserved for the held-out split, so held-out
    clips never overlap training ones. Training clips are randomly flipped, transposed and
    reversed in time (a rock has no preferred direction)."""
    t_len, height, width = video.shape[:3]
    cut = int(round(width * (1 - heldout_fraction)))
    x_lo, x_hi = (0, cut - size) if split == "train" else (cut, width - size)
    if t_len < frames or height < size or x_hi < x_lo:
        raise BadInputError(f"a stack of {t_len} frames of {height}x{width} is too small for {frames}-frame "
                            f"clips of {size}x{size} (with {heldout_fraction:.0%} of the width held out)")
    out = np.empty((n, frames, size, size, video.shape[3]), dtype=np.uint8)
    for k in range(n):
        t0 = int(rng.integers(0, t_len - frames + 1))
        y0 = int(rng.integers(0, height - size + 1))
        x0 = int(rng.integers(x_lo, x_hi + 1))
        clip = video[t0:t0 + frames, y0:y0 + size, x0:x0 + size]
        if augment:
            if rng.random() < 0.5:
                clip = clip[:, ::-1]
            if rng.random() < 0.5:
                clip = clip[:, :, ::-1]
            if rng.random() < 0.5:
                clip = clip.transpose(0, 2, 1, 3)
            if rng.random() < 0.5:
                clip = clip[::-1]
        out[k] = clip
    return out
