"""Training objectives: annealed denoising score matching (paper, Eq. 5-6) and sliced score matching."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch

ScoreNet = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class LossResult:
    """loss: scalar to minimise; per_example: (B,) weighted loss of each example; labels: (B,) levels."""
    loss: torch.Tensor
    per_example: torch.Tensor
    labels: torch.Tensor


def _flat_sum(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(len(t), -1).sum(dim=1)


def _bcast(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.view(-1, *([1] * (like.dim() - 1)))


def random_labels(batch: int, num_classes: int, device, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """One uniformly drawn noise-level index per example (paper, Sec. 4.2)."""
    return torch.randint(0, num_classes, (batch,), device=device, generator=generator)


def dsm_loss(score_net: ScoreNet, x: torch.Tensor, sigmas: torch.Tensor, labels: Optional[torch.Tensor] = None,
             anneal_power: float = 2.0, generator: Optional[torch.Generator] = None) -> LossResult:
    """Annealed DSM: x~ = x + sigma_i z, target -(x~ - x)/sigma_i^2, weight sigma_i^anneal_power.

    l(i) = 1/2 * sum_pixels |s(x~, i) - target|^2 * sigma_i^anneal_power, averaged over the batch
    (a sum over pixels, as the reference code; about dim/2 at initialisation with anneal_power = 2).
    x: (B, ...) data; sigmas: (L,) descending; labels: (B,) level indices or None to draw them.
    """
    if labels is None:
        labels = random_labels(len(x), len(sigmas), x.device, generator)
    sigma = _bcast(sigmas[labels], x)
    z = torch.randn(x.shape, device=x.device, dtype=x.dtype, generator=generator)
    x_tilde = x + sigma * z
    target = -(x_tilde - x) / sigma ** 2
    per_example = 0.5 * _flat_sum((score_net(x_tilde, labels) - target) ** 2) * sigmas[labels] ** anneal_power
    return LossResult(per_example.mean(), per_example, labels)


def ssm_loss(score_net: ScoreNet, x: torch.Tensor, sigmas: torch.Tensor, labels: Optional[torch.Tensor] = None,
             anneal_power: float = 2.0, variance_reduced: bool = False, n_particles: int = 1,
             generator: Optional[torch.Generator] = None) -> LossResult:
    """Sliced score matching on the sigma_i-perturbed data (Song et al. 2019), weighted like DSM.

    Per example: v^T (d s/d x) v + 1/2 (v^T s)^2, or with variance reduction (v Gaussian)
    v^T (d s/d x) v + 1/2 |s|^2. Sums run over every data dimension (all of C, H, W; the reference
    code's non-VR variant reduced over the last axis only, which is wrong for images).
    With a single level (sigmas = [~0]) this is plain SSM on the data.
    """
    if labels is None:
        labels = random_labels(len(x), len(sigmas), x.device, generator)
    sigma = _bcast(sigmas[labels], x)
    x_tilde = (x + sigma * torch.randn(x.shape, device=x.device, dtype=x.dtype, generator=generator))
    x_rep = x_tilde.repeat_interleave(n_particles, dim=0).detach().requires_grad_(True)
    lab_rep = labels.repeat_interleave(n_particles)
    v = torch.randn(x_rep.shape, device=x.device, dtype=x.dtype, generator=generator)
    if not variance_reduced:  # Rademacher-like unit-norm projections, as in the SSM paper
        v = v / _bcast(v.reshape(len(v), -1).norm(dim=1), v) * (v[0].numel() ** 0.5)
    s = score_net(x_rep, lab_rep)
    sv = _flat_sum(s * v)
    grad_sv = torch.autograd.grad(sv.sum(), x_rep, create_graph=True)[0]
    jac_term = _flat_sum(grad_sv * v)
    norm_term = 0.5 * (_flat_sum(s ** 2) if variance_reduced else sv ** 2)
    per_particle = (jac_term + norm_term) * sigmas[lab_rep] ** anneal_power
    per_example = per_particle.view(len(x), n_particles).mean(dim=1)
    return LossResult(per_example.mean(), per_example, labels)


def loss_per_level(result: LossResult, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(sums, counts), each (L,): per-level sums of the per-example loss and how many examples had
    that level, for running means per sigma_i (the studio plots them)."""
    per = result.per_example.detach().float()
    sums = torch.zeros(num_classes, device=per.device).index_add_(0, result.labels, per)
    counts = torch.bincount(result.labels, minlength=num_classes).float()
    return sums, counts


def compute_loss(kind: str, score_net: ScoreNet, x: torch.Tensor, sigmas: torch.Tensor, anneal_power: float = 2.0,
                 n_particles: int = 1, generator: Optional[torch.Generator] = None) -> LossResult:
    """Dispatch by name: 'dsm', 'ssm' or 'ssm_vr'."""
    if kind == "dsm":
        return dsm_loss(score_net, x, sigmas, anneal_power=anneal_power, generator=generator)
    if kind in ("ssm", "ssm_vr"):
        return ssm_loss(score_net, x, sigmas, anneal_power=anneal_power, variance_reduced=kind == "ssm_vr",
                        n_particles=n_particles, generator=generator)
    raise ValueError(f"unknown loss {kind!r}: choose dsm, ssm or ssm_vr")
