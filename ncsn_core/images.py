"""The user's images and masks (ncsn inpaint, the studio's Inpaint tab, image-folder data sets): read one way,
converted to the model's size and channels, or refused with one line that says why. numpy + Pillow only.

Conversions: 16-bit grey (I;16) is scaled to 8 bits (x / 257), not clipped; palette (P) and CMYK become RGB or
grey as Pillow converts them; transparent pixels of an image are composited on white (as image-folder training
data are). A mask is white = known pixel to keep, black = to fill; its alpha multiplies it, so a transparent
pixel of a mask is to fill. Pillow's decompression-bomb limit (Image.MAX_IMAGE_PIXELS) stays on: a larger image
is refused before it is decoded."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Tuple

import numpy as np
from PIL import Image, UnidentifiedImageError

GREY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F")
ALPHA_MODES = ("RGBA", "LA", "PA", "La", "RGBa")


class ImageError(ValueError):
    """An image or mask file that cannot be used; the message names the file and says why."""


def pil_mode(im: Image.Image, channels: int) -> Image.Image:
    """A PIL image in mode 'L' (channels=1) or 'RGB' (channels=3). Transparent pixels are composited on white;
    16-bit images are scaled to 8 bits rather than clipped (PIL's convert('L') would clip them to white)."""
    target = "L" if channels == 1 else "RGB"
    if im.mode.startswith("I") or im.mode == "F":
        a = np.asarray(im, dtype=np.float64)
        if im.mode.startswith("I;16") or (im.mode == "I" and a.max(initial=0) > 255):
            a = a / 257.0
        elif im.mode == "F" and a.max(initial=0) <= 1.0:
            a = a * 255.0
        im = Image.fromarray(np.clip(np.round(a), 0, 255).astype(np.uint8), "L")
    if _has_alpha(im):
        im = im.convert("RGBA")
        im = Image.alpha_composite(Image.new("RGBA", im.size, (255, 255, 255, 255)), im)
    return im if im.mode == target else im.convert(target)


def _has_alpha(im: Image.Image) -> bool:
    return im.mode in ALPHA_MODES or (im.mode == "P" and "transparency" in im.info)


def _open(path, what: str) -> Image.Image:
    """The file fully decoded (a truncated file fails here, not later), or ImageError."""
    p = Path(path)
    if not p.exists():
        raise ImageError(f"{what} {p} does not exist")
    if p.is_dir():
        raise ImageError(f"{what} {p} is a folder: give an image file (PNG, JPEG, ...)")
    try:
        with warnings.catch_warnings():  # Pillow only warns between 1x and 2x its limit: refuse both
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(p) as im:
                im.load()
                return im.copy()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError(f"{what} {p} is too large to open safely ({e}); downscale it first") from e
    except UnidentifiedImageError as e:
        raise ImageError(f"{what} {p} is not an image Pillow can read (PNG, JPEG, BMP, TIFF, ...)") from e
    except Exception as e:  # a torn file: Pillow raises OSError, SyntaxError, ValueError, EOFError, ...
        raise ImageError(f"{what} {p} is truncated or damaged ({type(e).__name__}: {e})") from e


def read_image(path, what: str = "image") -> np.ndarray:
    """An image file as uint8: (H, W) when the file is grey (1, L, LA, I;16, ...), else (H, W, 3) RGB."""
    im = _open(path, what)
    try:
        return np.asarray(pil_mode(im, 1 if im.mode in GREY_MODES else 3))
    except ValueError as e:  # a mode Pillow cannot convert (e.g. LAB)
        raise ImageError(f"{what} {path} has colour mode {im.mode}, which cannot be converted to RGB ({e})") from e


def read_mask(path, what: str = "mask") -> np.ndarray:
    """A mask file (white = known, black = to fill; alpha multiplies it) as bool (H, W), True = known pixel:
    grey value times alpha above one half."""
    im = _open(path, what)
    if _has_alpha(im):
        la = np.asarray(im.convert("RGBA").convert("LA"), dtype=np.float32) / 255.0
        return la[..., 0] * la[..., 1] > 0.5
    try:
        return np.asarray(pil_mode(im, 1), dtype=np.float32) / 255.0 > 0.5
    except ValueError as e:
        raise ImageError(f"{what} {path} has colour mode {im.mode}, which cannot be converted to grey ({e})") from e


def size_of(image: np.ndarray) -> str:
    """'WxH' of an (H, W) or (H, W, C) array, the order image programs print."""
    return f"{image.shape[1]}x{image.shape[0]}"


def check_same_size(image: np.ndarray, known: np.ndarray, image_name: str, mask_name: str) -> None:
    """ImageError naming both sizes when a mask does not cover its image pixel for pixel."""
    if image.shape[:2] != known.shape:
        raise ImageError(f"{mask_name} is {size_of(known)} but {image_name} is {size_of(image)}: a mask must have "
                         f"its image's size")


def to_model_image(image: np.ndarray, size: int, channels: int) -> np.ndarray:
    """(H, W), (H, W, 3) or (H, W, 4) array (uint8 or float in [0, 1]) -> (C, size, size) float32 in [0, 1]
    (bilinear resize; grey <-> RGB as PIL converts)."""
    a = np.asarray(image)
    if a.dtype != np.uint8:
        a = (np.clip(a.astype(np.float32), 0, 1) * 255 + 0.5).astype(np.uint8)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)):
        raise ImageError(f"an image must be (H, W) or (H, W, 3), got shape {a.shape}")
    im = pil_mode(Image.fromarray(a), channels)
    if im.size != (size, size):
        im = im.resize((size, size), Image.BILINEAR)
    out = np.asarray(im, dtype=np.float32) / 255.0
    return out[None] if out.ndim == 2 else out.transpose(2, 0, 1).copy()


def fit_mask(known: np.ndarray, shape: Tuple[int, int]) -> np.ndarray:
    """A known-pixel mask (H, W) bool resized to shape (h, w): the share of known pixels under each new pixel
    (Pillow's area-weighted bilinear) above one half."""
    if known.shape == tuple(shape):
        return known.copy()
    im = Image.fromarray(known.astype(np.uint8) * 255, "L").resize((shape[1], shape[0]), Image.BILINEAR)
    return np.asarray(im, dtype=np.float32) / 255.0 > 0.5
