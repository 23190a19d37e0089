"""The torchvision format: a state dict that loads strictly into torchvision's own builders and
gives our detections there, built by the code the model card gives."""

from __future__ import annotations

import json

import pytest
import torch
from torchvision.models.detection import fasterrcnn_resnet50_fpn

from engine import build_model
from engine.detector.checkpoint import load_detector, save_detector
from engine.export import ExportError, export_model

from .conftest import CLASSES, SMALL, TEST_IMAGES, sharpen


def _run_card_code(card: dict, folder, monkeypatch) -> torch.nn.Module:
    """What a deployer does: run the card's loading code next to the file."""
    monkeypatch.chdir(folder)
    namespace: dict = {}
    exec(card["loading"]["code"], namespace)
    return namespace["model"]


@pytest.mark.parametrize("backbone", ["resnet50", "mobilenet_v3_large"])
def test_state_dict_loads_strictly_into_torchvision_builder_with_same_detections(
    backbone, torchvision_checkpoints, real_images, tmp_path, monkeypatch
):
    result = export_model(torchvision_checkpoints[backbone], "torchvision",
                          tmp_path / "model.pt", images=TEST_IMAGES[:1])
    assert result.verification.ok
    assert result.verification.images[0].matched == result.verification.images[0].reference > 0
    card = json.loads(result.card_path.read_text())
    assert card["loading"]["builder"].endswith(
        {"resnet50": "fasterrcnn_resnet50_fpn",
         "mobilenet_v3_large": "fasterrcnn_mobilenet_v3_large_fpn"}[backbone])
    theirs = _run_card_code(card, tmp_path, monkeypatch)  # load_state_dict is strict there
    assert theirs.transform.min_size == (224,) and theirs.transform.max_size == 320
    ours = load_detector(torchvision_checkpoints[backbone]).model
    with torch.inference_mode():
        for mine, ref in zip(ours(real_images), theirs(real_images)):
            assert len(ref["boxes"]) > 0
            assert torch.equal(mine["labels"], ref["labels"])
            torch.testing.assert_close(mine["boxes"], ref["boxes"], atol=1e-3, rtol=0)
            torch.testing.assert_close(mine["scores"], ref["scores"], atol=1e-5, rtol=0)


def test_folded_frozen_batchnorm_exports_torchvision_unfolded_layout(tmp_path, real_images):
    """Fine-tuned models fold their frozen BatchNorm into the convolutions for speed; the
    exported file must still hold torchvision's convolution weights and BatchNorm statistics
    as they are, plus the counters torchvision's BatchNorm2d expects."""
    torch.manual_seed(0)
    ours = build_model("resnet50", num_classes=3, frozen_batchnorm=True, **SMALL)
    with torch.no_grad():  # statistics far from the identity, so a fold would show
        for name, buffer in ours.named_buffers():
            if name.endswith("running_var"):
                buffer.uniform_(0.5, 2.0)
            elif name.endswith("running_mean"):
                buffer.uniform_(-0.2, 0.2)
    sharpen(ours, 30.0)
    checkpoint = save_detector(tmp_path / "frozen.pt", ours, CLASSES)
    result = export_model(checkpoint, "torchvision", tmp_path / "model.pt",
                          images=TEST_IMAGES[:1])
    assert result.verification.ok

    state = torch.load(result.model_path, weights_only=True)
    torchvision_keys = list(fasterrcnn_resnet50_fpn(
        weights=None, weights_backbone=None, num_classes=3).state_dict())
    assert list(state) == torchvision_keys
    conv = ours.backbone.body.layer1[0].conv1
    assert hasattr(conv, "frozen_bn"), "the model under test really folds"
    torch.testing.assert_close(state["backbone.body.layer1.0.conv1.weight"], conv.weight,
                               rtol=0, atol=0)
    torch.testing.assert_close(state["backbone.body.layer1.0.bn1.running_var"],
                               ours.backbone.body.layer1[0].bn1.running_var, rtol=0, atol=0)


def test_resnet18_exports_through_resnet_fpn_backbone(tmp_path, monkeypatch):
    torch.manual_seed(0)
    ours = build_model("resnet18", num_classes=3, fold_frozen_batchnorm=False,
                       channels_last=False, **SMALL)
    sharpen(ours, 30.0)
    checkpoint = save_detector(tmp_path / "r18.pt", ours, CLASSES)
    result = export_model(checkpoint, "torchvision", tmp_path / "model.pt")
    assert result.verification.ok
    assert result.verification.images[0].image == "generated picture"  # no images given
    assert "resnet_fpn_backbone(backbone_name='resnet18'" in result.card["loading"]["code"]
    assert result.verification.images[0].matched == result.verification.images[0].reference > 0
    assert result.verification.max_box_diff < 1e-3
    theirs = _run_card_code(result.card, tmp_path, monkeypatch)  # strict load_state_dict
    assert type(theirs).__name__ == "FasterRCNN"


def test_efficientnet_lite0_is_refused_naming_the_file_and_the_supported_backbones(
    trained_checkpoint, tmp_path
):
    checkpoint, _ = trained_checkpoint
    out = tmp_path / "exports" / "model.pt"
    with pytest.raises(ExportError) as error:
        export_model(checkpoint, "torchvision", out)
    message = str(error.value)
    assert str(checkpoint) in message and "efficientnet_lite0" in message
    assert "resnet50, mobilenet_v3_large, resnet18, resnet34, resnet101" in message
    assert "torchscript or onnx" in message
    assert list(tmp_path.iterdir()) == []
