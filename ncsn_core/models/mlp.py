"""A noise-conditional MLP score model for 2-D data."""
from __future__ import annotations

import torch
from torch import nn


class MLPScore(nn.Module):
    """s(x, i) for x: (B, D) -> (B, D). The level index enters through a learned embedding added
    after each hidden layer (a per-level bias, the 1-D analogue of CondInstanceNorm's shift)."""

    def __init__(self, dim: int, hidden: int, num_classes: int):
        super().__init__()
        self.inp = nn.Linear(dim, hidden)
        self.hidden = nn.ModuleList([nn.Linear(hidden, hidden) for _ in range(2)])
        self.embeds = nn.ModuleList([nn.Embedding(num_classes, hidden) for _ in range(3)])
        self.out = nn.Linear(hidden, dim)
        for e in self.embeds:
            nn.init.zeros_(e.weight)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = nn.functional.softplus(self.inp(x) + self.embeds[0](labels))
        for lin, emb in zip(self.hidden, self.embeds[1:]):
            h = nn.functional.softplus(lin(h) + emb(labels))
        return self.out(h)
