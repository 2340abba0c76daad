"""Pore-network extraction (PoreSpy SNOW) and its statistics.

The network is PoreSpy's `snow2` run serially (`parallel_kw=None`): on a 2-core machine its
default dask-chunked watershed is slower and cuts extra pores at the chunk seams. Its steps run
as `snow2` runs them, two of them replaced by equal and faster ones: the markers
(`rocksynth.properties.snow_peaks`) and the pore and throat geometry
(`rocksynth.properties.regions_network`).
Extraction happens in voxel units (voxel_size=1); physical sizes are applied afterwards, which
also keeps the flow solver's matrix well scaled (conductances of ~1e-17 m^3 in SI units make
OpenPNM's solver stop early, far from the solution).

Boundary pores (3 voxels thick) are added on the six faces, labelled by *our* axis names:
arrays are (z, y, x), so PoreSpy's 'x' (array axis 0) is our z.
"""

from dataclasses import dataclass, field

import numpy as np

from rocksynth.errors import BadInputError
from rocksynth.properties.porosity import as_mask

BOUNDARY_WIDTH = 3
# Array axis -> PoreSpy's face label prefix; and our axis names -> array axis.
_PORESPY_AXIS = {0: "x", 1: "y", 2: "z"}
AXES = {"x": 2, "y": 1, "z": 0}


@dataclass
class ExtractedNetwork:
    """A PoreSpy network dictionary (voxel units) and the shape of the image it came from."""

    network: dict
    shape: tuple
    seconds: float = 0.0
    notes: list = field(default_factory=list)

    def face_pores(self, axis_name: str, end: str) -> np.ndarray:
        """Indices of the boundary pores on the 'min' or 'max' face normal to our axis x, y or z."""
        label = f"pore.{_PORESPY_AXIS[AXES[axis_name]]}{end}"
        return np.flatnonzero(self.network[label])

    @property
    def boundary(self) -> np.ndarray:
        return np.asarray(self.network["pore.boundary"], bool)


def extract_network(mask) -> ExtractedNetwork:
    """Run SNOW (PoreSpy snow2, serial) on the pore phase, with boundary pores on all faces."""
    import time

    import porespy as ps

    from rocksynth.properties.snow_peaks import snow_markers

    mask = as_mask(mask)
    if mask.ndim != 3:
        raise BadInputError("network extraction needs a 3D volume")
    if not mask.any():
        raise BadInputError("the volume has no pore voxels: no network to extract")
    if min(mask.shape) < 2 * BOUNDARY_WIDTH:
        raise BadInputError(f"volume {mask.shape} is too small for network extraction (need >= 6 voxels per axis)")
    start = time.perf_counter()
    _quiet_porespy()
    try:
        network = snow_network(mask)
    except IndexError as exc:  # PoreSpy's boundary labelling indexes the first throat
        raise BadInputError(f"volume {mask.shape}: SNOW found no throats between its pores, so there is no pore "
                            "network; is the volume (or --crop-size) too small for its pores?") from exc
    network = _label_faces(network, mask.shape)
    return ExtractedNetwork(network=network, shape=tuple(mask.shape), seconds=time.perf_counter() - start)


def snow_network(mask: np.ndarray) -> dict:
    """PoreSpy's `snow2(mask, boundary_width=BOUNDARY_WIDTH, parallel_kw=None)` network, step by
    step as `snow2` runs it, with two parts replaced by equal and faster ones: the markers
    (`snow_peaks.snow_markers`) and the pore and throat geometry
    (`regions_network.regions_to_network`). `tests/test_regions_network.py` checks the result
    against `snow2`'s, array for array."""
    import porespy as ps

    from rocksynth.properties.regions_network import regions_to_network
    from rocksynth.properties.snow_peaks import snow_markers

    snow = ps.filters.snow_partitioning(mask, peaks=snow_markers(mask))
    regions = ps.networks.add_boundary_regions(snow.regions.astype(int), pad_width=BOUNDARY_WIDTH)
    phases = np.pad(mask.astype(int), BOUNDARY_WIDTH, mode="edge")
    network = regions_to_network(regions, phases, voxel_size=1)
    faces = [[f"{_PORESPY_AXIS[axis]}min", f"{_PORESPY_AXIS[axis]}max"] for axis in range(mask.ndim)]
    return ps.networks.label_boundaries(network, labels=faces)


def _label_faces(network: dict, shape) -> dict:
    """Label boundary pores by where they lie: inside the padding slab of a face.

    PoreSpy labels the pores with the extreme coordinates instead, which puts a face label on
    interior pores when no pore touches that face (e.g. tubes that never reach the side walls).
    Coordinates are voxel indices of the padded image, whose slabs are indices 0..2 and
    n+3..n+5 along each axis.
    """
    coords = np.asarray(network["pore.coords"])
    boundary = np.zeros(len(coords), dtype=bool)
    for axis, n in enumerate(shape):
        low = coords[:, axis] < BOUNDARY_WIDTH - 0.5
        high = coords[:, axis] > n + BOUNDARY_WIDTH - 0.5
        network[f"pore.{_PORESPY_AXIS[axis]}min"] = low
        network[f"pore.{_PORESPY_AXIS[axis]}max"] = high
        boundary |= low | high
    network["pore.boundary"] = boundary
    return network


def network_statistics(extracted: ExtractedNetwork, voxel_size: "float | None" = None) -> dict:
    """Counts of pores and throats inside the sample and the coordination numbers.

    Boundary pores and the throats joining them to the sample are left out, so the figures
    describe the rock, not the extraction's reservoirs.
    """
    net = extracted.network
    boundary = extracted.boundary
    conns = np.asarray(net["throat.conns"])
    internal_throat = ~boundary[conns].any(axis=1)
    n_pores = int((~boundary).sum())
    degree = np.bincount(conns[internal_throat].ravel(), minlength=len(boundary))[~boundary]
    h = voxel_size or 1.0
    pore_d = np.asarray(net["pore.inscribed_diameter"])[~boundary] * h
    throat_d = np.asarray(net["throat.inscribed_diameter"])[internal_throat] * h
    volume_voxels = float(np.prod(extracted.shape))
    return {
        "pores": n_pores,
        "throats": int(internal_throat.sum()),
        "boundary_pores": int(boundary.sum()),
        "coordination_number_mean": float(degree.mean()) if n_pores else 0.0,
        "coordination_number_max": int(degree.max()) if n_pores else 0,
        "isolated_pores": int((degree == 0).sum()),
        "pore_density": n_pores / (volume_voxels * h ** 3),
        "pore_diameter_mean": float(pore_d.mean()) if pore_d.size else 0.0,
        "throat_diameter_mean": float(throat_d.mean()) if throat_d.size else 0.0,
        "pore_diameters": pore_d,
        "throat_diameters": throat_d,
        "units": "m" if voxel_size else "voxel",
    }


def _quiet_porespy() -> None:
    """PoreSpy and OpenPNM log and draw tqdm bars on stderr; we show our own progress instead."""
    import logging

    import porespy as ps

    ps.settings.tqdm["disable"] = True
    for name in ("porespy", "openpnm"):
        logging.getLogger(name).setLevel(logging.ERROR)
