"""`ncsn bench`: what training and sampling cost on this device, measured in one run against the device's
own dense fp32 matmul throughput, and the studio's launch time and responsiveness (when it is installed).

Every workload runs in a fresh subprocess, so each peak-memory figure is that workload's alone
(CPU: the growth of the resident set over the step; CUDA: torch's peak allocation). FLOPs come from
torch.utils.flop_counter (convolutions and matrix products, forward and, for training, backward).
"""
from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable, List

import torch

from .config import get_preset
from .precision import autocast, bf16_unsupported
from .resources import RESOURCES

# model name -> (preset, training batch): the paper's RefineNet at the paper's batch, the compact model at its preset's
MODELS = {"refinenet": ("mnist-paper", 128), "compact": ("mnist-cpu", 64)}
SAMPLE_BATCHES = (64, 256)
SECTIONS = ("train", "sample", "studio")
BASELINE_FILE = RESOURCES.parent / "benchmarks" / "refinenet_baseline.py"


# --- measuring ----------------------------------------------------------------------------------
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rss_mb() -> float:
    """Resident memory of this process now (Linux /proc; elsewhere the peak so far)."""
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20
    except (OSError, ValueError, AttributeError):
        return _max_rss_mb()


def _max_rss_mb() -> float:
    import resource
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2 ** 20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


@contextlib.contextmanager
def _peak_memory(device: torch.device, out: dict):
    """out['peak_mem_mb']: memory the block added at its peak (CUDA allocator, or resident set on a CPU)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        yield
        out["peak_mem_mb"] = (torch.cuda.max_memory_allocated(device) - before) / 2 ** 20
    else:
        before = _rss_mb()
        yield
        out["peak_mem_mb"] = _max_rss_mb() - before


def _timed(fn: Callable[[], object], device: torch.device, repeats: int) -> List[float]:
    times = []
    for _ in range(repeats):
        _sync(device)
        t = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t)
    return times


def matmul_gflops(device: torch.device, quick: bool = False) -> float:
    """Dense fp32 matrix-product throughput (GFLOP/s, best of several): the yardstick for the workloads."""
    n = 8192 if device.type == "cuda" else 2048
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b
    best = min(_timed(lambda: a @ b, device, 3 if quick else 8))
    return 2 * n ** 3 / best / 1e9


def _flops(fn: Callable[[], object]) -> int:
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def _autocast(device: torch.device, amp: bool):
    return autocast(device, "bf16" if amp else "fp32")  # what `ncsn train --precision` does


def _build(preset: str, device: torch.device, baseline: bool):
    """The preset's model, or with baseline the eager formulation of before the speed work (benchmarks/)."""
    cfg = get_preset(preset)
    torch.manual_seed(0)
    if not baseline:
        from .models import build_model
        return cfg, build_model(cfg).to(device), contextlib.nullcontext()
    mod = baseline_module()
    return cfg, mod.build_baseline(cfg).to(device), mod.out_of_place_elu()


def baseline_module():
    """benchmarks/refinenet_baseline.py (in a source checkout; not part of the installed package)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("refinenet_baseline", BASELINE_FILE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def train_workload(preset: str, batch: int, device: str, repeats: int, baseline: bool = False,
                   amp: bool = False) -> dict:
    """One full optimiser step (DSM loss, backward, Adam) at `batch`: images/s, peak memory, FLOP/s."""
    from .losses import dsm_loss
    dev = torch.device(device)
    cfg, model, ctx = _build(preset, dev, baseline)
    tc = cfg.train
    opt = torch.optim.Adam(model.parameters(), lr=tc.lr, betas=(tc.beta1, tc.beta2))
    size, ch = cfg.data.image_size, cfg.data.channels
    x = torch.rand(batch, ch, size, size, device=dev)
    g = torch.Generator(device=dev)

    def step(xb=x):
        g.manual_seed(0)
        with _autocast(dev, amp):
            loss = dsm_loss(model, xb, model.sigmas, generator=g).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    out: dict = {"preset": preset, "batch": batch}
    with ctx:
        with _peak_memory(dev, out):
            times = _timed(step, dev, 1 + repeats)[1:]  # the first step allocates Adam's state: not timed
        flops_per_image = _flops(lambda: step(x[:2])) / 2
    return _rates(out, times, batch, flops_per_image, "images_per_s")


def sample_workload(preset: str, batch: int, device: str, budget_s: float, amp: bool = False) -> dict:
    """Langevin steps of the real sampler loop (annealed_langevin with the preset's settings) at `batch`."""
    from .sampling import annealed_langevin, drain, plan
    dev = torch.device(device)
    cfg, model, _ = _build(preset, dev, False)
    model.eval()
    s = cfg.sample
    shape = (batch, cfg.data.channels, cfg.data.image_size, cfg.data.image_size)

    def chain(n_steps: int):
        with _autocast(dev, amp):  # one level, n_steps steps: the cost of a step does not depend on the level
            return drain(annealed_langevin(model, model.sigmas[:1], shape, s.step_lr, n_steps, init="gaussian",
                                           yield_every=max(1, n_steps // 4), device=dev))
    first = _timed(lambda: chain(1), dev, 2)[-1]
    n_steps = max(2, min(100, round(budget_s / max(first, 1e-6))))
    t = _timed(lambda: chain(n_steps), dev, 1)[0] / n_steps
    labels = torch.zeros(1, dtype=torch.long, device=dev)
    with torch.no_grad():
        flops_per_image = _flops(lambda: model(torch.rand(1, *shape[1:], device=dev), labels))
    # network evaluations of the preset's default sampler; with autoguidance each also runs the guide, which a
    # training run takes from its own earlier weights: the same network, so twice the evaluations
    # (the exact large-sigma score's evaluations, sample.exact_above, are counted apart and not timed: one distance
    # matrix each, cheaper than a network evaluation)
    guided = s.guidance != 1.0
    pl = plan(model, replace(s, guidance=1.0))
    out = {"preset": preset, "batch": batch, "n_steps_timed": n_steps,
           "sampler_steps_64": pl.nfe * (2 if guided else 1), "exact_evaluations_64": pl.n_exact}
    return _rates(out, [t], batch, flops_per_image, "image_steps_per_s")


def _rates(out: dict, times: List[float], batch: int, flops_per_image: float, rate_key: str) -> dict:
    t = statistics.median(times)
    out.update({"step_s": t, "step_s_all": times, rate_key: batch / t, "gflop_per_image": flops_per_image / 1e9,
                "achieved_gflops": flops_per_image * batch / t / 1e9})
    return out


# --- orchestration ------------------------------------------------------------------------------
def _isolated(kind: str, **kw) -> dict:
    """Run one workload in a fresh interpreter (its own peak memory); its last stdout line is the JSON result."""
    cmd = [sys.executable, "-m", "ncsn_core.bench", "--worker", json.dumps({"kind": kind, **kw})]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        return {"error": f"{kind} {kw.get('preset')} failed: {tail}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _merge_rounds(rounds: List[dict]) -> dict:
    """One workload's rounds as one result: the median step time, the largest peak memory."""
    errors = [r for r in rounds if "error" in r]
    if errors:
        return errors[0]
    out = dict(rounds[0])
    times = [t for r in rounds for t in r["step_s_all"]]
    out["peak_mem_mb"] = max(r["peak_mem_mb"] for r in rounds)
    return _rates(out, times, out["batch"], out["gflop_per_image"] * 1e9, "images_per_s")


def _fraction(res: dict, gflops: float) -> None:
    if "achieved_gflops" in res:
        res["fraction_of_matmul"] = res["achieved_gflops"] / gflops


def machine() -> dict:
    info = {"torch": torch.__version__, "python": platform.python_version(), "threads": torch.get_num_threads(),
            "cpu": _cpu_name(), "cpu_capability": torch.backends.cpu.get_cpu_capability(), "cores": os.cpu_count()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def amp_modes(device: torch.device) -> List[bool]:
    """[fp32] or [fp32, bf16]: bf16 rows where the hardware makes it pay (a recent GPU, a CPU with AMX); elsewhere
    benchmarks/bf16_cpu.py says why not."""
    return [False, True] if device.type in ("cuda", "cpu") and not bf16_unsupported(device) else [False]


def run(device: torch.device, quick: bool = False, sections=SECTIONS, baseline: bool = True,
        progress: Callable[[str], None] = lambda s: None) -> dict:
    """All figures as one dict (the JSON of `ncsn bench --json`)."""
    dev = str(device)
    progress("matmul")
    gflops = matmul_gflops(device, quick)
    res: dict = {"device": dev, "machine": machine(), "quick": quick, "date": time.strftime("%Y-%m-%d"),
                 "matmul_gflops": gflops}
    amp = amp_modes(device)
    if "train" in sections:
        jobs = {name + ("_bf16" if a else ""): dict(preset=preset, batch=batch, amp=a)
                for name, (preset, batch) in MODELS.items() for a in amp}
        if baseline and BASELINE_FILE.exists():
            jobs["refinenet_baseline"] = dict(preset="mnist-paper", batch=128, baseline=True)
        runs: dict = {key: [] for key in jobs}
        for r in range(1 if quick else 3):  # rounds of one step each, alternating: drift hits all workloads alike
            for key, spec in jobs.items():
                progress(f"train {key} (round {r + 1})")
                runs[key].append(_isolated("train", device=dev, repeats=1, **spec))
        res["train"] = {key: _merge_rounds(rs) for key, rs in runs.items()}
        b, r = res["train"].get("refinenet_baseline"), res["train"]["refinenet"]
        if b and "error" not in b and "error" not in r:
            res["train"]["refinenet_vs_baseline"] = {"speed": r["images_per_s"] / b["images_per_s"],
                                                     "peak_memory": r["peak_mem_mb"] / b["peak_mem_mb"]}
        for r in res["train"].values():
            _fraction(r, gflops)
    if "sample" in sections:
        res["sample"] = {}
        for name, (preset, _) in MODELS.items():
            for a in amp:
                key = name + ("_bf16" if a else "")
                entry = res["sample"][key] = {}
                # --quick keeps within 3 minutes where bf16 rows double the work (a CPU with AMX): bf16 at b64 only
                for batch in SAMPLE_BATCHES[:1] if quick and a else SAMPLE_BATCHES:
                    progress(f"sample {key} b{batch}")
                    entry[f"b{batch}"] = r = _isolated("sample", preset=preset, batch=batch, device=dev,
                                                       budget_s=3.0 if quick else 10.0, amp=a)
                    _fraction(r, gflops)
                b64 = entry["b64"]
                if "step_s" in b64:
                    entry["projected_64_images_s"] = b64["step_s"] * b64["sampler_steps_64"]
    if "studio" in sections:
        progress("studio")
        res["studio"] = studio_figures(quick)
    return res


def studio_figures(quick: bool) -> dict:
    """The studio's own benchmark (launch time, event-loop latency under load), run as a subprocess."""
    import importlib.util
    if importlib.util.find_spec("PySide6") is None:  # asked, not imported: the engine never loads Qt
        return {"skipped": "the studio is not installed (pip install -e '.[studio]')"}
    cmd = [sys.executable, "-m", "studio.bench", "--json"] + (["--quick"] if quick else [])
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        return {"error": f"studio benchmark failed: {tail}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --- report -------------------------------------------------------------------------------------
def format_report(res: dict) -> str:
    m = res["machine"]
    lines = [f"ncsn bench on {res['device']} ({m.get('gpu') or m['cpu']}, {m['cores']} cores, {m['threads']} threads, "
             f"{m['cpu_capability']}), torch {m['torch']}, {res['date']}{', quick' if res['quick'] else ''}",
             f"dense fp32 matmul: {res['matmul_gflops']:.1f} GFLOP/s", ""]
    if "train" in res:
        lines.append(f"{'train (loss, backward, Adam)':<30}{'batch':>6}{'images/s':>13}{'step s':>9}"
                     f"{'peak MB':>9}{'GFLOP/s':>9}{'of matmul':>11}")
        for key, r in res["train"].items():
            if key.endswith("_vs_baseline"):
                continue
            lines.append(_row(key, r, "images_per_s"))
        v = res["train"].get("refinenet_vs_baseline")
        if v:
            lines.append(f"refinenet vs eager baseline: {v['speed']:.2f}x the speed, {v['peak_memory']:.2f}x the peak memory")
        lines.append("")
    if "sample" in res:
        lines.append(f"{'sample (Langevin steps)':<30}{'batch':>6}{'img-steps/s':>13}{'step s':>9}"
                     f"{'':>9}{'GFLOP/s':>9}{'of matmul':>11}")
        for key, entry in res["sample"].items():
            for b in SAMPLE_BATCHES:
                if f"b{b}" in entry:  # --quick measures bf16 at b64 only
                    lines.append(_row(key, entry[f"b{b}"], "image_steps_per_s"))
            if "projected_64_images_s" in entry:
                lines.append(f"  {key}: its preset's default sampler, 64 images: "
                             f"{entry['b64']['sampler_steps_64']} network evaluations, about "
                             f"{entry['projected_64_images_s']:.1f} s"
                             + (f" (and {entry['b64']['exact_evaluations_64']} of the exact large-sigma score, not "
                                f"timed)" if entry["b64"].get("exact_evaluations_64") else ""))
        lines.append("")
    if "studio" in res:
        s = res["studio"]
        if "latency_p99_ms" in s:
            lines.append(f"studio: launch {s['launch_s']:.2f} s (first {s.get('launch_first_s', float('nan')):.2f} s); "
                         f"event-loop latency p50 {s['latency_p50_ms']:.1f} ms, p99 {s['latency_p99_ms']:.1f} ms, "
                         f"max {s['latency_max_ms']:.1f} ms (worst of its activities)")
            shown = list(s.get("activities", {}).items()) + ([("(startup, not an activity)", s["startup"])]
                                                            if "startup" in s else [])
            for act, a in shown:
                lines.append(f"  {act:<22} p50 {a['latency_p50_ms']:6.1f}  p99 {a['latency_p99_ms']:6.1f}  "
                             f"max {a['latency_max_ms']:6.1f} ms  ({a['ticks']} ticks, {a['seconds']:.0f} s)")
        else:
            lines.append(f"studio: {s.get('skipped') or s.get('error')}")
    return "\n".join(lines)


def _row(key: str, r: dict, rate_key: str) -> str:
    if "error" in r:
        return f"{key:<30}{r['error']}"
    mem = f"{r['peak_mem_mb']:>9.0f}" if "peak_mem_mb" in r else f"{'':>9}"
    return (f"{key:<30}{r['batch']:>6}{r[rate_key]:>13.1f}{r['step_s']:>9.3f}{mem}"
            f"{r['achieved_gflops']:>9.1f}{r.get('fraction_of_matmul', float('nan')):>10.0%}")


# --- command line -------------------------------------------------------------------------------
def add_bench_parser(sub, common, user_error) -> None:
    p = sub.add_parser("bench", help="measure training and sampling speed, memory and the studio's responsiveness")
    p.add_argument("--quick", action="store_true", help="fewer repeats and shorter windows (about 2 minutes on a CPU)")
    p.add_argument("--sections", default=",".join(SECTIONS),
                   help=f"comma-separated subset of {','.join(SECTIONS)} (the matmul yardstick always runs)")
    p.add_argument("--no-baseline", action="store_true", help="skip the eager baseline of the paper's training step")
    common(p)

    def cmd_bench(args) -> int:
        from .training import pick_device
        sections = [s for s in args.sections.split(",") if s]
        unknown = sorted(set(sections) - set(SECTIONS))
        if unknown:
            raise user_error(f"--sections: unknown {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
        try:
            device = pick_device(args.device)
        except ValueError as e:
            raise user_error(str(e)) from e
        show = not args.json and not args.quiet
        res = run(device, args.quick, sections, baseline=not args.no_baseline,
                  progress=(lambda s: print(f"measuring {s} ...", file=sys.stderr, flush=True)) if show else (lambda s: None))
        print(json.dumps(res) if args.json else format_report(res))
        return 0
    p.set_defaults(func=cmd_bench)


def _worker(spec: dict) -> dict:
    kind = spec.pop("kind")
    return (train_workload if kind == "train" else sample_workload)(**spec)


if __name__ == "__main__":  # the subprocess side of _isolated
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        print(json.dumps(_worker(json.loads(sys.argv[2]))))
