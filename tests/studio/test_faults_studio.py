"""Faults and bad input in the studio (rows of the README's "When things go wrong" table): a bad checkpoint opened
in the Sample tab, bad image and mask files in the Inpaint tab, a diverging run, a full disk and a kill -9 while the Train tab trains.
Each shows its message, and the tab stays usable."""
import errno
import os
import pickle
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import TINY_OVERRIDES, close_tab, wait_idle
from ncsn_core import checkpoint as ckpt_mod
from ncsn_core.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint
from ncsn_core.cli import main as ncsn
from ncsn_core.images import ImageError
from ncsn_core.models import build_model
from studio import jobs
from studio.inpaint_tab import InpaintTab
from studio.sample_tab import SampleTab
from studio.train_tab import TrainTab
from test_train_tab import fill_tiny_form


class Evil:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def sample_tab(qtbot):
    t = SampleTab()
    qtbot.addWidget(t)
    t.show()
    yield t
    close_tab(qtbot, t)


def _open(qtbot, tab, path, ok: bool = True) -> None:
    """Choose `path` in the picker and wait for the reader's verdict on it (the tab may still be reading the
    built-in model it opened with)."""
    same = Path(path).resolve()
    if ok:
        with qtbot.waitSignal(tab.picker.model_read, timeout=30000,
                              check_params_cb=lambda info: Path(info.path).resolve() == same):
            tab.picker.set_path(str(path))
    else:
        with qtbot.waitSignal(tab.picker.model_failed, timeout=30000,
                              check_params_cb=lambda p, _msg: Path(p).resolve() == same):
            tab.picker.set_path(str(path))


def test_sample_tab_refuses_bad_checkpoints_and_stays_usable(qtbot, sample_tab, tiny_checkpoint, tmp_path):
    raw = Path(tiny_checkpoint).read_bytes()
    (tmp_path / "torn.pt").write_bytes(raw[: len(raw) // 2])
    flipped = bytearray(raw)
    for i in range(len(raw) // 2, len(raw) // 2 + 32):
        flipped[i] ^= 0xFF
    (tmp_path / "flipped.pt").write_bytes(bytes(flipped))
    torch.save({"format_version": 1, "model": Evil(tmp_path / "pwned")}, tmp_path / "evil.ckpt")
    (tmp_path / "evil.pth").write_bytes(pickle.dumps({"model": Evil(tmp_path / "pwned")}, protocol=2))
    cases = {"torn.pt": "truncated or damaged", "flipped.pt": "is damaged", "evil.ckpt": "refused, nothing was executed",
             "evil.pth": "contains pickled Python code/objects, refused, nothing was executed"}
    for name, words in cases.items():
        _open(qtbot, sample_tab, tiny_checkpoint)  # a good model first: the bad one must not leave it half-loaded
        assert sample_tab.info is not None
        _open(qtbot, sample_tab, tmp_path / name, ok=False)
        assert sample_tab.info is None and sample_tab.banner.isVisible()
        assert words in sample_tab.banner.text() and name in sample_tab.banner.text()
        assert not sample_tab.run_bar.run_button.isEnabled()
    assert not (tmp_path / "pwned").exists()
    _open(qtbot, sample_tab, tiny_checkpoint)  # still usable: the good checkpoint opens and samples
    assert not sample_tab.banner.isVisible() and sample_tab.run_bar.run_button.isEnabled()


def test_sample_tab_run_with_a_wrong_architecture_fails_with_the_reason(qtbot, sample_tab, tiny_checkpoint,
                                                                          tmp_path):
    """Opening reads only the config (no model is built), so the mismatch shows when the model is loaded to run."""
    state = torch.load(tiny_checkpoint, weights_only=True)
    cfg = load_checkpoint(tiny_checkpoint).config
    state["model"] = state["ema"] = build_model(cfg.override("model", arch="refinenet", ngf=4)).state_dict()
    torch.save(state, tmp_path / "other.pt")
    _open(qtbot, sample_tab, tmp_path / "other.pt")
    with qtbot.waitSignal(sample_tab.controller.errored, timeout=30000):
        assert sample_tab.run()
    wait_idle(qtbot, sample_tab.controller)
    assert "do not fit the compact architecture" in sample_tab.banner.text()
    _open(qtbot, sample_tab, tiny_checkpoint)
    assert sample_tab.run_bar.run_button.isEnabled()


@pytest.fixture
def inpaint_tab(qtbot, monkeypatch, tmp_path, tiny_checkpoint):
    monkeypatch.setattr(jobs, "builtin_model", lambda: Path(tiny_checkpoint))
    t = InpaintTab(controller=None)
    qtbot.addWidget(t)
    t.show()
    qtbot.waitUntil(lambda: t.image() is not None and t.info is not None, timeout=30000)
    yield t
    close_tab(qtbot, t)


def test_inpaint_tab_refuses_bad_images_and_keeps_the_current_one(qtbot, inpaint_tab, tmp_path, monkeypatch):
    tab = inpaint_tab
    before = tab.image()
    (tmp_path / "notes.png").write_text("not an image")
    noise = (np.random.default_rng(0).random((64, 64)) * 255).astype(np.uint8)  # incompressible: a real tear
    Image.fromarray(noise).save(tmp_path / "full.png")
    (tmp_path / "torn.png").write_bytes((tmp_path / "full.png").read_bytes()[:600])
    for name, words in {"notes.png": "not an image Pillow can read", "torn.png": "truncated or damaged"}.items():
        assert not tab.open_image(tmp_path / name)
        assert words in tab.run_bar.status.text() and name in tab.run_bar.status.text()
        assert np.array_equal(tab.image(), before)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # a decompression bomb, at a test's scale
    assert not tab.open_image(tmp_path / "full.png")
    assert "too large to open safely" in tab.run_bar.status.text()
    monkeypatch.undo()
    # 16-bit grey is scaled, not clipped to white; the tab resizes it and says so
    Image.fromarray(np.full((56, 56), 32768, np.uint16)).save(tmp_path / "i16.png")
    assert tab.open_image(tmp_path / "i16.png")
    assert abs(float(tab.image().mean()) - 0.5) < 0.01
    assert "56\u00d756" in tab.run_bar.status.text() and "28\u00d728" in tab.run_bar.status.text()
    tab.source.quick_mask_chosen.emit("Bottom half")  # still usable: a mask, and Run is on
    assert tab.editor.canvas.mask()[14:].all() and tab.run_bar.run_button.isEnabled()


def test_inpaint_mask_files_bad_or_of_another_size(qtbot, inpaint_tab, tmp_path):
    canvas = inpaint_tab.editor.canvas
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(ImageError, match="bad.png"):
        canvas.load_mask(tmp_path / "bad.png")
    # another size is resized to the image (both sizes are shown to the user); transparent = to fill
    la = np.zeros((56, 56, 2), np.uint8)
    la[..., 0] = 255
    la[:28, :, 1] = 255
    Image.fromarray(la, "LA").save(tmp_path / "big.png")
    assert canvas.load_mask(tmp_path / "big.png") == (56, 56)
    fill = canvas.mask()
    assert fill.shape == (28, 28) and not fill[:14].any() and fill[14:].all()


@pytest.fixture
def train_tab(qtbot, tmp_path):
    t = TrainTab()
    qtbot.addWidget(t)
    t.show()
    yield t
    if t.controller.state in ("running", "paused"):
        t.controller.stop()
    t.controller.wait(30000)
    qtbot.waitUntil(lambda: t.controller.state == "idle", timeout=30000)


def test_train_tab_divergence_is_shown_and_the_tab_stays_usable(qtbot, train_tab, tmp_path):
    tab = train_tab
    tab.config_overrides = {**TINY_OVERRIDES, "train": {**TINY_OVERRIDES["train"], "lr": 1e30}}
    fill_tiny_form(qtbot, tab, n_iters="50", save_every="1")
    tab.run_dir_edit.setText(str(tmp_path / "nan-run"))
    assert tab.start()
    wait_idle(qtbot, tab.controller)
    text = tab.banner.text()
    assert tab.banner.isVisible() and "Training diverged" in text and "at step" in text and "sigma" in text
    assert "Ended at step" in tab.run_bar.status.text() and tab.run_bar.run_button.isEnabled()
    assert all(torch.isfinite(p).all() for p in load_checkpoint(tmp_path / "nan-run").model.parameters())


def test_train_tab_disk_full_is_shown_and_the_last_checkpoint_kept(qtbot, train_tab, tmp_path, monkeypatch):
    tab = train_tab
    real_save, calls = torch.save, []

    def disk_fills_up(obj, f, *a, **k):
        calls.append(f)
        if len(calls) >= 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(obj, f, *a, **k)
    monkeypatch.setattr(ckpt_mod.torch, "save", disk_fills_up)
    tab.config_overrides = TINY_OVERRIDES
    fill_tiny_form(qtbot, tab, n_iters="50", save_every="2")
    tab.run_dir_edit.setText(str(tmp_path / "full"))
    assert tab.start()
    wait_idle(qtbot, tab.controller)
    text = tab.banner.text()
    assert "Training failed" in text and "No space left on device" in text and "ckpt_00000002.pt" in text
    assert tab.run_bar.run_button.isEnabled()
    assert load_checkpoint(tmp_path / "full").step == 2


# --- kill -9 of the studio while it trains -------------------------------------------------------------
STUDIO_TRAINER = """
import sys
from PySide6.QtWidgets import QApplication
app = QApplication([])
from studio.train_tab import TrainTab
tab = TrainTab()
tab.config_overrides = {"model": {"channels": [4, 6, 8]}, "train": {"log_every": 1}}
for name, value in (("n_iters", "100000"), ("batch_size", "8"), ("num_classes", "3"), ("preview_every", "0"),
                    ("save_every", "2")):
    tab.form.fields[name].setText(value)
tab.run_dir_edit.setText(sys.argv[1])
assert tab.start(), "the Train tab did not start"
app.exec()
"""


def test_kill_9_of_the_studio_while_training_keeps_the_newest_complete_checkpoint(tmp_path):
    """The real studio (a fresh process, offscreen) trains and is killed with SIGKILL at a random moment:
    the run folder holds only complete checkpoints, the newest loads, and --resume goes on from it."""
    run = tmp_path / "run"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "OMP_NUM_THREADS": "1", "XDG_CONFIG_HOME": str(tmp_path)}  # its settings stay in tmp
    proc = subprocess.Popen([sys.executable, "-c", STUDIO_TRAINER, str(run)], env=env, cwd=os.getcwd(),
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while len(list_checkpoints(run)) < 2:  # training, and saving every 2 steps
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the studio wrote no checkpoints in 120 s"
            time.sleep(0.02)
        time.sleep(random.Random(1).uniform(0.0, 0.5))  # mid-step, mid-save or mid-log
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(30) == -signal.SIGKILL
    finally:
        proc.kill()
    good = latest_checkpoint(run)
    assert load_checkpoint(good).step == int(good.stem[5:]) >= 2  # the newest complete checkpoint loads
    assert ncsn(["train", "--resume", str(run), "--n-iters", str(int(good.stem[5:]) + 2), "--quiet"]) == 0
    assert load_checkpoint(run).step == int(good.stem[5:]) + 2
