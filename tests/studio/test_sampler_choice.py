"""The samplers of SampleConfig in the Sample, Inpaint and Evaluate tabs: annealed Langevin, predictor-corrector and
the Heun ODE, driven like a user on a tiny continuous-sigma model and a tiny level-conditioned one."""
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt

from conftest import close_tab, set_text, tiny_sigma_config, wait_idle
from ncsn_core.config import ConfigError, ModelConfig, SampleConfig, check_sampler
from ncsn_core.export import read_png_meta
from studio.eval_tab import EvalTab
from studio.sample_tab import SampleTab


def _engine_error(fn, *args) -> str:
    with pytest.raises(ConfigError) as e:
        fn(*args)
    return str(e.value)


def choose(combo, value):
    """Pick an item as the user does from the list (a disabled item cannot be picked)."""
    index = combo.findData(value)
    assert index >= 0 and combo.model().item(index).isEnabled(), f"{value} is not offered"
    combo.setCurrentIndex(index)


def shown(form, widget) -> bool:
    return widget.isVisibleTo(form)


def _states(tab):
    seen = []
    tab.controller.event_emitted.connect(lambda ev: seen.append(ev) if type(ev).__name__ == "LangevinState" else None)
    return seen


@pytest.fixture
def sample_tab(qtbot):
    t = SampleTab()
    qtbot.addWidget(t)
    t.resize(1300, 900)
    t.show()
    yield t
    close_tab(qtbot, t)


def _load(qtbot, tab, path):
    tab.picker.set_path(path)
    qtbot.waitUntil(lambda: tab.info is not None and tab.info.path == str(Path(path).resolve()), timeout=30000)


def _run(qtbot, tab):
    assert tab.run_bar.run_button.isEnabled(), tab.run_bar.problem()
    qtbot.mouseClick(tab.run_bar.run_button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, tab.controller)
    assert tab.banner.isHidden(), tab.banner.text()


# --- Sample tab ---------------------------------------------------------------------------------
def test_the_form_fills_from_a_continuous_checkpoint_and_shows_only_heuns_fields(qtbot, sample_tab,
                                                                               tiny_sigma_checkpoint):
    form = sample_tab.form
    _load(qtbot, sample_tab, tiny_sigma_checkpoint)
    own = tiny_sigma_config().sample                                    # heun, 5 sigmas 16 -> 0.002, gaussian start
    assert form.sampler() == "heun" and form.sample_config() == own
    assert form.ladder.num_levels_edit.text() == "5" and form.ladder.sigma_end_edit.text() == "0.002"
    assert form.ladder.isEnabled() and "\u03c3 steps" in form.ladder.rows.labelForField(
        form.ladder.num_levels_edit).text()
    assert shown(form, form.rho_edit) and shown(form, form.init_combo) and shown(form, form.ladder)
    for w in (form.step_lr_edit, form.steps_edit, form.snr_edit, form.kappa_spin, form.denoise_box, form.alpha_label):
        assert not shown(form, w)
    choose(form.sampler_combo, "pc")
    assert shown(form, form.steps_edit) and shown(form, form.snr_edit) and not shown(form, form.rho_edit)
    assert form.rows.labelForField(form.steps_edit).text() == "Corrector steps T"
    assert not shown(form, form.step_lr_edit) and not shown(form, form.denoise_box)
    choose(form.sampler_combo, "annealed_langevin")
    for w in (form.step_lr_edit, form.steps_edit, form.kappa_spin, form.denoise_box, form.alpha_label):
        assert shown(form, w)
    assert not shown(form, form.snr_edit) and not shown(form, form.rho_edit)


def test_heun_runs_one_state_and_one_caption_per_sigma_step(qtbot, sample_tab, tiny_sigma_checkpoint, tmp_path):
    form = sample_tab.form
    _load(qtbot, sample_tab, tiny_sigma_checkpoint)
    choose(form.sampler_combo, "annealed_langevin")
    choose(form.sampler_combo, "heun")
    set_text(qtbot, form.n_edit, "4")
    set_text(qtbot, form.ladder.num_levels_edit, "6")
    set_text(qtbot, form.rho_edit, "5")
    set_text(qtbot, form.exact_edit, "0")  # the network at every sigma: 2N - 1 network evaluations
    # Heun runs its own schedule: the level subset is off, and says why
    levels = sample_tab.levels
    assert not levels.level_list.isEnabled() and "Heun" in levels.toolTip() and "Heun" in levels.note.text()
    assert not levels.level_list.isVisibleTo(sample_tab)
    states = _states(sample_tab)
    _run(qtbot, sample_tab)
    r = sample_tab.result
    assert r.completed and r.x.shape == (4, 1, 28, 28)
    assert [s.level for s in states] == list(range(6)) and all(s.n_levels == 6 for s in states)
    assert sample_tab.started.plan.total_steps == 6 and sample_tab.started.plan.nfe == 11
    sigmas = [s.sigma for s in states]
    assert sigmas[0] == pytest.approx(16.0) and sigmas[-1] == pytest.approx(0.002, rel=1e-4)
    assert sample_tab.run_bar.progress.maximum() == 6 and sample_tab.run_bar.progress.value() == 6
    # one snapshot per sigma step, the last one the final samples; captions name the sigma step
    chains = sample_tab.chains
    assert len(chains.snapshots) == 6 and chains.timeline.maximum() == 5
    assert "\u03c3 step 6/6" in chains.level_label.text()
    chains.timeline.setValue(0)
    assert chains.caption.text().startswith("\u03c3 step 1/6, \u03c3 = 16 \u2192 ")
    chains.timeline.setValue(4)
    assert chains.caption.text().startswith(f"\u03c3 step 5/6, \u03c3 = {sigmas[4]:.3g} \u2192 ")
    chains.timeline.setValue(5)
    assert "\u03c3 step 6/6" in chains.caption.text() and "final" in chains.caption.text()
    assert "level" not in chains.caption.text() and "denoised" not in chains.caption.text()
    assert "Heun ODE, 6 sigmas" in sample_tab.run_bar.status.text()
    # exports name the sampler and its settings
    assert (r.meta["sampler"], r.meta["num_levels"], r.meta["rho"], r.meta["nfe"]) == ("heun", 6, 5.0, 11)
    meta = read_png_meta(sample_tab.export("grid", str(tmp_path / "grid.png")))
    assert (meta["sampler"], meta["num_levels"], meta["rho"], meta["sigma_end"]) == ("heun", 6, 5.0, 0.002)
    assert meta["description"].startswith("Heun ODE")
    strip = read_png_meta(sample_tab.export("strip", str(tmp_path / "strip.png")))
    assert len(strip["columns_sigma"]) == 6


def test_pc_runs_corrector_and_predictor_steps_on_a_subset_of_levels(qtbot, sample_tab, tiny_sigma_checkpoint):
    form = sample_tab.form
    _load(qtbot, sample_tab, tiny_sigma_checkpoint)
    choose(form.sampler_combo, "pc")
    assert not sample_tab.levels.level_list.isEnabled()          # the checkpoint's own ladder (5 sigmas) is set
    assert "sampling ladder is set" in sample_tab.levels.level_list.toolTip()
    for edit in form.ladder.edits():                              # empty: the model's training ladder
        set_text(qtbot, edit, "")
    assert sample_tab.levels.level_list.isEnabled() and sample_tab.levels.level_list.isVisibleTo(sample_tab)
    sample_tab.levels.level_list.item(1).setCheckState(Qt.CheckState.Unchecked)
    set_text(qtbot, form.n_edit, "2")
    set_text(qtbot, form.steps_edit, "2")
    set_text(qtbot, form.snr_edit, "0.1")
    states = _states(sample_tab)
    _run(qtbot, sample_tab)
    model_sigmas = sample_tab.info.sigmas
    assert sample_tab.started.model_levels == (0, 2)
    assert sample_tab.started.plan.total_steps == 2 * (2 + 1)     # per level: T corrector steps + 1 predictor step
    assert sample_tab.run_bar.progress.maximum() == 6 and states[-1].global_step == 6 and states[-1].final
    assert {round(s.sigma, 6) for s in states} == {round(model_sigmas[0], 6), round(model_sigmas[2], 6)}
    assert sample_tab.chains.levels_seen == [0, 1] and len(sample_tab.chains.snapshots) == 2
    assert "predictor" in sample_tab.chains.level_label.text()
    assert (sample_tab.result.meta["sampler"], sample_tab.result.meta["snr"]) == ("pc", 0.1)
    assert sample_tab.result.meta["levels"] == [0, 2] and sample_tab.result.meta["num_levels"] is None


def test_heun_and_another_ladder_are_off_for_a_level_model(qtbot, sample_tab, tiny_checkpoint):
    form = sample_tab.form
    _load(qtbot, sample_tab, tiny_checkpoint)
    heun = form.sampler_combo.model().item(form.sampler_combo.findData("heun"))
    why = _engine_error(check_sampler, SampleConfig(sampler="heun"), ModelConfig())
    assert not heun.isEnabled() and why in heun.toolTip()
    assert form.sampler_combo.model().item(form.sampler_combo.findData("pc")).isEnabled()
    assert not form.ladder.isEnabled() and "conditioned on its training levels" in form.ladder.toolTip()
    # the keyboard skips it: Down from pc stays on pc
    choose(form.sampler_combo, "pc")
    form.sampler_combo.setFocus()
    qtbot.keyClick(form.sampler_combo, Qt.Key.Key_Down)
    assert form.sampler() == "pc"
    # forced anyway (as a config could name it): the engine's message, and Run stays off
    form.sampler_combo.setCurrentIndex(form.sampler_combo.findData("heun"))
    assert not sample_tab.run_bar.run_button.isEnabled() and sample_tab.run_bar.problem() == why
    assert sample_tab.run() is False and sample_tab.controller.state == "idle"


def test_a_bad_per_level_step_list_shows_the_engines_message_and_does_not_start(qtbot, sample_tab, tiny_checkpoint):
    form = sample_tab.form
    _load(qtbot, sample_tab, tiny_checkpoint)                      # 3 levels, annealed Langevin
    set_text(qtbot, form.steps_edit, "5,5")
    expected = _engine_error(SampleConfig(n_steps_each=(5, 5)).steps_per_level, 3)
    assert "2 entries but the ladder has 3 levels" in expected
    assert sample_tab.run_bar.problem() == expected and not sample_tab.run_bar.run_button.isEnabled()
    qtbot.mouseClick(sample_tab.run_bar.run_button, Qt.MouseButton.LeftButton)
    assert sample_tab.controller.state == "idle" and sample_tab.run() is False and sample_tab.result is None
    set_text(qtbot, form.steps_edit, "5,-1,2")
    assert sample_tab.run_bar.problem() == _engine_error(lambda: SampleConfig(n_steps_each=(5, -1, 2))) and \
        "one whole number >= 0 per level" in sample_tab.run_bar.problem()
    set_text(qtbot, form.steps_edit, "5,x,2")
    assert "not whole numbers" in sample_tab.run_bar.problem()
    # two levels checked: a list of two fits, one of three does not
    sample_tab.levels.level_list.item(1).setCheckState(Qt.CheckState.Unchecked)
    set_text(qtbot, form.steps_edit, "2,1,3")
    assert sample_tab.run_bar.problem() == _engine_error(SampleConfig(n_steps_each=(2, 1, 3)).steps_per_level, 2)
    sample_tab.levels.level_list.item(1).setCheckState(Qt.CheckState.Checked)
    set_text(qtbot, form.n_edit, "2")
    states = _states(sample_tab)
    _run(qtbot, sample_tab)                                         # a valid per-level schedule runs as given
    assert sample_tab.run_bar.progress.maximum() == 6
    assert [max(s.step for s in states if s.level == i) for i in range(3)] == [2, 1, 3]
    assert sample_tab.result.meta["n_steps_each"] == (2, 1, 3)


# --- Inpaint tab --------------------------------------------------------------------------------
def test_inpainting_with_heun_keeps_the_known_pixels_exactly(qtbot, inpaint_tab, tiny_sigma_checkpoint, tmp_path):
    tab = inpaint_tab
    assert tab.load_checkpoint(tiny_sigma_checkpoint)
    assert tab.form.sampler() == "heun"                        # the checkpoint's own sampler
    choose(tab.form.sampler_combo, "pc")
    choose(tab.form.sampler_combo, "heun")
    set_text(qtbot, tab.form.ladder.num_levels_edit, "4")
    tab.editor.canvas.set_mask(np.arange(28)[:, None].repeat(28, 1) >= 14)   # fill the bottom half
    tab.form.n_edit.set_value(2)
    with qtbot.waitSignal(tab.run_finished, timeout=60000):
        assert tab.run()
    r = tab.results()
    known = tab.editor.canvas.known_mask()
    img = tab.image()
    assert known[:14].all() and not known[14:].any()
    assert np.array_equal(r["raw"][:, :, known], np.broadcast_to(img[None], r["raw"].shape)[:, :, known])
    assert not np.allclose(r["raw"][:, :, ~known], img[None][:, :, ~known])   # the painted half was filled
    assert tab.run_bar.progress.maximum() == 4 and tab.run_bar.progress.value() == 4
    assert tab.live.strip_view.count() == 4 and "\u03c3 step 4/4" in tab.live.chains.level_label.text()
    assert "Heun ODE, 4 sigmas" in tab.result.note.text()
    meta = read_png_meta(tab.export_row(tmp_path / "row.png"))
    assert (meta["sampler"], meta["num_levels"]) == ("heun", 4) and meta["description"].startswith("Heun ODE")


# --- Evaluate tab -------------------------------------------------------------------------------
def test_evaluate_passes_the_chosen_sampler(qtbot, tiny_sigma_checkpoint):
    tab = EvalTab()
    qtbot.addWidget(tab)
    tab.show()
    tab.picker.set_path(tiny_sigma_checkpoint)
    qtbot.waitUntil(lambda: tab.info is not None, timeout=30000)
    choose(tab.form.sampler_combo, "heun")
    set_text(qtbot, tab.form.ladder.num_levels_edit, "4")
    set_text(qtbot, tab.form.ladder.sigma_begin_edit, "8")
    set_text(qtbot, tab.form.n_edit, "10")
    set_text(qtbot, tab.batch_edit, "10")
    set_text(qtbot, tab.form.exact_edit, "0")
    qtbot.mouseClick(tab.run_bar.run_button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, tab.controller, timeout=120000)
    result = tab.results.result
    assert result is not None, tab.banner.text()
    s = result["sampler"]
    assert (s["sampler"], s["num_levels"], s["L"], s["nfe"], s["sigmas"][0]) == ("heun", 4, 4, 7, 8.0)
    assert s["description"] in tab.results.caption.text()
    table = tab.results.table
    rows = {table.item(r, 0).text(): table.item(r, 1).text() for r in range(table.rowCount())}
    assert rows["sampler"] == s["description"]


def test_evaluate_runs_the_forms_sampler_on_the_models_own_ladder(tiny_sigma_checkpoint):
    """The checkpoint's sampler is Heun on its own 5-sigma ladder 16 -> 0.002; the form's pc with an empty ladder
    runs on the model's training ladder, not the checkpoint sampler's."""
    from ncsn_core.config import SampleConfig
    from ncsn_core.evaluate import evaluate
    noise = tiny_sigma_config().noise
    r = evaluate(tiny_sigma_checkpoint, n=4, batch_size=4, loss_per_level=False,
                 sample=SampleConfig(sampler="pc", n_steps_each=1))
    s = r["sampler"]
    assert (s["sampler"], s["num_levels"], s["L"]) == ("pc", None, noise.num_classes)
    assert (s["sigma_begin"], s["sigma_end"]) == (pytest.approx(noise.sigma_begin), pytest.approx(noise.sigma_end))
    r = evaluate(tiny_sigma_checkpoint, n=4, batch_size=4, loss_per_level=False)      # no sampler: the checkpoint's
    assert (r["sampler"]["sampler"], r["sampler"]["L"], r["sampler"]["sigma_end"]) == ("heun", 5, 0.002)


@pytest.fixture(scope="module")
def guided_sigma_checkpoint(tmp_path_factory, tiny_sigma_checkpoint) -> str:
    """tiny_sigma_checkpoint carrying another untrained network of the same recipe as its guide (guidance 2)."""
    import torch
    from ncsn_core.checkpoint import atomic_save, embed_guide, read_state, save_checkpoint
    from ncsn_core.models import build_model
    d = tmp_path_factory.mktemp("guided")
    torch.manual_seed(1)
    guide = save_checkpoint(d / "guide.pt", tiny_sigma_config(), 1, build_model(tiny_sigma_config()))
    atomic_save(embed_guide(read_state(Path(tiny_sigma_checkpoint)), guide, 2.0), d / "guided.pt")
    return str(d / "guided.pt")


def test_the_guidance_weight_is_offered_only_with_a_guide_and_runs(qtbot, sample_tab, tiny_sigma_checkpoint,
                                                                   guided_sigma_checkpoint):
    form = sample_tab.form
    _load(qtbot, sample_tab, tiny_sigma_checkpoint)
    assert not form.guidance_edit.isEnabled() and "no guide model" in form.guidance_edit.toolTip()
    assert form.sample_config().guidance == 1.0
    _load(qtbot, sample_tab, guided_sigma_checkpoint)
    assert form.guidance_edit.isEnabled() and form.guidance_edit.text() == "2"
    set_text(qtbot, form.n_edit, "2")
    images = {}
    for w in ("3", "1"):
        set_text(qtbot, form.guidance_edit, w)
        assert form.sample_config().guidance == float(w)
        _run(qtbot, sample_tab)
        images[w] = sample_tab.result.x.copy() if hasattr(sample_tab.result.x, "copy") else sample_tab.result.x.clone()
        assert sample_tab.result.meta["guidance"] == float(w)
        assert ("autoguidance w=3" in sample_tab.run_bar.status.text()) == (w == "3")
    assert not np.allclose(np.asarray(images["3"]), np.asarray(images["1"]))
    set_text(qtbot, form.guidance_edit, "0.5")                 # the engine's range, shown on the run bar
    assert "guidance=0.5 must be in [1, 10]" in sample_tab.run_bar.problem()


@pytest.fixture(scope="module")
def disc_sigma_checkpoint(tmp_path_factory, tiny_sigma_checkpoint) -> str:
    """tiny_sigma_checkpoint carrying an untrained discriminator (dg_weight 1)."""
    import torch
    from ncsn_core.checkpoint import atomic_save, embed_discriminator, read_state
    from ncsn_core.discriminator import Discriminator, DiscriminatorConfig, LogRatio, discriminator_entry
    torch.manual_seed(2)
    d = Discriminator(DiscriminatorConfig(channels=(8, 16), blocks=(1, 1), emb=16, sigma_min=0.001, sigma_max=10.0))
    out = tmp_path_factory.mktemp("disc") / "disc.pt"
    atomic_save(embed_discriminator(read_state(Path(tiny_sigma_checkpoint)), discriminator_entry(LogRatio(d)), 1.0), out)
    return str(out)


def test_the_discriminator_weight_is_offered_only_with_a_discriminator_and_runs(qtbot, sample_tab,
                                                                               tiny_sigma_checkpoint,
                                                                               disc_sigma_checkpoint):
    form = sample_tab.form
    _load(qtbot, sample_tab, tiny_sigma_checkpoint)
    assert not form.dg_edit.isEnabled() and "no discriminator" in form.dg_edit.toolTip()
    assert form.sample_config().dg_weight == 0.0
    _load(qtbot, sample_tab, disc_sigma_checkpoint)
    assert form.dg_edit.isEnabled() and form.dg_edit.text() == "1"
    assert "with a discriminator" in sample_tab.picker.info_label.text()
    set_text(qtbot, form.n_edit, "2")
    images = {}
    for w in ("5", "0"):
        set_text(qtbot, form.dg_edit, w)
        assert form.sample_config().dg_weight == float(w)
        _run(qtbot, sample_tab)
        images[w] = np.array(sample_tab.result.x)
        assert sample_tab.result.meta["dg_weight"] == float(w)
        assert ("discriminator guidance w_DG=5" in sample_tab.run_bar.status.text()) == (w == "5")
    assert not np.allclose(images["5"], images["0"])
    set_text(qtbot, form.dg_edit, "-1")                    # the engine's range, shown on the run bar
    assert "dg_weight=-1.0 must be in [0, 10]" in sample_tab.run_bar.problem()


def test_the_exact_large_sigma_score_is_a_form_field_and_runs(qtbot, sample_tab, tiny_sigma_checkpoint):
    form = sample_tab.form
    _load(qtbot, sample_tab, tiny_sigma_checkpoint)
    # the checkpoint's own default (the mnist-cpu preset's)
    assert form.exact_edit.text() == "1.5" and "training images" in form.exact_edit.toolTip()
    set_text(qtbot, form.n_edit, "2")
    set_text(qtbot, form.exact_edit, "3")
    assert form.sample_config().exact_above == 3.0
    _run(qtbot, sample_tab)
    assert sample_tab.result.meta["exact_above"] == 3.0
    assert "exact score above sigma 3" in sample_tab.run_bar.status.text()
    set_text(qtbot, form.exact_edit, "-1")                    # the engine's range, shown on the run bar
    assert "exact_above=-1" in sample_tab.run_bar.problem()


def test_missing_training_images_stop_the_exact_score_with_the_fix_and_zero_runs(qtbot, sample_tab, tmp_path):
    """A checkpoint trained on a folder that is not on this machine: its default exact score cannot run; the banner
    says so and how to fix it, and with the field at 0 it samples."""
    import torch
    from conftest import tiny_sigma_config
    from ncsn_core.checkpoint import save_checkpoint
    from ncsn_core.models import build_model
    cfg = tiny_sigma_config().override("data", dataset="folder", root=str(tmp_path / "gone"))
    torch.manual_seed(0)
    path = save_checkpoint(tmp_path / "ckpt_00000001.pt", cfg, 1, build_model(cfg).eval())
    _load(qtbot, sample_tab, path)
    set_text(qtbot, sample_tab.form.n_edit, "2")
    qtbot.mouseClick(sample_tab.run_bar.run_button, Qt.MouseButton.LeftButton)
    wait_idle(qtbot, sample_tab.controller)
    assert "needs the model's training images" in sample_tab.banner.text()
    assert "'Exact score above \u03c3' 0" in sample_tab.banner.text() and sample_tab.result is None
    set_text(qtbot, sample_tab.form.exact_edit, "0")
    _run(qtbot, sample_tab)
    assert sample_tab.result.completed


def test_the_form_keeps_the_checkpoints_precision_and_exact_threshold(qtbot):
    """Fields the form loads but does not show (precision) keep the checkpoint's value; the exact threshold is shown."""
    from studio.widgets.sampler_form import SamplerForm
    form = SamplerForm("Sampler")
    qtbot.addWidget(form)
    form.load(SampleConfig(precision="bf16", exact_above=2.0), has_data_mean=False)
    cfg = form.sample_config()
    assert (cfg.precision, cfg.exact_above) == ("bf16", 2.0) and form.exact_edit.text() == "2"
