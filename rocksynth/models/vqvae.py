"""VQ-VAE frame autoencoder of the Latent Video Transformer (Rakhimov et al., VISAPP 2021).

A frame (C, H, W) is encoded to an (h, w) grid whose channel vector is split into `n_parts`
pieces; each piece is snapped to the nearest of `n_codes` vectors of its own codebook. The
codebooks follow the encoder outputs by exponential moving averages (no codebook gradient), and
codes nobody used for a while are restarted on random encoder outputs so the whole codebook
stays alive. Training loss: ||x - D(z_q)||^2 + beta ||E(x) - sg(z_q)||^2 (straight-through).
"""

import math

import torch
import torch.nn.functional as F
from torch import nn


class _ResBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1),
                                  nn.ReLU(), nn.Conv2d(channels, channels, 1))

    def forward(self, x):
        return x + self.body(x)


class EMAQuantizer(nn.Module):
    """`n_parts` codebooks of `n_codes` vectors of size `code_dim`, updated by EMA."""

    def __init__(self, n_parts: int, n_codes: int, code_dim: int, decay: float = 0.99,
                 dead_threshold: float = 1.0):
        super().__init__()
        self.n_parts, self.n_codes, self.code_dim = n_parts, n_codes, code_dim
        self.decay, self.dead_threshold, self.eps = decay, dead_threshold, 1e-5
        embed = torch.randn(n_parts, n_codes, code_dim) * 0.1
        self.register_buffer("embed", embed)
        self.register_buffer("cluster_size", torch.ones(n_parts, n_codes))
        self.register_buffer("embed_sum", embed.clone())
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))

    def _split(self, z):
        """(B, P*D, h, w) -> (P, B*h*w, D)."""
        b, _, h, w = z.shape
        return z.view(b, self.n_parts, self.code_dim, h, w).permute(1, 0, 3, 4, 2).reshape(self.n_parts, -1, self.code_dim)

    def lookup(self, codes):
        """codes (B, h, w, P) long -> z_q (B, P*D, h, w)."""
        b, h, w, p = codes.shape
        parts = [self.embed[i][codes[..., i]] for i in range(p)]  # each (B, h, w, D)
        return torch.stack(parts, dim=3).reshape(b, h, w, p * self.code_dim).permute(0, 3, 1, 2).contiguous()

    def nearest(self, flat):
        """flat (P, N, D) -> codes (P, N)."""
        dist = (flat.pow(2).sum(-1, keepdim=True) - 2 * flat @ self.embed.transpose(1, 2)
                + self.embed.pow(2).sum(-1).unsqueeze(1))
        return dist.argmin(-1)

    def forward(self, z):
        """Quantise z (B, P*D, h, w). Returns z_q (straight-through), codes (B, h, w, P),
        the commitment loss and the mean codebook perplexity (how many codes are in use)."""
        b, _, h, w = z.shape
        flat = self._split(z.detach())
        if self.training and not bool(self.initialised):
            self._init_from(flat)
        codes = self.nearest(flat)  # (P, N)
        onehot = F.one_hot(codes, self.n_codes).type(flat.dtype)  # (P, N, K)
        if self.training:
            self._ema_update(flat, onehot)
        codes_bhwp = codes.view(self.n_parts, b, h, w).permute(1, 2, 3, 0)
        z_q = self.lookup(codes_bhwp)
        commitment = F.mse_loss(z, z_q.detach())
        z_q = z + (z_q - z).detach()
        probs = onehot.mean(1)
        perplexity = torch.exp(-(probs * torch.log(probs + 1e-10)).sum(-1)).mean()
        return z_q, codes_bhwp, commitment, perplexity

    @torch.no_grad()
    def _init_from(self, flat):
        for p in range(self.n_parts):
            pick = torch.randint(0, flat.shape[1], (self.n_codes,))
            self.embed[p] = flat[p, pick]
        self.embed_sum.copy_(self.embed)
        self.cluster_size.fill_(1.0)
        self.initialised.fill_(True)

    @torch.no_grad()
    def _ema_update(self, flat, onehot):
        self.cluster_size.mul_(self.decay).add_(onehot.sum(1), alpha=1 - self.decay)
        self.embed_sum.mul_(self.decay).add_(onehot.transpose(1, 2) @ flat, alpha=1 - self.decay)
        total = self.cluster_size.sum(-1, keepdim=True)
        smoothed = (self.cluster_size + self.eps) / (total + self.n_codes * self.eps) * total  # Laplace smoothing
        self.embed.copy_(self.embed_sum / smoothed.unsqueeze(-1))
        # Dead-code restart (as in Jukebox): a code used less than once per batch on average (EMA)
        # jumps onto a random encoder output of this batch.
        for p in range(self.n_parts):
            dead = self.cluster_size[p] < self.dead_threshold
            n_dead = int(dead.sum())
            if n_dead:
                pick = torch.randint(0, flat.shape[1], (n_dead,))
                self.embed[p, dead] = flat[p, pick]
                self.embed_sum[p, dead] = flat[p, pick]
                self.cluster_size[p, dead] = 1.0


class VQVAE(nn.Module):
    """Frames (B, C, H, W) in [0, 1] -> codes (B, H/f, W/f, n_parts) and back; f = 2**n_down."""

    def __init__(self, channels: int = 1, n_down: int = 3, widths: "tuple | list" = (32, 64, 64),
                 n_parts: int = 2, n_codes: int = 64, code_dim: int = 32, beta: float = 0.25):
        super().__init__()
        widths = list(widths)
        if len(widths) != n_down:
            raise ValueError("need one width per downsampling")
        self.channels, self.n_down, self.n_parts, self.n_codes, self.beta = channels, n_down, n_parts, n_codes, beta
        latent = n_parts * code_dim
        enc = [nn.Conv2d(channels, widths[0] // 2, 3, padding=1)]
        prev = widths[0] // 2
        for width in widths:
            enc += [nn.ReLU(), nn.Conv2d(prev, width, 4, stride=2, padding=1)]
            prev = width
        enc += [_ResBlock(prev), _ResBlock(prev), nn.ReLU(), nn.Conv2d(prev, latent, 1)]
        self.encoder = nn.Sequential(*enc)
        self.quantizer = EMAQuantizer(n_parts, n_codes, code_dim)
        dec = [nn.Conv2d(latent, prev, 3, padding=1), _ResBlock(prev), _ResBlock(prev)]
        for width in reversed([widths[0] // 2] + widths[:-1]):  # mirror of the encoder
            dec += [nn.ReLU(), nn.ConvTranspose2d(prev, width, 4, stride=2, padding=1)]
            prev = width
        dec += [nn.ReLU(), nn.Conv2d(prev, channels, 3, padding=1)]
        self.decoder = nn.Sequential(*dec)

    @property
    def factor(self) -> int:
        return 2 ** self.n_down

    def forward(self, x):
        """Returns reconstruction, loss, codes and a dict of diagnostics."""
        z = self.encoder(x - 0.5)
        z_q, codes, commitment, perplexity = self.quantizer(z)
        recon = self.decoder(z_q) + 0.5
        mse = F.mse_loss(recon, x)
        loss = mse + self.beta * commitment
        psnr = -10 * math.log10(max(mse.item(), 1e-10))
        return recon, loss, codes, {"mse": mse.item(), "psnr": psnr, "perplexity": perplexity.item()}

    @torch.no_grad()
    def encode(self, x):
        """(B, C, H, W) in [0, 1] -> codes (B, h, w, P) long."""
        z = self.encoder(x - 0.5)
        b, _, h, w = z.shape
        codes = self.quantizer.nearest(self.quantizer._split(z))
        return codes.view(self.n_parts, b, h, w).permute(1, 2, 3, 0)

    @torch.no_grad()
    def decode(self, codes):
        """codes (B, h, w, P) -> frames (B, C, H, W) clipped to [0, 1]."""
        return (self.decoder(self.quantizer.lookup(codes)) + 0.5).clamp(0, 1)
