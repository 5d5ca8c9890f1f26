"""2-D toy lab (paper, Sec. 3 and Fig. 2-3): the mixture 1/5 N((-5,-5), I) + 4/5 N((5,5), I), its exact and
learned score fields, and particles under plain vs annealed Langevin side by side: why annealing works."""
from __future__ import annotations

import time
from typing import List, Optional, Tuple

import numpy as np
from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QScrollArea, QWidget

from ncsn_core.config import ConfigError, step_size_warning

from . import jobs
from .controller import LatestRun, RunController
from .tab import Tab
from .widgets.run_bar import RunBar
from .widgets.side_panel import side_panel
from .widgets.toy_form import ToyForm
from .widgets.toy_plots import ToyPlots


def _error(text: str) -> str:
    return f"<span style='color:#c0392b'>{text}</span>"


class ToyTab(Tab):
    """The 2-D toy lab. API used by tests and the main window: ``run()``, ``stop()``, ``train(loss, n_iters)``,
    ``stop_training()``, ``last_frame()``, ``losses()``, ``trained()``; signals ``run_finished``,
    ``training_finished``. ``controller``: the RunController of the chains (one is made when None); the MLP's
    training has its own, the fields (density and exact score) a worker of their own."""

    run_finished = Signal()
    training_finished = Signal()

    def __init__(self, controller: Optional[RunController] = None, parent: Optional[QWidget] = None):
        super().__init__(controller, "toy chains", parent)
        self.training = RunController("toy score training", self)
        self.fields = LatestRun(self)  # the density and exact score of the ladder being edited
        self._frame: Optional[jobs.ToyFrame] = None
        self._history: List[Tuple[int, float, float]] = []
        self._losses: List[Tuple[int, float]] = []
        self._trained: Optional[jobs.TrainedScore] = None
        self._report: Optional[jobs.ToyTraining] = None
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
        self.fields.event_emitted.connect(self.plots.show_field)
        self.fields.errored.connect(lambda m: self.plots.field.field_label.setText(f"field: {m}"))
        self._on_settings_changed()
        self._request_fields()

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
        self.train_bar = RunBar(self.training, "Train", "Train the MLP on the current noise ladder")
        self.train_bar.status.setText("Not trained: the learned arrows appear while it trains.")
        for w in (self.train_bar, self.train_bar.progress, self.train_bar.status):
            self.form.learned_box.layout().addWidget(w)
        scroll = side_panel(self.form, min_width=350)
        scroll.setFixedWidth(350)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        self.plots = ToyPlots()
        main = QHBoxLayout(self)
        main.addWidget(scroll)
        main.addWidget(self.plots, 1)

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
            if self.plots.field.field is None or not jobs.same_ladder(self.plots.field.field.sigmas, s.sigmas()):
                self._field_timer.start()
        except ConfigError:
            warn = None
        self.warning_label.setText(f"\u26a0 {warn}" if warn else "")
        self.warning_label.setVisible(bool(warn))
        self.run_bar.set_problem(problem)
        self.form.set_busy(self.controller.is_busy(), self.training.is_busy())

    def warning_text(self) -> str:
        """The step-size warning and the settings' problem shown with the Run button ('' when none)."""
        return " ".join(t for t in (self.warning_label.text(), self.run_bar.problem()) if t)

    # --- fields (density and exact score) ------------------------------------------------------
    def _request_fields(self) -> None:
        try:
            self.fields.start(jobs.toy_field_job(self.form.settings()))
        except ConfigError:
            pass  # the form says what is wrong; the fields follow once it is right

    # --- chains --------------------------------------------------------------------------------
    def run(self) -> bool:
        if self._settings_problem() or self.controller.is_busy():
            return False
        s = self.form.settings()
        frames, delay = self.form.pacing()
        learned = self._trained if self.form.learned() else None
        self._frame, self._history = None, []
        self.plots.start_chains(s.langevin_n_steps)
        self.run_bar.set_progress(0, s.langevin_n_steps)
        self._t0["chains"] = time.monotonic()
        self.controller.start(jobs.toy_chains_job(s, frames, delay, learned))
        return True

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
        self.plots.show_frame(f, np.asarray(self._history, dtype=np.float64))
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
        loss = loss or self.form.loss_combo.currentData()
        n_iters = n_iters or self.form.iters_spin.value()
        self._losses, self._report = [], None
        self.plots.start_training(n_iters)
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
        self._report = r
        self._dirty.add("training")
        self._losses.append((r.step, r.loss))

    def _on_training_finished(self, result) -> None:
        self._on_tick()
        r = self._report
        if isinstance(result, jobs.TrainedScore):
            self._trained = result
            self.train_bar.status.setText(
                f"Trained with {result.loss.upper()}: {r.step if r else 0:,} iterations in "
                f"{time.monotonic() - self._t0['training']:.1f} s, final loss {r.loss if r else float('nan'):.4g}. "
                f"Choose \u201clearned score\u201d to run the chains with it.")
        self._on_settings_changed()
        self.training_finished.emit()

    def _draw_training(self, r: jobs.ToyTraining) -> None:
        self.plots.show_training(r, np.asarray(self._losses, dtype=np.float64))
        self.train_bar.set_progress(r.step)
        if self.training.is_busy():
            self.train_bar.status.setText(f"Training with {self.form.loss_combo.currentData().upper()}: iteration "
                                          f"{r.step:,}/{r.n_iters:,}, loss {r.loss:.4g}")

    def _on_tick(self) -> None:
        if "frame" in self._dirty and self._frame is not None:
            self._draw_frame(self._frame)
        if "training" in self._dirty and self._report is not None:
            self._draw_training(self._report)
        self._dirty.clear()

    def screenshot_demo(self):
        """Representative content for a screenshot: train the MLP briefly, then run both chains at full speed.
        A generator of the conditions the app waits for (app.take_screenshot)."""
        self.form.speed_combo.setCurrentIndex(1)
        self.form.iters_spin.setValue(1000)
        yield lambda: self.plots.field.field is not None
        self.train()
        yield lambda: not self.training.is_busy()
        self.run()
        yield lambda: not self.controller.is_busy()
        self.plots.field.level_slider.setValue(max(1, self.plots.field.level_slider.maximum()))

    # --- lifetime ------------------------------------------------------------------------------
    def shutdown(self, timeout_ms: int = 5000) -> None:
        """Stop this tab's jobs and wait for their threads (a QThread must not outlive its widget)."""
        self._field_timer.stop()
        self.stop_training()
        super().shutdown(timeout_ms)
        self.training.wait(timeout_ms)
        self.fields.wait()
