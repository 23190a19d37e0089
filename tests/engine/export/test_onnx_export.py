"""ONNX: opset 18, image size symbolic, and onnxruntime gives our model's detections on real
photos of several sizes."""

from __future__ import annotations

import logging

import onnx
import pytest
import torch

from engine.detector.checkpoint import load_detector
from engine.export import export_model
from engine.export.compare import compare_detections
from engine.export.onnx_format import onnxruntime_session

from .conftest import TEST_IMAGES

pytestmark = pytest.mark.slow  # torch.export and the ONNX translation take most of a minute


def test_onnxruntime_gives_our_detections(trained_checkpoint, real_images, tmp_path, caplog):
    checkpoint, _ = trained_checkpoint
    with caplog.at_level(logging.DEBUG):
        result = export_model(checkpoint, "onnx", tmp_path / "model.onnx", images=TEST_IMAGES)
    # The exporter's notes stay out of our output, and no empty records reach a log.
    assert [r.name for r in caplog.records if not r.getMessage().strip()] == []
    assert result.verification.ok and result.verification.runtime.startswith("onnxruntime")

    graph = onnx.load(str(result.model_path))
    opset = {entry.domain: entry.version for entry in graph.opset_import}[""]
    assert opset >= 17
    (image_input,) = graph.graph.input
    dims = image_input.type.tensor_type.shape.dim
    assert dims[0].dim_value == 3 and dims[1].dim_param and dims[2].dim_param
    assert [o.name for o in graph.graph.output] == ["boxes", "labels", "scores"]

    session = onnxruntime_session(result.model_path)
    model = load_detector(checkpoint).model
    landscape, portrait = real_images
    settings = model.roi_heads.detection_settings
    images = {"raccoon-1.jpg": landscape, "raccoon-10.jpg": portrait,
              "raccoon-10.jpg cropped": portrait[:, 17:250, 3:201].contiguous()}
    for name, image in images.items():
        boxes, labels, scores = session.run(None, {"image": image.numpy()})
        with torch.inference_mode():
            expected = model([image])[0]
        comparison = compare_detections(
            expected, {"boxes": torch.from_numpy(boxes), "labels": torch.from_numpy(labels),
                       "scores": torch.from_numpy(scores)}, image=name,
            box_tol=1e-2, rel_box_tol=1e-4, score_tol=1e-3, score_thresh=settings.score_thresh,
            detections_per_img=settings.detections_per_img, nms_thresh=settings.nms_thresh)
        # Every detection found again, within 0.01 px + 1e-4 of the box's size (every
        # coordinate) and 1e-3 in score, except where float rounding decides a threshold (an
        # NMS overlap at the IoU threshold, the top-k cut, the score threshold): each of those
        # is explained in the notes, anything else fails and is named.
        assert comparison.reference > 0 and comparison.unexplained == 0, comparison.notes
        assert comparison.matched + len(comparison.notes) >= comparison.reference, name
        assert all(name in note for note in comparison.notes)
    assert result.card["loading"]["opset"] == opset

