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


def _differing_flags(section: str, mine, theirs, named: dict, skip=()) -> list:
    """The flags that set the fields where config section `mine` differs from the preset's `theirs`: a dedicated
    flag where `named` has one, else --set SECTION.FIELD=VALUE."""
    flags = []
    for f in fields(mine):
        value, preset_value = getattr(mine, f.name), getattr(theirs, f.name)
        if f.name in skip or value == preset_value:
            continue
        if f.name not in named:
            flags.append(f"--set {section}.{f.name}={json.dumps(value)}")
        elif isinstance(value, tuple):
            flags.append(f"{named[f.name]} " + ",".join(map(str, value)))
        else:
            flags.append(f"{named[f.name]} {value:g}" if isinstance(value, float) else f"{named[f.name]} {value}")
    return flags


def _train_command(cfg, step: int) -> str:
    """The command that trains this checkpoint's run: the preset, with the flags where the run's data, model and
    training settings differ from it."""
    preset = get_preset("mnist-cpu")
    flags = [*_differing_flags("data", cfg.data, preset.data, {"dataset": "--dataset", "root": "--data-root"}),
             *_differing_flags("model", cfg.model, preset.model, {"channels": "--channels"}),
             *_differing_flags("train", cfg.train, preset.train,
                               {"lr": "--lr", "batch_size": "--batch-size", "ema_rate": "--ema-rate",
                                "precision": "--precision", "lr_schedule": "--lr-schedule", "seed": "--seed"},
                               skip=("n_iters", "save_every", "preview_every", "log_every"))]
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
