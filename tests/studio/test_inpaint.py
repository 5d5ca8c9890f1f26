"""Inpainting tab and mask canvas, driven like a user (offscreen, tiny model, T=2)."""
import numpy as np
import pytest
import torch
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from studio import jobs
from ncsn_core.checkpoint import save_checkpoint
from ncsn_core.config import SampleConfig, get_preset
from ncsn_core.export import read_png_meta
from ncsn_core.models import build_model
from studio.widgets.mask_canvas import MaskEditor


def _tiny():
    cfg = (get_preset("mnist-cpu-levels").override("model", channels=(8, 8, 8)).override("noise", num_classes=3)
           .override("sample", n_steps_each=2, step_lr=5e-5))
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    model.data_mean = torch.full((1, 28, 28), 0.13)  # the preset starts its chains at the data mean
    return model, cfg


@pytest.fixture
def editor(qtbot):
    ed = MaskEditor()
    qtbot.addWidget(ed)
    ed.resize(520, 520)
    ed.show()
    qtbot.waitExposed(ed)
    ed.canvas.set_image(np.linspace(0, 1, 28 * 28).reshape(28, 28))
    return ed


@pytest.fixture
def tab(inpaint_tab):
    return inpaint_tab


def _drag(qtbot, canvas, pts, button=Qt.MouseButton.LeftButton):
    """Press at the first image point, move through the rest, release at the last (image coordinates)."""
    w = [canvas.image_to_widget(x, y).toPoint() for x, y in pts]
    qtbot.mousePress(canvas, button, pos=w[0])
    for a, b in zip(w, w[1:]):
        for k in range(1, 6):
            qtbot.mouseMove(canvas, a + (b - a) * (k / 5))
    qtbot.mouseRelease(canvas, button, pos=w[-1])


def test_canvas_is_scaled_up_and_paints_in_image_pixels(qtbot, editor):
    c = editor.canvas
    assert c.zoom() > 10  # 28x28 shown at more than 10x
    c.brush_size = 1
    with qtbot.waitSignal(c.mask_changed):
        _drag(qtbot, c, [(4.5, 10.5), (20.5, 10.5)])
    m = c.mask()
    assert m.dtype == bool and m.shape == (28, 28)
    assert m[10, 4:21].all() and m.sum() == 17
    assert np.array_equal(c.known_mask(), ~m)


def test_undo_redo_shortcuts(qtbot, editor):
    c = editor.canvas
    c.brush_size = 3
    _drag(qtbot, c, [(5.5, 5.5), (5.5, 20.5)])
    painted = c.mask()
    assert painted[5:21, 4:7].all() and painted.sum() > 40
    qtbot.keyClick(c, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert not c.mask().any()
    qtbot.keyClick(c, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert np.array_equal(c.mask(), painted)
    qtbot.keyClick(c, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    qtbot.keyClick(c, Qt.Key.Key_Y, Qt.KeyboardModifier.ControlModifier)
    assert np.array_equal(c.mask(), painted)
    # the eraser (right button) is one more undoable stroke
    c.brush_size = 1
    _drag(qtbot, c, [(5.5, 10.5), (5.5, 12.5)], button=Qt.MouseButton.RightButton)
    assert not c.mask()[10:13, 5].any() and c.mask().sum() == painted.sum() - 3
    editor.undo_button.click()
    assert np.array_equal(c.mask(), painted)


def test_bracket_keys_and_slider_change_brush_size(qtbot, editor):
    c = editor.canvas
    c.brush_size = 5
    qtbot.keyClick(c, Qt.Key.Key_BracketRight)
    assert c.brush_size == 6 and editor.size_slider.value() == 6
    qtbot.keyClick(c, Qt.Key.Key_BracketLeft)
    qtbot.keyClick(c, Qt.Key.Key_BracketLeft)
    assert c.brush_size == 4
    for _ in range(10):
        qtbot.keyClick(c, Qt.Key.Key_BracketLeft)
    assert c.brush_size == 1
    editor.size_slider.setValue(9)
    assert c.brush_size == 9 and editor.size_label.text() == "9 px"


def test_invert_clear_and_eraser_tool(qtbot, editor):
    c = editor.canvas
    qtbot.mouseClick(editor.invert_button, Qt.MouseButton.LeftButton)
    assert c.mask().all()
    qtbot.mouseClick(editor.eraser_button, Qt.MouseButton.LeftButton)
    assert c.tool == "eraser"
    c.brush_size = 1
    _drag(qtbot, c, [(0.5, 0.5), (3.5, 0.5)])
    assert c.mask().sum() == 28 * 28 - 4
    qtbot.mouseClick(editor.clear_button, Qt.MouseButton.LeftButton)
    assert not c.mask().any()
    qtbot.keyClick(c, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert c.mask().sum() == 28 * 28 - 4
    qtbot.keyClick(c, Qt.Key.Key_B)
    assert c.tool == "brush" and editor.brush_button.isChecked()


def test_zoom_and_pan_keep_painting_in_image_pixels(qtbot, editor):
    c = editor.canvas
    z0 = c.zoom()
    centre = c.image_to_widget(14, 14)
    anchor = c.widget_to_image(centre)
    from PySide6.QtCore import QPoint
    from PySide6.QtGui import QWheelEvent
    ev = QWheelEvent(centre, c.mapToGlobal(centre), QPoint(0, 0), QPoint(0, 240), Qt.MouseButton.NoButton,
                     Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    c.wheelEvent(ev)
    assert c.zoom() == pytest.approx(z0 * 1.25 ** 2)
    after = c.widget_to_image(centre)
    assert (after.x(), after.y()) == pytest.approx((anchor.x(), anchor.y()))  # zoom about the cursor
    before = c.image_to_widget(0, 0)
    _drag(qtbot, c, [(14, 14), (10, 12)], button=Qt.MouseButton.MiddleButton)  # pan, no paint
    assert not c.mask().any() and c.image_to_widget(0, 0) != before
    c.brush_size = 1
    _drag(qtbot, c, [(7.5, 9.5)])
    assert c.mask()[9, 7] and c.mask().sum() == 1
    # Space + left drag pans too, without painting
    before = c.image_to_widget(0, 0)
    qtbot.keyPress(c, Qt.Key.Key_Space)
    _drag(qtbot, c, [(14, 14), (18, 16)])
    qtbot.keyRelease(c, Qt.Key.Key_Space)
    assert c.mask().sum() == 1 and c.image_to_widget(0, 0) != before
    qtbot.keyClick(c, Qt.Key.Key_F)  # fit again
    assert c.zoom() == pytest.approx(z0)


def test_mask_png_round_trip_uses_the_cli_convention(qtbot, editor, tmp_path):
    from PIL import Image
    c = editor.canvas
    fill = np.zeros((28, 28), bool)
    fill[14:, :] = True
    c.set_mask(fill)
    path = c.save_mask(tmp_path / "mask.png")
    png = np.asarray(Image.open(path))
    assert png.dtype == np.uint8 and png[0, 0] == 255 and png[27, 0] == 0  # white = keep, black = fill
    c.clear()
    assert c.load_mask(path) is None
    assert np.array_equal(c.mask(), fill)
    c.undo()  # loading is undoable
    assert not c.mask().any()
    # a bigger mask file is resized to the image (nearest)
    Image.fromarray(np.kron(png, np.ones((2, 2), np.uint8))).save(tmp_path / "big.png")
    assert c.load_mask(tmp_path / "big.png") == (56, 56)
    assert np.array_equal(c.mask(), fill)


def test_missing_builtin_model_says_what_to_do(qtbot, tab, tmp_path):
    assert "does not exist yet" in tab.picker.info_label.text() and "Open…" in tab.picker.info_label.text()
    assert not tab.run_bar.run_button.isEnabled()
    # with a checkpoint in the runs folder, one click uses the newest
    from studio import settings
    model, cfg = _tiny()
    ckpt = save_checkpoint(settings.runs_root() / "mine" / "checkpoints" / "ckpt_00000002.pt", cfg, 2, model)
    tab.load_default_model()
    assert tab.picker.latest_button.isVisible() and "ckpt_00000002.pt" in tab.picker.latest_button.text()
    qtbot.mouseClick(tab.picker.latest_button, Qt.MouseButton.LeftButton)
    assert tab.picker.current_path() == str(ckpt.resolve()) and not tab.picker.latest_button.isVisible()
    assert "step 2" in tab.picker.info_label.text()


def _run_and_wait(qtbot, tab, timeout=60000):
    with qtbot.waitSignal(tab.run_finished, timeout=timeout):
        assert tab.run()
    assert not tab.is_running()


@pytest.mark.parametrize("denoise", [True, False])
def test_inpaint_with_tiny_model_keeps_known_pixels(qtbot, tab, denoise):
    model, cfg = _tiny()
    tab.set_model(model, cfg)
    assert tab.image() is not None  # MNIST test #0 is shown by default
    c = tab.editor.canvas
    c.brush_size = 6
    _drag(qtbot, c, [(3, 20), (24, 20)])
    known = c.known_mask()
    assert (~known).sum() > 50 and tab.run_bar.run_button.isEnabled()
    tab.form.n_edit.set_value(2)
    tab.form.denoise_box.setChecked(denoise)
    _run_and_wait(qtbot, tab)
    r = tab.results()
    img = tab.image()
    assert r["completions"].shape == (2, 1, 28, 28)
    # shown completions: known pixels are exactly the original (pasted)
    assert np.abs(r["completions"][:, :, known] - img[None][:, :, known]).max() < 1e-6
    raw_known = r["raw"][:, :, known] - img[None][:, :, known]
    sigma_L = float(model.sigmas[-1])
    if denoise:  # inpaint() resets the known pixels to the clean image after the denoising step
        assert np.abs(raw_known).max() < 1e-6
    else:        # they follow y = image + sigma_L * z
        assert 0 < np.abs(raw_known).max() < 6 * sigma_L
        assert np.std(raw_known) == pytest.approx(sigma_L, rel=0.2)
    assert tab.result.view.count() == 4 and len(tab.live.chains.view.images) == 2
    assert tab.live.strip_view.count() == 3  # one snapshot per level
    assert "level 3/3" in tab.live.chains.level_label.text() and "σ_3" in tab.live.chains.level_label.text()
    assert tab.run_bar.run_button.isEnabled() and not tab.run_bar.stop_button.isEnabled()


def test_checkpoint_export_and_same_seed_same_result(qtbot, tab, tmp_path):
    model, cfg = _tiny()
    ckpt = save_checkpoint(tmp_path / "ckpt_00000001.pt", cfg, 1, model)
    assert tab.load_checkpoint(ckpt)
    assert "ckpt_00000001.pt" in tab.picker.info_label.text() and tab.form.steps_edit.value() == 2
    assert tab.picker.current_path().endswith("ckpt_00000001.pt")  # the shared picker shows it
    tab.editor.canvas.set_mask(np.arange(28)[:, None].repeat(28, 1) >= 14)
    tab.form.n_edit.set_value(3)
    tab.form.seed_edit.set_value(7)
    _run_and_wait(qtbot, tab)
    first = tab.results()["completions"].copy()
    out = tab.export_row(tmp_path / "row.png")
    from PIL import Image
    im = Image.open(out)
    assert im.size == (5 * 30 + 2, 32)  # original, occluded, 3 completions; padding 2 as make_grid
    meta = read_png_meta(out)
    assert meta["layout"] == "original, occluded, then completions" and meta["seed"] == 7
    assert meta["n_steps_each"] == 2 and meta["checkpoint"].endswith("ckpt_00000001.pt")
    _run_and_wait(qtbot, tab)
    assert np.array_equal(tab.results()["completions"], first)


def test_bad_checkpoint_and_failing_model_become_messages(qtbot, tab, tmp_path):
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a checkpoint")
    assert not tab.load_checkpoint(bad)
    assert "broken.pt" in tab.picker.info_label.text() and "damaged" in tab.picker.info_label.text()

    model, cfg = _tiny()

    class Exploding(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("sigmas", model.sigmas.clone())
            self.data_mean = model.data_mean

        def forward(self, x, labels):
            raise ValueError("score network exploded")

    tab.set_model(Exploding(), cfg)
    tab.editor.canvas.invert()
    _run_and_wait(qtbot, tab)
    assert "score network exploded" in tab.run_bar.status.text()
    assert tab.results() is None and tab.controller.state == "idle"


def test_stop_ends_a_long_run(qtbot, tab):
    model, cfg = _tiny()
    tab.set_model(model, cfg)
    tab.editor.canvas.invert()
    tab.form.steps_edit.set_value(1000)
    with qtbot.waitSignal(tab.run_finished, timeout=60000):
        tab.run()
        assert tab.run_bar.stop_button.isEnabled()
        qtbot.mouseClick(tab.run_bar.stop_button, Qt.MouseButton.LeftButton)
    assert tab.results() is None and "Stopped" in tab.run_bar.status.text()
    assert tab.run_bar.run_button.isEnabled()


def test_open_by_drop_and_builtin_digits(qtbot, tab, tmp_path):
    from PIL import Image
    a = np.zeros((56, 56), np.uint8)
    a[:, :28] = 255
    Image.fromarray(a).save(tmp_path / "half.png")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(tmp_path / "half.png"))])
    ev = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                    Qt.KeyboardModifier.NoModifier)
    tab.dropEvent(ev)
    img = tab.image()
    assert img.shape == (1, 28, 28) and img[0, :, :13].min() > 0.99 and img[0, :, 15:].max() < 0.01
    assert "half.png" in tab.source.image_label.text()
    tab.source.digit_spin.setValue(5)
    assert "MNIST test #5" in tab.source.image_label.text()
    qtbot.mouseClick(tab.source.random_button, Qt.MouseButton.LeftButton)
    assert tab.image().shape == (1, 28, 28)


def test_choosing_a_checkpoint_in_the_picker_loads_it(qtbot, tab, tmp_path):
    assert tab.picker.current_path() is None  # no built-in model, nothing recent
    model, cfg = _tiny()
    ckpt = save_checkpoint(tmp_path / "run" / "checkpoints" / "ckpt_00000005.pt", cfg, 5, model)
    with qtbot.waitSignal(tab.model_changed):
        tab.picker.set_path(str(ckpt))  # what Open… does after the file dialog
    assert "step 5" in tab.picker.info_label.text() and "3 levels" in tab.picker.info_label.text()
    tab.editor.canvas.invert()
    assert tab.run_bar.run_button.isEnabled()


def test_a_toy_checkpoint_is_refused_with_a_reason(tab, tmp_path):
    cfg = get_preset("toy")
    ckpt = save_checkpoint(tmp_path / "toy.pt", cfg, 1, build_model(cfg))
    assert not tab.load_checkpoint(ckpt)
    assert "inpainting needs an image model" in tab.picker.info_label.text()


# --- the chain's start and the variance correction kappa ----------------------------------------
def _combo_item(combo, value):
    return combo.model().item(combo.findData(value))


def test_start_and_kappa_follow_the_checkpoint_and_reach_the_job_and_the_export(qtbot, tab, tmp_path, monkeypatch):
    import ncsn_core.sampling as sampling
    model, cfg = _tiny()
    cfg = cfg.override("sample", init="gaussian", variance_correction=0.5)
    model.data_mean = torch.full((1, 28, 28), 0.13)
    ckpt = save_checkpoint(tmp_path / "ckpt_00000003.pt", cfg, 3, model)
    assert tab.load_checkpoint(ckpt)
    assert tab.form.init_combo.currentData() == "gaussian" and tab.form.kappa_spin.value() == 0.5   # the config's values
    assert _combo_item(tab.form.init_combo, "data-mean").isEnabled()                # the checkpoint holds a mean
    assert "stationary variance is exactly" in tab.form.kappa_spin.toolTip()
    assert (tab.settings().sample.init, tab.settings().sample.variance_correction) == ("gaussian", 0.5)

    tab.form.init_combo.setCurrentIndex(tab.form.init_combo.findData("data-mean"))
    tab.form.kappa_spin.stepBy(2)                                                   # 0.5 -> 1.0 as the arrows do
    s = tab.settings()
    assert (s.sample.init, s.sample.variance_correction) == ("data-mean", 1.0)
    calls, real = [], sampling.inpaint
    monkeypatch.setattr(sampling, "inpaint", lambda *a, **k: calls.append(k) or real(*a, **k))
    tab.editor.canvas.set_mask(np.arange(28)[:, None].repeat(28, 1) >= 14)
    tab.form.n_edit.set_value(2)
    _run_and_wait(qtbot, tab)
    assert tab.results() is not None
    assert calls[-1]["init"] == "data-mean" and calls[-1]["variance_correction"] == 1.0
    assert calls[-1]["init_mean"] is not None
    assert "start data-mean" in tab.result.note.text()
    meta = read_png_meta(tab.export_row(tmp_path / "row.png"))
    assert meta["init"] == "data-mean" and meta["variance_correction"] == 1.0

    # another model: the controls take its config's values again
    model2, cfg2 = _tiny()
    tab.set_model(model2, cfg2.override("sample", init="uniform", variance_correction=0.25))
    assert tab.form.init_combo.currentData() == "uniform" and tab.form.kappa_spin.value() == 0.25


def test_data_mean_start_is_disabled_without_a_data_mean(qtbot, tab, tmp_path):
    model, cfg = _tiny()
    model.data_mean = None                                  # no data mean, like an old checkpoint
    ckpt = save_checkpoint(tmp_path / "old.pt", cfg.override("sample", init="gaussian", variance_correction=0.25),
                           1, model)
    assert tab.load_checkpoint(ckpt)
    item = _combo_item(tab.form.init_combo, "data-mean")
    assert not item.isEnabled() and "no training-data mean" in item.toolTip()
    assert _combo_item(tab.form.init_combo, "uniform").isEnabled() and _combo_item(tab.form.init_combo, "gaussian").isEnabled()
    assert tab.form.init_combo.currentData() == "gaussian" and tab.form.kappa_spin.value() == 0.25
    tab.editor.canvas.invert()
    assert tab.run_bar.run_button.isEnabled()
    # forced (a config that names it): Run is off and says why
    tab.form.init_combo.setCurrentIndex(tab.form.init_combo.findData("data-mean"))
    assert not tab.run_bar.run_button.isEnabled() and "no training-data mean" in tab.run_bar.run_button.toolTip()
    assert "no training-data mean" in tab.run_bar.problem_label.text() and not tab.run()
    # the job refuses it too, with the same reason (on the worker thread, where make_gen runs); the form
    # gives no such settings (tab.settings() raises the same message), so they are written out here
    with pytest.raises(ValueError, match="no training-data mean"):
        tab.settings()
    s = jobs.SampleSettings(n=2, sample=SampleConfig(step_lr=5e-5, n_steps_each=2, denoise=True, init="data-mean"))
    make_gen = jobs.inpaint_job(model, tab.image(), tab.editor.canvas.known_mask(), s)
    with pytest.raises(ValueError, match="no training-data mean.*choose the uniform or gaussian start"):
        next(make_gen())
    tab.form.init_combo.setCurrentIndex(tab.form.init_combo.findData("uniform"))
    assert tab.run_bar.run_button.isEnabled()
