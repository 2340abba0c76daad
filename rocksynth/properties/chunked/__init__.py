"""Chunked measures of volumes too large for memory, equal to the one-shot ones in `rocksynth.properties`.

Every function takes a dask array (z, y, x) or (y, x) of bool, True = pore (a numpy array or memmap
is wrapped, non-bool input is thresholded at > 0), runs one task per chunk under whatever dask
scheduler is active (threads by default, a `dask.distributed` client when one is set), and brings
back only small per-chunk results (counts, sums); nothing computes the whole volume at once.

- `porosity`, `connected_porosity`: counts; a global face-connected labelling merged across chunk
  faces. Exact.
- `configuration_histogram`, `minkowski_functionals`: 2x2x2 configuration counts per chunk (one
  voxel of context on the high side), summed. Exact.
- `pair_counts`, `two_point_correlation_axes`, `two_point_correlation`: non-periodic S2, pairs
  counted by the chunk of their first voxel (r_max of context on the high side). Exact counts.
- `max_distance`, `local_thickness`, `pore_size_distribution`: PoreSpy's local thickness with
  chunks overlapping by depth >= 2 R (R = largest sphere radius). Equal voxel for voxel.
"""

from rocksynth.properties.chunked.blocks import as_dask_mask
from rocksynth.properties.chunked.correlation import pair_counts, two_point_correlation, two_point_correlation_axes
from rocksynth.properties.chunked.minkowski import configuration_histogram, minkowski_functionals
from rocksynth.properties.chunked.porosity import connected_porosity, porosity
from rocksynth.properties.chunked.psd import (local_thickness, local_thickness_radii, max_distance,
                                              pore_size_distribution)

__all__ = [
    "as_dask_mask", "porosity", "connected_porosity", "configuration_histogram", "minkowski_functionals",
    "pair_counts", "two_point_correlation_axes", "two_point_correlation", "max_distance", "local_thickness_radii",
    "local_thickness", "pore_size_distribution",
]
