"""Inpainting tab (paper, Algorithm 2): paint the region to fill, run annealed Langevin with the known
pixels following the data's noisy path, watch it level by level, export the paper-style row."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Optional

import numpy as np
from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QApplication, QFileDialog, QGridLayout, QGroupBox, QHBoxLayout, QLabel, QMessageBox,
                               QPushButton, QVBoxLayout, QWidget)

from . import jobs, settings
from .controller import IDLE, RunController
from .widgets.chain_view import ChainView
from .widgets.image_row import ImageRow, hwc
from .widgets.image_source import IMAGE_SUFFIXES, ImageSource
from .widgets.mask_canvas import MaskEditor, quick_mask
from .widgets.model_picker import ModelPicker
from .widgets.run_bar import RunBar
from .widgets.sampler_form import SamplerForm


def _hint(text: str) -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setStyleSheet("color: palette(placeholder-text);")
    return label


class InpaintTab(QWidget):
    """Open an image, paint the region to fill, and run Algorithm 2 on n chains at once.

    API used by tests and the main window: ``set_model(model, config)``, ``load_checkpoint(path)``,
    ``set_image(array)``, ``open_image(path)``, ``pick_builtin(index)``, ``run()``, ``stop()``, ``results()``,
    ``export_row(path)``; signals ``run_finished`` (after the results are shown) and ``model_changed``."""

    run_finished = Signal()
    model_changed = Signal()
    status_message = Signal(str)  # the main window shows it in its status bar

    def __init__(self, controller: Optional[RunController] = None, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.controller = controller if controller is not None else RunController("inpaint", self)
        self._model: Any = None                        # a ScoreModel, only ever handed to jobs
        self.info: Optional[jobs.CheckpointInfo] = None
        self._image: Optional[np.ndarray] = None       # (C, H, W) float32 at the model's size
        self._image_source = ""
        self._digits: Optional[np.ndarray] = None
        self._run: Optional[dict] = None               # the settings, image and mask of the run under way
        self._final: Optional[np.ndarray] = None       # the sampler's final x (n, C, H, W)
        self._results: Optional[dict] = None
        self._strip: list = []                          # (completion 1, sigma caption) at each level's end
        self.setAcceptDrops(True)
        self._build()
        c = self.controller
        c.state_changed.connect(self._validate)
        c.event_emitted.connect(self._on_event)
        c.errored.connect(self._on_errored)
        c.finished.connect(self._on_finished)
        app = QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)
        if self.picker.current_path():
            self.load_checkpoint(self.picker.current_path())
        else:
            self.load_default_model()
        if self._image is None:
            self.pick_builtin(0)
        self._on_mask_changed()

    def _build(self) -> None:
        self.picker = ModelPicker("Model")
        self.latest_button = QPushButton()
        self.latest_button.hide()
        self.picker.layout().addWidget(self.latest_button)
        self.source = ImageSource()
        self.form = SamplerForm("Sampler (Algorithm 2)", n_label="Completions", n=(4, 1, 16))
        self.form.n_edit.setToolTip("How many completions of the same image to draw (one chain each)")
        self.run_bar = RunBar(self.controller, "Run inpainting", "Run Algorithm 2 on the painted region")
        self.run_bar.status.setText("Paint the pixels to fill, then Run.")
        left = QVBoxLayout()
        for w in (self.picker, self.source, self.form, self.run_bar, self.run_bar.progress, self.run_bar.status):
            left.addWidget(w)
        left.addStretch(1)
        left_w = QWidget()
        left_w.setLayout(left)
        left_w.setFixedWidth(330)

        self.editor = MaskEditor()
        paint = QGroupBox("1 \u00b7 Paint the region to fill")
        lp = QVBoxLayout(paint)
        lp.addWidget(_hint("Painted pixels (overlay) are unknown and will be filled; the rest is kept. Right-drag "
                           "erases, [ ] resize the brush, wheel zooms, drop an image file here to open it."))
        lp.addWidget(self.editor, 1)

        self.chains = ChainView("The chains appear here while they run: at each level the known pixels are "
                                "re-noised (y = image + \u03c3_i\u00b7z) and the painted region is updated by "
                                "Langevin steps.")
        self.strip_view = ImageRow("(filled in as the levels end)")
        self.strip_view.setMinimumHeight(70)
        live = QGroupBox("2 \u00b7 Live: every chain's current x")
        ll = QVBoxLayout(live)
        ll.addWidget(self.chains, 3)
        ll.addWidget(QLabel("Completion 1 at the end of each level, captioned with its \u03c3_i (\u03c3_1 \u2192 "
                            "\u03c3_L):"))
        ll.addWidget(self.strip_view, 1)

        self.result_view = ImageRow("Run to see: original \u00b7 occluded input \u00b7 completions")
        self.export_button = QPushButton("Export row as PNG\u2026")
        self.export_button.setToolTip("The row as one PNG grid (as `ncsn inpaint` writes it), with the settings, "
                                      "seed and checkpoint stored in its text chunks")
        self.result_note = _hint("")
        result = QGroupBox("3 \u00b7 Result: original \u00b7 occluded input \u00b7 completions")
        lr = QVBoxLayout(result)
        lr.addWidget(self.result_view, 1)
        br = QHBoxLayout()
        br.addWidget(self.result_note, 1)
        br.addWidget(self.export_button)
        lr.addLayout(br)

        grid = QGridLayout(self)
        grid.addWidget(left_w, 0, 0, 2, 1)
        grid.addWidget(paint, 0, 1)
        grid.addWidget(live, 0, 2)
        grid.addWidget(result, 1, 1, 1, 2)
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(2, 1)
        grid.setRowStretch(0, 3)
        grid.setRowStretch(1, 1)

        self.picker.checkpoint_changed.connect(self._on_picker)
        self.latest_button.clicked.connect(lambda: self.load_checkpoint(self.latest_button.toolTip()))
        self.source.file_chosen.connect(self.open_image)
        self.source.digit_chosen.connect(self.pick_builtin)
        self.source.quick_mask_chosen.connect(self._on_quick_mask)
        self.form.config_changed.connect(self._validate)
        self.form.config_rejected.connect(self._validate)
        self.editor.canvas.mask_changed.connect(self._on_mask_changed)
        self.run_bar.run_button.clicked.connect(self.run)
        self.run_bar.stop_button.clicked.connect(self.stop)
        self.chains.level_finished.connect(self._on_level_finished)
        self.export_button.clicked.connect(self._export_dialog)

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
        self.form.load(info.sample, info.has_data_mean)
        self.form.set_ladder(info.sigmas)
        self.picker.show_info(info)
        self.latest_button.hide()
        if self._image is not None:  # the same picture at the new model's size and channels
            self.set_image(hwc(self._image), self._image_source)
        self.model_changed.emit()
        self._validate()

    def load_checkpoint(self, path) -> bool:
        """Load a checkpoint (.pt or run folder) and select it in the picker; on failure the message is shown
        (the previous model stays) and False returned."""
        try:
            self._use(*jobs.load_model(str(path)))
        except (ValueError, RuntimeError) as e:
            self._show_model_problem(f"Cannot use {path}: {e}")
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
        roots = {settings.runs_root().resolve(), (Path(__file__).resolve().parent.parent / "runs").resolve()}
        ckpts = sorted({p for r in roots for p in r.glob("*/checkpoints/ckpt_*.pt")}, key=lambda p: p.stat().st_mtime)
        self._show_model_problem(
            f"The built-in model {builtin} does not exist yet (it is made by training the mnist-cpu preset). "
            f"Click <b>Open\u2026</b> above and pick a checkpoint .pt file"
            + (", or use the newest one found below." if ckpts else "."))
        if ckpts and self._model is None:
            self.latest_button.setText(f"Use {ckpts[-1].parent.parent.name}/{ckpts[-1].name}")
            self.latest_button.setToolTip(str(ckpts[-1]))
            self.latest_button.show()
        return False

    def _show_model_problem(self, text: str) -> None:
        if self._model is None:
            self.picker.show_problem(text)
            self.run_bar.status.setText("No model yet: see Model above.")
        else:
            self.run_bar.status.setText(f"{text} (still using the previous model)")
        self._validate()

    # --- image and mask -------------------------------------------------------------------------
    def set_image(self, image: np.ndarray, source: str = "image") -> None:
        """(H, W) or (H, W, 3) array (float in [0, 1] or uint8), converted to the model's size and channels."""
        size, channels = (self.info.image_size, self.info.channels) if self.info else (28, 1)
        self._image, self._image_source = jobs.to_model_image(image, size, channels), source
        self.editor.canvas.set_image(hwc(self._image))
        self.source.show_image(source, size, size)
        self._validate()

    def image(self) -> Optional[np.ndarray]:
        """The current image (C, H, W) float32 at the model's size."""
        return None if self._image is None else self._image.copy()

    def open_image(self, path) -> bool:
        path = Path(path)
        try:
            a = jobs.read_image_file(path)
            self.set_image(a, source=path.name)
        except ValueError as e:
            self.run_bar.status.setText(str(e))
            return False
        if a.shape[:2] != self._image.shape[1:]:
            self.run_bar.status.setText(f"Resized {path.name} from {a.shape[1]}\u00d7{a.shape[0]} to the model's "
                                        f"{self._image.shape[2]}\u00d7{self._image.shape[1]}.")
        return True

    def pick_builtin(self, index: int) -> bool:
        if self._digits is None:
            try:
                self._digits = jobs.builtin_digits()[0]
            except RuntimeError as e:  # DataError: the bundled digits are missing or damaged
                self.source.show_problem(f"The built-in MNIST digits cannot be read: {e}")
                return False
        index = int(index) % len(self._digits)
        self.source.set_digit(index)
        self.set_image(self._digits[index], source=f"MNIST test #{index}")
        return True

    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt override
        if self._dropped_path(event.mimeData()) is not None:
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event) -> None:  # noqa: N802
        path = self._dropped_path(event.mimeData())
        if path is not None:
            self.open_image(path)
            event.acceptProposedAction()

    @staticmethod
    def _dropped_path(mime) -> Optional[Path]:
        for url in mime.urls() if mime.hasUrls() else []:
            if url.isLocalFile() and Path(url.toLocalFile()).suffix.lower() in IMAGE_SUFFIXES:
                return Path(url.toLocalFile())
        return None

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
        if self._image is None:
            return "No image: open one or pick a digit."
        if not self.editor.canvas.mask().any():
            return "Nothing to fill: paint over the pixels to fill (or pick a Quick mask)."
        return self.form.error()

    def _validate(self, *_args) -> None:
        if not hasattr(self, "export_button"):
            return  # still building
        idle = self.controller.state == IDLE
        self.run_bar.set_problem(self._problem())
        for w in (self.picker, self.source, self.form):
            w.setEnabled(idle)
        self.export_button.setEnabled(self._results is not None and idle)

    def run(self) -> bool:
        """Start inpainting with the current image, mask and settings; False (the reason is shown) if it cannot."""
        if self._problem() is not None or self.controller.is_busy():
            return False
        s = self.settings()
        known = self.editor.canvas.known_mask()
        self._run = {"settings": s, "image": self._image.copy(), "known": known, "t0": time.monotonic(),
                     "meta": {"image": self._image_source, "fill_pixels": int((~known).sum())}}
        self._final = None
        self.chains.start()
        self._strip = []
        self.strip_view.clear()
        self.run_bar.set_progress(0, len(self.info.sigmas) * s.n_steps_each)
        self.run_bar.status.setText("Running\u2026")
        self.controller.start(jobs.inpaint_job(self._model, self._run["image"], known, s))
        return True

    def stop(self) -> None:
        if self.controller.state in ("running", "paused"):
            self.controller.stop()
            self.run_bar.status.setText("Stopping\u2026")

    def run_action(self) -> None:
        self.run()

    def export_action(self) -> None:
        if self._results is None:
            self.status_message.emit("Nothing to export yet: run inpainting first")
        else:
            self._export_dialog()

    def is_running(self) -> bool:
        return self.controller.is_busy()

    def _on_event(self, state) -> None:
        self.chains.add_state(state)
        self.run_bar.set_progress(state.global_step)
        if state.final:
            self._final = np.array(state.x)

    def _on_level_finished(self, _level: int, sigma: float, x: np.ndarray) -> None:
        self._strip.append((x[0], f"{sigma:.2g}"))  # completion 1 at the end of the level (L small images at most)
        self.strip_view.set_images(*zip(*self._strip))

    def _on_errored(self, message: str) -> None:
        self.run_bar.status.setText(f"<span style='color:#c0392b'>Inpainting failed: {message}</span>")

    def _on_finished(self, _result) -> None:
        if self._run is None:
            return
        s = self._run["settings"]
        self.chains.finish(self._final, self._final is not None, s.denoise)
        if self._final is not None:
            self._show_results(self._final)
            self.run_bar.status.setText(f"Done: {s.n} completion(s) in {time.monotonic() - self._run['t0']:.1f} s.")
        elif self.controller.last_error is None:
            self.run_bar.status.setText("Stopped before the end: the completions shown live are unfinished.")
        self._validate()
        self.run_finished.emit()

    # --- results -------------------------------------------------------------------------------
    def _show_results(self, x: np.ndarray) -> None:
        r = self._run
        img, m = r["image"], r["known"][None].astype(np.float32)
        # the known pixels are pasted from the original: the sampler's own copy carries sigma_L noise
        # (without denoising), which is not part of the completion
        completions = np.clip(x * (1 - m) + img[None] * m, 0, 1).astype(np.float32)
        self._results = {"original": img.copy(), "occluded": img * m, "completions": completions, "raw": x.copy(),
                         "known": r["known"].copy(), "settings": r["settings"], "meta": dict(r["meta"])}
        self.result_view.set_images([img, img * m, *completions],
                                    ["original", "occluded"] + [f"completion {k + 1}" for k in range(len(x))])
        s = r["settings"]
        self.result_note.setText(f"seed {s.seed}, \u03b5 = {s.step_lr:g}, T = {s.n_steps_each}, start {s.init}, "
                                 f"\u03ba = {s.variance_correction:g}, denoise {'on' if s.denoise else 'off'}; "
                                 f"known pixels pasted from the original.")

    def results(self) -> Optional[dict]:
        """The last finished run: original (C, H, W), occluded (C, H, W), completions (n, C, H, W) with the
        known pixels pasted from the original, raw (n, C, H, W) the sampler's final x, known (H, W) bool."""
        return self._results

    def export_row(self, path) -> Path:
        """Write original, occluded and completions as one PNG row with the settings as metadata."""
        if self._results is None:
            raise RuntimeError("nothing to export yet: run inpainting first")
        r, s = self._results, self._results["settings"]
        meta = {"checkpoint": self.info.path, "step": self.info.step, "seed": s.seed, "step_lr": s.step_lr,
                "n_steps_each": s.n_steps_each, "denoise": s.denoise, "init": s.init,
                "variance_correction": s.variance_correction, "n": s.n, **r["meta"],
                "layout": "original, occluded, then completions", "known_pixels": "pasted from the original",
                "config": self.info.config}
        return jobs.export_inpaint_row(np.concatenate([r["original"][None], r["occluded"][None], r["completions"]]),
                                       meta, str(path))

    def _export_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export inpainting row", "inpainting.png", "PNG (*.png)")
        if not path:
            return
        path = path if path.lower().endswith(".png") else path + ".png"
        try:
            self.export_row(path)
        except (OSError, RuntimeError) as e:
            QMessageBox.warning(self, "Cannot export", str(e))
            return
        self.result_note.setText(f"Wrote {path}")
        self.status_message.emit(f"Wrote {path}")

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

    # --- lifetime ------------------------------------------------------------------------------
    def shutdown(self, timeout_ms: int = 5000) -> None:
        """Stop a running inpainting and wait for its thread (a QThread must not outlive its widget)."""
        if self.controller.state in ("running", "paused"):
            self.controller.stop()
        self.controller.wait(timeout_ms)

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt override
        self.shutdown()
        super().closeEvent(event)
