"""Region Proposal Network: objectness and box deltas for every anchor, then proposals.

Stages, each a function of its inputs:

1. :class:`RPNHead` - a shared 3x3 conv, then per level ``objectness`` (N, A, H, W) and
   ``deltas`` (N, A * 4, H, W).
2. :func:`flatten_levels` - to (N, sum_l H_l W_l A_l) and (N, sum_l H_l W_l A_l, 4), anchors in
   the order of :func:`engine.detector.anchors.grid_anchors`.
3. Decoding the deltas against the anchors (box coding weights 1, 1, 1, 1).
4. :func:`filter_image_proposals` - per level the pre-NMS top-k by objectness; clip to the image;
   drop boxes smaller than ``min_size``; drop scores below ``score_thresh``; NMS within each
   level; keep the post-NMS top-k of the image.
5. In training, :func:`anchor_labels` (1 positive, 0 negative, -1 ignored, by IoU with the
   ground truth), balanced sampling and :func:`rpn_loss`.

:class:`RegionProposalNetwork` returns every stage's outputs as an :class:`RpnOutputs`: the
head's (:class:`RpnHeadOutputs`, steps 1 to 3), the candidates and the filtering stages.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import batched_nms, box_iou, clip_boxes_to_image, remove_small_boxes

from .box_coding import BoxCoder
from .matching import Matcher, match_labels
from .sampling import sample_positives_negatives

RPN_BOX_CODER = BoxCoder(weights=(1.0, 1.0, 1.0, 1.0))


class RPNHead(nn.Module):
    """3x3 conv + ReLU shared by all levels, then 1x1 convs for objectness and deltas.

    Keys as torchvision >= 0.13: ``conv.0.0.*``, ``cls_logits.*``, ``bbox_pred.*``.
    """

    def __init__(self, in_channels: int, num_anchors: int) -> None:
        super().__init__()
        conv = nn.Conv2d(in_channels, in_channels, kernel_size=3, stride=1, padding=1)
        self.conv = nn.Sequential(nn.Sequential(conv, nn.ReLU(inplace=True)))
        self.cls_logits = nn.Conv2d(in_channels, num_anchors, kernel_size=1, stride=1)
        self.bbox_pred = nn.Conv2d(in_channels, num_anchors * 4, kernel_size=1, stride=1)
        for layer in self.modules():
            if isinstance(layer, nn.Conv2d):
                nn.init.normal_(layer.weight, std=0.01)
                nn.init.constant_(layer.bias, 0)

    def forward(
        self, features: list[torch.Tensor]
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Per level (N, C, H, W) -> objectness logits (N, A, H, W), deltas (N, A * 4, H, W)."""
        objectness, deltas = [], []
        for feature in features:
            t = self.conv(feature)
            objectness.append(self.cls_logits(t))
            deltas.append(self.bbox_pred(t))
        return objectness, deltas

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # Checkpoints written before torchvision 0.13 store ``conv.weight``.
        for kind in ("weight", "bias"):
            old_key, new_key = f"{prefix}conv.{kind}", f"{prefix}conv.0.0.{kind}"
            if old_key in state_dict and new_key not in state_dict:
                state_dict[new_key] = state_dict.pop(old_key)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def flatten_levels(
    objectness: list[torch.Tensor], deltas: list[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-level head outputs -> (N, R) logits and (N, R, 4) deltas, R = sum_l H_l * W_l * A_l.

    Within a level the order is row, column, anchor, matching the anchors.
    """
    flat_objectness, flat_deltas = [], []
    for obj, dlt in zip(objectness, deltas):
        n, a, h, w = obj.shape
        # (N, A, H, W) -> (N, H, W, A) -> (N, H*W*A)
        flat_objectness.append(obj.permute(0, 2, 3, 1).reshape(n, -1))
        # (N, A*4, H, W) -> (N, A, 4, H, W) -> (N, H, W, A, 4) -> (N, H*W*A, 4)
        flat_deltas.append(dlt.view(n, a, 4, h, w).permute(0, 3, 4, 1, 2).reshape(n, -1, 4))
    return torch.cat(flat_objectness, dim=1), torch.cat(flat_deltas, dim=1)


@dataclass(frozen=True)
class ProposalSettings:
    """How proposals are filtered (one value for training and one for evaluation where two)."""

    pre_nms_top_n: int
    post_nms_top_n: int
    nms_thresh: float
    score_thresh: float = 0.0
    min_size: float = 1e-3


def top_k_per_level(
    objectness: torch.Tensor, num_anchors_per_level: list[int], k: int
) -> torch.Tensor:
    """Indices (N, sum_l min(k, R_l)) of the ``k`` highest logits of each level, per image.

    ``objectness`` (N, R) with the levels' anchors concatenated, R_l of them for level l.
    """
    indices, offset = [], 0
    for level_logits in objectness.split(num_anchors_per_level, dim=1):
        num = level_logits.shape[1]
        top = level_logits.topk(min(k, num), dim=1).indices
        indices.append(top + offset)
        offset += num
    return torch.cat(indices, dim=1)


@dataclass
class PreNmsCandidates:
    """The pre-NMS top-k of each level, for the N images of a batch.

    ``boxes`` (N, K, 4) decoded and not yet clipped, ``logits`` (N, K), ``levels`` (N, K) the
    index of the level each candidate came from, ``anchor_indices`` (N, K) into the
    concatenated anchors.
    """

    boxes: torch.Tensor
    logits: torch.Tensor
    levels: torch.Tensor
    anchor_indices: torch.Tensor


def select_pre_nms(
    proposals: torch.Tensor,
    objectness: torch.Tensor,
    num_anchors_per_level: list[int],
    pre_nms_top_n: int,
) -> PreNmsCandidates:
    """The pre-NMS top-k per level. ``proposals`` (N, R, 4), ``objectness`` (N, R)."""
    num_images = proposals.shape[0]
    levels = torch.cat(
        [
            torch.full((n,), idx, dtype=torch.int64, device=proposals.device)
            for idx, n in enumerate(num_anchors_per_level)
        ]
    )
    levels = levels.reshape(1, -1).expand_as(objectness)
    top = top_k_per_level(objectness, num_anchors_per_level, pre_nms_top_n)
    batch_idx = torch.arange(num_images, device=proposals.device)[:, None]
    return PreNmsCandidates(
        boxes=proposals[batch_idx, top],
        logits=objectness[batch_idx, top],
        levels=levels[batch_idx, top],
        anchor_indices=top,
    )


@dataclass
class ProposalStages:
    """One image's proposal filtering, stage by stage.

    ``boxes`` (K, 4) are all K pre-NMS candidates clipped to the image, ``scores`` (K,) their
    objectness probabilities. The stages are index tensors into those K, each a subset of the
    one before: ``valid`` - at least ``min_size`` wide and high and scoring at least
    ``score_thresh``; ``nms_kept`` - survivors of NMS within each level, by decreasing score;
    ``final`` - the first ``post_nms_top_n`` of those, the proposals.
    """

    boxes: torch.Tensor
    scores: torch.Tensor
    valid: torch.Tensor
    nms_kept: torch.Tensor
    final: torch.Tensor

    @property
    def proposals(self) -> torch.Tensor:
        """(P, 4) the proposals, by decreasing score."""
        return self.boxes[self.final]


def filter_image_proposals(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    levels: torch.Tensor,
    image_size: tuple[int, int],
    settings: ProposalSettings,
) -> ProposalStages:
    """One image's pre-NMS candidates -> its proposals, keeping every stage's survivors.

    ``boxes`` (K, 4) decoded, ``scores`` (K,) objectness probabilities, ``levels`` (K,);
    ``image_size`` (h, w) of the resized image the boxes are clipped to.
    """
    boxes = clip_boxes_to_image(boxes, image_size)
    valid = remove_small_boxes(boxes, settings.min_size)
    valid = valid[scores[valid] >= settings.score_thresh]
    # NMS within each level: boxes from different levels never suppress each other.
    nms_kept = valid[batched_nms(boxes[valid], scores[valid], levels[valid], settings.nms_thresh)]
    return ProposalStages(boxes, scores, valid, nms_kept, nms_kept[: settings.post_nms_top_n])


def anchor_labels(
    anchors: torch.Tensor, gt_boxes: torch.Tensor, matcher: Matcher
) -> tuple[torch.Tensor, torch.Tensor]:
    """Training labels of one image's anchors (R, 4) against its boxes (M, 4).

    Returns ``labels`` (R,) float: 1 positive, 0 negative, -1 ignored; and the matched box of
    each anchor (R, 4) (box 0 for unmatched ones; only positives use it). An image without
    boxes has only negatives.
    """
    if gt_boxes.numel() == 0:
        return (
            torch.zeros((anchors.shape[0],), dtype=torch.float32, device=anchors.device),
            torch.zeros(anchors.shape, dtype=torch.float32, device=anchors.device),
        )
    matches = matcher(box_iou(gt_boxes, anchors))
    matched_boxes = gt_boxes[matches.clamp(min=0)]
    return match_labels(matches).to(torch.float32), matched_boxes


def rpn_loss(
    objectness: torch.Tensor,
    deltas: torch.Tensor,
    labels: torch.Tensor,
    regression_targets: torch.Tensor,
    sampled_pos: torch.Tensor,
    sampled_neg: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Binary cross-entropy over the sampled anchors; smooth L1 (beta 1/9) over the sampled
    positives, divided by the number sampled. All inputs flattened over the batch: (B,) and
    (B, 4), with B = N * R."""
    pos_idx = torch.where(sampled_pos)[0]
    neg_idx = torch.where(sampled_neg)[0]
    sampled = torch.cat([pos_idx, neg_idx], dim=0)
    box_loss = F.smooth_l1_loss(
        deltas[pos_idx], regression_targets[pos_idx], beta=1 / 9, reduction="sum"
    ) / sampled.numel()
    objectness_loss = F.binary_cross_entropy_with_logits(objectness[sampled], labels[sampled])
    return objectness_loss, box_loss


@dataclass
class RpnHeadOutputs:
    """The RPN head on N images with R anchors over all levels, in the anchors' order (level,
    row, column, cell anchor; see :func:`engine.detector.anchors.grid_anchors`).

    ``objectness_maps`` per level (N, A, H_l, W_l) logits as the head gives them;
    ``objectness`` (N, R) the same logits flattened; ``deltas`` (N, R, 4) the box deltas;
    ``decoded`` (N, R, 4) the anchors moved by their deltas, in resized-image pixels, not yet
    clipped (from detached deltas: no gradient flows through the proposals);
    ``num_anchors_per_level`` [R_l], summing to R.
    """

    objectness_maps: list[torch.Tensor]
    objectness: torch.Tensor
    deltas: torch.Tensor
    decoded: torch.Tensor
    num_anchors_per_level: list[int]


@dataclass
class RpnOutputs:
    """The RPN on N images.

    ``head`` the head's outputs; ``settings`` the proposal settings used; ``candidates`` the
    pre-NMS top-k of each level (N rows); ``stages`` per image the filtering stages that end in
    its proposals; ``losses`` ``loss_objectness`` and ``loss_rpn_box_reg`` (training, else
    empty).
    """

    head: RpnHeadOutputs
    settings: ProposalSettings
    candidates: PreNmsCandidates
    stages: list[ProposalStages]
    losses: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def proposals(self) -> list[torch.Tensor]:
        """Per image (P_i, 4) the proposals in resized-image pixels, by decreasing score."""
        return [stages.proposals for stages in self.stages]


class RegionProposalNetwork(nn.Module):
    """Coordinates the RPN stages; see the module docstring."""

    def __init__(
        self,
        head: RPNHead,
        *,
        train_settings: ProposalSettings,
        test_settings: ProposalSettings,
        fg_iou_thresh: float = 0.7,
        bg_iou_thresh: float = 0.3,
        batch_size_per_image: int = 256,
        positive_fraction: float = 0.5,
    ) -> None:
        super().__init__()
        self.head = head
        self.train_settings = train_settings
        self.test_settings = test_settings
        self.matcher = Matcher(fg_iou_thresh, bg_iou_thresh, allow_low_quality_matches=True)
        self.batch_size_per_image = batch_size_per_image
        self.positive_fraction = positive_fraction

    @property
    def settings(self) -> ProposalSettings:
        return self.train_settings if self.training else self.test_settings

    def predict(self, features: list[torch.Tensor], anchors: list[torch.Tensor]) -> RpnHeadOutputs:
        """The head on ``features`` (per level (N, C, H_l, W_l)), flattened, and its deltas
        applied to ``anchors`` (per level (H_l W_l A_l, 4))."""
        objectness_maps, delta_maps = self.head(features)
        num_anchors_per_level = [o[0].numel() for o in objectness_maps]
        objectness, deltas = flatten_levels(objectness_maps, delta_maps)
        # Under autocast the head computes in bf16/fp16; boxes and losses are worked out in
        # float32 (bf16 holds 3 significant digits: a 500 px coordinate to 2 px). A no-op in
        # float32.
        objectness, deltas = objectness.float(), deltas.float()
        num_images, num_anchors = objectness.shape
        decoded = RPN_BOX_CODER.decode(
            deltas.detach().reshape(-1, 4), torch.cat(anchors, dim=0).repeat(num_images, 1)
        ).view(num_images, num_anchors, 4)
        return RpnHeadOutputs(objectness_maps, objectness, deltas, decoded, num_anchors_per_level)

    @staticmethod
    def propose(
        head: RpnHeadOutputs, image_sizes: list[tuple[int, int]], settings: ProposalSettings
    ) -> tuple[PreNmsCandidates, list[ProposalStages]]:
        """The head's decoded anchors and logits -> the pre-NMS top-k per level and, per image
        ((h, w) in ``image_sizes``), the filtering stages that end in its proposals."""
        candidates = select_pre_nms(head.decoded, head.objectness.detach(),
                                    head.num_anchors_per_level, settings.pre_nms_top_n)
        scores = torch.sigmoid(candidates.logits)
        stages = [
            filter_image_proposals(boxes, s, lvl, size, settings)
            for boxes, s, lvl, size in zip(candidates.boxes, scores, candidates.levels, image_sizes)
        ]
        return candidates, stages

    def losses(
        self, head: RpnHeadOutputs, anchors: list[torch.Tensor], gt_boxes: list[torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """``loss_objectness`` and ``loss_rpn_box_reg`` of the head's outputs against each
        image's boxes (M_i, 4), on a balanced random sample of its anchors."""
        all_anchors = torch.cat(anchors, dim=0)
        labels, matched = zip(*(anchor_labels(all_anchors, g, self.matcher) for g in gt_boxes))
        targets = [RPN_BOX_CODER.encode(m, all_anchors) for m in matched]
        sampled = [
            sample_positives_negatives(lbl, self.batch_size_per_image, self.positive_fraction)
            for lbl in labels
        ]
        loss_objectness, loss_box = rpn_loss(
            head.objectness.flatten(),
            head.deltas.reshape(-1, 4),
            torch.cat(labels),
            torch.cat(targets),
            torch.cat([pos for pos, _ in sampled]),
            torch.cat([neg for _, neg in sampled]),
        )
        return {"loss_objectness": loss_objectness, "loss_rpn_box_reg": loss_box}

    def forward(
        self,
        features: list[torch.Tensor],
        anchors: list[torch.Tensor],
        image_sizes: list[tuple[int, int]],
        gt_boxes: list[torch.Tensor] | None = None,
        *,
        settings: ProposalSettings | None = None,
        reuse: RpnOutputs | None = None,
    ) -> RpnOutputs:
        """Proposals per image and, with ``gt_boxes`` (training), the losses.

        ``features``: per level (N, C, H_l, W_l); ``anchors``: per level (H_l W_l A_l, 4);
        ``settings``: the proposal settings (default: the training or evaluation ones, by mode).
        ``reuse``: this network's outputs on the same features from an earlier call (an
        inspection's rerun): its head does not run again, and with the same settings nothing
        does.
        """
        settings = settings if settings is not None else self.settings
        if reuse is not None:
            if gt_boxes is not None:
                raise ValueError("reusing earlier outputs is for evaluation, without ground truth")
            if reuse.settings == settings:
                return reuse
            head = reuse.head
        else:
            head = self.predict(features, anchors)
        candidates, stages = self.propose(head, image_sizes, settings)
        losses = self.losses(head, anchors, gt_boxes) if gt_boxes is not None else {}
        return RpnOutputs(head, settings, candidates, stages, losses)
