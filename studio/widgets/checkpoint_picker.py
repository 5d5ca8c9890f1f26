"""Choose a checkpoint: the built-in model, the run just trained, recent files, or "Open..." (a file dialog)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QFileDialog, QHBoxLayout, QPushButton, QSizePolicy, QWidget

from .. import settings

BUILTIN_MODEL = Path(__file__).resolve().parents[2] / "resources" / "models" / "mnist-cpu.pt"


class CheckpointPicker(QWidget):
    """A combo of known checkpoints plus an Open button; `checkpoint_changed(path)` on every new choice.
    Items carry the path as user data; the text says where it comes from."""

    checkpoint_changed = Signal(str)

    def __init__(self, parent: Optional[QWidget] = None, builtin: Path = BUILTIN_MODEL):
        super().__init__(parent)
        self.builtin = Path(builtin)
        self.just_trained: Optional[str] = None
        self.combo = QComboBox()
        self.combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.combo.setMinimumContentsLength(18)
        self.combo.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.open_button = QPushButton("Open\u2026")
        self.open_button.setToolTip("Open a checkpoint file (.pt) or a run folder (Ctrl+O)")
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.combo, 1)
        lay.addWidget(self.open_button)
        self.open_button.clicked.connect(self.open_dialog)
        self.combo.activated.connect(self._on_activated)
        self._last: Optional[str] = None
        self.refresh()

    def current_path(self) -> Optional[str]:
        data = self.combo.currentData()
        return str(data) if data else None

    def refresh(self, select: Optional[str] = None) -> None:
        """Rebuild the list (built-in, just trained, recent); keep or set the selection."""
        keep = select or self.current_path()
        self.combo.blockSignals(True)
        self.combo.clear()
        seen = set()

        def add(text: str, path: str, tip: str) -> None:
            key = str(Path(path).resolve())
            if key in seen:
                return
            seen.add(key)
            self.combo.addItem(text, path)
            self.combo.setItemData(self.combo.count() - 1, tip, role=3)  # Qt.ToolTipRole

        if self.builtin.exists():
            add("Built-in model (mnist-cpu)", str(self.builtin), str(self.builtin))
        if self.just_trained and Path(self.just_trained).exists():
            add(f"Just trained: {Path(self.just_trained).parent.parent.name}/{Path(self.just_trained).name}",
                self.just_trained, self.just_trained)
        for p in settings.recent_checkpoints():
            add(_short(p), p, p)
        for run, ck in newest_run_checkpoints(settings.runs_root()):
            add(f"{run.name} \u00b7 step {int(ck.stem.split('_')[1]):,} (newest of run)", str(ck), str(ck))
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
