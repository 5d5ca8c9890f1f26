"""Probe: does averaging the scores of independently trained networks (an ensemble) beat each of them?

Two continuous-sigma checkpoints of the same recipe and data (e.g. the built-in model and run D, the same recipe
with dropout) share their preconditioning, which is linear in the network's output, so the mean of their networks'
outputs gives exactly the mean of their scores; their guides are averaged the same way, and autoguidance, linear
too, then extrapolates from the mean guide to the mean model. Scored exactly as `ncsn eval --n N --seed S` scores
samples (it calls `ncsn_core.evaluate.evaluate` with the first checkpoint's sampler settings), so a single
checkpoint's row reproduces `ncsn eval`. Each evaluation runs every network: k models cost k times the sampling.

    .venv/bin/python benchmarks/ensemble.py resources/models/mnist-cpu.pt OTHER.pt --seeds 0,1,2,3,4 \
        [--json docs/bench/ensemble.json]
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch
from torch import nn

from ncsn_core import evaluate as E
from ncsn_core.checkpoint import load_checkpoint

KEYS = ("fid_ratio", "mean_confidence", "share_confidence_below_0.9", "max_class_fraction", "ink_ratio",
        "nn_distance_median", "sampling_seconds")


class MeanNet(nn.Module):
    """The mean of several networks' outputs for the same (already preconditioned) input."""

    def __init__(self, nets):
        super().__init__()
        self.nets = nn.ModuleList(nets)

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor) -> torch.Tensor:
        return torch.stack([n(x, c_noise) for n in self.nets]).mean(0)


def ensemble_loader(paths: list):
    """A load_checkpoint whose model is the first checkpoint's with every listed network averaged in."""
    def load(path, device="cpu", use_ema=True):
        lds = [load_checkpoint(Path(p), device=device, use_ema=use_ema) for p in paths]
        for ld in lds:
            if ld.config.model.conditioning != "sigma":
                raise SystemExit(f"{ld.path}: only continuous-sigma models share a preconditioning to average in")
        first = lds[0]
        first.model.net = MeanNet([ld.model.net for ld in lds])
        if first.model.guide is not None:
            if any(ld.model.guide is None for ld in lds):
                raise SystemExit("every checkpoint needs a guide when the first has one")
            first.model.guide.net = MeanNet([ld.model.guide.net for ld in lds])
        return first
    return load


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoints", nargs="+")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(2)
    torch.set_grad_enabled(False)
    E.load_checkpoint = ensemble_loader(args.checkpoints)  # evaluate() loads through this name
    rows = []
    for s in [int(v) for v in args.seeds.split(",")]:
        r = E.evaluate(args.checkpoints[0], n=args.n, seed=s, loss_per_level=False)
        rows.append({"seed": s, **{k: r[k] for k in KEYS}, "class_fractions": r["class_fractions"]})
        print(f"seed {s}: " + ", ".join(f"{k} {r[k]:.4g}" for k in KEYS), flush=True)
    mean = {k: statistics.mean(r[k] for r in rows) for k in KEYS}
    print("mean: " + ", ".join(f"{k} {v:.4g}" for k, v in mean.items()))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"command": "benchmarks/ensemble.py " + " ".join(args.checkpoints) + f" --n {args.n} --seeds "
                       f"{args.seeds}", "checkpoints": args.checkpoints, "rows": rows, "mean": mean,
                       "sampler": r["sampler"], "label": r["label"]}, f, indent=1)


if __name__ == "__main__":
    main()
