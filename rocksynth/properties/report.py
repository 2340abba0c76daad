"""The full analysis of one binary rock image: every measure, with units, timings and notes.

`analyze(mask, voxel_size)` returns a JSON-ready dict; `write_report(report, mask, folder)`
writes report.json, report.md and the figures. 2D images get the 2D measures (no network).
"""

import json
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from rocksynth.errors import BadInputError
from rocksynth.properties.porosity import as_mask

MEASURES = ("porosity", "correlation", "minkowski", "psd", "network", "permeability")
MEASURES_2D = ("porosity", "correlation", "minkowski", "psd")


class StageMeter:
    """Wall time and peak resident memory (sampled every 20 ms) of named stages."""

    def __init__(self):
        import psutil

        self._process = psutil.Process()
        self.stages: "dict[str, dict]" = {}

    @contextmanager
    def stage(self, name: str):
        baseline = self._process.memory_info().rss
        peak = [baseline]
        done = threading.Event()

        def sample():
            while not done.wait(0.02):
                peak[0] = max(peak[0], self._process.memory_info().rss)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        start = time.perf_counter()
        try:
            yield
        finally:
            seconds = time.perf_counter() - start
            done.set()
            sampler.join()
            peak[0] = max(peak[0], self._process.memory_info().rss)
            self.stages[name] = {"seconds": round(seconds, 3), "peak_rss_mb": round(peak[0] / 2 ** 20, 1),
                                 "added_mb": round((peak[0] - baseline) / 2 ** 20, 1)}


def parse_only(text: "str | None", ndim: int) -> "tuple[str, ...]":
    """Measures to compute from a comma list (None = all that apply to the dimension)."""
    available = MEASURES if ndim == 3 else MEASURES_2D
    if not text:
        return available
    chosen = tuple(part.strip().lower() for part in text.split(",") if part.strip())
    unknown = [name for name in chosen if name not in MEASURES]
    if unknown:
        raise BadInputError(f"unknown measure(s) {', '.join(unknown)}; choose from {', '.join(MEASURES)}")
    if "permeability" in chosen and "network" not in chosen:
        chosen = chosen + ("network",)  # permeability is computed on the network
    skipped = [name for name in chosen if name not in available]
    if skipped:
        raise BadInputError(f"{', '.join(skipped)} need(s) a 3D volume; this image is 2D")
    return tuple(name for name in MEASURES if name in chosen)


IMAGE_MEASURES = ("porosity", "correlation", "minkowski", "psd")
_FORKED: dict = {}  # the mask handed to a forked worker (inherited, not pickled)


def analyze(mask, voxel_size: "float | None" = None, only: "tuple[str, ...] | None" = None,
            r_max: "int | None" = None, source: str = "", on_stage=None, jobs: int = 2) -> dict:
    """Every requested measure of a 2D or 3D binary image (True = pore).

    With `jobs` >= 2 and a network to extract, the image measures (porosity, S2, Minkowski, PSD)
    run in a forked second process while this one extracts the network: the extraction is by far
    the longest stage and single-threaded, so on two cores the rest comes almost for free.
    `on_stage(name)` is called as stages start (for progress display).
    """
    mask = np.ascontiguousarray(as_mask(mask))
    if mask.ndim not in (2, 3):
        raise BadInputError(f"analyze needs a 2D image or a 3D volume, got {mask.ndim}D")
    if min(mask.shape) < 8:
        raise BadInputError(f"image {mask.shape} is too small to analyse (need at least 8 voxels per axis)")
    only = only or (MEASURES if mask.ndim == 3 else MEASURES_2D)
    h = voxel_size
    report: dict = {
        "source": source,
        "shape": list(mask.shape),
        "dimensions": mask.ndim,
        "voxel_size_m": h,
        "units": "SI (m, m^2, m^-1, ...)" if h else "voxel units (no voxel size given)",
    }
    notes: "list[str]" = []
    if not h:
        notes.append("no voxel size given: lengths in voxels and permeability in voxel² only; use --voxel-size")
    if not mask.any():
        # All solid (e.g. a failed generator's output) is a valid sample: porosity 0 and K = 0,
        # with no pores to size or network to extract.
        skipped = [name for name in only if name in ("psd", "network", "permeability")]
        only = tuple(name for name in only if name not in skipped)
        if skipped:
            notes.append(f"no pore voxels: {', '.join(skipped)} not computed; permeability is 0")
        if "permeability" in skipped:
            report["permeability"] = {axis: {"axis": axis, "k_voxel2": 0.0, "k_m2": 0.0 if h else None,
                                             "k_md": 0.0 if h else None, "formation_factor": None,
                                             "percolating": False, "pores_used": 0, "note": "no pore voxels"}
                                      for axis in ("x", "y", "z")}
    image_measures = tuple(name for name in only if name in IMAGE_MEASURES)
    network_measures = tuple(name for name in only if name not in IMAGE_MEASURES)
    timings: dict = {}
    worker = None
    if network_measures and image_measures and jobs >= 2:
        worker = _start_image_worker(mask, h, image_measures, r_max)
    else:
        part = _image_measures(mask, h, image_measures, r_max, on_stage)
        report.update(part["report"])
        timings.update(part["timings"])
        notes += part["notes"]
    if network_measures:
        part = _network_measures(mask, h, network_measures, on_stage)
        if worker is not None:
            pool, future = worker
            try:
                image_part = future.result()
            finally:
                pool.shutdown()
            report.update(image_part["report"])
            timings.update({f"{name} (2nd process)": t for name, t in image_part["timings"].items()})
            notes += image_part["notes"]
        report.update(part["report"])
        timings.update(part["timings"])
        notes += part["notes"]
    report["timings"] = timings
    report["notes"] = notes
    return report


def _start_image_worker(mask, h, measures, r_max):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    _FORKED["mask"] = mask
    pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("fork"))
    future = pool.submit(_image_measures_of_forked_mask, h, measures, r_max)
    _FORKED.clear()  # the child has its copy once forked; the parent keeps no extra reference
    return pool, future


def _image_measures_of_forked_mask(h, measures, r_max):
    return _image_measures(_FORKED["mask"], h, measures, r_max, None)


def _image_measures(mask, h, only, r_max, on_stage) -> dict:
    from rocksynth.properties import correlation, minkowski, porosity as porosity_mod, psd

    meter = StageMeter()
    report: dict = {}
    notes: "list[str]" = []

    def step(name):
        if on_stage:
            on_stage(name)
        return meter.stage(name)

    if "porosity" in only:
        with step("porosity"):
            phi = porosity_mod.porosity(mask)
            connected = porosity_mod.connected_porosity(mask)
        report["porosity"] = {"total": phi, "connected": {k: v for k, v in connected.items() if k != "isolated"},
                              "isolated_fraction_of_pores": connected["isolated"],
                              "connectivity": "face neighbours (6 in 3D, 4 in 2D)"}
        if phi == 0 or phi == 1:
            notes.append(f"porosity is {phi:g}: the image is a single phase")

    if "correlation" in only:
        with step("correlation"):
            limit = r_max if r_max is not None else min(100, min(mask.shape) // 2)
            axes_curves = correlation.two_point_correlation_axes(mask, limit)
            s2 = axes_curves.mean(axis=0)
            s2[0] = report["porosity"]["total"] if "porosity" in report else porosity_mod.porosity(mask)
            length = correlation.correlation_length(s2)
        names = ["z", "y", "x"] if mask.ndim == 3 else ["y", "x"]
        report["correlation"] = {
            "r_voxels": list(range(limit + 1)),
            "r_m": [r * h for r in range(limit + 1)] if h else None,
            "s2": s2.tolist(),
            "s2_axes": {name: curve.tolist() for name, curve in zip(names, axes_curves)},
            "phi_squared": float(s2[0] ** 2),
            "correlation_length_voxels": length,
            "correlation_length_m": length * h if (length is not None and h) else None,
            "definition": "first r where S2 - phi^2 falls to 5 % of phi - phi^2",
        }
        if length is None:
            notes.append(f"S2 does not reach phi² within r_max = {limit}: correlation length not found; raise --r-max")

    if "minkowski" in only:
        with step("minkowski"):
            result = minkowski.minkowski_functionals(mask, voxel_size=h)
            if mask.ndim == 3:
                result["euler_26"] = minkowski.minkowski_functionals(mask, connectivity=26)["euler"]
        report["minkowski"] = result

    if "psd" in only:
        with step("psd"):
            report["psd"] = psd.pore_size_distribution(mask, h)
    return {"report": report, "timings": meter.stages, "notes": notes}


def _network_measures(mask, h, only, on_stage) -> dict:
    from rocksynth.properties.network import extract_network, network_statistics
    from rocksynth.properties.permeability import network_permeability

    meter = StageMeter()
    report: dict = {}
    notes: "list[str]" = []
    if on_stage:
        on_stage("network")
    with meter.stage("network"):
        extracted = extract_network(mask)
        stats = network_statistics(extracted, h)
    stats.pop("pore_diameters")
    stats.pop("throat_diameters")
    report["network"] = stats
    if "permeability" in only:
        if on_stage:
            on_stage("permeability")
        with meter.stage("permeability"):
            results = network_permeability(extracted, h)
        report["permeability"] = {r.axis: r.as_dict() for r in results}
        report["permeability_model"] = ("PoreSpy snow2 network, OpenPNM StokesFlow, pyramids_and_cuboids conduits, "
                                        "pore size = equivalent diameter, throat size = inscribed diameter")
        for r in results:
            if r.note:
                notes.append(f"K_{r.axis}: {r.note}")
    return {"report": report, "timings": meter.stages, "notes": notes}


def to_json(report: dict) -> str:
    return json.dumps(report, indent=2, default=_jsonable)


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def summary_rows(report: dict) -> "list[tuple[str, str, str]]":
    """(measure, value, unit) rows for the terminal table and the markdown report."""
    rows = []
    metric = report.get("voxel_size_m") is not None
    length_unit = "m" if metric else "voxel"
    if "porosity" in report:
        p = report["porosity"]
        rows.append(("porosity (total)", f"{p['total']:.4f}", "-"))
        for axis, value in p["connected"].items():
            rows.append((f"connected porosity along {axis}", f"{value:.4f}", "-"))
    if "correlation" in report:
        c = report["correlation"]
        if c["correlation_length_voxels"] is not None:
            rows.append(("correlation length (S2 -> φ²)", f"{c['correlation_length_voxels']:.2f}", "voxel"))
            if c["correlation_length_m"] is not None:
                rows.append(("correlation length", f"{c['correlation_length_m']:.4g}", "m"))
    if "minkowski" in report:
        m = report["minkowski"]
        if report["dimensions"] == 3:
            rows += [
                ("specific surface S_V", f"{m['surface_density']:.4g}", f"{length_unit}^-1"),
                ("mean breadth density", f"{m['mean_breadth_density']:.4g}", f"{length_unit}^-2"),
                ("integral of mean curvature density", f"{m['integral_mean_curvature_density']:.4g}", f"{length_unit}^-2"),
                ("Euler density (6-conn. pores)", f"{m['euler_density']:.4g}", f"{length_unit}^-3"),
                ("Euler number, window estimate (6 / 26-conn.)", f"{m['euler']:g} / {m['euler_26']:g}", "-"),
            ]
        else:
            rows += [
                ("perimeter density", f"{m['perimeter_density']:.4g}", f"{length_unit}^-1"),
                ("Euler density (4-conn. pores)", f"{m['euler_density']:.4g}", f"{length_unit}^-2"),
            ]
    if "psd" in report:
        d = report["psd"]
        rows.append(("pore diameter d50 (local thickness)", f"{d['diameter_d50']:.4g}", length_unit))
    if "network" in report:
        n = report["network"]
        rows += [("pores / throats", f"{n['pores']} / {n['throats']}", "-"),
                 ("mean coordination number", f"{n['coordination_number_mean']:.2f}", "-")]
    if "permeability" in report:
        for axis, r in report["permeability"].items():
            if r["k_m2"] is not None:
                rows.append((f"permeability K_{axis}", f"{r['k_md']:.4g} mD  ({r['k_m2']:.3e} m²)", "mD / m²"))
            else:
                rows.append((f"permeability K_{axis}", f"{r['k_voxel2']:.4g}", "voxel²"))
            if r["formation_factor"] is not None:
                rows.append((f"formation factor F_{axis}", f"{r['formation_factor']:.2f}", "-"))
    return rows


def to_markdown(report: dict, figures: "list[str]") -> str:
    lines = [f"# rocksynth analysis of {report.get('source') or 'image'}", "",
             f"Shape {' x '.join(map(str, report['shape']))}, voxel size "
             f"{report['voxel_size_m'] if report['voxel_size_m'] else 'not given'} m.", "",
             "| measure | value | unit |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in summary_rows(report)]
    if report.get("notes"):
        lines += ["", "Notes:"] + [f"- {note}" for note in report["notes"]]
    lines += ["", "| stage | seconds | peak memory (MB) |", "|---|---|---|"]
    lines += [f"| {name} | {t['seconds']:.2f} | {t['peak_rss_mb']:.0f} |" for name, t in report["timings"].items()]
    if figures:
        lines += [""] + [f"![{name}]({name})" for name in figures]
    return "\n".join(lines) + "\n"


def write_report(report: dict, mask: np.ndarray, folder: Path) -> "list[str]":
    """Write report.json, report.md and the figures into an existing (temporary) folder."""
    from rocksynth.properties.figures import write_figures

    folder = Path(folder)
    figures = write_figures(report, as_mask(mask), folder)
    (folder / "report.json").write_text(to_json(report))
    (folder / "report.md").write_text(to_markdown(report, figures))
    return ["report.json", "report.md"] + figures
