"""The studio's long work as generators over ncsn_core (no Qt here): they run on a GeneratorWorker's thread,
so everything torch (loading, sampling, recording exports, classifying) happens off the GUI thread and
only numbers and numpy arrays reach the widgets."""
from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Generator, List, Optional, Sequence, Tuple

import numpy as np


# --- checkpoints ------------------------------------------------------------------------------
@dataclass(frozen=True)
class CheckpointInfo:
    """What the UI needs to know about a checkpoint: its config (dict), ladder and image shape.
    has_data_mean: whether it holds the training data's mean image (needed by the 'data-mean' chain start;
    checkpoints saved before NCSN Studio recorded it do not)."""
    path: str
    step: int
    config: dict
    sigmas: Tuple[float, ...]
    has_ema: bool
    arch: str
    channels: int
    image_size: int
    has_data_mean: bool = False

    @property
    def name(self) -> str:
        return str(self.config.get("name", "custom"))


def inspect_checkpoint(path: str) -> Generator[Any, Optional[str], CheckpointInfo]:
    """Read a checkpoint's description (weights_only load; no model is built). Returns CheckpointInfo."""
    from ncsn_core.checkpoint import read_state
    from ncsn_core.config import Config
    from ncsn_core.noise import sigmas_from_config
    state = read_state(Path(path))
    cfg = Config.from_dict(state["config"])
    return CheckpointInfo(state["_path"], int(state["step"]), cfg.to_dict(),
                          tuple(float(s) for s in sigmas_from_config(cfg.noise)), bool(state.get("ema")),
                          cfg.model.arch, cfg.data.channels, cfg.data.image_size, state.get("data_mean") is not None)
    yield  # noqa: unreachable - makes this a generator, so it runs on the worker like the others


# --- sampling ---------------------------------------------------------------------------------
# The chain's start (ncsn_core.sampling.initial_noise): value, label in the UI, explanation.
INIT_CHOICES = (
    ("uniform", "uniform",
     "x\u2080 ~ U[0, 1): uniform noise, the paper's start for its image sampler"),
    ("gaussian", "gaussian",
     "x\u2080 ~ N(0, \u03c3\u2081\u00b2 I): zero-mean Gaussian noise at the top level's scale"),
    ("data-mean", "data mean",
     "x\u2080 ~ N(\u03bc, \u03c3\u2081\u00b2 I), \u03bc the training data's mean image: the mean of the top "
     "level's perturbed data. A zero-mean start sits nearest the digits with the least ink and, when \u03c3\u2081 "
     "is too small for the chain to mix between classes, over-produces them"),
)
NO_DATA_MEAN = ("this checkpoint holds no training-data mean image (it was saved before NCSN Studio recorded "
                "it): choose the uniform or gaussian start")
KAPPA_TIP = ("Variance correction \u03ba: 0 = the paper's Alg. 1; 1 = the chain's stationary variance is exactly "
             "\u03c3_i\u00b2 for a Gaussian target; removes the extra ink of the paper's update")


def check_start(init: str, variance_correction: float, has_data_mean: bool) -> None:
    """ValueError with a message for the user when the chain's start or kappa cannot be used."""
    if init not in tuple(v for v, _, _ in INIT_CHOICES):
        raise ValueError(f"unknown start {init!r}: choose " + ", ".join(lab for _, lab, _ in INIT_CHOICES))
    if not 0.0 <= float(variance_correction) <= 1.0:
        raise ValueError(f"variance correction \u03ba = {variance_correction} must be in [0, 1] (0 = the paper's "
                         f"Alg. 1)")
    if init == "data-mean" and not has_data_mean:
        raise ValueError(f"start 'data mean' is not possible: {NO_DATA_MEAN}")


@dataclass(frozen=True)
class SampleSettings:
    """Annealed Langevin settings (Alg. 1 notation: alpha_i = step_lr * sigma_i^2 / sigma_L^2).
    levels: indices into the model's own ladder (a subset, descending sigma); None = all levels.
    init (the chain's start: 'uniform', 'gaussian', 'data-mean') and variance_correction (kappa in [0, 1]):
    None = the checkpoint config's value (sample_job resolves them, see `resolved`)."""
    checkpoint: str
    n: int = 16
    seed: int = 0
    step_lr: float = 5e-5
    n_steps_each: int = 20
    denoise: bool = True
    use_ema: bool = True
    levels: Optional[Tuple[int, ...]] = None
    yield_every: int = 0  # 0: about 4 frames per level
    gif_max_frames: int = 200
    classify: bool = True
    init: Optional[str] = None
    variance_correction: Optional[float] = None

    def resolved(self, sample_config: Any) -> "SampleSettings":
        """These settings with init / variance_correction taken from `sample_config` (a SampleConfig) where None."""
        return dataclasses.replace(
            self, init=sample_config.init if self.init is None else self.init,
            variance_correction=float(sample_config.variance_correction if self.variance_correction is None
                                      else self.variance_correction))

    def to_meta(self) -> dict:
        """The settings for exported files; call on `resolved` settings so init / kappa are the values used."""
        return {"checkpoint": self.checkpoint, "n": self.n, "seed": self.seed, "step_lr": self.step_lr,
                "n_steps_each": self.n_steps_each, "denoise": self.denoise, "ema": self.use_ema,
                "levels": list(self.levels) if self.levels is not None else "all",
                "init": self.init, "variance_correction": self.variance_correction,
                "notation": "alpha_i = step_lr * sigma_i^2 / sigma_L^2; x <- x + alpha_i/2 * s + sqrt(alpha_i) * z"}


@dataclass(frozen=True)
class SampleStarted:
    info: CheckpointInfo
    sigmas: Tuple[float, ...]       # the ladder actually run (a subset of the model's when levels is set)
    alphas: Tuple[float, ...]       # alpha_i for each of those levels
    model_levels: Tuple[int, ...]   # the model's level index of each
    total_steps: int


@dataclass(frozen=True)
class SampleLabels:
    """The digit classifier's reading of the final samples: digits (n,), confidences (n,) in [0, 1]."""
    digits: np.ndarray
    confidences: np.ndarray


@dataclass(frozen=True)
class SampleResult:
    """x: (n, C, H, W) float32 clamped to [0, 1]; grid, strip, frames: uint8 (H, W, 3) images for export."""
    x: np.ndarray
    grid: np.ndarray
    nrow: int
    strip: Optional[np.ndarray]
    strip_sigmas: Tuple[float, ...]
    frames: List[np.ndarray]
    meta: dict
    completed: bool
    seconds: float


def grid_nrow(n: int) -> int:
    return max(1, int(np.ceil(np.sqrt(n))))


def sample_job(s: SampleSettings) -> Generator[Any, Optional[str], Optional[SampleResult]]:
    """Load the checkpoint, run annealed Langevin over the chosen levels, record the level strip and the
    chain GIF frames on this thread, and classify the final digits when a classifier is available."""
    import torch
    from ncsn_core.checkpoint import load_checkpoint
    from ncsn_core.export import ChainRecorder, LevelStrip, make_grid, to_uint8
    from ncsn_core.sampling import annealed_langevin, step_sizes

    t0 = time.perf_counter()
    ld = load_checkpoint(Path(s.checkpoint), device="cpu", use_ema=s.use_ema)
    cfg = ld.config
    if cfg.model.arch == "mlp":
        raise ValueError(f"{ld.path} is a 2-D toy model: open it in the Toy 2-D lab tab instead")
    s = s.resolved(cfg.sample)  # None = the checkpoint config's start / kappa; the meta names what was used
    check_start(s.init, s.variance_correction, ld.model.data_mean is not None)
    all_sigmas = ld.model.sigmas
    levels = tuple(range(len(all_sigmas))) if s.levels is None else tuple(sorted(set(int(i) for i in s.levels)))
    if not levels or min(levels) < 0 or max(levels) >= len(all_sigmas):
        raise ValueError(f"levels {list(levels)} are not in the model's ladder 0..{len(all_sigmas) - 1}")
    index = torch.tensor(levels, dtype=torch.long)
    sigmas = all_sigmas[index]

    def score_net(x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return ld.model(x, index[labels])  # subset position -> the model's own noise level

    alphas = step_sizes(sigmas, s.step_lr)
    info = CheckpointInfo(str(ld.path), ld.step, cfg.to_dict(), tuple(float(v) for v in all_sigmas),
                          bool(ld.state.get("ema")), cfg.model.arch, cfg.data.channels, cfg.data.image_size,
                          ld.model.data_mean is not None)
    first = yield SampleStarted(info, tuple(float(v) for v in sigmas), tuple(float(a) for a in alphas), levels,
                                len(levels) * s.n_steps_each)

    shape = (s.n, cfg.data.channels, cfg.data.image_size, cfg.data.image_size)
    every = s.yield_every or max(1, s.n_steps_each // 4)
    strip, chain = LevelStrip(min(s.n, 8)), ChainRecorder(min(s.n, 16), nrow=4, max_frames=s.gif_max_frames)
    gen = annealed_langevin(score_net, sigmas, shape, s.step_lr, s.n_steps_each, seed=s.seed, init=s.init,
                            denoise=s.denoise, yield_every=every, device=torch.device("cpu"),
                            variance_correction=s.variance_correction, init_mean=ld.model.data_mean)
    if first == "stop":  # stopped before the chain began
        return None
    x, completed, cmd = None, False, None
    try:
        while True:
            st = gen.send(cmd) if cmd else next(gen)
            strip.add(st)
            chain.add(st)
            completed = completed or st.final
            x = st.x
            cmd = yield st
    except StopIteration as stop:
        x = stop.value if stop.value is not None else x
    x = x.clamp(0, 1)
    nrow = grid_nrow(s.n)
    meta = {**s.to_meta(), "step": ld.step, "sigmas": [float(v) for v in sigmas], "completed": completed,
            "config": cfg.to_dict()}
    if completed and s.classify and cfg.data.channels == 1 and cfg.data.image_size == 28:
        labels = classify_digits(x)
        if labels is not None:
            yield labels
    return SampleResult(x.numpy().astype(np.float32), to_uint8(make_grid(x, nrow=nrow)), nrow,
                        strip.image() if strip.columns else None, tuple(strip.sigmas), list(chain.frames), meta,
                        completed, time.perf_counter() - t0)


def classify_digits(x) -> Optional[SampleLabels]:
    """The digit classifier's labels for x (B, 1, 28, 28) in [0, 1], or None when no classifier is available."""
    try:
        from ncsn_core import metrics
        digits, conf = metrics.classify(x)
        return SampleLabels(np.asarray(digits, np.int64), np.asarray(conf, np.float32))
    except Exception:  # noqa: BLE001 - labels are a nicety: no classifier file means no labels
        return None


def classifier_available() -> bool:
    try:
        from ncsn_core import metrics
        return hasattr(metrics, "load_classifier")
    except Exception:  # noqa: BLE001
        return False


# --- training ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainStarting:
    """Sent first by train_job: the run folder and config the run uses (config as a dict)."""
    run_dir: str
    config: dict
    resume: bool
    sigmas: Tuple[float, ...]


def train_job(config_dict: dict, run_dir: str, resume: bool = False, device: Optional[str] = None):
    """ncsn_core.training.train with a first TrainStarting event; commands pass straight through."""
    from ncsn_core.config import Config
    from ncsn_core.noise import sigmas_from_config
    from ncsn_core.training import train
    cfg = Config.from_dict(config_dict)
    if resume:  # the run folder's own config wins: a resumed run must continue the same experiment
        import json
        cfg = Config.from_dict(json.loads((Path(run_dir) / "config.json").read_text()))
    first = yield TrainStarting(str(run_dir), cfg.to_dict(), resume,
                                tuple(float(v) for v in sigmas_from_config(cfg.noise)))
    if first == "stop":  # stopped before the first step: nothing to save
        return None
    gen = train(cfg, run_dir, resume=resume, device=device)
    cmd = None
    try:
        while True:
            ev = gen.send(cmd) if cmd else next(gen)
            if type(ev).__name__ == "Preview":  # saved like the CLI does: runs/<name>/samples/preview_<step>.png
                _save_preview(ev, Path(run_dir), cfg)
            cmd = yield ev
    except StopIteration as stop:
        return stop.value


def _save_preview(ev, run_dir: Path, cfg) -> None:
    import torch
    from ncsn_core.export import save_grid
    imgs = torch.as_tensor(np.asarray(ev.images))
    save_grid(imgs, run_dir / "samples" / f"preview_{ev.step:08d}.png", nrow=grid_nrow(len(imgs)),
              meta={"config": cfg.to_dict(), "step": ev.step})


def read_metrics(run_dir: str) -> List[dict]:
    """The TrainStep records of a run's metrics.jsonl (torn or foreign lines skipped)."""
    import json
    out = []
    p = Path(run_dir) / "metrics.jsonl"
    if not p.exists():
        return out
    for line in p.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict) and "loss" in rec and "step" in rec:
            out.append(rec)
    return out


def validate_config(config_dict: dict) -> Optional[str]:
    """None when the dict makes a valid Config, else the ConfigError message."""
    from ncsn_core.config import Config, ConfigError
    try:
        Config.from_dict(config_dict)
    except (ConfigError, TypeError, ValueError) as e:
        return str(e)
    return None


# --- evaluation -------------------------------------------------------------------------------
class Cancelled(Exception):
    """Raised from the progress callback when the user stops an evaluation."""


@dataclass(frozen=True)
class EvalProgress:
    text: str
    fraction: Optional[float]


def evaluate_job(checkpoint: str, n: int, seed: int, step_lr: Optional[float], n_steps_each: Optional[int],
                 denoise: Optional[bool], use_ema: bool, batch_size: int, stop_flag: threading.Event,
                 progress: Callable[[EvalProgress], None]) -> Generator[Any, Optional[str], Optional[dict]]:
    """ncsn_core.evaluate.evaluate on this thread. `evaluate` blocks, so progress goes out through the
    `progress` callable (a Qt signal's emit is thread-safe) and a stop is a flag checked there."""
    from ncsn_core.evaluate import evaluate

    def on_progress(*args, **kwargs) -> None:
        if stop_flag.is_set():
            raise Cancelled()
        progress(_progress_of(args, kwargs))

    try:
        result = evaluate(checkpoint, n=n, seed=seed, step_lr=step_lr, n_steps_each=n_steps_each, denoise=denoise,
                          use_ema=use_ema, device="cpu", batch_size=batch_size, progress=on_progress)
    except Cancelled:
        return None
    return result
    yield  # noqa: unreachable - a generator like the other jobs


def _progress_of(args: Sequence, kwargs: Dict[str, Any]) -> EvalProgress:
    """Whatever evaluate() reports (a fraction, (done, total), a message, or a dict) as text + fraction."""
    vals = list(args) + list(kwargs.values())
    nums = [v for v in vals if isinstance(v, (int, float)) and not isinstance(v, bool)]
    texts = [str(v) for v in vals if isinstance(v, str)]
    frac = None
    if len(nums) >= 2 and nums[1]:
        frac = float(nums[0]) / float(nums[1])
    elif len(nums) == 1 and 0 <= nums[0] <= 1:
        frac = float(nums[0])
    for v in vals:
        if isinstance(v, dict):
            d = v
            if "done" in d and "total" in d and d["total"]:
                frac = d["done"] / d["total"]
            texts.append(str(d.get("stage", d.get("message", ""))))
    if frac is None and len(nums) >= 2:
        texts.append(f"{nums[0]}/{nums[1]}")
    return EvalProgress(" ".join(t for t in texts if t), None if frac is None else max(0.0, min(1.0, frac)))
