"""Fixtures for the GUI tests: a main window on a small demo project, with its settings in a
temporary file so that no test reads or writes the user's own."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QSettings

from app.main_window import MainWindow
from engine.data.demo import write_demo_project


@pytest.fixture
def settings(tmp_path):
    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def demo_folder(tmp_path):
    return write_demo_project(tmp_path / "demo", count=4)


@pytest.fixture
def window(qtbot, demo_folder, settings):
    window = MainWindow(demo_folder, settings=settings)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    wait_for_full_image(qtbot, window)
    yield window
    window.close()


def wait_for_full_image(qtbot, window) -> None:
    """Until the current image is shown at full resolution (it loads off the GUI thread)."""
    canvas = window.labeling.canvas

    def loaded() -> bool:
        image = canvas.image_loaded
        row = window.labeling.current_image()
        return image is not None and image.full and row is not None and image.path == row.file

    qtbot.waitUntil(loaded, timeout=10000)
