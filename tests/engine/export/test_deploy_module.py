"""The single-image module TorchScript and ONNX are made from computes our model's detections:
the same float operations, so the same numbers, at any image size."""

from __future__ import annotations

import pytest
import torch

from engine import build_model
from engine.export.api import generated_picture
from engine.export.compare import compare_detections
from engine.export.deploy import DeployDetector, SymbolicDeployDetector, inference_copy

from .conftest import SMALL, sharpen


@pytest.fixture(scope="module")
def lite0():
    """The default backbone with its packaged ImageNet weights; folded frozen BatchNorm and
    channels-last, as users train it."""
    torch.manual_seed(0)
    model = build_model("efficientnet_lite0", num_classes=3, weights="imagenet", **SMALL)
    sharpen(model, 2.0)
    return model.eval()


def _images(real_images):
    landscape, portrait = real_images
    return {
        "landscape photo": landscape,  # 205 x 320: the long side limits the resize
        "portrait photo": portrait,  # 320 x 291
        "small, enlarged": landscape[:, 50:90, 100:160],  # 40 x 60 -> 213 x 320
        "odd sizes": portrait[:, :301, :173],  # 301 x 173 -> 320 x 183, padded to 320 x 192
    }


def test_deploy_module_gives_the_models_detections_exactly(lite0, real_images):
    deploy = DeployDetector(inference_copy(lite0)).eval()
    for name, image in _images(real_images).items():
        with torch.inference_mode():
            expected = lite0([image])[0]
            boxes, labels, scores = deploy(image)
        assert len(expected["boxes"]) > 0, name
        assert torch.equal(boxes, expected["boxes"]), name
        assert torch.equal(labels, expected["labels"]), name
        assert torch.equal(scores, expected["scores"]), name


def test_inference_copy_folds_batchnorm_into_plain_convolutions(lite0):
    copy = inference_copy(lite0)
    convs = [m for m in copy.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and not any(hasattr(m, "frozen_bn") for m in convs)
    assert any(hasattr(m, "frozen_bn") for m in lite0.modules()), "the original is untouched"
    assert list(copy.state_dict()) != list(lite0.state_dict())  # plain convs carry a bias


def test_symbolic_module_gives_the_same_detections(lite0, real_images):
    """Its NMS loops over groups instead of torchvision's batched_nms: the same survivors,
    whose order may differ only where scores tie."""
    deploy = SymbolicDeployDetector(inference_copy(lite0)).eval()
    for name, image in _images(real_images).items():
        with torch.inference_mode():
            expected = lite0([image])[0]
            boxes, labels, scores = deploy(image)
        result = compare_detections(
            expected, {"boxes": boxes, "labels": labels, "scores": scores}, box_tol=0.0,
            score_tol=0.0, score_thresh=0.05, detections_per_img=100)
        assert result.matched == result.reference == result.exported > 0, name


def test_resized_size_as_pytorch_computes_it_in_double_precision(lite0):
    """198 * (224 / 198) is 224.0 in double precision but 223.99998 in float32: the export
    must compute the resize's size as the model does (the ONNX test runs such a crop)."""
    for module in (DeployDetector(lite0), SymbolicDeployDetector(lite0)):
        assert module._resized_size(233, 198) == (263, 224)
        assert module._resized_size(205, 320) == (205, 320)  # the long side limits
        assert module._resized_size(40, 60) == (213, 320)


def test_generated_picture_is_fixed_and_differs_from_the_input_size():
    first, second = generated_picture(224), generated_picture(224)
    assert first.shape == (3, 231, 339) and torch.equal(first, second)
    assert float(first.min()) >= 0.0 and float(first.max()) <= 1.0


def test_deploy_module_with_a_single_pooled_level(torchvision_checkpoints, real_images):
    """mobilenet_v3_large pools every proposal from one map and drops proposals below
    objectness 0.05: the other branches of the module."""
    from engine.detector.checkpoint import load_detector

    model = load_detector(torchvision_checkpoints["mobilenet_v3_large"]).model
    assert model.pooled_levels == 1 and model.rpn.test_settings.score_thresh == 0.05
    deploy = DeployDetector(inference_copy(model)).eval()
    for image in real_images:
        with torch.inference_mode():
            expected = model([image])[0]
            boxes, labels, scores = deploy(image)
        assert len(expected["boxes"]) > 0
        assert torch.equal(boxes, expected["boxes"]) and torch.equal(scores, expected["scores"])
        assert torch.equal(labels, expected["labels"])
