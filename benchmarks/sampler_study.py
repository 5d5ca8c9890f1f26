"""Compare annealed-Langevin settings on one MNIST checkpoint: classifier-feature FID, class histogram,
confidence, ink (mean pixel value; real digits: 0.132) and when each chain settles on its digit.

How the built-in model's sampler defaults were chosen (README, "How the defaults were chosen"):

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/sampler_study.py runs/builtin-ckpt_00018500.pt --n 500 \
        '[40, 5e-5, 0.0, "gaussian"]' '[40, 5e-5, 1.0, "gaussian"]' '[40, 5e-5, 1.0, "data-mean"]' \
        '[40, 5e-5, 0.5, "data-mean"]'

Each setting is JSON [T, step_lr, kappa, start]: T (steps per level) may be a list with one entry per
level, which `ncsn sample` cannot do; kappa is the variance correction and start 'gaussian' or
'data-mean' (see ncsn_core.sampling). With one T for all levels the chain is the same computation as
`annealed_langevin` with denoise on, drawing its random numbers in the same order. The reference set is
n random digits of the training split (seed 0) and the floor one real-vs-real draw (seed 0), the same
for every setting, so ratios compare settings with each other; `ncsn eval` averages 5 floor draws.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from ncsn_core import metrics as M  # noqa: E402
from ncsn_core.checkpoint import load_checkpoint  # noqa: E402
from ncsn_core.data import TensorImageSet, mean_image  # noqa: E402

N_TRAIN = 9000  # the built-in training split: the first 9000 digits


@torch.no_grad()
def run_chain(model, n_steps: list, step_lr: float, kappa: float, start: torch.Tensor, n: int, seed: int,
              net) -> tuple:
    """Annealed Langevin with per-level T; returns (final x, the digit read from the denoised chain
    x + sigma_i^2 s(x, i) at the end of each level)."""
    sig = model.sigmas.tolist()
    g = torch.Generator().manual_seed(seed)
    x = sig[0] * torch.randn(n, *start.shape, generator=g) + start
    per_level = []
    for i, s_i in enumerate(sig):
        labels = torch.full((n,), i, dtype=torch.long)
        alpha = step_lr * (s_i / sig[-1]) ** 2
        noise = (alpha * (1 - kappa * alpha / (4 * s_i ** 2))) ** 0.5
        for _ in range(n_steps[i]):
            x = x + alpha / 2 * model(x, labels) + noise * torch.randn(x.shape, generator=g)
        per_level.append(M.classify((x + s_i ** 2 * model(x, labels)).clamp(0, 1), net)[0])
    x = x + sig[-1] ** 2 * model(x, torch.full((n,), len(sig) - 1, dtype=torch.long))
    return x, per_level


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("settings", nargs="+", help='JSON [T, step_lr, kappa, start], e.g. \'[40, 5e-5, 0.5, "data-mean"]\'')
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    ld = load_checkpoint(Path(args.checkpoint))
    model, net = ld.model, M.load_classifier()
    images, _ = M.load_builtin_mnist()
    mean = ld.model.data_mean
    if mean is None:  # a checkpoint from before data means were recorded: the same computation as training's
        mean = mean_image(TensorImageSet(torch.from_numpy(np.array(images[:N_TRAIN])).view(N_TRAIN, 1, 28, 28)))
    real = images[np.random.default_rng(0).choice(N_TRAIN, args.n, replace=False)]
    floor = M.fid_real_vs_real(args.n, 0, net)
    for text in args.settings:
        t0 = time.perf_counter()
        T, step_lr, kappa, start = json.loads(text)
        T = T if isinstance(T, list) else [T] * len(model.sigmas)
        x0 = mean if start == "data-mean" else torch.zeros_like(mean)
        x, per_level = run_chain(model, T, step_lr, kappa, x0, args.n, args.seed, net)
        x = x.clamp(0, 1)
        labels, conf = M.classify(x, net)
        counts = M.class_histogram(labels)
        fid = M.frechet_distance(M.features(x, net), M.features(real, net))
        print(json.dumps({
            "setting": {"n_steps_each": T, "step_lr": step_lr, "variance_correction": kappa, "init": start},
            "checkpoint": str(ld.path), "step": ld.step, "n": args.n, "seed": args.seed,
            f"fid_classifier (n={args.n})": round(fid, 1), f"fid_real_vs_real (n={args.n}, seed 0)": round(floor, 1),
            "fid_ratio": round(fid / floor, 2), "class_counts": counts.tolist(),
            "class_entropy_nats": round(M.entropy_nats(counts), 3), "max_class_fraction": float(counts.max() / args.n),
            "mean_confidence": round(float(conf.mean()), 3), "ink": round(float(x.mean()), 3),
            "digit_settled_by_level": [round(float(np.mean(np.asarray(p) == np.asarray(labels))), 2) for p in per_level],
            "seconds": round(time.perf_counter() - t0, 1)}), flush=True)


if __name__ == "__main__":
    main()
