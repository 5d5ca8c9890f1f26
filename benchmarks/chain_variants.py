"""Is the built-in model's remaining FID excess the sampler's or the network's? Variants of its default chain
(Heun over 12 sigmas from 16 to 0.002, rho 7, churn 5, autoguidance w = 2, the training digits' exact score above
sigma 1.5), each scored exactly as `ncsn eval --n 1000 --seed S` scores samples (FID ratio against five reference
draws, classifier confidence, class balance, ink) plus the median distance to the nearest training digit:

  default         the chain as `ncsn eval` runs it (reproduces its figures to the last digit)
  draw@K          above grid sigma K the chain is solved exactly: x = x_i + sigma_K z with x_i a random training
                  digit (the training set smoothed by sigma_K is a mixture of Gaussians), then the chain from step K
  tmin=T          Karras et al.'s S_tmin: churn only on steps whose sigma is >= T
  snoise=S        Karras et al.'s S_noise: the churn noise scaled by S
  restart=H,L,K   restart sampling (Xu et al. 2023): on reaching grid sigma L, K times back up to grid sigma H by
                  the forward process and down again by the same steps

    .venv/bin/python benchmarks/chain_variants.py [VARIANT ...] --seeds 0,1,2,3,4 --json docs/bench/chain-variants.json

About 2.5 minutes per variant and five seeds on two threads (restarts cost more).
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from ncsn_core import metrics as M
from ncsn_core.checkpoint import load_checkpoint
from ncsn_core.empirical import ExactAbove, training_images
from ncsn_core.evaluate import builtin_model_path, digit_metrics
from ncsn_core.resources import load_builtin_mnist
from ncsn_core.sampling import Guided, churn_gamma, karras_sigmas

VARIANTS = ("default", "draw@4", "draw@5", "tmin=0.05", "tmin=0.2", "snoise=1.007", "restart=5,7,1",
            "restart=5,7,2", "restart=4,6,1", "restart=6,8,1")


def parse(name: str) -> dict:
    v = {"draw": None, "tmin": 0.0, "snoise": 1.0, "restart": None}
    if name.startswith("draw@"):
        v["draw"] = int(name[5:])
    elif name.startswith("tmin="):
        v["tmin"] = float(name[5:])
    elif name.startswith("snoise="):
        v["snoise"] = float(name[7:])
    elif name.startswith("restart="):
        v["restart"] = tuple(int(s) for s in name[8:].split(","))
    elif name != "default":
        raise SystemExit(f"unknown variant {name!r}; known: {', '.join(VARIANTS)}")
    return v


def heun_steps(score, x, ts, idx, g, v):
    """Steps idx of the default chain (sampling._heun_chain's arithmetic and random draws, the churn factor of the
    whole ladder) with the variant's churn range and noise scale."""
    gamma_full = churn_gamma(v["churn"], len(ts))
    for i in idx:
        t, t_next = ts[i], ts[i + 1] if i + 1 < len(ts) else 0.0
        if t >= v["tmin"]:
            t_hat = t * (1 + gamma_full)
            x = x + torch.randn(x.shape, generator=g) * v["snoise"] * (t_hat ** 2 - t ** 2) ** 0.5
            t = t_hat
        d = -t * score(x, t)
        x_next = x + (t_next - t) * d
        if t_next > 0:
            d = 0.5 * (d - t_next * score(x_next, t_next))
            x_next = x + (t_next - t) * d
        x = x_next
    return x


def chain(score, ts, images, batch: int, g, v) -> torch.Tensor:
    k0 = v["draw"] or 0
    if v["draw"] is None:  # the default start, N(0, 16^2)
        x = torch.randn(batch, 1, 28, 28, generator=g) * ts[0]
    else:
        idx = torch.randint(len(images), (batch,), generator=g)
        x = images[idx].view(batch, 1, 28, 28) + ts[k0] * torch.randn(batch, 1, 28, 28, generator=g)
    if v["restart"] is None:
        return heun_steps(score, x, ts, range(k0, len(ts)), g, v)
    hi, lo, k = v["restart"]
    x = heun_steps(score, x, ts, range(k0, lo), g, v)
    for _ in range(k):
        x = x + torch.randn(x.shape, generator=g) * (ts[hi] ** 2 - ts[lo] ** 2) ** 0.5
        x = heun_steps(score, x, ts, range(hi, lo), g, v)
    return heun_steps(score, x, ts, range(lo, len(ts)), g, v)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("variants", nargs="*", default=list(VARIANTS), help="variant names (default: all)")
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    names = args.variants
    seeds = [int(s) for s in args.seeds.split(",")]
    torch.set_num_threads(2)
    torch.set_grad_enabled(False)
    ld = load_checkpoint(builtin_model_path(), device="cpu", use_ema=True)
    sc = ld.config.sample
    images = training_images(ld.model.data_config)
    model = ExactAbove(Guided(ld.model, sc.guidance), images, sc.exact_above)
    ts = karras_sigmas(sc.sigma_begin, sc.sigma_end, sc.num_levels, sc.rho).tolist()
    train = torch.from_numpy(load_builtin_mnist()[0][:9000].copy()).float().div(255).unsqueeze(1)

    def score(x, t):
        return model(x, torch.full((len(x),), t))

    out = []
    for name in names:
        v, rows = {**parse(name), "churn": sc.churn}, []
        for seed in seeds:
            g = torch.Generator().manual_seed(seed)
            t0 = time.perf_counter()
            x = torch.cat([chain(score, ts, images, 250, g, v) for _ in range(4)])
            secs = time.perf_counter() - t0
            r = digit_metrics(x, seed)
            d = M.nearest_neighbours(x, train)[0][:, 0].numpy()
            rows.append({"seed": seed, "fid_ratio": r["fid_ratio"], "mean_confidence": r["mean_confidence"],
                         "share_confidence_below_0.9": r["share_confidence_below_0.9"],
                         "max_class_fraction": r["max_class_fraction"], "ink_ratio": r["ink_ratio"],
                         "nn_distance_median": float(np.median(d)), "sampling_seconds": secs,
                         "class_counts": r["class_counts"]})
        mean = {k: float(np.mean([row[k] for row in rows])) for k in rows[0] if k not in ("seed", "class_counts")}
        worst_class = max(row["max_class_fraction"] for row in rows)
        out.append({"variant": name, "mean": mean, "worst_max_class_fraction": worst_class, "seeds": rows})
        per_seed = ", ".join(f"{row['fid_ratio']:.2f}" for row in rows)
        print(f"{name:16s} FID ratio {mean['fid_ratio']:.3f} ({per_seed}) "
              f"conf {mean['mean_confidence']:.4f} <0.9 {mean['share_confidence_below_0.9']:.3f} "
              f"max class {mean['max_class_fraction']:.3f} (worst {worst_class:.3f}) ink {mean['ink_ratio']:.3f} "
              f"NN median {mean['nn_distance_median']:.2f} ({mean['sampling_seconds']:.0f} s)", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"what": "variants of the built-in model's default chain, n = 1000 per seed "
                               "(benchmarks/chain_variants.py)", "seeds": seeds, "rows": out}, f, indent=1)


if __name__ == "__main__":
    main()
