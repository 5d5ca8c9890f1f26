"""Every setting reachable headless: --config FILE and --set on train/sample/inpaint/eval, the training flags,
`ncsn config`, and progress that reads well in a log file."""
import io
import json
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from ncsn_core.checkpoint import save_checkpoint
from ncsn_core.cli import main
from ncsn_core.config import get_preset
from ncsn_core.models import build_model
from ncsn_core.progress import LineProgress, bar

TINY = ["--channels", "4,6,8", "--num-classes", "3", "--batch-size", "4", "--preview-every", "0"]


def config_of(capsys, *argv) -> dict:
    assert main(["config", *argv]) == 0
    return json.loads(capsys.readouterr().out)


def error_of(capsys, *argv) -> str:
    assert main(list(argv)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("ncsn: error:") and "Traceback" not in err
    return err


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny level-conditioned MNIST model saved as a checkpoint (its preset starts chains at the data mean)."""
    cfg = get_preset("mnist-cpu-levels").override("model", channels=(4, 6, 8)).override("noise", num_classes=3)
    cfg = cfg.override("sample", n_steps_each=2)
    model = build_model(cfg)
    model.data_mean = torch.full((1, 28, 28), 0.13)
    return save_checkpoint(tmp_path_factory.mktemp("ck") / "m.pt", cfg, 1, model)


def test_precedence_preset_file_set_flags(tmp_path, capsys):
    assert get_preset("mnist-cpu-levels").train.lr == 1e-3
    f = tmp_path / "partial.json"
    f.write_text(json.dumps({"train": {"lr": 0.5, "n_iters": 7}}))  # partial: two fields of one section
    base = ["--preset", "mnist-cpu-levels"]
    assert config_of(capsys, *base, "--config", str(f))["train"]["lr"] == 0.5
    d = config_of(capsys, *base, "--config", str(f), "--set", "train.lr=0.25")
    assert d["train"]["lr"] == 0.25 and d["train"]["n_iters"] == 7  # --set beats the file, the rest stays
    d = config_of(capsys, *base, "--config", str(f), "--set", "train.lr=0.25", "--lr", "0.125")
    assert d["train"]["lr"] == 0.125  # the explicit flag beats --set
    # everything not named stays the preset's
    preset = get_preset("mnist-cpu-levels").to_dict()
    assert {k: v for k, v in d.items() if k != "train"} == json.loads(json.dumps(
        {k: v for k, v in preset.items() if k != "train"}))
    # TOML (stdlib tomllib on Python >= 3.11) says the same
    t = tmp_path / "c.toml"
    t.write_text('[train]\nlr = 0.5\nloss = "ssm_vr"\n[model]\nchannels = [4, 6, 8]\n')
    d = config_of(capsys, *base, "--config", str(t))
    assert (d["train"]["lr"], d["train"]["loss"], d["model"]["channels"]) == (0.5, "ssm_vr", [4, 6, 8])


def test_training_flags_reach_every_section(capsys):
    d = config_of(capsys, "--preset", "mnist-paper", "--loss", "ssm", "--sigma-begin", "2", "--sigma-end", "0.02",
                  "--num-classes", "5", "--ngf", "8", "--ema-rate", "0")
    assert d["train"]["loss"] == "ssm" and d["train"]["ema_rate"] is None
    assert d["noise"] == {"sigma_begin": 2.0, "sigma_end": 0.02, "num_classes": 5}
    assert (d["model"]["arch"], d["model"]["ngf"]) == ("refinenet", 8)
    d = config_of(capsys, "--preset", "mnist-cpu-levels", "--arch", "compact", "--channels", "8,16,32")
    assert d["model"]["channels"] == [8, 16, 32]


def test_config_round_trip_and_ssm_on_images(tmp_path, capsys):
    """`ncsn config --preset X > f.json; ncsn train --config f.json` == `ncsn train --preset X`; and sliced score
    matching trains on images from the command line, with plain progress lines in a log (stderr not a tty)."""
    f = tmp_path / "f.json"
    f.write_text(json.dumps(config_of(capsys, "--preset", "mnist-cpu-levels", "--loss", "ssm")))
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["train", "--preset", "mnist-cpu-levels", "--loss", "ssm", "--run-dir", str(a), "--n-iters", "2",
                 *TINY, "--log-every", "1", "--device", "cpu"]) == 0
    out, err = capsys.readouterr()
    assert "\r" not in err and "train mnist-cpu-levels: step 2/2 (100 %), loss " in err
    assert 1 <= len(err.splitlines()) <= 4
    assert main(["train", "--config", str(f), "--run-dir", str(b), "--n-iters", "2", *TINY, "--log-every", "1",
                 "--device", "cpu", "--quiet"]) == 0
    saved = json.loads((a / "config.json").read_text())
    assert saved == json.loads((b / "config.json").read_text())
    assert saved["train"]["loss"] == "ssm" and saved["name"] == "mnist-cpu-levels"
    assert json.loads((a / "metrics.jsonl").read_text().splitlines()[-1])["loss"] is not None
    # `ncsn config RUN_DIR` prints that run's config, again valid --config input
    capsys.readouterr()
    assert config_of(capsys, str(a)) == saved


def test_bad_keys_and_combinations_are_one_line(tmp_path, capsys, checkpoint):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"trian": {"lr": 1}}))
    err = error_of(capsys, "config", "--config", str(bad))
    assert "unknown section 'trian'" in err and "train" in err and str(bad) in err
    bad.write_text(json.dumps({"train": {"lr": 1, "lrate": 2}}))
    err = error_of(capsys, "config", "--config", str(bad))
    assert "unknown field 'lrate' in train" in err and "batch_size" in err
    bad.write_text(json.dumps({"train": {"batch_size": "big"}}))
    assert "train.batch_size='big' must be a whole number" in error_of(capsys, "config", "--config", str(bad))
    bad.write_text("{not json")
    assert "not valid JSON" in error_of(capsys, "config", "--config", str(bad))
    assert "no such file" in error_of(capsys, "config", "--config", str(tmp_path / "none.json"))
    # a combination the model cannot do: a clear reason, not a traceback
    assert "conditioning='sigma' is built for the compact model" in error_of(capsys, "config", "--preset",
                                                                             "mnist-cpu", "--arch", "refinenet")
    # sample/inpaint/eval: only the sample section can change (the model is the checkpoint's)
    out = str(tmp_path / "x.npy")
    err = error_of(capsys, "sample", "--checkpoint", str(checkpoint), "--out", out, "--set", "train.lr=1")
    assert "'train' section cannot change here, only sample" in err and "checkpoint" in err
    bad.write_text(json.dumps({"sample": {"step_lr": 1e-5}, "model": {"ngf": 3}}))
    for cmd in (["sample", "--checkpoint", str(checkpoint), "--out", out], ["eval", str(checkpoint), "--n", "2"]):
        assert "'model' section cannot change here" in error_of(capsys, *cmd, "--config", str(bad))
    assert "unknown field 'stepsize' in sample" in error_of(
        capsys, "sample", "--checkpoint", str(checkpoint), "--out", out, "--set", "sample.stepsize=1")


def test_sample_config_set_and_flags_reach_the_sampler(tmp_path, capsys, checkpoint):
    f = tmp_path / "s.json"
    f.write_text(json.dumps({"sample": {"n_steps_each": 1, "step_lr": 1e-5, "init": "uniform"}}))
    args = ["sample", "--checkpoint", str(checkpoint), "--n", "2", "--out", str(tmp_path / "s.npy"), "--config", str(f)]
    assert main([*args, "--json", "--quiet"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert (r["n_steps_each"], r["step_lr"], r["init"], r["denoise"]) == (1, 1e-5, "uniform", True)  # rest: ckpt's
    assert main([*args, "--set", "sample.init=gaussian", "--set", "sample.step_lr=3e-5", "--step-lr", "2e-5",
                 "--json", "--quiet"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert (r["n_steps_each"], r["step_lr"], r["init"]) == (1, 2e-5, "gaussian")
    # without --quiet, in a log: the sampler's progress as a few plain lines
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "\r" not in err and "sample: step 3/3 (100 %), level 3/3" in err and len(err.splitlines()) <= 5
    # inpaint takes the same layers
    img, mask = tmp_path / "i.png", tmp_path / "m.png"
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(img)
    Image.fromarray(np.full((28, 28), 255, np.uint8)).save(mask)
    assert main(["inpaint", "--checkpoint", str(checkpoint), "--image", str(img), "--mask", str(mask), "--n", "1",
                 "--out", str(tmp_path / "o.npy"), "--config", str(f), "--json", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["n_steps_each"] == 1


def test_eval_takes_the_sample_section(tmp_path, capsys, checkpoint):
    f = tmp_path / "s.json"
    f.write_text(json.dumps({"sample": {"n_steps_each": 1, "init": "gaussian"}}))
    assert main(["eval", str(checkpoint), "--n", "2", "--batch-size", "2", "--config", str(f),
                 "--set", "sample.step_lr=1e-5", "--json", "--quiet"]) == 0
    s = json.loads(capsys.readouterr().out)["sampler"]
    assert (s["n_steps_each"], s["init"], s["step_lr"]) == (1, "gaussian", 1e-5)


def test_mnist_paper_without_its_files_says_what_to_fetch(tmp_path, capsys):
    assert get_preset("mnist-paper").data.dataset == "mnist"  # the 60,000 training digits, not the built-in 10,000
    err = error_of(capsys, "train", "--preset", "mnist-paper", "--data-root", str(tmp_path), "--n-iters", "1",
                   "--run-dir", str(tmp_path / "run"))
    for part in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                 "t10k-labels-idx1-ubyte.gz", str(tmp_path / "MNIST" / "raw"), "--download", "--dataset mnist-builtin"):
        assert part in err


# --- progress in a log file ------------------------------------------------------------------------------
def test_line_progress_is_few_plain_lines():
    stream = io.StringIO()
    p = bar(1000, "train demo", True, stream)
    assert isinstance(p, LineProgress)  # a StringIO is not a terminal
    for step in range(1, 1001):
        p.set_postfix_str(f"loss {1.0 / step:.3g}")
        p.update(1)
    p.close()
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue() and 20 <= len(lines) <= 22
    assert lines[-1].startswith("train demo: step 1000/1000 (100 %), loss 0.001, ") and "elapsed, ETA 00:00" in lines[-1]
    assert "step 500/1000 (50 %)" in stream.getvalue()


def test_line_progress_also_every_few_seconds(monkeypatch):
    now = [0.0]
    monkeypatch.setattr("ncsn_core.progress.time.monotonic", lambda: now[0])
    stream = io.StringIO()
    p = LineProgress(10_000, "sample", stream, every_s=30.0)
    for _ in range(5):  # 1 step a minute: far below 5 %, yet a line every 30 s
        now[0] += 60.0
        p.update(1)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 5 and lines[-1] == "sample: step 5/10000 (0 %), 05:00 elapsed, ETA 166:35:00"


def test_toml_without_tomllib_says_to_use_json(tmp_path, capsys, monkeypatch):
    """Python 3.10 has no tomllib: one line saying so, and that JSON works."""
    t = tmp_path / "c.toml"
    t.write_text("[train]\nlr = 0.5\n")
    monkeypatch.setitem(sys.modules, "tomllib", None)  # import tomllib -> ImportError, as on 3.10
    err = error_of(capsys, "config", "--config", str(t))
    assert "TOML needs Python >= 3.11" in err and "JSON" in err
