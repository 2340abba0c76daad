"""Multi-texture GAN after Alanov, Kochurov, Volkhonskiy et al. (VISAPP 2020), sized for a CPU.

- `TextureGenerator` G(z): fully convolutional, from a latent grid at 1/8 resolution to a volume.
  The latent has `code_channels` texture-code channels (which texture; smooth in space) and
  noise channels (which realisation): N(0, 1) per cell, plus the values of finer noise maps at
  1/4 and 1/2 resolution (8 and 64 per cell, unshuffled into the cell), concatenated to the
  features at those scales, so that all randomness lives in the latent grid. Each stage is
  trilinear x2 upsampling + a 3x3x3 convolution (resize-convolution: no position-dependent
  filters); the output convolution runs at 1/2 resolution and its logit is upsampled
  trilinearly, so nothing but an interpolation runs at full resolution (a full-resolution 3x3x3
  convolution costed more than the rest of the network together on the CPU). A first design
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
    """G(z): a latent grid at 1/8 resolution -> pore logits (see the module docstring).

    Parameters
    ----------
    code_channels : int
        Texture-code channels of a latent cell.
    noise_channels : int
        Per-cell noise channels.
    widths : tuple of int
        Channels at 1/8, 1/4 and 1/2 resolution.
    fine_noise : tuple of int
        Noise maps concatenated at 1/4 and at 1/2 resolution.
    """

    def __init__(self, code_channels: int = 8, noise_channels: int = 8, widths: "tuple[int, int, int]" = (48, 32, 16),
                 fine_noise: "tuple[int, int]" = (2, 1)):
        super().__init__()
        if len(fine_noise) != 2:
            raise ValueError(f"fine_noise takes two numbers (maps at 1/4 and 1/2 resolution), got {list(fine_noise)}")
        self.code_channels, self.cell_noise = code_channels, noise_channels
        self.widths, self.fine_noise = tuple(widths), tuple(fine_noise)
        w0, w1, w2 = self.widths
        n1, n2 = self.fine_noise
        self.act = nn.LeakyReLU(0.2, inplace=True)
        # Each 3x3x3 convolution is valid (no padding); `_pad` adds the circular border in training.
        self.c0a = nn.Conv3d(code_channels + noise_channels, w0, 3)
        self.c0b = nn.Conv3d(w0, w0, 3)
        self.c1 = nn.Conv3d(w0 + n1, w1, 3)
        self.c2 = nn.Conv3d(w1 + n2, w2, 3)
        self.out = nn.Conv3d(w2, 1, 3)

    @property
    def margin_voxels(self) -> int:
        """Voxels per side that valid decoding trims: one cell per side at each 3x3x3 convolution
        and each trilinear upsampling; in output voxels: convolutions 2 * 8 (1/8) + 4 (1/4)
        + 2 * 2 (1/2), upsamplings 8 (from 1/8) + 4 (from 1/4) + 2 (from 1/2): 38."""
        return 2 * 8 + 4 + 2 * 2 + 8 + 4 + 2

    @property
    def noise_channels(self) -> int:
        """Noise channels of a latent cell: per-cell noise, then the 8 (1/4) and 64 (1/2) values
        per cell of the finer noise maps, so all randomness lives in the latent grid."""
        n1, n2 = self.fine_noise
        return self.cell_noise + 8 * n1 + 64 * n2

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

    def forward(self, z: torch.Tensor, pad: str = "circular") -> torch.Tensor:
        """Logits (B, 1, D, H, W); sigmoid gives the pore probability."""
        if pad not in ("circular", "valid"):
            raise ValueError(f"pad must be 'circular' or 'valid', got {pad!r}")
        n1, n2 = self.fine_noise
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
        x = self._with_noise(self._up(x, pad), noise2)
        x = a(self._conv(self.c2, x, pad))
        return self._up(self._conv(self.out, x, pad), pad)

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
