"""A small detector, a demo image with its boxes, and their trace, shared by the inspector tests.

The detector is a resnet18 FPN (a small box head) with seeded random weights whose classifier is
sharpened (as in the parity tests, but less: scores spread between about 0.45 and 0.8), so that
every stage has boxes to show; it is saved as a real checkpoint so the view loads it the way it
loads a trained one. Project category ids (11..14) differ from the
detector's class ids (1..4) on purpose.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from engine import build_model
from engine.data.demo import CLASS_COLORS, CLASSES, draw_demo_image
from engine.data.images import load_image_tensor
from engine.detector import Inspection
from engine.detector.checkpoint import ClassInfo, save_detector

CATEGORY_IDS = {name: 11 + index for index, name in enumerate(CLASSES)}
DEMO_SEED = 2  # five shapes of three classes


def sharpened_detector():
    torch.manual_seed(0)
    model = build_model("resnet18", num_classes=len(CLASSES) + 1, weights="none", min_size=240,
                        max_size=320, representation_size=128)
    with torch.no_grad():
        model.roi_heads.box_predictor.cls_score.weight.mul_(5)
    classes = [ClassInfo(index + 1, name, category_id=CATEGORY_IDS[name],
                         color=CLASS_COLORS[index]) for index, name in enumerate(CLASSES)]
    return model.eval(), classes


@pytest.fixture(scope="session")
def demo_sample(tmp_path_factory) -> tuple[Path, list, list[int]]:
    """(image path, boxes, project category ids) of one demo image written to disk."""
    demo = draw_demo_image(DEMO_SEED)
    path = tmp_path_factory.mktemp("inspector") / demo.name
    demo.image.save(path)
    return path, list(demo.boxes), [CATEGORY_IDS[label] for label in demo.labels]


@pytest.fixture(scope="session")
def inspector_checkpoint(tmp_path_factory) -> Path:
    model, classes = sharpened_detector()
    return save_detector(tmp_path_factory.mktemp("run") / "best.pt", model, classes)


@pytest.fixture(scope="session")
def demo_trace(demo_sample):
    """The demo image's trace with its boxes as the target (detector class ids)."""
    path, boxes, category_ids = demo_sample
    model, _ = sharpened_detector()
    target = {"boxes": torch.tensor(boxes),
              "labels": torch.tensor([c - 10 for c in category_ids])}
    return Inspection(model, load_image_tensor(path), target).run()
