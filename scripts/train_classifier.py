"""Train the digit classifier that `ncsn eval` uses for labels, confidences and FID features.

Trains on the first 9000 built-in MNIST digits and reports accuracy on the last 1000 (the digits the
built-in score model holds out: DataConfig(holdout=1000)). Writes resources/classifier/digits.pt, a
plain dict (tensors, ints, floats, strings) that loads with torch.load(weights_only=True).

    OMP_NUM_THREADS=1 python scripts/train_classifier.py    # about 100 s on one (shared) CPU core
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path

import torch
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from ncsn_core.checkpoint import atomic_save  # noqa: E402
from ncsn_core.data import load_builtin_mnist  # noqa: E402
from ncsn_core.metrics import CLASSIFIER_FORMAT, DEFAULT_CLASSIFIER, DigitCNN  # noqa: E402

HOLDOUT = 1000  # the built-in score model's DataConfig(holdout=1000)


def augment(x: torch.Tensor, g: torch.Generator, max_shift: int, max_noise: float) -> torch.Tensor:
    """Random integer shifts of up to `max_shift` pixels (zero fill), and Gaussian noise with a per-image
    sigma in U(0, max_noise) on half of the batch (samples of a score model carry a little noise)."""
    B, _, H, W = x.shape
    p = max_shift
    padded = F.pad(x, (p, p, p, p))
    dx = torch.randint(0, 2 * p + 1, (B,), generator=g)
    dy = torch.randint(0, 2 * p + 1, (B,), generator=g)
    rows = (dy[:, None] + torch.arange(H)[None]).view(B, H, 1).expand(B, H, W)
    cols = (dx[:, None] + torch.arange(W)[None]).view(B, 1, W).expand(B, H, W)
    out = padded[torch.arange(B)[:, None, None], 0, rows, cols].unsqueeze(1)
    sigma = torch.rand(B, generator=g) * max_noise * (torch.rand(B, generator=g) < 0.5)
    return out + sigma.view(B, 1, 1, 1) * torch.randn(out.shape, generator=g)


@torch.no_grad()
def accuracy(model: DigitCNN, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    pred = torch.cat([model(xb).argmax(1) for xb in x.split(500)])
    return float((pred == y).float().mean())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-shift", type=int, default=2)
    ap.add_argument("--max-noise", type=float, default=0.1)
    ap.add_argument("--out", type=Path, default=DEFAULT_CLASSIFIER)
    args = ap.parse_args(argv)

    torch.manual_seed(args.seed)
    g = torch.Generator().manual_seed(args.seed)
    images, labels = load_builtin_mnist()
    x = torch.from_numpy(images.copy()).float().div_(255.0).unsqueeze(1)
    y = torch.from_numpy(labels)
    x_train, y_train, x_held, y_held = x[:-HOLDOUT], y[:-HOLDOUT], x[-HOLDOUT:], y[-HOLDOUT:]

    model = DigitCNN()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    steps_per_epoch = len(x_train) // args.batch_size
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.epochs * steps_per_epoch)
    t0 = time.perf_counter()
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(x_train), generator=g)
        total = 0.0
        for b in range(steps_per_epoch):
            idx = perm[b * args.batch_size:(b + 1) * args.batch_size]
            xb = augment(x_train[idx], g, args.max_shift, args.max_noise)
            # no label smoothing: `ncsn eval` reports the softmax confidence, which smoothing would cap near 0.95
            loss = F.cross_entropy(model(xb), y_train[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach())
        acc = accuracy(model, x_held, y_held)
        print(f"epoch {epoch + 1:2d}/{args.epochs}  loss {total / steps_per_epoch:.4f}  held-out accuracy {acc:.4f}  "
              f"{time.perf_counter() - t0:.0f} s", flush=True)
    seconds = time.perf_counter() - t0
    acc = accuracy(model, x_held, y_held)
    command = "OMP_NUM_THREADS=%s python scripts/train_classifier.py %s" % (
        os.environ.get("OMP_NUM_THREADS", "<unset>"), shlex.join(argv if argv is not None else sys.argv[1:]))
    state = {
        "format": CLASSIFIER_FORMAT, "format_version": 1, "arch": "DigitCNN",
        "widths": list(model.widths), "feature_dim": model.feature_dim,
        "state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "heldout_accuracy": acc, "n_train": len(x_train), "n_heldout": HOLDOUT,
        "train_seconds": round(seconds, 1), "threads": torch.get_num_threads(), "seed": args.seed,
        "epochs": args.epochs, "command": command.strip(),
        "data": "built-in MNIST (t10k split): digits [0, 9000) train, [9000, 10000) held out",
    }
    atomic_save(state, args.out)
    size = args.out.stat().st_size
    print(f"held-out accuracy {acc:.4f} on {HOLDOUT} digits; trained in {seconds:.0f} s "
          f"({torch.get_num_threads()} threads); wrote {args.out} ({size / 1024:.0f} KiB)\ncommand: {command}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
