"""All of the studio's work that touches torch, as plain functions and generators over ncsn_core (no Qt here).

Generators run on a GeneratorWorker's thread (studio/worker.py, the bridge), so loading, sampling, training,
classifying and exporting happen off the GUI thread and only numbers and numpy arrays reach the widgets.
The engine is imported inside the functions (only its configs and resources, numpy only, at the top): importing
this module loads neither torch nor a model.
"""
from __future__ import annotations

import dataclasses
import json
import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Generator, List, Optional, Sequence, Tuple

import numpy as np

from ncsn_core.config import ModelConfig, SampleConfig, ToySettings, check_data_mean
from ncsn_core.resources import BUILTIN_MODEL, load_builtin_mnist  # numpy only: no torch on the GUI thread
from ncsn_core.images import (fit_mask, read_image as read_image_file, read_mask,  # noqa: F401 (numpy + Pillow:
                               to_model_image)                                  # the CLI's readers)


# --- checkpoints and resources ------------------------------------------------------------------
def builtin_model() -> Path:
    """The bundled MNIST score model (the file may be missing in a fresh clone)."""
    return BUILTIN_MODEL


def builtin_digits() -> Tuple[np.ndarray, np.ndarray]:
    """The bundled MNIST test split: images uint8 (10000, 28, 28), labels (10000,); DataError when damaged."""
    return load_builtin_mnist()


def cpu_has_bf16() -> bool:
    """Whether this CPU has AMX, with which training in bf16 pays (ncsn_core.precision; reads /proc/cpuinfo only)."""
    from ncsn_core.precision import cpu_has_bf16 as has
    return has()


def latest_checkpoint(run_dir: str) -> Optional[Path]:
    from ncsn_core.checkpoint import latest_checkpoint as latest
    return latest(Path(run_dir))


def is_unfinished(run_dir: str) -> bool:
    """A run folder whose newest checkpoint is below its configured n_iters (it can be resumed)."""
    from ncsn_core.training import is_unfinished as unfinished
    return unfinished(run_dir)


@dataclass(frozen=True)
class CheckpointInfo:
    """What the UI needs to know about a model: its config (dict), ladder and image shape.
    path: the checkpoint file (or a description of a model held in memory); step: None when unknown.
    has_data_mean: whether it holds the training data's mean image (needed by the 'data-mean' start;
    checkpoints saved before NCSN Studio recorded it do not). has_guide: whether it carries an autoguidance guide
    (`ncsn guide`), which the sampler's guidance weight needs; has_discriminator: whether it carries a discriminator
    (`ncsn discriminator`), which the discriminator guidance weight needs."""
    path: str
    step: Optional[int]
    config: dict
    sigmas: Tuple[float, ...]
    has_ema: bool
    arch: str
    channels: int
    image_size: int
    has_data_mean: bool = False
    has_guide: bool = False
    has_discriminator: bool = False

    @property
    def name(self) -> str:
        return str(self.config.get("name", "custom"))

    @property
    def sample(self) -> SampleConfig:
        """The model's own sampler settings (its config's `sample` section)."""
        return SampleConfig(**self.config["sample"])

    @property
    def model(self) -> ModelConfig:
        """The network's config; `model.conditioning == "sigma"`: a continuous-sigma model (Heun, any ladder)."""
        return ModelConfig(**self.config["model"])


def inspect_checkpoint(path: str) -> Generator[Any, Optional[str], CheckpointInfo]:
    """Read a checkpoint's description (weights_only load; no model is built). Returns CheckpointInfo."""
    from ncsn_core.checkpoint import read_state
    from ncsn_core.config import Config
    from ncsn_core.noise import sigmas_from_config
    state = read_state(Path(path))
    cfg = Config.from_dict(state["config"])
    return CheckpointInfo(state["_path"], int(state["step"]), cfg.to_dict(),
                          tuple(float(s) for s in sigmas_from_config(cfg.noise)), bool(state.get("ema")),
                          cfg.model.arch, cfg.data.channels, cfg.data.image_size, state.get("data_mean") is not None,
                          bool(state.get("guide")), bool(state.get("discriminator")))
    yield  # noqa: unreachable - makes this a generator, so it runs on the worker like the others


def warm_imports() -> Generator[Any, Optional[str], None]:
    """Import now what a first training would import on its first optimiser step: torch.optim brings in
    torch._dynamo (about 900 modules, 2 s, and shared libraries whose loading holds the GIL: a 250 to 370 ms
    freeze of the window on a busy machine, benchmarks/README.md). The main window runs this once the first
    model has been read, while the user looks at the form, rather than after a click on Train."""
    import torch._dynamo  # noqa: F401 - imported for its side effect: it is in sys.modules from now on
    yield  # noqa: unreachable - makes this a generator, so it runs on the worker like the others


def model_info(model: Any, config: Any, path: str, step: Optional[int] = None, has_ema: bool = False) -> CheckpointInfo:
    """The description of a model already built (a ScoreModel with .sigmas, and its Config)."""
    return CheckpointInfo(str(path), step, config.to_dict(), tuple(float(v) for v in model.sigmas.tolist()), has_ema,
                          config.model.arch, config.data.channels, config.data.image_size,
                          getattr(model, "data_mean", None) is not None, getattr(model, "guide", None) is not None,
                          getattr(model, "discriminator", None) is not None)


def load_model(path: str) -> Tuple[Any, CheckpointInfo]:
    """Load a checkpoint (.pt or run folder) on the CPU: (the model, kept opaque by the widgets, its info).
    CheckpointError (a RuntimeError) says what is wrong with the file."""
    from ncsn_core.checkpoint import load_checkpoint
    ld = load_checkpoint(Path(path), device="cpu")
    return ld.model, model_info(ld.model, ld.config, str(ld.path), ld.step, bool(ld.state.get("ema")))


# --- sampling ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class SampleSettings:
    """One run of a sampler: its settings `sample` (a validated SampleConfig, as the sampler form gives it; None =
    the checkpoint config's own; Alg. 1 notation: alpha_i = step_lr * sigma_i^2 / sigma_L^2) and what belongs to the
    run (checkpoint, n, seed, EMA, a subset of levels). levels: indices into the model's own ladder (annealed
    Langevin or pc on that ladder); None = all."""
    checkpoint: str = ""
    n: int = 16
    seed: int = 0
    use_ema: bool = True
    levels: Optional[Tuple[int, ...]] = None
    sample: Optional[SampleConfig] = None
    yield_every: int = 0  # 0: the sampler's default (about 4 frames per level; every sigma step for Heun)
    gif_max_frames: int = 200
    classify: bool = True

    def sample_config(self, default: SampleConfig) -> SampleConfig:
        """The sampler this run uses: `sample`, or `default` (the checkpoint config's) when it is None."""
        return self.sample if self.sample is not None else default

    def to_meta(self, sc: SampleConfig) -> dict:
        """The settings for exported files, with `sc` the sampler actually used."""
        return {"checkpoint": self.checkpoint, "n": self.n, "seed": self.seed, "ema": self.use_ema,
                "levels": list(self.levels) if self.levels is not None else "all", **dataclasses.asdict(sc),
                "notation": "alpha_i = step_lr * sigma_i^2 / sigma_L^2; x <- x + alpha_i/2 * s + sqrt(alpha_i) * z"}


@dataclass(frozen=True)
class SamplerPlan:
    """What a SampleConfig runs on a model (ncsn_core.sampling.plan, as plain numbers): the ladder (descending;
    Heun: its sigma steps), the number of states reported in all (progress bars), the network evaluations per
    sample, and describe()'s one line."""
    sampler: str
    sigmas: Tuple[float, ...]
    total_steps: int
    nfe: int
    description: str


def sampler_plan(model: Any, sc: SampleConfig) -> SamplerPlan:
    """The plan of `sc` on `model` (a ScoreModel, or a LevelSubset); ConfigError when the model cannot take it."""
    from ncsn_core.sampling import describe, plan
    pl = plan(model, sc)
    return SamplerPlan(sc.sampler, tuple(float(v) for v in pl.sigmas.tolist()), pl.total_steps, pl.nfe,
                       describe(sc, pl))


class LevelSubset:
    """A model restricted to some levels of its own ladder, for ncsn_core.sampling.sample: `sigmas` is the
    subset, a long condition i is subset position i (mapped to the model's level index[i]); a float condition
    (a continuous-sigma model) passes through. The last level of the subset acts as sigma_L."""

    def __init__(self, model: Any, levels: Sequence[int]):
        import torch
        self.model = model
        self.index = torch.tensor(tuple(levels), dtype=torch.long, device=model.sigmas.device)
        self.sigmas = model.sigmas[self.index]
        self.continuous = getattr(model, "continuous", False)
        self.data_mean = getattr(model, "data_mean", None)
        self.data_config = getattr(model, "data_config", None)  # for the exact large-sigma score
        guide = getattr(model, "guide", None)  # the autoguidance guide shares the model's ladder
        self.guide = LevelSubset(guide, levels) if guide is not None else None
        self.discriminator = getattr(model, "discriminator", None)  # conditioned on sigma values, not levels

    def __call__(self, x, cond):
        return self.model(x, cond if cond.is_floating_point() else self.index[cond])


def check_levels(levels: Optional[Sequence[int]], sc: SampleConfig, n_model_levels: int) -> Optional[Tuple[int, ...]]:
    """The sorted subset (None = every level); ValueError when it does not fit the model or the sampler."""
    if levels is None:
        return None
    if sc.sampler == "heun" or sc.custom_ladder():
        raise ValueError("a subset of levels runs on the model's own ladder with annealed Langevin or pc; for "
                         f"sampler={sc.sampler!r} with num_levels/sigma_begin/sigma_end set the ladder instead")
    chosen = tuple(sorted(set(int(i) for i in levels)))
    if not chosen or min(chosen) < 0 or max(chosen) >= n_model_levels:
        raise ValueError(f"levels {list(chosen)} are not in the model's ladder 0..{n_model_levels - 1}")
    return chosen


@dataclass(frozen=True)
class SampleStarted:
    info: CheckpointInfo
    plan: SamplerPlan               # sigmas: the ladder actually run (a subset of the model's when levels is set)
    alphas: Tuple[float, ...]       # annealed Langevin: alpha_i for each level run; () for the other samplers
    model_levels: Tuple[int, ...]   # the model's level index of each level run (Heun: the sigma step index)

    @property
    def sigmas(self) -> Tuple[float, ...]:
        return self.plan.sigmas

    @property
    def total_steps(self) -> int:
        return self.plan.total_steps


@dataclass(frozen=True)
class SampleLabels:
    """The digit classifier's reading of the final samples: digits (n,), confidences (n,) in [0, 1]."""
    digits: np.ndarray
    confidences: np.ndarray


@dataclass(frozen=True)
class SampleResult:
    """x: (n, C, H, W) float32 clamped to [0, 1]; grid, frames and the level strip in each view it has (x, denoised,
    both; none when no level finished): uint8 (H, W, 3) images for export."""
    x: np.ndarray
    grid: np.ndarray
    nrow: int
    strips: Dict[str, np.ndarray]
    strip_sigmas: Tuple[float, ...]
    frames: List[np.ndarray]
    meta: dict
    completed: bool
    seconds: float


def grid_nrow(n: int) -> int:
    return max(1, int(np.ceil(np.sqrt(n))))


def yield_interval(sc, n_sigmas: int, asked: int = 0) -> Optional[int]:
    """Steps between the states a sampler yields in the studio: `asked` when given; else every sigma step (Heun),
    and for Langevin and pc about 5 frames per level but at least every 10 steps: Stop reaches a generator only
    when it yields, and the sampler's own default (a quarter of a level) made a long level deaf to it."""
    if asked or sc.sampler == "heun":
        return asked or None
    return max(1, min(10, max(sc.steps_per_level(n_sigmas)) // 5))


def sample_job(s: SampleSettings) -> Generator[Any, Optional[str], Optional[SampleResult]]:
    """Load the checkpoint, run the chosen sampler (ncsn_core.sampling.sample) over the chosen levels, record the
    level strip and the chain GIF frames on this thread, and classify the final digits when a classifier is
    available."""
    import torch
    from ncsn_core.checkpoint import load_checkpoint
    from ncsn_core.export import ChainRecorder, LevelStrip, make_grid, to_uint8
    from ncsn_core.sampling import sample, step_sizes

    t0 = time.perf_counter()
    ld = load_checkpoint(Path(s.checkpoint), device="cpu", use_ema=s.use_ema)
    cfg = ld.config
    if cfg.model.arch == "mlp":
        raise ValueError(f"{ld.path} is a 2-D toy model: open it in the Toy 2-D lab tab instead")
    sc = s.sample_config(cfg.sample)
    check_data_mean(sc.init, ld.model.data_mean is not None)
    levels = check_levels(s.levels, sc, len(ld.model.sigmas))
    model = ld.model if levels is None else LevelSubset(ld.model, levels)
    pl = sampler_plan(model, sc)
    alphas = tuple(step_sizes(torch.tensor(pl.sigmas), sc.step_lr).tolist()) if sc.sampler == "annealed_langevin" \
        else ()
    info = model_info(ld.model, cfg, str(ld.path), ld.step, bool(ld.state.get("ema")))
    first = yield SampleStarted(info, pl, alphas, levels if levels is not None else tuple(range(len(pl.sigmas))))

    shape = (s.n, cfg.data.channels, cfg.data.image_size, cfg.data.image_size)
    strip, chain = LevelStrip(min(s.n, 8)), ChainRecorder(min(s.n, 16), nrow=4, max_frames=s.gif_max_frames)
    gen = sample(model, sc, shape, seed=s.seed, device=torch.device("cpu"),
                 yield_every=yield_interval(sc, len(pl.sigmas), s.yield_every))
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
    meta = {**s.to_meta(sc), "description": pl.description, "nfe": pl.nfe, "step": ld.step,
            "sigmas": list(pl.sigmas), "completed": completed, "config": cfg.to_dict()}
    if completed and s.classify and cfg.data.channels == 1 and cfg.data.image_size == 28:
        labels = classify_digits(x)
        if labels is not None:
            yield labels
    return SampleResult(x.numpy().astype(np.float32), to_uint8(make_grid(x, nrow=nrow)), nrow,
                        {v: strip.image(v) for v in strip.views()} if strip.columns else {}, tuple(strip.sigmas),
                        list(chain.frames), meta,
                        completed, time.perf_counter() - t0)


def classify_digits(x) -> Optional[SampleLabels]:
    """The digit classifier's labels for x (B, 1, 28, 28) in [0, 1], or None when no classifier is available."""
    try:
        from ncsn_core import metrics
        digits, conf = metrics.classify(x)
        return SampleLabels(np.asarray(digits, np.int64), np.asarray(conf, np.float32))
    except Exception:  # noqa: BLE001 - labels are a nicety: no classifier file means no labels
        return None


def export_samples(r: SampleResult, what: str, path: str, labels: Optional[SampleLabels] = None,
                   strip_view: str = "x") -> Path:
    """Write a finished run's grid PNG, level strip PNG (in strip_view: x, denoised or both, as the chain view shows;
    x where the run has no denoised estimates) or chain GIF (`what`), with its settings as metadata."""
    from ncsn_core.export import save_gif, save_png
    meta = dict(r.meta)
    if labels is not None:
        meta["classifier_digits"] = [int(d) for d in labels.digits]
    if what == "grid":
        return save_png(r.grid, Path(path), meta)
    if what == "strip":
        if not r.strips:
            raise ValueError("no level finished, so there is no strip to export")
        view = strip_view if strip_view in r.strips else "x"
        return save_png(r.strips[view], Path(path), {**meta, "columns_sigma": list(r.strip_sigmas), "strip_view": view})
    return save_gif(r.frames, Path(path), meta)


# --- inpainting -------------------------------------------------------------------------------
def inpaint_job(model: Any, image: np.ndarray, known: np.ndarray, s: SampleSettings) -> Callable[[], Generator]:
    """A generator factory for GeneratorWorker: image (C, H, W) float in [0, 1], known (H, W) bool (True = known
    pixel); the generator (ncsn_core.sampling.sample with image and mask: Alg. 2 for the Langevin samplers, the
    known pixels on their noisy path for the ODE) yields LangevinState for s.n completions of the same image.
    s.sample None runs SampleConfig()'s defaults (the paper's Alg. 1; the studio's form always gives one)."""
    image, known = np.array(image, np.float32), np.array(known, np.float32)

    def make_gen():
        import torch
        from ncsn_core.sampling import sample
        sc = s.sample_config(SampleConfig())
        check_data_mean(sc.init, getattr(model, "data_mean", None) is not None)  # None: saved before it was recorded
        device = model.sigmas.device
        img = torch.from_numpy(image).to(device)[None].expand(s.n, -1, -1, -1).contiguous()
        m = torch.from_numpy(known).to(device)[None, None]
        every = yield_interval(sc, len(sampler_plan(model, sc).sigmas), s.yield_every)
        return sample(model, sc, img.shape, seed=s.seed, device=device, yield_every=every, image=img, mask=m)
    return make_gen


def inpaint_results(image: np.ndarray, known: np.ndarray, x: np.ndarray) -> dict:
    """A finished run as shown and exported: original (C, H, W), occluded (C, H, W), completions (n, C, H, W) with
    the known pixels pasted from the original, raw (n, C, H, W) the sampler's final x, known (H, W) bool."""
    m = known[None].astype(np.float32)
    # the known pixels are pasted from the original: the sampler's own copy carries sigma_L noise
    # (without denoising), which is not part of the completion
    completions = np.clip(x * (1 - m) + image[None] * m, 0, 1).astype(np.float32)
    return {"original": image.copy(), "occluded": image * m, "completions": completions, "raw": x.copy(),
            "known": known.copy()}


def export_inpaint_row(results: dict, info: CheckpointInfo, path: str) -> Path:
    """Write original, occluded input and completions (an inpaint_results dict with its "settings" and "meta") as
    one PNG grid, as `ncsn inpaint` does, with the settings, the image and the model in its text chunks."""
    import torch
    from ncsn_core.export import save_grid
    r, s = results, results["settings"]
    row = np.concatenate([r["original"][None], r["occluded"][None], r["completions"]]).astype(np.float32)
    sampler = dataclasses.asdict(s.sample_config(SampleConfig()))
    meta = {"checkpoint": info.path, "step": info.step, "seed": s.seed, "n": s.n, **sampler, **r["meta"],
            "layout": "original, occluded, then completions", "known_pixels": "pasted from the original",
            "config": info.config}
    return save_grid(torch.from_numpy(row), Path(path), nrow=len(row), meta=meta)


# --- training ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainStarting:
    """Sent first by train_job: the run folder and config the run uses (config as a dict)."""
    run_dir: str
    config: dict
    resume: bool
    sigmas: Tuple[float, ...]


def config_sigmas(config_dict: dict) -> Tuple[float, ...]:
    """The noise ladder sigma_1 > ... > sigma_L a config (as a dict) trains on."""
    from ncsn_core.config import Config
    from ncsn_core.noise import sigmas_from_config
    return tuple(float(v) for v in sigmas_from_config(Config.from_dict(config_dict).noise))


def train_job(config_dict: dict, run_dir: str, resume: bool = False, device: Optional[str] = None,
              interrupt: Optional[threading.Event] = None, max_minutes: Optional[float] = None):
    """ncsn_core.training.train with a first TrainStarting event; commands pass straight through. interrupt: set it
    to stop without waiting for the step under way (GeneratorWorker.stop() sets the worker's own). max_minutes: the
    time limit (train()'s, as `ncsn train --minutes`)."""
    from ncsn_core.config import Config
    from ncsn_core.training import train
    cfg = Config.from_dict(config_dict)
    if resume:  # the run folder's own config wins: a resumed run must continue the same experiment
        cfg = Config.from_dict(json.loads((Path(run_dir) / "config.json").read_text()))
    first = yield TrainStarting(str(run_dir), cfg.to_dict(), resume, config_sigmas(cfg.to_dict()))
    if first == "stop":  # stopped before the first step: nothing to save
        return None
    gen = train(cfg, run_dir, resume=resume, device=device, interrupt=interrupt, max_minutes=max_minutes)
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


# --- evaluation -------------------------------------------------------------------------------
class Cancelled(Exception):
    """Raised from the progress callback when the user stops an evaluation."""


@dataclass(frozen=True)
class EvalProgress:
    text: str
    fraction: Optional[float]


@dataclass(frozen=True)
class NeighbourRows:
    """The memorisation grid of an evaluation: each row a sample, then its k nearest training images."""
    images: np.ndarray         # (rows * (1 + k), C, H, W) float32 in [0, 1], row by row
    distances: List[List[float]]  # (rows, k): L2 distance of each neighbour to its row's sample, ascending
    nrow: int                  # 1 + k images per row
    path: str                  # the PNG it was read from (ncsn_core.evaluate.save_neighbour_grid)


@dataclass(frozen=True)
class EvalOutcome:
    result: dict                          # evaluate()'s JSON-ready figures
    neighbours: Optional[NeighbourRows]   # None when the training images could not be read


def evaluate_job(s: SampleSettings, batch_size: int, stop_flag: threading.Event,
                 progress: Callable[[EvalProgress], None],
                 neighbours: Optional[str] = None) -> Generator[Any, Optional[str], Optional[EvalOutcome]]:
    """ncsn_core.evaluate.evaluate on this thread. `evaluate` blocks, so progress goes out through the
    `progress` callable (a Qt signal's emit is thread-safe) and a stop is a flag checked there.
    neighbours: where evaluate() writes the neighbours grid PNG, which is read back here, off the GUI thread."""
    from ncsn_core.evaluate import evaluate, read_neighbour_grid

    def on_progress(*args, **kwargs) -> None:
        if stop_flag.is_set():
            raise Cancelled()
        progress(_progress_of(args, kwargs))

    try:
        result = evaluate(s.checkpoint, n=s.n, seed=s.seed, use_ema=s.use_ema, device="cpu", batch_size=batch_size,
                          progress=on_progress, neighbours=neighbours, sample=s.sample)
    except Cancelled:
        return None
    rows = None
    if result.get("neighbours_png"):
        images, meta = read_neighbour_grid(result["neighbours_png"])
        rows = NeighbourRows(images, meta["distances"], 1 + len(meta["distances"][0]), result["neighbours_png"])
    return EvalOutcome(result, rows)
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


# --- the 2-D toy (paper, Sec. 3 and Fig. 3) -----------------------------------------------------
N_DENSITY = 161       # heat-map resolution over [-box, box]^2
N_ARROWS = 17         # quiver resolution (N_ARROWS^2 arrows)


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
    box: float
    density: np.ndarray        # (L + 1, N_DENSITY, N_DENSITY), rows = y from -box up, cols = x
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


def same_ladder(a: Sequence[float], b: Sequence[float]) -> bool:
    return len(a) == len(b) and bool(np.allclose(a, b, rtol=1e-4))


def arrow_points(box: float, n: int = N_ARROWS) -> np.ndarray:
    lin = np.linspace(-box * (n - 1) / n, box * (n - 1) / n, n, dtype=np.float32)
    gx, gy = np.meshgrid(lin, lin, indexing="xy")
    return np.stack([gx.ravel(), gy.ravel()], axis=1)


def toy_field_job(s: ToySettings) -> Callable[[], Generator]:
    """The mixture's density and exact score on a grid, at sigma = 0 and at each level of s's ladder."""
    def make_gen():
        import torch
        from ncsn_core.noise import geometric_sigmas
        from ncsn_core.toy import paper_mixture
        mix = paper_mixture()
        sig = [0.0] + geometric_sigmas(s.sigma_begin, s.sigma_end, s.num_classes).tolist()
        lin = torch.linspace(-s.box, s.box, N_DENSITY)
        gx, gy = torch.meshgrid(lin, lin, indexing="xy")
        grid = torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)
        pts = torch.from_numpy(arrow_points(s.box))
        with torch.no_grad():
            dens = torch.stack([mix.log_prob(grid, v).exp().reshape(N_DENSITY, N_DENSITY) for v in sig])
            exact = torch.stack([mix.score(pts, v) for v in sig])
        yield ToyField(tuple(sig[1:]), s.box, dens.numpy(), pts.numpy(), exact.numpy(), float(mix.weights[0]))
    return make_gen


def toy_chains_job(s: ToySettings, frames_per_level: int, delay_s: float = 0.0,
                   learned: Optional[TrainedScore] = None) -> Callable[[], Generator]:
    """Plain and annealed Langevin (s) in lockstep, about `frames_per_level` frames per level, sleeping delay_s
    after each (to make them watchable); with `learned`, both use the trained network instead of the exact
    scores (the plain chain its smallest-sigma level)."""
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
        k = max(1, T // max(1, frames_per_level))
        # the plain chain yields at every multiple of gcd(k, T), which includes every global step at which
        # the annealed chain yields (multiples of k within a level, and each level's end)
        plain = langevin(plain_score, x0, s.langevin_step_size, s.langevin_n_steps, seed=s.seed + 1,
                         yield_every=math.gcd(k, T))
        ann = annealed_langevin(score_net, sigmas, x0.shape, s.step_lr, T, seed=s.seed + 2, x0=x0, yield_every=k)
        return _lockstep(plain, ann, delay_s)
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


def toy_train_job(loss: str, n_iters: int, s: ToySettings) -> Callable[[], Generator]:
    """toy.train_toy_score on s's ladder, each report with the learned field and field_error per level;
    returns a TrainedScore (also when stopped early)."""
    def make_gen():
        import torch
        from ncsn_core.noise import geometric_sigmas
        from ncsn_core.toy import field_error, paper_mixture, train_toy_score
        mix = paper_mixture()
        sigmas = geometric_sigmas(s.sigma_begin, s.sigma_end, s.num_classes)
        pts = torch.from_numpy(arrow_points(s.box))
        net = None
        for step, value, net in train_toy_score(loss, n_iters, sigmas, seed=s.seed, mixture=mix):
            with torch.no_grad():
                learned = torch.stack([net(pts, torch.full((len(pts),), i, dtype=torch.long))
                                       for i in range(len(sigmas))])
            errs = [field_error(net, mix, sigmas, i, box=s.box) for i in range(len(sigmas))]
            cmd = yield ToyTraining(step, n_iters, value, learned.numpy(),
                                    tuple(e["high_density_rel_error"] for e in errs),
                                    tuple(e["low_density_rel_error"] for e in errs))
            if cmd == "stop":
                break
        return TrainedScore(net, tuple(sigmas.tolist()), loss) if net is not None else None
    return make_gen
