"""The memorisation check of an evaluation: the first samples, each beside its nearest training images (the
paper's nearest-neighbour figure), with the distances and one line comparing them with held-out real images."""
from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from .image_grid import ImageGridView


def memorisation_summary(result: Dict[str, Any]) -> str:
    """One line from evaluate()'s nn_* figures: samples' median distance to the training set beside held-out
    reals', and how many samples sit closer than the reals' 1st percentile (possible copies)."""
    med = result.get("nn_distance_median")
    if med is None:
        return "Memorisation check not run: the training images could not be read (see the warning)."
    n = result.get("n", len(result.get("nn_distances") or []))
    text = (f"Median L2 distance to the nearest of {result['nn_n_train']} training images: {med:.2f} for "
            f"n = {n} samples")
    if result.get("nn_distance_median_real") is None:
        return text + "; no unseen real images to compare with."
    share = result["share_closer_than_real_p1"]
    loo = result.get("nn_distance_median_train")
    text += "" if loo is None else f", {loo:.2f} for training images to the other training images"
    return (text + f", {result['nn_distance_median_real']:.2f} for {result['nn_n_real']} held-out reals. "
                   f"Possible copies (closer than 99 % of the held-out reals, < {result['nn_distance_p1_real']:.2f}): "
                   f"{round(share * n)} of {n}; about 1 % if samples sit like unseen images.")


class _NeighbourGrid(ImageGridView):
    """The grid with row numbers on the samples only (captions over the neighbours would hide the digits to
    compare); hovering a tile names it and its distance."""

    distances: list = []

    def _on_mouse_moved(self, pos) -> None:
        super()._on_mouse_moved(pos)
        k, cols = self.hovered_index, 1 + len(self.distances[0]) if self.distances else 0
        if k is not None and cols:
            r, q = divmod(k, cols)
            self.setToolTip(f"Sample {r + 1}" if q == 0 else
                            f"Training image nearest #{q} to sample {r + 1}: L2 distance {self.distances[r][q - 1]:.3f}")


class NeighboursView(QWidget):
    """`show_neighbours(rows, result)`: a jobs.NeighbourRows grid (sample | its k nearest training images; the
    distances in the tooltips and, per row's nearest, in the summary line under it)."""

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        title = QLabel("Nearest training images")
        f = title.font()
        f.setBold(True)
        title.setFont(f)
        self.grid = _NeighbourGrid()
        self.grid.set_placeholder("Run an evaluation to see each sample beside its nearest training images")
        title.setToolTip("The memorisation check: does the model copy its training images?")
        self.summary = QLabel("Each row: a sample, then its 5 nearest training images by L2 distance in pixel "
                              "space, nearest first. The first samples, not chosen.")
        self.summary.setWordWrap(True)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(title)
        lay.addWidget(self.grid, 1)
        lay.addWidget(self.summary)

    def show_neighbours(self, rows, result: Dict[str, Any]) -> None:
        if rows is None:
            self.grid.clear()
        else:
            self.grid.distances = rows.distances
            captions = [f"#{q // rows.nrow + 1}" if q % rows.nrow == 0 else "" for q in range(len(rows.images))]
            self.grid.set_images(np.asarray(rows.images), nrow=rows.nrow, captions=captions, immediate=True)
        self.summary.setText(memorisation_summary(result) + ("" if rows is None else " Nearest per row: " + ", ".join(
            f"{d[0]:.2f}" for d in rows.distances) + "."))
