"""Data: the built-in MNIST test split (own IDX reader, checksummed), torchvision sets, image folders,
and the paper's preprocessing (scale to [0, 1], uniform dequantisation, optional flips)."""
from __future__ import annotations

import copy
import logging
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import List, Tuple

import numpy as np
import torch

from .config import DataConfig
from .images import pil_mode as _pil_mode  # one conversion for training data and inpainting
from .resources import (BUILTIN_MNIST, BUILTIN_MODEL, MNIST_FILES, RESOURCES, DataError,  # noqa: F401 (re-exported)
                        load_builtin_mnist, read_idx, verify_checksum)

# ---------------------------------------------------------------------------------------------
# Image sets: len() and get_batch(indices: LongTensor) -> float (B, C, H, W) in [0, 1] on the CPU
# ---------------------------------------------------------------------------------------------

log = logging.getLogger("ncsn_core.data")

SPLITS = ("train", "holdout", "all")
TORCHVISION_SETS = ("mnist", "fashion-mnist", "cifar10", "celeba")
DATASETS = ("mnist-builtin",) + TORCHVISION_SETS + ("folder", "toy")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
MAX_PIXELS = 50_000_000      # larger images are skipped (decompression-bomb guard)
CELEBA_CROP = 140            # paper: CelebA is centre-cropped to 140 x 140, then resized


class TensorImageSet:
    """An in-memory data set: uint8 images (N, C, H, W) (or float (N, D) toy points) and optional labels."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor | None = None, name: str = ""):
        self.images, self.labels, self.name = images, labels, name

    def __len__(self) -> int:
        return len(self.images)

    def get_batch(self, indices: torch.Tensor) -> torch.Tensor:
        x = self.images[indices]
        return x.float() / 255.0 if x.dtype == torch.uint8 else x.float()

    def subset(self, start: int, stop: int, name: str) -> "TensorImageSet":
        """Examples start..stop-1 as a set of the same kind (a view: no copy of the images)."""
        out = copy.copy(self)
        out.images, out.name = self.images[start:stop], name
        out.labels = self.labels[start:stop] if self.labels is not None else None
        return out


class LazyImageSet:
    """A set decoded on demand (CelebA: 200k JPEGs stay on disk). `dataset[i]` must return (PIL image, target)
    already cropped and resized; get_batch converts to `channels` and decodes the batch on a few threads."""

    def __init__(self, dataset, channels: int, name: str = "", index: torch.Tensor | None = None):
        self.dataset, self.channels, self.name = dataset, channels, name
        self.index = torch.arange(len(dataset)) if index is None else index

    def __len__(self) -> int:
        return len(self.index)

    def _load(self, i: int) -> np.ndarray:
        return _pil_to_array(self.dataset[i][0], self.channels)

    def get_batch(self, indices: torch.Tensor) -> torch.Tensor:
        arrays = list(_pool().map(self._load, self.index[indices].reshape(-1).tolist()))
        return torch.from_numpy(np.stack(arrays)).float() / 255.0

    def subset(self, start: int, stop: int, name: str) -> "LazyImageSet":
        return LazyImageSet(self.dataset, self.channels, name, self.index[start:stop])


class ImageFolderSet(TensorImageSet):
    """A user's image folder, decoded once into uint8 (N, C, S, S). `paths[i]` is the file of image i;
    `skipped` lists (path, reason) for every file that was not loaded."""

    def __init__(self, images: torch.Tensor, paths: List[Path], skipped: List[Tuple[Path, str]], root: Path,
                 name: str = ""):
        super().__init__(images, None, name or f"folder:{root}")
        self.paths, self.skipped, self.root = paths, skipped, root

    @property
    def n_skipped(self) -> int:
        return len(self.skipped)

    def subset(self, start: int, stop: int, name: str) -> "ImageFolderSet":
        out = super().subset(start, stop, name)
        out.paths = self.paths[start:stop]
        return out


_POOL: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    """Threads for image decoding (PIL releases the GIL while decoding)."""
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1), thread_name_prefix="ncsn-data")
    return _POOL


# --- format conversion ------------------------------------------------------------------------
def _to_format(x: torch.Tensor, channels: int, size: int, chunk: int = 4096) -> torch.Tensor:
    """uint8 (N, C, H, W) -> uint8 (N, channels, size, size): ITU-R 601 luma for RGB -> gray, replication for
    gray -> RGB, antialiased bilinear resize. Works in chunks so a float copy of the whole set is never made."""
    if x.shape[1] == channels and x.shape[-2:] == (size, size):
        return x
    if x.shape[-2:] == (size, size) and x.shape[1] == 1 and channels == 3:
        return x.repeat(1, 3, 1, 1)
    out = torch.empty((len(x), channels, size, size), dtype=torch.uint8)
    luma = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    for i in range(0, len(x), chunk):
        f = x[i:i + chunk].float()
        if f.shape[1] == 3 and channels == 1:
            f = (f * luma).sum(1, keepdim=True)
        elif f.shape[1] == 1 and channels == 3:
            f = f.expand(-1, 3, -1, -1)
        if f.shape[-2:] != (size, size):
            f = torch.nn.functional.interpolate(f, size=(size, size), mode="bilinear", align_corners=False,
                                                antialias=True)
        out[i:i + chunk] = f.round().clamp(0, 255).to(torch.uint8)
    return out


def _pil_to_array(im, channels: int) -> np.ndarray:
    """PIL image -> uint8 (channels, H, W)."""
    a = np.asarray(_pil_mode(im, channels), dtype=np.uint8)
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)


# --- the built-in MNIST ------------------------------------------------------------------------
def builtin_mnist_set(image_size: int = 28, channels: int = 1) -> TensorImageSet:
    """The shipped MNIST test split (10,000 digits), as uint8 (N, channels, image_size, image_size)."""
    images, labels = load_builtin_mnist()
    x = _to_format(torch.from_numpy(images.copy()).unsqueeze(1), channels, image_size)
    return TensorImageSet(x, torch.from_numpy(labels), "mnist-builtin")


# --- torchvision sets (need a network once, or files put in place by hand) ---------------------
def default_root(name: str) -> Path:
    """Where a torchvision set lives when DataConfig.root is not given: ~/.cache/ncsn/datasets/<name>."""
    return Path.home() / ".cache" / "ncsn" / "datasets" / name


IDX_GZ = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
          "t10k-labels-idx1-ubyte.gz")  # the four IDX files of MNIST and Fashion-MNIST, as torchvision names them
_MNIST_FILES = ", ".join(IDX_GZ[:-1]) + " and " + IDX_GZ[-1]
_RAW = {"mnist": "MNIST/raw", "fashion-mnist": "FashionMNIST/raw"}  # torchvision's folder layout under root
_WHERE = {  # what to fetch by hand, and where torchvision looks for it (relative to root)
    "mnist": (f"the four IDX files {_MNIST_FILES} from https://ossci-datasets.s3.amazonaws.com/mnist/",
              "MNIST/raw/", "gzipped or unpacked (--data-root names the folder that holds MNIST/raw/); offline, "
              "--dataset mnist-builtin (DataConfig(dataset='mnist-builtin')) trains on the 10,000 digits shipped "
              "with NCSN Studio instead"),
    "fashion-mnist": (f"the four IDX files {_MNIST_FILES} from https://github.com/zalandoresearch/fashion-mnist",
                      "FashionMNIST/raw/", "gzipped or unpacked (--data-root names the folder that holds FashionMNIST/raw/)"),
    "cifar10": ("cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html", "",
                "then run with download=True once to unpack it (no network needed), or unpack it yourself "
                "so that cifar-10-batches-py/ sits in that folder"),
    "celeba": ("img_align_celeba.zip, list_attr_celeba.txt, identity_CelebA.txt, list_bbox_celeba.txt, "
               "list_landmarks_align_celeba.txt and list_eval_partition.txt from "
               "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html", "celeba/",
               "and unpack the zip there (celeba/img_align_celeba/*.jpg); Google Drive often refuses scripted "
               "downloads, so fetching by hand is the reliable way"),
}


def _missing_message(name: str, root: Path, download: bool, err: BaseException) -> str:
    what, sub, then = _WHERE[name]
    cause = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
    missing = ""
    if name in _RAW:
        gone = [f for f in IDX_GZ if not (root / _RAW[name] / f).exists() and not (root / _RAW[name] / f[:-3]).exists()]
        missing = (" (a file there is damaged)" if not gone else
                   f" (missing: {', '.join(gone)})" if len(gone) < len(IDX_GZ) else "")
    head = (f"downloading {name} into {root} failed ({cause}): check the network" if download else
            f"{name} was not found in {root / sub if sub else root}{missing}: run with --download "
            f"(DataConfig(download=True)) where a network exists to fetch it")
    return f"{head}, or put {what} in {root / sub if sub else root} yourself, {then}."


def _unpack_idx(raw: Path) -> None:
    """Unpack the IDX .gz files put in torchvision's raw/ folder by hand (torchvision reads only unpacked files
    and would otherwise want a network to 'download' them); written to a temp file, then renamed."""
    import gzip
    import shutil
    for name in IDX_GZ:
        gz, plain = raw / name, raw / name[:-3]
        if gz.is_file() and not plain.exists():
            tmp = plain.with_name(plain.name + ".tmp")
            try:
                with gzip.open(gz, "rb") as src, open(tmp, "wb") as dst:
                    shutil.copyfileobj(src, dst)
            except (OSError, EOFError) as e:
                tmp.unlink(missing_ok=True)
                raise DataError(f"{gz} is not a readable gzip file ({e}): fetch it again") from e
            os.replace(tmp, plain)


def load_torchvision_set(name: str, root: str | Path | None, image_size: int, channels: int,
                         download: bool = False):
    """The training split of a torchvision set as an image set (uint8 in memory; CelebA decoded lazily).
    CelebA follows the paper: centre crop 140, then resize to image_size. Raises DataError, never a raw
    torchvision/network error, when the files are missing and cannot be downloaded."""
    if name not in TORCHVISION_SETS:
        raise DataError(f"{name!r} is not a torchvision set: use one of {', '.join(TORCHVISION_SETS)}")
    root = Path(root).expanduser() if root else default_root(name)
    try:
        import torchvision.datasets as tvd
        from torchvision import transforms
    except ImportError as e:
        raise DataError(f"dataset {name!r} needs torchvision: pip install torchvision ({e})") from e
    if name in _RAW:
        _unpack_idx(root / _RAW[name])
    try:
        if name == "celeba":
            tf = transforms.Compose([transforms.CenterCrop(CELEBA_CROP), transforms.Resize(image_size)])
            ds = tvd.CelebA(str(root), split="train", target_type=[], transform=tf, download=download)
            return LazyImageSet(ds, channels, "celeba")
        cls = {"mnist": tvd.MNIST, "fashion-mnist": tvd.FashionMNIST, "cifar10": tvd.CIFAR10}[name]
        ds = cls(str(root), train=True, download=download)
    except Exception as e:  # torchvision raises RuntimeError, URLError, OSError, BadZipFile, ImportError (gdown)...
        raise DataError(_missing_message(name, root, download, e)) from e
    x = torch.as_tensor(np.asarray(ds.data))
    x = x.unsqueeze(1) if x.dim() == 3 else x.permute(0, 3, 1, 2)  # MNIST (N, H, W); CIFAR (N, H, W, C)
    labels = torch.as_tensor(np.asarray(ds.targets), dtype=torch.int64)
    return TensorImageSet(_to_format(x.contiguous(), channels, image_size), labels, name)


# --- a folder of the user's own images ----------------------------------------------------------
def _decode_file(path: Path, size: int, channels: int, max_pixels: int) -> Tuple[np.ndarray | None, str]:
    """(uint8 (channels, size, size), "") or (None, why it was skipped). Shorter side resized, then centre crop."""
    from PIL import Image, ImageOps
    try:
        with Image.open(path) as im:
            w, h = im.size
            if w * h > max_pixels:
                return None, f"too large ({w}x{h} = {w * h / 1e6:.0f} megapixels; the limit is {max_pixels / 1e6:.0f})"
            im.draft("L" if channels == 1 else "RGB", (size, size))  # JPEG: decode at a reduced scale, fast
            im = _pil_mode(ImageOps.exif_transpose(im), channels)
            im = ImageOps.fit(im, (size, size), method=Image.Resampling.BICUBIC, centering=(0.5, 0.5))
            return _pil_to_array(im, channels), ""
    except Image.DecompressionBombError as e:
        return None, f"too large ({e})"
    except Exception as e:  # a broken file must never stop the others: PIL raises many kinds here
        return None, f"unreadable ({type(e).__name__}: {e})"


def load_image_folder(root: str | Path, image_size: int, channels: int,
                      max_pixels: int = MAX_PIXELS) -> ImageFolderSet:
    """Every image under `root` (recursive, sorted by path; hidden files and folders ignored), decoded once into
    uint8 (N, channels, image_size, image_size): fine up to a few tens of thousands of images (64x64 RGB:
    12 KB each). Non-image, unreadable and oversized files are skipped: logged on "ncsn_core.data" and listed in
    `.skipped`. Raises DataError when the folder is missing or holds no usable image."""
    from PIL import Image
    root = Path(root).expanduser()
    need = (f"put your images ({', '.join(e[1:] for e in IMAGE_EXTENSIONS)}; subfolders are searched) in it, "
            f"or point DataConfig.root / --data-root at the folder that has them")
    if not root.is_dir():
        raise DataError(f"image folder {root} {'is a file' if root.exists() else 'does not exist'}: {need}")
    files = sorted((p for p in root.rglob("*") if p.is_file()
                    and not any(part.startswith(".") for part in p.relative_to(root).parts)),
                   key=lambda p: p.relative_to(root).as_posix())
    skipped: List[Tuple[Path, str]] = []
    candidates = []
    for p in files:
        if p.suffix.lower() in IMAGE_EXTENSIONS:
            candidates.append(p)
        else:
            skipped.append((p, f"not an image file (extension {p.suffix or 'none'!r})"))
    images = np.empty((len(candidates), channels, image_size, image_size), dtype=np.uint8)
    paths: List[Path] = []
    with warnings.catch_warnings():  # oversized images are skipped by our own limit; silence PIL's warning
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        results = _pool().map(lambda p: _decode_file(p, image_size, channels, max_pixels), candidates)
        for p, (arr, why) in zip(candidates, results):
            if arr is None:
                skipped.append((p, why))
            else:
                images[len(paths)] = arr
                paths.append(p)
    if skipped:
        shown = "; ".join(f"{p.relative_to(root)}: {why}" for p, why in skipped[:5])
        log.warning("skipped %d of %d files in %s (%s%s)", len(skipped), len(files), root, shown,
                    "; ..." if len(skipped) > 5 else "")
    if not paths:
        found = f"{len(files)} file(s), none a readable image" if files else "no files"
        raise DataError(f"image folder {root} has {found}: {need}")
    log.info("loaded %d images (%d skipped) from %s at %dx%d, %d channel(s)",
             len(paths), len(skipped), root, image_size, image_size, channels)
    x = torch.from_numpy(images if len(paths) == len(images) else images[:len(paths)].copy())
    return ImageFolderSet(x, paths, skipped, root)


# --- one entry point -----------------------------------------------------------------------------
def split_holdout(data, holdout: int, split: str):
    """split 'train': all but the last `holdout` examples; 'holdout': the last `holdout`; 'all': everything.
    Works for every image set here (views, no copies)."""
    if split not in SPLITS:
        raise DataError(f"split={split!r} is unknown: use one of {', '.join(SPLITS)}")
    if split == "all" or holdout == 0 and split == "train":
        return data
    if holdout == 0:
        raise DataError(f"split='holdout' of {data.name} is empty: set DataConfig.holdout to the number of "
                        f"examples to keep out of training (e.g. holdout=1000)")
    if holdout >= len(data):
        raise DataError(f"holdout={holdout} leaves no training data ({len(data)} examples in {data.name})")
    start, stop = (0, len(data) - holdout) if split == "train" else (len(data) - holdout, len(data))
    return data.subset(start, stop, f"{data.name}[{split}]")


def mean_image(data, max_images: int = 10000, batch_size: int = 1000) -> torch.Tensor:
    """The mean image (C, H, W) of an image set (TensorImageSet, LazyImageSet, ...), over at most max_images
    evenly spaced examples (a mean needs no more, and a large folder would otherwise be read in full)."""
    n = len(data)
    if n == 0:
        raise DataError("the data set is empty: no mean image")
    idx = torch.linspace(0, n - 1, min(n, max_images)).round().long().unique()
    total = sum(data.get_batch(chunk).double().sum(0) for chunk in idx.split(batch_size))
    return (total / len(idx)).float()


def load_dataset(cfg: DataConfig, split: str = "train"):
    """The image set a DataConfig names (see DataConfig.dataset), with its last cfg.holdout examples kept out
    of split 'train' and returned alone by split 'holdout' ('all': everything). Images come out as
    (B, cfg.channels, cfg.image_size, cfg.image_size) in [0, 1], whatever the set's native format."""
    if split not in SPLITS:
        raise DataError(f"split={split!r} is unknown: use one of {', '.join(SPLITS)}")
    if cfg.dataset == "mnist-builtin":
        data = builtin_mnist_set(cfg.image_size, cfg.channels)
    elif cfg.dataset in TORCHVISION_SETS:
        data = load_torchvision_set(cfg.dataset, cfg.root, cfg.image_size, cfg.channels, cfg.download)
    elif cfg.dataset == "folder":
        if not cfg.root:
            raise DataError("dataset 'folder' needs the folder of your images: set DataConfig.root "
                            "(--data-root on the command line)")
        data = load_image_folder(cfg.root, cfg.image_size, cfg.channels)
    elif cfg.dataset == "toy":
        from .mixture import paper_mixture
        pts = paper_mixture().sample(10_000, generator=torch.Generator().manual_seed(1234))
        data = TensorImageSet(pts, None, "toy")
    else:
        raise DataError(f"unknown dataset {cfg.dataset!r}: use one of {', '.join(DATASETS)}")
    return split_holdout(data, cfg.holdout, split)


def preprocess(x: torch.Tensor, cfg: DataConfig, generator: torch.Generator | None = None) -> torch.Tensor:
    """The paper's training transforms on a batch in [0, 1]: uniform dequantisation x*255/256 + U(0, 1/256)
    (values stay in [0, 1); mean shift +1/512 - x/256, i.e. pixel k/255 -> mean (k + 1/2)/256) and random
    horizontal flips, each only when the config asks for it. Toy points pass through."""
    if x.dim() != 4:
        return x
    if cfg.dequantize:
        x = x * (255.0 / 256.0) + torch.rand(x.shape, generator=generator, device=x.device) / 256.0
    if cfg.random_flip:
        flip = torch.rand(len(x), generator=generator, device=x.device) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    return x
