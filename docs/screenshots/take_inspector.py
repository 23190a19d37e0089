"""Screenshots of the pipeline inspector, one per stage: ``docs/screenshots/inspector-<stage>.png``.

    python docs/screenshots/take_inspector.py --checkpoint RUN/best.pt --project PROJECT
        [--image-index 0] [--split val] [--out docs/screenshots] [--size 1400x860]

Opens the inspector view on one image of the project (with its boxes), runs the checkpoint, and
for each stage makes the selection a user would make to explain it (the first box, the best
suppressed proposal, the proposal that covers a box best, ...), then grabs the whole view. The
figures in ``docs/`` were taken with the demo project and a checkpoint trained on it::

    frcnn demo --out /tmp/demo
    frcnn train --project /tmp/demo --out /tmp/demo-run --config resources/configs/demo-cpu.json
    python docs/screenshots/take_inspector.py --checkpoint /tmp/demo-run/best.pt --project /tmp/demo

Runs without a display (``QT_QPA_PLATFORM=offscreen`` is set unless a platform is chosen).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import torch
from PySide6.QtWidgets import QApplication
from torchvision.ops import box_iou

from app.inspector.stages import STAGES, Selection
from app.inspector.view import InspectorView
from engine.data.project import Project
from engine.detector.trace import Trace
from engine.detector.trace_queries import explain_targets


def _wait(app: QApplication, done, timeout: float = 600.0) -> None:
    start = time.perf_counter()
    while not done():
        if time.perf_counter() - start > timeout:
            raise TimeoutError("the inspection did not finish")
        app.processEvents()
        time.sleep(0.01)


def _best_covering_proposal(trace: Trace) -> int:
    """The proposal that overlaps a labelled box most (else the best one)."""
    if trace.target_boxes is None or not trace.target_boxes.shape[0]:
        return 0
    return int(box_iou(trace.target_boxes, trace.rpn.proposals).max(dim=0).values.argmax())


def _best_suppressed(stage) -> int | None:
    suppressed = torch.where(stage.suppressed_by >= 0)[0]
    return int(suppressed[stage.scores[suppressed].argmax()]) if suppressed.numel() else None


def selection_for(key: str, trace: Trace) -> Selection | None:
    """What the screenshot of stage ``key`` selects."""
    has_targets = trace.target_boxes is not None and trace.target_boxes.shape[0] > 0
    if key == "anchor-matching" and has_targets:
        return Selection("target", 0)
    if key == "proposals-before-nms":
        return Selection("rpn", int(trace.rpn.final[_best_covering_proposal(trace)]))
    if key == "proposals-nms":
        index = _best_suppressed(trace.rpn)
        return None if index is None else Selection("rpn", index)
    if key in ("roi-levels", "class-scores"):
        return Selection("proposal", _best_covering_proposal(trace))
    if key == "class-nms":
        index = _best_suppressed(trace.postprocess)
        return None if index is None else Selection("candidate", index)
    if key == "detections" and has_targets:
        explained = explain_targets(trace)
        missed = [e.index for e in explained if e.stage != "detected"]
        return Selection("target", missed[0] if missed else 0)
    return None


def _focus_box(key: str, trace: Trace, selection: Selection | None) -> list[float] | None:
    """The image area the screenshot of stage ``key`` zooms to (None: the whole image)."""
    if selection is None:
        return None
    if key == "roi-levels":
        return trace.rpn.proposals[selection.index].tolist()
    if key in ("proposals-nms", "class-nms"):
        stage = trace.rpn if key == "proposals-nms" else trace.postprocess
        both = stage.boxes[[selection.index, int(stage.suppressed_by[selection.index])]]
        return [*both[:, :2].min(0).values.tolist(), *both[:, 2:].max(0).values.tolist()]
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--project", type=Path, required=True)
    parser.add_argument("--split", default="val")
    parser.add_argument("--image-index", type=int, default=0)
    parser.add_argument("--level", type=int, default=1, help="the anchors stage's level")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument("--size", default="1400x860")
    args = parser.parse_args(argv)

    app = QApplication.instance() or QApplication(sys.argv[:1])
    with Project.open(args.project) as project:
        image = project.images(split=args.split)[args.image_index]
        rows = project.boxes(image.id)
    view = InspectorView()
    width, height = (int(v) for v in args.size.split("x"))
    view.resize(width, height)
    view.show()
    view.set_image(image.file, [(b.x0, b.y0, b.x1, b.y1) for b in rows],
                   [b.category_id for b in rows])
    view.set_checkpoints([args.checkpoint])
    _wait(app, lambda: view.trace is not None and not view.busy)
    trace = view.trace
    args.out.mkdir(parents=True, exist_ok=True)
    for stage in STAGES:
        if not stage.available(trace):
            continue
        view.set_stage(stage.key)
        if stage.key == "anchors":
            view.set_option("level", args.level)
        if stage.key in ("proposals-nms", "class-nms"):
            # The shot explains a suppressed box: ticked, as a user does to click one.
            view.set_option("show_suppressed", True)
        selection = selection_for(stage.key, trace)
        view.set_selection(selection)
        view.canvas.fit()
        focus = _focus_box(stage.key, trace, selection)
        if focus is not None:
            # Close enough to see the 7x7 bins, or a suppressed box beside its suppressor.
            x0, y0, x1, y1 = focus
            pad_x, pad_y = (x1 - x0) * 0.6, (y1 - y0) * 0.6
            view.canvas.show_rect(x0 - pad_x, y0 - pad_y, x1 + pad_x, y1 + pad_y)
        app.processEvents()
        path = args.out / f"inspector-{stage.key}.png"
        view.grab().save(str(path), "PNG")
        print(path)
    view.shutdown()
    view.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
