"""A zoomable grid of images (pyqtgraph ImageItem in a ViewBox): mouse wheel zooms, drag pans, double-click
or "Fit" resets. Repaints at most ~30 times a second; the latest images win."""
from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QTimer
from PySide6.QtGui import QColor, QFont, QPalette
from PySide6.QtWidgets import QWidget

REPAINT_MS = 33


def tile_images(images: np.ndarray, nrow: int, pad: int = 2, pad_value: float = 0.0) -> np.ndarray:
    """(B, C, H, W) or (B, H, W) floats -> one (H', W') (gray) or (H', W', 3) (RGB) mosaic, `nrow` images per
    row and `pad` pixels around each, values clipped to [0, 1]."""
    x = np.asarray(images, dtype=np.float32)
    if x.ndim == 3:
        x = x[:, None]
    b, c, h, w = x.shape
    ncol = max(1, min(nrow, b))
    rows = (b + ncol - 1) // ncol
    out = np.full((rows * (h + pad) + pad, ncol * (w + pad) + pad, c), pad_value, np.float32)
    for k in range(b):
        r, q = divmod(k, ncol)
        top, left = r * (h + pad) + pad, q * (w + pad) + pad
        out[top:top + h, left:left + w] = np.moveaxis(x[k], 0, -1)
    out = np.clip(out, 0.0, 1.0)
    return out[..., 0] if c == 1 else out


class ImageGridView(pg.GraphicsLayoutWidget):
    """Shows a batch (B, C, H, W) in [0, 1] as a grid; optional per-tile captions (e.g. "7, 98 %")
    drawn as overlay text and repeated in the tooltip of each tile."""

    def __init__(self, parent: Optional[QWidget] = None, pad: int = 2):
        super().__init__(parent)
        # GraphicsLayoutWidget binds its layout's clear() on the instance: it would shadow clear() below and take
        # the view box out of the scene, so that nothing was drawn after a clear (a folder's preview, a new run).
        del self.clear
        self.pad = pad
        self.view: pg.ViewBox = self.addViewBox(lockAspect=True, invertY=True, enableMenu=False)
        self.view.setMouseEnabled(True, True)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.view.addItem(self.image)
        self._texts: List[pg.TextItem] = []
        self._pending: Optional[tuple] = None
        self._shape: Optional[tuple] = None
        self._captions: List[str] = []
        self._tile: tuple = (0, 0, 1)
        self.images: Optional[np.ndarray] = None
        self.mosaic: Optional[np.ndarray] = None
        self._timer = QTimer(self)
        self._timer.setInterval(REPAINT_MS)
        self._timer.timeout.connect(self._flush)
        self._timer.start()
        self._placeholder = pg.TextItem("", anchor=(0.5, 0.5))
        self.view.addItem(self._placeholder)
        self.apply_palette()
        self.setMinimumSize(160, 160)
        self.scene().sigMouseMoved.connect(self._on_mouse_moved)
        self.hovered_index: Optional[int] = None

    def apply_palette(self) -> None:
        pal = self.palette()
        self.setBackground(pal.color(QPalette.ColorRole.Window))  # images sit on the panel, not on a white page
        self._placeholder.setColor(pal.color(QPalette.ColorRole.PlaceholderText))

    def changeEvent(self, event) -> None:
        super().changeEvent(event)
        if event.type() == event.Type.PaletteChange and hasattr(self, "_placeholder"):
            self.apply_palette()

    def set_placeholder(self, text: str) -> None:
        """A hint shown while there is no image (e.g. "Run to see samples")."""
        self._placeholder.setText(text)
        self._placeholder.setVisible(self.images is None and bool(text))
        if self.images is None:
            self.view.setRange(xRange=(-1, 1), yRange=(-1, 1), padding=0)
            self._placeholder.setPos(0, 0)

    def set_images(self, images: np.ndarray, nrow: Optional[int] = None, captions: Optional[Sequence[str]] = None,
                   immediate: bool = False) -> None:
        """Queue a batch for the next repaint (latest wins); captions: one string per image or None."""
        x = np.asarray(images)
        if nrow is None:
            nrow = max(1, int(np.ceil(np.sqrt(len(x)))))
        self._pending = (x, int(nrow), list(captions) if captions is not None else None)
        if immediate:
            self._flush()

    def set_captions(self, captions: Optional[Sequence[str]]) -> None:
        """Captions for the images now shown (e.g. classifier labels arriving after the samples)."""
        if self.images is not None:
            self.set_images(self.images, self._tile[2], captions, immediate=True)

    def clear(self) -> None:
        self._pending = None
        self.images = self.mosaic = None
        self.image.clear()
        self._set_texts([], 0, 0, 1)
        self._placeholder.setVisible(bool(self._placeholder.toPlainText()))

    def captions(self) -> List[str]:
        return list(self._captions)

    def fit(self) -> None:
        self.view.autoRange(padding=0.02)

    def mouseDoubleClickEvent(self, ev) -> None:
        self.fit()
        super().mouseDoubleClickEvent(ev)

    def _flush(self) -> None:
        if self._pending is None:
            return
        x, nrow, captions = self._pending
        self._pending = None
        self.images = x
        mosaic = tile_images(x, nrow, self.pad)
        self.mosaic = mosaic
        self.image.setImage(mosaic, autoLevels=False, levels=(0.0, 1.0))
        self._placeholder.setVisible(False)
        shape = (x.shape, nrow)
        if shape != self._shape:
            self._shape = shape
            self.fit()
        h, w = x.shape[-2:]
        self._set_texts(captions or [], h, w, nrow)

    def _set_texts(self, captions: List[str], h: int, w: int, nrow: int) -> None:
        self._captions = captions
        self._tile = (h, w, nrow)
        while len(self._texts) < len(captions):
            t = pg.TextItem("", color=QColor(255, 230, 0), fill=pg.mkBrush(0, 0, 0, 150), anchor=(0, 0))
            f = QFont()
            f.setPointSizeF(7.5)
            t.setFont(f)
            self.view.addItem(t)
            self._texts.append(t)
        for k, t in enumerate(self._texts):
            if k < len(captions) and captions[k]:
                r, q = divmod(k, nrow)
                t.setText(captions[k])
                t.setPos(q * (w + self.pad) + self.pad, r * (h + self.pad) + self.pad)
                t.setVisible(True)
            else:
                t.setVisible(False)

    def tile_at(self, x: float, y: float) -> Optional[int]:
        """Index of the image under view coordinates (x, y), or None."""
        if self.images is None:
            return None
        h, w = self.images.shape[-2:]
        nrow = self._shape[1] if self._shape else 1
        q, r = int((x - self.pad) // (w + self.pad)), int((y - self.pad) // (h + self.pad))
        k = r * nrow + q
        if 0 <= q < nrow and r >= 0 and 0 <= k < len(self.images):
            return k
        return None

    def _on_mouse_moved(self, pos) -> None:
        p = self.view.mapSceneToView(pos)
        k = self.tile_at(p.x(), p.y())
        self.hovered_index = k
        if k is None:
            self.setToolTip("Wheel: zoom, drag: pan, double-click: fit")
        else:
            cap = self._captions[k] if k < len(self._captions) and self._captions[k] else ""
            self.setToolTip(f"Sample {k + 1}" + (f": {cap}" if cap else ""))
