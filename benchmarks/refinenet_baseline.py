"""The faithful eager baseline of the paper's training step, as this project ran it before the speed work:
the same RefineNet and weights, CondInstanceNorm++ term by term (instance_norm, then the mean correction,
then scale and shift), out-of-place ELU, channels-first tensors. `ncsn bench` times it beside the
optimised model in the same run; `python benchmarks/refinenet_baseline.py` prints just that comparison.
"""
from __future__ import annotations

import types
from contextlib import contextmanager

import torch
from torch import nn
from torch.nn import functional as F

from ncsn_core.config import Config
from ncsn_core.models import ScoreModel, build_model
from ncsn_core.models.normalization import CondInstanceNormPlus, cond_instance_norm_plus_reference


def _reference_norm(self: CondInstanceNormPlus, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    gamma, alpha, beta = self.embed(labels).chunk(3, dim=1)
    return cond_instance_norm_plus_reference(x, gamma, alpha, beta)


class BaselineModel(nn.Module):
    """ScoreModel's forward without the channels-last conversion (the weights are channels-first)."""

    def __init__(self, model: ScoreModel):
        super().__init__()
        self.model = model.to(memory_format=torch.contiguous_format)
        for m in self.model.modules():
            if isinstance(m, CondInstanceNormPlus):
                m.forward = types.MethodType(_reference_norm, m)
        self.sigmas = self.model.sigmas

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        out = self.model.net(x, labels)
        return out / self.sigmas[labels].view(-1, 1, 1, 1) if self.model.scale_by_sigma else out


@contextmanager
def out_of_place_elu():
    """The models ask for ELU in place after each norm; the baseline did not (one more saved tensor each)."""
    elu = F.elu
    F.elu = lambda x, alpha=1.0, inplace=False: elu(x, alpha)
    try:
        yield
    finally:
        F.elu = elu


def build_baseline(cfg: Config) -> BaselineModel:
    return BaselineModel(build_model(cfg))
