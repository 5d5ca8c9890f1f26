"""The exact large-sigma score of a model's training images (SampleConfig.exact_above, ncsn_core.empirical): the
math against autograd, the switch between it and the network, the cost the plan reports, the images it uses, and
the failure paths."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from ncsn_core.config import ConfigError, SampleConfig, get_preset
from ncsn_core.empirical import ExactAbove, exact_score, training_images
from ncsn_core.models import build_model
from ncsn_core.noise import geometric_sigmas
from ncsn_core.sampling import drain, plan, sample


def test_exact_score_is_the_gradient_of_the_smoothed_log_density():
    torch.manual_seed(0)
    images = torch.rand(7, 12)
    x = torch.randn(5, 12).requires_grad_()
    sigma = torch.tensor([0.05, 0.3, 1.0, 4.0, 40.0])
    # log p_sigma(x) = logsumexp_i(-|x - x_i|^2 / (2 sigma^2)) + const: its gradient in x, by autograd
    d2 = ((x[:, None, :] - images[None]) ** 2).sum(-1)
    logp = torch.logsumexp(-d2 / (2 * sigma[:, None] ** 2), dim=1)
    (grad,) = torch.autograd.grad(logp.sum(), x)
    got = exact_score(x.detach(), sigma, images, (images ** 2).sum(1))
    assert torch.allclose(got, grad, rtol=1e-4, atol=1e-4 / 0.05 ** 2 * 1e-3)
    # tiny sigma: the pull of the nearest image alone; huge sigma: of the images' mean
    nearest = images[d2.argmin(1)]
    assert torch.allclose(got[0] * sigma[0] ** 2 + x[0].detach(), nearest[0], atol=1e-5)
    assert torch.allclose(got[4] * sigma[4] ** 2 + x[4].detach(), images.mean(0), atol=1e-3)


class Counting(nn.Module):
    """A level- or sigma-conditioned stand-in network that records the sigma of every call and returns -x / 2."""

    def __init__(self, sigmas: torch.Tensor, continuous: bool):
        super().__init__()
        self.register_buffer("sigmas", sigmas)
        self.continuous, self.data_mean, self.calls = continuous, None, []
        self.data_config = get_preset("mnist-cpu").data

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        self.calls.append((cond if cond.is_floating_point() else self.sigmas[cond]).tolist())
        return -x / 2


def test_the_network_runs_only_at_or_below_the_threshold_and_the_exact_score_above():
    sigmas = geometric_sigmas(4.0, 0.1, 5)
    net = Counting(sigmas, continuous=False)
    images = torch.rand(3, 4)
    model = ExactAbove(net, images, threshold=1.0)
    x = torch.randn(5, 1, 2, 2)
    out = model(x, torch.arange(5))
    hi = sigmas > 1.0
    assert net.calls == [sigmas.tolist()]  # a mixed batch: one network call (its rows at or below 1 are kept)
    assert torch.equal(out[~hi], -x[~hi] / 2)
    assert torch.allclose(out[hi], exact_score(x[hi], sigmas[hi], images, (images ** 2).sum(1)))
    net.calls.clear()
    model(x[:2], torch.tensor([0, 1]))  # all above: no network call at all
    assert net.calls == [] and model.sigmas is net.sigmas  # and the model's attributes read through


@pytest.mark.parametrize("sc", [
    SampleConfig(sampler="heun", num_levels=6, sigma_begin=5.0, sigma_end=0.01, churn=4.0, init="gaussian"),
    SampleConfig(sampler="heun", num_levels=6, sigma_begin=5.0, sigma_end=0.01, init="gaussian"),
    SampleConfig(sampler="pc", n_steps_each=(1, 2, 0, 1, 3), init="gaussian"),
    SampleConfig(sampler="annealed_langevin", n_steps_each=2, denoise=True, step_lr=1e-4, init="gaussian"),
], ids=["heun-churn", "heun", "pc", "langevin"])
def test_the_plan_counts_the_network_evaluations_each_sampler_makes(sc, monkeypatch):
    """plan().nfe (the cost every figure is labelled with) is the network calls the chain really makes, and
    n_exact the evaluations the exact score took over."""
    import ncsn_core.sampling as S
    monkeypatch.setattr(S, "training_images", lambda data: torch.rand(3, 4))
    net = Counting(geometric_sigmas(5.0, 0.01, 5), continuous=sc.sampler == "heun")
    for threshold in (0.0, 0.5):
        net.calls.clear()
        sc_t = SampleConfig(**{**sc.__dict__, "exact_above": threshold})
        pl = plan(net, sc_t)
        drain(sample(net, sc_t, (1, 1, 2, 2), seed=0))
        assert len(net.calls) == pl.nfe and all(c[0] <= threshold or threshold == 0 for c in net.calls)
        assert (pl.n_exact > 0) == (threshold > 0)
    assert pl.nfe + pl.n_exact == plan(net, sc).nfe


def test_exact_score_everywhere_copies_training_images_and_the_network_below_does_not():
    """Why the threshold exists: driven by the exact score down to a small sigma, the ODE lands on training images;
    above a threshold only, the rest of the way is the network's."""
    torch.manual_seed(0)
    images = torch.rand(6, 4)
    net = Counting(geometric_sigmas(5.0, 0.01, 5), continuous=True)
    everywhere = ExactAbove(net, images, threshold=1e-6)
    sc = SampleConfig(sampler="heun", num_levels=30, sigma_begin=5.0, sigma_end=0.002, init="gaussian")
    x = drain(sample(everywhere, sc, (20, 1, 2, 2), seed=0)).reshape(20, 4)
    assert torch.cdist(x, images).min(1).values.max() < 1e-2  # every sample is a training image
    assert len({int(i) for i in torch.cdist(x, images).argmin(1)}) >= 4  # and not always the same one
    above = ExactAbove(net, images, threshold=1.0)
    y = drain(sample(above, sc, (20, 1, 2, 2), seed=0)).reshape(20, 4)
    assert torch.cdist(y, images).min(1).values.min() > 0.05


def test_training_images_are_the_models_own_training_split():
    data = get_preset("mnist-cpu").data
    imgs = training_images(data)
    assert imgs.shape == (10_000 - data.holdout, 784) and imgs.dtype == torch.float32
    from ncsn_core.data import load_dataset
    first = load_dataset(data).get_batch(torch.arange(2)).reshape(2, -1)
    # at the mean of the dequantisation it trains with: pixel k/255 -> (k + 1/2)/256
    assert torch.allclose(imgs[:2], first * 255 / 256 + 1 / 512)
    flipped = training_images(data.__class__(**{**data.__dict__, "random_flip": True, "holdout": 9990}))
    assert len(flipped) == 20 and torch.allclose(flipped[10].reshape(28, 28), flipped[0].reshape(28, 28).flip(-1))


def test_missing_training_images_and_bad_values_are_refused_with_the_fix(tmp_path):
    cfg = get_preset("mnist-cpu").override("model", channels=(4, 6, 8))
    cfg = cfg.override("data", dataset="folder", root=str(tmp_path / "gone"))
    model = build_model(cfg).eval()
    sc = SampleConfig(sampler="heun", num_levels=3, init="gaussian", exact_above=1.0)
    with pytest.raises(ConfigError, match="needs the model's training images.*--exact-above 0"):
        drain(sample(model, sc, (1, 1, 28, 28), seed=0))
    with pytest.raises(ConfigError, match="exact_above=-1"):
        SampleConfig(exact_above=-1)
    bare = Counting(geometric_sigmas(1.0, 0.01, 3), continuous=True)
    del bare.data_config
    with pytest.raises(ConfigError, match="training images"):
        plan(bare, sc)


def test_cli_samples_with_the_exact_score_and_labels_it(tmp_path, capsys):
    from ncsn_core.cli import main
    out = tmp_path / "x.npy"
    assert main(["sample", "--n", "2", "--num-levels", "4", "--exact-above", "1.5", "--guidance", "1",
                 "--out", str(out), "--json", "--quiet"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["exact_above"] == 1.5 and "exact score above sigma 1.5" in res["description"]
    assert res["nfe"] < 7 and out.exists()


def test_inpainting_with_the_exact_score_keeps_the_known_pixels_and_completes_from_the_training_images():
    """Known pixels from training image 0, exact score all the way down: the unknown ones become image 0's."""
    torch.manual_seed(0)
    images = torch.rand(4, 16)
    net = Counting(geometric_sigmas(5.0, 0.01, 5), continuous=True)
    model = ExactAbove(net, images, threshold=1e-6)
    image = images[0].reshape(1, 1, 4, 4).expand(3, -1, -1, -1)
    mask = torch.zeros(1, 1, 4, 4)
    mask[..., :3, :] = 1
    sc = SampleConfig(sampler="heun", num_levels=30, sigma_begin=5.0, sigma_end=0.002, init="gaussian")
    x = drain(sample(model, sc, image.shape, seed=0, image=image, mask=mask))
    assert torch.allclose(x[..., :3, :], image[..., :3, :], atol=1e-6)
    assert torch.allclose(x[..., 3:, :], image[..., 3:, :], atol=2e-2)


def test_set_sampler_bakes_new_defaults_into_a_copy_and_keeps_the_old_ones(tmp_path, capsys):
    from ncsn_core.checkpoint import load_checkpoint, read_state
    from ncsn_core.cli import main
    from ncsn_core.evaluate import builtin_model_path
    out = tmp_path / "m.pt"
    before = load_checkpoint(builtin_model_path()).config.sample
    assert main(["set-sampler", str(builtin_model_path()), "--exact-above", "2.5", "--num-levels", "10",
                 "--out", str(out), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["changed"] == {"exact_above": 2.5, "num_levels": 10} and "above sigma 2.5" in res["description"]
    ld = load_checkpoint(out)
    assert (ld.config.sample.exact_above, ld.config.sample.num_levels) == (2.5, 10)
    assert ld.config.sample.guidance == before.guidance and ld.model.guide is not None  # the rest kept
    hist = read_state(out)["extra"]["sampler_history"]
    assert hist[-1]["before"]["num_levels"] == before.num_levels and hist[-1]["changed"]["num_levels"] == 10
    assert main(["sample", "--checkpoint", str(out), "--n", "1", "--out", str(tmp_path / "x.npy"), "--json",
                 "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["exact_above"] == 2.5  # what sample now runs by default
    # bad input: nothing changed, and a sampler the model cannot take; the file is left as it was
    assert main(["set-sampler", str(out), "--out", str(out)]) == 2
    assert "no sampler setting given" in capsys.readouterr().err
    assert main(["set-sampler", str(out), "--sigma-begin", "0.001", "--sigma-end", "0.01", "--out", str(out)]) == 2
    assert "descending" in capsys.readouterr().err and load_checkpoint(out).config.sample.num_levels == 10
