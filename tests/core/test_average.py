"""ncsn average: the uniform average of a run's checkpoints (raw and EMA weights), and its failure paths."""
import pytest
import torch

from ncsn_core.checkpoint import average_checkpoints, checkpoint_path, load_checkpoint, read_state
from ncsn_core.cli import main
from ncsn_core.training import run_to_end, train

from test_pipeline import tiny_cfg


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("avg") / "run"
    run_to_end(train(tiny_cfg(n_iters=6, save_every=2), d, keep_last=0))
    return d


def test_average_is_the_mean_of_each_weight_and_loads_and_samples(run, tmp_path, capsys):
    out = tmp_path / "avg.pt"
    assert main(["average", str(run), "--from", "2", "--out", str(out)]) == 0
    assert "averaged 3 checkpoints" in capsys.readouterr().out
    states = [read_state(checkpoint_path(run, s)) for s in (2, 4, 6)]
    avg = read_state(out)
    for part in ("model", "ema"):
        for k, v in avg[part].items():
            if v.is_floating_point():
                mean = sum(s[part][k].double() for s in states) / 3
                assert torch.allclose(v.double(), mean, rtol=0, atol=1e-6), (part, k)
    k = next(k for k, v in states[0]["model"].items()
             if v.is_floating_point() and not torch.equal(v, states[2]["model"][k]))
    assert not torch.equal(avg["model"][k], states[2]["model"][k])  # it really moved off the last checkpoint
    assert avg["step"] == 6 and avg["optimizer"] is None and avg["extra"]["averaged"]["steps"] == [2, 4, 6]
    ld = load_checkpoint(out)  # a usable checkpoint: the EMA average loads into the network
    assert ld.used_ema and ld.step == 6
    assert main(["sample", "--checkpoint", str(out), "--n", "2", "--n-steps-each", "1", "--out",
                 str(tmp_path / "s.npy"), "--quiet"]) == 0


def test_average_refuses_too_few_checkpoints_and_a_path_inside_the_run(run, tmp_path, capsys):
    assert main(["average", str(run), "--from", "6", "--out", str(tmp_path / "a.pt")]) == 2
    err = capsys.readouterr().err
    assert "1 checkpoint(s) from step 6 to 6" in err and "--keep-last 0" in err
    assert main(["average", str(run), "--from", "2", "--out", str(run / "checkpoints" / "x.pt")]) == 2
    assert "outside" in capsys.readouterr().err
    assert main(["average", str(tmp_path), "--from", "2", "--out", str(tmp_path / "a.pt")]) == 2
    assert "not a run folder" in capsys.readouterr().err
    assert not (tmp_path / "a.pt").exists()


def test_checkpoints_of_different_networks_are_refused(run, tmp_path):
    other = tmp_path / "other"
    run_to_end(train(tiny_cfg(n_iters=2, save_every=2).override("model", channels=(4, 4, 4)), other))
    with pytest.raises(Exception, match="another network"):
        average_checkpoints([checkpoint_path(run, 2), checkpoint_path(other, 2)])
