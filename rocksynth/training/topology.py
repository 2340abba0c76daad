"""Euler density of a batch of binary volumes as a differentiable function.

The texture and reconstruct trainers log it on the learning curve (held-out against generated).
As a loss term it did not add pore loops to either model and was removed from the trainers
(docs/notes/2026-12-06-removed-training-experiments.md); `boundary_gradient_only` remains for
the diagnostic `benchmarks/diag_texture_topology.py --finetune`, which studies that gradient.

The Euler number of the pore phase (6-connectivity) is the additive 2x2x2-block estimate of
`rocksynth.properties.minkowski` (the benchmark's): every block adds corners/8 - axis edges/4 +
full faces/2 - full cube, each a product of voxel values. On binary input the value is exact;
being multilinear in each voxel, its derivative with respect to a voxel is exactly the change of
the Euler number when that voxel flips, so a straight-through binary output gets an honest
gradient.

That gradient is only used on the pore/solid boundary (`boundary_gradient_only`). Inside a pore
or a grain a flip makes an isolated speck or cavity (Euler +1 each), so the linearised term
tells every interior solid voxel to become "more solid" and every interior pore voxel "more
pore"; solid voxels being the majority, the sum moved the whole output towards solid: the first
fine-tuning with this term made three of four textures all solid within 50 iterations. On the
boundary (face neighbours) the derivative says which flips change the topology (a solid voxel
between two pores: -1, bridging them; a flat wall: 0).
"""

import itertools

import torch
from torch.nn import functional as F

# Learning curves state Euler densities per 10^4 voxels: real rocks are about
# -0.7 to -2 in that unit.
EULER_UNIT = 1e4
CORNERS = list(itertools.product((0, 1), repeat=3))
AXIS_EDGES = [(a, b) for a, b in itertools.combinations(range(8), 2)
              if sum(abs(p - q) for p, q in zip(CORNERS[a], CORNERS[b])) == 1]
# The six faces of the block: the four corners sharing one coordinate value.
FACES = [[k for k, c in enumerate(CORNERS) if c[axis] == value] for axis in range(3) for value in (0, 1)]


def euler_density(volumes: torch.Tensor) -> torch.Tensor:
    """(B, 1, n, n, n) pore indicator (1 = pore; binary, or straight-through binary) -> (B,)
    Euler number of the pores, 6-connectivity, per voxel of the (n-1)^3 window of blocks;
    equals `minkowski_functionals(mask)["euler_density"]` on binary masks."""
    v = volumes[:, 0]
    n = v.shape[1:]
    corner = [v[:, dz:dz + n[0] - 1, dy:dy + n[1] - 1, dx:dx + n[2] - 1] for dz, dy, dx in CORNERS]
    vertices = sum(corner)
    edges = sum(corner[a] * corner[b] for a, b in AXIS_EDGES)
    faces = sum(corner[a] * corner[b] * corner[c] * corner[d] for a, b, c, d in FACES)
    cube = torch.stack(corner).prod(0)
    per_block = vertices / 8 - edges / 4 + faces / 2 - cube
    return per_block.mean(dim=(1, 2, 3))


def boundary_gradient_only(volumes: torch.Tensor) -> torch.Tensor:
    """A straight-through binary (B, 1, ...) volume with the same values, whose gradient is kept
    only at voxels with a face neighbour (6-neighbourhood) of the other phase. Not the 3x3x3
    neighbourhood: a solid voxel touching the pores only along an edge or corner becomes an
    isolated pore voxel when flipped (+1), and those voxels' derivatives (mean +0.46 on Berea)
    again pushed the output towards solid; on face-boundary voxels they average about 0."""
    hard = volumes.detach()
    padded = F.pad(hard, (1, 1, 1, 1, 1, 1), mode="replicate")
    boundary = torch.zeros_like(hard, dtype=torch.bool)
    for axis in (2, 3, 4):
        for start in (0, 2):
            neighbour = padded.narrow(axis, start, hard.shape[axis])
            for other in {2, 3, 4} - {axis}:
                neighbour = neighbour.narrow(other, 1, hard.shape[other])
            boundary |= neighbour != hard
    return hard + boundary.to(volumes.dtype) * (volumes - hard)
