"""Detector checkpoints: the weights, the configuration and the class names, as data.

A checkpoint is one ``torch.save`` file holding only tensors and plain values::

    {"format": "frcnn-workbench detector", "version": 1,
     "config": DetectorConfig.to_dict(),
     "model": state dict (torchvision's key names),
     "categories": [{"class_id": 1, "name": "raccoon", "category_id": 1, "color": "#e6194b"}, ...],
     "extra": {...}}          # e.g. training progress; plain data only

``categories`` lists the detector's classes 1..K in order (0 is the background) and the project
category each one was trained from (:class:`~engine.detector.class_map.ClassInfo`;
:mod:`engine.detector.class_map` matches them to a project's categories). It
loads with ``torch.load(weights_only=True)``: a file holding code is refused, never run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..safe_load import load_torch_file
from .build import build_model, model_from_config
from .class_map import ClassInfo
from .config import DetectorConfig
from .model import FasterRCNN
from .weights import COCO_WEIGHTS

CHECKPOINT_FORMAT = "frcnn-workbench detector"
CHECKPOINT_VERSION = 1


@dataclass
class LoadedDetector:
    """A model in evaluation mode, its classes (1..K, in order) and the checkpoint's extras."""

    model: FasterRCNN
    classes: list[ClassInfo]
    extra: dict[str, Any] = field(default_factory=dict)

    def class_names(self) -> dict[int, str]:
        """Class id -> name, background included as 0."""
        return {0: "background", **{c.class_id: c.name for c in self.classes}}


def save_detector(
    path: str | os.PathLike,
    model: FasterRCNN,
    classes: list[ClassInfo],
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint; ``classes`` must describe classes 1..num_classes-1 in order. The file
    is written beside the target and renamed over it, so a crash never leaves half a file."""
    config: DetectorConfig | None = getattr(model, "config", None)
    if config is None:
        raise ValueError("the model has no configuration; build it with build_model")
    expected = list(range(1, model.num_classes))
    if [c.class_id for c in classes] != expected:
        raise ValueError(
            f"classes must be numbered {expected[:3]}... up to {model.num_classes - 1} in order"
        )
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    torch.save(
        {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "config": config.to_dict(),
            "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "categories": [vars(c).copy() for c in classes],
            "extra": dict(extra or {}),
        },
        partial,
    )
    os.replace(partial, path)
    return path


def _missing_checkpoint(path: Path) -> str:
    """Why ``path`` cannot be read, and the run's other checkpoint when it has one: a run
    writes ``best.pt`` at its first evaluation, ``last.pt`` whenever it stops or ends an
    epoch."""
    text = f"checkpoint {path} does not exist"
    last = path.with_name("last.pt")
    if path.name == "best.pt" and last.is_file():
        text += (f" (a run writes best.pt when it has evaluated the model, and this one has "
                 f"not yet); {last} holds the run's latest weights: use --checkpoint {last}")
    return text


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint's contents, checked to be ours; read by
    :func:`engine.safe_load.load_torch_file` (FileNotFoundError, or a ValueError saying the
    file is damaged, unsafe, not ours or newer)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(_missing_checkpoint(path))
    data = load_torch_file(path, what="checkpoint")
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(
            f"{path} is not a Faster R-CNN Workbench checkpoint (to start from bare weights, "
            "pass them as initial weights instead)"
        )
    if data.get("version", 0) > CHECKPOINT_VERSION:
        raise ValueError(
            f"{path} was written by a newer version of the program (checkpoint version "
            f"{data['version']}); update to read it"
        )
    return data


def load_detector(path: str | os.PathLike, device: str | torch.device = "cpu") -> LoadedDetector:
    """The detector saved by :func:`save_detector`, in evaluation mode on ``device``."""
    data = read_checkpoint(path)
    config = DetectorConfig.from_dict(data["config"])
    model = model_from_config(config)
    model.load_state_dict(data["model"], strict=True)
    classes = [ClassInfo(**entry) for entry in data["categories"]]
    return LoadedDetector(model.to(device).eval(), classes, data.get("extra", {}))


def open_detector(
    checkpoint: str | os.PathLike | None = None,
    *,
    weights: str = "coco",
    backbone: str = "resnet50",
    num_classes: int = 91,
    device: str | torch.device = "cpu",
) -> LoadedDetector:
    """A detector from one of our checkpoints, or built from ``weights`` ("coco", "imagenet",
    "none" or a bare state-dict file) on ``backbone``; what the CLI's ``--checkpoint`` /
    ``--weights`` / ``--backbone`` choose. Class names come from the checkpoint, or are COCO's
    for the COCO weights, else the class ids."""
    if checkpoint is not None:
        return load_detector(checkpoint, device)
    model = build_model(backbone, num_classes=num_classes, weights=weights)
    names = [str(i) for i in range(num_classes)]
    entry = COCO_WEIGHTS.get(backbone)
    if weights == "coco" and entry is not None:
        coco_names = entry.meta["categories"]
        if len(coco_names) == num_classes:
            names = list(coco_names)
    classes = [ClassInfo(class_id=i, name=names[i]) for i in range(1, num_classes)]
    return LoadedDetector(model.to(device).eval(), classes)
