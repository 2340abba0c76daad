"""U-Net for cleaning scanned drawings (Ronneberger et al. 2015; cleaning stage of Egiazarian et al. 2020).

Encoder: per level two 3x3 convolutions with batch norm + ReLU, then a stride-2 convolution down.
Decoder: a stride-2 transposed convolution up (batch norm + ReLU), concatenation with the encoder's
skip features, two 3x3 convolutions. The head gives one logit per pixel (ink probability after a
sigmoid). Inputs are gray scans in [0, 1], shape (n, 1, h, w) with h and w multiples of `multiple`.
"""

import torch
from torch import nn


def _conv_bn_relu(c_in: int, c_out: int, kernel: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class _Up(nn.Module):
    def __init__(self, c_in: int, c_skip: int, c_out: int):
        super().__init__()
        self.up = nn.Sequential(nn.ConvTranspose2d(c_in, c_out, 2, stride=2, bias=False),
                                nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))
        self.fuse = nn.Sequential(_conv_bn_relu(c_out + c_skip, c_out), _conv_bn_relu(c_out, c_out))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.fuse(torch.cat([self.up(x), skip], dim=1))


class UNet(nn.Module):
    """`widths[i]` channels at 1/2**i resolution; len(widths) - 1 down/up-samplings."""

    def __init__(self, widths: "tuple[int, ...]" = (12, 24, 48, 64, 96), in_channels: int = 1):
        super().__init__()
        widths = tuple(int(w) for w in widths)
        self.config = {"widths": list(widths), "in_channels": in_channels}
        self.stem = nn.Sequential(_conv_bn_relu(in_channels, widths[0]), _conv_bn_relu(widths[0], widths[0]))
        self.downs = nn.ModuleList(
            nn.Sequential(_conv_bn_relu(widths[i], widths[i + 1], stride=2), _conv_bn_relu(widths[i + 1], widths[i + 1]))
            for i in range(len(widths) - 1))
        self.ups = nn.ModuleList(_Up(widths[i + 1], widths[i], widths[i]) for i in reversed(range(len(widths) - 1)))
        self.head = nn.Conv2d(widths[0], 1, 1)

    @property
    def multiple(self) -> int:
        """Input height and width must be multiples of this."""
        return 2 ** len(self.downs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Gray scan (n, 1, h, w) in [0, 1] -> ink logits (n, 1, h, w)."""
        x = self.stem(x - 0.5)
        skips = [x]
        for down in self.downs:
            x = down(x)
            skips.append(x)
        skips.pop()
        for up in self.ups:
            x = up(x, skips.pop())
        return self.head(x)
