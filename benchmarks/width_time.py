"""Training-step time of the compact network at several widths (the mnist-cpu recipe, batch 64), alternating in one
run, medians: how many more steps a narrower network gets in the same minutes.

    .venv/bin/python benchmarks/width_time.py
"""
import time, torch, sys
from ncsn_core.config import get_preset
from ncsn_core.losses import NoiseDraw, compute_loss
from ncsn_core.models import build_model
torch.set_num_threads(2)
widths = [(16, 48, 96), (16, 32, 64), (24, 64, 128), (32, 64, 128), (32, 96, 192)]
steps = {}
for w in widths:
    cfg = get_preset("mnist-cpu").override("model", channels=w); tc = cfg.train
    torch.manual_seed(0)
    m = build_model(cfg); m.train()
    opt = torch.optim.Adam(m.parameters(), lr=1e-5)
    draw = NoiseDraw(tc.sigma_sampling, tc.lognormal_mean, tc.lognormal_std)
    x = torch.rand(64, 1, 28, 28)
    def step(m=m, opt=opt, draw=draw, tc=tc):
        res = compute_loss(tc.loss, m, x, m.sigmas, tc.anneal_power, 1, draw=draw, weighting=tc.weighting,
                           generator=torch.Generator().manual_seed(0))
        opt.zero_grad(); res.loss.backward(); opt.step()
    steps[w] = (step, sum(p.numel() for p in m.parameters()))
ts = {w: [] for w in widths}
for r in range(10):
    for w, (step, _) in steps.items():
        step(); t0 = time.perf_counter(); step(); ts[w].append(time.perf_counter() - t0)
base = sorted(ts[widths[0]])[5]
for w in widths:
    med = sorted(ts[w])[5]
    print(f"channels {w}: {steps[w][1]:,} params, {med*1e3:.0f} ms/step (b64), {med/base:.2f}x the preset's")
