"""Discriminator guidance (Kim et al. 2023, "Refining generative process with discriminator guidance in score-based
diffusion models"): a small noise-conditional classifier d(x, sigma) that tells the training images smoothed by
sigma from the sampler's own samples smoothed by sigma. At its optimum logit d = log p_data,sigma - log
p_model,sigma, so the score s + w grad_x logit d(x, sigma) moves the sampler's score toward the data's (w = 1 in
theory); it corrects what the score network gets wrong without training the network again.

A checkpoint carries its discriminator beside its guide (`ncsn discriminator`); SampleConfig.dg_weight turns the
guidance on (ncsn_core.sampling.DiscriminatorGuided).
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Iterator, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .config import ConfigError
from .models import SIGMA_DATA


@dataclass(frozen=True)
class DiscriminatorConfig:
    """The discriminator's network and the sigmas it was trained on: widths per resolution (each after the first
    halves it), conv blocks per resolution, the embedding width of ln(sigma), and its training range
    [sigma_min, sigma_max] (log-uniform), outside which it does not guide."""
    image_channels: int = 1
    channels: Tuple[int, ...] = (16, 32, 64)
    blocks: Tuple[int, ...] = (1, 2, 2)
    emb: int = 64
    sigma_min: float = 0.02
    sigma_max: float = 2.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        object.__setattr__(self, "blocks", tuple(int(b) for b in self.blocks))
        if len(self.channels) != len(self.blocks) or not all(c % 8 == 0 and c > 0 for c in self.channels):
            raise ConfigError(f"discriminator channels {self.channels} and blocks {self.blocks}: give one block count "
                              f"per resolution and widths that are positive multiples of 8 (GroupNorm of 8 groups)")
        if not 0 < self.sigma_min < self.sigma_max:
            raise ConfigError(f"discriminator sigma range [{self.sigma_min}, {self.sigma_max}] must be 0 < min < max")


class Discriminator(nn.Module):
    """forward(x (B, C, H, W) in the data's [0, 1] scale plus noise, sigma (B,)) -> logits (B,): > 0 = "a training
    image". The input is scaled as the score network's is (Karras et al.'s c_in), so that its variance is about 1
    at every sigma; each conv block is modulated by the embedding of ln(sigma) (FiLM)."""

    def __init__(self, cfg: DiscriminatorConfig):
        super().__init__()
        self.cfg = cfg
        self.register_buffer("freqs", torch.exp(torch.linspace(0.0, math.log(64.0), cfg.emb // 8)))
        self.embed = nn.Sequential(nn.Linear(cfg.emb // 4, cfg.emb), nn.SiLU(), nn.Linear(cfg.emb, cfg.emb))
        self.inp = nn.Conv2d(cfg.image_channels, cfg.channels[0], 3, padding=1)
        self.convs, self.norms, self.films = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        prev = cfg.channels[0]
        for level, (c, n) in enumerate(zip(cfg.channels, cfg.blocks)):
            for j in range(n):
                self.convs.append(nn.Conv2d(prev, c, 3, stride=2 if (level > 0 and j == 0) else 1, padding=1))
                self.norms.append(nn.GroupNorm(8, c))
                self.films.append(nn.Linear(cfg.emb, 2 * c))
                prev = c
        self.out = nn.Linear(prev + cfg.emb, 1)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        s = sigma.view(-1, 1, 1, 1).to(x.dtype)
        h = self.inp((x - 0.5) * (s ** 2 + SIGMA_DATA ** 2).rsqrt())
        angle = (sigma.float().log() / 4)[:, None] * self.freqs[None]
        e = self.embed(torch.cat([angle.sin(), angle.cos()], dim=1)).to(h.dtype)
        for conv, norm, film in zip(self.convs, self.norms, self.films):
            scale, shift = film(e)[:, :, None, None].chunk(2, dim=1)
            h = F.silu(norm(conv(h)) * (1 + scale) + shift)
        return self.out(torch.cat([h.mean((2, 3)), e], dim=1)).squeeze(1)


def build_discriminator(entry: dict) -> Discriminator:
    """The discriminator a checkpoint carries ({"config", "weights", ...}), in eval mode, its weights frozen."""
    d = Discriminator(DiscriminatorConfig(**entry["config"]))
    d.load_state_dict(entry["weights"])
    d.requires_grad_(False)
    return d.eval()


@dataclass(frozen=True)
class DiscriminatorStep:
    """One reported training step of the discriminator: its BCE on the last batch, and, at the end, on held-out
    images (`validation`: one (sigma_lo, sigma_hi, bce, accuracy) per band; chance is ln 2 = 0.693 and 0.5)."""
    step: int
    n_steps: int
    loss: float
    seconds: float
    validation: Optional[tuple] = None


VALIDATION_BANDS = ((0.02, 0.1), (0.1, 0.4), (0.4, 1.0), (1.0, 2.0))


def _noisy(x: torch.Tensor, sigma: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    return x + sigma.view(-1, *([1] * (x.dim() - 1))) * torch.randn(x.shape, generator=g, device=x.device)


def _log_uniform(n: int, lo: float, hi: float, g: torch.Generator, device) -> torch.Tensor:
    u = torch.rand(n, generator=g, device=device)
    return torch.exp(math.log(lo) + (math.log(hi) - math.log(lo)) * u)


def train_discriminator(reals: torch.Tensor, fakes: torch.Tensor, cfg: DiscriminatorConfig, steps: int = 6000,
                        batch_size: int = 128, lr: float = 5e-4, seed: int = 0, dequantize: bool = True,
                        report_every: int = 250, holdout: float = 0.1,
                        ) -> Iterator[DiscriminatorStep]:
    """Train a discriminator of `reals` (the training images, (N, C, H, W) at the dequantisation mean) against
    `fakes` (the sampler's samples, (M, C, H, W)), both smoothed by sigma ~ log-uniform on the config's range.

    A generator of DiscriminatorStep (every `report_every` steps and the last, which carries the validation on the
    `holdout` share of each set, kept out of training); its return value is the trained Discriminator.
    Adam with 200 warm-up steps and a cosine decay; balanced batches of batch_size reals and batch_size fakes;
    dequantize adds the reals' uniform dequantisation noise (+-1/512), so that the discriminator cannot tell them by
    their 256 grey levels alone."""
    g = torch.Generator().manual_seed(int(seed))
    n_r, n_f = int(len(reals) * (1 - holdout)), int(len(fakes) * (1 - holdout))
    if n_r < batch_size or n_f < batch_size:
        raise ConfigError(f"the discriminator needs at least {batch_size} training images and {batch_size} samples "
                          f"after the {holdout:.0%} held out ({len(reals)} and {len(fakes)} given)")
    with torch.random.fork_rng(devices=[]):  # seeded weights, without touching the caller's global RNG
        torch.manual_seed(int(seed))
        d = Discriminator(cfg)
    opt = torch.optim.Adam(d.parameters(), lr=lr)
    labels = torch.cat([torch.ones(batch_size), torch.zeros(batch_size)])
    t0 = time.perf_counter()
    for step in range(1, steps + 1):
        real = reals[torch.randint(n_r, (batch_size,), generator=g)]
        if dequantize:
            real = real + (torch.rand(real.shape, generator=g) - 0.5) / 256
        x = torch.cat([real, fakes[torch.randint(n_f, (batch_size,), generator=g)]])
        sigma = _log_uniform(len(x), cfg.sigma_min, cfg.sigma_max, g, x.device)
        for group in opt.param_groups:
            group["lr"] = lr * min(1.0, step / 200) * 0.5 * (1 + math.cos(math.pi * step / steps))
        loss = F.binary_cross_entropy_with_logits(d(_noisy(x, sigma, g), sigma), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % report_every == 0 or step == steps:
            val = validate(d, reals[n_r:], fakes[n_f:], dequantize) if step == steps else None
            yield DiscriminatorStep(step, steps, float(loss.detach()), time.perf_counter() - t0, val)
    d.requires_grad_(False)
    return d.eval()


@torch.no_grad()
def validate(d: Discriminator, reals: torch.Tensor, fakes: torch.Tensor, dequantize: bool = True,
             bands=VALIDATION_BANDS, seed: int = 123) -> tuple:
    """(sigma_lo, sigma_hi, bce, accuracy) per band of sigma on images the discriminator did not train on (an equal
    number of each kind)."""
    g = torch.Generator().manual_seed(seed)
    n = min(len(reals), len(fakes))
    real = reals[:n] + ((torch.rand(reals[:n].shape, generator=g) - 0.5) / 256 if dequantize else 0)
    x, y = torch.cat([real, fakes[:n]]), torch.cat([torch.ones(n), torch.zeros(n)])
    out = []
    for lo, hi in bands:
        sigma = _log_uniform(2 * n, lo, hi, g, x.device)
        logits = d(_noisy(x, sigma, g), sigma)
        out.append((lo, hi, round(float(F.binary_cross_entropy_with_logits(logits, y)), 4),
                    round(float(((logits > 0).float() == y).float().mean()), 4)))
    return tuple(out)


def discriminator_entry(d: Discriminator, **about) -> dict:
    """What a checkpoint stores of a discriminator: its config, weights and how it was made (`about`)."""
    cfg = asdict(d.cfg)
    cfg["channels"], cfg["blocks"] = list(cfg["channels"]), list(cfg["blocks"])
    return {"config": cfg, "weights": {k: v.detach().clone() for k, v in d.state_dict().items()}, **about}

