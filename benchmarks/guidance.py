"""Autoguidance on one chart: for each guide (an earlier checkpoint, or a smaller model, of the same data) and each
weight w, the figures of `ncsn eval` (n samples, the model's default sampler with --guidance w): FID ratio against
the real-vs-real floor (both over 5 reference draws), mean confidence, the share below 0.9, the largest class and
the ink, and the sampling time. w = 1 is the model alone. About 1.5 minutes per point at n = 1000 on 2 threads.

    .venv/bin/python benchmarks/guidance.py runs/E/checkpoints/ckpt_00022000.pt \\
        --guides runs/E/checkpoints/ckpt_00002000.pt,runs/E/checkpoints/ckpt_00004000.pt \\
        --weights 1,1.5,2,2.5 --json docs/bench/guidance-builtin.json --png docs/bench/guidance-builtin.png
    .venv/bin/python benchmarks/guidance.py --replot docs/bench/guidance-builtin.json --png out.png

Each row is one JSON line on stdout as it is measured (and all rows in --json at the end).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FIGURES = ("fid_ratio", "mean_confidence", "share_confidence_below_0.9", "share_confidence_below_0.5",
           "max_class_fraction", "class_entropy_nats", "ink_ratio", "sampling_seconds")


def measure(checkpoint: str, guide: str, weights: list, n: int, seed: int) -> list:
    from ncsn_core.checkpoint import atomic_save, embed_guide, read_state
    from ncsn_core.evaluate import evaluate
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        guided = Path(tmp) / "guided.pt"
        atomic_save(embed_guide(read_state(Path(checkpoint)), Path(guide), 1.0), guided)
        for w in weights:
            r = evaluate(guided, n=n, seed=seed, guidance=w, loss_per_level=False)
            row = {"checkpoint": checkpoint, "guide": guide, "w": w, "n": n, "seed": seed,
                   **{k: r[k] for k in FIGURES}, "label": r["label"]}
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def plot(rows: list, out: Path) -> None:
    """One row of three panels (FID ratio, confidence, share below 0.9) per guided checkpoint, a line per guide and
    seed; w = 1 (the model alone) starts every line."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = [r for r in rows if "sigma_interval" not in r]  # guidance over every sigma only

    def name(path: str) -> str:  # runs/E/checkpoints/ckpt_00004000.pt -> E 4000
        p = Path(path)
        return f"{p.parent.parent.name} {int(p.stem.split('_')[1])}" if p.parent.name == "checkpoints" else p.stem
    ckpts = list(dict.fromkeys(r["checkpoint"] for r in rows))
    fig, axes = plt.subplots(len(ckpts), 3, figsize=(14, 3.6 * len(ckpts)), squeeze=False)
    n = rows[0]["n"]
    for row_axes, ckpt in zip(axes, ckpts):
        mine = [r for r in rows if r["checkpoint"] == ckpt]
        for guide, seed in dict.fromkeys((r["guide"], r["seed"]) for r in mine):
            rs = [r for r in mine if (r["guide"], r["seed"]) == (guide, seed) and r["w"] != 1]
            rs = sorted(rs + [r for r in mine if r["seed"] == seed and r["w"] == 1][:1], key=lambda r: r["w"])
            if len(rs) < 2:
                continue
            for ax, key in zip(row_axes, ("fid_ratio", "mean_confidence", "share_confidence_below_0.9")):
                ax.plot([r["w"] for r in rs], [r[key] for r in rs], "s--" if seed else "o-",
                        label=f"guided by {name(guide)}, seed {seed}")
        for ax, title in zip(row_axes, (f"FID ratio to real-vs-real (n={n}, 5 draws)", f"mean confidence (n={n})",
                                        f"share below 0.9 confidence (n={n})")):
            ax.set_title(f"{name(ckpt)}: {title}", fontsize=10)
            ax.set_xlabel("guidance weight w (1 = no guidance)")
            ax.grid(alpha=0.3)
        row_axes[0].axhline(1.0, color="grey", lw=0.8)
        row_axes[1].axhline(0.97, color="grey", lw=0.8, ls=":")
        row_axes[2].axhline(0.08, color="grey", lw=0.8, ls=":")
        row_axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=80)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint", nargs="?")
    ap.add_argument("--guides", default="", help="comma-separated guide checkpoints")
    ap.add_argument("--weights", default="1,1.5,2,2.5")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="write all rows here")
    ap.add_argument("--png", help="draw the chart here")
    ap.add_argument("--replot", help="draw --png from this JSON file of rows; measure nothing")
    args = ap.parse_args()
    if args.replot:
        data = json.loads(Path(args.replot).read_text())
        rows = data["rows"] if isinstance(data, dict) else data
    else:
        if not args.checkpoint or not args.guides:
            ap.error("give the checkpoint and --guides (or --replot FILE)")
        weights = [float(w) for w in args.weights.split(",")]
        rows = [row for g in args.guides.split(",") for row in measure(args.checkpoint, g, weights, args.n, args.seed)]
        if args.json:
            Path(args.json).write_text(json.dumps({"kind": "benchmarks/guidance.py", "rows": rows}, indent=1))
    if args.png:
        plot(rows, Path(args.png))


if __name__ == "__main__":
    main()
