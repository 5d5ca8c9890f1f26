"""Where the FID's seed-to-seed spread comes from, the samples' draw or the real reference digits' draw: a model's
default sampler, n=1000, FID (classifier features) of sample seeds 0..2 against reference draws 0..4 (those of
`ncsn eval --seed 0`) and against all 9,000 training digits; the real-vs-real floor's draws; the 1,000 held-out digits
against the same references. About 4 minutes on one thread.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/fid_noise.py [CHECKPOINT]   (default: the built-in model)
"""
import sys

import torch

from ncsn_core import metrics as M
from ncsn_core.checkpoint import load_checkpoint
from ncsn_core.evaluate import EVAL_HOLDOUT, builtin_model_path, reference_draws, sample_batches

ckpt = sys.argv[1] if len(sys.argv) > 1 else str(builtin_model_path())
ld = load_checkpoint(ckpt, use_ema=True)
net = M.load_classifier()
images, _ = M.load_builtin_mnist()
n_train = len(images) - EVAL_HOLDOUT
f_all = M.features(images[:n_train], net)
n = 1000
refs = [M.features(ref, net) for ref in reference_draws(images[:n_train], n, seed=0)]  # those of ncsn eval --seed 0
for s in (0, 1, 2):
    x = sample_batches(ld.model, ld.config.sample, (1, 28, 28), n, s, torch.device("cpu"), 250).clamp(0, 1)
    f = M.features(x, net)
    row = [M.frechet_distance(f, fr) for fr in refs]
    print(f"samples seed {s}: vs ref draws 0..4 " + " ".join(f"{v:6.1f}" for v in row)
          + f" | vs all {n_train}: {M.frechet_distance(f, f_all):6.1f}", flush=True)
rvr = [M.fid_real_vs_real(n, r, net) for r in range(5)]
print("real-vs-real draws 0..4: " + " ".join(f"{v:6.1f}" for v in rvr))
held = M.features(images[-n:], net)
print("1000 held-out reals vs ref draws 0..4: " + " ".join(f"{M.frechet_distance(held, fr):6.1f}" for fr in refs)
      + f" | vs all {n_train}: {M.frechet_distance(held, f_all):6.1f}")
