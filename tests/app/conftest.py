"""Fixtures for the GUI tests: a main window on a small demo project, with its settings in a
temporary file so that no test reads or writes the user's own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PySide6.QtCore import QSettings

from app.main_window import MainWindow
from engine import build_model
from engine.data.demo import CLASSES, write_demo_project
from engine.detector.checkpoint import ClassInfo, save_detector


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


def random_run_checkpoint(project_folder: Path, *, min_size: int, max_size: int,
                          sharpen: float, train_split: str | None = None) -> Path:
    """A resnet18 checkpoint with random weights in the project's runs folder, as training
    leaves it (``runs/2026-11-25_10-00-00/best.pt``), for the demo's classes. ``sharpen``
    multiplies the classifier's weights: the larger, the surer its (meaningless) scores.
    ``train_split``: also write the run's ``job.json`` saying it trained on that split."""
    torch.manual_seed(0)
    model = build_model("resnet18", num_classes=len(CLASSES) + 1, min_size=min_size,
                        max_size=max_size)
    with torch.no_grad():
        model.roi_heads.box_predictor.cls_score.weight.mul_(sharpen)
    folder = Path(project_folder) / "runs" / "2026-11-25_10-00-00"
    folder.mkdir(parents=True)
    if train_split is not None:
        (folder / "job.json").write_text(json.dumps({
            "project": str(project_folder), "out": str(folder), "train_split": train_split}))
    classes = [ClassInfo(i + 1, name, i + 1) for i, name in enumerate(CLASSES)]
    return save_detector(folder / "best.pt", model, classes)
