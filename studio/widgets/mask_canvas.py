"""Paint-a-mask canvas over an image (inpainting): brush/eraser in image pixels, undo/redo, zoom and pan.

Mask convention: ``mask()`` is True where the user painted = the region the sampler must FILL;
``known_mask()`` (its complement) is ``ncsn_core.sampling.inpaint``'s mask (1 = known pixel).
Mask PNGs follow the CLI (``ncsn inpaint --mask``): white = keep (known), black = to fill.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional, Tuple

import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import (QColor, QImage, QKeySequence, QMouseEvent, QPainter, QPen, QUndoCommand,
                           QUndoStack, QWheelEvent)
from PySide6.QtWidgets import (QColorDialog, QFileDialog, QHBoxLayout, QLabel, QMessageBox, QSizePolicy, QSlider,
                               QToolButton, QVBoxLayout, QWidget)

MAX_BRUSH = 64


def image_to_qimage(image: np.ndarray) -> QImage:
    """(H, W) or (H, W, 3) float in [0, 1] -> a QImage that owns its pixels (nearest-neighbour friendly)."""
    a = np.ascontiguousarray(np.clip(np.asarray(image, dtype=np.float32), 0, 1) * 255 + 0.5).astype(np.uint8)
    if a.ndim == 2:
        h, w = a.shape
        return QImage(a.data, w, h, a.strides[0], QImage.Format.Format_Grayscale8).copy()
    if a.ndim == 3 and a.shape[2] == 3:
        h, w, _ = a.shape
        return QImage(a.data, w, h, a.strides[0], QImage.Format.Format_RGB888).copy()
    raise ValueError(f"image must be (H, W) or (H, W, 3), got shape {a.shape}")


def read_mask_png(path: Path, size: Tuple[int, int]) -> Tuple[np.ndarray, Optional[Tuple[int, int]]]:
    """Read a mask file (white = keep, alpha multiplies it) -> (fill mask bool (H, W), original (W, H) if it was
    resized else None), as `ncsn inpaint` reads it (ncsn_core.images). ValueError says why a file is refused."""
    from .. import jobs
    known = jobs.read_mask(path, "mask")
    resized = None if known.shape == tuple(size) else (known.shape[1], known.shape[0])
    return ~jobs.fit_mask(known, size), resized


def write_mask_png(fill: np.ndarray, path: Path) -> Path:
    """Write the mask as an 8-bit grey PNG: white (255) = keep/known, black (0) = to fill."""
    from PIL import Image
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.where(fill, 0, 255).astype(np.uint8), mode="L").save(path, format="PNG")
    return path


QUICK_MASKS = ("Bottom half", "Right half", "Top half", "Centre square", "Random 8×8 blocks")


def quick_mask(name: str, shape: Tuple[int, int], rng: Optional[np.random.Generator] = None) -> np.ndarray:
    """A standard occlusion (one of QUICK_MASKS) as a fill mask (H, W), True = to fill."""
    h, w = shape
    fill = np.zeros((h, w), bool)
    if name == "Bottom half":
        fill[h // 2:] = True
    elif name == "Top half":
        fill[: h // 2] = True
    elif name == "Right half":
        fill[:, w // 2:] = True
    elif name == "Centre square":
        fill[h // 4: h - h // 4, w // 4: w - w // 4] = True
    elif name.startswith("Random"):
        rng = rng or np.random.default_rng()
        b = max(2, min(h, w) // 4)
        for _ in range(3):
            r, c = rng.integers(0, h - b + 1), rng.integers(0, w - b + 1)
            fill[r:r + b, c:c + b] = True
    else:
        raise ValueError(f"unknown quick mask {name!r}: choose one of {', '.join(QUICK_MASKS)}")
    return fill


def brush_hits(shape: Tuple[int, int], p0: Tuple[float, float], p1: Tuple[float, float],
               brush_size: float) -> np.ndarray:
    """bool (H, W): every pixel whose centre lies within brush_size/2 of the segment p0-p1 (image coordinates
    (x, y); pixel (r, c) covers [c, c+1) x [r, r+1)), plus the pixels under both ends, so that a 1-pixel brush
    always paints the pixel under the cursor."""
    h, w = shape
    r = brush_size / 2.0
    (ax, ay), (bx, by) = p0, p1
    c0, c1 = max(int(math.floor(min(ax, bx) - r)), 0), min(int(math.ceil(max(ax, bx) + r)) + 1, w)
    r0, r1 = max(int(math.floor(min(ay, by) - r)), 0), min(int(math.ceil(max(ay, by) + r)) + 1, h)
    hit = np.zeros((h, w), bool)
    if c0 < c1 and r0 < r1:
        yy, xx = np.mgrid[r0:r1, c0:c1].astype(np.float64) + 0.5
        dx, dy = bx - ax, by - ay
        l2 = dx * dx + dy * dy
        t = np.clip(((xx - ax) * dx + (yy - ay) * dy) / l2, 0, 1) if l2 > 0 else np.zeros_like(xx)
        hit[r0:r1, c0:c1] = (xx - ax - t * dx) ** 2 + (yy - ay - t * dy) ** 2 <= r * r
    for px, py in (p0, p1):
        c, rr = int(math.floor(px)), int(math.floor(py))
        if 0 <= c < w and 0 <= rr < h:
            hit[rr, c] = True
    return hit


class _MaskEdit(QUndoCommand):
    """One undoable change of the whole mask (masks are small: a copy before and after is cheapest)."""

    def __init__(self, canvas: "MaskCanvas", before: np.ndarray, after: np.ndarray, text: str):
        super().__init__(text)
        self._canvas, self._before, self._after = canvas, before.copy(), after.copy()

    def redo(self) -> None:
        self._canvas._assign(self._after)

    def undo(self) -> None:
        self._canvas._assign(self._before)


class ZoomView(QWidget):
    """A view of an image of `image_shape()` (H, W) pixels: fitted to the widget until the user zooms (wheel, at
    the cursor) or pans (middle-drag, or Space + left-drag; F or a double middle-click fits again); coordinates
    map both ways between the widget and the image."""

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self._scale: Optional[float] = None  # None = fit to the widget
        self._offset = QPointF(0, 0)
        self._pan_from: Optional[QPointF] = None
        self._space = False                  # Space held: left-drag pans

    def image_shape(self) -> Tuple[int, int]:
        raise NotImplementedError

    def fit(self) -> None:
        """Zoom to fit the widget (the view's default until the user zooms or pans)."""
        self._scale = None
        self.update()

    def zoom(self) -> float:
        """Screen pixels per image pixel."""
        return self._view()[0]

    def image_to_widget(self, x: float, y: float) -> QPointF:
        """Widget coordinates of image point (x, y) (pixel (r, c) covers [c, c+1) x [r, r+1))."""
        s, off = self._view()
        return QPointF(off.x() + x * s, off.y() + y * s)

    def widget_to_image(self, p: QPointF) -> QPointF:
        s, off = self._view()
        return QPointF((p.x() - off.x()) / s, (p.y() - off.y()) / s)

    def _fit_scale(self) -> float:
        h, w = self.image_shape()
        return max(min((self.width() - 8) / w, (self.height() - 8) / h), 0.1)

    def _view(self) -> Tuple[float, QPointF]:
        h, w = self.image_shape()
        if self._scale is None:
            s = self._fit_scale()
            return s, QPointF((self.width() - w * s) / 2, (self.height() - h * s) / 2)
        return self._scale, self._offset

    def _freeze_view(self) -> None:
        """Turn the fitted view into an explicit one before the user changes it."""
        if self._scale is None:
            self._scale, self._offset = self._view()

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802
        steps = event.angleDelta().y() / 120.0
        if not steps:
            return
        self._freeze_view()
        pos = event.position()
        anchor = self.widget_to_image(pos)
        new = min(max(self._scale * 1.25 ** steps, 0.5), 80.0)
        self._scale = new
        # keep the image point under the cursor fixed while zooming
        self._offset = QPointF(pos.x() - anchor.x() * new, pos.y() - anchor.y() * new)
        self.update()
        event.accept()



    # panning: middle-drag, or left-drag with Space held; the subclass's mouse handlers ask these first
    def _start_pan(self, event: QMouseEvent) -> bool:
        btn = event.button()
        if btn == Qt.MouseButton.MiddleButton or (btn == Qt.MouseButton.LeftButton and self._space):
            self._freeze_view()
            self._pan_from = event.position()
            self.setCursor(Qt.CursorShape.ClosedHandCursor)
            return True
        return False

    def _pan_to(self, pos: QPointF) -> bool:
        if self._pan_from is None:
            return False
        self._offset += pos - self._pan_from
        self._pan_from = pos
        return True

    def _end_pan(self, event: QMouseEvent) -> bool:
        if self._pan_from is None or event.button() not in (Qt.MouseButton.MiddleButton, Qt.MouseButton.LeftButton):
            return False
        self._pan_from = None
        self.setCursor(Qt.CursorShape.OpenHandCursor if self._space else Qt.CursorShape.CrossCursor)
        return True

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if event.button() == Qt.MouseButton.MiddleButton:
            self.fit()
        else:
            self.mousePressEvent(event)  # a double click is one more press

    def keyPressEvent(self, event) -> None:  # noqa: N802
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space = True
            self.setCursor(Qt.CursorShape.OpenHandCursor)
        elif event.key() == Qt.Key.Key_F and not event.modifiers():
            self.fit()
        else:
            super().keyPressEvent(event)

    def keyReleaseEvent(self, event) -> None:  # noqa: N802
        if event.key() == Qt.Key.Key_Space and not event.isAutoRepeat():
            self._space = False
            self.setCursor(Qt.CursorShape.CrossCursor)
        else:
            super().keyReleaseEvent(event)

    def enterEvent(self, event) -> None:  # noqa: N802
        self.setCursor(Qt.CursorShape.CrossCursor)
        super().enterEvent(event)

class MaskCanvas(ZoomView):
    """Shows an image scaled up (nearest neighbour) with the mask as a coloured overlay.

    Mouse: left = paint with the current tool, right = erase; wheel = zoom at the cursor; middle-drag
    or Space+left-drag = pan; double-middle-click = fit. Keys: [ and ] = brush size, B = brush,
    E = eraser, F = fit, Ctrl+Z = undo, Ctrl+Shift+Z / Ctrl+Y = redo.
    """

    mask_changed = Signal()
    brush_size_changed = Signal(int)
    tool_changed = Signal(str)

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMouseTracking(True)
        self.setMinimumSize(200, 200)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self._image = np.zeros((28, 28), np.float32)
        self._qimage = image_to_qimage(self._image)
        self._mask = np.zeros((28, 28), bool)
        self._overlay: Optional[QImage] = None
        self._color = QColor(255, 40, 90)
        self._opacity = 0.55
        self._brush_size = 3
        self._tool = "brush"
        self._stroke_before: Optional[np.ndarray] = None
        self._stroke_value = True
        self._last_pos: Optional[QPointF] = None
        self._hover: Optional[QPointF] = None

        self.undo_stack = QUndoStack(self)
        self.undo_stack.setUndoLimit(200)
        self.undo_action = self.undo_stack.createUndoAction(self, "Undo")
        self.undo_action.setShortcuts([QKeySequence("Ctrl+Z")])
        self.redo_action = self.undo_stack.createRedoAction(self, "Redo")
        self.redo_action.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        for a in (self.undo_action, self.redo_action):
            a.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            self.addAction(a)

    # --- public API ---------------------------------------------------------------------------
    def set_image(self, image: np.ndarray) -> None:
        """Show `image` ((H, W) or (H, W, 3) float in [0, 1]). A same-sized mask is kept (so one mask can be
        tried on many digits); a new size starts an empty mask and a fresh undo history."""
        image = np.asarray(image, dtype=np.float32)
        self._qimage = image_to_qimage(image)
        new_size = image.shape[:2] != self._mask.shape
        self._image = image
        if new_size:
            self.undo_stack.clear()
            self._assign(np.zeros(image.shape[:2], bool))
            self._scale = None
        self.update()

    def image(self) -> np.ndarray:
        return self._image

    def mask(self) -> np.ndarray:
        """bool (H, W): True = painted = the region to fill (a copy)."""
        return self._mask.copy()

    def known_mask(self) -> np.ndarray:
        """bool (H, W): True = known pixel, kept (inpaint()'s mask, 1 = known)."""
        return ~self._mask

    def set_mask(self, fill: np.ndarray, text: str = "Set mask") -> None:
        """Replace the mask (True = to fill) as one undoable step."""
        fill = np.asarray(fill, dtype=bool)
        if fill.shape != self._mask.shape:
            raise ValueError(f"mask shape {fill.shape} does not match the image's {self._mask.shape}")
        if not np.array_equal(fill, self._mask):
            self.undo_stack.push(_MaskEdit(self, self._mask, fill, text))

    def clear(self) -> None:
        self.set_mask(np.zeros_like(self._mask), "Clear mask")

    def invert(self) -> None:
        self.set_mask(~self._mask, "Invert mask")

    def undo(self) -> None:
        self.undo_stack.undo()

    def redo(self) -> None:
        self.undo_stack.redo()

    def save_mask(self, path) -> Path:
        return write_mask_png(self._mask, Path(path))

    def load_mask(self, path) -> Optional[Tuple[int, int]]:
        """Load a mask PNG (white = keep) as one undoable step; returns the file's (W, H) if it had to be
        resized to the image, else None."""
        fill, resized = read_mask_png(Path(path), self._mask.shape)
        self.set_mask(fill, "Load mask")
        return resized

    @property
    def brush_size(self) -> int:
        """Brush diameter in image pixels."""
        return self._brush_size

    @brush_size.setter
    def brush_size(self, size: int) -> None:
        size = int(min(max(size, 1), MAX_BRUSH))
        if size != self._brush_size:
            self._brush_size = size
            self.brush_size_changed.emit(size)
            self.update()

    def set_brush_size(self, size: int) -> None:
        self.brush_size = size

    @property
    def tool(self) -> str:
        return self._tool

    def set_tool(self, tool: str) -> None:
        if tool not in ("brush", "eraser"):
            raise ValueError(f"unknown tool {tool!r}: choose 'brush' or 'eraser'")
        if tool != self._tool:
            self._tool = tool
            self.tool_changed.emit(tool)

    def overlay_color(self) -> QColor:
        return QColor(self._color)

    def set_overlay_color(self, color: QColor) -> None:
        self._color = QColor(color)
        self._overlay = None
        self.update()

    def overlay_opacity(self) -> float:
        return self._opacity

    def set_overlay_opacity(self, opacity: float) -> None:
        self._opacity = float(min(max(opacity, 0.0), 1.0))
        self._overlay = None
        self.update()

    def sizeHint(self) -> QSize:
        return QSize(420, 420)

    def image_shape(self) -> Tuple[int, int]:
        return self._mask.shape

    # --- internals ----------------------------------------------------------------------------
    def _assign(self, fill: np.ndarray) -> None:
        self._mask = fill.copy()
        self._overlay = None
        self.update()
        self.mask_changed.emit()

    def _overlay_image(self) -> QImage:
        if self._overlay is None:
            h, w = self._mask.shape
            rgba = np.zeros((h, w, 4), np.uint8)
            rgba[self._mask] = (self._color.red(), self._color.green(), self._color.blue(),
                                int(round(self._opacity * 255)))
            self._overlay = QImage(rgba.data, w, h, 4 * w, QImage.Format.Format_RGBA8888).copy()
        return self._overlay

    def _stamp(self, p0: QPointF, p1: QPointF, value: bool) -> None:
        hit = brush_hits(self._mask.shape, (p0.x(), p0.y()), (p1.x(), p1.y()), self._brush_size)
        if (self._mask[hit] != value).any():
            self._mask[hit] = value
            self._overlay = None
            self.update()
            self.mask_changed.emit()

    def _end_stroke(self) -> None:
        if self._stroke_before is not None and not np.array_equal(self._stroke_before, self._mask):
            after = self._mask.copy()
            self.undo_stack.push(_MaskEdit(self, self._stroke_before, after,
                                           "Paint" if self._stroke_value else "Erase"))
        self._stroke_before, self._last_pos = None, None

    # --- events -------------------------------------------------------------------------------
    def paintEvent(self, event) -> None:  # noqa: N802 - Qt override
        p = QPainter(self)
        p.fillRect(self.rect(), self.palette().window().color().darker(115))
        h, w = self._mask.shape
        tl = self.image_to_widget(0, 0)
        br = self.image_to_widget(w, h)
        target = QRectF(tl, br)
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
        p.drawImage(target, self._qimage)
        p.drawImage(target, self._overlay_image())
        p.setPen(QPen(QColor(128, 128, 128), 1))
        p.drawRect(target)
        if self._hover is not None and self._pan_from is None and not self._space:
            s = self.zoom()
            rad = max(self._brush_size / 2.0 * s, 2.0)
            p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
            p.setPen(QPen(QColor(255, 255, 255), 1.5))
            p.setBrush(Qt.BrushStyle.NoBrush)
            p.drawEllipse(self._hover, rad, rad)
            p.setPen(QPen(QColor(0, 0, 0), 1, Qt.PenStyle.DotLine))
            p.drawEllipse(self._hover, rad + 1.5, rad + 1.5)
        p.end()

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        self.setFocus(Qt.FocusReason.MouseFocusReason)
        pos = event.position()
        btn = event.button()
        if self._start_pan(event):
            return
        if btn in (Qt.MouseButton.LeftButton, Qt.MouseButton.RightButton) and self._stroke_before is None:
            self._stroke_value = btn == Qt.MouseButton.LeftButton and self._tool == "brush"
            self._stroke_before = self._mask.copy()
            ip = self.widget_to_image(pos)
            self._last_pos = ip
            self._stamp(ip, ip, self._stroke_value)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        pos = event.position()
        self._hover = pos
        if not self._pan_to(pos) and self._stroke_before is not None and self._last_pos is not None:
            ip = self.widget_to_image(pos)
            self._stamp(self._last_pos, ip, self._stroke_value)
            self._last_pos = ip
        self.update()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self._end_pan(event):
            return
        if self._stroke_before is not None:
            self.mouseMoveEvent(event)
            self._end_stroke()

    def keyPressEvent(self, event) -> None:  # noqa: N802
        key = event.key()
        if key == Qt.Key.Key_BracketLeft:
            self.brush_size = self._brush_size - max(1, self._brush_size // 6)
        elif key == Qt.Key.Key_BracketRight:
            self.brush_size = self._brush_size + max(1, self._brush_size // 6)
        elif key == Qt.Key.Key_B and not event.modifiers():
            self.set_tool("brush")
        elif key == Qt.Key.Key_E and not event.modifiers():
            self.set_tool("eraser")
        elif event.matches(QKeySequence.StandardKey.Undo):  # reached only when the shortcut did not fire
            self.undo()
        elif event.matches(QKeySequence.StandardKey.Redo) or (
                key == Qt.Key.Key_Y and event.modifiers() == Qt.KeyboardModifier.ControlModifier):
            self.redo()
        else:
            super().keyPressEvent(event)

    def leaveEvent(self, event) -> None:  # noqa: N802
        self._hover = None
        self.update()
        super().leaveEvent(event)


class MaskEditor(QWidget):
    """The canvas with its tools: brush/eraser, size, clear, invert, undo/redo, overlay colour and
    opacity, fit, and mask PNG load/save. ``canvas`` is the MaskCanvas (its signals are the API)."""

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.canvas = MaskCanvas(self)
        c = self.canvas

        def button(text: str, tip: str, slot=None, checkable: bool = False) -> QToolButton:
            b = QToolButton(self)
            b.setText(text)
            b.setToolTip(tip)
            b.setCheckable(checkable)
            b.setAutoRaise(False)
            if slot is not None:
                b.clicked.connect(slot)
            return b

        self.brush_button = button("Brush", "Paint the region to fill (B; left mouse button)", checkable=True)
        self.eraser_button = button("Eraser", "Erase the mask (E; or drag with the right mouse button)", checkable=True)
        self.brush_button.setChecked(True)
        self.brush_button.clicked.connect(lambda: c.set_tool("brush"))
        self.eraser_button.clicked.connect(lambda: c.set_tool("eraser"))
        c.tool_changed.connect(self._on_tool_changed)

        self.size_slider = QSlider(Qt.Orientation.Horizontal, self)
        self.size_slider.setRange(1, MAX_BRUSH)
        self.size_slider.setValue(c.brush_size)
        self.size_slider.setMinimumWidth(90)
        self.size_slider.setMaximumWidth(160)
        self.size_slider.setToolTip("Brush diameter in image pixels ([ smaller, ] larger)")
        self.size_label = QLabel(self)
        self.size_label.setMinimumWidth(self.size_label.fontMetrics().horizontalAdvance("64 px "))
        self.size_slider.valueChanged.connect(c.set_brush_size)
        c.brush_size_changed.connect(self._on_brush_size_changed)
        self._on_brush_size_changed(c.brush_size)

        self.undo_button = button("Undo", "Undo (Ctrl+Z)", c.undo)
        self.redo_button = button("Redo", "Redo (Ctrl+Shift+Z or Ctrl+Y)", c.redo)
        c.undo_stack.canUndoChanged.connect(self.undo_button.setEnabled)
        c.undo_stack.canRedoChanged.connect(self.redo_button.setEnabled)
        self.undo_button.setEnabled(False)
        self.redo_button.setEnabled(False)
        self.clear_button = button("Clear", "Remove the whole mask (nothing to fill)", c.clear)
        self.invert_button = button("Invert", "Swap the region to fill and the known region", c.invert)

        self.color_button = button("Colour…", "Colour of the mask overlay", self._choose_color)
        self.opacity_slider = QSlider(Qt.Orientation.Horizontal, self)
        self.opacity_slider.setRange(0, 100)
        self.opacity_slider.setValue(int(round(c.overlay_opacity() * 100)))
        self.opacity_slider.setMinimumWidth(70)
        self.opacity_slider.setMaximumWidth(120)
        self.opacity_slider.setToolTip("Opacity of the mask overlay")
        self.opacity_slider.valueChanged.connect(lambda v: c.set_overlay_opacity(v / 100))
        self.fit_button = button("Fit", "Zoom to fit (F). Wheel zooms; middle-drag or Space+drag pans", c.fit)
        self.load_button = button("Load mask…", "Load a mask PNG (white = keep, black = to fill)", self._load_dialog)
        self.save_button = button("Save mask…", "Save the mask as PNG (white = keep, black = to fill), "
                                               "as `ncsn inpaint --mask` reads it", self._save_dialog)
        self._update_color_button()

        row1 = QHBoxLayout()
        for w in (self.brush_button, self.eraser_button, QLabel("Size", self), self.size_slider, self.size_label,
                  self.clear_button, self.invert_button, self.undo_button, self.redo_button):
            row1.addWidget(w)
        row1.addStretch(1)
        row2 = QHBoxLayout()
        for w in (QLabel("Overlay", self), self.color_button, self.opacity_slider, self.fit_button,
                  self.load_button, self.save_button):
            row2.addWidget(w)
        row2.addStretch(1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(row1)
        lay.addLayout(row2)
        lay.addWidget(c, 1)

    def _on_tool_changed(self, tool: str) -> None:
        self.brush_button.setChecked(tool == "brush")
        self.eraser_button.setChecked(tool == "eraser")

    def _on_brush_size_changed(self, size: int) -> None:
        self.size_label.setText(f"{size} px")
        if self.size_slider.value() != size:
            self.size_slider.blockSignals(True)
            self.size_slider.setValue(size)
            self.size_slider.blockSignals(False)

    def _update_color_button(self) -> None:
        col = self.canvas.overlay_color()
        self.color_button.setStyleSheet(f"QToolButton {{ border-left: 12px solid {col.name()}; padding-left: 4px; }}")

    def _choose_color(self) -> None:
        col = QColorDialog.getColor(self.canvas.overlay_color(), self, "Mask overlay colour")
        if col.isValid():
            self.canvas.set_overlay_color(col)
            self._update_color_button()

    def _load_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load mask", "", "Images (*.png *.bmp *.jpg *.jpeg)")
        if not path:
            return
        try:
            resized = self.canvas.load_mask(path)
        except ValueError as e:
            QMessageBox.warning(self, "Cannot load mask", str(e))
            return
        if resized is not None:
            h, w = self.canvas.mask().shape
            QMessageBox.information(self, "Mask resized", f"The mask was {resized[0]}x{resized[1]}; it was resized "
                                                          f"to the image's {w}x{h}.")

    def _save_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save mask", "mask.png", "PNG (*.png)")
        if path:
            if not path.lower().endswith(".png"):
                path += ".png"
            try:
                self.canvas.save_mask(path)
            except OSError as e:
                QMessageBox.warning(self, "Cannot save mask", f"{path}: {e}")
