"""`rocksynth convert IN OUT`: between TIFF stacks, (OME-)Zarr, slice folders, .npy, .raw, PNG/TIFF/JPEG and MP4."""

from typing import Optional

import typer

from rocksynth.cli import options


def convert(
    source: str = typer.Argument(..., help="Input file, folder or Zarr store ('-' = stdin)."),
    target: str = typer.Argument(..., help="Output: .tif .zarr/.ome.zarr (OME-Zarr) .npy .raw .png .jpg .mp4, a folder ending in '/', or '-'."),
    segment: bool = typer.Option(False, "--binarize", help="Segment to binary 0/255 (255 = pore); Otsu unless --threshold."),
    threshold: Optional[float] = options.Threshold,
    pore_value: str = options.PoreValue,
    crop: bool = options.Crop,
    slice_spec: Optional[str] = typer.Option(None, "--slice", help="Extract one 2D slice: AXIS=INDEX, e.g. z=200 or x=mid."),
    raw_shape: Optional[str] = options.RawShape,
    raw_dtype: str = options.RawDtype,
    voxel_size: Optional[str] = options.VoxelSize,
    fps: Optional[float] = options.number(None, "--fps", min=0, min_open=True, help="Frame rate of a written video (default: the input's, or 10)."),
) -> None:
    """Convert between formats; segment, crop or extract a slice on the way."""
    from rocksynth.io.convert import convert_file
    from rocksynth.progress import log

    summary = convert_file(source, target, segment=segment, threshold=threshold, pore_value=pore_value, crop=crop,
                           slice_spec=slice_spec, raw_shape=raw_shape, raw_dtype=raw_dtype, voxel_size=voxel_size,
                           fps=fps)
    log(summary)
