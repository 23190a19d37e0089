"""The export module's stages against the model's typed stage outputs: the proposals the
deploy module hands its box head are exactly the model's (``RpnOutputs``), so a difference in
the detections is found in the stage where it starts."""

from __future__ import annotations

import torch

from engine import build_model
from engine.detector.recorder import StageRecorder
from engine.export.deploy import DeployDetector, inference_copy

from .conftest import SMALL, sharpen


def test_deploy_proposals_and_detections_are_the_models_stage_outputs(real_images):
    torch.manual_seed(0)
    model = build_model("efficientnet_lite0", num_classes=3, weights="imagenet", **SMALL)
    sharpen(model, 2.0)
    model.eval()
    deploy = DeployDetector(inference_copy(model)).eval()
    captured = []
    proposals = deploy._proposals
    deploy._proposals = lambda *args: captured.append(proposals(*args)) or captured[-1]
    for image in real_images:
        recorder = StageRecorder()
        with torch.inference_mode():
            model([image], recorder=recorder)
            boxes, labels, scores = deploy(image)
        outputs = recorder.outputs
        assert torch.equal(captured[-1], outputs.rpn.proposals[0])
        assert captured[-1].shape[0] == outputs.rpn.stages[0].final.numel() > 0
        assert torch.equal(boxes, outputs.detections[0]["boxes"])
        assert torch.equal(labels, outputs.roi.detections[0]["labels"])
        assert torch.equal(scores, outputs.roi.detections[0]["scores"])
