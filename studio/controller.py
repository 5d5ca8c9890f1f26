"""The run state machine (idle / running / paused / stopping) that owns one GeneratorWorker at a time, and
LatestRun for short jobs where only the newest request matters."""
from __future__ import annotations

from typing import Callable, Generator, Optional

from PySide6.QtCore import QObject, Signal

from .worker import GeneratorWorker

IDLE, RUNNING, PAUSED, STOPPING = "idle", "running", "paused", "stopping"
STATES = (IDLE, RUNNING, PAUSED, STOPPING)

# state -> states it may move to. "finished" (the worker's last signal) always returns to idle.
_ALLOWED = {
    IDLE: {RUNNING},
    RUNNING: {PAUSED, STOPPING, IDLE},
    PAUSED: {RUNNING, STOPPING, IDLE},
    STOPPING: {IDLE},
}


class InvalidTransition(RuntimeError):
    """A command that the current run state does not allow (e.g. pause while idle)."""


class RunController(QObject):
    """One run at a time for one tab: start / pause / resume / stop, with the state widgets follow.

    The widgets enable their buttons from ``state_changed``; the commands below raise
    InvalidTransition when the state does not allow them (``can(state)`` asks first).
    Signals mirror the worker's: ``event_emitted`` for each event (tensors already numpy),
    ``errored`` with a one-line message, then ``finished`` with the generator's return value.

    ``pause_command``: for a generator that understands it (training: "pause" writes a checkpoint
    first), the command sent before the worker stops pulling; None for samplers.
    """

    state_changed = Signal(str)
    event_emitted = Signal(object)
    finished = Signal(object)
    errored = Signal(str)

    def __init__(self, name: str = "run", parent: Optional[QObject] = None):
        super().__init__(parent)
        self.name = name
        self._state = IDLE
        self._worker: Optional[GeneratorWorker] = None
        self._pause_command: Optional[str] = None
        self.last_error: Optional[str] = None

    # --- state -------------------------------------------------------------------------------
    @property
    def state(self) -> str:
        return self._state

    def can(self, new_state: str) -> bool:
        return new_state in _ALLOWED[self._state]

    def is_busy(self) -> bool:
        return self._state != IDLE

    def _require(self, command: str, *from_states: str) -> None:
        if self._state not in from_states:
            raise InvalidTransition(f"{self.name}: cannot {command} while {self._state}")

    def _move(self, new_state: str) -> None:
        if new_state not in _ALLOWED[self._state]:
            raise InvalidTransition(f"{self.name}: cannot go from {self._state} to {new_state}")
        self._state = new_state
        self.state_changed.emit(new_state)

    # --- commands ----------------------------------------------------------------------------
    def start(self, make_gen: Callable[[], Generator], pause_command: Optional[str] = None) -> GeneratorWorker:
        """Run make_gen() on a new worker thread (idle -> running)."""
        self._require("start", IDLE)
        self._move(RUNNING)
        self.last_error = None
        self._pause_command = pause_command
        w = GeneratorWorker(make_gen, self)
        w.event_emitted.connect(self.event_emitted)
        w.errored.connect(self._on_errored)
        w.finished.connect(self._on_finished)
        self._worker = w
        w.start()
        return w

    def pause(self) -> None:
        """running -> paused: the worker stops pulling (after delivering pause_command, if any)."""
        self._require("pause", RUNNING)
        self._move(PAUSED)
        if self._pause_command:
            self._worker.send(self._pause_command)
        self._worker.pause()

    def resume(self) -> None:
        """paused -> running."""
        self._require("resume", PAUSED)
        self._move(RUNNING)
        self._worker.resume()

    def stop(self) -> None:
        """running/paused -> stopping: "stop" reaches the generator at its next yield; finished follows."""
        self._require("stop", RUNNING, PAUSED)
        self._move(STOPPING)
        self._worker.stop()

    def send(self, cmd: str) -> None:
        """A command for the running generator (e.g. training's "save")."""
        if self._state not in (RUNNING, PAUSED) or self._worker is None:
            raise InvalidTransition(f"{self.name}: nothing is running to receive {cmd!r}")
        self._worker.send(cmd)

    def wait(self, ms: int = -1) -> bool:
        """Block until the worker's generator has ended (its signals arrive with the next event loop)."""
        return self._worker.wait(ms) if self._worker is not None else True

    # --- worker signals ----------------------------------------------------------------------
    def _on_errored(self, message: str) -> None:
        self.last_error = message
        self.errored.emit(message)

    def _on_finished(self, result: object) -> None:
        w, self._worker = self._worker, None
        if w is not None:
            w.wait()  # finished is the worker's last act: its thread ends at once
            w.deleteLater()
        self._move(IDLE)
        self.finished.emit(result)


class LatestRun(QObject):
    """Short jobs where only the newest request matters (reading a checkpoint's description, computing a field):
    each `start(make_gen)` runs on its own worker thread; older runs finish unheard. Signals as RunController's,
    from the newest run only: `event_emitted`, `errored`, then `finished` (its return value, None after an error).
    """

    event_emitted = Signal(object)
    finished = Signal(object)
    errored = Signal(str)

    def __init__(self, parent: Optional[QObject] = None):
        super().__init__(parent)
        self._workers: list = []   # every run still under way
        self._newest: Optional[GeneratorWorker] = None

    def start(self, make_gen: Callable[[], Generator]) -> None:
        w = GeneratorWorker(make_gen, self)
        w.event_emitted.connect(lambda ev, w=w: self.event_emitted.emit(ev) if w is self._newest else None)
        w.errored.connect(lambda msg, w=w: self.errored.emit(msg) if w is self._newest else None)
        w.finished.connect(lambda result, w=w: self._on_finished(w, result))
        self._workers.append(w)
        self._newest = w
        w.start()

    def is_busy(self) -> bool:
        return bool(self._workers)

    def wait(self, ms: int = -1) -> bool:
        """Wait for every run still under way (-1: as long as it takes; a thread must end before its widgets are
        destroyed, and these jobs are short). True when all have ended."""
        ended = True
        for w in list(self._workers):
            w.stop()
            ended = w.wait(ms) and ended
        return ended

    def _on_finished(self, worker: GeneratorWorker, result: object) -> None:
        self._workers.remove(worker)
        worker.wait()
        worker.deleteLater()
        if worker is self._newest:
            self._newest = None
            self.finished.emit(result)
