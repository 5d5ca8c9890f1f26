"""Choose a model: the built-in one, the run just trained, recent files, the newest checkpoint of each run, or
"Open..." (a file dialog); a line below describes the chosen model or says what is wrong with it."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (QComboBox, QFileDialog, QGroupBox, QHBoxLayout, QLabel, QPushButton, QSizePolicy,
                               QVBoxLayout, QWidget)

from .. import jobs, settings


def describe(info: jobs.CheckpointInfo) -> str:
    """One model in two lines: file and step, then preset, network, data shape and noise ladder."""
    step = f" \u00b7 step {info.step:,}" if info.step is not None else ""
    shape = "2-D points (a toy model: use the Toy 2-D lab)" if info.arch == "mlp" else \
        f"{info.channels}\u00d7{info.image_size}\u00d7{info.image_size} images"
    s = info.sigmas
    ema = " \u00b7 EMA weights" if info.has_ema else ""
    ema += " \u00b7 with a guide model" if info.has_guide else ""
    ema += " \u00b7 with a discriminator" if info.has_discriminator else ""
    return (f"<b>{Path(info.path).name}</b>{step}<br>{info.name} \u00b7 {info.arch} network \u00b7 {shape} \u00b7 "
            f"L = {len(s)} levels, \u03c3 {s[0]:.3g} \u2192 {s[-1]:.3g}{ema}")


class ModelPicker(QGroupBox):
    """A combo of known checkpoints (items carry the path as data) and Open..., above a description of the model.

    `checkpoint_changed(path)` on every new choice. With a `reader` (a controller.LatestRun, handed in: widgets
    do not import the bridge) the picker reads each choice's description (jobs.inspect_checkpoint) off the GUI
    thread and reports it as `model_read(CheckpointInfo)` or `model_failed(path, message)`; without one, the tab
    loads the model and calls `show_info`."""

    checkpoint_changed = Signal(str)
    model_read = Signal(object)
    model_failed = Signal(str, str)

    def __init__(self, title: str = "Checkpoint", reader=None, builtin: Optional[Path] = None,
                 parent: Optional[QWidget] = None):
        super().__init__(title, parent)
        self.builtin = Path(builtin) if builtin is not None else jobs.builtin_model()
        self.just_trained: Optional[str] = None
        self.reader = reader
        self.combo = QComboBox()
        self.combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.combo.setMinimumContentsLength(18)
        self.combo.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.open_button = QPushButton("Open\u2026")
        self.open_button.setToolTip("Open a checkpoint file (.pt) or a run folder (Ctrl+O)")
        self.info_label = QLabel("No checkpoint loaded.")
        self.info_label.setWordWrap(True)
        self.info_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.latest_button = QPushButton()  # offers the newest checkpoint found when the built-in model is missing
        self.latest_button.hide()
        row = QHBoxLayout()
        row.addWidget(self.combo, 1)
        row.addWidget(self.open_button)
        lay = QVBoxLayout(self)
        lay.addLayout(row)
        lay.addWidget(self.info_label)
        lay.addWidget(self.latest_button)
        self.open_button.clicked.connect(self.open_dialog)
        self.latest_button.clicked.connect(lambda: self.set_path(self.latest_button.toolTip()))
        self.combo.activated.connect(self._on_activated)
        if reader is not None:
            self.checkpoint_changed.connect(self._on_checkpoint_changed)
            reader.finished.connect(self._on_read)
            reader.errored.connect(self._on_read_failed)
        self._last: Optional[str] = None
        self.refresh()

    # --- the list ------------------------------------------------------------------------------
    def current_path(self) -> Optional[str]:
        data = self.combo.currentData()
        return str(data) if data else None

    def refresh(self, select: Optional[str] = None) -> None:
        """Rebuild the list (built-in, just trained, recent, newest of each run); keep or set the selection."""
        keep = select or self.current_path()
        self.combo.blockSignals(True)
        self.combo.clear()
        seen = set()

        def add(text: str, path: str) -> None:
            key = str(Path(path).resolve())
            if key not in seen:
                seen.add(key)
                self.combo.addItem(text, path)
                self.combo.setItemData(self.combo.count() - 1, path, Qt.ItemDataRole.ToolTipRole)

        if self.builtin.exists():
            add("Built-in model (mnist-cpu)", str(self.builtin))
        if self.just_trained and Path(self.just_trained).exists():
            add(f"Just trained: {Path(self.just_trained).parent.parent.name}/{Path(self.just_trained).name}",
                self.just_trained)
        for p in settings.recent_checkpoints():
            add(_short(p), p)
        for run, ck in newest_run_checkpoints(settings.runs_root()):
            add(f"{run.name} \u00b7 step {int(ck.stem.split('_')[1]):,} (newest of run)", str(ck))
        if self.combo.count() == 0:
            self.combo.addItem("No checkpoint yet: train one or Open\u2026", None)
        idx = self.combo.findData(keep) if keep else -1
        self.combo.setCurrentIndex(idx if idx >= 0 else 0)
        self.combo.blockSignals(False)
        self._emit_if_changed()

    def set_path(self, path: str) -> None:
        """Select `path` (added to the recent list)."""
        settings.add_recent_checkpoint(path)
        self.refresh(select=str(Path(path).resolve()))

    def set_just_trained(self, path: str) -> None:
        self.just_trained = str(Path(path).resolve())
        self.refresh(select=self.just_trained)

    def open_dialog(self) -> None:
        start = str(Path(self.current_path()).parent) if self.current_path() else str(settings.runs_root())
        path, _ = QFileDialog.getOpenFileName(self, "Open checkpoint", start, "Checkpoints (*.pt);;All files (*)")
        if path:
            self.set_path(path)

    def _on_activated(self, _index: int) -> None:
        self._emit_if_changed()

    def _emit_if_changed(self) -> None:
        p = self.current_path()
        if p != self._last:
            self._last = p
            if p:
                self.checkpoint_changed.emit(p)

    # --- the description -----------------------------------------------------------------------
    def show_info(self, info: jobs.CheckpointInfo) -> None:
        self.info_label.setText(describe(info))
        self.info_label.setStyleSheet("")
        self.latest_button.hide()

    def show_missing_builtin(self, roots: Sequence[Path]) -> None:
        """Say that the built-in model is missing and offer the newest checkpoint of a run under `roots`."""
        ckpts = sorted({p for r in roots for p in Path(r).glob("*/checkpoints/ckpt_*.pt")},
                       key=lambda p: p.stat().st_mtime)
        self.show_problem(f"The built-in model {self.builtin} does not exist yet (it is made by training the "
                          f"mnist-cpu preset). Click <b>Open\u2026</b> above and pick a checkpoint .pt file"
                          + (", or use the newest one found below." if ckpts else "."))
        if ckpts:
            self.latest_button.setText(f"Use {ckpts[-1].parent.parent.name}/{ckpts[-1].name}")
            self.latest_button.setToolTip(str(ckpts[-1]))
            self.latest_button.show()

    def show_problem(self, text: str) -> None:
        self.info_label.setText(text)
        self.info_label.setStyleSheet("color: #b36b00;")

    def _on_checkpoint_changed(self, path: str) -> None:
        self.info_label.setText(f"Reading {Path(path).name}\u2026")
        self.info_label.setStyleSheet("")
        # from the event loop: a choice made while the window is built is read once it is shown, so that
        # the reader's first `import torch` (seconds, holding the GIL) does not delay the window
        QTimer.singleShot(0, lambda: self.reader.start(lambda: jobs.inspect_checkpoint(path)))

    def _on_read(self, info: Optional[jobs.CheckpointInfo]) -> None:
        if info is not None:  # None: the read failed, and _on_read_failed said so
            self.show_info(info)
            self.model_read.emit(info)

    def _on_read_failed(self, message: str) -> None:
        self.show_problem("Could not read this checkpoint.")
        self.model_failed.emit(self._last or "", message)


def newest_run_checkpoints(root: Path, limit: int = 8):
    """(run folder, its newest ckpt_*.pt) for the most recently changed runs under `root`."""
    if not root.is_dir():
        return []
    out = []
    for run in root.iterdir():
        ckpts = sorted((run / "checkpoints").glob("ckpt_*.pt")) if (run / "checkpoints").is_dir() else []
        if ckpts:
            out.append((run, ckpts[-1]))
    out.sort(key=lambda rc: rc[1].stat().st_mtime, reverse=True)
    return out[:limit]


def _short(path: str) -> str:
    p = Path(path)
    parts = p.parts
    return str(Path(*parts[-3:])) if len(parts) > 3 else str(p)
