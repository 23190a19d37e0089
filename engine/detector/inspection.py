"""Inspecting the detector on one image: a Trace of every stage, and fast reruns.

    trace = inspect(model, image, target=None, box_score_thresh=0.3)

runs the model's ordinary forward once with a :class:`StageRecorder` and turns the stages'
typed outputs (a :class:`~engine.detector.model.DetectorOutputs`) into a
:class:`~engine.detector.trace.Trace` (:class:`~engine.detector.tracing.TraceBuilder`). An
:class:`Inspection` keeps those outputs, and a changed setting reruns the model's own
:meth:`~engine.detector.model.FasterRCNN.run_heads` on them, so that only what depends on the
setting runs again, by the same steps as the forward:

- ROI-stage settings (``box_score_thresh``, ``box_nms_thresh``, ``box_detections_per_img``):
  postprocessing only, from the kept class logits and box deltas;
- RPN-stage settings (``rpn_pre_nms_top_n``, ``rpn_post_nms_top_n``, ``rpn_nms_thresh``,
  ``rpn_score_thresh``): proposal filtering from the kept RPN head outputs, then the box head
  for proposals it has not seen yet (a proposal is fixed by its anchor, so the box head's
  output for it is kept by anchor index), then postprocessing.

The backbone, the anchors and the anchor matching never re-run.
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import torch

from .model import DetectorOutputs, FasterRCNN
from .recorder import StageRecorder
from .roi_heads import BoxHeadOutputs, DetectionSettings
from .rpn import ProposalSettings, RpnOutputs
from .targets import check_images, check_targets
from .trace import Trace
from .tracing import TraceBuilder

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

# Box-head reruns pool proposals on several threads from this many proposals on.
_PARALLEL_POOLING_FROM = 64
_POOLING_THREADS = 4


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


class Inspection:
    """One image's stage outputs, kept; :meth:`run` builds a Trace for given settings.

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
        check_images([image], model.transform)
        if target is not None:
            target = {"boxes": target["boxes"].to(torch.float32).reshape(-1, 4),
                      "labels": target["labels"].to(torch.int64).reshape(-1)}
            check_targets([image], [target], model.num_classes)
        self.model = model
        self.image = image
        self.target = target
        self._outputs: DetectorOutputs | None = None
        self._builder: TraceBuilder | None = None
        self._pooling: list[torch.Tensor] = []  # see _first_run
        self._fixed_parts: dict = {}
        self._proposal_parts: tuple[RpnOutputs, dict] | None = None
        self._head_anchor_ids = torch.empty(0, dtype=torch.int64)
        self._head_logits: torch.Tensor | None = None
        self._head_deltas: torch.Tensor | None = None

    @property
    def outputs(self) -> DetectorOutputs | None:
        """Every stage's outputs of the last run (on the model's device, boxes in resized-image
        pixels); None before the first run."""
        return self._outputs

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
        self._compute(rpn_settings, roi_settings)
        outputs, builder = self._outputs, self._builder
        if self._proposal_parts is None or self._proposal_parts[0] is not outputs.rpn:
            self._proposal_parts = (outputs.rpn,
                                    builder.proposal_parts(outputs.rpn, outputs.roi.head))
        return Trace(
            **self._fixed_parts,
            **self._proposal_parts[1],
            postprocess=builder.postprocess(outputs.roi),
            detections=builder.detections(outputs),
            settings=_settings_dict(rpn_settings, roi_settings),
        )

    @torch.inference_mode()
    def run_outputs(self, **overrides: float) -> DetectorOutputs:
        """The stage outputs for these settings, computed as :meth:`run` computes them (only
        the stages downstream of a changed setting), without building a Trace: for a caller
        that reads a few stages of many images, such as a diagnosis of a split."""
        self._compute(*self.settings(**overrides))
        return self._outputs

    def _compute(self, rpn_settings: ProposalSettings, roi_settings: DetectionSettings) -> None:
        if self._outputs is None:
            self._first_run(rpn_settings, roi_settings)
        else:
            previous = self._outputs
            self._outputs = self.model.run_heads(
                previous.batch, previous.features, rpn_settings=rpn_settings,
                detection_settings=roi_settings, reuse=previous, box_head=self._box_head,
            )

    def _first_run(self, rpn_settings: ProposalSettings, roi_settings: DetectionSettings) -> None:
        recorder = StageRecorder()
        with _evaluation_settings(self.model, rpn_settings, roi_settings):
            self.model([self.image], recorder=recorder)
        outputs = self._outputs = recorder.outputs
        self._builder = TraceBuilder(self.model, outputs, self.target)
        # The pooled FPN levels in the (N, C, H, W) memory layout RoIAlign reads: the backbone
        # runs channels-last, and RoIAlign would otherwise copy each level over again on every
        # rerun (75 ms for P2 at 800 px). Made now, so that no rerun pays for it.
        self._pooling = [level.contiguous()
                         for level in outputs.features.maps[: self.model.pooled_levels]]
        self._fixed_parts = self._builder.fixed_parts(outputs.rpn)
        self._remember_head_outputs(_final_anchor_ids(outputs.rpn), outputs.roi.head)

    @torch.inference_mode()
    def precompute_box_head(self, chunk: int = 256, stop=lambda: False) -> int:
        """Run the box head for every valid RPN candidate of the last run that it has not seen,
        ``chunk`` at a time, so that later RPN reruns only look results up.

        For a worker thread to call while the user looks at the first trace: changing the NMS
        IoU or the post-NMS top-k then never waits for the box head. Stops early when ``stop()``
        returns true. Returns how many candidates it computed.
        """
        if self._outputs is None:
            raise RuntimeError("run() first: precomputing follows a run's RPN candidates")
        rpn = self._outputs.rpn
        stages = rpn.stages[0]
        anchor_ids = rpn.candidates.anchor_indices[0, stages.valid]
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

    def _box_head(self, rpn: RpnOutputs) -> BoxHeadOutputs:
        """The box head's outputs for the RPN's proposals (what ``run_heads`` asks for)."""
        return self._head_outputs(_final_anchor_ids(rpn), rpn.proposals[0])

    def _head_outputs(self, anchor_ids: torch.Tensor, proposals: torch.Tensor) -> BoxHeadOutputs:
        """Class logits (P, C) and box deltas (P, C * 4) for proposals (P, 4) that came from
        ``anchor_ids`` (P,), computing only those not computed before."""
        known = self._lookup(anchor_ids)
        missing = torch.where(known < 0)[0]
        if missing.numel():
            self._remember_head_outputs(anchor_ids[missing], self._predict(proposals[missing]))
            known = self._lookup(anchor_ids)
        return BoxHeadOutputs(self._head_logits[known], self._head_deltas[known])

    def _predict(self, proposals: torch.Tensor) -> BoxHeadOutputs:
        """The box head on proposals (P, 4). torchvision's CPU RoIAlign runs on one thread
        and is most of the cost (about 0.2 ms a proposal at 800 px): with many proposals and
        several CPU threads, the pooling runs in parts side by side (torch releases the GIL),
        then the head once on all of them. Same numbers as one call (tested)."""
        roi_heads = self.model.roi_heads
        features = self._pooling
        threads = min(torch.get_num_threads(), _POOLING_THREADS)
        if proposals.device.type != "cpu" or threads < 2 or \
                proposals.shape[0] < _PARALLEL_POOLING_FROM:
            return roi_heads.predict(features, [proposals])

        def pool(part: torch.Tensor) -> torch.Tensor:
            with torch.inference_mode():  # a thread does not inherit the caller's mode
                return roi_heads.pooler(features, [part])

        with ThreadPoolExecutor(threads) as pool_threads:
            pooled = torch.cat(list(pool_threads.map(pool, proposals.tensor_split(threads))))
        return BoxHeadOutputs(*roi_heads.box_predictor(roi_heads.box_head(pooled)))

    def _lookup(self, anchor_ids: torch.Tensor) -> torch.Tensor:
        """Rows of the cached head outputs for ``anchor_ids``; -1 where not cached."""
        cached = self._head_anchor_ids
        if cached.numel() == 0:
            return torch.full_like(anchor_ids, -1)
        order = torch.argsort(cached)
        position = torch.searchsorted(cached[order], anchor_ids).clamp(max=cached.numel() - 1)
        rows = order[position]
        return torch.where(cached[rows] == anchor_ids, rows, torch.full_like(rows, -1))

    def _remember_head_outputs(self, anchor_ids: torch.Tensor, head: BoxHeadOutputs) -> None:
        if self._head_logits is None:
            self._head_anchor_ids = anchor_ids
            self._head_logits, self._head_deltas = head.class_logits, head.box_deltas
            return
        self._head_anchor_ids = torch.cat([self._head_anchor_ids, anchor_ids])
        self._head_logits = torch.cat([self._head_logits, head.class_logits])
        self._head_deltas = torch.cat([self._head_deltas, head.box_deltas])


def _final_anchor_ids(rpn: RpnOutputs) -> torch.Tensor:
    """(P,) the anchor each of image 0's proposals came from."""
    return rpn.candidates.anchor_indices[0, rpn.stages[0].final]


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
