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
and stops early when sent "stop" (it then yields nothing more). Every state also carries the model's denoised
estimate of the clean image (Tweedie's formula), made from the score the step already computed: no extra
network evaluation.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Generator, Iterator, Optional, Sequence, Union

import torch

from .config import ConfigError, ModelConfig, SampleConfig, check_data_mean, check_sampler
from .empirical import ExactAbove, training_images
from .precision import autocast

ScoreNet = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Seed = Union[int, torch.Generator, None]


@dataclass(frozen=True)
class LangevinState:
    """One snapshot of a chain. x: (B, ...) current samples (do not modify). step counts from 1 within
    the level; global_step over the whole run. score_norm / noise_norm: batch means of |alpha/2 * s| and
    |sqrt(alpha) * z|; snr their ratio (NCSNv2's diagnostic). final: the last state of the run.

    denoised: (B, ...) the model's estimate of the clean image, tweedie(x', s(x', sigma'), sigma') = E[x_0 | x'],
    for the x' and sigma' of the last network evaluation before this state: x' is the chain's x *before* this
    step's update (after inpainting's reset of its known pixels; for the Heun ODE after the churn noise), not
    the x reported here; sigma' = denoised_sigma, the state's sigma except for Heun with churn (its raised
    sigma_hat). The final state of a run with `denoise` reports the denoising step's own estimate (its x
    before the known pixels are pasted back). None only for states made outside these samplers."""
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
    denoised: Optional[torch.Tensor] = None
    denoised_sigma: float = float("nan")


def tweedie(x: torch.Tensor, score: torch.Tensor, sigma: float) -> torch.Tensor:
    """E[x_0 | x] = x + sigma^2 s(x, sigma) for x = x_0 + sigma z, z ~ N(0, I) (Tweedie's formula; Efron 2011):
    the denoised estimate of the clean image given the noisy x and the score at its noise scale."""
    return x + sigma ** 2 * score


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
           alphas: Sequence[float], n_steps_each: Union[int, Sequence[int]], g: torch.Generator, yield_every: int,
           project: Optional[Callable[[torch.Tensor, int, bool], torch.Tensor]] = None,
           scales: Optional[Sequence[float]] = None,
           ) -> Generator[LangevinState, Optional[str], torch.Tensor]:
    """The shared loop: for each level, n_steps_each Langevin steps (one count, or one per level);
    `project(x, level, start)` is applied at the start of each level and after every step (inpainting uses
    it; None means no projection)."""
    L = len(sigmas)
    steps = [int(n_steps_each)] * L if isinstance(n_steps_each, int) else [int(t) for t in n_steps_each]
    total = sum(steps)
    gstep = 0
    with torch.no_grad():
        for i in range(L):
            alpha = float(alphas[i])
            scale = 1.0 if scales is None else float(scales[i])
            if project is not None:
                x = project(x, i, True)
            n_steps = steps[i]
            for t in range(1, n_steps + 1):
                z = torch.randn(x.shape, generator=g, device=x.device, dtype=x.dtype)
                x_read, s = x, score_at(x, i)  # the x the score was evaluated at: its denoised estimate is free
                x, drift, noise = langevin_step(x, s, alpha, z, scale)
                if project is not None:
                    x = project(x, i, False)
                gstep += 1
                if t % yield_every == 0 or t == n_steps:
                    sn, nn_ = _norm(drift), _norm(noise)
                    sigma = float(sigmas[i])
                    cmd = yield LangevinState(i, L, sigma, alpha, t, n_steps, gstep, total, x,
                                              sn, nn_, sn / max(nn_, 1e-12), final=(gstep == total),
                                              denoised=tweedie(x_read, s, sigma), denoised_sigma=sigma)
                    if cmd == "stop":
                        return x
    return x


def _level_score(score_net: ScoreNet, n: int, device, sigmas: Optional[Sequence[float]] = None,
                 ) -> Callable[[torch.Tensor, int], torch.Tensor]:
    """score_at(x, i) for level i of the sampling ladder: a continuous-sigma model (`score_net.continuous`) is
    given sigmas[i] itself; any other score_net the level index i (its ladder must then be the model's)."""
    cond_cache: dict = {}
    continuous = getattr(score_net, "continuous", False) and sigmas is not None

    def score_at(x: torch.Tensor, i: int) -> torch.Tensor:
        if i not in cond_cache:
            cond_cache[i] = (torch.full((len(x),), float(sigmas[i]), device=device) if continuous
                             else torch.full((len(x),), i, dtype=torch.long, device=device))
        return score_net(x, cond_cache[i])
    return score_at


def langevin(score_fn: Callable[[torch.Tensor], torch.Tensor], x0: torch.Tensor, step_size: float, n_steps: int,
             seed: Seed = 0, yield_every: int = 10) -> Generator[LangevinState, Optional[str], torch.Tensor]:
    """Plain Langevin dynamics with one fixed step size (paper, Eq. 2): x0 (B, ...) -> samples."""
    g = make_generator(seed, x0.device)
    return _chain(lambda x, i: score_fn(x), x0, [0.0], [step_size], n_steps, g, yield_every)


def annealed_langevin(score_net: ScoreNet, sigmas: torch.Tensor, shape: Sequence[int], step_lr: float,
                      n_steps_each: Union[int, Sequence[int]], seed: Seed = 0, init: str = "uniform", x0: Optional[torch.Tensor] = None,
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
    sig = sigmas.to(device)
    score_at = _level_score(score_net, x.shape[0], device, sig.tolist())
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
            denoised = tweedie(x, s, float(sigmas[-1]))
            x = post(denoised) if post is not None else denoised
        yield LangevinState(**{**last.__dict__, "x": x, "final": True, "denoised": denoised,
                               "denoised_sigma": float(sigmas[-1])})
    return x


def inpaint(score_net: ScoreNet, sigmas: torch.Tensor, image: torch.Tensor, mask: torch.Tensor, step_lr: float,
            n_steps_each: Union[int, Sequence[int]], seed: Seed = 0, init: str = "uniform", denoise: bool = False, yield_every: int = 10,
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
    known = _noisy_known(image, mask, lambda i: float(sig[i]), g, per_call=True)  # Alg. 2, line 3: y once per level

    def project(x: torch.Tensor, i: int, start: bool) -> torch.Tensor:
        return known(x, i)

    score_at = _level_score(score_net, image.shape[0], device, sig.tolist())
    alphas = step_sizes(sig, step_lr)
    chain = _chain(score_at, x, sig.tolist(), alphas.tolist(), n_steps_each, g, yield_every, project=project,
                   scales=noise_scales(sig, alphas, variance_correction).tolist())
    # after denoising, the known pixels are the clean image (sigma = 0)
    x = yield from _finish(chain, denoise, score_at, sig, post=lambda x: x * (1 - m) + image * m)
    return x


def _pc_chain(score_at, x: torch.Tensor, sigmas: Sequence[float], n_steps: Sequence[int], snr: float,
              g: torch.Generator, yield_every: int, project=None) -> Generator[LangevinState, Optional[str], torch.Tensor]:
    """Predictor-corrector sampling for this noise family (Song et al. 2021, Alg. 2 with their VE "SMLD" discretisation).

    At level i: n_steps[i] Langevin corrector steps x <- x + eps s + sqrt(2 eps) z with eps = 2 (snr |z| / |s|)^2
    (batch-mean norms, their Alg. 5), then one reverse-diffusion predictor step to the next level,
    x <- x + (sigma_i^2 - sigma_{i+1}^2) s + sqrt(sigma_i^2 - sigma_{i+1}^2) z, with sigma_{L+1} = 0 and no noise on
    the last one (so the run ends with Tweedie's denoising step). `project(x, i)` resets the known pixels to
    level i's noisy image (i = L: the clean image); each level's state is yielded as Langevin's is.
    """
    L = len(sigmas)
    total, gstep = sum(n + 1 for n in n_steps), 0
    with torch.no_grad():
        if project is not None:
            x = project(x, 0)
        for i in range(L):
            n = n_steps[i] + 1
            for t in range(1, n + 1):
                x_read, s = x, score_at(x, i)
                if t < n:  # corrector (Langevin at sigma_i); written as Alg. 1's update with alpha = 2 eps
                    z = torch.randn(x.shape, generator=g, device=x.device, dtype=x.dtype)
                    eps = 2 * (snr * _norm(z) / max(_norm(s), 1e-12)) ** 2
                    x, drift, noise = langevin_step(x, s, 2 * eps, z)
                    step_size = 2 * eps
                else:  # predictor: reverse diffusion from sigma_i to sigma_{i+1}
                    nxt = float(sigmas[i + 1]) if i + 1 < L else 0.0
                    step_size = float(sigmas[i]) ** 2 - nxt ** 2
                    drift = step_size * s
                    noise = (step_size ** 0.5 * torch.randn(x.shape, generator=g, device=x.device, dtype=x.dtype)
                             if i + 1 < L else torch.zeros_like(x))
                    x = x + drift + noise
                if project is not None:
                    x = project(x, i + 1 if t == n else i)
                gstep += 1
                if t % yield_every == 0 or t == n:
                    sn, nn_ = _norm(drift), _norm(noise)
                    sigma = float(sigmas[i])
                    cmd = yield LangevinState(i, L, sigma, step_size, t, n, gstep, total, x, sn, nn_,
                                              sn / nn_ if nn_ > 0 else float("nan"), final=gstep == total,
                                              denoised=tweedie(x_read, s, sigma), denoised_sigma=sigma)
                    if cmd == "stop":
                        return x
    return x


def karras_sigmas(sigma_max: float, sigma_min: float, n: int, rho: float = 7.0) -> torch.Tensor:
    """Karras et al. (2022), Eq. 5: (sigma_max^(1/rho) + i/(n-1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho,
    i = 0..n-1, descending, shape (n,); rho = 7 spends more steps at small sigma."""
    if n == 1:
        return torch.tensor([float(sigma_max)])
    i = torch.arange(n, dtype=torch.float64) / (n - 1)
    return ((sigma_max ** (1 / rho) + i * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho).float()


def churn_gamma(churn: float, n: int) -> float:
    """Karras et al.'s (2022) Alg. 2 factor: each of n steps starts at sigma * (1 + gamma), capped at sqrt(2) - 1."""
    return min(churn / n, 2 ** 0.5 - 1)


def _heun_chain(score_sigma, x: torch.Tensor, ts: Sequence[float], yield_every: int = 1, project=None,
                churn: float = 0.0, g: Optional[torch.Generator] = None,
                ) -> Generator[LangevinState, Optional[str], torch.Tensor]:
    """The probability-flow ODE dx/dsigma = -sigma s(x, sigma) from ts[0] down to 0 by Heun's method
    (Karras et al. 2022, Alg. 1): an Euler step to the next sigma, then the average of the two slopes, except
    on the last step to sigma = 0 (Euler only). 2N - 1 network evaluations for N sigmas. With churn = 0 it is
    deterministic (the randomness is all in the start); churn > 0 is their Alg. 2: before each step, noise
    raises sigma by a factor 1 + gamma, gamma = min(churn / N, sqrt(2) - 1), which lets the chain correct the
    errors of an imperfect score. `project(x, sigma)` sets the known pixels to their value at sigma.
    One state per sigma step (level = step index; noise_norm is the churn noise's, snr NaN); its denoised is
    D(x; t) = x + t^2 s(x, t) at the step's start (after churn and projection: t = sigma_hat with churn)."""
    N = len(ts)
    gamma = churn_gamma(churn, N)
    with torch.no_grad():
        for i in range(N):
            t, t_next = float(ts[i]), float(ts[i + 1]) if i + 1 < N else 0.0
            noise_norm = 0.0
            if gamma > 0:  # Alg. 2, lines 5-6: x at the raised sigma t_hat
                t_hat = t * (1 + gamma)
                z = torch.randn(x.shape, generator=g, device=x.device, dtype=x.dtype) * (t_hat ** 2 - t ** 2) ** 0.5
                x, t, noise_norm = x + z, t_hat, _norm(z)
            if project is not None:
                x = project(x, t)
            x_read, s = x, score_sigma(x, t)
            d = -t * s  # = (x - D(x; t)) / t
            x_next = x + (t_next - t) * d
            if t_next > 0:  # Heun's correction (Alg. 1, lines 7-8)
                if project is not None:
                    x_next = project(x_next, t_next)
                d = 0.5 * (d - t_next * score_sigma(x_next, t_next))
                x_next = x + (t_next - t) * d
            drift = x_next - x
            x = x_next if project is None or t_next > 0 else project(x_next, 0.0)
            if (i + 1) % yield_every == 0 or i == N - 1:
                cmd = yield LangevinState(i, N, float(ts[i]), float(ts[i]) - t_next, 1, 1, i + 1, N, x, _norm(drift),
                                          noise_norm, float("nan"), final=i == N - 1,
                                          denoised=tweedie(x_read, s, t), denoised_sigma=t)
                if cmd == "stop":
                    return x
    return x


@dataclass(frozen=True)
class SamplingPlan:
    """What a SampleConfig runs on a model: the sampling ladder (descending), the number of states the
    generator reports in all (for progress bars), the network evaluations per sample (for cost) and the score
    evaluations that take the exact training-set score instead (SampleConfig.exact_above)."""
    sigmas: torch.Tensor
    total_steps: int
    nfe: int
    n_exact: int = 0


def plan(model, sc: SampleConfig) -> SamplingPlan:
    """The ladder and cost of `sc` on `model` (a ScoreModel); ConfigError when the model cannot take it."""
    check_sampler_for(model, sc)
    ms = model.sigmas.detach().cpu().float()
    top = sc.sigma_begin or float(ms[0])
    bottom = sc.sigma_end or float(ms[-1])
    n = sc.num_levels or len(ms)
    if not (top > bottom or (n == 1 and top == bottom)):
        raise ConfigError(f"the sampling ladder runs from sigma_begin={top:g} to sigma_end={bottom:g}: it must descend "
                          f"(set sigma_begin above sigma_end)")
    if sc.sampler == "heun":
        sig = karras_sigmas(top, bottom, n, sc.rho)
        total = n
    else:
        from .noise import geometric_sigmas
        sig = geometric_sigmas(top, bottom, n) if sc.custom_ladder() else ms
        total = sum(sc.steps_per_level(len(sig))) + (len(sig) if sc.sampler == "pc" else 0)
    evals = _evaluation_sigmas(sc, sig.tolist())
    n_exact = sum(t > sc.exact_above for t in evals) if sc.exact_above > 0 else 0
    return SamplingPlan(sig, total, len(evals) - n_exact, n_exact)


def _evaluation_sigmas(sc: SampleConfig, sig: Sequence[float]) -> list:
    """The sigma of every score evaluation `sc` makes on the ladder `sig`, in order (what the chains evaluate)."""
    if sc.sampler == "heun":
        gamma = churn_gamma(sc.churn, len(sig))  # as _heun_chain: each step starts at the raised sigma
        return [v for i, t in enumerate(sig) for v in ([t * (1 + gamma)] + ([sig[i + 1]] if i + 1 < len(sig) else []))]
    steps = sc.steps_per_level(len(sig))
    extra = 1 if sc.sampler == "pc" else 0  # pc: the predictor step after the corrector steps
    out = [t for t, k in zip(sig, steps) for _ in range(k + extra)]
    return out + ([sig[-1]] if sc.sampler == "annealed_langevin" and sc.denoise else [])


def check_sampler_for(model, sc: SampleConfig) -> None:
    """ConfigError naming the fix when `sc` needs a continuous-sigma model and `model` is level-conditioned, or
    asks for guidance and `model` carries no guide."""
    check_sampler(sc, ModelConfig(arch="compact", conditioning="sigma" if getattr(model, "continuous", False)
                                  else "level"))
    if sc.guidance != 1.0 and getattr(model, "guide", None) is None:
        raise ConfigError(f"guidance={sc.guidance:g} needs a guide model inside the checkpoint (autoguidance) and this "
                          f"one has none: sample with guidance 1 (--guidance 1), or embed a guide, e.g. an early "
                          f"checkpoint of the same run, with `ncsn guide CHECKPOINT --guide EARLY.pt --out FILE.pt`")
    if sc.dg_weight > 0 and getattr(model, "discriminator", None) is None:
        raise ConfigError(f"dg_weight={sc.dg_weight:g} needs a discriminator inside the checkpoint (discriminator "
                          f"guidance) and this one has none: sample with dg_weight 0 (--dg-weight 0), or train one "
                          f"with `ncsn discriminator CHECKPOINT --out FILE.pt`")
    if sc.exact_above > 0 and getattr(model, "data_config", None) is None:
        raise ConfigError("exact_above needs to know the model's training images (a model loaded from a checkpoint "
                          "or built by build_model does): sample with exact_above 0")


class Guided:
    """Autoguidance (Karras et al. 2024, "Guiding a diffusion model with a bad version of itself"): the score
    s_guide + w (s - s_guide), i.e. the denoiser D_guide + w (D - D_guide), where the guide is a weaker model of the
    same data. Where the two agree nothing changes; where the weaker one errs, the chain is pushed further from
    its error, toward cleaner, more typical digits, without the class-conditional labels that classifier-free
    guidance needs. Every sampler takes it like the model itself (its ladder, continuity and data mean are the
    model's); each evaluation runs both networks."""

    def __init__(self, model, w: float):
        self.model, self.guide, self.w = model, model.guide, float(w)

    def __call__(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        s_guide = self.guide(x, cond)
        return torch.lerp(s_guide, self.model(x, cond), self.w)

    def __getattr__(self, name: str):
        return getattr(self.model, name)


class DiscriminatorGuided:
    """A score model whose score, for sigma in the discriminator's range (and at most `below`, where the score is
    the model's own and not an exact one), is s + w grad_x log r(x, sigma), with log r the discriminator's
    estimate of log p_data,sigma - log p_model,sigma (ncsn_core.discriminator.LogRatio: its logit, plus its class
    part where it has one); the model's elsewhere. Every other attribute (its ladder, continuity, data mean) is the
    model's. The gradient is taken in fp32 whatever the model's precision, inside the sampler's no_grad."""

    def __init__(self, model, discriminator, w: float, below: float = math.inf):
        self.model, self.disc, self.w = model, discriminator, float(w)
        self.lo, self.hi = discriminator.cfg.sigma_min, min(discriminator.cfg.sigma_max, below)

    def __call__(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        s = self.model(x, cond)
        sigma = cond.float() if cond.is_floating_point() else self.model.sigmas[cond].float()
        on = (sigma >= self.lo) & (sigma <= self.hi)
        if not bool(on.any()):
            return s
        with torch.enable_grad(), torch.autocast(x.device.type, enabled=False):
            xg = x[on].detach().float().requires_grad_(True)
            (grad,) = torch.autograd.grad(self.disc(xg, sigma[on]).sum(), xg)
        s = s.clone()
        s[on] += self.w * grad.to(s.dtype)
        return s

    def __getattr__(self, name: str):
        return getattr(self.model, name)


class Bf16:
    """The network under bfloat16 autocast (SampleConfig.precision 'bf16'), its scores returned in fp32, so that the
    sampler's own arithmetic (the Langevin and Heun updates, the guidance's extrapolation) stays fp32. Its guide,
    where it has one, runs the same way."""

    def __init__(self, model):
        self.model = model

    def __call__(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        with autocast(x.device, "bf16"):
            return self.model(x, cond).float()

    def __getattr__(self, name: str):
        value = getattr(self.model, name)
        return Bf16(value) if name == "guide" and value is not None else value


def sample(model, sc: SampleConfig, shape: Sequence[int], seed: Seed = 0, device=None, yield_every: Optional[int] = None,
           image: Optional[torch.Tensor] = None, mask: Optional[torch.Tensor] = None,
           ) -> Generator[LangevinState, Optional[str], torch.Tensor]:
    """The sampler `sc` names, on `model` (a ScoreModel: its ladder, continuity and data mean are read from it).

    shape: (B, C, H, W). With image (B, C, H, W) in [0, 1] and mask (1 = known pixel), it inpaints: the known
    pixels follow the data's noisy path (Alg. 2 for the Langevin samplers; image + sigma z0 for the ODE).
    yield_every: report every k steps (default: about 4 reports per level; every sigma step for Heun).
    """
    device = device or model.sigmas.device
    pl = plan(model, sc)
    if sc.precision == "bf16":
        model = Bf16(model)
    if sc.guidance != 1.0:
        model = Guided(model, sc.guidance)
    if sc.exact_above > 0:
        model = ExactAbove(model, training_images(model.data_config), sc.exact_above)
    if sc.dg_weight > 0:  # outermost: it corrects whatever score the sampler would take, below the exact part
        model = DiscriminatorGuided(model, model.discriminator, sc.dg_weight, below=sc.exact_above or math.inf)
    sig = pl.sigmas.to(device)
    steps = None if sc.sampler == "heun" else sc.steps_per_level(len(sig))
    every = yield_every or (1 if steps is None else max(1, max(steps) // 4))
    mean = getattr(model, "data_mean", None)
    if sc.sampler == "annealed_langevin":
        if image is not None:
            return inpaint(model, sig, image, mask, sc.step_lr, steps, seed=seed, init=sc.init, denoise=sc.denoise,
                           yield_every=every, variance_correction=sc.variance_correction, init_mean=mean)
        return annealed_langevin(model, sig, shape, sc.step_lr, steps, seed=seed, init=sc.init, denoise=sc.denoise,
                                 yield_every=every, device=device, variance_correction=sc.variance_correction,
                                 init_mean=mean)
    g = make_generator(seed, device)
    x = initial_noise(shape, sc.init, g, device, float(sig[0]), mean)
    if sc.sampler == "pc":
        project = None
        if image is not None:
            project = _noisy_known(image, mask, lambda i: float(sig[i]) if i < len(sig) else 0.0, g, per_call=True)
        return _pc_chain(_level_score(model, len(x), device, sig.tolist()), x, sig.tolist(), steps, sc.snr, g, every,
                         project)

    def score_sigma(x: torch.Tensor, t: float) -> torch.Tensor:
        return model(x, torch.full((len(x),), t, device=device))
    project = _noisy_known(image, mask, lambda t: t, g, per_call=False) if image is not None else None
    return _heun_chain(score_sigma, x, sig.tolist(), every, project, churn=sc.churn, g=g)


def resolve(base: SampleConfig, **overrides) -> SampleConfig:
    """`base` with the given fields replaced, None meaning "keep base's" (validated again: ConfigError)."""
    import dataclasses
    return dataclasses.replace(base, **{k: v for k, v in overrides.items() if v is not None})


def resolve_for(model, base: SampleConfig, **overrides) -> tuple[SampleConfig, SamplingPlan]:
    """`resolve(base, **overrides)` checked against `model` (its data mean for the 'data-mean' start, its
    conditioning for the sampler and ladder), with its plan; ConfigError naming the fix."""
    sc = resolve(base, **overrides)
    check_data_mean(sc.init, getattr(model, "data_mean", None) is not None)
    return sc, plan(model, sc)


def describe(sc: SampleConfig, pl: SamplingPlan) -> str:
    """One line naming a sampler's settings and cost, for logs, figures and window captions."""
    sig = pl.sigmas.tolist()
    ladder = f"{len(sig)} sigmas {sig[0]:.4g} -> {sig[-1]:.4g}"
    steps = sc.n_steps_each if isinstance(sc.n_steps_each, int) else "/".join(map(str, sc.n_steps_each))
    if sc.sampler == "heun":
        text = f"Heun ODE, {ladder} (rho {sc.rho:g}), start {sc.init}" + (f", churn {sc.churn:g}" if sc.churn else "")
    elif sc.sampler == "pc":
        text = f"predictor-corrector, {ladder}, corrector T={steps}, snr={sc.snr:g}, start {sc.init}"
    else:
        text = (f"annealed Langevin, {ladder}, T={steps}, step_lr={sc.step_lr:g}, start {sc.init}, "
                f"variance_correction={sc.variance_correction:g}, denoise={'on' if sc.denoise else 'off'}")
    guided = f", autoguidance w={sc.guidance:g} (each evaluation also runs the guide)" if sc.guidance != 1.0 else ""
    bf16 = ", the network in bf16" if sc.precision == "bf16" else ""
    exact = (f", the training images' exact score above sigma {sc.exact_above:g} ({pl.n_exact} evaluations)"
             if sc.exact_above > 0 else "")
    dg = f", discriminator guidance w_DG={sc.dg_weight:g}" if sc.dg_weight > 0 else ""
    return f"{text}{guided}{bf16}{exact}{dg}; {pl.nfe} network evaluations per sample"


def settings_record(sc: SampleConfig, pl: SamplingPlan) -> dict:
    """The sampler that ran, for JSON output and files' metadata: its fields, ladder, cost and one line."""
    import dataclasses
    return {**dataclasses.asdict(sc), "sigmas": [float(f"{v:.6g}") for v in pl.sigmas.tolist()], "nfe": pl.nfe,
            "exact_evaluations": pl.n_exact, "description": describe(sc, pl)}


def _noisy_known(image: torch.Tensor, mask: torch.Tensor, sigma_of, g: torch.Generator, per_call: bool):
    """project(x, key): the known pixels (mask 1) set to image + sigma_of(key) * z. per_call: a fresh z for each new
    key (a level, as Alg. 2 draws y once per level, drawn at its first call); otherwise one z for the whole run
    (the ODE's path), drawn now."""
    m = mask.to(device=image.device, dtype=image.dtype).expand_as(image)

    def draw() -> torch.Tensor:
        return torch.randn(image.shape, generator=g, device=image.device, dtype=image.dtype)
    state = {"key": None, "z": None if per_call else draw()}

    def project(x: torch.Tensor, key) -> torch.Tensor:
        if per_call and (state["z"] is None or state["key"] != key):
            state["key"], state["z"] = key, draw()
        return x * (1 - m) + (image + sigma_of(key) * state["z"]) * m
    return project


def drain(gen: Iterator[LangevinState]) -> torch.Tensor:
    """The blocking API: run a sampler generator (or any of the engine's generators) to the end and return its value."""
    try:
        while True:
            next(gen)
    except StopIteration as stop:
        return stop.value
