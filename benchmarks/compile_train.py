"""torch.compile (inductor, CPU) on the compact model's whole training step (loss, backward, Adam) against eager,
alternating, medians; prints the compile time of the first step too.

    .venv/bin/python benchmarks/compile_train.py
"""
import time, torch, sys
from ncsn_core.config import get_preset
from ncsn_core.losses import NoiseDraw, compute_loss
from ncsn_core.models import build_model
torch.set_num_threads(2)
cfg = get_preset("mnist-cpu"); tc = cfg.train
torch.manual_seed(0)
m_e = build_model(cfg); m_e.train()
torch.manual_seed(0)
m_c = build_model(cfg); m_c.train()
m_c.load_state_dict(m_e.state_dict())
t0 = time.perf_counter()
mc = torch.compile(m_c)
x = torch.rand(64, 1, 28, 28)
draw = NoiseDraw(tc.sigma_sampling, tc.lognormal_mean, tc.lognormal_std)
def mk(model, params):
    opt = torch.optim.Adam(params, lr=1e-5)
    def step():
        res = compute_loss(tc.loss, model, x, m_e.sigmas, tc.anneal_power, 1, draw=draw, weighting=tc.weighting,
                           generator=torch.Generator().manual_seed(0))
        opt.zero_grad(); res.loss.backward(); opt.step()
        return res.loss.item()
    return step
se = mk(m_e, m_e.parameters()); sc = mk(mc, m_c.parameters())
l = sc(); print("first compiled step", time.perf_counter()-t0, "s", l, se(), flush=True)
t0 = time.perf_counter(); sc(); print("second", time.perf_counter()-t0, flush=True)
te, tcm = [], []
for r in range(15):
    t0=time.perf_counter(); se(); te.append(time.perf_counter()-t0)
    t0=time.perf_counter(); sc(); tcm.append(time.perf_counter()-t0)
me, mcm = sorted(te)[7], sorted(tcm)[7]
print(f"eager {me*1e3:.1f} ms compiled {mcm*1e3:.1f} ms ratio {me/mcm:.2f}")
