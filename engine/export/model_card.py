"""The model card: a JSON file beside every export with what a deployer needs to know.

It says what the file is and how to load it, what goes in (tensor layout, value range, who
resizes and normalizes, with the numbers) and what comes out (boxes, labels, scores and what
they mean), the classes (ids and names; 0 is the background), the inference settings, what
the model was trained on (images and boxes per split and class, when the checkpoint records
them), its evaluation (pycocotools AP on the validation split), where it came from, and the
check that the export gives the checkpoint's detections.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
import torchvision

from ..detector.checkpoint import LoadedDetector

CARD_FORMAT = "frcnn-workbench model card"
CARD_VERSION = 1
CARD_SUFFIX = ".card.json"

OUTPUT = {
    "boxes": "float32 (D, 4): x0, y0, x1, y1 in pixels of the input image (pixel edges: a "
             "box over a whole W x H image is 0, 0, W, H)",
    "labels": "int64 (D,): class ids as listed under classes (0, the background, never "
              "occurs)",
    "scores": "float32 (D,): the class probability, by decreasing score; only those above "
              "postprocessing.box_score_thresh, at most postprocessing.box_detections_per_img",
}


def card_path_for(model_path: str | os.PathLike) -> Path:
    """``out/model.onnx`` -> ``out/model.card.json``."""
    path = Path(model_path)
    return path.with_name(path.stem + CARD_SUFFIX)


def build_card(
    loaded: LoadedDetector,
    *,
    checkpoint: str | os.PathLike,
    export_format: str,
    file_name: str,
    interface: dict[str, Any],
    loading: dict[str, Any],
) -> dict[str, Any]:
    """The card of one export. ``interface`` holds the format's ``input`` and ``output``
    descriptions; ``loading`` how to load the file (code, runtime notes)."""
    model = loaded.model
    config = model.config
    transform, rpn, heads = model.transform, model.rpn.test_settings, model.roi_heads
    return {
        "format": CARD_FORMAT,
        "version": CARD_VERSION,
        "model": {
            "architecture": "Faster R-CNN with FPN",
            "backbone": config.backbone,
            "num_classes": int(model.num_classes),
            "export_format": export_format,
            "file": file_name,
        },
        "loading": loading,
        "input": interface["input"],
        "output": interface["output"],
        "classes": [{"class_id": 0, "name": "background"}]
        + [{k: v for k, v in vars(c).items() if v is not None} for c in loaded.classes],
        "preprocessing": {
            "resize": {
                "min_size": int(transform.min_size[-1]),
                "max_size": int(transform.max_size),
                "rule": "scale so the short side is min_size, unless the long side would then "
                        "exceed max_size (then the long side is max_size); bilinear, "
                        "align_corners=False; output size floor(side * scale)",
            },
            "normalization": {
                "mean": [float(v) for v in transform.image_mean],
                "std": [float(v) for v in transform.image_std],
                "rule": "(pixel - mean) / std per RGB channel, pixels in [0, 1], before the "
                        "resize",
            },
            "padding": "bottom and right with zeros to a multiple of "
                       f"{transform.size_divisible} after normalization",
        },
        "postprocessing": {
            "rpn_pre_nms_top_n": int(rpn.pre_nms_top_n),
            "rpn_post_nms_top_n": int(rpn.post_nms_top_n),
            "rpn_nms_thresh": float(rpn.nms_thresh),
            "rpn_score_thresh": float(rpn.score_thresh),
            "box_score_thresh": float(heads.detection_settings.score_thresh),
            "box_nms_thresh": float(heads.detection_settings.nms_thresh),
            "box_detections_per_img": int(heads.detection_settings.detections_per_img),
        },
        "training": training_summary(loaded.extra),
        "metrics": metrics_summary(loaded.extra),
        "source": {
            "checkpoint": str(Path(checkpoint).resolve()),
            "checkpoint_sha256": _sha256(checkpoint),
            "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds"),
            "program": f"frcnn-workbench {_version()}",
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
        },
        "detector_config": config.to_dict(),
    }


def training_summary(extra: dict[str, Any]) -> dict[str, Any] | None:
    """What training recorded in the checkpoint: data counts per split (images, boxes, boxes
    per class), the position reached and the recipe. None for a checkpoint not written by
    training."""
    training = extra.get("training")
    data = extra.get("data")
    if training is None and data is None:
        return None
    summary: dict[str, Any] = {"data": data}
    if data is None:
        summary["data_note"] = ("this checkpoint was written before training recorded its "
                                "data counts")
    if training is not None:
        position = training.get("position", {})
        summary["epochs_done"] = position.get("epoch")
        summary["steps_done"] = position.get("step")
        summary["settings"] = training.get("settings")
    return summary


def metrics_summary(extra: dict[str, Any]) -> dict[str, Any] | None:
    """pycocotools' numbers on the validation split: ``at_checkpoint`` those of the
    evaluation made when this checkpoint was written (for best.pt, the best epoch), and the
    run's best AP so far."""
    training = extra.get("training") or {}
    metrics = extra.get("metrics")
    best = training.get("best_ap")
    if metrics is None and best is None:
        return None
    return {
        "evaluated_on": "the validation split, pycocotools COCOeval (AP at IoU 0.5:0.95, AP50, "
                        "...)",
        "best_AP": best if best is not None and best >= 0 else None,
        "at_checkpoint": metrics,
    }


def write_card(path: str | os.PathLike, card: dict[str, Any]) -> None:
    Path(path).write_text(json.dumps(card, indent=1, ensure_ascii=False) + "\n",
                          encoding="utf-8")


def _sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _version() -> str:
    try:
        return metadata.version("frcnn-workbench")
    except metadata.PackageNotFoundError:
        return "unknown"
