"""One image in, detections out: our trained detector as a single module that export tools can
take (TorchScript's compiler, ``torch.export`` for ONNX).

:class:`DeployDetector` holds the trained model's own submodules (backbone + FPN, RPN head,
box head, box predictor) and runs its inference path for one image::

    image (3, H, W) float32 RGB in [0, 1], any H and W
      -> normalize (the model's mean and std), resize (short side ``min_size``, long side at
         most ``max_size``, bilinear), pad to a multiple of 32
      -> backbone + FPN -> RPN head -> anchors -> proposals -> RoIAlign -> box head
      -> postprocessing (score threshold, small boxes, per-class NMS, top-k)
      -> boxes (D, 4) x0 y0 x1 y1 in pixels of the input image, labels (D,) int64 class ids
         (0 is the background, never returned), scores (D,) float32, by decreasing score

It computes what :class:`engine.detector.FasterRCNN` computes in evaluation mode, operation
for operation, written with what the export tools accept: plain tensors and ints instead of
dataclasses, no recorder, one image instead of a list. ``engine/detector`` stays as it is;
these workarounds live here. The tests compare its detections with the model's.

Three hooks differ between the targets. :meth:`DeployDetector._resized_size` and
:meth:`DeployDetector._top_k_count` compute sizes from the image's shape with Python numbers
(TorchScript, and eager), while :class:`SymbolicDeployDetector` uses ``torch.sym_*`` functions
so that ``torch.export`` keeps the image size symbolic (an ONNX graph for any size). The
class-wise NMS is torchvision's ``batched_nms`` (as in the model) for TorchScript, and an
explicit loop over groups for ``torch.export``: torchvision's picks its algorithm by a size
test that ``torch.export`` cannot decide for a data-dependent size.

No ``from __future__ import annotations`` here: TorchScript's compiler reads the annotations.
"""

import copy
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import batched_nms, box_area, nms, roi_align

from ..detector.model import FasterRCNN
from ..detector.poolers import CANONICAL_LEVEL, CANONICAL_SIZE, LEVEL_EPS
from ..detector.rpn import RPN_BOX_CODER


class FeatureNetwork(nn.Module):
    """The convolutional part: (1, 3, H, W) normalized, padded pixels -> per level the FPN
    features (1, C, H_l, W_l), the RPN's objectness logits (1, A, H_l, W_l) and box deltas
    (1, A * 4, H_l, W_l). No data-dependent step, so tracing it keeps every size symbolic."""

    def __init__(self, model: FasterRCNN) -> None:
        super().__init__()
        self.backbone = model.backbone
        self.rpn_head = model.rpn.head
        self.channels_last = bool(model.channels_last)

    def forward(self, pixels: Tensor) -> tuple[list[Tensor], list[Tensor], list[Tensor]]:
        if self.channels_last:
            pixels = pixels.contiguous(memory_format=torch.channels_last)
        features = list(self.backbone(pixels).values())
        objectness, deltas = self.rpn_head(features)
        return features, objectness, deltas


def _decode(codes: Tensor, reference: Tensor, weights: tuple[float, float, float, float],
            clamp: float) -> Tensor:
    """:meth:`engine.detector.box_coding.BoxCoder.decode`: codes (K, 4 * C) against boxes
    (K, 4) -> (K, C, 4)."""
    reference = reference.to(codes.dtype)
    ref_w = reference[:, 2] - reference[:, 0]
    ref_h = reference[:, 3] - reference[:, 1]
    ref_cx = reference[:, 0] + 0.5 * ref_w
    ref_cy = reference[:, 1] + 0.5 * ref_h
    wx, wy, ww, wh = weights
    dx = codes[:, 0::4] / wx
    dy = codes[:, 1::4] / wy
    dw = torch.clamp(codes[:, 2::4] / ww, max=clamp)
    dh = torch.clamp(codes[:, 3::4] / wh, max=clamp)
    cx = dx * ref_w[:, None] + ref_cx[:, None]
    cy = dy * ref_h[:, None] + ref_cy[:, None]
    half_w = 0.5 * (torch.exp(dw) * ref_w[:, None])
    half_h = 0.5 * (torch.exp(dh) * ref_h[:, None])
    return torch.stack((cx - half_w, cy - half_h, cx + half_w, cy + half_h), dim=2)


def _clip(boxes: Tensor, height: int, width: int) -> Tensor:
    """torchvision's ``clip_boxes_to_image`` for (..., 4) boxes."""
    x = boxes[..., 0::2].clamp(min=0, max=width)
    y = boxes[..., 1::2].clamp(min=0, max=height)
    return torch.stack((x, y), dim=-1).reshape(boxes.shape)


def _large_enough(boxes: Tensor, min_size: float) -> Tensor:
    """torchvision's ``remove_small_boxes``: indices of boxes at least ``min_size`` wide and
    high."""
    widths = boxes[:, 2] - boxes[:, 0]
    heights = boxes[:, 3] - boxes[:, 1]
    return torch.where((widths >= min_size) & (heights >= min_size))[0]


class DeployDetector(nn.Module):
    """See the module docstring. Built from a model in evaluation mode; shares its weights."""

    def __init__(self, model: FasterRCNN) -> None:
        super().__init__()
        self.features = FeatureNetwork(model)
        self.box_head = model.roi_heads.box_head
        self.box_predictor = model.roi_heads.box_predictor
        transform = model.transform
        self.min_size = float(transform.min_size[-1])
        self.max_size = float(transform.max_size)
        self.size_divisible = int(transform.size_divisible)
        self.register_buffer(
            "image_mean", torch.tensor(transform.image_mean, dtype=torch.float32)[:, None, None])
        self.register_buffer(
            "image_std", torch.tensor(transform.image_std, dtype=torch.float32)[:, None, None])
        # (L, A, 4): every level has A anchors per location (build_model checks it).
        self.register_buffer(
            "cell_anchors", torch.stack(model.anchor_spec.cell_anchors()))
        rpn = model.rpn.test_settings
        self.pre_nms_top_n = int(rpn.pre_nms_top_n)
        self.post_nms_top_n = int(rpn.post_nms_top_n)
        self.rpn_nms_thresh = float(rpn.nms_thresh)
        self.rpn_score_thresh = float(rpn.score_thresh)
        self.rpn_min_size = float(rpn.min_size)
        self.rpn_weights = tuple(float(w) for w in RPN_BOX_CODER.weights)
        self.rpn_clamp = float(RPN_BOX_CODER.clamp)
        heads = model.roi_heads
        self.box_weights = tuple(float(w) for w in heads.box_coder.weights)
        self.box_clamp = float(heads.box_coder.clamp)
        pooler = heads.pooler
        self.pooled_levels = int(model.pooled_levels)
        self.pooled_strides = [int(s) for s in pooler.strides]
        self.k_min = int(pooler.k_min)
        self.k_max = int(pooler.k_max)
        self.canonical_level = float(CANONICAL_LEVEL)
        self.canonical_size = float(CANONICAL_SIZE)
        self.level_eps = float(LEVEL_EPS)
        self.output_size = int(pooler.output_size)
        self.sampling_ratio = int(pooler.sampling_ratio)
        settings = heads.detection_settings
        self.score_thresh = float(settings.score_thresh)
        self.nms_thresh = float(settings.nms_thresh)
        self.detections_per_img = int(settings.detections_per_img)
        self.box_min_size = float(settings.min_size)
        self.num_classes = int(model.num_classes)

    # ------------------------------------------------------------- hooks per export target

    def _resized_size(self, height: int, width: int) -> tuple[int, int]:
        """transform.resize_image's output size: floor(side * scale) in double precision, as
        ``F.interpolate`` computes it from a scale factor."""
        scale = min(self.min_size / min(height, width), self.max_size / max(height, width))
        return math.floor(height * scale), math.floor(width * scale)

    def _top_k_count(self, k: int, available: int) -> int:
        return min(k, available)

    def _batched_nms(self, boxes: Tensor, scores: Tensor, groups: Tensor, threshold: float,
                     num_groups: int) -> Tensor:
        return batched_nms(boxes, scores, groups, threshold)

    # ------------------------------------------------------------------- the pipeline

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(3, H, W) float in [0, 1] -> boxes (D, 4), labels (D,), scores (D,)."""
        height, width = image.shape[-2], image.shape[-1]
        pixels = (image - self.image_mean) / self.image_std
        resized_h, resized_w = self._resized_size(height, width)
        pixels = F.interpolate(pixels[None], size=(resized_h, resized_w), mode="bilinear",
                               align_corners=False)
        divisible = self.size_divisible
        padded_h = (resized_h + divisible - 1) // divisible * divisible
        padded_w = (resized_w + divisible - 1) // divisible * divisible
        pixels = F.pad(pixels, (0, padded_w - resized_w, 0, padded_h - resized_h))

        features, objectness_maps, delta_maps = self.features(pixels)
        anchors = self._anchors(features, padded_h, padded_w)
        proposals = self._proposals(objectness_maps, delta_maps, anchors, resized_h, resized_w)
        boxes, labels, scores = self._detect(features, proposals, resized_h, resized_w)

        # transform.resize_boxes: ratios as float32 tensors, then clip to the original image.
        device = boxes.device
        ratio_h = torch.tensor(height, dtype=torch.float32, device=device) / torch.tensor(
            resized_h, dtype=torch.float32, device=device)
        ratio_w = torch.tensor(width, dtype=torch.float32, device=device) / torch.tensor(
            resized_w, dtype=torch.float32, device=device)
        ratios = torch.stack((ratio_w, ratio_h, ratio_w, ratio_h))
        boxes = _clip(boxes * ratios, height, width)
        return boxes, labels, scores

    def _anchors(self, features: list[Tensor], padded_h: int, padded_w: int) -> Tensor:
        """anchors.anchors_for_features, concatenated over the levels: (R, 4)."""
        per_level = []
        for level, feature in enumerate(features):
            h, w = feature.shape[-2], feature.shape[-1]
            stride_y, stride_x = padded_h // h, padded_w // w
            shifts_x = torch.arange(0, w, dtype=torch.int32, device=feature.device) * stride_x
            shifts_y = torch.arange(0, h, dtype=torch.int32, device=feature.device) * stride_y
            shift_y, shift_x = torch.meshgrid(shifts_y, shifts_x, indexing="ij")
            shift_x = shift_x.reshape(-1)
            shift_y = shift_y.reshape(-1)
            shifts = torch.stack((shift_x, shift_y, shift_x, shift_y), dim=1)
            cell = self.cell_anchors[level]
            per_level.append((shifts.view(-1, 1, 4) + cell.view(1, -1, 4)).reshape(-1, 4))
        return torch.cat(per_level, dim=0)

    def _proposals(self, objectness_maps: list[Tensor], delta_maps: list[Tensor],
                   anchors: Tensor, height: int, width: int) -> Tensor:
        """rpn.RegionProposalNetwork in evaluation: (P, 4) proposals by decreasing score."""
        flat_objectness, flat_deltas, candidates, levels = [], [], [], []
        offset = 0
        for level, (obj, dlt) in enumerate(zip(objectness_maps, delta_maps)):
            a, h, w = obj.shape[1], obj.shape[2], obj.shape[3]
            # (1, A, H, W) -> (H*W*A,) and (1, A*4, H, W) -> (H*W*A, 4), as rpn.flatten_levels
            logits = obj[0].permute(1, 2, 0).reshape(-1)
            flat_objectness.append(logits)
            flat_deltas.append(dlt.view(1, a, 4, h, w).permute(0, 3, 4, 1, 2).reshape(-1, 4))
            count = h * w * a
            top = logits.topk(self._top_k_count(self.pre_nms_top_n, count)).indices
            candidates.append(top + offset)
            levels.append(torch.full_like(top, level))
            offset += count
        objectness = torch.cat(flat_objectness)
        deltas = torch.cat(flat_deltas)
        top = torch.cat(candidates)
        level_of = torch.cat(levels)
        boxes = _decode(deltas[top], anchors[top], self.rpn_weights, self.rpn_clamp)[:, 0]
        scores = torch.sigmoid(objectness[top])
        boxes = _clip(boxes, height, width)
        valid = _large_enough(boxes, self.rpn_min_size)
        valid = valid[scores[valid] >= self.rpn_score_thresh]
        kept = valid[self._batched_nms(boxes[valid], scores[valid], level_of[valid],
                                       self.rpn_nms_thresh, len(objectness_maps))]
        return boxes[kept[: self.post_nms_top_n]]

    def _detect(self, features: list[Tensor], proposals: Tensor, height: int,
                width: int) -> tuple[Tensor, Tensor, Tensor]:
        """roi_heads.RoIHeads in evaluation: boxes, labels, scores in resized-image pixels."""
        pooled = self._pool(features[: self.pooled_levels], proposals)
        class_logits, box_deltas = self.box_predictor(self.box_head(pooled))
        boxes = _decode(box_deltas, proposals, self.box_weights, self.box_clamp)
        boxes = _clip(boxes, height, width)
        scores = F.softmax(class_logits, dim=-1)
        labels = torch.arange(self.num_classes, device=scores.device).view(1, -1).expand_as(
            scores)
        boxes = boxes[:, 1:].reshape(-1, 4)
        scores = scores[:, 1:].reshape(-1)
        labels = labels[:, 1:].reshape(-1)
        above = torch.where(scores > self.score_thresh)[0]
        large = above[_large_enough(boxes[above], self.box_min_size)]
        kept = large[self._batched_nms(boxes[large], scores[large], labels[large],
                                       self.nms_thresh, self.num_classes)]
        kept = kept[: self.detections_per_img]
        return boxes[kept], labels[kept], scores[kept]

    def _pool(self, features: list[Tensor], proposals: Tensor) -> Tensor:
        """poolers.assign_levels and multiscale_roi_align for one image: (P, C, 7, 7)."""
        rois = torch.cat((torch.zeros_like(proposals[:, :1]), proposals), dim=1)
        size = (self.output_size, self.output_size)
        if len(features) == 1:
            return roi_align(features[0], rois, size, 1.0 / self.pooled_strides[0],
                             self.sampling_ratio)
        sqrt_area = torch.sqrt(box_area(proposals))
        raw_level = self.canonical_level + torch.log2(
            sqrt_area / self.canonical_size) + torch.tensor(self.level_eps, dtype=sqrt_area.dtype)
        level = torch.clamp(torch.floor(raw_level), min=self.k_min, max=self.k_max).to(
            torch.int64) - self.k_min
        first = features[0]
        pooled = torch.zeros((rois.shape[0], first.shape[1], self.output_size,
                              self.output_size), dtype=first.dtype, device=first.device)
        for index, feature in enumerate(features):
            in_level = torch.where(level == index)[0]
            pooled[in_level] = roi_align(feature, rois[in_level], size,
                                         1.0 / self.pooled_strides[index],
                                         self.sampling_ratio).to(pooled.dtype)
        return pooled


class SymbolicDeployDetector(DeployDetector):
    """:class:`DeployDetector` for ``torch.export``: sizes stay symbolic in the image's height
    and width, and NMS runs per group (see the module docstring)."""

    def _resized_size(self, height: int, width: int) -> tuple[int, int]:
        short = torch.sym_min(height, width)
        long = torch.sym_max(height, width)
        scale = torch.sym_min(self.min_size / short, self.max_size / long)
        return math.floor(height * scale), math.floor(width * scale)

    def _top_k_count(self, k: int, available: int) -> int:
        return torch.sym_min(k, available)

    def _batched_nms(self, boxes: Tensor, scores: Tensor, groups: Tensor, threshold: float,
                     num_groups: int) -> Tensor:
        # torchvision's _batched_nms_vanilla over every possible group.
        keep = torch.zeros_like(scores, dtype=torch.bool)
        for group in range(num_groups):
            members = torch.where(groups == group)[0]
            keep[members[nms(boxes[members], scores[members], threshold)]] = True
        kept = torch.where(keep)[0]
        return kept[scores[kept].sort(descending=True)[1]]


def inference_copy(model: FasterRCNN) -> FasterRCNN:
    """A copy of ``model`` for export, in evaluation mode on the CPU, with each folded frozen
    BatchNorm applied to its convolution's weights once, where ``backbones/frozen_bn.py``
    applies it on every call. The same float operations on the same values, so the same
    numbers; an exported graph then holds plain convolutions."""
    duplicate = copy.deepcopy(model).cpu().eval()
    for parent in list(duplicate.modules()):
        for name, child in list(parent.named_children()):
            bn = getattr(child, "frozen_bn", None)
            if isinstance(child, nn.Conv2d) and bn is not None:
                setattr(parent, name, _folded_conv(child, bn))
    if duplicate.channels_last:
        duplicate.backbone.to(memory_format=torch.channels_last)
    return duplicate


@torch.no_grad()
def _folded_conv(conv: nn.Conv2d, bn: nn.Module) -> nn.Conv2d:
    # As _ConvWithFrozenBatchNorm.forward computes them.
    scale = bn.weight * (bn.running_var + bn.eps).rsqrt()
    shift = bn.bias - bn.running_mean * scale
    if conv.bias is not None:
        shift = shift + conv.bias * scale
    plain = nn.Conv2d(
        conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
        padding=conv.padding, dilation=conv.dilation, groups=conv.groups, bias=True,
        padding_mode=conv.padding_mode,
    )
    plain.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
    plain.bias.copy_(shift)
    return plain.eval()
