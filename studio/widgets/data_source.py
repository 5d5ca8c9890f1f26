"""Where training images come from: the built-in MNIST digits, a torchvision data set on disk, or a folder of
images; with a preview of what will be trained on."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QComboBox, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QLineEdit,
                               QPushButton, QVBoxLayout, QWidget)

from .. import jobs
from .image_grid import ImageGridView

# data sources: (label, DataConfig.dataset)
SOURCES = [("Built-in MNIST (10,000 test digits, bundled)", "mnist-builtin"),
           ("torchvision data set (from a folder on disk)", "torchvision"),
           ("Folder of images (PNG, JPEG, ...)", "folder")]
TORCHVISION = [("MNIST", "mnist", 28, 1), ("Fashion-MNIST", "fashion-mnist", 28, 1),
               ("CIFAR-10", "cifar10", 32, 3), ("CelebA (64 x 64)", "celeba", 64, 3)]
FOLDER_FORMATS = [("28 x 28 grayscale", 28, 1), ("32 x 32 RGB", 32, 3), ("64 x 64 RGB", 64, 3)]
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


class DataSource(QGroupBox):
    """The `data` section of the training config: `data_section()` (the DataConfig values to set, ValueError
    when a folder is missing); `changed()` after every edit."""

    changed = Signal()

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__("Data", parent)
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
        self.info = QLabel()
        self.info.setWordWrap(True)
        self.preview = ImageGridView()
        self.preview.setMinimumHeight(110)
        self.preview.setMaximumHeight(130)

        form = QFormLayout()
        form.addRow("Source", self.source_combo)
        self.tv_row_label = QLabel("Data set")
        form.addRow(self.tv_row_label, self.tv_combo)
        root_row = QHBoxLayout()
        root_row.addWidget(self.root_edit, 1)
        root_row.addWidget(self.root_button)
        self.root_row_label = QLabel("Folder")
        form.addRow(self.root_row_label, root_row)
        self.format_row_label = QLabel("Resize to")
        form.addRow(self.format_row_label, self.folder_format)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.info)
        lay.addWidget(self.preview)

        self.source_combo.currentIndexChanged.connect(self._on_source_changed)
        self.tv_combo.currentIndexChanged.connect(self._on_source_changed)
        self.folder_format.currentIndexChanged.connect(self.changed)
        self.root_edit.editingFinished.connect(self._on_source_changed)
        self.root_edit.textChanged.connect(self.changed)
        self.root_button.clicked.connect(self._browse_root)
        self._on_source_changed()

    def source(self) -> str:
        return self.source_combo.currentData()

    def set_folder(self, folder: str) -> None:
        """Train on a folder of images (e.g. dropped onto the window)."""
        self.source_combo.setCurrentIndex([k for _, k in SOURCES].index("folder"))
        self.root_edit.setText(folder)
        self._on_source_changed()

    def data_section(self) -> dict:
        """The DataConfig values the choice sets; ValueError when the chosen source needs a folder."""
        src = self.source()
        if src == "mnist-builtin":
            return {"dataset": "mnist-builtin", "root": None, "channels": 1}
        root = self.root_edit.text().strip()
        if not root:
            raise ValueError("choose the data folder (Browse\u2026) or switch to the built-in MNIST")
        if src == "torchvision":
            _, key, size, ch = TORCHVISION[self.tv_combo.currentIndex()]
        else:
            key = "folder"
            _, size, ch = FOLDER_FORMATS[self.folder_format.currentIndex()]
        return {"dataset": key, "root": root, "image_size": size, "channels": ch, "holdout": 0}

    def _browse_root(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Choose the data folder", self.root_edit.text() or str(Path.home()))
        if path:
            self.root_edit.setText(path)
            self._on_source_changed()

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
            self.preview.clear()
            self.preview.set_placeholder("preview after loading")
            self.info.setText(f"torchvision '{self.tv_combo.currentData()}' read from the folder below (files must "
                              f"already be there; nothing is downloaded). Images are loaded when training starts.")
        self.changed.emit()

    def _show_builtin_preview(self) -> None:
        try:
            images, labels = jobs.builtin_digits()
        except Exception as e:  # noqa: BLE001 - a damaged resource is a message
            self.info.setText(f"Built-in MNIST unavailable: {e}")
            self.preview.clear()
            return
        picks = [int(np.flatnonzero(labels == d)[k]) for k in range(3) for d in range(10)]
        self.preview.set_images(images[picks][:, None].astype(np.float32) / 255.0, nrow=10, immediate=True)
        self.info.setText(f"{len(images):,} digits, 28 x 28 grayscale; the preset keeps the last 1,000 out "
                          f"of training for evaluation.")

    def _show_folder_preview(self, folder: str) -> None:
        self.preview.clear()
        if not folder:
            self.info.setText("Choose a folder of images, or drop one onto the window.")
            self.preview.set_placeholder("no folder chosen")
            return
        p = Path(folder)
        files = sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES) if p.is_dir() else []
        if not files:
            self.info.setText(f"No images found in {folder}." if p.is_dir() else f"{folder} is not a folder.")
            self.preview.set_placeholder("no images")
            return
        _, size, ch = FOLDER_FORMATS[self.folder_format.currentIndex()]
        thumbs = []
        from PIL import Image
        for f in files[:20]:
            try:
                with Image.open(f) as im:
                    a = np.asarray(im.convert("L" if ch == 1 else "RGB").resize((size, size)), dtype=np.float32) / 255
                    thumbs.append(a[None] if ch == 1 else np.moveaxis(a, -1, 0))
            except Exception:  # noqa: BLE001 - unreadable files are reported by the loader at start
                continue
        if thumbs:
            self.preview.set_images(np.stack(thumbs), nrow=10, immediate=True)
        self.info.setText(f"{len(files):,} image files in {p.name}/ (first {len(thumbs)} shown, resized to "
                          f"{size} x {size}).")
