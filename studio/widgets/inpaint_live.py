"""Inpainting as it runs: every chain (its x, the model's denoised estimate or both) on a scrubbable level timeline,
and completion 1 at the end of each level (each sigma step for the Heun ODE), shown the same way."""
from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np
from PySide6.QtWidgets import QGroupBox, QLabel, QVBoxLayout, QWidget

from .chain_view import ChainView, Frame, side_by_side
from .image_row import ImageRow


class InpaintLive(QGroupBox):
    """`chains` (the shared ChainView) above a strip of completion 1 at each level's end, captioned with sigma_i
    and shown as the chain view's show buttons say (x, denoised estimate, or both side by side)."""

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__("2 \u00b7 Live: every chain as it runs", parent)
        self.chains = ChainView("The chains appear here while they run", "inpaint/chain_show")
        self.strip_view = ImageRow("(filled in as the levels end)")
        self.strip_view.setMinimumHeight(70)
        self._strip: List[Tuple[Frame, str]] = []
        self.strip_images: List[np.ndarray] = []  # what the strip shows, (C, H, W) each
        lay = QVBoxLayout(self)
        lay.addWidget(self.chains, 3)
        note = QLabel("Completion 1 at the end of each level (Heun: each \u03c3 step), captioned with its \u03c3, shown "
                      "as above:")
        note.setWordWrap(True)  # a narrow column must not widen the window
        lay.addWidget(note)
        lay.addWidget(self.strip_view, 1)
        self.chains.level_finished.connect(self._on_level_finished)
        self.chains.show_changed.connect(self._draw_strip)

    def start(self, sampler: str = "annealed_langevin") -> None:
        self.chains.start(sampler=sampler)
        self._strip, self.strip_images = [], []
        self.strip_view.clear()

    def _on_level_finished(self, _level: int, sigma: float, _x: np.ndarray) -> None:
        self._strip.append((self.chains.snapshots[-1], f"{sigma:.2g}"))  # L frames; completion 1 is shown
        self._draw_strip()

    def _draw_strip(self, *_args) -> None:
        if not self._strip:
            return
        mode = self.chains.show_mode()
        images = [f.x[0] if mode == "x" or f.denoised is None else f.denoised[0] if mode == "denoised"
                  else side_by_side(f.x[:1], f.denoised[:1])[0] for f, _ in self._strip]
        self.strip_images = images
        self.strip_view.set_images(images, [caption for _, caption in self._strip])
