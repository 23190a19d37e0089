"""Before Qt starts on Linux/X11: are the system libraries its xcb platform plugin needs there?

Without them Qt stops the program with only "could not load the Qt platform plugin "xcb"",
which does not say what to install. :func:`xcb_problem` loads the plugin the way Qt would (the
dynamic loader resolves its dependencies) and, when that fails, names every missing library
and the Debian/Ubuntu package that has it.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Callable
from pathlib import Path

# The X11 libraries Qt's xcb plugin links to that minimal desktops may lack: file name ->
# Debian/Ubuntu package (Fedora: xcb-util-cursor, xcb-util-wm, xcb-util-keysyms, ...).
XCB_LIBRARIES = {
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxcb-util.so.1": "libxcb-util1",
}


def uses_xcb(environ: dict[str, str] | None = None, platform: str | None = None) -> bool:
    """Whether Qt will try its xcb plugin: Linux, no other platform asked for
    (``QT_QPA_PLATFORM``), and not a Wayland session (where Qt picks its Wayland plugin)."""
    environ = os.environ if environ is None else environ
    platform = sys.platform if platform is None else platform
    if not platform.startswith("linux"):
        return False
    asked = environ.get("QT_QPA_PLATFORM", "")
    if asked:
        return asked.split(":")[0].split(";")[0] == "xcb"
    return not (environ.get("WAYLAND_DISPLAY") and environ.get("XDG_SESSION_TYPE") == "wayland")


def xcb_plugin() -> Path | None:
    """The xcb platform plugin of the installed PySide6, None when it has none."""
    import PySide6

    path = Path(PySide6.__file__).parent / "Qt" / "plugins" / "platforms" / "libqxcb.so"
    return path if path.is_file() else None


def missing_xcb_libraries(load: Callable[[str], object] = ctypes.CDLL) -> list[str]:
    """The libraries of :data:`XCB_LIBRARIES` that the dynamic loader cannot find."""
    missing = []
    for name in XCB_LIBRARIES:
        try:
            load(name)
        except OSError:
            missing.append(name)
    return missing


def xcb_problem(load: Callable[[str], object] = ctypes.CDLL,
                plugin: Path | None = None) -> str | None:
    """A message naming what to install when Qt's xcb plugin cannot be loaded; None when it
    can (or there is no plugin to try: Qt then says what it says)."""
    plugin = plugin if plugin is not None else xcb_plugin()
    if plugin is None:
        return None
    try:
        load(str(plugin))
        return None
    except OSError as error:
        reason = str(error)
    missing = missing_xcb_libraries(load)
    if not missing:
        return (f"Qt's X11 platform plugin cannot be loaded: {reason}\n"
                f"Install the library it names with your system's package manager.")
    packages = " ".join(XCB_LIBRARIES[name] for name in missing)
    return (f"Qt's X11 platform plugin needs system libraries that are not installed: "
            f"{', '.join(missing)}.\n"
            f"On Debian or Ubuntu: sudo apt-get install {packages}\n"
            f"(on Fedora: sudo dnf install xcb-util-cursor xcb-util-wm xcb-util-keysyms "
            f"xcb-util-image xcb-util-renderutil libxkbcommon-x11)")
