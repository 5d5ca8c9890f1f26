"""Sample tab: annealed Langevin dynamics (Alg. 1) from a checkpoint, animated level by level, with a
timeline of end-of-level snapshots, replay, a zoomable final grid, classifier labels and exports."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QGroupBox,
                               QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QProgressBar, QPushButton, QSlider,
                               QSplitter, QVBoxLayout, QWidget)

from . import jobs, settings
from .controller import IDLE, RUNNING, RunController
from .widgets.banner import MessageBanner
from .widgets.checkpoint_picker import CheckpointPicker
from .widgets.image_grid import ImageGridView
from .widgets.number_edit import NumberEdit
from .widgets.side_panel import side_panel
from .worker import GeneratorWorker

SPEEDS = [("0.5 levels/s", 0.5), ("1 level/s", 1.0), ("2 levels/s", 2.0), ("5 levels/s", 5.0)]


# --- the chain's start and kappa: shared with the Inpaint tab -------------------------------------
def make_init_combo(parent: Optional[QWidget] = None) -> QComboBox:
    """The 'Start' combo: uniform / gaussian / data mean (item data: the sampler's init value), each item with
    its explanation as tooltip; the combo's own tooltip explains the current choice."""
    combo = QComboBox(parent)
    for value, label, tip in jobs.INIT_CHOICES:
        combo.addItem(label, value)
        combo.setItemData(combo.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
    combo.currentIndexChanged.connect(lambda *_: _explain_init(combo))
    _explain_init(combo)
    return combo


def _explain_init(combo: QComboBox) -> None:
    tip = combo.itemData(combo.currentIndex(), Qt.ItemDataRole.ToolTipRole)
    combo.setToolTip(f"Where the chain starts (x\u2080). {tip}" if tip else "Where the chain starts (x\u2080)")


def set_init_choices(combo: QComboBox, init: str, has_data_mean: bool) -> None:
    """Select `init` (the checkpoint config's start) and enable 'data mean' only when the checkpoint holds the
    training data's mean image (else the item is greyed out with the reason as its tooltip)."""
    for i, (value, _label, tip) in enumerate(jobs.INIT_CHOICES):
        if value == "data-mean":
            combo.model().item(i).setEnabled(has_data_mean)
            combo.setItemData(i, tip if has_data_mean else f"Not available: {jobs.NO_DATA_MEAN}.",
                              Qt.ItemDataRole.ToolTipRole)
    idx = combo.findData(init)
    combo.setCurrentIndex(idx if idx >= 0 else 0)
    _explain_init(combo)  # the tooltip may have changed even when the index did not


def init_choice(combo: QComboBox) -> str:
    return str(combo.currentData())


def make_kappa_spin(parent: Optional[QWidget] = None) -> QDoubleSpinBox:
    """The 'Variance correction \u03ba' spin box: 0.00 to 1.00 in steps of 0.25."""
    spin = QDoubleSpinBox(parent)
    spin.setRange(0.0, 1.0)
    spin.setDecimals(2)
    spin.setSingleStep(0.25)
    spin.setValue(0.0)
    spin.setKeyboardTracking(False)
    spin.setToolTip(jobs.KAPPA_TIP)
    return spin


class SampleTab(QWidget):
    status_message = Signal(str)
    samples_ready = Signal(object)  # jobs.SampleResult

    def __init__(self, controller: Optional[RunController] = None, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.controller = controller or RunController("sampling", self)
        self.info: Optional[jobs.CheckpointInfo] = None
        self._inspector: Optional[GeneratorWorker] = None
        self.started: Optional[jobs.SampleStarted] = None
        self.snapshots: List[Tuple[str, np.ndarray]] = []   # (label, x) at the end of each level (+ denoised)
        self.latest: Optional[Tuple[str, np.ndarray]] = None
        self.levels_seen: List[int] = []
        self.result: Optional[jobs.SampleResult] = None
        self.labels: Optional[jobs.SampleLabels] = None
        self._build()
        self.controller.state_changed.connect(self._update_buttons)
        self.controller.event_emitted.connect(self._on_event)
        self.controller.finished.connect(self._on_finished)
        self.controller.errored.connect(self._on_errored)
        self.picker.checkpoint_changed.connect(self.load_checkpoint)
        if self.picker.current_path():
            self.load_checkpoint(self.picker.current_path())
        self._update_buttons()

    # --- layout --------------------------------------------------------------------------------
    def _build(self) -> None:
        self.picker = CheckpointPicker()
        self.ckpt_info = QLabel("No checkpoint loaded.")
        self.ckpt_info.setWordWrap(True)
        ck_box = QGroupBox("Checkpoint")
        cl = QVBoxLayout(ck_box)
        cl.addWidget(self.picker)
        cl.addWidget(self.ckpt_info)

        self.n_edit = NumberEdit("n", 16, int, 1, 400)
        self.seed_edit = NumberEdit("seed", 0, int, 0, 2 ** 31 - 1)
        self.step_lr_edit = NumberEdit("step_lr", 5e-5, float, 0, 10, exclusive_min=True)
        self.step_lr_edit.setToolTip("\u03b5 in Alg. 1: \u03b1_i = \u03b5\u00b7\u03c3_i\u00b2/\u03c3_L\u00b2, update "
                                     "x \u2190 x + \u03b1_i/2\u00b7s(x, \u03c3_i) + \u221a\u03b1_i\u00b7z. (The reference "
                                     "code's step_lr = 2e-5 is \u03b5 = 4e-5 here.)")
        self.steps_edit = NumberEdit("T", 20, int, 1, 10_000)
        self.steps_edit.setToolTip("T = n_steps_each: Langevin steps per noise level")
        self.init_combo = make_init_combo()
        self.kappa_spin = make_kappa_spin()
        self.denoise_box = QCheckBox("Denoise the final samples (x + \u03c3_L\u00b2 s(x, \u03c3_L))")
        self.ema_box = QCheckBox("Use EMA weights when the checkpoint has them")
        self.ema_box.setChecked(True)
        form = QFormLayout()
        form.addRow("Samples n", self.n_edit)
        form.addRow("Seed", self.seed_edit)
        form.addRow("step_lr \u03b5", self.step_lr_edit)
        form.addRow("T (steps per level)", self.steps_edit)
        form.addRow("Start", self.init_combo)
        form.addRow("Variance correction \u03ba", self.kappa_spin)
        form.addRow(self.denoise_box)
        form.addRow(self.ema_box)
        self.alpha_label = QLabel()
        self.alpha_label.setWordWrap(True)
        form.addRow(self.alpha_label)
        s_box = QGroupBox("Sampler (annealed Langevin, Alg. 1)")
        s_box.setLayout(form)

        self.ladder_label = QLabel()
        self.ladder_label.setWordWrap(True)
        self.level_list = QListWidget()
        self.level_list.setMaximumHeight(150)
        self.all_levels_button = QPushButton("All levels")
        self.every2_button = QPushButton("Every 2nd")
        ladder_note = QLabel("A model is trained for its own \u03c3 ladder: you can run a subset of its levels "
                             "(the last checked level acts as \u03c3_L), not new \u03c3 values.")
        ladder_note.setWordWrap(True)
        lb = QHBoxLayout()
        lb.addWidget(self.all_levels_button)
        lb.addWidget(self.every2_button)
        lb.addStretch(1)
        l_box = QGroupBox("Noise ladder")
        ll = QVBoxLayout(l_box)
        ll.addWidget(self.ladder_label)
        ll.addWidget(self.level_list)
        ll.addLayout(lb)
        ll.addWidget(ladder_note)

        self.form_error = QLabel()
        self.form_error.setWordWrap(True)
        self.run_button = QPushButton("Run")
        self.run_button.setToolTip("Run the sampler (F5)")
        self.stop_button = QPushButton("Stop")
        rb = QHBoxLayout()
        rb.addWidget(self.run_button)
        rb.addWidget(self.stop_button)

        scroll = side_panel(ck_box, s_box, l_box, self.form_error, rb)

        # right side
        self.banner = MessageBanner(self)
        self.warning = MessageBanner(self)
        self.level_status = QLabel("Not running.")
        self.level_status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.progress = QProgressBar()
        self.progress.setFormat("step %v / %m")
        self.view = ImageGridView()
        self.view.set_placeholder("Press Run to watch the chain move from noise to digits")
        self.view_caption = QLabel(" ")
        self.timeline = QSlider(Qt.Orientation.Horizontal)
        self.timeline.setRange(0, 0)
        self.timeline.setToolTip("Scrub through the end-of-level snapshots of the chain")
        self.timeline_label = QLabel("")
        self.timeline_label.setMinimumWidth(170)
        self.play_button = QPushButton("\u25b6 Replay")
        self.play_button.setCheckable(True)
        self.speed_combo = QComboBox()
        for label, _ in SPEEDS:
            self.speed_combo.addItem(label)
        self.speed_combo.setCurrentIndex(2)
        self.fit_button = QPushButton("Fit")
        self.fit_button.setToolTip("Reset the zoom (or double-click the image)")
        tl = QHBoxLayout()
        tl.addWidget(QLabel("Timeline"))
        tl.addWidget(self.timeline, 1)
        tl.addWidget(self.timeline_label)
        tl.addWidget(self.play_button)
        tl.addWidget(self.speed_combo)
        tl.addWidget(self.fit_button)
        self.export_grid_button = QPushButton("Export grid PNG\u2026")
        self.export_grid_button.setToolTip("Ctrl+S")
        self.export_strip_button = QPushButton("Export level strip PNG\u2026")
        self.export_gif_button = QPushButton("Export chain GIF\u2026")
        ex = QHBoxLayout()
        ex.addWidget(self.export_grid_button)
        ex.addWidget(self.export_strip_button)
        ex.addWidget(self.export_gif_button)
        ex.addStretch(1)

        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(self.banner)
        rl.addWidget(self.warning)
        top = QHBoxLayout()
        top.addWidget(self.level_status, 3)
        top.addWidget(self.progress, 2)
        rl.addLayout(top)
        rl.addWidget(self.view, 1)
        rl.addWidget(self.view_caption)
        rl.addLayout(tl)
        rl.addLayout(ex)

        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(scroll)
        split.addWidget(right)
        split.setStretchFactor(1, 1)
        split.setSizes([380, 1000])
        outer = QVBoxLayout(self)
        outer.setContentsMargins(4, 4, 4, 4)
        outer.addWidget(split)

        self._play_timer = QTimer(self)
        self._play_timer.timeout.connect(self._on_play_tick)

        self.run_button.clicked.connect(self.run)
        self.stop_button.clicked.connect(self.stop)
        for w in (self.n_edit, self.seed_edit, self.step_lr_edit, self.steps_edit):
            w.textChanged.connect(self._validate)
        self.init_combo.currentIndexChanged.connect(self._validate)
        self.kappa_spin.valueChanged.connect(self._validate)
        self.level_list.itemChanged.connect(self._validate)
        self.all_levels_button.clicked.connect(lambda: self.select_levels(None))
        self.every2_button.clicked.connect(self._every_second_level)
        self.timeline.valueChanged.connect(self._on_timeline)
        self.play_button.toggled.connect(self._on_play)
        self.speed_combo.currentIndexChanged.connect(self._on_speed)
        self.fit_button.clicked.connect(self.view.fit)
        self.export_grid_button.clicked.connect(lambda: self.export("grid"))
        self.export_strip_button.clicked.connect(lambda: self.export("strip"))
        self.export_gif_button.clicked.connect(lambda: self.export("gif"))

    # --- checkpoint ----------------------------------------------------------------------------
    def load_checkpoint(self, path: str) -> None:
        """Read the checkpoint's description on a worker thread; the form fills in when it arrives."""
        self.info = None
        self.ckpt_info.setText(f"Reading {Path(path).name}\u2026")
        self._update_buttons()
        w = GeneratorWorker(lambda: jobs.inspect_checkpoint(path), self)
        w.finished.connect(lambda info, w=w: self._on_inspected(w, info))
        w.errored.connect(lambda msg, p=path: self._on_inspect_error(p, msg))
        self._inspector = w
        w.start()

    def shutdown(self) -> None:
        """Wait for a checkpoint being read (its thread must end before the tab is destroyed)."""
        if self._inspector is not None:
            self._inspector.wait(10000)

    def _on_inspect_error(self, path: str, message: str) -> None:
        self.ckpt_info.setText("Could not read this checkpoint.")
        self.banner.show_message(f"Cannot use {path}: {message}", "error")

    def _on_inspected(self, worker: GeneratorWorker, info: Optional[jobs.CheckpointInfo]) -> None:
        worker.wait()
        worker.deleteLater()
        if worker is not self._inspector:
            return
        self._inspector = None
        if info is None:
            self._update_buttons()
            return
        self.banner.dismiss()
        self.info = None  # no validation against a half-updated form: the ladder list is rebuilt first
        s = info.config["sample"]
        self.step_lr_edit.set_value(s["step_lr"])
        self.steps_edit.set_value(s["n_steps_each"])
        self.denoise_box.setChecked(bool(s["denoise"]))
        set_init_choices(self.init_combo, s["init"], info.has_data_mean)
        self.kappa_spin.setValue(float(s["variance_correction"]))
        self.ema_box.setEnabled(info.has_ema)
        kind = "2-D toy model: use the Toy 2-D lab" if info.arch == "mlp" else \
            f"{info.channels} x {info.image_size} x {info.image_size} images"
        ema = " \u00b7 EMA weights" if info.has_ema else ""
        self.ckpt_info.setText(f"{info.name} \u00b7 {info.arch} network \u00b7 step {info.step:,} \u00b7 {kind}{ema}")
        sig = info.sigmas
        self.ladder_label.setText(f"Model's ladder: \u03c3\u2081 = {sig[0]:.4g}, \u03c3_L = {sig[-1]:.4g}, "
                                  f"L = {len(sig)} (geometric).")
        self.level_list.blockSignals(True)
        self.level_list.clear()
        for i, v in enumerate(sig):
            item = QListWidgetItem(f"level {i + 1}: \u03c3 = {v:.4g}")
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked)
            self.level_list.addItem(item)
        self.level_list.blockSignals(False)
        self.info = info
        self._validate()

    def select_levels(self, levels: Optional[List[int]]) -> None:
        """Check the given level indices (None = all)."""
        self.level_list.blockSignals(True)
        for i in range(self.level_list.count()):
            on = levels is None or i in levels
            self.level_list.item(i).setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)
        self.level_list.blockSignals(False)
        self._validate()

    def _every_second_level(self) -> None:
        L = self.level_list.count()
        self.select_levels(sorted(set(range(0, L, 2)) | {L - 1}))

    def selected_levels(self) -> List[int]:
        return [i for i in range(self.level_list.count())
                if self.level_list.item(i).checkState() == Qt.CheckState.Checked]

    # --- form ----------------------------------------------------------------------------------
    def settings_from_form(self) -> jobs.SampleSettings:
        """The sampler settings the form describes; ValueError naming the bad field."""
        if self.info is None:
            raise ValueError("load a checkpoint first (Open\u2026 or the list above)")
        if self.info.arch == "mlp":
            raise ValueError("this checkpoint is a 2-D toy model: use the Toy 2-D lab tab")
        levels = self.selected_levels()
        if self.level_list.count() != len(self.info.sigmas):
            raise ValueError("the noise ladder is still being read")
        if not levels:
            raise ValueError("check at least one noise level")
        all_levels = len(levels) == len(self.info.sigmas)
        init = init_choice(self.init_combo)
        jobs.check_start(init, self.kappa_spin.value(), self.info.has_data_mean)
        return jobs.SampleSettings(checkpoint=self.info.path, n=self.n_edit.value(), seed=self.seed_edit.value(),
                                   step_lr=self.step_lr_edit.value(), n_steps_each=self.steps_edit.value(),
                                   denoise=self.denoise_box.isChecked(), use_ema=self.ema_box.isChecked(),
                                   levels=None if all_levels else tuple(levels), init=init,
                                   variance_correction=self.kappa_spin.value())

    def _validate(self, *_args) -> None:
        try:
            s = self.settings_from_form()
            err = None
        except ValueError as e:
            s, err = None, str(e)
        self.form_error.setText(f"\u26a0 {err}" if err and self.info is not None else "")
        self.form_error.setVisible(bool(self.form_error.text()))
        self._update_alpha(s)
        self._update_buttons()

    def _update_alpha(self, s: Optional[jobs.SampleSettings]) -> None:
        if s is None or self.info is None:
            self.alpha_label.setText("\u03b1_i = \u03b5\u00b7\u03c3_i\u00b2/\u03c3_L\u00b2")
            self.warning.dismiss()
            return
        sig = [self.info.sigmas[i] for i in (s.levels or range(len(self.info.sigmas)))]
        alpha_1, alpha_L = s.step_lr * (sig[0] / sig[-1]) ** 2, s.step_lr
        self.alpha_label.setText(f"\u03b1_i = \u03b5\u00b7\u03c3_i\u00b2/\u03c3_L\u00b2:  \u03b1\u2081 = {alpha_1:.3g} "
                                 f"(\u03c3\u2081 = {sig[0]:.3g}) \u2026 \u03b1_L = {alpha_L:.3g} (\u03c3_L = {sig[-1]:.3g})")
        from ncsn_core.toy import step_size_warning
        msg = step_size_warning(s.step_lr, sig[0], sig[-1])
        if msg:
            self.warning.show_message(f"Step size too large: {msg}.", "warning")
        else:
            self.warning.dismiss()

    def _update_buttons(self, *_args) -> None:
        st = self.controller.state
        valid = self.info is not None and not self.form_error.text()
        if valid:
            try:
                self.settings_from_form()
            except ValueError:
                valid = False
        self.run_button.setEnabled(st == IDLE and valid)
        self.stop_button.setEnabled(st == RUNNING)
        idle = st == IDLE
        for w in (self.picker, self.n_edit, self.seed_edit, self.step_lr_edit, self.steps_edit, self.denoise_box,
                  self.init_combo, self.kappa_spin, self.level_list, self.all_levels_button, self.every2_button):
            w.setEnabled(idle)
        self.ema_box.setEnabled(idle and self.info is not None and self.info.has_ema)
        has = self.result is not None
        self.export_grid_button.setEnabled(has and idle)
        self.export_strip_button.setEnabled(has and idle and self.result.strip is not None)
        self.export_gif_button.setEnabled(has and idle and bool(self.result.frames))
        self.play_button.setEnabled(len(self.snapshots) > 1)

    # --- run -----------------------------------------------------------------------------------
    def run(self) -> bool:
        if self.controller.state != IDLE:
            return False
        try:
            s = self.settings_from_form()
        except ValueError as e:
            self.form_error.setText(f"\u26a0 {e}")
            self.form_error.show()
            return False
        self.banner.dismiss()
        self.play_button.setChecked(False)
        self.snapshots, self.latest, self.levels_seen = [], None, []
        self.result, self.labels, self.started = None, None, None
        self.timeline.blockSignals(True)
        self.timeline.setRange(0, 0)
        self.timeline.blockSignals(False)
        self.timeline_label.setText("")
        self.level_status.setText("Loading the model\u2026")
        self.controller.start(lambda: jobs.sample_job(s))
        self.status_message.emit(f"Sampling {s.n} images, {s.n_steps_each} steps per level")
        return True

    def stop(self) -> None:
        if self.controller.state == RUNNING:
            self.controller.stop()

    def run_action(self) -> None:
        self.run()

    def open_action(self) -> None:
        self.picker.open_dialog()

    def export_action(self) -> None:
        self.export("grid")

    def screenshot_demo(self, timeout_s: float = 240.0) -> None:
        """Representative content for a screenshot: 36 samples with the checkpoint's own sampler settings,
        waiting with the event loop running until they are done."""
        import time
        from PySide6.QtWidgets import QApplication

        def spin(cond) -> None:
            end = time.monotonic() + timeout_s
            while not cond() and time.monotonic() < end:
                QApplication.processEvents()
                time.sleep(0.01)

        if not self.picker.current_path():
            return
        spin(lambda: self.info is not None or not self.banner.isHidden())
        if self.info is None:
            return
        self.n_edit.set_value(36)
        if self.run():
            spin(lambda: self.result is not None and not self.controller.is_busy())

    # --- events --------------------------------------------------------------------------------
    def _on_event(self, ev: object) -> None:
        kind = type(ev).__name__
        if kind == "SampleStarted":
            self.started = ev
            self.progress.setRange(0, ev.total_steps)
            self.progress.setValue(0)
        elif kind == "LangevinState":
            self._on_state(ev)
        elif kind == "SampleLabels":
            self.labels = ev

    def _on_state(self, st) -> None:
        if not self.levels_seen or self.levels_seen[-1] != st.level:
            self.levels_seen.append(st.level)
        model_level = self.started.model_levels[st.level] + 1 if self.started else st.level + 1
        label = f"level {st.level + 1}/{st.n_levels}"
        if st.step == st.n_steps and len(self.snapshots) == st.level:  # end of a level: keep one snapshot
            self.snapshots.append((f"end of {label} (\u03c3 = {st.sigma:.3g})", st.x))
        self.latest = (f"{label}, step {st.step}/{st.n_steps}", st.x)
        self.progress.setValue(st.global_step)
        self.level_status.setText(f"Level {st.level + 1}/{st.n_levels} (model level {model_level})   "
                                  f"\u03c3_i = {st.sigma:.4g}   \u03b1_i = {st.step_size:.3g}   "
                                  f"step {st.step}/{st.n_steps}   SNR {st.snr:.3g}")
        following = self.timeline.value() >= self.timeline.maximum()
        self.timeline.blockSignals(True)
        self.timeline.setRange(0, len(self.snapshots))   # the last position is the live frame
        if following:
            self.timeline.setValue(self.timeline.maximum())
        self.timeline.blockSignals(False)
        if following:
            self._show_position(self.timeline.maximum())

    def _on_finished(self, result: object) -> None:
        if isinstance(result, jobs.SampleResult):
            self.result = result
            # the final images (clamped, maybe denoised) take the last place on the timeline
            if result.completed and result.meta.get("denoise"):
                self.snapshots.append(("final (denoised)", result.x))
            elif result.completed and self.snapshots:
                self.snapshots[-1] = (self.snapshots[-1][0] + " = final", result.x)
            else:
                self.snapshots.append((f"stopped ({len(self.snapshots)} levels done)", result.x))
            self.latest = None
            self.timeline.blockSignals(True)
            self.timeline.setRange(0, len(self.snapshots) - 1)
            self.timeline.setValue(len(self.snapshots) - 1)
            self.timeline.blockSignals(False)
            self._show_position(len(self.snapshots) - 1)
            took = f"{result.seconds:.1f} s"
            self.level_status.setText(("Done" if result.completed else "Stopped") + f" in {took}: {len(result.x)} "
                                      f"samples, \u03b5 = {result.meta['step_lr']:g}, T = "
                                      f"{result.meta['n_steps_each']}, start {result.meta['init']}, \u03ba = "
                                      f"{result.meta['variance_correction']:g}"
                                      + (", denoised" if result.meta["denoise"] else ""))
            self.samples_ready.emit(result)
            self.status_message.emit("Sampling finished" if result.completed else "Sampling stopped")
        elif self.controller.last_error is None:
            self.level_status.setText("Stopped before the first step.")
        self._update_buttons()

    def _on_errored(self, message: str) -> None:
        self.banner.show_message(f"Sampling failed: {message}", "error")
        self.level_status.setText("Failed; see the message above.")

    # --- timeline ------------------------------------------------------------------------------
    def _frame_at(self, pos: int) -> Optional[Tuple[str, np.ndarray]]:
        if pos < len(self.snapshots):
            return self.snapshots[pos]
        return self.latest or (self.snapshots[-1] if self.snapshots else None)

    def _show_position(self, pos: int) -> None:
        frame = self._frame_at(pos)
        if frame is None:
            return
        label, x = frame
        captions = None
        is_final = self.result is not None and pos == len(self.snapshots) - 1
        if is_final and self.labels is not None:
            captions = [f"{int(d)}, {100 * float(c):.0f} %" for d, c in zip(self.labels.digits,
                                                                            self.labels.confidences)]
        self.view.set_images(x, nrow=jobs.grid_nrow(len(x)), captions=captions)
        self.view_caption.setText(label + ("   (labels: digit classifier, confidence)" if captions else ""))
        self.timeline_label.setText(label if pos < len(self.snapshots) else "live")
        self.play_button.setEnabled(len(self.snapshots) > 1)

    def _on_timeline(self, pos: int) -> None:
        self._show_position(pos)

    def _on_play(self, on: bool) -> None:
        self.play_button.setText("\u23f8 Pause" if on else "\u25b6 Replay")
        if on:
            if self.timeline.value() >= len(self.snapshots) - 1:
                self.timeline.setValue(0)
            self._on_speed()
            self._play_timer.start()
        else:
            self._play_timer.stop()

    def _on_speed(self, *_args) -> None:
        self._play_timer.setInterval(int(1000 / SPEEDS[self.speed_combo.currentIndex()][1]))

    def _on_play_tick(self) -> None:
        last = len(self.snapshots) - 1
        if self.timeline.value() >= last:
            self.play_button.setChecked(False)
            return
        self.timeline.setValue(self.timeline.value() + 1)

    # --- export --------------------------------------------------------------------------------
    def export(self, what: str, path: Optional[str] = None) -> Optional[str]:
        """Write the grid PNG, the level strip PNG or the chain GIF (file dialog when path is None)."""
        from ncsn_core.export import save_gif, save_png
        r = self.result
        if r is None:
            self.status_message.emit("Nothing to export yet: run the sampler first")
            return None
        ext = {"grid": "png", "strip": "png", "gif": "gif"}[what]
        if path is None:
            start = str(Path(settings.value("prefs/export_dir", str(Path.home()))) / f"samples-{what}.{ext}")
            path, _ = QFileDialog.getSaveFileName(self, f"Export {what}", start, f"{ext.upper()} (*.{ext})")
            if not path:
                return None
        meta = dict(r.meta)
        if self.labels is not None:
            meta["classifier_digits"] = [int(d) for d in self.labels.digits]
        try:
            if what == "grid":
                save_png(r.grid, Path(path), meta)
            elif what == "strip":
                if r.strip is None:
                    raise ValueError("no level finished, so there is no strip to export")
                save_png(r.strip, Path(path), {**meta, "columns_sigma": list(r.strip_sigmas)})
            else:
                save_gif(r.frames, Path(path), meta)
        except (OSError, ValueError) as e:
            self.banner.show_message(f"Export failed: {e}", "error")
            return None
        settings.set_value("prefs/export_dir", str(Path(path).parent))
        self.status_message.emit(f"Exported {path}")
        return path
