"""What a sample set's FID ratio is made of, and what a perfect model would score.

1. The null: sets of n real digits from the training split, scored exactly as `ncsn eval --n N --seed S` scores
   samples (FID against the mean of 5 reference draws of the training split, over the real-vs-real floor of the same
   seed), over K seeds: the ratio a model that draws real digits would get, with its spread.
2. For each sample file (`ncsn sample --n N --seed S --out x.npy`, several pooled): the FID at n = 4500 against
   half-splits of the training split beside the training split's own halves (less noisy than n = 1000), split into
   its mean term |mu_a - mu_b|^2 and covariance term, then again with the samples reweighted to the training split's
   class frequencies (by the classifier's labels): the share of the excess that is class imbalance alone.
3. The class fractions against the training split's.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/fid_anatomy.py [--null K] [SAMPLES.npy ...]
"""
from __future__ import annotations

import argparse

import numpy as np
import torch
from scipy import linalg

from ncsn_core import metrics as M
from ncsn_core.evaluate import EVAL_HOLDOUT, RVR_DRAWS, reference_draws

N_POOLED = 4500  # two disjoint halves of the 9,000 training digits: the largest n with a real-vs-real beside it


def fid_terms(a: np.ndarray, b: np.ndarray, weights=None) -> tuple[float, float]:
    """(mean term, covariance term) of the FID between feature sets a (optionally weighted) and b."""
    w = np.full(len(a), 1.0 / len(a)) if weights is None else weights / weights.sum()
    mu_a, cov_a = w @ a, np.cov(a, rowvar=False, aweights=w)
    mu_b, cov_b = b.mean(0), np.cov(b, rowvar=False)
    d = mu_a - mu_b
    return float(d @ d), float(np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(linalg.sqrtm(cov_a @ cov_b).real))


def null_ratios(f_train: np.ndarray, n: int, k: int, net) -> np.ndarray:
    """FID ratio of k real sets of n training digits, each scored as `ncsn eval --seed s` scores samples (s = 0..k-1;
    the set is drawn apart from each reference draw, as a model's samples are not training digits)."""
    out = []
    for s in range(k):
        pick = np.random.default_rng(10_000 + s).choice(len(f_train), n, replace=False)
        refs = reference_draws(np.arange(len(f_train)), n, s)  # the indices of eval's reference draws
        fids = []
        for r in refs:
            rest = np.setdiff1d(r, pick)  # no digit on both sides: top up from the digits in neither set
            extra = np.setdiff1d(np.arange(len(f_train)), np.union1d(pick, r))
            r = np.concatenate([rest, np.random.default_rng(s).choice(extra, n - len(rest), replace=False)])
            fids.append(M.frechet_distance(f_train[pick], f_train[r]))
        floor = np.mean([M.fid_real_vs_real(n, s + j, net) for j in range(RVR_DRAWS)])
        out.append(np.mean(fids) / floor)
    return np.array(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("samples", nargs="*", help=".npy files of `ncsn sample`, pooled")
    ap.add_argument("--null", type=int, default=0, help="seeds of the real-digit null (0: skip)")
    ap.add_argument("--n", type=int, default=1000)
    args = ap.parse_args()
    torch.set_num_threads(1)
    net = M.load_classifier()
    images, _ = M.load_builtin_mnist()
    train = images[:len(images) - EVAL_HOLDOUT]
    f_train = M.features(train, net)
    lab_train, _ = M.classify(train, net)
    q = np.bincount(lab_train, minlength=10) / len(lab_train)
    if args.null:
        r = null_ratios(f_train, args.n, args.null, net)
        print(f"null: {args.null} sets of {args.n} real training digits scored as ncsn eval scores samples: FID ratio "
              f"mean {r.mean():.3f}, sd {r.std(ddof=1):.3f} (one seed), sd of a 5-seed mean {r.std(ddof=1) / 5 ** 0.5:.3f}; "
              f"share of seeds <= 1: {(r <= 1).mean():.2f}")
    print(f"training split class %:   {np.array2string(q * 100, precision=1, floatmode='fixed')}")
    if not args.samples:
        return
    x = torch.cat([torch.from_numpy(np.load(p)).float() for p in args.samples])
    x = x.reshape(len(x), 1, 28, 28) if x.dim() != 4 else x
    f = M.features(x, net)
    lab, conf = M.classify(x, net)
    p = np.bincount(lab, minlength=10) / len(lab)
    print(f"samples class % (n={len(x)}): {np.array2string(p * 100, precision=1, floatmode='fixed')}; "
          f"largest gap {np.abs(p - q).max() * 100:.1f} points; mean confidence {conf.mean():.4f}")
    if len(x) < N_POOLED:
        print(f"(the pooled FID needs {N_POOLED} samples; got {len(x)})")
        return
    rows = {"samples": [], "samples, class-reweighted": [], "training half vs half": []}
    for s in range(4):
        perm = np.random.default_rng(s).permutation(len(f_train))
        b = f_train[perm[:N_POOLED]]
        sub = np.random.default_rng(50 + s).choice(len(f), N_POOLED, replace=False)
        rows["samples"].append(fid_terms(f[sub], b))
        rows["samples, class-reweighted"].append(fid_terms(f[sub], b, weights=(q / np.maximum(p, 1e-9))[lab[sub]]))
        rows["training half vs half"].append(fid_terms(f_train[perm[N_POOLED:2 * N_POOLED]], b))
    print(f"FID at n={N_POOLED} (mean of 4 draws): mean term + covariance term = FID")
    for name, t in rows.items():
        m, c = np.mean(t, axis=0)
        print(f"  {name:28s} {m:6.2f} + {c:6.2f} = {m + c:6.2f}")


if __name__ == "__main__":
    main()
