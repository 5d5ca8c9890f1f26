"""Sample-quality metrics and `ncsn eval`: exact FID cases, entropy, the shipped classifier, DSM per level,
the eval command on a tiny checkpoint, and the Inception path's missing-weights message."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy import linalg

from ncsn_core import metrics as M
from ncsn_core.checkpoint import save_checkpoint
from ncsn_core.cli import main
from ncsn_core.config import SampleConfig, get_preset
from ncsn_core.data import load_builtin_mnist
from ncsn_core.models import build_model


def _with_moments(n: int, mean: np.ndarray, cov: np.ndarray, seed: int) -> np.ndarray:
    """n points whose sample mean and (unbiased) sample covariance are exactly `mean` and `cov`."""
    z = np.random.default_rng(seed).standard_normal((n, len(mean)))
    z -= z.mean(0)
    z = z @ np.linalg.inv(np.linalg.cholesky(np.cov(z, rowvar=False))).T  # whiten: sample cov = I
    return z @ np.linalg.cholesky(cov).T + mean


def test_fid_of_a_set_with_itself_is_zero():
    f = np.random.default_rng(0).standard_normal((300, 16))
    assert M.frechet_distance(f, f) == pytest.approx(0.0, abs=1e-6)


def test_fid_of_shifted_diagonal_gaussians_matches_closed_form():
    d = 6
    var_a, var_b = np.linspace(0.5, 2.0, d), np.linspace(1.5, 0.2, d)
    mu_a, mu_b = np.zeros(d), np.full(d, 0.7)
    a = _with_moments(400, mu_a, np.diag(var_a), 1)
    b = _with_moments(500, mu_b, np.diag(var_b), 2)
    # commuting covariances: |mu_a - mu_b|^2 + sum (sqrt(var_a) - sqrt(var_b))^2
    exact = np.sum((mu_a - mu_b) ** 2) + np.sum((np.sqrt(var_a) - np.sqrt(var_b)) ** 2)
    assert M.frechet_distance(a, b) == pytest.approx(exact, rel=1e-8)


def test_fid_of_full_covariance_gaussians_matches_symmetric_form():
    rng = np.random.default_rng(3)
    d = 5
    ca, cb = [(q @ q.T) / d + 0.1 * np.eye(d) for q in rng.standard_normal((2, d, d))]
    mu_a, mu_b = rng.standard_normal(d), rng.standard_normal(d)
    a, b = _with_moments(200, mu_a, ca, 4), _with_moments(300, mu_b, cb, 5)
    ra = linalg.sqrtm(ca).real  # tr (Ca Cb)^1/2 = tr (Ca^1/2 Cb Ca^1/2)^1/2, a root of a symmetric PSD matrix
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(ra @ cb @ ra), 0, None)).sum()
    exact = np.sum((mu_a - mu_b) ** 2) + np.trace(ca) + np.trace(cb) - 2 * cross
    assert M.frechet_distance(a, b) == pytest.approx(exact, rel=1e-7)


def test_fid_rejects_mismatched_or_tiny_sets():
    with pytest.raises(M.MetricsError, match="same D"):
        M.frechet_distance(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(M.MetricsError, match="at least 2"):
        M.frechet_distance(np.zeros((1, 3)), np.zeros((5, 3)))


def test_entropy_and_histogram():
    assert M.entropy_nats(np.full(10, 7)) == pytest.approx(math.log(10))
    assert M.entropy_nats([0, 0, 5, 0]) == 0.0
    counts = M.class_histogram([1, 1, 3, 9])
    assert counts.tolist() == [0, 2, 0, 1, 0, 0, 0, 0, 0, 1]
    with pytest.raises(M.MetricsError):
        M.class_histogram([10])
    with pytest.raises(M.MetricsError):
        M.entropy_nats([0, 0])


@pytest.fixture(scope="module")
def mnist():
    return load_builtin_mnist()


def test_shipped_classifier_is_accurate_on_held_out_digits(mnist):
    images, labels = mnist
    net = M.load_classifier()
    assert net.heldout_accuracy >= 0.98 and "train_classifier.py" in net.command
    pred, conf = M.classify(images[-500:], net)
    assert (pred == labels[-500:]).mean() >= 0.97
    assert conf.shape == (500,) and 0 < conf.min() and conf.max() <= 1
    assert M.features(images[-4:], net).shape == (4, net.feature_dim)


def test_classifier_input_conventions(mnist):
    images, _ = mnist
    x = torch.from_numpy(images[-20:].copy()).float().div(255).unsqueeze(1)
    big = torch.nn.functional.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False)
    agree = (M.classify(images[-20:])[0] == M.classify(big)[0]).mean()  # uint8 (N, H, W) vs resized float
    assert agree >= 0.9
    with pytest.raises(M.MetricsError, match="grayscale"):
        M.classify(torch.rand(2, 3, 28, 28))


def test_real_vs_real_fid_is_small_and_noise_is_far(mnist):
    images, _ = mnist
    rvr = M.fid_real_vs_real(500, seed=0)
    real = M.features(images[:500])
    noise = M.features(torch.rand(500, 1, 28, 28, generator=torch.Generator().manual_seed(0)))
    # scale-free (the feature scale depends on the trained classifier): two real sets are much closer to each
    # other than real digits 0-4 are to real digits 5-9
    x, y = torch.from_numpy(images.copy()).float().div(255).unsqueeze(1), torch.from_numpy(mnist[1].copy())
    low, high = M.features(x[y < 5][:500]), M.features(x[y >= 5][:500])
    assert 5 * rvr < M.frechet_distance(low, high)
    assert M.frechet_distance(real, noise) > 20 * rvr
    assert M.fid_real_vs_real(500, seed=0) == rvr  # seeded
    with pytest.raises(M.MetricsError, match="5000"):
        M.fid_real_vs_real(6000)


def test_dsm_loss_per_level_of_a_zero_score_is_half_the_dimension(mnist):
    # s = 0: loss_i = 1/2 sum |z / sigma_i|^2 * sigma_i^2 = 1/2 |z|^2, whose mean is D/2 = 392 at every level
    images, _ = mnist
    x = torch.from_numpy(images[-200:].copy()).float().div(255).unsqueeze(1)
    sigmas = torch.tensor([1.0, 0.1, 0.01])
    seen = []
    out = M.dsm_loss_per_level(lambda x, labels: torch.zeros_like(x), x, sigmas, seed=0, on_level=seen.append)
    assert out.shape == (3,) and seen == [0, 1, 2]
    assert out == pytest.approx(np.full(3, 392.0), rel=0.03)
    again = M.dsm_loss_per_level(lambda x, labels: torch.zeros_like(x), x, sigmas, seed=0)
    assert np.array_equal(out, again)


# --- ncsn eval ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    cfg = get_preset("mnist-cpu-levels").override("model", channels=(8, 8, 8)).override("noise", num_classes=2)
    torch.manual_seed(0)
    model = build_model(cfg)
    model.data_mean = torch.full((1, 28, 28), 0.13)  # the preset starts its chains at the data mean
    return save_checkpoint(tmp_path_factory.mktemp("eval") / "tiny.pt", cfg, 7, model)


DOCUMENTED_KEYS = {"checkpoint", "step", "n", "seed", "sampler", "label", "sampling_seconds", "metric_kind",
                   "fid_classifier", "fid_real_vs_real", "fid_real_vs_real_sd", "fid_real_vs_real_draws", "fid_ratio",
                   "class_counts", "class_fractions",
                   "class_entropy_nats", "max_class_fraction", "mean_confidence", "mean_confidence_real",
                   "dsm_loss_per_level", "sigmas", "warnings"}


def test_eval_json_on_a_tiny_checkpoint(tiny_checkpoint, capsys):
    rc = main(["eval", str(tiny_checkpoint), "--n", "8", "--n-steps-each", "1", "--json", "--device", "cpu"])
    out = capsys.readouterr().out
    assert rc == 0
    res = json.loads(out)  # exactly one JSON object on stdout
    assert DOCUMENTED_KEYS <= set(res)
    assert res["n"] == 8 and res["step"] == 7 and res["metric_kind"] == "digits"
    expected = {"sampler": "annealed_langevin", "step_lr": 5e-05, "n_steps_each": 1, "L": 2, "sigma_begin": 1.0,
                "sigma_end": 0.01, "denoise": True, "ema": False, "init": "data-mean", "variance_correction": 0.5,
                "batch_size": 250, "nfe": 3}
    assert {k: res["sampler"][k] for k in expected} == expected
    assert "n=8" in res["label"] and "T=1" in res["label"] and "3 network evaluations" in res["label"]
    assert sum(res["class_counts"]) == 8 and len(res["dsm_loss_per_level"]) == 2
    assert res["fid_ratio"] == pytest.approx(res["fid_classifier"] / res["fid_real_vs_real"])
    # the floor is the mean of 5 real-vs-real draws (seeds 0..4), each the same as fid_real_vs_real alone
    draws = res["fid_real_vs_real_draws"]
    assert len(draws) == 5 and draws[1] == pytest.approx(M.fid_real_vs_real(8, seed=1))
    assert res["fid_real_vs_real"] == pytest.approx(np.mean(draws))
    assert res["fid_real_vs_real_sd"] == pytest.approx(np.std(draws, ddof=1))
    # and so is the samples' FID: against 5 draws of 8 training digits, which differ
    fids = res["fid_classifier_draws"]
    assert len(fids) == 5 and len(set(fids)) == 5 and res["fid_classifier"] == pytest.approx(np.mean(fids))
    assert res["fid_classifier_sd"] == pytest.approx(np.std(fids, ddof=1))
    assert 0 <= res["class_entropy_nats"] <= math.log(10) + 1e-9


def test_eval_table(tiny_checkpoint, capsys):
    assert main(["eval", str(tiny_checkpoint), "--n", "6", "--n-steps-each", "1", "--batch-size", "4",
                 "--no-denoise", "--quiet", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "FID, classifier features (n=6)" in out and "real vs real at n=6" in out
    assert "n=6 samples" in out and "denoise=off" in out and "T=1" in out


def test_sampling_in_batches_is_seeded(tiny_checkpoint):
    from ncsn_core.checkpoint import load_checkpoint
    from ncsn_core.evaluate import sample_batches
    model = load_checkpoint(tiny_checkpoint).model
    calls = []

    def run(seed):
        sc = SampleConfig(step_lr=5e-5, n_steps_each=2, denoise=True, init="uniform")
        return sample_batches(model, sc, (1, 28, 28), 5, seed, "cpu", 2,
                              progress=lambda stage, done, total: calls.append((done, total)))
    a, b, c = run(0), run(0), run(1)
    assert a.shape == (5, 1, 28, 28) and torch.equal(a, b) and not torch.equal(a, c)
    assert calls[-1] == (12, 12)  # 3 batches x L=2 levels x T=2 steps


@pytest.mark.parametrize("argv, message", [
    (["--n", "6000"], "n <= 5000"),
    (["--n", "0"], "must be >= 1"),
    (["--batch-size", "0"], "must be >= 1"),
])
def test_eval_bad_input_is_one_line(tiny_checkpoint, capsys, argv, message):
    assert main(["eval", str(tiny_checkpoint), "--quiet", "--device", "cpu", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_eval_missing_checkpoint_is_a_user_error(tmp_path, capsys):
    assert main(["eval", str(tmp_path / "nope.pt"), "--quiet"]) == 2
    assert "does not exist" in capsys.readouterr().err
    # a checkpoint without a data mean cannot start at it: refused before any sampling
    cfg = get_preset("mnist-cpu-levels").override("model", channels=(8, 8, 8)).override("noise", num_classes=2)
    old = save_checkpoint(tmp_path / "old.pt", cfg, 1, build_model(cfg))
    assert main(["eval", str(old), "--n", "4", "--quiet"]) == 2
    assert "no data mean image" in capsys.readouterr().err
    assert main(["eval", str(old), "--n", "4", "--n-steps-each", "1", "--init", "gaussian", "--quiet"]) == 0


# --- Inception Score / FID for colour models ------------------------------------------------------
def test_missing_inception_weights_message_names_file_and_place(tmp_path, monkeypatch):
    monkeypatch.delenv(M.INCEPTION_ENV, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    expected = tmp_path / "torch" / "hub" / "checkpoints" / M.INCEPTION_FILE
    with pytest.raises(M.MetricsError) as e:
        M.inception_weights_path()
    assert M.INCEPTION_URL in str(e.value) and str(expected) in str(e.value) and M.INCEPTION_ENV in str(e.value)
    monkeypatch.setenv(M.INCEPTION_ENV, str(tmp_path / "elsewhere.pth"))
    with pytest.raises(M.MetricsError, match="elsewhere.pth"):
        M.inception_metrics(torch.rand(10, 3, 8, 8), torch.rand(10, 3, 8, 8))


def test_colour_eval_without_weights_fails_before_sampling(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(M.INCEPTION_ENV, str(tmp_path / "missing.pth"))
    cfg = (get_preset("cifar10-paper").override("model", arch="compact", channels=(8, 8, 8))
           .override("noise", num_classes=2))
    ckpt = save_checkpoint(tmp_path / "colour.pt", cfg, 0, build_model(cfg))
    assert main(["eval", str(ckpt), "--n", "10", "--quiet", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "missing.pth" in err and M.INCEPTION_URL in err


def test_inception_metrics_with_real_weights():
    try:
        M.inception_weights_path()
    except M.MetricsError as e:
        pytest.skip(f"needs the Inception weights, not available offline: {e}")
    pytest.importorskip("torch_fidelity", reason="torch-fidelity is not installed (pip install torch-fidelity)")
    g = torch.Generator().manual_seed(0)
    res = M.inception_metrics(torch.rand(20, 3, 32, 32, generator=g), torch.rand(20, 3, 32, 32, generator=g))
    assert res["inception_score"] >= 1.0 and res["fid_inception"] >= 0 and res["n_samples"] == 20
