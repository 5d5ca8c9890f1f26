"""Follow a run folder that another process writes (`ncsn train`, a torchrun job on a shared folder), read-only:
its metrics.jsonl read incrementally, new previews and checkpoints noticed, its end or its silence told. Polled
with cheap file stats from a QTimer on the GUI thread (a poll reads only the bytes appended since the last)."""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

from PySide6.QtCore import QObject, QTimer, Signal

from . import jobs

POLL_MS = 1000
SILENT_S = 60.0   # no file of the run changed for this long: it stopped, crashed or its machine is slow
LIVE_S = 60.0     # a run whose metrics changed this recently (and past its newest checkpoint) is being written

FOLLOWING, SILENT, FINISHED = "following", "silent", "finished"


def format_duration(seconds: float) -> str:
    if not math.isfinite(seconds) or seconds < 0:
        return "--"
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def format_age(seconds: float) -> str:
    """'3 s' under a minute, then m:ss (or h:mm:ss)."""
    return f"{seconds:.0f} s" if math.isfinite(seconds) and 0 <= seconds < 60 else format_duration(seconds)


@dataclass(frozen=True)
class LoggedStep:
    """One metrics.jsonl record in the shape of training's TrainStep that TrainPlots.add_step draws.
    elapsed_s: seconds since the run's first record (the records carry wall time)."""
    step: int
    loss: float
    loss_per_sigma: tuple
    elapsed_s: float

    @classmethod
    def from_record(cls, rec: dict, t0: float) -> "LoggedStep":
        per = tuple(float("nan") if v is None else float(v) for v in rec.get("loss_per_sigma") or ())
        return cls(int(rec["step"]), float(rec["loss"]), per, float(rec.get("time", t0)) - t0)


class MetricsTail:
    """The complete lines appended to a metrics.jsonl since the last read(), as dicts (no Qt).

    A partial last line (the writer is mid-write, or was killed mid-line) waits for its newline. A file replaced or
    shortened (a resume drops the lines past its checkpoint: RunDir.truncate_metrics writes a new file and
    os.replace-s it) is read again from its start, and read() says so with reset=True."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._offset = 0
        self._pending = b""
        self._inode: Optional[int] = None

    def read(self) -> Tuple[bool, List[dict]]:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            st = None
        reset = False
        if st is None or (self._inode is not None and (st.st_ino != self._inode or st.st_size < self._offset)):
            reset = self._offset > 0 or bool(self._pending)
            self._offset, self._pending = 0, b""
        if st is None:
            self._inode = None
            return reset, []
        self._inode = st.st_ino
        if st.st_size == self._offset:
            return reset, []
        with open(self.path, "rb") as f:
            f.seek(self._offset)
            data = f.read(st.st_size - self._offset)
        self._offset += len(data)
        *lines, self._pending = (self._pending + data).split(b"\n")
        recs = []
        for line in lines:
            try:
                rec = json.loads(line)
            except ValueError:  # a line torn by a kill, then continued by a resume
                continue
            if isinstance(rec, dict) and "step" in rec:
                recs.append(rec)
        return reset, recs


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _step_of(checkpoint: Optional[Path]) -> int:
    return int(checkpoint.stem.split("_")[1]) if checkpoint is not None else 0


def run_n_iters(run_dir: str) -> Optional[int]:
    try:
        return int(json.loads((Path(run_dir) / "config.json").read_text())["train"]["n_iters"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def check_run_folder(run_dir: str) -> Optional[str]:
    """None when `run_dir` can be followed, else one line saying what is wrong and what to pick instead."""
    p = Path(run_dir)
    if not p.is_dir():
        return f"{run_dir} is not a folder: pick a run folder (the one `ncsn train --run-dir` writes)"
    if not (p / "config.json").exists() and not (p / "metrics.jsonl").exists():
        return (f"{run_dir} is not a run folder (no config.json or metrics.jsonl): pick the folder given to "
                f"`ncsn train --run-dir`, e.g. runs/mnist-cpu-20250101-120000")
    return None


def live_age(run_dir: str, within_s: float = LIVE_S) -> Optional[float]:
    """Seconds since another process last wrote the run, when it looks live; None otherwise. Live: its metrics
    changed in the last `within_s` seconds and after its newest checkpoint (a stopped or paused run ends with a
    checkpoint written after its last metrics line), and no checkpoint has reached n_iters."""
    p = Path(run_dir)
    m = _mtime(p / "metrics.jsonl")
    if not m:
        return None
    age = time.time() - m
    ck = jobs.latest_checkpoint(str(p))
    n_iters = run_n_iters(run_dir)
    if age > within_s or (ck is not None and _mtime(ck) >= m) or (n_iters is not None and _step_of(ck) >= n_iters):
        return None
    return max(age, 0.0)


class RunFollower(QObject):
    """Polls one run folder every `poll_ms` on the GUI thread and reports what changed.

    Signals: `records_read(reset, records)` (new metrics records; reset: the file was rewritten, show it again
    from scratch), `preview_found(path)`, `checkpoint_found(path)`, `state_changed(state)` (following / silent /
    finished) and `polled()` after every poll (for the "last update" age). It stops itself when the run is
    finished: a checkpoint at n_iters, or a "diverged" record."""

    records_read = Signal(bool, list)
    preview_found = Signal(str)
    checkpoint_found = Signal(str)
    state_changed = Signal(str)
    polled = Signal()

    def __init__(self, run_dir: str, poll_ms: int = POLL_MS, silent_s: float = SILENT_S,
                 parent: Optional[QObject] = None):
        super().__init__(parent)
        self.run_dir = Path(run_dir)
        self.silent_s = silent_s
        self.n_iters = run_n_iters(run_dir)
        self.state = FOLLOWING
        self.reason = ""          # when finished: "done" or "diverged"
        self.last_step = 0        # the newest step logged
        self.last_change = 0.0    # wall time of the newest write seen (file mtimes)
        self.last_checkpoint: Optional[Path] = None
        self._tail = MetricsTail(self.run_dir / "metrics.jsonl")
        self._preview: Optional[Path] = None
        self._timer = QTimer(self)
        self._timer.setInterval(poll_ms)
        self._timer.timeout.connect(self.poll)

    def start(self) -> None:
        self._timer.start()
        self.poll()

    def stop(self) -> None:
        self._timer.stop()

    def is_active(self) -> bool:
        return self._timer.isActive()

    def age_s(self) -> float:
        """Seconds since the newest write seen."""
        return max(time.time() - self.last_change, 0.0) if self.last_change else float("nan")

    def poll(self) -> None:
        # the checkpoint first: a final checkpoint is written after the run's last metrics line and preview, so
        # reading those after it misses nothing
        ck = jobs.latest_checkpoint(str(self.run_dir))
        if ck is not None and ck != self.last_checkpoint:
            self.last_checkpoint = ck
            self.checkpoint_found.emit(str(ck))
        reset, recs = self._tail.read()
        if reset or recs:
            if reset:
                self.last_step = 0
            for r in recs:
                self.last_step = max(self.last_step, int(r.get("step", 0))) if "loss" in r else self.last_step
                if r.get("event") == "diverged":
                    self.reason = "diverged"
            self.records_read.emit(reset, recs)
        previews = sorted((self.run_dir / "samples").glob("preview_*.png"))
        if previews and previews[-1] != self._preview:
            self._preview = previews[-1]
            self.preview_found.emit(str(previews[-1]))
        self.last_change = max(self.last_change, _mtime(self.run_dir / "metrics.jsonl"),
                               _mtime(ck) if ck is not None else 0.0)
        if self.n_iters is not None and _step_of(ck) >= self.n_iters:
            self.reason = self.reason or "done"
        if self.reason:
            self._timer.stop()
            self._set_state(FINISHED)
        else:
            self._set_state(SILENT if self.age_s() > self.silent_s else FOLLOWING)
        self.polled.emit()

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.state_changed.emit(state)
