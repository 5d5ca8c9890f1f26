"""Training as a generator of events: send "stop", "pause" or "save"; drain it for the blocking API."""
from __future__ import annotations

import functools
import json
import math
import os
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Generator, Optional, Union

import numpy as np
import torch

from . import distributed as ddp
from .checkpoint import CheckpointError, checkpoint_path, latest_checkpoint, list_checkpoints, read_state, save_checkpoint
from .config import Config
from .data import load_dataset, mean_image, preprocess
from .losses import NoiseDraw, compute_loss, loss_per_level
from .models import ScoreModel, build_model
from .precision import autocast
from .sampling import drain, plan, sample


# --- events -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainStep:
    """Reported every log_every steps. loss: mean over the window; loss_per_sigma: (L,) window means
    per noise level (nan where a level was not drawn)."""
    step: int
    n_iters: int
    loss: float
    loss_per_sigma: tuple
    images_per_s: float
    elapsed_s: float
    eta_s: float


@dataclass(frozen=True)
class Preview:
    """A few samples from the current (EMA) model: images (n, C, H, W) float32 in [0, 1]."""
    step: int
    images: np.ndarray


@dataclass(frozen=True)
class CheckpointSaved:
    path: str
    step: int


@dataclass(frozen=True)
class Paused:
    step: int


@dataclass(frozen=True)
class Finished:
    """reason: 'done' (n_iters reached), 'stopped' (asked to), 'time' (the max_minutes budget was spent), or
    'diverged' (NaN/inf guard)."""
    step: int
    reason: str
    message: str = ""
    checkpoint: Optional[str] = None


# None is yielded, at least every HEARTBEAT_S seconds, between reports: nothing to report, but a moment to
# receive a command, so that "stop" waits for one optimiser step, not for the next logging step.
TrainEvent = Union[TrainStep, Preview, CheckpointSaved, Paused, Finished, None]
HEARTBEAT_S = 0.5


# --- helpers ----------------------------------------------------------------------------------
def pick_device(name: Optional[str] = None) -> torch.device:
    """'auto' or None: CUDA, then MPS, then CPU; otherwise the named device (checked)."""
    if name in (None, "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but CUDA is not available here: use --device cpu or auto")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"device {name!r} asked for, but MPS is not available here: use --device cpu or auto")
    return dev


class EMA:
    """Exponential moving average of the weights: shadow <- r * shadow + (1 - r) * w, with the warm-up
    r = min(rate, (1 + step) / (10 + step)) so early previews are not dominated by the initial weights."""

    def __init__(self, model: torch.nn.Module, rate: float):
        self.rate = rate
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        r = min(self.rate, (1 + step) / (10 + step))
        for k, v in model.state_dict().items():
            if v.dtype.is_floating_point:
                self.shadow[k].mul_(r).add_(v.detach(), alpha=1 - r)
            else:
                self.shadow[k].copy_(v)


@functools.lru_cache(maxsize=2)
def _epoch_permutation(seed: int, epoch: int, n: int) -> torch.Tensor:
    """The seeded order of epoch `epoch` (cached: consecutive steps share it; callers only slice it)."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))


def batch_indices(step: int, batch_size: int, n: int, seed: int) -> torch.Tensor:
    """Indices of the batch for `step` (0-based): epochs of a seeded permutation, a pure function of
    (seed, step), so a resumed run sees exactly the batches an uninterrupted one would. A batch that
    crosses an epoch boundary takes the rest of one epoch and the start of the next."""
    out, start, need = [], step * batch_size, batch_size
    while need:
        epoch, offset = divmod(start, n)
        take = _epoch_permutation(seed, epoch, n)[offset: offset + need]
        out.append(take)
        start += len(take)
        need -= len(take)
    return torch.cat(out)


def step_generator(seed: int, step: int, device) -> torch.Generator:
    """The noise of step `step` comes from its own seeded generator (same reason as batch_indices)."""
    g = torch.Generator(device=device)
    g.manual_seed((seed * 1_000_003 + step) % (2 ** 63))
    return g


def global_batch(data, indices: torch.Tensor, part: Optional[slice]) -> torch.Tensor:
    """The step's batch. Under DDP (`part` = this rank's rows) only those rows are read and the others stay zero:
    preprocess and the loss then draw their noise for the whole global batch, exactly as one process does, and
    act row by row, so this rank's rows come out as in a 1-process run."""
    if part is None:
        return data.get_batch(indices)
    mine = data.get_batch(indices[part])
    x = mine.new_zeros((len(indices), *mine.shape[1:]))
    x[part] = mine
    return x


class RunDir:
    """One folder per run: config.json, metrics.jsonl, checkpoints/, samples/."""

    def __init__(self, path: Union[str, Path]):
        self.path = Path(path)

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.jsonl"

    def create(self, config: Config) -> None:
        (self.path / "checkpoints").mkdir(parents=True, exist_ok=True)
        (self.path / "samples").mkdir(exist_ok=True)
        tmp = self.path / "config.json.tmp"
        tmp.write_text(json.dumps(config.to_dict(), indent=2))
        os.replace(tmp, self.path / "config.json")

    def truncate_metrics(self, step: int) -> None:
        """Drop metric lines past `step` (from a run interrupted after its last checkpoint)."""
        if not self.metrics.exists():
            return
        keep = []
        for line in self.metrics.read_text().splitlines():
            try:
                if json.loads(line).get("step", 0) <= step:
                    keep.append(line)
            except json.JSONDecodeError:
                continue  # a line torn by a kill
        tmp = self.metrics.with_suffix(".tmp")
        tmp.write_text("".join(k + "\n" for k in keep))
        os.replace(tmp, self.metrics)

    def log(self, record: dict) -> None:
        with open(self.metrics, "a") as f:
            f.write(json.dumps(record) + "\n")

    def prune(self, keep_last: int) -> None:
        for p in list_checkpoints(self.path)[:-keep_last]:
            p.unlink(missing_ok=True)


def is_unfinished(run_dir: Union[str, Path]) -> bool:
    """A run folder with a checkpoint whose step is below its configured n_iters."""
    ckpt = latest_checkpoint(Path(run_dir))
    if ckpt is None:
        return False
    try:
        cfg = json.loads((Path(run_dir) / "config.json").read_text())
        return int(ckpt.stem.split("_")[1]) < int(cfg["train"]["n_iters"])
    except (OSError, ValueError, KeyError):
        return False


@torch.no_grad()
def preview_samples(model: ScoreModel, cfg: Config, n: int, seed: int, max_steps_each: int = 5) -> torch.Tensor:
    """A quick look at what the model generates, clamped to [0, 1]: the configured sampler, where a Langevin
    sampler takes at most max_steps_each steps per level (annealed Langevin: step_lr scaled up to cover the
    same distance, denoised), without autoguidance."""
    sc = replace(cfg.sample, guidance=1.0)  # the model alone: the guide joins the checkpoints, not the previews
    if sc.sampler != "heun":
        steps = sc.steps_per_level(len(plan(model, sc).sigmas))
        t = min(max(steps), max_steps_each)
        sc = replace(sc, n_steps_each=t, step_lr=sc.step_lr * max(steps) / t, denoise=True)
    shape = (n, cfg.data.channels, cfg.data.image_size, cfg.data.image_size)
    return drain(sample(model, sc, shape, seed=seed)).clamp(0, 1)


# --- abandoning a step -----------------------------------------------------------------------
class StepAbandoned(Exception):
    """Raised inside a step (forward, backward) once the interrupt event is set: the step is dropped whole."""


class StepGuard:
    """Lets a step be abandoned part-way: while armed (`with guard:`), a forward pre-hook on every module and a
    gradient hook on every parameter raise StepAbandoned once `event` is set, so a big model's multi-second step
    ends within one layer's time instead of at its end. The hooks only read the event (no effect on the numbers);
    with no event nothing is registered. Disarmed outside steps: previews may run the model."""

    def __init__(self, model: torch.nn.Module, event: Optional[threading.Event]):
        self.event, self.armed = event, False
        if event is not None:
            for m in model.modules():
                m.register_forward_pre_hook(self._module_hook)
            for p in model.parameters():
                if p.requires_grad:
                    p.register_hook(self._grad_hook)

    def check(self) -> None:
        if self.armed and self.event is not None and self.event.is_set():
            raise StepAbandoned

    def _module_hook(self, module, args) -> None:
        self.check()

    def _grad_hook(self, grad) -> None:
        self.check()

    def __enter__(self) -> "StepGuard":
        self.armed = True
        self.check()
        return self

    def __exit__(self, *exc) -> None:
        self.armed = False


# --- the training loop ------------------------------------------------------------------------
def lr_at(tc, step: int, time_share: float = 0.0) -> float:
    """The learning rate of step `step` + 1: linear warm-up over tc.warmup steps, then tc.lr_schedule.

    'cosine' decays to 0 over the run's progress p: step / n_iters, or, under a time budget, the share of it
    spent (`time_share`) if that is larger, so that a 30-minute run ends with its learning rate near 0 whatever
    the machine's speed. Without a budget it is a pure function of the step (a resume gets the same rates); a
    resume with a new budget starts a new decay from the full rate (a warm restart).
    """
    lr = tc.lr * (min(1.0, (step + 1) / tc.warmup) if tc.warmup else 1.0)
    if tc.lr_schedule == "cosine":
        p = min(1.0, max(step / max(tc.n_iters, 1), time_share))
        lr *= 0.5 * (1 + math.cos(math.pi * p))
    return lr


def train(cfg: Config, run_dir: Union[str, Path], resume: bool = False, device: Union[str, torch.device, None] = None,
          dataset=None, keep_last: int = 3, max_minutes: Optional[float] = None,
          interrupt: Optional[threading.Event] = None,
          ) -> Generator[TrainEvent, Optional[str], Finished]:
    """Train cfg's model on cfg's data (or `dataset`), writing the run folder as it goes.

    max_minutes: stop after this much wall time in this call (checkpoint saved, reason 'time'); a resume
    continues as usual. keep_last: checkpoints kept (the newest; 0 keeps all).

    resume: continue from the run folder's newest checkpoint (same step, optimizer, EMA; batches and
    noise are pure functions of (seed, step), so the continuation equals an uninterrupted run).
    Commands sent in: "stop" (save and finish), "pause" (save, yield Paused; the next next() resumes),
    "save" (save now). The NaN/inf guard stops before a bad update reaches the weights.

    interrupt: setting this event (from another thread) stops like "stop" but without waiting for the step under
    way: that step is abandoned part-way (no update: Adam state, EMA and step count untouched), the checkpoint of
    the last completed step is saved and Finished 'stopped' follows, so a resume equals an uninterrupted run.
    Under torchrun the event only acts between steps (rank 0 reads it like "stop"): a rank leaving a step alone
    would leave the others waiting in its gradient all-reduce.

    Several processes (torchrun; the process group set up by distributed.setup): every rank runs this generator
    on its rows of the global batch (cfg.train.batch_size) with DistributedDataParallel. Batches and noise are
    drawn for the global batch as one process draws them, so the run follows a 1-process run's losses, weights,
    EMA and optimiser state (within float tolerance). The loss reported is the global mean; rank 0 alone writes
    the run folder and hears commands and max_minutes, and every rank stops at the step rank 0 decides.
    """
    dev = pick_device(str(device) if device is not None else None)
    run = RunDir(run_dir)
    tc = cfg.train
    w = ddp.world()
    part = ddp.rank_slice(tc.batch_size, w) if w.distributed else None
    data = dataset if dataset is not None else load_dataset(cfg.data)
    torch.manual_seed(tc.seed)
    model = build_model(cfg).to(dev)
    model.data_mean = mean_image(data).to(dev)  # for the 'data-mean' chain start; saved with every checkpoint
    opt = torch.optim.Adam(model.parameters(), lr=tc.lr, betas=(tc.beta1, tc.beta2), weight_decay=tc.weight_decay)
    ema = EMA(model, tc.ema_rate) if tc.ema_rate else None
    step = 0
    guide = None  # the autoguidance guide, once step tc.guide_step is reached: {"config", "weights", "step"}
    if resume:
        state = read_state(run.path, map_location=dev)
        guide = state.get("guide")
        model.load_state_dict(state["model"])
        if state.get("optimizer"):
            opt.load_state_dict(state["optimizer"])
        if ema is not None and state.get("ema"):
            ema.shadow = {k: v.to(dev) for k, v in state["ema"].items()}
        step = int(state["step"])
        torch.set_rng_state(state["rng"]["torch"])
    if w.is_main:
        run.truncate_metrics(step)  # rows past the checkpoint, or all rows of an attempt that saved none
        run.create(cfg)  # on resume too: a longer --n-iters is recorded
    ddp.barrier(w)  # the other ranks go on once the run folder is in place (and every rank has read its state)
    model.train()
    net = model  # what computes the loss; under DDP its backward averages the gradients over the ranks
    if w.distributed:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[dev.index] if dev.type == "cuda" else None)
    L = cfg.noise.num_classes
    sigmas = model.sigmas
    draw = NoiseDraw(tc.sigma_sampling, tc.lognormal_mean, tc.lognormal_std)
    guard = StepGuard(model, None if w.distributed else interrupt)

    def save() -> CheckpointSaved:
        p = checkpoint_path(run.path, step)
        try:
            save_checkpoint(p, cfg, step, model, opt, ema.shadow if ema else None, guide=guide,
                            extra={"world_size": w.size, **({"guide": {"file": "this run", "step": guide["step"],
                                                                       "ema": ema is not None}} if guide else {})})
        except OSError as e:  # disk full, read-only folder: atomic_write kept the previous checkpoints intact
            raise CheckpointError(f"could not write {p} ({e.strerror or e}): training stopped at step {step}; last "
                                  f"good checkpoint: {latest_checkpoint(run.path) or 'none'}. Free disk space or make "
                                  f"the run folder writable, then resume it (ncsn train --resume {run.path})") from e
        if keep_last:
            run.prune(keep_last)
        return CheckpointSaved(str(p), step)

    def finish(reason: str, message: str):
        """Rank 0 saves the last checkpoint; every rank returns only once it is on disk."""
        if w.is_main:
            yield save()
        ddp.barrier(w)
        return (yield Finished(step, reason, message, str(checkpoint_path(run.path, step))))

    # window sums stay on the device: no host sync per step, only at log time
    win_loss, win_n = torch.zeros((), device=dev), 0
    win_sums, win_counts = torch.zeros(L, device=dev), torch.zeros(L, device=dev)
    t_start = t_win = t_yield = time.perf_counter()
    steps_at_start = step
    time_share = 0.0  # of the max_minutes budget spent, as rank 0 measured it at the end of the last step
    while step < tc.n_iters:
        try:
            with guard:
                g = step_generator(tc.seed, step, dev)
                x = global_batch(data, batch_indices(step, tc.batch_size, len(data), tc.seed), part).to(dev)
                x = preprocess(x, cfg.data, g)
                with autocast(dev, tc.precision):  # bf16: the network's products; the loss's sums stay fp32
                    res = compute_loss(tc.loss, net, x, sigmas, tc.anneal_power, tc.n_particles, generator=g,
                                       draw=draw, weighting=tc.weighting, part=part)
            loss = ddp.all_reduce_mean(res.loss.detach(), w)  # the global mean: every rank takes the same branch
            if not torch.isfinite(loss):
                bad = ~torch.isfinite(res.per_example)
                levels = sorted(set(res.labels[bad].tolist())) or sorted(set(res.labels.tolist()))
                last = latest_checkpoint(run.path)
                msg = (f"loss became {float(loss)} at step {step + 1} (noise level(s) {levels}, sigma "
                       f"{', '.join(f'{float(sigmas[i]):.4g}' for i in levels)}); training stopped before the "
                       f"update. Last good checkpoint: {last or 'none yet'}. Lower the learning rate or check the "
                       f"data.")
                if w.is_main:
                    run.log({"step": step + 1, "event": "diverged", "message": msg, "world_size": w.size})
                return (yield Finished(step, "diverged", msg, str(last) if last else None))
            for group in opt.param_groups:
                group["lr"] = lr_at(tc, step, time_share)
            with guard:  # entering checks the event between forward and backward; leaving, just before the update
                opt.zero_grad(set_to_none=True)
                res.loss.backward()
                guard.check()
            opt.step()
        except StepAbandoned:
            opt.zero_grad(set_to_none=True)  # the partial gradients go; weights, Adam, EMA and step are untouched
            break  # finished below, outside the handler: an error while saving is not chained to StepAbandoned
        step += 1
        if ema is not None:
            ema.update(model, step)
        if step == tc.guide_step:  # this run's own weaker self: the guide of every later checkpoint
            weights = ema.shadow if ema is not None else model.state_dict()
            guide = {"config": cfg.to_dict(), "weights": {k: v.detach().cpu().clone() for k, v in weights.items()},
                     "step": step}
        s, c = loss_per_level(res, L)
        win_sums += s
        win_counts += c
        win_loss += loss
        win_n += 1

        cmd = None
        if step % tc.log_every == 0 or step == tc.n_iters:
            now = time.perf_counter()
            ips = win_n * tc.batch_size / max(now - t_win, 1e-9)  # the global batch: images of all ranks
            sums, counts = ddp.all_reduce_sum(win_sums, w), ddp.all_reduce_sum(win_counts, w)
            means = (sums / counts.clamp_min(1)).cpu()
            per_sigma = tuple(float(v) if n > 0 else math.nan for v, n in zip(means, counts.cpu()))
            rate = (step - steps_at_start) / max(now - t_start, 1e-9)
            eta = (tc.n_iters - step) / max(rate, 1e-9)
            if max_minutes is not None:  # the time limit may end the run first
                eta = min(eta, max(0.0, 60 * max_minutes - (now - t_start)))
            ev = TrainStep(step, tc.n_iters, float(win_loss) / win_n, per_sigma, ips, now - t_start, eta)
            if w.is_main:
                run.log({"step": step, "loss": ev.loss,
                         "loss_per_sigma": [None if math.isnan(v) else v for v in per_sigma],
                         "images_per_s": ips, "lr": opt.param_groups[0]["lr"], "time": time.time(),
                         "world_size": w.size})
            win_loss.zero_()
            win_n, t_win = 0, now
            win_sums.zero_(), win_counts.zero_()
            cmd = yield ev
            t_yield = time.perf_counter()
        elif time.perf_counter() - t_yield >= HEARTBEAT_S:
            cmd = yield None
            t_yield = time.perf_counter()
        stop = 0  # rank 0's decision (1 stop, 2 time), broadcast: every rank must stop at the same step
        if w.is_main:  # previews, saves and commands are rank 0's
            if tc.preview_every and step % tc.preview_every == 0:
                c = yield Preview(step, _preview(model, ema, cfg))
                cmd = cmd or c
            if step % tc.save_every == 0 and step < tc.n_iters:
                c = yield save()
                cmd = cmd or c
            while cmd in ("save", "pause"):
                if cmd == "save":
                    cmd = yield save()
                else:  # a paused run is safe on disk; the next plain next() resumes it
                    c = yield save()
                    cmd = c if c else (yield Paused(step))
            if max_minutes is not None:  # measured after previews, saves and a pause, as they spend the budget too
                spent = time.perf_counter() - t_start
                time_share = spent / (60 * max_minutes) if max_minutes > 0 else math.inf
            if cmd == "stop" or (interrupt is not None and interrupt.is_set()):
                stop = 1
            elif time_share >= 1 and step < tc.n_iters:
                stop = 2
        stop, time_share = ddp.broadcast((stop, time_share), w, dev)  # every rank: the same stop and learning rate
        if stop == 1:
            return (yield from finish("stopped", f"stopped at step {step}"))
        if stop == 2:
            return (yield from finish("time", f"stopped at step {step} after {max_minutes:g} minutes (--minutes); "
                                              f"resume to go on"))
    if step < tc.n_iters:  # left the loop by abandoning a step
        return (yield from finish("stopped", f"stopped at step {step} (step {step + 1} abandoned part-way)"))
    return (yield from finish("done", f"finished {step} steps"))


def _preview(model: ScoreModel, ema: Optional[EMA], cfg: Config) -> np.ndarray:
    net = model
    if ema is not None:
        net = build_model(cfg).to(model.sigmas.device)
        net.load_state_dict(ema.shadow)
        net.data_mean = model.data_mean
    net.eval()
    imgs = preview_samples(net, cfg, cfg.train.n_preview, seed=cfg.train.seed)
    model.train()
    return imgs.cpu().numpy().astype(np.float32)


def run_to_end(gen: Generator[TrainEvent, Optional[str], Finished]) -> Finished:
    """The blocking API: drain a train() generator and return its Finished event."""
    last = None
    for ev in gen:
        last = ev
        if isinstance(ev, Finished):
            break
    return last
