"""train(interrupt=event): a step is abandoned part-way (in the forward or the backward pass), nothing of it reaches
the weights, Adam or the EMA, the last completed step is saved, and a resume equals an uninterrupted run."""
import json
import threading
import time

import pytest
import torch

import ncsn_core.training as training
from ncsn_core.checkpoint import checkpoint_path, read_state
from ncsn_core.training import CheckpointSaved, Finished, run_to_end, train

from test_pipeline import tiny_cfg


def losses(run_dir):
    return [json.loads(line)["loss"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def set_during(monkeypatch, event, step, where):
    """Set `event` inside optimiser step `step` (1-based): as its forward pass starts, or as its backward pass
    starts (a hook on the loss, which autograd reaches before any parameter's gradient). Returns the list of
    parameter gradients that backward went on to compute after that (one entry each)."""
    real = training.compute_loss
    calls, grads_after = [], []

    def compute_loss(loss_name, net, *args, **kwargs):
        calls.append(1)
        if len(calls) == step and where == "forward":
            event.set()
        res = real(loss_name, net, *args, **kwargs)
        if len(calls) == step and where == "backward":
            res.loss.register_hook(lambda grad: event.set())
            for p in net.parameters():
                p.register_hook(lambda grad: grads_after.append(1))
        return res

    monkeypatch.setattr(training, "compute_loss", compute_loss)
    return grads_after


@pytest.mark.parametrize("where", ["forward", "backward"])
def test_a_step_abandoned_part_way_then_resumed_equals_an_uninterrupted_run(tmp_path, monkeypatch, where):
    cfg = tiny_cfg(n_iters=6, save_every=100)
    run_to_end(train(cfg, tmp_path / "a"))
    a = read_state(tmp_path / "a")

    stop = threading.Event()
    with monkeypatch.context() as m:
        grads_after = set_during(m, stop, step=5, where=where)
        events = list(train(cfg, tmp_path / "b", interrupt=stop))
    assert not grads_after  # the backward pass itself was left at its first parameter's gradient
    fin = events[-1]
    assert isinstance(fin, Finished) and fin.reason == "stopped" and fin.step == 4 and "abandoned" in fin.message
    assert isinstance(events[-2], CheckpointSaved) and events[-2].step == 4
    state = read_state(tmp_path / "b")
    assert state["step"] == 4  # the checkpoint is the last completed step
    assert all(int(s["step"]) == 4 for s in state["optimizer"]["state"].values())  # Adam took 4 steps, not 5

    fin = run_to_end(train(cfg, tmp_path / "b", resume=True))
    assert fin.reason == "done" and fin.step == 6
    b = read_state(tmp_path / "b")
    assert losses(tmp_path / "b") == losses(tmp_path / "a")
    for part in ("model", "ema"):
        for k in a[part]:
            assert torch.equal(a[part][k], b[part][k]), (part, k)
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    assert all(torch.equal(sa[i]["exp_avg_sq"], sb[i]["exp_avg_sq"]) for i in sa)


def test_no_interrupt_changes_nothing(tmp_path):
    """The hooks only read the event: a run with an event that is never set equals one without."""
    cfg = tiny_cfg(n_iters=3, save_every=100)
    run_to_end(train(cfg, tmp_path / "a"))
    run_to_end(train(cfg, tmp_path / "b", interrupt=threading.Event()))
    a, b = read_state(tmp_path / "a"), read_state(tmp_path / "b")
    assert losses(tmp_path / "a") == losses(tmp_path / "b")
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


class Tick(torch.nn.Module):
    """A small op that takes 10 ms: a stand-in for one layer of a big model on a CPU."""

    def forward(self, x):
        time.sleep(0.01)
        return x


class SlowLayers(torch.nn.Module):
    """300 ticks: a 3 s forward pass made of many small modules, as a big network's is."""

    def __init__(self):
        super().__init__()
        self.tick = Tick()

    def forward(self, x):
        for _ in range(300):
            x = self.tick(x)
        return x


def test_setting_the_event_from_another_thread_ends_a_long_step_quickly(tmp_path, monkeypatch):
    real_build = training.build_model

    def slow_model(cfg):
        model = real_build(cfg)
        model.slow = SlowLayers()
        model.register_forward_pre_hook(lambda m, args: (m.slow(args[0]), *args[1:]))
        return model

    monkeypatch.setattr(training, "build_model", slow_model)
    stop = threading.Event()
    gen = train(tiny_cfg(n_iters=10, save_every=100), tmp_path / "run", interrupt=stop)
    threading.Timer(1.0, stop.set).start()  # 1 s into the first (3 s) step
    t0 = time.monotonic()
    events = list(gen)
    took = time.monotonic() - t0
    assert isinstance(events[-1], Finished) and events[-1].reason == "stopped" and events[-1].step == 0
    assert took < 2.0, f"the interrupted step took {took:.2f} s to end (it would take 3 s)"
    assert checkpoint_path(tmp_path / "run", 0).exists()


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_ncsn_train_stops_with_a_checkpoint_on_sigterm_or_ctrl_c(tmp_path, sig):
    """`kill` or a scheduler's SIGTERM (SLURM, Kubernetes) and Ctrl-C end `ncsn train` like Stop: the run folder keeps
    the step it reached, its checkpoint and every metrics row up to it, and the exit code is 0."""
    import signal
    import subprocess
    import sys
    from test_distributed import ROOT, TINY, _env, _rows, _wait_for
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "ncsn_core.cli", "train", *TINY, "--run-dir", str(run), "--n-iters", "100000",
           "--save-every", "2"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_for(run / "checkpoints" / "ckpt_00000002.pt", proc)
        proc.send_signal(getattr(signal, sig))
        log, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and "stopped at step" in log, log[-3000:]
    last = read_state(run)["step"]
    assert 2 <= last < 100000 and (run / "checkpoints" / f"ckpt_{last:08d}.pt").exists()
    assert [r["step"] for r in _rows(run)] == list(range(1, last + 1))
