"""The compact recipe's training step as the benchmark scripts time it: the preset's loss (its sigma sampling and
weighting, its precision) on one fixed random batch, backward, and an Adam step (imported by the scripts beside it)."""
from __future__ import annotations

from typing import Callable, Optional

import torch

from ncsn_core.losses import NoiseDraw, compute_loss
from ncsn_core.precision import autocast


def train_step(cfg, model: torch.nn.Module, batch: int = 64,
               sigmas: Optional[torch.Tensor] = None) -> Callable[[], float]:
    """A closure running one step of `model` (train mode) under `cfg.train`; returns the loss. sigmas: the model's
    ladder (pass it for a wrapper without `.sigmas`, e.g. a torch.compile'd model)."""
    tc = cfg.train
    x = torch.rand(batch, cfg.data.channels, cfg.data.image_size, cfg.data.image_size)
    opt = torch.optim.Adam(model.parameters(), lr=1e-5)
    draw = NoiseDraw(tc.sigma_sampling, tc.lognormal_mean, tc.lognormal_std)
    sigmas = model.sigmas if sigmas is None else sigmas
    model.train()

    def step() -> float:
        with autocast(x.device, tc.precision):  # as training computes it: bf16 under autocast, fp32 as is
            res = compute_loss(tc.loss, model, x, sigmas, tc.anneal_power, 1, draw=draw, weighting=tc.weighting,
                               generator=torch.Generator().manual_seed(0))
        opt.zero_grad()
        res.loss.backward()
        opt.step()
        return res.loss.item()
    return step
