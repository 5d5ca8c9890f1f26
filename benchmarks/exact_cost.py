"""What the exact large-sigma score (SampleConfig.exact_above, ncsn_core.empirical) costs beside the network it
replaces: one evaluation of each on a batch of 250 (the batch of `ncsn eval`), the built-in model's 9,000 training
digits, two threads; medians of 5 after a warm-up, two rounds.

    .venv/bin/python benchmarks/exact_cost.py
"""
import time, torch
from ncsn_core.checkpoint import load_checkpoint
from ncsn_core.evaluate import builtin_model_path
from ncsn_core.empirical import exact_score, training_images
torch.set_num_threads(2)
ld = load_checkpoint(builtin_model_path())
imgs = training_images(ld.config.data); sq = (imgs * imgs).sum(1)
x = torch.randn(250, 1, 28, 28) * 3 + 0.5
sig = torch.full((250,), 3.0)
def t(f, k=5):
    f(); ts=[]
    for _ in range(k):
        a=time.perf_counter(); f(); ts.append(time.perf_counter()-a)
    return sorted(ts)[k//2]
with torch.no_grad():
    for r in range(2):
        te = t(lambda: exact_score(x, sig, imgs, sq))
        tn = t(lambda: ld.model(x, sig))
        print(f"batch 250: exact score {te*1000:.1f} ms, one network evaluation {tn*1000:.1f} ms, ratio {te/tn:.2f}")
