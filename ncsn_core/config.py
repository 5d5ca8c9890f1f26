"""Frozen, validated configuration dataclasses that travel inside every checkpoint and export."""
from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Optional, Tuple, Union

ARCHS = ("refinenet", "compact", "mlp")
LOSSES = ("dsm", "ssm", "ssm_vr")
INITS = ("uniform", "gaussian", "data-mean")
CONDITIONINGS = ("level", "sigma")
SIGMA_SAMPLINGS = ("levels", "log-uniform", "log-normal")
WEIGHTINGS = ("sigma2", "edm")
LR_SCHEDULES = ("constant", "cosine")
PRECISIONS = ("fp32", "bf16")  # ncsn_core.precision: what each means and where bf16 pays
# annealed_langevin: the paper's Alg. 1; pc: predictor-corrector (Song et al. 2021, reverse diffusion + Langevin);
# heun: the probability-flow ODE with Heun's method on Karras et al.'s sigma schedule (continuous-sigma models)
SAMPLERS = ("annealed_langevin", "pc", "heun")


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the value and the fix."""


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ConfigError(msg)


@dataclass(frozen=True)
class DataConfig:
    """Where training images come from and how they are preprocessed (paper: [0, 1], dequantised)."""
    dataset: str = "mnist-builtin"  # mnist-builtin | mnist | fashion-mnist | cifar10 | celeba | folder | toy
    root: Optional[str] = None       # data folder for torchvision sets or the user's images
    image_size: int = 28
    channels: int = 1
    dequantize: bool = True          # x*255/256 + U(0, 1/256)
    random_flip: bool = False        # paper: on for CIFAR-10 and CelebA
    download: bool = False           # torchvision download, only on request
    holdout: int = 0                 # the last `holdout` examples are kept out of training (for evaluation)

    def __post_init__(self) -> None:
        _check(self.channels in (1, 2, 3), f"channels={self.channels}: use 1 (grayscale) or 3 (RGB), or 2 for toy data")
        _check(self.image_size >= 1, f"image_size={self.image_size} must be positive")
        _check(self.holdout >= 0, f"holdout={self.holdout} must be >= 0")


@dataclass(frozen=True)
class ModelConfig:
    """Score network architecture."""
    arch: str = "compact"
    ngf: int = 64                    # RefineNet width (paper: 64 for MNIST, 128 for CIFAR-10)
    channels: tuple = (16, 48, 96)   # compact model: width at full, 1/2 and 1/4 resolution
    hidden: int = 128                # MLP width
    scale_by_sigma: bool = False     # divide the output by sigma_i (NCSNv2); the paper's RefineNet does not
    # 'level': the level index picks CondInstanceNorm++'s parameters (the paper); 'sigma': any sigma > 0, through an
    # embedding of log sigma, with Karras et al.'s denoiser preconditioning (compact model only; models/__init__.py)
    conditioning: str = "level"
    # share of features dropped in each residual block while training (compact model; 0 = off): a regulariser
    # against the gap between the training digits' DSM loss and unseen digits'
    dropout: float = 0.0
    # a global self-attention block at 1/4 resolution (compact model): every pixel sees the whole digit in one layer
    # (tried on the built-in recipe: no better; README, run A)
    attention: bool = False

    def __post_init__(self) -> None:
        _check(self.arch in ARCHS, f"model arch {self.arch!r} is unknown: choose one of {', '.join(ARCHS)}")
        _check(self.conditioning in CONDITIONINGS,
               f"conditioning {self.conditioning!r} is unknown: choose one of {', '.join(CONDITIONINGS)}")
        _check(self.conditioning == "level" or self.arch == "compact",
               f"conditioning='sigma' is built for the compact model, not arch={self.arch!r}: use conditioning='level'")
        _check(self.conditioning == "level" or not self.scale_by_sigma,
               "scale_by_sigma does not apply to conditioning='sigma' (its preconditioning scales the output already): "
               "set scale_by_sigma to false")
        _check(self.ngf > 0 and self.hidden > 0, "ngf and hidden must be positive")
        _check(0 <= self.dropout < 1, f"model dropout must be in [0, 1), got {self.dropout}")
        _check(self.dropout == 0 or self.arch == "compact",
               f"dropout is built for the compact model, not arch={self.arch!r}: set model.dropout to 0")
        _check(not self.attention or self.arch == "compact",
               f"attention is built for the compact model, not arch={self.arch!r}: set model.attention to false")
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))


@dataclass(frozen=True)
class NoiseConfig:
    """Geometric noise ladder sigma_1 > ... > sigma_L (paper images: 1 -> 0.01, L = 10)."""
    sigma_begin: float = 1.0
    sigma_end: float = 0.01
    num_classes: int = 10

    def __post_init__(self) -> None:
        _check(self.num_classes >= 1, f"num_classes={self.num_classes}: need at least one noise level")
        _check(self.sigma_begin > 0 and self.sigma_end > 0, "sigma_begin and sigma_end must be positive")
        _check(self.num_classes == 1 or self.sigma_begin > self.sigma_end,
               f"sigma_end={self.sigma_end} must be smaller than \u03c3\u2081 = sigma_begin={self.sigma_begin} "
               f"(the ladder is descending)")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (paper: Adam, lr 1e-3, batch 128, 200k iterations, no EMA)."""
    loss: str = "dsm"
    anneal_power: float = 2.0
    batch_size: int = 128
    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    weight_decay: float = 0.0
    n_iters: int = 200_000
    ema_rate: Optional[float] = None  # e.g. 0.999; None disables EMA
    save_every: int = 5000
    preview_every: int = 500
    n_preview: int = 16
    log_every: int = 10
    seed: int = 0
    n_particles: int = 1              # projections per example for sliced score matching
    num_workers: int = 0
    # how each example's sigma is drawn: 'levels' uniformly from the ladder (the paper); 'log-uniform' between
    # sigma_end and sigma_begin; 'log-normal' ln sigma ~ N(lognormal_mean, lognormal_std^2) (Karras et al. 2022,
    # their P_mean = -1.2 on [-1, 1] data is -1.2 - ln 2 here on [0, 1]). The last two need conditioning='sigma'.
    sigma_sampling: str = "levels"
    lognormal_mean: float = -1.9
    lognormal_std: float = 1.2
    # loss weight on |s - target|^2: 'sigma2' sigma^anneal_power (the paper); 'edm' sigma^2 (1 + sigma^2 / 0.25^2),
    # Karras et al.'s lambda(sigma) written for the score (losses.py)
    weighting: str = "sigma2"
    warmup: int = 0                   # linear learning-rate warm-up over this many steps (0: none, the paper)
    # 'constant' (the paper) or 'cosine': lr * (1 + cos(pi p)) / 2, p the run's progress: step / n_iters, or, under
    # a time budget (--minutes), the share of it spent if that is larger (training.lr_at)
    lr_schedule: str = "constant"
    # autoguidance (Karras et al. 2024; ncsn_core.sampling.Guided): at this step the EMA weights (the raw ones without
    # EMA) are kept as the guide that every later checkpoint carries, sampled with sample.guidance; checkpoints
    # before it carry none and sample unguided (their config says guidance 1). 0: no guide
    guide_step: int = 0
    # 'fp32' (the paper), or 'bf16': the loss under bfloat16 autocast (weights, Adam and the loss's sums stay
    # fp32); pays on GPUs and on CPUs with AMX (ncsn_core.precision), slower on other CPUs
    precision: str = "fp32"

    def __post_init__(self) -> None:
        _check(self.loss in LOSSES, f"loss {self.loss!r} is unknown: choose one of {', '.join(LOSSES)}")
        _check(self.batch_size >= 1, f"batch_size={self.batch_size} must be >= 1")
        _check(self.lr > 0, f"lr={self.lr} must be > 0")
        _check(self.n_iters >= 0, f"n_iters={self.n_iters} must be >= 0")
        _check(self.save_every >= 1, f"save_every={self.save_every} must be >= 1")
        _check(self.ema_rate is None or 0 < self.ema_rate < 1, f"ema_rate={self.ema_rate} must be in (0, 1) or None")
        _check(self.sigma_sampling in SIGMA_SAMPLINGS,
               f"sigma_sampling {self.sigma_sampling!r} is unknown: choose one of {', '.join(SIGMA_SAMPLINGS)}")
        _check(self.weighting in WEIGHTINGS, f"weighting {self.weighting!r} is unknown: choose one of {', '.join(WEIGHTINGS)}")
        _check(self.lognormal_std > 0, f"lognormal_std={self.lognormal_std} must be > 0")
        _check(self.warmup >= 0, f"warmup={self.warmup} must be >= 0")
        _check(self.guide_step >= 0, f"guide_step={self.guide_step} must be >= 0 (0: no autoguidance guide)")
        _check(self.precision in PRECISIONS,
               f"precision {self.precision!r} is unknown: choose one of {', '.join(PRECISIONS)}")
        _check(self.lr_schedule in LR_SCHEDULES,
               f"lr_schedule {self.lr_schedule!r} is unknown: choose one of {', '.join(LR_SCHEDULES)}")


@dataclass(frozen=True)
class SampleConfig:
    """Sampler settings. Annealed Langevin in the paper's notation: alpha_i = step_lr * sigma_i^2 / sigma_L^2,
    x <- x + alpha_i/2 * s + sqrt(alpha_i) * z.  (The reference code's step_lr=2e-5 equals 4e-5 here.)

    sampler: see SAMPLERS. n_steps_each: Langevin (corrector) steps per level, one number or one per level.
    num_levels, sigma_begin, sigma_end: the sampling ladder (None: the model's training ladder); another ladder
    needs a continuous-sigma model. Heun takes num_levels sigmas on Karras et al.'s schedule (exponent rho) and
    ignores step_lr and n_steps_each (churn > 0 adds their Alg. 2's noise); pc sizes its corrector steps by snr
    (Song et al. 2021) instead of step_lr."""
    step_lr: float = 4e-5
    n_steps_each: Any = 100
    denoise: bool = False
    init: str = "uniform"
    # kappa in [0, 1]: remove this fraction of the update's excess stationary variance (ncsn_core.sampling); 0 = paper
    variance_correction: float = 0.0
    sampler: str = "annealed_langevin"
    num_levels: Optional[int] = None
    sigma_begin: Optional[float] = None
    sigma_end: Optional[float] = None
    snr: float = 0.16
    rho: float = 7.0
    churn: float = 0.0  # heun: Karras et al.'s S_churn (0 = the deterministic ODE; their Alg. 2 otherwise)
    # autoguidance weight w (Karras et al. 2024): s_guide + w (s - s_guide), the guide a weaker model of the same data
    # that the checkpoint carries (`ncsn guide`); 1 = the model alone
    guidance: float = 1.0
    # 'fp32', or 'bf16': the network under bfloat16 autocast, its scores and the sampler's updates in fp32
    # (ncsn_core.sampling.Bf16); pays on GPUs and CPUs with AMX, slower on other CPUs (ncsn_core.precision)
    precision: str = "fp32"
    # for sigma > exact_above the score is the exact score of the model's own training images smoothed by sigma,
    # in place of the network (ncsn_core.empirical); 0 = the network at every sigma
    exact_above: float = 0.0
    # discriminator guidance weight w (Kim et al. 2023): s + w grad_x log r(x, sigma), log r the log density ratio
    # the checkpoint carries (`ncsn discriminator`: a discriminator's logit, plus a class part where the training
    # images have labels; ncsn_core.discriminator.LogRatio); 0 = off
    dg_weight: float = 0.0

    def __post_init__(self) -> None:
        _check(self.sampler in SAMPLERS, f"sampler {self.sampler!r} is unknown: choose one of {', '.join(SAMPLERS)}")
        _check(0.0 <= self.variance_correction <= 1.0,
               f"variance_correction={self.variance_correction} must be in [0, 1] (0 = the paper's Alg. 1)")
        _check(self.step_lr > 0, f"step_lr={self.step_lr} must be > 0")
        steps = self.n_steps_each
        if isinstance(steps, (list, tuple)):
            _check(len(steps) > 0 and all(int(t) == t and t >= 0 for t in steps),
                   f"n_steps_each={list(steps)}: give one whole number >= 0 per level")
            object.__setattr__(self, "n_steps_each", tuple(int(t) for t in steps))
        else:
            _check(int(steps) == steps and steps >= 1, f"n_steps_each={steps} must be a whole number >= 1")
            object.__setattr__(self, "n_steps_each", int(steps))
        _check(self.init in INITS, f"init {self.init!r} is unknown: choose one of {', '.join(INITS)}")
        _check(self.num_levels is None or self.num_levels >= 1, f"num_levels={self.num_levels} must be >= 1")
        _check(self.sigma_begin is None or self.sigma_begin > 0, f"sigma_begin={self.sigma_begin} must be > 0")
        _check(self.sigma_end is None or self.sigma_end > 0, f"sigma_end={self.sigma_end} must be > 0")
        _check(self.sigma_begin is None or self.sigma_end is None or self.sigma_begin > self.sigma_end,
               f"sigma_end={self.sigma_end} must be smaller than sigma_begin={self.sigma_begin} (the ladder is descending)")
        _check(self.snr > 0, f"snr={self.snr} must be > 0")
        _check(self.rho > 0, f"rho={self.rho} must be > 0")
        _check(self.churn >= 0, f"churn={self.churn} must be >= 0 (0 = the deterministic ODE)")
        _check(self.precision in PRECISIONS,
               f"precision {self.precision!r} is unknown: choose one of {', '.join(PRECISIONS)}")
        _check(self.exact_above >= 0, f"exact_above={self.exact_above} must be >= 0 (0 = the network at every sigma)")
        _check(0.0 <= self.dg_weight <= 10.0, f"dg_weight={self.dg_weight} must be in [0, 10] (0 = no discriminator "
                                              f"guidance; 1 is the theory's weight)")
        _check(1.0 <= self.guidance <= 10.0, f"guidance={self.guidance} must be in [1, 10] (1 = no guidance; "
                                             f"autoguidance helps at about 1.5 to 3)")

    def steps_per_level(self, n_levels: int) -> Tuple[int, ...]:
        """n_steps_each as one count per level (a per-level schedule must have n_levels entries)."""
        if isinstance(self.n_steps_each, tuple):
            _check(len(self.n_steps_each) == n_levels,
                   f"n_steps_each has {len(self.n_steps_each)} entries but the ladder has {n_levels} levels: "
                   f"give one count per level, or one number for all")
            return self.n_steps_each
        return (self.n_steps_each,) * n_levels

    def custom_ladder(self) -> bool:
        return (self.num_levels, self.sigma_begin, self.sigma_end) != (None, None, None)


SAMPLE_FIELDS = tuple(f.name for f in fields(SampleConfig))  # the sampler flags of sample, inpaint and eval


def check_sampler(sample: "SampleConfig", model: "ModelConfig") -> None:
    """ConfigError when the sampler settings need a continuous-sigma model and `model` is level-conditioned."""
    if model.conditioning == "sigma":
        return
    _check(sample.sampler != "heun",
           "the Heun (probability-flow ODE) sampler needs a model conditioned on a continuous sigma "
           "(conditioning='sigma'); this model knows only its training levels: choose annealed_langevin or pc")
    _check(not sample.custom_ladder(),
           "this model is conditioned on its training levels, so it samples on its own ladder only: leave "
           "num_levels, sigma_begin and sigma_end unset (or train with conditioning='sigma')")


def check_data_mean(init: str, has_data_mean: bool) -> None:
    """ConfigError when the 'data-mean' start is chosen for a model without the training data's mean image."""
    _check(init != "data-mean" or has_data_mean,
           "this checkpoint holds no training-data mean (no data mean image: it was saved before NCSN Studio recorded "
           "one), so the 'data-mean' start is unavailable: choose the uniform or gaussian start (on the command line "
           "--init gaussian or --init uniform)")


def step_size_warning(step_lr: float, sigma_begin: float, sigma_end: float, scale: float = 1.0) -> Optional[str]:
    """A warning when the top level's step alpha_1 = step_lr * (sigma_1/sigma_L)^2 is large next to
    sigma_1^2 (the variance of the top level): the chain then overshoots and can blow up (e.g. the paper's
    toy sigma 10 -> 0.1 with step_lr 0.1 gives alpha_1 = 1000). `scale` is sigma_1^2 by default."""
    alpha_1 = step_lr * (sigma_begin / sigma_end) ** 2
    limit = 2.0 * sigma_begin ** 2 * scale
    if alpha_1 > limit:
        return (f"the top level's step alpha_1 = {alpha_1:.3g} exceeds 2*sigma_1^2 = {limit:.3g}: the chain will "
                f"overshoot or diverge; lower step_lr to at most {limit / (sigma_begin / sigma_end) ** 2:.3g}")
    return None


@dataclass(frozen=True)
class ToySettings:
    """The 2-D toy experiment (paper, Fig. 3): from the same uniform start in [-box, box]^2, plain Langevin
    (langevin_n_steps steps of langevin_step_size) and annealed Langevin (Alg. 1: alpha_i = step_lr *
    sigma_i^2 / sigma_L^2, n_steps_each steps per level) on the mixture's exact or learned scores."""
    n_particles: int = 1280
    box: float = 8.0
    langevin_step_size: float = 0.1
    langevin_n_steps: int = 1000
    sigma_begin: float = 20.0
    sigma_end: float = 0.7
    num_classes: int = 10
    step_lr: float = 0.1
    n_steps_each: int = 100
    seed: int = 0

    def __post_init__(self) -> None:
        NoiseConfig(self.sigma_begin, self.sigma_end, self.num_classes)  # the ladder's own checks and wording
        _check(self.n_particles >= 1, f"n_particles={self.n_particles} must be >= 1")
        _check(self.box > 0, f"box={self.box} must be > 0")
        _check(self.langevin_step_size > 0, f"langevin_step_size={self.langevin_step_size} must be > 0")
        _check(self.step_lr > 0, f"step_lr={self.step_lr} must be > 0")
        _check(self.langevin_n_steps >= 1, f"langevin_n_steps={self.langevin_n_steps} must be >= 1")
        _check(self.n_steps_each >= 1, f"n_steps_each={self.n_steps_each} must be >= 1")

    def sigmas(self) -> Tuple[float, ...]:
        """The geometric ladder sigma_1 > ... > sigma_L as floats (noise.geometric_sigmas gives the tensor)."""
        L, ratio = self.num_classes, self.sigma_end / self.sigma_begin
        return tuple(self.sigma_begin * ratio ** (i / max(L - 1, 1)) for i in range(L))


@dataclass(frozen=True)
class Config:
    """Everything needed to rebuild a model and reproduce its samples."""
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    name: str = "custom"

    def __post_init__(self) -> None:
        _check(self.train.sigma_sampling == "levels" or self.model.conditioning == "sigma",
               f"sigma_sampling={self.train.sigma_sampling!r} draws sigmas between the levels, which a level-conditioned "
               f"model cannot take: set model.conditioning='sigma' or sigma_sampling='levels'")
        check_sampler(self.sample, self.model)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Config":
        """Build from a dict; unknown keys are an error that names them."""
        parts = {}
        for f in fields(cls):
            if f.name == "name":
                continue
            parts[f.name] = _sub_from_dict(SECTIONS[f.name], d.get(f.name, {}), f.name)
        unknown = set(d) - {f.name for f in fields(cls)}
        _check(not unknown, f"unknown config section(s) {sorted(unknown)}")
        return cls(name=str(d.get("name", "custom")), **parts)

    def override(self, section: str, **kw: Any) -> "Config":
        """A copy with some fields of one section replaced (validated again)."""
        return replace(self, **{section: replace(getattr(self, section), **kw)})


SECTIONS = {"data": DataConfig, "model": ModelConfig, "noise": NoiseConfig, "train": TrainConfig,
            "sample": SampleConfig}
# the JSON/TOML kinds a field's annotation accepts (bool is an int in Python: kept apart on purpose)
_KINDS = {"int": ("a whole number", (int,)), "float": ("a number", (int, float)), "bool": ("true or false", (bool,)),
          "str": ("a text", (str,)), "tuple": ("a list of whole numbers", (list, tuple))}


def check_partial(partial: Any, source: str, sections: Optional[Tuple[str, ...]] = None, why: str = "") -> dict:
    """A partial config {section: {field: value}, name: text} (from a file, --set or flags) checked against the
    dataclasses: the one validation path for names and kinds of values. sections: those that may change (None:
    all, and the name). Returns it with whole-number floats made ints (1e5 -> 100000). An unknown section or
    field, a section outside `sections` (`why` says why) or a value of the wrong kind is a ConfigError that
    names it, where it came from (`source`) and the valid choices."""
    _check(isinstance(partial, dict), f"{source}: expected sections like {{\"train\": {{\"lr\": 2e-4}}}}, "
                                      f"got {type(partial).__name__}")
    out: dict = {}
    for section, values in partial.items():
        if section == "name" and sections is None:
            _check(isinstance(values, str), f"{source}: name must be a text, got {values!r}")
            out["name"] = values
            continue
        _check(section in SECTIONS or section == "name",
               f"{source}: unknown section {section!r}: choose one of {', '.join(SECTIONS)}")
        _check(sections is None or section in sections,
               f"{source}: the {section!r} section cannot change here, only {' and '.join(sections or ())}{why}")
        _check(isinstance(values, dict), f"{source}: section {section!r} must map field names to values, "
                                         f"got {values!r}")
        kinds = {f.name: f.type for f in fields(SECTIONS[section])}
        unknown = sorted(set(values) - set(kinds))
        _check(not unknown, f"{source}: unknown field{'s' if len(unknown) > 1 else ''} "
                            f"{', '.join(map(repr, unknown))} in {section}: choose one of {', '.join(kinds)}")
        out[section] = {k: _checked_value(f"{section}.{k}", kinds[k], v, source) for k, v in values.items()}
    return out


def _checked_value(key: str, annotation: str, value: Any, source: str) -> Any:
    optional = annotation.startswith("Optional[")
    base = annotation[len("Optional["):-1] if optional else annotation
    if base not in _KINDS or (value is None and optional):
        return value  # Any (n_steps_each: one count or a list) is checked by the dataclass itself
    what, types = _KINDS[base]
    if base == "int" and isinstance(value, float) and value.is_integer():
        value = int(value)
    ok = isinstance(value, types) and not (base in ("int", "float") and isinstance(value, bool))
    if base == "tuple" and ok:
        ok = all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    _check(ok, f"{source}: {key}={value!r} must be {what}{' or null' if optional else ''}")
    return value


def merge(cfg: Config, partial: dict, source: str) -> Config:
    """cfg with a partial config {section: {field: value}} laid over it (check_partial, then the dataclasses'
    own checks, e.g. the cross-checks of Config.__post_init__)."""
    d = cfg.to_dict()
    for section, values in check_partial(partial, source).items():
        if section == "name":
            d["name"] = values
        else:
            d[section].update(values)
    try:
        return Config.from_dict(d)
    except TypeError as e:
        raise ConfigError(f"{source}: {e}") from e


def parse_sets(assignments: list, sections: Optional[Tuple[str, ...]] = None, why: str = "") -> dict:
    """'section.field=value' assignments (value read as JSON, else as text) as one checked partial config."""
    out: dict = {}
    for text in assignments:
        key, sep, raw = text.partition("=")
        section, dot, name = key.strip().partition(".")
        _check(bool(sep and dot), f"--set {text!r}: write section.field=value, e.g. train.lr=2e-4")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        one = check_partial({section: {name: value}}, f"--set {text!r}", sections, why)
        out.setdefault(section, {}).update(one[section])
    return out


def apply_sets(cfg: Config, assignments: list) -> Config:
    """cfg with 'section.field=value' assignments applied, validated again (ConfigError naming the problem)."""
    return merge(cfg, parse_sets(assignments), "--set")


def load_config_file(path: Union[str, Path]) -> dict:
    """A partial or whole config ({section: {field: value}}) from a .json or .toml file (TOML: Python >= 3.11).
    Only read here; check_partial/merge check it. ConfigError when it cannot be read."""
    p = Path(path)
    _check(p.is_file(), f"--config {p}: no such file; `ncsn config --preset mnist-cpu > {p.name}` writes one")
    text = p.read_text(encoding="utf-8")
    if p.suffix.lower() == ".toml":
        try:
            import tomllib
        except ImportError:
            raise ConfigError(f"--config {p}: reading TOML needs Python >= 3.11 (this is "
                              f"{sys.version_info.major}.{sys.version_info.minor}); write the file as JSON "
                              f"(`ncsn config` prints one)") from None
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"--config {p} is not valid TOML ({e})") from e
    try:
        return json.loads(text)
    except ValueError as e:
        raise ConfigError(f"--config {p} is not valid JSON ({e}); give a .json file, or .toml on Python >= 3.11") from e


def _sub_from_dict(sub_cls, d: dict, section: str):
    names = {f.name for f in fields(sub_cls)}
    unknown = set(d) - names
    _check(not unknown, f"unknown key(s) {sorted(unknown)} in config section '{section}'")
    return sub_cls(**d)


def _preset_mnist_cpu() -> Config:
    # The recipe and sampler chosen on benchmarks/quality_time.py's charts (README: "How the defaults were chosen"):
    # continuous-sigma conditioning with Karras et al.'s preconditioning and weighting, ln sigma ~ N(-1.2, 1.2^2)
    # (their P_mean on [-1, 1] data is -1.2; here, on [0, 1] data, -1.2 beat -1.9 = -1.2 - ln 2 at equal steps),
    # sigma_1 = 16 from the data (NCSNv2, Technique 1: the largest distance between two training digits), and
    # Heun with churn over 12 sigmas (23 network evaluations per sample): on the 2,500-step model of the sampler
    # chart 8 sigmas did best, on the trained built-in model 12 beat 8 on both seeds tried (README).
    # Widths 16/32/64 and Adam 2e-3: in equal minutes (30) the narrower network's 1.56x more steps beat the wider
    # 16/48/96 (the built-in model's) at either rate, on both seeds (README, docs/bench/recipes-30min.json).
    # Autoguidance by the run's own EMA weights at step 2,000, w = 1.5: the literal 30-minute run (11,809 steps) gave
    # FID ratio 1.20 / 1.68 (seeds 0 / 1) against 1.45 / 1.94 unguided, confidence 0.961 against 0.953; w = 1.25 and
    # 2 were worse in FID on both seeds (README, "Autoguidance"; docs/bench/guidance.json).
    # The exact score of the training digits above sigma 1.5 (ncsn_core.empirical): on the built-in model, five seeds
    # of `ncsn eval --n 1000`, FID ratio 1.08 against 1.27 and 40 % less sampling time, no pull toward the training
    # digits (above 1 it pulls them closer than fresh digits sit; docs/bench/samplers-exact.json, README).
    return Config(
        name="mnist-cpu",
        data=DataConfig(holdout=1000),
        model=ModelConfig(arch="compact", channels=(16, 32, 64), conditioning="sigma"),
        noise=NoiseConfig(16.0, 0.01, 10),
        train=TrainConfig(batch_size=64, lr=2e-3, n_iters=100_000, ema_rate=0.999, save_every=500,
                          preview_every=500, log_every=10, sigma_sampling="log-normal", lognormal_mean=-1.2,
                          weighting="edm", warmup=200, guide_step=2000),
        sample=SampleConfig(sampler="heun", num_levels=12, sigma_begin=16.0, sigma_end=0.002, churn=5.0,
                            init="gaussian", guidance=1.5, exact_above=1.5),
    )


def _preset_mnist_cpu_levels() -> Config:
    # The first compact recipe (level-indexed, the paper's loss), kept so that the chart can compare with it.
    return Config(
        name="mnist-cpu-levels",
        data=DataConfig(holdout=1000),
        model=ModelConfig(arch="compact", channels=(16, 48, 96), scale_by_sigma=True),
        noise=NoiseConfig(1.0, 0.01, 10),
        train=TrainConfig(batch_size=64, lr=1e-3, n_iters=12000, ema_rate=0.999, save_every=500,
                          preview_every=250, log_every=10),
        sample=SampleConfig(step_lr=5e-5, n_steps_each=40, denoise=True, init="data-mean", variance_correction=0.5),
    )


PRESETS = {
    # The paper's MNIST setup as the reference code runs it (step_lr 2e-5 there = 4e-5 in Alg. 1's notation).
    # Its data: MNIST's 60,000 training digits (torchvision's files under --data-root; data.py says what to fetch).
    "mnist-paper": lambda: Config(
        name="mnist-paper", data=DataConfig(dataset="mnist"), model=ModelConfig(arch="refinenet", ngf=64),
        train=TrainConfig(batch_size=128, lr=1e-3, n_iters=200_000, save_every=5000),
        sample=SampleConfig(step_lr=4e-5, n_steps_each=100, denoise=False)),
    # The compact network for a laptop CPU: minutes, not days.
    "mnist-cpu": _preset_mnist_cpu,
    "mnist-cpu-levels": _preset_mnist_cpu_levels,
    "cifar10-paper": lambda: Config(
        name="cifar10-paper",
        data=DataConfig(dataset="cifar10", image_size=32, channels=3, random_flip=True),
        model=ModelConfig(arch="refinenet", ngf=128),
        train=TrainConfig(batch_size=128, lr=1e-3, n_iters=200_000, save_every=5000),
        sample=SampleConfig(step_lr=4e-5, n_steps_each=100, denoise=False)),
    # 2-D toy: the MLP on the two-Gaussian mixture.
    "toy": lambda: Config(
        name="toy", data=DataConfig(dataset="toy", image_size=1, channels=2, dequantize=False),
        model=ModelConfig(arch="mlp", hidden=128, scale_by_sigma=True),
        noise=NoiseConfig(20.0, 0.7, 10),
        train=TrainConfig(batch_size=256, lr=1e-3, n_iters=3000, save_every=1000, preview_every=1000),
        sample=SampleConfig(step_lr=0.1, n_steps_each=100, init="uniform")),
}


def get_preset(name: str) -> Config:
    """The named preset; an unknown name lists the known ones."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}: choose one of {', '.join(sorted(PRESETS))}")
    return PRESETS[name]()
