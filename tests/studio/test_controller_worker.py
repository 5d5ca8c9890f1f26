"""The bridge and the state machine: conversion to numpy, commands, pause, errors, invalid transitions."""
import time
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from studio.controller import InvalidTransition, RunController
from studio.worker import GeneratorWorker, describe_error, to_plain


@dataclass(frozen=True)
class Ev:
    i: int
    x: object


def counting(n=5, sleep=0.0):
    got = []
    for i in range(n):
        cmd = yield Ev(i, torch.full((2,), float(i)))
        got.append(cmd)
        if cmd == "stop":
            return ("stopped", got)
        if sleep:
            time.sleep(sleep)
    return ("done", torch.ones(3))


def test_events_and_result_leave_the_thread_as_numpy(qtbot):
    w = GeneratorWorker(lambda: counting(3))
    events = []
    w.event_emitted.connect(events.append)
    with qtbot.waitSignal(w.finished, timeout=5000) as blocker:
        w.start()
    assert [e.i for e in events] == [0, 1, 2]
    assert all(isinstance(e.x, np.ndarray) for e in events)
    status, value = blocker.args[0]
    assert status == "done" and isinstance(value, np.ndarray)


def test_send_and_stop_reach_the_generator(qtbot):
    w = GeneratorWorker(lambda: counting(1000, sleep=0.002))
    w.send("save")
    with qtbot.waitSignal(w.finished, timeout=5000) as blocker:
        w.start()
        w.stop()
    status, got = blocker.args[0]
    assert status == "stopped" and got[0] == "save" and got[-1] == "stop"
    assert not w.is_running()


def test_pause_holds_the_generator_and_resume_continues(qtbot):
    w = GeneratorWorker(lambda: counting(10_000, sleep=0.001))
    events = []
    w.event_emitted.connect(events.append)
    w.start()
    qtbot.waitUntil(lambda: len(events) > 3, timeout=5000)
    w.pause()
    qtbot.wait(100)
    n = len(events)
    qtbot.wait(200)
    assert len(events) <= n + 1  # at most the one in flight when pause() was called
    w.resume()
    qtbot.waitUntil(lambda: len(events) > n + 5, timeout=5000)
    with qtbot.waitSignal(w.finished, timeout=5000):
        w.stop()


def test_errors_become_one_line_messages_then_finished(qtbot):
    def bad():
        yield 1
        raise ValueError("sigma_end=0 must be positive\nsecond line")

    w = GeneratorWorker(bad)
    errors, finished = [], []
    w.errored.connect(errors.append)
    w.finished.connect(finished.append)
    with qtbot.waitSignal(w.finished, timeout=5000):
        w.start()
    assert errors == ["ValueError: sigma_end=0 must be positive"]
    assert finished == [None]
    assert "Traceback" in w.traceback


def test_make_gen_runs_on_the_worker_thread(qtbot):
    import threading
    seen = []

    def make():
        seen.append(threading.current_thread() is threading.main_thread())
        return counting(1)

    w = GeneratorWorker(make)
    with qtbot.waitSignal(w.finished, timeout=5000):
        w.start()
    assert seen == [False]


def test_to_plain_and_describe_error():
    ev = to_plain(Ev(1, torch.zeros(2, 2)))
    assert isinstance(ev.x, np.ndarray) and ev.i == 1
    assert to_plain({"a": (torch.ones(1), 2)})["a"][1] == 2
    assert describe_error(RuntimeError()) == "RuntimeError"


def test_state_machine_rejects_invalid_transitions(qtbot):
    c = RunController("t")
    states = []
    c.state_changed.connect(states.append)
    for cmd in (c.pause, c.resume, c.stop):
        with pytest.raises(InvalidTransition):
            cmd()
    with pytest.raises(InvalidTransition):
        c.send("save")
    assert c.state == "idle" and states == []

    c.start(lambda: counting(100_000, sleep=0.001))
    assert c.state == "running"
    with pytest.raises(InvalidTransition):
        c.start(lambda: counting(1))
    with pytest.raises(InvalidTransition):
        c.resume()
    c.pause()
    assert c.state == "paused"
    with pytest.raises(InvalidTransition):
        c.pause()
    c.resume()
    with qtbot.waitSignal(c.finished, timeout=5000):
        c.stop()
        assert c.state == "stopping"
        with pytest.raises(InvalidTransition):
            c.pause()
    assert c.state == "idle"
    assert states == ["running", "paused", "running", "stopping", "idle"]


def test_controller_error_returns_to_idle(qtbot):
    def bad():
        raise OSError("disk full")
        yield

    c = RunController("t")
    errors = []
    c.errored.connect(errors.append)
    with qtbot.waitSignal(c.finished, timeout=5000):
        c.start(bad)
    assert errors == ["OSError: disk full"] and c.state == "idle" and c.last_error == errors[0]


def test_emit_does_not_leak_references_to_true_or_none():
    """PySide6 6.12 on Python 3.11 drops a reference to True on every emit() until the interpreter aborts
    with bool_dealloc; pyproject pins PySide6 below 6.12. This fails if a leaking version is installed."""
    import sys
    from PySide6.QtCore import QObject, Signal

    class Emitter(QObject):
        emitted = Signal(object)
        bare = Signal()

    e = Emitter()
    e.emitted.connect(lambda v: None)
    before_true, before_none = sys.getrefcount(True), sys.getrefcount(None)
    for _ in range(2000):
        e.emitted.emit(None)
        e.bare.emit()
    assert sys.getrefcount(True) >= before_true - 50  # small drift from unrelated code is fine; 2000+ is not
    assert sys.getrefcount(None) >= before_none - 50
