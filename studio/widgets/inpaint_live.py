"""Inpainting as it runs: every chain (its x, the model's denoised estimate or both) on a scrubbable level timeline,
and completion 1 at the end of each level (each sigma step for the Heun ODE)."""
from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np
from PySide6.QtWidgets import QGroupBox, QLabel, QVBoxLayout, QWidget

from .chain_view import ChainView
from .image_row import ImageRow


class InpaintLive(QGroupBox):
    """`chains` (the shared ChainView) above a strip of completion 1 at each level's end, captioned with sigma_i."""

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__("2 \u00b7 Live: every chain as it runs", parent)
        self.chains = ChainView("The chains appear here while they run", "inpaint/chain_show")
        self.strip_view = ImageRow("(filled in as the levels end)")
        self.strip_view.setMinimumHeight(70)
        self._strip: List[Tuple[np.ndarray, str]] = []
        lay = QVBoxLayout(self)
        lay.addWidget(self.chains, 3)
        note = QLabel("Completion 1 at the end of each level (Heun: each \u03c3 step), captioned with its \u03c3:")
        note.setWordWrap(True)  # a narrow column must not widen the window
        lay.addWidget(note)
        lay.addWidget(self.strip_view, 1)
        self.chains.level_finished.connect(self._on_level_finished)

    def start(self, sampler: str = "annealed_langevin") -> None:
        self.chains.start(sampler=sampler)
        self._strip = []
        self.strip_view.clear()

    def _on_level_finished(self, _level: int, sigma: float, x: np.ndarray) -> None:
        self._strip.append((x[0], f"{sigma:.2g}"))  # L small images at most
        self.strip_view.set_images(*zip(*self._strip))
