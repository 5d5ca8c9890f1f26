"""Inpainting tab (paper, Algorithm 2): paint the region to fill, run annealed Langevin with the known
pixels following the data's noisy path, watch it level by level, export the paper-style row."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, List, Optional, Sequence

import numpy as np
from PySide6.QtCore import QRectF, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QImage, QPainter
from PySide6.QtWidgets import (QApplication, QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout,
                               QGridLayout, QGroupBox, QHBoxLayout, QLabel, QMessageBox, QProgressBar, QPushButton,
                               QSizePolicy, QSpinBox, QVBoxLayout, QWidget)

from ncsn_core.resources import BUILTIN_MODEL

from . import jobs
from .controller import RunController
from .sample_tab import init_choice, make_init_combo, make_kappa_spin, set_init_choices
from .widgets.checkpoint_picker import CheckpointPicker
from .widgets.mask_canvas import MaskEditor

REPO = Path(__file__).resolve().parent.parent
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm")


# ---------------------------------------------------------------------------------------------
# The job (runs on the worker thread; the only place this tab's code touches torch)
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class InpaintSettings:
    """Algorithm 2 settings in the paper's notation (alpha_i = step_lr * sigma_i^2 / sigma_L^2). init: the start
    of the unknown pixels ('uniform', 'gaussian', 'data-mean'); variance_correction: kappa in [0, 1]
    (ncsn_core.sampling); the tab fills both from its controls, which load the checkpoint config's values."""
    n: int = 4
    seed: int = 0
    step_lr: float = 5e-5
    n_steps_each: int = 20
    denoise: bool = True
    init: str = "uniform"
    variance_correction: float = 0.0


def inpaint_job(model: Any, image: np.ndarray, known: np.ndarray, s: InpaintSettings) -> Callable:
    """A generator factory for GeneratorWorker: image (C, H, W) float in [0, 1], known (H, W) bool
    (True = known pixel); the generator yields LangevinState for s.n completions of the same image."""
    image, known = np.array(image, np.float32), np.array(known, np.float32)

    def make_gen():
        import torch
        from ncsn_core.sampling import inpaint
        device = model.sigmas.device
        mean = getattr(model, "data_mean", None)  # None: a checkpoint saved before the mean was recorded
        jobs.check_start(s.init, s.variance_correction, mean is not None)
        img = torch.from_numpy(image).to(device)[None].expand(s.n, -1, -1, -1).contiguous()
        m = torch.from_numpy(known).to(device)[None, None]
        return inpaint(model, model.sigmas, img, m, s.step_lr, s.n_steps_each, seed=s.seed, init=s.init,
                       denoise=s.denoise, yield_every=max(1, min(10, s.n_steps_each // 5)),
                       variance_correction=s.variance_correction, init_mean=mean)
    return make_gen


# ---------------------------------------------------------------------------------------------
# Image helpers (numpy / PIL only)
# ---------------------------------------------------------------------------------------------

def to_model_image(image: np.ndarray, size: int, channels: int) -> np.ndarray:
    """(H, W), (H, W, 3) or (H, W, 4) array (uint8 or float in [0, 1]) -> (C, size, size) float32 in [0, 1]
    (bilinear resize as `ncsn inpaint` does; grey <-> RGB as PIL converts)."""
    from PIL import Image
    a = np.asarray(image)
    if a.dtype != np.uint8:
        a = (np.clip(a.astype(np.float32), 0, 1) * 255 + 0.5).astype(np.uint8)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)):
        raise ValueError(f"an image must be (H, W) or (H, W, 3), got shape {a.shape}")
    im = Image.fromarray(a)
    im = im.convert("L" if channels == 1 else "RGB")
    if im.size != (size, size):
        im = im.resize((size, size), Image.BILINEAR)
    out = np.asarray(im, dtype=np.float32) / 255.0
    return out[None] if out.ndim == 2 else out.transpose(2, 0, 1).copy()


def read_image_file(path: Path) -> np.ndarray:
    """An image file as an (H, W) or (H, W, 3) uint8 array; ValueError with the reason if unreadable."""
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(path) as im:
            grey = im.mode in ("1", "L", "LA", "I", "I;16", "F")
            return np.asarray(im.convert("L" if grey else "RGB"))
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"{path} is not a readable image ({e})") from e


def _short_path(p: Path) -> str:
    """Relative to the working folder or the repository when inside it, else as given."""
    for base in (Path.cwd(), REPO):
        try:
            return str(Path(p).resolve().relative_to(base.resolve()))
        except ValueError:
            pass
    return str(p)


def hwc(image_chw: np.ndarray) -> np.ndarray:
    """(C, H, W) -> (H, W) for one channel, (H, W, 3) for three."""
    return image_chw[0] if image_chw.shape[0] == 1 else image_chw.transpose(1, 2, 0)


# ---------------------------------------------------------------------------------------------
# Widgets
# ---------------------------------------------------------------------------------------------

class SciSpinBox(QDoubleSpinBox):
    """A positive float spin box shown as %g (5e-05), stepping by factors of 1.25 (step sizes span decades)."""

    def __init__(self, lo: float, hi: float, value: float, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.setDecimals(12)
        self.setRange(lo, hi)
        self.setValue(value)
        self.setKeyboardTracking(False)

    def textFromValue(self, v: float) -> str:  # noqa: N802 - Qt override
        return f"{v:.4g}"

    def valueFromText(self, text: str) -> float:  # noqa: N802
        try:
            return float(text)
        except ValueError:
            return self.value()

    def validate(self, text: str, pos: int):
        from PySide6.QtGui import QValidator
        t = text.strip()
        if not t or t in ("-", ".", "e", "E") or t.lower().endswith(("e", "e-", "e+")):
            return QValidator.State.Intermediate, text, pos
        try:
            v = float(t)
        except ValueError:
            return QValidator.State.Invalid, text, pos
        ok = self.minimum() <= v <= self.maximum()
        return (QValidator.State.Acceptable if ok else QValidator.State.Intermediate), text, pos

    def stepBy(self, steps: int) -> None:  # noqa: N802
        self.setValue(self.value() * 1.25 ** steps)


class ImageRow(QWidget):
    """Tiles of small images side by side (nearest-neighbour upscaling) with a caption under each,
    wrapping into rows when they do not fit. Images: (H, W) or (H, W, 3) float in [0, 1]."""

    def __init__(self, placeholder: str = "", parent: Optional[QWidget] = None):
        super().__init__(parent)
        self._tiles: List[QImage] = []
        self._captions: List[str] = []
        self._placeholder = placeholder
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumHeight(90)

    def set_images(self, images: Sequence[np.ndarray], captions: Sequence[str] = ()) -> None:
        from .widgets.mask_canvas import image_to_qimage
        self._tiles = [image_to_qimage(im) for im in images]
        self._captions = list(captions) + [""] * (len(self._tiles) - len(captions))
        self.update()

    def clear(self, placeholder: Optional[str] = None) -> None:
        self._tiles, self._captions = [], []
        if placeholder is not None:
            self._placeholder = placeholder
        self.update()

    def count(self) -> int:
        return len(self._tiles)

    def sizeHint(self) -> QSize:
        return QSize(400, 160)

    def _layout(self):
        n = len(self._tiles)
        w, h = self.width(), self.height()
        th = self.fontMetrics().height() + 4
        tw, tht = self._tiles[0].width(), self._tiles[0].height()
        best = None
        for cols in range(1, n + 1):
            rows = -(-n // cols)
            s = min((w - 6 * (cols + 1)) / (cols * tw), (h - rows * (th + 6) - 6) / (rows * tht))
            if best is None or s > best[0]:
                best = (s, cols, rows)
        return best, th

    def paintEvent(self, event) -> None:  # noqa: N802
        p = QPainter(self)
        if not self._tiles:
            p.setPen(self.palette().placeholderText().color())
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self._placeholder)
            return
        (s, cols, rows), th = self._layout()
        s = max(s, 0.5)
        if s > 2:
            s = float(int(s))  # whole-number zoom keeps pixels square and sharp
        tw, tht = self._tiles[0].width() * s, self._tiles[0].height() * s
        total_w = cols * tw + (cols - 1) * 6
        x0 = (self.width() - total_w) / 2
        p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
        for k, (img, cap) in enumerate(zip(self._tiles, self._captions)):
            r, c = divmod(k, cols)
            x, y = x0 + c * (tw + 6), 6 + r * (tht + th + 6)
            p.drawImage(QRectF(x, y, tw, tht), img)
            p.setPen(self.palette().text().color())
            p.drawText(QRectF(x - 3, y + tht + 2, tw + 6, th),
                       Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop,
                       self.fontMetrics().elidedText(cap, Qt.TextElideMode.ElideRight, int(tw + 6)))
        p.end()


@dataclass
class _ModelInfo:
    source: str
    image_size: int
    channels: int
    sigmas: List[float]
    config: Any = None
    step: Optional[int] = None
    path: Optional[str] = None

    @property
    def n_levels(self) -> int:
        return len(self.sigmas)


class InpaintTab(QWidget):
    """Open an image, paint the region to fill, and run Algorithm 2 on n chains at once.

    API used by tests and the main window: ``set_model(model, config)``, ``load_checkpoint(path)``,
    ``set_image(array)``, ``open_image(path)``, ``pick_builtin(index)``, ``run()``, ``stop()``,
    ``results()``, ``export_row(path)``; signals ``run_finished`` (after the results are shown) and
    ``model_changed``. ``controller``: a RunController (one is made when None).
    """

    run_finished = Signal()
    model_changed = Signal()
    status_message = Signal(str)  # the main window shows it in its status bar

    def __init__(self, controller: Optional[RunController] = None, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.controller = controller if controller is not None else RunController("inpaint", self)
        self._model: Any = None
        self._info: Optional[_ModelInfo] = None
        self._image: Optional[np.ndarray] = None       # (C, H, W) float32 at the model's size
        self._image_source = ""
        self._mnist: Optional[np.ndarray] = None
        self._running = False
        self._run_settings: Optional[InpaintSettings] = None
        self._run_image: Optional[np.ndarray] = None
        self._run_known: Optional[np.ndarray] = None
        self._run_meta: dict = {}
        self._latest = None          # newest state from the worker (kept, older ones dropped)
        self._dirty = False
        self._final = None           # raw final x (n, C, H, W) of the last finished run
        self._results: Optional[dict] = None
        self._level_snaps: List[np.ndarray] = []
        self._level_captions: List[str] = []
        self._t0 = 0.0
        self.setAcceptDrops(True)
        self._build_ui()

        self._timer = QTimer(self)
        self._timer.setInterval(33)  # at most ~30 repaints a second; only the latest state is drawn
        self._timer.timeout.connect(self._on_tick)

        c = self.controller
        c.state_changed.connect(self._on_state_changed)
        c.event_emitted.connect(self._on_event)
        c.errored.connect(self._on_errored)
        c.finished.connect(self._on_finished)

        self.editor.canvas.mask_changed.connect(self._on_mask_changed)
        app = QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)
        self.picker.checkpoint_changed.connect(self._on_picker)
        first = self.picker.current_path()
        if first:
            self.load_checkpoint(first)
        else:
            self.load_default_model()
        if self._image is None:
            self.pick_builtin(0)
        self._on_mask_changed()

    # --- UI ------------------------------------------------------------------------------------
    def _build_ui(self) -> None:
        # model
        self.model_label = QLabel(self)
        self.model_label.setWordWrap(True)
        self.model_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        # the shared picker: built-in model, the run just trained, recent checkpoints, Open…
        self.picker = CheckpointPicker(self, builtin=BUILTIN_MODEL)
        self.picker.setToolTip("A .pt checkpoint, e.g. runs/<name>/checkpoints/ckpt_00012000.pt")
        gm = QGroupBox("Model", self)
        lm = QVBoxLayout(gm)
        lm.addWidget(self.picker)
        lm.addWidget(self.model_label)
        self.latest_button = QPushButton(self)
        self.latest_button.hide()
        self.latest_button.clicked.connect(lambda: self.load_checkpoint(self.latest_button.toolTip()))
        lm.addWidget(self.latest_button)

        # image
        self.open_button = QPushButton("Open image…", self)
        self.open_button.setToolTip("Any image file; it is converted to the model's size and channels")
        self.open_button.clicked.connect(self._open_dialog)
        self.digit_spin = QSpinBox(self)
        self.digit_spin.setRange(0, 9999)
        self.digit_spin.setPrefix("MNIST test #")
        self.digit_spin.setToolTip("An image of the built-in MNIST test split (10,000 digits)")
        self.digit_spin.setKeyboardTracking(False)
        self.digit_spin.valueChanged.connect(self.pick_builtin)
        self.random_button = QPushButton("Random digit", self)
        self.random_button.clicked.connect(self._on_random_digit)
        self.preset_combo = QComboBox(self)
        self.preset_combo.addItems(["Quick mask…", "Bottom half", "Right half", "Top half", "Centre square",
                                    "Random 8×8 blocks"])
        self.preset_combo.setToolTip("Replace the mask by a standard occlusion (undoable)")
        self.preset_combo.activated.connect(self._on_preset)
        self.image_label = QLabel(self)
        self.image_label.setWordWrap(True)
        self.image_label.setStyleSheet("color: palette(placeholder-text);")
        gi = QGroupBox("Image", self)
        li = QGridLayout(gi)
        li.addWidget(self.open_button, 0, 0)
        li.addWidget(self.random_button, 0, 1)
        li.addWidget(self.digit_spin, 1, 0)
        li.addWidget(self.preset_combo, 1, 1)
        li.addWidget(self.image_label, 2, 0, 1, 2)

        # sampler
        self.n_spin = QSpinBox(self)
        self.n_spin.setRange(1, 16)
        self.n_spin.setValue(4)
        self.n_spin.setToolTip("How many completions of the same image to draw (one chain each)")
        self.seed_spin = QSpinBox(self)
        self.seed_spin.setRange(0, 2_147_483_647)
        self.seed_spin.setToolTip("The same seed, image and mask give the same completions")
        self.step_lr_spin = SciSpinBox(1e-8, 1.0, 5e-5, self)
        self.step_lr_spin.setToolTip("ε in α_i = ε·σ_i²/σ_L² (Algorithm 1's notation; the reference code's "
                                     "2e-5 is 4e-5 here)")
        self.t_spin = QSpinBox(self)
        self.t_spin.setRange(1, 1000)
        self.t_spin.setValue(20)
        self.t_spin.setToolTip("T: Langevin steps per noise level (n_steps_each)")
        self.init_combo = make_init_combo(self)
        self.init_combo.currentIndexChanged.connect(self._on_settings_changed)
        self.kappa_spin = make_kappa_spin(self)
        self.denoise_check = QCheckBox("Denoise the last step", self)
        self.denoise_check.setToolTip("One extra step x + σ_L²·s(x, σ_L) (Tweedie); the known pixels are then "
                                      "reset to the clean image")
        gs = QGroupBox("Sampler (Algorithm 2)", self)
        ls = QFormLayout(gs)
        ls.addRow("Completions", self.n_spin)
        ls.addRow("Seed", self.seed_spin)
        ls.addRow("Step ε (step_lr)", self.step_lr_spin)
        ls.addRow("Steps per level T", self.t_spin)
        ls.addRow("Start", self.init_combo)
        ls.addRow("Variance correction κ", self.kappa_spin)
        ls.addRow(self.denoise_check)
        self.run_button = QPushButton("Run inpainting", self)
        self.run_button.setDefault(True)
        self.run_button.clicked.connect(self.run)
        self.stop_button = QPushButton("Stop", self)
        self.stop_button.clicked.connect(self.stop)
        rb = QHBoxLayout()
        rb.addWidget(self.run_button)
        rb.addWidget(self.stop_button)
        ls.addRow(rb)
        self.progress = QProgressBar(self)
        self.progress.setTextVisible(True)
        self.progress.setFormat("%p%")
        self.progress.setValue(0)
        ls.addRow(self.progress)
        self.status_label = QLabel("Paint the pixels to fill, then Run.", self)
        self.status_label.setWordWrap(True)
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        ls.addRow(self.status_label)

        left = QVBoxLayout()
        left.addWidget(gm)
        left.addWidget(gi)
        left.addWidget(gs)
        left.addStretch(1)
        left_w = QWidget(self)
        left_w.setLayout(left)
        left_w.setFixedWidth(330)

        # mask
        self.editor = MaskEditor(self)
        ge = QGroupBox("1 · Paint the region to fill", self)
        le = QVBoxLayout(ge)
        hint = QLabel("Painted pixels (overlay) are unknown and will be filled; the rest is kept. "
                      "Right-drag erases, [ ] resize the brush, wheel zooms, drop an image file here to open it.", ge)
        hint.setWordWrap(True)
        hint.setStyleSheet("color: palette(placeholder-text);")
        le.addWidget(hint)
        le.addWidget(self.editor, 1)

        # live
        self.level_label = QLabel("level –/–", self)
        font = self.level_label.font()
        font.setPointSizeF(font.pointSizeF() * 1.15)
        font.setBold(True)
        self.level_label.setFont(font)
        self.level_label.setToolTip("i/L: the current noise level; σ_i its noise scale; α_i its Langevin step")
        self.live_view = ImageRow("The chains appear here while they run: at each level the known pixels are "
                                  "re-noised (y = image + σ_i·z) and the painted region is updated by Langevin steps.",
                                  self)
        self.strip_view = ImageRow("(filled in as the levels end)", self)
        self.strip_view.setMinimumHeight(70)
        gl = QGroupBox("2 · Live: every chain's current x", self)
        ll = QVBoxLayout(gl)
        ll.addWidget(self.level_label)
        ll.addWidget(self.live_view, 3)
        strip_title = QLabel("Completion 1 at the end of each level, captioned with its σ_i (σ_1 → σ_L):", self)
        ll.addWidget(strip_title)
        ll.addWidget(self.strip_view, 1)

        # results
        self.result_view = ImageRow("Run to see: original · occluded input · completions", self)
        self.export_button = QPushButton("Export row as PNG…", self)
        self.export_button.setToolTip("The row as one PNG grid (as `ncsn inpaint` writes it), with the settings, "
                                      "seed and checkpoint stored in its text chunks")
        self.export_button.clicked.connect(self._export_dialog)
        self.result_note = QLabel("", self)
        self.result_note.setWordWrap(True)
        self.result_note.setStyleSheet("color: palette(placeholder-text);")
        gr = QGroupBox("3 · Result: original · occluded input · completions", self)
        lr = QVBoxLayout(gr)
        lr.addWidget(self.result_view, 1)
        br = QHBoxLayout()
        br.addWidget(self.result_note, 1)
        br.addWidget(self.export_button)
        lr.addLayout(br)

        grid = QGridLayout(self)
        grid.addWidget(left_w, 0, 0, 2, 1)
        grid.addWidget(ge, 0, 1)
        grid.addWidget(gl, 0, 2)
        grid.addWidget(gr, 1, 1, 1, 2)
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(2, 1)
        grid.setRowStretch(0, 3)
        grid.setRowStretch(1, 1)

    # --- model --------------------------------------------------------------------------------
    def set_model(self, model: Any, config: Any, source: str = "model in memory", step: Optional[int] = None,
                  path: Optional[str] = None) -> None:
        """Use `model` (a ScoreModel: forward(x, labels), with .sigmas) built from `config` (a Config)."""
        if self._running:
            raise RuntimeError("cannot change the model while inpainting runs: stop it first")
        if config.model.arch == "mlp":
            raise ValueError(f"{source} is a 2-D toy model ({config.model.arch}); inpainting needs an image model")
        self._model = model
        self._info = _ModelInfo(source, int(config.data.image_size), int(config.data.channels),
                                [float(v) for v in model.sigmas.tolist()], config, step, path)
        s = config.sample
        self.step_lr_spin.setValue(s.step_lr)
        self.t_spin.setValue(s.n_steps_each)
        self.denoise_check.setChecked(bool(s.denoise))
        set_init_choices(self.init_combo, s.init, self._has_data_mean())
        self.kappa_spin.setValue(float(s.variance_correction))
        sig = self._info.sigmas
        step_txt = f", step {step:,}" if step is not None else ""
        self.model_label.setText(f"<b>{source}</b>{step_txt}<br>{config.model.arch}, "
                                 f"{self._info.image_size}×{self._info.image_size}×{self._info.channels}, "
                                 f"L = {len(sig)} levels, σ {sig[0]:.3g} → {sig[-1]:.3g}")
        self.model_label.setStyleSheet("")
        self.latest_button.hide()
        if self._image is not None:
            src = self._image_source
            self._set_image_chw(to_model_image(self._display_image(), self._info.image_size, self._info.channels), src)
        self.model_changed.emit()
        self._update_buttons()

    def load_checkpoint(self, path) -> bool:
        """Load a checkpoint (.pt or run folder) and select it in the picker; on failure the message is shown
        (the previous model stays) and False returned."""
        from ncsn_core.checkpoint import CheckpointError, load_checkpoint
        try:
            ld = load_checkpoint(Path(path), device="cpu")
            self.set_model(ld.model, ld.config, source=Path(ld.path).name, step=ld.step, path=str(ld.path))
        except (CheckpointError, ValueError, RuntimeError) as e:
            self._show_model_problem(f"Cannot use {path}: {e}")
            return False
        loaded = str(Path(ld.path).resolve())
        if self.picker.current_path() is None or str(Path(self.picker.current_path()).resolve()) != loaded:
            self.picker.set_path(loaded)  # emits checkpoint_changed; _on_picker sees it is loaded already
        return True

    def _on_picker(self, path: str) -> None:
        loaded = self._info.path if self._info is not None else None
        if loaded is None or str(Path(path).resolve()) != str(Path(loaded).resolve()):
            self.load_checkpoint(path)

    def load_default_model(self) -> bool:
        """The built-in MNIST model if it exists; otherwise say so and point to Choose checkpoint."""
        if BUILTIN_MODEL.exists():
            return self.load_checkpoint(BUILTIN_MODEL)
        from .settings import runs_root
        roots = {runs_root().resolve(), (REPO / "runs").resolve()}
        ckpts = sorted({p for r in roots for p in r.glob("*/checkpoints/ckpt_*.pt")}, key=lambda p: p.stat().st_mtime)
        self._show_model_problem(
            f"The built-in model {_short_path(BUILTIN_MODEL)} does not exist yet (it is made by training the "
            f"mnist-cpu preset). Click <b>Open…</b> above and pick a checkpoint .pt file"
            + (", or use the newest one found below." if ckpts else "."))
        if ckpts and self._model is None:
            self.latest_button.setText(f"Use {_short_path(ckpts[-1])}")
            self.latest_button.setToolTip(str(ckpts[-1]))
            self.latest_button.show()
        return False

    def _show_model_problem(self, text: str) -> None:
        if self._model is None:
            self.model_label.setText(text)
            self.model_label.setStyleSheet("color: #b36b00;")
            self.status_label.setText("No model yet: see Model above.")
        else:
            self.status_label.setText(f"{text} (still using the previous model)")
        self._update_buttons()

    # --- image --------------------------------------------------------------------------------
    def _size(self):
        return (self._info.image_size, self._info.channels) if self._info else (28, 1)

    def set_image(self, image: np.ndarray, source: str = "image") -> None:
        """(H, W) or (H, W, 3) array (float in [0, 1] or uint8), converted to the model's size and channels."""
        size, ch = self._size()
        self._set_image_chw(to_model_image(image, size, ch), source)

    def _set_image_chw(self, chw: np.ndarray, source: str) -> None:
        self._image = chw
        self._image_source = source
        self.editor.canvas.set_image(hwc(chw))
        self.image_label.setText(f"Showing {source} ({chw.shape[2]}×{chw.shape[1]}). "
                                 f"Drop an image file on this tab to open it.")
        self._update_buttons()

    def _display_image(self) -> np.ndarray:
        return hwc(self._image)

    def image(self) -> Optional[np.ndarray]:
        """The current image (C, H, W) float32 at the model's size."""
        return None if self._image is None else self._image.copy()

    def open_image(self, path) -> bool:
        path = Path(path)
        try:
            arr = read_image_file(path)
            self.set_image(arr, source=path.name)
        except ValueError as e:
            self.status_label.setText(str(e))
            return False
        size, _ = self._size()
        if arr.shape[:2] != (size, size):
            self.status_label.setText(f"Resized {path.name} from {arr.shape[1]}×{arr.shape[0]} to the model's "
                                      f"{size}×{size}.")
        return True

    def pick_builtin(self, index: int) -> bool:
        from ncsn_core.resources import DataError, load_builtin_mnist
        if self._mnist is None:
            try:
                self._mnist = load_builtin_mnist()[0]
            except DataError as e:
                self.image_label.setText(f"The built-in MNIST digits cannot be read: {e}")
                return False
        index = int(index) % len(self._mnist)
        if self.digit_spin.value() != index:
            self.digit_spin.blockSignals(True)
            self.digit_spin.setValue(index)
            self.digit_spin.blockSignals(False)
        self.set_image(self._mnist[index], source=f"MNIST test #{index}")
        return True

    def _on_random_digit(self) -> None:
        self.pick_builtin(int(np.random.default_rng().integers(0, 10000)))

    def _open_dialog(self) -> None:
        pats = " ".join("*" + s for s in IMAGE_SUFFIXES)
        path, _ = QFileDialog.getOpenFileName(self, "Open image", str(Path.home()), f"Images ({pats});;All files (*)")
        if path:
            self.open_image(path)

    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt override
        if self._dropped_path(event.mimeData()) is not None:
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event) -> None:  # noqa: N802
        path = self._dropped_path(event.mimeData())
        if path is not None:
            self.open_image(path)
            event.acceptProposedAction()

    @staticmethod
    def _dropped_path(mime) -> Optional[Path]:
        if not mime.hasUrls():
            return None
        for url in mime.urls():
            if url.isLocalFile() and Path(url.toLocalFile()).suffix.lower() in IMAGE_SUFFIXES:
                return Path(url.toLocalFile())
        return None

    def _on_preset(self, index: int) -> None:
        name = self.preset_combo.itemText(index)
        self.preset_combo.setCurrentIndex(0)
        h, w = self.editor.canvas.mask().shape
        fill = np.zeros((h, w), bool)
        if name == "Bottom half":
            fill[h // 2:] = True
        elif name == "Top half":
            fill[: h // 2] = True
        elif name == "Right half":
            fill[:, w // 2:] = True
        elif name == "Centre square":
            fill[h // 4: h - h // 4, w // 4: w - w // 4] = True
        elif name.startswith("Random"):
            rng = np.random.default_rng()
            b = max(2, min(h, w) // 4)
            for _ in range(3):
                r, c = rng.integers(0, h - b + 1), rng.integers(0, w - b + 1)
                fill[r:r + b, c:c + b] = True
        else:
            return
        self.editor.canvas.set_mask(fill, name)

    def _on_settings_changed(self, *_args) -> None:
        self._on_mask_changed()  # the same refresh: Run's state and the reason it is off

    def _on_mask_changed(self) -> None:
        if not self._running:
            self._update_buttons()
            if self._model is not None:
                fill = int(self.editor.canvas.mask().sum())
                self.status_label.setText(self._why_not_runnable() or f"{fill} pixel(s) to fill: press Run.")

    # --- run ----------------------------------------------------------------------------------
    def settings(self) -> InpaintSettings:
        return InpaintSettings(n=self.n_spin.value(), seed=self.seed_spin.value(), step_lr=self.step_lr_spin.value(),
                               n_steps_each=self.t_spin.value(), denoise=self.denoise_check.isChecked(),
                               init=init_choice(self.init_combo), variance_correction=self.kappa_spin.value())

    def _has_data_mean(self) -> bool:
        return getattr(self._model, "data_mean", None) is not None

    def _why_not_runnable(self) -> Optional[str]:
        if self._model is None:
            return "No model: choose a checkpoint first."
        if self._image is None:
            return "No image: open one or pick a digit."
        if not self.editor.canvas.mask().any():
            return "Nothing to fill: paint over the pixels to fill (or pick a Quick mask)."
        try:
            jobs.check_start(init_choice(self.init_combo), self.kappa_spin.value(), self._has_data_mean())
        except ValueError as e:
            return f"{str(e)[0].upper()}{str(e)[1:]}."
        return None

    def run(self) -> bool:
        """Start inpainting with the current image, mask and settings; False (with the reason shown) if it cannot."""
        why = self._why_not_runnable()
        if why is not None or self._running or self.controller.is_busy():
            self.status_label.setText(why or "Already running.")
            return False
        s = self.settings()
        known = self.editor.canvas.known_mask()
        self._run_settings, self._run_image, self._run_known = s, self._image.copy(), known
        self._run_meta = {"image": self._image_source, "fill_pixels": int((~known).sum())}
        self._latest, self._dirty, self._final = None, False, None
        self._level_snaps, self._level_captions = [], []
        self.strip_view.clear()
        self.live_view.clear()
        self.progress.setRange(0, self._info.n_levels * s.n_steps_each)
        self.progress.setValue(0)
        self.status_label.setText("Running…")
        self._running = True
        self._t0 = time.monotonic()
        self._timer.start()
        self.controller.start(inpaint_job(self._model, self._run_image, known, s))
        self._update_buttons()
        return True

    def stop(self) -> None:
        if self._running and self.controller.can("stopping"):
            self.controller.stop()
            self.status_label.setText("Stopping…")

    def run_action(self) -> None:
        """The window's Run shortcut."""
        self.run()

    def export_action(self) -> None:
        """The window's Export shortcut."""
        if self._results is None:
            self.status_message.emit("Nothing to export yet: run inpainting first")
        else:
            self._export_dialog()

    def is_running(self) -> bool:
        return self._running

    def _on_event(self, state) -> None:
        if not self._running:
            return
        self._latest = state
        self._dirty = True
        if state.step == state.n_steps and len(self._level_snaps) <= state.level:
            # end of a level: keep completion 1 (L small images at most)
            self._level_snaps.append(np.clip(hwc(state.x[0]), 0, 1))
            self._level_captions.append(f"{state.sigma:.2g}")
        if state.final:
            self._final = np.array(state.x)

    def _on_tick(self) -> None:
        if not self._dirty or self._latest is None:
            return
        self._dirty = False
        st = self._latest
        n = len(st.x)
        self.live_view.set_images([np.clip(hwc(st.x[k]), 0, 1) for k in range(n)],
                                  [f"chain {k + 1}" for k in range(n)])
        self.strip_view.set_images(self._level_snaps, self._level_captions)
        self.level_label.setText(f"level {st.level + 1}/{st.n_levels} · σ_{st.level + 1} = {st.sigma:.4g} · "
                                 f"α_{st.level + 1} = {st.step_size:.3g} · step {st.step}/{st.n_steps}")
        self.progress.setValue(st.global_step)

    def _on_errored(self, message: str) -> None:
        if self._running:
            self.status_label.setText(f"<span style='color:#c0392b'>Inpainting failed: {message}</span>")

    def _on_finished(self, result) -> None:
        if not self._running:
            return
        self._running = False
        self._timer.stop()
        self._dirty = True
        self._on_tick()
        s = self._run_settings
        elapsed = time.monotonic() - self._t0
        if self._final is not None:
            self._show_results(self._final)
            self.status_label.setText(f"Done: {s.n} completion(s) in {elapsed:.1f} s.")
        elif self.controller.last_error is None:
            self.status_label.setText("Stopped before the end: the completions shown live are unfinished.")
        self._update_buttons()
        self.run_finished.emit()

    def _show_results(self, x: np.ndarray) -> None:
        img, m = self._run_image, self._run_known[None].astype(np.float32)
        # the known pixels are pasted from the original: the sampler's own copy carries sigma_L noise
        # (without denoising), which is not part of the completion
        completions = np.clip(x * (1 - m) + img[None] * m, 0, 1).astype(np.float32)
        occluded = img * m
        self._results = {"original": img.copy(), "occluded": occluded, "completions": completions, "raw": x.copy(),
                         "known": self._run_known.copy(), "settings": self._run_settings, "meta": dict(self._run_meta)}
        tiles = [hwc(img), hwc(occluded)] + [hwc(c) for c in completions]
        caps = ["original", "occluded"] + [f"completion {k + 1}" for k in range(len(completions))]
        self.result_view.set_images(tiles, caps)
        s = self._run_settings
        self.result_note.setText(f"seed {s.seed}, ε = {s.step_lr:g}, T = {s.n_steps_each}, start {s.init}, "
                                 f"κ = {s.variance_correction:g}, denoise {'on' if s.denoise else 'off'}; "
                                 f"known pixels pasted from the original.")
        self._update_buttons()

    def results(self) -> Optional[dict]:
        """The last finished run: original (C, H, W), occluded (C, H, W), completions (n, C, H, W) with the
        known pixels pasted from the original, raw (n, C, H, W) the sampler's final x, known (H, W) bool."""
        return self._results

    def export_row(self, path) -> Path:
        """Write original, occluded and completions as one PNG row (ncsn_core.export.save_grid) with meta."""
        if self._results is None:
            raise RuntimeError("nothing to export yet: run inpainting first")
        import torch
        from ncsn_core.export import save_grid
        r, s = self._results, self._results["settings"]
        row = np.concatenate([r["original"][None], r["occluded"][None], r["completions"]])
        info = self._info
        meta = {"checkpoint": info.path or info.source, "step": info.step, "seed": s.seed, "step_lr": s.step_lr,
                "n_steps_each": s.n_steps_each, "denoise": s.denoise, "init": s.init,
                "variance_correction": s.variance_correction, "n": s.n,
                "image": r["meta"]["image"], "fill_pixels": r["meta"]["fill_pixels"],
                "layout": "original, occluded, then completions", "known_pixels": "pasted from the original",
                "config": info.config.to_dict() if info.config is not None else None}
        return save_grid(torch.from_numpy(row), Path(path), nrow=len(row), meta=meta)

    def _export_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export inpainting row", "inpainting.png", "PNG (*.png)")
        if not path:
            return
        if not path.lower().endswith(".png"):
            path += ".png"
        try:
            self.export_row(path)
            self.result_note.setText(f"Wrote {path}")
            self.status_message.emit(f"Wrote {path}")
        except (OSError, RuntimeError) as e:
            QMessageBox.warning(self, "Cannot export", str(e))

    def screenshot_demo(self, timeout_s: float = 120.0) -> None:
        """Representative content for a screenshot: MNIST test #0 with its bottom half to fill, six completions,
        waiting (with the event loop running) until they are done. Without a model the tab stays as it is."""
        if self._model is None:
            return
        self.pick_builtin(0)
        self._on_preset(self.preset_combo.findText("Bottom half"))
        self.n_spin.setValue(6)
        if self.run():
            t0 = time.monotonic()
            while self._running and time.monotonic() - t0 < timeout_s:
                QApplication.processEvents()
                time.sleep(0.01)

    # --- lifetime ------------------------------------------------------------------------------
    def shutdown(self, timeout_ms: int = 5000) -> None:
        """Stop a running inpainting and wait for its thread (a QThread must not outlive its widget)."""
        if self._running:
            if self.controller.can("stopping"):
                self.controller.stop()
            self.controller.wait(timeout_ms)

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt override
        self.shutdown()
        super().closeEvent(event)

    # --- state --------------------------------------------------------------------------------
    def _on_state_changed(self, state: str) -> None:
        self._update_buttons()

    def _update_buttons(self) -> None:
        if not hasattr(self, "run_button"):
            return
        busy = self._running or self.controller.is_busy()
        why = self._why_not_runnable()
        self.run_button.setEnabled(not busy and why is None)
        self.run_button.setToolTip(why or "Run Algorithm 2 on the painted region")
        self.stop_button.setEnabled(self._running and self.controller.state in ("running", "paused"))
        for w in (self.picker, self.n_spin, self.seed_spin, self.step_lr_spin, self.t_spin, self.init_combo,
                  self.kappa_spin, self.denoise_check):
            w.setEnabled(not busy)
        self.export_button.setEnabled(self._results is not None and not busy)
