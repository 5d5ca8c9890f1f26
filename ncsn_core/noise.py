"""Geometric noise ladder sigma_1 > ... > sigma_L and helpers for choosing it."""
from __future__ import annotations

import math
import warnings
from typing import Optional

import torch

from .config import NoiseConfig


def geometric_sigmas(sigma_begin: float, sigma_end: float, num_classes: int) -> torch.Tensor:
    """Descending geometric ladder, shape (L,), float32; index 0 is the largest sigma (paper, Sec. 4.2)."""
    if num_classes == 1:
        return torch.tensor([float(sigma_begin)])
    return torch.exp(torch.linspace(math.log(sigma_begin), math.log(sigma_end), num_classes)).float()


def sigmas_from_config(cfg: NoiseConfig) -> torch.Tensor:
    return geometric_sigmas(cfg.sigma_begin, cfg.sigma_end, cfg.num_classes)


def suggest_sigma_begin(data: torch.Tensor, max_points: int = 2000, seed: int = 0) -> float:
    """sigma_1 as large as the largest pairwise distance between training points (NCSNv2, Technique 1).

    data: (N, ...) any shape; at most max_points are compared (random subset, seeded) to bound the cost.
    """
    x = data.reshape(len(data), -1).float()
    if len(x) > max_points:
        g = torch.Generator().manual_seed(seed)
        x = x[torch.randperm(len(x), generator=g)[:max_points]]
    return float(torch.cdist(x, x).max())


def check_sigma_end(sigma_end: float, dim: int, quantisation: Optional[float] = 1 / 256) -> Optional[str]:
    """A warning text when sigma_L is so small that the DSM loss is dominated by noise, else None.

    The DSM target -z/sigma has variance 1/sigma^2 per dimension; below the data's quantisation step
    (1/256 for 8-bit images) the perturbed data no longer covers the gaps between pixel values and the
    sigma^2-weighted loss is mostly the irreducible variance of z, so the level learns little.
    """
    if quantisation is not None and sigma_end < quantisation:
        return (f"sigma_end={sigma_end:g} is below the data's quantisation step {quantisation:.4g}: the loss at "
                f"that level is dominated by noise; use sigma_end >= {quantisation:.4g} (paper images: 0.01)")
    return None


def warn_if_bad_ladder(cfg: NoiseConfig, dim: int) -> None:
    msg = check_sigma_end(cfg.sigma_end, dim)
    if msg:
        warnings.warn(msg, stacklevel=2)
