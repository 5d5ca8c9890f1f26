"""Widgets on their own: the smoothed, log-y loss plot with hover readout, the image grid, number fields."""
import math

import numpy as np
import pytest

from studio.widgets.image_grid import ImageGridView, tile_images
from studio.widgets.loss_plot import LossPlot, ema_smooth
from studio.widgets.number_edit import NumberEdit


def test_ema_smooth_is_causal_and_debiased():
    y = [5.0, 5.0, 5.0]
    assert np.allclose(ema_smooth(y, 0.9), 5.0)           # debiased: no start-up bias towards 0
    s = ema_smooth([1.0, 3.0], 0.5)
    assert s[0] == 1.0 and s[1] == pytest.approx((0.5 * 0.5 * 1 + 0.5 * 3) / (1 - 0.25))
    z = ema_smooth([1.0, math.nan, 2.0], 0.0)
    assert list(z) == [1.0, 1.0, 2.0]
    assert np.allclose(ema_smooth([1, 2, 100], 0.9)[:2], ema_smooth([1, 2], 0.9))   # causal


def test_loss_plot_log_y_smoothing_x_mode_and_hover(qtbot):
    p = LossPlot()
    qtbot.addWidget(p)
    for k in range(1, 51):
        p.append(10 * k, 0.5 * k, 400.0 / k)
    qtbot.waitUntil(lambda: p.raw_curve.xData is not None and len(p.raw_curve.xData) == 50, timeout=2000)
    assert p.plot.ctrl.logYCheck.isChecked()               # a true log axis, not log-transformed data
    assert np.allclose(p.raw_curve.yData, [400.0 / k for k in range(1, 51)])
    before = list(p.smoothed)
    p.slider.setValue(50)
    assert p.beta == 0.5 and p.smoothed != before
    text = p.readout_at(203)
    assert "step 200" in text and "loss 20" in text
    p.x_combo.setCurrentText("wall time")
    qtbot.wait(50)
    assert np.allclose(p.raw_curve.xData, [0.5 * k for k in range(1, 51)])
    p.log_box.setChecked(False)
    assert not p.plot.ctrl.logYCheck.isChecked()
    assert p.plot.clipToViewMode() and p.plot.downsampleMode()[1]    # clip-to-view, auto downsampling


def test_tile_images_and_grid_captions(qtbot):
    x = np.random.default_rng(0).random((5, 1, 4, 4)).astype(np.float32)
    m = tile_images(x, nrow=3, pad=1)
    assert m.shape == (2 * 5 + 1, 3 * 5 + 1)
    g = ImageGridView(pad=1)
    qtbot.addWidget(g)
    g.set_images(x, nrow=3, captions=["1, 90 %"] * 5, immediate=True)
    assert g.captions() == ["1, 90 %"] * 5 and g.mosaic.shape == m.shape
    assert g.tile_at(1.5, 1.5) == 0 and g.tile_at(6.5, 6.5) == 4 and g.tile_at(11.5, 6.5) is None


def test_number_edit_messages(qtbot):
    e = NumberEdit("lr", 1e-3, float, 0, 1, exclusive_min=True)
    qtbot.addWidget(e)
    assert e.value() == 1e-3
    e.setText("0")
    assert "lr=0 must be > 0" == e.error()
    e.setText("2e-4")
    assert e.value() == 2e-4
    opt = NumberEdit("EMA rate", None, float, 0, 1, optional=True)
    assert opt.value() is None and opt.error() is None
    i = NumberEdit("n", 3, int, 1)
    i.setText("2.5")
    assert "not an integer" in i.error()


def test_widgets_and_jobs_do_not_import_torch():
    """Widgets only display numbers and arrays (DESIGN §3): importing them must not load torch."""
    import subprocess
    import sys
    code = ("import importlib, pkgutil, sys, studio.jobs, studio.widgets\n"
            "for m in pkgutil.iter_modules(studio.widgets.__path__, 'studio.widgets.'):\n"
            "    importlib.import_module(m.name)\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**__import__("os").environ, "QT_QPA_PLATFORM": "offscreen"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
