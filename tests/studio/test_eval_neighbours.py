"""Evaluate tab, memorisation check: after a real (tiny) evaluation the tab shows each of the first samples beside
its 5 nearest training images with their distances, the summary line, and Ctrl+S saves the grid with the JSON."""
import json

import numpy as np
import pytest
from PySide6.QtCore import Qt

from conftest import set_text, wait_idle
from studio.eval_tab import EvalTab
from studio.widgets.eval_neighbours import memorisation_summary


def test_evaluation_shows_samples_beside_their_nearest_training_images(qtbot, tiny_checkpoint, tmp_path):
    tab = EvalTab()
    qtbot.addWidget(tab)
    tab.show()
    tab.picker.set_path(tiny_checkpoint)
    qtbot.waitUntil(lambda: tab.info is not None, timeout=30000)
    assert tab.neighbours.grid.images is None                    # nothing before a run
    set_text(qtbot, tab.form.n_edit, "12")
    set_text(qtbot, tab.form.steps_edit, "1")
    set_text(qtbot, tab.batch_edit, "12")
    qtbot.mouseClick(tab.run_bar.run_button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, tab.controller, timeout=120000)
    result = tab.results.result
    assert result is not None and result["nn_n_train"] == 9000 and len(result["nn_distances"]) == 12

    grid = tab.neighbours.grid
    assert grid.images.shape == (10 * 6, 1, 28, 28)             # the first 10 samples, each | its 5 neighbours
    caps = grid.captions()
    assert caps[0] == "#1" and caps[6] == "#2" and caps[1:6] == [""] * 5   # the neighbours stay uncovered
    first_row = grid.distances[0]
    assert len(first_row) == 5 and first_row == sorted(first_row)           # nearest first
    assert first_row[0] == pytest.approx(result["nn_distances"][0], abs=1e-3)
    # the sample tile is the sample, at the stated distance from its neighbour tiles (8-bit PNG rounding aside)
    d = np.sqrt(((grid.images[1:6] - grid.images[0]) ** 2).sum(axis=(1, 2, 3)))
    assert np.allclose(d, first_row, atol=0.06)
    summary = tab.neighbours.summary.text()
    assert f"Nearest per row: {first_row[0]:.2f}," in summary
    assert "Possible copies" in summary and "for 1000 held-out reals" in summary and "n = 12 samples" in summary
    table = tab.results.table
    figures = {table.item(r, 0).text() for r in range(table.rowCount())}
    assert {"NN distance to training set (median)", "Possible copies (share)"} <= figures

    saved = tab.export_action(str(tmp_path / "eval.json"))
    data = json.loads(open(saved).read())
    grid_png = tmp_path / "eval-neighbours.png"                 # the grid is saved beside the JSON
    assert data["neighbours_png"] == str(grid_png) and grid_png.exists()


def test_summary_without_the_check_says_why():
    assert "not run" in memorisation_summary({"nn_distance_median": None})
    line = memorisation_summary({"nn_distance_median": 5.0, "nn_n_train": 9000, "n": 4,
                                 "nn_distance_median_real": None})
    assert "9000 training images" in line and "no unseen real images" in line
