"""Time to digits: the wall time of a cold `ncsn sample --n 64` (a fresh process: Python and torch start-up, model
load, sampling, writing the file) with the model's own sampler defaults, and what the digit classifier makes of
those 64 samples (classes present, mean confidence, share below 0.9).

    .venv/bin/python benchmarks/time_to_digits.py [--checkpoint PATH] [--runs 3]

Prints one line per run and a JSON summary (median wall time).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", help="default: the built-in model")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    ncsn = Path(sys.executable).with_name("ncsn")
    rows = []
    for k in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "s.npy"
            cmd = [str(ncsn), "sample", "--n", "64", "--seed", str(args.seed + k), "--out", str(out), "--quiet"]
            if args.checkpoint:
                cmd += ["--checkpoint", args.checkpoint]
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            wall = time.perf_counter() - t0
            x = np.load(out)
        from ncsn_core import metrics as M
        labels, conf = M.classify(np.clip(x, 0, 1))
        row = {"seed": args.seed + k, "wall_s": round(wall, 2), "classes_present": int(len(set(labels.tolist()))),
               "mean_confidence": round(float(conf.mean()), 4),
               "share_confidence_below_0.9": round(float((conf < 0.9).mean()), 4)}
        print(row, flush=True)
        rows.append(row)
    print(json.dumps({"median_wall_s": statistics.median(r["wall_s"] for r in rows), "runs": rows}))


if __name__ == "__main__":
    main()
