"""The live loss plot: raw curve faint, a causal debiased EMA over it, true log-y, x as step or wall time,
and a readout of the values under the cursor. Curves are created once and updated with setData."""
from __future__ import annotations

import math
from typing import List, Optional, Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QCheckBox, QComboBox, QHBoxLayout, QLabel, QSlider, QVBoxLayout, QWidget

REPAINT_MS = 33


def ema_smooth(y: Sequence[float], beta: float) -> np.ndarray:
    """Causal, debiased EMA: s_t = b s_{t-1} + (1-b) y_t with s_0 = 0, reported as s_t / (1 - b^t)
    (t counts the finite values seen; NaNs are skipped and repeat the last smoothed value)."""
    y = np.asarray(y, dtype=np.float64)
    out = np.full(len(y), np.nan)
    s, t = 0.0, 0
    for k, v in enumerate(y):
        if math.isfinite(v):
            t += 1
            s = beta * s + (1 - beta) * v
        if t:
            out[k] = s / (1 - beta ** t) if beta > 0 else s
    return out


class LogAxis(pg.AxisItem):
    """A log axis labelled with plain numbers at 1, 2 and 5 x 10^k only (pyqtgraph labels every minor tick,
    "4·10²", which crowds a short axis); the other minor ticks stay as unlabelled marks."""

    def logTickStrings(self, values, scale, spacing):
        out = []
        for v in values:
            x = 10 ** float(v) * scale
            if not math.isfinite(x) or x <= 0:
                out.append("")
                continue
            mant = x / 10 ** math.floor(math.log10(x) + 1e-9)
            out.append(f"{x:.6g}" if min(abs(mant - m) for m in (1, 2, 5)) < 1e-3 else "")
        return out


class _EMA:
    """The same smoother, one value at a time (live updates are O(1) per point)."""

    def __init__(self, beta: float):
        self.beta, self.s, self.t = beta, 0.0, 0

    def push(self, v: float) -> float:
        if math.isfinite(v):
            self.t += 1
            self.s = self.beta * self.s + (1 - self.beta) * v
        if not self.t:
            return math.nan
        return self.s / (1 - self.beta ** self.t) if self.beta > 0 else self.s


def palette_pens(widget: QWidget):
    pal = widget.palette()
    fg = pal.color(QPalette.ColorRole.WindowText)
    hi = pal.color(QPalette.ColorRole.Highlight)
    faint = QColor(fg)
    faint.setAlpha(70)
    return fg, hi, faint


class LossPlot(QWidget):
    """append(step, elapsed_s, loss) as TrainStep events arrive; set_history(...) to show a finished run."""

    beta_changed = Signal(float)

    def __init__(self, parent: Optional[QWidget] = None, title: str = "DSM loss"):
        super().__init__(parent)
        self.steps: List[float] = []
        self.times: List[float] = []
        self.losses: List[float] = []
        self.smoothed: List[float] = []
        self.beta = 0.9
        self._ema = _EMA(self.beta)
        self._dirty = False
        self.x_mode = "step"

        self.plot_widget = pg.PlotWidget(axisItems={"left": LogAxis("left")})
        self.plot: pg.PlotItem = self.plot_widget.getPlotItem()
        self.plot.setTitle(title)
        self.plot.showGrid(x=True, y=True, alpha=0.25)
        self.plot.getAxis("bottom").enableAutoSIPrefix(False)
        self.plot.setClipToView(True)
        self.plot.setDownsampling(auto=True, mode="peak")
        self.raw_curve = self.plot.plot([], [], name="raw")
        self.smooth_curve = self.plot.plot([], [], name="smoothed")
        self.cursor_line = pg.InfiniteLine(angle=90, movable=False)
        self.cursor_line.setVisible(False)
        self.plot.addItem(self.cursor_line, ignoreBounds=True)

        self.x_combo = QComboBox()
        self.x_combo.addItems(["step", "wall time"])
        self.x_combo.setToolTip("x axis: training step or wall-clock time since the start")
        self.x_combo.currentTextChanged.connect(self._on_x_mode)
        self.log_box = QCheckBox("log y")
        self.log_box.setChecked(True)
        self.log_box.toggled.connect(self._on_log)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, 99)  # beta = value / 100
        self.slider.setValue(90)
        self.slider.setMaximumWidth(140)
        self.slider.setToolTip("Smoothing b of the debiased EMA s_t = b s_(t-1) + (1-b) y_t, shown as s_t/(1-b^t)")
        self.slider.valueChanged.connect(lambda v: self.set_beta(v / 100))
        self.beta_label = QLabel()
        self.readout = QLabel(" ")
        self.readout.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        bar = QHBoxLayout()
        bar.addWidget(QLabel("x:"))
        bar.addWidget(self.x_combo)
        bar.addWidget(self.log_box)
        bar.addSpacing(12)
        bar.addWidget(QLabel("smoothing:"))
        bar.addWidget(self.slider)
        bar.addWidget(self.beta_label)
        bar.addStretch(1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(bar)
        lay.addWidget(self.plot_widget, 1)
        lay.addWidget(self.readout)

        self.plot.setLogMode(y=True)
        self._update_labels()
        self.apply_palette()
        self._mouse_proxy = pg.SignalProxy(self.plot_widget.scene().sigMouseMoved, rateLimit=30,
                                           slot=self._on_mouse_moved)
        self._timer = QTimer(self)
        self._timer.setInterval(REPAINT_MS)
        self._timer.timeout.connect(self._flush)
        self._timer.start()
        self._update_beta_label()

    # --- data ----------------------------------------------------------------------------------
    def append(self, step: float, elapsed_s: float, loss: float) -> None:
        self.steps.append(float(step))
        self.times.append(float(elapsed_s))
        self.losses.append(float(loss))
        self.smoothed.append(self._ema.push(float(loss)))
        self._dirty = True

    def set_history(self, steps: Sequence[float], times: Sequence[float], losses: Sequence[float]) -> None:
        self.steps, self.times, self.losses = [float(v) for v in steps], [float(v) for v in times], \
            [float(v) for v in losses]
        self._resmooth()
        self._dirty = True
        self._flush()

    def clear(self) -> None:
        self.set_history([], [], [])
        self.readout.setText(" ")

    def set_beta(self, beta: float) -> None:
        beta = float(min(max(beta, 0.0), 0.99))
        if beta == self.beta:
            return
        self.beta = beta
        if self.slider.value() != round(beta * 100):
            self.slider.setValue(round(beta * 100))
        self._resmooth()
        self._update_beta_label()
        self._dirty = True
        self.beta_changed.emit(beta)

    def _resmooth(self) -> None:
        self._ema = _EMA(self.beta)
        self.smoothed = [self._ema.push(v) for v in self.losses]

    def x_data(self) -> np.ndarray:
        return np.asarray(self.steps if self.x_mode == "step" else self.times, dtype=np.float64)

    # --- drawing -------------------------------------------------------------------------------
    def _flush(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        x = self.x_data()
        y = np.asarray(self.losses, dtype=np.float64)
        s = np.asarray(self.smoothed, dtype=np.float64)
        if self.log_box.isChecked():  # log of non-positive values is undefined: leave gaps there
            y = np.where(y > 0, y, np.nan)
            s = np.where(s > 0, s, np.nan)
        self.raw_curve.setData(x, y, connect="finite")
        self.smooth_curve.setData(x, s, connect="finite")

    def _on_x_mode(self, text: str) -> None:
        self.x_mode = "step" if text == "step" else "time"
        self._update_labels()
        self._dirty = True
        self._flush()
        self.plot.enableAutoRange()

    def _on_log(self, on: bool) -> None:
        self.plot.setLogMode(y=on)
        self._update_labels()
        self._dirty = True
        self._flush()
        self.plot.enableAutoRange()

    def _update_labels(self) -> None:
        self.plot.setLabel("bottom", "step" if self.x_mode == "step" else "wall time", units=None if
                           self.x_mode == "step" else "s")
        self.plot.setLabel("left", "loss" + (" (log scale)" if self.log_box.isChecked() else ""))

    def _update_beta_label(self) -> None:
        self.beta_label.setText(f"b = {self.beta:.2f}")

    def apply_palette(self) -> None:
        fg, hi, faint = palette_pens(self)
        pal = self.palette()
        self.plot_widget.setBackground(pal.color(QPalette.ColorRole.Base))
        for axis in ("left", "bottom"):
            ax = self.plot.getAxis(axis)
            ax.setPen(fg)
            ax.setTextPen(fg)
        self.plot.titleLabel.setText(self.plot.titleLabel.text, color=fg.name())
        self.raw_curve.setPen(pg.mkPen(faint, width=1))
        self.smooth_curve.setPen(pg.mkPen(hi, width=2))
        self.cursor_line.setPen(pg.mkPen(faint, width=1, style=Qt.PenStyle.DashLine))

    def changeEvent(self, event) -> None:
        super().changeEvent(event)
        if event.type() == event.Type.PaletteChange and hasattr(self, "smooth_curve"):
            self.apply_palette()

    def _on_mouse_moved(self, args) -> None:
        pos = args[0]
        if not self.plot.sceneBoundingRect().contains(pos) or not self.steps:
            self.cursor_line.setVisible(False)
            return
        x = self.plot.vb.mapSceneToView(pos).x()
        self.readout.setText(self.readout_at(x))

    def readout_at(self, x: float) -> str:
        """Text for the point nearest to x (in the current x units); moves the cursor line there."""
        xs = self.x_data()
        if not len(xs):
            return " "
        k = int(np.clip(np.searchsorted(xs, x), 0, len(xs) - 1))
        if k > 0 and abs(xs[k - 1] - x) < abs(xs[k] - x):
            k -= 1
        self.cursor_line.setPos(xs[k])
        self.cursor_line.setVisible(True)
        t = self.times[k]
        return (f"step {int(self.steps[k])}   time {t:.1f} s   loss {self.losses[k]:.4g}   "
                f"smoothed {self.smoothed[k]:.4g}")
