"""The inspector's stages in pipeline order, and the two questions the view asks of them: what
to draw (:func:`build_scene`) and what a click hit (:func:`select_at`). No Qt.

Each stage's drawing and click logic lives with its neighbours: ``anchor_stages`` (1, 2),
``proposal_stages`` (3, 4), ``head_stages`` (5).
"""

from __future__ import annotations

from engine.detector.trace import Trace

from . import anchor_stages, head_stages, proposal_stages
from .scene import Scene
from .stage_base import Classes, Selection, Stage, StageContext, ViewOptions

STAGES: tuple[Stage, ...] = (
    Stage("anchors", "1", "Anchors and objectness", anchor_stages.anchors_scene,
          anchor_stages.anchors_select, options=("level",)),
    Stage("anchor-matching", "2", "Anchor matching", anchor_stages.matching_scene,
          anchor_stages.matching_select,
          options=("level_filter", "show_ignored", "sampled_only", "max_boxes"),
          needs_target=True),
    Stage("proposals-before-nms", "3a", "Proposals before NMS", proposal_stages.pre_nms_scene,
          proposal_stages.pre_nms_select, options=("level_filter", "max_boxes")),
    Stage("proposals-nms", "3b", "RPN NMS", proposal_stages.rpn_nms_scene,
          proposal_stages.rpn_nms_select, options=("show_suppressed", "max_boxes")),
    Stage("proposals", "3c", "Final proposals", proposal_stages.final_scene,
          proposal_stages.final_select, options=("max_boxes",)),
    Stage("roi-levels", "4", "ROI level assignment", proposal_stages.roi_levels_scene,
          proposal_stages.roi_levels_select, options=("max_boxes",)),
    Stage("class-scores", "5a", "Box head class scores", head_stages.box_head_scene,
          head_stages.box_head_select, options=("max_boxes",)),
    Stage("score-threshold", "5b", "Score threshold", head_stages.threshold_scene,
          head_stages.threshold_select, options=("max_boxes",)),
    Stage("class-nms", "5c", "Per-class NMS", head_stages.class_nms_scene,
          head_stages.class_nms_select, options=("show_suppressed", "max_boxes")),
    Stage("detections", "5d", "Detections and ground truth", head_stages.detections_scene,
          head_stages.detections_select),
)
STAGE_KEYS = tuple(stage.key for stage in STAGES)

# Which trace part each stage's selection indexes into: after a rerun that changed that part,
# the old selection means something else and is dropped.
SELECTION_DEPENDS_ON = {
    "anchors": "fixed", "anchor-matching": "fixed",
    "proposals-before-nms": "rpn", "proposals-nms": "rpn", "proposals": "rpn",
    "roi-levels": "rpn", "class-scores": "rpn",
    "score-threshold": "postprocess", "class-nms": "postprocess", "detections": "postprocess",
}


def stage(key: str) -> Stage:
    for candidate in STAGES:
        if candidate.key == key:
            return candidate
    raise KeyError(f"no stage {key!r}; stages: {', '.join(STAGE_KEYS)}")


def available_stages(trace: Trace | None) -> list[Stage]:
    return [candidate for candidate in STAGES if candidate.available(trace)]


def neighbour(key: str, trace: Trace | None, step: int) -> str:
    """The available stage ``step`` (+1 next, -1 previous) from ``key``; ``key`` itself at
    either end."""
    keys = [candidate.key for candidate in available_stages(trace)]
    if key not in keys:
        return keys[0] if keys else key
    position = min(max(keys.index(key) + step, 0), len(keys) - 1)
    return keys[position]


# Layers about the clicked item, and the labelled boxes (few, and what everything is compared
# with); when an item is selected, every other layer is dimmed (and its labels left out) so that
# it stands out of hundreds of boxes.
FOCUS_LAYERS = frozenset({
    "selected", "suppressor", "removed by selected", "anchor", "its proposal", "refined",
    "roi bins", "roi samples", "feature positions", "best proposal", "cell centre",
})
KEPT_BRIGHT_PREFIXES = ("target", "ground truth")
DIMMED_ALPHA = 0.3


def build_scene(key: str, ctx: StageContext) -> Scene:
    scene = stage(key).build(ctx)
    if any(layer.name == "selected" for layer in scene.layers):
        for layer in scene.layers:
            if layer.name not in FOCUS_LAYERS and not layer.name.startswith(
                    KEPT_BRIGHT_PREFIXES):
                layer.alpha *= DIMMED_ALPHA
        # Score tags of dimmed boxes would be grey smudges over the picture: leave them out.
        scene.labels = [label for label in scene.labels if label.focus]
    return scene


def select_at(key: str, ctx: StageContext, x: float, y: float) -> Selection | None:
    return stage(key).select(ctx, x, y)


__all__ = ["STAGES", "STAGE_KEYS", "Classes", "Selection", "Stage", "StageContext",
           "ViewOptions", "available_stages", "build_scene", "neighbour", "select_at", "stage"]
