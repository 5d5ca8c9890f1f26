"""What every workspace (tab) has: a RunController, a status line for the window, Run (F5), Stop and a clean
shutdown."""
from __future__ import annotations

from typing import Optional

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QWidget

from .controller import PAUSED, RUNNING, RunController


class Tab(QWidget):
    """One workspace: `controller` runs its work (one is made when None is given); subclasses implement run().
    The main window calls run_action (F5), stop (Shift+F5), export_action (Ctrl+S) where a tab has one, and
    shutdown before quitting; closing a tab on its own shuts it down too."""

    status_message = Signal(str)  # the main window shows it in its status bar

    def __init__(self, controller: Optional[RunController], name: str, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.controller = controller if controller is not None else RunController(name, self)

    def run(self) -> bool:
        raise NotImplementedError

    def run_action(self) -> None:
        self.run()

    def stop(self) -> None:
        if self.controller.state in (RUNNING, PAUSED):
            self.controller.stop()

    def is_running(self) -> bool:
        return self.controller.is_busy()

    def shutdown(self, timeout_ms: int = 10000) -> None:
        """Stop the run and wait for its thread (a QThread must not outlive its widget)."""
        self.stop()
        self.controller.wait(timeout_ms)

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt override
        self.shutdown()
        super().closeEvent(event)
