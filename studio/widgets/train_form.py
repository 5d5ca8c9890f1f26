"""A preset and the training hyperparameters, bound to ncsn_core.config.Config: the engine checks the result."""
from __future__ import annotations

from typing import Dict, Optional

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QFormLayout, QGroupBox, QWidget

from ncsn_core.config import LR_SCHEDULES, PRECISIONS, PRESETS, Config, ConfigError, get_preset

from .number_edit import NumberEdit

TRAIN_KEYS = ("n_iters", "batch_size", "lr", "ema_rate", "save_every", "preview_every", "seed")
NOISE_KEYS = ("sigma_begin", "sigma_end", "num_classes")
LABELS = {"n_iters": "Iterations", "batch_size": "Batch size", "lr": "Learning rate (Adam)", "ema_rate": "EMA rate",
          "save_every": "Checkpoint every", "preview_every": "Preview every", "seed": "Seed",
          "sigma_begin": "\u03c3\u2081 (largest)", "sigma_end": "\u03c3_L (smallest)", "num_classes": "L (noise levels)"}


class TrainForm(QGroupBox):
    """The preset's config with the `train` and `noise` values of the form: `config_dict(data, overrides)` is the
    whole Config as a dict, checked by the engine (ValueError with its message); `changed()` after every edit."""

    changed = Signal()

    def __init__(self, cpu_has_amx: Optional[bool] = None, parent: Optional[QWidget] = None):
        """cpu_has_amx: whether bf16 pays on this CPU (the Precision tooltip says so; None: not known)."""
        super().__init__("Model and training", parent)
        self.preset_combo = QComboBox()
        for name in PRESETS:
            if name != "toy":
                self.preset_combo.addItem(name)
        self.fields: Dict[str, NumberEdit] = {
            "n_iters": NumberEdit("n_iters", 12000, int, 1, 10_000_000),
            "batch_size": NumberEdit("batch size", 64, int, 1, 4096),
            "lr": NumberEdit("lr", 1e-3, float, 0, 1, exclusive_min=True),
            "ema_rate": NumberEdit("EMA rate", 0.999, float, 0, 0.999999, optional=True, exclusive_min=True),
            "save_every": NumberEdit("save every", 500, int, 1),
            "preview_every": NumberEdit("preview every", 250, int, 0),
            "seed": NumberEdit("seed", 0, int, 0, 2 ** 31 - 1),
            "sigma_begin": NumberEdit("sigma_1", 1.0, float, 0, exclusive_min=True),
            "sigma_end": NumberEdit("sigma_L", 0.01, float, 0, exclusive_min=True),
            "num_classes": NumberEdit("L", 10, int, 1, 1000),
        }
        self.fields["ema_rate"].setPlaceholderText("empty = no EMA")
        self.fields["preview_every"].setToolTip("steps between preview samples; 0 = no previews")
        self.lr_schedule = QComboBox()
        self.lr_schedule.addItems(LR_SCHEDULES)
        self.lr_schedule.setToolTip("constant (the paper), or cosine: the rate falls to 0 over the iterations, or "
                                    "over the time limit if that ends first")
        self.precision = QComboBox()
        self.precision.addItems(PRECISIONS)
        self.precision.setToolTip(
            "fp32 (the paper), or bf16: the forward pass in bfloat16, weights and optimiser in fp32. Pays on GPUs "
            "and on CPUs with AMX (the paper's RefineNet trains about 1.9x as fast on an AMX Xeon), slower on other "
            "CPUs"
            + {True: ": this CPU has AMX.", False: ": this CPU has no AMX, so bf16 would be slower here.", None: "."}[
                cpu_has_amx])
        # not part of the config: a budget for this run (ncsn train --minutes); it ends with a checkpoint
        self.minutes = NumberEdit("time limit", None, float, 0, optional=True, exclusive_min=True)
        self.minutes.setPlaceholderText("empty = no limit")
        self.minutes.setToolTip("minutes of wall time; training then stops with a checkpoint (resume to go on)")
        rows = QFormLayout(self)
        rows.addRow("Preset", self.preset_combo)
        for key, w in self.fields.items():
            rows.addRow(LABELS[key], w)
            w.textChanged.connect(self.changed)
            if key == "n_iters":
                rows.addRow("Time limit (minutes)", self.minutes)
            if key == "lr":
                rows.addRow("Learning-rate schedule", self.lr_schedule)
            if key == "batch_size":
                rows.addRow("Precision", self.precision)
        self.lr_schedule.currentTextChanged.connect(self.changed)
        self.precision.currentTextChanged.connect(self.changed)
        self.minutes.textChanged.connect(self.changed)
        self.preset_combo.currentTextChanged.connect(self.apply_preset)

    def apply_preset(self, name: str) -> None:
        if self.preset_combo.currentText() != name:
            self.preset_combo.setCurrentText(name)  # comes back here through currentTextChanged
            return
        self.fill(get_preset(name).to_dict())

    def select_preset(self, name: str) -> None:
        """Show `name` as the preset without filling the form from it (a resumed run brings its own values)."""
        if name in [self.preset_combo.itemText(i) for i in range(self.preset_combo.count())]:
            self.preset_combo.blockSignals(True)
            self.preset_combo.setCurrentText(name)
            self.preset_combo.blockSignals(False)

    def fill(self, config: dict) -> None:
        """Show the `train` and `noise` values of a config (as a dict)."""
        for key in TRAIN_KEYS:
            self.fields[key].set_value(config["train"][key])
        for key in NOISE_KEYS:
            self.fields[key].set_value(config["noise"][key])
        self.lr_schedule.setCurrentText(config["train"].get("lr_schedule", "constant"))
        self.precision.setCurrentText(config["train"].get("precision", "fp32"))
        self.changed.emit()

    def config_dict(self, data: dict, overrides: Optional[Dict[str, dict]] = None) -> dict:
        """The preset with the form's values, `data` (DataConfig values) and `overrides` ({section: {key: value}},
        applied last); ValueError naming the first bad field (the engine's ConfigError for config values)."""
        self.minutes.value()  # ValueError naming the field when the time limit is not a positive number
        d = get_preset(self.preset_combo.currentText()).to_dict()
        d["model"]["channels"] = list(d["model"]["channels"])
        for key in TRAIN_KEYS:
            d["train"][key] = self.fields[key].value()
        for key in NOISE_KEYS:
            d["noise"][key] = self.fields[key].value()
        d["train"]["lr_schedule"] = self.lr_schedule.currentText()
        d["train"]["precision"] = self.precision.currentText()
        d["data"].update(data)
        for section, kw in (overrides or {}).items():
            d[section].update(kw)
        try:
            Config.from_dict(d)
        except (ConfigError, TypeError) as e:
            raise ValueError(str(e)) from e
        return d
