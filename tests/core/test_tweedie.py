"""The denoised estimate every sampler state carries (Tweedie's formula, x + sigma^2 s(x, sigma)): its math, its
cost (no extra network evaluation), the samples it leaves unchanged, and the level strip / CLI views of it."""
from __future__ import annotations

import hashlib

import pytest
import torch
from PIL import Image

from ncsn_core.config import SampleConfig, get_preset
from ncsn_core.models import build_model
from ncsn_core.noise import geometric_sigmas
from ncsn_core.sampling import drain, plan, sample

from test_samplers import GaussianScore

SHAPE = (3, 1, 6, 6)
SAMPLERS = {
    "langevin": SampleConfig(n_steps_each=3, step_lr=1e-2, init="gaussian"),
    "langevin+denoise": SampleConfig(n_steps_each=3, step_lr=1e-2, denoise=True, variance_correction=0.5),
    "pc": SampleConfig(sampler="pc", n_steps_each=2, init="gaussian"),
    "heun": SampleConfig(sampler="heun", num_levels=5, init="gaussian"),
    "heun+churn": SampleConfig(sampler="heun", num_levels=5, churn=4.0, init="gaussian"),
}


def _inpaint_args(shape=SHAPE) -> dict:
    g = torch.Generator().manual_seed(3)
    mask = torch.zeros(1, 1, *shape[2:])
    mask[..., : shape[2] // 2, :] = 1  # the top half is known
    return {"image": torch.rand(shape, generator=g), "mask": mask}


def _states(model, sc: SampleConfig, inpaint: bool = False, shape=SHAPE) -> list:
    kw = _inpaint_args(shape) if inpaint else {}
    return list(sample(model, sc, shape, seed=11, device=torch.device("cpu"), yield_every=1, **kw))


def _tiny_model(conditioning: str):
    """An untrained 8-channel compact net (3 levels): a real network whose score is no Gaussian's."""
    name = "mnist-cpu" if conditioning == "sigma" else "mnist-cpu-levels"
    cfg = get_preset(name).override("model", channels=(8, 8, 8)).override("noise", num_classes=3)
    torch.manual_seed(0)
    return build_model(cfg).eval()


class CountingModel(torch.nn.Module):
    """`inner` with a count of its forward calls (one per network evaluation of the whole batch)."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.calls = inner, 0
        self.sigmas, self.continuous, self.data_mean = inner.sigmas, inner.continuous, inner.data_mean

    def forward(self, x, cond):
        self.calls += 1
        return self.inner(x, cond)


@pytest.mark.parametrize("name", SAMPLERS)
@pytest.mark.parametrize("inpaint", [False, True])
def test_denoised_is_tweedie_of_the_x_and_sigma_the_step_read(name, inpaint):
    """state.denoised == x' + sigma'^2 s(x', sigma') with x' the chain's x before the step (the previous state's
    x, where nothing reset it in between) and sigma' = state.denoised_sigma; bit for bit, on a real network."""
    sc = SAMPLERS[name]
    model = _tiny_model("sigma")
    states = _states(model, sc, inpaint, shape=(2, 1, 28, 28))
    checked = 0
    for prev, st in zip(states, states[1:]):
        if st.final and sc.denoise:  # the denoising step reads the chain's last x at sigma_L
            assert torch.equal(st.denoised, prev.x + prev.sigma ** 2 * model(prev.x, torch.full((2,), prev.sigma)))
            continue
        expected_sigma = st.sigma * (1 + min(sc.churn / st.n_levels, 2 ** 0.5 - 1))
        assert st.denoised_sigma == pytest.approx(expected_sigma, rel=1e-12)
        if sc.churn or (inpaint and (st.level != prev.level or sc.sampler == "heun")):
            continue  # x' is not prev.x: churn noise, or the known pixels reset to a new noisy copy, came between
        s = model(prev.x, torch.full((2,), st.denoised_sigma))
        assert torch.equal(st.denoised, prev.x + st.denoised_sigma ** 2 * s)
        checked += 1
    assert checked >= (0 if sc.churn or (inpaint and sc.sampler == "heun") else 3)


def test_level_conditioned_model_reports_its_level_score():
    model = _tiny_model("level")
    states = _states(model, SAMPLERS["langevin"], shape=(2, 1, 28, 28))
    prev, st = states[3], states[4]
    s = model(prev.x, torch.full((2,), st.level, dtype=torch.long))
    assert st.denoised_sigma == st.sigma and torch.equal(st.denoised, prev.x + st.sigma ** 2 * s)


def test_denoised_of_a_gaussian_is_its_posterior_mean():
    """For data N(mu, s0^2 I) the exact E[x_0 | x] at noise sigma is mu + s0^2 / (s0^2 + sigma^2) (x - mu)."""
    mu, s0 = 0.3, 0.2
    sigmas = geometric_sigmas(1.0, 0.01, 4)
    model = GaussianScore(mu, s0, sigmas)
    states = _states(model, SAMPLERS["langevin"])
    for prev, st in zip(states, states[1:]):
        posterior = mu + s0 ** 2 / (s0 ** 2 + st.sigma ** 2) * (prev.x - mu)
        assert torch.allclose(st.denoised, posterior, rtol=1e-5, atol=1e-6)
    # near sigma_1 = 1 the estimate sits at the mean; at sigma_L it is the chain's x itself
    assert states[0].denoised.std() < 0.2 * states[0].x.std()


@pytest.mark.parametrize("name", SAMPLERS)
def test_denoised_costs_no_network_evaluation(name):
    sc = SAMPLERS[name]
    model = CountingModel(GaussianScore(0.3, 0.2, geometric_sigmas(1.0, 0.01, 4)))
    states = _states(model, sc)
    assert model.calls == plan(model, sc).nfe  # every state reports its estimate: still the plan's count
    assert all(st.denoised is not None and st.denoised.shape == SHAPE for st in states)
    if sc.sampler != "annealed_langevin" or sc.denoise:  # runs that end on Tweedie's step end on their estimate
        assert torch.allclose(states[-1].x, states[-1].denoised, rtol=0, atol=1e-6)


# sha256 of the final x (float32 bytes) of each sampler, generation then inpainting, on GaussianScore(0.3, 0.2,
# geometric 1 -> 0.01, 4 levels), seed 11: recorded from the main branch at b24c317, before the samplers carried
# the denoised estimate (torch 2.14 CPU, one thread). Elementwise model, so only the samplers' own arithmetic counts.
MAIN_DIGESTS = {
    "langevin": ("093ad5629f89e19a", "b40cb05ad96bda39"),
    "langevin+denoise": ("5eb7276dff50bb31", "98a46e73429c36bb"),
    "pc": ("89460566604ec746", "d6dbefad5dd539e8"),
    "heun": ("905d352833847124", "abbcbddae987b4f8"),
    "heun+churn": ("0d5e970e07a3c038", "2e266a69991030a7"),
}


def final_digests() -> dict:
    model = GaussianScore(0.3, 0.2, geometric_sigmas(1.0, 0.01, 4))
    out = {}
    for name, sc in SAMPLERS.items():
        finals = []
        for kw in ({}, _inpaint_args()):
            x = drain(sample(model, sc, SHAPE, seed=11, device=torch.device("cpu"), yield_every=1, **kw))
            finals.append(hashlib.sha256(x.contiguous().numpy().tobytes()).hexdigest()[:16])
        out[name] = tuple(finals)
    return out


@pytest.mark.skipif(not torch.__version__.startswith("2.14"), reason="digests recorded with torch 2.14's CPU kernels")
def test_samples_are_bit_identical_to_the_main_branch():
    assert final_digests() == MAIN_DIGESTS


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> str:
    from ncsn_core.checkpoint import save_checkpoint
    cfg = get_preset("mnist-cpu-levels").override("model", channels=(8, 8, 8)).override("noise", num_classes=3)
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny") / "ckpt_00000001.pt"
    return str(save_checkpoint(path, cfg, 1, build_model(cfg).eval()))


def _strip(tmp_path, checkpoint: str, view: str):
    from ncsn_core.cli import main
    from ncsn_core.export import read_png_meta
    import numpy as np
    path = tmp_path / f"strip-{view}.png"
    assert main(["sample", "--checkpoint", checkpoint, "--n", "3", "--n-steps-each", "2", "--init", "gaussian",
                 "--out", str(tmp_path / "s.png"), "--level-strip", str(path), "--strip-view", view, "--quiet"]) == 0
    assert read_png_meta(path)["strip_view"] == view
    with Image.open(path) as im:
        return np.asarray(im.convert("L"))


def test_cli_level_strip_shows_x_the_denoised_estimate_or_both(tmp_path, tiny_checkpoint, capsys):
    x, d, both = (_strip(tmp_path, tiny_checkpoint, v) for v in ("x", "denoised", "both"))
    assert x.shape == d.shape == (3 * 30 + 2, 3 * 30 + 2)  # 3 samples x 3 levels of 28 px, 2 px apart
    assert both.shape == (2 * 3 * 30 + 2, 3 * 30 + 2)  # two rows per sample
    rows = lambda img, k: img[2 + 30 * k: 30 * (k + 1)]  # noqa: E731 - the k-th row of cells
    for k in range(3):  # the same seeded chain: "both" interleaves the other two strips
        assert (rows(both, 2 * k) == rows(x, k)).all() and (rows(both, 2 * k + 1) == rows(d, k)).all()
    assert not (x == d).all()
    capsys.readouterr()
    from ncsn_core.cli import main
    assert main(["sample", "--checkpoint", tiny_checkpoint, "--out", str(tmp_path / "s.png"),
                 "--strip-view", "both"]) == 2
    assert "add --level-strip" in capsys.readouterr().err


def test_level_strip_renders_every_view_of_one_run_and_only_x_without_estimates():
    from ncsn_core.export import LevelStrip
    from ncsn_core.sampling import LangevinState
    st = lambda lv, d: LangevinState(lv, 2, 1.0, 0.1, 1, 1, lv + 1, 2, torch.full((3, 1, 4, 4), 0.2),  # noqa: E731
                                     0.0, 0.0, 0.0, denoised=d)
    strip = LevelStrip(2)
    for lv in range(2):
        strip.add(st(lv, torch.full((3, 1, 4, 4), 0.8)))
    assert strip.views() == ("x", "denoised", "both")
    x, d, both = (strip.image(v) for v in ("x", "denoised", "both"))
    assert x.shape == d.shape and both.shape[0] > 1.8 * x.shape[0] and x.mean() < d.mean()
    bare = LevelStrip(2)
    bare.add(st(0, None))
    assert bare.views() == ("x",)
    with pytest.raises(ValueError, match="only the view 'x'"):
        bare.image("both")
    with pytest.raises(ValueError, match="no denoised estimate"):
        LevelStrip(2, "both").add(st(0, None))
