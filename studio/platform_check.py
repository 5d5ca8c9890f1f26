"""Before Qt starts: can its platform plugin load here? Names the missing system libraries and the command
that installs them, instead of Qt's abort ("could not load the Qt platform plugin xcb"). Pure functions of
the environment, a plugin path and an `ldd` command; no Qt is imported (importing Qt's GUI modules would
itself fail on a machine that lacks libGL or libxkbcommon)."""
from __future__ import annotations

import ctypes
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import List, Mapping, Optional, Sequence

# soname -> (Debian/Ubuntu package, Fedora package): the libraries that Qt's platform plugins and
# libQt6Gui load from the system (PySide6 wheels bundle Qt itself, not these).
PACKAGES = {
    "libxcb-cursor.so.0": ("libxcb-cursor0", "xcb-util-cursor"),
    "libxcb-icccm.so.4": ("libxcb-icccm4", "xcb-util-wm"),
    "libxcb-image.so.0": ("libxcb-image0", "xcb-util-image"),
    "libxcb-keysyms.so.1": ("libxcb-keysyms1", "xcb-util-keysyms"),
    "libxcb-render-util.so.0": ("libxcb-render-util0", "xcb-util-renderutil"),
    "libxcb-util.so.1": ("libxcb-util1", "xcb-util"),
    "libxcb-randr.so.0": ("libxcb-randr0", "libxcb"),
    "libxcb-shm.so.0": ("libxcb-shm0", "libxcb"),
    "libxcb-sync.so.1": ("libxcb-sync1", "libxcb"),
    "libxcb-xfixes.so.0": ("libxcb-xfixes0", "libxcb"),
    "libxcb-render.so.0": ("libxcb-render0", "libxcb"),
    "libxcb-shape.so.0": ("libxcb-shape0", "libxcb"),
    "libxcb-xkb.so.1": ("libxcb-xkb1", "libxcb"),
    "libxcb.so.1": ("libxcb1", "libxcb"),
    "libX11-xcb.so.1": ("libx11-xcb1", "libX11-xcb"),
    "libX11.so.6": ("libx11-6", "libX11"),
    "libXau.so.6": ("libxau6", "libXau"),
    "libXdmcp.so.6": ("libxdmcp6", "libXdmcp"),
    "libxkbcommon.so.0": ("libxkbcommon0", "libxkbcommon"),
    "libxkbcommon-x11.so.0": ("libxkbcommon-x11-0", "libxkbcommon-x11"),
    "libGL.so.1": ("libgl1", "libglvnd-glx"),
    "libEGL.so.1": ("libegl1", "libglvnd-egl"),
    "libfontconfig.so.1": ("libfontconfig1", "fontconfig"),
    "libfreetype.so.6": ("libfreetype6", "freetype"),
    "libglib-2.0.so.0": ("libglib2.0-0", "glib2"),
    "libgthread-2.0.so.0": ("libglib2.0-0", "glib2"),
    "libdbus-1.so.3": ("libdbus-1-3", "dbus-libs"),
    "libwayland-client.so.0": ("libwayland-client0", "libwayland-client"),
    "libwayland-cursor.so.0": ("libwayland-cursor0", "libwayland-cursor"),
}


def known_libraries(platform: str) -> List[str]:
    """The sonames of PACKAGES that `platform`'s plugin needs: libQt6Gui's for all, the xcb utilities for xcb
    only, libwayland-* for wayland only (read from the plugins' DT_NEEDED entries, PySide6 6.x)."""
    def wanted(name: str) -> bool:
        x11_only = name.startswith(("libxcb-", "libX11-xcb", "libxkbcommon-x11"))
        return (platform == "xcb" or not x11_only) and (platform == "wayland" or not name.startswith("libwayland"))
    return [name for name in PACKAGES if wanted(name)]


def platform_name(env: Mapping[str, str]) -> str:
    """The platform Qt will try first on Linux: QT_QPA_PLATFORM's first entry ("xcb;wayland", "vnc:size=...")
    or Qt 6's default, wayland in a Wayland session and xcb elsewhere."""
    requested = env.get("QT_QPA_PLATFORM", "").split(";")[0].split(":")[0].strip()
    if requested:
        return requested
    wayland_session = env.get("XDG_SESSION_TYPE") == "wayland" and env.get("WAYLAND_DISPLAY")
    return "wayland" if wayland_session else "xcb"


def plugin_path(platform: str, env: Mapping[str, str]) -> Optional[Path]:
    """Qt's plugin file for `platform` (libq<name>.so), from QT_QPA_PLATFORM_PLUGIN_PATH or PySide6's wheel;
    None when it cannot be found (then there is nothing to check)."""
    folders = [Path(env["QT_QPA_PLATFORM_PLUGIN_PATH"])] if env.get("QT_QPA_PLATFORM_PLUGIN_PATH") else []
    spec = importlib.util.find_spec("PySide6")  # finds the package without importing any Qt library
    if spec and spec.origin:
        folders.append(Path(spec.origin).parent / "Qt" / "plugins" / "platforms")
    for folder in folders:
        if (folder / f"libq{platform}.so").is_file():
            return folder / f"libq{platform}.so"
    return None


def missing_libraries(plugin: Path, ldd: Optional[str], known: Sequence[str]) -> List[str]:
    """The shared libraries that `plugin` needs and the system lacks, from `ldd`'s "=> not found" lines.
    Without a working ldd, tries to load each of `known` (sonames) with ctypes instead."""
    exe = shutil.which(ldd) if ldd else None
    if exe:
        try:
            out = subprocess.run([exe, str(plugin)], capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.SubprocessError):
            out = None
        if out is not None and out.returncode == 0:
            return sorted({line.split("=>")[0].strip() for line in out.stdout.splitlines()
                           if "=> not found" in line})
    return [name for name in known if not _loads(name)]


def _loads(soname: str) -> bool:
    try:
        ctypes.CDLL(soname)
        return True
    except OSError:
        return False


def install_hint(missing: Sequence[str]) -> str:
    """The Debian/Ubuntu and Fedora commands that install the packages providing `missing` (sonames)."""
    known = [PACKAGES[m] for m in missing if m in PACKAGES]
    unknown = [m for m in missing if m not in PACKAGES]
    lines = []
    if known:
        lines.append("  Debian/Ubuntu: sudo apt-get install -y " + " ".join(dict.fromkeys(p[0] for p in known)))
        lines.append("  Fedora:        sudo dnf install -y " + " ".join(dict.fromkeys(p[1] for p in known)))
    if unknown:
        lines.append("  and the packages that provide " + ", ".join(unknown)
                     + " (find them with: apt-file search NAME, or dnf provides '*/NAME')")
    return "\n".join(lines)


def check(env: Mapping[str, str] = os.environ, system: str = sys.platform, plugin: Optional[Path] = None,
          ldd: Optional[str] = "ldd", known: Optional[Sequence[str]] = None) -> Optional[str]:
    """None when Qt's platform plugin can start here; otherwise the message that says what is wrong and
    how to fix it. Only Linux is checked (macOS and Windows wheels carry everything). `plugin`, `ldd` and
    `known` may be injected (tests); by default the plugin of the platform Qt will pick is checked."""
    if not system.startswith("linux"):
        return None
    platform = platform_name(env)
    problems = []
    plugin = plugin or plugin_path(platform, env)
    missing = missing_libraries(plugin, ldd, known or known_libraries(platform)) if plugin else []
    if missing:
        problems.append(f"Qt's '{platform}' platform plugin cannot load: this system lacks "
                        + ", ".join(missing) + ". Install them with\n" + install_hint(missing))
    if platform == "xcb" and not env.get("DISPLAY") and not env.get("WAYLAND_DISPLAY"):
        problems.append("no display: DISPLAY and WAYLAND_DISPLAY are unset. Run the studio in a desktop session, "
                        "or without a screen: xvfb-run -a ncsn-studio, or QT_QPA_PLATFORM=offscreen "
                        "ncsn-studio --screenshot PATH")
    return "ncsn-studio: " + "\nncsn-studio: ".join(problems) if problems else None
