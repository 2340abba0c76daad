"""Distances between the distributions of a property over two sets of samples."""

import numpy as np

from rocksynth.errors import BadInputError

# Empty histogram bins would make KL infinite; every bin gets this probability mass added
# (both histograms) before renormalising, so KL stays finite and bins absent from both sides add 0.
KL_EPSILON = 1e-10


def _finite(values, name: str) -> np.ndarray:
    values = np.asarray(values, dtype=float).ravel()
    values = values[np.isfinite(values)]
    if values.size == 0:
        raise BadInputError(f"no finite {name} values to compare")
    return values


def pooled_histograms(real_values, generated_values, bins: int = 50):
    """Probability histograms of both samples over `bins` equal bins spanning the pooled range."""
    real = _finite(real_values, "real")
    generated = _finite(generated_values, "generated")
    low = min(real.min(), generated.min())
    high = max(real.max(), generated.max())
    if high <= low:  # every value identical: one bin holds everything
        high = low + 1.0
    edges = np.linspace(low, high, bins + 1)
    p = np.histogram(real, bins=edges)[0].astype(float)
    q = np.histogram(generated, bins=edges)[0].astype(float)
    return p / p.sum(), q / q.sum(), edges


def kl_divergence(real_values, generated_values, bins: int = 50) -> float:
    """KL(real || generated) in nats, from histograms with `bins` bins over the pooled range.

    Empty bins get KL_EPSILON probability on both sides (then renormalised).
    """
    p, q, _ = pooled_histograms(real_values, generated_values, bins)
    p = (p + KL_EPSILON) / (1 + bins * KL_EPSILON)
    q = (q + KL_EPSILON) / (1 + bins * KL_EPSILON)
    return float(np.sum(p * np.log(p / q)))
