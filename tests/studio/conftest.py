"""pytest-qt fixtures for the studio: offscreen Qt, one CPU thread, settings and runs in a temp folder,
a tiny trained checkpoint (3 noise levels, 8-channel compact net) and a tiny continuous-sigma one, shared by the
session."""
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("OMP_NUM_THREADS", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
from PySide6.QtCore import QSettings  # noqa: E402

torch.set_num_threads(1)

# the form's extra values for fast tests: a small network and a report every step
TINY_OVERRIDES = {"model": {"channels": [8, 8, 8]}, "train": {"log_every": 1, "n_preview": 4}}


def tiny_config(n_iters: int = 4, **train):
    from ncsn_core.config import get_preset
    cfg = get_preset("mnist-cpu-levels").override("model", channels=(8, 8, 8)).override("noise", num_classes=3)
    kw = dict(n_iters=n_iters, batch_size=8, save_every=1000, preview_every=0, log_every=1, n_preview=4)
    kw.update(train)
    return cfg.override("train", **kw).override("sample", n_steps_each=3)


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path, monkeypatch):
    """Every test gets its own QSettings file and runs folder: the user's settings are never touched."""
    folder = tmp_path / "qsettings"
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(folder))
    QSettings.setPath(QSettings.Format.NativeFormat, QSettings.Scope.UserScope, str(folder))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(folder))
    from studio import settings
    settings.set_value("prefs/runs_root", str(tmp_path / "runs"))
    settings.set_value("prefs/export_dir", str(tmp_path / "exports"))
    yield folder


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> str:
    """A 4-step checkpoint of the tiny config (L = 3) made with the core training generator."""
    from ncsn_core.training import run_to_end, train
    run = tmp_path_factory.mktemp("tiny_run") / "run"
    fin = run_to_end(train(tiny_config(4), run))
    assert fin.reason == "done" and fin.checkpoint
    return fin.checkpoint


def tiny_sigma_config():
    """The mnist-cpu recipe (continuous sigma, Heun by default) on the tiny network, training ladder L = 3."""
    from ncsn_core.config import get_preset
    return (get_preset("mnist-cpu").override("model", channels=(8, 8, 8)).override("noise", num_classes=3)
            .override("sample", num_levels=5, guidance=1.0))  # no guide: an untrained network, saved on its own


@pytest.fixture(scope="session")
def tiny_sigma_checkpoint(tmp_path_factory) -> str:
    """An untrained continuous-sigma checkpoint (conditioning='sigma'; sampler heun, 5 sigmas 16 -> 0.002)."""
    from ncsn_core.checkpoint import save_checkpoint
    from ncsn_core.models import build_model
    cfg = tiny_sigma_config()
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    assert model.continuous
    return str(save_checkpoint(tmp_path_factory.mktemp("tiny_sigma") / "ckpt_00000001.pt", cfg, 1, model))


@pytest.fixture
def window(qtbot):
    from studio.main_window import MainWindow
    win = MainWindow(offer_resume=False)
    qtbot.addWidget(win)
    win.show()
    yield win
    win.shutdown()


def close_tab(qtbot, tab):
    """Teardown of a tab fixture: stop a running job, wait for its worker, shut the tab down, wait for idle."""
    if tab.controller.state == "running":
        tab.controller.stop()
    tab.controller.wait(30000)
    tab.shutdown()
    qtbot.waitUntil(lambda: tab.controller.state == "idle", timeout=30000)


def wait_idle(qtbot, controller, timeout=60000):
    qtbot.waitUntil(lambda: controller.state == "idle", timeout=timeout)


def set_text(qtbot, edit, text: str):
    """Type into a field as a user would: select all, then type."""
    edit.setFocus()
    edit.selectAll()
    edit.clear()
    qtbot.keyClicks(edit, text)


@pytest.fixture
def inpaint_tab(qtbot, monkeypatch, tmp_path):
    """An Inpaint tab without the built-in model (tests load the checkpoint they need), shown at working size."""
    from studio import jobs
    from studio.inpaint_tab import InpaintTab
    monkeypatch.setattr(jobs, "builtin_model", lambda: tmp_path / "no-model-yet.pt")
    t = InpaintTab(controller=None)
    qtbot.addWidget(t)
    t.resize(1300, 800)
    t.show()
    qtbot.waitExposed(t)
    return t
