"""Training loop of the multi-texture GAN (`rocksynth train texture`), after Alanov et al. (2020).

Each iteration draws, for `batch` random textures, two augmented crops x, x' of the same texture.
- The encoder gives the texture code E(x); G(E(x)) is a reproduction (code + fresh noise) and
  G(z) a sample from the prior of x's texture (code ~ N(mu_k, prior_std^2 I) + noise).
- Three hinge critics with spectral norm, on 2D slices normal to the three axes where images
  are involved (much cheaper than 3D critics on a CPU):
  generator matching D_x (real slices vs slices of G(z) and G(E(x))), pair matching
  D_xx ((x, x') vs (x, G(E(x)))), and latent matching D_z (prior codes vs E(x)).
- Generator loss alpha_x L_x + alpha_xx L_xx; encoder loss beta_z L_z + beta_xx L_xx. Both are
  minimised in one backward pass over their sum, so the encoder also receives L_x's gradient
  through G(E(x)) (the paper leaves it out; a second backward pass would cost a third more time).
  The critics see the thresholded output (straight-through gradient, taken from a softened
  sigmoid so that saturated logits still get one; see `binary_straight_through`), as users do.
  Statistics terms on it steady the early iterations: porosity (G(E(x)) and G(z) vs x, a crop of
  the same texture) and the two-point correlation S2 up to `correlation_range` voxels along each
  axis (the same pairs; S2 of x counts only pairs inside the crop; axes matched in order of
  correlation length, see `correlation_mismatch`); without them and the straight-through
  critics, two early runs drifted to all-solid volumes within 200 iterations. A saturation term
  (logits beyond +-`saturation_logit`) keeps the logits where the gradient lives.
- Crops of 64^3 by default: Berea's pores and Ketton's grains are 15-40 voxels across, and the
  first shipped model, trained on 32^3 crops with 26-pixel critic patches, learned blobs about
  half the real size (specific surface 25-125 % too high) and an all-solid Ketton.
Every `eval_every` iterations the texture codes are decoded to `eval_volumes` 64^3 volumes
each (fixed noise), and their porosity, specific surface (axis estimate) and Euler density
(x 1e4) are logged beside
the held-out block's in the CSV learning curve; the checkpoint with the lowest `quality_error`
(mean relative error of the two) is kept as `<out>.best.pt`. Checkpoints hold everything needed to resume.
The loop itself is the training harness of `rocksynth.training.loop` (time budget, curve, best
checkpoint, warm start).
"""

import csv
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from rocksynth.data.textures import Texture, TextureCrops
from rocksynth.devices import grad_scaler, mixed_precision
from rocksynth.errors import BadInputError
from rocksynth.models.checkpoints import file_name, texture_models
from rocksynth.models.texture import (SCALE, LatentDiscriminator, PairDiscriminator, SliceDiscriminator,
                                      TextureEncoder, TextureGenerator, count_parameters)
from rocksynth.progress import log
from rocksynth.training.checkpoint import load_checkpoint
from rocksynth.training.loop import LoopSettings, train
from rocksynth.training.outputs import save_curve_figure, texture_plan
from rocksynth.training.topology import EULER_UNIT, euler_density

KIND = "texture"
LOSS_FIELDS = ["loss_d_x", "loss_d_xx", "loss_d_z", "loss_x", "loss_xx", "loss_z", "loss_porosity",
               "loss_correlation", "loss_saturation"]


@dataclass
class TrainSettings:
    """Everything a run of `train_texture` is set by; saved in the checkpoint's metadata.
    `rocksynth train texture --set KEY=VALUE` sets any field but `model` (see docs/synthesize.md)."""

    iters: int = 3000
    crop: int = 64
    batch: int = 2
    lr_g: float = 5e-5
    lr_d: float = 1e-4
    alpha_x: float = 1.0
    alpha_xx: float = 1.0
    beta_z: float = 1.0
    beta_xx: float = 1.0
    porosity_weight: float = 10.0
    correlation_weight: float = 1000.0
    warmup_iters: int = 100
    output_contrast: float = 8.0
    correlation_range: int = 24
    gradient_temperature: float = 2.0
    saturation_weight: float = 1.0
    saturation_logit: float = 6.0
    slices_per_axis: int = 4
    holdout: float = 0.25
    eval_every: int = 100
    eval_size: int = 64
    eval_volumes: int = 2
    prior_std: float = 0.3
    save_every: int = 100
    init_ramp: int = 0  # iterations of learning-rate ramp after --init (the shipped recipe used none)
    seed: int = 0
    threads: int = 1  # torch's CPU threads (the CPU's arithmetic, not the recipe)
    model: dict = field(default_factory=dict)  # {"generator": {...}, "encoder": {...}}


def model_config_of(generator: TextureGenerator, encoder: TextureEncoder) -> dict:
    """The constructor config of the two networks, as saved in a checkpoint."""
    return {"generator": {"code_channels": generator.code_channels, "noise_channels": generator.cell_noise,
                          "widths": list(generator.widths), "fine_noise": list(generator.fine_noise)},
            "encoder": {"width": encoder.width}}


def latent_grid(codes: torch.Tensor, cells, noise_channels: int, generator: "torch.Generator | None" = None,
                extrude: "tuple[TextureGenerator, torch.Tensor] | None" = None):
    """Codes (B, C) or a code field (B, C, d, h, w) + N(0, 1) noise -> latent (B, C + noise, d, h, w).
    `extrude` = (the generator, bool (B,) on the CPU): those samples get noise invariant along z.
    The noise is drawn on the CPU (a seed draws the same on every device) and moved to the codes'."""
    if isinstance(cells, int):
        cells = (cells,) * 3
    if codes.dim() == 2:
        codes = codes[:, :, None, None, None].expand(-1, -1, *cells)
    noise = torch.randn(codes.shape[0], noise_channels, *cells, generator=generator)
    if extrude is not None and bool(extrude[1].any()):
        g, flags = extrude
        noise = torch.where(flags[:, None, None, None, None], g.extrude_noise(noise), noise)
    return torch.cat([codes, noise.to(codes.device)], dim=1)


def random_slices(volumes: torch.Tensor, per_axis: int) -> torch.Tensor:
    """(B, C, n, n, n) cubes -> (3 * per_axis * B, C, n, n) random slices normal to each axis,
    ordered axis-major so that two batches sliced alike line up as pairs."""
    b, c, n = volumes.shape[0], volumes.shape[1], volumes.shape[2]
    out = []
    for axis in (2, 3, 4):
        index = torch.randint(0, n, (per_axis,)).to(volumes.device)
        picked = volumes.index_select(axis, index).movedim(axis, 1)  # (B, per_axis, C, n, n)
        out.append(picked.reshape(b * per_axis, c, n, n))
    return torch.cat(out)


def binary_straight_through(logits: torch.Tensor, temperature: float = 2.0) -> torch.Tensor:
    """The thresholded volume (logit > 0) in the forward pass, the gradient of a softened
    sigmoid(logits / temperature) in the backward pass: the critics see binary volumes like the
    real ones, so grey values are no give-away. With the plain sigmoid's gradient (temperature
    1) a texture whose logits had drifted to -6 got 0.25 % of the gradient it needs to come back:
    the first shipped model's Ketton code stayed all solid (logits -5.7 +- 0.2) for 900
    iterations, whatever the porosity term said."""
    hard = (logits > 0).to(logits.dtype)
    soft = torch.sigmoid(logits / temperature)
    return hard + soft - soft.detach()


def axis_correlation(volumes: torch.Tensor, r_max: int) -> torch.Tensor:
    """(B, 1, n, n, n) -> (B, 3, r_max + 1) two-point correlation along each axis (z, y, x),
    periodic (FFT along each axis), differentiable: exact for the generator's training output,
    which is periodic (circular padding)."""
    out = []
    for axis in (2, 3, 4):
        spectrum = torch.fft.rfft(volumes, dim=axis)
        auto = torch.fft.irfft(spectrum * spectrum.conj(), n=volumes.shape[axis], dim=axis)
        auto = auto.narrow(axis, 0, r_max + 1) / volumes.shape[axis]
        out.append(auto.mean(dim=[d for d in (1, 2, 3, 4) if d != axis]))
    return torch.stack(out, 1)


def window_correlation(volumes: torch.Tensor, r_max: int) -> torch.Tensor:
    """Like `axis_correlation` (per axis), for crops of a larger medium: only pairs of voxels
    inside the crop (a periodic estimate would pair the two faces of the crop, which are unrelated)."""
    out = []
    for axis in (2, 3, 4):
        n = volumes.shape[axis]
        lags = [(volumes.narrow(axis, 0, n - r) * volumes.narrow(axis, r, n - r)).mean(dim=(1, 2, 3, 4))
                for r in range(r_max + 1)]
        out.append(torch.stack(lags, 1))
    return torch.stack(out, 1)


def correlation_mismatch(generated: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of per-axis S2 curves (B, 3, lags), each sample's three axes
    sorted by correlation length (sum of S2 over the lags) first. Sorting makes it blind to
    orientation only: the crops are rotated at random, so a fracture texture extruded along
    some axis may come out extruded along any, but an isotropic rock must come out isotropic.
    (The first recipe compared the curves averaged over the axes, which cannot see anisotropy:
    the shipped model matched Berea's axis-mean S2 with pores 12 voxels long along z and x and
    7 along y, and could not express the fractures' one fully correlated axis.)"""
    def by_range(curves):
        order = curves.sum(2).argsort(1)
        return torch.gather(curves, 1, order[:, :, None].expand_as(curves))

    return ((by_range(generated) - by_range(target)) ** 2).mean()


def surface_estimate(volumes: torch.Tensor) -> torch.Tensor:
    """(B, 1, n, n, n) binary -> (B,) specific surface per voxel side, from pore/solid transitions
    along the three axes (Crofton: S_V = 2 P_L for an isotropic medium). Cheap, for the learning
    curve; the benchmark uses the 13-direction Minkowski estimate."""
    transitions = [(volumes.narrow(a, 1, volumes.shape[a] - 1) != volumes.narrow(a, 0, volumes.shape[a] - 1))
                   .float().mean(dim=(1, 2, 3, 4)) for a in (2, 3, 4)]
    return 2 * torch.stack(transitions).mean(0)


def statistics_terms(fakes: torch.Tensor, target: torch.Tensor, lags: int) -> "tuple[torch.Tensor, torch.Tensor]":
    """The generator's statistics terms for straight-through binary `fakes` against real crops
    `target` (same batch size): squared porosity error (mean) and per-axis S2 mismatch up to `lags`."""
    porosity = ((fakes.mean(dim=(1, 2, 3, 4)) - target.mean(dim=(1, 2, 3, 4))) ** 2).mean()
    with torch.no_grad():
        target_correlation = window_correlation(target, lags)
    correlation = correlation_mismatch(axis_correlation(fakes, lags), target_correlation)
    return porosity, correlation


def _normal_like(tensor: torch.Tensor) -> torch.Tensor:
    """N(0, 1) draws of `tensor`'s shape from torch's CPU generator, on `tensor`'s device: the
    same draws on every device (on the CPU, exactly ``torch.randn_like``)."""
    return torch.randn(tensor.shape, dtype=tensor.dtype).to(tensor.device)


def _hinge_d(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return F.relu(1 - real).mean() + F.relu(1 + fake).mean()


class TextureTrainer:
    def __init__(self, textures: "list[Texture]", settings: TrainSettings):
        self.textures, self.s = textures, settings
        self.generator, self.encoder = texture_models(settings.model)
        self.d_x, self.d_xx = SliceDiscriminator(), PairDiscriminator()
        self.d_z = LatentDiscriminator(self.generator.code_channels)
        # Each named texture's code: the mean of its prior p_k(z) = N(mu_k, prior_std^2 I).
        self.texture_codes = torch.nn.Parameter(torch.randn(len(textures), self.generator.code_channels))
        self.opt_g = torch.optim.Adam(list(self.generator.parameters()) + list(self.encoder.parameters())
                                      + [self.texture_codes], lr=settings.lr_g, betas=(0.5, 0.999))
        self.opt_d = torch.optim.Adam(list(self.d_x.parameters()) + list(self.d_xx.parameters())
                                      + list(self.d_z.parameters()), lr=settings.lr_d, betas=(0.5, 0.999))
        self.crops = TextureCrops(textures, seed=settings.seed)
        # Textures whose sample is the same on every z-slice get noise constant along z.
        self.extruded = torch.tensor([t.extruded for t in textures])
        self.iteration, self.wall = 0, 0.0
        self._init_output()
        self.device, self.scaler = torch.device("cpu"), grad_scaler(None)

    def to(self, device: torch.device) -> None:
        """Train on `device` (mixed precision on CUDA): networks and texture codes move (the codes
        in place, so the optimiser keeps them); crops and noise are drawn on the CPU and follow."""
        for module in (self.generator, self.encoder, self.d_x, self.d_xx, self.d_z):
            module.to(device)
        self.texture_codes.data = self.texture_codes.data.to(device)
        self.device, self.scaler = device, grad_scaler(device)

    def _init_output(self) -> None:
        """Start from a contrasted binary texture: output weights scaled by `output_contrast` and
        the bias set so that the mean training porosity of voxels are pore. The default init
        gives logits of sd 0.24 around -0.19, a grey field whose threshold flips wholesale at
        the first Adam steps (three runs went all solid within 200 iterations); with sd ~2 the
        gradient through the threshold acts on pore boundaries. (Overwritten by resume/--init.)"""
        g = self.generator
        porosity = float(np.mean([t.train.mean() for t in self.textures]))
        with torch.no_grad():
            g.out.weight.mul_(self.s.output_contrast)
            logits = g(latent_grid(self.texture_codes.detach(), 4, g.noise_channels))
            g.out.bias.sub_(torch.quantile(logits.flatten()[::3], 1 - porosity))

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
        device = self.device
        x = torch.from_numpy(x_np).float()[:, None].to(device)
        x2 = torch.from_numpy(x2_np).float()[:, None].to(device)
        mu = self.texture_codes[torch.from_numpy(labels).to(device)]
        with mixed_precision(device):
            code = self.encoder(x).float()
        # Reproductions G(E(x)) and samples G(z), z ~ p_k(z) of x's texture k.
        prior_code = mu + s.prior_std * _normal_like(mu)
        extruded = self.extruded[torch.from_numpy(labels)].repeat(2)
        with mixed_precision(device):
            logits = g(latent_grid(torch.cat([code, prior_code]), cells, g.noise_channels,
                                   extrude=(g, extruded))).float()
        fakes = binary_straight_through(logits, s.gradient_temperature)
        reals = torch.cat([x, x2])
        pairs_real = torch.cat([x, x2], 1)
        pairs_fake = torch.cat([reals[:s.batch].repeat(2, 1, 1, 1, 1), fakes], 1)
        k = s.slices_per_axis

        # Critics (their outputs in float32: the losses and their sums stay exact under autocast).
        with mixed_precision(device):
            loss_d_x = _hinge_d(self.d_x(random_slices(reals, k)).float(),
                                self.d_x(random_slices(fakes.detach(), k)).float())
            loss_d_xx = _hinge_d(self.d_xx(random_slices(pairs_real, k)).float(),
                                 self.d_xx(random_slices(pairs_fake.detach(), k)).float())
            prior = mu.detach() + s.prior_std * _normal_like(mu)
            loss_d_z = _hinge_d(self.d_z(prior).float(), self.d_z(code.detach()).float())
        self.opt_d.zero_grad(set_to_none=True)
        self.scaler.scale(loss_d_x + loss_d_xx + loss_d_z).backward()
        self.scaler.step(self.opt_d)

        # Generator, encoder and texture codes.
        with mixed_precision(device):
            loss_x = -self.d_x(random_slices(fakes, k)).float().mean()
            loss_xx = -self.d_xx(random_slices(pairs_fake, k)).float().mean()
            loss_z = -self.d_z(code).float().mean() + ((code - mu.detach()) ** 2).mean()
        # Statistics of the thresholded output (straight-through gradients) against x, a crop of
        # the same texture: what users get. (The same terms on the probability drove the output
        # to a grey, all-solid-when-thresholded field: mean(p) matches the porosity without any
        # structure.)
        target = x.repeat(2, 1, 1, 1, 1)
        lags = min(s.correlation_range, s.crop // 2)  # at most half the crop
        loss_porosity, loss_correlation = statistics_terms(fakes, target, lags)
        loss_saturation = (F.relu(logits.abs() - s.saturation_logit) ** 2).mean()
        # Warm-up: the statistics terms alone first give the generator a binary texture of about
        # the right porosity and S2; critics that start against a grey, structureless output win
        # at once (hinge loss < 0.4 by iteration 100) and the output never gained contrast.
        adversarial = 0.0 if self.iteration < s.warmup_iters else 1.0
        total = (adversarial * (s.alpha_x * loss_x + (s.alpha_xx + s.beta_xx) / 2 * loss_xx) + s.beta_z * loss_z
                 + s.porosity_weight * loss_porosity + s.correlation_weight * loss_correlation
                 + s.saturation_weight * loss_saturation)
        self.opt_g.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        self.scaler.step(self.opt_g)
        self.scaler.update()  # once per iteration, after both optimisers (torch's recipe)
        self.iteration += 1
        values = [loss_d_x, loss_d_xx, loss_d_z, loss_x, loss_xx, loss_z, loss_porosity, loss_correlation,
                  loss_saturation]
        return {name: float(v.detach()) for name, v in zip(LOSS_FIELDS, values)}

    def held_out_reference(self) -> dict:
        """Porosity, surface estimate and Euler density (x 1e4) of each texture's held-out block
        (computed once)."""
        from rocksynth.properties.minkowski import minkowski_functionals

        if not hasattr(self, "_reference"):
            self._reference = {}
            for texture in self.textures:
                block = torch.from_numpy(np.ascontiguousarray(texture.held_out)).float()[None, None]
                euler = minkowski_functionals(texture.held_out)["euler_density"] * EULER_UNIT
                self._reference[texture.name] = (float(block.mean()), float(surface_estimate(block)[0]), euler)
        return self._reference

    def evaluate(self) -> dict:
        """Porosity, specific surface (axis estimate) and Euler density of `eval_volumes` generated
        eval_size^3 volumes per texture code (fixed noise) against the held-out block;
        `quality_error` is the mean over textures of the porosity and surface relative errors (the
        held-out metric of the learning curve; Euler density is logged, not scored, because two
        64^3 volumes estimate it too noisily)."""
        g, n = self.generator, self.s.eval_volumes
        generator = torch.Generator().manual_seed(1234)
        result, errors, quality = {}, [], []
        with torch.no_grad(), mixed_precision(self.device):
            z = latent_grid(self.codes.repeat_interleave(n, 0), self.s.eval_size // SCALE, g.noise_channels, generator,
                            extrude=(g, self.extruded.repeat_interleave(n, 0)))
            volumes = (g(z) > 0).float()
        porosities, surfaces = volumes.mean(dim=(1, 2, 3, 4)), surface_estimate(volumes)
        eulers = euler_density(volumes) * EULER_UNIT
        for index, texture in enumerate(self.textures):
            porosity_real, surface_real, euler_real = self.held_out_reference()[texture.name]
            porosity, surface, euler = (float(v[index * n:(index + 1) * n].mean())
                                        for v in (porosities, surfaces, eulers))
            result[f"porosity_{texture.name}_real"] = porosity_real
            result[f"porosity_{texture.name}_generated"] = porosity
            result[f"surface_{texture.name}_real"] = surface_real
            result[f"surface_{texture.name}_generated"] = surface
            result[f"euler_{texture.name}_real"] = euler_real
            result[f"euler_{texture.name}_generated"] = euler
            errors.append(abs(porosity - porosity_real))
            quality.append(abs(porosity - porosity_real) / porosity_real + abs(surface - surface_real) / surface_real)
        result["porosity_mean_abs_error"] = float(np.mean(errors))
        result["quality_error"] = float(np.mean(quality))
        return result

    def state(self) -> dict:
        state = {name: module.state_dict() for name, module in self.modules().items()}
        state["texture_codes"] = {"codes": self.codes}
        return state

    def load_state(self, state: dict, weights_only: bool = False, codes: bool = True) -> None:
        """Everything (resume), or with `weights_only` the networks alone (a warm start; the
        texture codes too if `codes`: without them a warm start of the same textures began from
        random codes)."""
        for name, module in self.modules().items():
            if not (weights_only and name.startswith("opt")):
                module.load_state_dict(state[name])
        if not weights_only or codes:
            with torch.no_grad():
                self.texture_codes.copy_(state["texture_codes"]["codes"])
        if weights_only:
            return
        # The learning rates are settings: a resumed run may change them.
        for optimizer, lr in ((self.opt_g, self.s.lr_g), (self.opt_d, self.s.lr_d)):
            for group in optimizer.param_groups:
                group["lr"] = lr


def _texture_meta(textures: "list[Texture]") -> list:
    return [{"name": t.name, "source": file_name(t.source), "voxel_size": t.voxel_size, "extruded": t.extruded,
             "porosity_train": float(t.train.mean()), "porosity_held_out": float(t.held_out.mean()),
             "train_shape": list(t.train.shape), "held_out_shape": list(t.held_out.shape)} for t in textures]


def check_settings(settings: TrainSettings) -> None:
    """Refuse settings no run could use, before any data is read.

    Raises
    ------
    BadInputError
        One line naming the setting.
    """
    s = settings
    if s.crop % SCALE or s.crop < 16:
        raise BadInputError(f"crop must be a multiple of {SCALE} and at least 16, got {s.crop}")
    if s.eval_size % SCALE or s.eval_size < 16:
        raise BadInputError(f"eval_size must be a multiple of {SCALE} and at least 16, got {s.eval_size}")
    if s.iters < 0 or s.warmup_iters < 0 or s.init_ramp < 0:
        raise BadInputError("iters, warmup_iters and init_ramp must not be negative")
    counts = ("batch", "eval_every", "save_every", "eval_volumes", "slices_per_axis", "correlation_range", "threads")
    small = [name for name in counts if getattr(s, name) < 1]
    if small:
        raise BadInputError(f"{', '.join(small)} must be at least 1")
    if not (0 < s.lr_g < 1 and 0 < s.lr_d < 1):  # also refuses NaN
        raise BadInputError(f"learning rates lr_g and lr_d must be positive and below 1, got {s.lr_g}, {s.lr_d}")
    if not 0 < s.holdout < 1:
        raise BadInputError(f"holdout must be between 0 and 1, got {s.holdout}")
    weights = ("alpha_x", "alpha_xx", "beta_z", "beta_xx", "porosity_weight", "correlation_weight",
               "saturation_weight", "prior_std")
    negative = [name for name in weights if not getattr(s, name) >= 0]
    if negative:
        raise BadInputError(f"{', '.join(negative)} must not be negative")
    if not (s.output_contrast > 0 and s.gradient_temperature > 0 and s.saturation_logit > 0):
        raise BadInputError("output_contrast, gradient_temperature and saturation_logit must be positive")


def check_textures(textures: "list[Texture]", settings: TrainSettings) -> None:
    """Refuse textures a run cannot learn from, before any work: duplicate names, a training part
    smaller than the crop, and a part that is all pore or all solid (nothing to learn, and no
    porosity or surface to compare the generated volumes with)."""
    if not textures:
        raise BadInputError("give at least one texture: NAME=VOLUME")
    names = [t.name for t in textures]
    if len(set(names)) != len(names):
        raise BadInputError(f"texture names must be unique, got {', '.join(names)}")
    for texture in textures:
        for part, block in (("training part", texture.train), ("held-out part", texture.held_out)):
            porosity = float(block.mean()) if block.size else 0.0
            if not 0 < porosity < 1:
                phase = "all pore" if porosity >= 1 else "all solid"
                raise BadInputError(f"texture {texture.name}: its {part} is {phase} (porosity {porosity:.3f}); "
                                    f"a texture needs both pore and solid (check --threshold / --pore-value)")
        if min(texture.train.shape) < settings.crop:
            raise BadInputError(f"texture {texture.name}: training part {texture.train.shape} is smaller than "
                                f"the crop {settings.crop}; choose a smaller --crop or a larger volume")


def train_texture(textures: "list[Texture]", out: Path, settings: TrainSettings, resume: bool = False,
                  init: "Path | None" = None, time_budget: "float | None" = None,
                  device: "torch.device | None" = None) -> dict:
    """Train (or resume) and write `out` (.pt), `out`.csv (learning curve), `out`.png and `out`.best.pt.

    Parameters
    ----------
    textures : list of Texture
        The named training volumes (each with its held-out part).
    out : Path
        The checkpoint to write.
    settings : TrainSettings
        The run's settings (saved in the checkpoint).
    resume : bool
        Continue `out` if it exists (its architecture and texture names must match).
    init : Path, optional
        Start from the network weights of another texture checkpoint (fresh optimizers; its
        architecture; its texture codes too when it was trained on the same texture names); the
        learning rates ramp up over `settings.init_ramp` iterations (0: none).
    time_budget : float, optional
        Seconds: stop cleanly at the first iteration after it, with a checkpoint to resume.
    device : torch.device, optional
        Where to train (default the CPU; mixed precision on CUDA).

    Returns
    -------
    dict
        The last held-out evaluation (porosity, surface, Euler density per texture).

    Every output (`rocksynth.training.outputs.texture_plan`) is checked before any work; a run that
    fails or is interrupted before its first checkpoint leaves none of them behind.
    """
    check_settings(settings)
    plan = texture_plan(out, resume).check()
    check_textures(textures, settings)
    names = [t.name for t in textures]
    out = plan.checkpoint
    curve_path, png_path, best_path = plan.companions
    checkpoint = source = origin = None
    if plan.resuming:
        checkpoint = load_checkpoint(out, KIND)
        saved = [t["name"] for t in checkpoint["meta"]["textures"]]
        if saved != names:
            raise BadInputError(f"{out}: trained on textures {saved}, cannot resume with {names}")
        settings.model = checkpoint["config"]  # a resumed run keeps its architecture
        log(f"resuming {out} at iteration {checkpoint['meta']['iterations']}")
    elif init is not None:
        source = load_checkpoint(init, KIND)
        settings.model = source["config"]  # a warm start keeps the source's architecture
        origin = {"checkpoint": file_name(str(init)), "iterations": source["meta"].get("iterations"),
                  "same_textures": [t["name"] for t in source["meta"]["textures"]] == names}

    def build() -> _TextureTask:
        trainer = TextureTrainer(textures, settings)
        if source is not None:
            trainer.load_state(source["state"], weights_only=True, codes=origin["same_textures"])
            log(f"network weights from {init}" + (" with its texture codes" if origin["same_textures"] else ""))
        log(f"texture GAN: generator {count_parameters(trainer.generator)} parameters, encoder "
            f"{count_parameters(trainer.encoder)}; textures {', '.join(names)}")
        return _TextureTask(trainer)

    eval_fields = [f"{p}_{n}_{kind}" for n in names for p in ("porosity", "surface", "euler")
                   for kind in ("real", "generated")]
    fields = ["iteration", "wall_s"] + LOSS_FIELDS + eval_fields + ["porosity_mean_abs_error", "quality_error"]
    # The checkpoint with the lowest held-out quality_error so far is kept beside `out`. A resumed
    # run continues its curve (a curve of an older version, with fewer columns, gets today's header
    # and blanks in the new columns).
    loop_settings = LoopSettings(
        iters=settings.iters, seed=settings.seed, eval_every=settings.eval_every, save_every=settings.save_every,
        time_budget=time_budget, ramp=settings.init_ramp, best_metric="quality_error", best_mode="min",
        best_path=best_path, curve_fields=fields, curve_path=curve_path,
        plot=lambda rows, png: plot_curve(curve_path, png), description="training texture GAN", device=device)
    with plan:
        result = train(build, plan, loop_settings, payload=checkpoint, init=origin)
    if not png_path.exists():  # nothing was evaluated (--iters 0): the curve of the run continued
        plot_curve(curve_path, png_path)
    return result.metrics


class _TextureTask:
    """The texture GAN's step (critics, then generator + encoder + codes), its held-out
    evaluation (porosity, surface, Euler density of generated volumes) and its state, for the
    harness."""

    kind = KIND

    def __init__(self, trainer: TextureTrainer):
        self.trainer, self.s = trainer, trainer.s
        self.optimizers = [trainer.opt_g, trainer.opt_d]

    def to(self, device: torch.device) -> None:
        """Train on `device` (`TextureTrainer.to`)."""
        self.trainer.to(device)

    def step(self, iteration: int) -> "dict[str, float]":
        # Crops and noise depend on the iteration, so a resumed run continues the same stream.
        self.trainer.iteration = iteration
        self.trainer.crops.reseed(self.s.seed * 1_000_003 + iteration)
        torch.manual_seed(self.s.seed * 1_000_003 + iteration)
        return self.trainer.step()

    def status(self, losses) -> str:
        return f"D {losses['loss_d_x']:.2f} G {losses['loss_x']:.2f}"

    def evaluate(self) -> dict:
        return self.trainer.evaluate()

    def state_dict(self) -> dict:
        return self.trainer.state()

    def load_state_dict(self, state) -> None:
        self.trainer.load_state(state)

    def checkpoint_config(self) -> dict:
        return model_config_of(self.trainer.generator, self.trainer.encoder)

    def checkpoint_meta(self, metrics) -> dict:
        textures = self.trainer.textures
        return {"textures": _texture_meta(textures), "data": ", ".join(t.name for t in textures),
                "settings": asdict(self.s), "metrics": dict(metrics)}

    def curve_row(self, row: dict) -> dict:
        out = {"iteration": row["iteration"], "wall_s": row["wall_time_s"]}
        out.update({k: round(float(v), 5) for k, v in row.items() if k not in ("iteration", "wall_time_s", "lr")})
        return out


def _value(row: dict, key: str) -> float:
    """A CSV cell as a number; blank (a column added after the row was written) is NaN."""
    text = row.get(key) or ""
    return float(text) if text else float("nan")


def plot_curve(curve_path: Path, png_path: Path) -> None:
    """Losses and held-out porosity, surface and Euler density per texture against iterations."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(curve_path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        return
    it = [int(r["iteration"]) for r in rows]
    fig, panels = plt.subplots(1, 4, figsize=(21, 4))
    for name in LOSS_FIELDS:
        panels[0].plot(it, [_value(r, name) for r in rows], label=name)
    panels[0].set_xlabel("iteration")
    panels[0].set_title("losses (hinge; mean over the interval)")
    panels[0].set_yscale("symlog", linthresh=1e-3)
    panels[0].legend(fontsize=7)
    names = [k[len("porosity_"):-len("_real")] for k in rows[0] if k.startswith("porosity_") and k.endswith("_real")]
    titles = (("porosity", "porosity"), ("surface", "specific surface (axis estimate)"),
              ("euler", "Euler density per 10⁴ voxels"))
    for axes, (prop, title) in zip(panels[1:], titles):
        for index, name in enumerate(names):
            colour = f"C{index}"
            axes.plot(it, [_value(r, f"{prop}_{name}_generated") for r in rows], color=colour, label=f"{name} generated")
            axes.axhline(_value(rows[-1], f"{prop}_{name}_real"), color=colour, ls="--", lw=0.8)
        axes.set_xlabel("iteration")
        axes.set_title(f"{title}: generated 64³ (solid) vs held-out (dashed)")
        axes.legend(fontsize=7)
    fig.tight_layout()
    save_curve_figure(fig, png_path)
