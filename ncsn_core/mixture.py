"""2-D Gaussian mixtures with exact scores: the toy lab's data (ncsn_core.toy) and the 'toy' data set (ncsn_core.data).
Apart from toy.py, which runs samplers on them, so that data.py can draw the toy set without importing the samplers."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import torch


@dataclass(frozen=True)
class GaussianMixture:
    """p(x) = sum_k w_k N(x; mu_k, std^2 I) in 2-D. Its sigma-perturbed version is the same mixture with
    variance std^2 + sigma^2 (not sigma^2 alone: the reference code's toy used std sigma, which is exact
    only at sigma = 1)."""
    weights: Sequence[float]
    means: Sequence[Sequence[float]]
    std: float = 1.0

    def _params(self, device=None):
        w = torch.tensor(self.weights, dtype=torch.float32, device=device)
        mu = torch.tensor(self.means, dtype=torch.float32, device=device)
        return w, mu

    def log_prob(self, x: torch.Tensor, sigma: float = 0.0) -> torch.Tensor:
        """log p_sigma(x) for x (N, 2)."""
        w, mu = self._params(x.device)
        var = self.std ** 2 + sigma ** 2
        d2 = ((x[:, None, :] - mu[None]) ** 2).sum(-1)
        comp = -0.5 * d2 / var - math.log(2 * math.pi * var)
        return torch.logsumexp(comp + w.log()[None], dim=1)

    def score(self, x: torch.Tensor, sigma: float = 0.0) -> torch.Tensor:
        """Exact grad_x log p_sigma(x) = sum_k r_k(x) (mu_k - x) / (std^2 + sigma^2), x (N, 2)."""
        w, mu = self._params(x.device)
        var = self.std ** 2 + sigma ** 2
        d2 = ((x[:, None, :] - mu[None]) ** 2).sum(-1)
        resp = torch.softmax(-0.5 * d2 / var + w.log()[None], dim=1)
        return (resp[..., None] * (mu[None] - x[:, None, :])).sum(1) / var

    def sample(self, n: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        w, mu = self._params()
        k = torch.multinomial(w, n, replacement=True, generator=generator)
        return mu[k] + self.std * torch.randn(n, 2, generator=generator)

    def score_net(self, sigmas: torch.Tensor):
        """A score_net(x, labels) with the exact scores of each sigma_i-perturbed mixture."""
        def net(x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            return self.score(x, float(sigmas[int(labels[0])]))
        return net


def paper_mixture() -> GaussianMixture:
    """p = 1/5 N((-5,-5), I) + 4/5 N((5,5), I) (paper, Sec. 3.2.2)."""
    return GaussianMixture(weights=(0.2, 0.8), means=((-5.0, -5.0), (5.0, 5.0)))
