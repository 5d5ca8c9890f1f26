"""The shared parts the tabs are composed of: sampler form, run bar, chain view, model picker."""
import ast
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from conftest import set_text, wait_idle
from ncsn_core.config import ConfigError, SampleConfig, check_data_mean
from studio.controller import LatestRun, RunController
from studio.widgets.chain_view import ChainView
from studio.widgets.model_picker import ModelPicker
from studio.widgets.run_bar import RunBar
from studio.widgets.sampler_form import SamplerForm

STUDIO = Path(__file__).resolve().parents[2] / "studio"


def _engine_message(**sample) -> str:
    with pytest.raises(ConfigError) as e:
        SampleConfig(**sample)
    return str(e.value)


@pytest.fixture
def form(qtbot):
    f = SamplerForm("Sampler", ema=True)
    qtbot.addWidget(f)
    f.show()
    f.load(SampleConfig(step_lr=5e-5, n_steps_each=40, denoise=True, init="gaussian", variance_correction=0.5),
           has_data_mean=False, has_ema=True)
    return f


def test_sampler_form_emits_a_validated_config(qtbot, form):
    changed = []
    form.config_changed.connect(changed.append)
    set_text(qtbot, form.steps_edit, "7")
    assert changed[-1] == SampleConfig(step_lr=5e-5, n_steps_each=7, denoise=True, init="gaussian",
                                           variance_correction=0.5)
    s = form.settings(checkpoint="c.pt", levels=(0, 2))
    assert (s.checkpoint, s.n, s.seed, s.use_ema, s.levels) == ("c.pt", 16, 0, True, (0, 2))
    assert s.sample == changed[-1]


def test_sampler_form_shows_the_engines_message(qtbot, form):
    rejected = []
    form.config_rejected.connect(rejected.append)
    set_text(qtbot, form.step_lr_edit, "0")
    assert rejected[-1] == _engine_message(step_lr=0.0) == form.error()   # the words of SampleConfig
    set_text(qtbot, form.step_lr_edit, "5e-5")
    set_text(qtbot, form.steps_edit, "0")
    assert form.error() == _engine_message(n_steps_each=0)
    set_text(qtbot, form.steps_edit, "40")
    assert form.error() is None
    # 'data mean' for a model without the mean image: greyed out, and the engine's reason when forced
    form.init_combo.setCurrentIndex(form.init_combo.findData("data-mean"))
    with pytest.raises(ConfigError) as e:
        check_data_mean("data-mean", False)
    assert form.error() == str(e.value)
    assert not form.init_combo.model().item(form.init_combo.findData("data-mean")).isEnabled()


def test_sampler_form_alpha_readout_and_step_size_warning(qtbot, form):
    form.set_ladder([1.0, 0.1, 0.01])
    assert "\u03b1\u2081 = 0.5" in form.alpha_label.text()               # 5e-5 * (1 / 0.01)^2
    assert form.warning.isHidden()
    set_text(qtbot, form.step_lr_edit, "0.1")                          # alpha_1 = 1000 >> 2 sigma_1^2
    assert form.warning.isVisible() and "alpha_1" in form.warning.text()


def _states():
    """A 2-level chain as the sampler yields it: (level, step) with x a numpy batch (B, C, H, W)."""
    for level, sigma in ((0, 1.0), (1, 0.1)):
        for step in (1, 2):
            yield SimpleNamespace(level=level, n_levels=2, sigma=sigma, step_size=1e-3, step=step, n_steps=2,
                                  global_step=2 * level + step, snr=0.5,
                                  x=np.full((4, 1, 3, 3), 0.1 * (2 * level + step), np.float32))


def test_chain_view_keeps_one_snapshot_per_level_and_scrubs(qtbot):
    view = ChainView("press Run")
    qtbot.addWidget(view)
    ended = []
    view.level_finished.connect(lambda level, sigma, x: ended.append((level, sigma)))
    view.start()
    for st in _states():
        view.add_state(st)
    assert ended == [(0, 1.0), (1, 0.1)] and view.levels_seen == [0, 1]
    assert "level 2/2" in view.level_label.text() and "\u03c3_2 = 0.1" in view.level_label.text()
    view.finish(np.zeros((4, 1, 3, 3), np.float32), completed=True, denoised=True, captions=["7"] * 4)
    assert view.snapshots[-1].label == "final (denoised)" and view.timeline.maximum() == 2
    assert view.view.captions() == ["7"] * 4 and view.play_button.isEnabled()
    view.timeline.setValue(0)
    assert "end of level 1/2" in view.caption.text()
    qtbot.waitUntil(lambda: view.view.captions() == [])                # labels belong to the final images


def test_run_bar_follows_the_run_and_says_why_it_cannot_start(qtbot):
    controller = RunController("test")
    bar = RunBar(controller, "Go", pausable=True)
    qtbot.addWidget(bar)
    bar.show()
    assert bar.run_button.isEnabled() and not bar.stop_button.isEnabled() and not bar.pause_button.isEnabled()
    bar.set_problem("choose a checkpoint")
    assert not bar.run_button.isEnabled() and bar.run_button.toolTip() == "choose a checkpoint"
    assert bar.problem_label.isVisible() and "choose a checkpoint" in bar.problem_label.text()
    bar.set_problem(None)

    def slow():
        for _ in range(1000):
            yield 0
    controller.start(slow)
    assert not bar.run_button.isEnabled() and bar.stop_button.isEnabled() and bar.pause_button.isEnabled()
    controller.stop()
    wait_idle(qtbot, controller)
    assert bar.run_button.isEnabled() and not bar.stop_button.isEnabled()


def test_model_picker_reads_the_chosen_checkpoint(qtbot, tiny_checkpoint, tmp_path):
    reader = LatestRun()
    picker = ModelPicker("Checkpoint", reader=reader, builtin=tmp_path / "none.pt")
    qtbot.addWidget(picker)
    with qtbot.waitSignal(picker.model_read, timeout=30000) as read:
        picker.set_path(tiny_checkpoint)
    info = read.args[0]
    assert info.step == 4 and len(info.sigmas) == 3 and info.sample.n_steps_each == 3
    assert "step 4" in picker.info_label.text() and "L = 3 levels" in picker.info_label.text()
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"not a checkpoint")
    with qtbot.waitSignal(picker.model_failed, timeout=30000) as failed:
        picker.set_path(str(bad))
    assert failed.args[0].endswith("broken.pt") and "Could not read" in picker.info_label.text()
    reader.wait()


def _widgets_used(path: Path) -> set:
    """The studio.widgets modules a module imports, directly or through other widget modules."""
    names = set()
    for n in ast.walk(ast.parse(path.read_text())):
        if isinstance(n, ast.ImportFrom) and n.module and n.module.split(".")[-2:-1] in (["widgets"], []):
            name = n.module.split(".")[-1]
            if (STUDIO / "widgets" / f"{name}.py").exists() and name not in names:
                names |= {name} | _widgets_used(STUDIO / "widgets" / f"{name}.py")
    return names


@pytest.mark.parametrize("widget", ["sampler_form", "run_bar", "chain_view", "model_picker"])
def test_each_shared_widget_serves_at_least_two_tabs(widget):
    users = [p.name for p in sorted(STUDIO.glob("*_tab.py")) if widget in _widgets_used(p)]
    assert len(users) >= 2, users


def test_sampler_form_shows_heuns_churn_and_keeps_it(qtbot):
    from ncsn_core.config import ModelConfig
    f = SamplerForm("Sampler")
    qtbot.addWidget(f)
    f.show()
    f.load(SampleConfig(sampler="heun", num_levels=8, churn=5.0, init="gaussian"), has_data_mean=False,
           model=ModelConfig(conditioning="sigma"))
    assert f.rows.isRowVisible(f.churn_edit) and f.sample_config().churn == 5.0
    set_text(qtbot, f.churn_edit, "12")
    assert f.sample_config().churn == 12.0
    f.sampler_combo.setCurrentIndex(f.sampler_combo.findData("annealed_langevin"))
    assert not f.rows.isRowVisible(f.churn_edit)
