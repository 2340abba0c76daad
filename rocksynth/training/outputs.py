"""Every file a training run writes, planned and checked before any work, and what a run that
stops leaves behind.

A trainer lists its files (the checkpoint, its CSV learning curve, the PNG plot, a best
checkpoint...) in a `TrainingOutputs` plan. `check()` refuses, before any work, an output that
cannot be written (`rocksynth.io.paths.prepare_outputs`: a missing or read-only folder, an input
of the run, a folder, a file written twice) and, without `--resume`, any that already exists: a
run never replaces a checkpoint or a curve silently. Used as a context manager around the run, the
plan cleans up after a failure or an interrupt (`rocksynth.interrupts.Interrupted`):

- a run that has not saved a checkpoint yet removes every file it created, so a failed new run
  leaves nothing behind (and a resumed one leaves what it started from);
- the last checkpoint (saved by this run, or the one a resumed run started from) is kept, and the
  learning curves are cut back to its iteration, so the run resumes cleanly from it.

Learning curves (`CurveFile`) are kept in memory and rewritten atomically on every change, so a
curve on disk is never half written.
"""

import csv
import os
from pathlib import Path

from rocksynth import interrupts
from rocksynth.errors import BadInputError
from rocksynth.io.paths import STDIO, atomic_output, prepare_outputs, register_input


def save_curve_figure(fig, path) -> None:
    """Write a learning-curve figure as PNG atomically (a stopped run never leaves half a file),
    then close it."""
    import matplotlib.pyplot as plt

    try:
        with atomic_output(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=90, format="png")
    finally:
        plt.close(fig)


def checkpoint_path(out: "str | os.PathLike") -> Path:
    """The --out of a training run as a path; `-` (stdout) and paths without a file name refused."""
    if str(out) == STDIO:
        raise BadInputError("--out -: a training run writes a checkpoint with a learning curve beside it; "
                            "give a file path, e.g. --out model.pt")
    path = Path(out)
    if not path.name or path.name in (".", "..") or str(out).endswith(("/", os.sep)):
        raise BadInputError(f"--out {out}: expected a checkpoint file path, e.g. model.pt")
    if path.suffix.lower() != ".pt":
        # The curve, plot and configuration go beside it as .csv, .png and .toml: an --out named
        # like one of them would be overwritten by it, and a model.tif would not be a TIFF.
        raise BadInputError(f"--out {out}: a checkpoint is a .pt file (its learning curve and configuration are "
                            f"written beside it); e.g. --out {path.stem or 'model'}.pt")
    return path


class CurveFile:
    """A CSV learning curve owned by a run: its rows live in memory and every change rewrites the
    file atomically (temporary file + rename). Values are written as given (str of each)."""

    def __init__(self, path: "str | os.PathLike", fields: "list[str]", rows: "list[dict] | None" = None):
        self.path, self.fields = Path(path), list(fields)
        self.rows = rows if rows is not None else []

    def load(self) -> "CurveFile":
        """Read the rows already on disk (a resumed run's); columns it lacks are left blank."""
        if self.path.is_file():
            with open(self.path, newline="") as handle:
                self.rows = [dict(row) for row in csv.DictReader(handle)]
        return self

    def append(self, row: dict) -> None:
        self.rows.append(row)
        self.write()

    def keep_until(self, iteration: int) -> None:
        """Drop the rows after `iteration` (logged after the checkpoint a run resumes from) and
        rows that cannot be read (a line cut short by a killed process)."""
        kept = [row for row in self.rows if _iteration(row) is not None and _iteration(row) <= iteration]
        if len(kept) != len(self.rows):
            self.rows[:] = kept
            self.write()

    def write(self) -> None:
        with atomic_output(self.path, suffix=".csv") as tmp:
            with open(tmp, "w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=self.fields, extrasaction="ignore", restval="")
                writer.writeheader()
                writer.writerows(self.rows)


def _iteration(row: dict) -> "int | None":
    try:
        return int(float(row.get("iteration")))
    except (TypeError, ValueError):
        return None


class TrainingOutputs:
    """The files of one training run: `checkpoint` (--out) and the `companions` written beside it.

    Use `check()` to refuse unusable outputs up front, and `with plan:` around the run; tell the
    plan `resumed_from(iteration)` when a run continues a checkpoint and `saved(iteration)` after
    each checkpoint save, and register learning curves with `curve(...)`.
    """

    def __init__(self, checkpoint: "str | os.PathLike", companions=(), *, resume: bool = False):
        self.checkpoint = checkpoint_path(checkpoint)
        self.companions = [Path(p) for p in companions]
        self.resume = resume
        self.curves: "list[CurveFile]" = []
        self.checkpoint_iteration: "int | None" = None
        self._existed: "set[Path]" = set()
        self._saved = False
        self._elsewhere = False

    @property
    def files(self) -> "list[Path]":
        return [self.checkpoint, *self.companions]

    @property
    def resuming(self) -> bool:
        """Resume asked for and there is a checkpoint to resume."""
        return self.resume and self.checkpoint.is_file()

    def check(self) -> "TrainingOutputs":
        """Refuse, before any work, what this run could not or must not write."""
        prepare_outputs(self.files)  # folders, inputs of the run, directories, a file written twice
        if self.resuming:
            return self
        if self.checkpoint.exists() and not self.resume:
            raise BadInputError(f"{self.checkpoint} exists; pass --resume to continue it or choose another --out")
        for path in self.companions:
            if path.exists():
                raise BadInputError(f"{path} exists but its checkpoint {self.checkpoint} does not (left by another "
                                    f"run?); remove it or choose another --out")
        return self

    def curve(self, path: "str | os.PathLike", fields: "list[str]", rows: "list[dict] | None" = None) -> CurveFile:
        """A learning curve of this run (one of its planned files)."""
        curve = CurveFile(path, fields, rows)
        self.curves.append(curve)
        return curve

    def resumed_from(self, iteration: int) -> None:
        """The run continues a checkpoint saved at `iteration`: what is on disk stays on failure."""
        self.checkpoint_iteration = iteration

    def saved(self, iteration: int) -> None:
        """A complete checkpoint at `iteration` was written to `checkpoint`."""
        self.checkpoint_iteration = iteration
        self._saved = True

    def written_elsewhere(self) -> None:
        """Another process writes these files (rank 0 of a multi-process run): this one must
        not remove or cut them back when it fails or is stopped."""
        self._elsewhere = True

    def __enter__(self) -> "TrainingOutputs":
        self.check()
        self._existed = {path for path in self.files if path.exists()}
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is not None:
            with interrupts.unwinding():  # the curves are rewritten, also after a signal
                self.clean_up()
        return False

    def clean_up(self) -> None:
        """After a failure or an interrupt: a run that saved no checkpoint removes every file it
        created (so a new run leaves nothing); the curves are cut back to the last checkpoint."""
        if self._elsewhere:
            return
        if not self._saved:
            for path in self.files:
                if path not in self._existed:
                    try:
                        path.unlink()
                    except OSError:  # gone already; the cleanup of a failed run must not hide its error
                        pass
        if self.checkpoint_iteration is not None:
            for curve in self.curves:
                if curve.path.exists():
                    try:
                        curve.keep_until(self.checkpoint_iteration)
                    except (OSError, BadInputError):
                        pass


# --- the files of each trainer ---------------------------------------------------------------------
# Here rather than in the trainers' modules, so that the CLI checks them before importing torch.

def reconstruct_plan(out, resume: bool = False, curve_csv=None) -> TrainingOutputs:
    """`train reconstruct`: the checkpoint `out`, the CSV learning curve (default `<out>.csv`), its
    plot (the curve's name with .png) and `<out>.best.pt` (the checkpoint with the lowest eval_score)."""
    out = checkpoint_path(out)
    curve_csv = Path(curve_csv) if curve_csv else out.with_suffix(".csv")
    return TrainingOutputs(out, [curve_csv, curve_csv.with_suffix(".png"), out.with_suffix(".best.pt")],
                           resume=resume)


def texture_plan(out, resume: bool = False) -> TrainingOutputs:
    """`train texture`: the checkpoint `out`, `<out>.csv` (learning curve), `<out>.png` (its plot)
    and `<out>.best.pt` (the checkpoint with the lowest held-out quality error)."""
    out = checkpoint_path(out)
    return TrainingOutputs(out, [out.with_suffix(".csv"), out.with_suffix(".png"), out.with_suffix(".best.pt")],
                           resume=resume)


def video_plan(out, resume: bool = False, stage: str = "vqvae", curve=None) -> TrainingOutputs:
    """`train video`: the checkpoint `out`, the stage's CSV learning curve (default
    `<out>.vqvae.csv`, `<out>.transformer.csv` or `<out>.predictor.csv`), its plot (.png beside
    it) and `<out>.best.pt`, the stage's best held-out evaluation (`VIDEO_BEST`)."""
    out = checkpoint_path(out)
    curve = Path(curve) if curve else out.with_suffix(f".{stage}.csv")
    return TrainingOutputs(out, [curve, curve.with_suffix(".png"), out.with_suffix(".best.pt")], resume=resume)


# The metric and direction each video stage's best checkpoint is chosen by.
VIDEO_BEST = {"vqvae": ("heldout_psnr", "max"), "transformer": ("heldout_bpd", "min"),
              "predictor": ("heldout_psnr_pred", "max")}


def clean_plan(out, resume: bool = False, curve_csv=None, pairs_dir=None) -> TrainingOutputs:
    """`train clean`: the checkpoint `out`, `<out>.best.pt` (the highest held-out IoU) and, if
    asked for, its CSV learning curve and the curve's plot (.png beside it). None of them may go
    into the scans/ or clean/ folder of `pairs_dir`, where the next run would take them for
    training images (call `register_pair_images` first, so none may replace one either)."""
    out = checkpoint_path(out)
    curve = [Path(curve_csv), Path(curve_csv).with_suffix(".png")] if curve_csv else []
    plan = TrainingOutputs(out, [out.with_suffix(".best.pt"), *curve], resume=resume)
    if pairs_dir is not None:
        image_folders = {os.path.realpath(Path(pairs_dir) / sub) for sub in PAIR_FOLDERS}
        for path in plan.files:
            if os.path.realpath(path.parent if str(path.parent) else ".") in image_folders:
                raise BadInputError(f"{path}: inside the training images of --pairs {pairs_dir}; "
                                    f"choose an --out outside its scans/ and clean/ folders")
    return plan


PAIR_FOLDERS = ("scans", "clean")


def register_pair_images(pairs_dir) -> None:
    """Every image of a --pairs folder is an input of the run: no output may replace one."""
    if pairs_dir is None:
        return
    for sub in PAIR_FOLDERS:
        folder = Path(pairs_dir) / sub
        if folder.is_dir():
            for path in folder.iterdir():
                if path.is_file():
                    register_input(path)
