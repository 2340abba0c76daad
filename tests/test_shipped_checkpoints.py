"""Every shipped checkpoint builds its networks from its own saved config (nothing taken from the
code's defaults), loads its weights strictly and runs a tiny forward pass."""

import pytest
import torch

from rocksynth.models.checkpoints import inference_models, load_checkpoint
from rocksynth.pretrained.registry import shipped_models

SHIPPED = shipped_models()


def _forward(kind: str, models: dict, payload: dict) -> "list[torch.Tensor]":
    """The outputs of a small input through each network, with their expected shapes checked."""
    g = torch.Generator().manual_seed(0)
    if kind == "reconstruct":
        slice_ = (torch.rand(1, 1, 32, 32, generator=g) > 0.6).float()
        out = models["model"](slice_, depth=16, generator=g)
        assert out.shape == (1, 1, 16, 32, 32)
        return [out]
    if kind == "clean":
        net = models["model"]
        side = 2 * net.multiple
        out = net(torch.rand(1, payload["config"]["in_channels"], side, side, generator=g))
        assert out.shape == (1, 1, side, side)
        return [out]
    if kind == "texture":
        generator, encoder = models["generator"], models["encoder"]
        cells = 4 + -(-2 * generator.margin_voxels // 8)
        volume = generator(torch.randn(1, generator.in_channels, cells, cells, cells, generator=g), pad="valid")
        side = 8 * cells - 2 * generator.margin_voxels
        assert volume.shape == (1, 1, side, side, side)
        code = encoder((volume > 0).float())
        assert code.shape == (1, generator.code_channels)
        return [volume, code]
    frame = payload["config"]["frame"]
    clip = torch.rand(1, 3, frame["channels"], frame["size"], frame["size"], generator=g)
    if "predictor" in models:
        out = models["predictor"](clip)
        assert out.shape == clip.shape[:1] + clip.shape[2:]
        return [out]
    vqvae, transformer = models["vqvae"], models["transformer"]
    codes = vqvae.encode(clip[0])
    frames = vqvae.decode(codes)
    assert frames.shape == clip[0].shape
    nll, _ = transformer(codes[None, :2].long())
    assert nll.shape == (1, 2 * transformer.frame_tokens, transformer.n_parts)
    return [frames, nll]


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_checkpoint_builds_from_its_saved_config_and_runs(name):
    torch.set_num_threads(1)
    payload = load_checkpoint(SHIPPED[name])
    assert payload["config"], f"{name}: no saved model config"
    models = inference_models(payload)  # load_state_dict is strict: every saved weight has its place
    for module_name, module in models.items():
        assert not module.training, f"{name}: {module_name} not in eval mode"
        saved = payload["state"][module_name]
        assert all(torch.equal(saved[key], value) for key, value in module.state_dict().items())
    with torch.no_grad():
        outputs = _forward(payload["kind"], models, payload)
    assert outputs and all(torch.isfinite(out).all() for out in outputs)
