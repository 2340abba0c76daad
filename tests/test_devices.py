"""`--device` of the inference commands and `rocksynth.devices`: choosing a device, refusing one this
machine lacks (one line, exit 2), mixed precision only on CUDA, and CPU outputs bit-identical to
what the pipelines gave before they took a device. CUDA and MPS are mocked: nothing runs on them."""

import hashlib

import numpy as np
import pytest
import tifffile
import torch

from conftest import EXAMPLES
from rocksynth.devices import autocast_dtype, grad_scaler, mixed_precision, module_device, resolve_device, to_numpy
from rocksynth.errors import BadInputError

CPU = torch.device("cpu")


@pytest.fixture
def no_gpu(monkeypatch):
    """A machine without CUDA or MPS, whatever this one has."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


@pytest.fixture
def fake_cuda(monkeypatch):
    """A machine that reports one CUDA device with bfloat16 (nothing is run on it)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)


# --- resolve_device -------------------------------------------------------------------------------
def test_auto_is_the_cpu_without_a_gpu(no_gpu):
    assert resolve_device("auto") == CPU
    assert resolve_device(" CPU ") == CPU


def test_auto_prefers_cuda_then_mps(monkeypatch, fake_cuda):
    assert resolve_device("auto") == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("mps")
    assert resolve_device("mps") == torch.device("mps")


def test_cuda_index_is_checked(fake_cuda):
    assert resolve_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(BadInputError, match=r"^--device cuda:1: this machine has 1 CUDA device\(s\), cuda:0 to cuda:0$"):
        resolve_device("cuda:1")


@pytest.mark.parametrize("name, message", [
    ("cuda", r"^--device cuda: no CUDA device is available \("),
    ("cuda:0", r"^--device cuda:0: no CUDA device is available \("),
    ("mps", r"^--device mps: no MPS device is available \("),
    ("tpu", r"^--device 'tpu': expected one of auto, cpu, cuda, cuda:N, mps$"),
    ("cuda:x", r"^--device 'cuda:x': expected one of"),
])
def test_unavailable_or_unknown_devices_are_refused(no_gpu, name, message):
    with pytest.raises(BadInputError, match=message):
        resolve_device(name)


def test_auto_reports_a_gpu_it_chose(monkeypatch, fake_cuda):
    from rocksynth import progress
    from rocksynth.cli.options import parse_device

    lines = []
    monkeypatch.setattr(progress, "log", lines.append)
    assert parse_device("auto") == torch.device("cuda")
    assert lines == ["--device auto: running on cuda"]


# --- mixed precision ------------------------------------------------------------------------------
def test_mixed_precision_is_a_no_op_on_the_cpu():
    assert autocast_dtype(CPU) is None and autocast_dtype(None) is None
    assert autocast_dtype(torch.device("mps")) is None
    a = torch.randn(8, 8)
    with mixed_precision(CPU):
        assert not torch.is_autocast_enabled("cpu") and not torch.is_autocast_enabled("cuda")
        product = a @ a
    assert product.dtype == torch.float32
    assert torch.equal(product, a @ a)


def test_mixed_precision_is_autocast_on_cuda(monkeypatch, fake_cuda):
    context = mixed_precision(torch.device("cuda"))
    assert isinstance(context, torch.autocast)  # built, not entered: there is no GPU here
    assert context.device == "cuda" and context.fast_dtype == torch.bfloat16 and context._enabled
    # A GPU without bfloat16 (before Ampere) gets float16.
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation)
    assert autocast_dtype(torch.device("cuda:0")) == torch.float16


def test_the_loss_is_scaled_only_for_float16(monkeypatch, fake_cuda):
    assert not grad_scaler(CPU).is_enabled() and not grad_scaler(None).is_enabled()
    assert not grad_scaler(torch.device("cuda")).is_enabled()  # bfloat16 has float32's range
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)
    assert grad_scaler(torch.device("cuda")).is_enabled()


def test_to_numpy_widens_half_floats_and_does_not_copy_float32():
    x = torch.linspace(0, 1, 5)
    assert np.shares_memory(to_numpy(x), x.numpy())
    half = to_numpy(x.to(torch.bfloat16))
    assert half.dtype == np.float32 and np.allclose(half, x.numpy(), atol=1e-2)
    assert to_numpy(x > 0.5).dtype == bool


# --- the commands ---------------------------------------------------------------------------------
COMMANDS = {
    "reconstruct": ("reconstruct", EXAMPLES / "berea_section_400.png", "--depth", "8", "--out", "{out}.tif"),
    "synthesize": ("synthesize", "--texture", "berea", "--size", "16", "--out", "{out}.tif"),
    "predict": ("predict", EXAMPLES / "berea_128.tif", "--context", "2", "--frames", "1", "--out", "{out}.tif"),
    "clean": ("clean", EXAMPLES / "berea_section_400.png", "--out", "{out}.png"),
}


@pytest.mark.parametrize("device", ["cuda", "mps"])
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_commands_refuse_a_missing_device_in_one_line(no_gpu, run_cli_in_process, tmp_path, command, device):
    out = tmp_path / "out"
    args = [str(a).replace("{out}", str(out)) for a in COMMANDS[command]]
    code, stdout, err = run_cli_in_process(*args, "--device", device)
    assert code == 2, err
    assert err.strip().count("\n") == 0
    assert f"--device {device}: no {'CUDA' if device == 'cuda' else 'MPS'} device is available" in err
    assert list(tmp_path.iterdir()) == []  # refused before any work


# --- the pipelines on an explicit CPU device equal the default, bit for bit -----------------------
def test_reconstruct_on_the_cpu_device_is_the_default(slice_64, tmp_path):
    from rocksynth.pipelines.reconstruct import reconstruct_files

    outs = [tmp_path / "default.tif", tmp_path / "cpu.tif"]
    reconstruct_files(str(slice_64), str(outs[0]), depth=16, seed=3)
    reconstruct_files(str(slice_64), str(outs[1]), depth=16, seed=3, device=CPU)
    assert np.array_equal(tifffile.imread(outs[0]), tifffile.imread(outs[1]))


def test_synthesize_on_the_cpu_device_is_the_default(tmp_path):
    from rocksynth.pipelines.synthesize import synthesize_file

    outs = [tmp_path / "default.tif", tmp_path / "cpu.tif"]
    synthesize_file(str(outs[0]), texture="ketton", size="16x16x24", seed=2)
    synthesize_file(str(outs[1]), texture="ketton", size="16x16x24", seed=2, device=CPU)
    assert np.array_equal(tifffile.imread(outs[0]), tifffile.imread(outs[1]))


def test_clean_on_the_cpu_device_is_the_default(tmp_path):
    from PIL import Image

    from rocksynth.pipelines.clean import clean_paths

    scan = tmp_path / "scan.png"
    Image.fromarray(np.asarray(Image.open(EXAMPLES / "berea_section_400.png"))[:80, :96]).save(scan)
    outs = [tmp_path / "default.png", tmp_path / "cpu.png"]
    clean_paths(str(scan), str(outs[0]), soft=True, tta=2)
    clean_paths(str(scan), str(outs[1]), soft=True, tta=2, device=CPU)
    assert np.array_equal(np.asarray(Image.open(outs[0])), np.asarray(Image.open(outs[1])))


def _digest(array: np.ndarray) -> str:
    array = np.ascontiguousarray(array)
    return hashlib.sha256(f"{array.dtype}{array.shape}".encode() + array.tobytes()).hexdigest()[:16]


# The shipped `shapes` model's frames at seed 4 (context 3, 2 frames, 3 parallel steps), recorded
# with the default device (OMP_NUM_THREADS=1, and the same under pytest-xdist): the CPU device, and
# any later change of the samplers, must draw the same random numbers.
PREDICT_EXPECTED = {"parallel": "930ff39a62aef984", "sequential": "c50a843de2de983f"}


@pytest.mark.parametrize("mode", sorted(PREDICT_EXPECTED))
def test_predict_on_the_cpu_device_is_unchanged(tmp_path, mode):
    from rocksynth.data.videos import procedural_clips
    from rocksynth.io.videos import read_video, write_video
    from rocksynth.pipelines.predict import predict_file

    clip = tmp_path / "clip.tif"
    write_video(clip, procedural_clips("shapes", 1, 4, 32, split="heldout")[0], fps=8)
    for device in (None, CPU):
        out = tmp_path / f"{device}.tif"
        predict_file(str(clip), str(out), context=3, n_frames=2, model="shapes", seed=4,
                     parallel=mode == "parallel", steps=3, device=device)
        assert _digest(read_video(out).frames) == PREDICT_EXPECTED[mode]


def test_frame_predictor_on_the_cpu_device_is_the_default(tmp_path):
    from rocksynth.io.videos import read_video, write_video
    from rocksynth.models.checkpoints import save_checkpoint
    from rocksynth.models.frame_predictor import FramePredictor
    from rocksynth.pipelines.predict import predict_file

    torch.manual_seed(0)
    predictor = FramePredictor(channels=1, context=2, widths=(4, 4, 4), blocks=1)
    torch.nn.init.normal_(predictor.head.weight, std=0.1)  # not the "repeat the last frame" start
    checkpoint = tmp_path / "predictor.pt"
    save_checkpoint(checkpoint, "video", {"predictor": predictor.config}, {"predictor": predictor.state_dict()},
                    {"stage": "predictor"})
    clip = tmp_path / "clip.tif"
    write_video(clip, np.random.default_rng(0).integers(0, 256, (3, 12, 12, 1), dtype=np.uint8), fps=8)
    frames = []
    for device in (None, CPU):
        out = tmp_path / f"{device}.tif"
        predict_file(str(clip), str(out), context=2, n_frames=2, model=str(checkpoint), device=device)
        frames.append(read_video(out).frames)
    assert np.array_equal(*frames)
    assert not np.array_equal(frames[0][2], frames[0][1])  # it did predict something


# --- the loaders put every network on the device asked for ----------------------------------------
def test_loaders_move_the_networks_to_the_device():
    """The 'meta' device stands in for a GPU: a module's parameters report where it was moved."""
    from rocksynth.pipelines.clean import load_cleaner
    from rocksynth.pipelines.predict import load_predictor
    from rocksynth.pipelines.reconstruct import load_model
    from rocksynth.pipelines.synthesize import load_texture_model

    meta = torch.device("meta")
    texture = load_texture_model("rocks", meta)
    vqvae, transformer, _ = load_predictor("shapes", meta)
    modules = [load_model("berea", device=meta).model, texture.generator, texture.encoder, vqvae, transformer,
               load_cleaner("drawings", device=meta)]
    for module in modules:
        assert module_device(module) == meta
        assert all(p.device == meta for p in module.parameters())
    assert texture.codes.device == CPU  # the latent grid is made on the CPU
    assert module_device(load_cleaner("drawings")) == CPU


def test_the_networks_run_on_another_device_with_nothing_left_on_the_cpu(monkeypatch):
    """Every pipeline's network work on the 'meta' device (shapes without data), which refuses to mix
    with CPU tensors as a GPU does: inputs, noise, masks and buffers all follow the model. Only the
    copy of the results back to numpy is stood in for (meta tensors hold no numbers)."""
    from PIL import Image

    import rocksynth.devices
    import rocksynth.pipelines.predict as predict
    import rocksynth.pipelines.reconstruct as reconstruct
    import rocksynth.pipelines.synthesize as synthesize
    from rocksynth.pipelines.clean import ink_probability, load_cleaner

    meta = torch.device("meta")

    def results(tensor):
        assert tensor.device == meta
        return np.zeros(tensor.shape, dtype=bool if tensor.dtype == torch.bool else np.float32)

    for module in (rocksynth.devices, predict, reconstruct, synthesize):
        monkeypatch.setattr(module, "to_numpy", results)
    section = np.asarray(Image.open(EXAMPLES / "berea_section_400.png"))[:64, :64] > 0
    volume, _ = reconstruct.reconstruct(reconstruct.load_model("berea", device=meta).model, section, depth=16)
    assert volume.shape == (16, 64, 64)

    texture = synthesize.load_texture_model("rocks", meta)
    shape = (16, 16, 24)
    field, _ = synthesize.code_field_for(texture, shape, blend="berea:ketton", axis="x")
    grid = synthesize.LatentGrid(synthesize.grid_cells(texture.generator, shape),
                                 texture.generator.noise_channels, 0, field)
    slabs = list(synthesize.decode_slabs(texture.generator, grid, shape, tile=16, threshold=0.5, packed=True))
    assert sum(len(slab) for slab in slabs) == 16

    probability = ink_probability(np.zeros((80, 64), np.uint8), load_cleaner("drawings", device=meta), tile=64,
                                  overlap=0, tta=2)
    assert probability.shape == (80, 64)

    # A tiny video model (meta kernels are slow; `load_predictor` is checked above).
    from rocksynth.models.latent_transformer import LatentVideoTransformer
    from rocksynth.models.vqvae import VQVAE

    vqvae = VQVAE(channels=1, n_down=2, widths=[4, 4], n_parts=2, n_codes=8, code_dim=2).eval().to(meta)
    transformer = LatentVideoTransformer(frames=3, height=4, width=4, n_parts=2, n_codes=8, dim=8, layers=1,
                                         heads=2).eval().to(meta)
    for parallel in (True, False):  # temperature 0: the draws would need numbers from the device
        frames = predict.predict_frames(vqvae, transformer, np.zeros((2, 1, 16, 16), np.float32), 2,
                                        temperature=0, parallel=parallel, steps=2, samples=2)
        assert frames.shape == (2, 2, 1, 16, 16)
