"""2-D toy lab: a Gaussian mixture with exact scores (ncsn_core.mixture), and the paper's Figure 3 experiment (why
annealing)."""
from __future__ import annotations

from typing import Optional

import torch

from .config import ToySettings, step_size_warning  # noqa: F401 - the toy's settings and check live with the configs
from .mixture import GaussianMixture, paper_mixture  # noqa: F401 - the toy lab's mixtures
from .noise import geometric_sigmas
from .sampling import annealed_langevin, drain, langevin, make_generator


def lower_left_fraction(x: torch.Tensor) -> float:
    """Share of particles nearer (-5,-5) than (5,5), i.e. below the line x + y = 0."""
    return float((x.sum(dim=1) < 0).float().mean())


def uniform_start(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, 2, generator=generator)


def run_experiment(s: ToySettings, mixture: Optional[GaussianMixture] = None) -> dict:
    """Plain vs annealed Langevin from uniform starts in [-box, box]^2 with exact scores.

    Returns a JSON-ready dict {"langevin": {...}, "annealed": {...}, "true_lower_left_fraction": 0.2}.
    """
    mix = mixture or paper_mixture()
    g = make_generator(s.seed, "cpu")
    x0 = uniform_start(s.n_particles, -s.box, s.box, g)
    x_plain = drain(langevin(mix.score, x0, s.langevin_step_size, s.langevin_n_steps, seed=s.seed + 1,
                             yield_every=s.langevin_n_steps))
    sigmas = geometric_sigmas(s.sigma_begin, s.sigma_end, s.num_classes)
    x_ann = drain(annealed_langevin(mix.score_net(sigmas), sigmas, x0.shape, s.step_lr, s.n_steps_each,
                                    seed=s.seed + 2, x0=x0, yield_every=s.n_steps_each))
    alpha_1 = s.step_lr * (s.sigma_begin / s.sigma_end) ** 2
    return {
        "true_lower_left_fraction": float(mix.weights[0]),
        "langevin": {"lower_left_fraction": lower_left_fraction(x_plain), "n_particles": s.n_particles,
                     "step_size": s.langevin_step_size, "n_steps": s.langevin_n_steps,
                     "finite": bool(torch.isfinite(x_plain).all())},
        "annealed": {"lower_left_fraction": lower_left_fraction(x_ann), "n_particles": s.n_particles,
                     "sigmas": [round(float(v), 6) for v in sigmas], "step_lr": s.step_lr,
                     "n_steps_each": s.n_steps_each, "alpha_1": alpha_1,
                     "finite": bool(torch.isfinite(x_ann).all())},
        "start": {"distribution": "uniform", "box": [-s.box, s.box]},
        "seed": s.seed,
        "notation": "alpha_i = step_lr * sigma_i^2 / sigma_L^2; x <- x + alpha_i/2 * score + sqrt(alpha_i) * z",
    }


# ---------------------------------------------------------------------------------------------
# Learned fields: train the MLP on samples and compare its field with the exact one
# ---------------------------------------------------------------------------------------------

def field_error(score_net, mixture: GaussianMixture, sigmas: torch.Tensor, level: int, box: float = 8.0,
                n_grid: int = 41, density_threshold: float = 1e-3) -> dict:
    """Mean |s_theta - s_exact| / mean |s_exact| on a grid over [-box, box]^2 at one level, split by
    region: high density (p_sigma(x) above threshold * max) and low density (the rest)."""
    lin = torch.linspace(-box, box, n_grid)
    gx, gy = torch.meshgrid(lin, lin, indexing="xy")
    pts = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)
    sigma = float(sigmas[level])
    with torch.no_grad():
        learned = score_net(pts, torch.full((len(pts),), level, dtype=torch.long))
    exact = mixture.score(pts, sigma)
    err = (learned - exact).norm(dim=1)
    dens = mixture.log_prob(pts, sigma).exp()
    high = dens > density_threshold * dens.max()
    rel = lambda m: float(err[m].mean() / exact[m].norm(dim=1).mean().clamp_min(1e-8)) if m.any() else float("nan")
    return {"level": level, "sigma": sigma, "high_density_rel_error": rel(high), "low_density_rel_error": rel(~high),
            "high_density_fraction_of_grid": float(high.float().mean())}


def train_toy_score(loss: str = "dsm", n_iters: int = 2000, sigmas: Optional[torch.Tensor] = None, seed: int = 0,
                    hidden: int = 128, batch_size: int = 256, lr: float = 3e-3, mixture: Optional[GaussianMixture] = None):
    """Generator: trains the MLP on mixture samples, yielding (step, loss, model) every 100 steps and at the end.
    loss is 'dsm', 'ssm' or 'ssm_vr'."""
    from .losses import compute_loss
    from .models import ScoreModel
    from .models.mlp import MLPScore
    mix = mixture or paper_mixture()
    sig = sigmas if sigmas is not None else geometric_sigmas(20.0, 0.7, 10)
    torch.manual_seed(seed)
    # output divided by sigma_i (NCSNv2): the MLP then only learns O(1) directions, at every level
    net = ScoreModel(MLPScore(2, hidden, len(sig)), sig, scale_by_sigma=True)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    for step in range(1, n_iters + 1):
        x = mix.sample(batch_size, generator=g)
        res = compute_loss(loss, net, x, sig, generator=g)
        opt.zero_grad()
        res.loss.backward()
        opt.step()
        if step % 100 == 0 or step == n_iters:
            yield step, float(res.loss.detach()), net
