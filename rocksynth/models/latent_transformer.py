"""Autoregressive transformer over a discrete latent video (Latent Video Transformer).

A clip of codes (B, T, h, w, P) is read in raster order, frame after frame: one token per latent
position, its embedding the sum of its P part embeddings. A causal transformer predicts position i
from positions < i (a start token opens the sequence); within a position the P parts are predicted
one after the other (part c sees the parts < c of the same position), so the model is an exact
autoregressive factorisation of all T*h*w*P codes.

Sampling caches keys and values. A second, MaskGIT-style head fills a whole frame in a few
parallel steps: the tokens of the frame being generated attend to the cached past frames and
bidirectionally to each other, masked ones carrying a [MASK] embedding. It is trained on the same
batches with a small extra block (see `forward`).

Time is told to the model in one of two ways:
- absolute (`relative_time=False`): a learned embedding per frame of the window. A prediction
  past the window slides it, so the cache is rebuilt for every new frame.
- relative (`relative_time=True`): no time embedding; every attention layer adds a learned bias
  per head and frame distance, and a token sees only the frames up to `frames - 1` back (a band).
  Nothing then depends on where a frame lies in the clip, so the cache rolls: each new frame is
  computed once, the oldest frame leaves the cache, and a prediction of any length costs the same
  per frame.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.dropout = dropout

    def forward(self, x, mask=None, causal=False, cache=None, store=True):
        """x (B, L, D). `cache` is a dict with keys k, v of earlier positions (B, H, L0, Dh);
        when `store`, this call's keys/values are appended to it."""
        b, n, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        if cache is not None and "k" in cache:
            k_all, v_all = torch.cat([cache["k"], k], 2), torch.cat([cache["v"], v], 2)
        else:
            k_all, v_all = k, v
        if cache is not None and store:
            cache["k"], cache["v"] = k_all, v_all
        drop = self.dropout if self.training else 0.0
        att = F.scaled_dot_product_attention(q, k_all, v_all, attn_mask=mask, is_causal=causal and mask is None,
                                             dropout_p=drop)
        x = x + self.proj(att.transpose(1, 2).reshape(b, n, d))
        return x + self.mlp(self.ln2(x))


class LatentVideoTransformer(nn.Module):
    def __init__(self, frames: int = 8, height: int = 8, width: int = 8, n_parts: int = 2, n_codes: int = 64,
                 dim: int = 128, layers: int = 4, heads: int = 4, dropout: float = 0.0, relative_time: bool = False):
        super().__init__()
        self.frames, self.height, self.width, self.n_parts, self.n_codes = frames, height, width, n_parts, n_codes
        self.dim, self.relative_time = dim, relative_time
        self.code_embed = nn.ModuleList(nn.Embedding(n_codes, dim) for _ in range(n_parts))
        # The code at the same place one frame earlier, added to each position's input: a short
        # path for "what was here before" (still causal: it lies h*w positions back), so the model
        # need not first learn to find it by attention.
        self.prev_embed = nn.ModuleList(nn.Embedding(n_codes, dim) for _ in range(n_parts))
        self.mask_embed = nn.Parameter(torch.zeros(n_parts, dim))  # [MASK] per part
        self.start = nn.Parameter(torch.zeros(dim))
        if relative_time:  # per block, head and frame distance 0 .. frames-1
            self.time_bias = nn.Parameter(torch.zeros(layers, heads, frames))
        else:
            self.time_embed = nn.Parameter(torch.randn(frames, dim) * 0.02)
        self.space_embed = nn.Parameter(torch.randn(height * width, dim) * 0.02)
        self.parallel_flag = nn.Parameter(torch.zeros(dim))
        self.blocks = nn.ModuleList(_Block(dim, heads, dropout) for _ in range(layers))
        self.ln_out = nn.LayerNorm(dim)
        # Sequential heads: part c reads the hidden state plus the embeddings of parts < c.
        self.part_embed = nn.ModuleList(nn.Embedding(n_codes, dim) for _ in range(n_parts - 1))
        self.heads = nn.ModuleList(nn.Linear(dim, n_codes) for _ in range(n_parts))
        self.parallel_ln = nn.LayerNorm(dim)
        self.parallel_head = nn.Linear(dim, n_parts * n_codes)

    @property
    def frame_tokens(self) -> int:
        return self.height * self.width

    # --- embeddings ---------------------------------------------------------------------------
    def _positions(self, start: int, count: int):
        """Position embeddings of raster positions start .. start+count-1 (within the window)."""
        idx = self._span(start, count)
        if self.relative_time:
            return self.space_embed[idx % self.frame_tokens]
        return self.time_embed[idx // self.frame_tokens] + self.space_embed[idx % self.frame_tokens]

    def _span(self, start: int, count: int):
        """Raster positions start .. start+count-1."""
        return torch.arange(start, start + count, device=self.space_embed.device)

    def _masks(self, q_pos, k_pos, allowed):
        """Per block, the attention mask of queries at raster positions `q_pos` over keys at
        `k_pos`, where `allowed` (bool, len(q_pos) x len(k_pos); None: causal) says which pairs
        may attend. Absolute time: `allowed` itself. Relative time: an additive mask (1, heads,
        queries, keys), the learned bias of the pair's frame distance, and -inf where not allowed
        or beyond the band."""
        if not self.relative_time:
            return [allowed] * len(self.blocks)
        if allowed is None:
            allowed = q_pos[:, None] >= k_pos[None, :]
        dist = q_pos[:, None] // self.frame_tokens - k_pos[None, :] // self.frame_tokens
        allowed = allowed & (dist < self.frames)
        bias = self.time_bias[:, :, dist.clamp(0, self.frames - 1)]  # (blocks, heads, queries, keys)
        # With a batch axis of 1 the attention kernel broadcasts the mask fast; without it, not.
        return list(bias.masked_fill(~allowed, float("-inf")).unsqueeze(1).unbind(0))

    def _embed_codes(self, codes):
        """codes (B, N, P) -> (B, N, D); entries < 0 mean [MASK] for that part."""
        out = 0
        for p in range(self.n_parts):
            c = codes[..., p]
            emb = self.code_embed[p](c.clamp(min=0))
            out = out + torch.where((c < 0).unsqueeze(-1), self.mask_embed[p], emb)
        return out

    def _previous(self, tokens, start: int, count: int):
        """Embeddings (B, count, D) of the codes one frame before positions start .. start+count-1;
        `tokens` (B, L, P) are the known tokens from position 0; zero for the first frame."""
        out = torch.zeros(tokens.shape[0], count, self.dim, device=tokens.device)
        first = min(count, max(0, self.frame_tokens - start))  # positions before it are in the first frame
        if first < count:  # slices, not a mask on the device: no transfer to the host to test it
            prev = tokens[:, start + first - self.frame_tokens:start + count - self.frame_tokens]
            out[:, first:] = sum(self.prev_embed[p](prev[..., p]) for p in range(self.n_parts))
        return out

    def _inputs(self, tokens, start: int):
        """Shifted inputs for raster positions start .. start+N-1: the input at position i is
        token i-1 (the start token at position 0). `tokens` (B, N, P) are the tokens at
        positions start-1 .. start+N-2 (for start = 0 the first is dropped and replaced)."""
        b, n, _ = tokens.shape
        emb = self._embed_codes(tokens)
        if start == 0:
            emb = torch.cat([self.start.expand(b, 1, self.dim), emb[:, :-1]], 1) if n > 0 else emb
        return emb + self._positions(start, n)

    def _part_logits(self, hidden, targets):
        """Logits (B, N, P, K) of every part given the hidden states and the true earlier parts."""
        h = self.ln_out(hidden)
        logits = [self.heads[0](h)]
        for p in range(1, self.n_parts):
            h = h + self.part_embed[p - 1](targets[..., p - 1])
            logits.append(self.heads[p](h))
        return torch.stack(logits, 2)

    # --- training -----------------------------------------------------------------------------
    def forward(self, codes, parallel_frame: "int | None" = None, mask_ratio: "float | None" = None):
        """codes (B, T, h, w, P). Returns the per-code NLL (B, T*h*w, P) in nats of the
        sequential model and, when `parallel_frame` is given, the masked-token NLL of the parallel
        head on that frame (mean over masked codes; None otherwise). The parallel block rides on
        the same forward pass: its tokens attend to the causal prefix and to each other."""
        b, t = codes.shape[:2]
        tokens = codes.reshape(b, t * self.frame_tokens, self.n_parts)
        n = tokens.shape[1]
        x = self._inputs(tokens, 0) + self._previous(tokens, 0, n)
        mask = None  # causal
        if parallel_frame is not None:
            j = parallel_frame
            fr = tokens[:, j * self.frame_tokens:(j + 1) * self.frame_tokens]
            ratio = mask_ratio if mask_ratio is not None else math.cos(math.pi / 2 * torch.rand(()).item())
            n_mask = max(1, math.ceil(ratio * self.frame_tokens))
            # Drawn on the CPU (the global generator, as on every device), then moved.
            order = torch.rand(b, self.frame_tokens).argsort(1).to(codes.device)
            masked = torch.zeros(b, self.frame_tokens, dtype=torch.bool, device=codes.device)
            masked.scatter_(1, order[:, :n_mask], True)
            q_tokens = torch.where(masked.unsqueeze(-1), torch.full_like(fr, -1), fr)
            q = (self._embed_codes(q_tokens) + self._positions(j * self.frame_tokens, self.frame_tokens)
                 + self._previous(tokens, j * self.frame_tokens, self.frame_tokens) + self.parallel_flag)
            x = torch.cat([x, q], 1)
            total = n + self.frame_tokens
            mask = torch.ones(total, total, dtype=torch.bool, device=codes.device).tril()
            mask[n:, :] = False
            # Keys at positions <= j*hw hold the start token and the tokens of frames < j.
            mask[n:, :j * self.frame_tokens + 1] = True
            mask[n:, n:] = True
        pos = self._span(0, n)
        if parallel_frame is not None:  # the parallel block's tokens lie in frame j
            pos = torch.cat([pos, self._span(parallel_frame * self.frame_tokens, self.frame_tokens)])
        masks = self._masks(pos, pos, mask)
        for block, m in zip(self.blocks, masks):
            x = block(x, mask=m, causal=m is None)
        seq_logits = self._part_logits(x[:, :n], tokens)
        nll = F.cross_entropy(seq_logits.reshape(-1, self.n_codes), tokens.reshape(-1), reduction="none").view(b, n, self.n_parts)
        par_nll = None
        if parallel_frame is not None:
            par_logits = self.parallel_head(self.parallel_ln(x[:, n:])).view(b, self.frame_tokens, self.n_parts, self.n_codes)
            per = F.cross_entropy(par_logits.reshape(-1, self.n_codes), fr.reshape(-1), reduction="none")
            per = per.view(b, self.frame_tokens, self.n_parts)[masked]
            par_nll = per.mean()
        return nll, par_nll

    # --- sampling -----------------------------------------------------------------------------
    def _run(self, x, caches, store=True, mask=None, masks=None):
        """Run the blocks over x with their caches; `mask` is shared by all blocks, `masks` (one
        per block, from `_masks`) replaces it."""
        for block, cache, m in zip(self.blocks, caches, masks or [mask] * len(self.blocks)):
            x = block(x, mask=m, cache=cache, store=store)
        return x

    def _prime(self, context):
        """Fill fresh caches with the context frames (B, t0, h, w, P); returns caches and the
        hidden state of the last position (which predicts the next token)."""
        b, t0 = context.shape[:2]
        tokens = context.reshape(b, t0 * self.frame_tokens, self.n_parts)
        caches = [dict() for _ in self.blocks]
        # Inputs for positions 0 .. t0*hw: the start token then every context token.
        x = self._inputs(torch.cat([tokens, tokens[:, :1]], 1), 0) + self._previous(tokens, 0, t0 * self.frame_tokens + 1)
        mask = torch.ones(x.shape[1], x.shape[1], dtype=torch.bool, device=x.device).tril()
        h = self._run(x, caches, mask=mask)
        return caches, h[:, -1:]

    def _sample_parts(self, h, temperature, generator):
        """Sample the P parts of one position from hidden state h (B, 1, D) -> (B, 1, P)."""
        hn = self.ln_out(h)
        parts = []
        for p in range(self.n_parts):
            if p > 0:
                hn = hn + self.part_embed[p - 1](parts[-1])
            parts.append(_sample(self.heads[p](hn), temperature, generator))
        return torch.stack(parts, -1)

    @torch.no_grad()
    def generate_frame_sequential(self, context, temperature=1.0, generator=None):
        """Next frame (B, h, w, P) after `context` (B, t0, h, w, P), code by code with a KV cache."""
        b, t0 = context.shape[:2]
        caches, h = self._prime(context)
        start = t0 * self.frame_tokens
        known = context.reshape(b, start, self.n_parts)
        out = []
        for i in range(self.frame_tokens):
            tok = self._sample_parts(h, temperature, generator)
            out.append(tok)
            if i + 1 < self.frame_tokens:
                x = self._embed_codes(tok) + self._positions(start + i + 1, 1) + self._previous(known, start + i + 1, 1)
                h = self._run(x, caches)
        return torch.cat(out, 1).view(b, self.height, self.width, self.n_parts)

    @torch.no_grad()
    def generate_frame_parallel(self, context, steps=8, temperature=1.0, generator=None):
        """Next frame (B, h, w, P) in `steps` MaskGIT rounds: each round predicts every masked
        code, keeps the most confident ones (cosine schedule) and re-masks the rest."""
        b, t0 = context.shape[:2]
        n_tok = self.frame_tokens
        prefix = context.reshape(b, t0 * n_tok, self.n_parts)
        caches = [dict() for _ in self.blocks]
        x = self._inputs(prefix, 0) + self._previous(prefix, 0, t0 * n_tok)  # the start token and all but the last
        self._run(x, caches, mask=torch.ones(x.shape[1], x.shape[1], dtype=torch.bool, device=x.device).tril())
        # Position t0*hw's key holds the last context token; it belongs to the prefix too.
        last = self._embed_codes(prefix[:, -1:]) + self._positions(t0 * n_tok, 1) + self._previous(prefix, t0 * n_tok, 1)
        self._run(last, caches)
        frame = torch.full((b, n_tok, self.n_parts), -1, dtype=torch.long, device=context.device)
        pos = self._positions(t0 * n_tok, n_tok) + self._previous(prefix, t0 * n_tok, n_tok) + self.parallel_flag
        for step in range(steps):
            h = self._run(self._embed_codes(frame) + pos, caches, store=False)
            frame = self._parallel_round(h, frame, step, steps, temperature, generator)
        return frame.view(b, self.height, self.width, self.n_parts)

    def _parallel_round(self, h, frame, step: int, steps: int, temperature, generator):
        """One MaskGIT round: from the hidden states h (B, N, D) of the frame's tokens, sample
        every masked code of `frame` (B, N, P; -1 = masked), keep the most confident (cosine
        schedule) and re-mask the rest."""
        temperature = _effective_temperature(temperature)  # its Gumbel noise too: a tiny one is 0
        b, n_tok = frame.shape[:2]
        masked = frame[..., 0] < 0  # (B, N): a position's parts are masked together, as in training
        logits = self.parallel_head(self.parallel_ln(h)).view(b, n_tok, self.n_parts, self.n_codes)
        sampled = _sample(logits, temperature, generator)
        logp = torch.log_softmax(logits, -1).gather(-1, sampled.unsqueeze(-1)).squeeze(-1).sum(-1)
        confidence = torch.where(masked, logp, torch.full_like(logp, math.inf))
        n_masked_after = math.floor(n_tok * math.cos(math.pi / 2 * (step + 1) / steps))
        keep_masked = torch.zeros_like(masked)
        if n_masked_after > 0:
            # Randomness in the choice (as MaskGIT's temperature-annealed noise) avoids freezing
            # the first guesses in a fixed spatial pattern.
            uniform = _uniform(confidence, generator).clamp(1e-9, 1 - 1e-9)
            score = confidence - torch.log(-torch.log(uniform)) * temperature * (1 - (step + 1) / steps)
            keep_masked.scatter_(1, score.argsort(1)[:, :n_masked_after], True)
        fill = masked & ~keep_masked
        return torch.where(fill.unsqueeze(-1), sampled, frame)

    @torch.no_grad()
    def stream(self, context, n_frames, temperature=1.0, parallel=False, steps=8, generator=None):
        """Yield the `n_frames` frames (B, h, w, P) that continue `context` (B, t0, h, w, P), one
        by one. Absolute time: each frame from a window of the last `frames - 1` frames, the cache
        rebuilt each time. Relative time: the cache rolls (see the module docstring)."""
        if self.relative_time:
            decoder = _RollingDecoder(self, context)
            for _ in range(n_frames):
                yield (decoder.parallel(steps, temperature, generator) if parallel
                       else decoder.sequential(temperature, generator))
            return
        frames = [context[:, i] for i in range(context.shape[1])]
        for _ in range(n_frames):
            window = torch.stack(frames[-(self.frames - 1):], 1)
            if parallel:
                nxt = self.generate_frame_parallel(window, steps, temperature, generator)
            else:
                nxt = self.generate_frame_sequential(window, temperature, generator)
            frames.append(nxt)
            yield nxt

    @torch.no_grad()
    def generate(self, context, n_frames, temperature=1.0, parallel=False, steps=8, generator=None):
        """The `n_frames` frames (B, n_frames, h, w, P) that continue `context` (B, t0, h, w, P)."""
        return torch.stack(list(self.stream(context, n_frames, temperature, parallel, steps, generator)), 1)


class _RollingDecoder:
    """Decoding state of a relative-time model: per block the keys and values of raster
    positions `first` .. `end - 1`, and every token known so far (context and generated).

    The positions `end` .. up to the next frame's first one (whose input is the last known token)
    are pending: they are run at the start of the next frame, in the same call as a parallel
    round's first step when the next frame is decoded in parallel (one call per frame fewer)."""

    def __init__(self, model: LatentVideoTransformer, context):
        self.model = model
        b, t0 = context.shape[:2]
        self.known = context.reshape(b, t0 * model.frame_tokens, model.n_parts)
        self.caches = [dict() for _ in model.blocks]
        self.first = self.end = 0
        self.memo = {}
        # Positions 0 .. t0*hw - 1: the start token, then every context token but the last.
        self._run(self._inputs(0, t0 * model.frame_tokens), self._masks(0, t0 * model.frame_tokens, 0))

    def _inputs(self, start: int, count: int):
        """Inputs (B, count, D) of raster positions start .. start+count-1: the known token before
        each (at position 0 the start token), its place and the code one frame earlier."""
        m = self.model
        tokens = self.known[:, max(start - 1, 0):start + count - 1]
        x = m._inputs(torch.cat([tokens, tokens[:, :1]], 1) if start == 0 else tokens, start)
        return x + m._previous(self.known, start, count)

    def _run(self, x, masks, queries: int = 0):
        """Run positions `end` .. (x's length less `queries`) with inputs x, storing their keys and
        values; the last `queries` rows of x are a parallel round's block, run in the same call
        and not stored. Returns the hidden states."""
        m = self.model
        h = m._run(x, self.caches, masks=masks)
        n = x.shape[1] - queries
        if queries:
            for cache in self.caches:
                cache["k"], cache["v"] = cache["k"][:, :, :-queries], cache["v"][:, :, :-queries]
        self.end += n
        return h

    def _masks(self, q_start: int, q_count: int, block: int = 0, pairs: str = "causal"):
        """Masks of the queries at raster positions q_start .. q_start+q_count-1, causal over the
        cached keys `first` .. and themselves; `block` more queries (a parallel round at the
        frame starting at q_start + q_count - 1) see all of those and each other. `pairs='all'`:
        every pair allowed (a row that one frame's single queries slice). `first` is a whole
        frame, so the masks depend only on positions relative to it, and repeat from frame to
        frame once the band is full."""
        key = (q_start - self.first, q_count, block, pairs)
        if key not in self.memo:
            m = self.model
            q = m._span(q_start, q_count)
            k = m._span(self.first, q_start + q_count - self.first)
            allowed = None
            if pairs == "all":
                allowed = torch.ones(len(q), len(k), dtype=torch.bool, device=k.device)
            if block:
                frame = m._span(q_start + q_count - 1, block)
                causal = q[:, None] >= k[None, :]
                allowed = torch.ones(q_count + block, len(k) + block, dtype=torch.bool, device=k.device)
                allowed[:q_count] = torch.cat([causal, causal.new_zeros(q_count, block)], 1)
                q, k = torch.cat([q, frame]), torch.cat([k, frame])
            self.memo[key] = m._masks(q, k, allowed)
        return self.memo[key]

    def _trim(self):
        """Drop from the cache the frames out of the band of the first pending position (the
        earliest query to come)."""
        m, hw = self.model, self.model.frame_tokens
        keep = max(0, (self.end // hw - m.frames + 1) * hw)
        if keep > self.first:
            for cache in self.caches:
                cache["k"], cache["v"] = cache["k"][:, :, keep - self.first:], cache["v"][:, :, keep - self.first:]
            self.first = keep

    def sequential(self, temperature, generator):
        """The next frame (B, h, w, P), code by code."""
        m, hw = self.model, self.model.frame_tokens
        start = self.known.shape[1]
        self._trim()
        pending = start + 1 - self.end  # up to the frame's first position
        h = self._run(self._inputs(self.end, pending), self._masks(self.end, pending))[:, -1:]
        self._trim()  # the pending positions of the frame before may have needed one frame more
        # Every query of this frame lies in the same frame: one bias row serves all of them.
        row = self._masks(start, hw, pairs="all")
        out = []
        for i in range(hw):
            tok = m._sample_parts(h, temperature, generator)
            out.append(tok)
            self.known = torch.cat([self.known, tok], 1)
            if i + 1 < hw:
                p = start + i + 1
                h = self._run(self._inputs(p, 1), [r[..., i + 1:i + 2, :p + 1 - self.first] for r in row])
        return torch.cat(out, 1).view(-1, m.height, m.width, m.n_parts)

    def parallel(self, steps, temperature, generator):
        """The next frame (B, h, w, P) in `steps` MaskGIT rounds over the cached past (see
        `LatentVideoTransformer.generate_frame_parallel`). The pending positions run in the
        first round's call; the frame's own keys are left pending for the next frame."""
        m, hw = self.model, self.model.frame_tokens
        start = self.known.shape[1]
        self._trim()
        b = self.known.shape[0]
        pending = start + 1 - self.end
        query = m._positions(start, hw) + m._previous(self.known, start, hw) + m.parallel_flag
        frame = torch.full((b, hw, m.n_parts), -1, dtype=torch.long, device=self.known.device)
        first_masks = self._masks(self.end, pending, block=hw)
        x = torch.cat([self._inputs(self.end, pending), m._embed_codes(frame) + query], 1)
        h = self._run(x, first_masks, queries=hw)[:, pending:]
        self._trim()
        masks = self._masks(start + 1, 0, block=hw)
        for step in range(steps):
            if step:
                h = m._run(m._embed_codes(frame) + query, self.caches, store=False, masks=masks)
            frame = m._parallel_round(h, frame, step, steps, temperature, generator)
        self.known = torch.cat([self.known, frame], 1)
        return frame.view(b, m.height, m.width, m.n_parts)


def _generator_device(generator, like: torch.Tensor) -> torch.device:
    """Where random numbers are drawn: the generator's device; torch's global CPU generator when
    there is none (as before devices), whatever device `like` is on."""
    return generator.device if generator is not None else torch.device("cpu")


def _uniform(like: torch.Tensor, generator) -> torch.Tensor:
    """U(0, 1) numbers of `like`'s shape on its device, drawn on the generator's device (a CPU
    generator gives the same numbers whatever device the model runs on)."""
    return torch.rand(like.shape, generator=generator, device=_generator_device(generator, like)).to(like.device)


# Sampling temperatures below this are taken as 0 (argmax). Dividing the float32 logits by a
# tinier one can overflow (logits / 1e-40 = inf: NaN probabilities), and sampling at it is argmax
# already but for near-ties: a code whose logit is 1e-5 below the best's is drawn e^10 times less
# often than the best.
ARGMAX_TEMPERATURE = 1e-6


def _effective_temperature(temperature: float) -> float:
    """`temperature`, or 0 (argmax) below ARGMAX_TEMPERATURE."""
    return 0.0 if temperature < ARGMAX_TEMPERATURE else temperature


def _sample(logits, temperature, generator):
    """Sample indices from logits (..., K); temperature 0 (or below ARGMAX_TEMPERATURE) = argmax.
    The draw is made on the generator's device (a CPU generator: the same samples on every device)."""
    temperature = _effective_temperature(temperature)
    if temperature <= 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float() / temperature, -1)
    flat = probs.reshape(-1, probs.shape[-1]).to(_generator_device(generator, probs))
    return torch.multinomial(flat, 1, generator=generator).view(probs.shape[:-1]).to(logits.device)
