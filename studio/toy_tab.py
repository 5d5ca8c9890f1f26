"""2-D toy lab (paper, Sec. 3 and Fig. 2-3): the mixture 1/5 N((-5,-5), I) + 4/5 N((5,5), I), its exact and
learned score fields, and particles under plain vs annealed Langevin side by side: why annealing works."""
from __future__ import annotations

import time
from typing import List, Optional, Tuple

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (QApplication, QComboBox, QFormLayout, QGridLayout, QGroupBox, QHBoxLayout, QLabel,
                               QScrollArea, QSpinBox, QVBoxLayout, QWidget)

from ncsn_core.config import ConfigError, step_size_warning

from . import jobs
from .controller import RunController
from .widgets.run_bar import RunBar
from .widgets.toy_form import ToyForm
from .widgets.toy_plots import FieldView, ParticlePlot, box, set_heat_map
from .worker import GeneratorWorker

EXPLANATION = (
    "<b>Why annealing works.</b> The data are 1/5 N((−5,−5), I) + 4/5 N((5,5), I). The score ∇log p only "
    "points to the nearest mode and the density between the modes is nearly zero, so under plain Langevin "
    "no particle crosses: each mode keeps the share that started near it (about 1/2), not the true 1/5. "
    "Score matching is blind there too: the learned field is worst in low-density regions. Annealed "
    "Langevin starts on heavily noised data (σ₁ = 20), where the modes merge into one blob that the "
    "particles share by weight; as σ shrinks each particle follows its mode and the 1 : 4 split survives. "
    "α_i = ε·σ_i²/σ_L² makes each level mix in the same T steps.")


def _error(text: str) -> str:
    return f"<span style='color:#c0392b'>{text}</span>"


class ToyTab(QWidget):
    """The 2-D toy lab. API used by tests and the main window: ``run()``, ``stop()``, ``train(loss, n_iters)``,
    ``stop_training()``, ``last_frame()``, ``losses()``, ``trained()``; signals ``run_finished``,
    ``training_finished``. ``controller``: the RunController of the chains (one is made when None); the MLP's
    training has its own, the fields (density and exact score) a worker of their own."""

    run_finished = Signal()
    training_finished = Signal()

    def __init__(self, controller: Optional[RunController] = None, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.controller = controller if controller is not None else RunController("toy chains", self)
        self.training = RunController("toy score training", self)
        self._field_worker: Optional[GeneratorWorker] = None
        self._field_pending = False
        self._frame: Optional[jobs.ToyFrame] = None
        self._history: List[Tuple[int, float, float]] = []
        self._losses: List[Tuple[int, float]] = []
        self._trained: Optional[jobs.TrainedScore] = None
        self._dirty: set = set()  # "frame", "training": what waits for the next repaint
        self._t0 = {"chains": 0.0, "training": 0.0}
        self._build()
        self._timer = QTimer(self)
        self._timer.setInterval(33)  # at most ~30 repaints a second, latest state only
        self._timer.timeout.connect(self._on_tick)
        self._timer.start()
        self._field_timer = QTimer(self)
        self._field_timer.setSingleShot(True)
        self._field_timer.setInterval(150)  # settle spin-box edits before recomputing the fields
        self._field_timer.timeout.connect(self._request_fields)
        for c, on_event, on_finished in ((self.controller, self._on_frame, self._on_chains_finished),
                                         (self.training, self._on_train_report, self._on_training_finished)):
            c.state_changed.connect(self._on_settings_changed)
            c.event_emitted.connect(on_event)
            c.finished.connect(on_finished)
        self.controller.errored.connect(lambda m: self.run_bar.status.setText(_error(f"The chains failed: {m}")))
        self.training.errored.connect(lambda m: self.train_bar.status.setText(_error(f"Training failed: {m}")))
        self._on_settings_changed()
        self._request_fields()
        app = QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)

    def _build(self) -> None:
        self.form = ToyForm()
        self.run_bar = RunBar(self.controller, "Run both chains", "Run plain and annealed Langevin side by side")
        self.run_bar.status.setText("level \u2013")
        self.warning_label = QLabel()
        self.warning_label.setWordWrap(True)
        self.warning_label.setStyleSheet("color: #e67e22; font-weight: bold;")
        self.warning_label.hide()
        for w in (self.run_bar, self.run_bar.progress, self.run_bar.status, self.warning_label):
            self.form.langevin_box.layout().addWidget(w)
        self.loss_combo = QComboBox()
        for text, loss in (("DSM (denoising)", "dsm"), ("SSM (sliced)", "ssm"),
                           ("SSM-VR (sliced, variance reduced)", "ssm_vr")):
            self.loss_combo.addItem(text, loss)
        self.iters_spin = QSpinBox()
        self.iters_spin.setRange(100, 50000)
        self.iters_spin.setSingleStep(500)
        self.iters_spin.setValue(2000)
        self.iters_spin.setToolTip("Adam steps on batches of 256 mixture samples (a report every 100)")
        self.train_bar = RunBar(self.training, "Train", "Train the MLP on the current noise ladder")
        self.train_bar.status.setText("Not trained: the learned arrows appear while it trains.")
        learned = QGroupBox("Learned score (noise-conditional MLP)")
        rows = QFormLayout()
        rows.addRow("Objective", self.loss_combo)
        rows.addRow("Iterations", self.iters_spin)
        v3 = QVBoxLayout(learned)
        v3.addLayout(rows)
        for w in (self.train_bar, self.train_bar.progress, self.train_bar.status):
            v3.addWidget(w)
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addWidget(self.form)
        ll.addWidget(learned)
        ll.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(left)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setFixedWidth(350)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)

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

        right = QGridLayout()
        right.addWidget(box("Plain Langevin: x \u2190 x + \u03b5/2\u00b7\u2207log p(x) + \u221a\u03b5\u00b7z", self.plain), 0, 0)
        right.addWidget(box("Annealed Langevin (Algorithm 1)", self.annealed), 0, 1)
        right.addWidget(box("Density p_\u03c3 and score field \u2207log p_\u03c3", self.field), 0, 2)
        right.addWidget(box("Lower-left share of the particles (truth: 1/5)", self.frac_plot), 1, 0)
        right.addWidget(box("What to look for", explanation), 1, 1)
        right.addWidget(box("Learned score: training loss", self.loss_plot), 1, 2)
        for col in range(3):
            right.setColumnStretch(col, 1)
        right.setRowStretch(0, 3)
        right.setRowStretch(1, 2)
        main = QHBoxLayout(self)
        main.addWidget(scroll)
        main.addLayout(right, 1)

        self.form.changed.connect(self._on_settings_changed)
        self.run_bar.run_button.clicked.connect(self.run)
        self.run_bar.stop_button.clicked.connect(self.stop)
        self.train_bar.run_button.clicked.connect(lambda: self.train())
        self.train_bar.stop_button.clicked.connect(self.stop_training)

    # --- settings ------------------------------------------------------------------------------
    def _settings_problem(self) -> Optional[str]:
        try:
            s = self.form.settings()
        except ConfigError as e:
            return str(e)
        if self.form.learned() and self._trained is None:
            return "No learned score yet: train the MLP first (or choose the exact score)."
        if self.form.learned() and not jobs.same_ladder(self._trained.sigmas, s.sigmas()):
            return "The MLP was trained on another noise ladder: train it again for these \u03c3."
        return None

    def _on_settings_changed(self, *_) -> None:
        if not hasattr(self, "_field_timer"):
            return  # still building
        problem = self._settings_problem()
        try:
            s = self.form.settings()
            warn = step_size_warning(s.step_lr, s.sigma_begin, s.sigma_end)
            if self.field.field is None or not jobs.same_ladder(self.field.field.sigmas, s.sigmas()):
                self._field_timer.start()
        except ConfigError:
            warn = None
        text = " ".join(t for t in ((f"\u26a0 {warn}" if warn else None), problem) if t)
        self.warning_label.setText(text)
        self.warning_label.setVisible(bool(text))
        self.run_bar.set_problem(problem)
        chains, training = self.controller.is_busy(), self.training.is_busy()
        self.form.ladder_box.setEnabled(not chains and not training)
        for w in (self.form.step_lr_spin, self.form.t_spin, self.form.particles_spin, self.form.seed_spin,
                  self.form.score_combo, self.form.speed_combo):
            w.setEnabled(not chains)
        self.loss_combo.setEnabled(not training)
        self.iters_spin.setEnabled(not training)

    def warning_text(self) -> str:
        """The step-size warning and settings problems shown under the Run button ('' when none)."""
        return self.warning_label.text()

    # --- fields (density and exact score) ------------------------------------------------------
    def _request_fields(self) -> None:
        if self._field_worker is not None:
            self._field_pending = True
            return
        try:
            s = self.form.settings()
        except ConfigError:
            return
        w = GeneratorWorker(jobs.toy_field_job(s), self)
        w.event_emitted.connect(self._on_field)
        w.finished.connect(self._on_field_finished)
        w.errored.connect(lambda m: self.field.field_label.setText(f"field: {m}"))
        self._field_worker = w
        w.start()

    def _on_field(self, field: jobs.ToyField) -> None:
        self.field.set_field(field)
        set_heat_map(self.plain.density, field.density[0], field.box)
        if self._frame is None:
            set_heat_map(self.annealed.density, field.density[1], field.box)
        self.truth_line.setValue(field.true_lower_left)
        for p in (self.plain, self.annealed):
            p.bar.set_fraction(p.bar.fraction(), field.true_lower_left)

    def _on_field_finished(self, _result) -> None:
        w, self._field_worker = self._field_worker, None
        if w is not None:
            w.wait()
            w.deleteLater()
        if self._field_pending:
            self._field_pending = False
            self._request_fields()

    # --- chains --------------------------------------------------------------------------------
    def run(self) -> bool:
        if self._settings_problem() or self.controller.is_busy():
            return False
        s = self.form.settings()
        frames, delay = self.form.pacing()
        learned = self._trained if self.form.learned() else None
        self._frame, self._history = None, []
        self.plain_curve.setData([], [])
        self.ann_curve.setData([], [])
        self.frac_plot.setXRange(0, s.langevin_n_steps, padding=0.02)
        self.run_bar.set_progress(0, s.langevin_n_steps)
        self._t0["chains"] = time.monotonic()
        self.controller.start(jobs.toy_chains_job(s, frames, delay, learned))
        return True

    def stop(self) -> None:
        if self.controller.state in ("running", "paused"):
            self.controller.stop()

    def is_running(self) -> bool:
        return self.controller.is_busy()

    def run_action(self) -> None:
        self.run()

    def last_frame(self) -> Optional[jobs.ToyFrame]:
        return self._frame

    def fraction_history(self) -> List[Tuple[int, float, float]]:
        """(global step, plain lower-left share, annealed lower-left share) for every frame of the last run."""
        return list(self._history)

    def _on_frame(self, frame: jobs.ToyFrame) -> None:
        self._frame = frame
        self._dirty.add("frame")
        self._history.append((frame.global_step, frame.plain_lower_left, frame.annealed_lower_left))

    def _on_chains_finished(self, result) -> None:
        self._on_tick()
        f = self._frame
        if self.controller.last_error is None and f is not None:
            done = "Stopped" if isinstance(result, dict) and result.get("stopped") else "Done"
            took = time.monotonic() - self._t0["chains"]
            self.run_bar.status.setText(f"{done} after {f.global_step}/{f.total_steps} steps ({took:.1f} s): lower-left "
                                        f"share plain {f.plain_lower_left:.2f}, annealed {f.annealed_lower_left:.2f} "
                                        f"(truth 0.20).")
        self.run_finished.emit()

    def _draw_frame(self, f: jobs.ToyFrame) -> None:
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
        h = np.asarray(self._history, dtype=np.float64)
        self.plain_curve.setData(h[:, 0], h[:, 1])
        self.ann_curve.setData(h[:, 0], h[:, 2])
        self.run_bar.set_progress(f.global_step)
        if self.controller.is_busy():
            self.run_bar.status.setText(f"level {f.level + 1}/{f.n_levels} \u00b7 \u03c3 = {f.sigma:.3g} \u00b7 "
                                        f"\u03b1 = {f.step_size:.3g} \u00b7 step {f.step}/{f.n_steps}")

    # --- learned score -------------------------------------------------------------------------
    def train(self, loss: Optional[str] = None, n_iters: Optional[int] = None) -> bool:
        """Train the MLP on the current ladder (loss 'dsm', 'ssm' or 'ssm_vr'); reports arrive every 100 steps."""
        try:
            s = self.form.settings()
        except ConfigError:
            return False
        if self.training.is_busy():
            return False
        loss = loss or self.loss_combo.currentData()
        n_iters = n_iters or self.iters_spin.value()
        self._losses, self.field.report = [], None
        self.loss_curve.setData([], [])
        self.loss_plot.setXRange(0, n_iters, padding=0.02)
        self.train_bar.set_progress(0, n_iters)
        self.train_bar.status.setText(f"Training with {loss.upper()}\u2026")
        self._t0["training"] = time.monotonic()
        self.training.start(jobs.toy_train_job(loss, n_iters, s))
        return True

    def stop_training(self) -> None:
        if self.training.state in ("running", "paused"):
            self.training.stop()

    def losses(self) -> List[Tuple[int, float]]:
        return list(self._losses)

    def trained(self) -> Optional[jobs.TrainedScore]:
        return self._trained

    def _on_train_report(self, r: jobs.ToyTraining) -> None:
        self.field.report = r
        self._dirty.add("training")
        self._losses.append((r.step, r.loss))

    def _on_training_finished(self, result) -> None:
        self._on_tick()
        r = self.field.report
        if isinstance(result, jobs.TrainedScore):
            self._trained = result
            self.train_bar.status.setText(
                f"Trained with {result.loss.upper()}: {r.step if r else 0:,} iterations in "
                f"{time.monotonic() - self._t0['training']:.1f} s, final loss {r.loss if r else float('nan'):.4g}. "
                f"Choose \u201clearned score\u201d to run the chains with it.")
        self._on_settings_changed()
        self.training_finished.emit()

    def _draw_training(self, r: jobs.ToyTraining) -> None:
        a = np.asarray(self._losses, dtype=np.float64)
        self.loss_curve.setData(a[:, 0], a[:, 1])
        self.train_bar.set_progress(r.step)
        if self.training.is_busy():
            self.train_bar.status.setText(f"Training with {self.loss_combo.currentData().upper()}: iteration "
                                          f"{r.step:,}/{r.n_iters:,}, loss {r.loss:.4g}")
        self.field.draw()

    def _on_tick(self) -> None:
        if "frame" in self._dirty and self._frame is not None:
            self._draw_frame(self._frame)
        if "training" in self._dirty and self.field.report is not None:
            self._draw_training(self.field.report)
        self._dirty.clear()

    def screenshot_demo(self):
        """Representative content for a screenshot: train the MLP briefly, then run both chains at full speed.
        A generator of the conditions the app waits for (app.take_screenshot)."""
        self.form.speed_combo.setCurrentIndex(1)
        self.iters_spin.setValue(1000)
        yield lambda: self.field.field is not None
        self.train()
        yield lambda: not self.training.is_busy()
        self.run()
        yield lambda: not self.controller.is_busy()
        self.field.level_slider.setValue(max(1, self.field.level_slider.maximum()))

    # --- lifetime ------------------------------------------------------------------------------
    def shutdown(self, timeout_ms: int = 5000) -> None:
        """Stop this tab's jobs and wait for their threads (a QThread must not outlive its widget)."""
        self._field_timer.stop()
        self.stop()
        self.stop_training()
        if self._field_worker is not None:
            self._field_worker.stop()
            self._field_worker.wait(timeout_ms)
        self.controller.wait(timeout_ms)
        self.training.wait(timeout_ms)

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt override
        self.shutdown()
        super().closeEvent(event)
