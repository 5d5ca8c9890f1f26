"""Inpainting tab (paper, Algorithm 2): paint the region to fill, run the sampler (annealed Langevin, pc or the Heun
ODE) with the known pixels following the data's noisy path, watch it level by level, export the paper-style row."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Optional

import numpy as np
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFrame, QGridLayout, QGroupBox, QLabel, QVBoxLayout, QWidget

from . import jobs, settings
from .controller import IDLE, RunController
from .tab import Tab
from .widgets.image_row import hwc
from .widgets.image_source import ImageSource, dropped_image
from .widgets.inpaint_live import InpaintLive
from .widgets.inpaint_result import InpaintResult
from .widgets.mask_canvas import MaskEditor, quick_mask
from .widgets.model_picker import ModelPicker
from .widgets.run_bar import RunBar
from .widgets.sampler_form import SamplerForm
from .widgets.side_panel import side_panel


class InpaintTab(Tab):
    """Open an image, paint the region to fill, and run the sampler (Algorithm 2 for annealed Langevin) on n chains.

    API used by tests and the main window: ``set_model(model, config)``, ``load_checkpoint(path)``,
    ``open_image(path)``, ``pick_builtin(index)``, ``run()``, ``stop()``, ``results()``,
    ``export_row(path)``; signals ``run_finished`` (after the results are shown) and ``model_changed``."""

    run_finished = Signal()
    model_changed = Signal()
    def __init__(self, controller: Optional[RunController] = None, parent: Optional[QWidget] = None):
        super().__init__(controller, "inpaint", parent)
        self._model: Any = None                        # a ScoreModel, only ever handed to jobs
        self.info: Optional[jobs.CheckpointInfo] = None
        self._run: Optional[dict] = None               # the settings, image and mask of the run under way
        self._final: Optional[np.ndarray] = None       # the sampler's final x (n, C, H, W)
        self.setAcceptDrops(True)
        self._build()
        c = self.controller
        c.state_changed.connect(self._validate)
        c.event_emitted.connect(self._on_event)
        c.errored.connect(self._on_errored)
        c.finished.connect(self._on_finished)
        self._shown_once = False

    def showEvent(self, event) -> None:  # noqa: N802 - Qt override
        """The model loads (on this thread: the tests' synchronous API) when the tab is first shown, not while
        the window opens: torch alone takes seconds to import."""
        super().showEvent(event)
        if self._shown_once:
            return
        self._shown_once = True
        if self.picker.current_path():
            self.load_checkpoint(self.picker.current_path())
        else:
            self.load_default_model()
        if self.source.image() is None:
            self.pick_builtin(0)
        self._on_mask_changed()

    def _build(self) -> None:
        self.picker = ModelPicker("Model")
        self.source = ImageSource()
        self.form = SamplerForm("Sampler", n_label="Completions", n=(4, 1, 16))
        self.form.n_edit.setToolTip("How many completions of the same image to draw (one chain each)")
        self.run_bar = RunBar(self.controller, "Run inpainting", "Run Algorithm 2 on the painted region")
        self.run_bar.status.setText("Paint the pixels to fill, then Run.")
        left = side_panel(self.picker, self.source, self.form, self.run_bar, self.run_bar.progress,
                          self.run_bar.status, min_width=330)
        left.setFixedWidth(330)
        left.setFrameShape(QFrame.Shape.NoFrame)

        self.editor = MaskEditor()
        hint = QLabel("Painted pixels (overlay) are unknown and will be filled; the rest is kept. Right-drag "
                      "erases, [ ] resize the brush, wheel zooms, drop an image file here to open it.")
        hint.setWordWrap(True)
        hint.setStyleSheet("color: palette(placeholder-text);")
        paint = QGroupBox("1 \u00b7 Paint the region to fill")
        lp = QVBoxLayout(paint)
        lp.addWidget(hint)
        lp.addWidget(self.editor, 1)

        self.live = InpaintLive()
        self.result = InpaintResult()

        grid = QGridLayout(self)
        grid.addWidget(left, 0, 0, 2, 1)
        grid.addWidget(paint, 0, 1)
        grid.addWidget(self.live, 0, 2)
        grid.addWidget(self.result, 1, 1, 1, 2)
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(2, 1)
        grid.setRowStretch(0, 3)
        grid.setRowStretch(1, 1)

        self.picker.checkpoint_changed.connect(self._on_picker)
        self.source.image_changed.connect(self._on_image_changed)
        self.source.noted.connect(self.run_bar.status.setText)
        self.source.quick_mask_chosen.connect(self._on_quick_mask)
        self.form.config_changed.connect(self._validate)
        self.form.config_rejected.connect(self._validate)
        self.editor.canvas.mask_changed.connect(self._on_mask_changed)
        self.run_bar.run_button.clicked.connect(self.run)
        self.run_bar.stop_button.clicked.connect(self.stop)
        self.result.exported.connect(lambda path: self.status_message.emit(f"Wrote {path}"))

    # --- model --------------------------------------------------------------------------------
    def set_model(self, model: Any, config: Any, source: str = "model in memory", step: Optional[int] = None,
                  path: Optional[str] = None) -> None:
        """Use `model` (a ScoreModel: forward(x, labels), with .sigmas) built from `config` (a Config)."""
        self._use(model, jobs.model_info(model, config, path or source, step))

    def _use(self, model: Any, info: jobs.CheckpointInfo) -> None:
        if self.controller.is_busy():
            raise RuntimeError("cannot change the model while inpainting runs: stop it first")
        if info.arch == "mlp":
            raise ValueError(f"{Path(info.path).name} is a 2-D toy model (mlp); inpainting needs an image model")
        self._model, self.info = model, info
        self.form.load(info.sample, info.has_data_mean, model=info.model, has_guide=info.has_guide,
                       has_discriminator=info.has_discriminator)
        self.form.set_ladder(info.sigmas)
        self.picker.show_info(info)
        self.source.set_shape(info.image_size, info.channels)  # the same picture at the model's size
        self.model_changed.emit()
        self._validate()

    def load_checkpoint(self, path) -> bool:
        """Load a checkpoint (.pt or run folder) and select it in the picker; on failure the message is shown
        (the previous model stays) and False returned."""
        try:
            self._use(*jobs.load_model(str(path)))
        except (ValueError, RuntimeError) as e:
            if self._model is None:
                self.picker.show_problem(f"Cannot use {path}: {e}")
                self.run_bar.status.setText("No model yet: see Model above.")
            else:
                self.run_bar.status.setText(f"Cannot use {path}: {e} (still using the previous model)")
            return False
        current = self.picker.current_path()
        if current is None or Path(current).resolve() != Path(self.info.path).resolve():
            self.picker.set_path(self.info.path)  # emits checkpoint_changed; _on_picker sees it is loaded already
        return True

    def _on_picker(self, path: str) -> None:
        if self.info is None or Path(path).resolve() != Path(self.info.path).resolve():
            self.load_checkpoint(path)

    def load_default_model(self) -> bool:
        """The built-in MNIST model if it exists; otherwise say so and offer the newest checkpoint found."""
        builtin = jobs.builtin_model()
        if builtin.exists():
            return self.load_checkpoint(builtin)
        if self._model is None:
            self.picker.show_missing_builtin([settings.runs_root(), Path(__file__).resolve().parent.parent / "runs"])
            self.run_bar.status.setText("No model yet: see Model above.")
        return False

    # --- image and mask -------------------------------------------------------------------------
    def _on_image_changed(self, image: np.ndarray, _source: str) -> None:
        self.editor.canvas.set_image(hwc(image))
        self._validate()

    def image(self) -> Optional[np.ndarray]:
        """The current image (C, H, W) float32 at the model's size."""
        return self.source.image()

    def open_image(self, path) -> bool:
        return self.source.open_image(path)

    def pick_builtin(self, index: int) -> bool:
        return self.source.pick_builtin(index)

    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt override
        if dropped_image(event.mimeData()) is not None:
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        path = dropped_image(event.mimeData())
        if path is not None:
            self.open_image(path)
            event.acceptProposedAction()

    def _on_quick_mask(self, name: str) -> None:
        self.editor.canvas.set_mask(quick_mask(name, self.editor.canvas.mask().shape), name)

    def _on_mask_changed(self) -> None:
        self._validate()
        if self.controller.state == IDLE and self._model is not None and self.run_bar.problem() is None:
            self.run_bar.status.setText(f"{int(self.editor.canvas.mask().sum())} pixel(s) to fill: press Run.")

    # --- run -----------------------------------------------------------------------------------
    def settings(self) -> jobs.SampleSettings:
        return self.form.settings(checkpoint=self.info.path if self.info else "")

    def _problem(self) -> Optional[str]:
        if self._model is None:
            return "No model: choose a checkpoint first."
        if self.source.image() is None:
            return "No image: open one or pick a digit."
        if not self.editor.canvas.mask().any():
            return "Nothing to fill: paint over the pixels to fill (or pick a Quick mask)."
        return self.form.error()

    def _validate(self, *_args) -> None:
        if not hasattr(self, "result"):
            return  # still building
        idle = self.controller.state == IDLE
        self.run_bar.set_problem(self._problem())
        for w in (self.picker, self.source, self.form):
            w.setEnabled(idle)
        self.result.export_button.setEnabled(self.result.results is not None and idle)

    def run(self) -> bool:
        """Start inpainting with the current image, mask and settings; False (the reason is shown) if it cannot."""
        if self._problem() is not None or self.controller.is_busy():
            return False
        s = self.settings()
        try:
            plan = jobs.sampler_plan(self._model, s.sample)
        except ValueError as e:
            self.run_bar.set_problem(str(e))
            return False
        known = self.editor.canvas.known_mask()
        self._run = {"settings": s, "image": self.source.image(), "known": known, "t0": time.monotonic(),
                     "meta": {"image": self.source.source, "fill_pixels": int((~known).sum()),
                              "description": plan.description, "nfe": plan.nfe, "sigmas": list(plan.sigmas)}}
        self._final = None
        self.live.start(s.sample.sampler)
        self.run_bar.set_progress(0, plan.total_steps)
        self.run_bar.status.setText("Running\u2026")
        self.controller.start(jobs.inpaint_job(self._model, self._run["image"], known, s))
        return True

    def export_action(self) -> None:
        if self.result.results is None:
            self.status_message.emit("Nothing to export yet: run inpainting first")
        else:
            self.result.ask_export()

    def _on_event(self, state) -> None:
        self.live.chains.add_state(state)
        self.run_bar.set_progress(state.global_step)
        if state.final:
            self._final = np.array(state.x)

    def _on_errored(self, message: str) -> None:
        self.run_bar.status.setText(f"<span style='color:#c0392b'>Inpainting failed: {message}</span>")

    def _on_finished(self, _result) -> None:
        if self._run is None:
            return
        s = self._run["settings"]
        self.live.chains.finish(self._final, self._final is not None,
                                s.sample.denoise and s.sample.sampler == "annealed_langevin")
        if self._final is not None:
            self.result.show_results({**jobs.inpaint_results(self._run["image"], self._run["known"], self._final),
                                      "settings": s, "meta": dict(self._run["meta"])}, self.info)
            self.run_bar.status.setText(f"Done: {s.n} completion(s) in {time.monotonic() - self._run['t0']:.1f} s.")
        elif self.controller.last_error is None:
            self.run_bar.status.setText("Stopped before the end: the completions shown live are unfinished.")
        self._validate()
        self.run_finished.emit()

    # --- results -------------------------------------------------------------------------------
    def results(self) -> Optional[dict]:
        """The last finished run (jobs.inpaint_results, plus its settings and meta)."""
        return self.result.results

    def export_row(self, path) -> Path:
        return self.result.export_row(path)

    def screenshot_demo(self):
        """Representative content for a screenshot: MNIST test #0 with its bottom half to fill, six completions.
        A generator of the conditions the app waits for (app.take_screenshot)."""
        if self._model is None:
            return
        self.pick_builtin(0)
        self._on_quick_mask("Bottom half")
        self.form.n_edit.set_value(6)
        if self.run():
            yield lambda: not self.controller.is_busy()
