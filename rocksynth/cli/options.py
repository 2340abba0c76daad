"""Options shared by several commands, so they read and behave the same everywhere."""

import typer

Threshold = typer.Option(None, "--threshold", help="Gray value separating pore from solid (default: Otsu).")
PoreValue = typer.Option("auto", "--pore-value",
                         help="Which phase is pore: 255/0 for binary input, dark/bright for gray (auto: 255, or dark).")
Crop = typer.Option(False, "--crop", help="Crop a detected circular micro-CT field of view to its inscribed square.")
VoxelSize = typer.Option(None, "--voxel-size", help="Voxel size in metres, or with a unit: 5.345um.")
RawShape = typer.Option(None, "--shape", help="Shape of a .raw input, ZxYxX.")
RawDtype = typer.Option("uint8", "--dtype", help="Data type of a .raw input (uint8, uint16, float32, ...).")
Json = typer.Option(False, "--json", help="Machine-readable JSON on stdout.")
Seed = typer.Option(0, "--seed", help="Random seed: the same seed gives the same output.")
