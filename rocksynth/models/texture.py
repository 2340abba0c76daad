"""Multi-texture GAN after Alanov, Kochurov, Volkhonskiy et al. (VISAPP 2020), sized for a CPU.

- `TextureGenerator` G(z): fully convolutional, from a latent grid at 1/8 resolution to a volume.
  The latent has `code_channels` texture-code channels (which texture; smooth in space) and
  `noise_channels` of i.i.d. N(0, 1) noise per cell (which realisation). Two voxel-shuffle
  (sub-voxel convolution) stages take it to 1/2 resolution; the output layer is a 3x3x3
  convolution at 1/2 resolution making (a) a base logit, upsampled trilinearly, and (b) the 8
  sub-voxel residuals of each 2x2x2 output block (voxel shuffle). Features are pixel-normalised. Nothing but this interpolation
  and a reshape runs at full resolution (a full-resolution 3x3x3 convolution costed more than the
  rest of the network together on the CPU); the smooth base keeps the output from the 2x2x2
  checkerboard a pure sub-voxel output fell into in a first training run.
- Padding is explicit. `pad="circular"` (training) wraps each feature map, so a latent of L cells
  gives 8L voxels of a periodic volume and no voxel ever sees an artificial border;
  `pad="valid"` (inference) pads nothing: L cells give 8L - 2*MARGIN_VOXELS voxels, and voxel j
  of the result only depends on latent cells whose region lies within MARGIN_VOXELS of it. Valid
  decoding is shift-equivariant by whole cells, so tiles of the latent grid decode to the
  corresponding tiles of the volume (see rocksynth.pipelines.synthesize).
- `TextureEncoder` E(x): strided 3D convolutions and a global average, a volume of any size
  (>= 16 voxels a side) -> its texture code.
- Discriminators (spectral norm, hinge loss): `SliceDiscriminator` (generator matching on 2D
  slices normal to the three axes, patch-wise), `PairDiscriminator` (pair matching: two slices
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
    voxel 2i, 2i+1 of the full upsampling for i in 1..n-2, so it is exact for any tile."""
    for axis in (2, 3, 4):
        n = x.shape[axis]
        left, centre, right = x.narrow(axis, 0, n - 2), x.narrow(axis, 1, n - 2), x.narrow(axis, 2, n - 2)
        even = 0.25 * left + 0.75 * centre
        odd = 0.75 * centre + 0.25 * right
        x = torch.stack([even, odd], dim=axis + 1).flatten(axis, axis + 1)
    return x


def pixel_norm(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Each voxel's feature vector scaled to unit mean square (Karras et al. 2018). Unlike
    BatchNorm it looks at one voxel only, so it keeps the decode exact under any tiling, and it
    keeps the feature scale from shrinking layer after layer (a first run without it produced a
    nearly constant volume that the critics then drove to all-solid)."""
    return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + eps)


class TextureGenerator(nn.Module):
    def __init__(self, code_channels: int = 8, noise_channels: int = 8, widths=(48, 32, 16)):
        super().__init__()
        self.code_channels, self.noise_channels = code_channels, noise_channels
        self.widths = tuple(widths)
        w0, w1, w2 = self.widths
        z = code_channels + noise_channels
        act = nn.LeakyReLU(0.2, inplace=True)
        self.act = act
        # Each 3x3x3 convolution is valid (no padding); `_pad` adds the circular border in training.
        self.c0a = nn.Conv3d(z, w0, 3)
        self.c0b = nn.Conv3d(w0, w0, 3)
        self.up1 = nn.Conv3d(w0, w1 * 8, 1)
        self.c1 = nn.Conv3d(w1, w1, 3)
        self.up2 = nn.Conv3d(w1, w2 * 8, 1)
        self.c2 = nn.Conv3d(w2, w2, 3)
        self.out = nn.Conv3d(w2, 1 + 8, 3)  # base logit + 8 sub-voxel residuals
        with torch.no_grad():  # start from the smooth base; residual detail is learned
            self.out.weight[1:].mul_(0.1)
            self.out.bias[1:].zero_()

    # Valid decoding loses one cell per side at each 3x3x3 convolution, and the trilinear
    # interpolation one more half-resolution cell; in output voxels: two convolutions at 1/8
    # scale (2 * 8), one at 1/4 (4), two at 1/2 (2 * 2), the interpolation (2).
    MARGIN_VOXELS = 2 * 8 + 4 + 2 * 2 + 2  # 26

    @property
    def in_channels(self) -> int:
        return self.code_channels + self.noise_channels

    @staticmethod
    def _conv(conv: nn.Conv3d, x: torch.Tensor, pad: str) -> torch.Tensor:
        if pad == "circular":
            x = F.pad(x, (1,) * 6, mode="circular")
        return conv(x)

    def forward(self, z: torch.Tensor, pad: str = "circular") -> torch.Tensor:
        """Logits (B, 1, D, H, W); sigmoid gives the pore probability."""
        if pad not in ("circular", "valid"):
            raise ValueError(f"pad must be 'circular' or 'valid', got {pad!r}")
        def a(t):
            return pixel_norm(self.act(t))

        x = a(self._conv(self.c0a, z, pad))
        x = a(self._conv(self.c0b, x, pad))
        x = a(voxel_shuffle(self.up1(x)))
        x = a(self._conv(self.c1, x, pad))
        x = a(voxel_shuffle(self.up2(x)))
        x = a(self._conv(self.c2, x, pad))
        x = self._conv(self.out, x, pad)
        base, residual = x[:, :1], voxel_shuffle(x[:, 1:])
        if pad == "circular":
            return upsample2_valid(F.pad(base, (1,) * 6, mode="circular")) + residual
        return upsample2_valid(base) + residual[:, :, 2:-2, 2:-2, 2:-2]

    def latent_cells_for(self, voxels: int) -> int:
        """Latent cells along an axis whose valid decoding covers `voxels` voxels."""
        return -(-(voxels + 2 * self.MARGIN_VOXELS) // SCALE)


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


def _sn_conv2d(c_in, c_out, k, stride=1, padding=0):
    return spectral_norm(nn.Conv2d(c_in, c_out, k, stride=stride, padding=padding))


class SliceDiscriminator(nn.Module):
    """Patch critic on 2D slices (B, in_channels, n, n): a score map, one per ~22-pixel patch."""

    def __init__(self, in_channels: int = 1, width: int = 32):
        super().__init__()
        w = width
        self.net = nn.Sequential(
            _sn_conv2d(in_channels, w, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True),
            _sn_conv2d(w, 2 * w, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True),
            _sn_conv2d(2 * w, 4 * w, 3, 1, 1), nn.LeakyReLU(0.2, inplace=True),
            _sn_conv2d(4 * w, 1, 3, 1, 1),
        )

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
