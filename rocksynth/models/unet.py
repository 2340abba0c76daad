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


def _copy_into(new: nn.Module, old: nn.Module, in_index: "list[int]", out_index: "list[int]") -> None:
    """Copy a (transposed) convolution or batch norm into the given channels of a wider one. The
    old outputs get zero weight from the added inputs, so they compute what they did."""
    if isinstance(new, nn.BatchNorm2d):
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(new, name)[out_index] = getattr(old, name)
        new.num_batches_tracked.copy_(old.num_batches_tracked)
        return
    transposed = isinstance(new, nn.ConvTranspose2d)  # its weight is (in, out, ...), not (out, in, ...)
    weight, old_weight = (new.weight.transpose(0, 1), old.weight.transpose(0, 1)) if transposed else (new.weight, old.weight)
    weight[out_index] = 0
    weight[torch.tensor(out_index)[:, None], torch.tensor(in_index)[None, :]] = old_weight
    if new.bias is not None:
        new.bias[out_index] = old.bias


def _copy_block(new: nn.Sequential, old: nn.Sequential, in_index, out_index) -> None:
    """Convolution + batch norm (+ ReLU) into a wider one."""
    _copy_into(new[0], old[0], in_index, out_index)
    _copy_into(new[1], old[1], out_index, out_index)


def widened(old: UNet, widths: "tuple[int, ...]") -> UNet:
    """A U-Net with at least `old`'s channels per level that computes exactly what `old` does: the
    old weights sit in the first channels, the added channels get random incoming and zero outgoing
    weights, so training grows them from `old`'s output rather than from scratch (Net2Net-style)."""
    old_widths = old.config["widths"]
    if len(widths) != len(old_widths) or any(w < o for w, o in zip(widths, old_widths)):
        raise ValueError(f"cannot widen a U-Net of widths {old_widths} to {list(widths)}")
    new = UNet(widths, in_channels=old.config["in_channels"])
    first = [list(range(w)) for w in old_widths]  # where the old channels of each level sit
    with torch.no_grad():
        _copy_block(new.stem[0], old.stem[0], list(range(old.config["in_channels"])), first[0])
        _copy_block(new.stem[1], old.stem[1], first[0], first[0])
        for level, (down_new, down_old) in enumerate(zip(new.downs, old.downs)):
            _copy_block(down_new[0], down_old[0], first[level], first[level + 1])
            _copy_block(down_new[1], down_old[1], first[level + 1], first[level + 1])
        for up_new, up_old, level in zip(new.ups, old.ups, reversed(range(len(widths) - 1))):
            _copy_block(up_new.up, up_old.up, first[level + 1], first[level])
            # fuse's input is cat(upsampled, skip): the skip's old channels start after the new width.
            fused = first[level] + [widths[level] + c for c in first[level]]
            _copy_block(up_new.fuse[0], up_old.fuse[0], fused, first[level])
            _copy_block(up_new.fuse[1], up_old.fuse[1], first[level], first[level])
        _copy_into(new.head, old.head, first[0], [0])
    return new
