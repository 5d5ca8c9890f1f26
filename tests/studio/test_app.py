"""`ncsn-studio` entry point: --screenshot writes a PNG of the rendered window; --reset-settings forgets."""
import json

from PIL import Image

from studio import settings
from studio.app import build_parser, main


def test_screenshot_of_the_train_tab_with_a_run_history(tmp_path, capsys):
    from conftest import tiny_config
    from ncsn_core.training import run_to_end, train
    run_to_end(train(tiny_config(3), settings.runs_root() / "demo"))
    out = tmp_path / "shots" / "train.png"
    assert main(["--screenshot", str(out), "--tab", "train"]) == 0
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size[0] >= 800 and im.size[1] >= 500
        colours = im.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is None or len(colours) > 50          # rendered content, not a blank frame
    assert "wrote" in capsys.readouterr().out


def test_reset_settings_forgets_recent_files(tmp_path):
    settings.add_recent_run(str(tmp_path / "some-run"))
    settings.set_value("window/tab", "evaluate")
    assert settings.recent_runs()
    assert main(["--reset-settings", "--screenshot", str(tmp_path / "x.png"), "--tab", "train"]) == 0
    assert settings.recent_runs() == [] and settings.value("window/tab") != "evaluate"


def test_parser_lists_the_tabs():
    args = build_parser().parse_args(["--tab", "sample"])
    assert args.tab == "sample" and not args.reset_settings
