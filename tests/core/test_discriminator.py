"""Discriminator guidance (Kim et al. 2023): the discriminator learns to tell two distributions apart at every
sigma, the guided score adds w grad_x logit d only inside its sigma range and below the exact score's, a checkpoint
carries it (`ncsn discriminator`), every sampler takes it, and the failure paths. Its class part: a noise-conditional
classifier of the training labels and class weights calibrated on the sampler's own samples."""
import json

import pytest
import torch

from ncsn_core.checkpoint import CheckpointError, atomic_save, load_checkpoint, read_state
from ncsn_core.cli import main
from ncsn_core.config import ConfigError, SampleConfig
from ncsn_core.discriminator import (Discriminator, DiscriminatorConfig, LogRatio, class_shares,
                                     discriminator_entry, train_classifier, train_discriminator)
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
                 str(out), "--quiet", "--device", "cpu", "--class-steps", "20", "--calibration-samples", "500",
                 "--calibration-rounds", "1"]) == 0
    return out


def left_and_right(n=600):
    """Two sets of 8x8 images: more ink on the left half, more on the right."""
    torch.manual_seed(0)
    left, right = torch.rand(n, 1, 8, 8) * 0.2, torch.rand(n, 1, 8, 8) * 0.2
    left[..., :4] += 0.3
    right[..., 4:] += 0.3
    return left, right


def test_the_discriminator_learns_what_tells_two_sets_apart_and_its_gradient_points_to_the_real_set():
    reals, fakes = left_and_right()
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
    classes = about["classes"]  # the tiny run's training digits have labels: a class part, calibrated once
    assert len(classes["log_weights"]) == 10 and classes["steps"] == 20 and len(classes["validation"]) == 4
    assert [r["n"] for r in classes["calibration"]] == [500, 500] and classes["calibration"][1]["seed"] == 12346
    assert abs(sum(classes["p_data"]) - 1) < 1e-3 and all(abs(sum(r["shares"]) - 1) < 1e-3
                                                          for r in classes["calibration"])
    ld = load_checkpoint(with_disc)
    assert isinstance(ld.model.discriminator, LogRatio) and ld.config.sample.dg_weight == 1.5
    assert ld.model.discriminator.classifier is not None
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
    # the class part changes what the guided sampler draws
    full = drain(sample(ld.model, resolve(base, dg_weight=3.0), shape, seed=0))
    ld.model.set_discriminator(LogRatio(ld.model.discriminator.disc))
    assert not torch.allclose(full, drain(sample(ld.model, resolve(base, dg_weight=3.0), shape, seed=0)))


def test_cli_flags_info_and_refusals(run, with_disc, tmp_path, capsys):
    for extra in ([], ["--dg-weight", "0"], ["--dg-weight", "2"]):
        assert main(["sample", "--checkpoint", str(with_disc), "--n", "2", "--out", str(tmp_path / "s.npy"),
                     "--quiet", *extra]) == 0
    capsys.readouterr()
    assert main(["info", str(with_disc)]) == 0
    info = capsys.readouterr().out
    assert "discriminator guidance w_DG=1.5" in info and "class part: a classifier of the training labels" in info
    assert main(["info", str(with_disc), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["discriminator"]["classes"]["log_weights"]) == 10
    # a checkpoint without a discriminator says how to get one
    assert main(["sample", "--checkpoint", str(run), "--n", "2", "--out", str(tmp_path / "t.npy"), "--quiet",
                 "--dg-weight", "1"]) == 2
    err = capsys.readouterr().err
    assert "needs a discriminator" in err and "ncsn discriminator" in err and "--dg-weight 0" in err
    out = tmp_path / "x.pt"
    for bad, why in ((["--weight", "-1"], "must be in [0, 10]"), (["--n-samples", "10"], "give at least 500"),
                     (["--class-steps", "-1"], "--class-steps -1: give at least 0"),
                     (["--calibration-samples", "10"], "--calibration-samples 10: give at least 500"),
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


def test_the_entry_round_trips_with_and_without_a_class_part():
    from ncsn_core.discriminator import build_discriminator
    cfg = DiscriminatorConfig(channels=(8, 16), blocks=(1, 1), emb=16)
    d, c = Discriminator(cfg), Discriminator(DiscriminatorConfig(channels=(8, 16), blocks=(1, 1), emb=16, outputs=3))
    x, s = torch.rand(2, 1, 8, 8), torch.tensor([0.1, 1.0])
    for ratio in (LogRatio(d), LogRatio(d, c, torch.tensor([0.1, -0.2, 0.3]))):
        entry = discriminator_entry(ratio, {"steps": 5}, steps=3)
        json.dumps(entry["config"])  # plain data
        assert ("classes" in entry) == (ratio.classifier is not None)
        with torch.no_grad():
            torch.testing.assert_close(ratio(x, s), build_discriminator(entry)(x, s))


def test_the_class_part_adds_the_log_of_the_expected_class_weight():
    torch.manual_seed(0)
    cfg = DiscriminatorConfig(channels=(8, 16), blocks=(1, 1), emb=16)
    d, c = Discriminator(cfg), Discriminator(DiscriminatorConfig(channels=(8, 16), blocks=(1, 1), emb=16, outputs=3))
    x, s = torch.rand(4, 1, 8, 8), torch.tensor([0.05, 0.1, 0.5, 1.0])
    log_w = torch.tensor([0.4, -0.3, 0.1])
    with torch.no_grad():
        p = torch.softmax(c(x, s), 1)
        expected = d(x, s) + (p * log_w.exp()).sum(1).log()
        torch.testing.assert_close(LogRatio(d, c, log_w)(x, s), expected)
        # equal weights (the sampler draws the classes as the data does) add nothing
        torch.testing.assert_close(LogRatio(d, c, torch.zeros(3))(x, s), d(x, s))
    with pytest.raises(ConfigError, match="one weight per class"):
        LogRatio(d, c, torch.zeros(2))


def test_the_classifier_learns_the_labels_and_the_class_part_steers_toward_the_rarer_class():
    left, right = left_and_right()
    images, labels = torch.cat([left, right]), torch.cat([torch.zeros(600), torch.ones(600)]).long()
    order = torch.randperm(1200)
    images, labels = images[order], labels[order]
    cfg = DiscriminatorConfig(channels=(8, 16), blocks=(1, 1), emb=16, sigma_min=0.02, sigma_max=0.5, outputs=2)
    c = drain(train_classifier(images, labels, cfg, steps=150, batch_size=64, lr=3e-3, dequantize=False))
    assert torch.allclose(class_shares(c, left[:300]), torch.tensor([1.0, 0.0], dtype=torch.float64), atol=0.05)
    assert torch.allclose(class_shares(c, torch.cat([left[:100], right[:300]])),
                          torch.tensor([0.25, 0.75], dtype=torch.float64), atol=0.05)
    # the sampler draws class 1 too often: w = (2, 0.5) moves an ambiguous image toward class 0 (ink to the left)
    d = Discriminator(DiscriminatorConfig(channels=(8, 16), blocks=(1, 1), emb=16, sigma_min=0.02, sigma_max=0.5))
    torch.nn.init.zeros_(d.out.weight)  # a discriminator that sees nothing: the class part alone steers
    ratio = LogRatio(d, c, torch.tensor([2.0, 0.5]).log())
    x = ((left[:50] + right[:50]) / 2).requires_grad_()
    (g,) = torch.autograd.grad(ratio(x, torch.full((50,), 0.1)).sum(), x)
    assert g[..., :4].mean() > 0 > g[..., 4:].mean()


def test_it_can_replace_a_checkpoint_in_place_training_on_the_sampler_without_itself(with_disc, tmp_path, capsys):
    import shutil
    copy = tmp_path / "copy.pt"
    shutil.copy(with_disc, copy)  # its default sampler has dg_weight 1.5
    assert main(["discriminator", str(copy), "--n-samples", "500", "--steps", "5", "--weight", "0.5", "--out",
                 str(copy), "--device", "cpu", "--class-steps", "5", "--calibration-rounds", "0"]) == 0
    out = capsys.readouterr().out
    assert "class part: a classifier of the training labels (5 steps)" in out and "class weights w_y" in out
    state = read_state(copy)
    assert len(state["discriminator"]["classes"]["calibration"]) == 1  # the first estimate only
    assert state["config"]["sample"]["dg_weight"] == 0.5 and state["discriminator"]["steps"] == 5
    assert state["discriminator"]["sampler"]["dg_weight"] == 0.0


def test_the_training_labels_line_up_with_the_training_images():
    import dataclasses

    from ncsn_core.data import builtin_mnist_set
    from ncsn_core.empirical import training_images, training_labels
    data = tiny_sigma_cfg().data  # the built-in digits, all but the last 9,800 held out
    labels = training_labels(data)
    assert len(labels) == len(training_images(data)) == 200
    assert torch.equal(labels, builtin_mnist_set().labels[:200].long())
    flipped = dataclasses.replace(data, random_flip=True)  # the mirrored copies follow, with their classes
    assert torch.equal(training_labels(flipped), torch.cat([labels, labels]))


def test_a_folder_of_images_has_no_labels_and_so_no_class_part(tmp_path):
    import numpy as np
    from PIL import Image

    from ncsn_core.config import DataConfig
    from ncsn_core.empirical import training_labels
    for i in range(3):
        Image.fromarray((np.random.default_rng(i).random((28, 28)) * 255).astype(np.uint8)).save(tmp_path / f"{i}.png")
    assert training_labels(DataConfig(dataset="folder", root=str(tmp_path))) is None
    assert training_labels(DataConfig(dataset="folder", root=str(tmp_path / "missing"))) is None


def test_class_steps_0_leaves_the_class_part_out(run, tmp_path, capsys):
    out = tmp_path / "plain.pt"
    assert main(["discriminator", str(run), "--n-samples", "500", "--steps", "2", "--out", str(out), "--device", "cpu",
                 "--class-steps", "0", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["classes"] is None and res["steps"] == 2
    assert "classes" not in read_state(out)["discriminator"]
    assert load_checkpoint(out).model.discriminator.classifier is None
    assert main(["info", str(out)]) == 0
    assert "class part" not in capsys.readouterr().out
