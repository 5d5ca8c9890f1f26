"""The samplers beyond Alg. 1 (predictor-corrector, Heun's probability-flow ODE, per-level schedules) and the
continuous-sigma model, checked on Gaussians whose scores are exact."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from ncsn_core.config import ConfigError, SampleConfig, get_preset
from ncsn_core.losses import NoiseDraw, draw_sigmas, dsm_loss
from ncsn_core.models import SIGMA_DATA, build_model
from ncsn_core.noise import geometric_sigmas
from ncsn_core.sampling import LangevinState, drain, karras_sigmas, plan, sample
from ncsn_core.training import Finished, run_to_end, train

from test_pipeline import tiny_cfg


class GaussianScore(nn.Module):
    """The exact score of N(mu, s0^2 I) perturbed by N(0, sigma^2 I): -(x - mu) / (s0^2 + sigma^2). Conditioned on
    sigma values (continuous) or on level indices into `sigmas`."""

    def __init__(self, mu: float, s0: float, sigmas: torch.Tensor, continuous: bool = True):
        super().__init__()
        self.mu, self.s0, self.continuous = mu, s0, continuous
        self.register_buffer("sigmas", sigmas)
        self.data_mean = None

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        sigma = cond if cond.is_floating_point() else self.sigmas[cond]
        return -(x - self.mu) / (self.s0 ** 2 + sigma.view(-1, *([1] * (x.dim() - 1))) ** 2)


MU, S0 = 0.3, 0.2
SHAPE = (4000, 1, 2, 2)


def _stats(x: torch.Tensor) -> tuple[float, float]:
    return float(x.mean()), float(x.std())


def test_heun_transports_noise_to_the_data_distribution():
    net = GaussianScore(MU, S0, geometric_sigmas(10.0, 0.01, 5))
    sc = SampleConfig(sampler="heun", num_levels=18, sigma_begin=10.0, sigma_end=0.002, init="gaussian")
    states = []
    gen = sample(net, sc, SHAPE, seed=0)
    try:
        while True:
            states.append(next(gen))
    except StopIteration as stop:
        x = stop.value
    # one state per sigma step, on Karras et al.'s schedule, the last one final
    assert [s.level for s in states] == list(range(18)) and states[-1].final and not states[-2].final
    assert torch.allclose(torch.tensor([s.sigma for s in states]), karras_sigmas(10.0, 0.002, 18), rtol=1e-5)
    assert plan(net, sc).nfe == 35
    # the exact ODE maps N(mu', 10^2 + s0^2) to N(mu, s0^2) (the start is zero-mean, so the mean is off by
    # mu * s0 / sqrt(100 + s0^2), about 0.006); Heun is second order: doubling the steps cuts the error about 4x
    m, s = _stats(x)
    assert abs(m - MU) < 0.02 and abs(s / S0 - 1) < 0.05

    def spread(n):
        return _stats(drain(sample(net, SampleConfig(sampler="heun", num_levels=n, sigma_begin=10.0, sigma_end=0.002,
                                                     init="gaussian"), SHAPE, seed=0)))[1]
    exact = spread(144)  # the same start: only the discretisation differs
    assert abs(exact / S0 - 1) < 0.01
    assert abs(spread(18) - exact) > 3 * abs(spread(36) - exact)


def test_heun_is_deterministic_given_the_start():
    net = GaussianScore(MU, S0, geometric_sigmas(10.0, 0.01, 5))
    sc = SampleConfig(sampler="heun", num_levels=6, sigma_begin=10.0, sigma_end=0.01, init="gaussian")
    a, b, c = (drain(sample(net, sc, (8, 1, 2, 2), seed=s)) for s in (1, 1, 2))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_predictor_corrector_reaches_the_data_distribution():
    sigmas = geometric_sigmas(5.0, 0.01, 30)
    net = GaussianScore(MU, S0, sigmas, continuous=False)  # a level-conditioned model: pc runs on its own ladder
    sc = SampleConfig(sampler="pc", n_steps_each=1, snr=0.16, init="gaussian")
    pl = plan(net, sc)
    assert pl.total_steps == pl.nfe == 30 * 2 and torch.equal(pl.sigmas, sigmas)
    x = drain(sample(net, sc, SHAPE, seed=0))
    m, s = _stats(x)
    # the last predictor step is noise-free (Tweedie's denoising): std s0^2 / sqrt(s0^2 + sigma_L^2), 0.2 % below s0
    assert abs(m - MU) < 0.02 and abs(s / S0 - 1) < 0.05


def test_annealed_langevin_takes_one_step_count_per_level():
    sigmas = geometric_sigmas(1.0, 0.01, 3)
    net = GaussianScore(MU, S0, sigmas, continuous=False)
    sc = SampleConfig(step_lr=1e-4, n_steps_each=(2, 0, 3), init="gaussian")
    states = []
    gen = sample(net, sc, (4, 1, 2, 2), seed=0, yield_every=1)
    for st in gen:
        states.append(st)
    assert [(s.level, s.step, s.n_steps) for s in states] == [(0, 1, 2), (0, 2, 2), (2, 1, 3), (2, 2, 3), (2, 3, 3)]
    assert states[-1].final and plan(net, sc).total_steps == 5
    with pytest.raises(ConfigError, match="3 levels"):
        plan(net, SampleConfig(n_steps_each=(1, 2)))


@pytest.mark.parametrize("sc", [
    SampleConfig(sampler="heun", num_levels=5, sigma_begin=5.0, sigma_end=0.01, init="gaussian"),
    SampleConfig(sampler="pc", n_steps_each=2, init="gaussian"),
    SampleConfig(sampler="annealed_langevin", step_lr=1e-4, n_steps_each=2, denoise=True, init="gaussian"),
], ids=["heun", "pc", "annealed_langevin"])
def test_every_sampler_inpaints_and_keeps_the_known_pixels(sc):
    net = GaussianScore(MU, S0, geometric_sigmas(5.0, 0.01, 4))
    image = torch.rand(3, 1, 4, 4)
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., :2, :] = 1
    x = drain(sample(net, sc, image.shape, seed=0, image=image, mask=mask))
    assert torch.allclose(x[..., :2, :], image[..., :2, :], atol=1e-6)  # known: the image itself at the end
    assert not torch.allclose(x[..., 2:, :], image[..., 2:, :], atol=1e-2)  # unknown: sampled


def test_samplers_that_need_a_continuous_model_are_refused_for_a_level_model():
    net = GaussianScore(MU, S0, geometric_sigmas(1.0, 0.01, 3), continuous=False)
    with pytest.raises(ConfigError, match="continuous sigma"):
        plan(net, SampleConfig(sampler="heun"))
    with pytest.raises(ConfigError, match="own ladder"):
        plan(net, SampleConfig(num_levels=20))
    with pytest.raises(ConfigError, match="conditioning='sigma'"):
        get_preset("mnist-cpu-levels").override("sample", sampler="heun")
    with pytest.raises(ConfigError, match="sigma_sampling"):
        get_preset("mnist-cpu-levels").override("train", sigma_sampling="log-normal")


def test_continuous_model_is_the_preconditioned_denoiser_and_reads_levels_through_its_ladder():
    torch.manual_seed(0)
    cfg = get_preset("mnist-cpu").override("model", channels=(4, 6, 8))
    model = build_model(cfg).double().eval()
    x = torch.rand(3, 1, 28, 28, dtype=torch.float64)
    sigma = torch.tensor([0.003, 0.4, 12.0], dtype=torch.float64)
    with torch.no_grad():
        score = model(x, sigma)
        # Karras et al.: D = 0.5 + c_skip (x - 0.5) + c_out F(c_in (x - 0.5), ln(sigma) / 4); score = (D - x) / sigma^2
        s, sd = sigma.view(-1, 1, 1, 1), SIGMA_DATA
        f = model.net((x - 0.5) / (s ** 2 + sd ** 2).sqrt(), sigma.log() / 4)
        d = 0.5 + sd ** 2 / (s ** 2 + sd ** 2) * (x - 0.5) + s * sd / (s ** 2 + sd ** 2).sqrt() * f
        assert torch.allclose(score, (d - x) / s ** 2, rtol=1e-9, atol=1e-9)
        levels = torch.tensor([0, 4, 9])
        assert torch.equal(model(x, levels), model(x, model.sigmas[levels]))
    level_model = build_model(get_preset("mnist-cpu-levels"))
    with pytest.raises(TypeError, match="level indices"):
        level_model(torch.rand(1, 1, 28, 28), torch.tensor([0.5]))


def test_sigma_draws():
    sigmas = geometric_sigmas(16.0, 0.01, 10)
    g = torch.Generator().manual_seed(0)
    cond, sigma, labels = draw_sigmas(NoiseDraw("log-normal", -1.9, 1.2), 20000, sigmas, g)
    assert torch.equal(cond, sigma) and cond.is_floating_point()
    assert abs(float(sigma.log().mean()) + 1.9) < 0.03 and abs(float(sigma.log().std()) - 1.2) < 0.03
    # labels: the nearest level on a log scale, for the per-level loss curves
    assert torch.equal(labels, (sigma.log()[:, None] - sigmas.log()).abs().argmin(1))
    _, sigma, _ = draw_sigmas(NoiseDraw("log-uniform"), 20000, sigmas, g)
    assert 0.01 <= float(sigma.min()) and float(sigma.max()) <= 16.0
    assert abs(float(sigma.log().mean()) - math.log(16 * 0.01) / 2) < 0.05
    # the paper's draw is unchanged: level indices from the same generator stream as before
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    cond, sigma, labels = draw_sigmas(NoiseDraw("levels"), 64, sigmas, g1)
    assert torch.equal(cond, torch.randint(0, 10, (64,), generator=g2)) and torch.equal(sigma, sigmas[cond])


def test_edm_weighting_makes_the_initial_loss_about_half_a_pixel_count_at_every_sigma():
    torch.manual_seed(0)
    cfg = get_preset("mnist-cpu").override("model", channels=(8, 8, 8))
    model = build_model(cfg)
    x = torch.rand(64, 1, 28, 28) * 0.3
    for sigma in (0.01, 0.3, 10.0):
        draw = NoiseDraw("log-normal", math.log(sigma), 1e-6)
        loss = float(dsm_loss(model, x, model.sigmas, draw=draw, weighting="edm",
                              generator=torch.Generator().manual_seed(1)).loss.detach())
        # F's target has about unit variance per pixel at every sigma: 1/2 * 784 * O(1), not 1/sigma^2-scaled
        assert 100 < loss < 2000, (sigma, loss)


def test_train_minutes_stops_with_a_checkpoint_and_resumes(tmp_path):
    cfg = tiny_cfg(n_iters=50)
    fin = run_to_end(train(cfg, tmp_path / "run", max_minutes=1e-6))
    assert isinstance(fin, Finished) and fin.reason == "time" and fin.step >= 1 and "--minutes" in fin.message
    fin2 = run_to_end(train(cfg.override("train", n_iters=fin.step + 2), tmp_path / "run", resume=True))
    assert fin2.reason == "done" and fin2.step == fin.step + 2


def test_continuous_recipe_trains_and_samples_with_its_own_defaults(tmp_path):
    cfg = get_preset("mnist-cpu").override("model", channels=(4, 6, 8)).override("data", holdout=9800)
    cfg = cfg.override("train", n_iters=3, batch_size=8, save_every=3, preview_every=3, n_preview=4, log_every=1,
                       warmup=2).override("sample", num_levels=4)
    events = list(train(cfg, tmp_path / "run"))
    assert events[-1].reason == "done"
    previews = [e for e in events if type(e).__name__ == "Preview"]
    assert previews and previews[0].images.shape == (4, 1, 28, 28)
    from ncsn_core.checkpoint import load_checkpoint
    ld = load_checkpoint(tmp_path / "run")
    assert ld.model.continuous and ld.config.sample.sampler == "heun"
    states = list(sample(ld.model, ld.config.sample, (2, 1, 28, 28), seed=0))
    assert len(states) == 4 and all(isinstance(s, LangevinState) for s in states) and states[-1].final


def test_cli_reaches_every_sampler_and_any_config_field(tmp_path, capsys):
    import json
    from ncsn_core.cli import main
    run = tmp_path / "run"
    assert main(["train", "--preset", "mnist-cpu", "--run-dir", str(run), "--n-iters", "2", "--batch-size", "4",
                 "--preview-every", "0", "--set", "model.channels=[4,6,8]", "--set", "noise.num_classes=3",
                 "--set", "train.weighting=sigma2", "--json", "--quiet"]) == 0
    capsys.readouterr()
    saved = json.loads((run / "config.json").read_text())
    assert saved["model"]["channels"] == [4, 6, 8] and saved["train"]["weighting"] == "sigma2"
    assert main(["sample", "--checkpoint", str(run), "--n", "2", "--sampler", "heun", "--num-levels", "4",
                 "--out", str(tmp_path / "h.npy"), "--json", "--quiet"]) == 0
    res = json.loads(capsys.readouterr().out)
    # the preset's exact score above sigma 1.5 takes 3 of Heun's 2 * 4 - 1 evaluations from the network
    assert res["sampler"] == "heun" and (res["nfe"], res["exact_evaluations"]) == (4, 3) and len(res["sigmas"]) == 4
    assert main(["sample", "--checkpoint", str(run), "--n", "2", "--sampler", "heun", "--num-levels", "4",
                 "--exact-above", "0", "--out", str(tmp_path / "h.npy"), "--json", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["nfe"] == 7
    assert main(["sample", "--checkpoint", str(run), "--n", "2", "--sampler", "pc", "--num-levels", "3", "--n-steps-each", "1,0,2",
                 "--out", str(tmp_path / "p.npy"), "--json", "--quiet"]) == 0
    res = json.loads(capsys.readouterr().out)  # corrector + predictor steps; the 2 at sigma 16 are the exact score's
    assert (res["nfe"], res["exact_evaluations"]) == (3 + 3 - 2, 2)
    # bad input: one line naming what is wrong and the choices
    assert main(["train", "--preset", "mnist-cpu", "--run-dir", str(tmp_path / "r2"), "--set", "train.foo=1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown field 'foo' in train" in err and "weighting" in err and len(err.splitlines()) == 1
    assert main(["sample", "--checkpoint", str(run), "--n", "2", "--sigma-begin", "0.001", "--sigma-end", "0.01",
                 "--out", str(tmp_path / "x.npy"), "--quiet"]) == 2
    assert "descending" in capsys.readouterr().err  # SampleConfig names the order


def test_heun_with_churn_stays_on_the_data_distribution():
    net = GaussianScore(MU, S0, geometric_sigmas(10.0, 0.01, 5))
    sc = SampleConfig(sampler="heun", num_levels=36, sigma_begin=10.0, sigma_end=0.002, init="gaussian", churn=10.0)
    states = list(sample(net, sc, SHAPE, seed=0))
    assert all(s.noise_norm > 0 for s in states)  # Alg. 2's noise before every step
    x = drain(sample(net, sc, SHAPE, seed=0))
    m, s = _stats(x)
    assert abs(m - MU) < 0.02 and abs(s / S0 - 1) < 0.03


def test_bf16_sampling_stays_close_to_fp32_and_keeps_the_sampler_in_fp32():
    """precision bf16: the network under autocast, its scores (and a guided score's extrapolation) in fp32; the same
    seed gives nearly the same samples, and only a valid precision is accepted."""
    from dataclasses import replace
    from ncsn_core.sampling import Bf16
    torch.manual_seed(0)
    model = build_model(get_preset("mnist-cpu").override("model", channels=(4, 6, 8))).eval()
    model.guide = build_model(get_preset("mnist-cpu").override("model", channels=(4, 6, 8))).eval()
    sc = SampleConfig(sampler="heun", num_levels=4, init="gaussian", guidance=2.0)
    with torch.no_grad():
        score = Bf16(model)(torch.rand(2, 1, 28, 28), torch.tensor([0.5, 2.0]))
        ref = drain(sample(model, sc, (4, 1, 28, 28), seed=0))
        low = drain(sample(model, replace(sc, precision="bf16"), (4, 1, 28, 28), seed=0))
    assert score.dtype == torch.float32 and isinstance(Bf16(model).guide, Bf16)
    assert low.dtype == torch.float32 and not torch.equal(low, ref)  # autocast really ran
    assert ((low - ref).norm() / ref.norm()) < 0.1  # 7 % here: an untrained network, its errors doubled by w = 2
    with pytest.raises(ConfigError, match="precision 'fp16' is unknown"):
        SampleConfig(precision="fp16")
