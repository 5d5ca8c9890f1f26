"""Data: IDX reader and checksums, built-in MNIST, torchvision sets offline, image folders, splits, preprocess."""
from __future__ import annotations

import gzip
import logging
import shutil
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from ncsn_core.config import DataConfig
from ncsn_core.data import (BUILTIN_MNIST, MNIST_FILES, DataError, LazyImageSet, TensorImageSet, _to_format,
                            load_builtin_mnist, load_dataset, load_image_folder, preprocess, read_idx,
                            split_holdout)


def write_idx(path, array: np.ndarray) -> None:
    """A uint8 IDX file (gzip'd when the name ends in .gz)."""
    raw = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    (gzip.open if str(path).endswith(".gz") else open)(path, "wb").write(raw)


def save(path, array: np.ndarray, **kw) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **kw)


@pytest.fixture(scope="module")
def mnist():
    return load_builtin_mnist()


# --- IDX reader and the shipped checksums ----------------------------------------------------------
def test_builtin_mnist_checksums_shapes_and_labels(mnist):
    images, labels = mnist
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10000,) and labels.dtype == np.int64
    assert labels.min() == 0 and labels.max() == 9 and len(np.unique(labels)) == 10
    assert 0 < images.mean() < 255 and images.max() == 255


def test_flipped_byte_is_reported_as_damaged(tmp_path):
    shutil.copytree(BUILTIN_MNIST, tmp_path / "mnist")
    target = tmp_path / "mnist" / MNIST_FILES[0]
    raw = bytearray(target.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    target.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="damaged"):
        load_builtin_mnist(tmp_path / "mnist")


def test_missing_file_and_missing_sums_are_data_errors(tmp_path):
    shutil.copytree(BUILTIN_MNIST, tmp_path / "mnist")
    (tmp_path / "mnist" / MNIST_FILES[1]).unlink()
    with pytest.raises(DataError, match="missing"):
        load_builtin_mnist(tmp_path / "mnist")
    (tmp_path / "mnist" / "SHA256SUMS").unlink()
    with pytest.raises(DataError, match="SHA256SUMS"):
        load_builtin_mnist(tmp_path / "mnist")


def test_idx_round_trip_and_truncation(tmp_path):
    a = np.arange(5 * 4 * 3, dtype=np.uint8).reshape(5, 4, 3)
    for name in ("a.idx", "a.idx.gz"):
        write_idx(tmp_path / name, a)
        np.testing.assert_array_equal(read_idx(tmp_path / name), a)
    raw = (tmp_path / "a.idx").read_bytes()
    (tmp_path / "short.idx").write_bytes(raw[:-7])
    with pytest.raises(DataError, match="truncated"):
        read_idx(tmp_path / "short.idx")
    gz = (tmp_path / "a.idx.gz").read_bytes()
    (tmp_path / "short.idx.gz").write_bytes(gz[: len(gz) // 2])
    with pytest.raises(DataError):
        read_idx(tmp_path / "short.idx.gz")
    (tmp_path / "bad.idx").write_bytes(b"\x01\x02" + raw[2:])
    with pytest.raises(DataError, match="magic"):
        read_idx(tmp_path / "bad.idx")


# --- splits and formats ---------------------------------------------------------------------------
def test_holdout_split_sizes_and_disjointness():
    cfg = DataConfig(holdout=1000)
    train, hold, full = (load_dataset(cfg, s) for s in ("train", "holdout", "all"))
    assert (len(train), len(hold), len(full)) == (9000, 1000, 10000)
    idx = torch.arange(3)
    torch.testing.assert_close(hold.get_batch(idx), full.get_batch(idx + 9000))
    torch.testing.assert_close(train.get_batch(idx), full.get_batch(idx))
    assert torch.equal(hold.labels, full.labels[9000:])
    x = train.get_batch(torch.tensor([0, 5, 8999]))
    assert x.shape == (3, 1, 28, 28) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    with pytest.raises(DataError, match="holdout"):
        load_dataset(DataConfig(holdout=0), "holdout")
    with pytest.raises(DataError, match="leaves no training data"):
        load_dataset(DataConfig(holdout=10000))
    with pytest.raises(DataError, match="split"):
        load_dataset(cfg, "validation")


def test_builtin_mnist_converted_to_rgb_and_resized():
    x = load_dataset(DataConfig(image_size=32, channels=3), "all").get_batch(torch.arange(4))
    assert x.shape == (4, 3, 32, 32)
    assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 1], x[:, 2])


def test_to_format_luma_and_replication():
    rgb = torch.zeros(3, 3, 4, 4, dtype=torch.uint8)
    for c in range(3):
        rgb[c, c] = 255
    gray = _to_format(rgb, 1, 4)
    assert gray.shape == (3, 1, 4, 4)
    assert gray[:, 0, 0, 0].tolist() == [76, 150, 29]  # ITU-R 601: 0.299, 0.587, 0.114 of 255
    small = _to_format(rgb, 3, 2)
    assert small.shape == (3, 3, 2, 2) and torch.equal(small[:, :, 0, 0], rgb[:, :, 0, 0])
    assert _to_format(gray, 3, 4).shape == (3, 3, 4, 4)


def test_split_of_lazy_set():
    images = [Image.fromarray(np.full((6, 6, 3), 10 * i, np.uint8)) for i in range(10)]
    lazy = LazyImageSet([(im, None) for im in images], channels=1, name="fake")
    train, hold = split_holdout(lazy, 3, "train"), split_holdout(lazy, 3, "holdout")
    assert (len(train), len(hold)) == (7, 3)
    x = hold.get_batch(torch.tensor([0, 2]))
    assert x.shape == (2, 1, 6, 6)
    torch.testing.assert_close(x[:, 0, 0, 0], torch.tensor([70.0, 90.0]) / 255)


# --- torchvision sets, offline ---------------------------------------------------------------------
@pytest.mark.parametrize("name", ["mnist", "fashion-mnist", "cifar10", "celeba"])
def test_missing_torchvision_set_says_what_to_do(tmp_path, name):
    cfg = DataConfig(dataset=name, root=str(tmp_path), download=False, channels=3, image_size=32)
    with pytest.raises(DataError) as info:
        load_dataset(cfg)
    msg = str(info.value)
    assert "download" in msg and str(tmp_path) in msg and "http" in msg


@pytest.mark.parametrize("name, sub", [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
def test_torchvision_mnist_files_put_by_hand(tmp_path, name, sub):
    rng = np.random.default_rng(0)
    raw = tmp_path / sub / "raw"
    raw.mkdir(parents=True)
    for prefix, n in (("train", 20), ("t10k", 5)):
        write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 10, n, dtype=np.uint8))
    cfg = DataConfig(dataset=name, root=str(tmp_path), image_size=32, channels=3, holdout=4)
    train, hold = load_dataset(cfg), load_dataset(cfg, "holdout")
    assert (len(train), len(hold)) == (16, 4)
    x = train.get_batch(torch.arange(2))
    assert x.shape == (2, 3, 32, 32) and 0 <= x.min() and x.max() <= 1
    native = load_dataset(DataConfig(dataset=name, root=str(tmp_path)), "all")
    assert native.images.shape == (20, 1, 28, 28) and native.labels.dtype == torch.int64


def test_mnist_gz_files_put_by_hand_load_without_a_network(tmp_path):
    """torchvision's layout ROOT/MNIST/raw/ with the four .gz IDX files as fetched: unpacked on first use, read."""
    rng = np.random.default_rng(1)
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    train_images = rng.integers(0, 256, (12, 28, 28), dtype=np.uint8)
    for prefix, images in (("train", train_images), ("t10k", train_images[:3])):
        write_idx(raw / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, len(images), dtype=np.uint8))
    data = load_dataset(DataConfig(dataset="mnist", root=str(tmp_path)))  # the training split: 12, not 3
    assert len(data) == 12 and torch.equal(data.images[:, 0], torch.from_numpy(train_images))
    assert (raw / "train-images-idx3-ubyte").exists()


def test_mnist_partly_there_names_the_missing_files(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    write_idx(raw / "train-images-idx3-ubyte.gz", np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(DataError) as info:
        load_dataset(DataConfig(dataset="mnist", root=str(tmp_path)))
    msg = str(info.value)
    assert "missing: train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz" in msg
    assert "--dataset mnist-builtin" in msg and "--download" in msg
    (raw / "t10k-images-idx3-ubyte.gz").write_bytes(b"not gzip")
    with pytest.raises(DataError, match="not a readable gzip file"):
        load_dataset(DataConfig(dataset="mnist", root=str(tmp_path)))


# --- a folder of the user's own images ---------------------------------------------------------------
@pytest.fixture
def image_folder(tmp_path):
    root = tmp_path / "pics"
    rng = np.random.default_rng(0)
    save(root / "a.png", rng.integers(0, 256, (30, 40, 3), dtype=np.uint8))
    save(root / "cats" / "b.jpg", rng.integers(0, 256, (50, 20, 3), dtype=np.uint8), quality=90)
    save(root / "cats" / "deeper" / "c.PNG", rng.integers(0, 256, (12, 12), dtype=np.uint8))  # grayscale
    save(root / "cats" / "d.png", rng.integers(0, 256, (16, 16, 4), dtype=np.uint8))          # RGBA
    save(root / "e.bmp", rng.integers(0, 256, (8, 9, 3), dtype=np.uint8))
    (root / "broken.png").write_bytes(rng.integers(0, 256, 300, dtype=np.uint8).tobytes())
    (root / "notes.txt").write_text("not an image")
    (root / ".hidden.png").write_bytes(b"ignored")
    return root


def test_folder_loads_good_images_and_skips_the_rest(image_folder, caplog):
    with caplog.at_level(logging.WARNING, logger="ncsn_core.data"):
        data = load_image_folder(image_folder, 16, 3)
    assert len(data) == 5 and data.images.shape == (5, 3, 16, 16) and data.images.dtype == torch.uint8
    assert data.n_skipped == 2
    assert {p.name for p, _ in data.skipped} == {"broken.png", "notes.txt"}
    assert ".hidden.png" not in {p.name for p in data.paths}
    assert any("skipped 2" in r.getMessage() for r in caplog.records if r.name == "ncsn_core.data")
    x = data.get_batch(torch.arange(5))
    assert x.shape == (5, 3, 16, 16) and 0 <= x.min() and x.max() <= 1


def test_folder_grayscale_rgb_and_centre_crop(tmp_path):
    wide = np.zeros((20, 60, 3), np.uint8)
    wide[:, :10] = (255, 0, 0)
    wide[:, 50:] = (255, 0, 0)
    wide[:, 10:50] = (0, 255, 0)  # the centre square (and the resampling filter's reach around it) is green
    save(tmp_path / "wide.png", wide)
    save(tmp_path / "gray.png", np.full((10, 30), 200, np.uint8))
    rgb = load_image_folder(tmp_path, 10, 3)
    i, j = (rgb.paths.index(tmp_path / n) for n in ("wide.png", "gray.png"))
    assert torch.equal(rgb.images[i], torch.tensor([0, 255, 0], dtype=torch.uint8).view(3, 1, 1).expand(3, 10, 10))
    assert (rgb.images[j] == 200).all()
    gray = load_image_folder(tmp_path, 10, 1)
    assert gray.images.shape == (2, 1, 10, 10)
    assert (gray.images[i] == 150).all() and (gray.images[j] == 200).all()


def test_folder_skips_oversized_images(tmp_path):
    save(tmp_path / "big.png", np.zeros((30, 30), np.uint8))
    save(tmp_path / "small.png", np.zeros((5, 5), np.uint8))
    data = load_image_folder(tmp_path, 8, 1, max_pixels=100)
    assert len(data) == 1 and data.paths[0].name == "small.png"
    assert data.n_skipped == 1 and "too large" in data.skipped[0][1]


def test_folder_through_load_dataset_with_holdout(image_folder):
    cfg = DataConfig(dataset="folder", root=str(image_folder), image_size=8, channels=1, holdout=2)
    train, hold = load_dataset(cfg), load_dataset(cfg, "holdout")
    assert (len(train), len(hold)) == (3, 2)
    assert hold.paths == load_dataset(cfg, "all").paths[3:] and hold.n_skipped == 2
    assert train.get_batch(torch.tensor([0, 2])).shape == (2, 1, 8, 8)


def test_empty_missing_and_unset_folders_are_data_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty"):
        load_image_folder(tmp_path / "empty", 8, 1)
    with pytest.raises(DataError, match="does not exist"):
        load_image_folder(tmp_path / "nowhere", 8, 1)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "x.png").write_bytes(b"no png")
    with pytest.raises(DataError, match="none a readable image"):
        load_image_folder(tmp_path / "junk", 8, 1)
    with pytest.raises(DataError, match="root"):
        load_dataset(DataConfig(dataset="folder"))
    with pytest.raises(DataError, match="unknown dataset"):
        load_dataset(DataConfig(dataset="imagenet"))


# --- preprocess -----------------------------------------------------------------------------------
def test_dequantisation_range_and_mean_shift():
    k = torch.arange(256.0).repeat(64)
    x = (k / 255).view(64, 1, 16, 16)
    y = preprocess(x, DataConfig(dequantize=True), torch.Generator().manual_seed(0))
    assert y.min() >= 0 and y.max() < 1
    base = x * 255 / 256  # pixel k/255 lands in [k/256, (k+1)/256): mean (k + 1/2)/256
    assert ((y - base) >= 0).all() and ((y - base) < 1 / 256 + 1e-7).all()
    assert abs((y - base).mean().item() - 1 / 512) < 2e-5
    assert abs((y - x).mean().item() - (1 / 512 - x.mean().item() / 256)) < 2e-5


def test_flips_only_when_asked():
    x = torch.rand(64, 3, 5, 7, generator=torch.Generator().manual_seed(1))
    same = preprocess(x, DataConfig(dequantize=False, random_flip=False), torch.Generator().manual_seed(0))
    assert torch.equal(same, x)
    y = preprocess(x, DataConfig(dequantize=False, random_flip=True), torch.Generator().manual_seed(0))
    flipped = torch.tensor([torch.equal(a, b.flip(-1)) for a, b in zip(y, x)])
    kept = torch.tensor([torch.equal(a, b) for a, b in zip(y, x)])
    assert (flipped ^ kept).all() and 10 < flipped.sum() < 54


def test_toy_points_pass_through():
    pts = torch.randn(10, 2)
    assert torch.equal(preprocess(pts, DataConfig(channels=2, dequantize=True, random_flip=True)), pts)
    assert isinstance(load_dataset(DataConfig(dataset="toy", channels=2)), TensorImageSet)


def test_mean_image_over_an_evenly_spaced_subset():
    from ncsn_core.data import DataError, TensorImageSet, mean_image
    images = torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1).expand(10, 1, 2, 2).contiguous() * 20
    assert torch.allclose(mean_image(TensorImageSet(images)), torch.full((1, 2, 2), 90 / 255))
    assert torch.allclose(mean_image(TensorImageSet(images), max_images=2, batch_size=1), torch.full((1, 2, 2), 90 / 255))
    with pytest.raises(DataError, match="empty"):
        mean_image(TensorImageSet(images[:0]))
