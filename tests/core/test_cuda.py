"""The CUDA paths: train (fp32 and bf16), sample, inpaint and bf16 autocast on a GPU, and a GPU checkpoint loaded
onto the CPU. Skipped where no GPU is present (CI); run on a GPU machine with `python -m pytest tests/core/test_cuda.py`."""
import pytest
import torch

from ncsn_core.checkpoint import load_checkpoint
from ncsn_core.models import build_model
from ncsn_core.sampling import annealed_langevin, drain, inpaint
from ncsn_core.training import run_to_end, train

from test_pipeline import tiny_cfg  # tests/core is on sys.path (pytest rootdir-relative imports)

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@pytest.fixture(scope="module")
def cuda_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("cuda") / "run"
    fin = run_to_end(train(tiny_cfg(n_iters=4), run, device="cuda"))
    assert fin.reason == "done"
    return fin


def test_cuda_training_writes_a_checkpoint_that_loads_on_the_cpu(cuda_run):
    on_cpu = load_checkpoint(cuda_run.checkpoint, device="cpu")
    on_gpu = load_checkpoint(cuda_run.checkpoint, device="cuda")
    assert next(on_cpu.model.parameters()).device.type == "cpu"
    x, labels = torch.rand(4, 1, 28, 28), torch.tensor([0, 1, 2, 0])
    with torch.no_grad():
        a = on_cpu.model(x, labels)
        b = on_gpu.model(x.cuda(), labels.cuda()).cpu()
    torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-3 * a.abs().max().item())


def test_cuda_sample_and_inpaint(cuda_run):
    ld = load_checkpoint(cuda_run.checkpoint, device="cuda")
    m, sig = ld.model, ld.model.sigmas
    x = drain(annealed_langevin(m, sig, (4, 1, 28, 28), 5e-5, 2, seed=0, init="data-mean", device="cuda",
                                init_mean=m.data_mean, denoise=True))
    assert x.device.type == "cuda" and x.shape == (4, 1, 28, 28) and torch.isfinite(x).all()
    image = torch.rand(2, 1, 28, 28, device="cuda")
    mask = torch.zeros(1, 1, 28, 28, device="cuda")
    mask[..., :14, :] = 1
    y = drain(inpaint(m, sig, image, mask, 5e-5, 2, seed=0, denoise=True))
    assert torch.equal(y[..., :14, :], image[..., :14, :])  # known pixels are the image after denoising


@pytest.mark.parametrize("arch,extra", [("refinenet", {"ngf": 16}), ("compact", {})])
def test_bf16_autocast_stays_close_to_fp32(arch, extra):
    torch.manual_seed(0)
    cfg = tiny_cfg().override("model", arch=arch, **extra)
    model = build_model(cfg).cuda().eval()
    x, labels = torch.rand(8, 1, 28, 28, device="cuda"), torch.arange(8, device="cuda") % 3
    with torch.no_grad():
        ref = model(x, labels)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            low = model(x, labels).float()
    rel = (low - ref).norm() / ref.norm()
    assert rel < 0.05, f"bf16 autocast output differs from fp32 by {rel:.3f} (relative L2)"


def test_cuda_bf16_training_keeps_fp32_weights(tmp_path):
    fin = run_to_end(train(tiny_cfg(n_iters=3, precision="bf16"), tmp_path / "run", device="cuda"))
    assert fin.reason == "done"
    ld = load_checkpoint(fin.checkpoint, device="cpu")
    assert ld.config.train.precision == "bf16"
    assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in ld.model.parameters())
