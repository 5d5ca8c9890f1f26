"""Exports shared by the CLI and the studio: sample grids, level strips, chain GIFs; each carries its
config and seed (PNG text chunks, and a side-car JSON for GIFs)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from PIL import Image, PngImagePlugin

from .fileio import atomic_write
from .sampling import LangevinState


def make_grid(images: torch.Tensor, nrow: int = 8, padding: int = 2, pad_value: float = 0.0) -> torch.Tensor:
    """torchvision.utils.make_grid conventions: (B, C, H, W) in [0, 1] -> (3, H', W'), nrow images per row,
    `padding` pixels between and around them. Kept here so the engine needs no torchvision for it."""
    x = images.detach().float().cpu()
    if x.dim() == 3:
        x = x.unsqueeze(1)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    b, c, h, w = x.shape
    ncol = min(nrow, b)
    nrows = (b + ncol - 1) // ncol
    grid = torch.full((c, nrows * (h + padding) + padding, ncol * (w + padding) + padding), pad_value)
    for k in range(b):
        r, q = divmod(k, ncol)
        top, left = r * (h + padding) + padding, q * (w + padding) + padding
        grid[:, top:top + h, left:left + w] = x[k]
    return grid


def to_uint8(grid: torch.Tensor) -> np.ndarray:
    """(C, H, W) float in [0, 1] -> (H, W, C) uint8, as torchvision.utils.save_image rounds: x*255 + 0.5."""
    return grid.mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()


def _png_info(meta: Optional[dict]) -> PngImagePlugin.PngInfo:
    info = PngImagePlugin.PngInfo()
    for k, v in (meta or {}).items():
        info.add_text(f"ncsn:{k}", v if isinstance(v, str) else json.dumps(v))
    return info


def save_png(array: np.ndarray, path: Path, meta: Optional[dict] = None) -> Path:
    """Write an (H, W, 3) or (H, W) uint8 array as PNG with `meta` in text chunks (key 'ncsn:<name>')."""
    img = Image.fromarray(array)
    return atomic_write(path, lambda tmp: img.save(tmp, format="PNG", pnginfo=_png_info(meta)))


def save_grid(images: torch.Tensor, path: Path, nrow: int = 8, meta: Optional[dict] = None) -> Path:
    """Sample grid PNG (images (B, C, H, W) in [0, 1], clamped)."""
    return save_png(to_uint8(make_grid(images.clamp(0, 1), nrow=nrow)), path, meta)


def read_png_meta(path: Path) -> dict:
    """The ncsn:* text chunks of a PNG written by save_png, JSON-decoded where possible."""
    with Image.open(path) as im:
        out = {}
        for k, v in im.text.items():
            if k.startswith("ncsn:"):
                try:
                    out[k[5:]] = json.loads(v)
                except json.JSONDecodeError:
                    out[k[5:]] = v
        return out


STRIP_VIEWS = ("x", "denoised", "both")


class LevelStrip:
    """Collects, at the end of each level, the first n_show samples and, where the states carry it, the model's
    denoised estimate of them (LangevinState.denoised, Tweedie's formula): at most 2 x L x n_show images in memory.
    view: what a cell shows by default, the chain's x, the denoised estimate, or both (each sample's x with its
    estimate below it); image(view) and save(view=...) render any of `views()` from the same run."""

    def __init__(self, n_show: int = 8, view: str = "x"):
        self.view = check_strip_view(view)
        self.n_show = n_show
        self.columns: List[torch.Tensor] = []  # x at the end of each level
        self.denoised: List[Optional[torch.Tensor]] = []  # its denoised estimate, None where a state had none
        self.sigmas: List[float] = []

    def add(self, state: LangevinState) -> None:
        if state.step == state.n_steps and len(self.columns) <= state.level:
            if self.view != "x" and state.denoised is None:
                raise ValueError("this state carries no denoised estimate: use the level strip view 'x'")
            d = state.denoised
            self.columns.append(state.x[: self.n_show].detach().cpu().clamp(0, 1))
            self.denoised.append(None if d is None else d[: self.n_show].detach().cpu().clamp(0, 1))
            self.sigmas.append(state.sigma)

    def views(self) -> Tuple[str, ...]:
        """The views this strip can render: all three when every level's state carried a denoised estimate."""
        return STRIP_VIEWS if self.denoised and all(d is not None for d in self.denoised) else ("x",)

    def image(self, view: Optional[str] = None) -> np.ndarray:
        """Rows = samples (view "both": two rows each, x above its denoised estimate), columns = levels
        sigma_1 ... sigma_L (reproduction report, Fig. 4b)."""
        view = check_strip_view(view or self.view)
        if view not in self.views():
            raise ValueError("this run's states carried no denoised estimate: the level strip has only the view 'x'")
        x = torch.stack(self.columns, dim=1)  # (rows, L, C, H, W)
        if view != "x":
            d = torch.stack(self.denoised, dim=1)
            x = d if view == "denoised" else torch.stack((x, d), dim=1).flatten(0, 1)  # x, then its estimate
        n, L = x.shape[:2]
        return to_uint8(make_grid(x.reshape(n * L, *x.shape[2:]), nrow=L))

    def save(self, path: Path, meta: Optional[dict] = None, view: Optional[str] = None) -> Path:
        view = view or self.view
        return save_png(self.image(view), path, {**(meta or {}), "columns_sigma": self.sigmas, "strip_view": view})


def check_strip_view(view: str) -> str:
    if view not in STRIP_VIEWS:
        raise ValueError(f"level strip view {view!r} is unknown: choose one of {', '.join(STRIP_VIEWS)}")
    return view


class ChainRecorder:
    """Frames of the chain for a GIF: a uint8 grid of the first n_show samples per yielded state,
    keeping at most max_frames (every other frame is dropped when full, so memory stays bounded)."""

    def __init__(self, n_show: int = 16, nrow: int = 4, max_frames: int = 200):
        self.n_show, self.nrow, self.max_frames = n_show, nrow, max_frames
        self.frames: List[np.ndarray] = []
        self.stride, self._seen = 1, 0

    def add(self, state: LangevinState) -> None:
        self._seen += 1
        if (self._seen - 1) % self.stride and not state.final:
            return
        self.frames.append(to_uint8(make_grid(state.x[: self.n_show].detach().cpu().clamp(0, 1), nrow=self.nrow)))
        if len(self.frames) >= self.max_frames:
            self.frames = self.frames[::2]
            self.stride *= 2

    def save(self, path: Path, meta: Optional[dict] = None, duration_ms: int = 60) -> Path:
        return save_gif(self.frames, path, meta, duration_ms)


def save_gif(frames: Sequence[np.ndarray], path: Path, meta: Optional[dict] = None, duration_ms: int = 60) -> Path:
    """Animated GIF (last frame held 1.5 s) plus a side-car <path>.json with `meta` (GIFs have no text chunks)."""
    if not frames:
        raise ValueError("no frames to write: run the sampler with a ChainRecorder first")
    imgs = [Image.fromarray(f) for f in frames]
    durations = [duration_ms] * (len(imgs) - 1) + [1500]
    path = Path(path)
    atomic_write(path, lambda tmp: imgs[0].save(tmp, format="GIF", save_all=True, append_images=imgs[1:],
                                                 duration=durations, loop=0))
    if meta is not None:
        side = path.with_suffix(path.suffix + ".json")
        atomic_write(side, lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=2)))
    return path

