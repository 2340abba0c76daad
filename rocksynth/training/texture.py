"""Training loop of the multi-texture GAN (`rocksynth train texture`), after Alanov et al. (2020).

Each iteration draws, for `batch` random textures, two augmented crops x, x' of the same texture.
- The encoder gives the texture code E(x); G(E(x)) is a reproduction (code + fresh noise) and
  G(z) a sample from the prior (code ~ N(0, I) + noise).
- Three hinge critics with spectral norm, on 2D slices normal to the three axes where images
  are involved (much cheaper than 3D critics on a CPU):
  generator matching D_x (real slices vs slices of G(z) and G(E(x))), pair matching
  D_xx ((x, x') vs (x, G(E(x)))), and latent matching D_z (prior codes vs E(x)).
- Generator loss alpha_x L_x + alpha_xx L_xx; encoder loss beta_z L_z + beta_xx L_xx. Both are
  minimised in one backward pass over their sum, so the encoder also receives L_x's gradient
  through G(E(x)) (the paper leaves it out; a second backward pass would cost a third more time).
  The critics see the thresholded output (straight-through gradient), as users do. Statistics
  terms on it steady the early iterations: porosity (G(E(x)) vs x, and the batch of G(z) vs the
  real batch) and the two-point correlation S2 up to `correlation_range` voxels (G(E(x)) vs x);
  without them and the straight-through critics, two runs drifted to all-solid volumes within
  200 iterations. A saturation term (logits beyond +-`saturation_logit`) keeps
  the sigmoid output from saturating: a first run without it collapsed to all-solid volumes
  (logits near -30) within 200 iterations, where no gradient could bring it back.
Every `eval_every` iterations the texture codes (mean of E over training crops of each texture)
are decoded to a 64^3 volume per texture and its porosity is logged beside the held-out block's
porosity in the CSV learning curve. Checkpoints hold everything needed to resume.
"""

import csv
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from rocksynth.data.textures import Texture, TextureCrops
from rocksynth.errors import BadInputError
from rocksynth.models.texture import (SCALE, LatentDiscriminator, PairDiscriminator, SliceDiscriminator,
                                      TextureEncoder, TextureGenerator, count_parameters)
from rocksynth.progress import log, progress_bar
from rocksynth.training.checkpoint import load_checkpoint, save_checkpoint

KIND = "texture"
LOSS_FIELDS = ["loss_d_x", "loss_d_xx", "loss_d_z", "loss_x", "loss_xx", "loss_z", "loss_porosity",
               "loss_correlation", "loss_saturation"]


@dataclass
class TrainSettings:
    iters: int = 3000
    crop: int = 32
    batch: int = 4
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    alpha_x: float = 1.0
    alpha_xx: float = 1.0
    beta_z: float = 1.0
    beta_xx: float = 1.0
    porosity_weight: float = 10.0
    correlation_weight: float = 100.0
    correlation_range: int = 12
    saturation_weight: float = 1.0
    saturation_logit: float = 6.0
    slices_per_axis: int = 4
    holdout: float = 0.25
    eval_every: int = 100
    eval_size: int = 64
    prior_std: float = 0.3
    save_every: int = 100
    seed: int = 0
    model: dict = field(default_factory=dict)  # {"generator": {...}, "encoder": {...}}


def build_models(model_config: dict):
    g_config = dict(model_config.get("generator", {}))
    generator = TextureGenerator(**g_config)
    encoder = TextureEncoder(code_channels=generator.code_channels, **model_config.get("encoder", {}))
    return generator, encoder


def model_config_of(generator: TextureGenerator, encoder: TextureEncoder) -> dict:
    return {"generator": {"code_channels": generator.code_channels, "noise_channels": generator.cell_noise,
                          "widths": list(generator.widths), "fine_noise": list(generator.fine_noise)},
            "encoder": {"width": encoder.width}}


def latent_grid(codes: torch.Tensor, cells, noise_channels: int, generator: "torch.Generator | None" = None):
    """Codes (B, C) or a code field (B, C, d, h, w) + N(0, 1) noise -> latent (B, C + noise, d, h, w)."""
    if isinstance(cells, int):
        cells = (cells,) * 3
    if codes.dim() == 2:
        codes = codes[:, :, None, None, None].expand(-1, -1, *cells)
    noise = torch.randn(codes.shape[0], noise_channels, *cells, generator=generator)
    return torch.cat([codes, noise], dim=1)


def random_slices(volumes: torch.Tensor, per_axis: int) -> torch.Tensor:
    """(B, C, n, n, n) cubes -> (3 * per_axis * B, C, n, n) random slices normal to each axis,
    ordered axis-major so that two batches sliced alike line up as pairs."""
    b, c, n = volumes.shape[0], volumes.shape[1], volumes.shape[2]
    out = []
    for axis in (2, 3, 4):
        index = torch.randint(0, n, (per_axis,))
        picked = volumes.index_select(axis, index).movedim(axis, 1)  # (B, per_axis, C, n, n)
        out.append(picked.reshape(b * per_axis, c, n, n))
    return torch.cat(out)


def binary_straight_through(probability: torch.Tensor) -> torch.Tensor:
    """The thresholded volume in the forward pass, the probability's gradient in the backward
    pass: the critics see binary volumes like the real ones, so grey values are no give-away."""
    hard = (probability > 0.5).to(probability.dtype)
    return hard + probability - probability.detach()


def axis_correlation(volumes: torch.Tensor, r_max: int) -> torch.Tensor:
    """(B, 1, n, n, n) -> (B, r_max + 1) two-point correlation averaged over the three axes,
    periodic (FFT along each axis), differentiable."""
    out = []
    for axis in (2, 3, 4):
        spectrum = torch.fft.rfft(volumes, dim=axis)
        auto = torch.fft.irfft(spectrum * spectrum.conj(), n=volumes.shape[axis], dim=axis)
        auto = auto.narrow(axis, 0, r_max + 1) / volumes.shape[axis]
        out.append(auto.mean(dim=[d for d in (1, 2, 3, 4) if d != axis]))
    return torch.stack(out).mean(0)


def _hinge_d(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return F.relu(1 - real).mean() + F.relu(1 + fake).mean()


class TextureTrainer:
    def __init__(self, textures: "list[Texture]", settings: TrainSettings):
        self.textures, self.s = textures, settings
        self.generator, self.encoder = build_models(settings.model)
        self.d_x, self.d_xx = SliceDiscriminator(), PairDiscriminator()
        self.d_z = LatentDiscriminator(self.generator.code_channels)
        # Each named texture's code: the mean of its prior p_k(z) = N(mu_k, prior_std^2 I).
        self.texture_codes = torch.nn.Parameter(torch.randn(len(textures), self.generator.code_channels))
        self.opt_g = torch.optim.Adam(list(self.generator.parameters()) + list(self.encoder.parameters())
                                      + [self.texture_codes], lr=settings.lr_g, betas=(0.5, 0.999))
        self.opt_d = torch.optim.Adam(list(self.d_x.parameters()) + list(self.d_xx.parameters())
                                      + list(self.d_z.parameters()), lr=settings.lr_d, betas=(0.5, 0.999))
        self.crops = TextureCrops(textures, seed=settings.seed)
        self.iteration, self.wall = 0, 0.0

    @property
    def codes(self) -> torch.Tensor:
        return self.texture_codes.detach().clone()

    def modules(self) -> dict:
        return {"generator": self.generator, "encoder": self.encoder, "d_x": self.d_x, "d_xx": self.d_xx,
                "d_z": self.d_z, "opt_g": self.opt_g, "opt_d": self.opt_d}

    def step(self) -> dict:
        s, g = self.s, self.generator
        cells = s.crop // SCALE
        labels, x_np, x2_np = self.crops.pairs(s.crop, s.batch)
        x = torch.from_numpy(x_np).float()[:, None]
        x2 = torch.from_numpy(x2_np).float()[:, None]
        mu = self.texture_codes[torch.from_numpy(labels)]
        code = self.encoder(x)
        # Reproductions G(E(x)) and samples G(z), z ~ p_k(z) of x's texture k.
        prior_code = mu + s.prior_std * torch.randn_like(mu)
        logits = g(latent_grid(torch.cat([code, prior_code]), cells, g.noise_channels))
        fakes = binary_straight_through(torch.sigmoid(logits))
        reals = torch.cat([x, x2])
        pairs_real = torch.cat([x, x2], 1)
        pairs_fake = torch.cat([reals[:s.batch].repeat(2, 1, 1, 1, 1), fakes], 1)
        k = s.slices_per_axis

        # Critics.
        loss_d_x = _hinge_d(self.d_x(random_slices(reals, k)), self.d_x(random_slices(fakes.detach(), k)))
        loss_d_xx = _hinge_d(self.d_xx(random_slices(pairs_real, k)), self.d_xx(random_slices(pairs_fake.detach(), k)))
        prior = mu.detach() + s.prior_std * torch.randn_like(mu)
        loss_d_z = _hinge_d(self.d_z(prior), self.d_z(code.detach()))
        self.opt_d.zero_grad(set_to_none=True)
        (loss_d_x + loss_d_xx + loss_d_z).backward()
        self.opt_d.step()

        # Generator, encoder and texture codes.
        loss_x = -self.d_x(random_slices(fakes, k)).mean()
        loss_xx = -self.d_xx(random_slices(pairs_fake, k)).mean()
        loss_z = -self.d_z(code).mean() + ((code - mu.detach()) ** 2).mean()
        # Statistics of the thresholded output (straight-through gradients) against x, the crop
        # of the same texture: what users get.
        target = x.repeat(2, 1, 1, 1, 1)
        loss_porosity = ((fakes.mean(dim=(1, 2, 3, 4)) - target.mean(dim=(1, 2, 3, 4))) ** 2).mean()
        loss_correlation = ((axis_correlation(fakes, s.correlation_range)
                             - axis_correlation(target, s.correlation_range)) ** 2).mean()
        loss_saturation = (F.relu(logits.abs() - s.saturation_logit) ** 2).mean()
        total = (s.alpha_x * loss_x + (s.alpha_xx + s.beta_xx) / 2 * loss_xx + s.beta_z * loss_z
                 + s.porosity_weight * loss_porosity + s.correlation_weight * loss_correlation
                 + s.saturation_weight * loss_saturation)
        self.opt_g.zero_grad(set_to_none=True)
        total.backward()
        self.opt_g.step()
        self.iteration += 1
        values = [loss_d_x, loss_d_xx, loss_d_z, loss_x, loss_xx, loss_z, loss_porosity, loss_correlation,
                  loss_saturation]
        return {name: float(v.detach()) for name, v in zip(LOSS_FIELDS, values)}

    def evaluate(self) -> dict:
        """Porosity of a generated eval_size^3 volume per texture code vs the held-out block."""
        g = self.generator
        generator = torch.Generator().manual_seed(1234)
        result = {}
        with torch.no_grad():
            z = latent_grid(self.codes, self.s.eval_size // SCALE, g.noise_channels, generator)
            volumes = torch.sigmoid(g(z)) > 0.5
        for index, texture in enumerate(self.textures):
            result[f"porosity_{texture.name}_real"] = float(texture.held_out.mean())
            result[f"porosity_{texture.name}_generated"] = float(volumes[index].float().mean())
        errors = [abs(result[f"porosity_{t.name}_real"] - result[f"porosity_{t.name}_generated"])
                  for t in self.textures]
        result["porosity_mean_abs_error"] = float(np.mean(errors))
        return result

    def state(self) -> dict:
        state = {name: module.state_dict() for name, module in self.modules().items()}
        state["texture_codes"] = {"codes": self.codes}
        return state

    def load_state(self, state: dict, weights_only: bool = False) -> None:
        """Everything (resume), or with `weights_only` the networks alone (a warm start)."""
        for name, module in self.modules().items():
            if not (weights_only and name.startswith("opt")):
                module.load_state_dict(state[name])
        if weights_only:
            return
        with torch.no_grad():
            self.texture_codes.copy_(state["texture_codes"]["codes"])
        # The learning rates are settings: a resumed run may change them.
        for optimizer, lr in ((self.opt_g, self.s.lr_g), (self.opt_d, self.s.lr_d)):
            for group in optimizer.param_groups:
                group["lr"] = lr


def _texture_meta(textures: "list[Texture]") -> list:
    return [{"name": t.name, "source": t.source, "voxel_size": t.voxel_size,
             "porosity_train": float(t.train.mean()), "porosity_held_out": float(t.held_out.mean()),
             "train_shape": list(t.train.shape), "held_out_shape": list(t.held_out.shape)} for t in textures]


def save(trainer: TextureTrainer, out: Path, curve_summary: "dict | None" = None) -> None:
    meta = {"textures": _texture_meta(trainer.textures), "data": ", ".join(t.name for t in trainer.textures),
            "iterations": trainer.iteration,
            "wall_time_s": round(trainer.wall, 1), "settings": asdict(trainer.s),
            "metrics": curve_summary or {}}
    save_checkpoint(out, KIND, model_config_of(trainer.generator, trainer.encoder), trainer.state(), meta)


def train_texture(textures: "list[Texture]", out: Path, settings: TrainSettings, resume: bool = False,
                  init: "Path | None" = None) -> dict:
    """Train (or resume) and write `out` (.pt), `out`.csv (learning curve) and `out`.png.
    `init`: start from the network weights of another texture checkpoint (fresh optimizers)."""
    if settings.crop % SCALE or settings.crop < 16:
        raise BadInputError(f"--crop must be a multiple of {SCALE} and at least 16, got {settings.crop}")
    names = [t.name for t in textures]
    if len(set(names)) != len(names):
        raise BadInputError(f"texture names must be unique, got {', '.join(names)}")
    out = Path(out)
    curve_path = out.with_suffix(".csv")
    torch.manual_seed(settings.seed)
    trainer = TextureTrainer(textures, settings)
    if resume and out.is_file():
        checkpoint = load_checkpoint(out, KIND)
        saved = [t["name"] for t in checkpoint["meta"]["textures"]]
        if saved != names:
            raise BadInputError(f"{out}: trained on textures {saved}, cannot resume with {names}")
        trainer.load_state(checkpoint["state"])
        trainer.iteration = checkpoint["meta"]["iterations"]
        trainer.wall = checkpoint["meta"]["wall_time_s"]
        log(f"resuming {out} at iteration {trainer.iteration}")
    else:
        if curve_path.exists():
            curve_path.unlink()
        if init is not None:
            trainer.load_state(load_checkpoint(init, KIND)["state"], weights_only=True)
            log(f"network weights from {init}")
    log(f"texture GAN: generator {count_parameters(trainer.generator)} parameters, encoder "
        f"{count_parameters(trainer.encoder)}; textures {', '.join(names)}")

    eval_fields = [f"porosity_{n}_{kind}" for n in names for kind in ("real", "generated")]
    fields = ["iteration", "wall_s"] + LOSS_FIELDS + eval_fields + ["porosity_mean_abs_error"]
    new_file = not curve_path.exists()
    last_eval: dict = {}
    with open(curve_path, "a", newline="") as handle, \
            progress_bar(settings.iters - trainer.iteration, "training texture GAN", status=True) as bar:
        writer = csv.DictWriter(handle, fieldnames=fields)
        if new_file:
            writer.writeheader()
        running = {name: [] for name in LOSS_FIELDS}
        while trainer.iteration < settings.iters:
            # Crops and noise depend on the iteration, so a resumed run continues the same stream.
            trainer.crops.reseed(settings.seed * 1_000_003 + trainer.iteration)
            torch.manual_seed(settings.seed * 1_000_003 + trainer.iteration)
            start = time.perf_counter()
            losses = trainer.step()
            trainer.wall += time.perf_counter() - start
            for name, value in losses.items():
                running[name].append(value)
            bar.advance(1, status=f"D {losses['loss_d_x']:.2f} G {losses['loss_x']:.2f}")
            if trainer.iteration % settings.eval_every == 0 or trainer.iteration == settings.iters:
                last_eval = trainer.evaluate()
                row = {"iteration": trainer.iteration, "wall_s": round(trainer.wall, 1)}
                row.update({name: round(float(np.mean(v)), 5) for name, v in running.items() if v})
                row.update({k: round(v, 5) for k, v in last_eval.items()})
                writer.writerow(row)
                handle.flush()
                running = {name: [] for name in LOSS_FIELDS}
            if trainer.iteration % settings.save_every == 0 or trainer.iteration == settings.iters:
                save(trainer, out, last_eval)
    plot_curve(curve_path, out.with_suffix(".png"))
    return last_eval


def plot_curve(curve_path: Path, png_path: Path) -> None:
    """Losses and held-out porosity per texture against iterations."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(curve_path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        return
    it = [int(r["iteration"]) for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for name in LOSS_FIELDS:
        left.plot(it, [float(r[name]) for r in rows], label=name)
    left.set_xlabel("iteration")
    left.set_title("losses (hinge; mean over the interval)")
    left.legend(fontsize=7)
    names = [k[len("porosity_"):-len("_real")] for k in rows[0] if k.startswith("porosity_") and k.endswith("_real")]
    for index, name in enumerate(names):
        colour = f"C{index}"
        right.plot(it, [float(r[f"porosity_{name}_generated"]) for r in rows], color=colour, label=f"{name} generated")
        right.axhline(float(rows[-1][f"porosity_{name}_real"]), color=colour, ls="--", lw=0.8)
    right.set_xlabel("iteration")
    right.set_title("porosity: generated 64³ (solid) vs held-out (dashed)")
    right.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(png_path, dpi=90)
    plt.close(fig)
