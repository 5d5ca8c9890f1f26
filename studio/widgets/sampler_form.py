"""The sampler settings of annealed Langevin, bound to ncsn_core.config.SampleConfig: one form for the Sample,
Inpaint and Evaluate tabs. The engine validates the values; the form shows its message."""
from __future__ import annotations

from typing import Any, Optional, Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QGroupBox, QLabel, QWidget

from ncsn_core.config import INITS, ConfigError, SampleConfig, check_data_mean, step_size_warning

from .. import jobs
from .banner import MessageBanner
from .number_edit import NumberEdit

# the chain's start (SampleConfig.init, ncsn_core.sampling.initial_noise): value -> (label, explanation)
INIT_CHOICES = {
    "uniform": ("uniform", "x\u2080 ~ U[0, 1): uniform noise, the paper's start for its image sampler"),
    "gaussian": ("gaussian", "x\u2080 ~ N(0, \u03c3\u2081\u00b2 I): zero-mean Gaussian noise at the top level's scale"),
    "data-mean": ("data mean",
                  "x\u2080 ~ N(\u03bc, \u03c3\u2081\u00b2 I), \u03bc the training data's mean image: the mean of the "
                  "top level's perturbed data. A zero-mean start sits nearest the digits with the least ink and, when "
                  "\u03c3\u2081 is too small for the chain to mix between classes, over-produces them"),
}
KAPPA_TIP = ("Variance correction \u03ba: 0 = the paper's Alg. 1; 1 = the chain's stationary variance is exactly "
             "\u03c3_i\u00b2 for a Gaussian target; removes the extra ink of the paper's update")
STEP_LR_TIP = ("\u03b5 in Alg. 1: \u03b1_i = \u03b5\u00b7\u03c3_i\u00b2/\u03c3_L\u00b2, update x \u2190 x + "
               "\u03b1_i/2\u00b7s(x, \u03c3_i) + \u221a\u03b1_i\u00b7z. (The reference code's step_lr = 2e-5 is "
               "\u03b5 = 4e-5 here.)")
ALPHA = "\u03b1_i = \u03b5\u00b7\u03c3_i\u00b2/\u03c3_L\u00b2"


class SamplerForm(QGroupBox):
    """n, seed, \u03b5 (step_lr), T (n_steps_each), the chain's start, \u03ba, denoise, and EMA weights when `ema`.

    `load(sample, has_data_mean, has_ema)` fills it with a model's own SampleConfig; `sample_config()` is the
    SampleConfig it describes (or the engine's ConfigError); `settings(**run)` that config as one run's
    jobs.SampleSettings. Every edit ends in `config_changed(SampleConfig)` or `config_rejected(message)`.
    `set_ladder(sigmas)` shows \u03b1_1 \u2026 \u03b1_L of the ladder being run and warns when \u03b1_1 is too large."""

    config_changed = Signal(object)
    config_rejected = Signal(str)

    def __init__(self, title: str, n_label: str = "Samples n", n: Sequence[int] = (16, 1, 400), ema: bool = False,
                 parent: Optional[QWidget] = None):
        super().__init__(title, parent)
        d = SampleConfig()
        self._has_data_mean = False
        self._ladder: Sequence[float] = ()
        self._loading = False
        self.n_edit = NumberEdit("n", n[0], int, n[1], n[2])
        self.seed_edit = NumberEdit("seed", 0, int, 0, 2 ** 31 - 1)
        self.step_lr_edit = NumberEdit("step_lr", d.step_lr, float)    # no range here: SampleConfig checks it
        self.step_lr_edit.setToolTip(STEP_LR_TIP)
        self.steps_edit = NumberEdit("n_steps_each", d.n_steps_each, int)
        self.steps_edit.setToolTip("T = n_steps_each: Langevin steps per noise level")
        self.init_combo = QComboBox()
        for value in INITS:
            self.init_combo.addItem(INIT_CHOICES[value][0], value)
        self.kappa_spin = QDoubleSpinBox()
        self.kappa_spin.setRange(0.0, 1.0)
        self.kappa_spin.setDecimals(2)
        self.kappa_spin.setSingleStep(0.25)
        self.kappa_spin.setKeyboardTracking(False)
        self.kappa_spin.setToolTip(KAPPA_TIP)
        self.denoise_box = QCheckBox("Denoise the final samples (x + \u03c3_L\u00b2 s(x, \u03c3_L))")
        self.ema_box = QCheckBox("Use EMA weights when the checkpoint has them") if ema else None
        self.alpha_label = QLabel(ALPHA)
        self.alpha_label.setWordWrap(True)
        self.warning = MessageBanner(self)

        self.rows = QFormLayout(self)
        self.rows.addRow(n_label, self.n_edit)
        self.rows.addRow("Seed", self.seed_edit)
        self.rows.addRow("step_lr \u03b5", self.step_lr_edit)
        self.rows.addRow("T (steps per level)", self.steps_edit)
        self.rows.addRow("Start", self.init_combo)
        self.rows.addRow("Variance correction \u03ba", self.kappa_spin)
        self.rows.addRow(self.denoise_box)
        if self.ema_box is not None:
            self.ema_box.setChecked(True)
            self.rows.addRow(self.ema_box)
        self.rows.addRow(self.alpha_label)
        self.rows.addRow(self.warning)

        for edit in (self.n_edit, self.seed_edit, self.step_lr_edit, self.steps_edit):
            edit.textChanged.connect(self._on_edited)
        self.init_combo.currentIndexChanged.connect(self._on_edited)
        self.kappa_spin.valueChanged.connect(self._on_edited)
        self.denoise_box.toggled.connect(self._on_edited)
        self.load(d, has_data_mean=False)

    # --- the model's own settings in, a validated config out -----------------------------------
    def load(self, sample: SampleConfig, has_data_mean: bool, has_ema: bool = False) -> None:
        """Show a model's own sampler settings; 'data mean' is offered only when the model holds the mean image."""
        self._loading = True
        self._has_data_mean = has_data_mean
        self.step_lr_edit.set_value(sample.step_lr)
        self.steps_edit.set_value(sample.n_steps_each)
        self.denoise_box.setChecked(bool(sample.denoise))
        self.kappa_spin.setValue(float(sample.variance_correction))
        try:
            check_data_mean("data-mean", has_data_mean)
            why = None
        except ConfigError as e:
            why = str(e)
        item = self.init_combo.findData("data-mean")
        self.init_combo.model().item(item).setEnabled(why is None)
        for i in range(self.init_combo.count()):
            tip = INIT_CHOICES[self.init_combo.itemData(i)][1]
            self.init_combo.setItemData(i, f"Not available: {why}." if i == item and why else tip,
                                        Qt.ItemDataRole.ToolTipRole)
        self.init_combo.setCurrentIndex(max(0, self.init_combo.findData(sample.init)))
        if self.ema_box is not None:
            self.ema_box.setEnabled(has_ema)
        self._loading = False
        self._on_edited()

    def sample_config(self) -> SampleConfig:
        """The SampleConfig the form describes; ValueError (the engine's ConfigError) naming the bad value."""
        cfg = SampleConfig(step_lr=self.step_lr_edit.value(), n_steps_each=self.steps_edit.value(),
                           denoise=self.denoise_box.isChecked(), init=str(self.init_combo.currentData()),
                           variance_correction=self.kappa_spin.value())
        check_data_mean(cfg.init, self._has_data_mean)
        return cfg

    def settings(self, **run: Any) -> jobs.SampleSettings:
        """One run of these settings: n, seed, EMA from the form, the rest (checkpoint, levels, ...) from `run`."""
        use_ema = self.ema_box.isChecked() if self.ema_box is not None else True
        return jobs.SampleSettings.of(self.sample_config(), n=self.n_edit.value(), seed=self.seed_edit.value(),
                                      use_ema=use_ema, **run)

    def error(self) -> Optional[str]:
        """None when the form holds a valid run, else the message (the engine's for sampler values)."""
        try:
            self.settings()
        except ValueError as e:
            return str(e)
        return None

    def set_ladder(self, sigmas: Sequence[float]) -> None:
        """The ladder that will be run (sigma_1 first), for the alpha_i readout and the step-size warning."""
        self._ladder = tuple(sigmas)
        self._on_edited()

    # --- feedback ------------------------------------------------------------------------------
    def _on_edited(self, *_args) -> None:
        if self._loading:
            return
        tip = self.init_combo.itemData(self.init_combo.currentIndex(), Qt.ItemDataRole.ToolTipRole)
        self.init_combo.setToolTip(f"Where the chain starts (x\u2080). {tip}")
        err = self.error()
        cfg = None if err else self.sample_config()
        self._show_alpha(cfg)
        if err:
            self.config_rejected.emit(err)
        else:
            self.config_changed.emit(cfg)

    def _show_alpha(self, cfg: Optional[SampleConfig]) -> None:
        if cfg is None or not self._ladder:
            self.alpha_label.setText(ALPHA)
            self.warning.dismiss()
            return
        s1, sl = self._ladder[0], self._ladder[-1]
        self.alpha_label.setText(f"{ALPHA}:  \u03b1\u2081 = {cfg.step_lr * (s1 / sl) ** 2:.3g} (\u03c3\u2081 = "
                                 f"{s1:.3g}) \u2026 \u03b1_L = {cfg.step_lr:.3g} (\u03c3_L = {sl:.3g})")
        msg = step_size_warning(cfg.step_lr, s1, sl)
        if msg:
            self.warning.show_message(f"Step size too large: {msg}.", "warning")
        else:
            self.warning.dismiss()
