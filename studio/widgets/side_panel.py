"""The scrolling left-hand column of controls that every workspace has, and the layout around it."""
from __future__ import annotations

from typing import Sequence

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLayout, QScrollArea, QSplitter, QVBoxLayout, QWidget


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


def split_workspace(tab: QWidget, left: Sequence, banner: QWidget, progress: QWidget, status: QWidget,
                    *body) -> None:
    """Lay `tab` out as Train, Sample and Evaluate are: the controls `left` in a side panel; on the right the
    banner, the run's progress and status side by side, then `body` (widgets and layouts, the first one
    stretching)."""
    right = QWidget()
    rl = QVBoxLayout(right)
    rl.setContentsMargins(0, 0, 0, 0)
    rl.addWidget(banner)
    top = QHBoxLayout()
    top.addWidget(progress, 2)
    top.addWidget(status, 3)
    rl.addLayout(top)
    for k, part in enumerate(body):
        if isinstance(part, QLayout):
            rl.addLayout(part)
        else:
            rl.addWidget(part, 1 if k == 0 else 0)
    split = QSplitter(Qt.Orientation.Horizontal)
    split.addWidget(side_panel(*left))
    split.addWidget(right)
    split.setStretchFactor(1, 1)
    split.setSizes([380, 1000])
    outer = QVBoxLayout(tab)
    outer.setContentsMargins(4, 4, 4, 4)
    outer.addWidget(split)
