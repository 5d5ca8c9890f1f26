"""Frozen, validated configuration dataclasses that travel inside every checkpoint and export."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields, replace
from typing import Any, Optional, Tuple

ARCHS = ("refinenet", "compact", "mlp")
LOSSES = ("dsm", "ssm", "ssm_vr")
INITS = ("uniform", "gaussian", "data-mean")


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

    def __post_init__(self) -> None:
        _check(self.arch in ARCHS, f"model arch {self.arch!r} is unknown: choose one of {', '.join(ARCHS)}")
        _check(self.ngf > 0 and self.hidden > 0, "ngf and hidden must be positive")
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

    def __post_init__(self) -> None:
        _check(self.loss in LOSSES, f"loss {self.loss!r} is unknown: choose one of {', '.join(LOSSES)}")
        _check(self.batch_size >= 1, f"batch_size={self.batch_size} must be >= 1")
        _check(self.lr > 0, f"lr={self.lr} must be > 0")
        _check(self.n_iters >= 0, f"n_iters={self.n_iters} must be >= 0")
        _check(self.save_every >= 1, f"save_every={self.save_every} must be >= 1")
        _check(self.ema_rate is None or 0 < self.ema_rate < 1, f"ema_rate={self.ema_rate} must be in (0, 1) or None")


@dataclass(frozen=True)
class SampleConfig:
    """Annealed Langevin settings in the paper's notation: alpha_i = step_lr * sigma_i^2 / sigma_L^2,
    x <- x + alpha_i/2 * s + sqrt(alpha_i) * z.  (The reference code's step_lr=2e-5 equals 4e-5 here.)"""
    step_lr: float = 4e-5
    n_steps_each: int = 100
    denoise: bool = False
    init: str = "uniform"
    # kappa in [0, 1]: remove this fraction of the update's excess stationary variance (ncsn_core.sampling); 0 = paper
    variance_correction: float = 0.0

    def __post_init__(self) -> None:
        _check(0.0 <= self.variance_correction <= 1.0,
               f"variance_correction={self.variance_correction} must be in [0, 1] (0 = the paper's Alg. 1)")
        _check(self.step_lr > 0, f"step_lr={self.step_lr} must be > 0")
        _check(self.n_steps_each >= 1, f"n_steps_each={self.n_steps_each} must be >= 1")
        _check(self.init in INITS, f"init {self.init!r} is unknown: choose one of {', '.join(INITS)}")


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

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Config":
        """Build from a dict; unknown keys are an error that names them."""
        parts = {}
        for f in fields(cls):
            if f.name == "name":
                continue
            sub_cls = {"data": DataConfig, "model": ModelConfig, "noise": NoiseConfig,
                       "train": TrainConfig, "sample": SampleConfig}[f.name]
            parts[f.name] = _sub_from_dict(sub_cls, d.get(f.name, {}), f.name)
        unknown = set(d) - {f.name for f in fields(cls)}
        _check(not unknown, f"unknown config section(s) {sorted(unknown)}")
        return cls(name=str(d.get("name", "custom")), **parts)

    def override(self, section: str, **kw: Any) -> "Config":
        """A copy with some fields of one section replaced (validated again)."""
        return replace(self, **{section: replace(getattr(self, section), **kw)})


def _sub_from_dict(sub_cls, d: dict, section: str):
    names = {f.name for f in fields(sub_cls)}
    unknown = set(d) - names
    _check(not unknown, f"unknown key(s) {sorted(unknown)} in config section '{section}'")
    return sub_cls(**d)


def _preset_mnist_cpu() -> Config:
    return Config(
        name="mnist-cpu",
        data=DataConfig(holdout=1000),
        model=ModelConfig(arch="compact", channels=(16, 48, 96), scale_by_sigma=True),
        noise=NoiseConfig(1.0, 0.01, 10),
        train=TrainConfig(batch_size=64, lr=1e-3, n_iters=12000, ema_rate=0.999, save_every=500,
                          preview_every=250, log_every=10),
        # sampler chosen with benchmarks/sampler_study.py on the built-in run (README: "How the defaults were chosen")
        sample=SampleConfig(step_lr=5e-5, n_steps_each=40, denoise=True, init="data-mean", variance_correction=0.5),
    )


PRESETS = {
    # The paper's MNIST setup as the reference code runs it (step_lr 2e-5 there = 4e-5 in Alg. 1's notation).
    "mnist-paper": lambda: Config(
        name="mnist-paper", model=ModelConfig(arch="refinenet", ngf=64),
        train=TrainConfig(batch_size=128, lr=1e-3, n_iters=200_000, save_every=5000),
        sample=SampleConfig(step_lr=4e-5, n_steps_each=100, denoise=False)),
    # The compact network for a laptop CPU: minutes, not days.
    "mnist-cpu": _preset_mnist_cpu,
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
