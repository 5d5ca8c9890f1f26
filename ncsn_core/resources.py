"""The files NCSN Studio ships (resources/) and the reader of its built-in MNIST digits. numpy only, no torch:
the studio reads these while its window opens, before torch (seconds to import) is loaded."""
from __future__ import annotations

import gzip
import hashlib
import struct
from pathlib import Path
from typing import Tuple

import numpy as np

RESOURCES = Path(__file__).resolve().parent.parent / "resources"
BUILTIN_MODEL = RESOURCES / "models" / "mnist-cpu.pt"  # the bundled MNIST score model
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
