"""Evaluate tab: ncsn_core.evaluate.evaluate on a worker thread; figures labelled with the sample count and
sampler settings, the class histogram of generated digits, and the DSM loss per noise level."""
from __future__ import annotations

import importlib.util
import json
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Optional

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QFileDialog, QLabel, QSplitter, QWidget

from . import jobs
from .controller import IDLE, RUNNING, LatestRun, RunController
from .tab import Tab
from .widgets.banner import MessageBanner
from .widgets.eval_neighbours import NeighboursView
from .widgets.eval_results import EvalResults
from .widgets.model_picker import ModelPicker
from .widgets.number_edit import NumberEdit
from .widgets.run_bar import RunBar
from .widgets.sampler_form import SamplerForm
from .widgets.side_panel import split_workspace


def evaluation_available() -> bool:
    return importlib.util.find_spec("ncsn_core.evaluate") is not None


class _Relay(QObject):
    """Carries evaluate()'s progress from the worker thread to the GUI (a signal's emit is thread-safe)."""
    progressed = Signal(object)


class EvalTab(Tab):
    """The model picker and sampler form (plus a batch size) on the left; the results on the right."""

    def __init__(self, controller: Optional[RunController] = None, parent: Optional[QWidget] = None):
        super().__init__(controller, "evaluation", parent)
        self.available = evaluation_available()
        self.info: Optional[jobs.CheckpointInfo] = None
        self._n = 0
        self._stop_flag = threading.Event()
        self._scratch = tempfile.TemporaryDirectory(prefix="ncsn-eval-")  # the neighbours grid PNG; removed with us
        self._relay = _Relay(self)
        self._relay.progressed.connect(self._on_progress)
        self._build()
        self.controller.state_changed.connect(self._on_state_changed)
        self.controller.finished.connect(self._on_finished)
        self.controller.errored.connect(self._on_errored)
        if not self.available:
            self.banner.show_message("Evaluation is not available in this installation: the module "
                                     "ncsn_core/evaluate.py is missing. Sampling and training still work.", "warning")
        self._validate()

    def _build(self) -> None:
        # without ncsn_core.evaluate there is nothing to evaluate, so no checkpoint is read either
        self.picker = ModelPicker("Checkpoint", reader=LatestRun(self) if self.available else None)
        self.form = SamplerForm("Sampler", n=(1000, 10, 100_000), ema=True)
        self.form.n_edit.setToolTip("Number of generated samples; FID is biased upwards at small n (compare the "
                                    "real-vs-real floor at the same n)")
        self.batch_edit = NumberEdit("batch size", 250, int, 1, 10_000)
        self.form.rows.insertRow(2, "Batch size", self.batch_edit)
        self.run_bar = RunBar(self.controller, "Evaluate", "Generate n samples and compute the metrics (F5)")
        self.run_bar.progress.setRange(0, 1000)
        note = QLabel("Metrics use our own MNIST digit classifier: its features for FID, its labels for the class "
                      "histogram. Numbers depend on n and the sampler settings, which label every figure.")
        note.setWordWrap(True)
        self.banner = MessageBanner(self)
        self.results = EvalResults()
        self.neighbours = NeighboursView()
        body = QSplitter(Qt.Orientation.Horizontal)
        body.addWidget(self.results)
        body.addWidget(self.neighbours)
        body.setStretchFactor(0, 1)
        body.setSizes([740, 260])  # the grid is tall (10 rows of 6 digits): a narrow column suits it

        split_workspace(self, (self.picker, self.form, self.run_bar, note), self.banner, self.run_bar.progress,
                        self.run_bar.status, body)

        self.picker.model_read.connect(self._on_model_read)
        self.picker.model_failed.connect(self._on_model_failed)
        self.form.config_changed.connect(self._validate)
        self.form.config_rejected.connect(self._validate)
        self.batch_edit.textChanged.connect(self._validate)
        self.run_bar.run_button.clicked.connect(self.run)
        self.run_bar.stop_button.clicked.connect(self.stop)

    # --- the model and the form ----------------------------------------------------------------
    def _on_model_read(self, info: jobs.CheckpointInfo) -> None:
        self.info = None  # no validation against a half-filled form
        self.form.load(info.sample, info.has_data_mean, info.has_ema, info.model, info.has_guide,
                       info.has_discriminator)
        self.form.set_ladder(info.sigmas)
        self.info = info
        self._validate()

    def _on_model_failed(self, path: str, message: str) -> None:
        self.info = None
        self.banner.show_message(f"Cannot use {path}: {message}", "error")
        self._validate()

    def _problem(self) -> Optional[str]:
        if not self.available:
            return "evaluation is not available in this installation"
        if self.info is None:
            return "choose a checkpoint (Open\u2026)"
        return self.form.error() or self.batch_edit.error()

    def _validate(self, *_args) -> None:
        self.run_bar.set_problem(self._problem())

    def _on_state_changed(self, *_args) -> None:
        for w in (self.picker, self.form):
            w.setEnabled(self.controller.state == IDLE)

    # --- run -----------------------------------------------------------------------------------
    def run(self) -> bool:
        if self.controller.state != IDLE or self._problem():
            return False
        s = self.form.settings(checkpoint=self.info.path)
        batch_size = self.batch_edit.value()
        self._stop_flag = threading.Event()
        flag, emit = self._stop_flag, self._relay.progressed.emit
        self._n = s.n
        self.banner.dismiss()
        self.run_bar.set_progress(0)
        self.run_bar.status.setText("Starting\u2026")
        grid = str(Path(self._scratch.name) / "neighbours.png")
        self.controller.start(lambda: jobs.evaluate_job(s, batch_size, flag, emit, neighbours=grid))
        self.status_message.emit(f"Evaluating {s.checkpoint} with n = {s.n}")
        return True

    def stop(self) -> None:
        if self.controller.state == RUNNING:
            self._stop_flag.set()
            self.controller.stop()
            self.run_bar.status.setText("Stopping\u2026")

    def shutdown(self, timeout_ms: int = 10000) -> None:
        super().shutdown(timeout_ms)
        if self.picker.reader is not None:
            self.picker.reader.wait()  # a checkpoint being read: short, and its thread must end first

    def screenshot_demo(self):
        """Representative content for a screenshot: a small evaluation (n = 100, the checkpoint's own sampler
        settings). A generator of the conditions the app waits for (app.take_screenshot)."""
        if not self.available or not self.picker.current_path():
            return
        yield lambda: self.info is not None or not self.banner.isHidden()
        self.form.n_edit.set_value(100)
        self.batch_edit.set_value(100)
        if self.run():
            yield lambda: not self.controller.is_busy()

    def export_action(self, path: Optional[str] = None) -> Optional[str]:
        """Ctrl+S: save the last results as JSON (file dialog when path is None), and the neighbours grid beside it
    as <name>-neighbours.png."""
        if self.results.result is None:
            self.status_message.emit("No results yet: run an evaluation first")
            return None
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Save evaluation results", "evaluation.json", "JSON (*.json)")
            if not path:
                return None
        result = dict(self.results.result)
        if result.get("neighbours_png") and Path(result["neighbours_png"]).exists():
            grid = Path(path).with_name(Path(path).stem + "-neighbours.png")
            shutil.copyfile(result["neighbours_png"], grid)
            result["neighbours_png"] = str(grid)
        Path(path).write_text(json.dumps(result, indent=2, default=str))
        self.status_message.emit(f"Saved {path}")
        return path

    # --- events --------------------------------------------------------------------------------
    def _on_progress(self, p: jobs.EvalProgress) -> None:
        if p.fraction is not None:
            self.run_bar.set_progress(int(1000 * p.fraction))
        if p.text:
            self.run_bar.status.setText(p.text)

    def _on_errored(self, message: str) -> None:
        self.banner.show_message(f"Evaluation failed: {message}", "error")
        self.run_bar.status.setText("Failed; see the message above.")

    def _on_finished(self, outcome: object) -> None:
        if isinstance(outcome, jobs.EvalOutcome):
            result = outcome.result
            self.results.show_result(result, self._n)
            self.neighbours.show_neighbours(outcome.neighbours, result)
            warnings = result.get("warnings") or []
            if warnings:
                self.banner.show_message("Note: " + "; ".join(str(w) for w in warnings), "warning")
            self.run_bar.set_progress(1000)
            self.run_bar.status.setText("Done.")
            self.status_message.emit("Evaluation finished")
        elif self.controller.last_error is None:
            self.run_bar.status.setText("Stopped.")
