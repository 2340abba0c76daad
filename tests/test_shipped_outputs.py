"""The shipped models' outputs at a fixed seed, through the real `rocksynth` entry point, compared
with hashes recorded before the training code was refactored: refactors of the training side
(options, trainers, model constructors) must not change what a shipped model produces.

The hashes are of the decoded pixel or voxel arrays, not of the files (whose metadata may carry a
version). They hold on one torch thread (tests run with OMP_NUM_THREADS=1); a float difference on
another CPU could flip a voxel near the threshold, so a mismatch there first calls for a check of
that machine's figures before the hash is replaced.
"""

import hashlib

import numpy as np
import pytest
import tifffile


def _digest(array: np.ndarray) -> str:
    array = np.ascontiguousarray(array)
    return hashlib.sha256(f"{array.dtype}{array.shape}".encode() + array.tobytes()).hexdigest()[:16]


def _read(path) -> np.ndarray:
    if str(path).endswith(".png"):
        from PIL import Image

        return np.asarray(Image.open(path))
    return tifffile.imread(path)


@pytest.fixture(scope="module")
def drawing(tmp_path_factory):
    """A small procedural degraded drawing (fixed seed) as a PNG."""
    from PIL import Image

    rng = np.random.default_rng(7)
    image = np.full((96, 96), 230, np.uint8)
    image[20:24, 10:86] = 40
    image[30:80, 46:49] = 50
    image = np.clip(image + rng.normal(0, 12, image.shape), 0, 255).astype(np.uint8)
    path = tmp_path_factory.mktemp("drawing") / "scan.png"
    Image.fromarray(image).save(path)
    return path


SYNTHESIZE = {
    "berea": ("--texture", "berea", "--size", "24x32x40", "--seed", "3"),
    "ketton": ("--texture", "ketton", "--size", "32", "--seed", "5"),
    "fractures": ("--texture", "fractures", "--size", "32", "--seed", "0"),
    "blend": ("--blend", "berea:spherepack", "--size", "16x16x48", "--axis", "x", "--seed", "1"),
}


@pytest.mark.parametrize("case", sorted(SYNTHESIZE))
def test_synthesize_output_is_unchanged(case, tmp_path, run_cli):
    out = tmp_path / "v.tif"
    code, _, err = run_cli("synthesize", *SYNTHESIZE[case], "--out", out)
    assert code == 0, err
    assert _digest(_read(out)) == EXPECTED[f"synthesize_{case}"]


@pytest.mark.parametrize("calibrated", [False, True], ids=["logit-0", "calibrated"])
def test_reconstruct_output_is_unchanged(calibrated, slice_64, tmp_path, run_cli):
    out = tmp_path / "v.tif"
    extra = ("--calibrated",) if calibrated else ()
    code, _, err = run_cli("reconstruct", slice_64, "--model", "berea", "--depth", "24", "--seed", "2", *extra,
                           "--out", out)
    assert code == 0, err
    assert _digest(_read(out)) == EXPECTED["reconstruct_calibrated" if calibrated else "reconstruct"]


def test_clean_output_is_unchanged(drawing, tmp_path, run_cli):
    out = tmp_path / "c.png"
    code, _, err = run_cli("clean", drawing, "--soft", "--out", out)
    assert code == 0, err
    assert _digest(_read(out)) == EXPECTED["clean_soft"]


# Recorded with OMP_NUM_THREADS=1: before the training refactor, reconstruct with the shipped model
# of the whole-slice training.
EXPECTED = {
    "synthesize_berea": "49bf4359039bec4b",
    "synthesize_ketton": "65aacb8b4729f6fc",
    "synthesize_fractures": "6b460cfb29cd7852",
    "synthesize_blend": "8a6553c5c3477aae",
    "reconstruct": "1492dbc5b53b6236",
    "reconstruct_calibrated": "412fa01eae6b7812",
    "clean_soft": "869ca91693c58431",
}
