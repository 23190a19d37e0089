"""The Faster R-CNN: transform -> backbone + FPN -> anchors -> RPN -> ROI heads -> original sizes.

Takes a list of (3, H, W) float images in [0, 1]. In training mode, with targets
``[{"boxes": (K, 4) x0 y0 x1 y1, "labels": (K,) int64}]`` it returns the four losses
``loss_objectness``, ``loss_rpn_box_reg``, ``loss_classifier``, ``loss_box_reg``; in
evaluation mode it returns per image ``{"boxes": (D, 4), "labels": (D,), "scores": (D,)}`` in
the original image's coordinates. Labels are class ids with 0 the background.

Every stage's outputs are typed records (:class:`FeatureOutputs`,
:class:`~engine.detector.rpn.RpnOutputs`, :class:`~engine.detector.roi_heads.RoiOutputs`,
together a :class:`DetectorOutputs`); a :class:`~engine.detector.recorder.StageRecorder` passed
to the forward receives them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from .anchors import AnchorSpec, anchors_for_features
from .backbones import BackboneWithFPN
from .recorder import StageRecorder
from .roi_heads import BoxHeadOutputs, DetectionSettings, RoIHeads, RoiOutputs
from .rpn import ProposalSettings, RegionProposalNetwork, RpnOutputs
from .targets import check_images, check_targets
from .transform import ImageBatch, Transform


@dataclass
class FeatureOutputs:
    """The backbone + FPN on a padded batch: ``maps`` per level (N, C, H_l, W_l), finest
    first; ``anchors`` per level (H_l * W_l * A_l, 4) in the batch's pixels, ordered by row,
    column, then cell anchor."""

    maps: list[torch.Tensor]
    anchors: list[torch.Tensor]


@dataclass
class DetectorOutputs:
    """Every stage's outputs for one batch of N images.

    ``batch`` the transformed images (their resized and original sizes); ``features``; ``rpn``;
    ``roi``; ``detections`` per image in the original image's pixels (evaluation; empty in
    training). Boxes inside ``rpn`` and ``roi`` are in resized-image pixels.
    """

    batch: ImageBatch
    features: FeatureOutputs
    rpn: RpnOutputs
    roi: RoiOutputs
    detections: list[dict[str, torch.Tensor]] = field(default_factory=list)

    @property
    def losses(self) -> dict[str, torch.Tensor]:
        """The four training losses (empty in evaluation)."""
        return {**self.rpn.losses, **self.roi.losses}


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
        (a :class:`DetectorOutputs`); without one nothing extra is kept or done."""
        check_images(images, self.transform)
        if self.training:
            if targets is None:
                raise ValueError(
                    "in training mode the model needs targets (call .eval() to detect)"
                )
            check_targets(images, targets, self.num_classes)
        batch, targets = self.transform(images, targets if self.training else None)
        features = self.extract_features(batch)
        outputs = self.run_heads(batch, features, targets)
        if recorder is not None:
            recorder.record(outputs)
        return outputs.losses if self.training else outputs.detections

    def input_problem(self, image: torch.Tensor) -> str | None:
        """Why this (3, H, W) image cannot go through the model (too elongated: see
        :meth:`Transform.size_problem`), or None. Callers that know the file name it."""
        return self.transform.size_check()(image)

    def extract_features(self, batch: ImageBatch) -> FeatureOutputs:
        """The backbone + FPN on the padded batch, and the anchors of every level."""
        pixels = batch.tensors
        if self.channels_last:
            pixels = pixels.contiguous(memory_format=torch.channels_last)
        maps = list(self.backbone(pixels).values())
        anchors = anchors_for_features(
            self.anchor_spec,
            tuple(batch.tensors.shape[-2:]),
            [tuple(f.shape[-2:]) for f in maps],
            device=batch.tensors.device,
        )
        return FeatureOutputs(maps, anchors)

    def run_heads(
        self,
        batch: ImageBatch,
        features: FeatureOutputs,
        targets: list[dict[str, torch.Tensor]] | None = None,
        *,
        rpn_settings: ProposalSettings | None = None,
        detection_settings: DetectionSettings | None = None,
        reuse: DetectorOutputs | None = None,
        box_head: Callable[[RpnOutputs], BoxHeadOutputs] | None = None,
    ) -> DetectorOutputs:
        """The RPN and the ROI heads on the backbone's ``features``, then (in evaluation) the
        detections back in the original images' pixels. ``targets`` (training) have their boxes
        in the resized images. Settings default to the model's own.

        The forward runs this once; an :class:`~engine.detector.inspection.Inspection` runs it
        again with other settings, in evaluation, so that both take the same steps. ``reuse``:
        its earlier outputs on the same batch; the RPN head never runs again, and with the same
        ``rpn_settings`` neither do the proposals nor the box head. ``box_head``: computes the
        box head's outputs for new proposals in place of ``roi_heads.predict`` (the inspection
        keeps them by anchor, so that each proposal runs through the head once).
        """
        gt_boxes = [t["boxes"] for t in targets] if targets is not None else None
        rpn = self.rpn(features.maps, features.anchors, batch.image_sizes, gt_boxes,
                       settings=rpn_settings, reuse=reuse.rpn if reuse is not None else None)
        if reuse is not None and rpn is reuse.rpn:
            head = reuse.roi.head  # the same proposals: the same box head outputs
        else:
            head = box_head(rpn) if box_head is not None else None
        roi = self.roi_heads(features.maps[: self.pooled_levels], rpn.proposals,
                             batch.image_sizes, targets, settings=detection_settings, head=head)
        detections = [] if targets is not None else self.transform.to_original_sizes(
            roi.detections, batch)
        return DetectorOutputs(batch, features, rpn, roi, detections)
