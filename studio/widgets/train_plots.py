"""A training run as it goes: the DSM loss, the loss per noise level and the newest preview samples."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QSplitter, QVBoxLayout, QWidget

from .. import jobs
from .image_grid import ImageGridView
from .level_loss import LevelLossPlot
from .loss_plot import LossPlot


class TrainPlots(QSplitter):
    """Feed it the run's events (`add_step`: TrainStep, `add_preview`: Preview), or a run folder's history
    (`show_history`); a resumed run continues the curves where its history ends."""

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(Qt.Orientation.Vertical, parent)
        self.time_offset = 0.0  # wall time of the history shown, so that a resumed run's time axis continues
        self.loss_plot = LossPlot(title="DSM loss (raw faint, smoothed bold)")
        self.level_plot = LevelLossPlot()
        self.loss_plot.beta_changed.connect(self.level_plot.set_beta)
        self.preview = ImageGridView()
        self.preview.set_placeholder("Preview samples appear here during training")
        self.preview_label = QLabel("Preview samples (EMA weights)")
        pv = QWidget()
        pvl = QVBoxLayout(pv)
        pvl.setContentsMargins(0, 0, 0, 0)
        pvl.addWidget(self.preview_label)
        pvl.addWidget(self.preview, 1)
        bottom = QSplitter(Qt.Orientation.Horizontal)
        bottom.addWidget(self.level_plot)
        bottom.addWidget(pv)
        bottom.setSizes([500, 300])
        self.addWidget(self.loss_plot)
        self.addWidget(bottom)
        self.setSizes([400, 300])

    def clear(self) -> None:
        self.loss_plot.clear()
        self.preview.clear()
        self.level_plot.set_sigmas([])
        self.time_offset = 0.0

    def start(self, sigmas: Sequence[float], resume: bool) -> None:
        """A run begins on this ladder; a resumed run keeps the per-level history it showed."""
        if not resume or not self.level_plot.curves:
            self.level_plot.set_sigmas(sigmas)

    def add_step(self, ev) -> None:
        self.loss_plot.append(ev.step, self.time_offset + ev.elapsed_s, ev.loss)
        self.level_plot.append(ev.step, ev.loss_per_sigma)

    def add_preview(self, ev) -> None:
        imgs = np.asarray(ev.images)
        self.preview.set_images(imgs, nrow=jobs.grid_nrow(len(imgs)))
        self.preview_label.setText(f"Preview samples at step {ev.step:,} (EMA weights, few Langevin steps)")

    def show_history(self, run_dir: str) -> Tuple[List[dict], Optional[int]]:
        """Fill the plots from a run folder's metrics.jsonl and its newest preview PNG. Returns the metrics records
        and the run's n_iters (None when its config cannot be read)."""
        recs = jobs.read_metrics(run_dir)
        try:
            cfg = json.loads((Path(run_dir) / "config.json").read_text())
            sig, n_iters = list(jobs.config_sigmas(cfg)), int(cfg["train"]["n_iters"])
        except (OSError, ValueError, KeyError):
            sig, n_iters = [math.nan] * (len(recs[0].get("loss_per_sigma") or []) if recs else 0), None
        t0 = recs[0].get("time", 0.0) if recs else 0.0
        steps = [r["step"] for r in recs]
        times = [float(r.get("time", t0)) - t0 for r in recs]
        self.loss_plot.set_history(steps, times, [r["loss"] for r in recs])
        self.level_plot.set_sigmas(sig)
        rows = [r.get("loss_per_sigma") or [None] * len(sig) for r in recs]
        self.level_plot.set_history(steps, [[math.nan if v is None else v for v in row] for row in rows])
        self.time_offset = times[-1] if times else 0.0
        previews = sorted((Path(run_dir) / "samples").glob("preview_*.png"))
        if previews:
            self.show_preview_png(previews[-1])
        return recs, n_iters

    def show_preview_png(self, path) -> None:
        """Show a run folder's samples/preview_<step>.png (as the CLI and the Train tab write them)."""
        from PIL import Image
        with Image.open(path) as im:
            a = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
        self.preview.set_images(np.moveaxis(a, -1, 0)[None], nrow=1, immediate=True)
        self.preview_label.setText(f"Preview samples at step {int(Path(path).stem.split('_')[1]):,} (EMA weights)")
