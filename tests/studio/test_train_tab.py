"""Train tab, driven like a user: type in the form, click Start / Pause / Resume / Stop, watch the plots."""
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from conftest import TINY_OVERRIDES, set_text, wait_idle
from studio.train_tab import TrainTab


@pytest.fixture
def tab(qtbot):
    t = TrainTab()
    qtbot.addWidget(t)
    t.show()
    t.config_overrides = TINY_OVERRIDES
    yield t
    if t.controller.state in ("running", "paused"):
        t.controller.stop()
    t.controller.wait(30000)
    qtbot.waitUntil(lambda: t.controller.state == "idle", timeout=30000)


def fill_tiny_form(qtbot, tab, n_iters="100000", preview_every="0", save_every="100000"):
    set_text(qtbot, tab.form.fields["n_iters"], n_iters)
    set_text(qtbot, tab.form.fields["batch_size"], "8")
    set_text(qtbot, tab.form.fields["num_classes"], "3")
    set_text(qtbot, tab.form.fields["preview_every"], preview_every)
    set_text(qtbot, tab.form.fields["save_every"], save_every)


def n_points(tab) -> int:
    x = tab.plots.loss_plot.raw_curve.xData
    return 0 if x is None else len(x)


def test_training_reaches_the_plot_and_stops_with_a_checkpoint(qtbot, tab):
    fill_tiny_form(qtbot, tab)
    assert tab.run_bar.run_button.isEnabled()
    qtbot.mouseClick(tab.run_bar.run_button, Qt.MouseButton.LeftButton)
    assert tab.controller.state == "running"
    assert not tab.run_bar.run_button.isEnabled() and tab.run_bar.stop_button.isEnabled() and tab.run_bar.pause_button.isEnabled()
    qtbot.waitUntil(lambda: n_points(tab) >= 2, timeout=60000)
    first = n_points(tab)
    qtbot.waitUntil(lambda: n_points(tab) > first, timeout=30000)   # the curve keeps growing
    assert len(tab.plots.level_plot.curves) == 3                          # one curve per sigma_i
    assert tab.run_bar.progress.value() > 0 and "images/s" in tab.run_bar.status.text()
    qtbot.mouseClick(tab.run_bar.stop_button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, tab.controller)
    ckpts = list((Path(tab.run_dir) / "checkpoints").glob("ckpt_*.pt"))
    assert ckpts and tab.last_checkpoint and Path(tab.last_checkpoint).exists()
    assert tab.run_bar.run_button.isEnabled() and not tab.run_bar.stop_button.isEnabled()
    assert "Stopped" in tab.run_bar.status.text()


def test_pause_saves_and_holds_then_resume_continues(qtbot, tab):
    fill_tiny_form(qtbot, tab)
    qtbot.mouseClick(tab.run_bar.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: n_points(tab) >= 2, timeout=60000)
    with qtbot.waitSignal(tab.checkpoint_saved, timeout=30000):   # pausing writes a checkpoint
        qtbot.mouseClick(tab.run_bar.pause_button, Qt.MouseButton.LeftButton)
    assert tab.controller.state == "paused"
    assert tab.run_bar.resume_button.isEnabled() and not tab.run_bar.pause_button.isEnabled()
    qtbot.wait(150)
    held = n_points(tab)
    qtbot.wait(400)
    assert n_points(tab) == held                                   # nothing moves while paused
    qtbot.mouseClick(tab.run_bar.resume_button, Qt.MouseButton.LeftButton)
    assert tab.controller.state == "running"
    qtbot.waitUntil(lambda: n_points(tab) > held, timeout=30000)
    qtbot.mouseClick(tab.run_bar.stop_button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, tab.controller)


def test_previews_and_finish(qtbot, tab):
    fill_tiny_form(qtbot, tab, n_iters="6", preview_every="3")
    finished = []
    tab.run_finished.connect(finished.append)
    qtbot.mouseClick(tab.run_bar.run_button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, tab.controller)
    assert tab.plots.preview.images is not None and len(tab.plots.preview.images) == 4
    assert finished and Path(finished[0]).exists() and "step 6" in tab.run_bar.status.text().replace(",", "")
    assert list((Path(tab.run_dir) / "samples").glob("preview_*.png"))


def test_invalid_input_disables_start_and_says_why(qtbot, tab):
    assert tab.run_bar.run_button.isEnabled()
    set_text(qtbot, tab.form.fields["lr"], "abc")
    assert not tab.run_bar.run_button.isEnabled()
    assert tab.run_bar.problem_label.isVisible() and "lr" in tab.run_bar.problem_label.text()
    set_text(qtbot, tab.form.fields["lr"], "1e-3")
    assert tab.run_bar.run_button.isEnabled() and not tab.run_bar.problem_label.isVisible()
    set_text(qtbot, tab.form.fields["sigma_end"], "50")       # sigma_L above sigma_1 (16): the config says so
    assert not tab.run_bar.run_button.isEnabled() and "sigma_begin" in tab.run_bar.problem_label.text()
    set_text(qtbot, tab.form.fields["sigma_end"], "0.01")
    set_text(qtbot, tab.form.fields["batch_size"], "0")
    assert not tab.run_bar.run_button.isEnabled() and "batch size" in tab.run_bar.problem_label.text()
    assert tab.start() is False and tab.controller.state == "idle"


def test_folder_source_needs_a_folder_and_bad_data_is_a_message(qtbot, tab, tmp_path):
    tab.data.source_combo.setCurrentIndex(2)       # folder of images
    assert not tab.run_bar.run_button.isEnabled() and "folder" in tab.run_bar.problem_label.text()
    empty = tmp_path / "empty"
    empty.mkdir()
    tab.set_data_folder(str(empty))
    assert "No images" in tab.data.info.text()
    fill_tiny_form(qtbot, tab)
    qtbot.mouseClick(tab.run_bar.run_button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, tab.controller)          # the loader's error ends the run ...
    assert tab.banner.isVisible() and "Training failed" in tab.banner.text()   # ... as a readable message
    assert tab.run_bar.run_button.isEnabled()


def test_resume_run_continues_from_the_checkpoint(qtbot, tab, tmp_path):
    from conftest import tiny_config
    from ncsn_core.training import is_unfinished, train
    run = tmp_path / "runs" / "half"
    gen = train(tiny_config(6), run)
    ev = next(gen)
    while type(ev).__name__ != "TrainStep" or ev.step < 2:
        ev = next(gen)
    gen.send("stop")
    gen.close()
    assert is_unfinished(run)
    assert tab.resume_run(str(run))
    wait_idle(qtbot, tab.controller)
    assert tab.last_step == 6 and not is_unfinished(run)
    # history (2 points) + the resumed steps 3..6; the curve repaints on its own timer (REPAINT_MS), so wait for it
    qtbot.waitUntil(lambda: n_points(tab) == 6, timeout=5000)


def test_stop_right_after_start_is_clean(qtbot, tab):
    fill_tiny_form(qtbot, tab)
    qtbot.mouseClick(tab.run_bar.run_button, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(tab.run_bar.stop_button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, tab.controller)
    assert tab.banner.isHidden() and tab.run_bar.run_button.isEnabled()
    assert "Stopped" in tab.run_bar.status.text()


def test_time_limit_ends_a_cosine_run_with_a_checkpoint(qtbot, tab):
    import json
    fill_tiny_form(qtbot, tab)  # 100,000 iterations: only the time limit can end it
    tab.form.lr_schedule.setCurrentText("cosine")
    set_text(qtbot, tab.form.minutes, "0.05")  # 3 s
    qtbot.mouseClick(tab.run_bar.run_button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, tab.controller, timeout=60000)
    assert "Time limit reached" in tab.run_bar.status.text() and Path(tab.last_checkpoint).exists()
    run = Path(tab.run_dir)
    assert json.loads((run / "config.json").read_text())["train"]["lr_schedule"] == "cosine"
    lrs = [json.loads(l)["lr"] for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert lrs[-1] < 0.2 * max(lrs)  # the rate fell with the time spent, not with 100,000 iterations


def test_before_any_run_the_progress_bar_counts_to_the_forms_iterations(qtbot, tab):
    assert tab.run_bar.progress.maximum() == int(tab.form.fields["n_iters"].value())
    set_text(qtbot, tab.form.fields["n_iters"], "2500")
    assert tab.run_bar.progress.text() == "step 0 / 2500"


def test_precision_chosen_in_the_form_trains_and_comes_back_with_the_run(qtbot, tab):
    import json
    fill_tiny_form(qtbot, tab, n_iters="2")
    assert tab.form.precision.currentText() == "fp32"  # the paper's, by default
    from studio.jobs import cpu_has_bf16
    tip = tab.form.precision.toolTip()  # says whether bf16 pays on this CPU
    assert ("this CPU has AMX" in tip) == cpu_has_bf16() and ("this CPU has no AMX" in tip) != cpu_has_bf16()
    tab.form.precision.setCurrentText("bf16")
    qtbot.mouseClick(tab.run_bar.run_button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, tab.controller, timeout=60000)
    run = Path(tab.run_dir)
    assert json.loads((run / "config.json").read_text())["train"]["precision"] == "bf16"
    tab.form.apply_preset("mnist-cpu")
    assert tab.form.precision.currentText() == "fp32"
    tab.form.fill(json.loads((run / "config.json").read_text()))  # as resuming the run fills the form
    assert tab.form.precision.currentText() == "bf16"


def test_a_bad_time_limit_disables_start_and_says_why(qtbot, tab):
    fill_tiny_form(qtbot, tab)
    set_text(qtbot, tab.form.minutes, "-3")
    assert not tab.run_bar.run_button.isEnabled() and "time limit" in tab.run_bar.problem_label.text()
    set_text(qtbot, tab.form.minutes, "")
    assert tab.run_bar.run_button.isEnabled()
