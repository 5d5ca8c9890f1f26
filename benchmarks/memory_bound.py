"""The compact network's memory-bound steps, alternatives measured in one run (alternating, medians):

- the skip merge: oneDNN's 1x1 convolution of torch.cat([u, h]) against `ops.conv1x1_cat` (two matrix products,
  no concatenation), in a whole forward pass (Langevin step) and a whole training step (loss, backward, Adam);
- ELU: ATen's elu_ (expm1) against relu(x) + (exp(min(x, 0)) - 1) (exp runs about 3x faster than expm1 here on
  one thread), on the activations' shapes.

    .venv/bin/python benchmarks/memory_bound.py [--threads 2] [--rounds 20]
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from train_step import train_step

from ncsn_core.config import get_preset
from ncsn_core.models import build_model, ops


def median_ms(ts) -> float:
    return sorted(ts)[len(ts) // 2] * 1e3


def alternate(variants: dict, run, rounds: int) -> dict:
    """variants: name -> the conv1x1_cat to use; run() is timed once per variant per round, after a warm-up call."""
    ts = {k: [] for k in variants}
    for _ in range(rounds):
        for name, merge in variants.items():
            ops.conv1x1_cat = merge
            run()
            t0 = time.perf_counter()
            run()
            ts[name].append(time.perf_counter() - t0)
    ops.conv1x1_cat = variants["conv1x1_cat"]
    return {k: median_ms(v) for k, v in ts.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=20)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = get_preset("mnist-cpu")
    torch.manual_seed(0)
    model = build_model(cfg)
    variants = {"cat + 1x1 conv": lambda conv, u, h: conv(torch.cat([u, h], dim=1)), "conv1x1_cat": ops.conv1x1_cat}
    print(f"torch {torch.__version__}, {args.threads} threads, {args.rounds} rounds, medians")
    for batch in (64, 256):
        x, sigma = torch.rand(batch, 1, 28, 28), torch.full((batch,), 0.5)
        model.eval()
        with torch.inference_mode():
            r = alternate(variants, lambda: model(x, sigma), args.rounds)
        print(f"forward b{batch}: " + ", ".join(f"{k} {v:.1f} ms" for k, v in r.items()) +
              f"  ({r['cat + 1x1 conv'] / r['conv1x1_cat']:.2f}x)")
    r = alternate(variants, train_step(cfg, model), args.rounds)
    print("train step b64: " + ", ".join(f"{k} {v:.1f} ms" for k, v in r.items()) +
          f"  ({r['cat + 1x1 conv'] / r['conv1x1_cat']:.2f}x)")

    def elu_exp_(z):
        neg = z.clamp_max(0).exp_().sub_(1)  # exp(0) - 1 = 0 exactly where z > 0
        return z.clamp_min_(0).add_(neg)
    with torch.inference_mode():
        for shape in [(64, 16, 28, 28), (64, 48, 14, 14)]:
            y = torch.randn(shape).contiguous(memory_format=torch.channels_last)
            ts = {"clone": [], "elu_": [], "exp form": []}
            for _ in range(args.rounds * 2):
                for name, f in (("clone", lambda t: t), ("elu_", F.elu_), ("exp form", elu_exp_)):
                    t0 = time.perf_counter()
                    f(y.clone())
                    ts[name].append(time.perf_counter() - t0)
            base = median_ms(ts["clone"])
            print(f"ELU {tuple(shape)}: ATen elu_ {median_ms(ts['elu_']) - base:.2f} ms, "
                  f"exp form {median_ms(ts['exp form']) - base:.2f} ms (each less a clone's {base:.2f} ms)")


if __name__ == "__main__":
    main()
