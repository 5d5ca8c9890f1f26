"""Sample tab: load a checkpoint, run annealed Langevin, watch every level, scrub, export PNG and GIF."""
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt

from conftest import close_tab, set_text, wait_idle
from studio.sample_tab import SampleTab


@pytest.fixture
def tab(qtbot, tiny_checkpoint):
    t = SampleTab()
    qtbot.addWidget(t)
    t.show()
    t.picker.set_path(tiny_checkpoint)
    qtbot.waitUntil(lambda: t.info is not None, timeout=30000)
    yield t
    close_tab(qtbot, t)


def run_small(qtbot, tab, n="4", steps="3"):
    set_text(qtbot, tab.form.n_edit, n)
    set_text(qtbot, tab.form.steps_edit, steps)
    assert tab.run_bar.run_button.isEnabled()
    qtbot.mouseClick(tab.run_bar.run_button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, tab.controller)


def test_checkpoint_defaults_fill_the_form(tab):
    assert tab.info.step == 4 and len(tab.info.sigmas) == 3
    assert tab.levels.level_list.count() == 3
    assert tab.form.steps_edit.value() == 3                        # the checkpoint's own n_steps_each
    assert "\u03b1\u2081" in tab.form.alpha_label.text()


def test_sampling_animates_through_all_levels(qtbot, tab):
    seen_states = []
    tab.controller.event_emitted.connect(lambda ev: seen_states.append(ev) if type(ev).__name__ ==
                                         "LangevinState" else None)
    run_small(qtbot, tab)
    assert tab.chains.levels_seen == [0, 1, 2]
    assert {s.level for s in seen_states} == {0, 1, 2}
    assert all(abs(s.step_size - tab.result.meta["step_lr"] * (s.sigma / seen_states[-1].sigma) ** 2) <
               1e-6 * s.step_size for s in seen_states)   # alpha_i = eps * sigma_i^2 / sigma_L^2
    assert tab.result is not None and tab.result.x.shape == (4, 1, 28, 28)
    # the timeline: one snapshot per level (+ the denoised final), scrubbable
    assert len(tab.chains.snapshots) == 4 and tab.chains.timeline.maximum() == 3
    tab.chains.timeline.setValue(0)
    assert "level 1/3" in tab.chains.caption.text()
    tab.chains.timeline.setValue(3)
    assert "final" in tab.chains.caption.text()
    assert "Done" in tab.run_bar.status.text()


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


def test_level_strip_export_follows_the_chain_view(qtbot, tab, tmp_path):
    from ncsn_core.export import read_png_meta
    run_small(qtbot, tab)
    shapes, pixels = {}, {}
    for view in ("x", "denoised", "both"):
        tab.chains.set_show(view)
        path = tab.export("strip", str(tmp_path / f"strip-{view}.png"))
        assert read_png_meta(path)["strip_view"] == view
        with Image.open(path) as im:
            shapes[view], pixels[view] = im.size, np.asarray(im)
    assert shapes["x"] == shapes["denoised"] and shapes["both"][0] == shapes["x"][0]
    assert shapes["both"][1] > 1.8 * shapes["x"][1]          # two rows per chain: x above its estimate
    assert not np.array_equal(pixels["x"], pixels["denoised"])


def test_export_via_ctrl_s_uses_the_file_dialog(qtbot, tab, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QFileDialog
    run_small(qtbot, tab)
    target = tmp_path / "via_dialog.png"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), "PNG (*.png)"))
    tab.export_action()
    assert target.exists()


def test_level_subset_runs_only_the_checked_levels(qtbot, tab):
    tab.levels.level_list.item(1).setCheckState(Qt.CheckState.Unchecked)
    run_small(qtbot, tab)
    assert tab.chains.levels_seen == [0, 1]                 # two levels ran (subset positions)
    assert tab.started.model_levels == (0, 2)        # ... which are the model's levels 1 and 3
    for i in range(3):
        tab.levels.level_list.item(i).setCheckState(Qt.CheckState.Unchecked)
    assert not tab.run_bar.run_button.isEnabled() and "level" in tab.run_bar.problem_label.text()


def test_large_step_size_warns_inline(qtbot, tab):
    assert not tab.form.warning.isVisible()
    set_text(qtbot, tab.form.step_lr_edit, "0.1")         # alpha_1 = 0.1 * 100^2 = 1000 >> 2 sigma_1^2
    assert tab.form.warning.isVisible() and "alpha_1" in tab.form.warning.text()
    set_text(qtbot, tab.form.step_lr_edit, "5e-5")
    assert not tab.form.warning.isVisible()


def test_stop_keeps_the_partial_chain(qtbot, tab):
    set_text(qtbot, tab.form.n_edit, "2")
    set_text(qtbot, tab.form.steps_edit, "400")
    qtbot.mouseClick(tab.run_bar.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(tab.chains.levels_seen) > 0, timeout=30000)
    qtbot.mouseClick(tab.run_bar.stop_button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, tab.controller)
    assert tab.result is not None and not tab.result.completed
    assert "Stopped" in tab.run_bar.status.text()


def test_bad_checkpoint_is_a_message_not_a_crash(qtbot, tab, tmp_path):
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a checkpoint")
    tab.picker.set_path(str(bad))
    qtbot.waitUntil(lambda: tab.banner.isVisible(), timeout=30000)
    assert "broken.pt" in tab.banner.text()
    assert not tab.run_bar.run_button.isEnabled()


def test_stop_right_after_run_is_clean(qtbot, tab):
    set_text(qtbot, tab.form.n_edit, "2")
    qtbot.mouseClick(tab.run_bar.run_button, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(tab.run_bar.stop_button, Qt.MouseButton.LeftButton)   # before the model has even loaded
    wait_idle(qtbot, tab.controller)
    assert tab.banner.isHidden() and tab.run_bar.run_button.isEnabled()
    assert "Stopped" in tab.run_bar.status.text()


def test_switching_to_a_checkpoint_with_another_ladder(qtbot, tab, tmp_path, tiny_checkpoint):
    from conftest import tiny_config
    from ncsn_core.training import run_to_end, train
    fin = run_to_end(train(tiny_config(1).override("noise", num_classes=5), tmp_path / "five"))
    tab.picker.set_path(fin.checkpoint)                       # L = 3 -> 5
    qtbot.waitUntil(lambda: tab.info is not None and len(tab.info.sigmas) == 5, timeout=30000)
    assert tab.levels.level_list.count() == 5 and tab.run_bar.run_button.isEnabled()
    tab.picker.set_path(tiny_checkpoint)                      # and back: 5 -> 3
    qtbot.waitUntil(lambda: tab.info is not None and len(tab.info.sigmas) == 3, timeout=30000)
    assert tab.levels.level_list.count() == 3 and tab.run_bar.run_button.isEnabled()


def test_every_second_level_button_keeps_the_last_level(qtbot, tab):
    qtbot.mouseClick(tab.levels.every2_button, Qt.MouseButton.LeftButton)
    assert tab.levels.selected() == [0, 2]  # every second of 3 levels, sigma_L always kept
    assert tab.run_bar.run_button.isEnabled()


# --- the chain's start and the variance correction kappa ----------------------------------------
def _checkpoint(path, with_mean: bool, **sample):
    """A tiny untrained checkpoint whose config has the given sample settings, with or without a data mean."""
    import torch
    from conftest import tiny_config
    from ncsn_core.checkpoint import save_checkpoint
    from ncsn_core.models import build_model
    cfg = tiny_config(1).override("sample", **sample)
    torch.manual_seed(0)
    model = build_model(cfg)
    if with_mean:
        model.data_mean = torch.full((1, 28, 28), 0.13)
    return str(save_checkpoint(path, cfg, 1, model))


def _load(qtbot, tab, path):
    tab.picker.set_path(path)
    qtbot.waitUntil(lambda: tab.info is not None and tab.info.path == str(Path(path).resolve()), timeout=30000)


def _item(combo, value):
    return combo.model().item(combo.findData(value))


def _spy_sampler(monkeypatch):
    """Record the keywords sample_job hands to the engine's annealed_langevin."""
    import ncsn_core.sampling as sampling
    calls, real = [], sampling.annealed_langevin

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)
    monkeypatch.setattr(sampling, "annealed_langevin", spy)
    return calls


def test_start_and_kappa_follow_the_checkpoint_and_reach_the_job_and_the_export(qtbot, tab, tmp_path, monkeypatch):
    from ncsn_core.export import read_png_meta
    ckpt = _checkpoint(tmp_path / "gauss.pt", True, init="gaussian", variance_correction=0.5)
    _load(qtbot, tab, ckpt)
    assert tab.info.has_data_mean
    assert tab.form.init_combo.currentData() == "gaussian" and tab.form.kappa_spin.value() == 0.5   # the config's values
    assert _item(tab.form.init_combo, "data-mean").isEnabled()
    assert "N(0" in tab.form.init_combo.toolTip()                                  # explains the current choice
    assert "stationary variance is exactly" in tab.form.kappa_spin.toolTip()
    assert (tab.form.kappa_spin.minimum(), tab.form.kappa_spin.maximum(), tab.form.kappa_spin.singleStep()) == (0.0, 1.0, 0.25)
    s = tab.settings_from_form()
    assert (s.sample.init, s.sample.variance_correction) == ("gaussian", 0.5)

    tab.form.init_combo.setCurrentIndex(tab.form.init_combo.findData("data-mean"))
    tab.form.kappa_spin.stepBy(2)                                                   # 0.5 -> 1.0 as the arrows do
    s = tab.settings_from_form()
    assert (s.sample.init, s.sample.variance_correction) == ("data-mean", 1.0)
    calls = _spy_sampler(monkeypatch)
    run_small(qtbot, tab, n="2", steps="1")
    assert tab.banner.isHidden() and tab.result is not None and tab.result.completed
    assert calls[-1]["init"] == "data-mean" and calls[-1]["variance_correction"] == 1.0
    assert calls[-1]["init_mean"] is not None
    assert (tab.result.meta["init"], tab.result.meta["variance_correction"]) == ("data-mean", 1.0)
    assert "start data-mean" in tab.run_bar.status.text()
    meta = read_png_meta(tab.export("grid", str(tmp_path / "grid.png")))
    assert meta["init"] == "data-mean" and meta["variance_correction"] == 1.0

    # another checkpoint: the controls take its config's values again
    _load(qtbot, tab, _checkpoint(tmp_path / "unif.pt", True, init="uniform", variance_correction=0.25))
    assert tab.form.init_combo.currentData() == "uniform" and tab.form.kappa_spin.value() == 0.25


def test_the_job_uses_the_checkpoint_config_when_no_sampler_is_given(tmp_path, monkeypatch):
    from studio import jobs
    from ncsn_core.config import SampleConfig
    ckpt = _checkpoint(tmp_path / "c.pt", False, init="gaussian", variance_correction=0.75, n_steps_each=1)
    calls = _spy_sampler(monkeypatch)
    gen = jobs.sample_job(jobs.SampleSettings(checkpoint=ckpt, n=2, classify=False))
    with pytest.raises(StopIteration) as stop:
        while True:
            next(gen)
    meta = stop.value.value.meta
    assert (meta["init"], meta["variance_correction"]) == ("gaussian", 0.75)     # effective values, never None
    assert (calls[-1]["init"], calls[-1]["variance_correction"]) == ("gaussian", 0.75)
    # an explicit choice wins over the config
    mine = SampleConfig(n_steps_each=1, init="uniform", variance_correction=0.0)
    gen = jobs.sample_job(jobs.SampleSettings(checkpoint=ckpt, n=2, classify=False, sample=mine))
    with pytest.raises(StopIteration) as stop:
        while True:
            next(gen)
    assert (stop.value.value.meta["init"], stop.value.value.meta["variance_correction"]) == ("uniform", 0.0)
    # 'data-mean' without a data mean is refused with a message that says what to do
    gen = jobs.sample_job(jobs.SampleSettings(checkpoint=ckpt, n=2, sample=SampleConfig(init="data-mean")))
    with pytest.raises(ValueError, match="no training-data mean.*choose the uniform or gaussian start"):
        next(gen)


def test_data_mean_start_is_disabled_without_a_data_mean(qtbot, tab, tmp_path):
    from studio import jobs
    from ncsn_core.config import SampleConfig
    ckpt = _checkpoint(tmp_path / "old.pt", False, init="gaussian", variance_correction=0.25)
    _load(qtbot, tab, ckpt)
    assert not tab.info.has_data_mean
    item = _item(tab.form.init_combo, "data-mean")
    assert not item.isEnabled() and "no training-data mean" in item.toolTip()
    assert _item(tab.form.init_combo, "uniform").isEnabled() and _item(tab.form.init_combo, "gaussian").isEnabled()
    assert tab.form.init_combo.currentData() == "gaussian" and tab.form.kappa_spin.value() == 0.25
    assert tab.run_bar.run_button.isEnabled()
    # forced (a config that names it): the form says why and Run stays off
    tab.form.init_combo.setCurrentIndex(tab.form.init_combo.findData("data-mean"))
    assert not tab.run_bar.run_button.isEnabled() and "data mean" in tab.run_bar.problem_label.text()
    # a job that asks for it anyway fails with the reason in the tab's error banner
    tab.controller.start(lambda: jobs.sample_job(jobs.SampleSettings(checkpoint=ckpt, n=2,
                                                                         sample=SampleConfig(init="data-mean"))))
    wait_idle(qtbot, tab.controller)
    assert tab.banner.isVisible() and "no training-data mean" in tab.banner.text()
    # a checkpoint with a mean enables it again
    _load(qtbot, tab, _checkpoint(tmp_path / "new.pt", True, init="uniform", variance_correction=0.0))
    assert _item(tab.form.init_combo, "data-mean").isEnabled() and tab.form.init_combo.currentData() == "uniform"
