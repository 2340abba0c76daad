"""Why retraining the slice-to-volume GAN costs the pores their connectivity (issue #25): short
retraining ablations, and the connectivity of any model's held-out cubes at the real porosity.

`connectivity CKPT ...` (no training): for each model (a checkpoint or a shipped name) and each
rock, 24 held-out 64^3 cubes (the last quarter along z; fixed seed) are generated from their
central slices. It prints the porosity at the model's threshold against the real one, and the
Euler density (per 10^4 voxels; more negative = more pore loops) of the real cubes, of the
generated ones at the model's threshold, and of the generated ones thresholded at each real
cube's own porosity ("matched"). The matched figure separates the pore texture's connectivity
from the porosity level, which any threshold moves.

`train ABLATION -- ARGS`: `rocksynth train reconstruct ARGS` with one part of the training
changed, for ablations the training settings do not offer:
  none     the trainer as it is;
  no2d     without the slices' critic (its adversarial term is zero, it does not learn);
  noadv    without any critic (the porosity, S2 and slice terms alone);
  ends     the crop's ends visible to the generator in training (no noise past the ends, the
           replicate padding acts), as the shipped model was trained; evaluation as inference;
  plane    the per-depth porosity term per plane (bins of one plane) instead of DISTANCE_BINS.
Several may be joined with commas. To train without the 3D critic (the slices' critic alone),
use the training setting `--set critic3d_weight=0`.

Run (the retraining ablations of docs/notes/2026-12-07-reconstruct-the-3d-critic-and-connectivity.md,
200 iterations each from the shipped model; about 5 minutes each on one thread):

    R="berea_400.tif ketton_256.tif --init berea --iters 200 --crop 64 --batch 2 --eval-every 50 --seed 11
       --set crop_depth=64 --set slice_position=centre --set lr_g=5e-5 --set lr_d=1e-4 --set ema=0
       --set eval_cubes=16 --set whole_side=0 --set calibration_cubes=0 --set final_cubes=0"
    OMP_NUM_THREADS=1 python benchmarks/diag_reconstruct_connectivity.py train none -- $R --out base.pt
    OMP_NUM_THREADS=1 python benchmarks/diag_reconstruct_connectivity.py train noadv -- $R --out noadv.pt
    OMP_NUM_THREADS=1 python benchmarks/diag_reconstruct_connectivity.py connectivity berea base.pt noadv.pt
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
ROCKS = ("berea_400.tif", "ketton_256.tif")
CUBES, SIZE, SEED = 24, 64, 123
ABLATIONS = ("none", "no2d", "noadv", "ends", "plane")


def _null_critic() -> torch.nn.Module:
    """A critic that scores everything 0: no adversarial gradient, nothing to learn."""

    class Null(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = torch.nn.Parameter(torch.zeros(()))

        def forward(self, x):
            return x.flatten(1).mean(1) * 0 * self.scale

    return Null()


def patch_training(ablations: "set[str]") -> None:
    """Change the trainer in place for the named ablations (see the module docstring)."""
    import rocksynth.training.reconstruct as trainer
    from rocksynth.devices import mixed_precision, module_device

    unknown = ablations - set(ABLATIONS)
    if unknown:
        raise SystemExit(f"unknown ablation(s): {', '.join(sorted(unknown))}; choose from {', '.join(ABLATIONS)}")
    if ablations & {"no2d", "noadv"}:
        build = trainer.build_models

        def build_models(config):
            model, d3, d2 = build(config)  # built as usual, so the same random draws follow
            return model, _null_critic() if "noadv" in ablations else d3, _null_critic()

        trainer.build_models = build_models
    if "ends" in ablations:
        logits = trainer._logits

        def visible_ends(model, slice_, depth, generator, centre=None):
            if centre is None:  # the evaluation: as at inference
                return logits(model, slice_, depth, generator, centre)
            device = module_device(model)
            b, _, h, w = slice_.shape
            noise2, noise1 = (n.to(device) for n in model.sample_noise(b, depth, h, w, generator, halo=False))
            slice_ = slice_.to(device)
            with mixed_precision(device):
                return model.generator(slice_, model.encoder(slice_), noise2, noise1, centre=centre, z0=0,
                                       keep=(0, depth // 4))

        trainer._logits = visible_ends
    if "plane" in ablations:
        trainer.DISTANCE_BINS = tuple(range(1, 257))


def euler(volume: np.ndarray) -> float:
    from rocksynth.training.topology import EULER_UNIT, euler_density

    return float(euler_density(torch.from_numpy(volume.astype(np.float32))[None, None])[0] * EULER_UNIT)


def connectivity(models: "list[str]") -> None:
    import tifffile

    from rocksynth.data.crops import held_out_cubes, split_holdout
    from rocksynth.pipelines.reconstruct import load_model
    from rocksynth.training.reconstruct import _logits

    cubes = {name: held_out_cubes(split_holdout(name, tifffile.imread(DATA / name) > 0).held_out, SIZE, CUBES, SEED)
             for name in ROCKS}
    print(f"{CUBES} held-out {SIZE}^3 cubes per rock; Euler density per 10^4 voxels")
    for name in models:
        loaded = load_model(name)
        model = loaded.model.eval()
        generator = torch.Generator().manual_seed(7)
        parts = []
        for rock, rock_cubes in cubes.items():
            rows = []
            with torch.no_grad():
                for cube in rock_cubes:
                    condition = torch.from_numpy(cube[SIZE // 2][None, None].astype(np.float32))
                    logits = _logits(model, condition, SIZE, generator)[0, 0].numpy()
                    real_porosity = cube.mean()
                    matched = logits > np.quantile(logits, 1 - real_porosity)
                    binary = logits > model.logit_threshold
                    rows.append((real_porosity, binary.mean(), euler(cube), euler(binary), euler(matched)))
            real_p, gen_p, real_e, gen_e, matched_e = np.mean(rows, 0)
            parts.append(f"{Path(rock).stem}: porosity {gen_p:.3f} (real {real_p:.3f}), Euler real {real_e:+.2f}, "
                         f"generated {gen_e:+.2f}, matched {matched_e:+.2f}")
        print(f"{loaded.path.name}: " + " | ".join(parts), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    conn = sub.add_parser("connectivity", help="Euler density of held-out cubes, also at the real porosity")
    conn.add_argument("models", nargs="+")
    run = sub.add_parser("train", help="train reconstruct with an ablation (ARGS after --)")
    run.add_argument("ablation", help="comma-separated: " + ", ".join(ABLATIONS))
    run.add_argument("args", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    if args.command == "connectivity":
        connectivity(args.models)
        return
    patch_training(set(args.ablation.split(",")) - {"none"})
    from rocksynth.cli.main import main as cli

    rest = args.args[1:] if args.args[:1] == ["--"] else args.args
    sys.exit(cli(["train", "reconstruct", *rest]))


if __name__ == "__main__":
    main()
