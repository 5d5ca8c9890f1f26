"""Evaluate tab: a real (tiny) evaluation fills the labelled figures and the class histogram; a missing
evaluation module is a message, not a crash."""
import numpy as np
import pytest
from PySide6.QtCore import Qt

from conftest import set_text, wait_idle
from studio import eval_tab
from studio.eval_tab import EvalTab
from studio.widgets.eval_results import histogram_of, sampler_caption


@pytest.fixture
def tab(qtbot, tiny_checkpoint):
    t = EvalTab()
    qtbot.addWidget(t)
    t.show()
    t.picker.set_path(tiny_checkpoint)
    qtbot.waitUntil(lambda: t.info is not None, timeout=30000)   # the form fills with the checkpoint's settings
    yield t
    if t.controller.state == "running":
        t.stop()
    t.controller.wait(60000)
    qtbot.waitUntil(lambda: t.controller.state == "idle", timeout=60000)


def test_evaluation_fills_figures_and_histogram(qtbot, tab, tmp_path):
    set_text(qtbot, tab.form.n_edit, "10")
    set_text(qtbot, tab.form.steps_edit, "1")
    set_text(qtbot, tab.batch_edit, "10")
    progress = []
    tab._relay.progressed.connect(progress.append)
    qtbot.mouseClick(tab.run_bar.run_button, Qt.MouseButton.LeftButton)
    assert tab.controller.state == "running" and tab.run_bar.stop_button.isEnabled()
    wait_idle(qtbot, tab.controller, timeout=120000)
    assert tab.banner.isHidden() or "failed" not in tab.banner.text()
    assert tab.results.result is not None and progress
    assert "n=10" in tab.results.caption.text() and "T=1" in tab.results.caption.text()
    table = tab.results.table
    figures = {table.item(r, 0).text(): table.item(r, 1).text() for r in range(table.rowCount())}
    assert "FID (digit-classifier features)" in figures and "FID real vs real (floor)" in figures
    for label in ("FID (digit-classifier features)", "FID real vs real (floor)"):  # means over 5 draws, with spread
        assert "\u00b1" in figures[label] and "5 draws" in figures[label]
    assert "fid classifier sd" not in figures and "fid real vs real sd" not in figures
    heights = tab.results.hist_bars.opts["height"]
    assert len(heights) == 10 and abs(float(np.sum(heights)) - 1.0) < 1e-6
    x, y = tab.results.level_curve.getData()
    assert len(y) == 3                                    # the tiny model's 3 noise levels
    import json
    saved = tab.export_action(str(tmp_path / "eval.json"))
    assert json.loads(open(saved).read())["n"] == 10


def test_missing_module_is_a_message(qtbot, monkeypatch):
    monkeypatch.setattr(eval_tab, "evaluation_available", lambda: False)
    t = EvalTab()
    qtbot.addWidget(t)
    assert not t.banner.isHidden() and "evaluate.py" in t.banner.text()
    assert not t.run_bar.run_button.isEnabled() and t.run() is False


def test_result_helpers_accept_other_shapes():
    assert list(histogram_of({"class_counts": [1, 3]})) == [1, 3]
    assert histogram_of({"nothing": 1}) is None
    cap = sampler_caption({"sampler": {"step_lr": 5e-5, "n_steps_each": 20, "description": "Heun ODE, 18 sigmas"},
                           "n": 50}, 0)
    assert cap == "n = 50 samples, Heun ODE, 18 sigmas"          # the engine's description, not the form's words
