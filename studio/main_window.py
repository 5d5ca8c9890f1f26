"""The main window: five tabs, menus and shortcuts, a status bar, settings, drag and drop, the resume offer,
and a clean shutdown (every run is stopped, a training saved, and the window gone within 2 s)."""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

from PySide6.QtCore import QByteArray, Qt, QTimer
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (QApplication, QLabel, QMainWindow, QMessageBox, QTabWidget, QVBoxLayout, QWidget)

from . import follow, jobs, settings
from .controller import IDLE, LatestRun, RunController
from .eval_tab import EvalTab
from .menus import build_menus
from .sample_tab import SampleTab
from .theme import apply_theme
from .train_tab import TrainTab
from .widgets.banner import MessageBanner

TAB_KEYS = ["train", "sample", "inpaint", "toy", "evaluate"]
TAB_TITLES = {"train": "Train", "sample": "Sample", "inpaint": "Inpaint", "toy": "Toy 2-D lab",
              "evaluate": "Evaluate"}
# Closing waits this long for the workers, then the window goes anyway. Every worker ends well inside it: a generator
# ends at its next yield, milliseconds away for the samplers and the toy lab, and a training abandons the optimiser
# step under way at its next layer (train(interrupt=...), set by the worker's stop()) and saves the last completed
# step. What might still run past it (a checkpoint written to a very slow disk, one single op of seconds) is waited
# for by the app (SHUTDOWN_WAIT_MS) before the process exits, so no QThread is destroyed while running.
CLOSE_WAIT_MS = 1500
SHUTDOWN_WAIT_MS = 60 * 1000


def _placeholder(text: str) -> QWidget:
    w = QWidget()
    lay = QVBoxLayout(w)
    label = QLabel(text)
    label.setAlignment(Qt.AlignmentFlag.AlignCenter)
    label.setWordWrap(True)
    lay.addWidget(label)
    return w


def _optional_tab(module: str, cls: str, controller: RunController, title: str) -> QWidget:
    """The other tabs are their own modules; a missing or broken one becomes a placeholder, not a crash."""
    try:
        mod = __import__(f"studio.{module}", fromlist=[cls])
        return getattr(mod, cls)(controller)
    except Exception as e:  # noqa: BLE001 - one tab must not take the app down
        return _placeholder(f"The {title} tab is not available in this build ({type(e).__name__}: {e}).")


class MainWindow(QMainWindow):
    """NCSN Studio's window. `controllers` maps tab key -> RunController (one run per tab at a time)."""

    def __init__(self, offer_resume: bool = True, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.setWindowTitle("NCSN Studio")
        self.setAcceptDrops(True)
        self.controllers: Dict[str, RunController] = {k: RunController(k, self) for k in TAB_KEYS}

        self.banner = MessageBanner(self)
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.train_tab = TrainTab(self.controllers["train"])
        self.sample_tab = SampleTab(self.controllers["sample"])
        self.inpaint_tab = _optional_tab("inpaint_tab", "InpaintTab", self.controllers["inpaint"], "Inpaint")
        self.toy_tab = _optional_tab("toy_tab", "ToyTab", self.controllers["toy"], "Toy 2-D lab")
        self.eval_tab = EvalTab(self.controllers["evaluate"])
        self.tab_widgets = {"train": self.train_tab, "sample": self.sample_tab, "inpaint": self.inpaint_tab,
                            "toy": self.toy_tab, "evaluate": self.eval_tab}
        for key in TAB_KEYS:
            self.tabs.addTab(self.tab_widgets[key], TAB_TITLES[key])

        central = QWidget()
        lay = QVBoxLayout(central)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        lay.addWidget(self.banner)
        lay.addWidget(self.tabs, 1)
        self.setCentralWidget(central)

        self.state_label = QLabel()
        self.statusBar().addPermanentWidget(self.state_label)
        build_menus(self)
        self._connect()
        self._restore_settings()
        self._update_state_label()
        self.statusBar().showMessage("Ready", 3000)
        if offer_resume:
            QTimer.singleShot(0, self.offer_resume)

    # --- wiring --------------------------------------------------------------------------------
    def _connect(self) -> None:
        for key, c in self.controllers.items():
            c.state_changed.connect(self._update_state_label)
            c.finished.connect(self._on_run_finished)
            tab = self.tab_widgets[key]
            if not isinstance(getattr(tab, "banner", None), MessageBanner):  # tabs without their own banner
                c.errored.connect(lambda msg, k=key: self.show_error(f"{TAB_TITLES[k]}: {msg}"))
            sig = getattr(tab, "status_message", None)
            if sig is not None and hasattr(sig, "connect"):
                sig.connect(lambda text: self.statusBar().showMessage(text, 8000))
        self.train_tab.run_finished.connect(self._on_training_finished)
        self._closing = False
        self.warm_up = LatestRun(self)  # jobs.warm_imports, once, after the first model read
        self.sample_tab.picker.model_read.connect(self._start_warm_up)
        self.tabs.currentChanged.connect(lambda i: settings.set_value("window/tab", TAB_KEYS[i]))

    def _start_warm_up(self, _info: object) -> None:
        self.sample_tab.picker.model_read.disconnect(self._start_warm_up)
        if not self._closing:  # a read that ends while the window shuts down starts nothing more
            self.warm_up.start(jobs.warm_imports)

    def show_error(self, text: str) -> None:
        """An inline, dismissable error at the top of the window (never a crash, never modal)."""
        self.banner.show_message(text, "error")

    def _on_training_finished(self, checkpoint: str) -> None:
        if checkpoint:
            settings.add_recent_checkpoint(checkpoint)
            self.sample_tab.picker.set_just_trained(checkpoint)
            self.eval_tab.picker.refresh()
            for tab in (self.inpaint_tab, self.toy_tab):
                picker = getattr(tab, "picker", None)
                if picker is not None and hasattr(picker, "refresh"):
                    picker.refresh()

    def _update_state_label(self, *_args) -> None:
        busy = [f"{TAB_TITLES[k]}: {c.state}" for k, c in self.controllers.items() if c.state != IDLE]
        self.state_label.setText("   ".join(busy) if busy else "idle")

    def busy_controllers(self) -> List[RunController]:
        return [c for c in self.controllers.values() if c.state != IDLE]

    # --- actions -------------------------------------------------------------------------------
    def current_key(self) -> str:
        return TAB_KEYS[self.tabs.currentIndex()]

    def set_tab(self, key: str) -> None:
        self.tabs.setCurrentIndex(TAB_KEYS.index(key))

    def _call_current(self, name: str) -> bool:
        fn = getattr(self.tabs.currentWidget(), name, None)
        if callable(fn):
            fn()
            return True
        return False

    def run_current(self) -> None:
        if not self._call_current("run_action"):
            self.statusBar().showMessage("Nothing to run on this tab", 3000)

    def stop_current(self) -> None:
        c = self.controllers[self.current_key()]
        if c.state in ("running", "paused"):
            tab = self.tabs.currentWidget()
            (getattr(tab, "stop", None) or c.stop)()

    def export_current(self) -> None:
        if not self._call_current("export_action"):
            self.statusBar().showMessage("Nothing to export on this tab", 3000)

    def open_checkpoint(self, path: Optional[str] = None) -> None:
        """Ctrl+O: open a checkpoint in the Sample tab (or the current tab when it has its own picker)."""
        tab = self.tabs.currentWidget()
        target = tab if self.current_key() in ("sample", "evaluate", "inpaint") and hasattr(tab, "picker") \
            else self.sample_tab
        if target is self.sample_tab:
            self.set_tab("sample")
        if path:
            target.picker.set_path(path)
        else:
            target.picker.open_dialog()

    def follow_run_folder(self, path: Optional[str] = None) -> bool:
        """File > Follow run folder: watch, read-only, a run another process writes, in the Train tab."""
        if not path:
            from PySide6.QtWidgets import QFileDialog
            path = QFileDialog.getExistingDirectory(self, "Follow run folder", str(settings.runs_root()))
            if not path:
                return False
        self.set_tab("train")
        return self.train_tab.follow_run(path)

    def choose_runs_folder(self) -> None:
        from PySide6.QtWidgets import QFileDialog
        path = QFileDialog.getExistingDirectory(self, "Runs folder", str(settings.runs_root()))
        if path:
            settings.set_value("prefs/runs_root", path)
            self.statusBar().showMessage(f"New runs go to {path}", 5000)
            for tab in (self.sample_tab, self.eval_tab):
                tab.picker.refresh()

    def set_theme(self, name: str) -> None:
        settings.set_value("prefs/theme", name)
        apply_theme(QApplication.instance(), name)

    # --- resume offer --------------------------------------------------------------------------
    def unfinished_runs(self) -> List[str]:
        dismissed = set(settings.get_list("recent/dismissed_runs"))
        return [r for r in settings.recent_runs()
                if r not in dismissed and Path(r).is_dir() and jobs.is_unfinished(r)]

    def offer_resume(self) -> None:
        """A non-modal offer to continue the newest unfinished run of the recent list."""
        runs = self.unfinished_runs()
        if not runs or self.controllers["train"].state != IDLE:
            return
        run = runs[0]
        ck = jobs.latest_checkpoint(run)
        step = int(ck.stem.split("_")[1]) if ck else 0
        more = f" ({len(runs) - 1} more unfinished)" if len(runs) > 1 else ""
        age = follow.live_age(run)
        if age is not None:  # another process is writing it now: follow it, do not resume it
            self.banner.show_message(f"A training run is being written by another process: {run} (last update "
                                     f"{age:.0f} s ago){more}. Follow it (read-only)?", "info",
                                     [("Follow", lambda: self.follow_run_folder(run)),
                                      ("Dismiss", lambda: self._dismiss_run(run))])
            return
        self.banner.show_message(f"An unfinished training run was found: {run} (stopped at step {step:,}){more}. "
                                 f"Resume it?", "info",
                                 [("Resume", lambda: self._resume(run)), ("Dismiss", lambda: self._dismiss_run(run))])

    def _resume(self, run: str) -> None:
        self.set_tab("train")
        self.train_tab.resume_run(run)

    def _dismiss_run(self, run: str) -> None:
        settings.push_recent("recent/dismissed_runs", run, limit=50)

    # --- drag and drop -------------------------------------------------------------------------
    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        for url in event.mimeData().urls():
            if url.isLocalFile() and self.handle_dropped_path(url.toLocalFile()):
                event.acceptProposedAction()
                return

    def handle_dropped_path(self, path: str) -> bool:
        """A folder becomes the training data (or, if it is a run folder, its newest checkpoint is opened);
        a .pt file is opened in the Sample tab."""
        p = Path(path)
        if p.is_dir():
            ck = jobs.latest_checkpoint(str(p))
            if ck is not None:
                self.open_checkpoint(str(ck))
            else:
                self.set_tab("train")
                self.train_tab.set_data_folder(str(p))
            return True
        if p.suffix == ".pt" and p.is_file():
            self.open_checkpoint(str(p))
            return True
        self.statusBar().showMessage(f"Cannot use {p.name}: drop a folder of images or a .pt checkpoint", 5000)
        return False

    # --- settings and shutdown ------------------------------------------------------------------
    def _restore_settings(self) -> None:
        geom = settings.value("window/geometry")
        if isinstance(geom, QByteArray) and not geom.isEmpty():
            self.restoreGeometry(geom)
        else:
            self.resize(1360, 860)
        key = str(settings.value("window/tab", "train"))
        if key in TAB_KEYS:
            self.set_tab(key)

    def save_settings(self) -> None:
        settings.set_value("window/geometry", self.saveGeometry())
        settings.set_value("window/tab", self.current_key())

    def confirm_quit_while_running(self) -> bool:
        """Ask before stopping active runs (training is saved first). True = stop them and quit."""
        names = ", ".join(c.name for c in self.busy_controllers())
        training = self.controllers["train"].state != IDLE
        text = (f"Still running: {names}.\n\n" + ("Training will be stopped and a checkpoint saved before "
                                                   "NCSN Studio quits; you can resume it later." if training else
                                                   "The running work will be stopped."))
        answer = QMessageBox.question(self, "Quit NCSN Studio?", text,
                                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
                                      QMessageBox.StandardButton.Cancel)
        return answer == QMessageBox.StandardButton.Yes

    def closeEvent(self, event: QCloseEvent) -> None:
        """Ask when something runs (Cancel keeps it running); then stop everything and close within ~2 s (a
        training abandons its step under way; see CLOSE_WAIT_MS for what may still end after the window)."""
        if self.busy_controllers() and not self.confirm_quit_while_running():
            event.ignore()
            return
        self.save_settings()
        if not self.shutdown(CLOSE_WAIT_MS):
            still = ", ".join(c.name for c in self.busy_controllers())
            print(f"NCSN Studio: the window closed; still ending: {still} (waited for before the process exits)",
                  file=sys.stderr, flush=True)
        event.accept()

    def shutdown(self, timeout_ms: int = SHUTDOWN_WAIT_MS) -> bool:
        """Stop every run at once (a training saves a checkpoint as it stops), then wait for the worker threads,
        all within one deadline of `timeout_ms`. True when every worker has ended (the app calls this before it
        exits: no QThread may be destroyed while running); their last signals are delivered before it returns."""
        self._closing = True
        deadline = time.monotonic() + timeout_ms / 1000

        def left_ms() -> int:
            return max(int((deadline - time.monotonic()) * 1000), 0)

        for key, c in self.controllers.items():
            if c.state in ("running", "paused"):
                (getattr(self.tab_widgets[key], "stop", None) or c.stop)()
        ended = all([c.wait(left_ms()) for c in self.controllers.values()] + [self.warm_up.wait(left_ms())])
        for tab in self.tab_widgets.values():
            fn = getattr(tab, "shutdown", None)
            if callable(fn):
                fn(left_ms())
        QApplication.processEvents()  # the workers' finished signals: the controllers return to idle
        return ended and not self.busy_controllers()

    def _on_run_finished(self, _result: object) -> None:
        self._update_state_label()
