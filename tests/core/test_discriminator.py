"""Discriminator guidance (Kim et al. 2023): the discriminator learns to tell two distributions apart at every
sigma, the guided score adds w grad_x logit d only inside its sigma range and below the exact score's, a checkpoint
carries it (`ncsn discriminator`), every sampler takes it, and the failure paths."""
import json

import pytest
import torch

from ncsn_core.checkpoint import CheckpointError, atomic_save, load_checkpoint, read_state
from ncsn_core.cli import main
from ncsn_core.config import ConfigError, SampleConfig
from ncsn_core.discriminator import Discriminator, DiscriminatorConfig, discriminator_entry, train_discriminator
from ncsn_core.sampling import DiscriminatorGuided, drain, resolve, sample
from ncsn_core.training import run_to_end, train

from test_guide import tiny_sigma_cfg


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("dg") / "run"
    run_to_end(train(tiny_sigma_cfg(), d, keep_last=0))
    return d


@pytest.fixture(scope="module")
def with_disc(run, tmp_path_factory):
    out = tmp_path_factory.mktemp("dgout") / "d.pt"
    assert main(["discriminator", str(run), "--n-samples", "500", "--steps", "10", "--weight", "1.5", "--out",
                 str(out), "--quiet", "--device", "cpu"]) == 0
    return out


def test_the_discriminator_learns_what_tells_two_sets_apart_and_its_gradient_points_to_the_real_set():
    # "real" images carry more ink on the left half, "fake" ones on the right
    torch.manual_seed(0)
    n = 600
    reals, fakes = torch.rand(n, 1, 8, 8) * 0.2, torch.rand(n, 1, 8, 8) * 0.2
    reals[..., :4] += 0.3
    fakes[..., 4:] += 0.3
    cfg = DiscriminatorConfig(channels=(8, 16), blocks=(1, 1), emb=16, sigma_min=0.02, sigma_max=0.5)
    d = drain(train_discriminator(reals, fakes, cfg, steps=150, batch_size=64, lr=3e-3, dequantize=False))
    with torch.no_grad():
        sig = torch.full((200,), 0.05)
        lr, lf = d(reals[:200] + 0.05 * torch.randn(200, 1, 8, 8), sig), d(fakes[:200] + 0.05 * torch.randn(200, 1, 8, 8), sig)
    assert (lr > 0).float().mean() > 0.95 and (lf < 0).float().mean() > 0.95
    # its gradient points a fake toward the real set: more ink on the left, less on the right
    x = fakes[:50].clone().requires_grad_()
    (g,) = torch.autograd.grad(d(x, torch.full((50,), 0.05)).sum(), x)
    assert g[..., :4].mean() > 0 > g[..., 4:].mean()


class Score(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("sigmas", torch.tensor([4.0, 1.0, 0.1, 0.01]))
        self.continuous = True

    def forward(self, x, cond):
        return -x


def test_the_guided_score_adds_w_times_the_logits_gradient_only_in_range():
    torch.manual_seed(0)
    cfg = DiscriminatorConfig(channels=(8, 16), blocks=(1, 1), emb=16, sigma_min=0.02, sigma_max=2.0)
    d = Discriminator(cfg).eval()
    model = Score()
    guided = DiscriminatorGuided(model, d, w=1.5, below=1.5)
    x = torch.randn(4, 1, 8, 8)
    sigma = torch.tensor([4.0, 1.8, 1.0, 0.01])  # above its range, above `below`, inside, below its range
    with torch.no_grad():  # as inside a sampler: the gradient is still taken
        out = guided(x, sigma)
    xi = x[2:3].clone().requires_grad_()
    (g,) = torch.autograd.grad(d(xi, sigma[2:3]).sum(), xi)
    torch.testing.assert_close(out[2:3], -x[2:3] + 1.5 * g)
    assert torch.equal(out[[0, 1, 3]], -x[[0, 1, 3]])
    assert g.abs().sum() > 0


def test_ncsn_discriminator_embeds_it_and_every_sampler_takes_it(run, with_disc, capsys):
    state = read_state(with_disc)
    assert state["config"]["sample"]["dg_weight"] == 1.5 and state["optimizer"] is None
    about = state["discriminator"]
    assert about["n_samples"] == 500 and about["steps"] == 10 and len(about["validation"]) == 4
    assert about["sampler"]["dg_weight"] == 0.0  # trained on the sampler without itself
    ld = load_checkpoint(with_disc)
    assert isinstance(ld.model.discriminator, Discriminator) and ld.config.sample.dg_weight == 1.5
    assert not any(k.startswith("discriminator") for k in ld.model.state_dict())
    for k, v in ld.model.state_dict().items():  # the score network itself is untouched
        torch.testing.assert_close(v, read_state(run)["ema"][k], rtol=0, atol=0)
    base = ld.config.sample
    shape = (2, 1, 28, 28)
    image, mask = torch.rand(shape), (torch.rand(1, 1, 28, 28) > 0.5).float()
    for sc in (base, resolve(base, sampler="pc", n_steps_each=1), resolve(base, sampler="annealed_langevin",
                                                                         n_steps_each=1)):
        for kw in ({}, {"image": image, "mask": mask}):
            plain, dg = (drain(sample(ld.model, resolve(sc, dg_weight=w), shape, seed=0, **kw)) for w in (0.0, 3.0))
            assert torch.isfinite(dg).all() and not torch.allclose(plain, dg), (sc.sampler, list(kw))


def test_cli_flags_info_and_refusals(run, with_disc, tmp_path, capsys):
    for extra in ([], ["--dg-weight", "0"], ["--dg-weight", "2"]):
        assert main(["sample", "--checkpoint", str(with_disc), "--n", "2", "--out", str(tmp_path / "s.npy"),
                     "--quiet", *extra]) == 0
    capsys.readouterr()
    assert main(["info", str(with_disc)]) == 0
    assert "discriminator guidance w_DG=1.5" in capsys.readouterr().out
    # a checkpoint without a discriminator says how to get one
    assert main(["sample", "--checkpoint", str(run), "--n", "2", "--out", str(tmp_path / "t.npy"), "--quiet",
                 "--dg-weight", "1"]) == 2
    err = capsys.readouterr().err
    assert "needs a discriminator" in err and "ncsn discriminator" in err and "--dg-weight 0" in err
    out = tmp_path / "x.pt"
    for bad, why in ((["--weight", "-1"], "must be in [0, 10]"), (["--n-samples", "10"], "give at least 500"),
                     (["--out", str(tmp_path / "x.png")], "name a .pt file")):
        args = ["discriminator", str(run), "--out", str(out), *bad]
        assert main(args) == 2
        assert why in capsys.readouterr().err
    toy = tmp_path / "toy"
    assert main(["train", "--preset", "toy", "--n-iters", "2", "--run-dir", str(toy), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["discriminator", str(toy), "--out", str(out)]) == 2
    assert "2-D toy model" in capsys.readouterr().err
    assert not out.exists()
    with pytest.raises(ConfigError, match="dg_weight"):
        SampleConfig(dg_weight=-0.5)


def test_a_damaged_discriminator_entry_is_a_clear_checkpoint_error(with_disc, tmp_path):
    state = read_state(with_disc)
    del state["_path"]
    state["discriminator"]["weights"] = {k: v[..., :1] for k, v in state["discriminator"]["weights"].items()}
    bad = tmp_path / "bad.pt"
    atomic_save(state, bad)
    with pytest.raises(CheckpointError, match="discriminator cannot be rebuilt"):
        load_checkpoint(bad)


def test_the_entry_round_trips():
    d = Discriminator(DiscriminatorConfig(channels=(8, 16), blocks=(1, 1), emb=16))
    entry = discriminator_entry(d, steps=3)
    json.dumps(entry["config"])  # plain data
    from ncsn_core.discriminator import build_discriminator
    d2 = build_discriminator(entry)
    x, s = torch.rand(2, 1, 8, 8), torch.tensor([0.1, 1.0])
    with torch.no_grad():
        torch.testing.assert_close(d(x, s), d2(x, s))


def test_it_can_replace_a_checkpoint_in_place_training_on_the_sampler_without_itself(with_disc, tmp_path):
    import shutil
    copy = tmp_path / "copy.pt"
    shutil.copy(with_disc, copy)  # its default sampler has dg_weight 1.5
    assert main(["discriminator", str(copy), "--n-samples", "500", "--steps", "5", "--weight", "0.5", "--out",
                 str(copy), "--quiet", "--device", "cpu"]) == 0
    state = read_state(copy)
    assert state["config"]["sample"]["dg_weight"] == 0.5 and state["discriminator"]["steps"] == 5
    assert state["discriminator"]["sampler"]["dg_weight"] == 0.0
