"""A row of small images with a caption under each (originals, completions, one chain's levels)."""
from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np
from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QImage, QPainter
from PySide6.QtWidgets import QSizePolicy, QWidget

from .mask_canvas import image_to_qimage


def hwc(image_chw: np.ndarray) -> np.ndarray:
    """(C, H, W) -> (H, W) for one channel, (H, W, 3) for three."""
    return image_chw[0] if image_chw.shape[0] == 1 else image_chw.transpose(1, 2, 0)


class ImageRow(QWidget):
    """Tiles of small images side by side (nearest-neighbour upscaling) with a caption under each,
    wrapping into rows when they do not fit. Images: (C, H, W) float, clipped to [0, 1]."""

    def __init__(self, placeholder: str = "", parent: Optional[QWidget] = None):
        super().__init__(parent)
        self._tiles: List[QImage] = []
        self._captions: List[str] = []
        self._placeholder = placeholder
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumHeight(90)

    def set_images(self, images: Sequence[np.ndarray], captions: Sequence[str] = ()) -> None:
        self._tiles = [image_to_qimage(hwc(im)) for im in images]
        self._captions = list(captions) + [""] * (len(self._tiles) - len(captions))
        self.update()

    def clear(self, placeholder: Optional[str] = None) -> None:
        self._tiles, self._captions = [], []
        if placeholder is not None:
            self._placeholder = placeholder
        self.update()

    def count(self) -> int:
        return len(self._tiles)

    def sizeHint(self) -> QSize:
        return QSize(400, 160)

    def _layout(self):
        n = len(self._tiles)
        w, h = self.width(), self.height()
        th = self.fontMetrics().height() + 4
        tw, tht = self._tiles[0].width(), self._tiles[0].height()
        best = None
        for cols in range(1, n + 1):
            rows = -(-n // cols)
            s = min((w - 6 * (cols + 1)) / (cols * tw), (h - rows * (th + 6) - 6) / (rows * tht))
            if best is None or s > best[0]:
                best = (s, cols, rows)
        return best, th

    def paintEvent(self, event) -> None:  # noqa: N802
        p = QPainter(self)
        if not self._tiles:
            p.setPen(self.palette().placeholderText().color())
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self._placeholder)
            return
        (s, cols, rows), th = self._layout()
        s = max(s, 0.5)
        if s > 2:
            s = float(int(s))  # whole-number zoom keeps pixels square and sharp
        tw, tht = self._tiles[0].width() * s, self._tiles[0].height() * s
        total_w = cols * tw + (cols - 1) * 6
        x0 = (self.width() - total_w) / 2
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
        for k, (img, cap) in enumerate(zip(self._tiles, self._captions)):
            r, c = divmod(k, cols)
            x, y = x0 + c * (tw + 6), 6 + r * (tht + th + 6)
            p.drawImage(QRectF(x, y, tw, tht), img)
            p.setPen(self.palette().text().color())
            p.drawText(QRectF(x - 3, y + tht + 2, tw + 6, th),
                       Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop,
                       self.fontMetrics().elidedText(cap, Qt.TextElideMode.ElideRight, int(tw + 6)))
        p.end()
