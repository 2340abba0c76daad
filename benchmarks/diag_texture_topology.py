"""Why the texture GAN draws too few pore loops for Ketton: two diagnostics that print their figures.

Euler densities are per 10^4 voxels (pores, 6-connectivity); real held-out Ketton is about -1.4.

--excursion  Euler density of simple random-field models at Ketton's porosity 0.13 and above:
             a smooth Gaussian field thresholded (what an interpolated half-resolution logit is
             close to), the minimum of K such fields (pores = gaps of K overlapping phases), and
             PoreSpy's overlapping spheres (a Boolean grain model).
--finetune   The shipped generator fine-tuned on Ketton crops with the statistics terms alone
             (porosity, per-axis S2 and an Euler-density term; no critics), to see whether the
             Euler term can move the generated Euler density at all.
             With --fixed-porosity each generated sample is thresholded at its real crop's
             porosity (a per-sample logit quantile) instead of at 0: a uniform shift of the logits
             then changes nothing, so the terms can only move shape, never porosity.

Run:  OMP_NUM_THREADS=1 python benchmarks/diag_texture_topology.py --excursion
      OMP_NUM_THREADS=1 python benchmarks/diag_texture_topology.py --finetune --euler-weight 0.03
      OMP_NUM_THREADS=1 python benchmarks/diag_texture_topology.py --finetune --fixed-porosity --euler-weight 1 --s2-weight 0
"""

import argparse
import time

import numpy as np
import torch


def _euler(volume: torch.Tensor) -> float:
    """Mean Euler density (x 10^4 per voxel) of a batch of binary volumes."""
    from rocksynth.training.topology import EULER_UNIT, euler_density

    return float((euler_density(volume.float()) * EULER_UNIT).mean())


def _stats(volume: torch.Tensor) -> str:
    from rocksynth.training.texture import surface_estimate

    v = volume.float()
    return f"porosity {v.mean():.3f}  surface {surface_estimate(v).mean():.3f}  Euler {_euler(v):.2f}"


def excursion(size: int = 96) -> None:
    from scipy import ndimage
    import porespy

    rng = np.random.default_rng(0)
    print(f"{size}^3 periodic fields; Gaussian fields smoothed with sigma voxels")
    for sigma in (3, 5):
        for k in (1, 2, 4, 8):
            field = np.stack([ndimage.gaussian_filter(rng.standard_normal((size,) * 3), sigma, mode="wrap")
                              for _ in range(k)]).min(0)
            for porosity in (0.13, 0.2, 0.3):
                pores = torch.from_numpy(field > np.quantile(field, 1 - porosity))[None, None]
                print(f"min of {k} Gaussian fields, sigma {sigma}, target porosity {porosity}: {_stats(pores)}")
    for radius in (8, 15, 20):
        for porosity in (0.13, 0.2):
            pores = np.asarray(porespy.generators.overlapping_spheres([128] * 3, r=radius, porosity=porosity, seed=1), bool)
            print(f"overlapping spheres r {radius}, target porosity {porosity}: {_stats(torch.from_numpy(pores)[None, None])}")


def porosity_quantiles(logits: torch.Tensor, porosities: torch.Tensor) -> torch.Tensor:
    """(B, 1, ...) logits, (B,) porosities -> (B, 1, 1, 1, 1) thresholds leaving that fraction of
    each sample's voxels above them."""
    flat = logits.flatten(1)
    ranks = ((1 - porosities) * (flat.shape[1] - 1)).round().long()
    return flat.sort(dim=1).values.gather(1, ranks[:, None]).view(-1, 1, 1, 1, 1)


def finetune(args) -> None:
    from rocksynth.data.textures import TextureCrops
    from rocksynth.pipelines.synthesize import load_texture_model, load_training_textures
    from rocksynth.training.texture import binary_straight_through, latent_grid, statistics_terms
    from rocksynth.training.topology import EULER_UNIT, boundary_gradient_only, euler_density

    torch.manual_seed(0)
    model = load_texture_model(args.model)
    generator = model.generator
    generator.train()
    optimizer = torch.optim.Adam(generator.parameters(), lr=args.lr, betas=(0.5, 0.999))
    crops = TextureCrops(load_training_textures([f"ketton={args.ketton}"]), seed=0)
    code = model.code_of("ketton")
    start = time.perf_counter()
    print(f"Euler weight {args.euler_weight}, S2 weight {args.s2_weight}, lr {args.lr}, "
          "training the generator"
          + (", thresholded at each crop's porosity" if args.fixed_porosity else ""))
    late = []  # (generated, real) Euler densities over the second half of the run
    for step in range(args.steps + 1):
        _, x_np, _ = crops.pairs(64, 2)
        x = torch.from_numpy(x_np).float()[:, None]
        logits = generator(latent_grid(code[None].repeat(2, 1), 8, generator.noise_channels))
        if args.fixed_porosity:
            logits = logits - porosity_quantiles(logits.detach(), x.mean(dim=(1, 2, 3, 4)))
        fakes = binary_straight_through(logits, 2.0)
        # The trainer's statistics terms (porosity weight 30 as the card, lags 24; S2 weight
        # --s2-weight, the trainer's 1000 by default) and the squared Euler-density error, its
        # gradient on the pore/solid boundary only (the removed trainer term's).
        loss_porosity, loss_correlation = statistics_terms(fakes, x, 24)
        euler_error = ((euler_density(boundary_gradient_only(fakes)) - euler_density(x)) * EULER_UNIT).pow(2)
        loss = 30 * loss_porosity + args.s2_weight * loss_correlation + args.euler_weight * euler_error.mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step >= args.steps // 2:
            late.append([_euler(logits.detach() > 0), _euler(x)])
        if step % 20 == 0:
            print(f"step {step:4d} ({time.perf_counter() - start:.0f} s): generated {_stats(logits.detach() > 0)}; "
                  f"real crops {_stats(x > 0.5)}", flush=True)
    generated, real = np.mean(late, axis=0)
    print(f"mean Euler density over steps {args.steps // 2}-{args.steps}: generated {generated:.2f}, real crops {real:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--excursion", action="store_true")
    parser.add_argument("--finetune", action="store_true")
    parser.add_argument("--model", default="rocks")
    parser.add_argument("--ketton", default="../shared/data/ketton_256.tif")
    parser.add_argument("--euler-weight", type=float, default=0.03)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--s2-weight", type=float, default=1000.0, help="the trainer's is 1000")
    parser.add_argument("--fixed-porosity", action="store_true", help="threshold each sample at its crop's porosity")
    args = parser.parse_args()
    if args.steps < 1:
        parser.error(f"--steps must be at least 1, got {args.steps}")
    torch.set_num_threads(1)
    if args.excursion:
        excursion()
    if args.finetune:
        finetune(args)
    if not (args.excursion or args.finetune):
        parser.error("choose --excursion and/or --finetune")


if __name__ == "__main__":
    main()
