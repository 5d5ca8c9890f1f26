"""The chain view's "show: x | denoised | both" in the Sample and Inpaint tabs: the model's denoised estimate
(LangevinState.denoised) live while the chain runs, in the timeline scrub for past levels, and remembered."""
import numpy as np
import pytest
from PySide6.QtCore import Qt

from conftest import close_tab, wait_idle
from studio import settings
from studio.sample_tab import SampleTab


def _click(qtbot, chains, mode):
    qtbot.mouseClick(chains.show_buttons[mode], Qt.MouseButton.LeftButton)
    assert chains.show_mode() == mode


def _new_sample_tab(qtbot, checkpoint):
    t = SampleTab()
    qtbot.addWidget(t)
    t.show()
    t.picker.set_path(checkpoint)
    qtbot.waitUntil(lambda: t.info is not None, timeout=30000)
    return t


@pytest.fixture
def tab(qtbot, tiny_checkpoint):
    t = _new_sample_tab(qtbot, tiny_checkpoint)
    yield t
    close_tab(qtbot, t)


def test_sample_tab_shows_the_denoised_estimate_live_and_in_the_scrub(qtbot, tab, tiny_checkpoint):
    chains = tab.chains
    _click(qtbot, chains, "denoised")
    live = []

    def on_state(ev):  # connected after the tab's own slot: sees what the tab made of the state
        if type(ev).__name__ == "LangevinState":
            live.append((ev, chains.caption.text(), chains.latest.denoised))
    tab.controller.event_emitted.connect(on_state)
    tab.form.n_edit.set_value(4)
    tab.form.steps_edit.set_value(3)
    tab.form.denoise_box.setChecked(False)
    tab.run()
    wait_idle(qtbot, tab.controller)
    assert len(live) >= 3
    for ev, caption, shown in live:
        assert "(live)" in caption and f"denoised estimate x + \u03c3\u00b2 s(x, \u03c3) at \u03c3 = " \
            f"{ev.denoised_sigma:.3g}" in caption
        assert np.array_equal(shown, ev.denoised) and not np.array_equal(ev.denoised, ev.x)
    # the final frame shows the last state's estimate; scrubbing back shows level 1's
    assert len(chains.snapshots) == 3 and np.array_equal(chains.view.images, live[-1][0].denoised)
    first = chains.snapshots[0]
    chains.timeline.setValue(0)
    qtbot.waitUntil(lambda: chains.view.images is first.denoised, timeout=5000)
    assert "end of level 1/3" in chains.caption.text() and f"at \u03c3 = {first.sigma:.3g}" in chains.caption.text()
    # both: each chain's x boxed beside its estimate; x: the chain itself
    _click(qtbot, chains, "both")
    pairs = chains.view.images
    assert pairs.shape == (4, 1, 30, 59)
    assert np.array_equal(pairs[..., 1:-1, 1:29], first.x) and np.array_equal(pairs[..., 1:-1, 30:58], first.denoised)
    _click(qtbot, chains, "x")
    assert chains.view.images is first.x and "denoised" not in chains.caption.text()
    # remembered per tab
    _click(qtbot, chains, "denoised")
    assert settings.value("sample/chain_show") == "denoised"
    other = _new_sample_tab(qtbot, tiny_checkpoint)
    assert other.chains.show_mode() == "denoised"
    close_tab(qtbot, other)


def test_inpaint_live_view_and_strip_follow_the_show_buttons(qtbot, inpaint_tab):
    from test_inpaint import _drag, _tiny
    tab = inpaint_tab
    tab.set_model(*_tiny())
    tab.editor.canvas.brush_size = 6
    _drag(qtbot, tab.editor.canvas, [(3, 20), (24, 20)])
    tab.form.n_edit.set_value(2)
    live = tab.live
    _click(qtbot, live.chains, "denoised")
    with qtbot.waitSignal(tab.run_finished, timeout=60000):
        assert tab.run()
    frames = live.chains.snapshots
    assert len(live.strip_images) == 3  # completion 1's estimate at the end of each level
    for img, f in zip(live.strip_images, frames):
        assert np.array_equal(img, f.denoised[0])
    live.chains.timeline.setValue(1)
    qtbot.waitUntil(lambda: live.chains.view.images is frames[1].denoised, timeout=5000)
    assert "end of level 2/3" in live.chains.caption.text() and "denoised estimate" in live.chains.caption.text()
    _click(qtbot, live.chains, "both")
    assert live.strip_images[0].shape == (1, 30, 59) and live.chains.view.images.shape == (2, 1, 30, 59)
    _click(qtbot, live.chains, "x")
    assert np.array_equal(live.strip_images[2], frames[2].x[0])
    assert settings.value("inpaint/chain_show") == "x"
    close_tab(qtbot, tab)
