"""Slice-to-volume GAN networks (after Volkhonskiy et al., Phys. Rev. E 2022).

An encoder E turns a 2D slice into feature maps at full, 1/2 and 1/4 resolution (it keeps the
slice's spatial grid, so the model is fully convolutional in the slice plane). The generator G
"lifts" those maps along depth: at 1/4 resolution the slice features, damped with the distance
from the central slice (to exactly zero beyond a few correlation lengths), sit next to per-voxel
noise and a code of that distance; 3D convolutions mix them; voxel-shuffle steps (sub-voxel
convolution) go to 1/2 and full resolution, where the encoder's finer maps are injected, damped
the same way. Far from the slice the generator sees only noise: an unconditional texture. Only a few
channels live at full resolution, which keeps an iteration on a CPU cheap.

Discriminators: a 3D patch discriminator on volumes and a 2D patch discriminator on slices
(taken along every axis); both use spectral norm and no normalisation layers.

Volumes are (batch, 1, depth, height, width) with values in [0, 1] (probability of pore);
the input slice sits at depth index `centre` (default depth // 2, where inference puts it; training
puts it at random depths, issue #25).

The volume's ends are hidden from the network: the generator works on `halo_cells()` extra cells
of noise past both ends and drops them, so no output voxel's receptive field meets a z-boundary
and the replicate padding along z never acts (a network that saw the ends learned "near an end"
instead of "far from the slice": docs/notes/2026-12-06-reconstruct-banding.md).
"""

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

# Height, width and depth are padded to a multiple of this (two 2x resolution steps).
GRID = 4

def _act() -> nn.Module:
    return nn.LeakyReLU(0.2, inplace=True)

def _conv2d(cin: int, cout: int, kernel: int = 3, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel, stride=stride, padding=(kernel - 1) // 2 if stride == 1 else 1,
                     padding_mode="replicate")

def _conv3d(cin: int, cout: int, kernel: int = 3) -> nn.Conv3d:
    return nn.Conv3d(cin, cout, kernel, padding=kernel // 2, padding_mode="replicate")

def _replicate_conv(conv: nn.Conv3d, x: torch.Tensor, weight: "torch.Tensor | None" = None) -> torch.Tensor:
    """`conv` (3x3x3, replicate padding) of `x`, optionally with only some of its input weights.

    Without gradients on the CPU, the padded input is laid out channels-last: for the few channels
    of the finer stages oneDNN's channels-last kernels are about twice as fast and give the same
    numbers (tests/test_reconstruct_depth.py). Training keeps the default layout."""
    x = F.pad(x, (1, 1, 1, 1, 1, 1), mode="replicate")
    if x.device.type == "cpu" and not torch.is_grad_enabled():
        x = x.contiguous(memory_format=torch.channels_last_3d)
    return F.conv3d(x, conv.weight if weight is None else weight, conv.bias)


def voxel_shuffle(x: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """(B, C*f^3, D, H, W) -> (B, C, D*f, H*f, W*f): 3D analogue of pixel shuffle."""
    b, c, d, h, w = x.shape
    out = c // factor ** 3
    x = x.view(b, out, factor, factor, factor, d, h, w)
    x = x.permute(0, 1, 5, 2, 6, 3, 7, 4).contiguous()
    return x.view(b, out, d * factor, h * factor, w * factor)

def depth_code(depth: int, centre: float, scale: float, lengths, device=None) -> torch.Tensor:
    """(len(lengths), depth) channels (1 - |z - centre| / L)^2, zero beyond L voxels, for cells of
    `scale` voxels.

    Cell k covers voxels [k*scale, (k+1)*scale); its distance to the central voxel is measured
    at the cell's centre, in voxels, so codes agree between resolutions and any output depth.
    The support is compact on purpose: beyond the longest L (plus the receptive field) every
    depth sees exactly the same inputs (noise only), so the far field is one stationary texture
    that training crops of modest depth cover completely; a long exponential tail instead let
    deep volumes reach input values no training crop had shown (they came out solid).
    """
    z = torch.arange(depth, dtype=torch.float32, device=device) * scale + (scale - 1) / 2.0
    distance = (z - centre).abs()
    return torch.stack([torch.clamp(1 - distance / length, min=0) ** 2 for length in lengths])


def far_field_distance(model: "Slice2Vol") -> int:
    """Voxels from the central slice beyond which the output no longer depends on it: the
    longest code support plus the generator's receptive field along depth."""
    g = model.generator
    longest = max(max(g.codes2, default=0), max(g.decays2), max(g.decays1), max(g.decays0))
    return int(longest + model.halo_cells() * GRID)

class SliceEncoder(nn.Module):
    """2D slice (B, 1, H, W) in [0, 1] -> feature maps at full, 1/2 and 1/4 resolution."""

    def __init__(self, channels=(4, 16, 32)):
        super().__init__()
        c0, c1, c2 = channels
        self.at_full = nn.Sequential(_conv2d(1, c0), _act(), _conv2d(c0, c0), _act())
        self.at_half = nn.Sequential(_conv2d(c0, c1, 4, 2), _act(), _conv2d(c1, c1), _act())
        self.at_quarter = nn.Sequential(_conv2d(c1, c2, 4, 2), _act(), _conv2d(c2, c2), _act(), _conv2d(c2, c2), _act())

    def forward(self, slice_: torch.Tensor):
        f0 = self.at_full(slice_ * 2 - 1)
        f1 = self.at_half(f0)
        f2 = self.at_quarter(f1)
        return f0, f1, f2

class VolumeGenerator(nn.Module):
    """Encoder features + noise -> volume (B, 1, D, H, W) of pore logits."""

    def __init__(self, enc_channels=(4, 16, 32), channels=(4, 16, 32), noise_channels=(8, 2),
                 quarter_blocks=3, slice_porosity=True, global_channels=0, depth_code=True):
        super().__init__()
        e0, e1, e2 = enc_channels
        # The slice's porosity, as one channel over the whole volume: the only thing the far field
        # learns about the slice, so a porous slice gives a porous volume (real 64^3 cubes vary in
        # porosity with their central slice, more than small-scale noise can make them vary).
        self.slice_porosity = bool(slice_porosity)
        # A code of the whole slice (its mean coarse features: which rock, what grain size), as
        # channels over the whole volume. Without it the far field, where the damped slice
        # features are gone, is one texture for every rock of the training set: the shipped
        # two-rock model drifted from Ketton's porosity 0.13 at the slice to 0.20 at 24 voxels.
        self.global_code = nn.Linear(e2, global_channels) if global_channels else None
        g0, g1, g2 = channels
        n2, n1 = noise_channels
        self.noise_channels = (n2, n1)
        # Supports (voxels from the central slice) of the depth code and of the damped slice
        # features at each resolution. The slice reaches at most ~16 voxels plus the receptive
        # field (`far_field_distance`), about the correlation length of sandstones and carbonates
        # at micro-CT resolution; training crops twice as deep as wide show that whole range.
        # The depth code (one value per depth across the whole plane) is kept only for checkpoints
        # trained with it (the shipped ones: the trained network ignores it, porosity moves by at
        # most 0.003 without it); new models are built without it (`depth_code=False`).
        self.codes2 = (4.0, 8.0, 16.0) if depth_code else ()
        self.decays2 = (8.0, 16.0)       # slice features at 1/4 resolution
        self.decays1 = (4.0, 8.0)        # ... injected at 1/2
        self.decays0 = (2.0, 4.0)        # ... and at full resolution
        layers = [_conv3d(e2 * len(self.decays2) + n2 + len(self.codes2) + self.slice_porosity + global_channels, g2),
                  _act()]
        for _ in range(quarter_blocks - 1):
            layers += [_conv3d(g2, g2), _act()]
        self.at_quarter = nn.Sequential(*layers)
        self.up1 = nn.Conv3d(g2, g1 * 8, 1)
        self.at_half = nn.Sequential(nn.Conv3d(g1 + e1 * len(self.decays1) + n1, g1, 1), _act(),
                                  _conv3d(g1, g1), _act())
        self.up0 = nn.Conv3d(g1, g0 * 8, 1)
        # The raw slice itself is injected at full resolution so the centre can copy it exactly.
        self.at_full = nn.Sequential(_conv3d(g0 + (e0 + 1) * len(self.decays0), g0), _act(), _conv3d(g0, 1))

    def noise_shapes(self, depth: int, height: int, width: int):
        """Shapes (without batch) of the two noise tensors for a padded output size."""
        n2, n1 = self.noise_channels
        q = (depth // GRID, height // GRID, width // GRID)
        h = (depth // 2, height // 2, width // 2)
        return (n2,) + q, (n1,) + h

    @staticmethod
    def _lift(features: torch.Tensor, depth: int, decays: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) x (K, D) -> (B, C*K, D, H, W): features damped by distance from centre."""
        b, c, h, w = features.shape
        k = decays.shape[0]
        lifted = features[:, :, None, None] * decays[None, None, :, :, None, None]
        return lifted.reshape(b, c * k, depth, h, w)

    def forward(self, slice_: torch.Tensor, feats, noise2: torch.Tensor, noise1: torch.Tensor,
                centre: float, z0: int = 0, keep: "tuple[int, int] | None" = None,
                fine_cells: "int | None" = None) -> torch.Tensor:
        """Generate a depth window of the volume.

        `noise2` is (B, n2, d4, H/4, W/4) and `noise1` (B, n1, 2*d4, H/2, W/2): the noise of the
        window of d4 quarter-resolution cells starting at cell `z0` of the full volume, whose
        central slice is voxel `centre`. `keep` = (first, end) cells to return (default: all).
        Cells within `halo_cells()` of a window edge that is not the volume's edge are inexact, so
        slab-by-slab generation asks for windows wider than what it keeps. `fine_cells`: the finer
        stages run that many cells at a time (default: all kept cells at once).
        """
        f0, f1, f2 = feats
        b, _, d4, h4, w4 = noise2.shape
        device = noise2.device
        first, end = keep if keep is not None else (z0, z0 + d4)
        inputs = [self._lift(f2, d4, depth_code(d4, centre - z0 * GRID, GRID, self.decays2, device)), noise2]
        if self.codes2:
            code2 = depth_code(d4, centre - z0 * GRID, GRID, self.codes2, device)
            inputs.append(code2[None, :, :, None, None].expand(b, -1, -1, h4, w4))
        if self.slice_porosity:
            # Centred and scaled so typical rock porosities (0.1-0.3) give values of order one.
            phi = (slice_.mean((1, 2, 3)) - 0.2) * 10
            inputs.append(phi[:, None, None, None, None].expand(b, 1, d4, h4, w4))
        if self.global_code is not None:
            code = self.global_code(f2.mean((2, 3)))  # f2 covers the whole slice, also slab by slab
            inputs.append(code[:, :, None, None, None].expand(-1, -1, d4, h4, w4))
        x = self.at_quarter(torch.cat(inputs, 1))
        # The finer stages hold most of the memory and need only one cell of margin around what
        # they keep: they run `fine_cells` cells at a time, so a deep window (whose quarter
        # resolution halo is paid once) stays bounded in memory. The same voxels either way.
        step = fine_cells or end - first
        parts = [self._fine(x, slice_, f0, f1, noise1, centre, z0, a, min(a + step, end))
                 for a in range(first, end, step)]
        return parts[0] if len(parts) == 1 else torch.cat(parts, 2)

    def _fine(self, x: torch.Tensor, slice_: torch.Tensor, f0, f1, noise1: torch.Tensor, centre: float, z0: int,
              first: int, end: int) -> torch.Tensor:
        """The half- and full-resolution stages of cells [first, end) of a window of
        quarter-resolution features `x` that starts at cell `z0`: the logits of those cells."""
        device = x.device
        lo, hi = max(first - 1, z0), min(end + 1, z0 + x.shape[2])
        x = x[:, :, lo - z0:hi - z0]
        offset = lo * GRID
        x = voxel_shuffle(self.up1(x))
        d2 = x.shape[2]
        noise1 = noise1[:, :, 2 * (lo - z0):2 * (hi - z0)]
        x = torch.cat([x, self._lift(f1, d2, depth_code(d2, centre - offset, 2, self.decays1, device)), noise1], 1)
        x = self.at_half[1](self.at_half[0](x))
        x = self.at_half[3](_replicate_conv(self.at_half[2], x))
        x = voxel_shuffle(self.up0(x))
        d0 = x.shape[2]
        skip0 = torch.cat([f0, slice_ * 2 - 1], 1)
        # The decays on the CPU: whether the window is in the far field is known without a device sync.
        x = self._full_res_conv(x, skip0, depth_code(d0, centre - offset, 1, self.decays0))
        x = _replicate_conv(self.at_full[2], self.at_full[1](x))  # logits of pore
        return x[:, :, (first - lo) * GRID:(end - lo) * GRID]

    def _full_res_conv(self, x: torch.Tensor, skip: torch.Tensor, decays: torch.Tensor) -> torch.Tensor:
        """`at_full[0]` applied to ``cat([x, _lift(skip, D, decays)])`` without building the lifted
        tensor, the same function to float rounding.

        The lifted channels are a plane (B, C, H, W) times one weight per depth (K, D), so their 3D
        convolution separates: a 2D convolution of the plane for each (k, dz) of the kernel, then a
        sum over (k, dz) weighted by the decay at z + dz. With replicate padding on both sides,
        padding the lifted tensor is padding the plane and the decays. At full resolution this is
        the most expensive layer of the generator, and most of its input channels are lifted ones.
        """
        conv = self.at_full[0]
        g = x.shape[1]
        own = _replicate_conv(conv, x, weight=conv.weight[:, :g])
        if not bool(decays.any()):  # the far field: the lifted channels are zero, so is their part
            return own
        decays = decays.to(x.device)
        b, c, h, w = skip.shape
        k, depth = decays.shape
        plane_weight = conv.weight[:, g:].reshape(conv.out_channels, c, k, 3, 3, 3)  # channel index c * K + k
        plane_weight = plane_weight.permute(0, 2, 3, 1, 4, 5).reshape(-1, c, 3, 3)  # (o, k, dz) x c x 3 x 3
        planes = F.conv2d(F.pad(skip, (1, 1, 1, 1), mode="replicate"), plane_weight)
        planes = planes.view(b, conv.out_channels, k, 3, h, w)
        index = (torch.arange(depth, device=decays.device)[None] + torch.arange(3, device=decays.device)[:, None] - 1)
        weights = decays[:, index.clamp(0, depth - 1)]  # (K, 3, D): the decay at z + dz, replicate-padded
        lifted = torch.einsum("kdz,bokdhw->bozhw", weights.to(planes.dtype), planes)
        return own + lifted


class Slice2Vol(nn.Module):
    """E and G together: slice (B, 1, H, W) -> volume (B, 1, depth, H, W), H, W multiples of 4."""

    def __init__(self, enc_channels=(4, 16, 32), channels=(4, 16, 32), noise_channels=(8, 2), quarter_blocks=3,
                 slice_porosity=True, global_channels=0, depth_code=True):
        super().__init__()
        self.config = {"enc_channels": list(enc_channels), "channels": list(channels),
                       "noise_channels": list(noise_channels), "quarter_blocks": quarter_blocks,
                       "slice_porosity": bool(slice_porosity), "global_channels": int(global_channels),
                       "depth_code": bool(depth_code)}
        self.encoder = SliceEncoder(enc_channels)
        self.generator = VolumeGenerator(enc_channels, channels, noise_channels, quarter_blocks, slice_porosity,
                                         global_channels, depth_code)
        # A voxel is pore where its logit exceeds this; 0 (probability 0.5) unless the checkpoint
        # carries a porosity calibration (`training.reconstruct.calibrate_threshold`).
        self.logit_threshold = 0.0

    def halo_cells(self) -> int:
        """Quarter-resolution cells either side of a kept slab that its values depend on: one per
        3x3x3 conv at 1/4, plus one cell for the finer stages (one conv at 1/2, two at full)."""
        blocks = sum(isinstance(m, nn.Conv3d) and m.kernel_size[0] == 3 for m in self.generator.at_quarter)
        return blocks + 1

    def sample_noise(self, batch: int, depth: int, height: int, width: int, generator=None, device=None,
                     halo: bool = True):
        """The two noise tensors of a `depth`-deep output, with `halo_cells()` quarter-resolution
        cells (and their half-resolution pairs) past each end unless `halo` is False.

        The volume's own cells are drawn first, exactly as before halos existed, and the halo
        cells after them, so a seed gives the same noise inside the volume either way."""
        shape2, shape1 = self.generator.noise_shapes(depth, height, width)
        noise2 = torch.randn((batch,) + shape2, generator=generator, device=device)
        noise1 = torch.randn((batch,) + shape1, generator=generator, device=device)
        if not halo:
            return noise2, noise1
        cells = self.halo_cells()
        extra2, extra1 = self.generator.noise_shapes(2 * cells * GRID, height, width)
        extra2 = torch.randn((batch,) + extra2, generator=generator, device=device)
        extra1 = torch.randn((batch,) + extra1, generator=generator, device=device)
        return (torch.cat([extra2[:, :, :cells], noise2, extra2[:, :, cells:]], 2),
                torch.cat([extra1[:, :, :2 * cells], noise1, extra1[:, :, 2 * cells:]], 2))

    def forward(self, slice_: torch.Tensor, depth: "int | None" = None, noise=None, generator=None,
                logits: bool = False, centre: "int | None" = None):
        """Pore probabilities (or their logits) of a (B, 1, depth, H, W) volume whose voxel `centre`
        (default depth // 2; a multiple of GRID in training, as in `generate_slabs`) is the slice.

        `noise` (default: drawn with `generator`) is `sample_noise(B, depth, H, W)`: it covers
        `halo_cells()` cells past both ends, which are generated and dropped (no end cue)."""
        b, _, h, w = slice_.shape
        depth = h if depth is None else depth
        centre = depth // 2 if centre is None else int(centre)
        if depth % GRID or h % GRID or w % GRID:
            raise ValueError(f"depth, height and width must be multiples of {GRID}")
        if not 0 <= centre < depth:
            raise ValueError(f"the slice position {centre} is outside the depth {depth}")
        if noise is None:
            noise = self.sample_noise(b, depth, h, w, generator, slice_.device)
        halo, cells = self.halo_cells(), depth // GRID
        if noise[0].shape[2] != cells + 2 * halo:
            raise ValueError(f"noise covers {noise[0].shape[2]} cells; a {depth}-deep volume needs {cells} + 2 x "
                             f"{halo} (sample_noise)")
        feats = self.encoder(slice_)
        out = self.generator(slice_, feats, noise[0], noise[1], centre=centre, z0=-halo, keep=(0, cells))
        return out if logits else torch.sigmoid(out)


# torch's CPU `randn` of n >= 16 floats draws n uniforms (one 32-bit output each) in order, turns
# them into normals in blocks of 16 and, when 16 does not divide n, redraws the last 16 values from
# 16 more uniforms. So any block-aligned part of a draw can be drawn alone by a generator advanced
# to it, with the same numbers (`tests/test_generate_audit.py` checks it against `sample_noise`).
_BLOCK = 16
_SKIP = 1 << 22  # values drawn at a time when advancing a generator (16 MB; a whole number of blocks)


def _advance(generator: torch.Generator, count: int) -> None:
    """Move `generator` on by `count` 32-bit outputs: whole blocks as `randn` draws them (faster
    than `rand`), the rest as `rand` of floats (one output each)."""
    blocks = count // _BLOCK * _BLOCK
    while blocks > 0:
        torch.randn(min(blocks, _SKIP), generator=generator)
        blocks -= _SKIP
    if count % _BLOCK:
        torch.rand(count % _BLOCK, generator=generator)


def _copy(generator: torch.Generator) -> torch.Generator:
    copy = torch.Generator()
    copy.set_state(generator.get_state())
    return copy


class _Cursor:
    """One channel of a `_Draw`: its flat values drawn forward on request, a block at a time."""

    def __init__(self, generator: torch.Generator, start: int, size: int):
        self.generator, self.start, self.size = generator, start, size
        # Flat values [start, start + len(buffer)); the end is on a block boundary or the draw's end.
        self.buffer = torch.empty(0)

    def take(self, begin: int, end: int) -> torch.Tensor:
        """Flat values [begin, end) of the draw; `begin` never moves back."""
        if begin < self.start:
            raise ValueError("noise is drawn forward only: a range may not start before the previous one")
        stop = self.start + len(self.buffer)
        last = (self.size - _BLOCK) // _BLOCK * _BLOCK  # values from here on may be the redrawn tail
        if begin > stop:  # skip whole blocks
            skip = min(begin // _BLOCK * _BLOCK, last)
            _advance(self.generator, skip - stop)
            self.start, self.buffer, stop = skip, torch.empty(0), skip
        if end > stop:
            new_stop = -(-end // _BLOCK) * _BLOCK
            new_stop = self.size if new_stop > last else new_stop  # the tail is drawn with the values before it
            self.buffer = torch.cat([self.buffer, torch.randn(new_stop - stop, generator=self.generator)])
        self.buffer = self.buffer[begin - self.start:]  # a view; the next extension copies only what is kept
        self.start = begin
        return self.buffer[:end - begin]


class _Draw:
    """One `torch.randn(shape)` of shape (channels, depth, ...) from `generator`, read a depth range
    at a time, forward within each region (the depths from each of `regions` on); `generator` is
    left where the whole draw would leave it."""

    def __init__(self, shape, generator: torch.Generator, regions=(0,)):
        self.shape, self.regions = tuple(shape), tuple(regions)
        self.plane = 1
        for side in self.shape[2:]:
            self.plane *= side
        size = self.shape[0] * self.shape[1] * self.plane
        self.whole, self.cursors = None, {}
        if size < _BLOCK:  # torch draws these another way; tiny, so drawn whole
            self.whole = torch.randn(self.shape, generator=generator)
            return
        last, position = (size - _BLOCK) // _BLOCK * _BLOCK, 0
        for channel in range(self.shape[0]):
            for region in self.regions:
                start = min((channel * self.shape[1] + region) * self.plane // _BLOCK * _BLOCK, last)
                _advance(generator, start - position)
                position = start
                self.cursors[channel, region] = _Cursor(_copy(generator), start, size)
        _advance(generator, size + (_BLOCK if size % _BLOCK else 0) - position)

    def take(self, lo: int, hi: int) -> torch.Tensor:
        """(channels, hi - lo, ...): depths [lo, hi) of the draw."""
        if self.whole is not None:
            return self.whole[:, lo:hi]
        region = max(r for r in self.regions if r <= lo)
        offset = self.shape[1] * self.plane
        channels = [self.cursors[c, region].take(c * offset + lo * self.plane, c * offset + hi * self.plane)
                    for c in range(self.shape[0])]
        return torch.stack(channels).reshape((self.shape[0], hi - lo) + self.shape[2:])


class NoiseSlabs:
    """The noise of `Slice2Vol.sample_noise(1, depth, height, width, generator)`, halo cells
    included, drawn a range of cells at a time, so memory holds a slab's noise, not the volume's.

    `take(lo, hi)` gives the same numbers as `noise2[:, :, lo:hi]` and `noise1[:, :, 2*lo:2*hi]`
    of `sample_noise` (cells counted from the first halo cell); `lo` must not move back.
    Setting up advances the generator once through all the noise (about a nanosecond per value,
    0.4 values per voxel), as drawing it whole does.
    """

    def __init__(self, model: "Slice2Vol", depth: int, height: int, width: int, generator: torch.Generator):
        halo = model.halo_cells()
        shape2, shape1 = model.generator.noise_shapes(depth, height, width)
        extra2, extra1 = model.generator.noise_shapes(2 * halo * GRID, height, width)
        self.halo, self.cells = halo, shape2[1]
        # In sample_noise's order: the volume's own cells, then the halo cells of both ends.
        # The halo draw holds both ends' cells, each end read forward on its own.
        main2, main1 = _Draw(shape2, generator), _Draw(shape1, generator)
        halo2, halo1 = _Draw(extra2, generator, (0, halo)), _Draw(extra1, generator, (0, 2 * halo))
        self.parts = ((1, main2, halo2), (2, main1, halo1))

    def take(self, lo: int, hi: int) -> "tuple[torch.Tensor, torch.Tensor]":
        """(noise2, noise1) of cells [lo, hi), each (1, channels, depth, ...)."""
        return tuple(self._part(main, extra, lo * k, hi * k, k) for k, main, extra in self.parts)

    def _part(self, main: _Draw, extra: _Draw, lo: int, hi: int, k: int) -> torch.Tensor:
        # sample_noise puts the first half of the halo draw before the volume's cells, the rest after.
        halo, cells = self.halo * k, self.cells * k
        pieces = []
        if lo < halo:
            pieces.append(extra.take(lo, min(hi, halo)))
        if hi > halo and lo < halo + cells:
            pieces.append(main.take(max(lo, halo) - halo, min(hi, halo + cells) - halo))
        if hi > halo + cells:
            pieces.append(extra.take(max(lo, halo + cells) - cells, hi - cells))
        return torch.cat(pieces, 1)[None]


def without_depth_code(state: dict, config: dict) -> dict:
    """The weights `state` of a model built with `config` (with a depth code: `depth_code`
    True or absent, as in the shipped checkpoints) for the same model without it: the code's
    input columns of the first quarter-resolution conv are dropped (a warm start of a new model
    from a shipped one). A model already without it is returned as it is."""
    if not config.get("depth_code", True):
        return state
    e2 = config.get("enc_channels", (4, 16, 32))[2]
    n2 = config.get("noise_channels", (8, 2))[0]
    first = e2 * 2 + n2  # inputs: lifted features (2 decays), noise, then the 3 code channels
    key = "generator.at_quarter.0.weight"
    weight = state[key]
    return {**state, key: torch.cat([weight[:, :first], weight[:, first + 3:]], 1)}


def _sn(module: nn.Module) -> nn.Module:
    return spectral_norm(module)

def _patch_critic(conv, channels) -> nn.Sequential:
    """Three spectral-norm stride-2 convolutions (kernel 4), then a kernel-3 score map."""
    c1, c2, c3 = channels
    return nn.Sequential(
        _sn(conv(1, c1, 4, 2, 1)), _act(),
        _sn(conv(c1, c2, 4, 2, 1)), _act(),
        _sn(conv(c2, c3, 4, 2, 1)), _act(),
        _sn(conv(c3, 1, 3, 1, 1)),
    )

class PatchDiscriminator(nn.Module):
    """Spectral-norm patch critic: a volume (B, 1, D, H, W) or slices (N, 1, H, W) -> scores at
    1/8 of the resolution.

    Parameters
    ----------
    dims : int
        3 for volumes, 2 for slices.
    channels : tuple of 3 int
        Widths of the three stride-2 convolutions.
    """

    def __init__(self, dims: int, channels):
        super().__init__()
        self.net = _patch_critic(nn.Conv3d if dims == 3 else nn.Conv2d, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x * 2 - 1)


def PatchDiscriminator3D(channels=(16, 32, 64)) -> PatchDiscriminator:
    """The 3D critic of whole crops."""
    return PatchDiscriminator(3, channels)


def PatchDiscriminator2D(channels=(32, 64, 128)) -> PatchDiscriminator:
    """The 2D critic of slices."""
    return PatchDiscriminator(2, channels)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


__all__ = ["GRID", "Slice2Vol", "far_field_distance", "without_depth_code", "SliceEncoder", "VolumeGenerator", "PatchDiscriminator",
           "PatchDiscriminator3D", "PatchDiscriminator2D", "voxel_shuffle", "depth_code", "count_parameters"]
