"""The Faster R-CNN: transform -> backbone + FPN -> anchors -> RPN -> ROI heads -> original sizes.

Takes a list of (3, H, W) float images in [0, 1]. In training mode, with targets
``[{"boxes": (K, 4) x0 y0 x1 y1, "labels": (K,) int64}]`` it returns the four losses
``loss_objectness``, ``loss_rpn_box_reg``, ``loss_classifier``, ``loss_box_reg``; in
evaluation mode it returns per image ``{"boxes": (D, 4), "labels": (D,), "scores": (D,)}`` in
the original image's coordinates. Labels are class ids with 0 the background.
"""

from __future__ import annotations

import torch
from torch import nn

from .anchors import AnchorSpec, anchors_for_features
from .backbones import BackboneWithFPN
from .recorder import StageRecorder
from .roi_heads import RoIHeads
from .rpn import RegionProposalNetwork
from .targets import check_images, check_targets
from .transform import Transform


class FasterRCNN(nn.Module):
    """Coordinates the stages; each stage lives in its own module. Built by
    :func:`engine.detector.build.build_model`, which holds the defaults."""

    def __init__(
        self,
        *,
        transform: Transform,
        backbone: BackboneWithFPN,
        anchor_spec: AnchorSpec,
        rpn: RegionProposalNetwork,
        roi_heads: RoIHeads,
        num_classes: int,
        pooled_levels: int,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.transform = transform
        self.backbone = backbone
        self.anchor_spec = anchor_spec
        self.rpn = rpn
        self.roi_heads = roi_heads
        self.num_classes = num_classes
        self.pooled_levels = pooled_levels
        self.channels_last = channels_last

    def forward(
        self,
        images: list[torch.Tensor],
        targets: list[dict[str, torch.Tensor]] | None = None,
        *,
        recorder: StageRecorder | None = None,
    ):
        """See the module docstring. ``recorder``, when given, receives every stage's outputs
        (see :mod:`engine.detector.inspection`); without one nothing extra is kept or done."""
        check_images(images)
        if self.training:
            if targets is None:
                raise ValueError(
                    "in training mode the model needs targets (call .eval() to detect)"
                )
            check_targets(images, targets, self.num_classes)
        batch, targets = self.transform(images, targets if self.training else None)

        pixels = batch.tensors
        if self.channels_last:
            pixels = pixels.contiguous(memory_format=torch.channels_last)
        features = list(self.backbone(pixels).values())
        anchors = anchors_for_features(
            self.anchor_spec,
            tuple(batch.tensors.shape[-2:]),
            [tuple(f.shape[-2:]) for f in features],
            device=batch.tensors.device,
        )
        if recorder is not None:
            recorder.record(batch=batch, features=features, anchors=anchors)
        gt_boxes = [t["boxes"] for t in targets] if targets is not None else None
        proposals, rpn_losses = self.rpn(
            features, anchors, batch.image_sizes, gt_boxes, recorder=recorder
        )
        detections, head_losses = self.roi_heads(
            features[: self.pooled_levels], proposals, batch.image_sizes, targets,
            recorder=recorder,
        )
        if self.training:
            return {**rpn_losses, **head_losses}
        return self.transform.to_original_sizes(detections, batch)
