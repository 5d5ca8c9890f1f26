"""An inline, non-modal message bar (errors, warnings, offers such as "resume the unfinished run?")."""
from __future__ import annotations

from typing import Callable, List, Optional, Sequence, Tuple

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QToolButton, QWidget

_TINTS = {"error": QColor(220, 50, 47), "warning": QColor(230, 160, 0), "info": QColor(38, 139, 210)}


def tinted(base: QColor, tint: QColor, amount: float) -> QColor:
    """`base` mixed with `tint` (amount in [0, 1]): readable in light and dark palettes alike."""
    return QColor(round(base.red() * (1 - amount) + tint.red() * amount),
                  round(base.green() * (1 - amount) + tint.green() * amount),
                  round(base.blue() * (1 - amount) + tint.blue() * amount))


class MessageBanner(QFrame):
    """A coloured strip with a message, optional action buttons and a close button; hidden when empty.
    The text keeps the palette's own text colour; only the background is tinted by level."""

    dismissed = Signal()

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setAutoFillBackground(True)
        self._label = QLabel()
        self._label.setWordWrap(True)
        self._label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self._label.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self._buttons: List[QPushButton] = []
        self._close = QToolButton()
        self._close.setText("\u2715")
        self._close.setToolTip("Dismiss")
        self._close.setAutoRaise(True)
        self._close.clicked.connect(self.dismiss)
        self._layout = QHBoxLayout(self)
        self._layout.setContentsMargins(8, 4, 4, 4)
        self._layout.addWidget(self._label, 1)
        self._layout.addWidget(self._close)
        self.level = "info"
        self._applying = False
        self.hide()

    def text(self) -> str:
        return self._label.text()

    def show_message(self, text: str, level: str = "error",
                     actions: Sequence[Tuple[str, Callable[[], None]]] = ()) -> None:
        """Show `text`; each action is (button label, callback), and clicking one also dismisses."""
        self.level = level
        self._label.setText(text)
        for b in self._buttons:
            self._layout.removeWidget(b)
            b.deleteLater()
        self._buttons = []
        for label, cb in actions:
            b = QPushButton(label)
            b.clicked.connect(lambda _=False, cb=cb: (self.dismiss(), cb()))
            self._layout.insertWidget(self._layout.count() - 1, b)
            self._buttons.append(b)
        self._apply_palette()
        self.show()

    def buttons(self) -> List[QPushButton]:
        return list(self._buttons)

    def dismiss(self) -> None:
        self.hide()
        self.dismissed.emit()

    def changeEvent(self, event) -> None:  # follow light/dark palette switches
        super().changeEvent(event)
        if event.type() == event.Type.ParentChange or (event.type() == event.Type.PaletteChange and
                                                        hasattr(self, "_label") and not self._applying):
            self._applying = True
            try:
                self._apply_palette()
            finally:
                self._applying = False

    def _apply_palette(self) -> None:
        """Only the background is set (a tint of the inherited window colour); the text colour is inherited,
        so it follows light/dark palette switches."""
        base = (self.parentWidget() or self).palette().color(QPalette.ColorRole.Window)
        pal = QPalette()
        pal.setColor(QPalette.ColorRole.Window, tinted(base, _TINTS.get(self.level, _TINTS["info"]), 0.22))
        self.setPalette(pal)
