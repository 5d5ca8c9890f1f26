"""A compact noise-conditional U-Net for CPU training: few channels at full resolution, most of
them at 1/2 and 1/4 resolution, where a convolution costs 4x and 16x less per channel pair."""
from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from . import ops
from .normalization import CondInstanceNormPlus
from .refinenet import CondResBlock


class NoiseEmbedding(nn.Module):
    """c_noise (B,) -> (B, dim): sines and cosines of c_noise at octave frequencies, then a two-layer MLP.
    c_noise = ln(sigma) / 4 spans about [-2, 1] for sigma in [0.002, 80] (Karras et al. 2022, Table 1)."""

    def __init__(self, dim: int, n_freqs: int = 8):
        super().__init__()
        self.register_buffer("freqs", math.pi * 2.0 ** torch.arange(n_freqs, dtype=torch.float32) / 4)
        self.mlp = nn.Sequential(nn.Linear(2 * n_freqs, dim), nn.SiLU(), nn.Linear(dim, dim), nn.SiLU())

    def forward(self, c_noise: torch.Tensor) -> torch.Tensor:
        a = c_noise[:, None].float() * self.freqs
        return self.mlp(torch.cat([a.sin(), a.cos()], dim=1))


class SelfAttention(nn.Module):
    """Global self-attention over the pixels of a (B, C, H, W) map, as in Ho et al. 2020's U-Net (there at 16x16; here
    at 1/4 resolution, 7x7 for MNIST, where it costs little): x + proj(attn(norm(x))), single-head, the norm
    noise-conditional like every other. proj starts at zero, so the block starts as the identity."""

    def __init__(self, c: int, num_classes: int, cond_dim: Optional[int] = None):
        super().__init__()
        self.norm = CondInstanceNormPlus(c, num_classes, cond_dim)
        self.qkv = nn.Conv2d(c, 3 * c, 1)
        self.proj = nn.Conv2d(c, c, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x, labels)).reshape(b, 3, c, h * w).transpose(-1, -2).unbind(1)
        a = F.scaled_dot_product_attention(q, k, v)  # (B, HW, C)
        return x + self.proj(a.transpose(-1, -2).reshape(b, c, h, w))


class CompactScoreNet(nn.Module):
    """s(x, i) for x in [0, 1], (B, C, H, W) -> (B, C, H, W); H and W divisible by 4.

    Encoder: full-res block (c0), down to 1/2 (c1, two blocks), down to 1/4 (c2, two blocks, the
    second dilated; with attention, a global self-attention block after them). Decoder: upsample, merge the skip
    with a 1x1 conv, one block per resolution.
    Conditioning is CondInstanceNorm++ on the level index, as in the paper's RefineNet; with cond_dim,
    forward(x, c_noise) takes an already scaled input and c_noise (B,) float, and every norm reads an
    embedding of c_noise instead (ScoreModel's continuous-sigma preconditioning).
    """

    def __init__(self, channels: int, widths: Sequence[int], num_classes: int, cond_dim: Optional[int] = None,
                 dropout: float = 0.0, attention: bool = False):
        super().__init__()
        c0, c1, c2 = widths
        k = dict(num_classes=num_classes, cond_dim=cond_dim, dropout=dropout)
        self.noise_embed = NoiseEmbedding(cond_dim) if cond_dim else None
        self.begin_conv = nn.Conv2d(channels, c0, 3, padding=1)
        self.enc0 = CondResBlock(c0, c0, **k)
        self.down1 = nn.Conv2d(c0, c1, 3, stride=2, padding=1)
        self.enc1 = nn.ModuleList([CondResBlock(c1, c1, **k), CondResBlock(c1, c1, **k)])
        self.down2 = nn.Conv2d(c1, c2, 3, stride=2, padding=1)
        self.enc2 = nn.ModuleList([CondResBlock(c2, c2, **k), CondResBlock(c2, c2, dilation=2, **k)])
        self.attn = SelfAttention(c2, num_classes, cond_dim) if attention else None
        self.merge1 = nn.Conv2d(c2 + c1, c1, 1)
        self.dec1 = CondResBlock(c1, c1, **k)
        self.merge0 = nn.Conv2d(c1 + c0, c0, 1)
        self.dec0 = CondResBlock(c0, c0, **k)
        self.norm_out = CondInstanceNormPlus(c0, num_classes, cond_dim)
        self.end_conv = nn.Conv2d(c0, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.noise_embed is not None:  # x is preconditioned already; labels is c_noise
            h0, labels = self.begin_conv(x), self.noise_embed(labels)
        else:
            h0 = self.begin_conv(2 * x - 1)
        h0 = self.enc0(h0, labels)
        h1 = self.down1(h0)
        for b in self.enc1:
            h1 = b(h1, labels)
        h2 = self.down2(h1)
        for b in self.enc2:
            h2 = b(h2, labels)
        if self.attn is not None:
            h2 = self.attn(h2, labels)
        u1 = F.interpolate(h2, size=h1.shape[2:], mode="bilinear", align_corners=False)
        d1 = self.dec1(ops.conv1x1_cat(self.merge1, u1, h1), labels)
        u0 = F.interpolate(d1, size=h0.shape[2:], mode="bilinear", align_corners=False)
        d0 = self.dec0(ops.conv1x1_cat(self.merge0, u0, h0), labels)
        return self.end_conv(F.elu(self.norm_out(d0, labels), inplace=True))
