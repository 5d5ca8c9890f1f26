"""`ncsn eval`: sample-quality figures for a checkpoint, each labelled with its sample count and sampler settings.

Grayscale models are judged with our own digit classifier (metrics.py): FID on its features beside the
real-vs-real FID at the same n (FID is biased upward at small n, so the floor matters), the class
histogram and its entropy, mean confidence, and the DSM loss per noise level on held-out digits.
Colour models get the Inception Score and Inception FID (torch-fidelity, local weights only).
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Callable, Optional, Union

import numpy as np
import torch

from . import metrics as M
from .checkpoint import CheckpointError, load_checkpoint
from .data import DataError, builtin_mnist_set, load_dataset, preprocess
from .export import read_png_meta, save_grid
from .resources import BUILTIN_MODEL
from .config import SampleConfig
from .precision import slow_precision
from .progress import Progress  # (stage: "sample" | "metrics", done, total)
from .sampling import plan, resolve_for, sample, settings_record

EVAL_HOLDOUT = 1000  # the last 1000 built-in digits: DataConfig(holdout=1000) keeps them out of training
RVR_DRAWS = 5  # real-vs-real FID draws averaged for the floor
NN_K, NN_ROWS = 5, 10  # the neighbours grid: the first 10 samples, each beside its 5 nearest training images


def builtin_model_path() -> Path:
    """The bundled MNIST score model (ncsn_core.resources.BUILTIN_MODEL)."""
    return BUILTIN_MODEL


def sample_batches(model, sc: SampleConfig, shape: tuple, n: int, seed: int, device, batch_size: int,
                   progress: Optional[Progress] = None) -> torch.Tensor:
    """n samples of the sampler `sc`, batch_size at a time, each batch drained to its end.

    shape: (C, H, W). One torch.Generator seeded with `seed` runs through all batches, so the same seed
    and batch_size give the same samples. Returns float (n, C, H, W) on the CPU (not clamped).
    """
    g = torch.Generator(device=device).manual_seed(int(seed))
    per_batch = plan(model, sc).total_steps
    n_batches = math.ceil(n / batch_size)
    out = []
    for b in range(n_batches):
        bs = min(batch_size, n - b * batch_size)
        gen = sample(model, sc, (bs, *shape), seed=g, device=device)
        try:
            while True:
                st = next(gen)
                if progress is not None:
                    progress("sample", b * per_batch + st.global_step, n_batches * per_batch)
        except StopIteration as stop:
            out.append(stop.value.cpu())
    return torch.cat(out)


def _heldout_set(cfg) -> tuple[Optional[torch.Tensor], str, bool]:
    """Held-out real images (N, C, H, W) in [0, 1] on the CPU as stored (not dequantised), a note naming them,
    and whether the checkpoint's run never trained on them. Grayscale: the last 1000 built-in digits at the
    model's size (MNIST's test split: unseen by mnist-builtin with holdout >= 1000 and by torchvision mnist).
    Colour: the config's own holdout split. (None, why, False) when there is none."""
    if cfg.data.channels == 1:
        data = builtin_mnist_set(cfg.data.image_size)
        x = data.get_batch(torch.arange(len(data) - EVAL_HOLDOUT, len(data)))
        unseen = cfg.data.dataset == "mnist" or (cfg.data.dataset == "mnist-builtin"
                                                 and cfg.data.holdout >= EVAL_HOLDOUT)
        note = (f"the last {EVAL_HOLDOUT} built-in digits"
                + ("" if unseen else " (WARNING: this model's config did not hold them out of training)"))
        return x, note, unseen
    if cfg.data.holdout == 0:
        return None, "not computed: the config holds no examples out (data.holdout = 0)", False
    try:
        data = load_dataset(cfg.data, "holdout")
    except DataError as e:
        return None, f"not computed: {e}", False
    return data.get_batch(torch.arange(len(data))), f"the {len(data)} held-out examples of {cfg.data.dataset}", True


def _dsm_images(held: torch.Tensor, cfg, device, seed: int) -> torch.Tensor:
    """Held-out images preprocessed as in training (dequantised, no flips), for the DSM loss."""
    from dataclasses import replace
    g = torch.Generator().manual_seed(int(seed))
    return preprocess(held, replace(cfg.data, random_flip=False), generator=g).to(device)


def memorisation(x: torch.Tensor, train, held: Optional[torch.Tensor], device,
                 neighbours: Union[str, Path, None] = None, meta: Optional[dict] = None) -> dict:
    """The paper's memorisation check: each sample's L2 distance (pixels in [0, 1]) to its nearest training
    image, beside the same distance for held-out reals that were never trained on and for training images to the
    other training images (leave-one-out: fresh digits of the training distribution).

    x: samples (n, C, H, W); train: the image set the run trained on; held: unseen real images or None.
    neighbours: a PNG path for the grid of the first NN_ROWS samples | their NN_K nearest training images
    (uncurated: the first ones); meta goes into its text chunks with the distances and training indices.
    Returns the keys of metrics.memorisation_figures plus nn_distances (n values), nn_n_train, nn_n_real,
    neighbours_png (path or None) and nn_seconds.
    """
    t0 = time.perf_counter()
    dist, idx = M.nearest_neighbours(x.to(device), train, k=min(NN_K, len(train)))
    d_real = None if held is None else M.nearest_neighbours(held.to(device), train, k=1)[0][:, 0].cpu().numpy()
    d = dist[:, 0].cpu().numpy()
    out = {**M.memorisation_figures(d, d_real, M.training_loo_distances(train)),
           "nn_distances": [round(float(v), 4) for v in d], "nn_n_train": len(train),
           "nn_n_real": None if d_real is None else len(d_real), "neighbours_png": None}
    if neighbours is not None:
        out["neighbours_png"] = str(save_neighbour_grid(neighbours, x, train, dist.cpu(), idx.cpu(), meta))
    out["nn_seconds"] = round(time.perf_counter() - t0, 3)
    return out


def save_neighbour_grid(path: Union[str, Path], x: torch.Tensor, train, dist: torch.Tensor, idx: torch.Tensor,
                        meta: Optional[dict] = None) -> Path:
    """PNG grid: row i = sample i, a blank tile, then its k nearest training images, nearest first (the first
    NN_ROWS samples). dist, idx: (n, k) from metrics.nearest_neighbours. The text chunks carry the distances and
    training indices of every tile (read_neighbour_grid reads them back)."""
    rows, k = min(NN_ROWS, len(x)), idx.shape[1]
    nbrs = train.get_batch(idx[:rows].flatten()).view(rows, k, *x.shape[1:])
    gap = torch.zeros(rows, 1, *x.shape[1:])  # sets the samples apart from their neighbours, as the paper's panels
    tiles = torch.cat([x[:rows, None].cpu().clamp(0, 1), gap, nbrs], 1).flatten(0, 1)
    info = {**(meta or {}), "layout": f"row i = sample i | blank | its {k} nearest training images, nearest first "
                                      f"(L2 in pixel space, images in [0, 1]); the first {rows} samples, uncurated",
            "rows": rows, "columns": 2 + k, "tile": list(x.shape[1:]),
            "distances": [[round(float(v), 4) for v in r] for r in dist[:rows]], "train_indices": idx[:rows].tolist()}
    return save_grid(tiles, Path(path), nrow=2 + k, meta=info)


def read_neighbour_grid(path: Union[str, Path]) -> tuple[np.ndarray, dict]:
    """The tiles of a save_neighbour_grid PNG without its blank column: float32 (rows * (1 + k), C, H, W) in
    [0, 1], row by row (sample, then its k neighbours), and its metadata (layout, distances, train_indices, ...)."""
    from PIL import Image
    meta = read_png_meta(Path(path))
    with Image.open(path) as im:
        a = np.asarray(im.convert("RGB"), np.float32) / 255.0
    c, h, w = meta["tile"]
    rows, cols = meta["rows"], meta["columns"]
    pad = (a.shape[1] - cols * w) // (cols + 1)
    tiles = [a[pad + r * (h + pad):pad + r * (h + pad) + h, pad + q * (w + pad):pad + q * (w + pad) + w]
             for r in range(rows) for q in range(cols) if q != 1]
    out = np.stack(tiles).transpose(0, 3, 1, 2)
    return (out[:, :1] if c == 1 else out), meta


def _finite(v):
    """JSON-safe: NaN and infinities become None, numpy scalars become Python numbers."""
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite(x) for x in v]
    if isinstance(v, (np.floating, float)):
        return float(v) if math.isfinite(v) else None
    if isinstance(v, np.integer):
        return int(v)
    return v


def evaluate(checkpoint: Union[str, Path, None] = None, n: int = 1000, seed: int = 0, use_ema: bool = True,
             device: Union[str, torch.device] = "cpu", batch_size: int = 250,
             progress: Optional[Progress] = None, loss_per_level: bool = True,
             neighbours: Union[str, Path, None] = None, sample: Optional[SampleConfig] = None,
             **sample_overrides) -> dict:
    """Sample n images from a checkpoint and measure them.

    checkpoint: a .pt file or run folder (its newest checkpoint); None = the built-in MNIST model.
    sample: the sampler to run in place of the checkpoint config's `sample` section (a whole SampleConfig, as the
    studio's form gives one: its None ladder means the model's own). sample_overrides: SampleConfig fields
    (sampler, step_lr, n_steps_each, ...) laid over that; None or absent keeps its value (the CLI's flags).
    loss_per_level: also the DSM loss per level on held-out images.
    neighbours: a .png path for the grid of the first 10 samples beside their 5 nearest training images.
    progress(stage, done, total) is called while sampling ("sample", Langevin steps over all batches)
    and while measuring ("metrics"). Everything is seeded by `seed`.

    Returns a JSON-ready dict. Always: checkpoint, step, config_name, dataset, n, seed, device, sampler
    {every SampleConfig field, L, sigmas, nfe, ema, batch_size}, label (one line
    naming n and the sampler settings, for figures), sampling_seconds, eval_seconds, nonfinite_samples,
    dsm_loss_per_level (L values, or None), sigmas, dsm_images, anneal_power, warnings, metric_kind.
    metric_kind "digits" (1 channel) adds: fid_classifier (mean over RVR_DRAWS reference draws), fid_classifier_sd,
    fid_classifier_draws, fid_real_vs_real (mean over RVR_DRAWS draws),
    fid_real_vs_real_sd, fid_real_vs_real_draws, fid_real_vs_real_note, fid_ratio, class_counts,
    class_fractions, class_entropy_nats, class_entropy_uniform_nats, max_class_fraction, mean_confidence,
    mean_confidence_real, classifier {path, heldout_accuracy, feature_dim}.
    metric_kind "inception" (3 channels) adds: inception_score, inception_score_std, fid_inception.
    Memorisation (see `memorisation`; None when the training set cannot be read, real-based ones when there are no
    unseen reals): nn_distances (each sample's L2 distance, pixels in [0, 1], to its nearest training image),
    nn_distance_median, nn_distance_p5, nn_distance_min, the held-out reals' nn_distance_median_real,
    nn_distance_p5_real, nn_distance_p1_real, share_closer_than_real_p1 and _p5 (samples nearer a training image
    than that percentile of the reals: possible copies), nn_n_train, nn_n_real, nn_reference, nn_reference_real,
    neighbours_png, nn_seconds.
    Raises CheckpointError (bad checkpoint) or MetricsError (bad n, missing classifier or Inception weights).
    """
    t_start = time.perf_counter()
    if neighbours is not None and Path(neighbours).suffix.lower() != ".png":
        raise M.MetricsError(f"neighbours={neighbours}: the neighbours grid is a PNG image; name a .png file")
    if checkpoint is None and not builtin_model_path().exists():
        raise CheckpointError(f"no checkpoint given and the built-in model {builtin_model_path()} is missing: "
                              f"train one with `ncsn train --preset mnist-cpu` and pass its run folder")
    ld = load_checkpoint(Path(checkpoint) if checkpoint is not None else builtin_model_path(), device=device,
                         use_ema=use_ema)
    cfg, model = ld.config, ld.model
    real_colour = _check_inputs(cfg, n, batch_size)  # fail now, not after minutes of sampling
    sc, settings = _settings(ld, batch_size, sample or ld.config.sample, sample_overrides)
    label = f"n={n} samples, seed {seed}; {settings['description']}, EMA={'on' if settings['ema'] else 'off'}"
    torch_device = next(model.parameters()).device

    # the precision may come from the checkpoint's own sampler, not only from a flag: judge the one that runs
    slow = slow_precision(sc.precision, torch_device)
    warnings = [slow] if slow else []
    t0 = time.perf_counter()
    x = sample_batches(model, sc, (cfg.data.channels, cfg.data.image_size, cfg.data.image_size), n, seed,
                       torch_device, batch_size, progress)
    sampling_seconds = time.perf_counter() - t0
    bad = int((~torch.isfinite(x.reshape(n, -1))).any(dim=1).sum())
    if bad:  # a diverged chain: count it, and let it score as a blank image rather than poison every figure
        warnings.append(f"{bad} of {n} samples had NaN/inf pixels (diverged chains; try a smaller step_lr); "
                        f"they were set to 0 before measuring")
        x = torch.nan_to_num(x, nan=0.0, posinf=1.0, neginf=0.0)
    res: dict = {"checkpoint": str(ld.path), "step": ld.step, "config_name": cfg.name, "dataset": cfg.data.dataset,
                 "n": n, "seed": seed, "device": str(torch_device), "sampler": settings, "label": label,
                 "sampling_seconds": round(sampling_seconds, 3), "nonfinite_samples": bad}

    n_ticks = 5 + settings["L"]
    tick = (lambda done: progress("metrics", done, n_ticks)) if progress is not None else (lambda done: None)
    tick(0)
    if real_colour is not None:
        idx = torch.from_numpy(np.random.default_rng(seed).choice(len(real_colour), n, replace=False))
        ins = M.inception_metrics(x, real_colour.get_batch(idx), torch_device, seed=seed)
        res.update(metric_kind="inception", **{k: ins[k] for k in ("inception_score", "inception_score_std",
                                                                      "fid_inception")})
    else:
        if cfg.data.dataset not in ("mnist-builtin", "mnist"):
            warnings.append(f"the digit classifier knows MNIST digits; on {cfg.data.dataset} its figures are only "
                            f"a rough guide")
        res.update(metric_kind="digits", **digit_metrics(x, seed, tick))
    tick(4)

    held, note, unseen = _heldout_set(cfg)
    meta = {"checkpoint": str(ld.path), "step": ld.step, "label": label, "seed": seed, "config": cfg.to_dict()}
    res.update(_memorisation_of(x, cfg, real_colour, held if unseen else None, note, torch_device, neighbours, meta,
                                warnings))
    tick(5)
    res.update({"sigmas": [float(f"{v:.6g}") for v in model.sigmas.tolist()], "anneal_power": cfg.train.anneal_power,
                "dsm_images": note if loss_per_level else "not asked for", "dsm_loss_per_level": None})
    if held is not None and loss_per_level:
        res["dsm_loss_per_level"] = M.dsm_loss_per_level(model, _dsm_images(held, cfg, torch_device, seed),
                                                         model.sigmas, seed=seed, anneal_power=cfg.train.anneal_power,
                                                         on_level=lambda i: tick(6 + i)).tolist()
    elif loss_per_level:
        warnings.append(f"DSM loss per level {note}")
    res["warnings"] = warnings
    res["eval_seconds"] = round(time.perf_counter() - t_start, 3)
    return _finite(res)


def _memorisation_of(x, cfg, real_colour, held, held_note: str, device, neighbours, meta: dict,
                     warnings: list) -> dict:
    """`memorisation` against exactly the images the checkpoint's run trained on (its config.data, 'train'
    split: the first 9,000 built-in digits for mnist-builtin with holdout 1000), with held-out reals only when
    the run never saw them; what cannot be measured becomes a warning and None figures."""
    try:
        train = real_colour if real_colour is not None else load_dataset(cfg.data, "train")
    except DataError as e:
        warnings.append(f"memorisation check skipped: the training images cannot be loaded ({e})"
                        + ("; no neighbours grid written" if neighbours is not None else ""))
        return dict.fromkeys([*M.MEMORISATION_FIGURES, "nn_distances", "nn_n_train", "nn_n_real",
                              "nn_reference", "nn_reference_real", "neighbours_png", "nn_seconds"])
    if held is None:
        warnings.append(f"memorisation check: no unseen real images to compare with ({held_note})")
    where = f"the {len(train)} training images of {cfg.data.dataset} (config.data: holdout {cfg.data.holdout})"
    out = memorisation(x, train, held, device, neighbours, {**meta, "training_images": where})
    return {**out, "nn_reference": where, "nn_reference_real": held_note if held is not None else None}


def _check_inputs(cfg, n: int, batch_size: int):
    """Raise MetricsError for settings that cannot be measured. Colour: also check the Inception weights and
    torch-fidelity, and return the real training images for FID (None for grayscale)."""
    if cfg.model.arch == "mlp":
        raise M.MetricsError("this checkpoint is a 2-D toy model: evaluate it with `ncsn toy`, not `ncsn eval`")
    if batch_size < 1:
        raise M.MetricsError(f"batch_size={batch_size} must be >= 1")
    if cfg.data.channels != 3:
        if not 2 <= n <= 5000:
            raise M.MetricsError(f"n={n}: use 2 <= n <= 5000 (the real-vs-real FID beside it needs two disjoint "
                                 f"sets of n among the 10,000 built-in digits)")
        return None
    M.check_inception_available()
    if n < 10:
        raise M.MetricsError(f"n={n}: the Inception Score needs at least 10 samples (one per split)")
    try:
        train = load_dataset(cfg.data, "train")
    except DataError as e:
        raise M.MetricsError(f"the real images for Inception FID cannot be loaded: {e}") from e
    if len(train) < n:
        raise M.MetricsError(f"n={n} exceeds the {len(train)} real training images for FID: lower --n")
    return train


def _settings(ld, batch_size: int, base: SampleConfig, overrides: dict) -> tuple[SampleConfig, dict]:
    """The sampler that labels every figure: `base` with the overrides; with its ladder (L, sigmas, ends), network
    evaluations per sample and a one-line description."""
    try:
        sc, pl = resolve_for(ld.model, base, **overrides)
    except (ValueError, TypeError) as e:
        raise M.MetricsError(str(e)) from e
    out = settings_record(sc, pl)
    sig = out["sigmas"]
    out.update({"L": len(sig), "sigma_begin": sig[0], "sigma_end": sig[-1],
                "ema": ld.used_ema, "batch_size": int(batch_size)})
    return sc, out


def reference_draws(train_images, n: int, seed: int) -> list:
    """The RVR_DRAWS sets of n training digits that a sample's FID is measured against, draw k seeded seed + k."""
    return [train_images[np.random.default_rng(seed + k).choice(len(train_images), n, replace=False)]
            for k in range(RVR_DRAWS)]


def digit_metrics(x: torch.Tensor, seed: int = 0, tick: Callable[[int], None] = lambda done: None) -> dict:
    """Classifier figures for digit samples x (n, 1, H, W), float (clamped to [0, 1] before measuring).

    FID vs n random digits of the built-in training split (the first 9000; mean of RVR_DRAWS draws), the
    real-vs-real FID at the same n (mean of RVR_DRAWS draws)
    and their ratio (1 = as close as two real sets), class histogram, its entropy and top fraction, mean
    confidence (beside that on the 1000 held-out real digits). n in [2, 5000].
    """
    n = len(x)
    net = M.load_classifier()
    labels, conf = M.classify(x, net)
    tick(1)
    images, _ = M.load_builtin_mnist()
    n_train = len(images) - EVAL_HOLDOUT
    # one draw of n reference digits is as noisy as the floor's (the built-in model's 1,000 samples: 15.8 to 25.2
    # over 5 draws): both sides average RVR_DRAWS draws, draw k seeded seed + k
    f_x = M.features(x, net)
    fids = [M.frechet_distance(f_x, M.features(ref, net)) for ref in reference_draws(images[:n_train], n, seed)]
    fid = float(np.mean(fids))
    tick(2)
    # one real-vs-real draw is noisy too (n=1000: 12.9 to 28.0 over 8 draws, sd 4.4)
    draws = [M.fid_real_vs_real(n, seed + k, net) for k in range(RVR_DRAWS)]
    rvr = float(np.mean(draws))
    tick(3)
    held = images[-EVAL_HOLDOUT:]
    _, conf_real = M.classify(held, net)
    counts = M.class_histogram(labels)
    conf, conf_real = np.asarray(conf, np.float64), np.asarray(conf_real, np.float64)
    ink = float(x.clamp(0, 1).mean())
    ink_real = float(M.prepare_digits(held, torch.device("cpu")).mean())
    return {
        "fid_classifier": fid, "fid_classifier_sd": float(np.std(fids, ddof=1)), "fid_classifier_draws": fids,
        "fid_real_vs_real": rvr, "fid_ratio": fid / rvr if rvr > 0 else None,
        "fid_real_vs_real_sd": float(np.std(draws, ddof=1)), "fid_real_vs_real_draws": draws,
        "fid_real_vs_real_note": f"mean of {RVR_DRAWS} draws of two disjoint random sets of {n} built-in digits "
                                 f"(seeds {seed}..{seed + RVR_DRAWS - 1})",
        "fid_reference": f"mean over {RVR_DRAWS} draws of {n} random digits of the built-in training split (first "
                         f"{n_train}; seeds {seed}..{seed + RVR_DRAWS - 1})",
        "class_counts": counts.tolist(), "class_fractions": (counts / n).tolist(),
        "class_entropy_nats": M.entropy_nats(counts), "class_entropy_uniform_nats": math.log(10),
        "max_class_fraction": float(counts.max() / n), "mean_confidence": float(conf.mean()),
        "mean_confidence_real": float(conf_real.mean()),
        # the share of samples the classifier is unsure of (real held-out digits beside it)
        "share_confidence_below_0.9": float((conf < 0.9).mean()), "share_confidence_below_0.5": float((conf < 0.5).mean()),
        "share_confidence_below_0.9_real": float((conf_real < 0.9).mean()),
        "share_confidence_below_0.5_real": float((conf_real < 0.5).mean()),
        # ink: the mean pixel value in [0, 1] (too much = thick strokes, too little = faint ones)
        "ink": ink, "ink_real": ink_real, "ink_ratio": ink / ink_real if ink_real > 0 else None,
        "classifier": {"path": str(net.path), "heldout_accuracy": net.heldout_accuracy, "feature_dim": net.feature_dim},
    }


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------
def format_report(r: dict) -> str:
    """The human-readable table `ncsn eval` prints."""
    s = r["sampler"]
    lines = [f"ncsn eval: {r['checkpoint']} (step {r['step']}, {'EMA' if s['ema'] else 'raw'} weights, {r['device']})",
             f"  {r['label']}",
             f"  sigma {s['sigma_begin']:g} -> {s['sigma_end']:g}, init {s['init']}, batch {s['batch_size']}; "
             f"sampling {r['sampling_seconds']:.1f} s, total {r['eval_seconds']:.1f} s", ""]
    row = "  {:<40}{:>12}   {}"
    lines.append(row.format("metric", "samples", "reference"))
    if r["metric_kind"] == "digits":
        n = r["n"]
        lines += [
            row.format(f"FID, classifier features (n={n})",
                       f"{r['fid_classifier']:.2f} ± {r['fid_classifier_sd']:.2f}",
                       f"{r['fid_real_vs_real']:.2f} ± {r['fid_real_vs_real_sd']:.2f} real vs real at n={n} "
                       f"(mean of {len(r['fid_real_vs_real_draws'])} draws); ratio {r['fid_ratio']:.2f}"
                       if r["fid_ratio"] is not None else f"{r['fid_real_vs_real']:.2f} real vs real"),
            row.format("class entropy (nats)", f"{r['class_entropy_nats']:.3f}",
                       f"{r['class_entropy_uniform_nats']:.3f} if uniform"),
            row.format("max class fraction", f"{r['max_class_fraction']:.3f}", "0.100 if uniform"),
            row.format("mean classifier confidence", f"{r['mean_confidence']:.3f}",
                       f"{r['mean_confidence_real']:.3f} on {EVAL_HOLDOUT} held-out real digits"),
            row.format("share with confidence < 0.9", f"{r['share_confidence_below_0.9']:.3f}",
                       f"{r['share_confidence_below_0.9_real']:.3f} real"),
            row.format("share with confidence < 0.5", f"{r['share_confidence_below_0.5']:.3f}",
                       f"{r['share_confidence_below_0.5_real']:.3f} real"),
            row.format("ink (mean pixel)", f"{r['ink']:.4f}",
                       f"{r['ink_real']:.4f} real; ratio {r['ink_ratio']:.3f}"),
            "", f"  class histogram (n={n}): " + "  ".join(f"{d}:{c}" for d, c in enumerate(r["class_counts"])),
            f"  classifier: {r['classifier']['path']} (held-out accuracy {r['classifier']['heldout_accuracy']:.4f})"]
    else:
        lines += [row.format(f"Inception Score (n={r['n']})", f"{r['inception_score']:.3f}",
                             f"+- {r['inception_score_std']:.3f} over 10 splits"),
                  row.format(f"FID, Inception features (n={r['n']})", f"{r['fid_inception']:.2f}",
                             f"vs {r['n']} real training images")]
    lines += _memorisation_lines(r, row)
    lines += ["", f"  DSM loss per noise level on {r['dsm_images']} "
                  f"(sigma^{r['anneal_power']:g}-weighted, the paper's loss):"]
    if r["dsm_loss_per_level"] is not None:
        lines.append("    level     sigma        loss")
        lines += [f"    {i + 1:>5}  {sg:>8.4f}  {v:>10.3f}"
                  for i, (sg, v) in enumerate(zip(r["sigmas"], r["dsm_loss_per_level"]))]
    lines += [f"  warning: {w}" for w in r["warnings"]]
    return "\n".join(lines)


def _memorisation_lines(r: dict, row: str) -> list:
    """The report's memorisation section: nearest-training-image distances of samples beside held-out reals."""
    if r.get("nn_distance_median") is None:
        return []
    n, m = r["n"], r["nn_n_real"]
    real = lambda key, text: (f"{r[key]:.3f} {text}" if r[key] is not None else "no unseen reals")  # noqa: E731

    def loo(stat: str) -> str:  # training images to the other training images: fresh digits of their distribution
        v = r.get(f"nn_distance_{stat}_train")
        return "" if v is None else f"; {v:.3f} training images, leave-one-out"
    lines = ["", f"  memorisation: L2 distance (pixels in [0, 1]) to the nearest of {r['nn_reference']} "
                 f"({r['nn_seconds']:.1f} s)",
             row.format(f"median NN distance (n={n})", f"{r['nn_distance_median']:.3f}",
                        real("nn_distance_median_real", f"held-out reals (n={m})") + loo("median")),
             row.format(f"5th percentile NN distance (n={n})", f"{r['nn_distance_p5']:.3f}",
                        real("nn_distance_p5_real", f"held-out reals (n={m})") + loo("p5")),
             row.format(f"smallest NN distance (n={n})", f"{r['nn_distance_min']:.3f}",
                        real("nn_distance_p1_real", f"1st percentile of held-out reals (n={m})"))]
    if r["share_closer_than_real_p1"] is not None:
        for p in (1, 5):
            share = r[f"share_closer_than_real_p{p}"]
            lines.append(row.format(f"share closer than real p{p} (n={n})", f"{share:.3f}",
                                    f"{round(share * n)} of {n}; {p / 100:.2f} if like unseen reals"
                                    + ("; these are possible copies" if p == 1 else "")))
    if r.get("neighbours_png"):
        lines.append(f"  neighbours grid (first {min(NN_ROWS, n)} samples | their {NN_K} nearest training images): "
                     f"{r['neighbours_png']}")
    return lines


def cmd_eval(args, user_error: type, sample_overrides: Callable[..., dict]) -> int:
    """Run `ncsn eval`; input problems raise `user_error` with one line."""
    from .training import pick_device
    for name, v in (("--n", args.n), ("--batch-size", args.batch_size)):
        if v is not None and v < 1:
            raise user_error(f"{name} must be >= 1 (got {v})")
    if args.step_lr is not None and args.step_lr <= 0:
        raise user_error(f"--step-lr must be > 0 (got {args.step_lr})")
    try:
        device = pick_device(args.device)
    except (ValueError, RuntimeError) as e:
        raise user_error(str(e)) from e
    from .progress import staged
    overrides = sample_overrides(args)  # --config, --set sample.*, then the sampler flags
    progress, close = staged(not args.json and not args.quiet)
    try:
        res = evaluate(args.checkpoint, n=args.n, seed=args.seed, use_ema=not args.no_ema, device=device,
                       batch_size=args.batch_size, progress=progress, neighbours=args.neighbours, **overrides)
    except (CheckpointError, M.MetricsError, DataError) as e:
        raise user_error(str(e)) from e
    finally:
        close()
    print(json.dumps(res) if args.json else format_report(res))
    return 0


def add_eval_parser(subparsers, common: Callable, sampler_flags: Callable, sample_overrides: Callable[..., dict],
                    user_error: type) -> None:
    """Register `ncsn eval [CHECKPOINT] --n N --seed S ...` on the `ncsn` subparsers; `common` adds
    --json/--device/--quiet; `sample_overrides(args)` reads the sampler settings (cli.py: passed in, as
    cli imports this module); args.func(args) runs it and returns the exit code."""
    p = subparsers.add_parser("eval", help="sample quality: classifier FID beside its real-vs-real floor, class "
                                           "histogram, DSM loss per level (IS/FID for colour models)")
    p.add_argument("checkpoint", nargs="?", help="checkpoint .pt or run folder (default: the built-in MNIST model)")
    p.add_argument("--n", type=int, default=1000, help="number of samples (default 1000; FID depends on it)")
    sampler_flags(p, " (default: config)")
    p.add_argument("--batch-size", type=int, default=250, help="samples per Langevin batch (default 250)")
    p.add_argument("--neighbours", metavar="PATH", help="write a .png grid: each of the first 10 samples beside its "
                                                       "5 nearest training images (distances in its metadata)")
    common(p)
    p.set_defaults(func=lambda args: cmd_eval(args, user_error, sample_overrides))
