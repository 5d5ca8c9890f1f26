"""Where the image to inpaint comes from: a file (Open... or dropped), a digit of the built-in MNIST test split;
and a quick mask to start from."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QFileDialog, QGridLayout, QGroupBox, QLabel, QPushButton, QSpinBox, QWidget

from .. import jobs
from .mask_canvas import QUICK_MASKS

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm")


def dropped_image(mime) -> Optional[Path]:
    """The first local image file among dropped URLs (a QMimeData), if any."""
    for url in mime.urls() if mime.hasUrls() else []:
        if url.isLocalFile() and Path(url.toLocalFile()).suffix.lower() in IMAGE_SUFFIXES:
            return Path(url.toLocalFile())
    return None


class ImageSource(QGroupBox):
    """The image to inpaint, at the model's size and channels (`set_shape`): `image()` (C, H, W) float32 in
    [0, 1], from `open_image(path)` (Open... or a dropped file) or `pick_builtin(index)` (the spin box, "Random
    digit"); `image_changed(image, where it came from)` after each. `quick_mask_chosen(name)` asks for one of
    mask_canvas.QUICK_MASKS. Problems and notes (a resize) go out as `noted(text)`."""

    image_changed = Signal(object, str)
    quick_mask_chosen = Signal(str)
    noted = Signal(str)

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
        self._digits: Optional[np.ndarray] = None
        self._shape = (28, 1)                       # (size, channels) of the model's images
        self._original: Optional[np.ndarray] = None  # the image as read, (H, W) or (H, W, 3)
        self._image: Optional[np.ndarray] = None     # ... at the model's shape, (C, H, W)
        self.source = ""
        lay = QGridLayout(self)
        lay.addWidget(self.open_button, 0, 0)
        lay.addWidget(self.random_button, 0, 1)
        lay.addWidget(self.digit_spin, 1, 0)
        lay.addWidget(self.preset_combo, 1, 1)
        lay.addWidget(self.image_label, 2, 0, 1, 2)
        self.open_button.clicked.connect(self._on_open)
        self.digit_spin.valueChanged.connect(self.pick_builtin)
        self.random_button.clicked.connect(lambda: self.pick_builtin(int(np.random.default_rng().integers(0, 10000))))
        self.preset_combo.activated.connect(self._on_preset)

    def image(self) -> Optional[np.ndarray]:
        return None if self._image is None else self._image.copy()

    def set_shape(self, size: int, channels: int) -> None:
        """The model's image size and channels: the image is converted again (from the original as read)."""
        self._shape = (size, channels)
        if self._original is not None:
            self.set_image(self._original, self.source)

    def set_image(self, image: np.ndarray, source: str) -> None:
        """(H, W) or (H, W, 3) array (float in [0, 1] or uint8), converted to the model's size and channels."""
        size, channels = self._shape
        self._original, self.source = np.asarray(image), source
        self._image = jobs.to_model_image(image, size, channels)
        self.image_label.setText(f"Showing {source} ({size}\u00d7{size}). Drop an image file on this tab to open it.")
        h, w = self._original.shape[:2]
        if (h, w) != (size, size):
            self.noted.emit(f"Resized {source} from {w}\u00d7{h} to the model's {size}\u00d7{size}.")
        self.image_changed.emit(self.image(), source)

    def open_image(self, path) -> bool:
        """Read an image file; False (the reason noted) when it is not a readable image."""
        try:
            self.set_image(jobs.read_image_file(Path(path)), Path(path).name)
        except ValueError as e:
            self.noted.emit(str(e))
            return False
        return True

    def pick_builtin(self, index: int) -> bool:
        """Digit `index` of the built-in MNIST test split (modulo its 10,000)."""
        if self._digits is None:
            try:
                self._digits = jobs.builtin_digits()[0]
            except RuntimeError as e:  # DataError: the bundled digits are missing or damaged
                self.image_label.setText(f"The built-in MNIST digits cannot be read: {e}")
                return False
        index = int(index) % len(self._digits)
        self.digit_spin.blockSignals(True)  # show the index without asking for it again
        self.digit_spin.setValue(index)
        self.digit_spin.blockSignals(False)
        self.set_image(self._digits[index], f"MNIST test #{index}")
        return True

    def _on_open(self) -> None:
        pats = " ".join("*" + s for s in IMAGE_SUFFIXES)
        path, _ = QFileDialog.getOpenFileName(self, "Open image", str(Path.home()), f"Images ({pats});;All files (*)")
        if path:
            self.open_image(path)

    def _on_preset(self, index: int) -> None:
        name = self.preset_combo.itemText(index)
        self.preset_combo.setCurrentIndex(0)
        if index > 0:
            self.quick_mask_chosen.emit(name)
