"""CondInstanceNorm++ (paper, Appendix A): instance norm whose scale, shift and mean-correction
depend on the noise-level index."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class CondInstanceNormPlus(nn.Module):
    """z_k = gamma[i,k] * (IN(x)_k + alpha[i,k] * mu_hat_k) + beta[i,k].

    IN uses the biased spatial variance; mu_hat_k = (mu_k - mean_k mu) / sqrt(var_k(mu) + 1e-5), with
    the unbiased variance across channels, as the reference code computes it. gamma and alpha start at
    N(1, 0.02), beta at 0. x: (B, C, H, W); labels: (B,) long noise-level indices.
    """

    def __init__(self, num_features: int, num_classes: int):
        super().__init__()
        self.num_features = num_features
        self.embed = nn.Embedding(num_classes, 3 * num_features)
        with torch.no_grad():
            self.embed.weight[:, : 2 * num_features].normal_(1.0, 0.02)
            self.embed.weight[:, 2 * num_features:].zero_()

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        means = x.mean(dim=(2, 3))
        mu_hat = (means - means.mean(dim=1, keepdim=True)) / torch.sqrt(means.var(dim=1, keepdim=True) + 1e-5)
        h = F.instance_norm(x, eps=1e-5)
        gamma, alpha, beta = self.embed(labels).chunk(3, dim=1)
        h = h + (alpha * mu_hat)[..., None, None]
        return gamma[..., None, None] * h + beta[..., None, None]
