"""Mixed precision: bf16 autocast for training, and whether this device has the hardware that makes it pay.
Imports torch only inside the functions that need it: the studio asks `cpu_has_bf16` at start-up."""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Optional

# the CPU feature with which oneDNN runs bf16 convolutions faster than fp32 here: AMX tiles (measured 1.92x for the
# paper RefineNet's training step at batch 128, docs/bench/bench-cpu-2026-12-06-amx.json). AVX-512 BF16 alone was not
# enough: on such a CPU bf16 autocast made the compact model's forward 5 to 16x slower (issue 9), conversions around
# fp32 kernels
CPU_BF16_FLAGS = ("amx_bf16",)


def autocast(device, precision: str):
    """The context the loss is computed in (device: a torch.device): autocast to bfloat16 for 'bf16', nothing for
    'fp32'."""
    if precision == "fp32":
        return contextlib.nullcontext()
    import torch
    return torch.autocast(device.type, dtype=torch.bfloat16)


def cpu_flags() -> set:
    try:
        line = next(l for l in Path("/proc/cpuinfo").read_text().splitlines() if l.startswith("flags"))
    except (OSError, StopIteration):
        return set()
    return set(line.split(":", 1)[1].split())


def cpu_has_bf16() -> bool:
    return bool(cpu_flags() & set(CPU_BF16_FLAGS))


def bf16_unsupported(device) -> Optional[str]:
    """None where bf16 runs on fast hardware here, else why it will not pay (a CPU without AMX, a GPU before
    Ampere); the run still works, only slower than fp32."""
    if device.type == "cuda":
        import torch
        ok = torch.cuda.is_bf16_supported(including_emulation=False)
        return None if ok else f"{torch.cuda.get_device_name(device)} has no native bf16 (Ampere or newer has)"
    if device.type == "cpu":
        if cpu_has_bf16():
            return None
        return ("this CPU has no AMX, and without it bf16 runs slower than fp32 (benchmarks/bf16_cpu.py measures "
                "it)")
    return None


def slow_precision(precision: str, device) -> Optional[str]:
    """The warning, without its prefix, when `precision` runs slower than fp32 on `device`; None when it does not."""
    why = bf16_unsupported(device) if precision == "bf16" else None
    return f"precision bf16: {why}; precision fp32 is faster" if why else None


def warn_if_slow(precision: str, device) -> None:
    """The command line's warning (stderr) when bf16 is asked for where it runs slower than fp32."""
    import sys
    note = slow_precision(precision, device)
    if note:
        print(f"ncsn: warning: {note}", file=sys.stderr)
