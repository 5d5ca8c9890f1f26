"""Faults and bad input, one test per row of the README's "When things go wrong" table: each fault is made for
real (a killed process, a failing write, damaged files) and must end in a usable state and one clear line."""
import errno
import json
import os
import pickle
import random
import signal
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ncsn_core import checkpoint as ckpt_mod
from ncsn_core.checkpoint import (CheckpointError, latest_checkpoint, list_checkpoints, load_checkpoint, read_state,
                                  save_checkpoint)
from ncsn_core.cli import main
from ncsn_core.images import ImageError, fit_mask, read_image, read_mask, to_model_image
from ncsn_core.models import build_model
from ncsn_core.training import run_to_end, train

from test_pipeline import tiny_cfg

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--preset", "mnist-cpu-levels", "--batch-size", "8", "--log-every", "1", "--preview-every", "0",
        "--set", "model.channels=[4,6,8]", "--set", "noise.num_classes=3", "--set", "data.holdout=9800"]


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("ncsn: error:") and "\n" not in err and "Traceback" not in err, err
    return err


def finite(path) -> bool:
    return all(torch.isfinite(p).all() for p in load_checkpoint(path).model.parameters())


# --- kill -9 during training --------------------------------------------------------------------
def _steps_logged(run: Path) -> list:
    steps = []
    for line in (run / "metrics.jsonl").read_text().splitlines() if (run / "metrics.jsonl").exists() else []:
        try:
            steps.append(json.loads(line)["step"])
        except (ValueError, KeyError):
            pass  # a line torn by the kill
    return steps


def _train_in_child(argv: list) -> int:
    """Fork a process that runs `ncsn train argv` (the CLI's main, torch already imported: no start-up cost)."""
    pid = os.fork()
    if pid == 0:  # the child never returns into pytest
        code = 1
        try:
            code = main(["train", *argv])
        finally:
            os._exit(code)
    return pid


def test_kill_9_during_training_keeps_the_newest_complete_checkpoint(tmp_path):
    """`ncsn train` killed with SIGKILL at a random moment, three times: each time the newest complete
    checkpoint loads, --resume goes on from it, and at most the steps since it (<= save_every) are lost."""
    run, save_every, n_iters = tmp_path / "run", 2, 400
    rng = random.Random(0)
    resumed_from = 0
    for rep in range(3):
        args = ["--resume", str(run)] if rep else [*TINY, "--run-dir", str(run), "--n-iters", str(n_iters)]
        pid = _train_in_child([*args, "--save-every", str(save_every), "--keep-last", "0", "--quiet"])
        deadline = time.monotonic() + 60
        while not [p for p in list_checkpoints(run) if int(p.stem[5:]) > resumed_from]:  # it is training
            assert os.waitpid(pid, os.WNOHANG) == (0, 0), "ncsn train ended before its first checkpoint"
            assert time.monotonic() < deadline
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.3))  # a random moment: mid-step, mid-save, mid-log
        os.kill(pid, signal.SIGKILL)
        assert os.waitpid(pid, 0)[1] == signal.SIGKILL
        good = latest_checkpoint(run)
        ld = load_checkpoint(good)  # the newest complete checkpoint loads
        assert ld.step == int(good.stem[5:]) > resumed_from
        assert max(_steps_logged(run)) - ld.step <= save_every  # only the steps since it are lost
        assert (run / "config.json").exists()
        resumed_from = ld.step
    # a leftover temp file of a save cut short is never taken for a checkpoint
    (run / "checkpoints" / f"ckpt_{resumed_from + 2:08d}.pt.abc123.tmp").write_bytes(b"PK\x03\x04 half")
    assert latest_checkpoint(run).name == f"ckpt_{resumed_from:08d}.pt"
    assert main(["train", "--resume", str(run), "--n-iters", str(resumed_from + 2), "--quiet"]) == 0
    assert load_checkpoint(run).step == resumed_from + 2
    assert sorted(set(_steps_logged(run))) == list(range(1, resumed_from + 3))  # each step logged once


def test_torn_newest_checkpoint_is_passed_over_for_the_one_before(tmp_path, caplog):
    cfg = tiny_cfg(n_iters=4, save_every=2)
    run_to_end(train(cfg, tmp_path / "r", keep_last=0))
    newest = latest_checkpoint(tmp_path / "r")
    assert newest.name == "ckpt_00000004.pt"
    newest.write_bytes(newest.read_bytes()[:1000])  # cut short, e.g. a copy that stopped half-way
    assert latest_checkpoint(tmp_path / "r").name == "ckpt_00000002.pt" and "skipping" in caplog.text
    assert read_state(tmp_path / "r")["step"] == 2
    with pytest.raises(CheckpointError, match="truncated or damaged"):  # asked for by name, it is refused
        read_state(newest)
    fin = run_to_end(train(cfg, tmp_path / "r", resume=True, keep_last=0))  # resume goes on from step 2
    assert fin.reason == "done" and load_checkpoint(tmp_path / "r").step == 4


# --- disk full while saving ----------------------------------------------------------------------
def test_disk_full_while_saving_stops_training_with_one_line(tmp_path, monkeypatch, capsys):
    """The second checkpoint write fails with ENOSPC: one line names the file, the step, the reason and the last
    good checkpoint; the CLI exits 2; the first checkpoint still loads and no temp file is left."""
    real_save, calls = torch.save, []

    def disk_fills_up(obj, f, *a, **k):
        calls.append(f)
        if len(calls) >= 2:
            Path(f).write_bytes(b"PK\x03\x04 partial")  # the disk filled up half-way through the write
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(obj, f, *a, **k)
    monkeypatch.setattr(ckpt_mod.torch, "save", disk_fills_up)
    run = tmp_path / "run"
    code = main(["train", *TINY, "--run-dir", str(run), "--n-iters", "10", "--save-every", "2", "--quiet"])
    err = one_line_error(capsys)
    assert code == 2
    assert "No space left on device" in err and "ckpt_00000004.pt" in err and "step 4" in err
    assert "ckpt_00000002.pt" in err and "--resume" in err
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["ckpt_00000002.pt"]  # no .tmp left behind
    assert load_checkpoint(run).step == 2
    monkeypatch.setattr(ckpt_mod.torch, "save", real_save)  # space freed: the run resumes from step 2
    assert main(["train", "--resume", str(run), "--n-iters", "4", "--quiet"]) == 0
    assert load_checkpoint(run).step == 4


# --- bad checkpoints -----------------------------------------------------------------------------
class Evil:
    """Unpickling this runs `touch marker`: the proof that nothing was executed is that marker never appears."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _bad_checkpoint(kind: str, good: Path, folder: Path) -> tuple:
    """(path, the words its refusal must contain)."""
    raw = good.read_bytes()
    state = torch.load(good, weights_only=True)
    if kind == "truncated":
        p = folder / "trunc.pt"
        p.write_bytes(raw[: len(raw) // 2])
        return p, "truncated or damaged"
    if kind == "corrupted":  # bytes flipped inside the weights: the zip's CRC catches what torch.load would not
        p, b = folder / "flipped.pt", bytearray(raw)
        for i in range(len(b) // 2, len(b) // 2 + 32):
            b[i] ^= 0xFF
        p.write_bytes(bytes(b))
        return p, "is damaged"
    if kind == "architecture":
        other = build_model(tiny_cfg().override("model", arch="refinenet", ngf=4))
        state["model"] = other.state_dict()
        p = folder / "other.pt"
        torch.save(state, p)
        return p, "do not fit the compact architecture"
    if kind == "newer":
        state["format_version"] = ckpt_mod.FORMAT_VERSION + 1
        p = folder / "newer.pt"
        torch.save(state, p)
        return p, f"format version {ckpt_mod.FORMAT_VERSION + 1}, newer than"
    if kind in ("code.pt", "code.pth", "code.ckpt"):
        p = folder / f"evil.{kind.split('.')[1]}"
        torch.save({"format_version": 1, "model": Evil(folder / "pwned")}, p)
        return p, "contains pickled Python code/objects (posix.system), refused, nothing was executed"
    if kind == "code-legacy":  # a bare pickle, as torch.save wrote before its zip format (and pickle.dump)
        p = folder / "legacy.pth"
        p.write_bytes(pickle.dumps({"format_version": 1, "model": Evil(folder / "pwned")}, protocol=2))
        return p, "contains pickled Python code/objects, refused, nothing was executed"
    raise AssertionError(kind)


BAD_CHECKPOINTS = ["truncated", "corrupted", "architecture", "newer", "code.pt", "code.pth", "code.ckpt",
                   "code-legacy"]


@pytest.mark.parametrize("kind", BAD_CHECKPOINTS)
def test_bad_checkpoint_is_refused_with_one_line_naming_what_is_wrong(kind, tmp_path, capsys):
    cfg = tiny_cfg()
    good = save_checkpoint(tmp_path / "good.pt", cfg, 7, build_model(cfg))
    bad, words = _bad_checkpoint(kind, good, tmp_path)
    with pytest.raises(CheckpointError, match=words.replace("(", r"\(").replace(")", r"\)")):
        load_checkpoint(bad)
    assert main(["sample", "--checkpoint", str(bad), "--n", "1", "--out", str(tmp_path / "o.png")]) == 2
    err = one_line_error(capsys)
    assert words in err and str(bad) in err
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "o.png").exists()


# --- images and masks for inpainting --------------------------------------------------------------
def _png_claiming(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims width x height (the pixel data is tiny): Pillow must refuse it on open."""
    Image.new("L", (1, 1)).save(path)
    data = bytearray(path.read_bytes())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4: ihdr + 12] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr: ihdr + 17]))
    data[ihdr + 17: ihdr + 21] = struct.pack(">I", crc)
    path.write_bytes(bytes(data))
    return path


def test_unusable_image_files_are_refused_with_the_reason(tmp_path, monkeypatch):
    (tmp_path / "notes.png").write_text("not an image at all")
    with pytest.raises(ImageError, match="not an image Pillow can read"):
        read_image(tmp_path / "notes.png")
    arr = (np.random.default_rng(0).random((64, 64)) * 255).astype(np.uint8)
    Image.fromarray(arr).save(tmp_path / "full.png")
    (tmp_path / "torn.png").write_bytes((tmp_path / "full.png").read_bytes()[:600])
    with pytest.raises(ImageError, match="truncated or damaged"):
        read_image(tmp_path / "torn.png")
    with pytest.raises(ImageError, match="too large to open safely"):  # 100,000 x 100,000 claimed in the header
        read_image(_png_claiming(tmp_path / "huge.png", 100_000, 100_000))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow only warns between 1x and 2x its limit
    with pytest.raises(ImageError, match="too large to open safely"):
        read_image(tmp_path / "full.png")  # 4,096 pixels: over 2x, Pillow's DecompressionBombError
    Image.fromarray(arr[:40, :40]).save(tmp_path / "warn.png")
    with pytest.raises(ImageError, match="too large to open safely"):
        read_image(tmp_path / "warn.png")  # 1,600 pixels: Pillow's DecompressionBombWarning, refused too
    with pytest.raises(ImageError, match="does not exist"):
        read_image(tmp_path / "missing.png")
    with pytest.raises(ImageError, match="is a folder"):
        read_image(tmp_path)


def test_image_modes_are_converted_not_clipped(tmp_path):
    ramp = np.tile(np.linspace(0, 65535, 16).astype(np.uint16), (16, 1))
    Image.fromarray(ramp).save(tmp_path / "i16.png")  # 16-bit grey (I;16)
    assert Image.open(tmp_path / "i16.png").mode.startswith("I")
    g = read_image(tmp_path / "i16.png")
    assert g.dtype == np.uint8 and g.shape == (16, 16)
    np.testing.assert_allclose(g[0].astype(float), ramp[0] / 257.0, atol=0.6)  # scaled, not clipped to white
    # palette: the palette's colours, not its indices
    pal = Image.fromarray(np.array([[0, 1], [1, 0]], np.uint8), "P")
    pal.putpalette([0, 0, 0, 255, 128, 0] + [0] * 762)
    pal.save(tmp_path / "p.png")
    assert read_image(tmp_path / "p.png")[0, 1].tolist() == [255, 128, 0]
    # alpha: an image's transparent pixels are composited on white (as image-folder training data)
    la = np.zeros((2, 2, 2), np.uint8)
    la[0, 0] = (0, 255)                           # opaque black stays black
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    assert read_image(tmp_path / "la.png").tolist() == [[0, 255], [255, 255]]
    rgba = np.zeros((1, 2, 4), np.uint8)
    rgba[0, 0] = (255, 0, 0, 255)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    assert read_image(tmp_path / "rgba.png").tolist() == [[[255, 0, 0], [255, 255, 255]]]
    # CMYK: converted to RGB by Pillow's rules (no ink = white)
    Image.new("CMYK", (3, 3), (0, 0, 0, 0)).save(tmp_path / "cmyk.jpg", quality=100)
    assert read_image(tmp_path / "cmyk.jpg").min() >= 250
    assert to_model_image(read_image(tmp_path / "cmyk.jpg"), 8, 1).shape == (1, 8, 8)


def test_mask_alpha_multiplies_it_and_resizing_takes_the_majority(tmp_path):
    la = np.zeros((2, 2, 2), np.uint8)
    la[..., 0] = 255
    la[0, :, 1] = 255                              # top row: white and opaque = known; bottom: transparent
    Image.fromarray(la, "LA").save(tmp_path / "m.png")
    assert read_mask(tmp_path / "m.png").tolist() == [[True, True], [False, False]]
    known = np.kron(np.array([[1, 0], [0, 1]], bool), np.ones((4, 4), bool))
    assert fit_mask(known, (2, 2)).tolist() == [[True, False], [False, True]]


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    cfg = tiny_cfg()
    model = build_model(cfg)
    model.data_mean = torch.full((1, 28, 28), 0.13)  # the preset starts its chains at the data mean
    return str(save_checkpoint(tmp_path_factory.mktemp("m") / "m.pt", cfg, 1, model))


def test_cli_inpaint_refuses_bad_images_in_one_line(tmp_path, tiny_ckpt, capsys):
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "img.png")
    Image.fromarray(np.full((20, 24), 255, np.uint8)).save(tmp_path / "mask.png")
    (tmp_path / "text.png").write_text("hello")

    def inpaint(image, mask):
        return main(["inpaint", "--checkpoint", tiny_ckpt, "--image", str(image), "--mask", str(mask),
                     "--n-steps-each", "1", "--n", "1", "--out", str(tmp_path / "o.png"), "--quiet"])
    assert inpaint(tmp_path / "img.png", tmp_path / "mask.png") == 2
    err = one_line_error(capsys)
    assert "--mask" in err and "is 24x20" in err and "is 28x28" in err
    assert inpaint(tmp_path / "text.png", tmp_path / "mask.png") == 2
    assert "--image" in one_line_error(capsys)
    assert inpaint(_png_claiming(tmp_path / "huge.png", 100_000, 100_000), tmp_path / "mask.png") == 2
    assert "too large to open safely" in one_line_error(capsys)
    assert not (tmp_path / "o.png").exists()


def test_cli_inpaint_reads_16_bit_images_and_alpha_masks(tmp_path, tiny_ckpt, capsys):
    img = np.full((28, 28), 32768, np.uint16)       # mid-grey in 16 bits; PIL's convert('L') would give white
    Image.fromarray(img).save(tmp_path / "i16.png")
    la = np.zeros((28, 28, 2), np.uint8)
    la[..., 0] = 255
    la[:14, :, 1] = 255                             # top half known, bottom half transparent = to fill
    Image.fromarray(la, "LA").save(tmp_path / "mask.png")
    assert main(["inpaint", "--checkpoint", tiny_ckpt, "--image", str(tmp_path / "i16.png"), "--mask",
                 str(tmp_path / "mask.png"), "--n-steps-each", "1", "--n", "1", "--out", str(tmp_path / "o.png"),
                 "--quiet"]) == 0
    row = np.asarray(Image.open(tmp_path / "o.png").convert("L"), np.float32) / 255.0
    pad = (row.shape[0] - 28) // 2                  # make_grid's padding around each image
    original = row[pad: pad + 28, pad: pad + 28]
    occluded = row[pad: pad + 28, 28 + 2 * pad: 28 + 2 * pad + 28]
    assert abs(original.mean() - 0.5) < 0.01        # 32768 / 65535, not 1.0
    assert abs(occluded[:14].mean() - 0.5) < 0.01 and occluded[14:].max() == 0.0


# --- divergence ---------------------------------------------------------------------------------
def test_divergence_exits_3_naming_step_and_noise_level_and_keeps_finite_checkpoints(tmp_path, capsys):
    run = tmp_path / "run"
    code = main(["train", *TINY, "--run-dir", str(run), "--n-iters", "20", "--save-every", "1", "--lr", "1e30",
                 "--quiet"])
    out = capsys.readouterr().out
    assert code == 3
    assert "loss became" in out and "at step" in out and "noise level" in out and "sigma" in out
    assert "Last good checkpoint" in out and "Lower the learning rate" in out
    ckpts = list_checkpoints(run)
    assert ckpts and all(finite(p) for p in ckpts)  # no NaN/inf weights were ever written
    last = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["event"] == "diverged" and last["step"] == load_checkpoint(run).step + 1
