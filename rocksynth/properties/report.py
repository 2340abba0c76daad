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
    if text is None:
        return available
    chosen = tuple(part.strip().lower() for part in text.split(",") if part.strip())
    if not chosen:
        raise BadInputError(f"--only {text!r} names no measure; choose from {', '.join(MEASURES)}")
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
# Peak memory of the in-memory network extraction (PoreSpy snow2 and its network), per voxel:
# 75 bytes measured on Berea 400³ (`python benchmarks/bench_analyze.py`), with a margin.
NETWORK_BYTES_PER_VOXEL = 90
# Chunk edge of the image measures: 128³ keeps every task small (tens of MB) and both threads busy
# from 256³ volumes on, so the peak memory does not depend on the volume's size. The local
# thickness works on runs of chunks (`chunked.psd.PSD_BLOCK`): its overlap is wide.
ANALYSIS_CHUNK = 128


def analyze(mask, voxel_size: "float | None" = None, only: "tuple[str, ...] | None" = None,
            r_max: "int | None" = None, source: str = "", on_stage=None, jobs: int = 2, chunks=None,
            distributed: bool = False, network: str = "auto", memory_limit: "int | None" = None) -> dict:
    """Every requested measure of a 2D or 3D binary image (True = pore).

    The image measures (porosity, connected porosity, S2, Minkowski functionals, pore sizes)
    are computed chunk by chunk (`rocksynth.properties.chunked`, equal to the one-shot
    results) on whatever dask scheduler is active, so `mask` may be a lazy dask array larger
    than memory. The network is extracted from the whole volume in memory or block by block
    (`network`); a choice the memory cannot hold is refused before any work.

    Parameters
    ----------
    mask : numpy.ndarray or dask.array.Array
        Binary image (y, x) or volume (z, y, x), True/non-zero = pore.
    voxel_size : float, optional
        Voxel edge in metres; without it lengths are in voxels.
    only : tuple of str, optional
        Measures to compute (see `parse_only`); default all that apply.
    r_max : int, optional
        Largest S2 lag in voxels (default min(100, smallest side / 2)).
    source : str
        Name of the input, for the report.
    on_stage : callable, optional
        `on_stage(name)` as each stage starts (progress display).
    jobs : int
        With 2 or more and a network to extract, the network is extracted in a second
        process while this one measures the image (on `jobs` - 1 threads, or on the dask cluster
        when `distributed`).
    chunks : int or tuple, optional
        Chunk shape of the image measures (default `ANALYSIS_CHUNK` per side).
    distributed : bool
        A `dask.distributed` client is the active scheduler (the image measures run on its
        workers, so they keep all their threads).
    network : {'auto', 'whole', 'blocks'}
        Extract the network from the whole volume in memory (PoreSpy snow2), or block by block
        (`rocksynth.properties.chunked.network`, memory bounded by the block); 'auto' chooses
        the whole volume when it fits in `memory_limit` (default: half the available memory).
    memory_limit : int, optional
        Bytes the network extraction may use (per worker process when block by block).

    Returns
    -------
    dict
        JSON-ready report with units, timings (wall time and peak memory per stage) and notes.
    """
    import dask

    from rocksynth.properties.chunked import as_dask_mask, porosity as chunked_porosity

    if getattr(mask, "ndim", None) not in (2, 3):
        raise BadInputError(f"analyze needs a 2D image or a 3D volume, got {np.ndim(mask)}D")
    if min(mask.shape) < 8:
        raise BadInputError(f"image {tuple(mask.shape)} is too small to analyse (need at least 8 voxels per axis)")
    lazy = as_dask_mask(mask, chunks or _analysis_chunks(mask.shape))
    only = only or (MEASURES if mask.ndim == 3 else MEASURES_2D)
    h = voxel_size
    report: dict = {
        "source": source,
        "shape": list(mask.shape),
        "dimensions": mask.ndim,
        "voxel_size_m": h,
        "units": "SI (m, m^2, m^-1, ...)" if h else "voxel units (no voxel size given)",
        "chunks": [int(c[0]) for c in lazy.chunks],
    }
    notes: "list[str]" = []
    if not h:
        notes.append("no voxel size given: lengths in voxels and permeability in voxel² only; use --voxel-size")
    needs_pores = [name for name in only if name in ("psd", "network", "permeability")]
    phi = chunked_porosity(lazy) if needs_pores else None  # reused by the image measures
    if phi == 0:
        # All solid (e.g. a failed generator's output) is a valid sample: porosity 0 and K = 0,
        # with no pores to size or network to extract.
        only = tuple(name for name in only if name not in needs_pores)
        notes.append(f"no pore voxels: {', '.join(needs_pores)} not computed; permeability is 0")
        if "permeability" in needs_pores:
            report["permeability"] = {axis: {"axis": axis, "k_voxel2": 0.0, "k_m2": 0.0 if h else None,
                                             "k_md": 0.0 if h else None, "formation_factor": None,
                                             "percolating": False, "pores_used": 0, "note": "no pore voxels"}
                                      for axis in ("x", "y", "z")}
    elif phi == 1:
        # All pore: no walls bound the pores, so there are no pore sizes and no pore network; the
        # image measures still hold. (`compare` reports its permeability as not a number.)
        only = tuple(name for name in only if name not in needs_pores)
        notes.append(f"no solid voxels: {', '.join(needs_pores)} not computed (pores need walls)")
    image_measures = tuple(name for name in only if name in IMAGE_MEASURES)
    network_measures = tuple(name for name in only if name not in IMAGE_MEASURES)
    timings: dict = {}
    network_job = network_part = None
    mode = network_mode(network, mask.shape, memory_limit, jobs) if network_measures else None
    if mode == "whole":
        dense = _in_memory(mask)
        if image_measures and jobs >= 2:
            network_job = _start_network_worker(dense, h, network_measures)
        else:
            network_part = _network_measures(dense, h, network_measures, on_stage)
        del dense  # a lazy input's image measures read it again chunk by chunk
    try:
        parallel = {"num_workers": max(1, jobs - 1)} if network_job is not None and not distributed else {}
        with dask.config.set(**parallel):  # one core is the network's
            part = _image_measures(lazy, h, image_measures, r_max, on_stage, phi)
        if network_job is not None:
            if on_stage:
                on_stage("network")
    finally:
        if network_job is not None:
            network_part = network_job.result()
    if mode == "blocks":
        network_part = _network_measures(lazy, h, network_measures, on_stage, blocks=_block_scheduler(jobs, distributed))
    for found in (part, network_part):
        if found is not None:
            report.update(found["report"])
            timings.update(found["timings"])
            notes += found["notes"]
    if network_part is not None and "permeability" in network_part["report"]:
        from rocksynth.properties.permeability import formation_factor_notes

        notes = _unresolved_permeability(report, lazy, notes)
        notes += formation_factor_notes({axis: r["formation_factor"] for axis, r in report["permeability"].items()}, phi)
    report["timings"] = timings
    report["notes"] = notes
    return report


def _unresolved_permeability(report: dict, lazy, notes: "list[str]") -> "list[str]":
    """Withdraw a K = 0 the network gives where the pore space connects the faces (its note then
    says so instead of "no connected pore path"); the other notes are kept."""
    from rocksynth.properties import chunked
    from rocksynth.properties.permeability import UNRESOLVED, unresolved_axes

    percolating = {axis: r["percolating"] for axis, r in report["permeability"].items()}
    for axis in unresolved_axes(percolating, lambda: report["porosity"]["connected"] if "porosity" in report
                                else chunked.connected_porosity(lazy)):
        note = UNRESOLVED.format(axis=axis)
        report["permeability"][axis].update(k_voxel2=None, k_m2=None, k_md=None, note=note)
        notes = [n for n in notes if not n.startswith(f"K_{axis}: ")] + [f"K_{axis}: {note}"]
    return notes


def _analysis_chunks(shape) -> "tuple[int, ...]":
    return tuple(min(ANALYSIS_CHUNK, n) for n in shape)


def _in_memory(mask) -> np.ndarray:
    """The whole mask as one contiguous bool array (a dask mask is computed here)."""
    return np.ascontiguousarray(as_mask(np.asarray(mask)))


NETWORK_MODES = ("auto", "whole", "blocks")


def check_network_choice(choice: str) -> None:
    """Refuse a network extraction that is not one of `NETWORK_MODES` (one line)."""
    if choice not in NETWORK_MODES:
        raise BadInputError(f"--network {choice!r}: choose one of {', '.join(NETWORK_MODES)}")


def network_mode(choice: str, shape, memory_limit: "int | None", jobs: int) -> str:
    """'whole' or 'blocks': how to extract the network of a volume, checked against the memory.

    Raises
    ------
    BadInputError
        For an unknown choice, or a choice that needs more memory than there is (one line,
        before any work).
    """
    import psutil

    from rocksynth.properties.chunked.network import DEFAULT_CORE, DEFAULT_DEPTH

    check_network_choice(choice)
    available = psutil.virtual_memory().available
    whole = NETWORK_BYTES_PER_VOXEL * float(np.prod(shape))
    budget = memory_limit or available / 2
    if choice == "auto":
        choice = "whole" if whole <= budget else "blocks"
    if choice == "whole" and whole > available:
        raise BadInputError(f"the pore network of a {'x'.join(map(str, shape))} volume needs about {whole / 1e9:.0f} GB "
                            f"in memory ({available / 1e9:.0f} GB available); use --network blocks")
    if choice == "blocks":
        block = NETWORK_BYTES_PER_VOXEL * float(np.prod([min(n, DEFAULT_CORE + 2 * DEFAULT_DEPTH) for n in shape]))
        workers = 1 if memory_limit else max(1, jobs)
        if block * workers > available:
            raise BadInputError(f"block-wise network extraction needs about {block * workers / 1e9:.1f} GB "
                                f"({workers} blocks at once, {available / 1e9:.1f} GB available); use fewer --jobs")
    return choice


def _block_scheduler(jobs: int, distributed: bool) -> dict:
    """Where the network's blocks run: the cluster, or `jobs` local processes (the extraction
    holds the GIL, so threads would take turns)."""
    if distributed or jobs < 2:
        return {"scheduler": None if distributed else "synchronous"}
    return {"scheduler": "processes", "num_workers": jobs}


class _NetworkWorker:
    """The network extraction running in a second process; `result()` waits for it."""

    def __init__(self, pool, future):
        self._pool, self._future = pool, future

    def result(self) -> dict:
        try:
            return self._future.result()
        finally:
            self._pool.shutdown()


def _start_network_worker(dense: np.ndarray, h, measures) -> _NetworkWorker:
    """Extract the network in a second process while this one measures the image.

    A fresh (spawned) process, handed the mask: a forked one would inherit this process's
    thread pools (dask, Zarr, numba), which a fork leaves broken. The extraction is
    single-threaded and by far the longest stage, so on two cores the image measures come
    almost for free.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
    return _NetworkWorker(pool, pool.submit(_network_measures_in_worker, dense, h, measures))


def _network_measures_in_worker(dense: np.ndarray, h, measures) -> dict:
    from rocksynth.progress import route_library_logs

    route_library_logs()  # this process's stdout is the command's
    part = _network_measures(dense, h, measures, None)
    part["timings"] = {f"{name} (2nd process)": t for name, t in part["timings"].items()}
    return part


def _image_measures(mask, h, only, r_max, on_stage, phi: "float | None" = None) -> dict:
    """The image measures of a dask bool mask, chunk by chunk (`phi`: its porosity, if known)."""
    from rocksynth.properties import chunked, correlation

    meter = StageMeter()
    report: dict = {}
    notes: "list[str]" = []

    def step(name):
        if on_stage:
            on_stage(name)
        return meter.stage(name)

    if "porosity" in only:
        with step("porosity"):
            phi = chunked.porosity(mask) if phi is None else phi
            connected = chunked.connected_porosity(mask)
        report["porosity"] = {"total": phi, "connected": {k: v for k, v in connected.items() if k != "isolated"},
                              "isolated_fraction_of_pores": connected["isolated"],
                              "connectivity": "face neighbours (6 in 3D, 4 in 2D)"}
        if phi == 0 or phi == 1:
            notes.append(f"porosity is {phi:g}: the image is a single phase")

    if "correlation" in only:
        with step("correlation"):
            limit = r_max if r_max is not None else min(100, min(mask.shape) // 2)
            axes_curves = chunked.two_point_correlation_axes(mask, limit)
            s2 = axes_curves.mean(axis=0)
            s2[0] = chunked.porosity(mask) if phi is None else phi
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
            result = chunked.minkowski_functionals(mask, voxel_size=h)
            if mask.ndim == 3:
                result["euler_26"] = chunked.minkowski_functionals(mask, connectivity=26)["euler"]
        report["minkowski"] = result

    if "psd" in only:
        with step("psd"):
            report["psd"] = chunked.pore_size_distribution(mask, h)
    return {"report": report, "timings": meter.stages, "notes": notes}


def _network_measures(mask, h, only, on_stage, blocks: "dict | None" = None) -> dict:
    """Network statistics and permeability; the network from the whole mask in memory, or block by
    block when `blocks` (the scheduler settings of `extract_network_blocks`) is given."""
    from rocksynth.properties.chunked.network import extract_network_blocks
    from rocksynth.properties.network import extract_network, network_statistics
    from rocksynth.properties.permeability import network_permeability

    meter = StageMeter()
    report: dict = {}
    notes: "list[str]" = []
    if on_stage:
        on_stage("network")
    with meter.stage("network"):
        if blocks is None:
            extracted = extract_network(mask)
        else:
            extracted = extract_network_blocks(mask, **blocks)
            notes += extracted.notes
        stats = network_statistics(extracted, h)
    stats.pop("pore_diameters")
    stats.pop("throat_diameters")
    report["network"] = stats
    report["network_extraction"] = "whole volume in memory" if blocks is None else "block by block"
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
            if r["k_voxel2"] is None:
                rows.append((f"permeability K_{axis}", "not resolved (see notes)", "-"))
            elif r["k_m2"] is not None:
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


def write_report(report: dict, mask, folder: Path) -> "list[str]":
    """Write report.json, report.md and the figures into an existing (temporary) folder.

    `mask` is a numpy or dask array; of a dask one only what the figures show is read."""
    from rocksynth.properties.chunked import as_dask_mask
    from rocksynth.properties.figures import write_figures

    folder = Path(folder)
    figures = write_figures(report, as_dask_mask(mask), folder)
    (folder / "report.json").write_text(to_json(report))
    (folder / "report.md").write_text(to_markdown(report, figures))
    return ["report.json", "report.md"] + figures
