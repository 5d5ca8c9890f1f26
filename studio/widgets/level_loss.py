"""Loss per noise level: one curve per sigma_i (viridis, sigma_1 dark to sigma_L bright), EMA-smoothed
like the main curve, log-y. Curves are created once per ladder and updated with setData."""
from __future__ import annotations

import math
from typing import List, Optional, Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QTimer
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QVBoxLayout, QWidget

from .loss_plot import REPAINT_MS, LogAxis, ema_smooth, palette_pens


class LevelLossPlot(QWidget):
    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.plot_widget = pg.PlotWidget(axisItems={"left": LogAxis("left")})
        self.plot: pg.PlotItem = self.plot_widget.getPlotItem()
        self.plot.setTitle("loss per noise level σ_i (smoothed)")
        self.plot.showGrid(x=True, y=True, alpha=0.25)
        self.plot.getAxis("bottom").enableAutoSIPrefix(False)
        self.plot.setLogMode(y=True)
        self.plot.setClipToView(True)
        self.plot.setDownsampling(auto=True, mode="peak")
        self.plot.setLabel("bottom", "step")
        self.plot.setLabel("left", "loss (log scale)")
        self.legend = self.plot.addLegend(offset=(-4, 4), colCount=2, labelTextSize="7pt")
        self.curves: List[pg.PlotDataItem] = []
        self.sigmas: Sequence[float] = ()
        self.steps: List[float] = []
        self.values: List[List[float]] = []
        self.beta = 0.9
        self._dirty = False
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.plot_widget)
        self.apply_palette()
        self._timer = QTimer(self)
        self._timer.setInterval(REPAINT_MS)
        self._timer.timeout.connect(self._flush)
        self._timer.start()

    def set_sigmas(self, sigmas: Sequence[float]) -> None:
        """(Re)create one curve per level; clears the data."""
        self.sigmas = tuple(float(s) for s in sigmas)
        for c in self.curves:
            self.plot.removeItem(c)
            self.legend.removeItem(c)
        self.curves = []
        cmap = pg.colormap.get("viridis")
        L = len(self.sigmas)
        for i, s in enumerate(self.sigmas):
            color = cmap.map(0.1 + 0.85 * i / max(L - 1, 1), mode="qcolor")
            self.curves.append(self.plot.plot([], [], pen=pg.mkPen(color, width=1.5), name=f"σ{i + 1}={s:.3g}"))
        self.steps, self.values = [], [[] for _ in self.sigmas]
        self._dirty = True

    def append(self, step: float, per_sigma: Sequence[float]) -> None:
        if len(per_sigma) != len(self.curves):
            self.set_sigmas(self.sigmas if len(self.sigmas) == len(per_sigma) else
                            [math.nan] * len(per_sigma))
        self.steps.append(float(step))
        for i, v in enumerate(per_sigma):
            self.values[i].append(math.nan if v is None else float(v))
        self._dirty = True

    def set_history(self, steps: Sequence[float], per_sigma_rows: Sequence[Sequence[float]]) -> None:
        if per_sigma_rows and len(per_sigma_rows[0]) != len(self.curves):
            self.set_sigmas(self.sigmas if len(self.sigmas) == len(per_sigma_rows[0]) else
                            [math.nan] * len(per_sigma_rows[0]))
        self.steps = [float(s) for s in steps]
        self.values = [[math.nan if r[i] is None else float(r[i]) for r in per_sigma_rows]
                       for i in range(len(self.curves))]
        self._dirty = True
        self._flush()

    def set_beta(self, beta: float) -> None:
        self.beta = beta
        self._dirty = True

    def _flush(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        x = np.asarray(self.steps)
        for c, v in zip(self.curves, self.values):
            s = ema_smooth(v, self.beta)
            c.setData(x, np.where(s > 0, s, np.nan), connect="finite")

    def apply_palette(self) -> None:
        fg, _, _ = palette_pens(self)
        self.plot_widget.setBackground(self.palette().color(QPalette.ColorRole.Base))
        for axis in ("left", "bottom"):
            ax = self.plot.getAxis(axis)
            ax.setPen(fg)
            ax.setTextPen(fg)
        self.plot.titleLabel.setText(self.plot.titleLabel.text, color=fg.name())
        self.legend.setLabelTextColor(fg)
        bg = self.palette().color(QPalette.ColorRole.Base)
        bg.setAlpha(200)
        self.legend.setBrush(pg.mkBrush(bg))   # readable over the curves

    def changeEvent(self, event) -> None:
        super().changeEvent(event)
        if event.type() == event.Type.PaletteChange and hasattr(self, "legend"):
            self.apply_palette()
