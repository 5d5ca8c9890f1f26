"""Probe: the built-in model sampled with its defaults, except that for sigma > S the network (and its guide) is
replaced by the exact score of the 9,000 training digits' empirical distribution smoothed by sigma,
grad log sum_i N(x; x_i, sigma^2 I) = (sum_i softmax_i(-|x - x_i|^2 / 2 sigma^2) x_i - x) / sigma^2.
At large sigma that posterior spreads over many digits, so the chain is steered to the data's class shares without
landing on any one digit; the network takes over below S. Writes OUT_DIR/exact{S}_s{seed}.npy (1,000 samples per
seed, drawn as `ncsn eval --n 1000 --seed S --precision bf16` draws them) for benchmarks/fid_anatomy.py, and prints
the nearest-training-digit distances of seed 0's samples beside the held-out digits' (the memorisation check of
`ncsn eval`). About 35 s per seed on two threads of an AMX CPU.

    .venv/bin/python benchmarks/exact_score_probe.py 1.5 runs/probe 0,1,2,3,4
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from ncsn_core import metrics as M
from ncsn_core.checkpoint import load_checkpoint
from ncsn_core.data import load_dataset
from ncsn_core.evaluate import _settings, builtin_model_path, sample_batches


class ExactAbove:
    """A score model whose scores for sigma > s_switch are the training set's exact empirical score."""

    def __init__(self, net, data: torch.Tensor, s_switch: float):
        self.net, self.data, self.s_switch = net, data, s_switch
        self.data_sq = (data * data).sum(1)

    def __call__(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        s = self.net(x, cond)
        hi = cond > self.s_switch
        if hi.any():
            with torch.autocast(x.device.type, enabled=False):  # |x|^2 - 2 x.x_i + |x_i|^2 cancels: keep it fp32
                xf, sig = x[hi].reshape(int(hi.sum()), -1).float(), cond[hi].float()[:, None]
                d2 = (xf * xf).sum(1, keepdim=True) - 2 * xf @ self.data.T + self.data_sq[None]
                w = torch.softmax(-d2 / (2 * sig ** 2), dim=1)
                exact = ((w @ self.data - xf) / sig ** 2).reshape(x[hi].shape)
            s = s.clone()
            s[hi] = exact.to(s.dtype)
        return s

    def __getattr__(self, name: str):
        value = getattr(self.net, name)
        return ExactAbove(value, self.data, self.s_switch) if name == "guide" and value is not None else value


def main(s_switch: float, out_dir: Path, seeds: list) -> None:
    torch.set_num_threads(2)
    ld = load_checkpoint(builtin_model_path(), device="cpu", use_ema=True)
    train = load_dataset(ld.config.data)
    data = train.get_batch(torch.arange(len(train))).reshape(len(train), -1).float()
    sc, settings = _settings(ld, 250, ld.config.sample, {"precision": "bf16"})
    print(settings["description"], f"; exact empirical score for sigma > {s_switch:g}", flush=True)
    model = ExactAbove(ld.model, data, s_switch)
    out_dir.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        x = sample_batches(model, sc, (1, 28, 28), 1000, seed, torch.device("cpu"), 250)
        np.save(out_dir / f"exact{s_switch:g}_s{seed}.npy", x.numpy())
        if seed == seeds[0]:
            held = load_dataset(ld.config.data, split="holdout")
            d_held = M.nearest_neighbours(held.get_batch(torch.arange(len(held))), train)[0][:, 0].numpy()
            d = M.nearest_neighbours(x.clamp(0, 1), train)[0][:, 0].numpy()
            p1, p5 = np.percentile(d_held, [1, 5])
            print(f"seed {seed}: nearest training digit, median {np.median(d):.2f} (held-out {np.median(d_held):.2f}), "
                  f"closer than the held-out 1st percentile: {(d < p1).sum()}, than the 5th: {(d < p5).sum()} "
                  f"(of {len(d)}; ~10 and ~50 if they sat like unseen digits)", flush=True)
        print(f"seed {seed} written", flush=True)


if __name__ == "__main__":
    main(float(sys.argv[1]), Path(sys.argv[2]), [int(s) for s in sys.argv[3].split(",")])
