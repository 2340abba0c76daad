"""Multi-texture GAN after Alanov, Kochurov, Volkhonskiy et al. (VISAPP 2020), sized for a CPU.

- `TextureGenerator` G(z): fully convolutional, from a latent grid at 1/8 resolution to a volume.
  The latent has `code_channels` texture-code channels (which texture; smooth in space) and
  noise channels (which realisation): N(0, 1) per cell, plus the values of finer noise maps at
  1/4 and 1/2 resolution (8 and 64 per cell, unshuffled into the cell), concatenated to the
  features at those scales, so that all randomness lives in the latent grid. Each stage is
  trilinear x2 upsampling + a 3x3x3 convolution (resize-convolution: no position-dependent
  filters); the output convolution runs at 1/2 resolution and its logit is upsampled
  trilinearly, so nothing but an interpolation runs at full resolution (a full-resolution 3x3x3
  convolution costed more than the rest of the network together on the CPU). `depth` = (d1, d2)
  adds residual 3x3x3 convolutions at 1/4 and 1/2 resolution, zero-initialised, so a network
  grown from a trained one (`grow_from`) starts out with the same output; `full_res` > 0 adds a
  full-resolution stage of that many channels (zero-initialised likewise), a third `fine_noise`
  entry gives that stage noise maps at full resolution (512 values per cell), `refine` adds two
  full-resolution convolutions that read the finished logit and correct it, and `out_fields` K
  makes the pore logit the minimum of K upsampled fields (all off by default). A first design
  with voxel-shuffle (sub-voxel convolution) stages learned a lattice of one blob per latent
  cell. Features are pixel-normalised; no BatchNorm.
- Padding is explicit. `pad="circular"` (training) wraps each feature map, so a latent of L cells
  gives 8L voxels of a periodic volume and no voxel ever sees an artificial border;
  `pad="valid"` (inference) pads nothing: L cells give 8L - 2*margin_voxels voxels, and voxel j
  of the result only depends on latent cells whose region lies within margin_voxels of it. Valid
  decoding is shift-equivariant by whole cells, so tiles of the latent grid decode to the
  corresponding tiles of the volume (see rocksynth.pipelines.synthesize).
- `TextureEncoder` E(x): strided 3D convolutions and a global average, a volume of any size
  (>= 16 voxels a side) -> its texture code.
- Discriminators (spectral norm, hinge loss): `SliceDiscriminator` (generator matching on 2D
  slices normal to the three axes, patch-wise over 54-pixel patches), `PairDiscriminator` (pair matching: two slices
  side by side as channels) and `LatentDiscriminator` (latent matching on texture codes).
"""

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import spectral_norm

SCALE = 8  # output voxels per latent cell along each axis


def voxel_shuffle(x: torch.Tensor, r: int = 2) -> torch.Tensor:
    """(B, C*r^3, D, H, W) -> (B, C, rD, rH, rW): the 3D version of pixel shuffle."""
    b, c, d, h, w = x.shape
    c_out = c // (r ** 3)
    x = x.view(b, c_out, r, r, r, d, h, w)
    x = x.permute(0, 1, 5, 2, 6, 3, 7, 4)
    return x.reshape(b, c_out, d * r, h * r, w * r)


def upsample2_valid(x: torch.Tensor) -> torch.Tensor:
    """Trilinear x2 upsampling (align_corners=False) without padding: n cells -> 2(n - 2) voxels,
    voxel 2i, 2i+1 of the full upsampling for i in 1..n-2, so it is exact for any tile. The full
    upsampling only clamps at its first and last cell, which the crop drops; one fused
    `interpolate` is a third faster (forward + backward) than interleaving shifted copies."""
    up = F.interpolate(x, scale_factor=2, mode="trilinear", align_corners=False)
    return up[:, :, 2:-2, 2:-2, 2:-2]


def pixel_norm(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Each voxel's feature vector scaled to unit mean square (Karras et al. 2018). Unlike
    BatchNorm it looks at one voxel only, so it keeps the decode exact under any tiling, and it
    keeps the feature scale from shrinking layer after layer (a first run without it produced a
    nearly constant volume that the critics then drove to all-solid)."""
    return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + eps)


class TextureGenerator(nn.Module):
    def __init__(self, code_channels: int = 8, noise_channels: int = 8, widths=(48, 32, 16),
                 fine_noise=(2, 1), depth=(0, 0), full_res: int = 0, out_fields: int = 1,
                 refine: int = 0):
        super().__init__()
        if out_fields < 1:
            raise ValueError(f"out_fields must be at least 1, got {out_fields}")
        self.out_fields = int(out_fields)
        self.code_channels, self.cell_noise = code_channels, noise_channels
        # fine_noise = (maps at 1/4, maps at 1/2[, maps at full resolution for the full-res stage]).
        if len(fine_noise) == 2:
            fine_noise = (*fine_noise, 0)
        self.widths, self.fine_noise, self.depth = tuple(widths), tuple(fine_noise), tuple(depth)
        self.full_res = int(full_res)
        w0, w1, w2 = self.widths
        n1, n2, n3 = self.fine_noise
        if (n3 or refine) and not self.full_res:
            raise ValueError("full-resolution noise maps and refine need a full-resolution stage (full_res > 0)")
        self.refine = int(refine)
        self.act = nn.LeakyReLU(0.2, inplace=True)
        # Each 3x3x3 convolution is valid (no padding); `_pad` adds the circular border in training.
        self.c0a = nn.Conv3d(code_channels + noise_channels, w0, 3)
        self.c0b = nn.Conv3d(w0, w0, 3)
        self.c1 = nn.Conv3d(w0 + n1, w1, 3)
        self.c2 = nn.Conv3d(w1 + n2, w2, 3)
        # With out_fields K > 1 the output convolution draws K fields and the pore logit is their
        # minimum after upsampling: pores where every field says pore, the gaps of K overlapping
        # solid phases, with concave cusps drawn at full resolution and no full-resolution
        # convolution. Pointwise, so tiling stays exact. An experiment: at Ketton's porosity such
        # minima of smooth fields have no more pore loops than one field
        # (benchmarks/diag_texture_topology.py --excursion).
        self.out = nn.Conv3d(w2, self.out_fields, 3)
        d1, d2 = self.depth
        self.res1 = nn.ModuleList(nn.Conv3d(w1, w1, 3) for _ in range(d1))
        self.res2 = nn.ModuleList(nn.Conv3d(w2, w2, 3) for _ in range(d2))
        # Optional full-resolution stage: the 1/2-resolution features reduced to `full_res`
        # channels (1x1x1), upsampled, two 3x3x3 convolutions; its logit is added to the
        # interpolated one. It can draw throats one voxel wide, which an interpolated
        # half-resolution logit hardly can (Ketton's loops close through them). Same margin: its
        # two full-resolution convolutions trim as much as the output convolution at 1/2 does.
        # With full-resolution noise maps (n3) its first 3x3x3 convolution also reads them: it can
        # then draw random detail one voxel wide (rough walls, specks, one-voxel throats), which
        # no deterministic function of the smoother features draws; a 1/2-resolution-only noise
        # left Ketton's pore loops, 90 % of which close through one-voxel throats, undrawn.
        f = self.full_res
        self.fine_a = nn.Conv3d(w2, f, 1) if f else None
        self.fine_b = nn.Conv3d(f + n3, f, 3) if f else None
        self.fine_c = nn.Conv3d(f, 1, 3) if f else None
        # Optional refinement (`refine` channels): two more full-resolution 3x3x3 convolutions that
        # read the finished logit itself beside the full-resolution features and noise, and add a
        # correction. Only a stage that sees the logit's neighbourhood can learn local topology
        # edits (a solid wall one voxel thick between two pores -> a throat), which is what the
        # Euler term's per-voxel gradient asks for; through the rest of the network that gradient
        # only moved the porosity. It costs 2 voxels of margin.
        r = self.refine
        self.ref_b = nn.Conv3d(1 + f + n3, r, 3) if r else None
        self.ref_c = nn.Conv3d(r, 1, 3) if r else None
        for conv in [*self.res1, *self.res2, *([self.fine_c] if f else []), *([self.ref_c] if r else [])]:
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)

    @property
    def margin_voxels(self) -> int:
        """Voxels per side that valid decoding trims: one cell per side at each 3x3x3 convolution
        and each trilinear upsampling; in output voxels: convolutions 2 * 8 (1/8) + (1 + d1) * 4
        (1/4) + (2 + d2) * 2 (1/2), upsamplings 8 (from 1/8) + 4 (from 1/4) + 2 (from 1/2);
        38 without residual convolutions; the refinement's two full-resolution convolutions add 2."""
        d1, d2 = self.depth
        return 2 * 8 + (1 + d1) * 4 + (2 + d2) * 2 + 8 + 4 + 2 + (2 if self.refine else 0)

    @property
    def noise_channels(self) -> int:
        """Noise channels of a latent cell: per-cell noise, then the 8 (1/4), 64 (1/2) and 512
        (full resolution) values per cell of the finer noise maps, so all randomness lives in the
        latent grid."""
        n1, n2, n3 = self.fine_noise
        return self.cell_noise + 8 * n1 + 64 * n2 + 512 * n3

    @property
    def in_channels(self) -> int:
        return self.code_channels + self.noise_channels

    @staticmethod
    def _conv(conv: nn.Conv3d, x: torch.Tensor, pad: str) -> torch.Tensor:
        if pad == "circular":
            x = F.pad(x, (1,) * 6, mode="circular")
        return conv(x)

    @staticmethod
    def _up(x: torch.Tensor, pad: str) -> torch.Tensor:
        if pad == "circular":
            x = F.pad(x, (1,) * 6, mode="circular")
        return upsample2_valid(x)

    @staticmethod
    def _with_noise(x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Concatenate a noise map, centre-cropped to x (valid decoding trims both alike)."""
        return torch.cat([x, _centre_crop(noise, x)], 1)

    def _residual(self, conv: nn.Conv3d, x: torch.Tensor, pad: str) -> torch.Tensor:
        """x + act(conv(x)), pixel-normalised; valid decoding crops x by the cell conv trims."""
        y = self.act(self._conv(conv, x, pad))
        return pixel_norm(_centre_crop(x, y) + y)

    GROWN = ("res1.", "res2.", "fine_", "ref_")  # parameter names of the optional layers

    def grown_parameters(self) -> list:
        """Parameters of the optional layers (residual convolutions, full-resolution stage, refinement)."""
        return [p for name, p in self.named_parameters() if name.startswith(self.GROWN)]

    def grow_from(self, state: dict) -> None:
        """Load a trained generator's weights into this one, which may have more residual
        convolutions or a full-resolution stage (their last convolutions keep their zero init,
        so the output is the trained one's)."""
        missing, unexpected = self.load_state_dict(state, strict=False)
        if unexpected or any(not k.startswith(self.GROWN) for k in missing):
            raise ValueError(f"cannot grow: unexpected {unexpected}, missing {missing}")

    def forward(self, z: torch.Tensor, pad: str = "circular") -> torch.Tensor:
        """Logits (B, 1, D, H, W); sigmoid gives the pore probability."""
        if pad not in ("circular", "valid"):
            raise ValueError(f"pad must be 'circular' or 'valid', got {pad!r}")
        n1, n2, n3 = self.fine_noise
        c = self.code_channels + self.cell_noise
        c2, c3 = c + 8 * n1, c + 8 * n1 + 64 * n2
        noise1 = voxel_shuffle(z[:, c:c2])                                # n1 maps at 1/4
        noise2 = voxel_shuffle(voxel_shuffle(z[:, c2:c3]))                # n2 maps at 1/2

        def a(t):
            return pixel_norm(self.act(t))

        x = a(self._conv(self.c0a, z[:, :c], pad))
        x = a(self._conv(self.c0b, x, pad))
        x = self._with_noise(self._up(x, pad), noise1)
        x = a(self._conv(self.c1, x, pad))
        for conv in self.res1:
            x = self._residual(conv, x, pad)
        x = self._with_noise(self._up(x, pad), noise2)
        x = a(self._conv(self.c2, x, pad))
        for conv in self.res2:
            x = self._residual(conv, x, pad)
        logits = self._up(self._conv(self.out, x, pad), pad)
        if self.out_fields > 1:
            logits = logits.amin(dim=1, keepdim=True)
        if self.fine_a is None:
            return logits
        features = self._up(self.act(self.fine_a(x)), pad)
        noise3 = voxel_shuffle(voxel_shuffle(voxel_shuffle(z[:, c3:]))) if n3 else None  # n3 maps at full resolution
        fine = self._with_noise(features, noise3) if n3 else features
        fine = self.act(self._conv(self.fine_b, fine, pad))
        logits = logits + self._conv(self.fine_c, fine, pad)
        if not self.refine:
            return logits
        inputs = torch.cat([logits, _centre_crop(features, logits)] + ([_centre_crop(noise3, logits)] if n3 else []), 1)
        correction = self._conv(self.ref_c, self.act(self._conv(self.ref_b, inputs, pad)), pad)
        return _centre_crop(logits, correction) + correction

    def extrude_noise(self, noise: torch.Tensor) -> torch.Tensor:
        """Noise channels (B, noise_channels, d, h, w) made invariant along z, at every scale:
        the first z-plane of cells repeated, and inside each cell the finer maps' values of the
        first sub-voxel layer copied to the others. A fully convolutional generator fed with it
        (and with codes constant along z) gives a volume that is exactly the same on every
        z-slice: a 2D texture extruded along z, as a fracture network cut through a slab."""
        b, _, d, h, w = noise.shape
        noise = noise[:, :, :1].expand(-1, -1, d, -1, -1)
        parts, start = [noise[:, :self.cell_noise]], self.cell_noise
        for levels, maps in enumerate(self.fine_noise, start=1):
            count = maps * 8 ** levels
            parts.append(_first_z_subvoxel(noise[:, start:start + count], maps, levels))
            start += count
        return torch.cat(parts, 1)

    def latent_cells_for(self, voxels: int) -> int:
        """Latent cells along an axis whose valid decoding covers `voxels` voxels."""
        return -(-(voxels + 2 * self.margin_voxels) // SCALE)


def _centre_crop(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """The centre of t (B, C, ...) with like's spatial size (valid decoding trims every map
    symmetrically, so centres line up)."""
    crop = [(n - m) // 2 for n, m in zip(t.shape[2:], like.shape[2:])]
    return t[:, :, crop[0]:crop[0] + like.shape[2], crop[1]:crop[1] + like.shape[3], crop[2]:crop[2] + like.shape[4]]


def _first_z_subvoxel(noise: torch.Tensor, maps: int, levels: int) -> torch.Tensor:
    """Unshuffled noise maps (B, maps * 8**levels, d, h, w) with every sub-voxel value replaced by
    that of the first z sub-voxel layer, at each of the `levels` unshuffle levels. Channel layout
    (see voxel_shuffle, applied `levels` times): map, then one (z, y, x) triple per level, the
    finest level's outermost and the coarsest's innermost; a triple's z bit is its leading one."""
    b, _, d, h, w = noise.shape
    for level in range(levels):
        inner = 8 ** level  # channels of the triples inside this one (coarser levels)
        noise = noise.reshape(b, maps * 8 ** (levels - 1 - level), 2, 4 * inner, d, h, w)
        noise = noise[:, :, :1].expand(-1, -1, 2, -1, -1, -1, -1)
    return noise.reshape(b, maps * 8 ** levels, d, h, w)


class TextureEncoder(nn.Module):
    """E(x): volume (B, 1, D, H, W) in [0, 1] -> texture code (B, code_channels)."""

    def __init__(self, code_channels: int = 8, width: int = 16):
        super().__init__()
        self.code_channels, self.width = code_channels, width
        w = width
        self.features = nn.Sequential(
            nn.Conv3d(1, w, 4, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv3d(w, 2 * w, 4, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv3d(2 * w, 4 * w, 4, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True),
        )
        self.head = nn.Linear(4 * w, code_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x * 2 - 1).mean(dim=(2, 3, 4)))


def _patch_critic(conv: type, in_channels: int, w: int) -> nn.Sequential:
    """Spectral-norm patch critic layers (2D or 3D by `conv`): three stride-2 steps to 1/8
    resolution, then two 3-wide convolutions: each score sees a 54-pixel (voxel) patch."""
    def sn(c_in, c_out, k, stride, padding):
        return spectral_norm(conv(c_in, c_out, k, stride=stride, padding=padding))

    act = lambda: nn.LeakyReLU(0.2, inplace=True)  # noqa: E731
    return nn.Sequential(sn(in_channels, w, 4, 2, 1), act(), sn(w, 2 * w, 4, 2, 1), act(),
                         sn(2 * w, 4 * w, 4, 2, 1), act(), sn(4 * w, 4 * w, 3, 1, 1), act(),
                         sn(4 * w, 1, 3, 1, 1))


class SliceDiscriminator(nn.Module):
    """Patch critic on 2D slices (B, in_channels, n, n): a score map at 1/8 resolution, each score
    seeing a 54-pixel patch. Rock pores and grains are 15-40 voxels across; a first critic whose
    patches were 26 pixels could not tell their shape and the generator learned small round blobs
    (specific surface 25-125 % too high)."""

    def __init__(self, in_channels: int = 1, width: int = 32):
        super().__init__()
        self.net = _patch_critic(nn.Conv2d, in_channels, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x * 2 - 1)


class PairDiscriminator(SliceDiscriminator):
    """D(x, x'): slices of two volumes stacked as channels; real = same texture."""

    def __init__(self, width: int = 32):
        super().__init__(in_channels=2, width=width)


class VolumeDiscriminator(nn.Module):
    """Patch critic on whole 3D crops (B, 1, n, n, n): a score map at 1/8 resolution, each score
    seeing a 54-voxel patch. The slice critics cannot see how pores connect in 3D (a slice of a
    tree-like pore space looks like a slice of a looped one); this one can."""

    def __init__(self, width: int = 16):
        super().__init__()
        self.width = width
        self.net = _patch_critic(nn.Conv3d, 1, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x * 2 - 1)


class LatentDiscriminator(nn.Module):
    """D(z) on texture codes: aggregated q(z) = E(data) vs the prior N(0, I)."""

    def __init__(self, code_channels: int = 8, width: int = 64):
        super().__init__()
        self.net = nn.Sequential(
            spectral_norm(nn.Linear(code_channels, width)), nn.LeakyReLU(0.2, inplace=True),
            spectral_norm(nn.Linear(width, width)), nn.LeakyReLU(0.2, inplace=True),
            spectral_norm(nn.Linear(width, 1)),
        )

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        return self.net(code)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
