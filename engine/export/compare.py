"""Do two runs give the same detections? Matching that float rounding cannot fool.

An exported model computes with other kernels (onnxruntime's convolutions, torchvision's
unfolded BatchNorm), so its numbers differ from ours in the last float digits. Comparing
detection lists position by position would then fail wherever two scores are within that
rounding of each other and swap places. Instead every reference detection is matched to an
unused exported detection of the same class within ``box_tol + rel_box_tol * size`` pixels
(every coordinate; ``size`` the reference box's longer side: float rounding in the box
decoding, ``exp(dw) * width``, grows with the box) and ``score_tol`` in score.

Detections left unmatched on either side are acceptable only where rounding can legitimately
decide whether they exist at all, and each such one is explained in ``notes``:

- score threshold: its score is within ``score_tol`` of ``score_thresh``;
- top-k: a list was cut at ``detections_per_img`` and its score is within ``score_tol`` of that
  list's last kept score (or below it);
- NMS flip: another detection of its class (on either side, scoring at least as high) overlaps
  it with an IoU within ``iou_tol`` of ``nms_thresh``, so the suppression decision can go
  either way; and a detection overlapping such a flipped one above the threshold follows it
  (its suppressor is there on one side only).

Whatever else is unmatched is "unexplained" and the comparison fails, naming the image and
the detection.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torchvision.ops import box_iou

Detections = dict[str, torch.Tensor]  # boxes (D, 4), labels (D,), scores (D,)


@dataclass
class ImageComparison:
    """One image: how many detections each side has, how many matched, the largest box
    (pixels) and score differences among the matched, and ``unexplained`` - unmatched
    detections that no threshold explains (0 when the two agree). ``notes`` says, for each
    unmatched detection, which boundary explains it or that none does."""

    image: str
    reference: int
    exported: int
    matched: int
    max_box_diff: float
    max_score_diff: float
    unexplained: int
    notes: list[str] = field(default_factory=list)


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
    def compared(self) -> int:
        """Detections the two runs had in all (0: the check compared nothing)."""
        return sum(c.reference + c.exported for c in self.images)

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
        unexplained = [note for c in self.images for note in c.notes if "unexplained" in note]
        explained = sum(len(c.notes) for c in self.images) - len(unexplained)
        text = (
            f"{verdict} as the checkpoint ({self.runtime}) on {len(self.images)} image(s): "
            f"{matched} of {reference} matched, boxes within {self.max_box_diff:.2g} px, "
            f"scores within {self.max_score_diff:.2g}"
        )
        if explained:
            text += (f"; {explained} unmatched at a score threshold, top-k or NMS boundary "
                     f"(float rounding decides those)")
        if unexplained:
            text += "; " + "; ".join(unexplained[:5])
            if len(unexplained) > 5:
                text += f"; and {len(unexplained) - 5} more"
        return text

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
    rel_box_tol: float = 0.0,
    nms_thresh: float | None = None,
    iou_tol: float = 1e-3,
) -> ImageComparison:
    """Match ``exported`` to ``reference`` and explain what is left (see the module
    docstring). ``image`` names the image in the notes."""
    sides = {name: tuple(run[k].detach().cpu().float() for k in ("boxes", "labels", "scores"))
             for name, run in (("reference", reference), ("export", exported))}
    ref_boxes, ref_labels, ref_scores = sides["reference"]
    exp_boxes, exp_labels, exp_scores = sides["export"]
    used = torch.zeros(len(exp_scores), dtype=torch.bool)
    matched, box_diff, score_diff = 0, 0.0, 0.0
    unmatched_ref = []
    for i in torch.argsort(ref_scores, descending=True).tolist():
        size = float((ref_boxes[i, 2:] - ref_boxes[i, :2]).max())
        distance = (exp_boxes - ref_boxes[i]).abs().amax(dim=1) if len(exp_boxes) else None
        candidates = ~used & (exp_labels == ref_labels[i]) & (
            (exp_scores - ref_scores[i]).abs() <= score_tol)
        if distance is not None:
            candidates &= distance <= box_tol + rel_box_tol * size
        if not bool(candidates.any()):
            unmatched_ref.append(i)
            continue
        j = int(torch.where(candidates, distance, torch.inf).argmin())
        used[j] = True
        matched += 1
        box_diff = max(box_diff, float(distance[j]))
        score_diff = max(score_diff, abs(float(exp_scores[j] - ref_scores[i])))
    unmatched = {"reference": unmatched_ref, "export": (~used).nonzero().flatten().tolist()}
    reasons = _explain(sides, unmatched, score_tol=score_tol, score_thresh=score_thresh,
                       detections_per_img=detections_per_img, nms_thresh=nms_thresh,
                       iou_tol=iou_tol)
    where = f"image {image!r}" if image else "the image"
    notes, unexplained = [], 0
    for side, indices in unmatched.items():
        boxes, labels, scores = sides[side]
        for index in indices:
            what = (f"{where}: {side} detection {index} (class {int(labels[index])}, score "
                    f"{float(scores[index]):.4f}, box "
                    f"{[round(v, 2) for v in boxes[index].tolist()]}) only in the {side}")
            reason = reasons.get((side, index))
            if reason is None:
                unexplained += 1
                notes.append(f"{what}: unexplained{_nearest(sides, side, index)}")
            else:
                notes.append(f"{what}: {reason}")
    return ImageComparison(image, len(ref_scores), len(exp_scores), matched, box_diff,
                           score_diff, unexplained, notes)


def _explain(sides: dict, unmatched: dict[str, list[int]], *, score_tol: float,
             score_thresh: float, detections_per_img: int, nms_thresh: float | None,
             iou_tol: float) -> dict[tuple[str, int], str]:
    """(side, index) -> the boundary that explains why that unmatched detection exists on one
    side only (see the module docstring); detections no boundary explains are absent."""
    other = {"reference": "export", "export": "reference"}
    reasons: dict[tuple[str, int], str] = {}
    for side, indices in unmatched.items():
        scores = sides[side][2]
        other_scores = sides[other[side]][2]
        for index in indices:
            score = float(scores[index])
            if abs(score - score_thresh) <= score_tol:
                reasons[side, index] = f"score threshold {score_thresh:g} boundary"
            elif (_at_top_k(score, scores, detections_per_img, score_tol, own=True)
                  or _at_top_k(score, other_scores, detections_per_img, score_tol, own=False)):
                reasons[side, index] = f"top-k boundary (lists cut at {detections_per_img})"
    if nms_thresh is None:
        return reasons
    # NMS flips: an overlap at the threshold with a detection scoring at least as high.
    everyone = [(side, index) for side, indices in unmatched.items() for index in indices]
    for side, index in everyone:
        if (side, index) in reasons:
            continue
        box, label, score = (t[index] for t in sides[side])
        for peer_side in ("reference", "export"):
            boxes, labels, scores = sides[peer_side]
            mask = (labels == label) & (scores >= score - score_tol)
            if peer_side == side:
                mask[index] = False
            if not bool(mask.any()):
                continue
            overlaps = box_iou(box[None], boxes[mask])[0]
            near = (overlaps - nms_thresh).abs() <= iou_tol
            if bool(near.any()):
                iou = float(overlaps[near][0])
                reasons[side, index] = (f"NMS flip: IoU {iou:.4f} with a detection of its "
                                        f"class at the threshold {nms_thresh:g}")
                break
    # A detection suppressed (or not) by a flipped one follows it.
    changed = True
    while changed:
        changed = False
        for side, index in everyone:
            if (side, index) in reasons:
                continue
            box, label, _ = (t[index] for t in sides[side])
            for peer_side, peer in everyone:
                if (peer_side, peer) not in reasons or (peer_side, peer) == (side, index):
                    continue
                peer_box, peer_label, _ = (t[peer] for t in sides[peer_side])
                if peer_label == label and float(
                        box_iou(box[None], peer_box[None])[0, 0]) > nms_thresh - iou_tol:
                    reasons[side, index] = (f"follows an explained detection of the "
                                            f"{peer_side} ({peer}) that overlaps it above the "
                                            f"NMS threshold {nms_thresh:g}")
                    changed = True
                    break
    return reasons


def _nearest(sides: dict, side: str, index: int) -> str:
    """How far the closest detection of the same class on the other side is (box: largest
    coordinate difference in pixels), to tell a near miss from a missing detection."""
    box, label, score = (t[index] for t in sides[side])
    boxes, labels, scores = sides["export" if side == "reference" else "reference"]
    same = (labels == label).nonzero().flatten()
    if not len(same):
        return ""
    distance = (boxes[same] - box).abs().amax(dim=1)
    nearest = int(same[int(distance.argmin())])
    return (f" (nearest on the other side: box {float(distance.min()):.3g} px away, score "
            f"{abs(float(scores[nearest] - score)):.3g} away)")


def _at_top_k(score: float, scores: torch.Tensor, k: int, tol: float, *, own: bool) -> bool:
    """Was a list of ``scores`` cut at ``k`` where ``score`` sits? ``own``: the detection is in
    that list (then it is near its last score), else it would have been cut from it."""
    if len(scores) < k or not len(scores):
        return False
    last = float(scores.min())
    return abs(score - last) <= tol if own else score <= last + tol
