"""2-D toy lab (paper, Sec. 3 and Fig. 2-3): the mixture 1/5 N((-5,-5), I) + 4/5 N((5,5), I), its exact and
learned score fields, and particles under plain vs annealed Langevin side by side: why annealing works."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, List, Optional, Tuple

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import (QApplication, QCheckBox, QComboBox, QDoubleSpinBox, QFormLayout, QGridLayout,
                               QGroupBox, QHBoxLayout, QLabel, QProgressBar, QPushButton, QScrollArea, QSizePolicy,
                               QSlider, QSpinBox, QVBoxLayout, QWidget)

from ncsn_core.toy import step_size_warning

from .controller import RunController
from .worker import GeneratorWorker

BOX = 8.0             # the heat map and the uniform start cover [-BOX, BOX]^2
VIEW = 10.0           # the particle plots show [-VIEW, VIEW]^2 (zoom out with the mouse to see more)
N_DENSITY = 161       # heat-map resolution
N_ARROWS = 17         # quiver resolution (N_ARROWS^2 arrows)
LOWER_LEFT = QColor(80, 200, 255)
UPPER_RIGHT = QColor(255, 170, 60)
EXPLANATION = (
    "<b>Why annealing works.</b> The data are 1/5 N((−5,−5), I) + 4/5 N((5,5), I). The score ∇log p only "
    "points to the nearest mode and the density between the modes is nearly zero, so under plain Langevin "
    "no particle crosses: each mode keeps the share that started near it (about 1/2), not the true 1/5. "
    "Score matching is blind there too: the learned field is worst in low-density regions. Annealed "
    "Langevin starts on heavily noised data (σ₁ = 20), where the modes merge into one blob that the "
    "particles share by weight; as σ shrinks each particle follows its mode and the 1 : 4 split survives. "
    "α_i = ε·σ_i²/σ_L² makes each level mix in the same T steps.")


# ---------------------------------------------------------------------------------------------
# Jobs: generator factories run on the worker thread (the only code here that touches torch)
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ChainSettings:
    """Both chains start from the same uniform points in [-box, box]^2. The annealed chain follows
    Algorithm 1 (alpha_i = step_lr * sigma_i^2 / sigma_L^2, T steps per level); the plain chain makes the
    same number of steps L*T with the final level's step alpha_L = step_lr (paper, Fig. 3)."""
    sigma_begin: float = 20.0
    sigma_end: float = 0.7
    num_classes: int = 10
    step_lr: float = 0.1
    n_steps_each: int = 100
    n_particles: int = 1280
    seed: int = 0
    box: float = BOX
    frames_per_level: int = 10
    delay_s: float = 0.0


@dataclass(frozen=True)
class ToyFrame:
    """One snapshot of both chains (numpy only)."""
    plain: np.ndarray          # (N, 2)
    annealed: np.ndarray       # (N, 2)
    plain_lower_left: float
    annealed_lower_left: float
    level: int
    n_levels: int
    sigma: float
    step_size: float           # the annealed chain's alpha_i
    plain_step_size: float
    step: int
    n_steps: int
    global_step: int
    total_steps: int
    final: bool


@dataclass(frozen=True)
class ToyField:
    """Density and exact score of the mixture at sigma = 0 (index 0) and at each sigma_i (index i + 1)."""
    sigmas: Tuple[float, ...]
    density: np.ndarray        # (L + 1, N_DENSITY, N_DENSITY), rows = y from -BOX up, cols = x
    points: np.ndarray         # (M, 2) arrow tails
    exact: np.ndarray          # (L + 1, M, 2)
    true_lower_left: float


@dataclass(frozen=True)
class ToyTraining:
    """A report of the MLP's training: the learned score at the arrow points for each level (L, M, 2), and
    field_error's relative errors per level in high- and low-density regions."""
    step: int
    n_iters: int
    loss: float
    learned: np.ndarray
    high_error: Tuple[float, ...]
    low_error: Tuple[float, ...]


@dataclass(frozen=True)
class TrainedScore:
    """The trained network (kept opaque by the widgets) and the ladder it was trained on."""
    net: Any
    sigmas: Tuple[float, ...]
    loss: str


def same_ladder(a, b) -> bool:
    return len(a) == len(b) and bool(np.allclose(a, b, rtol=1e-4))


def arrow_points(n: int = N_ARROWS, box: float = BOX) -> np.ndarray:
    lin = np.linspace(-box * (n - 1) / n, box * (n - 1) / n, n, dtype=np.float32)
    gx, gy = np.meshgrid(lin, lin, indexing="xy")
    return np.stack([gx.ravel(), gy.ravel()], axis=1)


def field_job(sigma_begin: float, sigma_end: float, num_classes: int) -> Callable:
    def make_gen():
        import torch
        from ncsn_core.noise import geometric_sigmas
        from ncsn_core.toy import paper_mixture
        mix = paper_mixture()
        sig = [0.0] + geometric_sigmas(sigma_begin, sigma_end, num_classes).tolist()
        lin = torch.linspace(-BOX, BOX, N_DENSITY)
        gx, gy = torch.meshgrid(lin, lin, indexing="xy")
        grid = torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)
        pts = torch.from_numpy(arrow_points())
        with torch.no_grad():
            dens = torch.stack([mix.log_prob(grid, s).exp().reshape(N_DENSITY, N_DENSITY) for s in sig])
            exact = torch.stack([mix.score(pts, s) for s in sig])
        yield ToyField(tuple(sig[1:]), dens.numpy(), pts.numpy(), exact.numpy(), float(mix.weights[0]))
    return make_gen


def chains_job(s: ChainSettings, learned: Optional[TrainedScore] = None) -> Callable:
    """Plain and annealed Langevin in lockstep (same global step in every frame); with `learned`, both use
    the trained network instead of the exact scores (the plain chain its smallest-sigma level)."""
    def make_gen():
        import torch
        from ncsn_core.noise import geometric_sigmas
        from ncsn_core.sampling import annealed_langevin, langevin, make_generator
        from ncsn_core.toy import paper_mixture, uniform_start
        mix = paper_mixture()
        sigmas = geometric_sigmas(s.sigma_begin, s.sigma_end, s.num_classes)
        L, T = len(sigmas), s.n_steps_each
        x0 = uniform_start(s.n_particles, -s.box, s.box, make_generator(s.seed, "cpu"))
        if learned is not None:
            net = learned.net
            last = torch.full((s.n_particles,), L - 1, dtype=torch.long)
            score_net, plain_score = net, (lambda x: net(x, last))
        else:
            score_net, plain_score = mix.score_net(sigmas), mix.score
        k = max(1, T // max(1, s.frames_per_level))
        # the plain chain yields at every multiple of gcd(k, T), which includes every global step at which
        # the annealed chain yields (multiples of k within a level, and each level's end)
        plain = langevin(plain_score, x0, s.step_lr, L * T, seed=s.seed + 1, yield_every=math.gcd(k, T))
        ann = annealed_langevin(score_net, sigmas, x0.shape, s.step_lr, T, seed=s.seed + 2, x0=x0, yield_every=k)
        return _lockstep(plain, ann, s.delay_s)
    return make_gen


def _lockstep(plain, ann, delay_s: float):
    from ncsn_core.toy import lower_left_fraction
    p = next(plain)
    try:
        a = next(ann)
        while True:
            while p.global_step < a.global_step:
                p = next(plain)
            cmd = yield ToyFrame(p.x.numpy().copy(), a.x.numpy().copy(), lower_left_fraction(p.x),
                                 lower_left_fraction(a.x), a.level, a.n_levels, a.sigma, a.step_size, p.step_size,
                                 a.step, a.n_steps, a.global_step, a.total_steps, a.final)
            if cmd == "stop":
                return {"stopped": True}
            if delay_s:
                time.sleep(delay_s)
            a = next(ann)
    except StopIteration:
        return {"stopped": False}
    finally:
        plain.close()
        ann.close()


def train_job(loss: str, n_iters: int, sigma_begin: float, sigma_end: float, num_classes: int,
              seed: int = 0) -> Callable:
    """toy.train_toy_score on the worker, each report with the learned field and field_error per level;
    returns a TrainedScore (also when stopped early)."""
    def make_gen():
        import torch
        from ncsn_core.noise import geometric_sigmas
        from ncsn_core.toy import field_error, paper_mixture, train_toy_score
        mix = paper_mixture()
        sigmas = geometric_sigmas(sigma_begin, sigma_end, num_classes)
        pts = torch.from_numpy(arrow_points())
        net = None
        for step, value, net in train_toy_score(loss, n_iters, sigmas, seed=seed, mixture=mix):
            with torch.no_grad():
                learned = torch.stack([net(pts, torch.full((len(pts),), i, dtype=torch.long))
                                       for i in range(len(sigmas))])
            errs = [field_error(net, mix, sigmas, i, box=BOX) for i in range(len(sigmas))]
            cmd = yield ToyTraining(step, n_iters, value, learned.numpy(),
                                    tuple(e["high_density_rel_error"] for e in errs),
                                    tuple(e["low_density_rel_error"] for e in errs))
            if cmd == "stop":
                break
        return TrainedScore(net, tuple(sigmas.tolist()), loss) if net is not None else None
    return make_gen


# ---------------------------------------------------------------------------------------------
# Widgets
# ---------------------------------------------------------------------------------------------

def quiver_segments(points: np.ndarray, vectors: np.ndarray, scale: float, head: float = 0.3) -> np.ndarray:
    """Line pairs for arrows: shaft and two head strokes per arrow, as (6M, 2) points for connect='pairs'."""
    tips = points + vectors * scale
    d = tips - points
    length = np.linalg.norm(d, axis=1, keepdims=True)
    u = d / np.maximum(length, 1e-9)
    n = np.stack([-u[:, 1], u[:, 0]], axis=1)
    h = np.minimum(length, 1.0) * head
    left, right = tips - u * h + n * h * 0.6, tips - u * h - n * h * 0.6
    out = np.empty((len(points) * 6, 2), np.float32)
    out[0::6], out[1::6] = points, tips
    out[2::6], out[3::6] = tips, left
    out[4::6], out[5::6] = tips, right
    return out


class ModeBar(QWidget):
    """A bar split into the lower-left and upper-right shares, with a tick at the true share (1/5)."""

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self._fraction: Optional[float] = None
        self._truth = 0.2
        self.setMinimumHeight(22)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def set_fraction(self, lower_left: Optional[float], truth: Optional[float] = None) -> None:
        self._fraction = lower_left
        if truth is not None:
            self._truth = truth
        self.update()

    def fraction(self) -> Optional[float]:
        return self._fraction

    def text(self) -> str:
        if self._fraction is None:
            return "lower-left –   ·   upper-right –"
        f = self._fraction
        return f"lower-left {100 * f:.1f}%   ·   upper-right {100 * (1 - f):.1f}%"

    def sizeHint(self) -> QSize:
        return QSize(300, 22)

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt override
        p = QPainter(self)
        r = self.rect().adjusted(0, 0, -1, -1)
        p.fillRect(r, self.palette().base())
        if self._fraction is not None:
            wl = int(round(r.width() * self._fraction))
            p.fillRect(r.x(), r.y(), wl, r.height(), LOWER_LEFT)
            p.fillRect(r.x() + wl, r.y(), r.width() - wl, r.height(), UPPER_RIGHT)
        xt = r.x() + int(round(r.width() * self._truth))
        p.setPen(Qt.GlobalColor.black)
        p.drawLine(xt, r.y(), xt, r.bottom())
        p.drawText(r, Qt.AlignmentFlag.AlignCenter, self.text())
        p.setPen(self.palette().mid().color())
        p.drawRect(r)
        p.end()


def _spin_until(done: Callable[[], bool], timeout_s: float) -> bool:
    """Process events until done() (only for scripted use such as screenshots; widgets never block)."""
    t0 = time.monotonic()
    while not done() and time.monotonic() - t0 < timeout_s:
        QApplication.processEvents()
        time.sleep(0.01)
    return done()


def set_heat_map(item: pg.ImageItem, density: np.ndarray) -> None:
    """Show a (rows = y, cols = x) density over [-BOX, BOX]^2, levels from 0 to its maximum."""
    item.setImage(density, autoLevels=False, levels=(0.0, float(density.max()) or 1.0))
    item.setRect(QRectF(-BOX, -BOX, 2 * BOX, 2 * BOX))  # pyqtgraph needs the image before the rect


def _particle_plot(title: str) -> Tuple[pg.PlotWidget, pg.ImageItem, pg.ScatterPlotItem, pg.ScatterPlotItem]:
    w = pg.PlotWidget()
    w.setTitle(title, size="9pt")
    w.setAspectLocked(True)
    w.setRange(xRange=(-VIEW, VIEW), yRange=(-VIEW, VIEW), padding=0)
    w.showGrid(x=False, y=False)
    img = pg.ImageItem(axisOrder="row-major")
    img.setColorMap(pg.colormap.get("inferno"))
    img.setOpacity(0.85)
    w.addItem(img)
    ll = pg.ScatterPlotItem(size=3, pen=None, brush=pg.mkBrush(LOWER_LEFT))
    ur = pg.ScatterPlotItem(size=3, pen=None, brush=pg.mkBrush(UPPER_RIGHT))
    w.addItem(ll)
    w.addItem(ur)
    # the line x + y = 0 that lower_left_fraction counts against
    w.addItem(pg.PlotDataItem([-3 * VIEW, 3 * VIEW], [3 * VIEW, -3 * VIEW],
                              pen=pg.mkPen((255, 255, 255, 90), width=1, style=Qt.PenStyle.DashLine)))
    label = pg.TextItem("x + y = 0: lower-left below", color=(200, 200, 200), anchor=(0, 0.5), angle=-45)
    label.setPos(-VIEW + 1.2, VIEW - 0.6)
    w.addItem(label)
    return w, img, ll, ur


class ToyTab(QWidget):
    """The 2-D toy lab. API used by tests and the main window: ``chain_settings()``, ``run()``, ``stop()``,
    ``train(loss, n_iters)``, ``stop_training()``, ``last_frame()``, ``losses()``, ``arrow_data()``;
    signals ``run_finished``, ``training_finished``, ``fields_ready``. ``controller``: the RunController
    of the chains (one is made when None); training and field computations have their own workers."""

    run_finished = Signal()
    training_finished = Signal()
    fields_ready = Signal()

    def __init__(self, controller: Optional[RunController] = None, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.controller = controller if controller is not None else RunController("toy chains", self)
        self.training = RunController("toy score training", self)
        self._field: Optional[ToyField] = None
        self._field_worker: Optional[GeneratorWorker] = None
        self._field_pending = False
        self._frame: Optional[ToyFrame] = None
        self._frame_dirty = False
        self._history: List[Tuple[int, float, float]] = []
        self._running = False
        self._training_running = False
        self._train_report: Optional[ToyTraining] = None
        self._train_dirty = False
        self._losses: List[Tuple[int, float]] = []
        self._trained: Optional[TrainedScore] = None
        self._train_t0 = 0.0
        self._run_t0 = 0.0
        self._train_loss = "dsm"
        self._build_ui()

        self._timer = QTimer(self)
        self._timer.setInterval(33)  # at most ~30 repaints a second, latest state only
        self._timer.timeout.connect(self._on_tick)
        self._field_timer = QTimer(self)
        self._field_timer.setSingleShot(True)
        self._field_timer.setInterval(150)  # settle spin-box edits before recomputing the fields
        self._field_timer.timeout.connect(self._request_fields)

        c = self.controller
        c.state_changed.connect(self._update_buttons)
        c.event_emitted.connect(self._on_frame)
        c.errored.connect(self._on_chain_error)
        c.finished.connect(self._on_chains_finished)
        t = self.training
        t.state_changed.connect(self._update_buttons)
        t.event_emitted.connect(self._on_train_report)
        t.errored.connect(self._on_train_error)
        t.finished.connect(self._on_training_finished)

        self._on_settings_changed()
        self._field_timer.stop()
        self._request_fields()
        app = QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)

    # --- UI ------------------------------------------------------------------------------------
    def _build_ui(self) -> None:
        def dspin(lo, hi, val, dec, step, tip):
            s = QDoubleSpinBox(self)
            s.setRange(lo, hi)
            s.setDecimals(dec)
            s.setSingleStep(step)
            s.setValue(val)
            s.setToolTip(tip)
            s.setKeyboardTracking(False)
            s.valueChanged.connect(self._on_settings_changed)
            return s

        def ispin(lo, hi, val, tip):
            s = QSpinBox(self)
            s.setRange(lo, hi)
            s.setValue(val)
            s.setToolTip(tip)
            s.setKeyboardTracking(False)
            s.valueChanged.connect(self._on_settings_changed)
            return s

        d = ChainSettings()
        self.sigma_begin_spin = dspin(0.05, 100, d.sigma_begin, 2, 1.0, "σ₁: the largest noise scale")
        self.sigma_end_spin = dspin(0.01, 50, d.sigma_end, 3, 0.1, "σ_L: the smallest noise scale")
        self.levels_spin = ispin(1, 50, d.num_classes, "L: number of noise levels (geometric ladder)")
        self.ladder_label = QLabel(self)
        self.ladder_label.setWordWrap(True)
        self.ladder_label.setStyleSheet("color: palette(placeholder-text);")
        g1 = QGroupBox("Noise ladder σ₁ > … > σ_L", self)
        f1 = QFormLayout(g1)
        f1.addRow("σ₁", self.sigma_begin_spin)
        f1.addRow("σ_L", self.sigma_end_spin)
        f1.addRow("L", self.levels_spin)
        f1.addRow(self.ladder_label)

        self.step_lr_spin = dspin(1e-4, 10, d.step_lr, 4, 0.01,
                                  "ε: α_i = ε·σ_i²/σ_L²; plain Langevin uses the step ε (= α_L)")
        self.t_spin = ispin(1, 5000, d.n_steps_each, "T: steps per level; plain Langevin makes L·T steps")
        self.particles_spin = ispin(10, 20000, d.n_particles, "Particles, started uniformly in [−8, 8]²")
        self.seed_spin = ispin(0, 2_147_483_647, d.seed, "The same seed gives the same particles")
        self.score_combo = QComboBox(self)
        self.score_combo.addItems(["exact score", "learned score (MLP)"])
        self.score_combo.setToolTip("Which score the chains follow; train the MLP below to use a learned one")
        self.score_combo.currentIndexChanged.connect(self._on_settings_changed)
        self.speed_combo = QComboBox(self)
        self.speed_combo.addItems(["watchable (≈ 10 s)", "as fast as possible"])
        self.speed_combo.setToolTip("Watchable slows the chains down so that you can follow the particles")
        self.run_button = QPushButton("Run both chains", self)
        self.run_button.clicked.connect(self.run)
        self.stop_button = QPushButton("Stop", self)
        self.stop_button.clicked.connect(self.stop)
        self.progress = QProgressBar(self)
        self.level_label = QLabel("level –", self)
        self.level_label.setWordWrap(True)
        self.warning_label = QLabel(self)
        self.warning_label.setWordWrap(True)
        self.warning_label.setStyleSheet("color: #e67e22; font-weight: bold;")
        self.warning_label.hide()
        g2 = QGroupBox("Langevin", self)
        v2 = QVBoxLayout(g2)
        f2 = QFormLayout()
        v2.addLayout(f2)
        f2.addRow("Step ε (step_lr)", self.step_lr_spin)
        f2.addRow("Steps per level T", self.t_spin)
        f2.addRow("Particles", self.particles_spin)
        f2.addRow("Seed", self.seed_spin)
        f2.addRow("Score", self.score_combo)
        f2.addRow("Speed", self.speed_combo)
        rb = QHBoxLayout()
        rb.addWidget(self.run_button)
        rb.addWidget(self.stop_button)
        v2.addLayout(rb)
        v2.addWidget(self.progress)
        v2.addWidget(self.level_label)
        v2.addWidget(self.warning_label)

        self.loss_combo = QComboBox(self)
        self.loss_combo.addItem("DSM (denoising)", "dsm")
        self.loss_combo.addItem("SSM (sliced)", "ssm")
        self.loss_combo.addItem("SSM-VR (sliced, variance reduced)", "ssm_vr")
        self.iters_spin = QSpinBox(self)
        self.iters_spin.setRange(100, 50000)
        self.iters_spin.setSingleStep(500)
        self.iters_spin.setValue(2000)
        self.iters_spin.setToolTip("Adam steps on batches of 256 mixture samples (a report every 100)")
        self.train_button = QPushButton("Train", self)
        self.train_button.clicked.connect(lambda: self.train())
        self.stop_train_button = QPushButton("Stop", self)
        self.stop_train_button.clicked.connect(self.stop_training)
        self.train_label = QLabel("Not trained: the learned arrows appear while it trains.", self)
        self.train_label.setWordWrap(True)
        g3 = QGroupBox("Learned score (noise-conditional MLP)", self)
        v3 = QVBoxLayout(g3)
        f3 = QFormLayout()
        v3.addLayout(f3)
        f3.addRow("Objective", self.loss_combo)
        f3.addRow("Iterations", self.iters_spin)
        tb = QHBoxLayout()
        tb.addWidget(self.train_button)
        tb.addWidget(self.stop_train_button)
        v3.addLayout(tb)
        v3.addWidget(self.train_label)

        self.explanation = QLabel(EXPLANATION, self)
        self.explanation.setWordWrap(True)
        self.explanation.setTextFormat(Qt.TextFormat.RichText)
        g4 = QGroupBox("What to look for", self)
        QVBoxLayout(g4).addWidget(self.explanation)

        left = QWidget(self)
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        for g in (g1, g2, g3):
            ll.addWidget(g)
        ll.addStretch(1)
        scroll = QScrollArea(self)
        scroll.setWidget(left)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setFixedWidth(350)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)

        # particles
        self.plain_plot, self.plain_img, self.plain_ll, self.plain_ur = _particle_plot(
            "particles start uniform in [−8, 8]²: press Run")
        self.ann_plot, self.ann_img, self.ann_ll, self.ann_ur = _particle_plot("σ₁ → σ_L, T steps per level")
        self.plain_bar, self.ann_bar = ModeBar(self), ModeBar(self)
        self.plain_bar.setToolTip("Share of particles below the line x + y = 0; the tick marks the truth (20%)")
        self.ann_bar.setToolTip(self.plain_bar.toolTip())

        # field
        self.field_plot = pg.PlotWidget()
        self.field_plot.setAspectLocked(True)
        self.field_plot.setRange(xRange=(-BOX, BOX), yRange=(-BOX, BOX), padding=0)
        self.field_img = pg.ImageItem(axisOrder="row-major")
        self.field_img.setColorMap(pg.colormap.get("inferno"))
        self.field_plot.addItem(self.field_img)
        self.exact_arrows = pg.PlotDataItem(connect="pairs", pen=pg.mkPen((235, 235, 235, 200), width=2.5))
        self.learned_arrows = pg.PlotDataItem(connect="pairs", pen=pg.mkPen((0, 230, 160), width=1.2))
        self.field_plot.addItem(self.exact_arrows)
        self.field_plot.addItem(self.learned_arrows)
        legend = self.field_plot.addLegend(offset=(5, 5), brush=pg.mkBrush(0, 0, 0, 170))
        legend.addItem(self.exact_arrows, "exact score")
        legend.addItem(self.learned_arrows, "learned score")
        self.level_slider = QSlider(Qt.Orientation.Horizontal, self)
        self.level_slider.setToolTip("Which noise level the heat map and arrows show (0 = the data, σ = 0)")
        self.level_slider.setRange(0, 0)
        self.level_slider.valueChanged.connect(self._on_level_slider)
        self.follow_check = QCheckBox("follow the annealed chain", self)
        self.follow_check.setChecked(True)
        self.field_label = QLabel(self)
        self.error_label = QLabel(self)
        self.error_label.setWordWrap(True)
        self.error_label.setToolTip("field_error: mean |s_θ − s| / mean |s| on a 41×41 grid, split where p_σ is "
                                    "above 1/1000 of its maximum (high density) or below (low density)")

        # history plots
        self.frac_plot = pg.PlotWidget()
        self.frac_plot.setYRange(0, 1, padding=0.02)
        self.frac_plot.setLabel("bottom", "step")
        self.truth_line = pg.InfiniteLine(0.2, angle=0, pen=pg.mkPen((200, 200, 200), style=Qt.PenStyle.DashLine),
                                          label="truth 0.2", labelOpts={"position": 0.08, "color": (200, 200, 200)})
        self.frac_plot.addItem(self.truth_line)
        frac_legend = self.frac_plot.addLegend(offset=(-5, 5), brush=pg.mkBrush(0, 0, 0, 170))
        self.plain_curve = self.frac_plot.plot(pen=pg.mkPen((180, 180, 180), width=2), name="plain")
        self.ann_curve = self.frac_plot.plot(pen=pg.mkPen((0, 230, 160), width=2), name="annealed")
        del frac_legend
        self.loss_plot = pg.PlotWidget()
        self.loss_plot.setLabel("bottom", "iteration")
        self.loss_curve = self.loss_plot.plot(pen=pg.mkPen((255, 120, 120), width=2), symbol="o", symbolSize=4)

        def box(title: str, *widgets, stretch=None) -> QGroupBox:
            g = QGroupBox(title, self)
            lay = QVBoxLayout(g)
            lay.setContentsMargins(4, 4, 4, 4)
            for k, w in enumerate(widgets):
                lay.addWidget(w, (stretch or {}).get(k, 0))
            return g

        plain_box = box("Plain Langevin: x ← x + ε/2·∇log p(x) + √ε·z", self.plain_plot, self.plain_bar,
                        stretch={0: 1})
        ann_box = box("Annealed Langevin (Algorithm 1)", self.ann_plot, self.ann_bar, stretch={0: 1})
        lvl_row = QWidget(self)
        lr = QHBoxLayout(lvl_row)
        lr.setContentsMargins(0, 0, 0, 0)
        lr.addWidget(self.field_label)
        lr.addWidget(self.level_slider, 1)
        self.field_label.setMinimumWidth(self.field_label.fontMetrics().horizontalAdvance("level 10/10: σ = 13.8 "))
        field_box = box("Density p_σ and score field ∇log p_σ", self.field_plot, lvl_row, self.follow_check,
                        self.error_label, stretch={0: 1})
        frac_box = box("Lower-left share of the particles (truth: 1/5)", self.frac_plot, stretch={0: 1})
        loss_box = box("Learned score: training loss", self.loss_plot, stretch={0: 1})

        right = QGridLayout()
        right.addWidget(plain_box, 0, 0)
        right.addWidget(ann_box, 0, 1)
        right.addWidget(field_box, 0, 2)
        right.addWidget(frac_box, 1, 0)
        right.addWidget(g4, 1, 1)
        right.addWidget(loss_box, 1, 2)
        for col in range(3):
            right.setColumnStretch(col, 1)
        right.setRowStretch(0, 3)
        right.setRowStretch(1, 2)
        main = QHBoxLayout(self)
        main.addWidget(scroll)
        main.addLayout(right, 1)

    # --- settings ------------------------------------------------------------------------------
    def chain_settings(self) -> ChainSettings:
        fast = self.speed_combo.currentIndex() == 1
        L, T = self.levels_spin.value(), self.t_spin.value()
        frames = 10 if fast else 25
        n_frames = L * min(T, frames)
        return ChainSettings(self.sigma_begin_spin.value(), self.sigma_end_spin.value(), L, self.step_lr_spin.value(),
                             T, self.particles_spin.value(), self.seed_spin.value(), BOX, frames,
                             0.0 if fast else min(0.1, 10.0 / max(n_frames, 1)))

    def _ladder(self) -> List[float]:
        s1, sl, L = self.sigma_begin_spin.value(), self.sigma_end_spin.value(), self.levels_spin.value()
        if L == 1:
            return [s1]
        return [float(math.exp(math.log(s1) + (math.log(sl) - math.log(s1)) * i / (L - 1))) for i in range(L)]

    def _settings_problem(self) -> Optional[str]:
        if self.levels_spin.value() > 1 and self.sigma_end_spin.value() >= self.sigma_begin_spin.value():
            return "σ_L must be smaller than σ₁."
        if self.score_combo.currentIndex() == 1:
            if self._trained is None:
                return "No learned score yet: train the MLP first (or choose the exact score)."
            if not same_ladder(self._trained.sigmas, self._ladder()):
                return "The MLP was trained on another noise ladder: train it again for these σ."
        return None

    def _on_settings_changed(self, *_) -> None:
        s = self.chain_settings()
        lad = self._ladder()
        shown = ", ".join(f"{v:.3g}" for v in (lad if len(lad) <= 6 else lad[:3] + lad[-2:]))
        if len(lad) > 6:
            shown = shown.replace(f"{lad[2]:.3g}, ", f"{lad[2]:.3g}, …, ", 1)
        alpha_1 = s.step_lr * (lad[0] / lad[-1]) ** 2
        self.ladder_label.setText(f"σ: {shown}<br>α₁ = ε·(σ₁/σ_L)² = {alpha_1:.3g},  α_L = ε = {s.step_lr:g}")
        warn = step_size_warning(s.step_lr, s.sigma_begin, s.sigma_end) if s.sigma_end < s.sigma_begin else None
        problem = self._settings_problem()
        text = " ".join(t for t in ((f"⚠ {warn}" if warn else None), problem) if t)
        self.warning_label.setText(text)
        self.warning_label.setVisible(bool(text))
        if self._field is None or not same_ladder(self._field.sigmas, lad):
            self._field_timer.start()
        self._update_buttons()

    def warning_text(self) -> str:
        """The step-size warning and settings problems shown under the Run button ('' when none)."""
        return self.warning_label.text()

    # --- fields (density and exact score) ------------------------------------------------------
    def _request_fields(self) -> None:
        if self._field_worker is not None:
            self._field_pending = True
            return
        lad = self._ladder()
        if len(lad) > 1 and lad[-1] >= lad[0]:
            return
        w = GeneratorWorker(field_job(lad[0], lad[-1], len(lad)), self)
        w.event_emitted.connect(self._on_field)
        w.finished.connect(self._on_field_finished)
        w.errored.connect(lambda m: self.field_label.setText(f"field: {m}"))
        self._field_worker = w
        w.start()

    def _on_field(self, field: ToyField) -> None:
        self._field = field
        L = len(field.sigmas)
        first = self.level_slider.maximum() == 0  # the slider starts with range (0, 0)
        self.level_slider.blockSignals(True)
        self.level_slider.setRange(0, L)
        self.level_slider.setValue(L if first else min(self.level_slider.value(), L))  # first: the data-like level
        self.level_slider.blockSignals(False)
        set_heat_map(self.plain_img, field.density[0])
        if self._frame is None:
            set_heat_map(self.ann_img, field.density[1])
        self.truth_line.setValue(field.true_lower_left)
        self.plain_bar.set_fraction(self.plain_bar.fraction(), field.true_lower_left)
        self.ann_bar.set_fraction(self.ann_bar.fraction(), field.true_lower_left)
        self._draw_field()
        self.fields_ready.emit()

    def _on_field_finished(self, _result) -> None:
        w, self._field_worker = self._field_worker, None
        if w is not None:
            w.wait()
            w.deleteLater()
        if self._field_pending:
            self._field_pending = False
            self._request_fields()

    def _on_level_slider(self, _value: int) -> None:
        self._draw_field()

    def _draw_field(self) -> None:
        f = self._field
        if f is None:
            return
        j = self.level_slider.value()  # 0 = data, i = level i (1-based)
        set_heat_map(self.field_img, f.density[j])
        ex = f.exact[j]
        spacing = 2 * BOX / N_ARROWS
        norms = np.linalg.norm(ex, axis=1)
        scale = 0.9 * spacing / max(float(np.percentile(norms, 95)), 1e-9)  # one scale for exact and learned
        self.exact_arrows.setData(quiver_segments(f.points, ex, scale))
        r = self._train_report
        if j >= 1 and r is not None and r.learned.shape[0] == len(f.sigmas):
            self.learned_arrows.setData(quiver_segments(f.points, r.learned[j - 1], scale))
            hi, lo = r.high_error[j - 1], r.low_error[j - 1]
            self.error_label.setText(f"Learned-field error at σ_{j}: high-density regions <b>{100 * hi:.0f}%</b>, "
                                     f"low-density regions <b>{100 * lo:.0f}%</b> (iteration {r.step:,})")
        else:
            self.learned_arrows.setData([], [])
            self.error_label.setText("Train the MLP to compare its field with the exact one." if j >= 1 else
                                     "σ = 0: the data's own score (the learned network has no σ = 0 level).")
        self.field_label.setText("data (σ = 0)" if j == 0 else f"level {j}/{len(f.sigmas)}: σ = {f.sigmas[j - 1]:.3g}")

    def arrow_data(self) -> Tuple[np.ndarray, np.ndarray]:
        """The exact and learned quiver segments as drawn ((6M, 2) each; learned empty before training)."""
        def xy(item):
            x, y = item.getData()
            return np.empty((0, 2)) if x is None else np.stack([x, y], axis=1)
        return xy(self.exact_arrows), xy(self.learned_arrows)

    # --- chains --------------------------------------------------------------------------------
    def run(self) -> bool:
        problem = self._settings_problem()
        if problem or self._running or self.controller.is_busy():
            self.level_label.setText(problem or "Already running.")
            return False
        s = self.chain_settings()
        learned = self._trained if self.score_combo.currentIndex() == 1 else None
        self._frame, self._frame_dirty, self._history = None, False, []
        self.plain_curve.setData([], [])
        self.ann_curve.setData([], [])
        self.frac_plot.setXRange(0, s.num_classes * s.n_steps_each, padding=0.02)
        self.progress.setRange(0, s.num_classes * s.n_steps_each)
        self.progress.setValue(0)
        self._running = True
        self._run_t0 = time.monotonic()
        self._timer.start()
        self.controller.start(chains_job(s, learned))
        self._update_buttons()
        return True

    def stop(self) -> None:
        if self._running and self.controller.can("stopping"):
            self.controller.stop()

    def is_running(self) -> bool:
        return self._running

    def run_action(self) -> None:
        """The window's Run shortcut."""
        self.run()

    def last_frame(self) -> Optional[ToyFrame]:
        return self._frame

    def fraction_history(self) -> List[Tuple[int, float, float]]:
        """(global step, plain lower-left share, annealed lower-left share) for every frame of the last run."""
        return list(self._history)

    def _on_frame(self, frame: ToyFrame) -> None:
        if not self._running:
            return
        self._frame = frame
        self._frame_dirty = True
        self._history.append((frame.global_step, frame.plain_lower_left, frame.annealed_lower_left))

    def _on_chain_error(self, message: str) -> None:
        self.level_label.setText(f"<span style='color:#c0392b'>The chains failed: {message}</span>")

    def _on_chains_finished(self, result) -> None:
        if not self._running:
            return
        self._running = False
        self._frame_dirty = True
        self._on_tick()
        if not self._training_running:
            self._timer.stop()
        f = self._frame
        if self.controller.last_error is None and f is not None:
            done = "Stopped" if isinstance(result, dict) and result.get("stopped") else "Done"
            self.level_label.setText(f"{done} after {f.global_step}/{f.total_steps} steps "
                                     f"({time.monotonic() - self._run_t0:.1f} s): lower-left share plain "
                                     f"{f.plain_lower_left:.2f}, annealed {f.annealed_lower_left:.2f} (truth 0.20).")
        self._update_buttons()
        self.run_finished.emit()

    def _draw_frame(self) -> None:
        f = self._frame
        for x, ll, ur in ((f.plain, self.plain_ll, self.plain_ur), (f.annealed, self.ann_ll, self.ann_ur)):
            low = x.sum(axis=1) < 0
            ll.setData(x[low, 0], x[low, 1])
            ur.setData(x[~low, 0], x[~low, 1])
        self.plain_bar.set_fraction(f.plain_lower_left)
        self.ann_bar.set_fraction(f.annealed_lower_left)
        out = int((np.abs(f.annealed) > VIEW).any(axis=1).sum())
        self.ann_plot.setTitle(f"level {f.level + 1}/{f.n_levels} · σ = {f.sigma:.3g} · α = {f.step_size:.3g}"
                               + (f" · {out} outside" if out else ""), size="9pt")
        self.plain_plot.setTitle(f"step {f.global_step}/{f.total_steps} · step size ε = {f.plain_step_size:g}",
                                 size="9pt")
        if self._field is not None and f.level + 1 < len(self._field.density):
            set_heat_map(self.ann_img, self._field.density[f.level + 1])
            if self.follow_check.isChecked() and self.level_slider.value() != f.level + 1:
                self.level_slider.setValue(f.level + 1)
        h = np.asarray(self._history, dtype=np.float64)
        if len(h):
            self.plain_curve.setData(h[:, 0], h[:, 1])
            self.ann_curve.setData(h[:, 0], h[:, 2])
        self.progress.setValue(f.global_step)
        if self._running:
            self.level_label.setText(f"level {f.level + 1}/{f.n_levels} · σ = {f.sigma:.3g} · α = {f.step_size:.3g} · "
                                     f"step {f.step}/{f.n_steps}")

    # --- learned score -------------------------------------------------------------------------
    def train(self, loss: Optional[str] = None, n_iters: Optional[int] = None) -> bool:
        """Train the MLP on the current ladder (loss 'dsm', 'ssm' or 'ssm_vr'); reports arrive every 100 steps."""
        lad = self._ladder()
        if self._training_running or self.training.is_busy() or (len(lad) > 1 and lad[-1] >= lad[0]):
            return False
        loss = loss or self.loss_combo.currentData()
        n_iters = n_iters or self.iters_spin.value()
        self._losses, self._train_report, self._train_dirty = [], None, False
        self.loss_curve.setData([], [])
        self.loss_plot.setXRange(0, n_iters, padding=0.02)
        self._training_running = True
        self._train_t0 = time.monotonic()
        self._train_loss = loss
        self.train_label.setText(f"Training with {loss.upper()}…")
        self._timer.start()
        self.training.start(train_job(loss, n_iters, lad[0], lad[-1], len(lad), seed=self.seed_spin.value()))
        self._update_buttons()
        return True

    def stop_training(self) -> None:
        if self._training_running and self.training.can("stopping"):
            self.training.stop()

    def losses(self) -> List[Tuple[int, float]]:
        return list(self._losses)

    def trained(self) -> Optional[TrainedScore]:
        return self._trained

    def _on_train_report(self, r: ToyTraining) -> None:
        if not self._training_running:
            return
        self._train_report = r
        self._losses.append((r.step, r.loss))
        self._train_dirty = True

    def _on_train_error(self, message: str) -> None:
        self.train_label.setText(f"<span style='color:#c0392b'>Training failed: {message}</span>")

    def _on_training_finished(self, result) -> None:
        if not self._training_running:
            return
        self._training_running = False
        self._train_dirty = True
        self._on_tick()
        if not self._running:
            self._timer.stop()
        if isinstance(result, TrainedScore):
            self._trained = result
            r = self._train_report
            self.train_label.setText(f"Trained with {result.loss.upper()}: {r.step if r else 0:,} iterations in "
                                     f"{time.monotonic() - self._train_t0:.1f} s, final loss "
                                     f"{r.loss if r else float('nan'):.4g}. Choose “learned score” to run the "
                                     f"chains with it.")
        self._on_settings_changed()
        self.training_finished.emit()

    def _draw_training(self) -> None:
        if self._losses:
            a = np.asarray(self._losses, dtype=np.float64)
            self.loss_curve.setData(a[:, 0], a[:, 1])
        r = self._train_report
        if r is not None and self._training_running:
            self.train_label.setText(f"Training with {self._train_loss.upper()}: iteration {r.step:,}/{r.n_iters:,}, "
                                     f"loss {r.loss:.4g}")
        self._draw_field()

    def screenshot_demo(self, timeout_s: float = 120.0) -> None:
        """Fill the tab with representative content for a screenshot: train the MLP briefly and run both
        chains at full speed, waiting (with the event loop running) until both are done."""
        self.speed_combo.setCurrentIndex(1)
        self.iters_spin.setValue(1000)
        _spin_until(lambda: self._field is not None, timeout_s)
        self.train()
        _spin_until(lambda: not self._training_running, timeout_s)
        self.run()
        _spin_until(lambda: not self._running, timeout_s)
        self.level_slider.setValue(max(1, self.level_slider.maximum()))

    # --- lifetime ------------------------------------------------------------------------------
    def shutdown(self, timeout_ms: int = 5000) -> None:
        """Stop this tab's jobs and wait for their threads (a QThread must not outlive its widget)."""
        self._field_timer.stop()
        if self._running and self.controller.can("stopping"):
            self.controller.stop()
        if self._training_running and self.training.can("stopping"):
            self.training.stop()
        if self._field_worker is not None:
            self._field_worker.stop()
            self._field_worker.wait(timeout_ms)
        if self._running:
            self.controller.wait(timeout_ms)
        self.training.wait(timeout_ms)

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt override
        self.shutdown()
        super().closeEvent(event)

    # --- repaint -------------------------------------------------------------------------------
    def _on_tick(self) -> None:
        if self._frame_dirty and self._frame is not None:
            self._frame_dirty = False
            self._draw_frame()
        if self._train_dirty:
            self._train_dirty = False
            self._draw_training()

    def _update_buttons(self, *_) -> None:
        if not hasattr(self, "stop_train_button"):
            return
        busy = self._running or self.controller.is_busy()
        training = self._training_running or self.training.is_busy()
        self.run_button.setEnabled(not busy and self._settings_problem() is None)
        self.run_button.setToolTip(self._settings_problem() or "Run plain and annealed Langevin side by side")
        self.stop_button.setEnabled(self._running and self.controller.state in ("running", "paused"))
        self.train_button.setEnabled(not training)
        self.stop_train_button.setEnabled(self._training_running and self.training.state in ("running", "paused"))
        for w in (self.sigma_begin_spin, self.sigma_end_spin, self.levels_spin):
            w.setEnabled(not busy and not training)
        for w in (self.step_lr_spin, self.t_spin, self.particles_spin, self.seed_spin, self.score_combo,
                  self.speed_combo):
            w.setEnabled(not busy)
        self.loss_combo.setEnabled(not training)
        self.iters_spin.setEnabled(not training)
