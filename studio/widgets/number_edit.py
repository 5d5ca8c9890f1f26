"""A line edit for one number with a range: it parses as you type, says what is wrong, and never guesses."""
from __future__ import annotations

import math
from typing import Optional, Union

from PySide6.QtCore import Signal
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QLineEdit, QWidget

from .banner import tinted

Number = Union[int, float]


class NumberEdit(QLineEdit):
    """int or float field (scientific notation welcome: 1e-3). `error()` is None or a message naming the
    field, its value and the allowed range; `validity_changed(bool)` fires when that flips.
    optional=True allows an empty field (value() is then None, e.g. 'no EMA')."""

    validity_changed = Signal(bool)

    def __init__(self, name: str, value: Optional[Number], kind: type = float, minimum: Optional[float] = None,
                 maximum: Optional[float] = None, optional: bool = False, exclusive_min: bool = False,
                 parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.name, self.kind, self.minimum, self.maximum = name, kind, minimum, maximum
        self.optional, self.exclusive_min = optional, exclusive_min
        self._valid = True
        self.setObjectName(name)
        self.textChanged.connect(self._on_text_changed)
        self.set_value(value)
        lo = "" if minimum is None else (f"> {minimum:g}" if exclusive_min else f">= {minimum:g}")
        hi = "" if maximum is None else f"<= {maximum:g}"
        rng = " and ".join(p for p in (lo, hi) if p)
        self.setToolTip(f"{name}: {'an integer' if kind is int else 'a number'}{' ' + rng if rng else ''}"
                        f"{'; leave empty for none' if optional else ''}")

    def set_value(self, value: Optional[Number]) -> None:
        if value is None:
            self.setText("")
        elif self.kind is int:
            self.setText(str(int(value)))
        else:
            self.setText(f"{float(value):g}")

    def error(self) -> Optional[str]:
        text = self.text().strip().replace("_", "")
        if not text:
            return None if self.optional else f"{self.name} is empty: enter {'an integer' if self.kind is int else 'a number'}"
        try:
            v = self.kind(float(text)) if self.kind is float else int(text)
        except ValueError:
            return f"{self.name}={text!r} is not {'an integer' if self.kind is int else 'a number'}"
        if self.kind is float and not math.isfinite(v):
            return f"{self.name}={text} must be finite"
        if self.minimum is not None and (v <= self.minimum if self.exclusive_min else v < self.minimum):
            return f"{self.name}={text} must be {'>' if self.exclusive_min else '>='} {self.minimum:g}"
        if self.maximum is not None and v > self.maximum:
            return f"{self.name}={text} must be <= {self.maximum:g}"
        return None

    def is_valid(self) -> bool:
        return self.error() is None

    def value(self) -> Optional[Number]:
        """The parsed number (None for an empty optional field); ValueError with error()'s text if invalid."""
        err = self.error()
        if err:
            raise ValueError(err)
        text = self.text().strip().replace("_", "")
        if not text:
            return None
        return int(text) if self.kind is int else float(text)

    def _on_text_changed(self, _text: str) -> None:
        valid = self.is_valid()
        self._apply_palette(valid)
        if valid != self._valid:
            self._valid = valid
            self.validity_changed.emit(valid)

    def _apply_palette(self, valid: bool) -> None:
        """Valid: the inherited palette (follows theme switches); invalid: a red tint of the inherited base."""
        self.setPalette(QPalette())
        if not valid:
            pal = QPalette()
            pal.setColor(QPalette.ColorRole.Base, tinted(self.palette().color(QPalette.ColorRole.Base),
                                                         QColor(220, 50, 47), 0.3))
            self.setPalette(pal)

    def changeEvent(self, event) -> None:
        super().changeEvent(event)
        if event.type() == event.Type.ParentChange and hasattr(self, "_valid"):
            self._apply_palette(self.is_valid())
