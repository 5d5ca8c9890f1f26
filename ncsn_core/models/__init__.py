"""Score networks and the registry that builds one from a Config."""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from ..config import Config, ConfigError
from .compact import CompactScoreNet
from .mlp import MLPScore
from .normalization import CondInstanceNormPlus
from .refinenet import RefineNetDilated

__all__ = ["ScoreModel", "build_model", "count_parameters", "conv_flops", "CondInstanceNormPlus"]


SIGMA_DATA = 0.25  # Karras et al.'s sigma_data = 0.5 for data in [-1, 1], on our [0, 1] scale


class ScoreModel(nn.Module):
    """Wraps a network with its sigma ladder: forward(x, cond) -> score, same shape as x.

    cond: (B,) long level indices into `sigmas`, or, for a continuous-sigma model (`continuous`), (B,) float
    sigmas (any value > 0; level indices are read through the ladder).

    With scale_by_sigma the raw output is divided by sigma_i (NCSNv2, Technique 3), which lets a small
    network match the score's 1/sigma magnitude across levels without learning it.
    A continuous-sigma model is a denoiser with Karras et al.'s (2022) preconditioning, on data centred at 0.5:
    D(x; sigma) = 0.5 + c_skip (x - 0.5) + c_out F(c_in (x - 0.5), ln(sigma)/4), with c_skip = sd^2 / (sigma^2 + sd^2),
    c_out = sigma sd / sqrt(sigma^2 + sd^2), c_in = 1 / sqrt(sigma^2 + sd^2), sd = SIGMA_DATA; its score is
    (D - x) / sigma^2 (Tweedie). F's target then has unit variance at every sigma.
    """

    def __init__(self, net: nn.Module, sigmas: torch.Tensor, scale_by_sigma: bool, continuous: bool = False):
        super().__init__()
        self.net = net
        self.register_buffer("sigmas", sigmas.clone().float())
        # the training data's mean image (C, H, W) for the 'data-mean' chain start; kept in the checkpoint
        # beside the weights (not in state_dict, so checkpoints from before it existed still load)
        self.register_buffer("data_mean", None, persistent=False)
        self.scale_by_sigma = scale_by_sigma
        self.continuous = continuous
        self.set_guide(None)
        self.set_discriminator(None)

    def set_discriminator(self, discriminator: Optional[nn.Module]) -> None:
        """The discriminator of discriminator guidance (ncsn_core.discriminator), or None; like the guide, kept out
        of this model's state_dict, EMA and optimizer."""
        object.__setattr__(self, "discriminator", discriminator)

    def set_guide(self, guide: Optional["ScoreModel"]) -> None:
        """The autoguidance guide (ncsn_core.sampling.Guided), a weaker model of the same data, or None. Kept out of
        nn.Module's registry, so that it never enters this model's state_dict, its EMA or an optimizer."""
        object.__setattr__(self, "guide", guide)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:  # channels-last: oneDNN's convolutions run about 2x faster on a CPU (benchmarks/README.md)
            x = x.contiguous(memory_format=torch.channels_last)
        if self.continuous:
            return self._preconditioned_score(x, cond)
        if cond.is_floating_point():
            raise TypeError("this model is conditioned on level indices (long); it cannot take sigma values")
        out = self.net(x, cond)
        if self.scale_by_sigma:
            out = out / self.sigmas[cond].view(-1, *([1] * (x.dim() - 1)))
        return out.contiguous()

    def _preconditioned_score(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        sigma = (cond if cond.is_floating_point() else self.sigmas[cond]).to(x.dtype)
        s = sigma.view(-1, *([1] * (x.dim() - 1)))
        var = s ** 2 + SIGMA_DATA ** 2
        xc = x - 0.5
        f = self.net(xc * var.rsqrt(), sigma.log() / 4)
        # (D - x) / sigma^2 simplified, so that nothing cancels at small sigma
        return (f * (SIGMA_DATA * var.rsqrt() / s) - xc / var).contiguous()


def _check_image_shape(cfg: Config) -> None:
    size, ch, arch = cfg.data.image_size, cfg.data.channels, cfg.model.arch
    if ch not in (1, 3):
        raise ConfigError(f"{arch} takes 1 or 3 image channels, got channels={ch}")
    multiple = 2 if arch == "refinenet" else 4
    if size < 8 or size % multiple:
        raise ConfigError(f"{arch} needs an image size that is a multiple of {multiple} and at least 8 "
                          f"(e.g. 28, 32, 64), got image_size={size}")


def build_model(cfg: Config) -> ScoreModel:
    """The score model a config describes, freshly initialised (seed the global RNG first for repeatability)."""
    from ..noise import sigmas_from_config
    m, L = cfg.model, cfg.noise.num_classes
    if m.arch == "mlp":
        net: nn.Module = MLPScore(cfg.data.channels, m.hidden, L)
    else:
        _check_image_shape(cfg)
        if m.arch == "refinenet":
            net = RefineNetDilated(cfg.data.channels, m.ngf, L)
        else:
            if len(m.channels) != 3:
                raise ConfigError(f"compact model needs three widths, got channels={m.channels}")
            net = CompactScoreNet(cfg.data.channels, m.channels, L,
                                  cond_dim=64 if m.conditioning == "sigma" else None, dropout=m.dropout,
                                  attention=m.attention)
    model = ScoreModel(net, sigmas_from_config(cfg.noise), m.scale_by_sigma, continuous=m.conditioning == "sigma")
    model.data_config = cfg.data  # the images it learns, for the sampler's exact large-sigma score (exact_above)
    # channels-last weights to match ScoreModel.forward's inputs (values and state_dict keys unchanged)
    return model if m.arch == "mlp" else model.to(memory_format=torch.channels_last)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def conv_flops(model: nn.Module, x: torch.Tensor, labels: torch.Tensor) -> int:
    """FLOPs of one forward pass counted over convolutions and linear layers (2 per multiply-add),
    per example. Norms, activations and pooling are not counted (they are small next to convs)."""
    total = 0

    def conv_hook(mod, inp, out):
        nonlocal total
        k = mod.weight[0].numel()  # (cin/groups) * kh * kw
        total += 2 * out.numel() * k

    def lin_hook(mod, inp, out):
        nonlocal total
        total += 2 * out.numel() * mod.in_features

    hooks = [mm.register_forward_hook(conv_hook) for mm in model.modules() if isinstance(mm, nn.Conv2d)]
    hooks += [mm.register_forward_hook(lin_hook) for mm in model.modules() if isinstance(mm, nn.Linear)]
    try:
        with torch.no_grad():
            model(x, labels)
    finally:
        for h in hooks:
            h.remove()
    return total // len(x)
