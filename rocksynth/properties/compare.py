"""Distances between the distributions of a property over two sets of samples."""

import os

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


def wasserstein(real_values, generated_values) -> float:
    """First Wasserstein (earth mover's) distance between the two samples, in the property's unit."""
    from scipy.stats import wasserstein_distance

    return float(wasserstein_distance(_finite(real_values, "real"), _finite(generated_values, "generated")))


def kde_kl(real_values, generated_values, points: int = 2000) -> float:
    """KL(real || generated) in nats between Gaussian kernel density estimates (Scott's bandwidth).

    Both densities are evaluated on `points` points spanning the pooled range plus a quarter on
    each side. Unlike histograms of a few dozen samples, this does not blow up on empty bins, so
    two sets of crops of the same rock give a KL near 0 (50 bins give 9-13 at 20 a side).

    Returns
    -------
    float
        NaN when either side has no spread (a KDE needs one).
    """
    from scipy.stats import gaussian_kde

    real = _finite(real_values, "real")
    generated = _finite(generated_values, "generated")
    if real.size < 2 or generated.size < 2 or np.ptp(real) == 0 or np.ptp(generated) == 0:
        return float("nan")
    low, high = min(real.min(), generated.min()), max(real.max(), generated.max())
    pad = 0.25 * (high - low)
    grid = np.linspace(low - pad, high + pad, points)
    p, q = gaussian_kde(real)(grid), gaussian_kde(generated)(grid)
    p, q = p / p.sum(), np.maximum(q / q.sum(), 1e-300)
    keep = p > 0
    return float(np.sum(p[keep] * np.log(p[keep] / q[keep])))


def bootstrap_std(statistic, real_values, generated_values, resamples: int = 1000, seed: int = 0) -> float:
    """Standard deviation of `statistic(real, generated)` over bootstrap resamples of both sides."""
    real = _finite(real_values, "real")
    generated = _finite(generated_values, "generated")
    if resamples < 2:
        return 0.0
    rng = np.random.default_rng(seed)
    values = np.array([statistic(rng.choice(real, real.size), rng.choice(generated, generated.size))
                       for _ in range(resamples)])
    return float(np.nanstd(values, ddof=1)) if np.isfinite(values).sum() > 1 else float("nan")


def split_floor(statistic, real_values, splits: int = 20, seed: int = 0) -> float:
    """The statistic between two random halves of the real samples, averaged over `splits` splits.

    What two samples of the same rock give: a divergence near this floor cannot tell the sets
    apart. Each half has n/2 samples, so the floor is that of n/2 against n/2 (higher than at n).

    Returns
    -------
    float
        NaN with fewer than 4 real samples.
    """
    real = _finite(real_values, "real")
    if real.size < 4:
        return float("nan")
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(splits):
        order = rng.permutation(real.size)
        half = real.size // 2
        values.append(statistic(real[order[:half]], real[order[half:2 * half]]))
    values = np.array(values)
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


# -----------------------------------------------------------------------------------------------
# Comparing two sets of rock samples property by property.

PROPERTIES = {
    # name: (report key, unit in voxel units, unit in SI)
    "porosity": ("-", "-"),
    "permeability": ("voxel²", "mD"),
    "specific_surface": ("voxel⁻¹", "m⁻¹"),
    "euler_density": ("voxel⁻³", "m⁻³"),
    "mean_breadth_density": ("voxel⁻²", "m⁻²"),
    "correlation_length": ("voxel", "m"),
}


def sample_properties(mask, voxel_size: "float | None" = None, with_permeability: bool = True) -> dict:
    """The compared properties of one 3D sample (2D samples: no permeability)."""
    from rocksynth.properties.correlation import correlation_length, two_point_correlation
    from rocksynth.properties.minkowski import minkowski_functionals
    from rocksynth.properties.porosity import as_mask, porosity

    mask = np.ascontiguousarray(as_mask(mask))
    h = voxel_size or 1.0
    m = minkowski_functionals(mask, voxel_size=voxel_size)
    s2 = two_point_correlation(mask, min(100, min(mask.shape) // 2))
    length = correlation_length(s2)
    values = {
        "porosity": porosity(mask),
        "specific_surface": m["surface_density"] if mask.ndim == 3 else m["perimeter_density"],
        "euler_density": m["euler_density"],
        "mean_breadth_density": m.get("mean_breadth_density", float("nan")),
        "correlation_length": length * h if length is not None else float("nan"),
        "permeability": float("nan"),
    }
    if with_permeability and mask.ndim == 3 and values["porosity"] == 0:
        values["permeability"] = 0.0  # all solid: nothing flows
    elif with_permeability and mask.ndim == 3 and values["porosity"] < 1:
        from rocksynth.properties.network import extract_network
        from rocksynth.properties.permeability import network_permeability, unresolved_axes
        from rocksynth.properties.porosity import connected_porosity

        # Mean over the three axes; an axis the pore space does not cross counts as 0, one it
        # crosses but the network does not is left out (its 0 would be the network's).
        results = network_permeability(extract_network(mask), voxel_size, formation_factor=False)
        unresolved = unresolved_axes({r.axis: r.percolating for r in results}, lambda: connected_porosity(mask))
        kept = [r.k_md if voxel_size else r.k_voxel2 for r in results if r.axis not in unresolved]
        values["permeability"] = float(np.mean(kept)) if kept else float("nan")
    return values


def compare_property_sets(real: "list[dict]", generated: "list[dict]", bins: int = 50, resamples: int = 1000,
                          seed: int = 0, metric: bool = False) -> dict:
    """Per property: each side's mean and std, the KDE KL (the default) and the `bins`-bin KL,
    each with its bootstrap std and its real-vs-real floor, and the Wasserstein distance.

    Parameters
    ----------
    real, generated : list of dict
        Property values of each sample (`sample_properties`).
    bins : int
        Bins of the histogram KL (50 in the papers this follows).
    resamples : int
        Bootstrap resamples of the standard deviations.
    seed : int
        Seed of the bootstrap and of the real-vs-real splits.
    metric : bool
        Units are SI (else voxel units).

    Returns
    -------
    dict
        {property: {...}}; "kl" is the KDE KL, "kl_bins" the histogram one, "*_floor" the same
        divergence between two random halves of the real samples.
    """
    def binned(a, b):
        return kl_divergence(a, b, bins)

    table = {}
    for name, units in PROPERTIES.items():
        a = np.array([s[name] for s in real], float)
        b = np.array([s[name] for s in generated], float)
        a, b = a[np.isfinite(a)], b[np.isfinite(b)]
        if a.size == 0 or b.size == 0:
            continue
        table[name] = {
            "unit": units[1] if metric else units[0],
            "real_mean": float(a.mean()), "real_std": float(a.std()), "real_n": int(a.size),
            "generated_mean": float(b.mean()), "generated_std": float(b.std()), "generated_n": int(b.size),
            "kl": kde_kl(a, b),
            "kl_bootstrap_std": bootstrap_std(kde_kl, a, b, resamples, seed),
            "kl_floor": split_floor(kde_kl, a, seed=seed),
            "kl_bins": kl_divergence(a, b, bins),
            "kl_bins_bootstrap_std": bootstrap_std(binned, a, b, resamples, seed),
            "kl_bins_floor": split_floor(binned, a, seed=seed),
            "wasserstein": wasserstein(a, b),
            "wasserstein_floor": split_floor(wasserstein, a, seed=seed),
        }
    return table


def few_samples_warning(real_n: int, generated_n: int, bins: int) -> "str | None":
    """A warning when the sets are too small for a `bins`-bin histogram (under 5 samples a bin)."""
    n = min(real_n, generated_n)
    if n < 5 * bins:
        return (f"{n} samples a side are few for {bins}-bin histograms: their KL (kl_bins) mostly counts empty "
                f"bins; read the KDE KL beside its real-vs-real floor")
    return None


def measure_samples(samples: "list[tuple[np.ndarray, float | None]]", with_permeability: bool = True,
                    jobs: int = 2, distributed: bool = False) -> "list[dict]":
    """Properties of every (mask, voxel size) sample, one dask task each, in input order.

    Parameters
    ----------
    samples : list of (numpy.ndarray, float or None)
        Masks and voxel sizes.
    with_permeability : bool
        Extract the network and compute the permeability (the slowest part).
    jobs : int
        Worker processes of the local engine (1: in this process).
    distributed : bool
        A `dask.distributed` client is the active scheduler: the tasks run on its workers.

    Returns
    -------
    list of dict
    """
    import dask

    task = dask.delayed(_sample_properties_task, pure=True)
    tasks = [task(mask, size, with_permeability) for mask, size in samples]
    if distributed:
        return list(dask.compute(*tasks))
    if jobs <= 1 or len(tasks) == 1:
        return list(dask.compute(*tasks, scheduler="synchronous"))
    # The network extraction holds the GIL: processes, each single-threaded, are the parallelism.
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(variable, "1")
    # dask's processes are spawned: a fork would inherit this process's thread pools broken.
    return list(dask.compute(*tasks, scheduler="processes", num_workers=jobs))


def _sample_properties_task(mask, voxel_size, with_permeability: bool) -> dict:
    """`sample_properties` as a dask task, whose process's stdout may be the command's."""
    from rocksynth.progress import route_library_logs

    route_library_logs()
    return sample_properties(mask, voxel_size, with_permeability)


def compare_samples(real, generated, with_permeability: bool = True, jobs: int = 2, bins: int = 50,
                    resamples: int = 1000, seed: int = 0, distributed: bool = False) -> dict:
    """Measure both sets of (mask, voxel size) samples and compare them property by property.

    Returns
    -------
    dict
        Counts, settings, the property table (`compare_property_sets`), a warning for small
        sets (or None), notes on properties with no spread (`spread_notes`) and every sample's
        values.
    """
    sizes = {size for _, size in real + generated}
    dims = {mask.ndim for mask, _ in real + generated}
    if len(dims) > 1:
        raise BadInputError("cannot compare 2D images with 3D volumes")
    metric = None not in sizes
    from rocksynth.progress import warn

    if not metric and sizes != {None}:
        warn("some samples have a voxel size and others not: comparing in voxel units "
             "(give --voxel-size to use one size for all)")
    elif metric and len(sizes) > 1:
        from rocksynth.units import format_length

        warn(f"the samples have different voxel sizes ({', '.join(format_length(s) for s in sorted(sizes))}): "
             "surfaces, Euler numbers and pore networks depend on the resolution, so the sets differ by it too")
        real = [(mask, None) for mask, _ in real]
        generated = [(mask, None) for mask, _ in generated]
    measured = measure_samples(real + generated, with_permeability, jobs, distributed)
    real_values, generated_values = measured[:len(real)], measured[len(real):]
    table = compare_property_sets(real_values, generated_values, bins, resamples, seed, metric)
    return {
        "real_samples": len(real),
        "generated_samples": len(generated),
        "kl": "KL(real || generated) in nats between Gaussian kernel density estimates (Scott's bandwidth)",
        "kl_bins": f"KL(real || generated) in nats from {bins}-bin histograms over the pooled range",
        "floor": "the same divergence between two random halves of the real samples (mean of 20 splits)",
        "bins": bins,
        "bootstrap_resamples": resamples,
        "units": "SI (permeability in mD)" if metric else "voxel units",
        "kl_epsilon": KL_EPSILON,
        "warning": few_samples_warning(len(real), len(generated), bins),
        "properties": table,
        "notes": spread_notes(table, _not_measured(with_permeability, next(iter(dims), 3))),
        "samples": {"real": real_values, "generated": generated_values},
    }


def _not_measured(with_permeability: bool, ndim: int) -> "set[str]":
    """Properties not measured by request or by the samples' dimension (2D: no volume measures)."""
    skipped = set() if with_permeability and ndim == 3 else {"permeability"}
    return skipped | ({"mean_breadth_density"} if ndim == 2 else set())


def spread_notes(table: dict, not_measured: "set[str]" = frozenset()) -> "list[str]":
    """Why a measured property is not compared, or its KDE KL is not a number: no finite value on
    a side (a correlation length longer than the crops, no pore network), or one set's values all
    equal (a generator that collapsed to one sample, or a single sample), so it has no density to
    estimate. `not_measured`: properties left out on purpose (`--no-permeability`), not noted."""
    notes = [f"{name}: not compared, as a set has no finite value (e.g. a correlation length longer than half the "
             "crop, or no permeability)" for name in PROPERTIES if name not in table and name not in not_measured]
    for name, row in table.items():
        if np.isfinite(row["kl"]):
            continue
        flat = [side for side in ("real", "generated") if row[f"{side}_n"] < 2 or row[f"{side}_std"] == 0]
        if flat:
            notes.append(f"{name}: the {' and the '.join(flat)} values have no spread, so the KDE KL is not a number; "
                         "the Wasserstein distance still compares the sets")
    return notes
