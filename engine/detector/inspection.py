"""Inspecting the detector on one image: a Trace of every stage, and fast reruns.

    trace = inspect(model, image, target=None, box_score_thresh=0.3)

runs the model's ordinary forward once with a :class:`StageRecorder` and turns what the stages
recorded into a :class:`~engine.detector.trace.Trace`. An :class:`Inspection` keeps the
backbone features and the RPN's outputs, so changing a setting re-runs only what depends on it:

- ROI-stage settings (``box_score_thresh``, ``box_nms_thresh``, ``box_detections_per_img``):
  postprocessing only, from the cached class logits and box deltas;
- RPN-stage settings (``rpn_pre_nms_top_n``, ``rpn_post_nms_top_n``, ``rpn_nms_thresh``,
  ``rpn_score_thresh``): proposal filtering from the cached objectness and decoded anchors, then
  the box head for proposals it has not seen yet (a proposal is fixed by its anchor, so the box
  head's output for it is cached by anchor index), then postprocessing.

The backbone, the anchors and the anchor matching never re-run.
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torchvision.ops import box_iou, clip_boxes_to_image

from .backbones import BACKBONES
from .matching import match_labels
from .model import FasterRCNN
from .recorder import StageRecorder
from .roi_heads import (
    CANONICAL_LEVEL,
    CANONICAL_SIZE,
    DetectionSettings,
    assign_levels,
    proposal_labels,
)
from .rpn import PreNmsCandidates, ProposalSettings, ProposalStages
from .sampling import sample_positives_negatives
from .targets import check_images, check_targets
from .trace import (
    AnchorMatching,
    BoxHeadOutput,
    Detections,
    LevelTrace,
    PostprocessTrace,
    ProposalTrace,
    RoiLevels,
    RoiSampling,
    Trace,
)
from .transform import resize_boxes

# The settings a rerun may change, and the settings object field each one sets.
RPN_OVERRIDES = {
    "rpn_pre_nms_top_n": "pre_nms_top_n",
    "rpn_post_nms_top_n": "post_nms_top_n",
    "rpn_nms_thresh": "nms_thresh",
    "rpn_score_thresh": "score_thresh",
}
ROI_OVERRIDES = {
    "box_score_thresh": "score_thresh",
    "box_nms_thresh": "nms_thresh",
    "box_detections_per_img": "detections_per_img",
}
OVERRIDES = (*RPN_OVERRIDES, *ROI_OVERRIDES)

# The samplers draw at random; the trace shows one fixed draw so that reruns agree.
SAMPLER_SEED = 0
# Box-head reruns pool proposals on several threads from this many proposals on.
_PARALLEL_POOLING_FROM = 64
_POOLING_THREADS = 4
# IoU entries computed at once when finding NMS suppressors (bounds the memory: 4 M entries,
# about 16 MB per float intermediate).
_SUPPRESSOR_BLOCK = 1 << 22


def inspect(
    model: FasterRCNN,
    image: torch.Tensor,
    target: dict[str, torch.Tensor] | None = None,
    **overrides: float,
) -> Trace:
    """Run ``model`` on one (3, H, W) image in [0, 1] and record every stage.

    ``target`` (optional): ``{"boxes": (M, 4) in the image's pixels, "labels": (M,)}`` with
    detector class ids (1..num_classes-1); with it the trace shows anchor matching and ROI
    sampling. ``overrides``: any of :data:`OVERRIDES`.
    """
    return Inspection(model, image, target).run(**overrides)


@dataclasses.dataclass
class _RpnState:
    """Everything that depends on the RPN settings, kept for ROI-only reruns."""

    settings: ProposalSettings
    candidates: PreNmsCandidates
    stages: ProposalStages
    class_logits: torch.Tensor
    box_deltas: torch.Tensor
    trace_parts: dict


class Inspection:
    """One image's cached stage outputs; :meth:`run` builds a Trace for given settings.

    The model must not be used by another thread while :meth:`run` executes: the first run
    sets the model's evaluation settings to the overrides for its forward pass (and restores
    them).
    """

    def __init__(
        self,
        model: FasterRCNN,
        image: torch.Tensor,
        target: dict[str, torch.Tensor] | None = None,
    ) -> None:
        check_images([image])
        if target is not None:
            target = {"boxes": target["boxes"].to(torch.float32).reshape(-1, 4),
                      "labels": target["labels"].to(torch.int64).reshape(-1)}
            check_targets([image], [target], model.num_classes)
        self.model = model
        self.image = image
        self.target = target
        self._cache: StageRecorder | None = None
        self._pooling: list[torch.Tensor] | None = None  # see _pooling_features
        self._fixed_parts: dict = {}
        self._rpn: _RpnState | None = None
        self._head_anchor_ids = torch.empty(0, dtype=torch.int64)
        self._head_logits: torch.Tensor | None = None
        self._head_deltas: torch.Tensor | None = None

    # ----------------------------------------------------------------- settings

    def settings(self, **overrides: float) -> tuple[ProposalSettings, DetectionSettings]:
        """The model's evaluation settings with ``overrides`` applied."""
        unknown = sorted(set(overrides) - set(OVERRIDES))
        if unknown:
            raise ValueError(
                f"unknown setting {', '.join(unknown)}; the settings a run can change are "
                f"{', '.join(OVERRIDES)}"
            )
        rpn = dataclasses.replace(
            self.model.rpn.test_settings,
            **{RPN_OVERRIDES[k]: v for k, v in overrides.items() if k in RPN_OVERRIDES},
        )
        roi = dataclasses.replace(
            self.model.roi_heads.detection_settings,
            **{ROI_OVERRIDES[k]: v for k, v in overrides.items() if k in ROI_OVERRIDES},
        )
        for name in ("pre_nms_top_n", "post_nms_top_n"):
            if int(getattr(rpn, name)) < 1:
                raise ValueError(f"rpn_{name} must be at least 1")
        if int(roi.detections_per_img) < 1:
            raise ValueError("box_detections_per_img must be at least 1")
        rpn = dataclasses.replace(rpn, pre_nms_top_n=int(rpn.pre_nms_top_n),
                                  post_nms_top_n=int(rpn.post_nms_top_n))
        roi = dataclasses.replace(roi, detections_per_img=int(roi.detections_per_img))
        return rpn, roi

    # ----------------------------------------------------------------- running

    @torch.inference_mode()
    def run(self, **overrides: float) -> Trace:
        """A Trace for these settings; after the first run, only the stages downstream of a
        changed setting are computed again."""
        rpn_settings, roi_settings = self.settings(**overrides)
        if self._cache is None:
            detections = self._first_run(rpn_settings, roi_settings)
        else:
            if self._rpn is None or self._rpn.settings != rpn_settings:
                self._rerun_rpn(rpn_settings)
            detections = self._rerun_roi(roi_settings)
        rpn = self._rpn
        assert rpn is not None and self._cache is not None
        return Trace(
            **self._fixed_parts,
            **rpn.trace_parts,
            postprocess=self._postprocess_trace(roi_settings),
            detections=Detections(
                detections["boxes"].cpu(), detections["labels"].cpu(), detections["scores"].cpu()
            ),
            settings=_settings_dict(rpn_settings, roi_settings),
        )

    def _first_run(
        self, rpn_settings: ProposalSettings, roi_settings: DetectionSettings
    ) -> dict[str, torch.Tensor]:
        recorder = StageRecorder()
        with _evaluation_settings(self.model, rpn_settings, roi_settings):
            detections = self.model([self.image], recorder=recorder)[0]
        self._cache = recorder
        self._pooling_features()  # now, so that no rerun pays for it
        self._fixed_parts = self._fixed_trace_parts()
        candidates, stages = recorder["candidates"], recorder["proposal_stages"][0]
        self._remember_head_outputs(
            candidates.anchor_indices[0, stages.final],
            recorder["class_logits"], recorder["box_deltas"],
        )
        self._set_rpn_state(
            rpn_settings, candidates, stages, recorder["class_logits"], recorder["box_deltas"]
        )
        return detections

    def _rerun_rpn(self, settings: ProposalSettings) -> None:
        cache = self._cache
        candidates, stages = self.model.rpn.propose(
            cache["decoded"], cache["objectness"], cache["num_anchors_per_level"],
            cache["batch"].image_sizes, settings,
        )
        stages = stages[0]
        logits, deltas = self._head_outputs(candidates.anchor_indices[0, stages.final],
                                            stages.proposals)
        self._set_rpn_state(settings, candidates, stages, logits, deltas)

    def _rerun_roi(self, settings: DetectionSettings) -> dict[str, torch.Tensor]:
        cache, rpn = self._cache, self._rpn
        detections = self.model.roi_heads.detect(
            rpn.class_logits, rpn.box_deltas, [rpn.stages.proposals],
            cache["batch"].image_sizes, settings, recorder=cache,
        )
        return self.model.transform.to_original_sizes(detections, cache["batch"])[0]

    @torch.inference_mode()
    def precompute_box_head(self, chunk: int = 256, stop=lambda: False) -> int:
        """Run the box head for every valid RPN candidate of the last run that it has not seen,
        ``chunk`` at a time, so that later RPN reruns only look results up.

        For a worker thread to call while the user looks at the first trace: changing the NMS
        IoU or the post-NMS top-k then never waits for the box head. Stops early when ``stop()``
        returns true. Returns how many candidates it computed.
        """
        if self._rpn is None:
            raise RuntimeError("run() first: precomputing follows a run's RPN candidates")
        stages, candidates = self._rpn.stages, self._rpn.candidates
        anchor_ids = candidates.anchor_indices[0, stages.valid]
        boxes = stages.boxes[stages.valid]
        missing = torch.where(self._lookup(anchor_ids) < 0)[0]
        done = 0
        for part in missing.split(chunk):
            if stop():
                break
            self._head_outputs(anchor_ids[part], boxes[part])
            done += part.numel()
        return done

    # ------------------------------------------------------- box head output cache

    def _head_outputs(
        self, anchor_ids: torch.Tensor, proposals: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Class logits (P, C) and box deltas (P, C * 4) for proposals (P, 4) that came from
        ``anchor_ids`` (P,), computing only those not computed before."""
        known = self._lookup(anchor_ids)
        missing = torch.where(known < 0)[0]
        if missing.numel():
            logits, deltas = self._predict(proposals[missing])
            self._remember_head_outputs(anchor_ids[missing], logits, deltas)
            known = self._lookup(anchor_ids)
        return self._head_logits[known], self._head_deltas[known]

    def _predict(self, proposals: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The box head on proposals (P, 4). torchvision's CPU RoIAlign runs on one thread
        and is most of the cost (about 0.2 ms a proposal at 800 px): with many proposals and
        several CPU threads, the pooling runs in parts side by side (torch releases the GIL),
        then the head once on all of them. Same numbers as one call (tested)."""
        roi_heads = self.model.roi_heads
        features = self._pooling_features()
        threads = min(torch.get_num_threads(), _POOLING_THREADS)
        if proposals.device.type != "cpu" or threads < 2 or \
                proposals.shape[0] < _PARALLEL_POOLING_FROM:
            return roi_heads.predict(features, [proposals])

        def pool(part: torch.Tensor) -> torch.Tensor:
            with torch.inference_mode():  # a thread does not inherit the caller's mode
                return roi_heads.pool(features, [part])

        with ThreadPoolExecutor(threads) as pool_threads:
            pooled = torch.cat(list(pool_threads.map(pool, proposals.tensor_split(threads))))
        return roi_heads.box_predictor(roi_heads.box_head(pooled))

    def _pooling_features(self) -> list[torch.Tensor]:
        """The pooled FPN levels in the (N, C, H, W) memory layout RoIAlign reads: the
        backbone runs channels-last, and RoIAlign would otherwise copy each level over again
        on every rerun (75 ms for P2 at 800 px). Made once, by the first run."""
        if self._pooling is None:
            self._pooling = [level.contiguous()
                             for level in self._cache["features"][: self.model.pooled_levels]]
        return self._pooling

    def _lookup(self, anchor_ids: torch.Tensor) -> torch.Tensor:
        """Rows of the cached head outputs for ``anchor_ids``; -1 where not cached."""
        cached = self._head_anchor_ids
        if cached.numel() == 0:
            return torch.full_like(anchor_ids, -1)
        order = torch.argsort(cached)
        position = torch.searchsorted(cached[order], anchor_ids).clamp(max=cached.numel() - 1)
        rows = order[position]
        return torch.where(cached[rows] == anchor_ids, rows, torch.full_like(rows, -1))

    def _remember_head_outputs(
        self, anchor_ids: torch.Tensor, logits: torch.Tensor, deltas: torch.Tensor
    ) -> None:
        if self._head_logits is None:
            self._head_anchor_ids, self._head_logits, self._head_deltas = anchor_ids, logits, deltas
            return
        self._head_anchor_ids = torch.cat([self._head_anchor_ids, anchor_ids])
        self._head_logits = torch.cat([self._head_logits, logits])
        self._head_deltas = torch.cat([self._head_deltas, deltas])

    # ------------------------------------------------------------ building traces

    def _set_rpn_state(
        self,
        settings: ProposalSettings,
        candidates: PreNmsCandidates,
        stages: ProposalStages,
        class_logits: torch.Tensor,
        box_deltas: torch.Tensor,
    ) -> None:
        proposals = stages.proposals
        self._rpn = _RpnState(settings, candidates, stages, class_logits, box_deltas, {})
        self._rpn.trace_parts = {
            "rpn": self._proposal_trace(settings, candidates, stages),
            "roi_levels": self._roi_levels(proposals),
            "roi_sampling": self._roi_sampling(proposals),
            "box_head": self._box_head(class_logits, box_deltas, proposals),
        }

    def _to_original(self, boxes: torch.Tensor, clip: bool = True) -> torch.Tensor:
        """Resized-image boxes (..., 4) -> original-image boxes on the CPU; ``clip`` for boxes
        that were clipped to the resized image (scaling back can overshoot by rounding)."""
        batch = self._cache["batch"]
        resized, original = batch.image_sizes[0], batch.original_sizes[0]
        shape = boxes.shape
        boxes = resize_boxes(boxes.reshape(-1, 4), resized, original)
        if clip:
            boxes = clip_boxes_to_image(boxes, original)
        return boxes.reshape(shape).cpu()

    def _fixed_trace_parts(self) -> dict:
        """The parts no setting changes: sizes, levels with anchors, the targets, matching."""
        cache = self._cache
        batch = cache["batch"]
        original, resized = batch.original_sizes[0], batch.image_sizes[0]
        parts = {
            "image_size": tuple(original),
            "resized_size": tuple(resized),
            "scale": (resized[0] / original[0], resized[1] / original[1]),
            "backbone": self._backbone_name(),
            "num_classes": self.model.num_classes,
            "levels": self._level_traces(),
        }
        if self.target is not None:
            parts["target_boxes"] = self.target["boxes"].cpu()
            parts["target_labels"] = self.target["labels"].cpu()
            parts["anchor_matching"] = self._anchor_matching()
        return parts

    def _backbone_name(self) -> str:
        config = getattr(self.model, "config", None)
        return config.backbone if config is not None else "unknown"

    def _level_names(self) -> list[str]:
        spec = BACKBONES.get(self._backbone_name())
        count = len(self._cache["anchors"])
        if spec is not None and len(spec.level_names) == count:
            return list(spec.level_names)
        return [f"level {index}" for index in range(count)]

    def _level_traces(self) -> list[LevelTrace]:
        cache = self._cache
        padded = tuple(cache["batch"].tensors.shape[-2:])
        objectness = cache["objectness"][0].split(cache["num_anchors_per_level"])
        anchor_spec = self.model.anchor_spec
        levels, first = [], 0
        for index, (name, anchors, feature, logits) in enumerate(zip(
            self._level_names(), cache["anchors"], cache["features"], objectness
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
                anchors=self._to_original(anchors, clip=False),
                objectness=logits.float().cpu(),
                first_anchor=first,
            ))
            first += anchors.shape[0]
        return levels

    def _resized_target(self) -> tuple[torch.Tensor, torch.Tensor]:
        batch = self._cache["batch"]
        device = self._cache["objectness"].device
        boxes = resize_boxes(
            self.target["boxes"].to(device), batch.original_sizes[0], batch.image_sizes[0]
        )
        return boxes, self.target["labels"].to(device)

    def _anchor_matching(self) -> AnchorMatching:
        rpn = self.model.rpn
        anchors = torch.cat(self._cache["anchors"])
        gt_boxes, _ = self._resized_target()
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
        positive, negative = _seeded_sample(labels, rpn.batch_size_per_image,
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

    def _proposal_trace(
        self, settings: ProposalSettings, candidates: PreNmsCandidates, stages: ProposalStages
    ) -> ProposalTrace:
        levels = candidates.levels[0]
        count = levels.shape[0]
        valid = torch.zeros(count, dtype=torch.bool, device=levels.device)
        valid[stages.valid] = True
        kept = torch.zeros_like(valid)
        kept[stages.nms_kept] = True
        return ProposalTrace(
            boxes=self._to_original(stages.boxes),
            logits=candidates.logits[0].float().cpu(),
            scores=stages.scores.float().cpu(),
            levels=levels.cpu(),
            anchors=candidates.anchor_indices[0].cpu(),
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

    def _roi_levels(self, proposals: torch.Tensor) -> RoiLevels:
        heads = self.model.roi_heads
        assignment = assign_levels(proposals, heads.k_min, heads.k_max)
        return RoiLevels(
            sqrt_area=assignment.sqrt_area.cpu(),
            raw_level=assignment.raw_level.cpu(),
            level=assignment.level.cpu(),
            k_min=heads.k_min,
            k_max=heads.k_max,
            canonical_size=CANONICAL_SIZE,
            canonical_level=CANONICAL_LEVEL,
            level_names=self._level_names()[: self.model.pooled_levels],
        )

    def _roi_sampling(self, proposals: torch.Tensor) -> RoiSampling | None:
        if self.target is None:
            return None
        heads = self.model.roi_heads
        gt_boxes, gt_labels = self._resized_target()
        boxes = torch.cat([proposals, gt_boxes.to(proposals.dtype)])
        is_target = torch.zeros(boxes.shape[0], dtype=torch.bool)
        is_target[proposals.shape[0]:] = True
        matched, labels = proposal_labels(boxes, gt_boxes, gt_labels, heads.matcher)
        if gt_boxes.shape[0]:
            best_iou = box_iou(gt_boxes, boxes).max(dim=0).values
        else:
            best_iou = torch.zeros(boxes.shape[0], device=boxes.device)
            matched = torch.full_like(matched, -1)
        positive, negative = _seeded_sample(labels, heads.batch_size_per_image,
                                            heads.positive_fraction)
        return RoiSampling(
            boxes=self._to_original(boxes),
            is_target=is_target,
            labels=labels.cpu(),
            matched_box=matched.cpu(),
            best_iou=best_iou.cpu(),
            sampled=(positive | negative).cpu(),
            fg_iou_thresh=heads.matcher.high_threshold,
            bg_iou_thresh=heads.matcher.low_threshold,
        )

    def _box_head(
        self, class_logits: torch.Tensor, box_deltas: torch.Tensor, proposals: torch.Tensor
    ) -> BoxHeadOutput:
        heads = self.model.roi_heads
        num_classes = class_logits.shape[-1]
        boxes = heads.box_coder.decode(box_deltas, proposals)  # (P, C, 4)
        boxes = clip_boxes_to_image(boxes, self._cache["batch"].image_sizes[0])
        return BoxHeadOutput(
            class_probs=F.softmax(class_logits.float(), dim=-1).cpu(),
            class_boxes=self._to_original(boxes.reshape(-1, num_classes, 4)),
        )

    def _postprocess_trace(self, settings: DetectionSettings) -> PostprocessTrace:
        (boxes, scores, labels), = self._cache["detection_candidates"]
        stages = self._cache["detection_stages"][0]
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
            boxes=self._to_original(boxes[above]),
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


def _seeded_sample(
    labels: torch.Tensor, batch_size: int, positive_fraction: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """The sampler's pick with a fixed seed, leaving the global random state as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SAMPLER_SEED)
        return sample_positives_negatives(labels, batch_size, positive_fraction)


def _settings_dict(rpn: ProposalSettings, roi: DetectionSettings) -> dict[str, float]:
    values = {name: getattr(rpn, field) for name, field in RPN_OVERRIDES.items()}
    values.update({name: getattr(roi, field) for name, field in ROI_OVERRIDES.items()})
    return values


@contextmanager
def _evaluation_settings(
    model: FasterRCNN, rpn: ProposalSettings, roi: DetectionSettings
):
    """The model in evaluation mode with these settings, restored afterwards."""
    was_training = model.training
    saved = model.rpn.test_settings, model.roi_heads.detection_settings
    model.eval()
    model.rpn.test_settings, model.roi_heads.detection_settings = rpn, roi
    try:
        yield
    finally:
        model.rpn.test_settings, model.roi_heads.detection_settings = saved
        model.train(was_training)
