"""The memorisation check of `ncsn eval`: nearest training images in pixel space (exact copies have distance 0
and are flagged; the chunked search equals brute force), and the --neighbours grid."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ncsn_core import metrics as M
from ncsn_core.checkpoint import save_checkpoint
from ncsn_core.cli import main
from ncsn_core.config import get_preset
from ncsn_core.data import TensorImageSet, load_dataset
from ncsn_core.evaluate import NN_K, NN_ROWS, _memorisation_of, read_neighbour_grid
from ncsn_core.models import build_model


def _random_set(n: int, seed: int, shape=(1, 6, 6)) -> TensorImageSet:
    g = torch.Generator().manual_seed(seed)
    return TensorImageSet(torch.randint(0, 256, (n, *shape), generator=g, dtype=torch.uint8))


def test_chunked_search_equals_brute_force():
    train = _random_set(500, 0)
    queries = torch.rand(40, 1, 6, 6, generator=torch.Generator().manual_seed(1)) * 1.2 - 0.1  # some out of [0, 1]
    # 40 queries x 50 references per chunk: ten chunks, so the running top-k across chunks is exercised
    dist, idx = M.nearest_neighbours(queries, train, k=3, max_elements=40 * 50)
    brute = torch.cdist(queries.clamp(0, 1).flatten(1).double(), train.get_batch(torch.arange(500)).flatten(1).double())
    ref_d, ref_i = brute.topk(3, dim=1, largest=False)
    assert torch.equal(idx, ref_i)
    assert torch.allclose(dist.double(), ref_d, atol=1e-5)
    # a plain tensor works as the reference too, with the same answer
    d2, i2 = M.nearest_neighbours(queries, train.get_batch(torch.arange(500)), k=3)
    assert torch.equal(i2, idx) and torch.allclose(d2, dist)


def test_an_exact_copy_has_distance_zero_and_is_flagged():
    train, held = _random_set(300, 0), _random_set(100, 1)
    samples = torch.rand(20, 1, 6, 6, generator=torch.Generator().manual_seed(2))
    samples[7] = train.get_batch(torch.tensor([123]))[0]  # the model "copied" training image 123
    dist, idx = M.nearest_neighbours(samples, train, k=2, max_elements=20 * 64)
    assert dist[7, 0].item() == 0.0 and idx[7, 0].item() == 123
    assert (dist[:, 0] > 0).sum() == 19 and (dist[:, 1] >= dist[:, 0]).all()
    d_real = M.nearest_neighbours(held.get_batch(torch.arange(100)), train)[0][:, 0].numpy()
    fig = M.memorisation_figures(dist[:, 0].numpy(), d_real)
    assert fig["nn_distance_min"] == 0.0 and fig["nn_distance_p1_real"] > 0
    assert fig["share_closer_than_real_p1"] >= 1 / 20                 # the copy is among the possible copies
    assert fig["nn_distance_median_real"] == pytest.approx(float(np.median(d_real)))
    assert M.memorisation_figures(dist[:, 0].numpy(), None)["share_closer_than_real_p1"] is None


def test_the_leave_one_out_baseline_is_each_training_image_to_its_nearest_other_one():
    train = _random_set(50, 3)
    x = train.get_batch(torch.arange(50)).flatten(1).double()
    brute = torch.cdist(x, x) + torch.diag(torch.full((50,), float("inf"), dtype=torch.float64))
    d = M.training_loo_distances(train, n=50)
    assert np.allclose(d, brute.min(1).values.numpy(), atol=1e-5) and (d > 0).all()  # never the image itself
    assert len(M.training_loo_distances(train, n=10)) == 10
    fig = M.memorisation_figures(d[:5], None, d)
    assert fig["nn_distance_median_train"] == pytest.approx(float(np.median(d)))


def test_mismatched_shapes_are_one_clear_error():
    with pytest.raises(M.MetricsError, match="differ"):
        M.nearest_neighbours(torch.rand(2, 1, 5, 5), _random_set(10, 0))


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    cfg = get_preset("mnist-cpu-levels").override("model", channels=(8, 8, 8)).override("noise", num_classes=2)
    assert cfg.data.dataset == "mnist-builtin" and cfg.data.holdout == 1000
    torch.manual_seed(0)
    model = build_model(cfg)
    model.data_mean = torch.full((1, 28, 28), 0.13)
    return save_checkpoint(tmp_path_factory.mktemp("memo") / "tiny.pt", cfg, 3, model)


def test_eval_neighbours_grid_and_figures(tiny_checkpoint, tmp_path, capsys):
    png = tmp_path / "nn.png"
    assert main(["eval", str(tiny_checkpoint), "--n", "12", "--n-steps-each", "1", "--json", "--device", "cpu",
                 "--neighbours", str(png)]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["neighbours_png"] == str(png) and png.exists()
    assert len(res["nn_distances"]) == 12 and res["nn_n_train"] == 9000 and res["nn_n_real"] == 1000
    assert res["nn_distance_median"] == pytest.approx(float(np.median(res["nn_distances"])), abs=1e-3)
    assert 0 < res["nn_distance_p1_real"] <= res["nn_distance_p5_real"] <= res["nn_distance_median_real"]
    assert 0 <= res["share_closer_than_real_p1"] <= res["share_closer_than_real_p5"] <= 1

    from PIL import Image
    with Image.open(png) as im:  # 10 rows of sample | blank | 5 neighbours, 28-pixel tiles, 2-pixel padding
        assert im.size == ((NN_K + 2) * 30 + 2, NN_ROWS * 30 + 2)
    tiles, meta = read_neighbour_grid(png)
    assert tiles.shape == (NN_ROWS * (1 + NN_K), 1, 28, 28)
    dist, train_idx = np.array(meta["distances"]), meta["train_indices"]
    assert dist.shape == (NN_ROWS, NN_K) and (np.diff(dist, axis=1) >= 0).all()
    assert dist[:, 0].tolist() == pytest.approx(res["nn_distances"][:NN_ROWS], abs=1e-3)
    # the neighbour tiles are the training images the metadata names: the first 9,000 built-in digits
    train = load_dataset(get_preset("mnist-cpu-levels").data, "train")
    want = train.get_batch(torch.tensor(train_idx[0])).numpy()
    assert np.abs(tiles[1:1 + NN_K] - want).max() <= 1 / 255 + 1e-6
    # and the sample tile lies at the stated distance from them (up to the PNG's 8-bit rounding)
    measured = np.sqrt(((tiles[0] - want) ** 2).sum(axis=(1, 2, 3)))
    assert measured == pytest.approx(dist[0], abs=0.05)


def test_eval_report_has_the_memorisation_section(tiny_checkpoint, capsys):
    assert main(["eval", str(tiny_checkpoint), "--n", "6", "--n-steps-each", "1", "--quiet", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "memorisation: L2 distance" in out and "the 9000 training images of mnist-builtin" in out
    assert "median NN distance (n=6)" in out and "held-out reals (n=1000)" in out
    assert "training images, leave-one-out" in out
    assert "share closer than real p1 (n=6)" in out and "neighbours grid" not in out


def test_bad_neighbours_path_is_one_line(tiny_checkpoint, tmp_path, capsys):
    assert main(["eval", str(tiny_checkpoint), "--n", "4", "--quiet", "--neighbours", str(tmp_path / "nn.jpg")]) == 2
    err = capsys.readouterr().err.strip()
    assert "name a .png file" in err and len(err.splitlines()) == 1


def test_missing_training_set_skips_the_check_with_a_warning(tmp_path):
    cfg = get_preset("mnist-cpu-levels").override("data", dataset="mnist", root=str(tmp_path / "no-mnist"))
    warnings: list = []
    out = _memorisation_of(torch.rand(3, 1, 28, 28), cfg, None, None, "", "cpu", tmp_path / "nn.png", {}, warnings)
    assert out["nn_distance_median"] is None and out["neighbours_png"] is None
    assert len(warnings) == 1 and "memorisation check skipped" in warnings[0] and "no neighbours grid" in warnings[0]
    assert not (tmp_path / "nn.png").exists()


def test_colour_models_get_the_check_and_an_rgb_grid(tmp_path):
    from PIL import Image
    rng = np.random.default_rng(0)
    for i in range(8):  # a tiny colour "data set": 6 training images, the last 2 held out
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(tmp_path / f"im{i}.png")
    cfg = get_preset("cifar10-paper").override("data", dataset="folder", root=str(tmp_path), image_size=8, holdout=2)
    train = load_dataset(cfg.data, "train")
    x = torch.rand(3, 3, 8, 8)
    x[1] = train.get_batch(torch.tensor([4]))[0]
    out = _memorisation_of(x, cfg, train, load_dataset(cfg.data, "holdout").get_batch(torch.arange(2)), "",
                           "cpu", tmp_path / "nn.png", {}, [])
    assert out["nn_n_train"] == 6 and out["nn_n_real"] == 2 and out["nn_distances"][1] == 0.0
    tiles, meta = read_neighbour_grid(out["neighbours_png"])
    assert tiles.shape == (3 * 6, 3, 8, 8) and meta["train_indices"][1][0] == 4
    assert np.abs(tiles[6] - x[1].numpy()).max() <= 1 / 255 + 1e-6     # row 2 starts with the copied sample
