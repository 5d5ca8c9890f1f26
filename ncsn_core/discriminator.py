"""Discriminator guidance (Kim et al. 2023, "Refining generative process with discriminator guidance in score-based
diffusion models"): a small noise-conditional classifier d(x, sigma) that tells the training images smoothed by
sigma from the sampler's own samples smoothed by sigma. At its optimum logit d = log p_data,sigma - log
p_model,sigma, so the score s + w grad_x logit d(x, sigma) moves the sampler's score toward the data's (w = 1 in
theory); it corrects what the score network gets wrong without training the network again.

A per-sample discriminator is near chance where the chain settles which digit it draws (sigma ~0.5-2), so it cannot
see a sampler that draws one class too often. Where the training images have labels, the ratio gets a class part
(`LogRatio`): p_data/p_model = [p_data(y)/p_model(y)] x (the ratio within class y), and at noise level sigma the class
factor is E[w_y | x_sigma] = sum_y c(y | x, sigma) w_y, with c a noise-conditional classifier of the training labels
and w_y the class weights, calibrated on the sampler's own samples (ncsn_core.cli.discriminator_for).

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
    halves it), conv blocks per resolution, the embedding width of ln(sigma), its training range
    [sigma_min, sigma_max] (log-uniform), outside which it does not guide, and its outputs: 1, the logit of "a
    training image"; K > 1, the logits of K classes (the noise-conditional classifier of LogRatio's class part)."""
    image_channels: int = 1
    channels: Tuple[int, ...] = (16, 32, 64)
    blocks: Tuple[int, ...] = (1, 2, 2)
    emb: int = 64
    sigma_min: float = 0.02
    sigma_max: float = 2.0
    outputs: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        object.__setattr__(self, "blocks", tuple(int(b) for b in self.blocks))
        if len(self.channels) != len(self.blocks) or not all(c % 8 == 0 and c > 0 for c in self.channels):
            raise ConfigError(f"discriminator channels {self.channels} and blocks {self.blocks}: give one block count "
                              f"per resolution and widths that are positive multiples of 8 (GroupNorm of 8 groups)")
        if not 0 < self.sigma_min < self.sigma_max:
            raise ConfigError(f"discriminator sigma range [{self.sigma_min}, {self.sigma_max}] must be 0 < min < max")
        if self.outputs < 1:
            raise ConfigError(f"discriminator outputs {self.outputs}: give 1 (a discriminator) or K > 1 (K classes)")


class Discriminator(nn.Module):
    """forward(x (B, C, H, W) in the data's [0, 1] scale plus noise, sigma (B,)) -> logits (B,): > 0 = "a training
    image" (or (B, K) class logits when cfg.outputs = K > 1). The input is scaled as the score network's is (Karras
    et al.'s c_in), so that its variance is about 1 at every sigma; each conv block is modulated by the embedding
    of ln(sigma) (FiLM)."""

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
        self.out = nn.Linear(prev + cfg.emb, cfg.outputs)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        s = sigma.view(-1, 1, 1, 1).to(x.dtype)
        h = self.inp((x - 0.5) * (s ** 2 + SIGMA_DATA ** 2).rsqrt())
        angle = (sigma.float().log() / 4)[:, None] * self.freqs[None]
        e = self.embed(torch.cat([angle.sin(), angle.cos()], dim=1)).to(h.dtype)
        for conv, norm, film in zip(self.convs, self.norms, self.films):
            scale, shift = film(e)[:, :, None, None].chunk(2, dim=1)
            h = F.silu(norm(conv(h)) * (1 + scale) + shift)
        out = self.out(torch.cat([h.mean((2, 3)), e], dim=1))
        return out.squeeze(1) if self.cfg.outputs == 1 else out


class LogRatio(nn.Module):
    """forward(x, sigma) -> the estimate of log p_data,sigma(x) - log p_model,sigma(x) that discriminator guidance
    follows: the discriminator's logit, plus, with a classifier, the class part log sum_y c(y | x, sigma) w_y
    (log_weights = log w_y). `cfg` is the discriminator's (its sigma range is where the guidance acts)."""

    def __init__(self, disc: Discriminator, classifier: Optional[Discriminator] = None,
                 log_weights: Optional[torch.Tensor] = None):
        super().__init__()
        self.disc, self.classifier, self.cfg = disc, classifier, disc.cfg
        if classifier is not None and (log_weights is None or len(log_weights) != classifier.cfg.outputs):
            raise ConfigError(f"a class part needs one weight per class ({classifier.cfg.outputs})")
        self.register_buffer("log_weights", None if log_weights is None else torch.as_tensor(log_weights).float())

    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        out = self.disc(x, sigma)
        if self.classifier is None:
            return out
        return out + torch.logsumexp(F.log_softmax(self.classifier(x, sigma).float(), 1) + self.log_weights, 1)


def _frozen(entry: dict) -> Discriminator:
    d = Discriminator(DiscriminatorConfig(**entry["config"]))
    d.load_state_dict(entry["weights"])
    d.requires_grad_(False)
    return d.eval()


def build_discriminator(entry: dict) -> LogRatio:
    """The log ratio a checkpoint carries ({"config", "weights", ..., optional "classes": {"config", "weights",
    "log_weights", ...}}), in eval mode, its weights frozen."""
    classes = entry.get("classes")
    if not classes:
        return LogRatio(_frozen(entry)).eval()
    return LogRatio(_frozen(entry), _frozen(classes), torch.tensor(classes["log_weights"])).eval()


@dataclass(frozen=True)
class DiscriminatorStep:
    """One reported training step of the discriminator (or of the class part's classifier): its BCE (cross-entropy)
    on the last batch, and, at the end, on held-out images (`validation`: one (sigma_lo, sigma_hi, bce, accuracy)
    per band; a discriminator's chance is ln 2 = 0.693 and 0.5)."""
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


def _seeded(cfg: DiscriminatorConfig, seed: int) -> Discriminator:
    with torch.random.fork_rng(devices=[]):  # seeded weights, without touching the caller's global RNG
        torch.manual_seed(int(seed))
        return Discriminator(cfg)


def _fit(net: nn.Module, batch_loss, steps: int, lr: float, report_every: int) -> Iterator[Tuple[int, float, float]]:
    """Adam on batch_loss() (a fresh batch's loss each call) with 200 warm-up steps and a cosine decay; yields
    (step, loss, seconds) every report_every steps and at the last."""
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    t0 = time.perf_counter()
    for step in range(1, steps + 1):
        for group in opt.param_groups:
            group["lr"] = lr * min(1.0, step / 200) * 0.5 * (1 + math.cos(math.pi * step / steps))
        loss = batch_loss()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % report_every == 0 or step == steps:
            yield step, float(loss.detach()), time.perf_counter() - t0


def _dequantized(x: torch.Tensor, g: torch.Generator, dequantize: bool) -> torch.Tensor:
    return x + (torch.rand(x.shape, generator=g) - 0.5) / 256 if dequantize else x


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
    d = _seeded(cfg, seed)
    labels = torch.cat([torch.ones(batch_size), torch.zeros(batch_size)])

    def batch_loss() -> torch.Tensor:
        real = _dequantized(reals[torch.randint(n_r, (batch_size,), generator=g)], g, dequantize)
        x = torch.cat([real, fakes[torch.randint(n_f, (batch_size,), generator=g)]])
        sigma = _log_uniform(len(x), cfg.sigma_min, cfg.sigma_max, g, x.device)
        return F.binary_cross_entropy_with_logits(d(_noisy(x, sigma, g), sigma), labels)

    for step, loss, seconds in _fit(d, batch_loss, steps, lr, report_every):
        val = validate(d, reals[n_r:], fakes[n_f:], dequantize) if step == steps else None
        yield DiscriminatorStep(step, steps, loss, seconds, val)
    d.requires_grad_(False)
    return d.eval()


def train_classifier(reals: torch.Tensor, labels: torch.Tensor, cfg: DiscriminatorConfig, steps: int = 4000,
                     batch_size: int = 256, lr: float = 1e-3, seed: int = 0, dequantize: bool = True,
                     report_every: int = 250, holdout: float = 0.1) -> Iterator[DiscriminatorStep]:
    """Train a noise-conditional classifier (cfg.outputs classes) of the training images `reals` and their
    `labels` (N,), smoothed by sigma ~ log-uniform on the config's range, by cross-entropy. A generator of
    DiscriminatorStep like train_discriminator's (the last one's validation: (sigma_lo, sigma_hi, cross-entropy,
    accuracy) per band on the held-out share); its return value is the trained classifier."""
    g = torch.Generator().manual_seed(int(seed))
    n = int(len(reals) * (1 - holdout))
    if n < 10 or n == len(reals):
        raise ConfigError(f"the class part needs at least 10 labelled training images and some held out "
                          f"({len(reals)} given)")
    batch_size = min(batch_size, n)
    c = _seeded(cfg, seed)
    labels = labels.long()

    def batch_loss() -> torch.Tensor:
        i = torch.randint(n, (batch_size,), generator=g)
        sigma = _log_uniform(batch_size, cfg.sigma_min, cfg.sigma_max, g, reals.device)
        return F.cross_entropy(c(_noisy(_dequantized(reals[i], g, dequantize), sigma, g), sigma), labels[i])

    for step, loss, seconds in _fit(c, batch_loss, steps, lr, report_every):
        val = validate_classifier(c, reals[n:], labels[n:], dequantize) if step == steps else None
        yield DiscriminatorStep(step, steps, loss, seconds, val)
    c.requires_grad_(False)
    return c.eval()


@torch.no_grad()
def validate_classifier(c: Discriminator, reals: torch.Tensor, labels: torch.Tensor, dequantize: bool = True,
                        bands=VALIDATION_BANDS, seed: int = 123) -> tuple:
    """(sigma_lo, sigma_hi, cross-entropy, accuracy) per band of sigma on labelled images it did not train on."""
    g = torch.Generator().manual_seed(seed)
    x = _dequantized(reals, g, dequantize)
    out = []
    for lo, hi in bands:
        sigma = _log_uniform(len(x), lo, hi, g, x.device)
        logits = c(_noisy(x, sigma, g), sigma)
        out.append((lo, hi, round(float(F.cross_entropy(logits, labels)), 4),
                    round(float((logits.argmax(1) == labels).float().mean()), 4)))
    return tuple(out)


@torch.no_grad()
def class_shares(c: Discriminator, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """The share of each class among images x (N, C, H, W) by the classifier's labels at its smallest sigma, on the
    CPU (the classifier may sit on another device than x: each batch goes to it)."""
    device = c.out.weight.device
    labels = torch.cat([c(b.to(device), torch.full((len(b),), c.cfg.sigma_min, device=device)).argmax(1).cpu()
                        for b in x.split(batch_size)])
    return torch.bincount(labels, minlength=c.cfg.outputs).double() / len(x)


@torch.no_grad()
def validate(d: Discriminator, reals: torch.Tensor, fakes: torch.Tensor, dequantize: bool = True,
             bands=VALIDATION_BANDS, seed: int = 123) -> tuple:
    """(sigma_lo, sigma_hi, bce, accuracy) per band of sigma on images the discriminator did not train on (an equal
    number of each kind)."""
    g = torch.Generator().manual_seed(seed)
    n = min(len(reals), len(fakes))
    real = _dequantized(reals[:n], g, dequantize)
    x, y = torch.cat([real, fakes[:n]]), torch.cat([torch.ones(n), torch.zeros(n)])
    out = []
    for lo, hi in bands:
        sigma = _log_uniform(2 * n, lo, hi, g, x.device)
        logits = d(_noisy(x, sigma, g), sigma)
        out.append((lo, hi, round(float(F.binary_cross_entropy_with_logits(logits, y)), 4),
                    round(float(((logits > 0).float() == y).float().mean()), 4)))
    return tuple(out)


def _net_entry(d: Discriminator) -> dict:
    cfg = asdict(d.cfg)
    cfg["channels"], cfg["blocks"] = list(cfg["channels"]), list(cfg["blocks"])
    return {"config": cfg, "weights": {k: v.detach().clone() for k, v in d.state_dict().items()}}


def discriminator_entry(ratio: LogRatio, classes: Optional[dict] = None, **about) -> dict:
    """What a checkpoint stores of a LogRatio: its discriminator's config, weights and how it was made (`about`),
    and, with a class part, "classes": the classifier's config and weights, log_weights and how they were made
    (`classes`)."""
    entry = {**_net_entry(ratio.disc), **about}
    if ratio.classifier is not None:
        entry["classes"] = {**_net_entry(ratio.classifier), "log_weights": ratio.log_weights.tolist(),
                            **(classes or {})}
    return entry

