"""Probe: does the class balance of a model's samples follow its network at large sigma? Fine-tunes the built-in
model (from its EMA weights) on ln sigma ~ N(MU, SD^2) only (large sigmas for that question; MU < 0 for the small
sigmas that the network alone serves when sampling with exact_above), batch 64, Adam, an EMA of 0.995 kept
alongside, and writes a copy of the built-in checkpoint with that EMA as its weights (the same guide). Sample it
with `ncsn eval OUT.pt --n 1000 --seed S` or `ncsn sample --checkpoint OUT.pt --out X.npy`, then compare the class
shares with benchmarks/fid_anatomy.py. About 3 minutes on two threads for 1,000 steps.

    .venv/bin/python benchmarks/high_sigma_probe.py 1.0 0.6 1000 2e-4 runs/ft_hi.pt
"""
from __future__ import annotations

import copy
import sys
from pathlib import Path

import torch

from ncsn_core.checkpoint import atomic_save, load_checkpoint, read_state
from ncsn_core.data import load_dataset, preprocess
from ncsn_core.evaluate import builtin_model_path
from ncsn_core.losses import NoiseDraw, compute_loss


def main(mu: float, sd: float, steps: int, lr: float, out: str) -> None:
    state = read_state(builtin_model_path())
    ld = load_checkpoint(builtin_model_path(), device="cpu", use_ema=True)
    cfg, model = ld.config, ld.model
    ema = copy.deepcopy(model).eval()
    data = load_dataset(cfg.data)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    draw = NoiseDraw("log-normal", mu, sd)
    g = torch.Generator().manual_seed(123)
    model.train()
    for step in range(steps):
        x = preprocess(data.get_batch(torch.randint(len(data), (64,), generator=g)), cfg.data, g)
        res = compute_loss("dsm", model, x, model.sigmas, cfg.train.anneal_power, 1, generator=g, draw=draw,
                           weighting=cfg.train.weighting)
        opt.zero_grad()
        res.loss.backward()
        opt.step()
        with torch.no_grad():
            for pe, p in zip(ema.parameters(), model.parameters()):
                pe.lerp_(p, 1 - 0.995)
        if step % 200 == 0:
            print(f"step {step}: loss {res.loss.item():.1f}", flush=True)
    weights = ema.state_dict()
    state["ema"] = {k: weights[k] for k in state["ema"]}
    atomic_save(state, Path(out))
    print("wrote", out)


if __name__ == "__main__":
    torch.set_num_threads(2)
    main(float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5])
