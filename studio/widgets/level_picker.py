"""Pick a subset of a model's noise levels to run (the last checked level acts as sigma_L)."""
from __future__ import annotations

from typing import List, Optional, Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QGroupBox, QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QPushButton, QVBoxLayout, QWidget

NOTE = ("A model is trained for its own \u03c3 ladder: you can run a subset of its levels (the last checked level "
        "acts as \u03c3_L). A continuous-\u03c3 model also samples on new \u03c3 values: see Sampling ladder.")


class LevelPicker(QGroupBox):
    """One checkable row per sigma_i of the model's ladder, with "All levels" and "Every 2nd";
    `selection_changed()` after every change. `set_unavailable(why)` folds the list away and says why (a sampler
    that runs its own sigma schedule); `selected()` is then every level."""

    selection_changed = Signal()

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__("Noise ladder", parent)
        self.sigmas: Sequence[float] = ()
        self.ladder_label = QLabel()
        self.ladder_label.setWordWrap(True)
        self.level_list = QListWidget()
        self.level_list.setMaximumHeight(150)
        self.all_levels_button = QPushButton("All levels")
        self.every2_button = QPushButton("Every 2nd")
        self.note = note = QLabel(NOTE)
        note.setWordWrap(True)
        self._why: Optional[str] = None
        buttons = QHBoxLayout()
        buttons.addWidget(self.all_levels_button)
        buttons.addWidget(self.every2_button)
        buttons.addStretch(1)
        lay = QVBoxLayout(self)
        lay.addWidget(self.ladder_label)
        lay.addWidget(self.level_list)
        lay.addLayout(buttons)
        lay.addWidget(note)
        self.level_list.itemChanged.connect(lambda _item: self.selection_changed.emit())
        self.all_levels_button.clicked.connect(lambda: self.select(None))
        self.every2_button.clicked.connect(self._on_every_second)

    def set_sigmas(self, sigmas: Sequence[float]) -> None:
        """A model's ladder (descending), every level checked."""
        self.sigmas = tuple(sigmas)
        self.ladder_label.setText(f"Model's ladder: \u03c3\u2081 = {sigmas[0]:.4g}, \u03c3_L = {sigmas[-1]:.4g}, "
                                  f"L = {len(sigmas)} (geometric).")
        self.level_list.blockSignals(True)  # one selection_changed for the new ladder, not one per row
        self.level_list.clear()
        for i, v in enumerate(sigmas):
            item = QListWidgetItem(f"level {i + 1}: \u03c3 = {v:.4g}")
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked)
            self.level_list.addItem(item)
        self.level_list.blockSignals(False)
        self.selection_changed.emit()

    def select(self, levels: Optional[Sequence[int]]) -> None:
        """Check the given level indices (None = all)."""
        self.level_list.blockSignals(True)
        for i in range(self.level_list.count()):
            on = levels is None or i in levels
            self.level_list.item(i).setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)
        self.level_list.blockSignals(False)
        self.selection_changed.emit()

    def selected(self) -> List[int]:
        if self._why is not None:
            return list(range(self.level_list.count()))
        return [i for i in range(self.level_list.count())
                if self.level_list.item(i).checkState() == Qt.CheckState.Checked]

    def set_unavailable(self, why: Optional[str]) -> None:
        """None: the levels can be picked; otherwise the list is greyed out and `why` says so (tooltip and note)."""
        if why == self._why:
            return
        self._why = why
        for w in (self.level_list, self.all_levels_button, self.every2_button):
            w.setEnabled(why is None)
            w.setToolTip(f"Not available: {why}." if why else "")
            w.setVisible(why is None)  # folded away: the side panel keeps Run in view
        self.setToolTip(f"Not available: {why}." if why else "")
        self.note.setText(f"Every level is run: {why}." if why else NOTE)
        self.selection_changed.emit()

    def _on_every_second(self) -> None:
        L = self.level_list.count()
        self.select(sorted(set(range(0, L, 2)) | {L - 1}))
