"""The figures of an evaluation: a table labelled with the sample count and sampler settings, the class
histogram of generated digits, and the DSM loss per noise level."""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import (QAbstractItemView, QHeaderView, QLabel, QSplitter, QTableWidget, QTableWidgetItem,
                               QVBoxLayout, QWidget)

from .loss_plot import palette_pens

# how each known figure is shown: key -> (label, explanation)
FIGURES = {
    "fid_classifier": ("FID (digit-classifier features)",
                       "Fr\u00e9chet distance between classifier features of generated digits and as many real "
                       "training digits, averaged over 5 draws of those; lower is better. Not comparable to "
                       "Inception FIDs in papers."),
    "fid_real_vs_real": ("FID real vs real (floor)",
                         "The same distance between two real sets of the same size, averaged over 5 draws: the noise "
                         "floor at this n."),
    "fid_ratio": ("FID / floor", "FID divided by the real-vs-real floor: 1 = as close as two real sets of this n."),
    "entropy": ("Class entropy (nats)", "Entropy of the predicted-digit histogram; uniform over 10 digits = 2.303."),
    "mean_confidence": ("Mean classifier confidence", "Average top-class probability of generated digits."),
    "nn_distance_median": ("NN distance to training set (median)",
                           "L2 distance (pixels in [0, 1]) from each sample to its nearest training image: the median "
                           "over samples. Far below the held-out reals' value would mean copying."),
    "nn_distance_median_real": ("NN distance, held-out reals (median)",
                                "The same distance for real images the model never trained on."),
    "nn_distance_median_train": ("NN distance, training images leave-one-out (median)",
                                 "Each of 1,000 training images to the nearest other one: where a fresh digit of the "
                                 "training distribution sits (the held-out reals are harder digits and sit farther)."),
    "share_closer_than_real_p1": ("Possible copies (share)",
                                  "Share of samples closer to a training image than 99 % of held-out real images are; "
                                  "about 0.01 if samples sit like unseen reals."),
    "inception_score": ("Inception score", ""),
    "fid": ("FID", ""),
}


def find_key(d: Dict[str, Any], *names: str) -> Optional[str]:
    """The first key of d that equals one of `names` or contains it (case-insensitive, '_' = ' ')."""
    norm = {k: k.lower().replace(" ", "_") for k in d}
    for n in names:
        for k, v in norm.items():
            if v == n:
                return k
    for n in names:
        for k, v in norm.items():
            if n in v:
                return k
    return None


def histogram_of(result: Dict[str, Any]) -> Optional[np.ndarray]:
    k = find_key(result, "class_histogram", "histogram", "class_counts")
    if k is None:
        return None
    h = result[k]
    if isinstance(h, dict):
        h = h.get("counts", h.get("fraction", [h.get(str(i), h.get(i, 0)) for i in range(10)]))
    try:
        arr = np.asarray(h, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        return None
    return arr if arr.size else None


def per_level_of(result: Dict[str, Any]) -> Optional[np.ndarray]:
    k = find_key(result, "dsm_loss_per_level", "dsm_per_level", "loss_per_level", "dsm_loss", "loss_per_sigma")
    if k is None:
        return None
    v = result[k]
    if isinstance(v, dict):
        v = v.get("loss", v.get("values", v.get("per_level")))
    try:
        arr = np.asarray(v, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        return None
    return arr if arr.size > 1 else None


def sampler_caption(result: Dict[str, Any], n: int) -> str:
    """One line naming n and the sampler, for every figure: evaluate()'s `label`, else n, the sampler's own
    `description` (ncsn_core.sampling.describe), the weights and the seed."""
    if isinstance(result.get("label"), str) and result["label"]:
        return result["label"]
    k = find_key(result, "sampler", "sampler_settings", "settings")
    s = result.get(k, {}) if k else {}
    s = s if isinstance(s, dict) else {}
    get = lambda name, default=None: s.get(name, result.get(name, default))  # noqa: E731
    parts = [f"n = {get('n', result.get('n_samples', n))} samples"]
    if get("description"):
        parts.append(str(get("description")))
    if get("use_ema", get("ema")) is not None:
        parts.append("EMA weights" if get("use_ema", get("ema")) else "raw weights")
    if get("seed") is not None:
        parts.append(f"seed {get('seed')}")
    return ", ".join(parts)


def _fmt(v: Any) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.4g}"
    if isinstance(v, (list, tuple)) and len(v) > 6:
        return f"[{', '.join(_fmt(x) for x in v[:6])}, \u2026] ({len(v)} values)"
    if isinstance(v, dict):
        return ", ".join(f"{k}={_fmt(x)}" for k, x in list(v.items())[:8])
    return str(v)


class EvalResults(QWidget):
    """`show_result(result)` fills the caption, the table and both plots from an evaluate() result."""

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.result: Optional[Dict[str, Any]] = None
        self.caption = QLabel("No evaluation yet.")
        self.caption.setWordWrap(True)
        f = self.caption.font()
        f.setBold(True)
        self.caption.setFont(f)
        self.table = QTableWidget(0, 2)
        self.table.setHorizontalHeaderLabels(["Figure", "Value"])
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.hist_plot = pg.PlotWidget()
        self.hist_plot.setTitle("Class histogram of generated digits")
        self.hist_plot.setLabel("bottom", "digit (classifier label)")
        self.hist_plot.setLabel("left", "fraction of samples")
        self.hist_plot.getAxis("bottom").setTicks([[(i, str(i)) for i in range(10)]])
        self.hist_plot.getAxis("left").enableAutoSIPrefix(False)
        self.hist_bars = pg.BarGraphItem(x=np.arange(10), height=np.zeros(10), width=0.7)
        self.hist_plot.addItem(self.hist_bars)
        self.uniform_line = pg.InfiniteLine(pos=0.1, angle=0, movable=False, label="uniform (0.1)",
                                            labelOpts={"position": 0.99, "anchors": [(1, 1), (1, 1)],
                                                       "fill": pg.mkBrush(128, 128, 128, 60)})
        self.hist_plot.addItem(self.uniform_line)
        self.level_plot = pg.PlotWidget()
        self.level_plot.setTitle("DSM loss per noise level (held-out data)")
        self.level_plot.setLabel("bottom", "noise level i (1 = largest \u03c3)")
        self.level_plot.setLabel("left", "loss")
        self.level_plot.getAxis("left").enableAutoSIPrefix(False)
        self.level_curve = self.level_plot.plot([], [], symbol="o", symbolSize=6)
        self.apply_palette()
        plots = QSplitter(Qt.Orientation.Horizontal)
        plots.addWidget(self.hist_plot)
        plots.addWidget(self.level_plot)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.table)
        split.addWidget(plots)
        split.setSizes([260, 420])
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.caption)
        lay.addWidget(split, 1)

    def apply_palette(self) -> None:
        fg, hi, faint = palette_pens(self)
        base = self.palette().color(QPalette.ColorRole.Base)
        for pw in (self.hist_plot, self.level_plot):
            pw.setBackground(base)
            pi = pw.getPlotItem()
            for axis in ("left", "bottom"):
                pi.getAxis(axis).setPen(fg)
                pi.getAxis(axis).setTextPen(fg)
            pi.titleLabel.setText(pi.titleLabel.text, color=fg.name())
        self.hist_bars.setOpts(brush=pg.mkBrush(hi), pen=pg.mkPen(fg))
        self.uniform_line.setPen(pg.mkPen(faint, style=Qt.PenStyle.DashLine))
        self.uniform_line.label.setColor(fg)
        self.level_curve.setPen(pg.mkPen(hi, width=2))
        self.level_curve.setSymbolBrush(pg.mkBrush(hi))

    def changeEvent(self, event) -> None:
        super().changeEvent(event)
        if event.type() == event.Type.PaletteChange and hasattr(self, "hist_bars"):
            self.apply_palette()

    def show_result(self, result: Dict[str, Any], n: int = 0) -> None:
        """Fill the table, histogram and per-level plot from an evaluate() result."""
        self.result = result
        cap = sampler_caption(result, n)
        self.caption.setText(f"Results for {cap}")
        rows: List[tuple] = []
        used = set()
        for key, (label, tip) in FIGURES.items():
            k = find_key(result, key)
            if k is not None and k not in used and not isinstance(result[k], (list, dict)):
                value, sd = _fmt(result[k]), result.get(f"{k}_sd")
                if isinstance(sd, float):  # a mean over draws: show its spread beside it
                    value = f"{value} \u00b1 {_fmt(sd)} (sd over {len(result.get(f'{k}_draws') or ())} draws)"
                    used.add(f"{k}_sd")
                rows.append((label, value, tip or k))
                used.add(k)
        hk = find_key(result, "class_histogram", "histogram", "class_counts")
        lk = find_key(result, "dsm_loss_per_level", "dsm_per_level", "loss_per_level", "dsm_loss", "loss_per_sigma")
        for k, v in result.items():
            if k in used or k in (hk, lk, "label", "warnings", "class_fractions", "sigmas", "nn_distances"):
                continue
            if isinstance(v, dict) and v.get("description"):  # the sampler: its own one-line description
                rows.append((k.replace("_", " "), str(v["description"]), _fmt(v)))
                continue
            rows.append((k.replace("_", " "), _fmt(v), k))
        self.table.setRowCount(len(rows))
        for r, (label, value, tip) in enumerate(rows):
            a, b = QTableWidgetItem(label), QTableWidgetItem(value)
            a.setToolTip(tip)
            b.setToolTip(f"{label}: {value}\n({cap})")
            self.table.setItem(r, 0, a)
            self.table.setItem(r, 1, b)
        hist = histogram_of(result)
        if hist is not None:
            frac = hist / hist.sum() if hist.sum() > 0 and hist.max() > 1 else hist
            self.hist_bars.setOpts(x=np.arange(len(frac)), height=frac)
            self.hist_plot.setTitle(f"Class histogram ({cap.split(',')[0]})")
            self.hist_plot.getPlotItem().titleLabel.setText(self.hist_plot.getPlotItem().titleLabel.text,
                                                             color=palette_pens(self)[0].name())
        per = per_level_of(result)
        if per is not None:
            self.level_curve.setData(np.arange(1, len(per) + 1), per)
