"""DIBCO metrics and doxapy's classical binarizations for the clean benchmark.

Masks here are boolean, True = ink (as `rocksynth clean`'s ink probability > 0.5). doxapy works
on 8-bit images with ink = 0 (black) and background = 255 (white) and reads the array's memory as
a C-ordered (height, width) image, so every mask is converted to a C-contiguous 0/255 uint8 array
before it is handed over (a transposed view would otherwise be read as another image).

- F-measure, PSNR and DRD are doxapy's own (`doxapy.calculate_performance`: "fm", "psnr",
  "drdm"). PSNR is of the 0/1 images, 10 log10(1 / MSE), the same as of the 0/255 images; it is
  infinite for a perfect match. DRD (Lu et al. 2004) is normalised by doxapy's count of
  non-uniform 8 x 8 blocks of the ground truth, so it is undefined when the ground truth has no ink.
- doxapy 0.9.2 has no pseudo-F-measure (later releases compute it only from weight files made by
  the DIBCO contest's own tool). `pseudo_f_measure` is the skeleton-based one of DIBCO 2009-2011
  (Ntirogiannis, Gatos and Pratikakis 2008): the usual precision, with recall counted on the
  skeleton of the ground-truth ink (scikit-image's `skeletonize`).
- F-measure and pseudo-F-measure are 0 when nothing of the ink is found (doxapy gives NaN there).
"""

import math

import numpy as np

DOXAPY_MIN = "0.9.2"
# doxapy's defaults (its C++ sources): Sauvola, Wolf and ISauvola (Sauvola inside) window 75,
# k 0.2; Su window 9 (its "auto" setting), minN = window; Otsu has no parameter.
BASELINES = {
    "Otsu": ("OTSU", {}),
    "Sauvola": ("SAUVOLA", {"window": 75, "k": 0.2}),
    "Wolf": ("WOLF", {"window": 75, "k": 0.2}),
    "ISauvola": ("ISAUVOLA", {"window": 75, "k": 0.2}),
    "Su": ("SU", {"window": 9, "minN": 9}),
}


def doxapy():
    """The doxapy module, or a one-line exit that says how to install it."""
    try:
        import doxapy as module
    except ImportError:
        raise SystemExit(f"the clean benchmark needs doxapy for the DIBCO metrics and classical baselines: "
                         f"pip install 'doxapy>={DOXAPY_MIN}'") from None
    return module


def to_doxa(ink: np.ndarray) -> np.ndarray:
    """Boolean ink mask (True = ink) -> C-contiguous uint8 image, ink 0, background 255."""
    return np.ascontiguousarray(np.where(np.asarray(ink, dtype=bool), 0, 255).astype(np.uint8))


def binarize(gray: np.ndarray, name: str) -> np.ndarray:
    """Ink mask (True = ink) of one of doxapy's `BASELINES` on a gray image (uint8, or float in [0, 1])."""
    dx = doxapy()
    gray = np.asarray(gray)
    if gray.dtype != np.uint8:
        gray = np.clip(np.rint(gray.astype(np.float64) * 255.0), 0, 255).astype(np.uint8)
    gray = np.ascontiguousarray(gray)
    algorithm, parameters = BASELINES[name]
    out = np.empty_like(gray)
    method = dx.Binarization(getattr(dx.Binarization.Algorithms, algorithm))
    method.initialize(gray)
    method.to_binary(out, parameters)
    return out == 0


def skeleton(target: np.ndarray) -> np.ndarray:
    """Skeleton of the ground-truth ink, on which the pseudo-recall is counted."""
    from skimage.morphology import skeletonize

    return skeletonize(np.asarray(target, bool))


def pseudo_f_measure(predicted: np.ndarray, target: np.ndarray, target_skeleton=None) -> float:
    """Skeleton-based pseudo-F-measure in % (DIBCO 2009-2011) of boolean ink masks
    (`target_skeleton`: `skeleton(target)`, when already computed)."""
    predicted, target = np.asarray(predicted, bool), np.asarray(target, bool)
    skeleton_ = skeleton(target) if target_skeleton is None else target_skeleton
    found = int(predicted.sum())
    if not found or not skeleton_.any():
        return 0.0
    precision = np.logical_and(predicted, target).sum() / found
    recall = np.logical_and(predicted, skeleton_).sum() / skeleton_.sum()
    return 0.0 if precision + recall == 0 else float(200.0 * precision * recall / (precision + recall))


def dibco_metrics(predicted: np.ndarray, target: np.ndarray, target_skeleton=None) -> dict:
    """F-measure (%), pseudo-F-measure (%), PSNR (dB, inf if identical) and DRD of boolean ink
    masks (True = ink), F, PSNR and DRD by doxapy (`target_skeleton`: `skeleton(target)`, when
    already computed)."""
    if np.shape(predicted) != np.shape(target):
        raise ValueError(f"prediction {np.shape(predicted)} and ground truth {np.shape(target)} differ in shape")
    performance = doxapy().calculate_performance(to_doxa(target), to_doxa(predicted))
    fm = performance["fm"]
    return {"fm": 0.0 if math.isnan(fm) else float(fm), "pfm": pseudo_f_measure(predicted, target, target_skeleton),
            "psnr": float(performance["psnr"]), "drd": float(performance["drdm"])}
