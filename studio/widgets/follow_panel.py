"""The Train tab's read-only view of a run folder another process writes: a RunFollower polling it, the badge that
says what the other run is doing (following, silent, ended) and the Stop-following button."""
from __future__ import annotations

from typing import Optional

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QLabel, QPushButton, QVBoxLayout, QWidget

from .. import follow


class FollowPanel(QWidget):
    """start(run_dir) follows a folder until stop() or the run ends. The follower's findings pass through as
    records_read(reset, records), preview_found(path) and checkpoint_found(path); run_ended(word, step) tells that
    the other run finished or diverged; following_changed(on) tells when following begins and ends."""

    records_read = Signal(bool, list)
    preview_found = Signal(str)
    checkpoint_found = Signal(str)
    run_ended = Signal(str, int)
    following_changed = Signal(bool)

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.poll_ms = follow.POLL_MS      # how often the folder is polled
        self.silent_s = follow.SILENT_S    # a followed run with no write for this long is shown as silent
        self.follower: Optional[follow.RunFollower] = None
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.label.setStyleSheet("QLabel { border: 1px solid palette(highlight); border-radius: 4px; padding: 4px; }")
        self.label.hide()
        self.button = QPushButton("Stop following")
        self.button.setToolTip("Stop watching the run folder (the other process goes on)")
        self.button.hide()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.label)
        lay.addWidget(self.button)
        self.button.clicked.connect(self.stop)

    def start(self, run_dir: str) -> None:
        self.stop()
        f = follow.RunFollower(run_dir, self.poll_ms, self.silent_s, self)
        f.records_read.connect(self.records_read)
        f.preview_found.connect(self.preview_found)
        f.checkpoint_found.connect(self.checkpoint_found)
        f.state_changed.connect(self._on_state)
        f.polled.connect(self._show_badge)
        self.follower = f
        self.label.show()
        self.button.show()
        self.following_changed.emit(True)
        f.start()

    def stop(self) -> None:
        """Stop watching (the process writing the run goes on)."""
        f, self.follower = self.follower, None
        if f is None:
            return
        f.stop()
        f.deleteLater()
        self.label.hide()
        self.button.hide()
        self.following_changed.emit(False)

    def _show_badge(self) -> None:
        f = self.follower
        if f is None:
            return
        age = follow.format_age(f.age_s())
        if f.state == follow.SILENT:
            text = (f"Following {f.run_dir} — silent: no update for {age} (stopped, crashed, or a slow "
                    f"machine); still watching, read-only")
        else:
            text = f"Following {f.run_dir} (written by another process) — read-only; last update {age} ago"
        self.label.setText(text)

    def _on_state(self, state: str) -> None:
        f = self.follower
        if state != follow.FINISHED or f is None:
            self._show_badge()
            return
        word = "diverged" if f.reason == "diverged" else "finished"
        step = f.last_step
        self.stop()
        self.label.setText(f"Followed {f.run_dir}: the run {word} at step {step:,} (written by another process).")
        self.label.show()
        self.run_ended.emit(word, step)
