"""The controls of one kind of run: Run (Pause, Resume) and Stop following the run's state, its progress and
status, and the reason Run is off."""
from __future__ import annotations

from typing import Optional

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget


class RunBar(QWidget):
    """Run (with Pause and Resume when `pausable`) and Stop, enabled from `controller.state` (a RunController,
    used through its `state` and `state_changed` only: widgets do not import the bridge). `set_problem(text)`
    keeps Run off and says why, above the buttons and in Run's tooltip.

    `progress` and `status` belong to the same run; each tab places them where its layout wants them."""

    def __init__(self, controller, run_text: str = "Run", run_tip: str = "", pausable: bool = False,
                 parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.controller = controller
        self._run_tip = run_tip
        self._problem: Optional[str] = None
        self.problem_label = QLabel()
        self.problem_label.setWordWrap(True)
        self.problem_label.hide()
        self.run_button = QPushButton(run_text)
        self.pause_button = QPushButton("Pause") if pausable else None
        self.resume_button = QPushButton("Resume") if pausable else None
        self.stop_button = QPushButton("Stop")
        self.progress = QProgressBar()
        self.progress.setValue(0)
        self.status = QLabel("Not running.")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        row = QHBoxLayout()
        for b in (self.run_button, self.pause_button, self.resume_button, self.stop_button):
            if b is not None:
                row.addWidget(b)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.problem_label)
        lay.addLayout(row)
        controller.state_changed.connect(self._on_state_changed)
        self._on_state_changed()

    def set_problem(self, problem: Optional[str]) -> None:
        """Why Run cannot start now, or None when it can."""
        self._problem = problem
        self.problem_label.setText(f"\u26a0 {problem}" if problem else "")
        self.problem_label.setVisible(bool(problem))
        self._on_state_changed()

    def problem(self) -> Optional[str]:
        return self._problem

    def set_progress(self, value: int, maximum: Optional[int] = None) -> None:
        if maximum is not None:
            self.progress.setRange(0, maximum)
        self.progress.setValue(value)

    def _on_state_changed(self, *_args) -> None:
        state = self.controller.state
        self.run_button.setEnabled(state == "idle" and self._problem is None)
        self.run_button.setToolTip(self._problem or self._run_tip)
        self.stop_button.setEnabled(state in ("running", "paused"))
        if self.pause_button is not None:
            self.pause_button.setEnabled(state == "running")
            self.resume_button.setEnabled(state == "paused")
