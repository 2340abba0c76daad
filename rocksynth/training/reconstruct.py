"""Training loop of the slice-to-volume GAN (`rocksynth train reconstruct`).

Each iteration takes random crops (with the cube's symmetries) from the training part of the
volumes, uses the central z-slice of each crop as the condition, and generates a volume from it.
- Discriminators (hinge loss, spectral norm): a 3D patch critic on whole crops and a 2D patch
  critic on slices along all three axes; they see the thresholded output (straight-through).
- Generator + encoder: adversarial loss + slice loss (L2 between the central slice of the raw
  output and the input slice) + a porosity term (generated vs the real crop around that slice),
  which keeps the porosity from swinging while the critics are still weak, an S2 term, and an
  Euler-density term (the pores' 3D connectivity, `rocksynth.training.topology`, vs the real
  crop's), the one statistic that tells a connected pore network from one of the right porosity
  and S2 but too few loops: without it Ketton came out with 0.4x the real Euler density and
  0.46x the permeability, Berea with 1.7x the Euler density.
Crops are `depth_ratio` times deeper than wide, so they reach the far field where the slice no
longer matters (`slice2vol.far_field_distance`); they start small (`warmup_crop`) and grow to `crop`. Every `eval_every` iterations the model
generates volumes from the central slices of fixed held-out cubes and the porosity error, S2 error
Euler density (per 10^4 voxels) and raw central-slice agreement are logged to a CSV learning curve (plotted at the end).
Checkpoints hold everything needed to resume (`resume=True`).
At the end, the logit threshold is calibrated on training cubes (`calibrate_threshold`): the
pipeline thresholds there instead of at 0, so that generated and real training cubes have the
same mean porosity.
"""

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from rocksynth.data.crops import RandomCrops, held_out_cubes, split_holdout
from rocksynth.errors import BadInputError
from rocksynth.io.paths import atomic_output
from rocksynth.models.slice2vol import GRID, PatchDiscriminator2D, PatchDiscriminator3D, Slice2Vol, count_parameters
from rocksynth.progress import log, progress_bar
from rocksynth.properties.correlation import two_point_correlation
from rocksynth.training.checkpoint import load_checkpoint, load_widened, save_checkpoint
from rocksynth.training.outputs import TrainingOutputs, reconstruct_plan
from rocksynth.training.topology import EULER_UNIT, boundary_gradient_only, euler_density

KIND = "reconstruct"
CURVE_FIELDS = ["iteration", "wall_s", "crop", "loss_d", "loss_adv", "loss_slice", "loss_porosity", "loss_s2",
                "loss_euler", "eval_porosity_real", "eval_porosity_generated", "eval_porosity_abs_error",
                "eval_s2_error", "eval_euler_real", "eval_euler_generated", "eval_euler_abs_error",
                "eval_slice_agreement"]



@dataclass
class TrainSettings:
    iters: int = 3000
    crop: int = 64
    batch: int = 2
    warmup_crop: int = 32
    warmup_iters: int = 2000
    warmup_batch: int = 4
    depth_ratio: int = 2  # training crops are depth_ratio times deeper than wide (see far_field_distance)
    lr_g: float = 2e-4
    lr_d: float = 4e-4
    slice_weight: float = 50.0
    porosity_weight: float = 50.0
    s2_weight: float = 200.0
    s2_lags: int = 12
    euler_weight: float = 0.0  # off by default: fine-tuning with it did not stop the drift (docs/reconstruct.md)
    calibration_cubes: int = 32  # per volume; 0: no calibration (threshold at logit 0)
    slices_per_axis: int = 8
    holdout: float = 0.25
    eval_every: int = 100
    eval_cubes: int = 8
    save_every: int = 200
    seed: int = 0
    model: dict = field(default_factory=dict)  # Slice2Vol constructor kwargs


def build_models(model_config: dict):
    return Slice2Vol(**model_config), PatchDiscriminator3D(), PatchDiscriminator2D()


def _slices_all_axes(volumes: torch.Tensor, per_axis: int, generator: torch.Generator) -> "list[torch.Tensor]":
    """(B, 1, D, H, W) -> per axis, (B * per_axis, 1, n, m) random slices normal to that axis
    (three tensors, since crops deeper than wide give slices of two shapes)."""
    b = volumes.shape[0]
    out = []
    for axis in (2, 3, 4):
        index = torch.randint(0, volumes.shape[axis], (per_axis,), generator=generator)
        picked = volumes.index_select(axis, index).movedim(axis, 1)  # (B, per_axis, 1, n, m)
        out.append(picked.reshape(b * per_axis, 1, *picked.shape[-2:]))
    return out


def _critic_2d(critic, slices: "list[torch.Tensor]", sign: float) -> torch.Tensor:
    """Hinge term of the slice critic, summed over the three slice orientations' means."""
    return sum(F.relu(1 + sign * critic(group)).mean() for group in slices) / len(slices)


def _binary_straight_through(probabilities: torch.Tensor) -> torch.Tensor:
    """The thresholded volume users get, with the gradient of the probabilities: statistics
    on it measure the binary output (probabilities of 0.4 everywhere would match a porosity of 0.4
    but threshold to all solid)."""
    hard = (probabilities > 0.5).to(probabilities.dtype)
    return hard + probabilities - probabilities.detach()


def axis_s2(volumes: torch.Tensor, lags: int) -> torch.Tensor:
    """(B, 1, D, H, W) -> (B, 3, lags + 1): two-point correlation along z, y and x per volume."""
    curves = []
    for axis in (2, 3, 4):
        n = volumes.shape[axis]
        row = [volumes.pow(2).mean((1, 2, 3, 4))]
        for r in range(1, lags + 1):
            row.append((volumes.narrow(axis, 0, n - r) * volumes.narrow(axis, r, n - r)).mean((1, 2, 3, 4)))
        curves.append(torch.stack(row, 1))
    return torch.stack(curves, 1)


def central_slice(volumes: torch.Tensor) -> torch.Tensor:
    return volumes[:, :, volumes.shape[2] // 2]


def _evaluate(model: Slice2Vol, cubes: np.ndarray, seed: int) -> dict:
    """Generate from the central slices of held-out cubes; compare porosity, S2, slice agreement."""
    model.eval()
    torch_gen = torch.Generator().manual_seed(seed)
    size = cubes.shape[1]
    r_max = size // 2
    real_por, gen_por, agree, s2_real, s2_gen, euler_real, euler_gen = [], [], [], [], [], [], []
    with torch.no_grad():
        for cube in cubes:
            s = torch.from_numpy(cube[size // 2][None, None].astype(np.float32))
            volume = model(s, depth=size, generator=torch_gen, logits=True)[0, 0].numpy() > 0
            agree.append(float((volume[size // 2] == cube[size // 2]).mean()))
            real_por.append(float(cube.mean()))
            gen_por.append(float(volume.mean()))
            s2_real.append(two_point_correlation(cube, r_max))
            s2_gen.append(two_point_correlation(volume, r_max))
            pair = torch.from_numpy(np.stack([cube, volume]).astype(np.float32))[:, None]
            real_euler, generated_euler = (euler_density(pair) * EULER_UNIT).tolist()
            euler_real.append(real_euler)
            euler_gen.append(generated_euler)
    model.train()
    return {
        "eval_porosity_real": float(np.mean(real_por)),
        "eval_porosity_generated": float(np.mean(gen_por)),
        "eval_porosity_abs_error": float(np.mean(np.abs(np.array(real_por) - np.array(gen_por)))),
        "eval_s2_error": float(np.mean(np.abs(np.mean(s2_real, 0) - np.mean(s2_gen, 0)))),
        "eval_euler_real": float(np.mean(euler_real)),
        "eval_euler_generated": float(np.mean(euler_gen)),
        "eval_euler_abs_error": float(np.mean(np.abs(np.array(euler_real) - np.array(euler_gen)))),
        "eval_slice_agreement": float(np.mean(agree)),
    }


def calibrate_threshold(model: Slice2Vol, blocks: "list[np.ndarray]", size: int, per_block: int,
                        seed: int) -> dict:
    """The logit threshold at which the generator's cubes have the real cubes' mean porosity.

    `per_block` random size^3 cubes of each training block (equal weight per rock); each cube's
    central slice is reconstructed (fixed noise) and the threshold is the quantile of all their
    logits that leaves the real cubes' pooled porosity as pore. Why: the GAN's binary output
    (logit > 0) is biased the same way on training and held-out cubes (the shipped model: +0.013
    Berea, +0.040 Ketton on training cubes, +0.029 / +0.022 on held-out ones), a bias the porosity
    term does not remove against the critics; a calibration on training data only corrects it
    without looking at held-out data.
    """
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    logits, real, owner = [], [], []
    with torch.no_grad():
        for index, block in enumerate(blocks):
            for cube in held_out_cubes(block, size, per_block, seed + index):
                condition = torch.from_numpy(cube[size // 2][None, None].astype(np.float32))
                logits.append(model(condition, depth=size, generator=generator, logits=True).flatten())
                real.append(float(cube.mean()))
                owner.append(index)
    model.train()
    logits = torch.stack(logits).numpy()
    real, owner = np.array(real), np.array(owner)
    threshold = float(np.quantile(logits, 1 - real.mean()))
    per_volume = [{"porosity_real": round(float(real[owner == i].mean()), 4),
                   "porosity_at_logit_0": round(float((logits[owner == i] > 0).mean()), 4),
                   "porosity_calibrated": round(float((logits[owner == i] > threshold).mean()), 4)}
                  for i in range(len(blocks))]
    return {"logit_threshold": round(threshold, 4), "porosity_real": round(float(real.mean()), 4),
            "porosity_at_logit_0": round(float((logits > 0).mean()), 4),
            # How sharp the output is: the share of voxels a small threshold shift can flip.
            "fraction_within_0.1_of_threshold": round(float((np.abs(logits - threshold) < 0.1).mean()), 4),
            "per_volume": per_volume, "cubes": len(real), "cube_size": size, "data": "training blocks",
            "seed": seed}


def check_settings(settings: TrainSettings) -> None:
    """Refuse settings no run could use, before any data is read."""
    if settings.iters < 0 or settings.batch < 1 or settings.warmup_batch < 1:
        raise BadInputError("--iters must not be negative; --batch and --warmup-batch must be at least 1")
    if settings.eval_every < 1 or settings.save_every < 1:
        raise BadInputError("--eval-every and --save-every must be at least 1")
    if settings.depth_ratio < 1:
        raise BadInputError("the crop depth ratio must be at least 1")
    if not 0 < settings.holdout < 1:
        raise BadInputError(f"--holdout must be between 0 and 1, got {settings.holdout}")
    smallest = (settings.s2_lags // GRID + 1) * GRID  # the S2 term needs lags inside the crop
    crops = {"--crop": settings.crop}
    if settings.warmup_iters > 0:
        crops["--warmup-crop"] = settings.warmup_crop
    for option, size in crops.items():
        if size % GRID or size < smallest:
            raise BadInputError(f"{option} {size}: must be a multiple of {GRID} and at least {smallest}")
    if settings.warmup_iters > 0 and settings.warmup_crop > settings.crop:
        raise BadInputError(f"--warmup-crop {settings.warmup_crop} is larger than --crop {settings.crop}; "
                            f"the warm-up trains on smaller crops")


def check_volumes(volumes: "list[tuple[str, np.ndarray]]", settings: TrainSettings) -> list:
    """The volumes split into training and held-out parts; a clear error if a crop does not fit
    or a volume has nothing to learn (all pore or all solid)."""
    if not volumes:
        raise BadInputError("give at least one training volume")
    splits = [split_holdout(name, mask, settings.holdout) for name, mask in volumes]
    phases = [settings.warmup_crop] * (settings.warmup_iters > 0) + [settings.crop] * (settings.iters > settings.warmup_iters)
    deepest = max(phases, default=settings.crop) * settings.depth_ratio
    for split in splits:
        if min(split.train.shape) < deepest:
            raise BadInputError(f"{split.name}: training part {split.train.shape} is smaller than the "
                                f"{deepest}-voxel deep crop (--crop x --depth-ratio); choose a smaller --crop "
                                f"or a larger volume")
        if min(split.held_out.shape) < settings.crop:
            raise BadInputError(f"{split.name}: held-out part {split.held_out.shape} (the last --holdout of it "
                                f"along z) is smaller than the crop {settings.crop}; choose a smaller --crop or "
                                f"a larger --holdout")
        if not 0.01 < split.train.mean() < 0.99:
            raise BadInputError(f"{split.name}: porosity {split.train.mean():.3f}; nothing to learn")
    return splits


def train_reconstruct(volumes: "list[tuple[str, np.ndarray]]", out: "str | os.PathLike",
                      settings: TrainSettings, resume: bool = False, curve_csv: "str | None" = None,
                      voxel_size: "float | None" = None, init: "str | os.PathLike | None" = None) -> dict:
    """Train (or resume) and write the checkpoint to `out`; returns the final metrics.

    `volumes` are (name, bool mask) pairs; their last `settings.holdout` along z is held out.
    `init`: start from another reconstruct checkpoint's weights (generator widened to the
    architecture asked for in `settings.model`, e.g. more `global_channels`; its critics too;
    fresh optimisers), continuing its iteration count and learning curve.
    Every output (`rocksynth.training.outputs.reconstruct_plan`) is checked before any work; a run that fails or is interrupted
    before its first checkpoint leaves none of them behind.
    """
    plan = reconstruct_plan(out, resume, curve_csv).check()
    check_settings(settings)
    splits = check_volumes(volumes, settings)
    with plan:
        return _train(volumes, splits, plan, settings, voxel_size, init)


def _train(volumes, splits, plan: TrainingOutputs, settings: TrainSettings, voxel_size, init) -> dict:
    out, curve_csv, png = plan.files
    torch.manual_seed(settings.seed)
    per_volume = max(1, settings.eval_cubes // len(splits))
    eval_cubes = np.concatenate([held_out_cubes(s.held_out, settings.crop, per_volume, settings.seed + 1)
                                 for s in splits])

    model, d3, d2 = build_models(settings.model)
    opt_g = torch.optim.Adam(model.parameters(), lr=settings.lr_g, betas=(0.5, 0.9))
    opt_d = torch.optim.Adam(list(d3.parameters()) + list(d2.parameters()), lr=settings.lr_d, betas=(0.5, 0.9))
    start, wall, curve, calibration = 0, 0.0, [], {}
    if plan.resuming:
        payload = load_checkpoint(out, KIND)
        model = Slice2Vol(**payload["config"])
        opt_g = torch.optim.Adam(model.parameters(), lr=settings.lr_g, betas=(0.5, 0.9))
        for module, key in ((model, "model"), (d3, "d3"), (d2, "d2"), (opt_g, "opt_g"), (opt_d, "opt_d")):
            module.load_state_dict(payload["state"][key])
        # The optimizer state carries the old learning rates; the ones asked for now apply.
        for optimizer, lr in ((opt_g, settings.lr_g), (opt_d, settings.lr_d)):
            for group in optimizer.param_groups:
                group["lr"] = lr
        start, wall = payload["meta"]["iterations"], payload["meta"]["wall_time_s"]
        curve = [dict(row) for row in payload["meta"]["curve"]]
        plan.resumed_from(start)
        log(f"resumed {out} at iteration {start}")
    elif init is not None:
        payload = load_checkpoint(init, KIND)
        model = Slice2Vol(**{**payload["config"], **settings.model})
        opt_g = torch.optim.Adam(model.parameters(), lr=settings.lr_g, betas=(0.5, 0.9))
        widened = load_widened(model, payload["state"]["model"])
        for module, key in ((d3, "d3"), (d2, "d2")):
            if key in payload["state"]:
                module.load_state_dict(payload["state"][key])
        start, wall = payload["meta"]["iterations"], payload["meta"]["wall_time_s"]
        curve = [dict(row) for row in payload["meta"]["curve"]]
        log(f"weights from {init} (iteration {start})" + (f"; new or widened: {', '.join(widened)}" if widened else ""))
    if plan.resume and not plan.resuming:
        log(f"{out} does not exist yet; starting " + ("from --init" if init is not None else "from scratch"))
    log(f"generator + encoder {count_parameters(model):,} parameters; critics 3D {count_parameters(d3):,}, "
        f"2D {count_parameters(d2):,}; {', '.join(f'{s.name} train {s.train.shape}' for s in splits)}")

    crops = RandomCrops([s.train for s in splits], seed=settings.seed)
    torch_gen = torch.Generator()
    curve_file = plan.curve(curve_csv, CURVE_FIELDS, rows=curve)
    curve_file.write()

    def save(iteration: int) -> None:
        meta = {
            "iterations": iteration, "wall_time_s": wall, "data": [name for name, _ in volumes],
            "voxel_size": voxel_size, "settings": asdict(settings), "curve": curve,
            "metrics": curve[-1] if curve else {},
            "threads": torch.get_num_threads(), "calibration": calibration,
        }
        state = {"model": model.state_dict(), "d3": d3.state_dict(), "d2": d2.state_dict(),
                 "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict()}
        save_checkpoint(out, KIND, model_config(model, settings), state, meta)
        plan.saved(iteration)

    running = {}
    with progress_bar(settings.iters - start, f"training reconstruct ({out.name})", status=True) as bar:
        for iteration in range(start + 1, settings.iters + 1):
            tick = time.perf_counter()
            # Reseed per iteration so a resumed run continues the same random stream.
            crops.reseed(settings.seed * 1_000_003 + iteration)
            torch_gen.manual_seed(settings.seed * 1_000_003 + iteration)
            warm = iteration <= settings.warmup_iters
            size = settings.warmup_crop if warm else settings.crop
            batch = settings.warmup_batch if warm else settings.batch
            depth = size * settings.depth_ratio
            real = torch.from_numpy(crops.batch(size, batch, depth).astype(np.float32))[:, None]
            cond = central_slice(real)
            logits = model(cond, depth=depth, generator=torch_gen, logits=True)
            fake = torch.sigmoid(logits)
            # Critics and statistics see the thresholded volume users get, with the gradient of the
            # probabilities (straight-through). A first run whose critics saw the probabilities
            # learned to tell grey from binary and pushed the generator to all solid (held-out
            # porosity 0.13 -> 0.02 within 200 iterations) despite the porosity term.
            binary = _binary_straight_through(fake)

            # Critics: hinge loss on volumes and on slices along all axes.
            real_slices = _slices_all_axes(real, settings.slices_per_axis, torch_gen)
            fake_slices = _slices_all_axes(binary.detach(), settings.slices_per_axis, torch_gen)
            loss_d = (F.relu(1 - d3(real)).mean() + F.relu(1 + d3(binary.detach())).mean()
                      + _critic_2d(d2, real_slices, -1) + _critic_2d(d2, fake_slices, 1))
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()

            # Generator + encoder.
            slice_groups = _slices_all_axes(binary, settings.slices_per_axis, torch_gen)
            loss_adv = -d3(binary).mean() - sum(d2(group).mean() for group in slice_groups) / len(slice_groups)
            loss_slice = F.mse_loss(central_slice(fake), cond)
            # Every depth slice should hold about the crop's porosity, not only the conditioned one.
            loss_por = ((binary.mean((1, 3, 4)) - real.mean((1, 2, 3, 4))[:, None]) ** 2).mean()
            # S2 along each axis vs the real crop: penalises periodic patterns and a copied slice
            # smeared along depth, which the critics are slow to catch.
            loss_s2 = ((axis_s2(binary, settings.s2_lags) - axis_s2(real, settings.s2_lags)) ** 2).mean()
            # 3D connectivity (loops of the pore network) vs the real crop: critics on slices and
            # S2 cannot see it.
            loss_euler = ((euler_density(boundary_gradient_only(binary)) - euler_density(real)) * EULER_UNIT).pow(2).mean()
            # Keep logits within +-4 so saturated (all-solid) regions still receive gradient.
            loss_logit = (F.relu(logits.abs() - 4) ** 2).mean()
            loss_g = (loss_adv + settings.slice_weight * loss_slice + settings.porosity_weight * loss_por
                      + settings.s2_weight * loss_s2 + settings.euler_weight * loss_euler + loss_logit)
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()

            wall += time.perf_counter() - tick
            for key, value in (("loss_d", loss_d), ("loss_adv", loss_adv), ("loss_slice", loss_slice),
                               ("loss_porosity", loss_por), ("loss_s2", loss_s2),
                               ("loss_euler", loss_euler)):
                running.setdefault(key, []).append(value.item())
            bar.advance(1, status=f"D {loss_d.item():.2f} adv {loss_adv.item():.2f} slice {loss_slice.item():.4f}")
            if iteration % settings.eval_every == 0 or iteration == settings.iters:
                row = {"iteration": iteration, "wall_s": round(wall, 1), "crop": size}
                row.update({key: float(np.mean(values)) for key, values in running.items()})
                row.update(_evaluate(model, eval_cubes, settings.seed + 2))
                running = {}
                curve_file.append(row)
                log("it {iteration} {wall_s}s crop {crop}: D {loss_d:.3f} adv {loss_adv:.3f} slice {loss_slice:.4f} "
                    "| held-out porosity real {eval_porosity_real:.3f} gen {eval_porosity_generated:.3f} "
                    "S2 err {eval_s2_error:.4f} slice agreement {eval_slice_agreement:.4f}".format(**row))
            if iteration % settings.save_every == 0 or iteration == settings.iters:
                save(iteration)
    if start >= settings.iters:
        log(f"{out} already has {start} iterations (asked for {settings.iters}); nothing to train")
    if settings.calibration_cubes > 0:
        calibration = calibrate_threshold(model, [s.train for s in splits], settings.crop,
                                          settings.calibration_cubes, settings.seed + 3)
        save(max(start, settings.iters))
        log("porosity calibration on {cubes} training cubes: real {porosity_real:.3f}, generated at logit 0 "
            "{porosity_at_logit_0:.3f}; pore where logit > {logit_threshold:.3f}".format(**calibration)
            + "".join(f"; {name}: real {v['porosity_real']:.3f}, at logit 0 {v['porosity_at_logit_0']:.3f}, "
                      f"calibrated {v['porosity_calibrated']:.3f}" for (name, _), v in zip(volumes, calibration["per_volume"])))
    plot_curve(curve, png)
    return curve[-1] if curve else {}


def model_config(model: Slice2Vol, settings: TrainSettings) -> dict:
    """The constructor arguments of the model being trained (after a resume, the checkpoint's)."""
    return dict(model.config)


def plot_curve(curve: "list[dict]", path: Path) -> None:
    """Learning curve PNG: losses and held-out metrics against iterations."""
    if not curve:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    it = [row["iteration"] for row in curve]
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.6))
    axes[0].plot(it, [r["loss_d"] for r in curve], label="critic (hinge)")
    axes[0].plot(it, [r["loss_adv"] for r in curve], label="generator adversarial")
    axes[0].set_title("losses")
    axes[0].legend()
    axes[1].plot(it, [r["eval_porosity_real"] for r in curve], label="held-out real")
    axes[1].plot(it, [r["eval_porosity_generated"] for r in curve], label="generated")
    axes[1].set_title("porosity (held-out cubes)")
    axes[1].legend()
    axes[2].plot(it, [r["eval_s2_error"] for r in curve], label="S2 mean abs error")
    axes[2].plot(it, [1 - r["eval_slice_agreement"] for r in curve], label="1 - raw slice agreement")
    axes[2].set_yscale("log")
    axes[2].set_title("held-out errors")
    axes[2].legend()
    # Rows written before the Euler term existed have no Euler columns.
    nan = float("nan")
    axes[3].plot(it, [r.get("eval_euler_real", nan) for r in curve], label="held-out real")
    axes[3].plot(it, [r.get("eval_euler_generated", nan) for r in curve], label="generated")
    axes[3].set_title("Euler density per 10⁴ voxels (held-out cubes)")
    axes[3].legend()
    for ax in axes:
        ax.set_xlabel("iteration")
    fig.tight_layout()
    try:
        with atomic_output(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=90, format="png")
    finally:
        plt.close(fig)
