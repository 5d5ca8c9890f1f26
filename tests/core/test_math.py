"""The math: DSM target and weighting, SSM, sigma ladder, Langevin step sizes and level order, inpainting."""
import math

import pytest
import torch

from ncsn_core.losses import dsm_loss, loss_per_level, ssm_loss
from ncsn_core.noise import check_sigma_end, geometric_sigmas, suggest_sigma_begin
from ncsn_core.sampling import annealed_langevin, drain, inpaint, langevin, langevin_step, noise_scales, step_sizes


def test_geometric_ladder_is_descending_with_constant_ratio():
    s = geometric_sigmas(1.0, 0.01, 10)
    assert s[0] == pytest.approx(1.0) and s[-1] == pytest.approx(0.01)
    ratios = s[1:] / s[:-1]
    assert torch.allclose(ratios, ratios[0].expand_as(ratios), rtol=1e-5)
    assert (ratios < 1).all()


def test_sigma_helpers():
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0], [1.0, 1.0]])
    assert suggest_sigma_begin(x) == pytest.approx(5.0)
    assert check_sigma_end(0.001, 784) is not None and "0.001" in check_sigma_end(0.001, 784)
    assert check_sigma_end(0.01, 784) is None


def test_dsm_target_and_sigma_squared_weighting():
    # a "network" that always outputs zero: per-example loss = 1/2 |z/sigma|^2 sigma^2 = 1/2 |z|^2
    x = torch.zeros(4, 1, 2, 2)
    sigmas = torch.tensor([2.0, 0.5])
    labels = torch.tensor([0, 1, 0, 1])
    g = torch.Generator().manual_seed(0)
    res = dsm_loss(lambda xt, lab: torch.zeros_like(xt), x, sigmas, labels, anneal_power=2.0, generator=g)
    z = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    expected = 0.5 * (z ** 2).flatten(1).sum(1)
    assert torch.allclose(res.per_example, expected, atol=1e-5)
    assert res.loss == pytest.approx(float(expected.mean()), rel=1e-5)
    # the ideal denoiser's output -(x~ - x)/sigma^2 gives exactly zero loss
    captured = {}

    def perfect(xt, lab):
        return -(xt - x) / sigmas[lab].view(-1, 1, 1, 1) ** 2
    res = dsm_loss(perfect, x, sigmas, labels, generator=torch.Generator().manual_seed(0))
    assert float(res.loss) == pytest.approx(0.0, abs=1e-8)
    # anneal_power 0: no weighting -> 1/2 |z|^2 / sigma^2
    res0 = dsm_loss(lambda xt, lab: torch.zeros_like(xt), x, sigmas, labels, anneal_power=0.0,
                    generator=torch.Generator().manual_seed(0))
    assert torch.allclose(res0.per_example, expected / sigmas[labels] ** 2, atol=1e-4)


def test_dsm_exact_gaussian_score_beats_perturbed_scores():
    # data N(0, s0^2 I): the sigma-perturbed density is N(0, (s0^2 + sigma^2) I), exact score -x/(s0^2 + sigma^2)
    s0 = 0.5
    x = s0 * torch.randn(20000, 2, generator=torch.Generator().manual_seed(1))
    sigmas = geometric_sigmas(1.0, 0.1, 4)

    def scaled(c):
        return lambda xt, lab: -c * xt / (s0 ** 2 + sigmas[lab].view(-1, 1) ** 2)
    losses = {c: float(dsm_loss(scaled(c), x, sigmas, generator=torch.Generator().manual_seed(2)).loss)
              for c in (0.7, 1.0, 1.3)}
    assert losses[1.0] < losses[0.7] and losses[1.0] < losses[1.3]


@pytest.mark.parametrize("variance_reduced", [False, True])
def test_ssm_prefers_exact_score(variance_reduced):
    s0 = 0.7
    x = s0 * torch.randn(4000, 1, 3, 3, generator=torch.Generator().manual_seed(3))  # image-shaped: sums over C,H,W
    sigmas = torch.tensor([0.3])

    def scaled(c):
        return lambda xt, lab: -c * xt / (s0 ** 2 + 0.09)
    vals = {c: float(ssm_loss(scaled(c), x, sigmas, variance_reduced=variance_reduced,
                              generator=torch.Generator().manual_seed(4)).loss.detach()) for c in (0.6, 1.0, 1.5)}
    assert vals[1.0] < vals[0.6] and vals[1.0] < vals[1.5]
    # expected value of the objective at the exact score: -1/2 E|s|^2 * sigma^2 per example
    d, var = 9, s0 ** 2 + 0.09
    assert vals[1.0] == pytest.approx(-0.5 * d / var * 0.09, rel=0.15)


def test_loss_per_level_sums_and_counts():
    from ncsn_core.losses import LossResult
    r = LossResult(torch.tensor(0.0), torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([0, 2, 2, 0]))
    sums, counts = loss_per_level(r, 3)
    assert sums.tolist() == [5.0, 0.0, 5.0] and counts.tolist() == [2.0, 0.0, 2.0]


def test_langevin_step_formula():
    x, s, z = torch.ones(3), torch.full((3,), 2.0), torch.full((3,), -1.0)
    new, drift, noise = langevin_step(x, s, 0.04, z)
    assert torch.allclose(new, 1 + 0.02 * 2 - 0.2 * 1 + 0 * x)
    assert torch.allclose(drift, torch.full((3,), 0.04)) and torch.allclose(noise, torch.full((3,), -0.2))


def test_annealed_langevin_step_sizes_and_level_order():
    sigmas = geometric_sigmas(1.0, 0.01, 5)
    seen = []

    def net(x, labels):
        seen.append(int(labels[0]))
        assert (labels == labels[0]).all()
        return torch.zeros_like(x)
    states = list(annealed_langevin(net, sigmas, (2, 1, 4, 4), step_lr=2e-5, n_steps_each=3, yield_every=1))
    assert seen == [i for i in range(5) for _ in range(3)]  # sigma_1 first, T steps each
    alphas = step_sizes(sigmas, 2e-5)
    for st in states:
        assert st.sigma == pytest.approx(float(sigmas[st.level]))
        assert st.step_size == pytest.approx(2e-5 * (st.sigma / 0.01) ** 2)
        assert st.step_size == pytest.approx(float(alphas[st.level]))
    assert [st.level for st in states] == sorted(st.level for st in states)
    assert states[-1].final and sum(st.final for st in states) == 1
    assert states[0].x.shape == (2, 1, 4, 4)


def test_annealed_langevin_is_seeded_and_stoppable():
    sigmas = geometric_sigmas(1.0, 0.1, 3)
    net = lambda x, lab: -x
    a = drain(annealed_langevin(net, sigmas, (4, 2), 0.01, 5, seed=7))
    b = drain(annealed_langevin(net, sigmas, (4, 2), 0.01, 5, seed=7))
    c = drain(annealed_langevin(net, sigmas, (4, 2), 0.01, 5, seed=8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    gen = annealed_langevin(net, sigmas, (4, 2), 0.01, 5, yield_every=1)
    next(gen)
    with pytest.raises(StopIteration):
        gen.send("stop")


def test_uniform_start_and_denoise_step():
    sigmas = torch.tensor([0.5, 0.1])
    x0 = torch.full((1, 1, 2, 2), 0.5)
    net = lambda x, lab: torch.ones_like(x)
    states = list(annealed_langevin(net, sigmas, x0.shape, 0.01, 2, x0=x0, denoise=True, yield_every=1))
    assert states[-1].final and not states[-2].final
    assert torch.allclose(states[-1].x, states[-2].x + 0.1 ** 2)  # x + sigma_L^2 * s(x, L)
    g = torch.Generator().manual_seed(0)
    gen = annealed_langevin(net, sigmas, (1000,), 1e-9, 1, init="uniform", yield_every=1)
    first = next(gen).x
    assert 0 <= float(first.min()) and float(first.max()) < 1.0 + 1e-3


def test_plain_langevin_samples_a_gaussian():
    x0 = torch.zeros(4000, 1)
    x = drain(langevin(lambda x: -x, x0, 0.05, 400, seed=0, yield_every=400))
    assert float(x.mean()) == pytest.approx(0.0, abs=0.08)
    assert float(x.std()) == pytest.approx(1.0, abs=0.08)


@pytest.mark.parametrize("kappa, expected_var", [(0.0, 1 / (1 - 0.25)), (0.5, (1 - 0.125) / (1 - 0.25)), (1.0, 1.0)])
def test_variance_correction_sets_the_stationary_variance(kappa, expected_var):
    # Gaussian target N(0, sigma_i^2) at every level (exact score -x/sigma_i^2). step_lr = sigma_L^2 makes
    # alpha_i / (4 sigma_i^2) = 0.25: the paper's update settles at sigma_i^2 / 0.75; kappa = 1 is exact.
    sigmas = torch.tensor([1.0, 0.5])
    net = lambda x, lab: -x / sigmas[lab].view(-1, 1) ** 2
    x = drain(annealed_langevin(net, sigmas, (20000, 1), step_lr=0.25, n_steps_each=60, seed=0, init="gaussian",
                                variance_correction=kappa, yield_every=60))
    assert float(x.var()) / 0.5 ** 2 == pytest.approx(expected_var, rel=0.04)


def test_noise_scales_and_their_bounds():
    sigmas = torch.tensor([1.0, 0.1, 0.01])
    alphas = step_sizes(sigmas, 5e-5)  # alpha_i / (4 sigma_i^2) = 5e-5 / 4e-4 = 0.125 at every level
    assert torch.allclose(noise_scales(sigmas, alphas, 0.0), torch.ones(3))
    assert torch.allclose(noise_scales(sigmas, alphas, 1.0), torch.full((3,), math.sqrt(0.875)))
    assert torch.equal(noise_scales(sigmas, step_sizes(sigmas, 1e-2), 1.0), torch.zeros(3))  # floored, not NaN
    with pytest.raises(ValueError, match=r"variance_correction=1.5 must be in \[0, 1\]"):
        noise_scales(sigmas, alphas, 1.5)
    net = lambda x, lab: -x
    paper = drain(annealed_langevin(net, sigmas, (3, 2), 5e-5, 4, seed=1))
    assert torch.equal(paper, drain(annealed_langevin(net, sigmas, (3, 2), 5e-5, 4, seed=1, variance_correction=0.0)))
    assert not torch.equal(paper, drain(annealed_langevin(net, sigmas, (3, 2), 5e-5, 4, seed=1, variance_correction=1.0)))


def test_inpaint_keeps_known_pixels_equal_to_y_at_every_step():
    sigmas = geometric_sigmas(1.0, 0.05, 3)
    image = torch.rand(2, 1, 6, 6, generator=torch.Generator().manual_seed(0))
    mask = torch.zeros(1, 1, 6, 6)
    mask[..., :3, :] = 1  # top half known
    net = lambda x, lab: -(x - 0.5)
    known = mask.expand_as(image).bool()
    per_level = {}
    for st in inpaint(net, sigmas, image, mask, 0.01, 4, seed=1, yield_every=1):
        y = st.x[known]
        if st.level in per_level:
            assert torch.equal(y, per_level[st.level])  # y drawn once per level, reset after every step
        per_level[st.level] = y
        resid = (y - image[known]) / st.sigma
        assert float(resid.abs().max()) < 6.0  # y = image + sigma_i * z
    assert len(per_level) == 3
    assert not torch.equal(per_level[0], per_level[1])
    # with the final denoising step, the known pixels are the clean image
    final = drain(inpaint(net, sigmas, image, mask, 0.01, 2, denoise=True))
    assert torch.equal(final[known], image[known])
    # the unknown pixels did move
    assert not torch.allclose(final[~known], image[~known])
