"""The chain as it runs: the current images of every chain, or the model's denoised estimate of them, a timeline of
end-of-level snapshots to scrub back through, and a replay of the levels (for the Heun ODE: of the sigma steps)."""
from __future__ import annotations

from typing import List, NamedTuple, Optional, Sequence

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (QButtonGroup, QComboBox, QHBoxLayout, QLabel, QPushButton, QSlider, QToolButton,
                               QVBoxLayout, QWidget)

from .. import settings
from .image_grid import ImageGridView

SPEEDS = [0.5, 1.0, 2.0, 5.0]  # snapshots (levels, or sigma steps) per second
LEVEL_TIP = "i/L: the current noise level; \u03c3_i its noise scale; \u03b1_i its Langevin step"
TIPS = {"annealed_langevin": LEVEL_TIP,
        "pc": "i/L: the current noise level; \u03c3_i its noise scale; steps 1..T are Langevin corrector steps (their "
              "step size), step T+1 the predictor step to the next level (its \u03c3_i\u00b2 \u2212 \u03c3_i+1\u00b2)",
        "heun": "n/N: the current \u03c3 step of the ODE, from \u03c3 to the next \u03c3 of the schedule (0 after the "
                "last); no noise is added after the start unless churn is on (Karras et al.'s Alg. 2)"}


SHOWS = {"x": "x", "denoised": "denoised", "both": "both"}  # what the view shows -> its button
SHOW_TIP = ("x: each chain's current sample. denoised: the model's estimate of the clean image behind it, "
            "x + \u03c3\u00b2 s(x, \u03c3) (Tweedie's formula), from the score the step already computed, so it "
            "costs nothing; for a Langevin step it is the estimate for the x the step started from. both: each "
            "chain's x (left) beside its estimate (right).")


def _speed_text(speed: float, unit: str) -> str:
    return f"{speed:g} {unit}{'' if speed == 1 else 's'}/s"


class Frame(NamedTuple):
    """One picture of the chains: its label, x (B, C, H, W), the model's denoised estimate (None if the state had
    none), the sigma that estimate belongs to (LangevinState.denoised_sigma) and whether that sigma is the Heun
    step's sigma raised by churn noise rather than the state's own."""
    label: str
    x: np.ndarray
    denoised: Optional[np.ndarray] = None
    sigma: float = float("nan")
    churned: bool = False


def side_by_side(x: np.ndarray, denoised: np.ndarray, line: float = 0.4) -> np.ndarray:
    """(B, C, H, W) twice -> (B, C, H + 2, 2W + 3): each chain's x left of its estimate, the pair boxed by a grey
    line (value `line`) so that it reads as one tile among the others on a black background."""
    b, c, h, w = x.shape
    out = np.full((b, c, h + 2, 2 * w + 3), line, np.float32)
    out[..., 1:-1, 1:w + 1] = x
    out[..., 1:-1, w + 2:-1] = denoised
    return out


class ChainView(QWidget):
    """Feed it a sampler's states (`add_state`: LangevinState with x and denoised numpy (B, C, H, W) arrays) and, at
    the end, the final images (`finish`); `caption` names the frame shown. `start(model_levels, sampler)` says how to
    read the states: level by level for the Langevin samplers, sigma step by sigma step for "heun" (one state per
    step). `snapshots` holds a Frame at the end of each level and then the final images; while a chain runs, the
    timeline's last position is the live frame and the view follows it unless the user scrubbed back. The show
    buttons pick x, the denoised estimate or both (`set_show`; remembered under `settings_key`). `level_label`
    describes the newest state; `level_finished(level, sigma, x)` marks each level's end (its Frame is then
    `snapshots[-1]`); `show_changed(mode)` follows the show buttons.
    """

    level_finished = Signal(int, float, object)
    show_changed = Signal(str)

    def __init__(self, placeholder: str, settings_key: Optional[str] = None, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.snapshots: List[Frame] = []
        self.latest: Optional[Frame] = None
        self.levels_seen: List[int] = []
        self._model_levels: Optional[Sequence[int]] = None
        self._final_captions: Optional[List[str]] = None
        self._captions_note = ""
        self._sampler = "annealed_langevin"

        self.level_label = QLabel("level \u2013/\u2013")
        font = self.level_label.font()
        font.setPointSizeF(font.pointSizeF() * 1.15)
        font.setBold(True)
        self.level_label.setFont(font)
        self.level_label.setWordWrap(True)  # a narrow column (Inpaint) must not widen the window
        self.level_label.setToolTip(LEVEL_TIP)
        self.view = ImageGridView()
        self.view.set_placeholder(placeholder)
        self.caption = QLabel(" ")
        self.caption.setWordWrap(True)  # the denoised view's caption is long; a narrow column must not widen
        self._settings_key = settings_key
        show = str(settings.value(settings_key, "x")) if settings_key else "x"
        self.show_buttons = {}
        self._show_group = QButtonGroup(self)
        for key, text in SHOWS.items():
            b = self.show_buttons[key] = QToolButton()
            b.setText(text)
            b.setCheckable(True)
            b.setToolTip(SHOW_TIP)
            self._show_group.addButton(b)
        self.show_buttons[show if show in SHOWS else "x"].setChecked(True)
        self.timeline = QSlider(Qt.Orientation.Horizontal)
        self.timeline.setRange(0, 0)
        self.timeline.setToolTip("Scrub through the end-of-level snapshots of the chain")
        self.play_button = QPushButton("\u25b6 Replay")
        self.play_button.setCheckable(True)
        self.play_button.setEnabled(False)
        self.speed_combo = QComboBox()
        for speed in SPEEDS:
            self.speed_combo.addItem(_speed_text(speed, "level"))
        self.speed_combo.setCurrentIndex(2)
        self.fit_button = QPushButton("Fit")
        self.fit_button.setToolTip("Reset the zoom (or double-click the image)")

        row = QHBoxLayout()
        row.addWidget(QLabel("Timeline"))
        row.addWidget(self.timeline, 1)
        row.addWidget(self.play_button)
        row.addWidget(self.speed_combo)
        row.addWidget(self.fit_button)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.level_label)
        lay.addWidget(self.view, 1)
        cap = QHBoxLayout()
        cap.addWidget(self.caption, 1)
        cap.addWidget(QLabel("Show"))
        for b in self.show_buttons.values():
            cap.addWidget(b)
        lay.addLayout(cap)
        lay.addLayout(row)

        self._play_timer = QTimer(self)
        self._play_timer.timeout.connect(self._on_play_tick)
        self.timeline.valueChanged.connect(self._show_position)
        self.play_button.toggled.connect(self._on_play)
        self.speed_combo.currentIndexChanged.connect(self._on_speed)
        self.fit_button.clicked.connect(self.view.fit)
        self._show_group.buttonClicked.connect(self._on_show)

    # --- what is shown -------------------------------------------------------------------------
    def show_mode(self) -> str:
        """"x", "denoised" or "both"."""
        return next(k for k, b in self.show_buttons.items() if b.isChecked())

    def set_show(self, mode: str) -> None:
        self.show_buttons[mode].setChecked(True)
        self._on_show()

    def _on_show(self, *_args) -> None:
        if self._settings_key:
            settings.set_value(self._settings_key, self.show_mode())
        self._show_position(self.timeline.value(), immediate=True)
        self.show_changed.emit(self.show_mode())

    # --- a run ---------------------------------------------------------------------------------
    def start(self, model_levels: Optional[Sequence[int]] = None, sampler: str = "annealed_langevin") -> None:
        """Forget the previous run. model_levels: the model's own level index of each level run (a subset);
        sampler: the SampleConfig.sampler whose states follow ("heun": one state per sigma step)."""
        self.play_button.setChecked(False)
        self.snapshots, self.latest, self.levels_seen = [], None, []
        self._model_levels, self._final_captions, self._sampler = model_levels, None, sampler
        self._set_timeline(0, 0)
        self.caption.setText(" ")
        self.play_button.setEnabled(False)
        self.level_label.setToolTip(TIPS.get(sampler, LEVEL_TIP))
        for k, speed in enumerate(SPEEDS):
            self.speed_combo.setItemText(k, _speed_text(speed, "\u03c3 step" if sampler == "heun" else "level"))
        self.timeline.setToolTip(f"Scrub through the chain's snapshots at the end of each "
                                 f"{'sigma step' if sampler == 'heun' else 'level'}")

    def add_state(self, st) -> None:
        if not self.levels_seen or self.levels_seen[-1] != st.level:
            self.levels_seen.append(st.level)
        end_of_level = st.step == st.n_steps and len(self.snapshots) == st.level
        denoised, sigma = getattr(st, "denoised", None), float(getattr(st, "denoised_sigma", float("nan")))
        churned = sigma > st.sigma * (1 + 1e-6)  # Heun with churn: the score was read at the raised sigma
        if self._sampler == "heun":  # one state per sigma step: x has moved from sigma to sigma - step_size
            label = f"\u03c3 step {st.level + 1}/{st.n_levels}"
            frame = f"{label}, \u03c3 = {st.sigma:.3g} \u2192 {max(st.sigma - st.step_size, 0.0):.3g}"
            snapshot, header = frame, (f"{label} \u00b7 \u03c3 = {st.sigma:.4g} \u2192 "
                                       f"{max(st.sigma - st.step_size, 0.0):.4g} \u00b7 Heun ODE, "
                                       + ("churn noise before the step" if st.noise_norm > 0 else "no noise"))
        else:
            label = f"level {st.level + 1}/{st.n_levels}"
            frame, snapshot = f"{label}, step {st.step}/{st.n_steps}", f"end of {label} (\u03c3 = {st.sigma:.3g})"
            header = self._level_header(st, label)
        if end_of_level:  # keep one snapshot per level (per sigma step)
            self.snapshots.append(Frame(snapshot, st.x, denoised, sigma, churned))
            self.level_finished.emit(st.level, st.sigma, st.x)
        self.latest = Frame(frame, st.x, denoised, sigma, churned)
        self.level_label.setText(header)
        following = self.timeline.value() >= self.timeline.maximum()
        self._set_timeline(len(self.snapshots), len(self.snapshots) if following else None)  # last: the live frame
        if following:
            self._show_position(self.timeline.maximum())

    def _level_header(self, st, label: str) -> str:
        model = ""
        if self._model_levels is not None and self._model_levels[st.level] != st.level:
            model = f" (model level {self._model_levels[st.level] + 1})"
        i = st.level + 1
        if self._sampler == "pc":
            kind = "predictor" if st.step == st.n_steps else "corrector"
            step = f"step size {st.step_size:.3g} ({kind})"
        else:
            step = f"\u03b1_{i} = {st.step_size:.3g}"
        return (f"{label}{model} \u00b7 \u03c3_{i} = {st.sigma:.4g} \u00b7 {step} \u00b7 step {st.step}/{st.n_steps}"
                f" \u00b7 SNR {st.snr:.3g}")

    def finish(self, x: Optional[np.ndarray], completed: bool, denoised: bool,
               captions: Optional[List[str]] = None, captions_note: str = "") -> None:
        """The final images take the last place on the timeline (x None: the live frame's); captions label
        each final image (e.g. the digit classifier's reading, explained by captions_note)."""
        if x is None and self.latest is None:
            return
        last = self.latest or Frame("", x)  # the final state: its estimate belongs to the final images
        x = last.x if x is None else x
        if completed and denoised:
            self.snapshots.append(Frame("final (denoised)", x, last.denoised, last.sigma, last.churned))
        elif completed and self.snapshots:
            self.snapshots[-1] = self.snapshots[-1]._replace(label=self.snapshots[-1].label + " = final", x=x)
        else:
            unit = "\u03c3 steps" if self._sampler == "heun" else "levels"
            self.snapshots.append(last._replace(label=f"stopped ({len(self.snapshots)} {unit} done)", x=x))
        self.latest = None
        self._final_captions, self._captions_note = captions, captions_note
        last = len(self.snapshots) - 1
        self._set_timeline(last, last)
        self._show_position(last, immediate=True)

    # --- timeline ------------------------------------------------------------------------------
    def _set_timeline(self, maximum: int, value: Optional[int]) -> None:
        self.timeline.blockSignals(True)  # positions are shown explicitly: no feedback while the range moves
        self.timeline.setRange(0, maximum)
        if value is not None:
            self.timeline.setValue(value)
        self.timeline.blockSignals(False)

    def _frame_at(self, pos: int) -> Optional[Frame]:
        if pos < len(self.snapshots):
            return self.snapshots[pos]
        return self.latest or (self.snapshots[-1] if self.snapshots else None)

    def _show_position(self, pos: int, immediate: bool = False) -> None:
        frame = self._frame_at(pos)
        if frame is None:
            return
        final = self.latest is None and pos == len(self.snapshots) - 1
        captions = self._final_captions if final else None
        images, nrow, note = self._shown(frame)
        self.view.set_images(images, nrow, captions=captions, immediate=immediate)
        live = " (live)" if pos >= len(self.snapshots) else ""
        self.caption.setText(frame.label + live + note
                             + (f"   {self._captions_note}" if captions and self._captions_note else ""))
        self.play_button.setEnabled(len(self.snapshots) > 1)

    def _shown(self, frame: Frame):
        """The images the show mode asks for, their number per row (None: about square) and a caption note."""
        mode = self.show_mode()
        if mode == "x":
            return frame.x, None, ""
        if frame.denoised is None:
            return frame.x, None, " \u00b7 x (this frame has no denoised estimate)"
        what = (f"x + \u03c3\u00b2 s(x, \u03c3) at \u03c3 = {frame.sigma:.3g}"
                + (" (raised by churn)" if frame.churned else ""))
        if mode == "denoised":
            return frame.denoised, None, f" \u00b7 denoised estimate {what}"
        pairs = side_by_side(frame.x, frame.denoised)
        return pairs, max(1, int(np.ceil(np.sqrt(len(pairs) / 2)))), f" \u00b7 x | denoised estimate {what}"

    def _on_play(self, on: bool) -> None:
        self.play_button.setText("\u23f8 Pause" if on else "\u25b6 Replay")
        if on:
            if self.timeline.value() >= len(self.snapshots) - 1:
                self.timeline.setValue(0)
            self._on_speed()
            self._play_timer.start()
        else:
            self._play_timer.stop()

    def _on_speed(self, *_args) -> None:
        self._play_timer.setInterval(int(1000 / SPEEDS[self.speed_combo.currentIndex()]))

    def _on_play_tick(self) -> None:
        if self.timeline.value() >= len(self.snapshots) - 1:
            self.play_button.setChecked(False)
            return
        self.timeline.setValue(self.timeline.value() + 1)
