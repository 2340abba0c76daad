"""A deterministic next-frame predictor: the last frame plus a predicted change.

Fully convolutional (any frame size, a multiple of 4 after padding), so a clip is predicted at
its own resolution. Predicting the change over the last frame means an untrained or unsure
network falls back to repeating the last frame rather than drawing something else. With
``warp``, the network also predicts where each pixel comes from (a flow field) and moves the last
frame's pixels there before adding the change: a moved object keeps its edges instead of being
redrawn, blurred, by the change alone. At inference the change can be scaled by a gain fitted
on the clip's own context (`context_gain`), which takes the prediction towards the last frame
where the network mispredicts the frames it was given.
"""

import torch
from torch import nn
from torch.nn import functional as F


class _Residual(nn.Module):
    """Two 3x3 convolutions with a skip; `dilation` widens the reach at the coarsest scale."""

    def __init__(self, width: int, dilation: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=dilation, dilation=dilation)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)

    def forward(self, x):
        return x + self.conv2(F.gelu(self.conv1(F.gelu(x))))


class FramePredictor(nn.Module):
    """Next frame from the last `context` frames, (B, context, C, H, W) in [0, 1] -> (B, C, H, W).

    Parameters
    ----------
    channels : int
        Colour channels of the frames (1 gray, 3 RGB).
    context : int
        Frames the network reads (the last ones of the clip).
    widths : tuple of int
        Channels at full, 1/2 and 1/4 resolution.
    blocks : int
        Residual blocks at 1/4 resolution (dilations 1, 2, 4, 1, 2, 4, ...).
    warp : bool
        Also predict a flow field (pixels) and sample the last frame along it before adding the
        change. Its head starts at zero (no motion), so a network widened from one without it
        (`rocksynth.training.checkpoint.load_widened`) predicts what that one did.
    """

    def __init__(self, channels: int = 3, context: int = 4, widths=(32, 64, 96), blocks: int = 4,
                 warp: bool = False):
        super().__init__()
        self.channels, self.context = int(channels), int(context)
        self.widths, self.blocks, self.warp = tuple(int(w) for w in widths), int(blocks), bool(warp)
        w0, w1, w2 = self.widths
        # Frames and their differences to the last one: motion is in the differences.
        self.stem = nn.Conv2d(2 * context * channels, w0, 3, padding=1)
        self.down1 = nn.Conv2d(w0, w1, 4, stride=2, padding=1)
        self.down2 = nn.Conv2d(w1, w2, 4, stride=2, padding=1)
        self.middle = nn.Sequential(*[_Residual(w2, dilation=2 ** (i % 3)) for i in range(blocks)])
        self.up2 = nn.Conv2d(w2 + w1, w1, 3, padding=1)
        self.up1 = nn.Conv2d(w1 + w0, w0, 3, padding=1)
        self.head = nn.Conv2d(w0, channels, 3, padding=1)
        nn.init.zeros_(self.head.weight)  # starts as "repeat the last frame"
        nn.init.zeros_(self.head.bias)
        if self.warp:
            self.flow = nn.Conv2d(w0, 2, 3, padding=1)  # (dx, dy): where each pixel comes from
            nn.init.zeros_(self.flow.weight)
            nn.init.zeros_(self.flow.bias)

    @property
    def config(self) -> dict:
        config = {"channels": self.channels, "context": self.context, "widths": list(self.widths),
                  "blocks": self.blocks}
        return dict(config, warp=True) if self.warp else config

    def forward(self, frames: torch.Tensor, with_flow: bool = False):
        """The next frame (B, C, H, W); with `with_flow`, also the flow it sampled the last frame
        along (B, 2, H, W; x then y, pixels), None without a flow head."""
        b, t, c, h, w = frames.shape
        if t < self.context:  # a short clip: repeat its first frame in front
            frames = torch.cat([frames[:, :1].expand(b, self.context - t, c, h, w), frames], 1)
        frames = frames[:, -self.context:]
        last = frames[:, -1]
        pad_h, pad_w = (-h) % 4, (-w) % 4
        x = torch.cat([frames - 0.5, frames - last[:, None]], 1).reshape(b, -1, h, w)
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        s0 = F.gelu(self.stem(x))
        s1 = F.gelu(self.down1(s0))
        y = self.middle(F.gelu(self.down2(s1)))
        y = F.gelu(self.up2(torch.cat([F.interpolate(y, scale_factor=2.0, mode="nearest"), s1], 1)))
        y = F.gelu(self.up1(torch.cat([F.interpolate(y, scale_factor=2.0, mode="nearest"), s0], 1)))
        change = self.head(y)[..., :h, :w]
        flow = None
        if self.warp:
            flow = self.flow(y)[..., :h, :w].float()
            last = sample_along(last, flow)
        nxt = (last + change).clamp(0, 1)
        return (nxt, flow) if with_flow else nxt

    def rollout(self, context: torch.Tensor, n_frames: int, gain: "torch.Tensor | None" = None,
                with_flows: bool = False):
        """Predict `n_frames` one by one, each from the frames before it: (B, n_frames, C, H, W).

        `gain` (B,) scales each clip's predicted change over its last frame (`context_gain`):
        1 is the network as is, 0 repeats the last frame. None: the network as is. With
        `with_flows` (a network with a flow head), also each step's flow (B, n_frames, 2, H, W)."""
        if with_flows and not self.warp:
            raise ValueError("with_flows needs a predictor with a flow head (warp)")
        frames, out, flows = context, [], []
        scale = None if gain is None else gain.to(context.dtype).view(-1, 1, 1, 1)
        for _ in range(n_frames):
            if with_flows:
                nxt, flow = self(frames, with_flow=True)
                flows.append(flow)
            else:
                nxt = self(frames)
            if scale is not None:  # a convex combination of two frames in [0, 1] stays in [0, 1]
                last = frames[:, -1]
                nxt = last + scale * (nxt - last)
            out.append(nxt)
            frames = torch.cat([frames[:, -(self.context - 1):], nxt[:, None]], 1) if self.context > 1 else nxt[:, None]
        return (torch.stack(out, 1), torch.stack(flows, 1)) if with_flows else torch.stack(out, 1)

    @torch.no_grad()
    def context_gain(self, context: torch.Tensor) -> torch.Tensor:
        """How far to trust the network on this clip, from the clip itself: (B,) in [0, 1].

        The last context frame is predicted from the frames before it, and the gain is the
        least-squares factor g that makes ``last + g * change`` closest to the true frame (over
        all pixels and channels), clipped to [0, 1]. On motion the network knows g is about 1; on
        motion it gets wrong (a real scene unlike its training clips) g falls towards 0, and the
        prediction towards repeating the last frame. A clip of at most `context` frames has
        nothing to test on: its gain is 1."""
        ones = torch.ones(context.shape[0], device=context.device)
        if context.shape[1] <= self.context:
            return ones
        before = context[:, -2].float()
        change = (self(context[:, :-1]).float() - before).flatten(1)
        wanted = (context[:, -1].float() - before).flatten(1)
        power = (change * change).sum(1)
        gain = (change * wanted).sum(1) / power.clamp(min=1e-12)
        return torch.where(power > 0, gain, ones).clamp(0, 1)  # no predicted change: nothing to scale


def sample_along(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """`image` (B, C, H, W) sampled at each pixel plus `flow` (B, 2, H, W; x then y, in pixels),
    bilinearly; outside the frame the nearest edge pixel. A zero flow returns `image` (to float rounding)."""
    b, _, h, w = image.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=flow.dtype, device=flow.device),
                            torch.arange(w, dtype=flow.dtype, device=flow.device), indexing="ij")
    x = (xs + flow[:, 0]) * (2 / max(w - 1, 1)) - 1  # grid_sample's [-1, 1], corners on pixel centres
    y = (ys + flow[:, 1]) * (2 / max(h - 1, 1)) - 1
    grid = torch.stack([x, y], -1)
    return F.grid_sample(image.to(flow.dtype), grid, mode="bilinear", padding_mode="border",
                         align_corners=True).to(image.dtype)


def from_checkpoint(payload: dict) -> FramePredictor:
    """The predictor stored in a checkpoint dict (config and state), in eval mode."""
    model = FramePredictor(**payload["config"]["predictor"])
    model.load_state_dict(payload["state"]["predictor"])
    return model.eval()
