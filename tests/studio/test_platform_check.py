"""studio/platform_check.py: before Qt starts, a missing system library or display gives one message that names
it and the install command, and `ncsn-studio` exits 1 instead of Qt aborting."""
import shutil
import subprocess
from pathlib import Path

import pytest

from studio import app, platform_check
from studio.platform_check import (check, install_hint, known_libraries, missing_libraries, platform_name,
                                   plugin_path)

XCB_SCREEN = {"QT_QPA_PLATFORM": "xcb", "DISPLAY": ":0"}


def _plugin_needing(folder: Path, absent: str) -> Path:
    """A real shared library `folder/libqxcb.so` whose DT_NEEDED names `absent`, a library that is then deleted:
    `ldd` reports it "not found" exactly as it would a missing libxcb-cursor.so.0."""
    if not shutil.which("gcc"):
        pytest.skip("gcc is needed to build the stand-in plugin")
    folder.mkdir(parents=True)
    (folder / "dep.c").write_text("int ncsn_dep(void) { return 1; }\n")
    (folder / "plugin.c").write_text("int ncsn_dep(void);\nint ncsn_plugin(void) { return ncsn_dep(); }\n")
    dep = folder / absent
    subprocess.run(["gcc", "-shared", "-fPIC", f"-Wl,-soname,{absent}", "-o", str(dep), str(folder / "dep.c")],
                   check=True)
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(folder / "libqxcb.so"), str(folder / "plugin.c"),
                    str(dep)], check=True)
    dep.unlink()
    return folder / "libqxcb.so"


def test_a_plugin_with_a_missing_library_stops_main_with_the_install_commands(tmp_path, monkeypatch, capsys):
    plugin = _plugin_needing(tmp_path / "platforms", "libxcb-ncsn-absent.so.0")
    monkeypatch.setitem(platform_check.PACKAGES, "libxcb-ncsn-absent.so.0", ("libxcb-cursor0", "xcb-util-cursor"))
    monkeypatch.setenv("QT_QPA_PLATFORM_PLUGIN_PATH", str(plugin.parent))   # Qt itself would load this plugin
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    monkeypatch.setenv("DISPLAY", ":0")
    assert plugin_path("xcb", {"QT_QPA_PLATFORM_PLUGIN_PATH": str(plugin.parent)}) == plugin
    assert main_exit(tmp_path) == 1
    err = capsys.readouterr().err
    assert "lacks libxcb-ncsn-absent.so.0" in err
    assert "apt-get install -y libxcb-cursor0" in err and "dnf install -y xcb-util-cursor" in err
    assert len([line for line in err.splitlines() if line.startswith("ncsn-studio:")]) == 1


def test_without_ldd_the_known_libraries_are_loaded_one_by_one(tmp_path, monkeypatch, capsys):
    """No ldd on the machine: each soname of PACKAGES is tried with ctypes; a name that cannot load is reported."""
    # one real library this Python process has loaded (libc), one that exists nowhere: only the latter is named,
    # whatever else the machine lacks
    monkeypatch.setattr(platform_check, "PACKAGES", {"libc.so.6": ("libc6", "glibc"),
                                                     "libxcb-ncsn-absent.so.0": ("libxcb-icccm4", "xcb-util-wm")})
    monkeypatch.setattr(platform_check.shutil, "which", lambda name: None)
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    monkeypatch.setenv("DISPLAY", ":0")
    assert main_exit(tmp_path) == 1
    err = capsys.readouterr().err
    assert "lacks libxcb-ncsn-absent.so.0." in err         # only the absent one
    assert "apt-get install -y libxcb-icccm4\n" in err and "dnf install -y xcb-util-wm" in err


def test_no_display_for_xcb_says_how_to_run_without_a_screen(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert main_exit(tmp_path) == 1
    err = capsys.readouterr().err
    assert "no display" in err and "xvfb-run -a ncsn-studio" in err and "QT_QPA_PLATFORM=offscreen" in err


def main_exit(tmp_path) -> int:
    return app.main(["--screenshot", str(tmp_path / "never.png"), "--tab", "train"])


def test_this_machine_passes_for_xcb_and_offscreen():
    """The happy path: the real PySide6 xcb plugin's libraries are installed here (ldd, and ctypes without it)."""
    real = plugin_path("xcb", {})
    assert real is not None and real.name == "libqxcb.so"
    for ldd in ("ldd", None):
        assert missing_libraries(real, ldd, known_libraries("xcb")) == []
    assert check(XCB_SCREEN, "linux") is None
    assert check({"QT_QPA_PLATFORM": "offscreen"}, "linux") is None


def test_which_platform_qt_will_try_first():
    assert platform_name({}) == "xcb"
    assert platform_name({"QT_QPA_PLATFORM": "xcb;wayland"}) == "xcb"
    assert platform_name({"QT_QPA_PLATFORM": "vnc:size=800x600"}) == "vnc"
    assert platform_name({"XDG_SESSION_TYPE": "wayland", "WAYLAND_DISPLAY": "wayland-0"}) == "wayland"
    assert "libxcb-cursor.so.0" in known_libraries("xcb") and "libxcb-cursor.so.0" not in known_libraries("offscreen")
    assert "libGL.so.1" in known_libraries("offscreen") and "libwayland-client.so.0" in known_libraries("wayland")
    assert check({}, "darwin") is None and check({}, "win32") is None   # their wheels carry what Qt needs


def test_install_hint_maps_sonames_to_both_package_managers():
    hint = install_hint(["libxcb-cursor.so.0", "libxcb-icccm.so.4", "libxcb-shm.so.0", "libxcb-randr.so.0",
                         "libfoo.so.9"])
    assert "apt-get install -y libxcb-cursor0 libxcb-icccm4 libxcb-shm0 libxcb-randr0\n" in hint
    assert "dnf install -y xcb-util-cursor xcb-util-wm libxcb\n" in hint    # one package, named once
    assert "libfoo.so.9" in hint and "apt-file search" in hint
