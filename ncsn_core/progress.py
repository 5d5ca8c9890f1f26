"""CLI progress on stderr: tqdm's bar on a terminal; in a log file (CI, a cluster job) one plain line every ~5 %
or 30 s, so that the log reads well (no carriage returns)."""
from __future__ import annotations

import sys
import time
from typing import Callable, Optional, TextIO

Progress = Callable[[str, int, int], None]  # (stage, done, total), as ncsn_core.evaluate reports it


def clock(seconds: float) -> str:
    """'00:31', '9:50' style: m:ss under an hour, h:mm:ss above."""
    s = int(max(seconds, 0))
    h, m = divmod(s, 3600)
    return f"{h}:{m // 60:02d}:{m % 60:02d}" if h else f"{m // 60:02d}:{m % 60:02d}"


class _Null:
    """The stand-in when progress is switched off (--quiet, --json)."""
    n = 0

    def update(self, k: int = 1) -> None:
        self.n += k

    def set_postfix_str(self, s: str) -> None: ...

    def close(self) -> None: ...


class LineProgress:
    """tqdm's update/set_postfix_str/close, written as whole lines:
    'train mnist-cpu: step 5000/100000 (5 %), loss 81.2, 160 img/s, 00:31 elapsed, ETA 09:50'.
    A line when n crosses the next `every` fraction of total or `every_s` seconds after the last line, and a
    last one at close: at most 1/every + elapsed/every_s + 1 lines. The rate (and ETA) counts from the first
    update, so a resumed run's jump to its starting step does not count as speed."""

    def __init__(self, total: int, desc: str, stream: TextIO, every: float = 0.05, every_s: float = 30.0,
                 unit: str = "step"):
        self.total, self.desc, self.stream, self.unit = max(int(total), 1), desc, stream, unit
        self.every, self.every_s = every, every_s
        self.n, self.postfix = 0, ""
        self._t0 = self._t_line = time.monotonic()
        self._first: Optional[tuple[float, int]] = None  # (time, n) at the first update
        self._next = 0   # n at which the next fraction line is due
        self._shown = -1  # n of the last line

    def update(self, k: int = 1) -> None:
        self.n += k
        now = time.monotonic()
        if self._first is None:
            self._first = (now, self.n)
        if self.n >= self._next or now - self._t_line >= self.every_s:
            self._line(now)

    def set_postfix_str(self, s: str) -> None:
        self.postfix = s

    def close(self) -> None:
        if self.n != self._shown:
            self._line(time.monotonic())

    def _line(self, now: float) -> None:
        step = self.total * self.every
        self._next = (int(self.n / step) + 1) * step
        self._t_line, self._shown = now, self.n
        eta = "?"
        if self._first is not None and self.n > self._first[1] and now > self._first[0]:
            rate = (self.n - self._first[1]) / (now - self._first[0])
            eta = clock((self.total - self.n) / rate)
        parts = [f"{self.unit} {self.n}/{self.total} ({100 * self.n / self.total:.0f} %)"]
        parts += [self.postfix] if self.postfix else []
        parts += [f"{clock(now - self._t0)} elapsed", f"ETA {eta}"]
        print(f"{self.desc}: {', '.join(parts)}", file=self.stream, flush=True)


def bar(total: int, desc: str, enabled: bool, stream: Optional[TextIO] = None):
    """The progress display for `total` steps: tqdm on a terminal, LineProgress otherwise, nothing when not
    enabled. All share tqdm's update(k), set_postfix_str(s), close() and n."""
    if not enabled:
        return _Null()
    stream = stream if stream is not None else sys.stderr
    if not (hasattr(stream, "isatty") and stream.isatty()):
        return LineProgress(total, desc, stream)
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, file=stream, dynamic_ncols=True, smoothing=0.1)


def staged(enabled: bool, stream: Optional[TextIO] = None) -> tuple[Optional[Progress], Callable[[], None]]:
    """progress(stage, done, total) with one bar per stage, named by it ("metrics" shown as "measure"), and a
    function that closes the open one. (None, no-op) when not enabled."""
    if not enabled:
        return None, lambda: None
    state: dict = {"stage": None, "bar": None}

    def close() -> None:
        if state["bar"] is not None:
            state["bar"].close()
            state["bar"] = None

    def progress(stage: str, done: int, total: int) -> None:
        if stage != state["stage"]:
            close()
            state["stage"] = stage
            state["bar"] = bar(total, "measure" if stage == "metrics" else stage, True, stream)
        state["bar"].update(done - state["bar"].n)
    return progress, close
