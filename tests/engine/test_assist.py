"""Model-assisted labeling: checkpoint classes mapped onto a project's categories, and the
model's detections turned into suggestions in project category ids."""

from __future__ import annotations

import pytest
import torch

from engine import build_model
from engine.assist import Predictor
from engine.data.images import load_image_tensor
from engine.data.project import CategoryRow
from engine.detector.checkpoint import ClassInfo, save_detector
from engine.detector.class_map import map_classes

from ..conftest import TEST_DATA


def test_classes_map_by_id_then_by_name_and_unknown_ones_are_named():
    classes = [ClassInfo(1, "cat", 7), ClassInfo(2, "dog", 8), ClassInfo(3, "fox", 9),
               ClassInfo(4, "owl", None)]
    categories = [CategoryRow(7, "cat", "#000000"),  # same id, same name: this project
                  CategoryRow(8, "wolf", "#000000"),  # id 8 renamed: not the dog any more
                  CategoryRow(2, "dog", "#000000"),  # the dog under another id: by name
                  CategoryRow(3, "owl", "#000000")]
    mapping = map_classes(classes, categories)
    assert mapping.to_category == {1: 7, 2: 2, 4: 3}
    assert mapping.unmapped == ["fox"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model("resnet18", num_classes=3, min_size=224, max_size=320)
    with torch.no_grad():
        model.roi_heads.box_predictor.cls_score.weight.mul_(30)
    path = tmp_path_factory.mktemp("assist") / "model.pt"
    save_detector(path, model, [ClassInfo(1, "circle", 4), ClassInfo(2, "square", 5)])
    return path, model.eval()


def test_suggestions_are_the_models_detections_in_project_categories(checkpoint):
    path, model = checkpoint
    categories = [CategoryRow(4, "circle", "#ff0000"), CategoryRow(5, "square", "#00ff00")]
    predictor = Predictor(path, categories, score_floor=0.0)
    image = TEST_DATA / "raccoon-1.jpg"
    suggestions = predictor.predict(image)
    with torch.inference_mode():
        found = model([load_image_tensor(image)])[0]
    assert len(suggestions) == len(found["boxes"]) > 0
    for box, (x0, y0, x1, y1), label, score in zip(
            suggestions, found["boxes"].tolist(), found["labels"].tolist(),
            found["scores"].tolist()):
        assert (box.x0, box.y0, box.x1, box.y1) == pytest.approx((x0, y0, x1, y1), abs=1e-4)
        assert box.category_id == {1: 4, 2: 5}[label]
        assert box.source == "predicted" and box.score == pytest.approx(score, abs=1e-6)
    # Only circles known to this project: the squares are left out.
    only_circles = Predictor(path, categories[:1], score_floor=0.0)
    assert only_circles.mapping.unmapped == ["square"]
    assert all(box.category_id == 4 for box in only_circles.predict(image))
