"""Following a run folder another process writes: a real `ncsn train` subprocess, the metrics read incrementally,
partial lines and a resume's truncation, the live-run offer and the File menu entry."""
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from studio import follow
from studio.follow import MetricsTail
from studio.train_tab import TrainTab

ROOT = Path(__file__).resolve().parents[2]


def tiny_cli_train(run_dir: Path, n_iters: int = 40) -> subprocess.Popen:
    """`ncsn train` on the tiny network (3 noise levels, 8 channels): a few seconds on one slow core."""
    cmd = [sys.executable, "-m", "ncsn_core.cli", "train", "--preset", "mnist-cpu-levels", "--run-dir", str(run_dir),
           "--n-iters", str(n_iters), "--batch-size", "8", "--log-every", "2", "--preview-every", "20",
           "--save-every", "1000", "--set", "model.channels=[8,8,8]", "--set", "noise.num_classes=3",
           "--set", "train.n_preview=4", "--set", "sample.n_steps_each=2", "--quiet"]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


@pytest.fixture
def tab(qtbot):
    t = TrainTab()
    qtbot.addWidget(t)
    t.show()
    t.following.poll_ms = 100
    yield t
    t.shutdown()


def n_points(tab) -> int:
    return len(tab.plots.loss_plot.steps)


def test_following_a_cli_run_grows_the_curves_until_it_finishes(qtbot, tab, tmp_path):
    run = tmp_path / "cli-run"
    proc = tiny_cli_train(run)
    try:
        qtbot.waitUntil(lambda: (run / "config.json").exists() or proc.poll() is not None, timeout=120000)
        assert tab.follow_run(str(run))
        assert tab.following.follower.state == "following" and "Following" in tab.following.label.text()
        assert "read-only" in tab.following.label.text() and "written by another process" in tab.following.label.text()
        assert not tab.run_bar.run_button.isEnabled() and tab.following.button.isVisible()
        assert not tab.form.isEnabled()
        seen = []
        f = tab.following
        f.follower.polled.connect(lambda: seen.append((n_points(tab), f.follower.state if f.follower else "finished")))
        finished = []
        tab.run_finished.connect(finished.append)
        qtbot.waitUntil(lambda: bool(finished), timeout=180000)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    grown = sorted({n for n, state in seen if state == "following"})
    assert len(grown) >= 2, f"the curve never grew while following: {seen}"    # new points arrived live
    assert tab.last_step == 40 and n_points(tab) == 20                        # every record, none twice
    assert tab.plots.loss_plot.steps == [float(s) for s in range(2, 41, 2)]
    assert len(tab.plots.level_plot.curves) == 3
    assert "step 40" in tab.plots.preview_label.text()                          # the newest preview is shown
    assert finished[0].endswith("ckpt_00000040.pt") and tab.last_checkpoint == finished[0]
    assert "finished at step 40" in tab.following.label.text()                  # the state says finished
    assert tab.following.follower is None and tab.run_bar.run_button.isEnabled() and tab.form.isEnabled()


def _record(step: int, t: float) -> str:
    return json.dumps({"step": step, "loss": 100.0 / step, "loss_per_sigma": [1.0, 2.0, None], "time": t}) + "\n"


def test_tail_reads_only_new_lines_and_waits_for_a_partial_one(tmp_path):
    p = tmp_path / "metrics.jsonl"
    p.write_text(_record(1, 0.0) + _record(2, 1.0))
    tail = MetricsTail(p)
    assert [r["step"] for r in tail.read()[1]] == [1, 2]
    assert tail.read() == (False, [])                              # nothing new, nothing read again
    line = _record(3, 2.0)
    with open(p, "a") as f:
        f.write(line[:17])                                         # the writer is mid-line
    assert tail.read() == (False, [])
    with open(p, "a") as f:
        f.write(line[17:] + "{torn by a kill\n" + _record(4, 3.0))
    assert [r["step"] for r in tail.read()[1]] == [3, 4]           # the torn line is skipped
    p.write_text(_record(1, 0.0))                                  # shortened: read again from the start
    reset, recs = tail.read()
    assert reset and [r["step"] for r in recs] == [1]


def test_a_resume_truncating_the_metrics_redraws_the_curve(qtbot, tab, tmp_path):
    from ncsn_core.training import RunDir
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    now = time.time()
    for s in range(1, 11):
        run.log(json.loads(_record(s, now - 20 + s)))
    with open(run.metrics, "a") as f:
        f.write('{"step": 11, "lo')                                 # killed mid-line
    assert tab.follow_run(str(run.path))
    assert tab.plots.loss_plot.steps == [float(s) for s in range(1, 11)]
    run.log(json.loads(_record(12, now)))                           # the torn line and this one are lost together
    run.log(json.loads(_record(13, now)))
    qtbot.waitUntil(lambda: tab.last_step == 13, timeout=5000)
    assert tab.plots.loss_plot.steps[-2:] == [10.0, 13.0]
    run.truncate_metrics(6)                                         # `ncsn train --resume` from a step-6 checkpoint
    qtbot.waitUntil(lambda: tab.last_step == 6, timeout=5000)
    assert tab.plots.loss_plot.steps == [float(s) for s in range(1, 7)]
    for s in (7, 8):
        run.log(json.loads(_record(s, now + s)))
    qtbot.waitUntil(lambda: tab.last_step == 8, timeout=5000)
    assert tab.plots.loss_plot.steps == [float(s) for s in range(1, 9)]
    assert tab.following.follower.state == "following"


def test_a_run_gone_quiet_is_shown_as_silent(qtbot, tab, tmp_path):
    run = tmp_path / "quiet"
    run.mkdir()
    (run / "metrics.jsonl").write_text(_record(1, time.time()))
    tab.following.silent_s = 0.3
    assert tab.follow_run(str(run))
    qtbot.waitUntil(lambda: tab.following.follower.state == "silent", timeout=5000)
    assert "silent" in tab.following.label.text() and "no update for" in tab.following.label.text()
    qtbot.mouseClick(tab.following.button, Qt.MouseButton.LeftButton)  # Stop following
    assert tab.following.follower is None and not tab.following.label.isVisible()
    assert tab.run_bar.run_button.isEnabled()


def test_not_a_run_folder_is_one_clear_line(tab, tmp_path):
    assert not tab.follow_run(str(tmp_path))
    assert "not a run folder" in tab.banner.text() and "--run-dir" in tab.banner.text()
    assert tab.following.follower is None


def test_resuming_a_live_run_offers_to_follow_it(qtbot, window, tmp_path):
    from ncsn_core.training import train
    from conftest import tiny_config
    run = tmp_path / "live"
    gen = train(tiny_config(50, save_every=2), run)
    ev = next(gen)
    while type(ev).__name__ != "TrainStep" or ev.step < 3:   # checkpoint at step 2, metrics past it: live
        ev = next(gen)
    gen.close()
    assert follow.live_age(str(run)) is not None
    tab = window.train_tab
    assert not tab.resume_run(str(run))
    assert "written by another process" in tab.banner.text()
    button = [b for b in tab.banner.buttons() if b.text() == "Follow it"][0]
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    assert tab.following.follower is not None and tab.last_step == 3 and window.controllers["train"].state == "idle"
    tab.stop_following()
    assert window.follow_action.text().startswith("&Follow run folder")
    assert window.follow_run_folder(str(run)) and window.current_key() == "train" and tab.following.follower is not None
    tab.stop_following()

    from studio import settings
    from studio.main_window import MainWindow
    settings.add_recent_run(str(run))                        # at start-up the live run is offered for following
    win = MainWindow(offer_resume=True)
    qtbot.addWidget(win)
    qtbot.waitUntil(lambda: win.banner.text() != "", timeout=5000)
    assert "written by another process" in win.banner.text()
    assert [b.text() for b in win.banner.buttons()] == ["Follow", "Dismiss"]
    win.shutdown()
