"""Which reconstruct model is closer to a rock: held-out cubes, property by property.

The comparison `rocksynth train reconstruct` prints at the end of a run (issue #25, "your own rock
in one night"): is the model just trained better on this rock than the one it started from?

- **Real**: `count` random cubes of each volume's held-out block (never trained on).
- **Floor**: as many random cubes of each volume's training block. Their distance to the real set
  is what a perfect model of the training data would score: the two parts of one rock differ, and
  so do two small samples of it.
- **Models**: each real cube's central z-slice reconstructed as deep as the cube by the inference
  pipeline (`rocksynth.pipelines.reconstruct.reconstruct`, thresholded as `rocksynth reconstruct`
  does by default, seed = the cube's index).

Per cube: porosity, log10 permeability (PoreSpy SNOW + OpenPNM Stokes flow, mean over x, y and z,
in voxel² so that the voxel size does not matter), specific surface and Euler density (both
per voxel). Per property, the Wasserstein distance of each set to the real set; each model's
score is the mean over properties of distance / floor (1: as close as the rock's own training
part). Cubes that do not percolate have no log permeability; their share is reported per set.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rocksynth.data.crops import held_out_cubes
from rocksynth.errors import BadInputError
from rocksynth.properties.compare import sample_properties, wasserstein

COMPARED = ("porosity", "log10_permeability", "specific_surface", "euler_density")
LABELS = {"porosity": "porosity", "log10_permeability": "log10 K [voxel²]",
          "specific_surface": "specific surface [1/voxel]", "euler_density": "Euler density [1/voxel³]"}


@dataclass
class CubeSets:
    """The real held-out cubes and the training cubes of the floor, drawn once per comparison."""
    real: np.ndarray      # (n, s, s, s) bool
    training: np.ndarray  # (n, s, s, s) bool


def draw_cubes(held_out: "list[np.ndarray]", training: "list[np.ndarray]", size: int, count: int,
               run_seed: int) -> CubeSets:
    """`count` random size^3 cubes of each held-out block and of each training block: the cubes
    of a run seeded `run_seed`, the same in `train reconstruct` and `benchmarks/own_rock.py`."""
    seed = run_seed + 5  # apart from the seeds of the run's other draws (evaluation, calibration)
    real = [held_out_cubes(block, size, count, seed + index) for index, block in enumerate(held_out)]
    floor = [held_out_cubes(block, size, count, seed + 100 + index) for index, block in enumerate(training)]
    return CubeSets(np.concatenate(real), np.concatenate(floor))


def model_label(name_or_path: str) -> str:
    """How a model is named in the table: a shipped model by its name, a checkpoint by its stem."""
    path = Path(name_or_path)
    return path.stem if path.suffix else str(name_or_path)


def cube_properties(cubes, with_permeability: bool = True) -> "dict[str, np.ndarray]":
    """The compared properties of every cube (voxel units), one array per property; log10
    permeability is NaN where a cube does not percolate; "percolating" is 1 or 0 per cube
    (NaN where no network could be extracted, or without permeability)."""
    rows = [_properties(cube, with_permeability) for cube in cubes]
    values = {name: np.array([row[name] for row in rows], float)
              for name in ("porosity", "specific_surface", "euler_density")}
    k = np.array([row["permeability"] for row in rows], float)
    with np.errstate(divide="ignore", invalid="ignore"):
        values["log10_permeability"] = np.where(k > 0, np.log10(np.where(k > 0, k, 1.0)), np.nan)
    values["percolating"] = np.where(np.isfinite(k), k > 0, np.nan)
    return values


def _properties(cube: np.ndarray, with_permeability: bool) -> dict:
    """`sample_properties` in voxel units; a cube too small for a pore network (SNOW finds one
    pore, or no throat) has no permeability (NaN) rather than stopping the comparison."""
    try:
        return sample_properties(cube, None, with_permeability=with_permeability)
    except BadInputError:
        return sample_properties(cube, None, with_permeability=False)


def reconstruct_cubes(model, cubes: np.ndarray) -> np.ndarray:
    """Each cube's central z-slice reconstructed as deep as the cube (seed = the cube's index)."""
    from rocksynth.pipelines.reconstruct import reconstruct

    size = cubes.shape[1]
    return np.stack([reconstruct(model, cube[size // 2], depth=size, seed=index)[0]
                     for index, cube in enumerate(cubes)])


def distances(real: dict, other: dict) -> "dict[str, float]":
    """Wasserstein distance of each compared property (NaN where a side has no finite value)."""
    out = {}
    for name in COMPARED:
        a, b = real[name][np.isfinite(real[name])], other[name][np.isfinite(other[name])]
        out[name] = wasserstein(a, b) if a.size and b.size else float("nan")
    return out


def score(model_distances: dict, floor: dict) -> float:
    """Mean over the properties of distance / floor (NaN terms and zero floors left out)."""
    terms = [model_distances[n] / floor[n] for n in COMPARED
             if np.isfinite(model_distances[n]) and np.isfinite(floor[n]) and floor[n] > 0]
    return float(np.mean(terms)) if terms else float("nan")


def compare_models(models: "dict[str, object]", cubes: CubeSets, with_permeability: bool = True) -> dict:
    """Every model against the real held-out cubes, beside the real-vs-real floor.

    Parameters
    ----------
    models : dict of str to Slice2Vol
        The models by the names to print.
    cubes : CubeSets
        The real held-out cubes and the floor's training cubes (`draw_cubes`).
    with_permeability : bool
        Include log10 permeability (the slowest part: a network per cube).

    Returns
    -------
    dict
        "cubes", "size", per property the "real_mean"; "floor" and per model name in "models":
        {"distances": {property: W}, "means": {property: mean}, "percolating": share, "score": s}.
    """
    real = cube_properties(cubes.real, with_permeability)
    sets = {"floor": cube_properties(cubes.training, with_permeability)}
    for name, model in models.items():
        sets[name] = cube_properties(reconstruct_cubes(model, cubes.real), with_permeability)
    floor = distances(real, sets["floor"])
    result = {"cubes": int(len(cubes.real)), "size": int(cubes.real.shape[1]),
              "real_mean": {n: _mean(real[n]) for n in COMPARED},
              "real_percolating": _mean(real["percolating"]), "models": {}}
    for name, values in sets.items():
        d = distances(real, values)
        entry = {"distances": d, "means": {n: _mean(values[n]) for n in COMPARED},
                 "percolating": _mean(values["percolating"]), "score": score(d, floor)}
        if name == "floor":
            result["floor"] = entry
        else:
            result["models"][name] = entry
    return result


def _mean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")


def format_comparison(result: dict) -> "list[str]":
    """The comparison as a markdown table (one line per property, then the scores) and a verdict."""
    names = list(result["models"])
    header = "| property | real mean | floor W | " + " | ".join(f"{n} W (mean)" for n in names) + " |"
    lines = [f"held-out comparison on {result['cubes']} cubes of {result['size']}³ (Wasserstein distance W to the "
             "real held-out cubes; floor: real training cubes):", header,
             "|" + "---|" * (3 + len(names))]
    for prop in COMPARED:
        cells = [f"{result['models'][n]['distances'][prop]:.4g} ({result['models'][n]['means'][prop]:.4g})"
                 for n in names]
        lines.append(f"| {LABELS[prop]} | {result['real_mean'][prop]:.4g} | {result['floor']['distances'][prop]:.4g} | "
                     + " | ".join(cells) + " |")
    if np.isfinite(result["real_percolating"]):
        lines.append(f"| percolating cubes | {result['real_percolating']:.2f} | {result['floor']['percolating']:.2f} | "
                     + " | ".join(f"{result['models'][n]['percolating']:.2f}" for n in names) + " |")
    lines.append("| score: mean W / floor (1 = the floor) | | 1 | "
                 + " | ".join(f"{result['models'][n]['score']:.2f}" for n in names) + " |")
    ranked = sorted((s, n) for n, s in ((n, result["models"][n]["score"]) for n in names) if np.isfinite(s))
    if ranked:
        lines.append(f"closest to the held-out rock: {ranked[0][1]} (score {ranked[0][0]:.2f})")
    return lines
