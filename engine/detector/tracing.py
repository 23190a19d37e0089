"""The detector's typed stage outputs for one image -> the parts of a Trace.

:class:`TraceBuilder` reads a :class:`~engine.detector.model.DetectorOutputs` (tensors on the
model's device, boxes in resized-image pixels) and writes the Trace's plain records (CPU
tensors, boxes in the original image's pixels; see :mod:`engine.detector.trace`). It adds
what no stage computes for inference: the NMS suppressor of every removed box, and the anchor
matching and ROI sampling against a target, with the samplers' draw fixed by a seed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.ops import box_iou, clip_boxes_to_image

from .backbones import BACKBONES
from .matching import match_labels
from .model import DetectorOutputs, FasterRCNN
from .poolers import CANONICAL_LEVEL, CANONICAL_SIZE
from .roi_heads import BoxHeadOutputs, RoiOutputs, proposal_labels
from .rpn import RpnOutputs
from .sampling import sample_positives_negatives
from .trace import (
    AnchorMatching,
    BoxHeadOutput,
    Detections,
    LevelTrace,
    PostprocessTrace,
    ProposalTrace,
    RoiLevels,
    RoiSampling,
)
from .transform import resize_boxes

# The samplers draw at random; the trace shows one fixed draw so that reruns agree.
SAMPLER_SEED = 0
# IoU entries computed at once when finding NMS suppressors (bounds the memory: 4 M entries,
# about 16 MB per float intermediate).
_SUPPRESSOR_BLOCK = 1 << 22


class TraceBuilder:
    """Trace parts of image 0 of ``outputs`` (a one-image batch) run through ``model``.

    ``target`` (optional): ``{"boxes": (M, 4) in the original image's pixels, "labels": (M,)}``
    with detector class ids; it adds the anchor matching and the ROI sampling.
    """

    def __init__(
        self,
        model: FasterRCNN,
        outputs: DetectorOutputs,
        target: dict[str, torch.Tensor] | None = None,
    ) -> None:
        self.model = model
        self.batch = outputs.batch
        self.features = outputs.features
        self.target = target

    # ----------------------------------------------------------------- parts

    def fixed_parts(self, rpn: RpnOutputs) -> dict:
        """The parts no setting changes: sizes, levels with anchors, the targets, matching."""
        original, resized = self.batch.original_sizes[0], self.batch.image_sizes[0]
        parts = {
            "image_size": tuple(original),
            "resized_size": tuple(resized),
            "scale": (resized[0] / original[0], resized[1] / original[1]),
            "backbone": self.backbone_name(),
            "num_classes": self.model.num_classes,
            "levels": self.level_traces(rpn),
        }
        if self.target is not None:
            parts["target_boxes"] = self.target["boxes"].cpu()
            parts["target_labels"] = self.target["labels"].cpu()
            parts["anchor_matching"] = self.anchor_matching()
        return parts

    def proposal_parts(self, rpn: RpnOutputs, head: BoxHeadOutputs) -> dict:
        """The parts the RPN settings change: the proposals, their levels, their sampling
        against the target and the box head's outputs for them."""
        proposals = rpn.proposals[0]
        return {
            "rpn": self.proposal_trace(rpn),
            "roi_levels": self.roi_levels(proposals),
            "roi_sampling": self.roi_sampling(proposals),
            "box_head": self.box_head(head, proposals),
        }

    def backbone_name(self) -> str:
        config = getattr(self.model, "config", None)
        return config.backbone if config is not None else "unknown"

    def level_names(self) -> list[str]:
        spec = BACKBONES.get(self.backbone_name())
        count = len(self.features.anchors)
        if spec is not None and len(spec.level_names) == count:
            return list(spec.level_names)
        return [f"level {index}" for index in range(count)]

    def level_traces(self, rpn: RpnOutputs) -> list[LevelTrace]:
        padded = tuple(self.batch.tensors.shape[-2:])
        objectness = rpn.head.objectness[0].split(rpn.head.num_anchors_per_level)
        anchor_spec = self.model.anchor_spec
        levels, first = [], 0
        for index, (name, anchors, feature, logits) in enumerate(zip(
            self.level_names(), self.features.anchors, self.features.maps, objectness
        )):
            feature_size = tuple(int(v) for v in feature.shape[-2:])
            sizes, ratios = anchor_spec.sizes[index], anchor_spec.aspect_ratios[index]
            # Cell anchor k has ratio ratios[k // len(sizes)] and size sizes[k % len(sizes)].
            cell_sizes = torch.tensor([float(s) for _ in ratios for s in sizes])
            cell_ratios = torch.tensor([float(r) for r in ratios for _ in sizes])
            levels.append(LevelTrace(
                name=name,
                stride=(padded[0] // feature_size[0], padded[1] // feature_size[1]),
                feature_size=feature_size,
                anchor_sizes=cell_sizes,
                anchor_ratios=cell_ratios,
                anchors=self.to_original(anchors, clip=False),
                objectness=logits.float().cpu(),
                first_anchor=first,
            ))
            first += anchors.shape[0]
        return levels

    def anchor_matching(self) -> AnchorMatching:
        rpn = self.model.rpn
        anchors = torch.cat(self.features.anchors)
        gt_boxes, _ = self.resized_target()
        num_anchors = anchors.shape[0]
        if gt_boxes.shape[0] == 0:
            best_iou = torch.zeros(num_anchors, device=anchors.device)
            matched = torch.full((num_anchors,), -1, dtype=torch.int64, device=anchors.device)
            labels = torch.zeros(num_anchors, dtype=torch.int64, device=anchors.device)
            box_best_iou = torch.zeros(0, device=anchors.device)
        else:
            iou = box_iou(gt_boxes, anchors)  # (M, R)
            matches = rpn.matcher(iou)
            labels = match_labels(matches)
            # Positives show the box the matcher gave them (a low-quality match need not be
            # the anchor's best box); the others their best box.
            matched = torch.where(matches >= 0, matches, iou.argmax(dim=0))
            best_iou = iou.gather(0, matched[None])[0]
            box_best_iou = iou.max(dim=1).values
        positive, negative = seeded_sample(labels, rpn.batch_size_per_image,
                                           rpn.positive_fraction)
        return AnchorMatching(
            best_iou=best_iou.cpu(),
            matched_box=matched.cpu(),
            labels=labels.to(torch.int8).cpu(),
            sampled_positive=positive.cpu(),
            sampled_negative=negative.cpu(),
            box_best_iou=box_best_iou.cpu(),
            uncovered=torch.where(box_best_iou < rpn.matcher.high_threshold)[0].cpu(),
            fg_iou_thresh=rpn.matcher.high_threshold,
            bg_iou_thresh=rpn.matcher.low_threshold,
        )

    def proposal_trace(self, rpn: RpnOutputs) -> ProposalTrace:
        settings, stages = rpn.settings, rpn.stages[0]
        levels = rpn.candidates.levels[0]
        count = levels.shape[0]
        valid = torch.zeros(count, dtype=torch.bool, device=levels.device)
        valid[stages.valid] = True
        kept = torch.zeros_like(valid)
        kept[stages.nms_kept] = True
        return ProposalTrace(
            boxes=self.to_original(stages.boxes),
            logits=rpn.candidates.logits[0].float().cpu(),
            scores=stages.scores.float().cpu(),
            levels=levels.cpu(),
            anchors=rpn.candidates.anchor_indices[0].cpu(),
            valid=valid.cpu(),
            nms_kept=kept.cpu(),
            suppressed_by=nms_suppressors(
                stages.boxes, levels, stages.valid, stages.nms_kept, settings.nms_thresh
            ).cpu(),
            final=stages.final.cpu(),
            pre_nms_top_n=settings.pre_nms_top_n,
            post_nms_top_n=settings.post_nms_top_n,
            nms_thresh=float(settings.nms_thresh),
            score_thresh=float(settings.score_thresh),
            min_size=float(settings.min_size),
        )

    def roi_levels(self, proposals: torch.Tensor) -> RoiLevels:
        pooler = self.model.roi_heads.pooler
        assignment = pooler.assign(proposals)
        return RoiLevels(
            sqrt_area=assignment.sqrt_area.cpu(),
            raw_level=assignment.raw_level.cpu(),
            level=assignment.level.cpu(),
            k_min=pooler.k_min,
            k_max=pooler.k_max,
            canonical_size=CANONICAL_SIZE,
            canonical_level=CANONICAL_LEVEL,
            level_names=self.level_names()[: self.model.pooled_levels],
        )

    def roi_sampling(self, proposals: torch.Tensor) -> RoiSampling | None:
        if self.target is None:
            return None
        heads = self.model.roi_heads
        gt_boxes, gt_labels = self.resized_target()
        boxes = torch.cat([proposals, gt_boxes.to(proposals.dtype)])
        is_target = torch.zeros(boxes.shape[0], dtype=torch.bool)
        is_target[proposals.shape[0]:] = True
        matched, labels = proposal_labels(boxes, gt_boxes, gt_labels, heads.matcher)
        if gt_boxes.shape[0]:
            best_iou = box_iou(gt_boxes, boxes).max(dim=0).values
        else:
            best_iou = torch.zeros(boxes.shape[0], device=boxes.device)
            matched = torch.full_like(matched, -1)
        positive, negative = seeded_sample(labels, heads.batch_size_per_image,
                                           heads.positive_fraction)
        return RoiSampling(
            boxes=self.to_original(boxes),
            is_target=is_target,
            labels=labels.cpu(),
            matched_box=matched.cpu(),
            best_iou=best_iou.cpu(),
            sampled=(positive | negative).cpu(),
            fg_iou_thresh=heads.matcher.high_threshold,
            bg_iou_thresh=heads.matcher.low_threshold,
        )

    def box_head(self, head: BoxHeadOutputs, proposals: torch.Tensor) -> BoxHeadOutput:
        heads = self.model.roi_heads
        num_classes = head.class_logits.shape[-1]
        boxes = heads.box_coder.decode(head.box_deltas, proposals)  # (P, C, 4)
        boxes = clip_boxes_to_image(boxes, self.batch.image_sizes[0])
        return BoxHeadOutput(
            class_probs=F.softmax(head.class_logits.float(), dim=-1).cpu(),
            class_boxes=self.to_original(boxes.reshape(-1, num_classes, 4)),
        )

    def postprocess(self, roi: RoiOutputs) -> PostprocessTrace:
        settings, stages = roi.settings, roi.stages[0]
        candidates = roi.candidates[0]
        boxes, scores, labels = candidates.boxes, candidates.scores, candidates.labels
        num_foreground = self.model.num_classes - 1
        # Candidates are ordered by proposal, then class: candidate i is proposal i // (C - 1).
        above = stages.above_score
        position = torch.full((scores.shape[0],), -1, dtype=torch.int64, device=scores.device)
        position[above] = torch.arange(above.numel(), device=scores.device)
        large_enough = torch.zeros(above.numel(), dtype=torch.bool, device=scores.device)
        large_enough[position[stages.large_enough]] = True
        kept = torch.zeros_like(large_enough)
        kept[position[stages.nms_kept]] = True
        suppressed_by = nms_suppressors(
            boxes, labels, stages.large_enough, stages.nms_kept, settings.nms_thresh
        )[above]
        suppressed_by = torch.where(suppressed_by >= 0, position[suppressed_by.clamp(min=0)],
                                    suppressed_by)
        return PostprocessTrace(
            boxes=self.to_original(boxes[above]),
            scores=scores[above].float().cpu(),
            labels=labels[above].cpu(),
            proposal=(above // num_foreground).cpu(),
            large_enough=large_enough.cpu(),
            nms_kept=kept.cpu(),
            suppressed_by=suppressed_by.cpu(),
            final=position[stages.final].cpu(),
            score_thresh=float(settings.score_thresh),
            nms_thresh=float(settings.nms_thresh),
            detections_per_img=int(settings.detections_per_img),
            min_size=float(settings.min_size),
        )

    @staticmethod
    def detections(outputs: DetectorOutputs) -> Detections:
        """Image 0's detections as the model returned them (original image's pixels)."""
        found = outputs.detections[0]
        return Detections(found["boxes"].cpu(), found["labels"].cpu(), found["scores"].cpu())

    # ----------------------------------------------------------------- coordinates

    def to_original(self, boxes: torch.Tensor, clip: bool = True) -> torch.Tensor:
        """Resized-image boxes (..., 4) -> original-image boxes on the CPU; ``clip`` for boxes
        that were clipped to the resized image (scaling back can overshoot by rounding)."""
        resized, original = self.batch.image_sizes[0], self.batch.original_sizes[0]
        shape = boxes.shape
        boxes = resize_boxes(boxes.reshape(-1, 4), resized, original)
        if clip:
            boxes = clip_boxes_to_image(boxes, original)
        return boxes.reshape(shape).cpu()

    def resized_target(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The target's boxes in resized-image pixels and its labels, on the model's device."""
        device = self.batch.tensors.device
        boxes = resize_boxes(
            self.target["boxes"].to(device), self.batch.original_sizes[0],
            self.batch.image_sizes[0]
        )
        return boxes, self.target["labels"].to(device)


def nms_suppressors(
    boxes: torch.Tensor,
    groups: torch.Tensor,
    considered: torch.Tensor,
    kept: torch.Tensor,
    iou_thresh: float,
) -> torch.Tensor:
    """For greedy NMS within groups: which kept box suppressed each removed one.

    ``boxes`` (K, 4) and ``groups`` (K,) (level or class) of all candidates; ``considered``
    the indices NMS ran on; ``kept`` the survivors in decreasing score, as NMS returns them.
    Returns (K,): for each considered candidate that NMS removed, the index of the first kept
    candidate of its group overlapping it by IoU > ``iou_thresh`` (greedy NMS visits the kept
    ones in that order, so that is the one that removed it); -1 for every other candidate.

    Only boxes of one group suppress each other, so the IoUs are computed group by group: the
    removed boxes of a group against the kept boxes of that group, a fraction of all removed
    against all kept (about a fifth for the RPN's five levels, far less for per-class NMS).
    """
    suppressor = torch.full((boxes.shape[0],), -1, dtype=torch.int64, device=boxes.device)
    is_kept = torch.zeros(boxes.shape[0], dtype=torch.bool, device=boxes.device)
    is_kept[kept] = True
    removed = considered[~is_kept[considered]]
    if removed.numel() == 0 or kept.numel() == 0:
        return suppressor
    # Both sorted by group; stable, so that within a group the kept stay in NMS's order.
    removed_groups, order = torch.sort(groups[removed], stable=True)
    removed = removed[order]
    kept_groups, order = torch.sort(groups[kept], stable=True)
    kept = kept[order]
    group_values, removed_counts = torch.unique_consecutive(removed_groups, return_counts=True)
    kept_starts = torch.searchsorted(kept_groups, group_values).tolist()
    kept_ends = torch.searchsorted(kept_groups, group_values, right=True).tolist()
    for mine, kept_start, kept_end in zip(removed.split(removed_counts.tolist()), kept_starts,
                                          kept_ends):
        if kept_end == kept_start:
            continue  # NMS kept none of this group: then it removed none either
        rivals = kept[kept_start:kept_end]
        rival_boxes = boxes[rivals]
        for chunk in mine.split(max(1, _SUPPRESSOR_BLOCK // rivals.numel())):
            overlaps = box_iou(boxes[chunk], rival_boxes) > iou_thresh  # (chunk, rivals)
            first = overlaps.to(torch.uint8).argmax(dim=1)  # the first True, or 0 for none
            found = overlaps.gather(1, first[:, None])[:, 0]
            suppressor[chunk[found]] = rivals[first[found]]
    return suppressor


def seeded_sample(
    labels: torch.Tensor, batch_size: int, positive_fraction: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """The sampler's pick with a fixed seed, leaving the global random state as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SAMPLER_SEED)
        return sample_positives_negatives(labels, batch_size, positive_fraction)
