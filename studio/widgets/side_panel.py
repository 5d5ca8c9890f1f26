"""The scrolling left-hand column of controls that every workspace has."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLayout, QScrollArea, QVBoxLayout, QWidget


def side_panel(*parts, min_width: int = 360) -> QScrollArea:
    """Stack widgets and layouts top to bottom (stretch below), in a vertical-only scroll area."""
    inner = QWidget()
    lay = QVBoxLayout(inner)
    for part in parts:
        if isinstance(part, QLayout):
            lay.addLayout(part)
        else:
            lay.addWidget(part)
    lay.addStretch(1)
    scroll = QScrollArea()
    scroll.setWidget(inner)
    scroll.setWidgetResizable(True)
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    scroll.setMinimumWidth(min_width)
    return scroll
