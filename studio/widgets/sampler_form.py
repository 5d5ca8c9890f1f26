"""The sampler settings, bound to ncsn_core.config.SampleConfig: one form for the Sample, Inpaint and Evaluate tabs.
Annealed Langevin (Alg. 1), predictor-corrector or the Heun ODE, each with only the fields it uses. The engine
validates the values; the form shows its message."""
from __future__ import annotations

from typing import Any, Optional, Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QGroupBox, QLabel, QWidget

from ncsn_core.config import (INITS, SAMPLERS, ConfigError, ModelConfig, NoiseConfig, SampleConfig, check_data_mean,
                              check_sampler, step_size_warning)

from .. import jobs
from .banner import MessageBanner
from .ladder_box import LadderBox
from .number_edit import NumberEdit
from .steps_edit import StepsEdit

# value -> (label, explanation) of SampleConfig.sampler and SampleConfig.init (ncsn_core.sampling)
SAMPLER_CHOICES = {
    "annealed_langevin": ("annealed Langevin (Alg. 1)",
                          "The paper's sampler: T Langevin steps at each level \u03c3\u2081 > \u2026 > \u03c3_L, step \u03b1_i = "
                          "\u03b5\u00b7\u03c3_i\u00b2/\u03c3_L\u00b2 (Song & Ermon 2019, Algorithm 1)"),
    "pc": ("predictor-corrector",
           "Song et al. 2021: at each level T Langevin corrector steps sized by the signal-to-noise ratio snr, then "
           "one reverse-diffusion predictor step to the next \u03c3 (the last one ends at \u03c3 = 0, no noise)"),
    "heun": ("Heun ODE",
             "The probability-flow ODE dx/d\u03c3 = \u2212\u03c3\u00b7s(x, \u03c3) by Heun's method on Karras et al.'s "
             "\u03c3 schedule (exponent \u03c1), down to \u03c3 = 0: deterministic after the start, 2N \u2212 1 "
             "network evaluations for N \u03c3 steps"),
}
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
GUIDANCE_TIP = ("Autoguidance (Karras et al. 2024): the score s_guide + w\u00b7(s \u2212 s_guide), the guide a weaker "
                "model of the same data that the checkpoint carries (`ncsn guide`). 1 = the model alone; larger w "
                "gives cleaner, more typical digits and, past about 2, less variety. Each step runs both networks.")
DG_TIP = ("Discriminator guidance (Kim et al. 2023): the score s + w\u00b7\u2207 log(d/(1\u2212d)), d a small network "
          "that the checkpoint carries (`ncsn discriminator`), trained to tell its training images from its own "
          "samples at each \u03c3; it nudges the chain toward what the samples lack. Where the training images "
          "have labels it has a class part too, which draws the digits in the data's class shares. 0 = off, 1 = "
          "the theory's weight. Applies below the exact score's \u03c3.")
EXACT_TIP = ("For \u03c3 above this value the score is the exact score of the model's own training images smoothed by "
             "\u03c3, in place of the network (and its guide): at large \u03c3 it spreads over many images and steers "
             "the chain to the data's class shares; the network draws the details below. Needs the training images "
             "on this machine. 0 = the network at every \u03c3.")
ALPHA = "\u03b1_i = \u03b5\u00b7\u03c3_i\u00b2/\u03c3_L\u00b2"
# the SampleConfig fields each sampler reads (init and the ladder: all of them)
USES = {"annealed_langevin": {"step_lr", "n_steps_each", "variance_correction", "denoise"},
        "pc": {"n_steps_each", "snr"}, "heun": {"rho", "churn"}}


def _offer(combo: QComboBox, choices: dict, why_not: dict) -> None:
    """Fill each item's tooltip from `choices`; items named in `why_not` are greyed out with the reason."""
    for i in range(combo.count()):
        value = combo.itemData(i)
        combo.model().item(i).setEnabled(value not in why_not)
        tip = f"Not available: {why_not[value]}." if value in why_not else choices[value][1]
        combo.setItemData(i, tip, Qt.ItemDataRole.ToolTipRole)


def _reason(check, *args) -> Optional[str]:
    try:
        check(*args)
    except ConfigError as e:
        return str(e)
    return None


class SamplerForm(QGroupBox):
    """n, seed, the sampler and its fields (\u03b5, T, \u03ba, denoise; T, snr; \u03c1), guidance, the exact
    large-\u03c3 score, the chain's start, the sampling ladder, and EMA weights when `ema`.

    `load(sample, has_data_mean, has_ema, model)` fills it with a model's own SampleConfig (`model`: its
    ModelConfig; level-conditioned when None, so Heun and another ladder are offered only for conditioning='sigma');
    `sample_config()` is the SampleConfig it describes (or the engine's ConfigError); `settings(**run)` that config
    as one run's jobs.SampleSettings. Every edit ends in `config_changed(SampleConfig)` or `config_rejected(message)`.
    `set_ladder(sigmas)` is the model's ladder being run (the levels checked), for the \u03b1_i readout, the step-size
    warning and the count of a per-level T. Fields a sampler does not read are hidden and keep the loaded values."""

    config_changed = Signal(object)
    config_rejected = Signal(str)

    def __init__(self, title: str, n_label: str = "Samples n", n: Sequence[int] = (16, 1, 400), ema: bool = False,
                 parent: Optional[QWidget] = None):
        super().__init__(title, parent)
        d = SampleConfig()
        self._loaded, self._model, self._has_data_mean, self._has_guide = d, ModelConfig(), False, False
        self._has_disc = False
        self._ladder: Sequence[float] = ()
        self._loading = False
        self.n_edit = NumberEdit("n", n[0], int, n[1], n[2])
        self.seed_edit = NumberEdit("seed", 0, int, 0, 2 ** 31 - 1)
        self.sampler_combo = self._combo(SAMPLERS, SAMPLER_CHOICES)
        self.step_lr_edit = NumberEdit("step_lr", d.step_lr, float)    # no range here: SampleConfig checks it
        self.step_lr_edit.setToolTip(STEP_LR_TIP)
        self.steps_edit = StepsEdit("n_steps_each", d.n_steps_each)
        self.snr_edit = NumberEdit("snr", d.snr, float)
        self.snr_edit.setToolTip("snr: the corrector's signal-to-noise ratio; its step is \u03b5 = 2\u00b7(snr\u00b7|z|"
                                 " / |s|)\u00b2 (Song et al. 2021, Alg. 5)")
        self.rho_edit = NumberEdit("rho", d.rho, float)
        self.rho_edit.setToolTip("\u03c1: the exponent of Karras et al.'s \u03c3 schedule (their Eq. 5); 7 spends "
                                 "more steps at small \u03c3")
        self.churn_edit = NumberEdit("churn", d.churn, float)
        self.churn_edit.setToolTip("S_churn (Karras et al. 2022, Alg. 2): noise raises \u03c3 before each step so the "
                                   "chain can correct the model's errors; 0 = the deterministic ODE")
        self.guidance_edit = NumberEdit("guidance", d.guidance, float)
        self.dg_edit = NumberEdit("dg_weight", d.dg_weight, float)
        self.exact_edit = NumberEdit("exact_above", d.exact_above, float)
        self.exact_edit.setToolTip(EXACT_TIP)
        self.init_combo = self._combo(INITS, INIT_CHOICES)
        self.kappa_spin = QDoubleSpinBox()
        self.kappa_spin.setRange(0.0, 1.0)
        self.kappa_spin.setDecimals(2)
        self.kappa_spin.setSingleStep(0.25)
        self.kappa_spin.setKeyboardTracking(False)
        self.kappa_spin.setToolTip(KAPPA_TIP)
        self.denoise_box = QCheckBox("Denoise the final samples")
        self.denoise_box.setToolTip("One last step x + \u03c3_L\u00b2 s(x, \u03c3_L) (Tweedie's formula) after the "
                                    "last level")
        self.ladder = LadderBox()
        self.ema_box = QCheckBox("Use EMA weights when the checkpoint has them") if ema else None
        self.alpha_label = QLabel(ALPHA)
        self.alpha_label.setWordWrap(True)
        self.warning = MessageBanner(self)

        self.rows = QFormLayout(self)
        self.rows.addRow(n_label, self.n_edit)
        self.rows.addRow("Seed", self.seed_edit)
        self.rows.addRow("Sampler", self.sampler_combo)
        self.rows.addRow("step_lr \u03b5", self.step_lr_edit)
        self.rows.addRow("T (steps per level)", self.steps_edit)
        self.rows.addRow("snr", self.snr_edit)
        self.rows.addRow("\u03c1 (rho)", self.rho_edit)
        self.rows.addRow("churn", self.churn_edit)
        self.rows.addRow("Guidance w", self.guidance_edit)
        self.rows.addRow("Discriminator w_DG", self.dg_edit)
        self.rows.addRow("Exact score above \u03c3", self.exact_edit)
        self.rows.addRow("Start", self.init_combo)
        self.rows.addRow("Variance correction \u03ba", self.kappa_spin)
        self.rows.addRow(self.denoise_box)
        self.rows.addRow(self.ladder)
        if self.ema_box is not None:
            self.ema_box.setChecked(True)
            self.rows.addRow(self.ema_box)
        self.rows.addRow(self.alpha_label)
        self.rows.addRow(self.warning)

        for edit in (self.n_edit, self.seed_edit, self.step_lr_edit, self.steps_edit, self.snr_edit, self.rho_edit,
                     self.churn_edit, self.guidance_edit, self.dg_edit, self.exact_edit):
            edit.textChanged.connect(self._on_edited)
        self.sampler_combo.currentIndexChanged.connect(self._on_edited)
        self.init_combo.currentIndexChanged.connect(self._on_edited)
        self.kappa_spin.valueChanged.connect(self._on_edited)
        self.denoise_box.toggled.connect(self._on_edited)
        self.ladder.edited.connect(self._on_edited)
        self.load(d, has_data_mean=False)

    @staticmethod
    def _combo(values: Sequence[str], choices: dict) -> QComboBox:
        combo = QComboBox()
        # the longest label must not widen the side panel (Inpaint's is 330 px): it is elided instead
        combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        combo.setMinimumContentsLength(8)
        for value in values:
            combo.addItem(choices[value][0], value)
        return combo

    # --- the model's own settings in, a validated config out -----------------------------------
    def load(self, sample: SampleConfig, has_data_mean: bool, has_ema: bool = False,
             model: Optional[ModelConfig] = None, has_guide: bool = False, has_discriminator: bool = False) -> None:
        """Show a model's own sampler settings; 'data mean' is offered only when the model holds the mean image,
        Heun and another ladder only when `model` is conditioned on a continuous sigma, the guidance weight only
        when the checkpoint carries a guide, the discriminator guidance weight only when it carries a discriminator."""
        self._loading = True
        self._loaded, self._model, self._has_data_mean = sample, model or ModelConfig(), has_data_mean
        self._has_guide = has_guide
        self.guidance_edit.set_value(sample.guidance if has_guide else 1.0)
        self.guidance_edit.setEnabled(has_guide)
        self.guidance_edit.setToolTip(GUIDANCE_TIP if has_guide else
                                      f"Not available: this checkpoint carries no guide model. {GUIDANCE_TIP}")
        self._has_disc = has_discriminator
        self.dg_edit.set_value(sample.dg_weight if has_discriminator else 0.0)
        self.dg_edit.setEnabled(has_discriminator)
        self.dg_edit.setToolTip(DG_TIP if has_discriminator else
                                f"Not available: this checkpoint carries no discriminator. {DG_TIP}")
        _offer(self.sampler_combo, SAMPLER_CHOICES,
               {k: why for k in ("heun",) if (why := _reason(check_sampler, SampleConfig(sampler=k), self._model))})
        _offer(self.init_combo, INIT_CHOICES,
               {k: why for k in ("data-mean",) if (why := _reason(check_data_mean, k, has_data_mean))})
        self.ladder.set_unavailable(_reason(check_sampler, SampleConfig(num_levels=1), self._model))
        self.sampler_combo.setCurrentIndex(max(0, self.sampler_combo.findData(sample.sampler)))
        self.init_combo.setCurrentIndex(max(0, self.init_combo.findData(sample.init)))
        self.step_lr_edit.set_value(sample.step_lr)
        self.steps_edit.set_value(sample.n_steps_each)
        self.snr_edit.set_value(sample.snr)
        self.rho_edit.set_value(sample.rho)
        self.churn_edit.set_value(sample.churn)
        self.exact_edit.set_value(sample.exact_above)
        self.denoise_box.setChecked(bool(sample.denoise))
        self.kappa_spin.setValue(float(sample.variance_correction))
        self.ladder.load(sample.num_levels, sample.sigma_begin, sample.sigma_end)
        if self.ema_box is not None:
            self.ema_box.setEnabled(has_ema)
        self._loading = False
        self._on_edited()

    def sampler(self) -> str:
        return str(self.sampler_combo.currentData())

    def sample_config(self) -> SampleConfig:
        """The SampleConfig the form describes; ValueError (the engine's ConfigError) naming the bad value.
        A field the chosen sampler does not read keeps the loaded value."""
        uses = USES[self.sampler()]
        read = {"step_lr": self.step_lr_edit.value, "n_steps_each": self.steps_edit.value,
                "snr": self.snr_edit.value, "rho": self.rho_edit.value, "churn": self.churn_edit.value,
                "denoise": self.denoise_box.isChecked,
                "variance_correction": self.kappa_spin.value}
        given = {k: (f() if k in uses else getattr(self._loaded, k)) for k, f in read.items()}
        cfg = SampleConfig(sampler=self.sampler(), init=str(self.init_combo.currentData()), **given,
                           guidance=self.guidance_edit.value() if self._has_guide else 1.0,
                           dg_weight=self.dg_edit.value() if self._has_disc else 0.0,
                           exact_above=self.exact_edit.value(), precision=self._loaded.precision,
                           **self.ladder.values())
        check_sampler(cfg, self._model)
        check_data_mean(cfg.init, self._has_data_mean)
        if self._ladder:
            top, bottom = cfg.sigma_begin or self._ladder[0], cfg.sigma_end or self._ladder[-1]
            L = cfg.num_levels or len(self._ladder)
            if cfg.custom_ladder():
                NoiseConfig(top, bottom, L)  # a descending ladder, in the engine's words
            if cfg.sampler != "heun":
                cfg.steps_per_level(L)
        return cfg

    def settings(self, **run: Any) -> jobs.SampleSettings:
        """One run of these settings: n, seed, EMA from the form, the rest (checkpoint, levels, ...) from `run`."""
        use_ema = self.ema_box.isChecked() if self.ema_box is not None else True
        return jobs.SampleSettings(n=self.n_edit.value(), seed=self.seed_edit.value(), use_ema=use_ema,
                                   sample=self.sample_config(), **run)

    def error(self) -> Optional[str]:
        """None when the form holds a valid run, else the message (the engine's for sampler values)."""
        try:
            self.settings()
        except ValueError as e:
            return str(e)
        return None

    def set_ladder(self, sigmas: Sequence[float]) -> None:
        """The model's ladder that will be run (sigma_1 first): the readout, the warning and a per-level T's count."""
        self._ladder = tuple(sigmas)
        self.ladder.set_model_ladder(self._ladder)
        self._on_edited()

    # --- feedback ------------------------------------------------------------------------------
    def _on_edited(self, *_args) -> None:
        if self._loading:
            return
        self._show_fields(self.sampler())
        err = self.error()
        cfg = None if err else self.sample_config()
        self._show_alpha(cfg)
        if err:
            self.config_rejected.emit(err)
        else:
            self.config_changed.emit(cfg)

    def _show_fields(self, sampler: str) -> None:
        uses = USES[sampler]
        for name, w in (("step_lr", self.step_lr_edit), ("n_steps_each", self.steps_edit), ("snr", self.snr_edit),
                        ("rho", self.rho_edit), ("churn", self.churn_edit), ("variance_correction", self.kappa_spin),
                        ("denoise", self.denoise_box), ("step_lr", self.alpha_label)):
            self.rows.setRowVisible(w, name in uses)
        self.rows.labelForField(self.steps_edit).setText("Corrector steps T" if sampler == "pc" else
                                                         "T (steps per level)")
        self.steps_edit.setToolTip(("T: Langevin corrector steps per level, before its predictor step" if sampler == "pc"
                                    else "T = n_steps_each: Langevin steps per noise level") +
                                   "; one number, or one per level separated by commas (5,5,10,20)")
        self.ladder.set_heun(sampler == "heun")
        for combo, choices in ((self.sampler_combo, SAMPLER_CHOICES), (self.init_combo, INIT_CHOICES)):
            tip = combo.itemData(combo.currentIndex(), Qt.ItemDataRole.ToolTipRole)
            combo.setToolTip(("Where the chain starts (x\u2080). " if combo is self.init_combo else "") + str(tip))

    def _show_alpha(self, cfg: Optional[SampleConfig]) -> None:
        if cfg is None or not self._ladder or cfg.sampler != "annealed_langevin":
            self.alpha_label.setText(ALPHA)
            self.warning.dismiss()
            return
        s1, sl = cfg.sigma_begin or self._ladder[0], cfg.sigma_end or self._ladder[-1]
        self.alpha_label.setText(f"{ALPHA}:  \u03b1\u2081 = {cfg.step_lr * (s1 / sl) ** 2:.3g} (\u03c3\u2081 = "
                                 f"{s1:.3g}) \u2026 \u03b1_L = {cfg.step_lr:.3g} (\u03c3_L = {sl:.3g})")
        msg = step_size_warning(cfg.step_lr, s1, sl)
        if msg:
            self.warning.show_message(f"Step size too large: {msg}.", "warning")
        else:
            self.warning.dismiss()
