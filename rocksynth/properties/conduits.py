"""Ball-and-stick conduits (spheres and cylinders) for SNOW networks.

OpenPNM's `spheres_and_cylinders` size factors treat each pore as a sphere and each throat as a
cylinder between two sphere caps. SNOW networks break two of its assumptions, so it refuses them:
- boundary pores are 3-voxel slabs added by the extraction, whose volume-equivalent diameter is
  smaller than their throats. They are reservoirs, not rock: their half of the conduit gets no
  length and no resistance;
- in a few internal conduits the throat's inscribed diameter exceeds a pore's volume-equivalent
  diameter (0.4 % of throats on Berea 400^3), or one pore's sphere reaches past the other pore's
  centre (0.02 %). A throat is the constriction between two pores, so its diameter is clipped to
  the smaller pore's; where spheres overlap past a centre the two sphere halves are scaled down to
  fill the centre-to-centre length (OpenPNM raises there).
Otherwise the conduit lengths and integrals are OpenPNM's: sphere half-length sqrt(R^2 - r_t^2),
throat length = centre-to-centre length minus both, and where two spheres overlap the
intersection plane splits the conduit.
"""

import numpy as np


def ball_and_stick_size_factors(pore_diameter, throat_diameter, conns, spacing, boundary):
    """Hydraulic and diffusive size factors (Nt x 3: pore1, throat, pore2) and clipping counts.

    Hydraulic factor S = 1 / (8 pi integral dx / A^2) (S = pi r^4 / 8L for a cylinder: Hagen-Poiseuille);
    diffusive factor S = 1 / integral dx / A. A zero-length part has S = inf (no resistance).
    """
    conns = np.asarray(conns)
    boundary = np.asarray(boundary, bool)[conns]
    pore_d = np.asarray(pore_diameter, float)[conns]
    # Boundary pores do not bound the throat: their side is a reservoir.
    narrowest_pore = np.where(boundary, np.inf, pore_d).min(axis=1)
    throat_d = np.asarray(throat_diameter, float)
    clipped = throat_d > narrowest_pore
    throat_d = np.minimum(throat_d, narrowest_pore)
    d1 = np.where(boundary[:, 0], throat_d, pore_d[:, 0])  # d = throat diameter gives zero length
    d2 = np.where(boundary[:, 1], throat_d, pore_d[:, 1])
    l1, lt, l2, scaled = _conduit_lengths(d1, throat_d, d2, np.asarray(spacing, float))
    hydraulic = np.column_stack([_sphere_hydraulic(d1, l1), _cylinder_hydraulic(throat_d, lt), _sphere_hydraulic(d2, l2)])
    diffusive = np.column_stack([_sphere_diffusive(d1, l1), _cylinder_diffusive(throat_d, lt), _sphere_diffusive(d2, l2)])
    internal = ~boundary.any(axis=1)
    counts = {"throats": int(internal.sum()), "throat_clipped_to_pore": int((clipped & internal).sum()),
              "spheres_scaled": int((scaled & internal).sum())}
    return hydraulic, diffusive, counts


def _conduit_lengths(d1, dt, d2, spacing):
    """OpenPNM's spheres_and_cylinders conduit lengths, defined also where it raises."""
    r1, r2, rt = d1 / 2, d2 / 2, dt / 2
    l1, l2 = np.sqrt(r1 ** 2 - rt ** 2), np.sqrt(r2 ** 2 - rt ** 2)
    lt = spacing - l1 - l2
    overlap = lt < 0
    # Overlapping spheres: split at their intersection plane if it lies between the centres
    # and is wider than the throat (then the throat has no length).
    plane = (spacing ** 2 - r2 ** 2 + r1 ** 2) / (2 * spacing)
    plane_d = 2 * np.sqrt(np.maximum(r1 ** 2 - plane ** 2, 0.0))
    split = overlap & (plane >= 0) & (plane <= spacing) & (plane_d > dt)
    l1[split], l2[split] = plane[split], spacing[split] - plane[split]
    scaled = overlap & ~split
    factor = spacing[scaled] / (l1[scaled] + l2[scaled])
    l1[scaled] *= factor
    l2[scaled] *= factor
    lt[overlap] = 0.0
    # The sphere integrals diverge at x = R (a pore touching its neighbour's centre): stay inside.
    return np.minimum(l1, r1 * (1 - 1e-9)), lt, np.minimum(l2, r2 * (1 - 1e-9)), scaled


def _sphere_hydraulic(d, length):
    with np.errstate(divide="ignore", invalid="ignore"):
        f = 4 / (d ** 3 * np.pi ** 2) * (2 * d * length / (d ** 2 - 4 * length ** 2) + np.arctanh(2 * length / d))
        return np.where(length > 0, 1 / (8 * np.pi * f), np.inf)


def _sphere_diffusive(d, length):
    with np.errstate(divide="ignore", invalid="ignore"):
        f = 2 / (np.pi * d) * np.arctanh(2 * length / d)
        return np.where(length > 0, 1 / f, np.inf)


def _cylinder_hydraulic(d, length):
    area = np.pi * d ** 2 / 4
    with np.errstate(divide="ignore"):
        return np.where(length > 0, area ** 2 / (8 * np.pi * np.maximum(length, 1e-300)), np.inf)


def _cylinder_diffusive(d, length):
    area = np.pi * d ** 2 / 4
    with np.errstate(divide="ignore"):
        return np.where(length > 0, area / np.maximum(length, 1e-300), np.inf)
