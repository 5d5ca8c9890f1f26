"""The chain as it runs: the current images of every chain, a timeline of end-of-level snapshots to scrub back
through, and a replay of the levels."""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QPushButton, QSlider, QVBoxLayout, QWidget

from .image_grid import ImageGridView

SPEEDS = [("0.5 levels/s", 0.5), ("1 level/s", 1.0), ("2 levels/s", 2.0), ("5 levels/s", 5.0)]


class ChainView(QWidget):
    """Feed it a sampler's states (`add_state`: LangevinState with x a numpy (B, C, H, W) array) and, at the end,
    the final images (`finish`); `caption` names the frame shown. `snapshots` holds (label, x) at the end of each level and then the final images;
    while a chain runs, the timeline's last position is the live frame and the view follows it unless the user
    scrubbed back. `level_label` describes the newest state; `level_finished(level, sigma, x)` marks each level's end.
    """

    level_finished = Signal(int, float, object)

    def __init__(self, placeholder: str, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.snapshots: List[Tuple[str, np.ndarray]] = []
        self.latest: Optional[Tuple[str, np.ndarray]] = None
        self.levels_seen: List[int] = []
        self._model_levels: Optional[Sequence[int]] = None
        self._final_captions: Optional[List[str]] = None
        self._captions_note = ""

        self.level_label = QLabel("level \u2013/\u2013")
        font = self.level_label.font()
        font.setPointSizeF(font.pointSizeF() * 1.15)
        font.setBold(True)
        self.level_label.setFont(font)
        self.level_label.setWordWrap(True)  # a narrow column (Inpaint) must not widen the window
        self.level_label.setToolTip("i/L: the current noise level; \u03c3_i its noise scale; \u03b1_i its Langevin step")
        self.view = ImageGridView()
        self.view.set_placeholder(placeholder)
        self.caption = QLabel(" ")
        self.timeline = QSlider(Qt.Orientation.Horizontal)
        self.timeline.setRange(0, 0)
        self.timeline.setToolTip("Scrub through the end-of-level snapshots of the chain")
        self.play_button = QPushButton("\u25b6 Replay")
        self.play_button.setCheckable(True)
        self.play_button.setEnabled(False)
        self.speed_combo = QComboBox()
        for label, _ in SPEEDS:
            self.speed_combo.addItem(label)
        self.speed_combo.setCurrentIndex(2)
        self.fit_button = QPushButton("Fit")
        self.fit_button.setToolTip("Reset the zoom (or double-click the image)")

        row = QHBoxLayout()
        row.addWidget(QLabel("Timeline"))
        row.addWidget(self.timeline, 1)
        row.addWidget(self.play_button)
        row.addWidget(self.speed_combo)
        row.addWidget(self.fit_button)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.level_label)
        lay.addWidget(self.view, 1)
        lay.addWidget(self.caption)
        lay.addLayout(row)

        self._play_timer = QTimer(self)
        self._play_timer.timeout.connect(self._on_play_tick)
        self.timeline.valueChanged.connect(self._show_position)
        self.play_button.toggled.connect(self._on_play)
        self.speed_combo.currentIndexChanged.connect(self._on_speed)
        self.fit_button.clicked.connect(self.view.fit)

    # --- a run ---------------------------------------------------------------------------------
    def start(self, model_levels: Optional[Sequence[int]] = None) -> None:
        """Forget the previous run. model_levels: the model's own level index of each level run (a subset)."""
        self.play_button.setChecked(False)
        self.snapshots, self.latest, self.levels_seen = [], None, []
        self._model_levels, self._final_captions = model_levels, None
        self._set_timeline(0, 0)
        self.caption.setText(" ")
        self.play_button.setEnabled(False)

    def add_state(self, st) -> None:
        if not self.levels_seen or self.levels_seen[-1] != st.level:
            self.levels_seen.append(st.level)
        label = f"level {st.level + 1}/{st.n_levels}"
        if st.step == st.n_steps and len(self.snapshots) == st.level:  # end of a level: keep one snapshot
            self.snapshots.append((f"end of {label} (\u03c3 = {st.sigma:.3g})", st.x))
            self.level_finished.emit(st.level, st.sigma, st.x)
        self.latest = (f"{label}, step {st.step}/{st.n_steps}", st.x)
        model = ""
        if self._model_levels is not None and self._model_levels[st.level] != st.level:
            model = f" (model level {self._model_levels[st.level] + 1})"
        i = st.level + 1
        self.level_label.setText(f"{label}{model} \u00b7 \u03c3_{i} = {st.sigma:.4g} \u00b7 \u03b1_{i} = "
                                 f"{st.step_size:.3g} \u00b7 step {st.step}/{st.n_steps} \u00b7 SNR {st.snr:.3g}")
        following = self.timeline.value() >= self.timeline.maximum()
        self._set_timeline(len(self.snapshots), len(self.snapshots) if following else None)  # last: the live frame
        if following:
            self._show_position(self.timeline.maximum())

    def finish(self, x: Optional[np.ndarray], completed: bool, denoised: bool,
               captions: Optional[List[str]] = None, captions_note: str = "") -> None:
        """The final images take the last place on the timeline (x None: the live frame's); captions label
        each final image (e.g. the digit classifier's reading, explained by captions_note)."""
        if x is None and self.latest is None:
            return
        x = self.latest[1] if x is None else x
        if completed and denoised:
            self.snapshots.append(("final (denoised)", x))
        elif completed and self.snapshots:
            self.snapshots[-1] = (self.snapshots[-1][0] + " = final", x)
        else:
            self.snapshots.append((f"stopped ({len(self.snapshots)} levels done)", x))
        self.latest = None
        self._final_captions, self._captions_note = captions, captions_note
        last = len(self.snapshots) - 1
        self._set_timeline(last, last)
        self._show_position(last, immediate=True)

    # --- timeline ------------------------------------------------------------------------------
    def _set_timeline(self, maximum: int, value: Optional[int]) -> None:
        self.timeline.blockSignals(True)  # positions are shown explicitly: no feedback while the range moves
        self.timeline.setRange(0, maximum)
        if value is not None:
            self.timeline.setValue(value)
        self.timeline.blockSignals(False)

    def _frame_at(self, pos: int) -> Optional[Tuple[str, np.ndarray]]:
        if pos < len(self.snapshots):
            return self.snapshots[pos]
        return self.latest or (self.snapshots[-1] if self.snapshots else None)

    def _show_position(self, pos: int, immediate: bool = False) -> None:
        frame = self._frame_at(pos)
        if frame is None:
            return
        label, x = frame
        final = self.latest is None and pos == len(self.snapshots) - 1
        captions = self._final_captions if final else None
        self.view.set_images(x, captions=captions, immediate=immediate)  # nrow: about square
        live = " (live)" if pos >= len(self.snapshots) else ""
        self.caption.setText(label + live + (f"   {self._captions_note}" if captions and self._captions_note else ""))
        self.play_button.setEnabled(len(self.snapshots) > 1)

    def _on_play(self, on: bool) -> None:
        self.play_button.setText("\u23f8 Pause" if on else "\u25b6 Replay")
        if on:
            if self.timeline.value() >= len(self.snapshots) - 1:
                self.timeline.setValue(0)
            self._on_speed()
            self._play_timer.start()
        else:
            self._play_timer.stop()

    def _on_speed(self, *_args) -> None:
        self._play_timer.setInterval(int(1000 / SPEEDS[self.speed_combo.currentIndex()][1]))

    def _on_play_tick(self) -> None:
        if self.timeline.value() >= len(self.snapshots) - 1:
            self.play_button.setChecked(False)
            return
        self.timeline.setValue(self.timeline.value() + 1)
