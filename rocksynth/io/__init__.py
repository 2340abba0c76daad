"""Reading and writing volumes, images and videos; segmentation of grayscale input.

Volumes also open lazily as chunked dask arrays (`open_lazy`: TIFF stacks, Zarr / OME-Zarr, .npy,
.raw) and stream slab by slab into a TIFF stack or an OME-Zarr image (`volume_writer`).

Every command goes through these readers and writers, so formats, `-` for stdin/stdout,
atomic writes and error messages behave the same everywhere.
"""

from rocksynth.io.binary import load_binary_image, load_binary_volume
from rocksynth.io.images import read_image, write_image
from rocksynth.io.lazy import LazyVolume, load_binary_lazy, open_lazy
from rocksynth.io.limits import max_voxels, set_max_voxels
from rocksynth.io.segment import binarize, detect_circular_fov
from rocksynth.io.videos import Video, read_video, write_video
from rocksynth.io.volumes import Volume, VolumeWriter, read_volume, volume_writer, write_volume
from rocksynth.io.zarr_io import ZarrVolumeWriter

__all__ = ["LazyVolume", "Video", "Volume", "VolumeWriter", "ZarrVolumeWriter", "binarize", "detect_circular_fov",
           "load_binary_image", "load_binary_lazy", "load_binary_volume", "max_voxels", "open_lazy", "read_image", "read_video",
           "read_volume", "set_max_voxels", "volume_writer", "write_image", "write_video", "write_volume"]
