"""Where the image to inpaint comes from: a file (Open... or dropped), a digit of the built-in MNIST test split;
and a quick mask to start from."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QFileDialog, QGridLayout, QGroupBox, QLabel, QPushButton, QSpinBox, QWidget

from .mask_canvas import QUICK_MASKS

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm")


class ImageSource(QGroupBox):
    """Intent only: `file_chosen(path)`, `digit_chosen(index)` (the spin box or "Random digit") and
    `quick_mask_chosen(name)`; the tab reads the image and reports back with `show_image` / `show_problem`."""

    file_chosen = Signal(str)
    digit_chosen = Signal(int)
    quick_mask_chosen = Signal(str)

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__("Image", parent)
        self.open_button = QPushButton("Open image\u2026")
        self.open_button.setToolTip("Any image file; it is converted to the model's size and channels")
        self.digit_spin = QSpinBox()
        self.digit_spin.setRange(0, 9999)
        self.digit_spin.setPrefix("MNIST test #")
        self.digit_spin.setToolTip("An image of the built-in MNIST test split (10,000 digits)")
        self.digit_spin.setKeyboardTracking(False)
        self.random_button = QPushButton("Random digit")
        self.preset_combo = QComboBox()
        self.preset_combo.addItems(["Quick mask\u2026", *QUICK_MASKS])
        self.preset_combo.setToolTip("Replace the mask by a standard occlusion (undoable)")
        self.image_label = QLabel()
        self.image_label.setWordWrap(True)
        self.image_label.setStyleSheet("color: palette(placeholder-text);")
        lay = QGridLayout(self)
        lay.addWidget(self.open_button, 0, 0)
        lay.addWidget(self.random_button, 0, 1)
        lay.addWidget(self.digit_spin, 1, 0)
        lay.addWidget(self.preset_combo, 1, 1)
        lay.addWidget(self.image_label, 2, 0, 1, 2)
        self.open_button.clicked.connect(self._on_open)
        self.digit_spin.valueChanged.connect(self.digit_chosen)
        self.random_button.clicked.connect(self._on_random)
        self.preset_combo.activated.connect(self._on_preset)

    def set_digit(self, index: int) -> None:
        """Show `index` in the spin box without asking for it again."""
        self.digit_spin.blockSignals(True)
        self.digit_spin.setValue(index)
        self.digit_spin.blockSignals(False)

    def show_image(self, source: str, width: int, height: int) -> None:
        self.image_label.setText(f"Showing {source} ({width}\u00d7{height}). Drop an image file on this tab to open it.")

    def show_problem(self, text: str) -> None:
        self.image_label.setText(text)

    def _on_open(self) -> None:
        pats = " ".join("*" + s for s in IMAGE_SUFFIXES)
        path, _ = QFileDialog.getOpenFileName(self, "Open image", str(Path.home()), f"Images ({pats});;All files (*)")
        if path:
            self.file_chosen.emit(path)

    def _on_random(self) -> None:
        self.digit_chosen.emit(int(np.random.default_rng().integers(0, 10000)))

    def _on_preset(self, index: int) -> None:
        name = self.preset_combo.itemText(index)
        self.preset_combo.setCurrentIndex(0)
        if index > 0:
            self.quick_mask_chosen.emit(name)
