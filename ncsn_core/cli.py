"""`ncsn`: the headless command line (train, sample, inpaint, toy, info, eval, bench, config)."""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import time
import traceback
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from .checkpoint import CheckpointError
from .config import (ARCHS, INITS, LOSSES, LR_SCHEDULES, PRECISIONS, SAMPLE_FIELDS, Config, ConfigError, PRESETS,
                     SampleConfig, check_partial, get_preset, load_config_file, merge, parse_sets)
from .progress import bar as _progress
from .resources import BUILTIN_MODEL


class UserError(Exception):
    """A bad argument, path or file: printed as one line, exit code 2."""


# --- small helpers ----------------------------------------------------------------------------
def _emit(args, obj: dict, human: str) -> None:
    if getattr(args, "json", False):
        print(json.dumps(obj))
    else:
        print(human)


def _load(path: Optional[str], device, use_ema: bool = True):
    from .checkpoint import CheckpointError, load_checkpoint
    p = Path(path) if path else BUILTIN_MODEL
    if path is None and not p.exists():
        raise UserError(f"no --checkpoint given and the built-in model {p} is missing: train one with "
                        f"`ncsn train --preset mnist-cpu` and pass --checkpoint runs/<name>")
    try:
        return load_checkpoint(p, device=device, use_ema=use_ema)
    except CheckpointError as e:
        raise UserError(str(e)) from e


def _device(args):
    from .training import pick_device
    try:
        return pick_device(args.device)
    except (ValueError, RuntimeError) as e:
        raise UserError(str(e)) from e


_ONLY_SAMPLE = ": the model, its data and noise ladder are the checkpoint's"


def sample_overrides(args) -> dict:
    """The SampleConfig fields that sample, inpaint and eval lay over the checkpoint's sampler: --config's
    `sample` section, then --set sample.*, then the explicit flags (a flag not given, None, keeps the value
    below it). Any other section is a ConfigError saying that only `sample` can change."""
    out: dict = {}
    if getattr(args, "config", None):
        file = check_partial(load_config_file(args.config), f"--config {args.config}", ("sample",), _ONLY_SAMPLE)
        out.update(file.get("sample", {}))
    if getattr(args, "set", None):
        out.update(parse_sets(args.set, ("sample",), _ONLY_SAMPLE).get("sample", {}))
    out.update({k: getattr(args, k) for k in SAMPLE_FIELDS if getattr(args, k, None) is not None})
    return out


def _sample_settings(args, cfg: Config, model):
    """The checkpoint config's sampler with sample_overrides(args): (SampleConfig, SamplingPlan)."""
    from .precision import warn_if_slow
    from .sampling import resolve_for
    try:
        sc, pl = resolve_for(model, cfg.sample, **sample_overrides(args))
    except ConfigError as e:
        raise UserError(str(e)) from e
    warn_if_slow(sc.precision, model.sigmas.device)
    return sc, pl


def _drain_with_progress(gen, total: int, desc: str, show: bool, sinks=()):
    bar = _progress(total, desc, show)
    done, x = 0, None
    try:
        while True:
            st = next(gen)
            for sink in sinks:
                sink.add(st)
            bar.set_postfix_str(f"level {st.level + 1}/{st.n_levels}, sigma {st.sigma:.3g}")
            bar.update(st.global_step - done)
            done = st.global_step
    except StopIteration as stop:
        x = stop.value
    finally:
        bar.close()
    return x


def _write_samples(x: torch.Tensor, out: Path, meta: dict, nrow: int) -> None:
    from .export import save_grid
    suffix = out.suffix.lower()
    if suffix == ".png":
        save_grid(x, out, nrow=nrow, meta=meta)
    elif suffix == ".npy":
        out.parent.mkdir(parents=True, exist_ok=True)
        np.save(out, x.clamp(0, 1).cpu().numpy().astype(np.float32))
    else:
        raise UserError(f"--out {out}: use a .png (grid) or .npy (N x C x H x W array) file name")


# --- resolving a training config ----------------------------------------------------------------
# the training flags: argparse dest -> (section, field); each overrides --config and --set
TRAIN_FLAGS = {
    "n_iters": ("train", "n_iters"), "save_every": ("train", "save_every"), "seed": ("train", "seed"),
    "batch_size": ("train", "batch_size"), "lr": ("train", "lr"), "lr_schedule": ("train", "lr_schedule"),
    "preview_every": ("train", "preview_every"), "precision": ("train", "precision"),
    "log_every": ("train", "log_every"), "ema_rate": ("train", "ema_rate"), "loss": ("train", "loss"),
    "sigma_begin": ("noise", "sigma_begin"), "sigma_end": ("noise", "sigma_end"),
    "num_classes": ("noise", "num_classes"), "arch": ("model", "arch"), "channels": ("model", "channels"),
    "ngf": ("model", "ngf"), "dataset": ("data", "dataset"), "data_root": ("data", "root"),
    "download": ("data", "download"),
}


def _read_run_config(path: Path, what: str) -> Config:
    """The config of a run folder (its config.json) or of a checkpoint file."""
    from .checkpoint import CheckpointError, read_state
    if path.is_dir():
        if not (path / "config.json").exists():
            raise UserError(f"{what} {path}: no config.json there; give a run folder made by `ncsn train`")
        return Config.from_dict(json.loads((path / "config.json").read_text()))
    try:
        return Config.from_dict(read_state(path)["config"])
    except CheckpointError as e:
        raise UserError(str(e)) from e


def train_config(args, base: Config) -> Config:
    """base (a preset, or the run's own config on --resume) < --config FILE < --set section.field=value <
    the explicit training flags; every layer goes through config.merge, so names and values are checked alike."""
    cfg = base
    if args.config:
        cfg = merge(cfg, load_config_file(args.config), f"--config {args.config}")
    if args.set:
        cfg = merge(cfg, parse_sets(args.set), "--set")
    flags: dict = {}
    for dest, (section, name) in TRAIN_FLAGS.items():
        v = getattr(args, dest, None)
        if v is not None:
            flags.setdefault(section, {})[name] = None if (dest == "ema_rate" and v == 0) else v
    return merge(cfg, flags, "the command-line flags") if flags else cfg


# --- commands ---------------------------------------------------------------------------------
def cmd_config(args) -> int:
    """Print the resolved training config as JSON: valid input for `--config`."""
    if args.path and args.preset:
        raise UserError("give either a checkpoint/run folder or --preset, not both")
    base = _read_run_config(Path(args.path), "config") if args.path else get_preset(args.preset or "mnist-cpu")
    print(json.dumps(train_config(args, base).to_dict(), indent=2))
    return 0


def cmd_train(args) -> int:
    from . import distributed as ddp
    torchrun = ddp.launched_by_torchrun()
    if torchrun and not (args.run_dir or args.resume):
        raise UserError("under torchrun give --run-dir DIR (or --resume DIR): every rank, and every restart, must "
                        "use the same run folder")
    from .checkpoint import latest_checkpoint
    if torchrun and not args.resume and ddp.restart_count() > 0 and latest_checkpoint(Path(args.run_dir)):
        args.resume = args.run_dir  # restarted by torchrun --max-restarts: go on from the newest checkpoint
    if args.resume:
        run_dir = Path(args.resume)
        if not (run_dir / "config.json").exists():
            raise UserError(f"--resume {run_dir}: no config.json there; give a run folder made by `ncsn train`")
        cfg = train_config(args, _read_run_config(run_dir, "--resume"))
    else:
        cfg = train_config(args, get_preset(args.preset or "mnist-cpu"))
        run_dir = Path(args.run_dir or f"runs/{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}")
        if (run_dir / "checkpoints").exists() and any((run_dir / "checkpoints").iterdir()):
            raise UserError(f"--run-dir {run_dir} already holds a run: continue it with --resume {run_dir} "
                            f"or choose another folder")
    device = _device(args)
    main_rank = True
    if torchrun:
        rank, world, _ = ddp.torchrun_world()
        try:
            ddp.rank_slice(cfg.train.batch_size, ddp.World(rank, world))
            device = ddp.setup(device)
        except ValueError as e:
            raise UserError(str(e)) from e
        main_rank = rank == 0
    if main_rank:
        from .precision import warn_if_slow
        warn_if_slow(cfg.train.precision, device)
    try:
        with _signals_ask_stop(torchrun, main_rank) as stop_asked:
            code = _train_loop(args, cfg, run_dir, device, stop_asked,
                               show=main_rank and not args.json and not args.quiet, report=main_rank)
        ddp.teardown(orderly=True)
        return code
    finally:
        ddp.teardown()  # after an error: at once (a no-op after the orderly one)


@contextlib.contextmanager
def _signals_ask_stop(torchrun: bool, main_rank: bool):
    """Ctrl-C (SIGINT) or SIGTERM (`kill`, or a scheduler's notice before it kills a job: SLURM, Kubernetes) sets a
    flag that the train loop turns into "stop" at the next event (a save, then the end), rather than an exception in
    the middle of a step or a death without a checkpoint. In a plain run a second signal leaves at once. Under
    torchrun the signal reaches every rank (and rank 0 again from the agent): rank 0's flag is the decision that
    training broadcasts, the other ranks ignore it, and the agent's SIGKILL after its timeout is the way out."""
    import signal
    import threading
    asked: list = []
    if threading.current_thread() is not threading.main_thread():  # signal handlers live in the main thread
        yield asked
        return

    def on_signal(signum, frame):
        if asked and not torchrun:
            raise KeyboardInterrupt
        asked[:] = [True]
    handler = on_signal if main_rank else signal.SIG_IGN
    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield asked
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


def _train_loop(args, cfg: Config, run_dir: Path, device, stop_asked: list, show: bool, report: bool) -> int:
    from .data import DataError
    from .training import Finished, Preview, TrainStep, train
    from .export import save_grid
    try:
        gen = train(cfg, run_dir, resume=bool(args.resume), device=device, max_minutes=args.minutes,
                    keep_last=args.keep_last)
        first = next(gen)
    except DataError as e:
        raise UserError(str(e)) from e
    bar = _progress(cfg.train.n_iters, f"train {cfg.name}", show)
    last_loss, ev, finished = float("nan"), first, None
    try:
        while True:
            if isinstance(ev, TrainStep):
                bar.set_postfix_str(f"loss {ev.loss:.3g}, {ev.images_per_s:.0f} img/s")
                bar.update(ev.step - bar.n)
                last_loss = ev.loss
            elif isinstance(ev, Preview):
                save_grid(torch.from_numpy(ev.images), run_dir / "samples" / f"preview_{ev.step:08d}.png",
                          nrow=int(np.ceil(np.sqrt(len(ev.images)))), meta={"config": cfg.to_dict(), "step": ev.step})
            elif isinstance(ev, Finished):
                finished = ev
                break
            ev = gen.send("stop" if stop_asked else None)  # after a stop decision, train() ignores more "stop"s
    except KeyboardInterrupt:  # a second Ctrl-C: still try to save where we are
        try:
            ev = gen.send("stop")
            while not isinstance(ev, Finished):
                ev = next(gen)
            finished = ev
        except StopIteration:
            pass
    finally:
        bar.close()
    if finished is None:
        raise UserError("training ended without a result")
    out = {"run_dir": str(run_dir), "step": finished.step, "reason": finished.reason, "message": finished.message,
           "checkpoint": finished.checkpoint, "last_loss": last_loss, "device": str(device), "preset": cfg.name}
    if report:
        _emit(args, out, f"{finished.message.rstrip('.')}; checkpoint: {finished.checkpoint}; run folder: {run_dir}")
    return 0 if finished.reason != "diverged" else 3


def cmd_sample(args) -> int:
    from .sampling import describe, sample, settings_record
    from .export import ChainRecorder, LevelStrip
    if args.strip_view and not args.level_strip:
        raise UserError(f"--strip-view {args.strip_view} sets what the level strip shows: add --level-strip strip.png")
    device = _device(args)
    ld = _load(args.checkpoint, device, use_ema=not args.no_ema)
    cfg = ld.config
    if cfg.model.arch == "mlp":
        raise UserError("this checkpoint is a 2-D toy model: use `ncsn toy` for it")
    sc, pl = _sample_settings(args, cfg, ld.model)
    s = settings_record(sc, pl)
    shape = (args.n, cfg.data.channels, cfg.data.image_size, cfg.data.image_size)
    t0 = time.perf_counter()
    gen = sample(ld.model, sc, shape, seed=args.seed, device=device)
    strip = LevelStrip(min(args.n, 8), args.strip_view or "x") if args.level_strip else None
    chain = ChainRecorder(min(args.n, 16), nrow=4) if args.gif else None
    sinks = [k for k in (strip, chain) if k is not None]
    x = _drain_with_progress(gen, pl.total_steps, "sample", not args.json and not args.quiet, sinks)
    elapsed = time.perf_counter() - t0
    meta = {"checkpoint": str(ld.path), "step": ld.step, "seed": args.seed, "n": args.n, **s,
            "ema": ld.used_ema, "config": cfg.to_dict()}
    out = Path(args.out)
    _write_samples(x, out, meta, nrow=args.nrow or int(np.ceil(np.sqrt(args.n))))
    if strip:
        strip.save(Path(args.level_strip), meta)
    if chain:
        chain.save(Path(args.gif), meta)
    res = {"out": str(out), "n": args.n, "seconds": round(elapsed, 3), "checkpoint": str(ld.path), "step": ld.step,
           "seed": args.seed, **s, "ema": ld.used_ema, "level_strip": args.level_strip, "gif": args.gif}
    _emit(args, res, f"wrote {out} ({args.n} samples, {elapsed:.1f} s; {describe(sc, pl)})")
    return 0


def _read_inpaint_inputs(args, channels: int, size: int) -> tuple[torch.Tensor, torch.Tensor, tuple]:
    """--image as (C, size, size) in [0, 1], --mask as (1, size, size) with 1 = known pixel, the file's (W, H)."""
    from .images import ImageError, check_same_size, fit_mask, read_image, read_mask, to_model_image
    try:
        image, known = read_image(args.image, "--image"), read_mask(args.mask, "--mask")
        check_same_size(image, known, f"--image {args.image}", f"--mask {args.mask}")
    except ImageError as e:
        raise UserError(str(e)) from e
    mask = torch.from_numpy(fit_mask(known, (size, size))).float()[None]
    return torch.from_numpy(to_model_image(image, size, channels)), mask, (image.shape[1], image.shape[0])


def cmd_inpaint(args) -> int:
    from .sampling import sample, settings_record
    device = _device(args)
    ld = _load(args.checkpoint, device, use_ema=not args.no_ema)
    cfg = ld.config
    size, ch = cfg.data.image_size, cfg.data.channels
    image, mask, orig = _read_inpaint_inputs(args, ch, size)  # mask: white = keep (known pixel)
    if orig != (size, size) and not args.json:
        print(f"note: resized the {orig[0]}x{orig[1]} image and mask to the model's {size}x{size}", file=sys.stderr)
    sc, pl = _sample_settings(args, cfg, ld.model)
    s = settings_record(sc, pl)
    images = image[None].expand(args.n, -1, -1, -1).to(device)
    gen = sample(ld.model, sc, images.shape, seed=args.seed, device=device, image=images, mask=mask[None].to(device))
    x = _drain_with_progress(gen, pl.total_steps, "inpaint", not args.json and not args.quiet)
    occluded = image * mask
    meta = {"checkpoint": str(ld.path), "step": ld.step, "seed": args.seed, **s, "image": str(args.image),
            "mask": str(args.mask), "config": cfg.to_dict(), "layout": "original, occluded, then completions"}
    out = Path(args.out)
    if out.suffix.lower() == ".npy":
        _write_samples(x, out, meta, 1)
    else:
        row = torch.cat([image[None].cpu(), occluded[None].cpu(), x.cpu().clamp(0, 1)])
        _write_samples(row, out, meta, nrow=args.n + 2)
    _emit(args, {"out": str(out), "n": args.n, "resized_from": list(orig), **s},
          f"wrote {out}: original, occluded input and {args.n} completion(s)")
    return 0


def cmd_toy(args) -> int:
    from .toy import ToySettings, run_experiment, step_size_warning
    s = ToySettings(n_particles=args.n_particles, seed=args.seed, sigma_begin=args.sigma_begin,
                    sigma_end=args.sigma_end, num_classes=args.num_classes, step_lr=args.step_lr,
                    n_steps_each=args.n_steps_each, langevin_step_size=args.langevin_step_size,
                    langevin_n_steps=args.langevin_n_steps)
    if s.n_particles < 1 or s.num_classes < 1 or s.n_steps_each < 1:
        raise UserError("--n-particles, --num-classes and --n-steps-each must be >= 1")
    warn = step_size_warning(s.step_lr, s.sigma_begin, s.sigma_end)
    res = run_experiment(s)
    res["warning"] = warn
    if args.json:
        print(json.dumps(res))
        return 0
    a, p = res["annealed"], res["langevin"]
    print("Mixture 1/5 N((-5,-5), I) + 4/5 N((5,5), I), exact scores, uniform start in [-8, 8]^2")
    print(f"{'sampler':<22}{'lower-left fraction':>20}{'particles':>11}  settings")
    print(f"{'truth':<22}{0.2:>20.3f}{'':>11}")
    print(f"{'plain Langevin':<22}{p['lower_left_fraction']:>20.3f}{p['n_particles']:>11}  "
          f"step={p['step_size']:g}, {p['n_steps']} steps")
    print(f"{'annealed Langevin':<22}{a['lower_left_fraction']:>20.3f}{a['n_particles']:>11}  "
          f"sigma {s.sigma_begin:g}->{s.sigma_end:g}, L={s.num_classes}, step_lr={s.step_lr:g}, T={s.n_steps_each}")
    if warn:
        print("warning: " + warn)
    return 0


def cmd_average(args) -> int:
    from .checkpoint import atomic_save, average_checkpoints, list_checkpoints
    run, out = Path(args.run), Path(args.out)
    if not (run / "checkpoints").is_dir():
        raise UserError(f"{run} is not a run folder (no checkpoints/ in it): give the folder `ncsn train` wrote")
    steps = {int(p.stem.split("_")[1]): p for p in list_checkpoints(run)}
    to = args.to if args.to is not None else max(steps, default=0)
    chosen = [p for st, p in sorted(steps.items()) if args.from_step <= st <= to]
    if len(chosen) < 2:
        raise UserError(f"{run} holds {len(chosen)} checkpoint(s) from step {args.from_step} to {to} (it keeps "
                        f"{', '.join(map(str, sorted(steps))) or 'none'}): averaging needs 2 or more; train with "
                        f"--keep-last 0 to keep every checkpoint, and --save-every to set how often they are written")
    if out.suffix != ".pt" or out.resolve().parent == (run / "checkpoints").resolve():
        raise UserError(f"--out {out}: write a .pt file outside {run / 'checkpoints'} (an averaged checkpoint cannot "
                        f"resume the run, and --resume would take it for the newest)")
    state = average_checkpoints(chosen)
    atomic_save(state, out)
    done = state["extra"]["averaged"]["steps"]
    _emit(args, {"out": str(out), "run": str(run), "steps": done},
          f"averaged {len(done)} checkpoints of {run} (steps {done[0]} to {done[-1]}): {out}")
    return 0


def cmd_set_sampler(args) -> int:
    """Write a copy of a checkpoint whose default sampler (config.sample) has the given flags laid over it, checked
    against its model: what `ncsn sample`, `ncsn eval` and the studio then run by default. The previous defaults
    stay in its extra["sampler_history"]."""
    import dataclasses
    from .checkpoint import atomic_save, load_checkpoint
    from .sampling import describe, resolve_for
    out = Path(args.out)
    if out.suffix != ".pt":
        raise UserError(f"--out {out}: name a .pt file for the checkpoint with the new sampler defaults")
    overrides = sample_overrides(args)
    if not overrides:
        raise UserError("no sampler setting given: name what to change, e.g. --exact-above 1.5 or --num-levels 16")
    ld = load_checkpoint(Path(args.checkpoint))
    state = ld.state  # the file as read, weights and all: written back with only its defaults changed
    try:
        sc, pl = resolve_for(ld.model, ld.config.sample, **overrides)
    except ConfigError as e:
        raise UserError(str(e)) from e
    old = state["config"]["sample"]
    state["config"] = dataclasses.replace(ld.config, sample=sc).to_dict()
    extra = dict(state.get("extra") or {})
    extra["sampler_history"] = [*extra.get("sampler_history", []), {"before": old, "changed": overrides}]
    state["extra"] = extra
    state.pop("_path")  # read_state's note of where it came from
    atomic_save(state, out)
    _emit(args, {"out": str(out), "step": int(state["step"]), "changed": overrides, "sample": state["config"]["sample"],
                 "description": describe(sc, pl)},
          f"{out}: step {state['step']}, samples by default with {describe(sc, pl)}")
    return 0


def cmd_guide(args) -> int:
    from .checkpoint import atomic_save, embed_guide, read_state
    out = Path(args.out)
    if out.suffix != ".pt":
        raise UserError(f"--out {out}: name a .pt file for the guided checkpoint")
    for p in (args.checkpoint, args.guide):
        if Path(p).is_file() and out.resolve() == Path(p).resolve():
            raise UserError(f"--out {out} is one of the inputs: write the guided checkpoint to a new file")
    state = embed_guide(read_state(Path(args.checkpoint)), Path(args.guide), args.guidance)
    atomic_save(state, out)
    g = state["extra"]["guide"]
    _emit(args, {"out": str(out), "step": int(state["step"]), "guide_step": g["step"], "guidance": args.guidance},
          f"{out}: step {state['step']} guided by step {g['step']} ({g['file']}), guidance {args.guidance:g} by default "
          f"(--guidance 1 samples without it)")
    return 0


def discriminator_for(model, config: Config, n_samples: int = 20000, steps: int = 6000, seed: int = 12345,
                      batch_size: int = 250, progress=None, class_steps: int = 4000,
                      calibration_samples: int = 5000, calibration_rounds: int = 2, weight: float = 1.0) -> tuple:
    """Train the log ratio of discriminator guidance for a loaded score model (`model`, its Config `config`).

    The discriminator: n_samples from the config's own sampler (without discriminator guidance), seeded `seed` (the
    evaluation's seeds 0.. are other draws), against its own training images (ncsn_core.empirical.training_images).
    The class part, where those images have labels and class_steps > 0: a noise-conditional classifier of the
    labels (class_steps steps), the class weights w_y = p_data(y) / (the samples' share of class y, by that
    classifier), then calibration_rounds rounds of calibration_samples samples of the guided sampler (w_DG =
    `weight`), each multiplying w_y by p_data(y) / (its share): the guidance acts only below the exact score's sigma
    and the classifier is weak at large sigma, so the first weights correct part of the imbalance only.
    progress(stage, done, total) with stages "sample", "train", "classes" and "calibrate r/R".
    Returns (the ncsn_core.discriminator.LogRatio, `about`: how the discriminator was made and its validation,
    `classes`: how the class part was made, or None), the arguments of discriminator_entry."""
    import dataclasses

    from .discriminator import DiscriminatorConfig, LogRatio, train_discriminator
    from .empirical import training_images, training_labels
    from .evaluate import sample_batches
    from .sampling import plan, settings_record
    data = config.data
    shape = (data.channels, data.image_size, data.image_size)
    sc = dataclasses.replace(config.sample, dg_weight=0.0)
    cfg = DiscriminatorConfig(image_channels=data.channels)
    device = model.sigmas.device
    t0 = time.perf_counter()
    fakes = sample_batches(model, sc, shape, n_samples, seed, device, batch_size, progress)  # float, on the CPU
    sampling_seconds = time.perf_counter() - t0
    reals = training_images(data).reshape(-1, *shape)
    d, st = _drained(train_discriminator(reals, fakes, cfg, steps=steps, seed=seed, dequantize=data.dequantize),
                     "train", progress)
    about = {"n_samples": int(n_samples), "n_training_images": len(reals), "steps": int(steps), "seed": int(seed),
             "sampler": settings_record(sc, plan(model, sc)),
             "sampling_seconds": round(sampling_seconds, 1), "training_seconds": round(st.seconds, 1),
             "validation": [list(v) for v in st.validation]}
    labels = training_labels(data) if class_steps > 0 else None
    if labels is None or len(labels) != len(reals) or int(labels.max()) < 1:
        return LogRatio(d), about, None
    ratio, classes = _class_part(model, config, d, reals, labels, fakes, cfg, class_steps, calibration_samples,
                                 calibration_rounds, weight, seed, batch_size, progress)
    return ratio, about, classes


def _drained(gen, stage: str, progress) -> tuple:
    """(the return value of a training generator of DiscriminatorStep, its last step), reporting progress."""
    try:
        while True:
            st = next(gen)
            if progress is not None:
                progress(stage, st.step, st.n_steps)
    except StopIteration as stop:
        return stop.value, st


def _class_part(model, config: Config, d, reals, labels, fakes, cfg, class_steps: int, calibration_samples: int,
                calibration_rounds: int, weight: float, seed: int, batch_size: int, progress) -> tuple:
    """discriminator_for's class part: (the LogRatio with it, how it was made)."""
    import dataclasses

    from .discriminator import LogRatio, class_shares, train_classifier
    from .evaluate import sample_batches
    k = int(labels.max()) + 1
    ccfg = dataclasses.replace(cfg, outputs=k)
    c, st = _drained(train_classifier(reals, labels, ccfg, steps=class_steps, seed=seed,
                                      dequantize=config.data.dequantize), "classes", progress)
    p_data = torch.bincount(labels, minlength=k).double() / len(labels)
    shares = class_shares(c, fakes)
    log_w = (p_data / shares.clamp_min(1e-3)).log()
    rounds = [{"sampler": "without discriminator guidance", "n": len(fakes), "shares": _rounded(shares)}]
    previous = getattr(model, "discriminator", None)
    sc = dataclasses.replace(config.sample, dg_weight=float(weight))
    shape = tuple(fakes.shape[1:])
    try:
        for r in range(calibration_rounds if weight > 0 else 0):
            model.set_discriminator(LogRatio(d, c, log_w).to(model.sigmas.device))
            stage = f"calibrate {r + 1}/{calibration_rounds}"
            x = sample_batches(model, sc, shape, calibration_samples, seed + 1 + r, model.sigmas.device, batch_size,
                               None if progress is None else lambda _s, done, total: progress(stage, done, total))
            shares = class_shares(c, x)
            rounds.append({"sampler": f"guided, w_DG {weight:g}", "n": calibration_samples, "seed": seed + 1 + r,
                           "shares": _rounded(shares)})
            log_w = log_w + (p_data / shares.clamp_min(1e-3)).log()
    finally:
        model.set_discriminator(previous)
    classes = {"steps": int(class_steps), "training_seconds": round(st.seconds, 1),
               "validation": [list(v) for v in st.validation], "p_data": _rounded(p_data), "calibration": rounds}
    return LogRatio(d.cpu(), c.cpu(), log_w.float()), classes  # on the CPU, as trained (calibration may move them)


def _rounded(p: torch.Tensor) -> list:
    return [round(float(v), 4) for v in p]


def cmd_discriminator(args) -> int:
    """Train a discriminator on a checkpoint's own samples against its training images and write a copy of the
    checkpoint that carries it and samples with discriminator guidance by default."""
    from .checkpoint import atomic_save, embed_discriminator
    from .discriminator import discriminator_entry
    from .progress import staged
    out = Path(args.out)
    if out.suffix != ".pt":
        raise UserError(f"--out {out}: name a .pt file for the checkpoint with its discriminator")
    for flag, v, lo in (("--n-samples", args.n_samples, 500),
                        ("--steps", args.steps, 1),
                        ("--class-steps", args.class_steps, 0),
                        ("--calibration-samples", args.calibration_samples, 500),
                        ("--calibration-rounds", args.calibration_rounds, 0)):
        if v < lo:
            raise UserError(f"{flag} {v}: give at least {lo}")
    try:
        SampleConfig(dg_weight=args.weight)  # the range check, before minutes of sampling
    except ConfigError as e:
        raise UserError(f"--weight: {e}") from e
    ld = _load(args.checkpoint, _device(args))
    if ld.config.model.arch == "mlp":
        raise UserError(f"{ld.path} is a 2-D toy model (arch mlp): discriminator guidance is for image models; the "
                        f"toy's exact scores need no correction (ncsn toy)")
    progress, close = staged(not args.json and not args.quiet)
    try:
        ratio, about, classes = discriminator_for(
            ld.model, ld.config, n_samples=args.n_samples, steps=args.steps, seed=args.seed, progress=progress,
            class_steps=args.class_steps, calibration_samples=args.calibration_samples,
            calibration_rounds=args.calibration_rounds, weight=args.weight)
    except ConfigError as e:
        raise UserError(str(e)) from e
    finally:
        close()
    state = embed_discriminator(ld.state, discriminator_entry(ratio.cpu(), classes, **about), args.weight)
    atomic_save(state, out)
    bands = "; ".join(f"sigma {lo:g}-{hi:g}: accuracy {acc:.3f} (BCE {bce:.3f})" for lo, hi, bce, acc in
                      about["validation"])
    human = (f"{out}: step {state['step']} with a discriminator of {about['n_samples']} samples against "
             f"{about['n_training_images']} training images ({about['steps']} steps); discriminator guidance w_DG "
             f"{args.weight:g} by default (--dg-weight 0 samples without it)\n  held-out images (chance: accuracy "
             f"0.5, BCE 0.693): {bands}")
    classes = state["discriminator"].get("classes")  # as stored: with its class weights
    if classes:
        human += "\n" + _classes_lines(classes)
    else:
        human += "\n  class part: none (" + ("--class-steps 0" if args.class_steps == 0 else
                                           "the training images have no labels") + ")"
    _emit(args, {"out": str(out), "step": int(state["step"]), "dg_weight": args.weight, **about,
                 "classes": classes and {k: v for k, v in classes.items() if k != "weights"}}, human)
    return 0


def _classes_lines(classes: dict) -> str:
    """What `ncsn discriminator` and `ncsn info` say of a class part (its checkpoint entry): the classifier's
    held-out accuracy, the class shares before and after each calibration round beside the data's, the weights."""
    acc = "; ".join(f"sigma {lo:g}-{hi:g}: {a:.3f}" for lo, hi, _, a in classes["validation"])
    lines = [f"  class part: a classifier of the training labels ({classes['steps']} steps), held-out accuracy "
             f"{acc}", "  class shares (%), training images:".ljust(52) + _pct(classes["p_data"])]
    lines += [f"  {r['sampler']} (n={r['n']}{', seed %d' % r['seed'] if 'seed' in r else ''}):".ljust(52)
              + _pct(r["shares"]) for r in classes["calibration"]]
    lines.append("  class weights w_y (after the last round):".ljust(52)
                 + " ".join(f"{math.exp(v):5.2f}" for v in classes["log_weights"]))
    return "\n".join(lines)


def _pct(p) -> str:
    return " ".join(f"{100 * v:5.1f}" for v in p)


def cmd_info(args) -> int:
    from .models import build_model, conv_flops, count_parameters
    if args.preset:
        cfg, step, source, ema = get_preset(args.preset), None, f"preset {args.preset}", None
        model = build_model(cfg)
    else:
        ld = _load(args.path, "cpu")  # no path: the built-in model
        cfg, step, source, model, ema = ld.config, ld.step, str(ld.path), ld.model, ld.used_ema
    guide = None if args.preset else (ld.state.get("extra") or {}).get("guide")
    if cfg.model.arch == "mlp":
        x = torch.zeros(1, cfg.data.channels)
    else:
        x = torch.zeros(1, cfg.data.channels, cfg.data.image_size, cfg.data.image_size)
    flops = conv_flops(model, x, torch.zeros(1, dtype=torch.long))
    from .noise import sigmas_from_config
    sampler = "-"
    if cfg.model.arch != "mlp":
        from .sampling import describe, plan
        sampler = describe(cfg.sample, plan(model, cfg.sample))
    res = {"source": source, "step": step, "arch": cfg.model.arch, "parameters": count_parameters(model),
           "flops_per_image": flops, "ema": ema, "sigmas": [round(v, 6) for v in sigmas_from_config(cfg.noise).tolist()],
           "guide": guide, "config": cfg.to_dict()}
    human = (f"{source}\n  architecture: {cfg.model.arch}  parameters: {res['parameters']:,}  "
             f"FLOPs/image (conv+linear, forward): {flops / 1e6:.1f} M\n"
             f"  input: {cfg.data.channels}x{cfg.data.image_size}x{cfg.data.image_size}  noise levels: "
             f"L={cfg.noise.num_classes}, sigma {cfg.noise.sigma_begin:g} -> {cfg.noise.sigma_end:g}\n"
             f"  step: {step if step is not None else '-'}  EMA weights: {ema if ema is not None else '-'}\n"
             f"  sampler: {sampler}")
    if guide:
        human += f"\n  guide (autoguidance): step {guide['step']} of {guide['file']}"
    disc = None if args.preset else ld.state.get("discriminator")
    if disc:
        res["discriminator"] = {k: v for k, v in disc.items() if k not in ("weights", "classes")}
        acc = ", ".join(f"{lo:g}-{hi:g}: {a:.2f}" for lo, hi, _bce, a in disc.get("validation", []))
        human += (f"\n  discriminator (discriminator guidance): {disc.get('n_samples')} samples against "
                  f"{disc.get('n_training_images')} training images, {disc.get('steps')} steps; held-out accuracy "
                  f"by sigma {acc}")
        classes = disc.get("classes")
        if classes:
            res["discriminator"]["classes"] = {k: v for k, v in classes.items() if k != "weights"}
            human += "\n" + _classes_lines(classes)
    _emit(args, res, human)
    return 0


# --- parser -----------------------------------------------------------------------------------
def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print exactly one JSON object to stdout")
    p.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:1, mps")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _steps_list(text: str):
    """'40' -> 40; '5,5,10,20' -> (5, 5, 10, 20), one count per level."""
    try:
        parts = [int(t) for t in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number, or one per level separated by commas")
    if any(t < 0 for t in parts) or (len(parts) == 1 and parts[0] < 1):
        raise argparse.ArgumentTypeError(f"{text!r}: steps must be >= 1 (or >= 0 per level in a list)")
    return parts[0] if len(parts) == 1 else tuple(parts)


def _channels(text: str) -> list:
    """'16,48,96' -> [16, 48, 96]."""
    try:
        widths = [int(t) for t in text.split(",")]
    except ValueError:
        widths = []
    if not widths or min(widths) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give positive whole numbers separated by commas, e.g. 16,48,96")
    return widths


def _config_file_flags(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--config", metavar="FILE", help=f"a JSON (or, on Python >= 3.11, TOML) file with {what}, "
                                                    f"e.g. from `ncsn config`; it may hold only some fields")
    p.add_argument("--set", action="append", metavar="SECTION.FIELD=VALUE",
                   help=f"set one field of {what}, after --config and before the flags below, e.g. "
                        f"--set train.weighting=edm --set model.channels=[32,64,128] (repeatable; the value is "
                        f"read as JSON)")


def _train_config_flags(p: argparse.ArgumentParser) -> None:
    """What decides a training config, shared by train and config: preset < --config < --set < these flags."""
    p.add_argument("--preset", choices=sorted(PRESETS), help="the starting config (default mnist-cpu)")
    _config_file_flags(p, "any config section (data, model, noise, train, sample)")
    g = p.add_argument_group("training flags (override the preset, --config and --set)")
    g.add_argument("--loss", choices=LOSSES, help="dsm (denoising, the paper), ssm or ssm_vr (sliced score matching)")
    g.add_argument("--arch", choices=ARCHS, help="score network: refinenet (the paper's), compact (CPU), mlp (2-D toy)")
    g.add_argument("--channels", type=_channels, metavar="C1,C2,C3",
                   help="compact model widths at full, 1/2 and 1/4 resolution, e.g. 16,48,96")
    g.add_argument("--ngf", type=int, help="RefineNet width (the paper: 64 for MNIST, 128 for CIFAR-10)")
    g.add_argument("--sigma-begin", type=float, help="sigma_1, the largest noise level of the training ladder")
    g.add_argument("--sigma-end", type=float, help="sigma_L, the smallest noise level")
    g.add_argument("--num-classes", type=int, metavar="L", help="number of noise levels L")
    g.add_argument("--n-iters", type=int)
    g.add_argument("--save-every", type=int)
    g.add_argument("--preview-every", type=int)
    g.add_argument("--log-every", type=int)
    g.add_argument("--batch-size", type=int)
    g.add_argument("--lr", type=float)
    g.add_argument("--lr-schedule", choices=LR_SCHEDULES, help="constant (the paper) or cosine: decay to 0 over "
                                                               "--n-iters, or over --minutes if that ends first")
    g.add_argument("--precision", choices=PRECISIONS,
                   help="fp32 (the paper), or bf16: the forward pass under bfloat16 autocast, for GPUs and CPUs with "
                        "AMX (the paper RefineNet trains about 1.9x as fast on an AMX Xeon; slower without AMX)")
    g.add_argument("--ema-rate", type=float, help="EMA of the weights, e.g. 0.999; 0 disables")
    g.add_argument("--seed", type=int)
    g.add_argument("--dataset", help="the data set (mnist-builtin: the 10,000 shipped digits; mnist: the 60,000 "
                                     "training digits; fashion-mnist, cifar10, celeba, folder)")
    g.add_argument("--data-root", help="folder of the data set (or of your own images with --dataset folder)")
    g.add_argument("--download", action="store_true", default=None,
                   help="let torchvision download the data set (needs a network)")


def _sampler_flags(p: argparse.ArgumentParser, config_default: str = "", run: bool = True) -> None:
    """The sampler flags shared by sample, inpaint, eval and set-sampler (None = the checkpoint config's); `run`
    adds those of one run (--seed, --no-ema)."""
    from .config import SAMPLERS
    _config_file_flags(p, "the sampler (only its `sample` section: the model is the checkpoint's)")
    if run:
        p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sampler", choices=SAMPLERS,
                   help="annealed_langevin (the paper's Alg. 1), pc (predictor-corrector), heun (probability-flow ODE, "
                        f"continuous-sigma models){config_default}")
    p.add_argument("--num-levels", type=int, metavar="N",
                   help=f"noise levels of the sampling ladder (Heun: sigma steps){config_default}")
    p.add_argument("--sigma-begin", type=float, help=f"largest sigma of the sampling ladder{config_default}")
    p.add_argument("--sigma-end", type=float, help=f"smallest sigma of the sampling ladder{config_default}")
    p.add_argument("--snr", type=float, help=f"pc: the corrector's signal-to-noise ratio{config_default}")
    p.add_argument("--rho", type=float, help=f"heun: exponent of Karras et al.'s sigma schedule{config_default}")
    p.add_argument("--churn", type=float, help=f"heun: Karras et al.'s S_churn, noise added before each step "
                                                f"(0 = the deterministic ODE){config_default}")
    p.add_argument("--precision", choices=PRECISIONS,
                   help=f"fp32, or bf16: the network under bfloat16 autocast, the sampler's updates in fp32; for GPUs "
                        f"and CPUs with AMX (slower without){config_default}")
    p.add_argument("--guidance", type=float, metavar="W",
                   help=f"autoguidance weight, for a checkpoint that carries a guide (`ncsn guide`): s_guide + W (s - "
                        f"s_guide); 1 = the model alone{config_default}")
    p.add_argument("--exact-above", type=float, metavar="SIGMA",
                   help=f"for sigma > SIGMA, the exact score of the model's own training images smoothed by sigma "
                        f"in place of the network (steers the chain to the data's classes at large sigma; needs the "
                        f"training images on this machine); 0 = the network everywhere{config_default}")
    p.add_argument("--dg-weight", type=float, metavar="W",
                   help=f"discriminator guidance weight, for a checkpoint that carries a discriminator (`ncsn "
                        f"discriminator`): s + W grad log r, log r = log(d / (1 - d)) plus its class part where it has "
                        f"one; 0 = off{config_default}")
    p.add_argument("--step-lr", type=float,
                   help=f"epsilon in alpha_i = eps * sigma_i^2 / sigma_L^2 (Alg. 1 notation){config_default}")
    p.add_argument("--n-steps-each", type=_steps_list,
                   help=f"T, Langevin steps per noise level, or one per level: 5,5,10,...{config_default}")
    p.add_argument("--denoise", dest="denoise", action="store_true", default=None,
                   help=f"final step x + sigma_L^2 s(x, sigma_L){config_default}")
    p.add_argument("--no-denoise", dest="denoise", action="store_false")
    if run:
        p.add_argument("--no-ema", action="store_true", help="use the raw weights even if EMA weights exist")
    p.add_argument("--init", choices=INITS,
                   help="start of the chain: uniform in [0, 1) (the paper), N(0, sigma_1^2 I), or N(data mean, "
                        f"sigma_1^2 I){config_default}")
    p.add_argument("--variance-correction", type=_unit_interval, metavar="KAPPA",
                   help="0..1: shrink the Langevin noise so that this fraction of the update's excess stationary "
                        f"variance (1/(1 - eps/(4 sigma_L^2)) - 1) is removed; 0 = the paper{config_default}")


def _unit_interval(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = float("nan")
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number in [0, 1]")
    return v


def _checkpoint_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", help="checkpoint .pt or run folder (default: the built-in MNIST model)")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="ncsn", description="Noise Conditional Score Networks (Song & Ermon 2019), headless.")
    ap.add_argument("--debug", action="store_true", help="show full tracebacks")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a score network; writes a run folder")
    _train_config_flags(p)
    p.add_argument("--run-dir")
    p.add_argument("--resume", metavar="DIR", help="continue the run in DIR from its newest checkpoint (its "
                                                   "config.json is the base that the other flags change)")
    p.add_argument("--minutes", type=float, help="stop after this many minutes of wall time, with a checkpoint "
                                                 "(continue later with --resume)")
    p.add_argument("--keep-last", type=int, default=3, help="checkpoints to keep, the newest (0 keeps all; default 3)")
    _common(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("config", help="print a resolved training config as JSON (input for --config)")
    p.add_argument("path", nargs="?", help="a checkpoint .pt or run folder: print its config (instead of a preset's)")
    _train_config_flags(p)
    p.set_defaults(func=cmd_config, json=True)

    p = sub.add_parser("sample", help="annealed Langevin samples to a grid PNG or .npy")
    _checkpoint_flag(p)
    _sampler_flags(p)
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--out", required=True, help=".png grid or .npy array")
    p.add_argument("--nrow", type=int)
    p.add_argument("--level-strip", metavar="PNG", help="also write one column per noise level")
    p.add_argument("--strip-view", choices=("x", "denoised", "both"),
                   help="what the level strip shows: the chain's x (default), the model's denoised estimate "
                        "x + sigma^2 s(x, sigma) (Tweedie's formula), or both (x above its estimate)")
    p.add_argument("--gif", metavar="GIF", help="also write the chain as an animated GIF")
    _common(p)
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("inpaint", help="fill the masked-out pixels of an image (mask: white = keep)")
    _checkpoint_flag(p)
    _sampler_flags(p)
    p.add_argument("--image", required=True)
    p.add_argument("--mask", required=True, help="PNG, white = known pixel to keep, black = to fill")
    p.add_argument("--n", type=int, default=4)
    p.add_argument("--out", required=True)
    _common(p)
    p.set_defaults(func=cmd_inpaint)

    p = sub.add_parser("toy", help="2-D mixture: plain vs annealed Langevin with exact scores (paper Fig. 3)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-particles", type=int, default=1280)
    p.add_argument("--sigma-begin", type=float, default=20.0)
    p.add_argument("--sigma-end", type=float, default=0.7)
    p.add_argument("--num-classes", type=int, default=10)
    p.add_argument("--step-lr", type=float, default=0.1)
    p.add_argument("--n-steps-each", type=int, default=100)
    p.add_argument("--langevin-step-size", type=float, default=0.1)
    p.add_argument("--langevin-n-steps", type=int, default=1000)
    _common(p)
    p.set_defaults(func=cmd_toy)

    p = sub.add_parser("average", help="average the weights of a run's checkpoints (a longer EMA, after training)")
    p.add_argument("run", help="run folder")
    p.add_argument("--from", dest="from_step", type=int, required=True, metavar="STEP",
                   help="first step to average (every checkpoint of the run from it on is taken)")
    p.add_argument("--to", type=int, metavar="STEP", help="last step to average (default: the newest)")
    p.add_argument("--out", required=True, help="the averaged checkpoint, a .pt file (samples and evaluates; "
                                                "does not resume)")
    p.add_argument("--json", action="store_true", help="print exactly one JSON object to stdout")
    p.set_defaults(func=cmd_average)

    p = sub.add_parser("guide", help="embed a weaker model of the same data as the autoguidance guide of a checkpoint")
    p.add_argument("checkpoint", help="the model to sample from: checkpoint .pt or run folder (its newest)")
    p.add_argument("--guide", required=True,
                   help="the guide: a weaker model of the same images, e.g. an early checkpoint of the same run "
                        "(its EMA weights are taken)")
    p.add_argument("--guidance", type=float, default=2.0, metavar="W",
                   help="the default guidance weight of the result (default 2; --guidance at sampling overrides it)")
    p.add_argument("--out", required=True, help="the guided checkpoint, a .pt file (samples and evaluates; does "
                                                "not resume)")
    p.add_argument("--json", action="store_true", help="print exactly one JSON object to stdout")
    p.set_defaults(func=cmd_guide)

    p = sub.add_parser("discriminator", help="train a discriminator of a checkpoint's samples against its training "
                                             "images, for discriminator guidance (Kim et al. 2023)")
    p.add_argument("checkpoint", help="the model to sample from: checkpoint .pt or run folder (its newest)")
    p.add_argument("--n-samples", type=int, default=20000,
                   help="samples of the checkpoint's own sampler to train on (default 20000)")
    p.add_argument("--steps", type=int, default=6000, help="training steps, batches of 128 of each kind (default 6000)")
    p.add_argument("--seed", type=int, default=12345,
                   help="seed of the samples and the training (default 12345, away from the evaluations' 0, 1, ...)")
    p.add_argument("--weight", type=float, default=1.0, metavar="W",
                   help="the default discriminator guidance weight of the result (default 1, the theory's; "
                        "--dg-weight at sampling overrides it)")
    p.add_argument("--class-steps", type=int, default=4000,
                   help="training steps of the class part's classifier of the training labels (default 4000; 0 = "
                        "no class part; none either for images without labels)")
    p.add_argument("--calibration-samples", type=int, default=5000,
                   help="samples of the guided sampler per calibration round of the class weights (default 5000)")
    p.add_argument("--calibration-rounds", type=int, default=2,
                   help="calibration rounds of the class weights (default 2; 0 = the first estimate)")
    p.add_argument("--out", required=True, help="the checkpoint with its discriminator, a .pt file (samples and "
                                                "evaluates; does not resume); may be the input, replaced atomically "
                                                "once the discriminator is trained (one it carried is replaced)")
    _common(p)
    p.set_defaults(func=cmd_discriminator)

    p = sub.add_parser("set-sampler", help="write a copy of a checkpoint with new default sampler settings (what "
                                           "sample, eval and the studio run unless told otherwise)")
    p.add_argument("checkpoint", help="checkpoint .pt or run folder (its newest)")
    _sampler_flags(p, run=False)
    p.add_argument("--out", required=True, help="the checkpoint with the new defaults, a .pt file (may be the input: "
                                                "it is replaced atomically; the old defaults stay in its history)")
    p.add_argument("--json", action="store_true", help="print exactly one JSON object to stdout")
    p.set_defaults(func=cmd_set_sampler)

    p = sub.add_parser("info", help="architecture, parameters, FLOPs, config and step of a checkpoint or preset")
    p.add_argument("path", nargs="?", help="checkpoint .pt or run folder (default: the built-in MNIST model)")
    p.add_argument("--preset", choices=sorted(PRESETS))
    _common(p)
    p.set_defaults(func=cmd_info)

    from .evaluate import add_eval_parser
    add_eval_parser(sub, _common, _sampler_flags, sample_overrides, UserError)
    from .bench import add_bench_parser
    add_bench_parser(sub, _common, UserError)
    return ap


def main(argv: Optional[list] = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    for name in ("n", "n_iters", "save_every", "batch_size"):
        v = getattr(args, name, None)
        if v is not None and v < 1 and not (name == "n_iters" and v == 0):
            print(f"ncsn: error: --{name.replace('_', '-')} must be >= 1 (got {v})", file=sys.stderr)
            return 2
    if getattr(args, "step_lr", None) is not None and args.step_lr <= 0:
        print(f"ncsn: error: --step-lr must be > 0 (got {args.step_lr})", file=sys.stderr)
        return 2
    try:
        return args.func(args)
    except (UserError, ConfigError, CheckpointError) as e:  # a bad file or a failed save: one line
        if args.debug:
            traceback.print_exc()
        print(f"ncsn: error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # anything else is a bug: one line, --debug for the traceback
        if args.debug:
            raise
        print(f"ncsn: error: {type(e).__name__}: {e} (run with --debug for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
