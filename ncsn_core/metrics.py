"""Sample-quality metrics: our own digit classifier (labels, confidences, 128-D features), Frechet
distance with its sample count, class histograms, and the paper's DSM loss per noise level on held-out data.

No Qt here. The Inception-based IS/FID for colour data sets lives in `inception_metrics` and needs
torch-fidelity plus its Inception weights on disk (there is no download at run time)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .data import RESOURCES, load_builtin_mnist

DEFAULT_CLASSIFIER = RESOURCES / "classifier" / "digits.pt"
CLASSIFIER_FORMAT = "ncsn-digit-classifier"
ImageBatch = Union[torch.Tensor, np.ndarray]


class MetricsError(RuntimeError):
    """A metric cannot be computed (missing weights or package, too few samples); the message says the fix."""


# ---------------------------------------------------------------------------------------------
# The digit classifier
# ---------------------------------------------------------------------------------------------
class DigitCNN(nn.Module):
    """A small MNIST classifier: x (B, 1, 28, 28) in [0, 1] -> logits (B, 10).

    Three 3x3 conv + ReLU + 2x2 max-pool stages (28 -> 14 -> 7 -> 3), then a `feature_dim` linear
    layer whose pre-activation output is the feature vector used for FID, then ReLU, dropout and a
    10-way linear head.
    """

    def __init__(self, widths: Sequence[int] = (32, 64, 64), feature_dim: int = 128, dropout: float = 0.3):
        super().__init__()
        c1, c2, c3 = (int(w) for w in widths)
        self.widths, self.feature_dim = (c1, c2, c3), int(feature_dim)
        self.conv1 = nn.Conv2d(1, c1, 3, padding=1)
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1)
        self.conv3 = nn.Conv2d(c2, c3, 3, padding=1)
        self.fc = nn.Linear(c3 * 3 * 3, self.feature_dim)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(self.feature_dim, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, 28, 28) in [0, 1] -> (B, feature_dim), the penultimate layer before its ReLU."""
        h = 2 * x - 1  # centre the input: [0, 1] -> [-1, 1]
        for conv in (self.conv1, self.conv2, self.conv3):
            h = F.max_pool2d(F.relu(conv(h)), 2)
        return self.fc(h.flatten(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(F.relu(self.features(x))))


_CLASSIFIERS: dict = {}


def load_classifier(path: Union[str, Path] = DEFAULT_CLASSIFIER, device: Union[str, torch.device] = "cpu",
                    cached: bool = True) -> DigitCNN:
    """The digit classifier saved by scripts/train_classifier.py, in eval mode on `device`.

    The file is a plain dict (loaded with weights_only=True: no code runs); its held-out accuracy and the
    command that trained it are kept as attributes `heldout_accuracy`, `command` and `path`.
    With `cached` the same path and device return the same (read-only) module.
    """
    path = Path(path)
    key = (str(path.resolve()), str(device))
    if cached and key in _CLASSIFIERS:
        return _CLASSIFIERS[key]
    if not path.exists():
        raise MetricsError(f"digit classifier {path} is missing: restore resources/classifier/digits.pt from the "
                           f"repository or retrain it with `python scripts/train_classifier.py`")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # unpickling refusal, truncation, not a zip: all mean "this file cannot be used"
        raise MetricsError(f"{path} cannot be read as a digit classifier ({type(e).__name__}): retrain it with "
                           f"`python scripts/train_classifier.py`") from e
    if not isinstance(state, dict) or state.get("format") != CLASSIFIER_FORMAT:
        raise MetricsError(f"{path} is not a digit classifier saved by scripts/train_classifier.py")
    net = DigitCNN(state["widths"], state["feature_dim"])
    net.load_state_dict(state["state_dict"])
    net.heldout_accuracy = float(state.get("heldout_accuracy", float("nan")))
    net.command, net.path = str(state.get("command", "")), path
    net.to(device).eval().requires_grad_(False)
    if cached:
        _CLASSIFIERS[key] = net
    return net


def prepare_digits(images: ImageBatch, device: Union[str, torch.device] = "cpu") -> torch.Tensor:
    """Any digit batch -> float (N, 1, 28, 28) in [0, 1] on `device`.

    images: (N, H, W) or (N, 1, H, W); uint8 in [0, 255] or float in [0, 1]. Float values outside [0, 1]
    (Langevin samples overshoot a little) are clamped, as an exported image would be; other sizes are
    resized to 28 x 28 (bilinear, antialiased).
    """
    x = torch.from_numpy(np.array(images)) if isinstance(images, np.ndarray) else torch.as_tensor(images)
    if x.dim() == 3:
        x = x.unsqueeze(1)
    if x.dim() != 4 or x.shape[1] != 1:
        raise MetricsError(f"the digit classifier takes grayscale images (N, 1, H, W) or (N, H, W); got shape "
                           f"{tuple(x.shape)}: colour images need inception_metrics")
    x = x.float().div(255.0) if x.dtype == torch.uint8 else x.float()
    x = x.to(device)
    if x.shape[-2:] != (28, 28):
        x = F.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False, antialias=True)
    return x.clamp(0.0, 1.0)


@torch.no_grad()
def classify(images: ImageBatch, classifier: Optional[DigitCNN] = None,
             batch_size: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """Predicted digit and its softmax probability for each image.

    images: see `prepare_digits`. Returns (labels int64 (N,) in 0..9, confidences float32 (N,) in (0, 1]).
    classifier: None means the shipped one (load_classifier()).
    """
    net = classifier if classifier is not None else load_classifier()
    x = prepare_digits(images, next(net.parameters()).device)
    probs = torch.cat([F.softmax(net(xb), dim=1) for xb in x.split(batch_size)]) if len(x) else torch.zeros(0, 10)
    conf, labels = probs.max(dim=1)
    return labels.cpu().numpy().astype(np.int64), conf.cpu().numpy().astype(np.float32)


@torch.no_grad()
def features(images: ImageBatch, classifier: Optional[DigitCNN] = None, batch_size: int = 500) -> np.ndarray:
    """The classifier's penultimate-layer features: float64 (N, D), D = 128 for the shipped classifier.
    images: see `prepare_digits`."""
    net = classifier if classifier is not None else load_classifier()
    x = prepare_digits(images, next(net.parameters()).device)
    if len(x) == 0:
        return np.zeros((0, net.feature_dim))
    return torch.cat([net.features(xb) for xb in x.split(batch_size)]).cpu().double().numpy()


def frechet_distance(feats_a: np.ndarray, feats_b: np.ndarray, eps: float = 1e-6) -> float:
    """FID = |mu_a - mu_b|^2 + tr(C_a + C_b - 2 (C_a C_b)^{1/2}) between Gaussians fitted to two feature sets.

    feats_a: (N_a, D), feats_b: (N_b, D), N >= 2. Returns a float >= 0 (in squared feature units).
    The estimate is biased upward for small N (it shrinks as N grows), so only compare values at the same
    N; report N with it. sqrtm of a singular product (N <= D) can be inexact or complex: then the matrices
    are regularised with eps * I, and a tiny imaginary residue (numerical noise) is dropped.
    """
    from scipy import linalg
    a, b = np.asarray(feats_a, np.float64), np.asarray(feats_b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise MetricsError(f"feature sets must be (N, D) with the same D; got {a.shape} and {b.shape}")
    if len(a) < 2 or len(b) < 2:
        raise MetricsError(f"FID needs at least 2 samples per set; got {len(a)} and {len(b)}")
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    covmean = linalg.sqrtm(cov_a @ cov_b)
    if not np.isfinite(covmean).all():
        offset = np.eye(len(cov_a)) * eps
        covmean = linalg.sqrtm((cov_a + offset) @ (cov_b + offset))
    if np.iscomplexobj(covmean):
        # the trace of the true root is real; a large imaginary part means the root itself failed
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3 * max(1.0, np.abs(covmean.real).max())):
            raise MetricsError(f"FID: matrix square root failed (imaginary part {np.abs(covmean.imag).max():.3g}); "
                               f"use more samples than the feature dimension ({a.shape[1]})")
        covmean = covmean.real
    diff = mu_a - mu_b
    fid = diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2.0 * np.trace(covmean)
    return float(max(fid, 0.0))


def class_histogram(labels: ImageBatch, num_classes: int = 10) -> np.ndarray:
    """Counts of each class: labels int (N,) in [0, num_classes) -> int64 (num_classes,)."""
    lab = np.asarray(labels, dtype=np.int64).ravel()
    if lab.size and (lab.min() < 0 or lab.max() >= num_classes):
        raise MetricsError(f"labels must lie in [0, {num_classes}); got [{lab.min()}, {lab.max()}]")
    return np.bincount(lab, minlength=num_classes).astype(np.int64)


def entropy_nats(counts: Sequence[float]) -> float:
    """Shannon entropy (natural log) of a histogram: counts (K,) >= 0, not all 0 -> float in [0, ln K].
    ln 10 = 2.303 for ten equally frequent digits; 0 when every sample is the same digit."""
    c = np.asarray(counts, dtype=np.float64).ravel()
    if (c < 0).any() or c.sum() <= 0:
        raise MetricsError("entropy needs non-negative counts with a positive total")
    p = c[c > 0] / c.sum()
    return float(-(p * np.log(p)).sum()) + 0.0  # + 0.0 turns -0.0 into 0.0


def fid_real_vs_real(n: int, seed: int = 0, classifier: Optional[DigitCNN] = None) -> float:
    """FID between two disjoint random sets of n real digits from the 10,000 built-in ones.

    The floor that a perfect sampler would reach at the same n (FID's small-sample bias): compare a
    sample FID with this, not with 0. n in [2, 5000]; the same seed picks the same digits.
    """
    images, _ = load_builtin_mnist()
    if not 2 <= n <= len(images) // 2:
        raise MetricsError(f"real-vs-real FID needs 2 <= n <= {len(images) // 2} (two disjoint sets of "
                           f"{len(images)} digits); got n={n}")
    perm = np.random.default_rng(seed).permutation(len(images))
    net = classifier if classifier is not None else load_classifier()
    return frechet_distance(features(images[perm[:n]], net), features(images[perm[n:2 * n]], net))


@torch.no_grad()
def dsm_loss_per_level(model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], images: torch.Tensor,
                       sigmas: torch.Tensor, seed: int = 0, anneal_power: float = 2.0,
                       batch_size: int = 500, on_level: Optional[Callable[[int], None]] = None) -> np.ndarray:
    """The paper's denoising score matching loss (Eq. 5-6, as in training: 1/2 sum over pixels, weighted by
    sigma_i^anneal_power) at every noise level, each on every image: a clean per-level estimate.

    model: score net s(x, labels) in eval mode; images: (N, C, H, W) in [0, 1] on the model's device;
    sigmas: (L,) descending. Returns float64 (L,): the mean loss at level i over the N images.
    The same seed draws the same noise. on_level(i) is called after level i (for progress bars).
    """
    from .losses import dsm_loss
    if len(images) == 0:
        raise MetricsError("dsm_loss_per_level needs at least one image")
    g = torch.Generator(device=images.device).manual_seed(int(seed))
    sig = sigmas.to(images.device)
    out = np.zeros(len(sig))
    for i in range(len(sig)):
        total = 0.0
        for xb in images.split(batch_size):
            labels = torch.full((len(xb),), i, dtype=torch.long, device=xb.device)
            total += float(dsm_loss(model, xb, sig, labels, anneal_power=anneal_power, generator=g).per_example.sum())
        out[i] = total / len(images)
        if on_level is not None:
            on_level(i)
    return out


# ---------------------------------------------------------------------------------------------
# Memorisation: nearest training images in pixel space (the paper's nearest-neighbour figure)
# ---------------------------------------------------------------------------------------------
@torch.no_grad()
def nearest_neighbours(queries: torch.Tensor, reference, k: int = 1,
                       max_elements: int = 4_000_000) -> tuple[torch.Tensor, torch.Tensor]:
    """The k nearest reference images of each query by L2 distance in pixel space (images clamped to [0, 1]).

    queries: (N, C, H, W). reference: an image set (len() and get_batch(LongTensor) -> (B, C, H, W) in [0, 1],
    see ncsn_core.data) or a tensor (M, C, H, W). Returns (distances float32 (N, k), ascending; indices int64
    (N, k) into reference), on the queries' device. The search reads the reference in chunks and keeps a
    running top-k, so memory stays near max_elements floats however large the reference (60,000 digits or a
    folder); it uses |q|^2 - 2 q.r + |r|^2 (one matrix product per chunk), whose float32 rounding is ~1e-4 in
    d^2, so the k distances returned are recomputed exactly from the chosen images (a copy gives 0, not 0.01).
    """
    get = reference.get_batch if hasattr(reference, "get_batch") else reference.__getitem__
    m, n = len(reference), len(queries)
    if n == 0 or not 1 <= k <= m:
        raise MetricsError(f"nearest_neighbours needs queries and 1 <= k <= {m} reference images; got {n} "
                           f"queries and k={k}")
    q = queries.flatten(1).float().clamp(0, 1)
    ref_shape = tuple(get(torch.arange(1)).shape[1:])
    if ref_shape != tuple(queries.shape[1:]):
        raise MetricsError(f"queries of shape {tuple(queries.shape[1:])} and reference images of shape "
                           f"{ref_shape} differ: compare images of one format")
    q_sq = q.pow(2).sum(1, keepdim=True)
    chunk = max(k, max_elements // n)
    best_d2 = q.new_empty((n, 0))
    best_i = torch.empty((n, 0), dtype=torch.long, device=q.device)
    for start in range(0, m, chunk):
        idx = torch.arange(start, min(start + chunk, m))
        r = get(idx).flatten(1).float().clamp(0, 1).to(q.device)
        d2 = torch.addmm(q_sq + r.pow(2).sum(1), q, r.T, alpha=-2.0)  # (n, chunk) squared distances
        v, j = d2.topk(min(k, len(idx)), dim=1, largest=False)  # this chunk's best, then merged with the best so far
        best_d2, best_i = torch.cat([best_d2, v], 1), torch.cat([best_i, j + start], 1)
        best_d2, pick = best_d2.topk(min(k, best_d2.shape[1]), dim=1, largest=False)
        best_i = best_i.gather(1, pick)
    nearest = get(best_i.flatten().cpu()).flatten(1).float().clamp(0, 1).to(q.device).view(n, k, -1)
    dist = (nearest - q[:, None]).norm(dim=2)
    dist, order = dist.sort(dim=1)
    return dist, best_i.gather(1, order)


MEMORISATION_FIGURES = ("nn_distance_median", "nn_distance_p5", "nn_distance_min", "nn_distance_median_real",
                        "nn_distance_p5_real", "nn_distance_p1_real", "share_closer_than_real_p1",
                        "share_closer_than_real_p5", "nn_distance_median_train", "nn_distance_p5_train")


def training_loo_distances(train, n: int = 1000) -> np.ndarray:
    """Each of n evenly spaced training images' distance to its nearest *other* training image (leave-one-out):
    where a fresh digit of the training distribution would sit. The held-out reals can sit farther (the built-in
    ones are the end of MNIST's test split, harder digits by other writers than its first half), so samples
    closer than they are need not be copies; closer than this too, they are pulled toward the training images."""
    idx = torch.linspace(0, len(train) - 1, min(n, len(train))).round().long().unique()
    get = train.get_batch if hasattr(train, "get_batch") else train.__getitem__
    dist = nearest_neighbours(get(idx), train, k=2)[0]
    return dist[:, 1].cpu().numpy()  # [:, 0] is the image itself (0)


def memorisation_figures(d_samples: np.ndarray, d_real: Optional[np.ndarray],
                         d_train: Optional[np.ndarray] = None) -> dict:
    """Summaries of nearest-training-image distances: samples beside held-out real images (never trained on).

    d_samples: (n,) each sample's distance to its nearest training image; d_real: (n_real,) the same for
    held-out reals, or None. A model that copies puts samples closer to the training set than real unseen
    images are: share_closer_than_real_p1 is the share of samples nearer than the held-out 1st percentile
    ("possible copies"; about 0.01 if samples sit like unseen reals). Real-based keys are None without d_real.
    d_train: training_loo_distances, for the *_train keys (None: they are None).
    """
    d = np.asarray(d_samples, np.float64)
    out = {**dict.fromkeys(MEMORISATION_FIGURES), "nn_distance_median": float(np.median(d)),
           "nn_distance_p5": float(np.percentile(d, 5)), "nn_distance_min": float(d.min())}
    if d_real is not None:
        r = np.asarray(d_real, np.float64)
        p1, p5 = float(np.percentile(r, 1)), float(np.percentile(r, 5))
        out.update(nn_distance_median_real=float(np.median(r)), nn_distance_p5_real=p5, nn_distance_p1_real=p1,
                   share_closer_than_real_p1=float((d < p1).mean()), share_closer_than_real_p5=float((d < p5).mean()))
    if d_train is not None:
        t = np.asarray(d_train, np.float64)
        out.update(nn_distance_median_train=float(np.median(t)), nn_distance_p5_train=float(np.percentile(t, 5)))
    return out


# ---------------------------------------------------------------------------------------------
# Inception Score and FID for colour data sets (torch-fidelity, local weights only)
# ---------------------------------------------------------------------------------------------
INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/" + INCEPTION_FILE
INCEPTION_ENV = "NCSN_INCEPTION_WEIGHTS"


def inception_weights_path() -> Path:
    """Where the Inception weights must be: $NCSN_INCEPTION_WEIGHTS if set, else torch-fidelity's own cache
    file <torch hub dir>/checkpoints/weights-inception-2015-12-05-6726825d.pth. Raises MetricsError, naming
    the file to download and where to put it, when it is not there (nothing is downloaded at run time)."""
    env = os.environ.get(INCEPTION_ENV)
    path = Path(env) if env else Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE
    if not path.is_file():
        raise MetricsError(f"Inception weights for IS/FID not found at {path}: download {INCEPTION_URL} and save "
                           f"it as {path} (or point {INCEPTION_ENV} at the file)")
    return path


def _import_torch_fidelity():
    try:
        import torch_fidelity
    except ImportError as e:
        raise MetricsError("IS/FID for colour images needs torch-fidelity: pip install 'torch-fidelity>=0.3'") from e
    return torch_fidelity


def check_inception_available() -> Path:
    """Raise MetricsError now if IS/FID cannot run (no weights file, no torch-fidelity); else the weights path."""
    path = inception_weights_path()
    _import_torch_fidelity()
    return path


class _Uint8Images(torch.utils.data.Dataset):
    """(N, 3, H, W) float in [0, 1] -> uint8 images, the input torch-fidelity expects."""

    def __init__(self, x: torch.Tensor):
        self.x = (x.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu()

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.x[i]


def inception_metrics(samples: torch.Tensor, real: torch.Tensor, device: Union[str, torch.device] = "cpu",
                      batch_size: int = 64, isc_splits: int = 10, seed: int = 0) -> dict:
    """Inception Score of `samples` and Inception FID of samples vs `real`, via torch-fidelity.

    samples, real: float (N, 3, H, W) in [0, 1] (clamped; quantised to uint8 as saved images would be).
    Returns {"inception_score", "inception_score_std", "fid_inception", "n_samples", "n_real"}.
    Needs `pip install torch-fidelity` and the weights file named by `inception_weights_path`.
    """
    weights = inception_weights_path()
    torch_fidelity = _import_torch_fidelity()
    try:  # refuse files that need code to unpickle, as checkpoints do, before torch-fidelity loads it
        torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as e:
        raise MetricsError(f"{weights} is not a plain Inception state dict ({type(e).__name__}): download "
                           f"{INCEPTION_URL} again") from e
    for name, t in (("samples", samples), ("real", real)):
        if t.dim() != 4 or t.shape[1] != 3:
            raise MetricsError(f"{name} must be (N, 3, H, W) colour images; got {tuple(t.shape)}")
    if len(samples) < max(2, isc_splits):
        raise MetricsError(f"IS needs at least {isc_splits} samples (one per split); got {len(samples)}")
    res = torch_fidelity.calculate_metrics(
        input1=_Uint8Images(samples), input2=_Uint8Images(real), isc=True, fid=True, isc_splits=isc_splits,
        feature_extractor_weights_path=str(weights), cuda=torch.device(device).type == "cuda",
        batch_size=batch_size, cache=False, verbose=False, rng_seed=seed, save_cpu_ram=True)
    return {"inception_score": float(res["inception_score_mean"]),
            "inception_score_std": float(res["inception_score_std"]),
            "fid_inception": float(res["frechet_inception_distance"]),
            "n_samples": len(samples), "n_real": len(real)}
