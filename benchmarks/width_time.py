"""Training-step time of the compact network at several widths (the mnist-cpu recipe, batch 64), alternating in one
run, medians: how many more steps a narrower network gets in the same minutes.

    .venv/bin/python benchmarks/width_time.py [16,48,96 16,32,128 ...]   (default: the widths below)
"""
from __future__ import annotations

import sys
import time

import torch
from train_step import train_step

from ncsn_core.config import get_preset
from ncsn_core.models import build_model

WIDTHS = [(16, 48, 96), (16, 32, 64), (24, 64, 128), (32, 64, 128), (32, 96, 192)]


def main(widths=WIDTHS, rounds: int = 10) -> None:
    torch.set_num_threads(2)
    steps, params = {}, {}
    for w in widths:
        cfg = get_preset("mnist-cpu").override("model", channels=w)
        torch.manual_seed(0)
        model = build_model(cfg)
        steps[w], params[w] = train_step(cfg, model), sum(p.numel() for p in model.parameters())
    ts = {w: [] for w in widths}
    for _ in range(rounds):
        for w, step in steps.items():
            step()
            t0 = time.perf_counter()
            step()
            ts[w].append(time.perf_counter() - t0)
    med = {w: sorted(t)[len(t) // 2] for w, t in ts.items()}
    for w in widths:
        print(f"channels {w}: {params[w]:,} params, {med[w] * 1e3:.0f} ms/step (b64), "
              f"{med[w] / med[widths[0]]:.2f}x the {'/'.join(map(str, widths[0]))} step")


if __name__ == "__main__":
    main([tuple(int(c) for c in a.split(",")) for a in sys.argv[1:]] or WIDTHS)
