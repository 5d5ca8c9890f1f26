"""Langevin samplers as generators of LangevinState (paper, Algorithms 1 and 2).

Convention (the paper's Algorithm 1): alpha_i = step_lr * sigma_i^2 / sigma_L^2 and
x <- x + alpha_i / 2 * s(x, i) + sqrt(alpha_i) * z. The reference code writes the same update as
x + a*s + sqrt(2a)*z with a = alpha_i / 2, so its step_lr = 2e-5 is step_lr = 4e-5 here.

variance_correction (kappa in [0, 1], default 0 = the paper) shrinks the noise term to
sqrt(alpha_i * (1 - kappa * alpha_i / (4 sigma_i^2))) * z. For a Gaussian target of variance sigma_i^2 the
paper's update has stationary variance sigma_i^2 / (1 - alpha_i / (4 sigma_i^2)), too wide by 1/(1 - step_lr /
(4 sigma_L^2)) at every level (+14 % at step_lr = 5e-5, sigma_L = 0.01); kappa = 1 makes it exact, kappa = 0.5
removes half of the excess. The excess variance shows up in images as extra ink (thicker digits).

Each sampler yields every `yield_every` steps and at the end of every level, keeps only the current x,
and stops early when sent "stop" (it then yields nothing more).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Generator, Iterator, Optional, Sequence, Union

import torch

from .config import check_data_mean

ScoreNet = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Seed = Union[int, torch.Generator, None]


@dataclass(frozen=True)
class LangevinState:
    """One snapshot of a chain. x: (B, ...) current samples (do not modify). step counts from 1 within
    the level; global_step over the whole run. score_norm / noise_norm: batch means of |alpha/2 * s| and
    |sqrt(alpha) * z|; snr their ratio (NCSNv2's diagnostic). final: the last state of the run."""
    level: int
    n_levels: int
    sigma: float
    step_size: float
    step: int
    n_steps: int
    global_step: int
    total_steps: int
    x: torch.Tensor
    score_norm: float
    noise_norm: float
    snr: float
    final: bool = False


def make_generator(seed: Seed, device) -> torch.Generator:
    if isinstance(seed, torch.Generator):
        return seed
    g = torch.Generator(device=device)
    g.manual_seed(0 if seed is None else int(seed))
    return g


def initial_noise(shape: Sequence[int], init: str, generator: torch.Generator, device,
                  sigma_1: float = 1.0, mean: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Start of the chain: 'uniform' in [0, 1) as the paper's image sampler; 'gaussian' N(0, sigma_1^2 I);
    'data-mean' N(mean, sigma_1^2 I) with `mean` the training data's mean image (C, H, W), which matches the
    mean of the top level's perturbed data p_{sigma_1}. A zero-mean start sits nearest the digits with the
    least ink and, when sigma_1 is too small for the chain to mix between classes, over-produces them."""
    if init == "uniform":
        return torch.rand(tuple(shape), generator=generator, device=device)
    if init in ("gaussian", "data-mean"):
        x = sigma_1 * torch.randn(tuple(shape), generator=generator, device=device)
        if init == "gaussian":
            return x
        check_data_mean(init, mean is not None)
        if tuple(mean.shape) != tuple(shape[1:]):
            raise ValueError(f"the data mean has shape {tuple(mean.shape)}, the samples {tuple(shape[1:])}")
        return x + mean.to(device=device, dtype=x.dtype)
    raise ValueError(f"unknown init {init!r}: choose 'uniform', 'gaussian' or 'data-mean'")


def step_sizes(sigmas: torch.Tensor, step_lr: float) -> torch.Tensor:
    """alpha_i = step_lr * sigma_i^2 / sigma_L^2 (Alg. 1, line 3); shape (L,)."""
    return step_lr * (sigmas / sigmas[-1]) ** 2


def noise_scales(sigmas: torch.Tensor, alphas: torch.Tensor, variance_correction: float) -> torch.Tensor:
    """Per-level factor on the noise term: sqrt(1 - kappa * alpha_i / (4 sigma_i^2)), floored at 0 (module doc)."""
    if not 0.0 <= variance_correction <= 1.0:
        raise ValueError(f"variance_correction={variance_correction} must be in [0, 1] (0 = the paper's Alg. 1)")
    return (1 - variance_correction * alphas / (4 * sigmas ** 2)).clamp(min=0).sqrt()


def langevin_step(x: torch.Tensor, score: torch.Tensor, alpha: float, z: torch.Tensor, noise_scale: float = 1.0):
    """x + alpha/2 * score + noise_scale * sqrt(alpha) * z (Alg. 1, line 6; noise_scale 1 is the paper).
    Returns (new x, drift term, noise term)."""
    drift, noise = 0.5 * alpha * score, noise_scale * alpha ** 0.5 * z
    return x + drift + noise, drift, noise


def _norm(t: torch.Tensor) -> float:
    return float(t.reshape(len(t), -1).norm(dim=1).mean())


def _chain(score_at: Callable[[torch.Tensor, int], torch.Tensor], x: torch.Tensor, sigmas: Sequence[float],
           alphas: Sequence[float], n_steps_each: int, g: torch.Generator, yield_every: int,
           project: Optional[Callable[[torch.Tensor, int, bool], torch.Tensor]] = None,
           scales: Optional[Sequence[float]] = None,
           ) -> Generator[LangevinState, Optional[str], torch.Tensor]:
    """The shared loop: for each level, n_steps_each Langevin steps; `project(x, level, start)` is applied
    at the start of each level and after every step (inpainting uses it; None means no projection)."""
    L = len(sigmas)
    total = L * n_steps_each
    gstep = 0
    with torch.no_grad():
        for i in range(L):
            alpha = float(alphas[i])
            scale = 1.0 if scales is None else float(scales[i])
            if project is not None:
                x = project(x, i, True)
            for t in range(1, n_steps_each + 1):
                z = torch.randn(x.shape, generator=g, device=x.device, dtype=x.dtype)
                x, drift, noise = langevin_step(x, score_at(x, i), alpha, z, scale)
                if project is not None:
                    x = project(x, i, False)
                gstep += 1
                if t % yield_every == 0 or t == n_steps_each:
                    sn, nn_ = _norm(drift), _norm(noise)
                    cmd = yield LangevinState(i, L, float(sigmas[i]), alpha, t, n_steps_each, gstep, total, x,
                                              sn, nn_, sn / max(nn_, 1e-12), final=(gstep == total))
                    if cmd == "stop":
                        return x
    return x


def _level_score(score_net: ScoreNet, n: int, device) -> Callable[[torch.Tensor, int], torch.Tensor]:
    labels_cache: dict = {}

    def score_at(x: torch.Tensor, i: int) -> torch.Tensor:
        if i not in labels_cache:
            labels_cache[i] = torch.full((len(x),), i, dtype=torch.long, device=device)
        return score_net(x, labels_cache[i])
    return score_at


def langevin(score_fn: Callable[[torch.Tensor], torch.Tensor], x0: torch.Tensor, step_size: float, n_steps: int,
             seed: Seed = 0, yield_every: int = 10) -> Generator[LangevinState, Optional[str], torch.Tensor]:
    """Plain Langevin dynamics with one fixed step size (paper, Eq. 2): x0 (B, ...) -> samples."""
    g = make_generator(seed, x0.device)
    return _chain(lambda x, i: score_fn(x), x0, [0.0], [step_size], n_steps, g, yield_every)


def annealed_langevin(score_net: ScoreNet, sigmas: torch.Tensor, shape: Sequence[int], step_lr: float,
                      n_steps_each: int, seed: Seed = 0, init: str = "uniform", x0: Optional[torch.Tensor] = None,
                      denoise: bool = False, yield_every: int = 10, device=None, variance_correction: float = 0.0,
                      init_mean: Optional[torch.Tensor] = None,
                      ) -> Generator[LangevinState, Optional[str], torch.Tensor]:
    """Algorithm 1: levels from sigma_1 (largest) to sigma_L, n_steps_each steps each.

    shape: (B, C, H, W) or (B, D); x0 overrides the `init` start (init_mean: the data mean for 'data-mean').
    With denoise, one final
    step x + sigma_L^2 * s(x, L) (Tweedie's formula) is yielded as an extra final state.
    """
    device = device or (x0.device if x0 is not None else sigmas.device)
    g = make_generator(seed, device)
    x = x0.to(device) if x0 is not None else initial_noise(shape, init, g, device, float(sigmas[0]), init_mean)
    score_at = _level_score(score_net, x.shape[0], device)
    sig = sigmas.to(device)
    alphas = step_sizes(sig, step_lr)
    x = yield from _finish(_chain(score_at, x, sig.tolist(), alphas.tolist(), n_steps_each, g, yield_every,
                                  scales=noise_scales(sig, alphas, variance_correction).tolist()),
                           denoise, score_at, sig)
    return x


def _finish(chain, denoise: bool, score_at, sigmas: torch.Tensor, post: Optional[Callable] = None):
    """Run a chain to the end, passing commands through; then the optional denoising step
    (followed by `post`, e.g. inpainting's reset of the known pixels)."""
    last: Optional[LangevinState] = None
    try:
        state = next(chain)
        while True:
            last = state
            if denoise and state.final:  # the chain's last state is not final any more: the denoised one is
                state = LangevinState(**{**state.__dict__, "final": False})
            cmd = yield state
            state = chain.send(cmd)
    except StopIteration as stop:
        x = stop.value
    if denoise and last is not None and last.final:
        with torch.no_grad():
            s = score_at(x, len(sigmas) - 1)
            x = x + float(sigmas[-1]) ** 2 * s
            x = post(x) if post is not None else x
        yield LangevinState(**{**last.__dict__, "x": x, "final": True})
    return x


def inpaint(score_net: ScoreNet, sigmas: torch.Tensor, image: torch.Tensor, mask: torch.Tensor, step_lr: float,
            n_steps_each: int, seed: Seed = 0, init: str = "uniform", denoise: bool = False, yield_every: int = 10,
            variance_correction: float = 0.0, init_mean: Optional[torch.Tensor] = None,
            ) -> Generator[LangevinState, Optional[str], torch.Tensor]:
    """Algorithm 2: annealed Langevin where the known pixels follow the data's noisy path.

    image: (B, C, H, W) in [0, 1]; mask: broadcastable to image, 1 = known pixel (kept), 0 = to fill.
    At each level y = image + sigma_i * z is drawn once; after every step (and before the level starts)
    x <- x * (1 - m) + y * m. The unknown pixels start from `init` noise.
    """
    device = image.device
    g = make_generator(seed, device)
    m = mask.to(device=device, dtype=image.dtype).expand_as(image)
    sig = sigmas.to(device)
    x = initial_noise(image.shape, init, g, device, float(sig[0]), init_mean)
    y_level: dict = {}

    def project(x: torch.Tensor, i: int, start: bool) -> torch.Tensor:
        if start:  # Alg. 2, line 3: y drawn once per level
            y_level.clear()
            y_level[i] = image + float(sig[i]) * torch.randn(image.shape, generator=g, device=device, dtype=image.dtype)
        return x * (1 - m) + y_level[i] * m

    score_at = _level_score(score_net, image.shape[0], device)
    alphas = step_sizes(sig, step_lr)
    chain = _chain(score_at, x, sig.tolist(), alphas.tolist(), n_steps_each, g, yield_every, project=project,
                   scales=noise_scales(sig, alphas, variance_correction).tolist())
    # after denoising, the known pixels are the clean image (sigma = 0)
    x = yield from _finish(chain, denoise, score_at, sig, post=lambda x: x * (1 - m) + image * m)
    return x


def drain(gen: Iterator[LangevinState]) -> torch.Tensor:
    """The blocking API: run a sampler generator to the end and return its final x."""
    try:
        while True:
            next(gen)
    except StopIteration as stop:
        return stop.value
