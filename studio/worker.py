"""The one bridge between Qt and torch: run a core generator on a QThread and emit its events as signals.

Contract (DESIGN.md §3): the generator is created and driven on the worker thread; every yielded
event and the return value leave the thread with torch tensors converted to CPU numpy arrays
(``dataclasses.replace(ev, field=t.detach().cpu().numpy())``), so widgets never see torch.
Commands reach the generator through ``gen.send(cmd)`` at its next yield; ``stop()`` also sets the
worker's ``interrupt`` event, which a generator that can leave mid-way (training: ``train(interrupt=...)``,
picked up with ``interrupt_event()``) watches. The GUI never blocks on the worker; widgets throttle their
own repaints.

Signal order: zero or more ``event_emitted``, then at most one ``errored``, then exactly one
``finished`` (None after an error), so ``finished`` is always the last word of a run.
"""
from __future__ import annotations

import collections
import dataclasses
import sys
import threading
import traceback
from typing import Any, Callable, Deque, Generator, Optional

from PySide6.QtCore import QObject, QThread, Signal


def to_plain(value: Any) -> Any:
    """Tensors -> CPU numpy arrays, also inside dataclasses, tuples, lists and dicts (one level deep
    is the common case; recursion keeps it honest for nested results)."""
    torch = sys.modules.get("torch")  # not imported at start-up (it takes seconds); no torch, no tensors
    if torch is not None and isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {}
        for f in dataclasses.fields(value):
            if not f.init:
                continue
            v = getattr(value, f.name)
            c = to_plain(v)
            if c is not v:
                changes[f.name] = c
        return dataclasses.replace(value, **changes) if changes else value
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        items = tuple(to_plain(v) for v in value)
        return items if any(a is not b for a, b in zip(items, value)) else value
    if isinstance(value, list):
        return [to_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    return value


def describe_error(exc: BaseException) -> str:
    """A readable one-line message: 'ValueError: the message' (first line only)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    name = type(exc).__name__
    return f"{name}: {text}" if text else name


_current = threading.local()  # .worker: the GeneratorWorker whose thread this is


def interrupt_event() -> threading.Event:
    """For a make_gen running on a GeneratorWorker's thread: that worker's interrupt event, which its stop() sets
    (a fresh event, never set, on any other thread)."""
    worker = getattr(_current, "worker", None)
    return worker.interrupt if worker is not None else threading.Event()


class _Thread(QThread):
    def __init__(self, target: Callable[[], None], parent: QObject):
        super().__init__(parent)
        self._target = target

    def run(self) -> None:  # noqa: D401 - Qt override
        self._target()


class GeneratorWorker(QObject):
    """Drive ``make_gen()`` (called on the worker thread) to its end on a private QThread.

    ``send(cmd)`` queues a command for the generator's next yield; ``stop()`` queues "stop" (once),
    sets ``interrupt`` (a generator watching it need not wait for its next yield: training abandons the
    step under way) and lifts a pause, the generator finishing its own way (training saves a checkpoint first);
    ``pause()``/``resume()`` make the worker stop/continue pulling events (a queued command is still
    delivered while paused: for training, ``send("pause")`` then ``pause()`` writes a checkpoint
    and holds the run without busy-waiting).
    """

    event_emitted = Signal(object)
    finished = Signal(object)
    errored = Signal(str)

    def __init__(self, make_gen: Callable[[], Generator], parent: Optional[QObject] = None):
        super().__init__(parent)
        self._make_gen = make_gen
        self._cond = threading.Condition()
        self._commands: Deque[str] = collections.deque()
        self._paused = False
        self._stop_sent = False
        self._started = False
        self._done = threading.Event()
        self.interrupt = threading.Event()  # set by stop(); see interrupt_event()
        self._thread = _Thread(self._run, self)
        self.traceback: Optional[str] = None  # the full traceback of the last error, for a details view

    # --- GUI-thread API -----------------------------------------------------------------------
    def start(self) -> None:
        if self._started:
            raise RuntimeError("this GeneratorWorker was already started: create a new one per run")
        self._started = True
        self._thread.start()

    def send(self, cmd: str) -> None:
        with self._cond:
            self._commands.append(cmd)
            self._cond.notify_all()

    def stop(self) -> None:
        with self._cond:
            if not self._stop_sent:
                self._stop_sent = True
                self._commands.append("stop")
            self.interrupt.set()
            self._paused = False
            self._cond.notify_all()

    def pause(self) -> None:
        with self._cond:
            self._paused = True

    def resume(self) -> None:
        with self._cond:
            self._paused = False
            self._cond.notify_all()

    def is_paused(self) -> bool:
        return self._paused

    def is_running(self) -> bool:
        return self._started and not self._done.is_set()

    def wait(self, ms: int = -1) -> bool:
        """Block until the run has ended (True) or `ms` milliseconds passed (False); -1 waits forever.
        Queued signals are delivered later, when the caller's event loop runs."""
        if not self._started:
            return True
        ok = self._done.wait(None if ms is None or ms < 0 else ms / 1000)
        if ok:
            self._thread.wait()  # the thread's last instructions after _done is set
        return ok

    # --- worker thread ------------------------------------------------------------------------
    def _next_command(self) -> Optional[str]:
        with self._cond:
            while self._paused and not self._commands:
                self._cond.wait()
            return self._commands.popleft() if self._commands else None

    def _run(self) -> None:
        result: Any = None
        _current.worker = self
        try:
            gen = self._make_gen()
            ev = next(gen)
            while True:
                if ev is not None:  # None: the generator only offers a moment to receive a command
                    self.event_emitted.emit(to_plain(ev))
                cmd = self._next_command()
                ev = gen.send(cmd) if cmd is not None else next(gen)
        except StopIteration as stop:
            result = to_plain(stop.value)
        except Exception as exc:  # noqa: BLE001 - any failure becomes a message, never a crash
            self.traceback = traceback.format_exc()
            self.errored.emit(describe_error(exc))
            result = None
        finally:
            self._done.set()
        self.finished.emit(result)
