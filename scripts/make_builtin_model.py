"""Make resources/models/mnist-cpu.pt, the studio's built-in model, from a checkpoint of
`ncsn train --preset mnist-cpu`: keeps the raw and the EMA weights, drops the optimizer state (useless
for sampling), takes the sampler defaults from the mnist-cpu preset (chosen by `ncsn eval`, see README), adds the training
data's mean image when the checkpoint predates its recording,
and records provenance (run, step, training wall time, hardware). With --guide, an early checkpoint of the same
run rides along as the autoguidance guide (`ncsn guide`) and --guidance is the default weight.

    .venv/bin/python scripts/make_builtin_model.py runs/builtin/checkpoints/ckpt_00022000.pt \
        --guide runs/builtin/checkpoints/ckpt_00004000.pt --guidance 2
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from dataclasses import fields, replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from ncsn_core.checkpoint import atomic_save, embed_guide, load_checkpoint, read_state, save_checkpoint  # noqa: E402
from ncsn_core.cli import BUILTIN_MODEL  # noqa: E402
from ncsn_core.config import get_preset  # noqa: E402
from ncsn_core.data import load_dataset, mean_image  # noqa: E402


def training_wall_time(run_dir: Path, step: int, max_gap: float = 300.0) -> float:
    """Seconds of training up to the step-th metric line (includes previews and checkpoints): the sum of the
    gaps between consecutive lines, leaving out gaps over max_gap, which are a stop and a later --resume."""
    times = [json.loads(l) for l in (run_dir / "metrics.jsonl").read_text().splitlines() if l.strip()]
    times = [r["time"] for r in times if "time" in r and r["step"] <= step]
    gaps = [b - a for a, b in zip(times, times[1:])]
    return sum(g for g in gaps if g <= max_gap) if gaps else float("nan")


def _train_command(cfg, step: int) -> str:
    """The command that trains this checkpoint's run: the preset, with the flags where the run differs from it
    (a dedicated flag where there is one, else --set train.FIELD=VALUE)."""
    preset, flags = get_preset("mnist-cpu"), []
    for f in fields(cfg.data):
        mine, theirs = getattr(cfg.data, f.name), getattr(preset.data, f.name)
        if mine != theirs:
            flags.append({"dataset": f"--dataset {mine}", "root": f"--data-root {mine}"}.get(
                f.name, f"--set data.{f.name}={json.dumps(mine)}"))
    if cfg.model.channels != preset.model.channels:
        flags.append("--channels " + ",".join(map(str, cfg.model.channels)))
    if cfg.model.dropout != preset.model.dropout:
        flags.append(f"--set model.dropout={cfg.model.dropout:g}")
    if cfg.model.attention != preset.model.attention:
        flags.append(f"--set model.attention={json.dumps(cfg.model.attention)}")
    named = {"lr": "--lr", "batch_size": "--batch-size", "ema_rate": "--ema-rate", "precision": "--precision",
             "lr_schedule": "--lr-schedule", "seed": "--seed"}
    for f in fields(cfg.train):
        mine, theirs = getattr(cfg.train, f.name), getattr(preset.train, f.name)
        if f.name in ("n_iters", "save_every", "preview_every", "log_every") or mine == theirs:
            continue
        if f.name in named:
            flags.append(f"{named[f.name]} {mine:g}" if isinstance(mine, float) else f"{named[f.name]} {mine}")
        else:
            flags.append(f"--set train.{f.name}={json.dumps(mine)}")
    return " ".join(["ncsn train --preset mnist-cpu", *flags, f"--n-iters {step}"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint")
    ap.add_argument("--out", default=str(BUILTIN_MODEL))
    ap.add_argument("--guide", help="an early checkpoint of the same run, carried as the autoguidance guide")
    ap.add_argument("--guidance", type=float, default=2.0, help="the default guidance weight with --guide")
    args = ap.parse_args()
    ld = load_checkpoint(args.checkpoint, use_ema=False)
    state = read_state(args.checkpoint)
    config = replace(ld.config, sample=get_preset("mnist-cpu").sample)
    if ld.model.data_mean is None:  # a checkpoint from before training recorded it: the same computation
        ld.model.data_mean = mean_image(load_dataset(ld.config.data))
    run_dir = Path(args.checkpoint).resolve().parent.parent
    extra = {
        "source_checkpoint": str(Path(args.checkpoint)),
        "command": _train_command(ld.config, ld.step),
        "training_wall_seconds": round(training_wall_time(run_dir, ld.step), 1),
        "hardware": f"{platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, CPU only",
    }
    save_checkpoint(Path(args.out), config, ld.step, ld.model, optimizer=None, ema=state["ema"], extra=extra)
    if args.guide:
        guided = embed_guide(read_state(Path(args.out)), Path(args.guide), args.guidance)
        atomic_save(guided, Path(args.out))
        extra["guide"] = guided["extra"]["guide"]
    size = Path(args.out).stat().st_size
    print(json.dumps({"out": args.out, "step": ld.step, "bytes": size, **extra}, indent=2))


if __name__ == "__main__":
    main()
