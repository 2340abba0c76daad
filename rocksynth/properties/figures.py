"""PNG figures of an analysis report: S2 curve, pore-size histogram, orthogonal slices, 3D view."""

import os
from pathlib import Path

import numpy as np

from rocksynth.progress import warn

RENDER_MAX = 160  # voxels per axis in the 3D rendering (larger volumes are cropped at the centre)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_s2(report: dict, path: Path) -> None:
    plt = _pyplot()
    corr = report["correlation"]
    r = np.asarray(corr["r_voxels"], float)
    fig, ax = plt.subplots(figsize=(5.5, 4), dpi=120)
    names = ["x", "y", "z"] if len(corr["s2_axes"]) == 3 else ["x", "y"]
    for name in names:
        ax.plot(r, corr["s2_axes"][name], lw=1, alpha=0.7, label=f"S2 along {name}")
    ax.plot(r, corr["s2"], "k", lw=2, label="mean")
    phi = corr["s2"][0]
    ax.axhline(phi * phi, color="grey", ls="--", lw=1, label="φ²")
    if corr.get("correlation_length_voxels") is not None:
        ax.axvline(corr["correlation_length_voxels"], color="tab:red", ls=":", lw=1, label="correlation length")
    ax.set_xlabel("r (voxels)")
    ax.set_ylabel("S2(r)")
    ax.set_title("Two-point correlation of the pore phase")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_psd(report: dict, path: Path) -> None:
    plt = _pyplot()
    psd = report["psd"]
    edges = np.asarray(psd["bin_edges"])
    scale, unit = (1e6, "µm") if psd["units"] == "m" else (1.0, "voxels")
    fig, ax = plt.subplots(figsize=(5.5, 4), dpi=120)
    ax.bar(edges[:-1] * scale, psd["volume_fraction"], width=np.diff(edges) * scale, align="edge",
           color="tab:blue", edgecolor="white")
    ax.set_xlabel(f"local thickness diameter ({unit})")
    ax.set_ylabel("fraction of pore volume")
    ax.set_title("Pore-size distribution (local thickness)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_slices(mask, path: Path) -> None:
    """Three orthogonal central slices of a numpy or dask mask (only the slices are read)."""
    plt = _pyplot()
    if mask.ndim == 2:
        views = [("image", np.asarray(mask))]
    else:
        nz, ny, nx = mask.shape
        views = [(f"z = {nz // 2} (x-y plane)", np.asarray(mask[nz // 2])),
                 (f"y = {ny // 2} (x-z plane)", np.asarray(mask[:, ny // 2])),
                 (f"x = {nx // 2} (y-z plane)", np.asarray(mask[:, :, nx // 2]))]
    fig, axes = plt.subplots(1, len(views), figsize=(4 * len(views), 4.2), dpi=120, squeeze=False)
    for ax, (title, image) in zip(axes[0], views):
        ax.imshow(image, cmap="gray", interpolation="nearest")  # pore = white
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.suptitle("Orthogonal slices (white = pore)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def render_pore_space(mask, path: Path) -> "str | None":
    """Off-screen PyVista rendering of the pore surface; returns a note about cropping, if any.

    Without a display, VTK is told to use its EGL window (Mesa's llvmpipe renders on the CPU),
    instead of trying an X server first.
    """
    if not os.environ.get("DISPLAY"):
        os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
    import pyvista as pv
    from scipy.ndimage import gaussian_filter

    note = None
    if max(mask.shape) > RENDER_MAX:
        starts = [max(0, (s - RENDER_MAX) // 2) for s in mask.shape]
        mask = mask[tuple(slice(a, a + RENDER_MAX) for a in starts)]
        note = f"3D view shows the central {'x'.join(str(s) for s in mask.shape)} voxels"
    mask = np.asarray(mask)  # a dask mask is read here, at most RENDER_MAX per side
    # A light blur gives a smooth iso-surface instead of voxel staircases; padding closes it.
    field = gaussian_filter(np.pad(mask, 1).astype(np.float32), 0.7)
    grid = pv.ImageData(dimensions=field.shape[::-1])
    grid.point_data["pore"] = field.ravel(order="C")
    surface = grid.contour([0.5], scalars="pore")
    plotter = pv.Plotter(off_screen=True, window_size=(800, 800))
    plotter.set_background("white")
    if surface.n_points:
        plotter.add_mesh(surface, color="#3b7dd8", smooth_shading=True, specular=0.3)
    plotter.add_mesh(grid.outline(), color="black")
    plotter.camera_position = "iso"
    plotter.camera.zoom(1.1)
    plotter.screenshot(str(path))
    plotter.close()
    return note


REV_LABELS = {"porosity": "porosity", "surface_density": "specific surface S_V",  # also the CLI's table
              "perimeter_density": "perimeter density", "euler_density": "Euler density",
              "correlation_length": "correlation length"}


def plot_rev(report: dict, path: Path) -> None:
    """Each property against the subvolume side L: the centred cube, and the grid mean ± sd band."""
    plt = _pyplot()
    rev = report["rev"]
    sizes = np.asarray(rev["sizes_voxels"], float)
    fig, axes = plt.subplots(2, 2, figsize=(9, 7), dpi=120)
    for ax, (name, prop) in zip(axes.ravel(), rev["properties"].items()):
        mean = np.array([np.nan if v is None else v for v in prop["mean"]], float)
        sd = np.array([np.nan if v is None else v for v in prop["sd"]], float)  # no band where n < 2
        growing = np.array([np.nan if v is None else v for v in prop["growing"]], float)
        ax.fill_between(sizes, mean - sd, mean + sd, color="tab:blue", alpha=0.25, label="grid mean ± sd")
        ax.plot(sizes, mean, "o-", color="tab:blue", lw=1.5, ms=4)
        ax.plot(sizes, growing, "s--", color="tab:orange", lw=1.2, ms=4, label="centred cube")
        found = rev["rev_size_voxels"].get(name)
        if found is not None:
            ax.axvline(found, color="tab:green", ls=":", lw=1.2,
                       label=f"relative sd < {100 * rev['tolerance']:g} %")
        ax.set_xscale("log")
        ax.set_xticks(sizes)
        ax.set_xticklabels([str(int(s)) for s in sizes], fontsize=7)
        ax.minorticks_off()
        ax.set_xlabel("subvolume side L (voxels)")
        ax.set_ylabel(f"{REV_LABELS.get(name, name)} ({prop['unit']})")
        ax.legend(fontsize=7)
    fig.suptitle("Representative elementary volume: properties against subvolume size")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_figures(report: dict, mask, folder: Path) -> "list[str]":
    """Write every figure the report has data for; returns the file names written.

    `mask` is a numpy or dask bool array; of a dask one only the slices and the rendered
    central cube are read."""
    written = []
    if "correlation" in report:
        plot_s2(report, folder / "s2.png")
        written.append("s2.png")
    if "psd" in report:
        plot_psd(report, folder / "pore_size_distribution.png")
        written.append("pore_size_distribution.png")
    if "rev" in report:
        plot_rev(report, folder / "rev.png")
        written.append("rev.png")
    plot_slices(mask, folder / "slices.png")
    written.append("slices.png")
    if mask.ndim == 3:
        try:
            note = render_pore_space(mask, folder / "pore_space_3d.png")
            written.append("pore_space_3d.png")
            if note:
                report.setdefault("notes", []).append(note)
        except Exception as exc:  # VTK without a usable OpenGL context: keep the rest of the report
            warn(f"3D rendering skipped: {type(exc).__name__}: {exc}")
            report.setdefault("notes", []).append(f"3D rendering failed: {exc}")
    return written
