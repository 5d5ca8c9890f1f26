"""Stop or close the studio mid-training, mid-sampling, mid-inpainting and mid-toy-run: the worker ends within 2 s,
nothing hangs, the run folder stays whole; a training step far longer than that is abandoned part-way."""
import json
import time
from pathlib import Path

import pytest
import torch
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from conftest import TINY_OVERRIDES, set_text
from studio import jobs

BOUND_S = 2.0   # the promise: a stopped worker ends (and a closed window goes) within this


@pytest.fixture(autouse=True)
def quit_answers_yes(monkeypatch):
    """"Quit while running?" is answered Yes (a failing test's teardown closes a busy window, too)."""
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)


def start_training(qtbot, win):
    win.set_tab("train")
    tab = win.train_tab
    tab.config_overrides = TINY_OVERRIDES
    for key, value in (("n_iters", "100000"), ("batch_size", "8"), ("num_classes", "3"), ("preview_every", "0"),
                       ("save_every", "100000")):
        set_text(qtbot, tab.form.fields[key], value)
    qtbot.mouseClick(tab.run_bar.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: tab.last_step >= 2, timeout=60000)
    return tab


def start_sampling(qtbot, win, checkpoint):
    win.set_tab("sample")
    tab = win.sample_tab
    tab.picker.set_path(checkpoint)
    qtbot.waitUntil(lambda: tab.info is not None and Path(tab.info.path) == Path(checkpoint), timeout=30000)
    set_text(qtbot, tab.form.n_edit, "2")
    set_text(qtbot, tab.form.steps_edit, "100000")
    seen = []
    tab.controller.event_emitted.connect(seen.append)
    qtbot.mouseClick(tab.run_bar.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(seen) > 1, timeout=30000)
    return tab


def start_inpainting(qtbot, win):
    from ncsn_core.config import get_preset
    from ncsn_core.models import build_model
    win.set_tab("inpaint")
    tab = win.inpaint_tab
    cfg = (get_preset("mnist-cpu-levels").override("model", channels=(8, 8, 8)).override("noise", num_classes=3)
           .override("sample", n_steps_each=2, step_lr=5e-5))
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    model.data_mean = torch.full((1, 28, 28), 0.13)
    tab.set_model(model, cfg)
    tab.editor.canvas.invert()
    tab.form.steps_edit.set_value(100000)
    seen = []
    tab.controller.event_emitted.connect(seen.append)
    assert tab.run(), tab.run_bar.problem()
    qtbot.waitUntil(lambda: len(seen) > 0, timeout=30000)
    return tab


def start_toy(qtbot, win):
    win.set_tab("toy")
    tab = win.toy_tab
    tab.form.particles_spin.setValue(200)
    tab.form.t_spin.setValue(5000)
    tab.form.speed_combo.setCurrentIndex(0)   # watchable: the run lasts about 10 s
    seen = []
    tab.controller.event_emitted.connect(seen.append)
    assert tab.run()
    qtbot.waitUntil(lambda: len(seen) > 1, timeout=30000)
    return tab


def assert_run_folder_whole(run_dir: str, step: int) -> None:
    """Nothing half-written: no temp file, every metrics line is JSON, the newest checkpoint loads at `step`."""
    from ncsn_core.checkpoint import load_checkpoint
    run = Path(run_dir)
    assert not [p for p in run.rglob("*") if p.name.endswith(".tmp")]
    lines = (run / "metrics.jsonl").read_text().splitlines()
    assert lines and all(isinstance(json.loads(line), dict) for line in lines)
    ck = jobs.latest_checkpoint(run_dir)
    assert ck is not None and load_checkpoint(ck, device="cpu").step == step


def timed_stop(qtbot, controller, stop) -> float:
    """Seconds from stop() until the controller's worker thread has ended (then it must reach idle, too)."""
    t0 = time.monotonic()
    stop()
    ended = controller.wait(10000)
    took = time.monotonic() - t0
    assert ended, "the worker did not end within 10 s of Stop"
    qtbot.waitUntil(lambda: controller.state == "idle", timeout=10000)
    return took


@pytest.mark.parametrize("activity", ["train", "sample", "inpaint", "toy"])
def test_stop_ends_the_worker_within_2_s(qtbot, window, tiny_checkpoint, activity):
    if activity == "train":
        tab = start_training(qtbot, window)
    elif activity == "sample":
        tab = start_sampling(qtbot, window, tiny_checkpoint)
    elif activity == "inpaint":
        tab = start_inpainting(qtbot, window)
    else:
        tab = start_toy(qtbot, window)
    c = window.controllers[activity]
    assert c.state == "running"
    took = timed_stop(qtbot, c, lambda: window.stop_action.trigger())    # Shift+F5
    assert took < BOUND_S, f"{activity}: the worker took {took:.2f} s to end after Stop"
    assert "Stopped" in tab.run_bar.status.text() or activity == "toy"
    assert tab.run_bar.run_button.isEnabled()
    if activity == "train":
        assert_run_folder_whole(tab.run_dir, tab.last_step)


def test_closing_while_all_four_run_takes_under_2_s(qtbot, window, tiny_checkpoint, monkeypatch):
    train = start_training(qtbot, window)
    start_sampling(qtbot, window, tiny_checkpoint)
    start_inpainting(qtbot, window)
    start_toy(qtbot, window)
    assert len(window.busy_controllers()) == 4
    t0 = time.monotonic()
    window.close()
    took = time.monotonic() - t0
    assert took < BOUND_S and not window.isVisible()
    assert not window.busy_controllers()                      # every worker ended inside close()
    assert "Stopped" in train.run_bar.status.text()
    assert_run_folder_whole(train.run_dir, train.last_step)


class Tick(torch.nn.Module):
    """One small layer that takes 20 ms."""

    def forward(self, x):
        time.sleep(0.02)
        return x


class SlowLayers(torch.nn.Module):
    """From the model's third forward pass on, 300 ticks: a 6 s step made of many small modules, as the paper's
    RefineNet at batch 128 on a CPU is (seconds per step, a few ms per layer)."""

    def __init__(self):
        super().__init__()
        self.tick, self.calls, self.ticks = Tick(), 0, 0

    def forward(self, x):
        self.calls += 1
        for _ in range(300 if self.calls > 2 else 0):
            self.ticks += 1
            x = self.tick(x)
        return x


@pytest.mark.parametrize("how", ["stop", "close"])
def test_a_step_longer_than_the_deadline_is_abandoned(qtbot, window, monkeypatch, how):
    import ncsn_core.training as training
    real_build, slow = training.build_model, SlowLayers()

    def slow_model(cfg):
        model = real_build(cfg)
        model.slow = slow
        model.register_forward_pre_hook(lambda m, args: (m.slow(args[0]), *args[1:]))
        return model

    monkeypatch.setattr(training, "build_model", slow_model)
    tab = start_training(qtbot, window)
    qtbot.waitUntil(lambda: slow.ticks > 0, timeout=30000)   # inside the long step
    t0 = time.monotonic()
    if how == "stop":
        window.stop_action.trigger()
        assert window.controllers["train"].wait(10000)
    else:
        window.close()
        assert not window.isVisible()
    took = time.monotonic() - t0
    assert took < BOUND_S, f"{how}: the worker took {took:.2f} s to end inside a 6 s step"
    assert 0 < slow.ticks < 300                               # the step was left part-way
    qtbot.waitUntil(lambda: window.controllers["train"].state == "idle", timeout=5000)
    assert "Stopped" in tab.run_bar.status.text()
    assert_run_folder_whole(tab.run_dir, tab.last_step)       # the last completed step, loadable
