"""Train tab: pick data, preset and hyperparameters; start / pause / resume / stop; watch the loss, the
loss per noise level, speed, ETA and preview samples live."""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Dict, Optional

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QComboBox, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QLineEdit,
                               QProgressBar, QPushButton, QSplitter, QVBoxLayout, QWidget)

from . import jobs, settings
from .controller import IDLE, PAUSED, RUNNING, RunController
from .widgets.banner import MessageBanner
from .widgets.image_grid import ImageGridView
from .widgets.level_loss import LevelLossPlot
from .widgets.loss_plot import LossPlot
from .widgets.number_edit import NumberEdit
from .widgets.side_panel import side_panel

# data sources: (label, DataConfig.dataset)
SOURCES = [("Built-in MNIST (10,000 test digits, bundled)", "mnist-builtin"),
           ("torchvision data set (from a folder on disk)", "torchvision"),
           ("Folder of images (PNG, JPEG, ...)", "folder")]
TORCHVISION = [("MNIST", "mnist", 28, 1), ("Fashion-MNIST", "fashion-mnist", 28, 1),
               ("CIFAR-10", "cifar10", 32, 3), ("CelebA (64 x 64)", "celeba", 64, 3)]
FOLDER_FORMATS = [("28 x 28 grayscale", 28, 1), ("32 x 32 RGB", 32, 3), ("64 x 64 RGB", 64, 3)]
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


def format_duration(seconds: float) -> str:
    if not math.isfinite(seconds) or seconds < 0:
        return "--"
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class TrainTab(QWidget):
    """Emits checkpoint_saved(path) for every checkpoint and run_finished(checkpoint or "") at the end."""

    checkpoint_saved = Signal(str)
    run_finished = Signal(str)
    status_message = Signal(str)

    def __init__(self, controller: Optional[RunController] = None, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.controller = controller or RunController("training", self)
        self.run_dir: Optional[str] = None
        self.last_checkpoint: Optional[str] = None
        self.last_step = 0
        self._time_offset = 0.0
        # extra config values the form does not show, {section: {key: value}} (scripts and tests use it,
        # e.g. a smaller network); applied last and validated like the rest
        self.config_overrides: Dict[str, dict] = {}
        self._build()
        self.controller.state_changed.connect(self._on_state_changed)
        self.controller.event_emitted.connect(self._on_event)
        self.controller.finished.connect(self._on_finished)
        self.controller.errored.connect(self._on_errored)
        self.apply_preset("mnist-cpu")
        self._on_source_changed()
        self._on_state_changed(self.controller.state)

    # --- layout --------------------------------------------------------------------------------
    def _build(self) -> None:
        from ncsn_core.config import PRESETS
        # data
        self.source_combo = QComboBox()
        for label, key in SOURCES:
            self.source_combo.addItem(label, key)
        self.tv_combo = QComboBox()
        for label, key, _, _ in TORCHVISION:
            self.tv_combo.addItem(label, key)
        self.root_edit = QLineEdit()
        self.root_edit.setPlaceholderText("folder holding the data set files")
        self.root_button = QPushButton("Browse\u2026")
        self.folder_format = QComboBox()
        for label, _, _ in FOLDER_FORMATS:
            self.folder_format.addItem(label)
        self.folder_format.setCurrentIndex(1)
        self.data_info = QLabel()
        self.data_info.setWordWrap(True)
        self.data_preview = ImageGridView()
        self.data_preview.setMinimumHeight(110)
        self.data_preview.setMaximumHeight(130)

        data_form = QFormLayout()
        data_form.addRow("Source", self.source_combo)
        self.tv_row_label = QLabel("Data set")
        data_form.addRow(self.tv_row_label, self.tv_combo)
        root_row = QHBoxLayout()
        root_row.addWidget(self.root_edit, 1)
        root_row.addWidget(self.root_button)
        self.root_row_label = QLabel("Folder")
        data_form.addRow(self.root_row_label, root_row)
        self.format_row_label = QLabel("Resize to")
        data_form.addRow(self.format_row_label, self.folder_format)
        data_box = QGroupBox("Data")
        dl = QVBoxLayout(data_box)
        dl.addLayout(data_form)
        dl.addWidget(self.data_info)
        dl.addWidget(self.data_preview)

        # preset + hyperparameters
        self.preset_combo = QComboBox()
        for name in PRESETS:
            if name != "toy":
                self.preset_combo.addItem(name)
        self.fields: Dict[str, NumberEdit] = {
            "n_iters": NumberEdit("n_iters", 12000, int, 1, 10_000_000),
            "batch_size": NumberEdit("batch size", 64, int, 1, 4096),
            "lr": NumberEdit("lr", 1e-3, float, 0, 1, exclusive_min=True),
            "ema_rate": NumberEdit("EMA rate", 0.999, float, 0, 0.999999, optional=True, exclusive_min=True),
            "save_every": NumberEdit("save every", 500, int, 1),
            "preview_every": NumberEdit("preview every", 250, int, 0),
            "seed": NumberEdit("seed", 0, int, 0, 2 ** 31 - 1),
            "sigma_begin": NumberEdit("sigma_1", 1.0, float, 0, exclusive_min=True),
            "sigma_end": NumberEdit("sigma_L", 0.01, float, 0, exclusive_min=True),
            "num_classes": NumberEdit("L", 10, int, 1, 1000),
        }
        self.fields["ema_rate"].setPlaceholderText("empty = no EMA")
        self.fields["preview_every"].setToolTip("steps between preview samples; 0 = no previews")
        hp_form = QFormLayout()
        hp_form.addRow("Preset", self.preset_combo)
        labels = {"n_iters": "Iterations", "batch_size": "Batch size", "lr": "Learning rate (Adam)",
                  "ema_rate": "EMA rate", "save_every": "Checkpoint every", "preview_every": "Preview every",
                  "seed": "Seed", "sigma_begin": "\u03c3\u2081 (largest)", "sigma_end": "\u03c3_L (smallest)",
                  "num_classes": "L (noise levels)"}
        for key, w in self.fields.items():
            hp_form.addRow(labels[key], w)
        hp_box = QGroupBox("Model and training")
        hp_box.setLayout(hp_form)

        self.run_dir_edit = QLineEdit()
        self.run_dir_edit.setPlaceholderText("automatic: runs/<preset>-<date>-<time>")
        run_form = QFormLayout()
        run_form.addRow("Run folder", self.run_dir_edit)

        self.form_error = QLabel()
        self.form_error.setWordWrap(True)
        self.form_error.setObjectName("form_error")
        self.start_button = QPushButton("Start")
        self.start_button.setToolTip("Start training (F5)")
        self.pause_button = QPushButton("Pause")
        self.pause_button.setToolTip("Pause: writes a checkpoint, then holds the run")
        self.resume_button = QPushButton("Resume")
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stop: saves a checkpoint and ends the run")
        buttons = QHBoxLayout()
        for b in (self.start_button, self.pause_button, self.resume_button, self.stop_button):
            buttons.addWidget(b)

        scroll = side_panel(data_box, hp_box, run_form, self.form_error, buttons)

        # right: progress, plots, previews
        self.banner = MessageBanner(self)
        self.progress = QProgressBar()
        self.progress.setFormat("step %v / %m")
        self.progress.setValue(0)
        self.stats = QLabel("Not running.")
        self.stats.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.loss_plot = LossPlot(title="DSM loss (raw faint, smoothed bold)")
        self.level_plot = LevelLossPlot()
        self.loss_plot.beta_changed.connect(self.level_plot.set_beta)
        self.preview = ImageGridView()
        self.preview.set_placeholder("Preview samples appear here during training")
        self.preview_label = QLabel("Preview samples (EMA weights)")
        pv = QWidget()
        pvl = QVBoxLayout(pv)
        pvl.setContentsMargins(0, 0, 0, 0)
        pvl.addWidget(self.preview_label)
        pvl.addWidget(self.preview, 1)

        bottom = QSplitter(Qt.Orientation.Horizontal)
        bottom.addWidget(self.level_plot)
        bottom.addWidget(pv)
        bottom.setSizes([500, 300])
        plots = QSplitter(Qt.Orientation.Vertical)
        plots.addWidget(self.loss_plot)
        plots.addWidget(bottom)
        plots.setSizes([400, 300])
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(self.banner)
        top = QHBoxLayout()
        top.addWidget(self.progress, 2)
        top.addWidget(self.stats, 3)
        rl.addLayout(top)
        rl.addWidget(plots, 1)

        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(scroll)
        split.addWidget(right)
        split.setStretchFactor(0, 0)
        split.setStretchFactor(1, 1)
        split.setSizes([380, 1000])
        lay = QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(split)

        self.source_combo.currentIndexChanged.connect(self._on_source_changed)
        self.tv_combo.currentIndexChanged.connect(self._on_source_changed)
        self.folder_format.currentIndexChanged.connect(self._validate)
        self.root_edit.editingFinished.connect(self._on_source_changed)
        self.root_edit.textChanged.connect(self._validate)
        self.root_button.clicked.connect(self._browse_root)
        self.preset_combo.currentTextChanged.connect(self.apply_preset)
        for w in self.fields.values():
            w.textChanged.connect(self._validate)
        self.start_button.clicked.connect(self.start)
        self.pause_button.clicked.connect(self.pause)
        self.resume_button.clicked.connect(self.resume)
        self.stop_button.clicked.connect(self.stop)

    # --- the form ------------------------------------------------------------------------------
    def apply_preset(self, name: str) -> None:
        from ncsn_core.config import get_preset
        cfg = get_preset(name)
        if self.preset_combo.currentText() != name:
            self.preset_combo.setCurrentText(name)
        self._fill_from_config(cfg.to_dict())

    def _fill_from_config(self, d: dict) -> None:
        t, n = d["train"], d["noise"]
        for key in ("n_iters", "batch_size", "lr", "ema_rate", "save_every", "preview_every", "seed"):
            self.fields[key].set_value(t[key])
        for key in ("sigma_begin", "sigma_end", "num_classes"):
            self.fields[key].set_value(n[key])
        self._validate()

    def set_data_folder(self, folder: str) -> None:
        """Use a folder of images (e.g. dropped onto the window)."""
        self.source_combo.setCurrentIndex([k for _, k in SOURCES].index("folder"))
        self.root_edit.setText(folder)
        self._on_source_changed()

    def _browse_root(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Choose the data folder", self.root_edit.text() or str(Path.home()))
        if path:
            self.root_edit.setText(path)
            self._on_source_changed()

    def source(self) -> str:
        return self.source_combo.currentData()

    def _on_source_changed(self, *_args) -> None:
        src = self.source()
        tv, folder = src == "torchvision", src == "folder"
        for w in (self.tv_row_label, self.tv_combo):
            w.setVisible(tv)
        for w in (self.root_row_label, self.root_edit, self.root_button):
            w.setVisible(tv or folder)
        for w in (self.format_row_label, self.folder_format):
            w.setVisible(folder)
        self.root_row_label.setText("Data folder" if tv else "Image folder")
        if src == "mnist-builtin":
            self._show_builtin_preview()
        elif folder:
            self._show_folder_preview(self.root_edit.text().strip())
        else:
            name = self.tv_combo.currentData()
            self.data_preview.clear()
            self.data_preview.set_placeholder("preview after loading")
            self.data_info.setText(f"torchvision '{name}' read from the folder below (files must already be there; "
                                   f"nothing is downloaded). Images are loaded when training starts.")
        self._validate()

    def _show_builtin_preview(self) -> None:
        try:
            from ncsn_core.resources import load_builtin_mnist
            images, labels = load_builtin_mnist()
        except Exception as e:  # noqa: BLE001 - a damaged resource is a message
            self.data_info.setText(f"Built-in MNIST unavailable: {e}")
            self.data_preview.clear()
            return
        picks = [int(np.flatnonzero(labels == d)[k]) for k in range(3) for d in range(10)]
        self.data_preview.set_images(images[picks][:, None].astype(np.float32) / 255.0, nrow=10, immediate=True)
        self.data_info.setText(f"{len(images):,} digits, 28 x 28 grayscale; the preset keeps the last 1,000 out "
                               f"of training for evaluation.")

    def _show_folder_preview(self, folder: str) -> None:
        self.data_preview.clear()
        if not folder:
            self.data_info.setText("Choose a folder of images, or drop one onto the window.")
            self.data_preview.set_placeholder("no folder chosen")
            return
        p = Path(folder)
        files = sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES) if p.is_dir() else []
        if not files:
            self.data_info.setText(f"No images found in {folder}." if p.is_dir() else f"{folder} is not a folder.")
            self.data_preview.set_placeholder("no images")
            return
        _, size, ch = FOLDER_FORMATS[self.folder_format.currentIndex()]
        thumbs = []
        from PIL import Image
        for f in files[:20]:
            try:
                with Image.open(f) as im:
                    im = im.convert("L" if ch == 1 else "RGB").resize((size, size))
                    a = np.asarray(im, dtype=np.float32) / 255.0
                    thumbs.append(a[None] if ch == 1 else np.moveaxis(a, -1, 0))
            except Exception:  # noqa: BLE001 - unreadable files are reported by the loader at start
                continue
        if thumbs:
            self.data_preview.set_images(np.stack(thumbs), nrow=10, immediate=True)
        self.data_info.setText(f"{len(files):,} image files in {p.name}/ (first {len(thumbs)} shown, resized to "
                               f"{size} x {size}).")

    def config_dict(self) -> dict:
        """The Config (as a dict) the form describes; raises ValueError naming the first bad field."""
        from ncsn_core.config import get_preset
        d = get_preset(self.preset_combo.currentText()).to_dict()
        d["model"]["channels"] = list(d["model"]["channels"])
        vals = {k: w.value() for k, w in self.fields.items()}
        for key in ("n_iters", "batch_size", "lr", "ema_rate", "save_every", "preview_every", "seed"):
            d["train"][key] = vals[key]
        for key in ("sigma_begin", "sigma_end", "num_classes"):
            d["noise"][key] = vals[key]
        src = self.source()
        if src == "mnist-builtin":
            d["data"].update(dataset="mnist-builtin", root=None, channels=1)
        else:
            root = self.root_edit.text().strip()
            if not root:
                raise ValueError("choose the data folder (Browse\u2026) or switch to the built-in MNIST")
            if src == "torchvision":
                _, key, size, ch = TORCHVISION[self.tv_combo.currentIndex()]
            else:
                key = "folder"
                _, size, ch = FOLDER_FORMATS[self.folder_format.currentIndex()]
            d["data"].update(dataset=key, root=root, image_size=size, channels=ch, holdout=0)
        for section, kw in self.config_overrides.items():
            d[section].update(kw)
        err = jobs.validate_config(d)
        if err:
            raise ValueError(err)
        return d

    def form_error_text(self) -> Optional[str]:
        for w in self.fields.values():
            if w.error():
                return w.error()
        try:
            self.config_dict()
        except ValueError as e:
            return str(e)
        return None

    def _validate(self, *_args) -> None:
        err = self.form_error_text()
        self.form_error.setText(f"\u26a0 {err}" if err else "")
        self.form_error.setVisible(bool(err))
        self._update_buttons()

    def _update_buttons(self) -> None:
        st = self.controller.state
        valid = not self.form_error.text()
        self.start_button.setEnabled(st == IDLE and valid)
        self.pause_button.setEnabled(st == RUNNING)
        self.resume_button.setEnabled(st == PAUSED)
        self.stop_button.setEnabled(st in (RUNNING, PAUSED))
        for w in list(self.fields.values()) + [self.preset_combo, self.source_combo, self.tv_combo, self.root_edit,
                                               self.root_button, self.folder_format, self.run_dir_edit]:
            w.setEnabled(st == IDLE)

    # --- commands ------------------------------------------------------------------------------
    def start(self) -> bool:
        """Start a new run from the form (False, with the reason shown, when the form is invalid)."""
        if self.controller.state != IDLE:
            return False
        try:
            cfg = self.config_dict()
        except ValueError as e:
            self.form_error.setText(f"\u26a0 {e}")
            self.form_error.show()
            return False
        run_dir = self.run_dir_edit.text().strip()
        if not run_dir:
            run_dir = str(settings.runs_root() / f"{cfg['name']}-{time.strftime('%Y%m%d-%H%M%S')}")
        elif (Path(run_dir) / "checkpoints").is_dir() and any((Path(run_dir) / "checkpoints").iterdir()):
            self.banner.show_message(f"{run_dir} already holds a run: resume it, or choose another folder.",
                                     "warning", [("Resume it", lambda: self.resume_run(run_dir))])
            return False
        self._begin(cfg, run_dir, resume=False)
        return True

    def resume_run(self, run_dir: str) -> bool:
        """Continue an unfinished run from its newest checkpoint (its own config.json wins)."""
        if self.controller.state != IDLE:
            return False
        try:
            cfg = json.loads((Path(run_dir) / "config.json").read_text())
        except (OSError, ValueError) as e:
            self.banner.show_message(f"Cannot resume {run_dir}: {e}", "error")
            return False
        if cfg.get("name") in [self.preset_combo.itemText(i) for i in range(self.preset_combo.count())]:
            self.preset_combo.blockSignals(True)
            self.preset_combo.setCurrentText(cfg["name"])
            self.preset_combo.blockSignals(False)
        self._fill_from_config(cfg)
        self.run_dir_edit.setText(run_dir)
        self._begin(cfg, run_dir, resume=True)
        return True

    def _begin(self, cfg: dict, run_dir: str, resume: bool) -> None:
        self.banner.dismiss()
        self.run_dir = run_dir
        settings.add_recent_run(run_dir)
        if resume:
            self.show_run_history(run_dir)
        else:
            self.loss_plot.clear()
            self.preview.clear()
            self.level_plot.set_sigmas([])
            self._time_offset = 0.0
        self.progress.setMaximum(int(cfg["train"]["n_iters"]))
        self.stats.setText("Loading data and building the model\u2026")
        self._ended = False
        self.status_message.emit(f"Training into {run_dir}")
        self.controller.start(lambda: jobs.train_job(cfg, run_dir, resume=resume), pause_command="pause")

    def pause(self) -> None:
        if self.controller.state == RUNNING:
            self.controller.pause()
            self.stats.setText(self.stats.text() + "  \u2014 pausing (saving a checkpoint)\u2026")

    def resume(self) -> None:
        if self.controller.state == PAUSED:
            self.controller.resume()

    def stop(self) -> None:
        if self.controller.state in (RUNNING, PAUSED):
            self.controller.stop()
            self.stats.setText("Stopping: saving a checkpoint\u2026")

    def run_action(self) -> None:
        """F5: start when idle, resume when paused."""
        if self.controller.state == IDLE:
            self.start()
        elif self.controller.state == PAUSED:
            self.resume()

    def export_action(self) -> None:
        """Ctrl+S: save a checkpoint now (the run continues)."""
        if self.controller.state in (RUNNING, PAUSED):
            self.controller.send("save")
            self.status_message.emit("Saving a checkpoint\u2026")
        else:
            self.status_message.emit("No training is running: checkpoints are saved while training")

    # --- history -------------------------------------------------------------------------------
    def show_run_history(self, run_dir: str) -> int:
        """Fill the plots from a run folder's metrics.jsonl and its newest preview PNG; returns the number of
        points shown."""
        recs = jobs.read_metrics(run_dir)
        try:
            cfg = json.loads((Path(run_dir) / "config.json").read_text())
            from ncsn_core.config import Config
            from ncsn_core.noise import sigmas_from_config
            sig = [float(v) for v in sigmas_from_config(Config.from_dict(cfg).noise)]
            self.progress.setMaximum(int(cfg["train"]["n_iters"]))
        except (OSError, ValueError, KeyError):
            sig = [math.nan] * (len(recs[0].get("loss_per_sigma") or []) if recs else 0)
        t0 = recs[0].get("time", 0.0) if recs else 0.0
        steps = [r["step"] for r in recs]
        times = [float(r.get("time", t0)) - t0 for r in recs]
        self.loss_plot.set_history(steps, times, [r["loss"] for r in recs])
        self.level_plot.set_sigmas(sig)
        rows = [r.get("loss_per_sigma") or [None] * len(sig) for r in recs]
        self.level_plot.set_history(steps, [[math.nan if v is None else v for v in row] for row in rows])
        self._time_offset = times[-1] if times else 0.0
        if steps:
            self.progress.setValue(int(steps[-1]))
            self.last_step = int(steps[-1])
            self.stats.setText(f"Run {Path(run_dir).name} (from its metrics.jsonl): step {steps[-1]:,}, "
                               f"last loss {recs[-1]['loss']:.4g}")
        previews = sorted((Path(run_dir) / "samples").glob("preview_*.png"))
        if previews:
            from PIL import Image
            with Image.open(previews[-1]) as im:
                a = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
            self.preview.set_images(np.moveaxis(a, -1, 0)[None], nrow=1, immediate=True)
            self.preview_label.setText(f"Preview samples at step {int(previews[-1].stem.split('_')[1]):,} (EMA weights)")
        return len(recs)

    def screenshot_demo(self) -> None:
        """Representative content for a screenshot: the newest run under the runs folder, if any."""
        runs = [Path(r) for r in settings.recent_runs()]
        root = settings.runs_root()
        if root.is_dir():
            runs += sorted((p.parent for p in root.glob("*/metrics.jsonl")), key=lambda p: p.stat().st_mtime,
                           reverse=True)
        for r in runs:
            if (r / "metrics.jsonl").exists() and self.show_run_history(str(r)) > 0:
                return

    # --- events --------------------------------------------------------------------------------
    def _on_state_changed(self, state: str) -> None:
        self._update_buttons()
        if state == PAUSED:
            self.status_message.emit("Training paused")

    def _on_event(self, ev: object) -> None:
        kind = type(ev).__name__
        if kind == "TrainStarting":
            if not ev.resume or not self.level_plot.curves:  # a resumed run keeps the history it showed
                self.level_plot.set_sigmas(ev.sigmas)
            self.progress.setMaximum(int(ev.config["train"]["n_iters"]))
        elif kind == "TrainStep":
            self.last_step = ev.step
            self.loss_plot.append(ev.step, self._time_offset + ev.elapsed_s, ev.loss)
            self.level_plot.append(ev.step, ev.loss_per_sigma)
            self.progress.setMaximum(ev.n_iters)
            self.progress.setValue(ev.step)
            self.stats.setText(f"step {ev.step:,} / {ev.n_iters:,}   loss {ev.loss:.4g}   "
                               f"{ev.images_per_s:,.0f} images/s   elapsed {format_duration(ev.elapsed_s)}   "
                               f"ETA {format_duration(ev.eta_s)}")
        elif kind == "Preview":
            imgs = np.asarray(ev.images)
            self.preview.set_images(imgs, nrow=jobs.grid_nrow(len(imgs)))
            self.preview_label.setText(f"Preview samples at step {ev.step:,} (EMA weights, few Langevin steps)")
        elif kind == "CheckpointSaved":
            self.last_checkpoint = ev.path
            self.status_message.emit(f"Checkpoint saved: {ev.path}")
            self.checkpoint_saved.emit(ev.path)
            if self.controller.state == PAUSED:
                self.stats.setText(f"Paused at step {ev.step:,}; checkpoint saved. Resume continues the same run.")
        elif kind == "Paused":
            pass  # the worker already holds the run; the CheckpointSaved before it told the user
        elif kind == "Finished":
            self._ended = True
            self.last_step = ev.step
            if ev.checkpoint:
                self.last_checkpoint = ev.checkpoint
            if ev.reason == "diverged":
                self.banner.show_message(f"Training diverged: {ev.message}", "error")
            text = {"done": "Finished", "stopped": "Stopped"}.get(ev.reason, "Ended")
            self.stats.setText(f"{text} at step {ev.step:,}." + (f" Checkpoint: {ev.checkpoint}" if ev.checkpoint
                                                                 else ""))

    def _on_errored(self, message: str) -> None:
        self.banner.show_message(f"Training failed: {message}", "error")
        self.stats.setText("Failed; see the message above.")

    def _on_finished(self, _result: object) -> None:
        self._update_buttons()
        if not getattr(self, "_ended", True) and self.controller.last_error is None:
            self.stats.setText("Stopped before the first step; nothing was saved.")
        self.run_finished.emit(self.last_checkpoint or "")
        self.status_message.emit(f"Training ended at step {self.last_step:,}" +
                                 (f"; checkpoint {self.last_checkpoint}" if self.last_checkpoint else ""))
