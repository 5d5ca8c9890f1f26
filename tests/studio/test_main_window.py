"""The window: tabs, shortcuts, settings, errors as messages, resume offer, drops, closing while training."""
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QMessageBox

from conftest import TINY_OVERRIDES, set_text, tiny_config, wait_idle
from studio import settings
from studio.main_window import MainWindow


def start_tiny_training(qtbot, win, n_iters="100000"):
    tab = win.train_tab
    tab.config_overrides = TINY_OVERRIDES
    for key, value in (("n_iters", n_iters), ("batch_size", "8"), ("num_classes", "3"), ("preview_every", "0"),
                       ("save_every", "100000")):
        set_text(qtbot, tab.form.fields[key], value)
    qtbot.mouseClick(tab.run_bar.run_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: tab.plots.loss_plot.raw_curve.xData is not None and len(tab.plots.loss_plot.raw_curve.xData) >= 2,
                    timeout=60000)
    return tab


def test_tabs_and_standard_shortcuts(window):
    assert [window.tabs.tabText(i) for i in range(window.tabs.count())] == \
        ["Train", "Sample", "Inpaint", "Toy 2-D lab", "Evaluate"]
    assert window.open_action.shortcut() == QKeySequence("Ctrl+O")
    assert window.export_action.shortcut() == QKeySequence("Ctrl+S")
    assert window.quit_action.shortcut() == QKeySequence("Ctrl+Q")
    assert window.run_action.shortcut() == QKeySequence("F5")
    assert window.statusBar().isVisible() and window.state_label.text() == "idle"


def test_f5_starts_training_on_the_train_tab(qtbot, window):
    window.set_tab("train")
    tab = window.train_tab
    tab.config_overrides = TINY_OVERRIDES
    for key, value in (("n_iters", "5"), ("batch_size", "8"), ("num_classes", "3"), ("preview_every", "0")):
        set_text(qtbot, tab.form.fields[key], value)
    window.run_action.trigger()
    assert window.controllers["train"].state == "running"
    assert "Train: running" in window.state_label.text()
    wait_idle(qtbot, window.controllers["train"])
    assert tab.last_step == 5
    # the run just trained is offered in the Sample tab
    assert window.sample_tab.picker.current_path() == str(Path(tab.last_checkpoint).resolve())


def test_ctrl_s_on_the_train_tab_saves_a_checkpoint_now(qtbot, window):
    window.set_tab("train")
    tab = start_tiny_training(qtbot, window)
    with qtbot.waitSignal(tab.checkpoint_saved, timeout=30000) as saved:
        window.export_action.trigger()
    assert Path(saved.args[0]).exists() and window.controllers["train"].state == "running"
    window.stop_action.trigger()                       # Shift+F5 stops the current tab's run
    wait_idle(qtbot, window.controllers["train"])


def test_settings_are_remembered_in_the_test_location(qtbot, isolated_settings):
    win = MainWindow(offer_resume=False)
    qtbot.addWidget(win)
    win.show()
    win.set_tab("evaluate")
    win.resize(900, 700)
    win.close()
    assert settings.settings().fileName().startswith(str(isolated_settings))
    assert settings.value("window/tab") == "evaluate"
    win2 = MainWindow(offer_resume=False)
    qtbot.addWidget(win2)
    assert win2.current_key() == "evaluate"
    win2.shutdown()


def test_worker_error_shows_a_message_and_the_window_lives(qtbot, window, tmp_path):
    window.set_tab("train")
    tab = window.train_tab
    tab.config_overrides = TINY_OVERRIDES
    (tmp_path / "imgs").mkdir()
    tab.set_data_folder(str(tmp_path / "imgs"))          # a folder without images: the loader raises
    qtbot.mouseClick(tab.run_bar.run_button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, window.controllers["train"])
    assert tab.banner.isVisible() and "failed" in tab.banner.text()
    assert window.isVisible() and tab.run_bar.run_button.isEnabled()

    # any generator failing in a tab's controller ends as that tab's message
    def boom():
        raise RuntimeError("the accelerator went away")
        yield

    window.set_tab("evaluate")
    c = window.controllers["evaluate"]
    with qtbot.waitSignal(c.finished, timeout=10000):
        c.start(boom)
    assert window.eval_tab.banner.isVisible() and "accelerator" in window.eval_tab.banner.text()
    assert window.isVisible() and c.state == "idle"


def test_closing_while_training_asks_then_stops_and_saves(qtbot, window, monkeypatch):
    tab = start_tiny_training(qtbot, window)
    asked = []
    monkeypatch.setattr(QMessageBox, "question",
                        lambda *a, **k: asked.append(a) or QMessageBox.StandardButton.Cancel)
    window.close()
    assert asked and window.isVisible() and window.controllers["train"].state == "running"   # Cancel: keeps going

    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    window.close()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=60000)
    assert window.controllers["train"].state == "idle"
    ckpts = list((Path(tab.run_dir) / "checkpoints").glob("ckpt_*.pt"))
    assert ckpts and tab.last_checkpoint == str(ckpts[-1])


def test_quit_shortcut_while_paused_also_saves(qtbot, window, monkeypatch):
    tab = start_tiny_training(qtbot, window)
    with qtbot.waitSignal(tab.checkpoint_saved, timeout=30000):
        qtbot.mouseClick(tab.run_bar.pause_button, Qt.MouseButton.LeftButton)
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    window.quit_action.trigger()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=60000)
    assert "Stopped" in tab.run_bar.status.text()


def test_unfinished_run_is_offered_and_resumed(qtbot):
    from ncsn_core.training import is_unfinished, train
    run = settings.runs_root() / "unfinished"
    gen = train(tiny_config(5), run)
    ev = next(gen)
    while type(ev).__name__ != "TrainStep" or ev.step < 2:
        ev = next(gen)
    gen.send("stop")
    gen.close()
    settings.add_recent_run(str(run))
    assert is_unfinished(run)

    win = MainWindow(offer_resume=True)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(lambda: win.banner.isVisible(), timeout=5000)
    assert "unfinished" in win.banner.text() and "step 2" in win.banner.text()
    resume = [b for b in win.banner.buttons() if b.text() == "Resume"][0]
    qtbot.mouseClick(resume, Qt.MouseButton.LeftButton)
    assert win.current_key() == "train" and win.controllers["train"].state == "running"
    wait_idle(qtbot, win.controllers["train"])
    assert win.train_tab.last_step == 5 and not is_unfinished(run)
    win.shutdown()


def test_dismissed_runs_are_not_offered_again(qtbot):
    from ncsn_core.training import train
    run = settings.runs_root() / "later"
    gen = train(tiny_config(5), run)
    ev = next(gen)
    while type(ev).__name__ != "TrainStep":
        ev = next(gen)
    gen.send("stop")
    gen.close()
    settings.add_recent_run(str(run))
    win = MainWindow(offer_resume=True)
    qtbot.addWidget(win)
    qtbot.waitUntil(lambda: win.banner.isVisible() or win.banner.text() != "", timeout=5000)
    dismiss = [b for b in win.banner.buttons() if b.text() == "Dismiss"][0]
    qtbot.mouseClick(dismiss, Qt.MouseButton.LeftButton)
    assert not win.banner.isVisible() and win.unfinished_runs() == []


def test_dropping_a_folder_or_checkpoint(qtbot, window, tmp_path, tiny_checkpoint):
    from PIL import Image
    import numpy as np
    folder = tmp_path / "faces"
    folder.mkdir()
    for i in range(3):
        Image.fromarray((np.random.default_rng(i).random((40, 40, 3)) * 255).astype("uint8")).save(folder / f"{i}.png")
    assert window.handle_dropped_path(str(folder))
    assert window.current_key() == "train" and window.train_tab.data.source() == "folder"
    assert "3 image files" in window.train_tab.data.info.text()
    assert window.handle_dropped_path(tiny_checkpoint)
    assert window.current_key() == "sample"
    qtbot.waitUntil(lambda: window.sample_tab.info is not None, timeout=30000)
    assert not window.handle_dropped_path(str(tmp_path / "notes.txt"))


def test_dark_theme_keeps_text_readable(qtbot, window):
    from PySide6.QtGui import QPalette
    from PySide6.QtWidgets import QApplication
    window.set_theme("dark")
    qtbot.wait(50)   # palettes propagate through the event loop
    try:
        pal = QApplication.instance().palette()
        assert pal.color(QPalette.ColorRole.Window).lightness() < 100
        assert pal.color(QPalette.ColorRole.WindowText).lightness() > 180
        banner = window.train_tab.banner
        banner.show_message("hello", "error")
        assert banner.palette().color(QPalette.ColorRole.WindowText).lightness() > 180   # palette text, not black
        assert banner.palette().color(QPalette.ColorRole.Window).lightness() < 120       # a dark tint
        lr = window.train_tab.form.fields["lr"]
        set_text(qtbot, lr, "x")
        assert lr.palette().color(QPalette.ColorRole.Base).lightness() < 120              # dark, tinted red
        assert lr.palette().color(QPalette.ColorRole.Text).lightness() > 180
    finally:
        window.set_theme("system")


def test_warm_up_imports_run_once_after_the_first_model_read(qtbot, monkeypatch):
    from studio import jobs
    calls = []

    def fake_warm():
        calls.append("warm")
        yield
    monkeypatch.setattr(jobs, "warm_imports", fake_warm)
    win = MainWindow(offer_resume=False)
    qtbot.addWidget(win)
    win.show()
    qtbot.waitUntil(lambda: win.sample_tab.info is not None, timeout=60000)  # the built-in model, read on a worker
    qtbot.waitUntil(lambda: calls == ["warm"] and not win.warm_up.is_busy(), timeout=10000)
    win.sample_tab.picker.model_read.emit(win.sample_tab.info)  # a later read (another model) starts nothing
    assert calls == ["warm"] and not win.warm_up.is_busy()
    assert win.shutdown()


def test_a_model_read_ending_during_shutdown_starts_no_warm_up(qtbot, monkeypatch):
    from studio import jobs
    calls = []
    monkeypatch.setattr(jobs, "warm_imports", lambda: iter(calls.append("warm") or ()))
    win = MainWindow(offer_resume=False)
    qtbot.addWidget(win)
    win.show()
    assert win.shutdown()  # before the first read has ended: its model_read comes while closing
    qtbot.wait(200)
    assert calls == [] and not win.warm_up.is_busy()


def test_warm_imports_leave_nothing_for_a_first_optimiser_step_to_import():
    """The freeze it prevents: torch.optim imports torch._dynamo on the first step (benchmarks/README.md)."""
    import subprocess
    import sys
    code = ("import sys; from studio import jobs; list(jobs.warm_imports()); import torch; before = set(sys.modules); "
            "net = torch.nn.Linear(3, 3); opt = torch.optim.Adam(net.parameters()); "
            "net(torch.randn(2, 3)).sum().backward(); opt.step(); "
            "new = sorted(set(sys.modules) - before); assert not new, new; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
