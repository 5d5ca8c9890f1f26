"""Soak: drive the real studio (offscreen) to train and sample alternately for N minutes, recording the process RSS,
and say whether memory grows. Writes a JSON (every sample, the cycles, the verdict) and a PNG curve.

    OMP_NUM_THREADS=1 nice -n 19 python -m benchmarks.soak --minutes 30 --out docs/bench/soak.json

Verdict: the least-squares slope of RSS over the last 2/3 of the run (the first third holds the warm-up: imports,
the first model, pyqtgraph's caches), in MB/min; "flat" when below --max-slope."""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, List, Optional

import numpy as np

# the tiny network the studio tests use, a report every 5 steps and a preview every 50: a real run, a light one
TRAIN_OVERRIDES = {"model": {"channels": [8, 8, 8]}, "train": {"log_every": 5, "n_preview": 4}}
TRAIN_FIELDS = {"n_iters": "10000000", "batch_size": "16", "num_classes": "3", "preview_every": "50",
                "save_every": "200"}


def rss_mb() -> float:
    """Resident set size of this process in MB (psutil when installed, else /proc/self/status)."""
    try:
        import psutil
        return psutil.Process().memory_info().rss / 2 ** 20
    except ImportError:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    raise RuntimeError("cannot read this process's RSS: install psutil (pip install psutil)")


def slope_mb_per_min(t_s: List[float], rss: List[float], skip: float = 1 / 3) -> float:
    """Least-squares slope of rss over the samples after the first `skip` of the time span, in MB/min."""
    t, r = np.asarray(t_s), np.asarray(rss)
    keep = t >= t[0] + skip * (t[-1] - t[0])
    if keep.sum() < 3:
        return float("nan")
    return float(np.polyfit(t[keep] / 60.0, r[keep], 1)[0])


class Soak:
    def __init__(self, app, win, interval_s: float, runs_root: Path):
        self.app, self.win, self.interval_s, self.runs_root = app, win, interval_s, runs_root
        self.t0 = time.monotonic()
        self.next_sample = 0.0
        self.phase = "start"
        self.samples: List[dict] = []
        self.cycles: List[dict] = []

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def pump(self, done: Callable[[], bool], timeout_s: float) -> bool:
        """Run the event loop until done() (True) or timeout_s (False), sampling RSS every interval_s."""
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            self.app.processEvents()
            if self.elapsed() >= self.next_sample:
                self.samples.append({"t_s": round(self.elapsed(), 2), "rss_mb": round(rss_mb(), 2),
                                     "phase": self.phase})
                self.next_sample += self.interval_s
            if done():
                return True
            time.sleep(0.01)
        return done()

    def train(self, k: int, seconds: float) -> Optional[str]:
        """Train a new run for `seconds` through the Train tab, then Stop (a checkpoint is saved)."""
        self.phase = "train"
        tab = self.win.train_tab
        self.win.set_tab("train")
        tab.config_overrides = TRAIN_OVERRIDES
        for key, value in TRAIN_FIELDS.items():
            tab.form.fields[key].setText(value)
        tab.run_dir_edit.setText(str(self.runs_root / f"run{k:04d}"))
        if not tab.start():
            raise RuntimeError(f"the Train tab did not start: {tab.run_bar.problem()}")
        self.pump(lambda: False, seconds)
        tab.stop()
        if not self.pump(lambda: tab.controller.state == "idle", 120):
            raise RuntimeError("training did not stop within 120 s")
        shutil.rmtree(self.runs_root / f"run{k - 2:04d}", ignore_errors=True)  # the disk stays small
        return tab.last_checkpoint

    def sample(self, checkpoint: str, n: int, steps: int) -> bool:
        """Sample n images with `checkpoint` through the Sample tab, to the end."""
        self.phase = "sample"
        tab = self.win.sample_tab
        self.win.set_tab("sample")
        tab.picker.set_path(checkpoint)
        if not self.pump(lambda: tab.info is not None and Path(tab.info.path) == Path(checkpoint), 120):
            raise RuntimeError(f"the Sample tab did not load {checkpoint}")
        tab.form.n_edit.set_value(n)
        tab.form.steps_edit.set_value(steps)
        if not tab.run():
            raise RuntimeError(f"the Sample tab did not start: {tab.run_bar.problem()}")
        return self.pump(lambda: tab.controller.state == "idle", 600)

    def run(self, minutes: float, train_s: float, n: int, steps: int) -> None:
        k = 0
        while self.elapsed() < 60 * minutes:
            k += 1
            c0 = self.elapsed()
            ckpt = self.train(k, train_s)
            c1 = self.elapsed()
            ok = self.sample(ckpt, n, steps) if ckpt else False
            self.cycles.append({"cycle": k, "train_s": round(c1 - c0, 1), "sample_s": round(self.elapsed() - c1, 1),
                                "steps_trained": self.win.train_tab.last_step, "sampled": bool(ok)})
        self.phase = "end"
        self.pump(lambda: False, 0)


def plot(samples: List[dict], slope: float, out: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    t = np.array([s["t_s"] for s in samples]) / 60
    r = np.array([s["rss_mb"] for s in samples])
    fig, ax = plt.subplots(figsize=(8, 4), dpi=110)
    for phase, colour in (("train", "tab:blue"), ("sample", "tab:orange")):
        m = np.array([s["phase"] == phase for s in samples])
        ax.plot(t[m], r[m], ".", ms=3, color=colour, label=phase)
    keep = t >= t[0] + (t[-1] - t[0]) / 3
    if keep.sum() >= 3:
        a, b = np.polyfit(t[keep], r[keep], 1)
        ax.plot(t[keep], a * t[keep] + b, "k-", lw=1, label=f"fit, last 2/3: {slope:+.2f} MB/min")
    ax.set_xlabel("minutes")
    ax.set_ylabel("RSS (MB)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--interval", type=float, default=2.0, help="seconds between RSS samples")
    p.add_argument("--train-seconds", type=float, default=40.0, help="training time per cycle")
    p.add_argument("--n", type=int, default=16, help="samples per sampling run")
    p.add_argument("--steps", type=int, default=30, help="Langevin steps per noise level")
    p.add_argument("--max-slope", type=float, default=1.0, help="MB/min below which RSS counts as flat")
    p.add_argument("--out", default="docs/bench/soak.json")
    p.add_argument("--png", help="the curve (default: --out with .png)")
    args = p.parse_args(argv)
    if args.minutes <= 0 or args.interval <= 0:
        p.error("--minutes and --interval must be positive")

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    work = Path(tempfile.mkdtemp(prefix="ncsn-soak-"))
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication
    app = QApplication.instance() or QApplication([sys.argv[0]])
    for fmt in (QSettings.Format.IniFormat, QSettings.Format.NativeFormat):  # the user's settings stay untouched
        QSettings.setPath(fmt, QSettings.Scope.UserScope, str(work / "settings"))
    import torch
    from studio import settings
    from studio.main_window import MainWindow
    settings.set_value("prefs/runs_root", str(work / "runs"))
    win = MainWindow(offer_resume=False)
    win.resize(1360, 860)
    win.show()
    soak = Soak(app, win, args.interval, work / "runs")
    try:
        soak.run(args.minutes, args.train_seconds, args.n, args.steps)
    finally:
        win.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    t = [s["t_s"] for s in soak.samples]
    r = [s["rss_mb"] for s in soak.samples]
    slope = slope_mb_per_min(t, r)
    verdict = "flat" if abs(slope) < args.max_slope else ("grows" if slope > 0 else "shrinks")
    result = {
        "what": "RSS of the studio process driven offscreen: train (Train tab, tiny net, then Stop) and sample "
                "(Sample tab, the run's checkpoint) alternately",
        "command": "OMP_NUM_THREADS=1 nice -n 19 python -m benchmarks.soak " + " ".join(argv or sys.argv[1:]),
        "minutes": round(t[-1] / 60, 2), "interval_s": args.interval, "train_seconds": args.train_seconds,
        "n": args.n, "steps": args.steps, "cycles": soak.cycles,
        "rss_start_mb": r[0], "rss_end_mb": r[-1], "rss_max_mb": max(r),
        "rss_at_one_third_mb": r[int(len(r) / 3)],
        "slope_last_two_thirds_mb_per_min": round(slope, 3), "max_slope_mb_per_min": args.max_slope,
        "verdict": verdict,
        "machine": {"python": platform.python_version(), "torch": torch.__version__, "cpus": os.cpu_count(),
                    "platform": platform.platform(), "qt_platform": os.environ.get("QT_QPA_PLATFORM")},
        "samples": soak.samples,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    png = Path(args.png) if args.png else out.with_suffix(".png")
    plot(soak.samples, slope, png, f"Studio soak: {len(soak.cycles)} train/sample cycles in {t[-1] / 60:.1f} min")
    print(f"RSS {r[0]:.0f} MB at start, {r[int(len(r) / 3)]:.0f} MB at 1/3, {r[-1]:.0f} MB at the end "
          f"(max {max(r):.0f}); slope over the last 2/3: {slope:+.2f} MB/min -> {verdict}; "
          f"{len(soak.cycles)} cycles; wrote {out} and {png}")
    return 0 if verdict != "grows" else 1


if __name__ == "__main__":
    sys.exit(main())
