"""Do two runs give the same detections? Matching that float rounding cannot fool.

An exported model computes with other kernels (onnxruntime's convolutions, torchvision's
unfolded BatchNorm), so its numbers differ from ours in the last float digits. Comparing
detection lists position by position would then fail wherever two scores are within that
rounding of each other and swap places. Instead every reference detection is matched to an
unused exported detection of the same class within ``box_tol`` pixels (every coordinate) and
``score_tol`` in score. Detections left unmatched on either side are acceptable only where
rounding can legitimately decide whether they exist at all: a score within ``score_tol`` of
the score threshold, or of the last score kept when the list was cut at
``detections_per_img``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch

Detections = dict[str, torch.Tensor]  # boxes (D, 4), labels (D,), scores (D,)


@dataclass
class ImageComparison:
    """One image: how many detections each side has, how many matched, the largest box
    (pixels) and score differences among the matched, and ``unexplained`` - unmatched
    detections that no threshold explains (0 when the two agree)."""

    image: str
    reference: int
    exported: int
    matched: int
    max_box_diff: float
    max_score_diff: float
    unexplained: int


@dataclass
class Verification:
    """An export run against our model on some images. ``skipped`` says why no run was made
    (then ``ok`` is False)."""

    runtime: str
    box_tol: float
    score_tol: float
    images: list[ImageComparison] = field(default_factory=list)
    skipped: str | None = None

    @property
    def ok(self) -> bool:
        return self.skipped is None and all(c.unexplained == 0 for c in self.images)

    @property
    def max_box_diff(self) -> float:
        return max((c.max_box_diff for c in self.images), default=0.0)

    @property
    def max_score_diff(self) -> float:
        return max((c.max_score_diff for c in self.images), default=0.0)

    def summary(self) -> str:
        if self.skipped is not None:
            return f"not verified: {self.skipped}"
        matched = sum(c.matched for c in self.images)
        reference = sum(c.reference for c in self.images)
        verdict = "same detections" if self.ok else "DIFFERENT detections"
        return (
            f"{verdict} as the checkpoint ({self.runtime}) on {len(self.images)} image(s): "
            f"{matched} of {reference} matched, boxes within {self.max_box_diff:.2g} px, "
            f"scores within {self.max_score_diff:.2g}"
        )

    def to_dict(self) -> dict:
        return {
            "ok": self.ok, "runtime": self.runtime, "skipped": self.skipped,
            "box_tolerance_px": self.box_tol, "score_tolerance": self.score_tol,
            "max_box_diff_px": self.max_box_diff, "max_score_diff": self.max_score_diff,
            "images": [asdict(c) for c in self.images],
        }


def compare_detections(
    reference: Detections,
    exported: Detections,
    *,
    image: str = "",
    box_tol: float,
    score_tol: float,
    score_thresh: float,
    detections_per_img: int,
) -> ImageComparison:
    """Match ``exported`` to ``reference`` (see the module docstring)."""
    ref_boxes, ref_labels, ref_scores = (reference[k].detach().cpu().float()
                                         for k in ("boxes", "labels", "scores"))
    exp_boxes, exp_labels, exp_scores = (exported[k].detach().cpu().float()
                                         for k in ("boxes", "labels", "scores"))
    used = torch.zeros(len(exp_scores), dtype=torch.bool)
    matched, box_diff, score_diff = 0, 0.0, 0.0
    unmatched_ref = []
    for i in torch.argsort(ref_scores, descending=True).tolist():
        distance = (exp_boxes - ref_boxes[i]).abs().amax(dim=1) if len(exp_boxes) else None
        candidates = ~used & (exp_labels == ref_labels[i]) & (
            (exp_scores - ref_scores[i]).abs() <= score_tol)
        if distance is not None:
            candidates &= distance <= box_tol
        if not bool(candidates.any()):
            unmatched_ref.append(float(ref_scores[i]))
            continue
        j = int(torch.where(candidates, distance, torch.inf).argmin())
        used[j] = True
        matched += 1
        box_diff = max(box_diff, float(distance[j]))
        score_diff = max(score_diff, abs(float(exp_scores[j] - ref_scores[i])))
    unmatched_exp = exp_scores[~used].tolist()

    def explained(score: float, scores: torch.Tensor) -> bool:
        near_threshold = abs(score - score_thresh) <= score_tol
        cut_off = len(scores) >= detections_per_img and abs(
            score - float(scores.min())) <= score_tol
        return near_threshold or cut_off

    unexplained = sum(not explained(s, ref_scores) for s in unmatched_ref) + sum(
        not explained(s, exp_scores) for s in unmatched_exp)
    return ImageComparison(image, len(ref_scores), len(exp_scores), matched, box_diff,
                           score_diff, unexplained)
