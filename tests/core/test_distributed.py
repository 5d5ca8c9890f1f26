"""Training on several processes (torchrun + DDP): the same run as one process, one writer, resume across world
sizes, a stop decided by rank 0, and a restart after a killed rank."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ncsn_core.checkpoint import read_state
from ncsn_core.cli import main
from ncsn_core.config import DataConfig, get_preset
from ncsn_core.data import TensorImageSet, preprocess
from ncsn_core.distributed import World, rank_slice
from ncsn_core.losses import NoiseDraw, compute_loss
from ncsn_core.models import build_model
from ncsn_core.training import batch_indices, global_batch, step_generator

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--preset", "mnist-cpu-levels", "--set", "model.channels=[4,6,8]", "--set", "noise.num_classes=3",
        "--set", "data.holdout=9800", "--batch-size", "8", "--preview-every", "0", "--log-every", "1",
        "--keep-last", "0", "--quiet"]


# --- the math of the split, in one process ----------------------------------------------------------
@pytest.mark.parametrize("loss, draw", [("dsm", NoiseDraw()), ("dsm", NoiseDraw("log-normal")),
                                        ("ssm_vr", NoiseDraw("log-uniform"))])
def test_rank_rows_of_the_global_batch_rebuild_the_one_process_step(loss, draw):
    """Two ranks' rows, each drawn as one process draws the global batch, give the same per-example losses, and
    the mean of their gradients (what DDP averages) is the 1-process gradient."""
    preset = "mnist-cpu-levels" if draw.kind == "levels" else "mnist-cpu"  # continuous draws: sigma conditioning
    cfg = get_preset(preset).override("model", channels=(4, 6, 8)).override("noise", num_classes=3)
    data_cfg = DataConfig(random_flip=True)  # dequantisation and flips: both draw noise in preprocess
    data = TensorImageSet(torch.randint(0, 256, (50, 1, 28, 28), dtype=torch.uint8))
    model = build_model(cfg)
    idx = batch_indices(3, 8, len(data), seed=5)

    def step(part):
        g = step_generator(5, 3, "cpu")
        x = preprocess(global_batch(data, idx, part), data_cfg, g)
        model.zero_grad()
        res = compute_loss(loss, model, x, model.sigmas, generator=g, draw=draw, part=part)
        res.loss.backward()
        return res, [p.grad.clone() for p in model.parameters()]

    full, g_full = step(None)
    ranks = [step(rank_slice(8, World(r, 2))) for r in range(2)]
    assert torch.equal(torch.cat([r.labels for r, _ in ranks]), full.labels)
    assert torch.allclose(torch.cat([r.per_example for r, _ in ranks]), full.per_example, rtol=1e-5)
    assert torch.allclose((ranks[0][0].loss + ranks[1][0].loss) / 2, full.loss, rtol=1e-6)
    for k, gf in enumerate(g_full):  # float32 sums in another order
        assert _close((ranks[0][1][k] + ranks[1][1][k]) / 2, gf, 1e-4), k


def test_torchrun_bad_input_is_one_clear_line(tmp_path, monkeypatch, capsys):
    for k, v in {"WORLD_SIZE": "3", "RANK": "0", "LOCAL_RANK": "0", "MASTER_ADDR": "localhost"}.items():
        monkeypatch.setenv(k, v)
    assert main(["train", *TINY, "--run-dir", str(tmp_path / "r")]) == 2
    assert "batch size 8 does not divide among 3 processes" in capsys.readouterr().err
    assert main(["train", *TINY]) == 2
    assert "under torchrun give --run-dir" in capsys.readouterr().err


# --- real torchrun on the CPU (gloo) -----------------------------------------------------------------
def _torchrun_cmd(args, nproc=2, max_restarts=0):
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc),
            "--max-restarts", str(max_restarts), "--monitor-interval", "0.1", "-m", "ncsn_core.cli", "train", *args]


def _env():
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR")}
    return {**env, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def _torchrun(args, **kw):
    r = subprocess.run(_torchrun_cmd(args, **kw), cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def _rows(run):
    return [json.loads(l) for l in (Path(run) / "metrics.jsonl").read_text().splitlines()]


def _steps(run):
    return sorted(int(p.stem.split("_")[1]) for p in (Path(run) / "checkpoints").glob("ckpt_*.pt"))


def _close(a, b, tol):
    """Equal within float32 noise relative to the tensor's scale (small entries carry the large ones' errors)."""
    return (a - b).abs().max() <= tol * a.abs().max().clamp_min(1e-12)


def _assert_same_state(a_file, b_file):
    """Weights, EMA and Adam state of two checkpoints equal within float tolerance."""
    a, b = read_state(a_file), read_state(b_file)
    assert a["step"] == b["step"]
    for part in ("model", "ema"):
        for k in a[part]:
            assert _close(a[part][k].float(), b[part][k].float(), 1e-4), (part, k)
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    for i in sa:
        for k in ("exp_avg", "exp_avg_sq"):
            assert _close(sa[i][k], sb[i][k], 1e-3), (i, k)


def _assert_same_losses(rows, ref_rows):
    ref = {r["step"]: r["loss"] for r in ref_rows}
    for r in rows:
        assert r["loss"] == pytest.approx(ref[r["step"]], rel=1e-5), r["step"]


@pytest.mark.torchrun
def test_two_processes_train_as_one_and_resume_across_world_sizes(tmp_path):
    ref = tmp_path / "one"
    assert main(["train", *TINY, "--run-dir", str(ref), "--n-iters", "7", "--save-every", "2"]) == 0

    # 2 processes, steps 1-4: one writer (no duplicated rows, one set of checkpoints), the 1-process losses
    run = tmp_path / "two"
    _torchrun([*TINY, "--run-dir", str(run), "--n-iters", "4", "--save-every", "2"])
    rows = _rows(run)
    assert [r["step"] for r in rows] == [1, 2, 3, 4] and {r["world_size"] for r in rows} == {2}
    assert _steps(run) == [2, 4] and read_state(run)["extra"]["world_size"] == 2
    _assert_same_losses(rows, _rows(ref))
    _assert_same_state(run / "checkpoints" / "ckpt_00000004.pt", ref / "checkpoints" / "ckpt_00000004.pt")

    # resumed by 1 process to step 6, then by 2 processes whose rank 0 stops at once (--minutes 0): all ranks
    # stop at step 7 and the continuation is still the 1-process run's
    assert main(["train", "--resume", str(run), "--n-iters", "6", "--keep-last", "0", "--quiet"]) == 0
    _torchrun(["--resume", str(run), "--n-iters", "9", "--minutes", "0", "--keep-last", "0", "--quiet"])
    rows = _rows(run)
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6, 7]
    assert [r["world_size"] for r in rows] == [2, 2, 2, 2, 1, 1, 2]
    assert _steps(run) == [2, 4, 6, 7]
    _assert_same_losses(rows, _rows(ref))
    _assert_same_state(run / "checkpoints" / "ckpt_00000007.pt", ref / "checkpoints" / "ckpt_00000007.pt")


def _children(pid):
    out = []
    for d in Path("/proc").iterdir():
        try:
            if d.name.isdigit() and int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(d.name))
        except (OSError, ValueError, IndexError):
            continue
    return out


def _rank_of(pid):
    try:
        env = (Path("/proc") / str(pid) / "environ").read_bytes().split(b"\0")
    except OSError:
        return None
    ranks = [e.split(b"=", 1)[1] for e in env if e.startswith(b"RANK=")]
    return int(ranks[0]) if ranks else None


@pytest.mark.torchrun
def test_killed_rank_restarts_from_the_newest_checkpoint(tmp_path):
    n = 40
    ref = tmp_path / "one"
    assert main(["train", *TINY, "--run-dir", str(ref), "--n-iters", str(n), "--save-every", "2"]) == 0
    run = tmp_path / "two"
    proc = subprocess.Popen(_torchrun_cmd([*TINY, "--run-dir", str(run), "--n-iters", str(n), "--save-every", "2"],
                                          max_restarts=1), cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        _wait_for(run / "checkpoints" / "ckpt_00000002.pt", proc)
        rank1 = [p for p in _children(proc.pid) if _rank_of(p) == 1]
        assert rank1, "no rank-1 worker found"
        os.kill(rank1[0], signal.SIGKILL)  # fails (ProcessLookupError) if the run had already ended
        log, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, log[-3000:]
    rows = _rows(run)
    assert [r["step"] for r in rows] == list(range(1, n + 1))  # rows past the checkpoint were dropped
    assert read_state(run)["step"] == n
    _assert_same_losses(rows, _rows(ref))
    _assert_same_state(run / "checkpoints" / f"ckpt_{n:08d}.pt", ref / "checkpoints" / f"ckpt_{n:08d}.pt")


def _wait_for(path, proc, timeout=120):
    deadline = time.time() + timeout
    while not path.exists():
        assert proc.poll() is None and time.time() < deadline, f"the run ended or stalled before {path.name}"
        time.sleep(0.02)


@pytest.mark.torchrun
def test_ctrl_c_stops_every_rank_at_rank_0s_step_with_a_checkpoint(tmp_path):
    """Ctrl-C in a terminal reaches torchrun and every worker (one process group): rank 0 alone decides, every
    rank stops at that step, and the run folder ends with that step's checkpoint and metrics."""
    run = tmp_path / "two"
    proc = subprocess.Popen(_torchrun_cmd([*TINY, "--run-dir", str(run), "--n-iters", "100000", "--save-every", "2"]),
                            cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        _wait_for(run / "checkpoints" / "ckpt_00000002.pt", proc)
        os.killpg(proc.pid, signal.SIGINT)
        log, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert "stopped at step" in log, log[-3000:]
    last = read_state(run)
    rows = _rows(run)
    assert [r["step"] for r in rows] == list(range(1, last["step"] + 1)) and 2 <= last["step"] < 100000
