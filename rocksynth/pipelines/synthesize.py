"""Synthesis of large volumes from the multi-texture GAN: latent grid, tiled decode, streaming.

1. The latent grid (1/8 of the output per axis, plus the generator's margin of `margin_voxels`
   on every side) holds a texture-code field and i.i.d. noise, made block by block on demand. The code field is constant for `--texture`
   and `--like`, ramps from one code to another for `--blend`, and follows a label volume
   (smoothed over about a latent cell) for `--layout`. For 1024^3 it is 134^3 x 16 floats.
2. The grid is decoded with valid convolutions in tiles of `tile` voxels: each tile reads its cells
   plus the margin, so every output voxel sees exactly the latent cells it sees in a one-shot
   decode of the whole grid, and the tiled volume equals the one-shot volume.
3. Tiles are decoded one z-slab at a time and the slab is streamed to (Big)TIFF through
   `VolumeWriter`, so memory holds one slab of bool voxels and one tile, whatever the size.
"""

from dataclasses import dataclass

import numpy as np
import torch

from rocksynth.devices import mixed_precision, module_device, to_numpy
from rocksynth.errors import BadInputError
from rocksynth.models.texture import SCALE, TextureEncoder, TextureGenerator
from rocksynth.progress import log, progress_bar
from rocksynth.units import format_length, parse_length

KIND = "texture"
AXES = {"z": 0, "y": 1, "x": 2}
MAX_SIDE = 16384


@dataclass
class TextureModel:
    generator: TextureGenerator
    encoder: TextureEncoder
    codes: torch.Tensor          # (K, C) code of each named texture
    textures: list               # meta per texture: name, voxel_size, porosity_held_out, source
    meta: dict

    def names(self) -> "list[str]":
        return [t["name"] for t in self.textures]

    def code_of(self, name: str) -> torch.Tensor:
        names = self.names()
        if name not in names:
            raise BadInputError(f"unknown texture {name!r}; this model knows: {', '.join(names)}")
        return self.codes[names.index(name)]

    def voxel_size_of(self, name: str) -> "float | None":
        return self.textures[self.names().index(name)]["voxel_size"]

    def is_extruded(self, name: str) -> bool:
        """Trained as a 2D pattern extruded along z (its noise is constant along z)."""
        return bool(self.textures[self.names().index(name)].get("extruded", False))


def load_texture_model(name_or_path: str, device: "torch.device | None" = None) -> TextureModel:
    """A shipped texture model by name or a checkpoint written by `train texture`, its networks on
    `device` (None: the CPU); the texture codes stay on the CPU, where the latent grid is made."""
    from rocksynth.models.checkpoints import inference_models, load_checkpoint
    from rocksynth.pretrained.registry import resolve_model

    checkpoint = load_checkpoint(resolve_model(name_or_path, KIND), KIND)
    models = {name: module.to(device or "cpu") for name, module in inference_models(checkpoint).items()}
    return TextureModel(models["generator"], models["encoder"], checkpoint["state"]["texture_codes"]["codes"].float(),
                        checkpoint["meta"]["textures"], checkpoint["meta"])


def list_model_textures(model: str) -> "list[dict]":
    loaded = load_texture_model(model)
    return [{"name": t["name"], "porosity": t["porosity_held_out"],
             "voxel": format_length(t["voxel_size"]) if t["voxel_size"] else "unknown",
             "source": t["source"]} for t in loaded.textures]


def parse_size(text: str) -> "tuple[int, int, int]":
    """'N' -> (N, N, N); 'ZxYxX' -> (Z, Y, X); each side 8..16384."""
    parts = text.lower().replace("×", "x").split("x")
    try:
        sides = [int(p) for p in parts]
    except ValueError:
        raise BadInputError(f"--size {text!r}: expected N or ZxYxX with whole numbers, e.g. 512 or 256x512x512") from None
    if len(sides) == 1:
        sides = sides * 3
    if len(sides) != 3:
        raise BadInputError(f"--size {text!r}: expected N or ZxYxX")
    if min(sides) < 8 or max(sides) > MAX_SIDE:
        raise BadInputError(f"--size {text!r}: each side must be between 8 and {MAX_SIDE} voxels")
    return tuple(sides)


# ---------------------------------------------------------------------------------------------
# Latent grids

def grid_cells(generator: TextureGenerator, shape) -> "tuple[int, int, int]":
    """Latent cells per axis covering `shape` voxels plus the decoding margin."""
    return tuple(generator.latent_cells_for(n) for n in shape)


def cell_centres(cells: int, margin_voxels: int) -> np.ndarray:
    """Output-voxel coordinate of the centre of each latent cell along an axis."""
    return np.arange(cells) * SCALE + SCALE / 2 - margin_voxels


class LatentGrid:
    """The latent grid of one output: texture codes + N(0, 1) noise, made block by block.

    Noise comes in chunks of CHUNK x CHUNK cells of one z-plane, each from its own random stream
    (seeded by the seed, the plane and the chunk's position), so any block of the grid is the
    same whether made alone or as part of the whole grid, and the whole grid never has to exist:
    a tile makes the cells it reads. `code_plane(k)` gives the (C, cells_y, cells_x) codes of
    plane k (a broadcast view for one texture, so it costs nothing)."""

    CHUNK = 8

    def __init__(self, cells, noise_channels: int, seed: int, code_plane, extrude: "TextureGenerator | None" = None):
        self.cells, self.noise_channels, self.seed, self.code_plane = tuple(cells), noise_channels, seed, code_plane
        self.extrude = extrude  # the generator, for a texture extruded along z: noise of plane 0 everywhere

    def _chunk(self, k: int, cy: int, cx: int) -> torch.Tensor:
        stream = np.random.SeedSequence([self.seed, k, cy, cx]).generate_state(1)[0]
        generator = torch.Generator().manual_seed(int(stream))
        return torch.randn(self.noise_channels, self.CHUNK, self.CHUNK, generator=generator)

    def _noise(self, k: int, ys: slice, xs: slice) -> torch.Tensor:
        c = self.CHUNK
        rows = []
        for cy in range(ys.start // c, (ys.stop - 1) // c + 1):
            row = torch.cat([self._chunk(k, cy, cx) for cx in range(xs.start // c, (xs.stop - 1) // c + 1)], 2)
            rows.append(row)
        noise = torch.cat(rows, 1)
        y0, x0 = ys.start - (ys.start // c) * c, xs.start - (xs.start // c) * c
        return noise[:, y0:y0 + ys.stop - ys.start, x0:x0 + xs.stop - xs.start]

    def block(self, zs: slice, ys: slice, xs: slice) -> torch.Tensor:
        """(1, C + noise, z, y, x) cells of the grid (slices clipped to it)."""
        zs, ys, xs = (slice(max(0, r.start), min(r.stop, n)) for r, n in zip((zs, ys, xs), self.cells))
        planes = []
        # An extruded texture has the same noise on every plane: plane 0's, drawn once per block.
        same = None
        if self.extrude is not None:
            same = self.extrude.extrude_noise(self._noise(0, ys, xs)[None, :, None])[0, :, 0]
        for k in range(zs.start, zs.stop):
            noise = self._noise(k, ys, xs) if same is None else same
            planes.append(torch.cat([self.code_plane(k)[:, ys, xs], noise]))
        return torch.stack(planes, 1)[None]

    def planes(self, start: int, stop: int) -> torch.Tensor:
        return self.block(slice(start, stop), slice(0, self.cells[1]), slice(0, self.cells[2]))

    def full(self) -> torch.Tensor:
        return self.planes(0, self.cells[0])


def constant_code_field(code: torch.Tensor, cells):
    """code_plane for one texture everywhere."""
    plane = code[:, None, None].expand(-1, *cells[1:])
    return lambda k: plane


def blend_code_field(code_a: torch.Tensor, code_b: torch.Tensor, cells, axis: int, margin_voxels: int,
                     length: int):
    """code_plane going from A at the start to B at the end of an output of `length` voxels
    along `axis`, with a smoothstep ramp over the middle half of the output."""
    position = cell_centres(cells[axis], margin_voxels) / length           # 0..1 across the output
    t = np.clip((position - 0.25) / 0.5, 0, 1)
    t = torch.from_numpy(t * t * (3 - 2 * t)).float()
    a, b = code_a[:, None, None], code_b[:, None, None]
    if axis == 0:
        return lambda k: (a * (1 - t[k]) + b * t[k]).expand(-1, *cells[1:])
    shape = [1, 1, 1]
    shape[axis] = cells[axis]
    ramp = t.view(*shape)[0]                                               # (1, ny or 1, nx or 1)
    plane = (a * (1 - ramp) + b * ramp).expand(-1, *cells[1:]).contiguous()
    return lambda k: plane


def layout_code_field(labels: np.ndarray, codes: torch.Tensor, shape, cells, margin_voxels: int):
    """code_plane from a label volume (or a 2D label image, repeated along z): each cell takes
    the code of its label (nearest sampling of the labels to the latent grid), then the field is
    smoothed with a Gaussian of one cell so the boundary between textures is a short transition.
    Held whole: (C, cells) floats, 1/512 of the output's voxels per channel."""
    from scipy import ndimage

    if labels.ndim == 2:
        labels = labels[None]
    # Cell centres (in output voxels) -> label indices, scaled when the layout has another size.
    index = []
    for axis in range(3):
        centres = cell_centres(cells[axis], margin_voxels)
        position = np.clip(centres, 0, shape[axis] - 1) * labels.shape[axis] / shape[axis]
        index.append(np.clip(position.astype(int), 0, labels.shape[axis] - 1))
    cell_labels = labels[np.ix_(*index)]
    field = codes[torch.from_numpy(cell_labels.astype(np.int64))]          # (d, h, w, C)
    field = field.permute(3, 0, 1, 2).numpy()
    field = np.stack([ndimage.gaussian_filter(channel, sigma=1.0, mode="nearest") for channel in field])
    field = torch.from_numpy(field).float()
    return lambda k: field[:, k]


# ---------------------------------------------------------------------------------------------
# Decoding

def decode_one_shot(generator: TextureGenerator, latent: torch.Tensor, shape) -> np.ndarray:
    """The whole grid at once (only for small grids and tests): pore probability (z, y, x)."""
    device = module_device(generator)
    with torch.no_grad(), mixed_precision(device):
        volume = torch.sigmoid(generator(latent.to(device), pad="valid"))[0, 0]
    return to_numpy(volume[:shape[0], :shape[1], :shape[2]])


def _tile_starts(n: int, tile: int) -> "list[int]":
    return list(range(0, n, tile))


def decode_tile(generator: TextureGenerator, latent, start, extent, logits: bool = False) -> torch.Tensor:
    """Pore probability (or logits) of the output block [start, start + extent) (voxels; start a
    multiple of SCALE): decodes the latent cells from start/8 that cover the block plus the
    margin. `latent` is a LatentGrid (the cells are made here) or a (1, C, d, h, w) tensor.
    The result is on the generator's device (the cells are made on the CPU and moved there)."""
    slices = [slice(s // SCALE, s // SCALE + generator.latent_cells_for(e)) for s, e in zip(start, extent)]
    cells = latent.block(*slices) if isinstance(latent, LatentGrid) else latent[:, :, slices[0], slices[1], slices[2]]
    device = module_device(generator)
    with torch.no_grad(), mixed_precision(device):
        block = generator(cells.to(device), pad="valid")[0, 0]
    block = block[:extent[0], :extent[1], :extent[2]]
    return block if logits else torch.sigmoid(block)


def _tiles(tile) -> "tuple[int, int, int]":
    tiles = (tile,) * 3 if isinstance(tile, int) else tuple(tile)
    if len(tiles) != 3 or any(t % SCALE or t < SCALE for t in tiles):
        raise BadInputError(f"--tile must be a positive multiple of {SCALE}, got {tile}")
    return tiles


def decode_slabs(generator: TextureGenerator, latent, shape, tile=128, threshold=None, packed=False):
    """Yield z-slabs (tile depth or fewer slices, full y, x) of the decoded volume, tile by tile.

    `latent` is a LatentGrid (planes made per slab) or a whole (1, C, d, h, w) tensor; `tile`
    is one side or (z, y, x) sides. With `threshold` the slabs are bool (pore = probability >
    threshold), else float32 probabilities. With `packed` (needs `threshold`) they are uint8
    with 8 voxels per byte along x (`np.packbits`; `unpack_slices` undoes it): the slab is the
    only buffer that grows with the output, and packing makes it 8 times smaller."""
    tz, ty, tx = _tiles(tile)
    cut = None if threshold is None else float(np.log(threshold / (1 - threshold)))  # on the logits
    if packed and cut is None:
        raise ValueError("packed slabs need a threshold")
    for z in _tile_starts(shape[0], tz):
        depth = min(tz, shape[0] - z)
        if packed:
            slab = np.empty((depth, shape[1], -(-shape[2] // 8)), dtype=np.uint8)
        else:
            slab = np.empty((depth, shape[1], shape[2]), dtype=bool if cut is not None else np.float32)
        for y in _tile_starts(shape[1], ty):
            for x in _tile_starts(shape[2], tx):
                extent = (depth, min(ty, shape[1] - y), min(tx, shape[2] - x))
                block = decode_tile(generator, latent, (z, y, x), extent, logits=cut is not None)
                if packed:  # x and tx are multiples of 8, so each tile fills whole bytes
                    slab[:, y:y + extent[1], x // 8:x // 8 + -(-extent[2] // 8)] = np.packbits(to_numpy(block > cut), axis=-1)
                else:
                    slab[:, y:y + extent[1], x:x + extent[2]] = to_numpy(block > cut) if cut is not None else to_numpy(block)
        yield slab


def unpack_slices(packed: np.ndarray, width: int) -> np.ndarray:
    """Bool voxels of (some slices of) a packed slab from `decode_slabs(..., packed=True)`."""
    return np.unpackbits(packed, axis=-1, count=width).view(bool)


# ---------------------------------------------------------------------------------------------
# What to synthesize

def encode_exemplar(model: TextureModel, mask: np.ndarray, crop: int = 64) -> torch.Tensor:
    """The texture code of an exemplar: the mean code of its (up to 27) crops of `crop`^3."""
    if min(mask.shape) < 16:
        raise BadInputError(f"--like exemplar of shape {mask.shape} is too small: need at least 16 voxels a side")
    crop = min(crop, *mask.shape)
    starts = [np.unique(np.linspace(0, n - crop, 3).astype(int)) for n in mask.shape]
    crops = [mask[z:z + crop, y:y + crop, x:x + crop] for z in starts[0] for y in starts[1] for x in starts[2]]
    device = module_device(model.encoder)
    with torch.no_grad(), mixed_precision(device):
        codes = model.encoder(torch.from_numpy(np.stack(crops)).float()[:, None].to(device))
    return codes.float().mean(0).cpu()  # beside the named codes, on the CPU


def nearest_textures(model: TextureModel, code: torch.Tensor) -> "list[tuple[str, float]]":
    """Named textures by distance of their code to `code`."""
    distances = torch.linalg.norm(model.codes - code[None], dim=1).tolist()
    return sorted(zip(model.names(), distances), key=lambda item: item[1])


def code_field_for(model: TextureModel, shape, *, texture=None, like=None, blend=None, axis="z",
                   layout=None, layout_textures=None, threshold: "float | None" = None, pore_value: str = "auto",
                   crop: bool = False, voxel_size: "float | None" = None) -> "tuple[callable, dict]":
    """(code_plane function for a LatentGrid, description) for exactly one way of choosing the texture.

    `threshold`, `pore_value` and `crop` segment the `like` exemplar as `load_binary_volume` does;
    its voxel size (`voxel_size` if given, checked against the exemplar's) is the description's
    `voxel_size_m`."""
    chosen = [name for name, value in (("--texture", texture), ("--like", like), ("--blend", blend),
                                       ("--layout", layout)) if value is not None]
    if len(chosen) != 1:
        raise BadInputError("give exactly one of --texture, --like, --blend, --layout"
                            + (f" (got {', '.join(chosen)})" if chosen else ""))
    if like is None and (threshold is not None or str(pore_value).lower() != "auto" or crop):
        raise BadInputError("--threshold, --pore-value and --crop segment a --like exemplar; "
                            f"{chosen[0]} reads no image to segment")
    g = model.generator
    cells, margin = grid_cells(g, shape), g.margin_voxels
    if texture is not None:
        return constant_code_field(model.code_of(texture), cells), {"texture": texture,
                                                                    "extruded": model.is_extruded(texture)}
    if like is not None:
        return _like_code_field(model, like, cells, threshold, pore_value, crop, voxel_size)
    if blend is not None:
        a, sep, b = blend.partition(":")
        if not sep or not a or not b:
            raise BadInputError(f"--blend {blend!r}: expected A:B, e.g. berea:ketton")
        if axis not in AXES:
            raise BadInputError(f"--axis {axis!r}: expected z, y or x")
        field = blend_code_field(model.code_of(a), model.code_of(b), cells, AXES[axis], margin, shape[AXES[axis]])
        return field, {"blend": [a, b], "axis": axis}
    from rocksynth.io.paths import check_input_file

    if not layout_textures:
        raise BadInputError("--layout needs --textures NAME,NAME,... (the texture of label 0, 1, ...)")
    names = [n.strip() for n in layout_textures.split(",") if n.strip()]
    codes = torch.stack([model.code_of(n) for n in names])
    if layout != "-":
        check_input_file(layout)
    labels = _read_labels(layout)
    present = np.unique(labels)
    if present.min() < 0 or present.max() >= len(names):
        raise BadInputError(f"{layout}: labels {present.tolist()[:10]} need textures for 0..{present.max()}, "
                            f"--textures gives {len(names)}")
    return layout_code_field(labels, codes, shape, cells, margin), {"layout": str(layout), "textures": names}


def _like_code_field(model: TextureModel, like, cells, threshold: "float | None", pore_value: str, crop: bool,
                     voxel_size: "float | None") -> "tuple[callable, dict]":
    """`code_field_for` of an exemplar volume: the encoder's code of it, constant."""
    from rocksynth.data.crops import is_extruded, transitions_per_axis
    from rocksynth.io import load_binary_volume
    from rocksynth.io.binary import require_3d
    from rocksynth.io.paths import check_input_file

    if like != "-":
        check_input_file(like)
    mask, voxel = load_binary_volume(like, threshold=threshold, pore_value=pore_value, voxel_size=voxel_size,
                                     crop=crop)
    code = encode_exemplar(model, require_3d(mask, str(like)))
    ranking = nearest_textures(model, code)
    log(f"{like}: texture code nearest to {ranking[0][0]} (distances "
        + ", ".join(f"{n} {d:.2f}" for n, d in ranking) + ")")
    extruded = is_extruded(transitions_per_axis(mask))
    if extruded:
        log(f"{like}: the same on every z-slice, so the output is extruded along z too")
    return constant_code_field(code, cells), {"like": str(like), "nearest_textures": ranking, "extruded": extruded,
                                              "voxel_size_m": voxel}


def output_latent(model: TextureModel, shape, seed: int, field, description: dict) -> LatentGrid:
    """The latent grid of a `shape` output of `model`: `code_field_for`'s codes and `description`
    (a texture extruded along z gets the noise of plane 0 everywhere), noise from `seed`."""
    return LatentGrid(grid_cells(model.generator, shape), model.generator.noise_channels, seed, field,
                      extrude=model.generator if description.get("extruded") else None)


def _read_labels(path) -> np.ndarray:
    from rocksynth.io.volumes import read_volume

    data = read_volume(path, allow_2d=True).data
    if data.ndim not in (2, 3) or not np.issubdtype(data.dtype, np.integer):
        raise BadInputError(f"{path}: a layout must be an integer label image or volume (0, 1, 2, ...)")
    return data


def synthesize_file(out, *, model="rocks", texture=None, size="128", like=None, blend=None, axis="z",
                    layout=None, layout_textures=None, seed=0, voxel_size=None, tile=128,
                    device: "torch.device | None" = None, threshold: "float | None" = None,
                    pore_value: str = "auto", crop: bool = False) -> dict:
    """Write a synthesized binary volume to `out`, decoded on `device` (None: the CPU); returns a
    summary (shape, porosity, time...). `threshold`, `pore_value` and `crop` segment the `like`
    exemplar; the voxel size is `voxel_size` (metres), else the exemplar's or the texture's."""
    import time

    from rocksynth.io.paths import BINARY_TIFF_BYTES_PER_VOXEL, check_free_space, prepare_outputs
    from rocksynth.io.volumes import streamed_output_kind, volume_writer

    streamed_output_kind(out)  # a .tif, .zarr or stdout, refused otherwise before the model runs
    shape = parse_size(size)
    if tile % SCALE or tile < SCALE:
        raise BadInputError(f"--tile must be a positive multiple of {SCALE}, got {tile}")
    loaded = load_texture_model(model, device)
    field, description = code_field_for(loaded, shape, texture=texture, like=like, blend=blend, axis=axis,
                                        layout=layout, layout_textures=layout_textures, threshold=threshold,
                                        pore_value=pore_value, crop=crop, voxel_size=parse_length(voxel_size))
    prepare_outputs([out])  # after code_field_for, which registers --like and --layout as inputs
    check_free_space(out, int(np.prod(shape, dtype=np.float64) * BINARY_TIFF_BYTES_PER_VOXEL),
                     f"a {'x'.join(map(str, shape))} volume")
    voxel = parse_length(voxel_size) if voxel_size is not None else _default_voxel_size(loaded, description)
    latent = output_latent(loaded, shape, seed, field, description)
    start = time.perf_counter()
    with volume_writer(out, shape, bool, voxel_size=voxel) as writer, \
            progress_bar(shape[0], f"synthesizing {'x'.join(map(str, shape))}") as bar:
        pores = stream_volume(loaded.generator, latent, shape, writer, tile=tile, advance=bar.advance)
    seconds = time.perf_counter() - start
    voxels = int(np.prod(shape))
    log(f"wrote {out}: {'x'.join(map(str, shape))}, porosity {pores / voxels:.3f}, voxel "
        f"{format_length(voxel) if voxel else 'unknown'}, {seconds:.1f} s")
    return {"out": str(out), "shape": list(shape), "porosity": pores / voxels, "voxel_size_m": voxel,
            "seconds": round(seconds, 2), "seed": seed, **description}


# z-tile depth. Deeper tiles spend less on the decoding margin (38 voxels a side): 128 decodes
# 256^3 about a sixth faster than 64 for about 100 MB more peak memory (one tile's activations);
# the packed slab (128 x Y x X/8 bytes, 16 MB at 1024^2) is the only buffer that grows with the output.
SLAB_DEPTH = 128
WRITE_SLICES = 8  # slices handed to the writer at a time (it converts them to 0/255 copies)


def stream_volume(generator, latent: LatentGrid, shape, writer, tile=128, advance=None) -> int:
    """Decode `latent` to `writer` slab by slab; the number of pore voxels."""
    pores = 0
    tiles = (min(SLAB_DEPTH, tile), tile, tile)
    for slab in decode_slabs(generator, latent, shape, tile=tiles, threshold=0.5, packed=True):
        pores += write_packed_slab(writer, slab, shape[2])
        if advance is not None:
            advance(slab.shape[0])
    return pores


def write_packed_slab(writer, slab: np.ndarray, width: int) -> int:
    """Hand a packed slab to `writer` a few slices at a time; the number of pore voxels."""
    pores = 0
    for i in range(0, slab.shape[0], WRITE_SLICES):
        voxels = unpack_slices(slab[i:i + WRITE_SLICES], width)
        writer.write(voxels)
        pores += int(np.count_nonzero(voxels))
    return pores


def _default_voxel_size(model: TextureModel, description: dict) -> "float | None":
    """The exemplar's voxel size (`--like`), else the texture's known voxel size; for blends and
    layouts only when all textures agree."""
    if "like" in description:
        return description["voxel_size_m"]
    names = ([description["texture"]] if "texture" in description else description.get("blend")
             or description.get("textures") or [])
    sizes = {model.voxel_size_of(n) for n in names}
    return sizes.pop() if len(sizes) == 1 else None


# ---------------------------------------------------------------------------------------------
# Training data

def load_training_textures(sources, holdout=0.25, threshold=None, pore_value="auto") -> list:
    """NAME=VOLUME (VOLUME may be '-', stdin) or NAME=porespy:MEDIUM -> textures split into training
    and held-out parts."""
    from dataclasses import replace

    from rocksynth.data.textures import generated_texture, make_texture, parse_texture_source
    from rocksynth.io import load_binary_volume
    from rocksynth.io.binary import require_3d
    from rocksynth.io.paths import STDIO, check_input_file

    textures = []
    for text in sources:
        name, source = parse_texture_source(text)
        if source.startswith("porespy:"):
            texture = replace(generated_texture(source[len("porespy:"):]), name=name)
            if not name.isidentifier():
                raise BadInputError(f"texture name {name!r} must be a plain word (letters, digits, _)")
        else:  # a volume file, or '-' for stdin
            if source != STDIO:
                check_input_file(source)
            shown = "stdin" if source == STDIO else source
            # crop_flag=None: `--set crop` is the training crop, not a field of view's.
            mask, voxel = load_binary_volume(source, threshold=threshold, pore_value=pore_value, crop_flag=None)
            texture = make_texture(name, require_3d(mask, shown), voxel, shown, holdout)
        log(f"texture {name}: train {texture.train.shape}, held out {texture.held_out.shape}, "
            f"porosity {texture.train.mean():.3f}; augmented with {texture.augmentation()}")
        textures.append(texture)
    return textures
