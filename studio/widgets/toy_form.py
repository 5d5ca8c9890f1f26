"""The 2-D toy experiment's settings, bound to ncsn_core.config.ToySettings: the noise ladder and the chains."""
from __future__ import annotations

from typing import Optional, Tuple

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QComboBox, QDoubleSpinBox, QFormLayout, QGroupBox, QLabel, QSpinBox, QVBoxLayout,
                               QWidget)

from ncsn_core.config import ConfigError, ToySettings


class ToyForm(QWidget):
    """Three groups: `ladder_box` (sigma_1, sigma_L, L), `langevin_box` (step size, T, particles, seed, which
    score, speed) and `learned_box` (the MLP's objective and iterations); the tab adds its run controls below
    the last two. `settings()` is the engine's ToySettings the form describes: plain Langevin makes L*T steps
    of eps, annealed Langevin T steps per level with alpha_i = eps * sigma_i^2 / sigma_L^2 (paper, Fig. 3).
    `changed()` after every edit of the experiment."""

    changed = Signal()

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        d = ToySettings()
        self.sigma_begin_spin = self._spin(0.05, 100, d.sigma_begin, "\u03c3\u2081: the largest noise scale", 2, 1.0)
        self.sigma_end_spin = self._spin(0.01, 50, d.sigma_end, "\u03c3_L: the smallest noise scale", 3, 0.1)
        self.levels_spin = self._spin(1, 50, d.num_classes, "L: number of noise levels (geometric ladder)")
        self.ladder_label = QLabel()
        self.ladder_label.setWordWrap(True)
        self.ladder_label.setStyleSheet("color: palette(placeholder-text);")
        self.step_lr_spin = self._spin(1e-4, 10, d.step_lr, "\u03b5: \u03b1_i = \u03b5\u00b7\u03c3_i\u00b2/\u03c3_L\u00b2; "
                                       "plain Langevin uses the step \u03b5 (= \u03b1_L)", 4, 0.01)
        self.t_spin = self._spin(1, 5000, d.n_steps_each, "T: steps per level; plain Langevin makes L\u00b7T steps")
        self.particles_spin = self._spin(10, 20000, d.n_particles, "Particles, started uniformly in [\u22128, 8]\u00b2")
        self.seed_spin = self._spin(0, 2_147_483_647, d.seed, "The same seed gives the same particles")
        self.score_combo = QComboBox()
        self.score_combo.addItems(["exact score", "learned score (MLP)"])
        self.score_combo.setToolTip("Which score the chains follow; train the MLP below to use a learned one")
        self.score_combo.currentIndexChanged.connect(self._on_changed)
        self.speed_combo = QComboBox()
        self.speed_combo.addItems(["watchable (\u2248 10 s)", "as fast as possible"])
        self.speed_combo.setToolTip("Watchable slows the chains down so that you can follow the particles")
        self.loss_combo = QComboBox()
        for text, loss in (("DSM (denoising)", "dsm"), ("SSM (sliced)", "ssm"),
                           ("SSM-VR (sliced, variance reduced)", "ssm_vr")):
            self.loss_combo.addItem(text, loss)
        self.iters_spin = QSpinBox()
        self.iters_spin.setRange(100, 50000)
        self.iters_spin.setSingleStep(500)
        self.iters_spin.setValue(2000)
        self.iters_spin.setToolTip("Adam steps on batches of 256 mixture samples (a report every 100)")

        self.ladder_box = QGroupBox("Noise ladder \u03c3\u2081 > \u2026 > \u03c3_L")
        f1 = QFormLayout(self.ladder_box)
        f1.addRow("\u03c3\u2081", self.sigma_begin_spin)
        f1.addRow("\u03c3_L", self.sigma_end_spin)
        f1.addRow("L", self.levels_spin)
        f1.addRow(self.ladder_label)
        self.langevin_box = QGroupBox("Langevin")
        f2 = QFormLayout()
        f2.addRow("Step \u03b5 (step_lr)", self.step_lr_spin)
        f2.addRow("Steps per level T", self.t_spin)
        f2.addRow("Particles", self.particles_spin)
        f2.addRow("Seed", self.seed_spin)
        f2.addRow("Score", self.score_combo)
        f2.addRow("Speed", self.speed_combo)
        QVBoxLayout(self.langevin_box).addLayout(f2)
        self.learned_box = QGroupBox("Learned score (noise-conditional MLP)")
        f3 = QFormLayout()
        f3.addRow("Objective", self.loss_combo)
        f3.addRow("Iterations", self.iters_spin)
        QVBoxLayout(self.learned_box).addLayout(f3)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        for g in (self.ladder_box, self.langevin_box, self.learned_box):
            lay.addWidget(g)
        self._on_changed()

    def _spin(self, lo, hi, value, tip: str, decimals: Optional[int] = None, step: float = 1.0):
        """A spin box (a double one when `decimals` is given) that reports its edits as changed()."""
        s = QSpinBox() if decimals is None else QDoubleSpinBox()
        if decimals is not None:
            s.setDecimals(decimals)
            s.setSingleStep(step)
        s.setRange(lo, hi)
        s.setValue(value)
        s.setToolTip(tip)
        s.setKeyboardTracking(False)
        s.valueChanged.connect(self._on_changed)
        return s

    def settings(self) -> ToySettings:
        """The experiment the form describes; ConfigError (the engine's message) when it is not possible."""
        L, T, eps = self.levels_spin.value(), self.t_spin.value(), self.step_lr_spin.value()
        return ToySettings(n_particles=self.particles_spin.value(), langevin_step_size=eps, langevin_n_steps=L * T,
                           sigma_begin=self.sigma_begin_spin.value(), sigma_end=self.sigma_end_spin.value(),
                           num_classes=L, step_lr=eps, n_steps_each=T, seed=self.seed_spin.value())

    def set_busy(self, chains: bool, training: bool) -> None:
        """While the chains run their settings are fixed; while the MLP trains, the ladder and its training's."""
        self.ladder_box.setEnabled(not chains and not training)
        for w in (self.step_lr_spin, self.t_spin, self.particles_spin, self.seed_spin, self.score_combo,
                  self.speed_combo):
            w.setEnabled(not chains)
        self.loss_combo.setEnabled(not training)
        self.iters_spin.setEnabled(not training)

    def learned(self) -> bool:
        """Whether the chains should follow the learned score instead of the exact one."""
        return self.score_combo.currentIndex() == 1

    def pacing(self) -> Tuple[int, float]:
        """(frames per level, seconds to sleep after each frame): about 10 s in all when watchable."""
        if self.speed_combo.currentIndex() == 1:
            return 10, 0.0
        n_frames = self.levels_spin.value() * min(self.t_spin.value(), 25)
        return 25, min(0.1, 10.0 / max(n_frames, 1))

    def _on_changed(self, *_args) -> None:
        if not hasattr(self, "speed_combo"):
            return  # still building
        try:
            s = self.settings()
        except ConfigError:
            self.ladder_label.setText("")
        else:
            lad = s.sigmas()
            shown = ", ".join(f"{v:.3g}" for v in (lad if len(lad) <= 6 else lad[:3] + lad[-2:]))
            if len(lad) > 6:
                shown = shown.replace(f"{lad[2]:.3g}, ", f"{lad[2]:.3g}, \u2026, ", 1)
            self.ladder_label.setText(f"\u03c3: {shown}<br>\u03b1\u2081 = \u03b5\u00b7(\u03c3\u2081/\u03c3_L)\u00b2 = "
                                      f"{s.step_lr * (lad[0] / lad[-1]) ** 2:.3g},  \u03b1_L = \u03b5 = {s.step_lr:g}")
        self.changed.emit()
