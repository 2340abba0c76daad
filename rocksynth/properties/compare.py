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


def wasserstein(real_values, generated_values) -> float:
    """First Wasserstein (earth mover's) distance between the two samples, in the property's unit."""
    from scipy.stats import wasserstein_distance

    return float(wasserstein_distance(_finite(real_values, "real"), _finite(generated_values, "generated")))


def bootstrap_kl_std(real_values, generated_values, bins: int = 50, resamples: int = 1000, seed: int = 0) -> float:
    """Standard deviation of the KL divergence over `resamples` bootstrap resamples of both sides."""
    real = _finite(real_values, "real")
    generated = _finite(generated_values, "generated")
    rng = np.random.default_rng(seed)
    values = np.empty(resamples)
    for i in range(resamples):
        values[i] = kl_divergence(rng.choice(real, real.size), rng.choice(generated, generated.size), bins)
    return float(values.std(ddof=1)) if resamples > 1 else 0.0


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
        from rocksynth.properties.permeability import network_permeability

        # Mean over the three axes; a non-percolating axis counts as 0.
        results = network_permeability(extract_network(mask), voxel_size, formation_factor=False)
        values["permeability"] = float(np.mean([r.k_md if voxel_size else r.k_voxel2 for r in results]))
    return values


def compare_property_sets(real: "list[dict]", generated: "list[dict]", bins: int = 50, resamples: int = 1000,
                          seed: int = 0, metric: bool = False) -> dict:
    """KL (with bootstrap std) and Wasserstein distance per property, plus each side's mean and std."""
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
            "kl": kl_divergence(a, b, bins),
            "kl_bootstrap_std": bootstrap_kl_std(a, b, bins, resamples, seed),
            "wasserstein": wasserstein(a, b),
        }
    return table


def random_crops(volume: np.ndarray, count: int, size: int, rng: np.random.Generator) -> "list[np.ndarray]":
    """`count` cubes (squares in 2D) of side `size` at uniformly random positions."""
    if any(s < size for s in volume.shape):
        raise BadInputError(f"--crop-size {size} is larger than the volume {volume.shape}")
    crops = []
    for _ in range(count):
        start = [int(rng.integers(0, s - size + 1)) for s in volume.shape]
        crops.append(np.ascontiguousarray(volume[tuple(slice(a, a + size) for a in start)]))
    return crops


def _measure(job):
    mask, voxel_size, with_permeability = job
    return sample_properties(mask, voxel_size, with_permeability)


def measure_samples(samples: "list[tuple[np.ndarray, float | None]]", with_permeability: bool = True,
                    jobs: int = 2, on_done=None) -> "list[dict]":
    """Properties of every (mask, voxel size) sample, over `jobs` processes, in input order."""
    import os
    from concurrent.futures import ProcessPoolExecutor

    work = [(mask, size, with_permeability) for mask, size in samples]
    if jobs <= 1 or len(work) == 1:
        results = []
        for job in work:
            results.append(_measure(job))
            if on_done:
                on_done()
        return results
    # Each worker single-threaded: the processes are the parallelism.
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(variable, "1")
    results: "list[dict | None]" = [None] * len(work)
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        futures = {pool.submit(_measure, job): i for i, job in enumerate(work)}
        from concurrent.futures import as_completed

        for future in as_completed(futures):
            results[futures[future]] = future.result()
            if on_done:
                on_done()
    return results


_VOLUME_SUFFIXES = (".tif", ".tiff", ".npy", ".raw", ".png")


def collect_samples(paths, crops: "int | None", crop_size: int, seed: int, threshold=None, pore_value="auto",
                    voxel_size=None) -> "list[tuple[np.ndarray, float | None]]":
    """(mask, voxel size) samples from files and folders, optionally cut into random crops.

    A folder whose files are 3D volumes gives one sample per file; any other folder is read as
    one volume made of its slices.
    """
    from pathlib import Path

    from rocksynth.io import load_binary_volume
    from rocksynth.io.paths import check_input_file

    files: "list[str]" = []
    for path in paths:
        if path != "-" and Path(path).is_dir() and _holds_volumes(Path(path)):
            files += [str(p) for p in sorted(Path(path).iterdir()) if p.suffix.lower() in _VOLUME_SUFFIXES]
        else:
            if path != "-":
                check_input_file(path)
            files.append(path)
    rng = np.random.default_rng(seed)
    samples = []
    for name in files:
        mask, size = load_binary_volume(name, threshold=threshold, pore_value=pore_value, voxel_size=voxel_size,
                                        allow_2d=True)
        if crops:
            samples += [(crop, size) for crop in random_crops(mask, crops, crop_size, rng)]
        else:
            samples.append((mask, size))
    if not samples:
        raise BadInputError(f"no samples found in {', '.join(map(str, paths))}")
    return samples


def _holds_volumes(folder) -> bool:
    """Whether a folder holds volume files (its first .npy/.tif is 3D) rather than 2D slices.

    Read from the header alone; a damaged first file is the user's bad input (exit 2)."""
    from rocksynth.io.volumes import declared_ndim

    for path in sorted(folder.iterdir()):
        if path.suffix.lower() in (".npy", ".tif", ".tiff"):
            return declared_ndim(path) == 3
    return False


def compare_samples(real, generated, with_permeability: bool = True, jobs: int = 2, bins: int = 50,
                    resamples: int = 1000, seed: int = 0, on_done=None) -> dict:
    """Measure both sets of (mask, voxel size) samples and compare them property by property."""
    sizes = {size for _, size in real + generated}
    dims = {mask.ndim for mask, _ in real + generated}
    if len(dims) > 1:
        raise BadInputError("cannot compare 2D images with 3D volumes")
    metric = None not in sizes
    if not metric and sizes != {None}:
        from rocksynth.progress import warn

        warn("some samples have a voxel size and others not: comparing in voxel units "
             "(give --voxel-size to use one size for all)")
        real = [(mask, None) for mask, _ in real]
        generated = [(mask, None) for mask, _ in generated]
    measured = measure_samples(real + generated, with_permeability, jobs, on_done)
    real_values, generated_values = measured[:len(real)], measured[len(real):]
    return {
        "real_samples": len(real),
        "generated_samples": len(generated),
        "bins": bins,
        "bootstrap_resamples": resamples,
        "units": "SI (permeability in mD)" if metric else "voxel units",
        "kl_epsilon": KL_EPSILON,
        "properties": compare_property_sets(real_values, generated_values, bins, resamples, seed, metric),
        "samples": {"real": real_values, "generated": generated_values},
    }
