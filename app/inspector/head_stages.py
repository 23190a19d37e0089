"""Stage 5: the box head's class scores, the score threshold, per-class NMS, and the final
detections beside the ground truth with why each box was found or missed. No Qt."""

from __future__ import annotations

import numpy as np
import torch
from torchvision.ops import box_iou

from engine.detector.trace import Trace
from engine.detector.trace_queries import explain_targets

from .hit_testing import pick
from .proposal_stages import _nms_selection, _proposal_select, _rank
from .scene import (
    FADED,
    FOUND,
    HIGHLIGHT,
    MISSED,
    SUPPRESSOR,
    BoxLayer,
    Chart,
    LegendEntry,
    Scene,
    TextLabel,
)
from .stage_base import (
    MAX_LABELS,
    Selection,
    StageContext,
    best_first,
    box_size,
    box_text,
    drawn_note,
    limited,
    nms_drawn_note,
    nms_faded_layers,
    nms_select,
    nms_sets,
    paragraph,
    table,
    title,
    valid_selection,
)


def _class_layers(ctx: StageContext, boxes: torch.Tensor, labels: torch.Tensor,
                  name: str, **style) -> list[BoxLayer]:
    return [BoxLayer(boxes[labels == class_id].numpy().astype(np.float64),
                     ctx.classes.colour(class_id), name=f"{name} {ctx.classes.name(class_id)}",
                     **style)
            for class_id in range(1, ctx.trace.num_classes)]


def _class_legend(ctx: StageContext) -> list[LegendEntry]:
    return [LegendEntry(ctx.classes.colour(c), ctx.classes.name(c))
            for c in range(1, ctx.trace.num_classes)][:12]


def _score_labels(ctx: StageContext, boxes, labels, scores, indices: torch.Tensor
                  ) -> list[TextLabel]:
    chosen = best_first(indices, scores)[:MAX_LABELS]
    return [TextLabel(float(boxes[i][0]), float(boxes[i][1]),
                      f"{ctx.classes.name(int(labels[i]))} {float(scores[i]):.2f}",
                      ctx.classes.colour(int(labels[i])))
            for i in chosen.tolist()]


def _by_class(ctx: StageContext, labels: torch.Tensor) -> str:
    return ", ".join(f"{ctx.classes.name(c)} {int((labels == c).sum())}"
                     for c in range(1, ctx.trace.num_classes) if int((labels == c).sum()))


# ----------------------------------------------------------------------- 5a: class scores


def _default_proposal(trace: Trace) -> int:
    """Where stage 5a opens: the proposal both stages score highest, its objectness times its
    best foreground probability (the box head alone often gives 0.99 to a proposal the RPN
    ranked near the bottom, which looks arbitrary to whoever reads the two numbers)."""
    probs = trace.box_head.class_probs
    if probs.shape[0] == 0:
        return -1
    objectness = trace.rpn.scores[trace.rpn.final]
    return int((objectness * probs[:, 1:].max(dim=1).values).argmax())


def box_head_scene(ctx: StageContext) -> Scene:
    trace = ctx.trace
    head, proposals = trace.box_head, trace.rpn.proposals
    scene = Scene(layers=[BoxLayer(proposals[: ctx.options.max_boxes].numpy().astype(np.float64),
                                   FADED, alpha=0.3, name="proposals")])
    selection = valid_selection(ctx.selection, "proposal", proposals.shape[0])
    index = selection.index if selection is not None else _default_proposal(trace)
    threshold = trace.postprocess.score_thresh
    if index >= 0:
        probs = head.class_probs[index]
        best = int(probs[1:].argmax()) + 1
        refined = head.class_boxes[index, best]
        scene.layers.append(BoxLayer(proposals[index][None].numpy(), HIGHLIGHT, width=3,
                                     name="selected"))
        scene.layers.append(BoxLayer(refined[None].numpy(), ctx.classes.colour(best), width=2,
                                     dashed=True, name="refined"))
        scene.labels.append(TextLabel(float(refined[0]), float(refined[1]),
                                      f"{ctx.classes.name(best)} {float(probs[best]):.2f}",
                                      ctx.classes.colour(best), focus=True))
        names = ["background"] + [ctx.classes.name(c) for c in range(1, trace.num_classes)]
        colours = [FADED] + [ctx.classes.colour(c) for c in range(1, trace.num_classes)]
        scene.chart = Chart("bars", f"Proposal {index}: class probabilities", ["bg", *names[1:]],
                            [float(p) for p in probs], colours, best, y_label="probability",
                            y_max=1.0)
        order = torch.argsort(probs, descending=True).tolist()
        rows = [[names[c], f"{float(probs[c]):.3f}",
                 "background" if c == 0 else box_text(head.class_boxes[index, c]),
                 "" if c == 0 else ("candidate" if float(probs[c]) > threshold else "")]
                for c in order[:12]]
        best_note = (" — the best-scoring proposal, objectness × class probability (shown "
                     "first; click another)" if selection is None else "")
        heading = f"Proposal {index}, {box_size(proposals[index])}{best_note}"
        scene.info = title(heading) + paragraph(
            f"objectness {float(trace.rpn.scores[trace.rpn.final[index]]):.3f}; classes above "
            f"the score threshold {threshold:g} become candidates",
        ) + table(["class", "probability", "refined box", ""], rows)
    scene.legend = [LegendEntry(FADED, "proposals"), LegendEntry(HIGHLIGHT, "clicked proposal"),
                    LegendEntry("#ffffff", "its box refined for the best class", "dashed")]
    scene.caption = [
        f"5a · Box head: each of the {proposals.shape[0]} proposals is pooled to 7×7, then two "
        "fully connected layers give class probabilities (softmax, background first) and a "
        "refined box per class.",
        f"{'Opened on the best-scoring proposal; click' if selection is None else 'Click'} "
        f"a proposal to see its class probabilities"
        f"{drawn_note(proposals.shape[0], ctx.options.max_boxes)}.",
    ]
    return scene


box_head_select = _proposal_select


# ----------------------------------------------------------------------- 5b: score threshold


def _threshold_shown(ctx: StageContext) -> torch.Tensor:
    post = ctx.trace.postprocess
    return limited(torch.arange(post.scores.numel()), post.scores, ctx.options.max_boxes)


def threshold_scene(ctx: StageContext) -> Scene:
    trace = ctx.trace
    post = trace.postprocess
    small = torch.where(~post.large_enough)[0]
    shown = _threshold_shown(ctx)
    scene = Scene()
    drawn_small = shown[~post.large_enough[shown]]
    scene.layers.append(BoxLayer(post.boxes[drawn_small].numpy(), FADED, dashed=True,
                                 name="too small"))
    large = shown[post.large_enough[shown]].flip(0)
    scene.layers += _class_layers(ctx, post.boxes[large], post.labels[large], "candidates",
                                  alpha=0.85)
    scene.labels = _score_labels(ctx, post.boxes, post.labels, post.scores, large)
    _candidate_selection(ctx, scene)
    scene.legend = [*_class_legend(ctx), LegendEntry(FADED, f"under {post.min_size:g} px",
                                                     "dashed")]
    scene.caption = [
        f"5b · Candidates: every (proposal, class) pair whose class probability is above "
        f"{post.score_thresh:g}, with the box refined for that class: {post.scores.numel()}; "
        f"{small.numel()} smaller than {post.min_size:g} px removed.",
        f"By class: {_by_class(ctx, post.labels) or 'none'}"
        f"{drawn_note(post.scores.numel(), ctx.options.max_boxes)}.",
    ]
    return scene


def _candidate_selection(ctx: StageContext, scene: Scene) -> None:
    post = ctx.trace.postprocess
    selection = valid_selection(ctx.selection, "candidate", post.scores.numel())
    if selection is None:
        scene.info = paragraph("Click a box for its class, score and proposal.")
        return
    index = selection.index
    scene.layers.append(BoxLayer(post.boxes[index][None].numpy(), HIGHLIGHT, width=3,
                                 name="selected"))
    proposal = int(post.proposal[index])
    scene.layers.append(BoxLayer(ctx.trace.rpn.proposals[proposal][None].numpy(), HIGHLIGHT,
                                 width=1.5, dashed=True, name="its proposal"))
    scene.info = title(f"Candidate {index}: {ctx.classes.name(int(post.labels[index]))} "
                       f"{float(post.scores[index]):.3f}") + paragraph(
        f"box {box_text(post.boxes[index])}, {box_size(post.boxes[index])}",
        f"refined from proposal {proposal} (dashed)",
        "large enough" if bool(post.large_enough[index]) else
        f"removed: under {post.min_size:g} px",
    )


def _candidate_select(ctx: StageContext, x: float, y: float, indices: torch.Tensor
                      ) -> Selection | None:
    post = ctx.trace.postprocess
    indices = best_first(indices, post.scores)
    hit = pick([("candidate", post.boxes[indices].numpy(), indices.numpy())], x, y,
               ctx.tolerance)
    return None if hit is None else Selection(*hit)


def threshold_select(ctx: StageContext, x: float, y: float) -> Selection | None:
    return _candidate_select(ctx, x, y, _threshold_shown(ctx))


# ----------------------------------------------------------------------- 5c: per-class NMS


def class_nms_scene(ctx: StageContext) -> Scene:
    trace = ctx.trace
    post = trace.postprocess
    sets = nms_sets(ctx.trace.postprocess, ctx.options)
    suppressed = sets["suppressed"]
    scene = Scene()
    scene.layers += nms_faded_layers(post.boxes, sets, 0.5, "kept beyond the limit")
    final = sets["final_shown"].flip(0)
    scene.layers += _class_layers(ctx, post.boxes[final], post.labels[final], "kept", width=2)
    scene.labels = _score_labels(ctx, post.boxes, post.labels, post.scores, post.final)
    selection = valid_selection(ctx.selection, "candidate", post.scores.numel())
    if selection is not None:
        _nms_selection(scene, trace, post, selection.index, post.nms_thresh,
                       lambda i: ctx.classes.name(int(post.labels[i])), "class",
                       final_rank=_rank(post.final, selection.index))
    else:
        scene.info = paragraph("Click a grey box to see which detection suppressed it and "
                               "their IoU; click a coloured one to see what it suppressed.")
    scene.legend = [*_class_legend(ctx), LegendEntry(FADED, "suppressed"),
                    LegendEntry(FADED, f"kept, beyond the {post.detections_per_img} detections",
                                "dashed"),
                    LegendEntry(SUPPRESSOR, "the suppressor of the clicked box")]
    scene.caption = [
        f"5c · NMS within each class at IoU {post.nms_thresh:g}: {int(post.nms_kept.sum())} of "
        f"{int(post.large_enough.sum())} kept, {suppressed.numel()} suppressed (a box only "
        f"suppresses boxes of its own class); the best {post.detections_per_img} kept are "
        f"the detections ({post.final.numel()})"
        f"{nms_drawn_note(sets, ctx.options)}.",
    ]
    return scene


def class_nms_select(ctx: StageContext, x: float, y: float) -> Selection | None:
    return nms_select(ctx.trace.postprocess, "candidate", ctx, x, y)


# ----------------------------------------------------------------------- 5d: detections


def detections_scene(ctx: StageContext) -> Scene:
    trace = ctx.trace
    detections = trace.detections
    scene = Scene()
    everything = torch.arange(detections.scores.numel())
    scene.layers += _class_layers(ctx, detections.boxes, detections.labels, "detections",
                                  width=2)
    scene.labels = _score_labels(ctx, detections.boxes, detections.labels, detections.scores,
                                 everything)
    explained = explain_targets(trace)
    missed = [e for e in explained if e.stage != "detected"]
    if trace.target_boxes is not None:
        found_rows = [e.index for e in explained if e.stage == "detected"]
        missed_rows = [e.index for e in missed]
        scene.layers.append(BoxLayer(trace.target_boxes[found_rows].numpy().reshape(-1, 4),
                                     FOUND, width=2, dashed=True, name="ground truth found"))
        scene.layers.append(BoxLayer(trace.target_boxes[missed_rows].numpy().reshape(-1, 4),
                                     MISSED, width=2, dashed=True, name="ground truth missed"))
        for item in missed:
            box = trace.target_boxes[item.index]
            scene.labels.append(TextLabel(float(box[0]), float(box[3]),
                                          f"missed {ctx.classes.name(item.label)}: "
                                          f"{item.stage}", MISSED, focus=True))
    left_out = ctx.ground_truth.left_out if ctx.ground_truth is not None else []
    if left_out:
        scene.layers.append(BoxLayer(np.array([b.box for b in left_out]), FADED, width=2,
                                     dashed=True, name="ground truth not used"))
        for entry in left_out:
            scene.labels.append(TextLabel(entry.box[0], entry.box[3],
                                          f"{entry.name} (not used)", FADED, focus=True))
    selection = ctx.selection
    if trace.target_boxes is not None and valid_selection(selection, "target",
                                                          trace.target_boxes.shape[0]):
        scene.info = _explain_one(ctx, scene, explained[selection.index])
    elif valid_selection(selection, "detection", detections.scores.numel()):
        scene.info = _detection_info(ctx, scene, selection.index)
    else:
        scene.info = _summary(ctx, explained)
    scene.legend = [*_class_legend(ctx),
                    LegendEntry(FOUND, "ground truth found", "dashed"),
                    LegendEntry(MISSED, "ground truth missed", "dashed")]
    post = trace.postprocess
    ground = (f" Ground truth (dashed): {len(explained) - len(missed)} of {len(explained)} "
              "found." if explained else "")
    scene.caption = [
        f"5d · Detections: the best {post.detections_per_img} after NMS, score above "
        f"{post.score_thresh:g}: {detections.scores.numel()}.{ground}",
        "Click a dashed box to see where in the pipeline it was lost, or a detection for its "
        "match." if explained else "The image has no labelled boxes to compare with.",
    ]
    return scene


def _summary(ctx: StageContext, explained) -> str:
    parts = [paragraph(*(f"{ctx.classes.name(e.label)} box {e.index}: {e.reason}"
                         for e in explained))] if explained else []
    if ctx.ground_truth is not None:
        notes = ctx.ground_truth.notes()
        if notes:
            parts.append(title("Left out of the target") + paragraph(*notes))
    return "".join(parts) or paragraph("No labelled boxes on this image.")


def _explain_one(ctx: StageContext, scene: Scene, item) -> str:
    trace = ctx.trace
    box = trace.target_boxes[item.index]
    scene.layers.append(BoxLayer(box[None].numpy(), HIGHLIGHT, width=3, name="selected"))
    if item.best_proposal >= 0:
        scene.layers.append(BoxLayer(trace.rpn.proposals[item.best_proposal][None].numpy(),
                                     SUPPRESSOR, width=1.5, dashed=True, name="best proposal"))
    lines = [
        f"best anchor IoU {item.best_anchor_iou:.2f}",
        f"best proposal {item.best_proposal}: IoU {item.best_proposal_iou:.2f} (yellow dashed)",
        f"best probability of its class on a covering proposal: {item.class_prob:.2f}",
    ]
    if item.best_candidate >= 0:
        lines.append(f"best candidate of its class: {item.best_candidate} score "
                     f"{float(trace.postprocess.scores[item.best_candidate]):.2f}")
    if item.other_detection >= 0:
        score = float(trace.detections.scores[item.other_detection])
        lines.append(f"a detection of another class covers it too: detection "
                     f"{item.other_detection}, {ctx.classes.name(item.other_class)} {score:.2f}")
    verdict = FOUND if item.stage == "detected" else MISSED
    return (title(f"{ctx.classes.name(item.label)} box {item.index}, {box_size(box)}")
            + f"<p style='color:{verdict}'>{item.reason}</p>" + paragraph(*lines))


def _detection_info(ctx: StageContext, scene: Scene, index: int) -> str:
    trace = ctx.trace
    detections = trace.detections
    box = detections.boxes[index]
    scene.layers.append(BoxLayer(box[None].numpy(), HIGHLIGHT, width=3, name="selected"))
    lines = [f"box {box_text(box)}, {box_size(box)}"]
    if trace.target_boxes is not None and trace.target_boxes.shape[0]:
        ious = box_iou(box[None].float(), trace.target_boxes.float())[0]
        best = int(ious.argmax())
        lines.append(f"best ground truth: {ctx.classes.name(int(trace.target_labels[best]))} "
                     f"box {best}, IoU {float(ious[best]):.2f}")
    return (title(f"Detection {index}: {ctx.classes.name(int(detections.labels[index]))} "
                  f"{float(detections.scores[index]):.3f}") + paragraph(*lines))


def detections_select(ctx: StageContext, x: float, y: float) -> Selection | None:
    trace = ctx.trace
    groups = [("detection", trace.detections.boxes.numpy(),
               np.arange(trace.detections.scores.numel()))]
    if trace.target_boxes is not None:
        groups.append(("target", trace.target_boxes.numpy(),
                       np.arange(trace.target_boxes.shape[0])))
    hit = pick(groups, x, y, ctx.tolerance)
    return None if hit is None else Selection(*hit)
