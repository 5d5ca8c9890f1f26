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


@dataclass(frozen=True)
class NoiseDraw:
    """How each example's sigma is drawn (TrainConfig.sigma_sampling): 'levels' (the paper), 'log-uniform'
    between the ladder's ends, or 'log-normal' with ln sigma ~ N(mean, std^2) (Karras et al. 2022)."""
    kind: str = "levels"
    mean: float = -1.9
    std: float = 1.2


LEVELS = NoiseDraw()


def nearest_level(sigma: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """Index of the ladder level nearest to each sigma on a log scale, (B,) long (for per-level reports)."""
    return (sigma.log()[:, None] - sigmas.log()[None, :]).abs().argmin(dim=1)


def draw_sigmas(draw: NoiseDraw, batch: int, sigmas: torch.Tensor, generator: Optional[torch.Generator] = None,
                labels: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(cond, sigma, labels), each (B,): what the network is given (level indices, or sigma values for the
    continuous draws), each example's sigma, and its (nearest) level index."""
    dev = sigmas.device
    if draw.kind == "levels":
        labels = random_labels(batch, len(sigmas), dev, generator) if labels is None else labels
        return labels, sigmas[labels], labels
    if draw.kind == "log-uniform":
        lo, hi = sigmas.min().log(), sigmas.max().log()
        sigma = (lo + torch.rand(batch, device=dev, generator=generator) * (hi - lo)).exp()
    elif draw.kind == "log-normal":
        sigma = (draw.mean + draw.std * torch.randn(batch, device=dev, generator=generator)).exp()
    else:
        raise ValueError(f"unknown sigma sampling {draw.kind!r}: choose levels, log-uniform or log-normal")
    return sigma, sigma, nearest_level(sigma, sigmas)


def loss_weight(sigma: torch.Tensor, anneal_power: float, weighting: str) -> torch.Tensor:
    """Weight on 1/2 |s - target|^2: sigma^anneal_power (the paper), or for 'edm' sigma^2 (1 + sigma^2 / sd^2),
    which is Karras et al.'s lambda(sigma) = (sigma^2 + sd^2) / (sigma sd)^2 on |D - x|^2 = sigma^4 |s - target|^2,
    so that with their preconditioning every sigma's loss starts near 1 per pixel (sd = SIGMA_DATA)."""
    if weighting == "sigma2":
        return sigma ** anneal_power
    if weighting == "edm":
        from .models import SIGMA_DATA
        return sigma ** 2 * (1 + (sigma / SIGMA_DATA) ** 2)
    raise ValueError(f"unknown weighting {weighting!r}: choose sigma2 or edm")


def dsm_loss(score_net: ScoreNet, x: torch.Tensor, sigmas: torch.Tensor, labels: Optional[torch.Tensor] = None,
             anneal_power: float = 2.0, generator: Optional[torch.Generator] = None, draw: NoiseDraw = LEVELS,
             weighting: str = "sigma2", part: Optional[slice] = None) -> LossResult:
    """Annealed DSM: x~ = x + sigma z, target -(x~ - x)/sigma^2, weight sigma^anneal_power (loss_weight).

    l(i) = 1/2 * sum_pixels |s(x~, i) - target|^2 * sigma_i^anneal_power, averaged over the batch
    (a sum over pixels, as the reference code; about dim/2 at initialisation with anneal_power = 2).
    x: (B, ...) data; sigmas: (L,) descending; labels: (B,) level indices or None to draw them (`draw`).
    part: the rows this process computes (DDP): the noise is drawn for all of x, as one process draws it, and
    only these rows are kept; the result covers them alone.
    """
    cond, sig, labels = draw_sigmas(draw, len(x), sigmas, generator, labels)
    z = torch.randn(x.shape, device=x.device, dtype=x.dtype, generator=generator)
    if part is not None:
        x, z, cond, sig, labels = x[part], z[part], cond[part], sig[part], labels[part]
    sigma = _bcast(sig, x)
    x_tilde = x + sigma * z
    target = -(x_tilde - x) / sigma ** 2
    per_example = 0.5 * _flat_sum((score_net(x_tilde, cond) - target) ** 2) * loss_weight(sig, anneal_power, weighting)
    return LossResult(per_example.mean(), per_example, labels)


def ssm_loss(score_net: ScoreNet, x: torch.Tensor, sigmas: torch.Tensor, labels: Optional[torch.Tensor] = None,
             anneal_power: float = 2.0, variance_reduced: bool = False, n_particles: int = 1,
             generator: Optional[torch.Generator] = None, draw: NoiseDraw = LEVELS, weighting: str = "sigma2",
             part: Optional[slice] = None) -> LossResult:
    """Sliced score matching on the sigma_i-perturbed data (Song et al. 2019), weighted like DSM.

    Per example: v^T (d s/d x) v + 1/2 (v^T s)^2, or with variance reduction (v Gaussian)
    v^T (d s/d x) v + 1/2 |s|^2. Sums run over every data dimension (all of C, H, W; the reference
    code's non-VR variant reduced over the last axis only, which is wrong for images).
    With a single level (sigmas = [~0]) this is plain SSM on the data. part: as in dsm_loss.
    """
    cond, sig, labels = draw_sigmas(draw, len(x), sigmas, generator, labels)
    sigma = _bcast(sig, x)
    x_tilde = (x + sigma * torch.randn(x.shape, device=x.device, dtype=x.dtype, generator=generator))
    x_rep = x_tilde.repeat_interleave(n_particles, dim=0).detach().requires_grad_(True)
    v = torch.randn(x_rep.shape, device=x.device, dtype=x.dtype, generator=generator)
    if part is not None:  # example i owns particle rows i*n_particles .. (i+1)*n_particles - 1
        rows = slice(part.start * n_particles, part.stop * n_particles)
        x, cond, sig, labels = x[part], cond[part], sig[part], labels[part]
        x_rep, v = x_rep[rows].detach().requires_grad_(True), v[rows]
    cond_rep, sig_rep = cond.repeat_interleave(n_particles), sig.repeat_interleave(n_particles)
    if not variance_reduced:  # Rademacher-like unit-norm projections, as in the SSM paper
        v = v / _bcast(v.reshape(len(v), -1).norm(dim=1), v) * (v[0].numel() ** 0.5)
    s = score_net(x_rep, cond_rep)
    sv = _flat_sum(s * v)
    grad_sv = torch.autograd.grad(sv.sum(), x_rep, create_graph=True)[0]
    jac_term = _flat_sum(grad_sv * v)
    norm_term = 0.5 * (_flat_sum(s ** 2) if variance_reduced else sv ** 2)
    per_particle = (jac_term + norm_term) * loss_weight(sig_rep, anneal_power, weighting)
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
                 n_particles: int = 1, generator: Optional[torch.Generator] = None, draw: NoiseDraw = LEVELS,
                 weighting: str = "sigma2", part: Optional[slice] = None) -> LossResult:
    """Dispatch by name: 'dsm', 'ssm' or 'ssm_vr'."""
    if kind == "dsm":
        return dsm_loss(score_net, x, sigmas, anneal_power=anneal_power, generator=generator, draw=draw,
                        weighting=weighting, part=part)
    if kind in ("ssm", "ssm_vr"):
        return ssm_loss(score_net, x, sigmas, anneal_power=anneal_power, variance_reduced=kind == "ssm_vr",
                        n_particles=n_particles, generator=generator, draw=draw, weighting=weighting, part=part)
    raise ValueError(f"unknown loss {kind!r}: choose dsm, ssm or ssm_vr")
