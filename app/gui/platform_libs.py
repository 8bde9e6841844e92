"""Before Qt starts on Linux/X11: are the system libraries its xcb platform plugin needs there?

Without them Qt aborts inside its own start-up ("xcb-cursor0 or libxcb-cursor0 is needed to load
the Qt xcb platform plugin", then "libxcb-icccm.so.4: cannot open shared object file") with no
way for us to catch it. So ``ldd`` is asked what the plugin and its Qt library miss, and the
user gets the list and the install command instead of a crash.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

# sonames whose Debian/Ubuntu package name does not follow "lib<name><version>"
_PACKAGES = {
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libEGL.so.1": "libegl1",
    "libGL.so.1": "libgl1",
    "libfontconfig.so.1": "libfontconfig1",
    "libdbus-1.so.3": "libdbus-1-3",
    "libX11-xcb.so.1": "libx11-xcb1",
}


def debian_package(soname: str) -> str:
    """The usual Debian package of a shared library: libxcb-icccm.so.4 -> libxcb-icccm4."""
    if soname in _PACKAGES:
        return _PACKAGES[soname]
    m = re.match(r"^(lib[\w+.-]*?)\.so\.(\d+)", soname)
    if not m:
        return soname
    name, version = m.group(1).lower(), m.group(2)
    return f"{name}-{version}" if name[-1].isdigit() else f"{name}{version}"


def missing_libraries() -> list[str]:
    """Sonames the xcb platform plugin cannot load, empty when all are there (or not applicable)."""
    if not sys.platform.startswith("linux") or shutil.which("ldd") is None:
        return []
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if platform and not platform.startswith("xcb"):
        return []  # offscreen, wayland, eglfs...: not the xcb plugin
    if not platform and os.environ.get("WAYLAND_DISPLAY") and not os.environ.get("DISPLAY"):
        return []
    import importlib.util

    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return []
    root = Path(next(iter(spec.submodule_search_locations)))
    candidates = [
        root / "Qt" / "plugins" / "platforms" / "libqxcb.so",
        *sorted((root / "Qt" / "lib").glob("libQt6XcbQpa.so*")),
    ]
    missing: list[str] = []
    for lib in candidates:
        if not lib.is_file():
            continue
        try:
            out = subprocess.run(["ldd", str(lib)], capture_output=True, text=True, timeout=20).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        for line in out.splitlines():
            m = re.match(r"\s*(\S+) => not found", line)
            if m and m.group(1) not in missing:
                missing.append(m.group(1))
    # Qt loads libxcb-cursor with dlopen at run time (Qt >= 6.5): ldd cannot see it
    if candidates and candidates[0].is_file() and not _loadable("libxcb-cursor.so.0"):
        missing.append("libxcb-cursor.so.0")
    return missing


def _loadable(soname: str) -> bool:
    import ctypes

    try:
        ctypes.CDLL(soname)
        return True
    except OSError:
        return False


def explain_missing(missing: list[str]) -> str:
    packages = " ".join(dict.fromkeys(debian_package(s) for s in missing))
    return (
        f"The desktop app cannot start: Qt needs system libraries that are not installed ({', '.join(missing)}). "
        f"On Debian or Ubuntu: sudo apt install {packages}  (other systems: the packages that provide them). "
        "The command line works without them."
    )
