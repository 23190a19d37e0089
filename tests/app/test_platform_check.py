"""The GUI entry point names the X11 libraries Qt's xcb plugin lacks, instead of Qt's bare
"could not load the Qt platform plugin "xcb"" (checked with a stand-in dynamic loader)."""

from __future__ import annotations

from pathlib import Path

import app.main as app_main
from app import platform_check


def _loader(missing: set[str], plugin_error: str | None):
    def load(name: str):
        if name.endswith("libqxcb.so") and plugin_error:
            raise OSError(plugin_error)
        if name in missing:
            raise OSError(f"{name}: cannot open shared object file: No such file or directory")
        return object()
    return load


def test_the_missing_libraries_and_their_packages_are_named():
    load = _loader({"libxcb-icccm.so.4", "libxcb-keysyms.so.1"},
                   "libxcb-icccm.so.4: cannot open shared object file")
    text = platform_check.xcb_problem(load, Path("/qt/plugins/platforms/libqxcb.so"))
    assert "libxcb-icccm.so.4, libxcb-keysyms.so.1" in text
    assert "sudo apt-get install libxcb-icccm4 libxcb-keysyms1" in text


def test_nothing_is_said_when_the_plugin_loads():
    assert platform_check.xcb_problem(_loader(set(), None), Path("/x/libqxcb.so")) is None


def test_only_x11_sessions_on_linux_are_checked():
    assert platform_check.uses_xcb({}, "linux")
    assert platform_check.uses_xcb({"QT_QPA_PLATFORM": "xcb"}, "linux")
    assert not platform_check.uses_xcb({"QT_QPA_PLATFORM": "offscreen"}, "linux")
    assert not platform_check.uses_xcb({"WAYLAND_DISPLAY": "wayland-0",
                                        "XDG_SESSION_TYPE": "wayland"}, "linux")
    assert not platform_check.uses_xcb({}, "darwin")


def test_the_entry_point_prints_it_and_stops_before_qt(monkeypatch, capsys):
    monkeypatch.setattr(app_main, "uses_xcb", lambda: True)
    monkeypatch.setattr(app_main.QApplication, "instance", staticmethod(lambda: None))
    monkeypatch.setattr(app_main, "xcb_problem", lambda: "needs libxcb-cursor.so.0")
    assert app_main.main([]) == 1
    assert "needs libxcb-cursor.so.0" in capsys.readouterr().err
