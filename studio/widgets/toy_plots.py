"""The 2-D toy lab's plots: particles over the density, the share of each mode, and the score field as arrows."""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import (QCheckBox, QGridLayout, QGroupBox, QHBoxLayout, QLabel, QSizePolicy, QSlider,
                               QVBoxLayout, QWidget)

VIEW = 10.0           # the particle plots show [-VIEW, VIEW]^2 (zoom out with the mouse to see more)
LOWER_LEFT = QColor(80, 200, 255)
UPPER_RIGHT = QColor(255, 170, 60)


def box(title: str, *widgets: QWidget) -> QGroupBox:
    """A titled group holding `widgets` top to bottom, the first one stretching."""
    g = QGroupBox(title)
    lay = QVBoxLayout(g)
    lay.setContentsMargins(4, 4, 4, 4)
    for k, w in enumerate(widgets):
        lay.addWidget(w, 1 if k == 0 else 0)
    return g


def set_heat_map(item: pg.ImageItem, density: np.ndarray, box_size: float) -> None:
    """Show a (rows = y, cols = x) density over [-box_size, box_size]^2, levels from 0 to its maximum."""
    item.setImage(density, autoLevels=False, levels=(0.0, float(density.max()) or 1.0))
    item.setRect(QRectF(-box_size, -box_size, 2 * box_size, 2 * box_size))  # pyqtgraph needs the image first


def heat_map() -> pg.ImageItem:
    img = pg.ImageItem(axisOrder="row-major")
    img.setColorMap(pg.colormap.get("inferno"))
    return img


def quiver_segments(points: np.ndarray, vectors: np.ndarray, scale: float, head: float = 0.3) -> np.ndarray:
    """Line pairs for arrows: shaft and two head strokes per arrow, as (6M, 2) points for connect='pairs'."""
    tips = points + vectors * scale
    d = tips - points
    length = np.linalg.norm(d, axis=1, keepdims=True)
    u = d / np.maximum(length, 1e-9)
    n = np.stack([-u[:, 1], u[:, 0]], axis=1)
    h = np.minimum(length, 1.0) * head
    left, right = tips - u * h + n * h * 0.6, tips - u * h - n * h * 0.6
    out = np.empty((len(points) * 6, 2), np.float32)
    out[0::6], out[1::6] = points, tips
    out[2::6], out[3::6] = tips, left
    out[4::6], out[5::6] = tips, right
    return out


class ModeBar(QWidget):
    """A bar split into the lower-left and upper-right shares, with a tick at the true share (1/5)."""

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self._fraction: Optional[float] = None
        self._truth = 0.2
        self.setMinimumHeight(22)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def set_fraction(self, lower_left: Optional[float], truth: Optional[float] = None) -> None:
        self._fraction = lower_left
        if truth is not None:
            self._truth = truth
        self.update()

    def fraction(self) -> Optional[float]:
        return self._fraction

    def text(self) -> str:
        if self._fraction is None:
            return "lower-left –   ·   upper-right –"
        f = self._fraction
        return f"lower-left {100 * f:.1f}%   ·   upper-right {100 * (1 - f):.1f}%"

    def sizeHint(self) -> QSize:
        return QSize(300, 22)

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt override
        p = QPainter(self)
        r = self.rect().adjusted(0, 0, -1, -1)
        p.fillRect(r, self.palette().base())
        if self._fraction is not None:
            wl = int(round(r.width() * self._fraction))
            p.fillRect(r.x(), r.y(), wl, r.height(), LOWER_LEFT)
            p.fillRect(r.x() + wl, r.y(), r.width() - wl, r.height(), UPPER_RIGHT)
        xt = r.x() + int(round(r.width() * self._truth))
        p.setPen(Qt.GlobalColor.black)
        p.drawLine(xt, r.y(), xt, r.bottom())
        p.drawText(r, Qt.AlignmentFlag.AlignCenter, self.text())
        p.setPen(self.palette().mid().color())
        p.drawRect(r)
        p.end()


class ParticlePlot(QWidget):
    """Particles over the density of the level they are at, coloured by mode, with a bar of each mode's share."""

    def __init__(self, title: str, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.plot = pg.PlotWidget()
        self.plot.setTitle(title, size="9pt")
        self.plot.setAspectLocked(True)
        self.plot.setRange(xRange=(-VIEW, VIEW), yRange=(-VIEW, VIEW), padding=0)
        self.plot.showGrid(x=False, y=False)
        self.density = heat_map()
        self.density.setOpacity(0.85)
        self.plot.addItem(self.density)
        self.lower_left = pg.ScatterPlotItem(size=3, pen=None, brush=pg.mkBrush(LOWER_LEFT))
        self.upper_right = pg.ScatterPlotItem(size=3, pen=None, brush=pg.mkBrush(UPPER_RIGHT))
        self.plot.addItem(self.lower_left)
        self.plot.addItem(self.upper_right)
        # the line x + y = 0 that lower_left_fraction counts against
        self.plot.addItem(pg.PlotDataItem([-3 * VIEW, 3 * VIEW], [3 * VIEW, -3 * VIEW],
                                          pen=pg.mkPen((255, 255, 255, 90), width=1, style=Qt.PenStyle.DashLine)))
        label = pg.TextItem("x + y = 0: lower-left below", color=(200, 200, 200), anchor=(0, 0.5), angle=-45)
        label.setPos(-VIEW + 1.2, VIEW - 0.6)
        self.plot.addItem(label)
        self.bar = ModeBar(self)
        self.bar.setToolTip("Share of particles below the line x + y = 0; the tick marks the truth (20%)")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.plot, 1)
        lay.addWidget(self.bar)

    def show_particles(self, x: np.ndarray, lower_left: float) -> None:
        """x: (N, 2) particle positions; lower_left: their share below x + y = 0."""
        low = x.sum(axis=1) < 0
        self.lower_left.setData(x[low, 0], x[low, 1])
        self.upper_right.setData(x[~low, 0], x[~low, 1])
        self.bar.set_fraction(lower_left)

    def outside_view(self, x: np.ndarray) -> int:
        return int((np.abs(x) > VIEW).any(axis=1).sum())


class FieldView(QWidget):
    """The density p_sigma and its score field at one level (0 = the data): the exact score as arrows, and a
    learned one over it; a slider picks the level, which can follow the annealed chain."""

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.field = None            # jobs.ToyField
        self.report = None           # jobs.ToyTraining: the learned field and its errors
        self.plot = pg.PlotWidget()
        self.plot.setAspectLocked(True)
        self.density = heat_map()
        self.plot.addItem(self.density)
        self.exact_arrows = pg.PlotDataItem(connect="pairs", pen=pg.mkPen((235, 235, 235, 200), width=2.5))
        self.learned_arrows = pg.PlotDataItem(connect="pairs", pen=pg.mkPen((0, 230, 160), width=1.2))
        self.plot.addItem(self.exact_arrows)
        self.plot.addItem(self.learned_arrows)
        legend = self.plot.addLegend(offset=(5, 5), brush=pg.mkBrush(0, 0, 0, 170))
        legend.addItem(self.exact_arrows, "exact score")
        legend.addItem(self.learned_arrows, "learned score")
        self.level_slider = QSlider(Qt.Orientation.Horizontal)
        self.level_slider.setToolTip("Which noise level the heat map and arrows show (0 = the data, σ = 0)")
        self.level_slider.setRange(0, 0)
        self.follow_check = QCheckBox("follow the annealed chain")
        self.follow_check.setChecked(True)
        self.field_label = QLabel()
        self.field_label.setMinimumWidth(self.field_label.fontMetrics().horizontalAdvance("level 10/10: σ = 13.8 "))
        self.error_label = QLabel()
        self.error_label.setWordWrap(True)
        self.error_label.setToolTip("field_error: mean |s_θ − s| / mean |s| on a 41×41 grid, split where "
                                    "p_σ is above 1/1000 of its maximum (high density) or below (low density)")
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.field_label)
        row.addWidget(self.level_slider, 1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.plot, 1)
        lay.addLayout(row)
        lay.addWidget(self.follow_check)
        lay.addWidget(self.error_label)
        self.level_slider.valueChanged.connect(lambda _v: self.draw())

    def set_field(self, field) -> None:
        """A new jobs.ToyField; the first one opens at the data-like last level."""
        first = self.field is None
        self.field = field
        L = len(field.sigmas)
        b = field.box
        self.plot.setRange(xRange=(-b, b), yRange=(-b, b), padding=0)
        self.level_slider.blockSignals(True)
        self.level_slider.setRange(0, L)
        self.level_slider.setValue(L if first else min(self.level_slider.value(), L))
        self.level_slider.blockSignals(False)
        self.draw()

    def follow(self, level: int) -> None:
        """The annealed chain reached `level` (1-based): show it too, unless the user unticked following."""
        if self.follow_check.isChecked() and self.level_slider.value() != level:
            self.level_slider.setValue(level)

    def draw(self) -> None:
        f, r = self.field, self.report
        if f is None:
            return
        j = self.level_slider.value()  # 0 = data, i = level i (1-based)
        set_heat_map(self.density, f.density[j], f.box)
        ex = f.exact[j]
        spacing = 2 * f.box / np.sqrt(len(f.points))
        scale = 0.9 * spacing / max(float(np.percentile(np.linalg.norm(ex, axis=1), 95)), 1e-9)  # one for both
        self.exact_arrows.setData(quiver_segments(f.points, ex, scale))
        if j >= 1 and r is not None and r.learned.shape[0] == len(f.sigmas):
            self.learned_arrows.setData(quiver_segments(f.points, r.learned[j - 1], scale))
            self.error_label.setText(f"Learned-field error at σ_{j}: high-density regions <b>"
                                     f"{100 * r.high_error[j - 1]:.0f}%</b>, low-density regions <b>"
                                     f"{100 * r.low_error[j - 1]:.0f}%</b> (iteration {r.step:,})")
        else:
            self.learned_arrows.setData([], [])
            self.error_label.setText("Train the MLP to compare its field with the exact one." if j >= 1 else
                                     "σ = 0: the data's own score (the learned network has no σ = 0 level).")
        self.field_label.setText("data (σ = 0)" if j == 0 else f"level {j}/{len(f.sigmas)}: σ = "
                                 f"{f.sigmas[j - 1]:.3g}")

    def arrow_data(self) -> Tuple[np.ndarray, np.ndarray]:
        """The exact and learned quiver segments as drawn ((6M, 2) each; learned empty before training)."""
        def xy(item):
            x, y = item.getData()
            return np.empty((0, 2)) if x is None else np.stack([x, y], axis=1)
        return xy(self.exact_arrows), xy(self.learned_arrows)


EXPLANATION = (
    "<b>Why annealing works.</b> The data are 1/5 N((\u22125,\u22125), I) + 4/5 N((5,5), I). The score \u2207log p only "
    "points to the nearest mode and the density between the modes is nearly zero, so under plain Langevin "
    "no particle crosses: each mode keeps the share that started near it (about 1/2), not the true 1/5. "
    "Score matching is blind there too: the learned field is worst in low-density regions. Annealed "
    "Langevin starts on heavily noised data (\u03c3\u2081 = 20), where the modes merge into one blob that the "
    "particles share by weight; as \u03c3 shrinks each particle follows its mode and the 1 : 4 split survives. "
    "\u03b1_i = \u03b5\u00b7\u03c3_i\u00b2/\u03c3_L\u00b2 makes each level mix in the same T steps.")


class ToyPlots(QWidget):
    """The lab's right-hand side: plain and annealed particles, the field, the share of the lower-left mode over
    the steps, what to look for, and the MLP's training loss."""

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.plain = ParticlePlot("particles start uniform in [\u22128, 8]\u00b2: press Run")
        self.annealed = ParticlePlot("\u03c3\u2081 \u2192 \u03c3_L, T steps per level")
        self.field = FieldView()
        self.frac_plot = pg.PlotWidget()
        self.frac_plot.setYRange(0, 1, padding=0.02)
        self.frac_plot.setLabel("bottom", "step")
        self.truth_line = pg.InfiniteLine(0.2, angle=0, pen=pg.mkPen((200, 200, 200), style=Qt.PenStyle.DashLine),
                                          label="truth 0.2", labelOpts={"position": 0.08, "color": (200, 200, 200)})
        self.frac_plot.addItem(self.truth_line)
        self.frac_plot.addLegend(offset=(-5, 5), brush=pg.mkBrush(0, 0, 0, 170))
        self.plain_curve = self.frac_plot.plot(pen=pg.mkPen((180, 180, 180), width=2), name="plain")
        self.ann_curve = self.frac_plot.plot(pen=pg.mkPen((0, 230, 160), width=2), name="annealed")
        self.loss_plot = pg.PlotWidget()
        self.loss_plot.setLabel("bottom", "iteration")
        self.loss_curve = self.loss_plot.plot(pen=pg.mkPen((255, 120, 120), width=2), symbol="o", symbolSize=4)
        explanation = QLabel(EXPLANATION)
        explanation.setWordWrap(True)
        explanation.setTextFormat(Qt.TextFormat.RichText)
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.addWidget(box("Plain Langevin: x \u2190 x + \u03b5/2\u00b7\u2207log p(x) + \u221a\u03b5\u00b7z", self.plain), 0, 0)
        grid.addWidget(box("Annealed Langevin (Algorithm 1)", self.annealed), 0, 1)
        grid.addWidget(box("Density p_\u03c3 and score field \u2207log p_\u03c3", self.field), 0, 2)
        grid.addWidget(box("Lower-left share of the particles (truth: 1/5)", self.frac_plot), 1, 0)
        grid.addWidget(box("What to look for", explanation), 1, 1)
        grid.addWidget(box("Learned score: training loss", self.loss_plot), 1, 2)
        for col in range(3):
            grid.setColumnStretch(col, 1)
        grid.setRowStretch(0, 3)
        grid.setRowStretch(1, 2)
        self._frame_shown = False

    def show_field(self, field) -> None:
        """A new jobs.ToyField: the density under the particles and in the field view, the true share."""
        self.field.set_field(field)
        set_heat_map(self.plain.density, field.density[0], field.box)
        if not self._frame_shown:  # before a run the annealed side shows the top level
            set_heat_map(self.annealed.density, field.density[1], field.box)
        self.truth_line.setValue(field.true_lower_left)
        for p in (self.plain, self.annealed):
            p.bar.set_fraction(p.bar.fraction(), field.true_lower_left)

    def start_chains(self, total_steps: int) -> None:
        self.plain_curve.setData([], [])
        self.ann_curve.setData([], [])
        self.frac_plot.setXRange(0, total_steps, padding=0.02)

    def show_frame(self, f, history: np.ndarray) -> None:
        """A jobs.ToyFrame, and (global step, plain share, annealed share) rows of every frame so far."""
        self._frame_shown = True
        self.plain.show_particles(f.plain, f.plain_lower_left)
        self.annealed.show_particles(f.annealed, f.annealed_lower_left)
        out = self.annealed.outside_view(f.annealed)
        self.annealed.plot.setTitle(f"level {f.level + 1}/{f.n_levels} \u00b7 \u03c3 = {f.sigma:.3g} \u00b7 \u03b1 = "
                                    f"{f.step_size:.3g}" + (f" \u00b7 {out} outside" if out else ""), size="9pt")
        self.plain.plot.setTitle(f"step {f.global_step}/{f.total_steps} \u00b7 step size \u03b5 = "
                                 f"{f.plain_step_size:g}", size="9pt")
        field = self.field.field
        if field is not None and f.level + 1 < len(field.density):
            set_heat_map(self.annealed.density, field.density[f.level + 1], field.box)
            self.field.follow(f.level + 1)
        self.plain_curve.setData(history[:, 0], history[:, 1])
        self.ann_curve.setData(history[:, 0], history[:, 2])

    def start_training(self, n_iters: int) -> None:
        self.field.report = None
        self.loss_curve.setData([], [])
        self.loss_plot.setXRange(0, n_iters, padding=0.02)

    def show_training(self, report, losses: np.ndarray) -> None:
        """A jobs.ToyTraining report (the learned field) and (iteration, loss) rows so far."""
        self.field.report = report
        self.loss_curve.setData(losses[:, 0], losses[:, 1])
        self.field.draw()
