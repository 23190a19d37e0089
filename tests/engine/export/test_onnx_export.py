"""ONNX: opset 18, image size symbolic, and onnxruntime gives our model's detections on real
photos of several sizes."""

from __future__ import annotations

import onnx
import pytest
import torch

from engine.detector.checkpoint import load_detector
from engine.export import export_model
from engine.export.compare import compare_detections
from engine.export.onnx_format import onnxruntime_session

from .conftest import TEST_IMAGES

pytestmark = pytest.mark.slow  # torch.export and the ONNX translation take most of a minute


def test_onnxruntime_gives_our_detections(trained_checkpoint, real_images, tmp_path):
    checkpoint, _ = trained_checkpoint
    result = export_model(checkpoint, "onnx", tmp_path / "model.onnx", images=TEST_IMAGES)
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
    for image in (landscape, portrait, portrait[:, 17:250, 3:201].contiguous()):
        boxes, labels, scores = session.run(None, {"image": image.numpy()})
        with torch.inference_mode():
            expected = model([image])[0]
        comparison = compare_detections(
            expected, {"boxes": torch.from_numpy(boxes), "labels": torch.from_numpy(labels),
                       "scores": torch.from_numpy(scores)},
            box_tol=1e-2, score_tol=1e-3, score_thresh=0.05, detections_per_img=100)
        # Every detection found again: within 0.01 px (every coordinate) and 1e-3 in score.
        assert comparison.matched == comparison.reference == comparison.exported > 0
    assert result.card["loading"]["opset"] == opset
