"""Colour themes: the platform's own palette, or Fusion with a light or dark palette."""
from __future__ import annotations

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication


def apply_theme(app: QApplication, name: str) -> None:
    """'system' keeps the platform palette; 'light' / 'dark' use Fusion with a matching palette. Widgets
    read palette roles (never hard-coded text colours), so both stay readable."""
    if not hasattr(app, "_ncsn_default_palette"):
        app._ncsn_default_palette = QPalette(app.palette())
        app._ncsn_default_style = app.style().name()
    if name == "system":
        app.setStyle(app._ncsn_default_style)
        app.setPalette(app._ncsn_default_palette)
        return
    app.setStyle("Fusion")
    p = QPalette()
    if name == "dark":
        window, base, text = QColor(45, 45, 48), QColor(30, 30, 32), QColor(230, 230, 230)
        p.setColor(QPalette.ColorRole.Window, window)
        p.setColor(QPalette.ColorRole.WindowText, text)
        p.setColor(QPalette.ColorRole.Base, base)
        p.setColor(QPalette.ColorRole.AlternateBase, window)
        p.setColor(QPalette.ColorRole.Text, text)
        p.setColor(QPalette.ColorRole.Button, window)
        p.setColor(QPalette.ColorRole.ButtonText, text)
        p.setColor(QPalette.ColorRole.ToolTipBase, base)
        p.setColor(QPalette.ColorRole.ToolTipText, text)
        p.setColor(QPalette.ColorRole.PlaceholderText, QColor(140, 140, 140))
        p.setColor(QPalette.ColorRole.Highlight, QColor(64, 140, 220))
        p.setColor(QPalette.ColorRole.HighlightedText, QColor(255, 255, 255))
        p.setColor(QPalette.ColorRole.Link, QColor(100, 170, 255))
        for role in (QPalette.ColorRole.WindowText, QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText):
            p.setColor(QPalette.ColorGroup.Disabled, role, QColor(120, 120, 120))
    else:
        p = app.style().standardPalette()
        p.setColor(QPalette.ColorRole.Highlight, QColor(38, 110, 200))
    app.setPalette(p)
