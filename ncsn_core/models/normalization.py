"""CondInstanceNorm++ (paper, Appendix A): instance norm whose scale, shift and mean-correction
depend on the noise-level index."""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn


class _InstanceStats(torch.autograd.Function):
    """Spatial mean and biased variance per (example, channel) of x (B, C, H, W) -> two (B, C, 1, 1).

    Two passes (exact, unlike E[x^2] - E[x]^2) with vectorised reductions: torch.var_mean's Welford
    kernel is 10-40x slower here on a CPU. Backward needs only x and the mean, so training keeps no
    extra full-size tensor for the statistics.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor):
        mean = x.mean(dim=(2, 3), keepdim=True)
        var = (x - mean).square_().mean(dim=(2, 3), keepdim=True)
        ctx.save_for_backward(x, mean)
        return mean, var

    @staticmethod
    def backward(ctx, g_mean: torch.Tensor, g_var: torch.Tensor):
        x, mean = ctx.saved_tensors
        n = x.shape[2] * x.shape[3]
        # d mean/dx = 1/n, d var/dx = 2 (x - mean)/n: one multiply-add over x
        b = g_var * (2.0 / n)
        return torch.addcmul(g_mean / n - b * mean, x, b)


def instance_stats(x: torch.Tensor):
    """(mean, biased variance) over H and W of x (B, C, H, W), each (B, C, 1, 1); differentiable."""
    return _InstanceStats.apply(x)


def cond_instance_norm_plus_reference(x: torch.Tensor, gamma: torch.Tensor, alpha: torch.Tensor,
                                      beta: torch.Tensor) -> torch.Tensor:
    """The formula term by term, as the reference code computes it (gamma, alpha, beta: (B, C)): the
    oracle for tests and the eager baseline in benchmarks/, not used by the models."""
    means = x.mean(dim=(2, 3))
    mu_hat = (means - means.mean(dim=1, keepdim=True)) / torch.sqrt(means.var(dim=1, keepdim=True) + 1e-5)
    h = torch.nn.functional.instance_norm(x, eps=1e-5)
    h = h + (alpha * mu_hat)[..., None, None]
    return gamma[..., None, None] * h + beta[..., None, None]


class CondInstanceNormPlus(nn.Module):
    """z_k = gamma[i,k] * (IN(x)_k + alpha[i,k] * mu_hat_k) + beta[i,k].

    IN uses the biased spatial variance; mu_hat_k = (mu_k - mean_k mu) / sqrt(var_k(mu) + 1e-5), with
    the unbiased variance across channels, as the reference code computes it. gamma and alpha start at
    N(1, 0.02), beta at 0. x: (B, C, H, W); labels: (B,) long noise-level indices.

    With cond_dim, gamma, alpha and beta come from a linear map of a noise embedding (B, cond_dim) instead
    of a table row per level (continuous-sigma models); it starts at the same values (bias 1, 1, 0).

    Computed as one multiply-add per pixel, z = x * scale + shift, with per-(example, channel) scale and
    shift: two passes over x for the statistics and one for the output, where the literal formula takes
    six, and backward keeps only x (the literal formula keeps three full-size tensors).
    """

    def __init__(self, num_features: int, num_classes: int, cond_dim: Optional[int] = None):
        super().__init__()
        self.num_features = num_features
        if cond_dim is None:
            self.embed: nn.Module = nn.Embedding(num_classes, 3 * num_features)
            with torch.no_grad():
                self.embed.weight[:, : 2 * num_features].normal_(1.0, 0.02)
                self.embed.weight[:, 2 * num_features:].zero_()
        else:
            self.embed = nn.Linear(cond_dim, 3 * num_features)
            with torch.no_grad():
                self.embed.weight.normal_(0.0, 0.02)
                self.embed.bias.zero_()
                self.embed.bias[: 2 * num_features] = 1.0

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        mean, var = instance_stats(x)
        mu = mean.flatten(1)
        mu_hat = (mu - mu.mean(dim=1, keepdim=True)) / torch.sqrt(mu.var(dim=1, keepdim=True) + 1e-5)
        gamma, alpha, beta = self.embed(labels).chunk(3, dim=1)
        # gamma * ((x - mean) / sqrt(var + eps) + alpha * mu_hat) + beta  ==  x * scale + shift
        scale = gamma[..., None, None] * torch.rsqrt(var + 1e-5)
        shift = (beta + gamma * alpha * mu_hat)[..., None, None] - mean * scale
        return torch.addcmul(shift, x, scale)
