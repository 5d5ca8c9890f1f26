"""Colour in the studio: a tiny RGB checkpoint (3 x 32 x 32, trained two steps on a folder of RGB PNGs) and that
folder, shown by the Train, Sample and Inpaint tabs in their own colours. Colours are read back from what Qt and
pyqtgraph paint (the rendered QImage, or a grab of the widget), not from the arrays handed to them."""
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QImage

from conftest import TINY_OVERRIDES, close_tab, set_text, wait_idle
from studio import jobs
from studio.sample_tab import SampleTab
from studio.train_tab import TrainTab

from colour_data import BLUE, GREEN, RED, colour_image, write_colour_folder  # tests/colour_data.py (tests/ is on sys.path: its conftest)


@pytest.fixture(scope="module")
def colour_folder(tmp_path_factory) -> Path:
    return write_colour_folder(tmp_path_factory.mktemp("colour_pngs"))


@pytest.fixture(scope="module")
def colour_run(colour_folder, tmp_path_factory) -> Path:
    """A run folder: the compact level-conditioned model (8 channels, L = 3) at 3 x 32 x 32, two steps, a preview."""
    from ncsn_core.cli import main
    run = tmp_path_factory.mktemp("colour_run") / "run"
    sets = ["data.channels=3", "data.image_size=32", "data.holdout=0", "model.channels=[8,8,8]",
            "noise.num_classes=3", "sample.n_steps_each=2", "train.n_preview=4"]
    assert main(["train", "--preset", "mnist-cpu-levels", "--dataset", "folder", "--data-root", str(colour_folder),
                 "--run-dir", str(run), "--n-iters", "2", "--batch-size", "4", "--save-every", "2",
                 "--preview-every", "2", "--log-every", "1", "--quiet", "--json", "--device", "cpu",
                 *[a for s in sets for a in ("--set", s)]]) == 0
    return run


def rgb(q: QImage) -> np.ndarray:
    """A QImage's pixels as (H, W, 3) uint8 RGB."""
    q = q.convertToFormat(QImage.Format.Format_RGB888)
    a = np.frombuffer(q.constBits(), np.uint8).reshape(q.height(), q.bytesPerLine())
    return a[:, :q.width() * 3].reshape(q.height(), q.width(), 3).copy()


def painted_grid(grid) -> np.ndarray:
    """What an ImageGridView's ImageItem paints (its rendered QImage, mosaic pixels), as (H, W, 3) uint8."""
    grid._flush()
    grid.image.render()
    return rgb(grid.image.qimage)


def assert_shows(grid, images_chw: np.ndarray, nrow: int) -> None:
    """The grid shows image k of `images_chw` (B, 3, H, W) in [0, 1] in RGB at tile (k // nrow, k % nrow): in the
    QImage pyqtgraph renders (every pixel), and on the widget as grabbed (a few pixels per tile, where they land)."""
    rendered = painted_grid(grid).astype(int)
    shot = rgb(grid.grab().toImage()).astype(int)
    dpr = grid.devicePixelRatioF()
    b, c, h, w = images_chw.shape
    assert c == 3 and rendered.ndim == 3
    for k in range(b):
        r, q = divmod(k, nrow)
        top, left = grid.pad + r * (h + grid.pad), grid.pad + q * (w + grid.pad)
        want = np.round(np.clip(np.moveaxis(images_chw[k], 0, -1), 0, 1) * 255).astype(int)
        assert np.abs(rendered[top:top + h, left:left + w] - want).max() <= 1, f"tile {k} rendered"
        for y, x in ((h // 2, w // 4), (h // 2, 3 * w // 4), (h // 4, w // 2)):
            p = grid.mapFromScene(grid.view.mapViewToScene(QPointF(left + x + 0.5, top + y + 0.5)))
            seen = shot[int(p.y() * dpr), int(p.x() * dpr)]
            near = want[max(y - 1, 0):y + 2, max(x - 1, 0):x + 2].reshape(-1, 3)   # scaling may shift a pixel
            assert np.abs(near - seen).max(axis=1).min() <= 3, f"tile {k} on screen at ({y}, {x}): {seen}"


def test_sample_tab_paints_colour_samples_in_rgb(qtbot, colour_run):
    tab = SampleTab()
    qtbot.addWidget(tab)
    tab.show()
    try:
        tab.picker.set_path(str(colour_run))
        qtbot.waitUntil(lambda: tab.info is not None, timeout=30000)
        assert (tab.info.channels, tab.info.image_size) == (3, 32)
        set_text(qtbot, tab.form.n_edit, "4")
        set_text(qtbot, tab.form.steps_edit, "2")
        qtbot.mouseClick(tab.run_bar.run_button, Qt.MouseButton.LeftButton)
        wait_idle(qtbot, tab.controller)
        x = tab.result.x
        assert x.shape == (4, 3, 32, 32) and tab.labels is None          # no digit labels on colour samples
        assert_shows(tab.chains.view, x, nrow=tab.chains.view._tile[2])
        assert np.abs(x[:, 0] - x[:, 2]).mean() > 0.05                   # the samples are colour, and so shown
    finally:
        close_tab(qtbot, tab)


def test_inpaint_tab_paints_the_colour_image_and_its_completions(qtbot, colour_run, colour_folder, inpaint_tab):
    tab = inpaint_tab
    assert tab.load_checkpoint(str(colour_run))
    assert tab.open_image(str(colour_folder / "img_03.png"))             # green square at rows/cols 16..21
    assert tab.image().shape == (3, 32, 32)
    canvas = tab.editor.canvas
    shot = rgb(canvas.grab().toImage())
    dpr = canvas.devicePixelRatioF()

    def on_canvas(x, y):
        p = canvas.image_to_widget(x + 0.5, y + 0.5)
        return tuple(shot[int(p.y() * dpr), int(p.x() * dpr)])
    for (x, y), colour in (((3, 3), RED), ((28, 3), BLUE), ((18, 18), GREEN)):
        assert np.abs(np.subtract(on_canvas(x, y), colour)).max() <= 3, (x, y)

    tab._on_quick_mask("Bottom half")
    tab.form.n_edit.set_value(2)
    set_text(qtbot, tab.form.steps_edit, "2")
    with qtbot.waitSignal(tab.run_finished, timeout=60000):
        assert tab.run()
    tiles = [rgb(t) for t in tab.result.view._tiles]                  # original, occluded, 2 completions
    assert len(tiles) == 4 and all(t.shape == (32, 32, 3) for t in tiles)
    original = colour_image(3)
    assert np.abs(tiles[0].astype(int) - original).max() <= 1
    for completion in tiles[2:]:                                        # the known top half is pasted back
        assert np.abs(completion[:16].astype(int) - original[:16]).max() <= 1
    assert_shows(tab.live.chains.view, tab.results()["raw"], nrow=tab.live.chains.view._tile[2])
    tab.controller.wait(30000)


def test_train_tab_paints_the_colour_folder_and_previews_in_rgb(qtbot, colour_run, colour_folder):
    tab = TrainTab()
    qtbot.addWidget(tab)
    tab.show()
    tab.config_overrides = TINY_OVERRIDES
    tab.set_data_folder(str(colour_folder))
    tab.data.folder_format.setCurrentIndex(1)                            # "32 x 32 RGB"
    assert tab.config_dict()["data"]["channels"] == 3
    thumbs = np.stack([np.moveaxis(colour_image(i), -1, 0) for i in range(12)]) / 255.0
    assert_shows(tab.data.preview, thumbs, nrow=tab.data.preview._tile[2])

    assert tab.show_run_history(str(colour_run)) == 2                   # the run's preview PNG, in colour
    with Image.open(sorted((colour_run / "samples").glob("preview_*.png"))[-1]) as im:
        png = np.asarray(im.convert("RGB"))
    got = painted_grid(tab.plots.preview)
    assert got.shape[2] == 3 and np.abs(got[2:-2, 2:-2].astype(int) - png).max() <= 1

    # a live run on the colour folder: the previews it sends are painted in RGB
    set_text(qtbot, tab.form.fields["n_iters"], "2")
    set_text(qtbot, tab.form.fields["batch_size"], "4")
    set_text(qtbot, tab.form.fields["num_classes"], "3")
    set_text(qtbot, tab.form.fields["preview_every"], "2")
    previews = []
    tab.controller.event_emitted.connect(lambda ev: previews.append(ev) if type(ev).__name__ == "Preview" else None)
    assert tab.start()
    wait_idle(qtbot, tab.controller)
    assert previews and previews[-1].images.shape[1:] == (3, 32, 32)
    assert json.loads((Path(tab.run_dir) / "config.json").read_text())["data"]["channels"] == 3
    assert_shows(tab.plots.preview, previews[-1].images, nrow=jobs.grid_nrow(len(previews[-1].images)))
