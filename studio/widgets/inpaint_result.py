"""An inpainting run's result: the original, the occluded input and the completions side by side, exportable."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QFileDialog, QGroupBox, QHBoxLayout, QLabel, QMessageBox, QPushButton, QVBoxLayout,
                               QWidget)

from .. import jobs
from .image_row import ImageRow


class InpaintResult(QGroupBox):
    """`show_results(results, info)` with a jobs.inpaint_results dict (plus the run's "settings" and "meta") and
    the model's jobs.CheckpointInfo; `export_row(path)` writes them as one PNG row (Export asks where, then says
    `exported(path)`). `results` is the last run shown (None before)."""

    exported = Signal(str)

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__("3 \u00b7 Result: original \u00b7 occluded input \u00b7 completions", parent)
        self.view = ImageRow("Run to see: original \u00b7 occluded input \u00b7 completions")
        self.export_button = QPushButton("Export row as PNG\u2026")
        self.export_button.setToolTip("The row as one PNG grid (as `ncsn inpaint` writes it), with the settings, "
                                      "seed and checkpoint stored in its text chunks")
        self.export_button.setEnabled(False)
        self.note = QLabel("")
        self.note.setWordWrap(True)
        self.note.setStyleSheet("color: palette(placeholder-text);")
        self.results: Optional[dict] = None
        self._info: Optional[jobs.CheckpointInfo] = None
        row = QHBoxLayout()
        row.addWidget(self.note, 1)
        row.addWidget(self.export_button)
        lay = QVBoxLayout(self)
        lay.addWidget(self.view, 1)
        lay.addLayout(row)
        self.export_button.clicked.connect(self.ask_export)

    def show_results(self, results: dict, info: jobs.CheckpointInfo) -> None:
        self.results, self._info, s = results, info, results["settings"]
        n = len(results["completions"])
        self.view.set_images([results["original"], results["occluded"], *results["completions"]],
                             ["original", "occluded"] + [f"completion {k + 1}" for k in range(n)])
        how = results.get("meta", {}).get("description") or f"start {s.sample.init}"
        self.note.setText(f"seed {s.seed}; {how}; known pixels pasted from the original.")

    def export_row(self, path) -> Path:
        """Write original, occluded and completions as one PNG row with the settings as metadata."""
        if self.results is None:
            raise RuntimeError("nothing to export yet: run inpainting first")
        return jobs.export_inpaint_row(self.results, self._info, str(path))

    def ask_export(self) -> None:
        """Export the row to a file the user chooses."""
        path, _ = QFileDialog.getSaveFileName(self, "Export inpainting row", "inpainting.png", "PNG (*.png)")
        if not path:
            return
        path = path if path.lower().endswith(".png") else path + ".png"
        try:
            self.export_row(path)
        except (OSError, RuntimeError) as e:
            QMessageBox.warning(self, "Cannot export", str(e))
            return
        self.note.setText(f"Wrote {path}")
        self.exported.emit(path)
