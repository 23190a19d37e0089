"""Checkpoints to export: one written by the trainer itself (EfficientNet-Lite0, the default
backbone), and torchvision-compatible ones. Small sizes (224-320 px) keep every export and run
quick; the classifier is sharpened so that random or barely trained heads give detections
(as tests/engine/test_torchvision_parity.py does)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from engine import build_model
from engine.data.demo import write_demo_project
from engine.data.project import Project
from engine.detector.checkpoint import ClassInfo, load_detector, save_detector
from engine.detector.config import DetectorConfig
from engine.training import Trainer, TrainSettings
from engine.training.data import classes_for

REPO = Path(__file__).resolve().parents[3]
SMALL = {"min_size": 224, "max_size": 320}
# Operation for operation what torchvision computes (see the parity tests).
EXACT = {"fold_frozen_batchnorm": False, "channels_last": False}
CLASSES = [ClassInfo(1, "raccoon", category_id=7, color="#e6194b"),
           ClassInfo(2, "dog", category_id=9)]


def sharpen(model, factor: float) -> None:
    with torch.no_grad():
        model.roi_heads.box_predictor.cls_score.weight.mul_(factor)


@pytest.fixture(scope="session")
def trained_checkpoint(tmp_path_factory):
    """A checkpoint the trainer wrote after one short epoch on 4 demo images (evaluated on 2),
    its classifier then sharpened and saved again with the trainer's own extras."""
    root = tmp_path_factory.mktemp("trained")
    folder = write_demo_project(root / "project", count=6, seed=5)
    with Project.open(folder) as project:
        records = project.dataset(None)
        classes = classes_for(project.categories())
    trainer = Trainer(
        train_records=records[:4], val_records=records[4:], classes=classes, out_dir=root / "run",
        detector=DetectorConfig(backbone="efficientnet_lite0", rpn_batch_size_per_image=64,
                                box_batch_size_per_image=64, **SMALL),
        settings=TrainSettings(epochs=1, batch_size=2, warmup_iters=2), init_weights="imagenet",
        device="cpu",
    )
    assert trainer.run() == "finished"
    loaded = load_detector(root / "run" / "last.pt")
    sharpen(loaded.model, 4.0)
    path = root / "sharpened.pt"
    save_detector(path, loaded.model, loaded.classes, extra=loaded.extra)
    return path, records


@pytest.fixture(scope="session")
def torchvision_checkpoints(tmp_path_factory):
    """backbone -> a checkpoint of seeded random weights, built operation-exact."""
    root = tmp_path_factory.mktemp("torchvision")
    paths = {}
    for backbone in ("resnet50", "mobilenet_v3_large"):
        torch.manual_seed(0)
        model = build_model(backbone, num_classes=3, **SMALL, **EXACT)
        sharpen(model, 30.0)
        paths[backbone] = save_detector(root / f"{backbone}.pt", model, CLASSES)
    return paths


TEST_IMAGES = [REPO / "tests" / "data" / name for name in ("raccoon-1.jpg", "raccoon-10.jpg")]
