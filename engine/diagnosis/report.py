"""A diagnosis as files: ``diagnosis.json``, the suggested training preset, and PNG charts.

``diagnosis.json`` holds (numbers as plain JSON): ``checkpoint``, ``project``, ``split``;
``AP`` / ``AP50`` (pycocotools); ``funnel`` (counts per fate, per class, per size bucket and per
inspector stage, see :mod:`engine.diagnosis.funnel`); ``tide`` (AP at IoU 0.5 and dAP per
error type, in AP points 0-100, and counts); ``anchor_fit`` (the split's boxes: per level and
size bucket the share at 0.7 and 0.5, histograms of the best IoU, the boxes no anchor reaches);
``anchor_suggestion`` (current and suggested settings and shares on the project's boxes);
``preset`` (the suggested training preset, also written as ``suggested-preset.json``);
``what_if`` (each re-evaluation's settings, AP, AP50, funnel and TIDE); ``boxes`` (every box:
image, index, class, size, fate, reason); ``tide_errors`` (every error); ``seconds``; ``notes``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .diagnose import Diagnosis

FORMAT_VERSION = 1


def diagnosis_to_dict(diagnosis: Diagnosis) -> dict:
    base = diagnosis.base
    names = {c.class_id: c.name for c in diagnosis.classes}
    return {
        "format_version": FORMAT_VERSION,
        "checkpoint": diagnosis.checkpoint, "project": diagnosis.project,
        "split": diagnosis.split, "images": len(base.images),
        "settings": base.settings,
        "AP": round(base.evaluation.ap, 6), "AP50": round(base.evaluation.ap50, 6),
        "funnel": base.funnel.to_dict(),
        "tide": base.tide.to_dict(),
        "anchor_fit": diagnosis.fit.to_dict(),
        "anchor_suggestion": diagnosis.suggestion.to_dict(),
        "anchor_advice": diagnosis.advice.to_dict(),
        "preset": diagnosis.preset,
        "what_if": [result.to_dict() for result in diagnosis.what_ifs],
        "boxes": diagnosis.boxes(),
        "tide_errors": [{"kind": e.kind, "image_id": e.image_id, "detection": e.detection,
                         "box_index": e.ground_truth, "class": names.get(e.label, str(e.label)),
                         "score": round(e.score, 4), "iou": round(e.iou, 4)}
                        for e in base.tide.errors],
        "seconds": {k: round(v, 3) for k, v in diagnosis.seconds.items()},
        "notes": diagnosis.notes,
    }


def write_diagnosis(diagnosis: Diagnosis, out: str | os.PathLike, charts: bool = True
                    ) -> list[Path]:
    """Write ``diagnosis.json``, ``suggested-preset.json`` and (``charts``) the PNG charts
    into the folder ``out`` (made if missing). Returns the paths written."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    path = folder / "diagnosis.json"
    path.write_text(json.dumps(diagnosis_to_dict(diagnosis), indent=1), encoding="utf-8")
    written.append(path)
    path = folder / "suggested-preset.json"
    path.write_text(json.dumps(diagnosis.preset, indent=2), encoding="utf-8")
    written.append(path)
    if charts:
        from .charts import write_charts

        written.extend(write_charts(diagnosis, folder))
    return written
