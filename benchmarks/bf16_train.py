"""`ncsn train --precision bf16` against fp32: the loss curve of the same run in both precisions, beside a second
fp32 run on another seed (the seed-to-seed noise that "within noise" is measured against), and the step time.

Three real `ncsn train` runs, one after the other: fp32 seed 0, bf16 seed 0 (the same data order and the same
noise draws: autocast leaves the random draws alone), fp32 seed 1. Loss per logging window (--log-every steps);
the curves are compared as mean |difference| / mean loss over the windows after the first fifth of the run.
Step time: each run's median seconds per step from its metrics.jsonl; run alone on the machine for it to mean
anything (the ratio is then the speed-up). Writes JSON and a PNG.

    .venv/bin/python benchmarks/bf16_train.py [--preset mnist-paper] [--n-iters 200] [--batch-size 128] \
        [--dataset mnist-builtin] [--out docs/bench/bf16-train]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

RUNS = (("fp32", 0), ("bf16", 0), ("fp32", 1))


def train(preset: str, dataset: str, precision: str, seed: int, n_iters: int, batch: int, log_every: int,
          run_dir: Path) -> list:
    cmd = [sys.executable, "-m", "ncsn_core.cli", "train", "--preset", preset, "--dataset", dataset,
           "--precision", precision, "--seed", str(seed), "--n-iters", str(n_iters), "--batch-size", str(batch),
           "--log-every", str(log_every), "--save-every", str(n_iters), "--preview-every", "0",
           "--run-dir", str(run_dir), "--quiet"]
    print(" ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, check=True)
    return [json.loads(l) for l in (run_dir / "metrics.jsonl").read_text().splitlines() if '"loss"' in l]


def step_seconds(rows: list, batch: int) -> float:
    """Median seconds per step over the logging windows, the first (allocation, warm-up) left out."""
    return statistics.median(batch / r["images_per_s"] for r in rows[1:])


def curve_gap(a: list, b: list) -> float:
    """Mean |a - b| / mean (a) over the windows after the first fifth (the steep start)."""
    skip = len(a) // 5
    la, lb = [r["loss"] for r in a[skip:]], [r["loss"] for r in b[skip:]]
    return statistics.mean(abs(x - y) for x, y in zip(la, lb)) / statistics.mean(la)


def plot(curves: dict, path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, rows in curves.items():
        ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], label=name, lw=1.4)
    ax.set_xlabel("step")
    ax.set_ylabel("DSM loss (window mean)")
    ax.set_yscale("log")
    ax.set_title(title, fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="mnist-paper")
    ap.add_argument("--dataset", default="mnist-builtin", help="the shipped 10,000 digits (offline)")
    ap.add_argument("--n-iters", type=int, default=200)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--out", default="docs/bench/bf16-train")
    ap.add_argument("--work", default="runs/bf16-train", help="where the three run folders go")
    a = ap.parse_args()
    import torch
    from ncsn_core.bench import machine
    from ncsn_core.precision import bf16_unsupported
    curves, secs = {}, {}
    for precision, seed in RUNS:
        name = f"{precision} seed {seed}"
        run_dir = Path(a.work) / f"{precision}-s{seed}-{time.strftime('%H%M%S')}"
        curves[name] = train(a.preset, a.dataset, precision, seed, a.n_iters, a.batch_size, a.log_every, run_dir)
        secs[name] = step_seconds(curves[name], a.batch_size)
        print(f"{name}: {secs[name]:.3f} s/step, last loss {curves[name][-1]['loss']:.2f}", flush=True)
    res = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine(),
           "bf16_hardware": bf16_unsupported(torch.device("cpu")) or "yes (AMX)",
           "preset": a.preset, "dataset": a.dataset, "n_iters": a.n_iters, "batch_size": a.batch_size,
           "log_every": a.log_every,
           "step_s": secs, "bf16_speedup": secs["fp32 seed 0"] / secs["bf16 seed 0"],
           "gap_bf16_vs_fp32_same_seed": curve_gap(curves["fp32 seed 0"], curves["bf16 seed 0"]),
           "gap_fp32_seed1_vs_seed0": curve_gap(curves["fp32 seed 0"], curves["fp32 seed 1"]),
           "loss": {k: [[r["step"], r["loss"]] for r in v] for k, v in curves.items()}}
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(res, indent=1) + "\n")
    plot(curves, out.with_suffix(".png"),
         f"ncsn train --preset {a.preset} --batch-size {a.batch_size}, {res['date']}\nbf16 {res['bf16_speedup']:.2f}x "
         f"fp32's speed; curve gap {res['gap_bf16_vs_fp32_same_seed']:.1%} (seed to seed {res['gap_fp32_seed1_vs_seed0']:.1%})")
    print(f"bf16 {res['bf16_speedup']:.2f}x fp32's speed; loss curves: bf16 vs fp32 (same seed) "
          f"{res['gap_bf16_vs_fp32_same_seed']:.2%} apart, fp32 seed 1 vs seed 0 {res['gap_fp32_seed1_vs_seed0']:.2%}")


if __name__ == "__main__":
    main()
