"""The sampling ladder (SampleConfig.num_levels, sigma_begin, sigma_end): empty fields mean the model's own."""
from __future__ import annotations

from typing import Optional, Sequence

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFormLayout, QGroupBox, QWidget

from .number_edit import NumberEdit

TIP = ("Sample on another ladder than the one the model was trained on (a continuous-\u03c3 model takes any "
       "\u03c3 > 0). Empty = the model's own value.")


class LadderBox(QGroupBox):
    """Three optional fields; `values()` is a dict of SampleConfig keyword arguments (None = the model's).
    `set_model_ladder(sigmas)` shows the model's values as placeholders; `set_heun(on)` names the count for the
    sampler (Heun: sigma steps on Karras et al.'s schedule; Langevin and pc: geometric levels);
    `set_unavailable(why)` greys the box out with the reason (a level-conditioned model). `edited` on any change."""

    edited = Signal()

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__("Sampling ladder", parent)
        self.num_levels_edit = NumberEdit("num_levels", None, int, optional=True)   # ranges: SampleConfig's
        self.sigma_begin_edit = NumberEdit("sigma_begin", None, float, optional=True)
        self.sigma_end_edit = NumberEdit("sigma_end", None, float, optional=True)
        self.rows = QFormLayout(self)
        self.rows.addRow("Levels L", self.num_levels_edit)
        self.rows.addRow("\u03c3_begin (\u03c3\u2081)", self.sigma_begin_edit)
        self.rows.addRow("\u03c3_end", self.sigma_end_edit)
        for edit in self.edits():
            edit.textChanged.connect(self.edited)
        self._why: Optional[str] = None
        self._heun = False
        self.set_unavailable(None)

    def edits(self) -> Sequence[NumberEdit]:
        return self.num_levels_edit, self.sigma_begin_edit, self.sigma_end_edit

    def load(self, num_levels: Optional[int], sigma_begin: Optional[float], sigma_end: Optional[float]) -> None:
        for edit, v in zip(self.edits(), (num_levels, sigma_begin, sigma_end)):
            edit.set_value(v)

    def values(self) -> dict:
        """{num_levels, sigma_begin, sigma_end}; ValueError naming a field that is not a number."""
        return {"num_levels": self.num_levels_edit.value(), "sigma_begin": self.sigma_begin_edit.value(),
                "sigma_end": self.sigma_end_edit.value()}

    def set_model_ladder(self, sigmas: Sequence[float]) -> None:
        if sigmas:
            self.num_levels_edit.setPlaceholderText(f"model: {len(sigmas)}")
            self.sigma_begin_edit.setPlaceholderText(f"model: {sigmas[0]:.4g}")
            self.sigma_end_edit.setPlaceholderText(f"model: {sigmas[-1]:.4g}")

    def set_heun(self, on: bool) -> None:
        self._heun = on
        self.rows.labelForField(self.num_levels_edit).setText("\u03c3 steps N" if on else "Levels L")
        self._tips()

    def set_unavailable(self, why: Optional[str]) -> None:
        """None: editable; otherwise greyed out, with `why` (the engine's reason) as the tooltip."""
        self._why = why
        self.setEnabled(why is None)
        self._tips()

    def _tips(self) -> None:
        count = ("N: how many \u03c3 values the ODE visits, \u03c3_begin \u2192 \u03c3_end on Karras et al.'s "
                 "schedule, then a last step to \u03c3 = 0 (2N \u2212 1 network evaluations)" if self._heun else
                 "L: how many levels, geometric from \u03c3_begin to \u03c3_end")
        tip = f"Not available: {self._why}." if self._why else TIP
        self.setToolTip(tip)
        self.num_levels_edit.setToolTip(f"{count}. {tip}")
        self.sigma_begin_edit.setToolTip(f"\u03c3_begin: the largest \u03c3, where the chain starts. {tip}")
        self.sigma_end_edit.setToolTip(f"\u03c3_end: the smallest \u03c3 of the ladder. {tip}")
