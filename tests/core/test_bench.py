"""`ncsn bench`: its workloads measure what they say (on tiny batches; the figures themselves are benchmarks,
never asserted here), the eager baseline computes the same function, and bad input is one line."""
import json

import torch

from ncsn_core import bench
from ncsn_core.cli import main
from ncsn_core.config import get_preset
from ncsn_core.models import build_model


def test_train_workload_counts_forward_and_backward_flops():
    train = bench.train_workload("mnist-cpu", 4, "cpu", repeats=1)
    sample = bench.sample_workload("mnist-cpu", 4, "cpu", budget_s=0.05)
    assert train["images_per_s"] > 0 and train["peak_mem_mb"] >= 0 and len(train["step_s_all"]) == 1
    assert sample["image_steps_per_s"] > 0 and sample["n_steps_timed"] >= 2
    # a training step costs a forward and a backward (about twice the forward): 3x the sampler's forward
    assert 2.5 < train["gflop_per_image"] / sample["gflop_per_image"] < 3.2
    assert abs(sample["gflop_per_image"] - 0.0565) < 0.005  # the preset's compact model (16/32/64): 0.0565 GFLOP
    # the mnist-cpu preset: Heun over 12 sigmas (2 * 12 - 1 evaluations), each also running the guide (w = 1.5), but
    # the 9 evaluations above sigma 1.5 are the training digits' exact score: 14 of the network and 14 of the guide
    assert sample["sampler_steps_64"] == 2 * (2 * 12 - 1 - 9) and sample["exact_evaluations_64"] == 9


def test_eager_baseline_computes_the_same_function():
    cfg = get_preset("mnist-paper").override("model", ngf=8)
    mod = bench.baseline_module()
    torch.manual_seed(0)
    model = build_model(cfg)
    torch.manual_seed(0)
    baseline = mod.build_baseline(cfg)
    x, labels = torch.rand(2, 1, 28, 28), torch.tensor([0, 9])
    with torch.no_grad(), mod.out_of_place_elu():
        torch.testing.assert_close(model(x, labels), baseline(x, labels), rtol=1e-4, atol=1e-4)


def test_isolated_workload_runs_in_a_subprocess():
    r = bench._isolated("sample", preset="mnist-cpu", batch=2, device="cpu", budget_s=0.05)
    assert r["batch"] == 2 and r["image_steps_per_s"] > 0
    assert "error" in bench._isolated("sample", preset="no-such-preset", batch=2, device="cpu", budget_s=0.05)


def test_report_formats_every_row():
    res = {"device": "cpu", "quick": True, "date": "2026-11-23", "machine": bench.machine(), "matmul_gflops": 100.0,
           "train": {"compact": bench.train_workload("mnist-cpu", 2, "cpu", repeats=1)}}
    bench._fraction(res["train"]["compact"], 100.0)
    text = bench.format_report(res)
    assert "compact" in text and "of matmul" in text
    json.dumps(res)  # the --json object is plain data


def test_unknown_section_is_one_line(capsys):
    assert main(["bench", "--sections", "train,warp"]) == 2
    assert "unknown warp" in capsys.readouterr().err


def test_rounds_merge_to_the_median_step_and_the_largest_peak():
    rounds = [{"batch": 4, "gflop_per_image": 1.0, "step_s_all": [t], "peak_mem_mb": m, "preset": "x"}
              for t, m in ((2.0, 10.0), (1.0, 30.0), (4.0, 20.0))]
    r = bench._merge_rounds(rounds)
    assert r["step_s"] == 2.0 and r["images_per_s"] == 2.0 and r["peak_mem_mb"] == 30.0
    assert bench._merge_rounds(rounds + [{"error": "boom"}]) == {"error": "boom"}


def test_bf16_rows_only_where_the_hardware_makes_bf16_pay(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr("ncsn_core.precision.cpu_flags", lambda: {"avx2", "avx512f", "avx512_bf16"})
    assert bench.amp_modes(cpu) == [False]
    monkeypatch.setattr("ncsn_core.precision.cpu_flags", lambda: {"avx512f", "amx_tile", "amx_bf16"})
    assert bench.amp_modes(cpu) == [False, True]
    r = bench.train_workload("mnist-cpu", 2, "cpu", repeats=1, amp=True)  # the row itself: a bf16 step that runs
    assert r["images_per_s"] > 0


def test_report_shows_a_bf16_row_measured_at_one_batch_only():
    row = bench.sample_workload("mnist-cpu", 2, "cpu", budget_s=0.05)
    res = {"device": "cpu", "quick": True, "date": "2026-12-06", "machine": bench.machine(), "matmul_gflops": 100.0,
           "sample": {"compact": {"b64": row, "b256": row}, "compact_bf16": {"b64": row}}}
    text = bench.format_report(res)
    assert "compact_bf16" in text and text.count("compact ") + text.count("compact_bf16 ") >= 3
