"""Evaluate tab: ncsn_core.evaluate.evaluate on a worker thread; figures labelled with the sample count and
sampler settings, the class histogram of generated digits, and the DSM loss per noise level."""
from __future__ import annotations

import importlib.util
import math
import threading
from typing import Any, Dict, List, Optional

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QProgressBar, QPushButton,
                               QSplitter, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget, QHeaderView,
                               QAbstractItemView)

from . import jobs
from .controller import IDLE, RUNNING, RunController
from .widgets.banner import MessageBanner
from .widgets.checkpoint_picker import CheckpointPicker
from .widgets.loss_plot import palette_pens
from .widgets.number_edit import NumberEdit
from .widgets.side_panel import side_panel

# how each known figure is shown: key -> (label, explanation)
FIGURES = {
    "fid_classifier": ("FID (digit-classifier features)",
                       "Fr\u00e9chet distance between classifier features of generated and held-out real digits; "
                       "lower is better. Not comparable to Inception FIDs in papers."),
    "fid_real_vs_real": ("FID real vs real (floor)",
                         "The same distance between two real sets of the same size, averaged over 5 draws: the noise "
                         "floor at this n."),
    "fid_ratio": ("FID / floor", "FID divided by the real-vs-real floor: 1 = as close as two real sets of this n."),
    "entropy": ("Class entropy (nats)", "Entropy of the predicted-digit histogram; uniform over 10 digits = 2.303."),
    "mean_confidence": ("Mean classifier confidence", "Average top-class probability of generated digits."),
    "inception_score": ("Inception score", ""),
    "fid": ("FID", ""),
}


def evaluation_available() -> bool:
    return importlib.util.find_spec("ncsn_core.evaluate") is not None


def find_key(d: Dict[str, Any], *names: str) -> Optional[str]:
    """The first key of d that equals one of `names` or contains it (case-insensitive, '_' = ' ')."""
    norm = {k: k.lower().replace(" ", "_") for k in d}
    for n in names:
        for k, v in norm.items():
            if v == n:
                return k
    for n in names:
        for k, v in norm.items():
            if n in v:
                return k
    return None


def histogram_of(result: Dict[str, Any]) -> Optional[np.ndarray]:
    k = find_key(result, "class_histogram", "histogram", "class_counts")
    if k is None:
        return None
    h = result[k]
    if isinstance(h, dict):
        h = h.get("counts", h.get("fraction", [h.get(str(i), h.get(i, 0)) for i in range(10)]))
    try:
        arr = np.asarray(h, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        return None
    return arr if arr.size else None


def per_level_of(result: Dict[str, Any]) -> Optional[np.ndarray]:
    k = find_key(result, "dsm_loss_per_level", "dsm_per_level", "loss_per_level", "dsm_loss", "loss_per_sigma")
    if k is None:
        return None
    v = result[k]
    if isinstance(v, dict):
        v = v.get("loss", v.get("values", v.get("per_level")))
    try:
        arr = np.asarray(v, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        return None
    return arr if arr.size > 1 else None


def sampler_caption(result: Dict[str, Any], n: int) -> str:
    """'n = 1000 samples, step_lr eps = 5e-05, T = 20, denoised, EMA' from the result (or the form)."""
    if isinstance(result.get("label"), str) and result["label"]:
        return result["label"]
    k = find_key(result, "sampler", "sampler_settings", "settings")
    s = result.get(k, {}) if k else {}
    s = s if isinstance(s, dict) else {}
    get = lambda name, default=None: s.get(name, result.get(name, default))  # noqa: E731
    n_val = get("n", result.get("n_samples", n))
    parts = [f"n = {n_val} samples"]
    if get("step_lr") is not None:
        parts.append(f"step_lr \u03b5 = {float(get('step_lr')):g}")
    if get("n_steps_each") is not None:
        parts.append(f"T = {get('n_steps_each')} steps per level")
    if get("denoise") is not None:
        parts.append("denoised" if get("denoise") else "no denoising")
    if get("use_ema", get("ema")) is not None:
        parts.append("EMA weights" if get("use_ema", get("ema")) else "raw weights")
    if get("seed") is not None:
        parts.append(f"seed {get('seed')}")
    return ", ".join(parts)


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.4g}"
    if isinstance(v, (list, tuple)) and len(v) > 6:
        return f"[{', '.join(_fmt(x) for x in v[:6])}, \u2026] ({len(v)} values)"
    if isinstance(v, dict):
        return ", ".join(f"{k}={_fmt(x)}" for k, x in list(v.items())[:8])
    return str(v)


class _Relay(QObject):
    """Carries evaluate()'s progress from the worker thread to the GUI (a signal's emit is thread-safe)."""
    progressed = Signal(object)


class EvalTab(QWidget):
    status_message = Signal(str)

    def __init__(self, controller: Optional[RunController] = None, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.controller = controller or RunController("evaluation", self)
        self.available = evaluation_available()
        self.result: Optional[Dict[str, Any]] = None
        self._stop_flag = threading.Event()
        self._relay = _Relay(self)
        self._relay.progressed.connect(self._on_progress)
        self._build()
        self.controller.state_changed.connect(self._update_buttons)
        self.controller.finished.connect(self._on_finished)
        self.controller.errored.connect(self._on_errored)
        if not self.available:
            self.banner.show_message("Evaluation is not available in this installation: the module "
                                     "ncsn_core/evaluate.py is missing. Sampling and training still work.", "warning")
        self._update_buttons()

    def _build(self) -> None:
        self.picker = CheckpointPicker()
        self.n_edit = NumberEdit("n", 1000, int, 10, 100_000)
        self.n_edit.setToolTip("Number of generated samples; FID is biased upwards at small n (compare the "
                               "real-vs-real floor at the same n)")
        self.seed_edit = NumberEdit("seed", 0, int, 0, 2 ** 31 - 1)
        self.step_lr_edit = NumberEdit("step_lr", None, float, 0, 10, optional=True, exclusive_min=True)
        self.step_lr_edit.setPlaceholderText("checkpoint's own")
        self.step_lr_edit.setToolTip("\u03b5 of Alg. 1 (\u03b1_i = \u03b5\u00b7\u03c3_i\u00b2/\u03c3_L\u00b2); empty = "
                                     "the checkpoint's sampler settings")
        self.steps_edit = NumberEdit("T", None, int, 1, 10_000, optional=True)
        self.steps_edit.setPlaceholderText("checkpoint's own")
        self.batch_edit = NumberEdit("batch size", 250, int, 1, 10_000)
        self.denoise_combo = QComboBox()
        self.denoise_combo.addItems(["checkpoint's own setting", "on", "off"])
        self.denoise_combo.setToolTip("Final denoising step x + \u03c3_L\u00b2 s(x, \u03c3_L)")
        self.ema_box = QCheckBox("Use EMA weights")
        self.ema_box.setChecked(True)
        form = QFormLayout()
        form.addRow(QLabel("Checkpoint"))
        form.addRow(self.picker)
        form.addRow("Samples n", self.n_edit)
        form.addRow("Seed", self.seed_edit)
        form.addRow("step_lr \u03b5", self.step_lr_edit)
        form.addRow("T (steps per level)", self.steps_edit)
        form.addRow("Batch size", self.batch_edit)
        form.addRow("Denoise", self.denoise_combo)
        form.addRow(self.ema_box)
        box = QGroupBox("Evaluate a checkpoint")
        box.setLayout(form)
        self.form_error = QLabel()
        self.form_error.setWordWrap(True)
        self.run_button = QPushButton("Evaluate")
        self.run_button.setToolTip("Generate n samples and compute the metrics (F5)")
        self.stop_button = QPushButton("Stop")
        rb = QHBoxLayout()
        rb.addWidget(self.run_button)
        rb.addWidget(self.stop_button)
        note = QLabel("Metrics use our own MNIST digit classifier: its features for FID, its labels for the class "
                      "histogram. Numbers depend on n and the sampler settings, which label every figure.")
        note.setWordWrap(True)
        scroll = side_panel(box, self.form_error, rb, note)

        self.banner = MessageBanner(self)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress_label = QLabel("Not running.")
        self.caption = QLabel("No evaluation yet.")
        self.caption.setWordWrap(True)
        f = self.caption.font()
        f.setBold(True)
        self.caption.setFont(f)
        self.table = QTableWidget(0, 2)
        self.table.setHorizontalHeaderLabels(["Figure", "Value"])
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.hist_plot = pg.PlotWidget()
        self.hist_plot.setTitle("Class histogram of generated digits")
        self.hist_plot.setLabel("bottom", "digit (classifier label)")
        self.hist_plot.setLabel("left", "fraction of samples")
        self.hist_plot.getAxis("bottom").setTicks([[(i, str(i)) for i in range(10)]])
        self.hist_plot.getAxis("left").enableAutoSIPrefix(False)
        self.hist_bars = pg.BarGraphItem(x=np.arange(10), height=np.zeros(10), width=0.7)
        self.hist_plot.addItem(self.hist_bars)
        self.uniform_line = pg.InfiniteLine(pos=0.1, angle=0, movable=False, label="uniform (0.1)",
                                            labelOpts={"position": 0.99, "anchors": [(1, 1), (1, 1)],
                                                       "fill": pg.mkBrush(128, 128, 128, 60)})
        self.hist_plot.addItem(self.uniform_line)
        self.level_plot = pg.PlotWidget()
        self.level_plot.setTitle("DSM loss per noise level (held-out data)")
        self.level_plot.setLabel("bottom", "noise level i (1 = largest \u03c3)")
        self.level_plot.setLabel("left", "loss")
        self.level_plot.getAxis("left").enableAutoSIPrefix(False)
        self.level_curve = self.level_plot.plot([], [], symbol="o", symbolSize=6)
        self.apply_palette()

        plots = QSplitter(Qt.Orientation.Horizontal)
        plots.addWidget(self.hist_plot)
        plots.addWidget(self.level_plot)
        right_split = QSplitter(Qt.Orientation.Vertical)
        right_split.addWidget(self.table)
        right_split.addWidget(plots)
        right_split.setSizes([260, 420])
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(self.banner)
        pr = QHBoxLayout()
        pr.addWidget(self.progress, 2)
        pr.addWidget(self.progress_label, 3)
        rl.addLayout(pr)
        rl.addWidget(self.caption)
        rl.addWidget(right_split, 1)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(scroll)
        split.addWidget(right)
        split.setStretchFactor(1, 1)
        split.setSizes([380, 1000])
        outer = QVBoxLayout(self)
        outer.setContentsMargins(4, 4, 4, 4)
        outer.addWidget(split)

        self.run_button.clicked.connect(self.run)
        self.stop_button.clicked.connect(self.stop)
        for w in (self.n_edit, self.seed_edit, self.step_lr_edit, self.steps_edit, self.batch_edit):
            w.textChanged.connect(self._update_buttons)

    def apply_palette(self) -> None:
        fg, hi, faint = palette_pens(self)
        base = self.palette().color(QPalette.ColorRole.Base)
        for pw in (self.hist_plot, self.level_plot):
            pw.setBackground(base)
            pi = pw.getPlotItem()
            for axis in ("left", "bottom"):
                pi.getAxis(axis).setPen(fg)
                pi.getAxis(axis).setTextPen(fg)
            pi.titleLabel.setText(pi.titleLabel.text, color=fg.name())
        self.hist_bars.setOpts(brush=pg.mkBrush(hi), pen=pg.mkPen(fg))
        self.uniform_line.setPen(pg.mkPen(faint, style=Qt.PenStyle.DashLine))
        self.uniform_line.label.setColor(fg)
        self.level_curve.setPen(pg.mkPen(hi, width=2))
        self.level_curve.setSymbolBrush(pg.mkBrush(hi))

    def changeEvent(self, event) -> None:
        super().changeEvent(event)
        if event.type() == event.Type.PaletteChange and hasattr(self, "hist_bars"):
            self.apply_palette()

    # --- form / run ----------------------------------------------------------------------------
    def form_error_text(self) -> Optional[str]:
        for w in (self.n_edit, self.seed_edit, self.step_lr_edit, self.steps_edit, self.batch_edit):
            if w.error():
                return w.error()
        if not self.picker.current_path():
            return "choose a checkpoint (Open\u2026)"
        return None

    def _update_buttons(self, *_args) -> None:
        st = self.controller.state
        err = self.form_error_text() if self.available else None
        self.form_error.setText(f"\u26a0 {err}" if err else "")
        self.form_error.setVisible(bool(err))
        self.run_button.setEnabled(self.available and st == IDLE and not err)
        self.stop_button.setEnabled(st == RUNNING)

    def run(self) -> bool:
        if not self.available or self.controller.state != IDLE or self.form_error_text():
            return False
        ckpt = self.picker.current_path()
        denoise = {0: None, 1: True, 2: False}[self.denoise_combo.currentIndex()]
        args = dict(checkpoint=ckpt, n=self.n_edit.value(), seed=self.seed_edit.value(),
                    step_lr=self.step_lr_edit.value(), n_steps_each=self.steps_edit.value(), denoise=denoise,
                    use_ema=self.ema_box.isChecked(), batch_size=self.batch_edit.value())
        self._stop_flag = threading.Event()
        flag, emit = self._stop_flag, self._relay.progressed.emit
        self._n = args["n"]
        self.banner.dismiss()
        self.progress.setValue(0)
        self.progress_label.setText("Starting\u2026")
        self.controller.start(lambda: jobs.evaluate_job(stop_flag=flag, progress=emit, **args))
        self.status_message.emit(f"Evaluating {ckpt} with n = {args['n']}")
        return True

    def stop(self) -> None:
        if self.controller.state == RUNNING:
            self._stop_flag.set()
            self.controller.stop()
            self.progress_label.setText("Stopping\u2026")

    def run_action(self) -> None:
        self.run()

    def screenshot_demo(self, timeout_s: float = 300.0) -> None:
        """Representative content for a screenshot: a small evaluation (n = 100, the checkpoint's own sampler
        settings) of the selected checkpoint, waiting with the event loop running until it is done."""
        import time
        from PySide6.QtWidgets import QApplication
        if not self.available or not self.picker.current_path():
            return
        self.n_edit.set_value(100)
        self.batch_edit.set_value(100)
        if self.run():
            end = time.monotonic() + timeout_s
            while self.controller.is_busy() and time.monotonic() < end:
                QApplication.processEvents()
                time.sleep(0.01)

    def export_action(self, path: Optional[str] = None) -> Optional[str]:
        """Ctrl+S: save the last results as JSON (file dialog when path is None)."""
        import json
        from pathlib import Path
        from PySide6.QtWidgets import QFileDialog
        if self.result is None:
            self.status_message.emit("No results yet: run an evaluation first")
            return None
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Save evaluation results", "evaluation.json", "JSON (*.json)")
            if not path:
                return None
        Path(path).write_text(json.dumps(self.result, indent=2, default=str))
        self.status_message.emit(f"Saved {path}")
        return path

    def _on_progress(self, p: jobs.EvalProgress) -> None:
        if p.fraction is not None:
            self.progress.setValue(int(1000 * p.fraction))
        if p.text:
            self.progress_label.setText(p.text)

    def _on_errored(self, message: str) -> None:
        self.banner.show_message(f"Evaluation failed: {message}", "error")
        self.progress_label.setText("Failed; see the message above.")

    def _on_finished(self, result: object) -> None:
        self._update_buttons()
        if isinstance(result, dict):
            self.show_result(result, getattr(self, "_n", 0))
            warnings = result.get("warnings") or []
            if warnings:
                self.banner.show_message("Note: " + "; ".join(str(w) for w in warnings), "warning")
            self.progress.setValue(1000)
            self.progress_label.setText("Done.")
            self.status_message.emit("Evaluation finished")
        elif self.controller.last_error is None:
            self.progress_label.setText("Stopped.")

    def show_result(self, result: Dict[str, Any], n: int = 0) -> None:
        """Fill the table, histogram and per-level plot from an evaluate() result."""
        self.result = result
        cap = sampler_caption(result, n)
        self.caption.setText(f"Results for {cap}")
        rows: List[tuple] = []
        used = set()
        for key, (label, tip) in FIGURES.items():
            k = find_key(result, key)
            if k is not None and k not in used and not isinstance(result[k], (list, dict)):
                rows.append((label, _fmt(result[k]), tip or k))
                used.add(k)
        hk = find_key(result, "class_histogram", "histogram", "class_counts")
        lk = find_key(result, "dsm_loss_per_level", "dsm_per_level", "loss_per_level", "dsm_loss", "loss_per_sigma")
        for k, v in result.items():
            if k in used or k in (hk, lk, "label", "warnings", "class_fractions", "sigmas"):
                continue
            rows.append((k.replace("_", " "), _fmt(v), k))
        self.table.setRowCount(len(rows))
        for r, (label, value, tip) in enumerate(rows):
            a, b = QTableWidgetItem(label), QTableWidgetItem(value)
            a.setToolTip(tip)
            b.setToolTip(f"{label}: {value}\n({cap})")
            self.table.setItem(r, 0, a)
            self.table.setItem(r, 1, b)
        hist = histogram_of(result)
        if hist is not None:
            frac = hist / hist.sum() if hist.sum() > 0 and hist.max() > 1 else hist
            self.hist_bars.setOpts(x=np.arange(len(frac)), height=frac)
            self.hist_plot.setTitle(f"Class histogram ({cap.split(',')[0]})")
            self.hist_plot.getPlotItem().titleLabel.setText(self.hist_plot.getPlotItem().titleLabel.text,
                                                             color=palette_pens(self)[0].name())
        per = per_level_of(result)
        if per is not None:
            self.level_curve.setData(np.arange(1, len(per) + 1), per)
