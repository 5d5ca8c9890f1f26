"""Colour end to end through the `ncsn` CLI: a folder of RGB PNGs -> train (the paper's CIFAR-10 RefineNet, and
the compact model with both conditionings, at 3 x 32 x 32) -> sample -> inpaint -> eval, each on tiny widths."""
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ncsn_core.cli import main

from colour_data import RED, colour_image, write_colour_folder  # tests/colour_data.py (tests/ is on sys.path: its conftest)

# tiny networks and few steps: each CLI call runs in well under a few seconds on one CPU thread
SETS = {"cifar10-paper": ["model.ngf=4", "noise.num_classes=3"],
        "mnist-cpu": ["data.channels=3", "data.image_size=32", "model.channels=[8,8,8]", "data.holdout=4"],
        "mnist-cpu-levels": ["data.channels=3", "data.image_size=32", "model.channels=[8,8,8]", "data.holdout=4",
                             "noise.num_classes=3"]}


@pytest.fixture(scope="module")
def colour_folder(tmp_path_factory) -> Path:
    return write_colour_folder(tmp_path_factory.mktemp("colour_pngs"))


def run_cli(capsys, *argv) -> dict:
    code = main([*argv, "--json", "--device", "cpu"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


def train_colour(capsys, preset: str, folder: Path, run: Path) -> dict:
    sets = [a for s in SETS[preset] for a in ("--set", s)]
    return run_cli(capsys, "train", "--preset", preset, "--dataset", "folder", "--data-root", str(folder),
                   "--run-dir", str(run), "--n-iters", "2", "--batch-size", "4", "--save-every", "2",
                   "--preview-every", "0", "--log-every", "1", *sets)


@pytest.mark.parametrize("preset", sorted(SETS))
def test_colour_train_sample_inpaint(preset, colour_folder, tmp_path, capsys):
    res = train_colour(capsys, preset, colour_folder, tmp_path / "run")
    assert res["step"] == 2 and res["checkpoint"]
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (cfg["data"]["channels"], cfg["data"]["image_size"], cfg["data"]["dataset"]) == (3, 32, "folder")

    steps = ["--n-steps-each", "2"] if preset != "mnist-cpu" else ["--num-levels", "3"]
    run_cli(capsys, "sample", "--checkpoint", str(tmp_path / "run"), "--n", "2", "--out", str(tmp_path / "s.npy"),
            *steps)
    x = np.load(tmp_path / "s.npy")
    assert x.shape == (2, 3, 32, 32) and np.isfinite(x).all()

    # inpaint: the left half (red) known, the right half to fill; the known pixels must come back red
    Image.fromarray(colour_image(0)).save(tmp_path / "image.png")
    mask = np.zeros((32, 32), np.uint8)
    mask[:, :16] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    run_cli(capsys, "inpaint", "--checkpoint", str(tmp_path / "run"), "--image", str(tmp_path / "image.png"),
            "--mask", str(tmp_path / "mask.png"), "--n", "1", "--out", str(tmp_path / "fill.png"), *steps)
    with Image.open(tmp_path / "fill.png") as im:           # a row: original, occluded, completion (2 px padding)
        assert im.mode == "RGB"
        row = np.asarray(im, dtype=np.float32) / 255
    tiles = [row[2:34, 2 + 34 * k:34 + 34 * k] for k in range(3)]
    assert np.allclose(tiles[0], colour_image(0) / 255, atol=0.01)             # the original, in its colours
    assert np.allclose(tiles[1][:, 16:], 0, atol=0.01)                          # occluded: the unknown half black
    known = tiles[2][16:22, :4]              # rows without the green square, left columns: red, + sigma_L noise
    assert np.allclose(known.mean(axis=(0, 1)), np.array(RED) / 255, atol=0.015)   # (Alg. 2 without denoise)
    assert np.abs(known - np.array(RED) / 255).max() < 0.06


def test_colour_eval_needs_inception_and_says_so(colour_folder, tmp_path, capsys, monkeypatch):
    """IS/FID of a colour model need torch-fidelity and local Inception weights: without them `ncsn eval` stops
    at once (before sampling) with one line that names what to install or download."""
    monkeypatch.setenv("NCSN_INCEPTION_WEIGHTS", str(tmp_path / "absent" / "inception.pth"))
    train_colour(capsys, "mnist-cpu-levels", colour_folder, tmp_path / "run")
    code = main(["eval", str(tmp_path / "run"), "--n", "10", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "Inception weights for IS/FID not found" in err and "inception.pth" in err
