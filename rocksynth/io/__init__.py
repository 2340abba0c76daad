"""Reading and writing volumes, images and videos; segmentation of grayscale input.

Every command goes through these readers and writers, so formats, `-` for stdin/stdout,
atomic writes and error messages behave the same everywhere.
"""

from rocksynth.io.binary import load_binary_image, load_binary_volume
from rocksynth.io.images import read_image, write_image
from rocksynth.io.limits import max_voxels, set_max_voxels
from rocksynth.io.segment import binarize, detect_circular_fov
from rocksynth.io.videos import Video, read_video, write_video
from rocksynth.io.volumes import Volume, VolumeWriter, read_volume, write_volume

__all__ = ["Video", "Volume", "VolumeWriter", "binarize", "detect_circular_fov", "load_binary_image",
           "load_binary_volume", "max_voxels", "read_image", "read_video", "read_volume", "set_max_voxels",
           "write_image", "write_video", "write_volume"]
