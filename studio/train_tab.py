"""Train tab: pick data, preset and hyperparameters; start / pause / resume / stop; watch the loss, the
loss per noise level, speed, ETA and preview samples live; or follow, read-only, a run another process writes."""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Dict, Optional

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFormLayout, QLineEdit, QWidget

from . import follow, jobs, settings
from .controller import IDLE, PAUSED, RUNNING, RunController
from .tab import Tab
from .widgets.banner import MessageBanner
from .widgets.data_source import DataSource
from .widgets.follow_panel import FollowPanel
from .widgets.run_bar import RunBar
from .widgets.side_panel import split_workspace
from .widgets.train_form import TrainForm
from .widgets.train_plots import TrainPlots
from .worker import interrupt_event


class TrainTab(Tab):
    """Emits checkpoint_saved(path) for every checkpoint and run_finished(checkpoint or "") at the end (of its own
    run, or of a followed one)."""

    checkpoint_saved = Signal(str)
    run_finished = Signal(str)

    def __init__(self, controller: Optional[RunController] = None, parent: Optional[QWidget] = None):
        super().__init__(controller, "training", parent)
        self.run_dir: Optional[str] = None
        self.last_checkpoint: Optional[str] = None
        self.last_step = 0
        self._ended = True
        self._last_report = None       # (step, elapsed_s) of the newest TrainStep, for the time one step takes
        self.step_s = math.nan         # seconds per optimiser step, measured between the last two reports
        self._history_t0: Optional[float] = None  # wall time of the first metrics record shown
        # extra config values the form does not show, {section: {key: value}} (scripts and tests use it,
        # e.g. a smaller network); applied last and validated like the rest
        self.config_overrides: Dict[str, dict] = {}
        self._build()
        self.controller.state_changed.connect(self._on_state_changed)
        self.controller.event_emitted.connect(self._on_event)
        self.controller.finished.connect(self._on_finished)
        self.controller.errored.connect(self._on_errored)
        self.apply_preset("mnist-cpu")

    def _build(self) -> None:
        self.data = DataSource()
        self.form = TrainForm(cpu_has_amx=jobs.cpu_has_bf16())
        self.run_dir_edit = QLineEdit()
        self.run_dir_edit.setPlaceholderText("automatic: runs/<preset>-<date>-<time>")
        run_form = QFormLayout()
        run_form.addRow("Run folder", self.run_dir_edit)
        self.run_bar = RunBar(self.controller, "Start", "Start training (F5)", pausable=True)
        self.run_bar.pause_button.setToolTip("Pause: writes a checkpoint, then holds the run")
        self.run_bar.stop_button.setToolTip("Stop: saves a checkpoint and ends the run")
        self.run_bar.progress.setFormat("step %v / %m")
        self.following = FollowPanel()

        self.banner = MessageBanner(self)
        self.plots = TrainPlots()
        split_workspace(self, (self.data, self.form, run_form, self.run_bar, self.following),
                        self.banner, self.run_bar.progress,
                        self.run_bar.status, self.plots)

        self.data.changed.connect(self._validate)
        self.form.changed.connect(self._validate)
        self.run_bar.run_button.clicked.connect(self.start)
        self.run_bar.pause_button.clicked.connect(self.pause)
        self.run_bar.resume_button.clicked.connect(self.resume)
        self.run_bar.stop_button.clicked.connect(self.stop)
        self.following.records_read.connect(self._on_followed_records)
        self.following.preview_found.connect(self._on_followed_preview)
        self.following.checkpoint_found.connect(self._on_followed_checkpoint)
        self.following.run_ended.connect(self._on_followed_end)
        self.following.following_changed.connect(self._set_following_ui)

    # --- the form ------------------------------------------------------------------------------
    def apply_preset(self, name: str) -> None:
        self.form.apply_preset(name)

    def set_data_folder(self, folder: str) -> None:
        """Use a folder of images (e.g. dropped onto the window)."""
        self.data.set_folder(folder)

    def config_dict(self) -> dict:
        """The Config (as a dict) the form describes; raises ValueError naming the first bad field."""
        return self.form.config_dict(self.data.data_section(), self.config_overrides)

    def _validate(self, *_args) -> None:
        if self.following.follower is not None:  # Run stays off while following, whatever the form says
            return
        try:
            cfg = self.config_dict()
            self.run_bar.set_problem(None)
            if self.last_step == 0 and self.controller.state == IDLE:  # nothing run or shown yet: the form's goal
                self.run_bar.progress.setMaximum(int(cfg["train"]["n_iters"]))
        except ValueError as e:
            self.run_bar.set_problem(str(e))

    def _on_state_changed(self, state: str) -> None:
        for w in (self.data, self.form, self.run_dir_edit):
            w.setEnabled(state == IDLE)
        if state == PAUSED:
            self.status_message.emit("Training paused")

    # --- commands ------------------------------------------------------------------------------
    def start(self) -> bool:
        """Start a new run from the form (False, with the reason shown, when the form is invalid)."""
        if self.controller.state != IDLE or self.following.follower is not None:
            return False
        try:
            cfg = self.config_dict()
        except ValueError as e:
            self.run_bar.set_problem(str(e))
            return False
        run_dir = self.run_dir_edit.text().strip()
        if not run_dir:
            run_dir = str(settings.runs_root() / f"{cfg['name']}-{time.strftime('%Y%m%d-%H%M%S')}")
        elif (Path(run_dir) / "checkpoints").is_dir() and any((Path(run_dir) / "checkpoints").iterdir()):
            if self._offer_follow(run_dir):
                return False
            self.banner.show_message(f"{run_dir} already holds a run: resume it, or choose another folder.",
                                     "warning", [("Resume it", lambda: self.resume_run(run_dir))])
            return False
        self._begin(cfg, run_dir, resume=False)
        return True

    def resume_run(self, run_dir: str) -> bool:
        """Continue an unfinished run from its newest checkpoint (its own config.json wins)."""
        if self.controller.state != IDLE or self.following.follower is not None or self._offer_follow(run_dir):
            return False
        try:
            self.form.minutes.value()
        except ValueError as e:  # the time limit applies to the resumed part too
            self.run_bar.set_problem(str(e))
            return False
        try:
            cfg = json.loads((Path(run_dir) / "config.json").read_text())
        except (OSError, ValueError) as e:
            self.banner.show_message(f"Cannot resume {run_dir}: {e}", "error")
            return False
        self.form.select_preset(cfg.get("name", ""))
        self.form.fill(cfg)
        self.run_dir_edit.setText(run_dir)
        self._begin(cfg, run_dir, resume=True)
        return True

    def _begin(self, cfg: dict, run_dir: str, resume: bool) -> None:
        self.banner.dismiss()
        self.run_dir = run_dir
        settings.add_recent_run(run_dir)
        if resume:
            self.show_run_history(run_dir)
        else:
            self.plots.clear()
        self.run_bar.progress.setMaximum(int(cfg["train"]["n_iters"]))
        self.run_bar.status.setText("Loading data and building the model\u2026")
        self._ended = False
        self.status_message.emit(f"Training into {run_dir}")
        minutes = self.form.minutes.value()
        self.controller.start(lambda: jobs.train_job(cfg, run_dir, resume=resume, interrupt=interrupt_event(),
                                                     max_minutes=minutes),
                              pause_command="pause")  # Stop abandons a long step part-way (train(interrupt=...))

    def pause(self) -> None:
        if self.controller.state == RUNNING:
            self.controller.pause()
            self.run_bar.status.setText(self.run_bar.status.text() + "  \u2014 pausing (saving a checkpoint)\u2026")

    def resume(self) -> None:
        if self.controller.state == PAUSED:
            self.controller.resume()

    def stop(self) -> None:
        if self.controller.state in (RUNNING, PAUSED):
            self.controller.stop()
            took = f" (steps take {self.step_s:.1f} s)" if self.step_s >= 1 else ""
            self.run_bar.status.setText(f"Stopping: dropping the step under way{took} and saving the last completed "
                                        f"one\u2026")

    def run_action(self) -> None:
        """F5: start when idle, resume when paused."""
        if self.controller.state == IDLE:
            self.start()
        elif self.controller.state == PAUSED:
            self.resume()

    def export_action(self) -> None:
        """Ctrl+S: save a checkpoint now (the run continues)."""
        if self.controller.state in (RUNNING, PAUSED):
            self.controller.send("save")
            self.status_message.emit("Saving a checkpoint\u2026")
        else:
            self.status_message.emit("No training is running: checkpoints are saved while training")

    # --- history -------------------------------------------------------------------------------
    def show_run_history(self, run_dir: str) -> int:
        """Show a run folder's history (metrics.jsonl, newest preview); returns the number of points shown."""
        recs, n_iters = self.plots.show_history(run_dir)
        self._history_t0 = float(recs[0].get("time", 0.0)) if recs else None
        if n_iters is not None:
            self.run_bar.progress.setMaximum(n_iters)
        if recs:
            self.last_step = int(recs[-1]["step"])
            self.run_bar.progress.setValue(self.last_step)
            self.run_bar.status.setText(f"Run {Path(run_dir).name} (from its metrics.jsonl): step {self.last_step:,}, "
                                        f"last loss {recs[-1]['loss']:.4g}")
        return len(recs)

    # --- following a run another process writes --------------------------------------------------
    def _offer_follow(self, run_dir: str) -> bool:
        """When another process is writing `run_dir` now, say so and offer to follow it (True); resuming it here
        would give it two writers."""
        age = follow.live_age(run_dir)
        if age is None:
            return False
        self.banner.show_message(f"{run_dir} is being written by another process (last update "
                                 f"{follow.format_age(age)} ago): resuming it here would give it two writers. "
                                 f"Follow it instead (read-only)?",
                                 "warning", [("Follow it", lambda: self.follow_run(run_dir))])
        return True

    def follow_run(self, run_dir: str) -> bool:
        """Follow, read-only, a run folder another process writes: its curves, previews and checkpoints as they
        come, until it finishes or you stop following. False (with the reason shown) when it cannot."""
        if self.controller.state != IDLE:
            self.banner.show_message("This tab is training: stop it before following another run.", "warning")
            return False
        problem = follow.check_run_folder(run_dir)
        if problem:
            self.banner.show_message(problem, "error")
            return False
        self.following.stop()
        self.banner.dismiss()
        try:  # the form shows the followed run's settings
            cfg = json.loads((Path(run_dir) / "config.json").read_text())
            self.form.select_preset(cfg.get("name", ""))
            self.form.fill(cfg)
        except (OSError, ValueError, KeyError, TypeError):
            pass
        self.run_dir, self.last_checkpoint, self.last_step = run_dir, None, 0
        self.run_dir_edit.setText(run_dir)
        self.show_run_history(run_dir)
        self.plots.time_offset = 0.0  # followed records carry wall time: elapsed is measured from the first
        self.status_message.emit(f"Following {run_dir} (read-only)")
        self.following.start(run_dir)
        return True

    def stop_following(self) -> None:
        """Stop watching the followed run (the process writing it goes on)."""
        self.following.stop()

    def _set_following_ui(self, on: bool) -> None:
        for w in (self.data, self.form, self.run_dir_edit):
            w.setEnabled(not on)
        if on:
            self.run_bar.set_problem("Following a run another process writes (read-only): stop following to "
                                     "train here")
        else:
            self.run_bar.set_problem(None)
            self._validate()

    def _on_followed_records(self, reset: bool, recs: list) -> None:
        if reset:  # rewritten by a resume (lines past its checkpoint dropped): show it again from the file
            self.show_run_history(str(self.following.follower.run_dir))
            self.plots.time_offset = 0.0
            return
        last = None
        for r in recs:
            if r.get("event") == "diverged":
                self.banner.show_message(f"The followed run diverged: {r.get('message', '')}", "error")
            if "loss" not in r or int(r["step"]) <= self.last_step:  # already drawn from the history
                continue
            if self._history_t0 is None:
                self._history_t0 = float(r.get("time", 0.0))
            last = follow.LoggedStep.from_record(r, self._history_t0)
            self.plots.add_step(last)
            self.last_step = last.step
        if last is not None:
            n = self.following.follower.n_iters
            self.run_bar.set_progress(last.step, n)
            self.run_bar.status.setText(f"step {last.step:,}" + (f" / {n:,}" if n else "") +
                                        f"   loss {last.loss:.4g}   (logged by the other process)")

    def _on_followed_preview(self, path: str) -> None:
        try:
            self.plots.show_preview_png(path)
        except (OSError, ValueError):  # not a PNG we can read: the next preview will do
            pass

    def _on_followed_checkpoint(self, path: str) -> None:
        self.last_checkpoint = path
        self.checkpoint_saved.emit(path)

    def _on_followed_end(self, _word: str, step: int) -> None:
        self.run_bar.status.setText(f"Finished at step {step:,} (followed)." +
                                    (f" Checkpoint: {self.last_checkpoint}" if self.last_checkpoint else ""))
        self.run_finished.emit(self.last_checkpoint or "")

    def shutdown(self, timeout_ms: int = 10000) -> None:
        self.stop_following()
        super().shutdown(timeout_ms)

    def screenshot_demo(self) -> None:
        """Representative content for a screenshot: the newest run under the runs folder, if any."""
        runs = [Path(r) for r in settings.recent_runs()]
        root = settings.runs_root()
        if root.is_dir():
            runs += sorted((p.parent for p in root.glob("*/metrics.jsonl")), key=lambda p: p.stat().st_mtime,
                           reverse=True)
        for r in runs:
            if (r / "metrics.jsonl").exists() and self.show_run_history(str(r)) > 0:
                return

    # --- events --------------------------------------------------------------------------------
    def _on_event(self, ev: object) -> None:
        kind = type(ev).__name__
        status = self.run_bar.status
        if kind == "TrainStarting":
            self._last_report, self.step_s = None, math.nan
            self.plots.start(ev.sigmas, ev.resume)
            self.run_bar.progress.setMaximum(int(ev.config["train"]["n_iters"]))
        elif kind == "TrainStep":
            s0, t0 = self._last_report or (ev.step, ev.elapsed_s)
            if ev.step > s0 and ev.elapsed_s > t0:
                self.step_s = (ev.elapsed_s - t0) / (ev.step - s0)
            self._last_report = (ev.step, ev.elapsed_s)
            self.last_step = ev.step
            self.plots.add_step(ev)
            self.run_bar.set_progress(ev.step, ev.n_iters)
            took, eta = follow.format_duration(ev.elapsed_s), follow.format_duration(ev.eta_s)
            status.setText(f"step {ev.step:,} / {ev.n_iters:,}   loss {ev.loss:.4g}   {ev.images_per_s:,.0f} images/s   "
                           f"elapsed {took}   ETA {eta}")
        elif kind == "Preview":
            self.plots.add_preview(ev)
        elif kind == "CheckpointSaved":
            self.last_checkpoint = ev.path
            self.status_message.emit(f"Checkpoint saved: {ev.path}")
            self.checkpoint_saved.emit(ev.path)
            if self.controller.state == PAUSED:
                status.setText(f"Paused at step {ev.step:,}; checkpoint saved. Resume continues the same run.")
        elif kind == "Finished":  # (a Paused event needs nothing: the CheckpointSaved before it told the user)
            self._ended = True
            self.last_step = ev.step
            self.last_checkpoint = ev.checkpoint or self.last_checkpoint
            if ev.reason == "diverged":
                self.banner.show_message(f"Training diverged: {ev.message}", "error")
            text = {"done": "Finished", "stopped": "Stopped",
                    "time": "Time limit reached; stopped"}.get(ev.reason, "Ended")
            status.setText(f"{text} at step {ev.step:,}." + (f" Checkpoint: {ev.checkpoint}" if ev.checkpoint else ""))

    def _on_errored(self, message: str) -> None:
        self.banner.show_message(f"Training failed: {message}", "error")
        self.run_bar.status.setText("Failed; see the message above.")

    def _on_finished(self, _result: object) -> None:
        if not self._ended and self.controller.last_error is None:
            self.run_bar.status.setText("Stopped before the first step; nothing was saved.")
        self.run_finished.emit(self.last_checkpoint or "")
        self.status_message.emit(f"Training ended at step {self.last_step:,}" +
                                 (f"; checkpoint {self.last_checkpoint}" if self.last_checkpoint else ""))
