"""Sample tab: a checkpoint's sampler (annealed Langevin, Alg. 1; predictor-corrector; the Heun ODE), animated level by
level (sigma step by sigma step), with a timeline of snapshots, replay, a zoomable final grid, classifier labels and
exports."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from PySide6.QtWidgets import QFileDialog, QHBoxLayout, QPushButton, QWidget

from . import jobs, settings
from .controller import IDLE, LatestRun, RunController
from .tab import Tab
from .widgets.banner import MessageBanner
from .widgets.chain_view import ChainView
from .widgets.level_picker import LevelPicker
from .widgets.model_picker import ModelPicker
from .widgets.run_bar import RunBar
from .widgets.sampler_form import SamplerForm
from .widgets.side_panel import split_workspace

EXPORTS = {"grid": "png", "strip": "png", "gif": "gif"}  # what -> file extension


class SampleTab(Tab):
    """The model picker, sampler form and level subset on the left; the chain view and exports on the right."""

    def __init__(self, controller: Optional[RunController] = None, parent: Optional[QWidget] = None):
        super().__init__(controller, "sampling", parent)
        self.info: Optional[jobs.CheckpointInfo] = None
        self.started: Optional[jobs.SampleStarted] = None
        self.result: Optional[jobs.SampleResult] = None
        self.labels: Optional[jobs.SampleLabels] = None
        self._build()
        self.controller.state_changed.connect(self._on_state_changed)
        self.controller.event_emitted.connect(self._on_event)
        self.controller.finished.connect(self._on_finished)
        self.controller.errored.connect(self._on_errored)
        self._validate()

    def _build(self) -> None:
        self.picker = ModelPicker("Checkpoint", reader=LatestRun(self))
        self.form = SamplerForm("Sampler", ema=True)
        self.levels = LevelPicker()
        self.run_bar = RunBar(self.controller, "Run", "Run the sampler (F5)")
        self.banner = MessageBanner(self)
        self.chains = ChainView("Press Run to watch the chain move from noise to digits", "sample/chain_show")
        self.run_bar.progress.setFormat("step %v / %m")
        self.export_buttons = {}
        exports = QHBoxLayout()
        for what, text in (("grid", "Export grid PNG\u2026"), ("strip", "Export level strip PNG\u2026"),
                           ("gif", "Export chain GIF\u2026")):
            b = self.export_buttons[what] = QPushButton(text)
            b.clicked.connect(lambda _=False, w=what: self.export(w))
            exports.addWidget(b)
        exports.addStretch(1)
        self.export_buttons["grid"].setToolTip("Ctrl+S")
        self.export_buttons["strip"].setToolTip("The first 8 chains at the end of each level, as the chain view shows "
                                                "them: x, the denoised estimate, or both")

        split_workspace(self, (self.picker, self.form, self.levels, self.run_bar), self.banner,
                        self.run_bar.progress, self.run_bar.status, self.chains, exports)

        self.picker.model_read.connect(self._on_model_read)
        self.picker.model_failed.connect(self._on_model_failed)
        self.form.config_changed.connect(self._on_form_changed)
        self.form.config_rejected.connect(self._on_form_changed)
        self.levels.selection_changed.connect(self._on_levels_changed)
        self.run_bar.run_button.clicked.connect(self.run)
        self.run_bar.stop_button.clicked.connect(self.stop)

    # --- the model and the form ----------------------------------------------------------------
    def _on_model_read(self, info: jobs.CheckpointInfo) -> None:
        self.banner.dismiss()
        self.info = None  # no validation against a half-updated form: the ladder is set first
        self.form.load(info.sample, info.has_data_mean, info.has_ema, info.model, info.has_guide,
                       info.has_discriminator)
        self.levels.set_sigmas(info.sigmas)
        self.info = info
        self._on_levels_changed()

    def _on_model_failed(self, path: str, message: str) -> None:
        self.info = None
        self.banner.show_message(f"Cannot use {path}: {message}", "error")
        self._validate()

    def _on_form_changed(self, *_args) -> None:
        """The level subset is for the model's own ladder: off for Heun and for another sampling ladder."""
        why = None
        if self.form.sampler() == "heun":
            why = "the Heun ODE runs its own \u03c3 schedule (set \u03c3 steps N and its ends under Sampling ladder)"
        else:
            try:
                custom = any(v is not None for v in self.form.ladder.values().values())
            except ValueError:
                custom = True
            if custom:
                why = "a sampling ladder is set (clear its fields to pick levels of the model's own ladder)"
        self.levels.set_unavailable(why)
        self._validate()

    def _on_levels_changed(self) -> None:
        chosen = self.levels.selected()
        self.form.set_ladder([self.levels.sigmas[i] for i in chosen] if self.info is not None else ())

    def settings_from_form(self) -> jobs.SampleSettings:
        """The run the form describes; ValueError with the message to show (the engine's for sampler values)."""
        if self.info is None:
            raise ValueError("load a checkpoint first (Open\u2026 or the list above)")
        if self.info.arch == "mlp":
            raise ValueError("this checkpoint is a 2-D toy model: use the Toy 2-D lab tab")
        levels = self.levels.selected()
        if not levels:
            raise ValueError("check at least one noise level")
        subset = None if len(levels) == len(self.info.sigmas) else tuple(levels)
        return self.form.settings(checkpoint=self.info.path, levels=subset)

    def _validate(self, *_args) -> None:
        try:
            self.settings_from_form()
            self.run_bar.set_problem(None)
        except ValueError as e:
            self.run_bar.set_problem(str(e))

    def _on_state_changed(self, *_args) -> None:
        idle = self.controller.state == IDLE
        for w in (self.picker, self.form, self.levels):
            w.setEnabled(idle)
        r = self.result
        self.export_buttons["grid"].setEnabled(idle and r is not None)
        self.export_buttons["strip"].setEnabled(idle and r is not None and bool(r.strips))
        self.export_buttons["gif"].setEnabled(idle and r is not None and bool(r.frames))

    # --- run -----------------------------------------------------------------------------------
    def run(self) -> bool:
        if self.controller.state != IDLE:
            return False
        try:
            s = self.settings_from_form()
        except ValueError as e:
            self.run_bar.set_problem(str(e))
            return False
        self.banner.dismiss()
        self.result, self.labels, self.started = None, None, None
        self.chains.start()
        self.run_bar.status.setText("Loading the model\u2026")
        self.controller.start(lambda: jobs.sample_job(s))
        self.status_message.emit(f"Sampling {s.n} images ({self.form.sampler_combo.currentText()})")
        return True

    def open_action(self) -> None:
        self.picker.open_dialog()

    def export_action(self) -> None:
        self.export("grid")

    def shutdown(self, timeout_ms: int = 10000) -> None:
        super().shutdown(timeout_ms)
        self.picker.reader.wait()  # a checkpoint being read: short, and its thread must end first

    def screenshot_demo(self):
        """Representative content for a screenshot: 36 samples with the checkpoint's own sampler settings. A
        generator of the conditions the app waits for, with the event loop running (app.take_screenshot)."""
        if not self.picker.current_path():
            return
        yield lambda: self.info is not None or not self.banner.isHidden()
        self.form.n_edit.set_value(36)
        if self.run():
            yield lambda: self.result is not None and not self.controller.is_busy()

    # --- events --------------------------------------------------------------------------------
    def _on_event(self, ev: object) -> None:
        kind = type(ev).__name__
        if kind == "SampleStarted":
            self.started = ev
            self.chains.start(ev.model_levels, ev.plan.sampler)
            self.run_bar.set_progress(0, ev.total_steps)
            self.run_bar.status.setText(f"Sampling: {ev.plan.description}\u2026")
        elif kind == "LangevinState":
            self.chains.add_state(ev)
            self.run_bar.set_progress(ev.global_step)
        elif kind == "SampleLabels":
            self.labels = ev

    def _on_finished(self, result: object) -> None:
        if isinstance(result, jobs.SampleResult):
            self.result = result
            m = result.meta
            captions = None if self.labels is None else \
                [f"{int(d)}, {100 * float(c):.0f} %" for d, c in zip(self.labels.digits, self.labels.confidences)]
            denoised = bool(m["denoise"]) and m["sampler"] == "annealed_langevin"  # the others end at sigma = 0
            self.chains.finish(result.x, result.completed, denoised, captions, "(labels: digit classifier, confidence)")
            self.run_bar.status.setText(("Done" if result.completed else "Stopped") + f" in {result.seconds:.1f} s: "
                                        f"{len(result.x)} samples; {m['description']}")
            self.status_message.emit("Sampling finished" if result.completed else "Sampling stopped")
        elif self.controller.last_error is None:
            self.run_bar.status.setText("Stopped before the first step.")
        self._on_state_changed()

    def _on_errored(self, message: str) -> None:
        self.banner.show_message(f"Sampling failed: {message}", "error")
        self.run_bar.status.setText("Failed; see the message above.")

    # --- export --------------------------------------------------------------------------------
    def export(self, what: str, path: Optional[str] = None) -> Optional[str]:
        """Write the grid PNG, the level strip PNG or the chain GIF (file dialog when path is None)."""
        if self.result is None:
            self.status_message.emit("Nothing to export yet: run the sampler first")
            return None
        ext = EXPORTS[what]
        if path is None:
            start = str(Path(settings.value("prefs/export_dir", str(Path.home()))) / f"samples-{what}.{ext}")
            path, _ = QFileDialog.getSaveFileName(self, f"Export {what}", start, f"{ext.upper()} (*.{ext})")
            if not path:
                return None
        try:
            jobs.export_samples(self.result, what, path, self.labels, self.chains.show_mode())
        except (OSError, ValueError) as e:
            self.banner.show_message(f"Export failed: {e}", "error")
            return None
        settings.set_value("prefs/export_dir", str(Path(path).parent))
        self.status_message.emit(f"Exported {path}")
        return path
