"""Toy lab tab: plain vs annealed Langevin on the paper's mixture, and the learned field (offscreen)."""
import numpy as np
import pytest
from PySide6.QtCore import Qt

from studio.toy_tab import ToyTab
from studio.widgets.toy_plots import quiver_segments


@pytest.fixture
def toy(qtbot):
    t = ToyTab(controller=None)
    qtbot.addWidget(t)
    t.resize(1380, 820)
    t.show()
    qtbot.waitExposed(t)
    qtbot.waitUntil(lambda: t.plots.field.field is not None, timeout=20000)
    return t


def _fast(t, particles=1000, T=50):
    t.form.particles_spin.setValue(particles)
    t.form.t_spin.setValue(T)
    t.form.speed_combo.setCurrentIndex(1)  # as fast as possible


def test_heat_map_and_exact_arrows_are_drawn(toy):
    img = toy.plots.field.density.image
    assert img is not None and img.shape == (161, 161)
    # the upper-right mode carries 4/5 of the mass: its peak is 4x the lower-left one (same std)
    lo, hi = img[40, 40], img[120, 120]  # grid points (-4, -4) and (4, 4): symmetric about the modes
    assert hi / lo == pytest.approx(4.0, rel=1e-3)
    exact, learned = toy.plots.field.arrow_data()
    assert len(exact) == 6 * 17 * 17 and len(learned) == 0
    toy.plots.field.level_slider.setValue(0)
    assert "σ = 0" in toy.plots.field.field_label.text()


def test_annealing_recovers_the_weights_and_plain_langevin_does_not(qtbot, toy):
    _fast(toy, particles=1000, T=50)
    with qtbot.waitSignal(toy.run_finished, timeout=60000):
        qtbot.mouseClick(toy.run_bar.run_button, Qt.MouseButton.LeftButton)
        assert toy.is_running() and toy.run_bar.stop_button.isEnabled()
    f = toy.last_frame()
    assert f.final and f.global_step == f.total_steps == 10 * 50
    assert f.plain.shape == f.annealed.shape == (1000, 2)
    assert abs(f.annealed_lower_left - 0.2) < 0.06
    assert abs(f.plain_lower_left - f.annealed_lower_left) > 0.1
    # the shown shares are the live ones, and the history has one entry per frame
    assert toy.plots.annealed.bar.fraction() == pytest.approx(f.annealed_lower_left)
    assert toy.plots.plain.bar.fraction() == pytest.approx(f.plain_lower_left)
    h = toy.fraction_history()
    assert len(h) == 10 * 10 and h[-1][0] == 500
    assert toy.plots.field.level_slider.value() == 10  # the field view followed the chain to the last level
    assert "Done" in toy.run_bar.status.text() and toy.run_bar.run_button.isEnabled()


def test_stop_and_step_size_warning(qtbot, toy):
    assert toy.warning_text() == ""
    toy.form.sigma_end_spin.setValue(0.1)  # the paper's 10 -> 0.1 ladder style: alpha_1 explodes
    toy.form.sigma_begin_spin.setValue(10)
    assert "alpha_1" in toy.warning_text() and toy.warning_label.isVisible()
    toy.form.step_lr_spin.setValue(0.001)
    assert toy.warning_text() == ""
    toy.form.sigma_end_spin.setValue(20)
    assert "smaller than σ₁" in toy.warning_text() and not toy.run_bar.run_button.isEnabled()
    toy.form.sigma_end_spin.setValue(0.7)
    toy.form.sigma_begin_spin.setValue(20)
    toy.form.step_lr_spin.setValue(0.1)
    _fast(toy, particles=200, T=2000)
    with qtbot.waitSignal(toy.run_finished, timeout=60000):
        toy.run()
        qtbot.mouseClick(toy.run_bar.stop_button, Qt.MouseButton.LeftButton)
    f = toy.last_frame()
    assert f is None or f.global_step < f.total_steps
    assert toy.controller.state == "idle" and toy.run_bar.run_button.isEnabled()


def test_learned_field_training_reports_loss_and_updates_arrows(qtbot, toy):
    toy.form.levels_spin.setValue(3)
    qtbot.waitUntil(lambda: len(toy.plots.field.field.sigmas) == 3, timeout=20000)
    toy.form.score_combo.setCurrentIndex(1)
    assert "train the MLP first" in toy.warning_text() and not toy.run_bar.run_button.isEnabled()
    exact_before, learned_before = toy.plots.field.arrow_data()
    assert len(learned_before) == 0
    with qtbot.waitSignal(toy.training_finished, timeout=120000):
        assert toy.train("dsm", 200)
    losses = toy.losses()
    assert [s for s, _ in losses] == [100, 200]
    assert all(np.isfinite(v) and v > 0 for _, v in losses)
    x, y = toy.plots.loss_curve.getData()
    assert len(x) == 2
    exact, learned = toy.plots.field.arrow_data()
    assert learned.shape == exact.shape and not np.allclose(learned, exact)
    assert "high-density" in toy.plots.field.error_label.text() and "low-density" in toy.plots.field.error_label.text()
    # the chains can now run on the learned score
    assert toy.run_bar.run_button.isEnabled()
    _fast(toy, particles=200, T=5)
    with qtbot.waitSignal(toy.run_finished, timeout=60000):
        toy.run()
    assert toy.last_frame().final and np.isfinite(toy.last_frame().annealed).all()
    # another ladder invalidates the trained network
    toy.form.levels_spin.setValue(4)
    assert "another noise ladder" in toy.warning_text()


def test_quiver_segments_are_pairs_from_tail_to_tip():
    pts = np.array([[0.0, 0.0], [1.0, 1.0]], np.float32)
    vec = np.array([[1.0, 0.0], [0.0, -2.0]], np.float32)
    seg = quiver_segments(pts, vec, scale=0.5)
    assert seg.shape == (12, 2)
    np.testing.assert_allclose(seg[0:2], [[0, 0], [0.5, 0]])
    np.testing.assert_allclose(seg[6:8], [[1, 1], [1, 0]])


def test_closing_while_everything_runs_stops_the_threads(qtbot, toy):
    toy.form.particles_spin.setValue(200)
    toy.form.speed_combo.setCurrentIndex(0)  # watchable: slowed down, still running when closed
    assert toy.run() and toy.train("dsm", 50000)
    qtbot.wait(100)
    toy.close()  # shutdown(): stop and join, no "QThread destroyed while running"
    assert not toy.controller._worker or not toy.controller._worker.is_running()
    assert not toy.training._worker or not toy.training._worker.is_running()


def test_sliced_score_matching_trains_too(qtbot, toy):
    toy.form.levels_spin.setValue(2)
    qtbot.waitUntil(lambda: len(toy.plots.field.field.sigmas) == 2, timeout=20000)
    toy.form.loss_combo.setCurrentIndex(toy.form.loss_combo.findData("ssm"))
    with qtbot.waitSignal(toy.training_finished, timeout=120000):
        qtbot.mouseClick(toy.train_bar.run_button, Qt.MouseButton.LeftButton)
        toy.form.iters_spin.setValue(100)  # disabled while training: the run keeps its 2000
        assert not toy.form.iters_spin.isEnabled() and toy.train_bar.stop_button.isEnabled()
        qtbot.waitUntil(lambda: len(toy.losses()) >= 1, timeout=60000)
        qtbot.mouseClick(toy.train_bar.stop_button, Qt.MouseButton.LeftButton)
    assert toy.trained() is not None and toy.trained().loss == "ssm"
    assert len(toy.losses()) < 20 and "SSM" in toy.train_bar.status.text()
