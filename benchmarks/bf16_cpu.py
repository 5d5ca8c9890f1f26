"""Why bf16 autocast does or does not pay on this CPU: fp32 against torch.autocast('cpu', bfloat16) for a
forward pass and a training step of both networks, measured alternately in one run; the CPU's bf16
instructions; the oneDNN convolution kernel each dtype gets (ONEDNN_VERBOSE); the ops that dominate
the bf16 forward and the dtype conversions autocast inserts.

    .venv/bin/python benchmarks/bf16_cpu.py [--batch 32] [--train-batch 8] [--repeats 3]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

import torch

from ncsn_core.config import get_preset
from ncsn_core.losses import dsm_loss
from ncsn_core.models import build_model
from ncsn_core.precision import cpu_flags

CONV_PROBE = ("import torch; c = torch.nn.Conv2d(64, 64, 3, padding=1).to(memory_format=torch.channels_last); "
              "x = torch.rand(8, 64, 28, 28).contiguous(memory_format=torch.channels_last)\n"
              "with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16, enabled={bf16}): c(x)")


def cpu_bf16_flags() -> str:
    flags = cpu_flags()
    if not flags:
        return "unknown (no /proc/cpuinfo)"
    have = [f for f in ("avx512f", "avx512_bf16", "amx_bf16", "avx_vnni", "avx512_vnni") if f in flags]
    return ", ".join(have) or "none of avx512f, avx512_bf16, amx_bf16 (AVX2 only)"


def onednn_kernel(bf16: bool) -> str:
    """The convolution implementation oneDNN picks, from its verbose log in a fresh process."""
    env = {**os.environ, "ONEDNN_VERBOSE": "1", "DNNL_VERBOSE": "1"}
    out = subprocess.run([sys.executable, "-c", CONV_PROBE.format(bf16=bf16)], env=env, capture_output=True,
                         text=True).stdout
    rows = [l.split(",") for l in out.splitlines() if ",exec," in l and "convolution" in l]
    return " | ".join(f"{r[5]} ({r[6]})" for r in rows[-1:]) or "no oneDNN convolution ran (ATen's own kernel)"


def alternate(fns: dict, repeats: int) -> dict:
    """Median seconds of each fn, calls interleaved so that machine load hits all alike."""
    times = {k: [] for k in fns}
    for f in fns.values():
        f()
    for _ in range(repeats):
        for k, f in fns.items():
            t = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def measure(preset: str, batch: int, train_batch: int, repeats: int) -> None:
    cfg = get_preset(preset)
    torch.manual_seed(0)
    model = build_model(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.rand(batch, 1, 28, 28)
    labels = torch.zeros(batch, dtype=torch.long)
    bf16 = lambda: torch.autocast("cpu", dtype=torch.bfloat16)

    def fwd(amp):
        with torch.no_grad(), (bf16() if amp else torch.autocast("cpu", enabled=False)):
            return model(x, labels)

    def step(amp):
        with bf16() if amp else torch.autocast("cpu", enabled=False):
            loss = dsm_loss(model, x[:train_batch], model.sigmas, generator=torch.Generator().manual_seed(0)).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    t = alternate({"fwd32": lambda: fwd(False), "fwd16": lambda: fwd(True),
                   "train32": lambda: step(False), "train16": lambda: step(True)}, repeats)
    err = ((fwd(True).float() - fwd(False)).norm() / fwd(False).norm()).item()
    print(f"{preset}: forward b{batch} fp32 {t['fwd32'] * 1e3:.0f} ms, bf16 {t['fwd16'] * 1e3:.0f} ms "
          f"({t['fwd32'] / t['fwd16']:.2f}x); train step b{train_batch} fp32 {t['train32']:.2f} s, bf16 "
          f"{t['train16']:.2f} s ({t['train32'] / t['train16']:.2f}x); bf16 output off by {err:.2%} (relative L2)")
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fwd(True)
    rows = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in rows)
    top = ", ".join(f"{e.key} {e.self_cpu_time_total / total:.0%}" for e in rows[:6])
    conv = sum(e.count for e in rows if e.key in ("aten::to", "aten::_to_copy"))
    print(f"  bf16 forward, self time: {top}; {conv} dtype conversions (aten::to) per forward")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--train-batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, ATen CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}; CPU bf16 instructions: {cpu_bf16_flags()}")
    print(f"oneDNN convolution kernel: fp32 {onednn_kernel(False)}; bf16 {onednn_kernel(True)}")
    for preset in ("mnist-cpu", "mnist-paper"):
        measure(preset, args.batch, args.train_batch, args.repeats)


if __name__ == "__main__":
    main()
