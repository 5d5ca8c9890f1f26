"""Print measured cost figures of the score networks on this machine: parameters, FLOPs, training
images/s and sampling images/s, for the paper's RefineNet and the compact CPU model, measured in one
run so their ratio is meaningful on a shared, noisy machine.

    .venv/bin/python benchmarks/models.py [--batch 32] [--repeats 3] [--threads N]
"""
from __future__ import annotations

import argparse
import time

import torch

from ncsn_core.config import get_preset
from ncsn_core.losses import dsm_loss
from ncsn_core.models import build_model, conv_flops, count_parameters


def _best_of(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def measure(preset: str, batch: int, repeats: int) -> dict:
    cfg = get_preset(preset)
    torch.manual_seed(0)
    model = build_model(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.rand(batch, cfg.data.channels, cfg.data.image_size, cfg.data.image_size)
    labels = torch.zeros(batch, dtype=torch.long)

    def train_step():
        res = dsm_loss(model, x, model.sigmas)
        opt.zero_grad()
        res.loss.backward()
        opt.step()

    def sample_step():
        with torch.no_grad():
            model(x, labels)
    t_train, t_fwd = _best_of(train_step, repeats), _best_of(sample_step, repeats)
    return {"preset": preset, "params": count_parameters(model),
            "gflop_per_image": conv_flops(model, x[:1], labels[:1]) / 1e9,
            "train_images_per_s": batch / t_train, "langevin_steps_x_images_per_s": batch / t_fwd}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = [measure(p, args.batch, args.repeats) for p in ("mnist-paper", "mnist-cpu")]
    print(f"torch {torch.__version__}, {args.threads} thread(s), batch {args.batch}, best of {args.repeats}")
    print(f"{'preset':<13}{'params':>12}{'GFLOP/img':>11}{'train img/s':>13}{'Langevin img-steps/s':>22}")
    for r in rows:
        print(f"{r['preset']:<13}{r['params']:>12,}{r['gflop_per_image']:>11.3f}{r['train_images_per_s']:>13.1f}"
              f"{r['langevin_steps_x_images_per_s']:>22.1f}")
    a, b = rows
    print(f"compact vs paper: {b['train_images_per_s'] / a['train_images_per_s']:.1f}x faster training, "
          f"{b['langevin_steps_x_images_per_s'] / a['langevin_steps_x_images_per_s']:.1f}x faster sampling")


if __name__ == "__main__":
    main()
