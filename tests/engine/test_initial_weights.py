"""Initial weights from another model: another number of classes loads all but the class
predictor and says so; another backbone is refused in one line."""

from __future__ import annotations

import pytest
import torch

from engine.detector.build import build_model
from engine.detector.checkpoint import save_detector
from engine.detector.class_map import ClassInfo

SMALL = {"min_size": 64, "max_size": 96}


def _classes(count: int) -> list[ClassInfo]:
    return [ClassInfo(class_id=i, name=f"c{i}") for i in range(1, count)]


@pytest.mark.parametrize("kind", ["our checkpoint", "torchvision state dict"])
def test_weights_with_another_class_count_load_all_but_the_class_predictor(tmp_path, kind):
    other = build_model("resnet18", num_classes=4, weights="none", **SMALL)
    path = tmp_path / "other.pt"
    if kind == "our checkpoint":
        save_detector(path, other, _classes(4))
    else:
        torch.save(other.state_dict(), path)
    notes: list[str] = []
    model = build_model("resnet18", num_classes=3, weights=path, report=notes.append, **SMALL)
    (note,) = notes
    assert str(path) in note and "4 classes" in note and "this model has 3" in note
    assert "all but the class predictor" in note
    mine, theirs = model.state_dict(), other.state_dict()
    torch.testing.assert_close(mine["rpn.head.conv.0.0.weight"], theirs["rpn.head.conv.0.0.weight"])
    assert mine["roi_heads.box_predictor.cls_score.weight"].shape[0] == 3


def test_weights_that_fit_load_without_a_note(tmp_path):
    path = tmp_path / "same.pt"
    torch.save(build_model("resnet18", num_classes=3, weights="none", **SMALL).state_dict(), path)
    notes: list[str] = []
    build_model("resnet18", num_classes=3, weights=path, report=notes.append, **SMALL)
    assert notes == []


def test_weights_of_another_backbone_are_refused_in_one_line(tmp_path):
    path = tmp_path / "resnet18.pt"
    torch.save(build_model("resnet18", num_classes=3, weights="none", **SMALL).state_dict(), path)
    with pytest.raises(ValueError) as error:
        build_model("efficientnet_lite0", num_classes=3, weights=path, **SMALL)
    message = str(error.value)
    assert "\n" not in message and len(message) < 500
    assert str(path) in message and "another backbone" in message and "tensors fit" in message
