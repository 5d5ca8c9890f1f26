"""The main window's menus and shortcuts: File (open, export, recent, runs folder, quit), Run, View, Help."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QMainWindow, QMenu, QMessageBox

from . import settings

ABOUT = ("NCSN Studio: train, sample and inspect Noise Conditional Score Networks (Song & Ermon, 2019) on a "
         "laptop.\n\nSampler notation (Alg. 1): \u03b1_i = \u03b5\u00b7\u03c3_i\u00b2/\u03c3_L\u00b2, x \u2190 x + "
         "\u03b1_i/2\u00b7s + \u221a\u03b1_i\u00b7z.")


def build_menus(win: QMainWindow) -> None:
    """Add the menus to `win` (a MainWindow) and keep the actions tests and shortcuts use on it:
    open_action, export_action, follow_action, quit_action, run_action, stop_action, recent_menu."""
    m = win.menuBar()
    file_menu = m.addMenu("&File")
    win.open_action = _action(win, "&Open checkpoint\u2026", QKeySequence.StandardKey.Open, win.open_checkpoint)
    win.export_action = _action(win, "&Export\u2026", QKeySequence.StandardKey.Save, win.export_current)
    win.export_action.setStatusTip("Sample: export the grid PNG; Train: save a checkpoint now; "
                                   "Evaluate: save the results as JSON")
    # StandardKey.Quit is empty on some platforms
    win.quit_action = _action(win, "&Quit", QKeySequence("Ctrl+Q"), win.close)
    win.quit_action.setShortcutContext(Qt.ShortcutContext.ApplicationShortcut)
    file_menu.addAction(win.open_action)
    file_menu.addAction(win.export_action)
    win.recent_menu = file_menu.addMenu("Open &recent")
    win.recent_menu.aboutToShow.connect(lambda: _fill_recent_menu(win.recent_menu, win))
    win.follow_action = _action(win, "&Follow run folder\u2026", None, win.follow_run_folder)
    win.follow_action.setStatusTip("Watch, read-only, a run another process writes (ncsn train, a cluster job on a "
                                   "shared folder): its curves, previews and checkpoints as they come")
    file_menu.addAction(win.follow_action)
    runs_action = _action(win, "Runs &folder\u2026", None, win.choose_runs_folder)
    runs_action.setStatusTip("Where new training runs are written (and where the checkpoint lists look)")
    file_menu.addAction(runs_action)
    file_menu.addSeparator()
    file_menu.addAction(win.quit_action)

    run_menu = m.addMenu("&Run")
    win.run_action = _action(win, "&Run / resume current tab", QKeySequence(Qt.Key.Key_F5), win.run_current)
    win.stop_action = _action(win, "&Stop current tab", QKeySequence("Shift+F5"), win.stop_current)
    run_menu.addAction(win.run_action)
    run_menu.addAction(win.stop_action)

    view_menu = m.addMenu("&View")
    theme_menu = view_menu.addMenu("&Theme")
    group = QActionGroup(win)
    current = str(settings.value("prefs/theme", "system"))
    for name in ("system", "light", "dark"):
        a = _action(win, name.capitalize(), None, lambda _=False, n=name: win.set_theme(n))
        a.setCheckable(True)
        a.setChecked(name == current)
        group.addAction(a)
        theme_menu.addAction(a)
    for i in range(win.tabs.count()):
        view_menu.addAction(_action(win, f"Go to {win.tabs.tabText(i)}", QKeySequence(f"Ctrl+{i + 1}"),
                                    lambda _=False, i=i: win.tabs.setCurrentIndex(i)))

    help_menu = m.addMenu("&Help")
    help_menu.addAction(_action(win, "&About NCSN Studio", None, lambda: QMessageBox.about(win, "About NCSN Studio",
                                                                                           ABOUT)))


def _action(win: QMainWindow, text: str, shortcut, slot) -> QAction:
    a = QAction(text, win)
    if shortcut is not None:
        a.setShortcut(shortcut)
    a.triggered.connect(slot)
    return a


def _fill_recent_menu(menu: QMenu, win: QMainWindow) -> None:
    menu.clear()
    paths = settings.recent_checkpoints()
    if not paths:
        menu.addAction("(none yet)").setEnabled(False)
    for p in paths:
        menu.addAction(p).triggered.connect(lambda _=False, p=p: win.open_checkpoint(p))
