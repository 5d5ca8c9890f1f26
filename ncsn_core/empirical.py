"""The exact score of a model's own training images, smoothed by sigma, for the large-sigma part of a chain
(SampleConfig.exact_above).

At noise level sigma the training set {x_i} smoothed by sigma has the density p_sigma(x) = 1/N sum_i N(x; x_i,
sigma^2 I) and the score

    grad log p_sigma(x) = (sum_i w_i(x) x_i - x) / sigma^2,   w = softmax_i(-|x - x_i|^2 / (2 sigma^2)),

which is exactly the minimiser of the denoising score matching loss the network is trained on (Vincent 2011). At
small sigma the weights w collapse onto the nearest training image, and a chain driven by it copies: that is why a
network, which generalises, is needed there. At large sigma w spreads over many images and the smoothed set is what
a perfect network would model; there the network's small errors decide how the chain splits between the classes,
and the exact score splits it as the data does (docs/bench/fid-anatomy.txt: the built-in model's FID ratio 1.27 ->
1.08 with the exact score above sigma 1.5, no copying). The cost is one (B, N) distance matrix per evaluation,
well below a network evaluation for a few thousand images.
"""
from __future__ import annotations

import functools

import torch

from .config import ConfigError, DataConfig

# the training set is held as one fp32 matrix (N, C*H*W): above this many values it would take more memory than a
# sampler should (CIFAR-10's 50,000 images are 1.5e8, 600 MB)
MAX_VALUES = 2e8


def exact_score(x: torch.Tensor, sigma: torch.Tensor, images: torch.Tensor, images_sq: torch.Tensor) -> torch.Tensor:
    """grad log p_sigma(x) of the training set `images` (N, D) smoothed by sigma (B,), at x (B, ...), in fp32.
    images_sq: (images ** 2).sum(1), precomputed."""
    with torch.autocast(x.device.type, enabled=False):
        xf, sig2 = x.reshape(len(x), -1).float(), sigma.float()[:, None] ** 2
        # |x - x_i|^2 = |x|^2 - 2 x.x_i + |x_i|^2; |x|^2 is the same for every i and cancels in the softmax.
        # fp32 keeps the rest accurate: its rounding (~1e-7 |x|^2) is far below 2 sigma^2 at every sigma
        logits = (2 * xf @ images.T - images_sq[None]) / (2 * sig2)
        w = torch.softmax(logits, dim=1)
        return ((w @ images - xf) / sig2).reshape(x.shape)


@functools.lru_cache(maxsize=2)
def training_images(data: DataConfig) -> torch.Tensor:
    """The images a model with data config `data` was trained on, as an fp32 (N, C*H*W) matrix on the CPU: its
    'train' split at the mean of the training transforms (dequantisation's pixel k/255 -> (k + 1/2)/256), with the
    mirrored copies when it trained on random flips. ConfigError naming the fix when they cannot be read here."""
    from .data import DataError, load_dataset
    try:
        train = load_dataset(data)
    except (DataError, OSError) as e:
        raise ConfigError(f"the exact large-sigma score (exact_above) needs the model's training images, and they "
                          f"cannot be read here ({e}); sample with exact_above 0 (--exact-above 0; in the studio, "
                          f"'Exact score above \u03c3' 0)") from e
    n, dim = len(train), data.channels * data.image_size ** 2
    if n * dim * (2 if data.random_flip else 1) > MAX_VALUES:
        raise ConfigError(f"the exact large-sigma score (exact_above) holds the training images in memory, and "
                          f"{n} images of {dim} values are too many ({MAX_VALUES:.0e} at most): sample with "
                          f"exact_above 0 (--exact-above 0; in the studio, 'Exact score above \u03c3' 0)")
    x = torch.cat([train.get_batch(idx) for idx in torch.arange(n).split(4096)])
    if x.dim() == 4 and data.dequantize:
        x = x * (255.0 / 256.0) + 1.0 / 512.0
    if x.dim() == 4 and data.random_flip:
        x = torch.cat([x, x.flip(-1)])
    return x.reshape(len(x), -1).float().contiguous()


def training_labels(data: DataConfig):
    """The class labels (N,) of training_images(data), in its order (int64), or None when the set has none (an
    image folder) or cannot be read here."""
    from .data import DataError, load_dataset
    try:
        labels = getattr(load_dataset(data), "labels", None)
    except (DataError, OSError):
        return None
    if labels is None:
        return None
    labels = torch.as_tensor(labels).long()
    return torch.cat([labels, labels]) if data.random_flip else labels  # the mirrored copies keep their class


class ExactAbove:
    """A score model whose score for sigma > threshold is the exact score of `images` (its training set), computed
    without running the network (nor its guide); the model's own below. Takes level indices or sigmas as the
    model does; every other attribute (its ladder, continuity, data mean) is the model's."""

    def __init__(self, model, images: torch.Tensor, threshold: float):
        self.model, self.threshold = model, float(threshold)
        self.images = images.to(model.sigmas.device)
        self.images_sq = (self.images * self.images).sum(1)

    def __call__(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        sigma = cond.float() if cond.is_floating_point() else self.model.sigmas[cond]
        exact = sigma > self.threshold
        if bool(exact.all()):
            return exact_score(x, sigma, self.images, self.images_sq)
        s = self.model(x, cond)
        if bool(exact.any()):
            s = s.clone()
            s[exact] = exact_score(x[exact], sigma[exact], self.images, self.images_sq).to(s.dtype)
        return s

    def __getattr__(self, name: str):
        return getattr(self.model, name)
