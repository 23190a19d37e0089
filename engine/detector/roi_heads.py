"""The second stage: pool features for each proposal, classify it and refine its box.

Stages, each a function of its inputs:

1. In training, :func:`proposal_labels` - ground-truth boxes are added to the proposals, each
   proposal is matched to a box (IoU >= 0.5 foreground with that box's class, below background
   0, never ignored by default), and a balanced mini-batch is sampled.
2. Pooling (:mod:`engine.detector.poolers`) - the FPN level each proposal is pooled from, by
   equation 1 of the FPN paper, then 7x7 RoIAlign (sampling ratio 2) on that level.
3. :class:`TwoMLPHead` and :class:`FastRCNNPredictor` - class logits (P, C) and per-class box
   deltas (P, C * 4), coded with weights (10, 10, 5, 5): :class:`BoxHeadOutputs`.
4. :func:`fast_rcnn_loss` in training; in evaluation :func:`class_candidates` (softmax, decode,
   clip) and :func:`postprocess_stages` (score threshold, remove small boxes, per-class NMS,
   top-k).

:class:`RoIHeads` returns every stage's outputs as a :class:`RoiOutputs`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import batched_nms, box_iou, clip_boxes_to_image, remove_small_boxes

from .box_coding import BoxCoder
from .matching import BELOW_LOW_THRESHOLD, BETWEEN_THRESHOLDS, Matcher
from .poolers import RoIPooler
from .sampling import sample_positives_negatives

BOX_HEAD_CODER = BoxCoder(weights=(10.0, 10.0, 5.0, 5.0))


class TwoMLPHead(nn.Module):
    """(P, C, 7, 7) pooled features -> (P, representation_size): flatten, two FC + ReLU."""

    def __init__(self, in_channels: int, representation_size: int) -> None:
        super().__init__()
        self.fc6 = nn.Linear(in_channels, representation_size)
        self.fc7 = nn.Linear(representation_size, representation_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(start_dim=1)
        return F.relu(self.fc7(F.relu(self.fc6(x))))


class FastRCNNPredictor(nn.Module):
    """(P, D) -> class logits (P, num_classes) and box deltas (P, num_classes * 4).

    Class 0 is the background."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.cls_score = nn.Linear(in_channels, num_classes)
        self.bbox_pred = nn.Linear(in_channels, num_classes * 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.flatten(start_dim=1)
        return self.cls_score(x), self.bbox_pred(x)


@dataclass
class ProposalTargets:
    """One image's sampled training proposals.

    ``proposals`` (S, 4); ``labels`` (S,) the class of the matched box, 0 for background;
    ``matched_gt`` (S,) the index of the matched box (0 for background); ``regression_targets``
    (S, 4) codes of the matched boxes relative to the proposals.
    """

    proposals: torch.Tensor
    labels: torch.Tensor
    matched_gt: torch.Tensor
    regression_targets: torch.Tensor


def proposal_labels(
    proposals: torch.Tensor, gt_boxes: torch.Tensor, gt_labels: torch.Tensor, matcher: Matcher
) -> tuple[torch.Tensor, torch.Tensor]:
    """Match proposals (P, 4) to boxes (M, 4) with classes (M,).

    Returns the matched box index (P,) (clamped to >= 0) and the label (P,): the class id for
    foreground, 0 background, -1 ignored.
    """
    if gt_boxes.numel() == 0:
        zeros = torch.zeros((proposals.shape[0],), dtype=torch.int64, device=proposals.device)
        return zeros, zeros.clone()
    matches = matcher(box_iou(gt_boxes, proposals))
    clamped = matches.clamp(min=0)
    labels = gt_labels[clamped].to(torch.int64)
    labels[matches == BELOW_LOW_THRESHOLD] = 0
    labels[matches == BETWEEN_THRESHOLDS] = -1
    return clamped, labels


def select_training_proposals(
    proposals: torch.Tensor,
    gt_boxes: torch.Tensor,
    gt_labels: torch.Tensor,
    matcher: Matcher,
    batch_size_per_image: int,
    positive_fraction: float,
    box_coder: BoxCoder = BOX_HEAD_CODER,
) -> ProposalTargets:
    """Add the ground truth to one image's proposals, label them and sample a mini-batch."""
    proposals = torch.cat((proposals, gt_boxes.to(proposals.dtype)))
    matched_gt, labels = proposal_labels(proposals, gt_boxes, gt_labels, matcher)
    pos, neg = sample_positives_negatives(labels, batch_size_per_image, positive_fraction)
    sampled = torch.where(pos | neg)[0]
    proposals, labels, matched_gt = proposals[sampled], labels[sampled], matched_gt[sampled]
    if gt_boxes.numel() == 0:
        gt_boxes = torch.zeros((1, 4), dtype=proposals.dtype, device=proposals.device)
    targets = box_coder.encode(gt_boxes[matched_gt].to(proposals.dtype), proposals)
    return ProposalTargets(proposals, labels, matched_gt, targets)


def fast_rcnn_loss(
    class_logits: torch.Tensor,
    box_deltas: torch.Tensor,
    labels: torch.Tensor,
    regression_targets: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy over all sampled proposals; smooth L1 (beta 1/9) of the foreground ones'
    deltas for their own class, divided by the number of sampled proposals.

    ``class_logits`` (S, C), ``box_deltas`` (S, C * 4), ``labels`` (S,), ``regression_targets``
    (S, 4), concatenated over the batch.
    """
    classification_loss = F.cross_entropy(class_logits, labels)
    foreground = torch.where(labels > 0)[0]
    deltas = box_deltas.reshape(box_deltas.shape[0], -1, 4)
    box_loss = F.smooth_l1_loss(
        deltas[foreground, labels[foreground]],
        regression_targets[foreground],
        beta=1 / 9,
        reduction="sum",
    ) / labels.numel()
    return classification_loss, box_loss


@dataclass(frozen=True)
class DetectionSettings:
    """Postprocessing of the box head's output."""

    score_thresh: float = 0.05
    nms_thresh: float = 0.5
    detections_per_img: int = 100
    min_size: float = 1e-2


def class_candidates(
    class_logits: torch.Tensor,
    box_deltas: torch.Tensor,
    proposals: torch.Tensor,
    image_size: tuple[int, int],
    box_coder: BoxCoder = BOX_HEAD_CODER,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One image's (P, C) logits and (P, C * 4) deltas -> one candidate per proposal and
    foreground class: boxes (P * (C - 1), 4) clipped to ``image_size``, softmax scores and class
    ids, ordered by proposal, then class."""
    num_classes = class_logits.shape[-1]
    boxes = box_coder.decode(box_deltas, proposals)
    boxes = clip_boxes_to_image(boxes, image_size)
    scores = F.softmax(class_logits, dim=-1)
    labels = torch.arange(num_classes, device=class_logits.device).view(1, -1).expand_as(scores)
    # Drop the background column.
    return boxes[:, 1:].reshape(-1, 4), scores[:, 1:].reshape(-1), labels[:, 1:].reshape(-1)


@dataclass
class DetectionStages:
    """One image's postprocessing, stage by stage: index tensors into its candidates, each a
    subset of the one before. ``above_score`` - score above ``score_thresh``; ``large_enough``
    - also at least ``min_size`` wide and high; ``nms_kept`` - survivors of per-class NMS by
    decreasing score; ``final`` - the first ``detections_per_img`` of those."""

    above_score: torch.Tensor
    large_enough: torch.Tensor
    nms_kept: torch.Tensor
    final: torch.Tensor


def postprocess_stages(
    boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, settings: DetectionSettings
) -> DetectionStages:
    """Candidates of one image (boxes (K, 4), scores (K,), labels (K,)) -> the indices that
    survive each postprocessing stage."""
    above_score = torch.where(scores > settings.score_thresh)[0]
    large_enough = above_score[remove_small_boxes(boxes[above_score], min_size=settings.min_size)]
    nms_kept = large_enough[
        batched_nms(
            boxes[large_enough], scores[large_enough], labels[large_enough], settings.nms_thresh
        )
    ]
    return DetectionStages(
        above_score, large_enough, nms_kept, nms_kept[: settings.detections_per_img]
    )


def postprocess_detections(
    boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, settings: DetectionSettings
) -> dict[str, torch.Tensor]:
    """Candidates of one image -> detections: scores above the threshold, boxes at least
    ``min_size`` wide and high, per-class NMS, the ``detections_per_img`` best."""
    keep = postprocess_stages(boxes, scores, labels, settings).final
    return {"boxes": boxes[keep], "labels": labels[keep], "scores": scores[keep]}


class BoxHeadOutputs(NamedTuple):
    """The box head on P proposals (all images' concatenated): ``class_logits`` (P, C), the
    background first; ``box_deltas`` (P, C * 4), per class, coded relative to the proposal."""

    class_logits: torch.Tensor
    box_deltas: torch.Tensor


@dataclass
class DetectionCandidates:
    """One image's candidate detections, one per proposal and foreground class, ordered by
    proposal, then class: candidate k is proposal k // (C - 1) with class k % (C - 1) + 1.

    ``boxes`` (K, 4) decoded and clipped, in resized-image pixels; ``scores`` (K,) softmax
    probabilities; ``labels`` (K,) class ids 1..C-1.
    """

    boxes: torch.Tensor
    scores: torch.Tensor
    labels: torch.Tensor


@dataclass
class RoiOutputs:
    """The second stage on N images.

    ``proposals`` per image (P_i, 4) the boxes the box head ran on (in training the sampled
    ones, ground-truth boxes among them); ``head`` its outputs for them, concatenated.
    In evaluation, per image: ``candidates``, ``stages`` (index tensors into the candidates)
    and ``detections`` ``{"boxes": (D, 4) in resized-image pixels, "labels": (D,), "scores":
    (D,)}``, made with ``settings``. In training: ``sampled`` per image and ``losses``
    (``loss_classifier``, ``loss_box_reg``).
    """

    proposals: list[torch.Tensor]
    head: BoxHeadOutputs
    settings: DetectionSettings | None = None
    candidates: list[DetectionCandidates] = field(default_factory=list)
    stages: list[DetectionStages] = field(default_factory=list)
    detections: list[dict[str, torch.Tensor]] = field(default_factory=list)
    sampled: list[ProposalTargets] = field(default_factory=list)
    losses: dict[str, torch.Tensor] = field(default_factory=dict)


class RoIHeads(nn.Module):
    """Coordinates the second stage; see the module docstring."""

    def __init__(
        self,
        box_head: TwoMLPHead,
        box_predictor: FastRCNNPredictor,
        *,
        strides: list[int],
        fg_iou_thresh: float = 0.5,
        bg_iou_thresh: float = 0.5,
        batch_size_per_image: int = 512,
        positive_fraction: float = 0.25,
        detection_settings: DetectionSettings = DetectionSettings(),
        box_coder: BoxCoder = BOX_HEAD_CODER,
        output_size: int = 7,
        sampling_ratio: int = 2,
    ) -> None:
        super().__init__()
        self.box_head = box_head
        self.box_predictor = box_predictor
        # ``strides`` of the pooled maps: P_k has stride 2^k.
        self.pooler = RoIPooler(strides, output_size=output_size, sampling_ratio=sampling_ratio)
        self.matcher = Matcher(fg_iou_thresh, bg_iou_thresh, allow_low_quality_matches=False)
        self.batch_size_per_image = batch_size_per_image
        self.positive_fraction = positive_fraction
        self.detection_settings = detection_settings
        self.box_coder = box_coder

    def predict(
        self, features: list[torch.Tensor], proposals: list[torch.Tensor]
    ) -> BoxHeadOutputs:
        """Pool each proposal from its level (``features`` the pooled levels, (N, C, H_l, W_l)
        each), then the box head: class logits (P, C) and box deltas (P, C * 4) of the
        concatenated proposals."""
        class_logits, box_deltas = self.box_predictor(self.box_head(self.pooler(features,
                                                                               proposals)))
        # float32 whatever autocast computed them in (as the RPN's outputs); a no-op in float32.
        return BoxHeadOutputs(class_logits.float(), box_deltas.float())

    def detect(
        self,
        head: BoxHeadOutputs,
        proposals: list[torch.Tensor],
        image_sizes: list[tuple[int, int]],
        settings: DetectionSettings,
    ) -> RoiOutputs:
        """The box head's outputs -> per image the candidates, the postprocessing stages and
        the detections, in resized-image coordinates."""
        counts = [p.shape[0] for p in proposals]
        outputs = RoiOutputs(proposals, head, settings)
        for logits, deltas, props, size in zip(
            head.class_logits.split(counts), head.box_deltas.split(counts), proposals, image_sizes
        ):
            candidates = DetectionCandidates(
                *class_candidates(logits, deltas, props, size, self.box_coder))
            stages = postprocess_stages(
                candidates.boxes, candidates.scores, candidates.labels, settings)
            keep = stages.final
            outputs.candidates.append(candidates)
            outputs.stages.append(stages)
            outputs.detections.append({"boxes": candidates.boxes[keep],
                                       "labels": candidates.labels[keep],
                                       "scores": candidates.scores[keep]})
        return outputs

    def forward(
        self,
        features: list[torch.Tensor],
        proposals: list[torch.Tensor],
        image_sizes: list[tuple[int, int]],
        targets: list[dict[str, torch.Tensor]] | None = None,
        *,
        settings: DetectionSettings | None = None,
        head: BoxHeadOutputs | None = None,
    ) -> RoiOutputs:
        """``features``: the pooled levels, (N, C, H_l, W_l) each; ``proposals`` per image in
        resized-image coordinates. Evaluation: the detections per image, postprocessed with
        ``settings`` (default: the model's); ``head``, when given, is the box head's output for
        these proposals from an earlier call (an inspection's rerun), so the head does not run.
        Training (with ``targets``): the losses, on a sample of proposals and ground truth."""
        if targets is None:
            if head is None:
                head = self.predict(features, proposals)
            settings = settings if settings is not None else self.detection_settings
            return self.detect(head, proposals, image_sizes, settings)
        sampled = [
            select_training_proposals(
                p, t["boxes"], t["labels"], self.matcher,
                self.batch_size_per_image, self.positive_fraction, self.box_coder,
            )
            for p, t in zip(proposals, targets)
        ]
        sampled_proposals = [s.proposals for s in sampled]
        head = self.predict(features, sampled_proposals)
        loss_classifier, loss_box_reg = fast_rcnn_loss(
            head.class_logits,
            head.box_deltas,
            torch.cat([s.labels for s in sampled]),
            torch.cat([s.regression_targets for s in sampled]),
        )
        return RoiOutputs(sampled_proposals, head, sampled=sampled,
                          losses={"loss_classifier": loss_classifier,
                                  "loss_box_reg": loss_box_reg})
