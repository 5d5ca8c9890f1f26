"""Before/after figures of the speed work, measured in one run: the same snippets run alternately in a checkout
of an earlier commit (by default the last one before the work) and in this working tree, each in a fresh
interpreter, so machine load hits both alike.

    .venv/bin/python benchmarks/before_after.py [--before 19fc7c0] [--rounds 3]

Prints a Markdown table (median of the rounds) and writes the raw figures to benchmarks/before_after.json.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BEFORE = "19fc7c0"  # main before the speed work (issue 9)

# Each snippet uses only APIs both versions have, and prints one JSON object.
SAMPLE = """
import json, time, torch
from ncsn_core.config import get_preset
from ncsn_core.models import build_model
from ncsn_core.sampling import annealed_langevin, drain
cfg = get_preset("mnist-cpu"); torch.manual_seed(0); m = build_model(cfg).eval()
run = lambda n: drain(annealed_langevin(m, m.sigmas[:1], (64, 1, 28, 28), 5e-5, n, init="gaussian", yield_every=10))
run(2); t = time.perf_counter(); run(20)
print(json.dumps({"value": (time.perf_counter() - t) / 20}))
"""
TRAIN = """
import json, resource, time, torch
from ncsn_core.config import get_preset
from ncsn_core.losses import dsm_loss
from ncsn_core.models import build_model
cfg = get_preset("{preset}"); torch.manual_seed(0); m = build_model(cfg)
opt = torch.optim.Adam(m.parameters(), lr=1e-3); x = torch.rand({batch}, 1, 28, 28)
rss = lambda: int(open("/proc/self/statm").read().split()[1]) * 4096 / 2 ** 20
def step():
    loss = dsm_loss(m, x, m.sigmas, generator=torch.Generator().manual_seed(0)).loss
    opt.zero_grad(); loss.backward(); opt.step()
before = rss(); step(); t = time.perf_counter(); step(); dt = time.perf_counter() - t
print(json.dumps({{"value": dt, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - before}}))
"""
LAUNCH = """
import json, sys, time
t0 = float(sys.argv[1])
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
app = QApplication([])
from studio.main_window import MainWindow
win = MainWindow(offer_resume=False); win.show()
QTimer.singleShot(0, lambda: (print(json.dumps({"value": time.time() - t0}), flush=True), app.quit()))
app.exec()
import os; os._exit(0)  # skip the shutdown: only the time to a shown window counts
"""
ROWS = [("compact Langevin step, batch 64 (s)", SAMPLE),
        ("compact training step, batch 64 (s)", TRAIN.format(preset="mnist-cpu", batch=64)),
        ("paper RefineNet training step, batch 128 (s)", TRAIN.format(preset="mnist-paper", batch=128)),
        ("studio launch to a shown window (s)", LAUNCH)]


def run_snippet(tree: Path, code: str, env: dict) -> dict:
    import time
    out = subprocess.run([sys.executable, "-c", code, str(time.time())], cwd=tree, capture_output=True, text=True,
                         env={**env, "PYTHONPATH": str(tree)}, timeout=900)
    if out.returncode != 0:
        raise RuntimeError(f"{tree}: {(out.stderr.strip().splitlines() or ['?'])[-1]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", default=BEFORE)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    env = {**os.environ, "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "offscreen")}
    with tempfile.TemporaryDirectory(prefix="ncsn-before-") as tmp:
        old = Path(tmp) / "before"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(old), args.before], check=True,
                       capture_output=True)
        try:
            env["XDG_CONFIG_HOME"] = str(Path(tmp) / "config")  # the studio's settings: not the user's
            results = {name: {"before": [], "after": []} for name, _ in ROWS}
            for r in range(args.rounds):
                for name, code in ROWS:
                    for which, tree in (("before", old), ("after", ROOT)):
                        results[name][which].append(run_snippet(tree, code, env))
                        print(f"round {r + 1}: {name} {which}: {results[name][which][-1]}", file=sys.stderr)
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)], capture_output=True)
    (ROOT / "benchmarks" / "before_after.json").write_text(json.dumps(results, indent=1))
    print(f"| measured in one run, median of {args.rounds} | before ({args.before}) | after | ratio |")
    print("|---|---|---|---|")
    for name, r in results.items():
        for key, label in (("value", name), ("peak_mb", name.replace("step", "step peak memory").replace("(s)", "(MB)"))):
            if key not in r["before"][0]:
                continue
            b = statistics.median(x[key] for x in r["before"])
            a = statistics.median(x[key] for x in r["after"])
            print(f"| {label} | {b:.3f} | {a:.3f} | {a / b:.2f}x |")


if __name__ == "__main__":
    main()
