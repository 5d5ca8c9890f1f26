"""`ncsn-studio`: start the desktop app, or render one tab to a PNG (--screenshot) and exit.

Qt's GUI modules are imported inside main(), after platform_check: on a machine that lacks Qt's system
libraries, importing them (or creating the QApplication) would abort before any helpful message."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, List, Optional

from . import platform_check

if TYPE_CHECKING:
    from PySide6.QtWidgets import QApplication

TABS = ("train", "sample", "inpaint", "toy", "evaluate")


def process_until(app: QApplication, done: Callable[[], bool], timeout_s: float) -> bool:
    """Run the event loop until done() or the timeout; True when done."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        app.processEvents()
        if done():
            return True
        time.sleep(0.01)
    return done()


def settle(app: QApplication, seconds: float = 0.5) -> None:
    process_until(app, lambda: False, seconds)


def take_screenshot(app: QApplication, win, path: str, tab: str) -> int:
    """Render `tab` with representative content, grab the window to `path` (PNG). 0 on success."""
    win.set_tab(tab)
    settle(app, 0.5)
    demo = getattr(win.tab_widgets[tab], "screenshot_demo", None)
    for done in (demo() if callable(demo) else None) or ():  # each: a condition to wait for
        process_until(app, done, 300)
    settle(app, 1.0)
    img = win.grab()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    if not img.save(path, "PNG"):
        print(f"could not write {path}", file=sys.stderr)
        return 1
    print(f"wrote {path} ({img.width()} x {img.height()})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ncsn-studio", description="NCSN Studio: train and sample score-based models")
    p.add_argument("--screenshot", metavar="PATH", help="render the window to a PNG and exit")
    p.add_argument("--tab", choices=TABS, help="the tab to open (and to render with --screenshot)")
    p.add_argument("--reset-settings", action="store_true", help="forget window layout, recent files and preferences")
    p.add_argument("--theme", choices=("system", "light", "dark"), help="colour theme (remembered)")
    p.add_argument("--quit-when-shown", action="store_true", help=argparse.SUPPRESS)  # studio/bench.py's launch time
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    problem = platform_check.check()
    if problem:
        print(problem, file=sys.stderr)
        return 1
    from PySide6.QtCore import QCoreApplication, Qt
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtWidgets import QApplication

    from . import settings
    from .theme import apply_theme
    QCoreApplication.setOrganizationName(settings.ORGANIZATION)
    QCoreApplication.setApplicationName(settings.APPLICATION)
    app = QApplication.instance()
    if app is None:  # HiDPI: fractional scale factors as the screen reports them (Qt 6 scales by default)
        QGuiApplication.setHighDpiScaleFactorRoundingPolicy(Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
        app = QApplication([sys.argv[0]])
    app.setApplicationDisplayName("NCSN Studio")
    import pyqtgraph as pg
    pg.setConfigOptions(antialias=True)
    if args.reset_settings:
        settings.reset()
        print("settings reset")
    if args.theme:
        settings.set_value("prefs/theme", args.theme)
    apply_theme(app, str(settings.value("prefs/theme", "system")))

    from .main_window import MainWindow
    win = MainWindow(offer_resume=not (args.screenshot or args.quit_when_shown))
    if args.tab:
        win.set_tab(args.tab)
    if args.screenshot:
        win.resize(1360, 860)
        win.show()
        code = take_screenshot(app, win, args.screenshot, args.tab or win.current_key())
        for c in win.busy_controllers():
            c.stop()
        process_until(app, lambda: not win.busy_controllers(), 30)
        win.shutdown()
        return code
    win.show()
    if args.quit_when_shown:  # the event loop's first turn: the window has been shown and painted
        from PySide6.QtCore import QTimer
        QTimer.singleShot(0, lambda: (app.processEvents(), print(json.dumps({"shown_at": time.time()}), flush=True),
                                      app.quit()))  # processEvents: the first paint is done too
    code = app.exec()
    # the workers have normally ended inside closeEvent (a training abandons its step under way); one still ending
    # (a checkpoint on a very slow disk) is waited for, up to main_window.SHUTDOWN_WAIT_MS. Only past that, as a
    # fallback: a normal exit would abort on "QThread: Destroyed while thread is still running", so leave without
    # it (checkpoints and PNGs are written atomically: nothing is left half-written)
    if not win.shutdown():
        print("NCSN Studio: a worker did not end in time; exiting without it", file=sys.stderr, flush=True)
        os._exit(code)
    return code


if __name__ == "__main__":
    sys.exit(main())
