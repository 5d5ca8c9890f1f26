"""Quality against time, the chart the defaults are chosen on: sample quality (the figures of `ncsn eval`) against
sampling wall time for sampler settings, or against training minutes for the checkpoints of training runs.

    # (a) samplers on one checkpoint: each setting is a name and JSON SampleConfig overrides
    .venv/bin/python benchmarks/quality_time.py samplers resources/models/mnist-cpu.pt --n 500 \\
        --setting 'heun-18={"sampler": "heun", "num_levels": 18}' --setting 'pc-10x1={"sampler": "pc", ...}' \\
        --out docs/bench/samplers
    # the same over several seeds (each point the mean of their figures; the FID ratio of one seed of 1,000 samples
    # has a spread of about 0.2 even for real digits, docs/bench/fid-anatomy.txt)
    .venv/bin/python benchmarks/quality_time.py samplers resources/models/mnist-cpu.pt --n 1000 --seeds 0,1,2,3,4 ...
    # (b) training recipes: every k-th checkpoint of each run folder, sampled with the run's own default sampler
    #     (or --sampler JSON for the continuous-sigma runs), plotted against steps and quiet-machine minutes
    .venv/bin/python benchmarks/quality_time.py training runs/A runs/B --n 500 --every 2 --out docs/bench/training

Each writes OUT.json (one row per point, every figure with its n) and OUT.png. Training minutes are wall time
from the run's start (its first logged step, less that step's share) to the checkpoint's step, read from
metrics.jsonl. Rows already in OUT.json are kept and not measured again (a killed run resumes).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from ncsn_core.evaluate import evaluate  # noqa: E402

FIGURES = ("fid_classifier", "fid_real_vs_real", "fid_ratio", "class_entropy_nats", "max_class_fraction",
           "mean_confidence", "share_confidence_below_0.9", "share_confidence_below_0.5", "ink_ratio",
           "sampling_seconds")
# the memorisation check (ncsn eval's nearest training digit), where the evaluation made it
COPYING = ("nn_distance_median", "nn_distance_median_real", "share_closer_than_real_p1", "share_closer_than_real_p5")


def _row(res: dict, **extra) -> dict:
    return {**extra, "n": res["n"], "seed": res["seed"], "label": res["label"], "nfe": res["sampler"]["nfe"],
            **{k: res[k] for k in FIGURES}, **{k: res[k] for k in COPYING if k in res}}


def _means(rows: list) -> list:
    """One row per setting: the mean of its seeds' figures (seeds listed), for the plot."""
    out = {}
    for r in rows:
        out.setdefault(r["name"], []).append(r)
    keys = FIGURES + tuple(k for k in COPYING if all(r.get(k) is not None for r in rows))
    return [{**group[0], "seeds": [r["seed"] for r in group],
             **{k: sum(r[k] for r in group) / len(group) for k in keys}} for group in out.values()]


def _load(out: Path) -> list:
    p = out.with_suffix(".json")
    return json.loads(p.read_text())["rows"] if p.exists() else []


def _save(out: Path, rows: list, meta: dict) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({**meta, "rows": rows}, indent=1))
    tmp.replace(out.with_suffix(".json"))


def run_minutes(run: Path) -> dict:
    """{step: wall minutes since the run's start} for every logged step of run/metrics.jsonl."""
    recs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if '"loss"' in line]
    recs = [r for r in recs if "time" in r]
    first, second = recs[0], recs[1]
    per_step = (second["time"] - first["time"]) / (second["step"] - first["step"])
    start = first["time"] - first["step"] * per_step
    return {r["step"]: (r["time"] - start) / 60 for r in recs}


def cmd_samplers(args) -> dict:
    rows = _load(args.out)
    done = {(r["name"], r["seed"]) for r in rows}
    for text in args.setting:
        name, _, js = text.partition("=")
        for seed in args.seeds:
            if (name, seed) in done:
                continue
            overrides = json.loads(js)
            res = evaluate(args.checkpoint, n=args.n, seed=seed, batch_size=args.batch_size, loss_per_level=False,
                           **overrides)
            rows.append(_row(res, name=name, overrides=overrides))
            print(f"{name} seed {seed}: {res['sampling_seconds']:.1f} s, FID ratio {res['fid_ratio']:.2f}, "
                  f"confidence {res['mean_confidence']:.3f}", flush=True)
            _save(args.out, rows, {"kind": "samplers", "checkpoint": str(args.checkpoint)})
    return {"kind": "samplers", "checkpoint": str(args.checkpoint), "rows": rows}


def cmd_training(args) -> dict:
    rows = _load(args.out)
    done = {(r["run"], r["step"]) for r in rows}
    overrides = json.loads(args.sampler) if args.sampler else {}
    for run in args.runs:
        minutes = run_minutes(run)
        cfg = json.loads((run / "config.json").read_text())
        run_overrides = overrides if cfg["model"].get("conditioning") == "sigma" else {}
        ckpts = sorted((run / "checkpoints").glob("ckpt_*.pt"))[:: args.every]
        for ck in ckpts:
            step = int(ck.stem.split("_")[1])
            logged = [k for k in minutes if k <= step]
            if (str(run), step) in done or not logged:
                continue
            minutes[step] = minutes[max(logged)]  # the last logged step before the checkpoint
            res = evaluate(ck, n=args.n, seed=args.seed, batch_size=args.batch_size, loss_per_level=False,
                           **run_overrides)
            rows.append(_row(res, run=str(run), recipe=cfg["name"], step=step, minutes=round(minutes[step], 2)))
            print(f"{run.name} step {step} ({minutes[step]:.1f} min): FID ratio {res['fid_ratio']:.2f}, "
                  f"confidence {res['mean_confidence']:.3f}", flush=True)
            _save(args.out, rows, {"kind": "training", "quiet_step_s": args.quiet_step_s})
    return {"kind": "training", "rows": rows, "quiet_step_s": args.quiet_step_s}


def plot(data: dict, out: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker  # noqa: F401
    rows = _means(data["rows"]) if data["kind"] == "samplers" else data["rows"]
    panels = [("fid_ratio", "FID / real-vs-real FID (1 = as close as two real sets)"),
              ("mean_confidence", "mean classifier confidence"),
              ("share_confidence_below_0.9", "share of samples with confidence < 0.9"),
              ("max_class_fraction", "largest class share (0.1 = balanced)")]
    if rows and all(r.get("nn_distance_median") is not None for r in rows):  # the memorisation check
        panels.append(("nn_distance_median", "median distance to the nearest training digit\n(dashed: held-out "
                                             "digits'; lower = pulled toward the training digits)"))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 4.2))
    n = rows[0]["n"] if rows else 0
    if data["kind"] == "samplers":
        colours = {"heun": "tab:blue", "pc": "tab:orange", "annealed_langevin": "tab:green"}
        for ax, (key, title) in zip(axes, panels):
            for r in rows:
                kind = r["overrides"].get("sampler", "annealed_langevin")
                ax.scatter(r["sampling_seconds"], r[key], s=25, color=colours.get(kind, "grey"))
                ax.annotate(r["name"], (r["sampling_seconds"], r[key]), fontsize=7, xytext=(3, 3),
                            textcoords="offset points")
            ax.set_xscale("log")
            ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            ax.set_xlabel(f"sampling wall time for n={n} samples (s, log scale)")
            ax.set_title(title, fontsize=9)
        seeds = sorted({s for r in rows for s in r["seeds"]})
        over = f", mean of seeds {','.join(map(str, seeds))}" if len(seeds) > 1 else f", seed {seeds[0]}"
        fig.suptitle(f"Sampler settings on {Path(data['checkpoint']).name}: quality (n={n}{over}) against sampling "
                     f"time")
    else:
        runs = sorted({r["run"] for r in rows})
        step_s = data.get("quiet_step_s")
        for ax, (key, title) in zip(axes, panels):
            for run in runs:
                pts = sorted((r["step"], r[key]) for r in rows if r["run"] == run)
                recipe = next(r.get("label_recipe", r["recipe"]) for r in rows if r["run"] == run)
                ax.plot(*zip(*pts), marker="o", ms=3, label=f"{recipe} ({Path(run).name})")
            ax.set_xlabel("training steps (batch 64)")
            ax.set_title(title, fontsize=9)
            if step_s:  # steps as minutes at the machine's quiet 2-thread speed
                top = ax.secondary_xaxis("top", functions=(lambda s: s * step_s / 60, lambda m: m * 60 / step_s))
                top.set_xlabel(f"minutes at {step_s:.3f} s/step (2 threads, quiet)", fontsize=7)
        axes[0].legend(fontsize=7)
        fig.suptitle(f"Training recipes: quality (n={n}, each checkpoint with the sampler named in the legend) "
                     f"against training steps")
    ratios = [r["fid_ratio"] for r in rows]
    if ratios and max(ratios) > 3 * min(ratios):  # a log scale only where the ratios span a wide range
        axes[0].set_yscale("log")
        axes[0].yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        axes[0].yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    axes[0].axhline(1.0, color="grey", lw=0.8, ls="--")
    if len(panels) == 5:
        axes[4].axhline(rows[0]["nn_distance_median_real"], color="grey", lw=0.8, ls="--")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out.with_suffix(".png"), dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="kind", required=True)
    s = sub.add_parser("samplers")
    s.add_argument("checkpoint", type=Path)
    s.add_argument("--setting", action="append", required=True, metavar="NAME=JSON")
    s.add_argument("--seeds", type=lambda t: [int(v) for v in t.split(",")], help="several seeds: 0,1,2,3,4 "
                   "(each point of the plot their mean; default: --seed)")
    t = sub.add_parser("training")
    t.add_argument("runs", nargs="+", type=Path)
    t.add_argument("--every", type=int, default=1, help="every k-th checkpoint")
    t.add_argument("--sampler", help="JSON SampleConfig overrides for continuous-sigma runs (default: each run's own)")
    t.add_argument("--quiet-step-s", type=float, help="seconds per step on a quiet machine: adds a minutes axis")
    for p in (s, t):
        p.add_argument("--n", type=int, default=500)
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--batch-size", type=int, default=250)
        p.add_argument("--out", type=Path, required=True, help="path without suffix: writes OUT.json and OUT.png")
        p.add_argument("--plot-only", action="store_true")
    args = ap.parse_args()
    if args.kind == "samplers" and not args.seeds:
        args.seeds = [args.seed]
    t0 = time.perf_counter()
    if args.plot_only:
        data = json.loads(args.out.with_suffix(".json").read_text())
    else:
        data = cmd_samplers(args) if args.kind == "samplers" else cmd_training(args)
    plot(data, args.out)
    print(f"wrote {args.out.with_suffix('.json')} and {args.out.with_suffix('.png')} in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
