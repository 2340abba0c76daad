"""Absolute permeability and formation factor from a pore network (PoreSpy SNOW -> OpenPNM).

Pipeline (the one documented by the OpenPNM developers for this Berea sample, not tuned here):
- sizes: pore diameter = volume-equivalent sphere diameter, throat diameter = inscribed diameter,
  conduit length = SNOW's total throat length (pore centre to pore centre through the throat);
- conduit shape: `pyramids_and_cuboids` hydraulic and diffusive size factors (OpenPNM);
  `cones_and_cylinders` or `cubes_and_cuboids` can be chosen with `conduit=`, and
  `spheres_and_cylinders` (ball and stick; OpenPNM's formulas made to accept SNOW networks, with
  boundary pores as reservoirs and throats clipped to their pores: see `conduits.py`);
- Stokes flow (OpenPNM `StokesFlow`) with unit pressure drop between the boundary pores of the
  two faces, in voxel units; K = Q mu L / (A dP) with L the sample length and A its cross-section,
  then scaled by voxel_size^2 to m^2;
- formation factor F = D0 / D_eff from OpenPNM `FickianDiffusion` on the same network.
Only pores connected to both faces take part; if there is none, K = 0 with a note.
"""

from dataclasses import asdict, dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from rocksynth.errors import BadInputError
from rocksynth.properties.conduits import ball_and_stick_size_factors
from rocksynth.properties.network import AXES, ExtractedNetwork, extract_network
from rocksynth.units import m2_to_millidarcy

# Conduit length between two pore centres: SNOW's length through the throat (pore centre ->
# throat centre -> pore centre); "throat.direct_length" is the straight centre-to-centre distance.
SPACING = "throat.total_length"
CONDUITS = ("pyramids_and_cuboids", "cones_and_cylinders", "cubes_and_cuboids", "spheres_and_cylinders")


@dataclass
class AxisPermeability:
    axis: str
    k_voxel2: float  # permeability in voxel-side^2 units
    k_m2: "float | None"
    k_md: "float | None"
    formation_factor: "float | None"
    percolating: bool
    pores_used: int
    note: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def permeability(mask, voxel_size: "float | None", axis: str = "x", conduit: str = CONDUITS[0]) -> AxisPermeability:
    """Permeability of a 3D binary volume along one axis ('x', 'y' or 'z'; arrays are z, y, x)."""
    return network_permeability(extract_network(mask), voxel_size, (axis,), conduit)[0]


def network_permeability(extracted: ExtractedNetwork, voxel_size: "float | None", axes=("x", "y", "z"),
                         conduit: str = CONDUITS[0], formation_factor: bool = True) -> "list[AxisPermeability]":
    """Permeability (and formation factor) along each requested axis of an extracted network."""
    if conduit not in CONDUITS:
        raise BadInputError(f"unknown conduit model {conduit!r}; choose one of {', '.join(CONDUITS)}")
    results = []
    for axis in axes:
        if axis not in AXES:
            raise BadInputError(f"axis must be x, y or z, got {axis!r}")
        results.append(_axis_permeability(extracted, voxel_size, axis, conduit, formation_factor))
    return results


def _axis_permeability(extracted, voxel_size, axis, conduit, with_formation_factor) -> AxisPermeability:
    inlet, outlet = extracted.face_pores(axis, "min"), extracted.face_pores(axis, "max")
    keep = _spanning_pores(extracted.network, inlet, outlet)
    if keep.size == 0:
        return AxisPermeability(axis, 0.0, 0.0 if voxel_size else None, 0.0 if voxel_size else None, None, False, 0,
                                note=f"no connected pore path between the two faces normal to {axis}: K = 0")
    network = _openpnm_network(extracted.network, keep, conduit)
    in_new = np.flatnonzero(np.isin(keep, inlet))
    out_new = np.flatnonzero(np.isin(keep, outlet))
    shape = extracted.shape
    array_axis = AXES[axis]
    length = shape[array_axis]
    area = float(np.prod([s for i, s in enumerate(shape) if i != array_axis]))

    flow = _solve(network, "flow", in_new, out_new)
    k_voxel2 = flow * length / area  # mu = 1, dP = 1
    formation = None
    if with_formation_factor:
        diffusion = _solve(network, "diffusion", in_new, out_new)
        formation = area / (diffusion * length) if diffusion > 0 else None
    k_m2 = k_voxel2 * voxel_size ** 2 if voxel_size else None
    note = "" if voxel_size else "no voxel size given: K in voxel units only"
    return AxisPermeability(axis, float(k_voxel2), k_m2, m2_to_millidarcy(k_m2) if k_m2 is not None else None,
                            formation, True, int(keep.size), note)


# Why K is not given on an axis whose faces the pore space connects but the network does not.
UNRESOLVED = ("the pore space connects the two faces normal to {axis}, but the pore network does not (SNOW gives no "
              "boundary pore to a face the pores reach only through thin openings, as a small or unluckily cut "
              "sample can): K_{axis} not computed, rather than a false 0; a larger sample resolves it")


def unresolved_axes(percolating: "dict[str, bool]", connected_porosity) -> "list[str]":
    """Axes with no network path between the faces although the pore space, by face neighbours,
    connects them: their K = 0 is the network's, not the sample's.

    `percolating`: axis -> whether the network connects its faces. `connected_porosity()` gives
    the connected porosity per axis; it is called only when an axis does not percolate (a
    labelling of the whole sample, needless otherwise)."""
    stuck = [axis for axis, through in percolating.items() if not through]
    if not stuck:
        return []
    connected = connected_porosity()
    return [axis for axis in stuck if connected.get(axis, 0) > 0]


def formation_factor_notes(factors: "dict[str, float | None]", porosity: float) -> "list[str]":
    """Notes for the formation factors (axis -> F) below 1 / porosity, which no pore space reaches.

    The conductivity of a pore space with an insulating solid is at most porosity times the
    fluid's (the Wiener bound: straight channels along the axis reach it), so F >= 1 / porosity
    for any microstructure. A network's F below it means its conduit model overestimates the
    conductance of this pore space (very open or channel-like pores), and its K is suspect too.
    """
    notes = []
    for axis, factor in factors.items():
        if factor is not None and porosity > 0 and factor * porosity < 1 - 1e-9:
            notes.append(f"F_{axis} = {factor:.3g} is below 1/porosity = {1 / porosity:.4g}, which no pore space can "
                         f"reach: the pore network model overestimates conductance here; treat K_{axis} with caution")
    return notes


def _spanning_pores(net: dict, inlet: np.ndarray, outlet: np.ndarray) -> np.ndarray:
    """Pores in clusters that touch both faces (sorted indices)."""
    conns = np.asarray(net["throat.conns"])
    n = len(net["pore.coords"])
    graph = coo_matrix((np.ones(len(conns)), (conns[:, 0], conns[:, 1])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    spanning = np.intersect1d(labels[inlet], labels[outlet])
    return np.flatnonzero(np.isin(labels, spanning))


def _openpnm_network(net: dict, keep: np.ndarray, conduit: str):
    """An OpenPNM network of the kept pores with the chosen geometry models evaluated."""
    import openpnm as op

    _quiet_openpnm()
    index = -np.ones(len(net["pore.coords"]), dtype=np.int64)
    index[keep] = np.arange(keep.size)
    conns = np.asarray(net["throat.conns"])
    throats = np.flatnonzero((index[conns] >= 0).all(axis=1))
    data = {}
    for key, value in net.items():
        value = np.asarray(value)
        if key.startswith("pore."):
            data[key] = value[keep]
        elif key == "throat.conns":
            data[key] = index[conns[throats]]
        elif key.startswith("throat."):
            data[key] = value[throats]
    network = op.io.network_from_porespy(data)
    network["pore.diameter"] = network["pore.equivalent_diameter"]
    network["throat.diameter"] = network["throat.inscribed_diameter"]
    # A copy, and without the network's own spacing model: regenerate_models() below would
    # otherwise recompute the straight pore-centre distance and write it into this array,
    # silently replacing SNOW's total length (`tests/test_properties_permeability.py` checks it).
    network.models.pop("throat.spacing@all", None)
    network["throat.spacing"] = np.array(network[SPACING], dtype=float)
    if conduit == "spheres_and_cylinders":
        hydraulic, diffusive, _ = ball_and_stick_size_factors(
            network["pore.diameter"], network["throat.diameter"], network["throat.conns"],
            network["throat.spacing"], network["pore.boundary"])
        network["throat.hydraulic_size_factors"] = hydraulic
        network["throat.diffusive_size_factors"] = diffusive
        return network
    network.add_model(propname="throat.hydraulic_size_factors",
                      model=getattr(op.models.geometry.hydraulic_size_factors, conduit))
    network.add_model(propname="throat.diffusive_size_factors",
                      model=getattr(op.models.geometry.diffusive_size_factors, conduit))
    network.regenerate_models()
    return network


def _solve(network, kind: str, inlet: np.ndarray, outlet: np.ndarray) -> float:
    """Total rate through the inlet for a unit drop, with unit viscosity/diffusivity."""
    import openpnm as op

    phase = op.phase.Phase(network=network)
    if kind == "flow":
        phase["pore.viscosity"] = 1.0
        phase.add_model(propname="throat.hydraulic_conductance",
                        model=op.models.physics.hydraulic_conductance.generic_hydraulic)
        algorithm_class = op.algorithms.StokesFlow
    else:
        phase["pore.diffusivity"] = 1.0
        phase.add_model(propname="throat.diffusive_conductance",
                        model=op.models.physics.diffusive_conductance.generic_diffusive)
        algorithm_class = op.algorithms.FickianDiffusion
    phase.regenerate_models()
    algorithm = algorithm_class(network=network, phase=phase)
    algorithm.set_value_BC(pores=inlet, values=1.0)
    algorithm.set_value_BC(pores=outlet, values=0.0)
    algorithm.run()
    field = algorithm[algorithm.settings["quantity"]]
    if not np.allclose(field[inlet], 1.0, atol=1e-6) or not np.all(np.isfinite(field)):
        raise RuntimeError(f"OpenPNM {kind} solve did not converge")
    return float(algorithm.rate(pores=inlet)[0])


def _quiet_openpnm() -> None:
    import logging

    import openpnm as op

    op.Workspace().settings["loglevel"] = 50
    logging.getLogger("openpnm").setLevel(logging.ERROR)
