"""Training pipeline, checkpoints and the CLI: end to end, resume, failure paths."""
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ncsn_core.checkpoint import CheckpointError, latest_checkpoint, load_checkpoint, read_state, save_checkpoint
from ncsn_core.cli import main
from ncsn_core.config import Config, get_preset
from ncsn_core.data import TensorImageSet
from ncsn_core.export import make_grid, read_png_meta, save_grid
from ncsn_core.models import build_model
from ncsn_core.training import CheckpointSaved, Finished, Paused, Preview, TrainStep, run_to_end, train


def tiny_cfg(n_iters=6, **train_kw) -> Config:
    cfg = get_preset("mnist-cpu-levels").override("model", channels=(4, 6, 8)).override("noise", num_classes=3)
    cfg = cfg.override("data", holdout=9800)  # 200 training digits
    kw = dict(n_iters=n_iters, batch_size=8, save_every=3, preview_every=0, log_every=1, ema_rate=0.9)
    kw.update(train_kw)
    return cfg.override("train", **kw).override("sample", n_steps_each=2)


def test_training_events_checkpoints_and_metrics(tmp_path):
    cfg = tiny_cfg(n_iters=4, preview_every=2, n_preview=4)
    events = list(train(cfg, tmp_path / "run"))
    kinds = [type(e).__name__ for e in events]
    assert kinds.count("TrainStep") == 4 and kinds.count("Preview") == 2 and kinds[-1] == "Finished"
    steps = [e for e in events if isinstance(e, TrainStep)]
    assert [s.step for s in steps] == [1, 2, 3, 4]
    assert all(np.isfinite(s.loss) and len(s.loss_per_sigma) == 3 for s in steps)
    prev = [e for e in events if isinstance(e, Preview)][0]
    assert prev.images.shape == (4, 1, 28, 28) and 0 <= prev.images.min() and prev.images.max() <= 1
    assert events[-1].reason == "done" and Path(events[-1].checkpoint).exists()
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(l)["step"] for l in lines] == [1, 2, 3, 4]
    cfg_back = Config.from_dict(json.loads((tmp_path / "run" / "config.json").read_text()))
    assert cfg_back == cfg


@pytest.mark.parametrize("dropout", [0.0, 0.3])  # dropout's masks come from the checkpointed RNG state too
def test_resume_equals_uninterrupted(tmp_path, dropout):
    cfg = tiny_cfg(n_iters=6).override("model", dropout=dropout)
    run_to_end(train(cfg, tmp_path / "a"))
    # interrupted: stop after step 3's checkpoint, then resume from the folder
    gen = train(cfg, tmp_path / "b")
    for ev in gen:
        if isinstance(ev, CheckpointSaved) and ev.step == 3:
            break
    gen.close()
    assert read_state(tmp_path / "b")["step"] == 3
    fin = run_to_end(train(cfg, tmp_path / "b", resume=True))
    assert fin.step == 6
    a, b = read_state(tmp_path / "a"), read_state(tmp_path / "b")
    for k in a["model"]:
        assert torch.allclose(a["model"][k], b["model"][k], atol=1e-6), k
    for k in a["ema"]:
        assert torch.allclose(a["ema"][k], b["ema"][k], atol=1e-6), k
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    assert all(torch.allclose(sa[i]["exp_avg_sq"], sb[i]["exp_avg_sq"], atol=1e-7) for i in sa)
    steps_b = [json.loads(l)["step"] for l in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert steps_b == [1, 2, 3, 4, 5, 6]


def test_stop_pause_and_save_commands(tmp_path):
    gen = train(tiny_cfg(n_iters=50, save_every=100), tmp_path / "r")
    assert isinstance(next(gen), TrainStep)
    ev = gen.send("pause")
    assert isinstance(ev, CheckpointSaved) and ev.step == 1
    assert isinstance(next(gen), Paused)
    assert isinstance(next(gen), TrainStep)  # resumed
    ev = gen.send("save")
    assert isinstance(ev, CheckpointSaved) and ev.step == 2
    assert isinstance(next(gen), TrainStep)
    ev = gen.send("stop")
    assert isinstance(ev, CheckpointSaved) and ev.step == 3
    fin = next(gen)
    assert isinstance(fin, Finished) and fin.reason == "stopped" and fin.step == 3


def test_nan_guard_names_step_and_level_and_keeps_last_good_checkpoint(tmp_path):
    images = torch.randint(0, 255, (16, 1, 28, 28), dtype=torch.uint8)

    class Poisoned(TensorImageSet):
        def get_batch(self, idx):
            x = super().get_batch(idx)
            if self.calls >= 4:  # steps 1-4 clean (checkpoint at 3), step 5 poisoned
                x[0, 0, 0, 0] = float("nan")
            self.calls += 1
            return x
    data = Poisoned(images)
    data.calls = -1  # train() first reads the set once for its mean image
    cfg = tiny_cfg(n_iters=10)
    fin = run_to_end(train(cfg, tmp_path / "r", dataset=data))
    assert fin.reason == "diverged"
    assert "step 5" in fin.message and "noise level" in fin.message and "sigma" in fin.message
    good = latest_checkpoint(tmp_path / "r")
    assert good.name == "ckpt_00000003.pt" and fin.checkpoint == str(good)
    ld = load_checkpoint(good)
    assert all(torch.isfinite(p).all() for p in ld.model.parameters())


def test_bad_checkpoints_give_clear_errors(tmp_path):
    cfg = tiny_cfg()
    model = build_model(cfg)
    good = save_checkpoint(tmp_path / "good.pt", cfg, 7, model)
    assert load_checkpoint(good).step == 7
    # truncated
    trunc = tmp_path / "trunc.pt"
    trunc.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated or damaged"):
        load_checkpoint(trunc)
    # another architecture: the config says compact, the weights are a RefineNet's
    other = build_model(get_preset("mnist-paper").override("model", ngf=4).override("noise", num_classes=3))
    state = torch.load(good, weights_only=True)
    state["model"] = other.state_dict()
    torch.save(state, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="do not fit the compact architecture"):
        load_checkpoint(tmp_path / "other.pt")
    # a pickle with code in it: refused, and the code never runs
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))
    torch.save({"format_version": 1, "model": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="refused, nothing was executed"):
        load_checkpoint(tmp_path / "evil.pt")
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "notckpt.pt").write_bytes(b"hello")
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "notckpt.pt")


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    cfg = tiny_cfg()
    model = build_model(cfg)
    path = save_checkpoint(tmp_path / "c.pt", cfg, 1, model)
    before = path.read_bytes()

    def full_disk(*a, **k):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OSError):
        save_checkpoint(path, cfg, 2, model)
    assert path.read_bytes() == before and load_checkpoint(path).step == 1
    assert list(tmp_path.iterdir()) == [path]  # no temp file left behind


def test_make_grid_follows_torchvision():
    tv = pytest.importorskip("torchvision.utils")
    x = torch.rand(5, 1, 6, 6)
    assert torch.allclose(make_grid(x, nrow=3), tv.make_grid(x, nrow=3, padding=2))


def test_grid_png_carries_config_and_seed(tmp_path):
    p = save_grid(torch.rand(4, 1, 8, 8), tmp_path / "g.png", nrow=2, meta={"seed": 3, "config": {"a": 1}})
    meta = read_png_meta(p)
    assert meta["seed"] == 3 and meta["config"] == {"a": 1}


def _write_png(path, arr):
    Image.fromarray(arr).save(path)
    return str(path)


def test_cli_end_to_end_train_sample_inpaint_info(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--preset", "mnist-cpu-levels", "--run-dir", str(run), "--n-iters", "4", "--save-every", "2",
                 "--batch-size", "8", "--preview-every", "2", "--json", "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["step"] == 4 and out["reason"] == "done" and Path(out["checkpoint"]).exists()
    assert list((run / "samples").glob("preview_*.png"))
    # sample: grid PNG, npy, level strip and GIF
    assert main(["sample", "--checkpoint", str(run), "--n", "4", "--n-steps-each", "2", "--out",
                 str(tmp_path / "s.png"), "--level-strip", str(tmp_path / "strip.png"), "--gif", str(tmp_path / "c.gif"),
                 "--json", "--quiet"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["step"] == 4 and res["n_steps_each"] == 2 and res["variance_correction"] == 0.5  # the preset's
    with Image.open(tmp_path / "s.png") as im:
        assert im.size == (2 * 30 + 2, 2 * 30 + 2)
    with Image.open(tmp_path / "c.gif") as im:
        assert im.n_frames > 2
    with Image.open(tmp_path / "strip.png") as im:
        assert im.size[0] == 10 * 30 + 2  # one column per noise level
    assert read_png_meta(tmp_path / "s.png")["seed"] == 0
    assert main(["sample", "--checkpoint", str(run), "--n", "3", "--n-steps-each", "1", "--out",
                 str(tmp_path / "s.npy"), "--quiet"]) == 0
    arr = np.load(tmp_path / "s.npy")
    assert arr.shape == (3, 1, 28, 28) and arr.dtype == np.float32 and 0 <= arr.min() and arr.max() <= 1
    capsys.readouterr()
    # inpaint: a 56x56 image and mask are resized to 28x28, and it says so
    img = _write_png(tmp_path / "img.png", (np.random.default_rng(0).random((56, 56)) * 255).astype(np.uint8))
    mask = np.zeros((56, 56), np.uint8)
    mask[:28] = 255
    mpath = _write_png(tmp_path / "mask.png", mask)
    assert main(["inpaint", "--checkpoint", str(run), "--image", img, "--mask", mpath, "--n", "2",
                 "--n-steps-each", "1", "--out", str(tmp_path / "inp.png"), "--quiet"]) == 0
    assert "resized the 56x56 image" in capsys.readouterr().err
    with Image.open(tmp_path / "inp.png") as im:
        assert im.size == (4 * 30 + 2, 32)
    # info on the run folder: step of its newest complete checkpoint
    assert main(["info", str(run), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["step"] == 4 and info["arch"] == "compact" and info["parameters"] > 0 and info["flops_per_image"] > 0


def test_cli_bad_input_is_one_clear_line(tmp_path, capsys):
    assert main(["sample", "--checkpoint", str(tmp_path / "nope.pt"), "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ncsn: error:") and "does not exist" in err and "Traceback" not in err
    (tmp_path / "bad.pt").write_bytes(b"\x00" * 100)
    assert main(["info", str(tmp_path / "bad.pt")]) == 2
    assert "truncated or damaged" in capsys.readouterr().err
    # a mask whose size differs from its image is refused, naming both sizes
    cfg = tiny_cfg()
    model = build_model(cfg)
    model.data_mean = torch.full((1, 28, 28), 0.13)  # the preset starts its chains at the data mean
    ck = save_checkpoint(tmp_path / "m.pt", cfg, 1, model)
    img = _write_png(tmp_path / "i.png", np.zeros((28, 28), np.uint8))
    msk = _write_png(tmp_path / "k.png", np.zeros((20, 20), np.uint8))
    assert main(["inpaint", "--checkpoint", str(ck), "--image", img, "--mask", msk, "--out", str(tmp_path / "o.png")]) == 2
    err = capsys.readouterr().err
    assert "20x20" in err and "28x28" in err
    assert main(["sample", "--checkpoint", str(ck), "--n", "0", "--out", str(tmp_path / "o.png")]) == 2
    assert "--n must be >= 1" in capsys.readouterr().err
    assert main(["sample", "--checkpoint", str(ck), "--out", str(tmp_path / "o.txt"), "--n-steps-each", "1"]) == 2
    assert ".png" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["sample", "--checkpoint", str(ck), "--out", str(tmp_path / "o.png"), "--variance-correction", "2"])
    assert exit_.value.code == 2 and "'2' is not a number in [0, 1]" in capsys.readouterr().err
    assert main(["train", "--resume", str(tmp_path / "nothing")]) == 2
    assert "config.json" in capsys.readouterr().err
    assert main(["train", "--device", "cuda:7", "--run-dir", str(tmp_path / "r"), "--n-iters", "1"]) in (0, 2)


def test_batches_have_batch_size_and_cover_each_epoch_once():
    from ncsn_core.training import batch_indices
    n, bs = 10, 4  # batches 2, 5, 7 cross epoch boundaries
    batches = [batch_indices(step, bs, n, seed=3) for step in range(10)]
    assert all(len(b) == bs for b in batches)
    flat = torch.cat(batches)
    for e in range(4):
        assert sorted(flat[e * n:(e + 1) * n].tolist()) == list(range(n))
    assert torch.equal(batch_indices(7, bs, n, seed=3), batches[7])  # pure function of (seed, step)


def test_checkpoints_carry_the_data_mean_for_the_data_mean_start(tmp_path, capsys):
    images = torch.zeros(40, 1, 28, 28, dtype=torch.uint8)
    images[:, :, 10:18, 12:16] = 255  # every digit the same bar: mean image = the bar
    cfg = tiny_cfg(n_iters=3).override("sample", init="data-mean", step_lr=1e-9, n_steps_each=1)
    run_to_end(train(cfg, tmp_path / "r", dataset=TensorImageSet(images)))
    ld = load_checkpoint(tmp_path / "r")
    assert torch.equal(ld.model.data_mean, images[0].float() / 255)
    # the chain starts at N(data mean, sigma_1^2): with negligible steps the sample mean is the bar
    assert main(["sample", "--checkpoint", str(tmp_path / "r"), "--n", "400", "--no-denoise", "--out",
                 str(tmp_path / "s.npy"), "--quiet"]) == 0
    x = torch.from_numpy(np.load(tmp_path / "s.npy")).float()  # clamped to [0, 1]: compare the bar's pixels
    assert float(x[:, 0, 10:18, 12:16].mean()) > 0.6 and float(x[:, 0, :8].mean()) < 0.4  # N(1, 1), N(0, 1) clamped
    # a checkpoint saved before data means were recorded: a clear refusal, not a crash
    old = read_state(tmp_path / "r")
    old.pop("data_mean")
    old.pop("_path")
    torch.save(old, tmp_path / "old.pt")
    assert load_checkpoint(tmp_path / "old.pt").model.data_mean is None
    capsys.readouterr()
    assert main(["sample", "--checkpoint", str(tmp_path / "old.pt"), "--out", str(tmp_path / "o.png")]) == 2
    err = capsys.readouterr().err
    assert "no data mean image" in err and "--init gaussian" in err


def test_stop_is_heard_between_logging_steps(tmp_path, monkeypatch):
    # a slow model logs rarely; "stop" must not wait for the next logging step (HEARTBEAT_S 0: every step)
    import ncsn_core.training as training
    monkeypatch.setattr(training, "HEARTBEAT_S", 0.0)
    gen = train(tiny_cfg(n_iters=50, log_every=20, save_every=100), tmp_path / "run")
    assert next(gen) is None  # step 1: nothing to report, but a command can be sent
    ev = gen.send("stop")
    assert isinstance(ev, CheckpointSaved) and ev.step == 1
    fin = next(gen)
    assert isinstance(fin, Finished) and fin.reason == "stopped" and fin.step == 1


def test_learning_rate_schedule_warmup_then_cosine_to_zero():
    from ncsn_core.training import lr_at
    tc = tiny_cfg(n_iters=100, lr=1e-3, warmup=10).train
    assert lr_at(tc, 0) == pytest.approx(1e-4) and lr_at(tc, 9) == lr_at(tc, 50) == 1e-3  # constant (the paper)
    tc = tiny_cfg(n_iters=100, lr=1e-3, warmup=10, lr_schedule="cosine").train
    assert lr_at(tc, 0) == pytest.approx(1e-4 * (1 + np.cos(0)) / 2)
    assert lr_at(tc, 50) == pytest.approx(0.5e-3) and lr_at(tc, 100) == pytest.approx(0, abs=1e-12)
    # under a time budget the progress is the larger of the step share and the time share
    assert lr_at(tc, 10, time_share=0.5) == pytest.approx(0.5e-3) and lr_at(tc, 75, time_share=0.5) < 0.5e-3
    assert lr_at(tc, 10, time_share=2.0) == pytest.approx(0, abs=1e-12)


def test_cosine_run_logs_its_decaying_rate_and_resumes_exactly(tmp_path):
    cfg = tiny_cfg(n_iters=6, lr_schedule="cosine")
    run_to_end(train(cfg, tmp_path / "a"))
    lrs = [json.loads(l)["lr"] for l in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert lrs[0] == pytest.approx(1e-3) and all(a > b for a, b in zip(lrs, lrs[1:])) and lrs[-1] < 0.1e-3
    gen = train(cfg, tmp_path / "b")
    for ev in gen:
        if isinstance(ev, CheckpointSaved) and ev.step == 3:
            break
    gen.close()
    run_to_end(train(cfg, tmp_path / "b", resume=True))
    a, b = read_state(tmp_path / "a"), read_state(tmp_path / "b")
    assert all(torch.allclose(a["model"][k], b["model"][k], atol=1e-6) for k in a["model"])


def test_time_budget_decays_the_rate_to_near_zero_by_its_end(tmp_path):
    # n_iters far away: only the time budget (1.5 s) can bring the rate down
    cfg = tiny_cfg(n_iters=10**6, lr_schedule="cosine", save_every=10**6)
    fin = run_to_end(train(cfg, tmp_path / "run", max_minutes=1.5 / 60))
    assert fin.reason == "time"
    lrs = [json.loads(l)["lr"] for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(lrs) > 5 and lrs[0] > 0.9e-3 and lrs[-1] < 0.05e-3


def test_bf16_training_follows_fp32_and_keeps_fp32_weights(tmp_path):
    """precision bf16: the network runs under bfloat16 autocast (the losses differ from fp32's by its rounding, and
    by no more), while the weights, Adam's state and the checkpoint stay float32; the run's config records it."""
    losses = {}
    for p in ("fp32", "bf16"):
        run_to_end(train(tiny_cfg(n_iters=3, precision=p), tmp_path / p))
        losses[p] = [json.loads(l)["loss"] for l in (tmp_path / p / "metrics.jsonl").read_text().splitlines()]
    assert losses["bf16"] != losses["fp32"]  # autocast really ran
    assert np.allclose(losses["bf16"], losses["fp32"], rtol=0.03)
    state = read_state(tmp_path / "bf16")
    assert state["config"]["train"]["precision"] == "bf16"
    assert all(v.dtype == torch.float32 for v in state["model"].values() if v.is_floating_point())
    assert all(t.dtype == torch.float32 for s in state["optimizer"]["state"].values() for k, t in s.items()
               if k != "step")


def test_precision_is_checked_and_bf16_without_fast_hardware_warns(tmp_path, monkeypatch, capsys):
    from ncsn_core.config import ConfigError
    with pytest.raises(ConfigError, match="precision 'fp16' is unknown: choose one of fp32, bf16"):
        tiny_cfg(precision="fp16")
    monkeypatch.setattr("ncsn_core.precision.cpu_flags", lambda: {"avx2", "avx512f", "avx512_bf16"})  # no AMX
    assert main(["train", "--preset", "mnist-cpu", "--channels", "4,6,8", "--num-classes", "3", "--batch-size", "4",
                 "--n-iters", "1", "--preview-every", "0", "--precision", "bf16", "--device", "cpu", "--quiet",
                 "--set", 'sample.precision="bf16"', "--run-dir", str(tmp_path / "run")]) == 0
    assert "warning: precision bf16: this CPU has no AMX" in capsys.readouterr().err
    assert json.loads((tmp_path / "run" / "config.json").read_text())["train"]["precision"] == "bf16"
    ckpt = str(tmp_path / "run")  # sampling in bf16 warns alike, and says so in the grid's description
    assert main(["sample", "--checkpoint", ckpt, "--n", "2", "--precision", "bf16", "--device", "cpu", "--quiet",
                 "--out", str(tmp_path / "x.png")]) == 0
    captured = capsys.readouterr()
    assert "warning: precision bf16: this CPU has no AMX" in captured.err and "the network in bf16" in captured.out
    # bf16 from the checkpoint's own sampler (its sample.precision), no flag: `ncsn eval` still says so
    assert main(["eval", ckpt, "--n", "2", "--n-steps-each", "1", "--device", "cpu", "--quiet", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["sampler"]["precision"] == "bf16"
    assert any("precision bf16: this CPU has no AMX" in w for w in res["warnings"])
