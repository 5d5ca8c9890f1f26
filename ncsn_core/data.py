"""Data: the built-in MNIST test split (own IDX reader, checksummed), torchvision sets, image folders,
and the paper's preprocessing (scale to [0, 1], uniform dequantisation, optional flips)."""
from __future__ import annotations

import gzip
import hashlib
import struct
from pathlib import Path
from typing import Tuple

import numpy as np

RESOURCES = Path(__file__).resolve().parent.parent / "resources"
BUILTIN_MNIST = RESOURCES / "datasets" / "mnist"
MNIST_FILES = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


class DataError(RuntimeError):
    """A data set is missing or damaged; the message says what to do."""


def _expected_sums(folder: Path) -> dict:
    sums_file = folder / "SHA256SUMS"
    if not sums_file.exists():
        raise DataError(f"{sums_file} is missing: reinstall NCSN Studio or restore resources/datasets/mnist")
    out = {}
    for line in sums_file.read_text().splitlines():
        if line.strip():
            digest, name = line.split()
            out[name.lstrip("*")] = digest
    return out


def verify_checksum(path: Path, expected: str) -> None:
    """Raise DataError unless the file's SHA256 equals `expected`."""
    if not path.exists():
        raise DataError(f"{path} is missing: restore it from the NCSN Studio repository (resources/datasets/mnist)")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != expected:
        raise DataError(f"{path} is damaged (SHA256 {digest[:12]}..., expected {expected[:12]}...): "
                        f"restore it from the NCSN Studio repository")


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzip'd): big-endian magic 0x0000 <dtype> <ndim>, dims, data."""
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise DataError(f"cannot read IDX file {path}: {e}") from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{path} is not an IDX file (bad magic number)")
    dtypes = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
    if raw[2] not in dtypes:
        raise DataError(f"{path}: unknown IDX data type 0x{raw[2]:02x}")
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=dtypes[raw[2]], offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise DataError(f"{path} is truncated: header says {dims}, found {data.size} values")
    return data.reshape(dims)


def load_builtin_mnist(folder: Path = BUILTIN_MNIST) -> Tuple[np.ndarray, np.ndarray]:
    """The shipped MNIST test split: images uint8 (10000, 28, 28), labels int64 (10000,). Checksums verified."""
    sums = _expected_sums(folder)
    for name in MNIST_FILES:
        verify_checksum(folder / name, sums[name])
    images = read_idx(folder / MNIST_FILES[0])
    labels = read_idx(folder / MNIST_FILES[1]).astype(np.int64)
    if len(images) != len(labels):
        raise DataError(f"{folder}: {len(images)} images but {len(labels)} labels")
    return images, labels


# ---------------------------------------------------------------------------------------------
# Data sets as "image sets": len() and get_batch(indices) -> float (B, C, H, W) in [0, 1]
# ---------------------------------------------------------------------------------------------
import torch  # noqa: E402  (kept below the IDX reader, which needs only numpy)

from .config import DataConfig  # noqa: E402


class TensorImageSet:
    """An in-memory data set: uint8 images (N, C, H, W) (or float (N, D) toy points) and optional labels."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor | None = None, name: str = ""):
        self.images, self.labels, self.name = images, labels, name

    def __len__(self) -> int:
        return len(self.images)

    def get_batch(self, indices: torch.Tensor) -> torch.Tensor:
        x = self.images[indices]
        return x.float() / 255.0 if x.dtype == torch.uint8 else x.float()


def builtin_mnist_set(image_size: int = 28) -> TensorImageSet:
    images, labels = load_builtin_mnist()
    x = torch.from_numpy(images.copy()).unsqueeze(1)
    if image_size != 28:  # e.g. 32 for a model that wants it; bilinear, back to uint8
        x = torch.nn.functional.interpolate(x.float(), size=(image_size, image_size), mode="bilinear",
                                            align_corners=False).round().clamp(0, 255).to(torch.uint8)
    return TensorImageSet(x, torch.from_numpy(labels), "mnist-builtin")


def split_holdout(data: TensorImageSet, holdout: int, split: str) -> TensorImageSet:
    """split 'train': all but the last `holdout` examples; 'holdout': the last `holdout`; 'all': everything."""
    if split == "all" or holdout == 0 and split == "train":
        return data
    if holdout >= len(data):
        raise DataError(f"holdout={holdout} leaves no training data ({len(data)} examples in {data.name})")
    sl = slice(None, len(data) - holdout) if split == "train" else slice(len(data) - holdout, None)
    labels = data.labels[sl] if data.labels is not None else None
    return TensorImageSet(data.images[sl], labels, f"{data.name}[{split}]")


def load_dataset(cfg: DataConfig, split: str = "train"):
    """The image set a DataConfig names (see DataConfig.dataset); split: 'train', 'holdout' or 'all'."""
    if cfg.dataset == "mnist-builtin":
        if cfg.channels != 1:
            raise DataError(f"the built-in MNIST is grayscale: set channels=1 (got {cfg.channels})")
        return split_holdout(builtin_mnist_set(cfg.image_size), cfg.holdout, split)
    if cfg.dataset == "toy":
        from .toy import paper_mixture
        pts = paper_mixture().sample(10_000, generator=torch.Generator().manual_seed(1234))
        return TensorImageSet(pts, None, "toy")
    raise DataError(f"unknown dataset {cfg.dataset!r}: use mnist-builtin or toy")


def preprocess(x: torch.Tensor, cfg: DataConfig, generator: torch.Generator | None = None) -> torch.Tensor:
    """The paper's training transforms on a batch in [0, 1]: uniform dequantisation x*255/256 + U(0, 1/256)
    and random horizontal flips, each only when the config asks for it. Toy points pass through."""
    if x.dim() != 4:
        return x
    if cfg.dequantize:
        x = x * (255.0 / 256.0) + torch.rand(x.shape, generator=generator, device=x.device) / 256.0
    if cfg.random_flip:
        flip = torch.rand(len(x), generator=generator, device=x.device) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    return x
