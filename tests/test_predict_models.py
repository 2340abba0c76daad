"""VQ-VAE and latent transformer: training improves the round trip, masking is causal, the
KV-cached sampler agrees with the teacher-forced model."""

import numpy as np
import pytest
import torch

from rocksynth.data.videos import procedural_clips
from rocksynth.models.latent_transformer import LatentVideoTransformer
from rocksynth.models.vqvae import VQVAE
from rocksynth.training.video import to_tensor


def test_vqvae_round_trip_improves_with_training():
    torch.manual_seed(0)
    frames = to_tensor(procedural_clips("balls", 4, 4, 32).reshape(-1, 32, 32, 1))  # 16 frames
    model = VQVAE(channels=1, n_down=2, widths=(16, 32), n_parts=2, n_codes=16, code_dim=8)

    def round_trip_mse():
        model.eval()
        return float(((model.decode(model.encode(frames)) - frames) ** 2).mean())

    model.train()
    model(frames[:2])  # initialises the codebooks from encoder outputs
    before = round_trip_mse()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(50):
        model.train()
        _, loss, codes, _ = model(frames)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = round_trip_mse()
    assert codes.shape == (16, 8, 8, 2) and codes.max() < 16
    assert after < 0.6 * before, (before, after)


def test_dead_codes_are_restarted():
    quantizer = VQVAE(n_down=1, widths=(8,), n_parts=1, n_codes=8, code_dim=4).quantizer
    quantizer.train()
    z = torch.randn(2, 4, 4, 4)
    quantizer(z)
    quantizer.embed[0, 3] = 1e6  # a code no input can reach
    for _ in range(200):
        quantizer(z)
    assert quantizer.embed[0, 3].abs().max() < 100  # it was moved back onto the data


def _tiny_transformer(relative_time=False):
    torch.manual_seed(0)
    model = LatentVideoTransformer(frames=4, height=3, width=3, n_parts=2, n_codes=7, dim=32, layers=2, heads=2,
                                   relative_time=relative_time)
    if relative_time:  # a bias that differs by block, head and frame distance, as a trained one does
        with torch.no_grad():
            model.time_bias.normal_()
    return model.eval()


def _teacher_forced_hidden(model, tokens):
    """Hidden states of every raster position of `tokens` (B, N, P), all at once, causally."""
    n = tokens.shape[1]
    x = model._inputs(tokens, 0) + model._previous(tokens, 0, n)
    pos = model._span(0, n)
    for block, mask in zip(model.blocks, model._masks(pos, pos, None)):
        x = block(x, mask=mask, causal=mask is None)
    return x


@pytest.mark.parametrize("relative_time", [False, True])
def test_changing_a_future_code_never_changes_an_earlier_prediction(relative_time):
    model = _tiny_transformer(relative_time)
    codes = torch.randint(0, 7, (2, 4, 3, 3, 2))
    nll, _ = model(codes)
    for t, y, x, part in [(1, 1, 2, 0), (2, 0, 0, 1), (3, 2, 2, 1)]:
        changed = codes.clone()
        changed[:, t, y, x, part] = (changed[:, t, y, x, part] + 3) % 7
        nll_changed, _ = model(changed)
        index = (t * 3 + y) * 3 + x
        assert torch.equal(nll[:, :index], nll_changed[:, :index])
        if part == 1:  # part 0 of the same position does not see part 1
            assert torch.equal(nll[:, index, 0], nll_changed[:, index, 0])
        if index + 1 < nll.shape[1]:
            assert not torch.equal(nll[:, index + 1:], nll_changed[:, index + 1:])  # the future does see it


@pytest.mark.parametrize("relative_time", [False, True])
def test_parallel_head_sees_only_the_past_frames(relative_time):
    model = _tiny_transformer(relative_time)
    codes = torch.randint(0, 7, (2, 4, 3, 3, 2))
    changed = codes.clone()
    changed[:, 3] = (changed[:, 3] + 1) % 7  # a frame after the one being filled
    torch.manual_seed(1)
    _, par = model(codes, parallel_frame=2, mask_ratio=1.0)
    torch.manual_seed(1)
    _, par_changed = model(changed, parallel_frame=2, mask_ratio=1.0)
    assert torch.equal(par, par_changed)
    changed[:, 1] = (changed[:, 1] + 1) % 7  # an earlier frame matters
    torch.manual_seed(1)
    _, par_changed = model(changed, parallel_frame=2, mask_ratio=1.0)
    assert not torch.equal(par, par_changed)


@pytest.mark.parametrize("relative_time", [False, True])
@pytest.mark.parametrize("parallel", [False, True])
def test_cached_sampling_is_deterministic_and_in_range(parallel, relative_time):
    model = _tiny_transformer(relative_time)
    context = torch.randint(0, 7, (3, 2, 3, 3, 2))
    a = model.generate(context, 5, parallel=parallel, steps=3, generator=torch.Generator().manual_seed(4))
    b = model.generate(context, 5, parallel=parallel, steps=3, generator=torch.Generator().manual_seed(4))
    assert a.shape == (3, 5, 3, 3, 2) and torch.equal(a, b)
    assert int(a.min()) >= 0 and int(a.max()) < 7


def test_greedy_cached_sampling_matches_teacher_forcing():
    model = _tiny_transformer()
    context = torch.randint(0, 7, (2, 2, 3, 3, 2))
    generated = model.generate(context, 1, temperature=0.0)
    tokens = torch.cat([context, generated], 1).reshape(2, -1, 2)
    logits = model._part_logits(_teacher_forced_hidden(model, tokens), tokens)[:, 18:]
    assert torch.equal(logits.argmax(-1), tokens[:, 18:])


def test_rolling_cache_matches_teacher_forcing_far_past_the_window():
    # 2 context frames + 6 generated = 8 frames through a model whose band is 4 frames: the
    # cache drops old frames as it goes and must give exactly what the whole clip computed at
    # once gives.
    model = _tiny_transformer(relative_time=True)
    context = torch.randint(0, 7, (2, 2, 3, 3, 2))
    generated = model.generate(context, 6, temperature=0.0)
    tokens = torch.cat([context, generated], 1).reshape(2, -1, 2)
    logits = model._part_logits(_teacher_forced_hidden(model, tokens), tokens)[:, 18:]
    assert torch.equal(logits.argmax(-1), tokens[:, 18:])


def test_rolling_parallel_frames_match_the_whole_clip_computed_at_once():
    model = _tiny_transformer(relative_time=True)
    hw = 9
    context = torch.randint(0, 7, (2, 2, 3, 3, 2))
    generated = model.generate(context, 5, temperature=0.0, parallel=True, steps=1)  # one round: the argmax
    tokens = torch.cat([context, generated], 1).reshape(2, -1, 2)
    for j in range(2, 7):
        n = j * hw + 1  # the start token and every token before frame j, as inputs
        seq = model._inputs(tokens[:, :n], 0) + model._previous(tokens, 0, n)
        query = (model._embed_codes(torch.full((2, hw, 2), -1)) + model._positions(j * hw, hw)
                 + model._previous(tokens, j * hw, hw) + model.parallel_flag)
        x = torch.cat([seq, query], 1)
        pos = torch.cat([model._span(0, n), model._span(j * hw, hw)])
        allowed = torch.ones(n + hw, n + hw, dtype=torch.bool).tril()
        allowed[n:] = True
        for block, mask in zip(model.blocks, model._masks(pos, pos, allowed)):
            x = block(x, mask=mask)
        logits = model.parallel_head(model.parallel_ln(x[:, n:])).view(2, hw, 2, 7)
        assert torch.equal(logits.argmax(-1), tokens[:, j * hw:(j + 1) * hw]), j


def test_rolling_cache_mixes_parallel_and_greedy_frames_exactly_and_holds_only_the_band():
    # A parallel frame leaves its own keys to be computed with the next frame: a greedy frame after
    # it must still be what teacher forcing on the whole clip gives.
    from rocksynth.models.latent_transformer import _RollingDecoder

    model = _tiny_transformer(relative_time=True)
    hw = model.frame_tokens
    decoder = _RollingDecoder(model, torch.randint(0, 7, (2, 3, 3, 3, 2)))
    generator = torch.Generator().manual_seed(5)
    greedy = []
    with torch.no_grad():
        for i in range(10):
            if i % 2:
                greedy.append(decoder.known.shape[1])
                decoder.sequential(0.0, generator)
            else:
                decoder.parallel(2, 1.0, generator)
            assert decoder.caches[0]["k"].shape[2] <= model.frames * hw  # the band
        tokens = decoder.known
        argmax = model._part_logits(_teacher_forced_hidden(model, tokens), tokens).argmax(-1)
    for start in greedy:
        assert torch.equal(argmax[:, start:start + hw], tokens[:, start:start + hw])


def test_procedural_splits_never_share_clips():
    train = procedural_clips("moving", 5, 3, 32, split="train")
    heldout = procedural_clips("moving", 5, 3, 32, split="heldout")
    again = procedural_clips("moving", 5, 3, 32, split="train")
    assert np.array_equal(train, again)
    assert not any(np.array_equal(a, b) for a in train for b in heldout)
