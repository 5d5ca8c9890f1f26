"""The studio's own benchmark (run by `ncsn bench`, or `python -m studio.bench [--json] [--quick]`):

- launch_s: from starting a fresh `ncsn-studio` process to its main window shown (the second of two launches,
  so that the OS's file cache is warm; launch_first_s is the first);
- event-loop latency while the worker trains the paper model, trains the compact model, samples and
  inpaints, each started and stopped from the window's Run / Stop actions (F5 / Shift+F5) as a user would:
  a 10 ms precise timer records how late each tick comes; p50 / p99 / max per activity and the worst of them;
- startup: the same timer from the window shown until the studio's own start-up work on worker threads (reading
  the built-in model, the warm-up imports of jobs.warm_imports) has ended, reported beside the four.

Settings and run folders go to a temporary directory, never the user's.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, List

TICK_MS = 10


def launch_seconds() -> float:
    """Seconds from spawning `python -m studio.app --quit-when-shown` to its window shown on screen."""
    t0 = time.time()
    proc = subprocess.run([sys.executable, "-m", "studio.app", "--quit-when-shown"], capture_output=True, text=True,
                          timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"the studio did not start: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])["shown_at"] - t0


def percentile(values: List[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q / 100 * (len(s) - 1))))]


def lateness(app, until: Callable[[], bool], start: Callable[[], None] = lambda: None) -> List[float]:
    """How late (ms) each tick of a 10 ms precise timer fires from now until `until()` holds; `start()` is
    called 200 ms in, from the event loop, so that a click lands while the timer runs and its own cost counts."""
    from PySide6.QtCore import QElapsedTimer, Qt, QTimer
    late: List[float] = []
    clock = QElapsedTimer()
    timer = QTimer()
    timer.setTimerType(Qt.TimerType.PreciseTimer)
    timer.setInterval(TICK_MS)

    def tick() -> None:
        late.append(max(0.0, clock.nsecsElapsed() / 1e6 - TICK_MS))
        clock.restart()
    timer.timeout.connect(tick)
    clock.start()
    timer.start()
    QTimer.singleShot(200, start)
    while not until():
        app.processEvents()
        time.sleep(0.001)
    timer.stop()
    return late


def summary(late: List[float], seconds: float) -> dict:
    return {"latency_p50_ms": statistics.median(late), "latency_p99_ms": percentile(late, 99),
            "latency_max_ms": max(late), "ticks": len(late), "seconds": seconds}


def measure_latency(app, seconds: float, start: Callable[[], None], stop: Callable[[], None],
                    idle: Callable[[], bool]) -> dict:
    """Lateness of a 10 ms timer from just before start() until `seconds` later, then stop() (the wait for the
    worker to end is not measured)."""
    end = time.monotonic() + seconds
    late = lateness(app, lambda: time.monotonic() >= end, start)
    stop()
    deadline = time.monotonic() + 120
    while not idle() and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.01)
    return summary(late, seconds)


def measure_startup(app, win) -> dict:
    """Lateness from the window shown until the built-in model has been read and the warm-up imports
    (jobs.warm_imports) have ended: the work the studio does on its own before the first click."""
    t0 = time.monotonic()
    deadline = t0 + 120
    late = lateness(app, lambda: (win.sample_tab.info is not None and not win.warm_up.is_busy())
                    or time.monotonic() > deadline)
    return summary(late, time.monotonic() - t0)


def activities(win) -> Dict[str, Callable[[], None]]:
    """Each activity: put the window in the state a user would (tab, preset, a digit), then F5 runs it."""
    def train(preset: str):
        def prepare():
            win.set_tab("train")
            win.train_tab.apply_preset(preset)
        return prepare

    def sample():
        win.set_tab("sample")

    def inpaint():
        win.set_tab("inpaint")
        win.inpaint_tab.pick_builtin(7)
    return {"train_paper": train("mnist-paper"), "train_compact": train("mnist-cpu"), "sample": sample,
            "inpaint": inpaint}


def run(quick: bool = False) -> dict:
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # no screen (CI, ssh): still measurable
    first = launch_seconds()
    launch = launch_seconds()
    from PySide6.QtWidgets import QApplication
    from . import settings
    from .main_window import MainWindow
    app = QApplication.instance() or QApplication([sys.argv[0]])
    settings.set_value("prefs/runs_root", os.path.join(os.environ["NCSN_BENCH_TMP"], "runs"))
    win = MainWindow(offer_resume=False)
    win.resize(1360, 860)
    win.show()
    startup = measure_startup(app, win)  # the built-in model and the warm-up imports load on worker threads
    seconds = 4.0 if quick else 12.0
    results = {}
    for name, prepare in activities(win).items():
        prepare()
        app.processEvents()
        key = win.current_key()
        results[name] = measure_latency(app, seconds, win.run_action.trigger, win.stop_action.trigger,
                                        lambda: win.controllers[key].state == "idle")
    win.shutdown()
    worst = {k: max(r[k] for r in results.values()) for k in ("latency_p50_ms", "latency_p99_ms", "latency_max_ms")}
    return {"launch_s": launch, "launch_first_s": first, **worst, "activities": results, "startup": startup,
            "platform": QApplication.platformName(), "tick_ms": TICK_MS}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m studio.bench", description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ncsn-studio-bench-") as tmp:
        os.environ["NCSN_BENCH_TMP"] = tmp
        os.environ["XDG_CONFIG_HOME"] = os.path.join(tmp, "config")  # QSettings: never the user's own
        res = run(args.quick)
    if args.json:
        print(json.dumps(res))
    else:
        print(f"launch {res['launch_s']:.2f} s (first {res['launch_first_s']:.2f} s); latency p50 "
              f"{res['latency_p50_ms']:.1f} ms, p99 {res['latency_p99_ms']:.1f} ms, max {res['latency_max_ms']:.1f} ms")
        for name, r in [*res["activities"].items(), ("(startup)", res["startup"])]:
            print(f"  {name:<15} p50 {r['latency_p50_ms']:6.1f}  p99 {r['latency_p99_ms']:6.1f}  "
                  f"max {r['latency_max_ms']:6.1f} ms  ({r['ticks']} ticks)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
