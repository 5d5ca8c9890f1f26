"""Sample tab: load a checkpoint, run annealed Langevin, watch every level, scrub, export PNG and GIF."""
from pathlib import Path

import pytest
from PIL import Image
from PySide6.QtCore import Qt

from conftest import set_text, wait_idle
from studio.sample_tab import SampleTab


@pytest.fixture
def tab(qtbot, tiny_checkpoint):
    t = SampleTab()
    qtbot.addWidget(t)
    t.show()
    t.picker.set_path(tiny_checkpoint)
    qtbot.waitUntil(lambda: t.info is not None, timeout=30000)
    yield t
    if t.controller.state == "running":
        t.controller.stop()
    t.controller.wait(30000)
    t.shutdown()
    qtbot.waitUntil(lambda: t.controller.state == "idle", timeout=30000)


def run_small(qtbot, tab, n="4", steps="3"):
    set_text(qtbot, tab.n_edit, n)
    set_text(qtbot, tab.steps_edit, steps)
    assert tab.run_button.isEnabled()
    qtbot.mouseClick(tab.run_button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, tab.controller)


def test_checkpoint_defaults_fill_the_form(tab):
    assert tab.info.step == 4 and len(tab.info.sigmas) == 3
    assert tab.level_list.count() == 3
    assert tab.steps_edit.value() == 3                        # the checkpoint's own n_steps_each
    assert "\u03b1\u2081" in tab.alpha_label.text()


def test_sampling_animates_through_all_levels(qtbot, tab):
    seen_states = []
    tab.controller.event_emitted.connect(lambda ev: seen_states.append(ev) if type(ev).__name__ ==
                                         "LangevinState" else None)
    run_small(qtbot, tab)
    assert tab.levels_seen == [0, 1, 2]
    assert {s.level for s in seen_states} == {0, 1, 2}
    assert all(abs(s.step_size - tab.result.meta["step_lr"] * (s.sigma / seen_states[-1].sigma) ** 2) <
               1e-6 * s.step_size for s in seen_states)   # alpha_i = eps * sigma_i^2 / sigma_L^2
    assert tab.result is not None and tab.result.x.shape == (4, 1, 28, 28)
    # the timeline: one snapshot per level (+ the denoised final), scrubbable
    assert len(tab.snapshots) == 4 and tab.timeline.maximum() == 3
    tab.timeline.setValue(0)
    assert "level 1/3" in tab.timeline_label.text()
    tab.timeline.setValue(3)
    assert "final" in tab.timeline_label.text()
    assert "Done" in tab.level_status.text()


def test_exports_png_strip_and_gif(qtbot, tab, tmp_path):
    run_small(qtbot, tab)
    png = tab.export("grid", str(tmp_path / "grid.png"))
    strip = tab.export("strip", str(tmp_path / "strip.png"))
    gif = tab.export("gif", str(tmp_path / "chain.gif"))
    with Image.open(png) as im:
        assert im.format == "PNG" and im.size[0] > 28 and "ncsn:step_lr" in im.text
    with Image.open(strip) as im:
        assert im.format == "PNG" and im.size[0] > im.size[1] // 2
    with Image.open(gif) as im:
        assert im.format == "GIF" and im.n_frames > 1
    assert Path(gif + ".json").exists()


def test_export_via_ctrl_s_uses_the_file_dialog(qtbot, tab, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QFileDialog
    run_small(qtbot, tab)
    target = tmp_path / "via_dialog.png"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), "PNG (*.png)"))
    tab.export_action()
    assert target.exists()


def test_level_subset_runs_only_the_checked_levels(qtbot, tab):
    tab.level_list.item(1).setCheckState(Qt.CheckState.Unchecked)
    run_small(qtbot, tab)
    assert tab.levels_seen == [0, 1]                 # two levels ran (subset positions)
    assert tab.started.model_levels == (0, 2)        # ... which are the model's levels 1 and 3
    for i in range(3):
        tab.level_list.item(i).setCheckState(Qt.CheckState.Unchecked)
    assert not tab.run_button.isEnabled() and "level" in tab.form_error.text()


def test_large_step_size_warns_inline(qtbot, tab):
    assert not tab.warning.isVisible()
    set_text(qtbot, tab.step_lr_edit, "0.1")         # alpha_1 = 0.1 * 100^2 = 1000 >> 2 sigma_1^2
    assert tab.warning.isVisible() and "alpha_1" in tab.warning.text()
    set_text(qtbot, tab.step_lr_edit, "5e-5")
    assert not tab.warning.isVisible()


def test_stop_keeps_the_partial_chain(qtbot, tab):
    set_text(qtbot, tab.n_edit, "2")
    set_text(qtbot, tab.steps_edit, "400")
    qtbot.mouseClick(tab.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(tab.levels_seen) > 0, timeout=30000)
    qtbot.mouseClick(tab.stop_button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, tab.controller)
    assert tab.result is not None and not tab.result.completed
    assert "Stopped" in tab.level_status.text()


def test_bad_checkpoint_is_a_message_not_a_crash(qtbot, tab, tmp_path):
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a checkpoint")
    tab.picker.set_path(str(bad))
    qtbot.waitUntil(lambda: tab.banner.isVisible(), timeout=30000)
    assert "broken.pt" in tab.banner.text()
    assert not tab.run_button.isEnabled()


def test_stop_right_after_run_is_clean(qtbot, tab):
    set_text(qtbot, tab.n_edit, "2")
    qtbot.mouseClick(tab.run_button, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(tab.stop_button, Qt.MouseButton.LeftButton)   # before the model has even loaded
    wait_idle(qtbot, tab.controller)
    assert tab.banner.isHidden() and tab.run_button.isEnabled()
    assert "Stopped" in tab.level_status.text()


def test_switching_to_a_checkpoint_with_another_ladder(qtbot, tab, tmp_path, tiny_checkpoint):
    from conftest import tiny_config
    from ncsn_core.training import run_to_end, train
    fin = run_to_end(train(tiny_config(1).override("noise", num_classes=5), tmp_path / "five"))
    tab.picker.set_path(fin.checkpoint)                       # L = 3 -> 5
    qtbot.waitUntil(lambda: tab.info is not None and len(tab.info.sigmas) == 5, timeout=30000)
    assert tab.level_list.count() == 5 and tab.run_button.isEnabled()
    tab.picker.set_path(tiny_checkpoint)                      # and back: 5 -> 3
    qtbot.waitUntil(lambda: tab.info is not None and len(tab.info.sigmas) == 3, timeout=30000)
    assert tab.level_list.count() == 3 and tab.run_button.isEnabled()


def test_every_second_level_button_keeps_the_last_level(qtbot, tab):
    qtbot.mouseClick(tab.every2_button, Qt.MouseButton.LeftButton)
    assert tab.selected_levels() == [0, 2]  # every second of 3 levels, sigma_L always kept
    assert tab.run_button.isEnabled()
