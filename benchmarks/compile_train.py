"""torch.compile (inductor, CPU) on the compact model's whole training step (loss, backward, Adam) against eager,
alternating, medians; prints the compile time of the first step too.

    .venv/bin/python benchmarks/compile_train.py
"""
from __future__ import annotations

import time

import torch
from train_step import train_step

from ncsn_core.config import get_preset
from ncsn_core.models import build_model


def main(rounds: int = 15) -> None:
    torch.set_num_threads(2)
    cfg = get_preset("mnist-cpu")
    torch.manual_seed(0)
    eager = build_model(cfg)
    twin = build_model(cfg)
    twin.load_state_dict(eager.state_dict())
    steps = {"eager": train_step(cfg, eager), "compiled": train_step(cfg, torch.compile(twin), sigmas=twin.sigmas)}
    t0 = time.perf_counter()
    steps["compiled"]()
    print(f"first compiled step (compiling): {time.perf_counter() - t0:.1f} s", flush=True)
    ts = {k: [] for k in steps}
    for _ in range(rounds):
        for k, step in steps.items():
            t0 = time.perf_counter()
            step()
            ts[k].append(time.perf_counter() - t0)
    med = {k: sorted(t)[len(t) // 2] for k, t in ts.items()}
    print(f"eager {med['eager'] * 1e3:.1f} ms, compiled {med['compiled'] * 1e3:.1f} ms "
          f"({med['eager'] / med['compiled']:.2f}x)")


if __name__ == "__main__":
    main()
