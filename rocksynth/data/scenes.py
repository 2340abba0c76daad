"""The widened procedural video set `scenes`: colour clips of what users bring, not only what the
model was first trained on.

Each clip is a textured background of any level, seen by a drifting camera, with 1-5 objects
(discs, squares, diamonds, triangles) of any colour and brightness, 3-15 px across, moving at
0-4 px per frame, bouncing off the frame's walls and hiding one another (a fixed depth order).
Clips are float (T, H, W, 3) in [0, 1]; `rocksynth.data.videos.procedural_clips` turns them into
uint8 with one seeded generator per clip. The generator also gives each clip's true motion
(`Motion`): where every pixel's content is in the frames before and after it, which is what a
predictor that moves pixels can be taught directly.
"""

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

MAX_OBJECTS = 5
SIZE_RANGE = (3.0, 15.0)  # object extent across, pixels
SPEED_RANGE = (0.0, 4.0)  # pixels per frame
DRIFT_MAX = 1.0  # camera drift, pixels per frame
KINDS = ("disc", "square", "diamond", "triangle")


def _colour(rng) -> np.ndarray:
    """Any colour: a random hue at a random brightness, a third of them gray."""
    level = rng.uniform(0.0, 1.0)
    if rng.random() < 1 / 3:
        return np.full(3, level)
    return np.clip(level + rng.uniform(-0.5, 0.5, 3), 0.0, 1.0)


def _smooth_noise(rng, shape, scale: float) -> np.ndarray:
    """Zero-mean, unit-sd smooth random field with correlation length `scale` pixels."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape), scale, mode="wrap")
    return field / max(field.std(), 1e-6)


@dataclass
class Motion:
    """A clip's true motion, per frame t and pixel: where its content is in frames t - 1 and t + 1.

    Attributes
    ----------
    flow : ndarray
        float32 (T, 4, H, W): the displacement in pixels to the same content in frame t - 1
        (x then y), then in frame t + 1 (x then y), as `rocksynth.models.frame_predictor.sample_along`
        takes it. Objects move and turn rigidly; the background moves with the camera.
    visible : ndarray
        bool (T, 2, H, W): the content is seen there in frame t - 1, then t + 1 (the same
        object, or the background, covers the pixel it moves to, inside the frame). False in the
        first frame's backward half and the last frame's forward half.
    camera : ndarray
        float (2,): the background's displacement to the frame before (x then y): the camera's
        drift, the same in every frame.
    """

    flow: np.ndarray
    visible: np.ndarray
    camera: np.ndarray


def _background(rng, frames: int, size: int) -> "tuple[np.ndarray, np.ndarray]":
    """(T, size, size, 3): a flat, graded or textured canvas seen through a drifting camera; and
    the drift (y, x) in pixels per frame."""
    margin = int(np.ceil(DRIFT_MAX * frames)) + 2
    side = size + 2 * margin
    base = _colour(rng)
    canvas = np.broadcast_to(base, (side, side, 3)).copy()
    style = rng.choice(["flat", "gradient", "texture"])
    if style == "gradient":
        angle = rng.uniform(0, 2 * np.pi)
        yy, xx = np.mgrid[0:side, 0:side] / side - 0.5
        ramp = np.cos(angle) * xx + np.sin(angle) * yy
        canvas += ramp[..., None] * rng.uniform(0.1, 0.6) * (_colour(rng) - 0.5)
    elif style == "texture":
        amplitude = rng.uniform(0.03, 0.25)
        field = _smooth_noise(rng, (side, side), rng.uniform(1.0, 6.0))
        canvas += field[..., None] * amplitude * np.where(rng.random() < 0.5, 1.0, rng.uniform(0.3, 1.0, 3))
    angle = rng.uniform(0, 2 * np.pi)
    drift = rng.uniform(0, DRIFT_MAX) * np.array([np.sin(angle), np.cos(angle)]) * (rng.random() < 0.5)
    out = np.empty((frames, size, size, 3))
    grid = np.mgrid[0:size, 0:size].astype(float)
    for t in range(frames):
        offset = margin + drift * t
        coords = [grid[0] + offset[0], grid[1] + offset[1]]
        for c in range(3):
            out[t, ..., c] = ndimage.map_coordinates(canvas[..., c], coords, order=1, mode="nearest")
    return np.clip(out, 0.0, 1.0), drift


def _coverage(kind: str, extent: float, theta: float, centre, yy, xx) -> np.ndarray:
    """Anti-aliased coverage in [0, 1] of one object of `extent` pixels across."""
    radius = extent / 2
    if kind == "disc":
        return np.clip(radius + 0.5 - np.hypot(yy - centre[0], xx - centre[1]), 0, 1)
    count, start = {"square": (4, np.pi / 4), "diamond": (4, 0.0), "triangle": (3, 0.0)}[kind]
    angles = start + theta + np.arange(count) * 2 * np.pi / count
    vertices = np.stack([centre[1] + radius * np.cos(angles), centre[0] + radius * np.sin(angles)], 1)
    distance = np.full(yy.shape, -np.inf)
    for a, b in zip(vertices, np.roll(vertices, -1, 0)):
        edge = b - a
        normal = np.array([edge[1], -edge[0]]) / np.hypot(*edge)  # outward for counter-clockwise order
        distance = np.maximum(distance, (xx - a[0]) * normal[0] + (yy - a[1]) * normal[1])
    return np.clip(0.5 - distance, 0, 1)


def scene_clip(rng, frames: int = 8, size: int = 64, with_background: bool = False, with_motion: bool = False):
    """One `scenes` clip, float (T, size, size, 3) in [0, 1] (see the module docstring).

    With `with_background`, also the clip's background without its objects (the same random
    draws, so the clip is the same): what tells the objects apart from the scene in a benchmark.
    With `with_motion`, also its `Motion` (last). The clip is the same either way."""
    out, drift = _background(rng, frames, size)
    background = out.copy() if with_background else None
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    poses = []  # per object, per frame: (centre y, centre x, angle)
    top = np.full((frames, size, size), -1)  # the object seen at each pixel (coverage >= 1/2), -1 none
    for index in range(int(rng.integers(1, MAX_OBJECTS + 1))):  # drawn back to front: later ones occlude
        kind = KINDS[int(rng.integers(len(KINDS)))]
        extent = rng.uniform(*SIZE_RANGE)
        half = extent / 2
        pos = rng.uniform(half, size - half, 2)
        angle = rng.uniform(0, 2 * np.pi)
        vel = rng.uniform(*SPEED_RANGE) * np.array([np.sin(angle), np.cos(angle)])
        theta, spin = rng.uniform(0, 2 * np.pi), rng.uniform(-0.15, 0.15) * (kind != "disc")
        colour = _colour(rng)
        track = []
        for t in range(frames):
            alpha = _coverage(kind, extent, theta, pos, yy, xx)
            out[t] = out[t] * (1 - alpha[..., None]) + colour * alpha[..., None]
            top[t][alpha >= 0.5] = index
            track.append((pos[0], pos[1], theta))
            pos = pos + vel
            for axis in range(2):  # reflect off the frame's walls
                if pos[axis] < half or pos[axis] > size - half:
                    vel[axis] *= -1
                    pos[axis] = np.clip(pos[axis], half, size - half)
            theta += spin
        poses.append(np.array(track))
    result = (out,) + ((background,) if with_background else ())
    if with_motion:
        result += (_motion(top, poses, drift, yy, xx),)
    return result if len(result) > 1 else out


def _motion(top: np.ndarray, poses: "list[np.ndarray]", drift: np.ndarray, yy: np.ndarray,
            xx: np.ndarray) -> Motion:
    """The `Motion` of a clip from what is seen at each pixel (`top`), the objects' poses per
    frame and the camera's drift."""
    frames, h, w = top.shape
    flow = np.zeros((frames, 4, h, w), np.float32)
    visible = np.zeros((frames, 2, h, w), bool)
    for t in range(frames):
        for half, s in enumerate((t - 1, t + 1)):
            if not 0 <= s < frames:
                continue
            # The background: frame t shows the canvas at p + drift * t, frame s at q + drift * s.
            dy, dx = np.full((h, w), drift[0] * (t - s)), np.full((h, w), drift[1] * (t - s))
            for index, track in enumerate(poses):
                here = top[t] == index
                if not here.any():
                    continue
                (cy, cx, a), (sy, sx, b) = track[t], track[s]
                turn = b - a  # a rigid turn about the centre, then the move
                ry, rx = yy[here] - cy, xx[here] - cx
                dx[here] = sx + rx * np.cos(turn) - ry * np.sin(turn) - xx[here]
                dy[here] = sy + rx * np.sin(turn) + ry * np.cos(turn) - yy[here]
            flow[t, 2 * half], flow[t, 2 * half + 1] = dx, dy
            ty, tx = np.round(yy - 0.5 + dy).astype(int), np.round(xx - 0.5 + dx).astype(int)
            inside = (ty >= 0) & (ty < h) & (tx >= 0) & (tx < w)
            seen = np.full((h, w), -2)
            seen[inside] = top[s][ty[inside], tx[inside]]
            visible[t, half] = inside & (seen == top[t])
    return Motion(flow, visible, drift[::-1].copy())
