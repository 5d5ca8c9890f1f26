"""Autoguidance (Karras et al. 2024): a checkpoint that carries a weaker model of the same data as its guide
(`ncsn guide`), the guided score s_guide + w (s - s_guide) in every sampler, and the failure paths."""
import json

import pytest
import torch

from ncsn_core.checkpoint import CheckpointError, atomic_save, checkpoint_path, embed_guide, load_checkpoint, read_state
from ncsn_core.cli import main
from ncsn_core.config import ConfigError, SampleConfig, get_preset
from ncsn_core.sampling import Guided, drain, resolve, sample
from ncsn_core.training import run_to_end, train

from test_pipeline import tiny_cfg


def tiny_sigma_cfg(n_iters=4):
    """The continuous-sigma recipe (mnist-cpu) at toy size, sampling with Heun over 3 sigmas."""
    cfg = get_preset("mnist-cpu").override("model", channels=(4, 6, 8)).override("data", holdout=9800)
    cfg = cfg.override("train", n_iters=n_iters, batch_size=8, save_every=2, preview_every=0, log_every=1,
                       ema_rate=0.9)
    return cfg.override("sample", num_levels=3)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("guide") / "run"
    run_to_end(train(tiny_sigma_cfg(), d, keep_last=0))
    return d


@pytest.fixture(scope="module")
def guided(run, tmp_path_factory):
    out = tmp_path_factory.mktemp("guided") / "guided.pt"
    assert main(["guide", str(run), "--guide", str(checkpoint_path(run, 2)), "--guidance", "2.5", "--out",
                 str(out)]) == 0
    return out


def test_the_guided_score_extrapolates_from_the_guide(guided):
    ld = load_checkpoint(guided)
    model, guide = ld.model, ld.model.guide
    x, sigma = torch.rand(3, 1, 28, 28), torch.tensor([0.1, 1.0, 5.0])
    with torch.no_grad():
        s, g = model(x, sigma), guide(x, sigma)
        assert not torch.allclose(s, g)  # two different models, so the guidance really moves something
        torch.testing.assert_close(Guided(model, 2.5)(x, sigma), g + 2.5 * (s - g))
        torch.testing.assert_close(Guided(model, 1.0)(x, sigma), s)
    assert not any(k.startswith("guide") for k in model.state_dict())  # never saved or trained with the model


def test_ncsn_guide_embeds_the_early_checkpoints_ema_weights_and_the_default_weight(run, guided, capsys):
    early = read_state(checkpoint_path(run, 2))
    state = read_state(guided)
    assert state["step"] == 4 and state["guide"]["step"] == 2 and state["optimizer"] is None
    assert state["config"]["sample"]["guidance"] == 2.5 and state["extra"]["guide"]["ema"]
    ld = load_checkpoint(guided)
    assert ld.config.sample.guidance == 2.5
    for k, v in ld.model.guide.state_dict().items():
        torch.testing.assert_close(v, early["ema"][k], rtol=0, atol=0)
    # the checkpoint's own model is untouched: the same weights as the run's newest checkpoint
    for k, v in ld.model.state_dict().items():
        torch.testing.assert_close(v, read_state(checkpoint_path(run, 4))["ema"][k], rtol=0, atol=0)


def test_every_sampler_and_inpainting_take_the_guide(guided):
    ld = load_checkpoint(guided)
    base = ld.config.sample
    shape = (2, 1, 28, 28)
    image, mask = torch.rand(shape), (torch.rand(1, 1, 28, 28) > 0.5).float()
    runs = {}
    for sc in (base, resolve(base, sampler="pc", n_steps_each=1), resolve(base, sampler="annealed_langevin",
                                                                         n_steps_each=1)):
        for kw in ({}, {"image": image, "mask": mask}):
            plain, guided_x = (drain(sample(ld.model, resolve(sc, guidance=w), shape, seed=0, **kw)) for w in (1.0, 2.5))
            assert torch.isfinite(guided_x).all() and not torch.allclose(plain, guided_x), (sc.sampler, list(kw))
            runs[sc.sampler, bool(kw)] = plain
    # guidance 1 is the model alone, bit for bit: the same samples as without any guide
    ld.model.set_guide(None)
    torch.testing.assert_close(drain(sample(ld.model, resolve(base, guidance=1.0), shape, seed=0)),
                               runs["heun", False], rtol=0, atol=0)


def test_cli_sample_and_eval_with_and_without_the_guide(guided, run, tmp_path, capsys):
    for extra in ([], ["--guidance", "1"], ["--guidance", "3"]):
        assert main(["sample", "--checkpoint", str(guided), "--n", "2", "--out", str(tmp_path / "s.npy"),
                     "--quiet", *extra]) == 0
    capsys.readouterr()
    assert main(["info", str(guided), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["guide"]["step"] == 2 and info["config"]["sample"]["guidance"] == 2.5
    assert main(["info", str(guided)]) == 0
    out = capsys.readouterr().out
    assert "guide (autoguidance): step 2" in out and "autoguidance w=2.5" in out
    assert main(["sample", "--checkpoint", str(run), "--n", "2", "--out", str(tmp_path / "t.npy"), "--quiet",
                 "--guidance", "2"]) == 2
    err = capsys.readouterr().err
    assert "needs a guide model" in err and "ncsn guide" in err and "--guidance 1" in err


def test_bad_guides_are_refused_with_the_reason(run, guided, tmp_path, capsys):
    levels = tmp_path / "levels"
    run_to_end(train(tiny_cfg(n_iters=2, save_every=2), levels))
    out = tmp_path / "g.pt"
    # a level-conditioned guide for a continuous-sigma model
    assert main(["guide", str(run), "--guide", str(checkpoint_path(levels, 2)), "--out", str(out)]) == 2
    assert "model.conditioning" in capsys.readouterr().err
    # level-conditioned models on different ladders share no levels
    other = tmp_path / "other"
    run_to_end(train(tiny_cfg(n_iters=2, save_every=2).override("noise", sigma_begin=20.0), other))
    assert main(["guide", str(levels), "--guide", str(checkpoint_path(other, 2)), "--out", str(out)]) == 2
    assert "noise ladders differ" in capsys.readouterr().err
    assert main(["guide", str(run), "--guide", str(checkpoint_path(run, 2)), "--guidance", "0.5", "--out",
                 str(out)]) == 2
    assert "guidance=0.5 must be in [1, 10]" in capsys.readouterr().err
    assert main(["guide", str(guided), "--guide", str(checkpoint_path(run, 2)), "--out", str(guided)]) == 2
    assert "one of the inputs" in capsys.readouterr().err
    assert not out.exists()
    with pytest.raises(ConfigError, match="must be in"):
        SampleConfig(guidance=20)


def test_a_damaged_guide_entry_is_a_clear_checkpoint_error(guided, tmp_path):
    state = read_state(guided)
    del state["_path"]
    state["guide"]["weights"] = {k: v[..., :1] for k, v in state["guide"]["weights"].items()}
    bad = tmp_path / "bad.pt"
    atomic_save(state, bad)
    with pytest.raises(CheckpointError, match="guide model cannot be rebuilt"):
        load_checkpoint(bad)
    with pytest.raises(CheckpointError, match="does not exist"):
        embed_guide(read_state(guided), tmp_path / "missing.pt", 2.0)


def test_training_keeps_its_own_early_ema_weights_as_the_guide_of_later_checkpoints(tmp_path):
    cfg = tiny_sigma_cfg(n_iters=4).override("train", save_every=1, guide_step=2, preview_every=3, n_preview=2)
    cfg = cfg.override("sample", guidance=1.5)
    d = tmp_path / "run"
    gen = train(cfg, d, keep_last=0, max_minutes=None)
    for ev in gen:  # stop after step 3's checkpoint, then resume: the guide must survive the resume
        if type(ev).__name__ == "CheckpointSaved" and ev.step == 3:
            gen.send("stop")
            break
    for _ in gen:
        pass
    assert not checkpoint_path(d, 4).exists()
    run_to_end(train(cfg, d, resume=True, keep_last=0))
    first, at_guide = read_state(checkpoint_path(d, 1)), read_state(checkpoint_path(d, 2))
    assert "guide" not in first and first["config"]["sample"]["guidance"] == 1.0  # nothing to guide with yet
    assert load_checkpoint(checkpoint_path(d, 1)).model.guide is None
    for step in (2, 3, 4):
        state = read_state(checkpoint_path(d, step))
        assert state["guide"]["step"] == 2 and state["config"]["sample"]["guidance"] == 1.5
        assert state["extra"]["guide"] == {"file": "this run", "step": 2, "ema": True}
        for k, v in state["guide"]["weights"].items():
            torch.testing.assert_close(v, at_guide["ema"][k], rtol=0, atol=0)
    ld = load_checkpoint(checkpoint_path(d, 4))
    assert ld.model.guide is not None and ld.config.sample.guidance == 1.5
    x = drain(sample(ld.model, ld.config.sample, (2, 1, 28, 28), seed=0))  # the checkpoint's own defaults
    assert torch.isfinite(x).all()
