"""Training presets: named settings files, and the one chosen for a device and a data set.

A preset is a JSON file ``{"description": "...", "detector": {DetectorConfig fields},
"training": {TrainSettings fields}}`` (the format ``frcnn train --config`` reads). The
program's own are in ``resources/configs/``; a user's own are any such file (the app keeps
them in its data folder's ``presets/``).

:func:`choose_preset` picks the settings to start from:

- on CUDA, the reference recipe (torchvision's: 800 px short side, 12 epochs, batch 2);
- on a CPU, ``cpu.json`` (EfficientNet-Lite0, whose ImageNet weights ship with the program;
  a short time budget, 4 images per step, smaller RPN and box-head samples) fitted to the data
  (:func:`fit_to_data`): the short side the images are resized to, from the images' size and
  how small their objects are, smaller anchors for small objects, and a time budget from the
  number of images and their size.
"""

from __future__ import annotations

import json
import math
import os
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..data.project import TrainingRecord
from ..detector.config import DetectorConfig
from .settings import TrainSettings

PRESETS_FOLDER = Path(__file__).resolve().parents[2] / "resources" / "configs"
CPU_PRESET = "cpu"
REFERENCE_PRESET = "reference-gpu"
# The short side a CPU preset resizes to: at least the smaller of this and the images' own,
# at most this (time per step grows with the pixels).
CPU_MIN_SIZE, CPU_MAX_SIZE = 320, 512
SMALL_OBJECT_PX = 24  # the size the smaller objects (20th percentile) should keep
SIZE_STEP = 32  # sizes are multiples of the backbone's largest stride that matters here
MAX_SIZE_RATIO = 1333 / 800  # torchvision's longest side to shortest side
SMALL_ANCHORS = ((16,), (32,), (64,), (128,), (256,))  # for objects below 32 px at that size
# A CPU budget: seconds per training image (at 320 px; by the pixels above), between these
# bounds (rounded to the minute).
BUDGET_S_PER_IMAGE = 2.0
BUDGET_BOUNDS_S = (240.0, 900.0)


@dataclass(frozen=True)
class Preset:
    """Settings with a name. ``path``: the file it was read from (None when made here);
    ``reasons``: why it was chosen or fitted, in words."""

    name: str
    description: str
    detector: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    reasons: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"description": self.description, "detector": dict(self.detector),
                "training": dict(self.training)}

    def summary(self) -> str:
        """One line: the name and what it sets, e.g. "cpu: efficientnet_lite0, 240 px, ..."."""
        parts = [str(self.detector.get("backbone", "efficientnet_lite0"))]
        if "min_size" in self.detector:
            parts.append(f"{self.detector['min_size']} px")
        training = self.training
        if training.get("time_budget_s") is not None:
            parts.append(f"time budget {_minutes(training['time_budget_s'])}")
        else:
            parts.append(f"{training.get('epochs', TrainSettings.epochs)} epochs")
        parts.append(f"batch {training.get('batch_size', TrainSettings.batch_size)}")
        return f"{self.name}: " + ", ".join(parts)


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:g} min"


def load_preset(path: str | os.PathLike) -> Preset:
    """The preset in ``path``. ValueError naming the file and what is wrong with it."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ValueError(f"{path}: {error.strerror or error}") from error
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not JSON ({error})") from error
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a settings file (a JSON object with \"detector\" and "
                         f"\"training\")")
    detector = data.get("detector") or {}
    training = data.get("training") or {}
    try:
        DetectorConfig.from_dict(detector)
        TrainSettings.from_dict(training)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path}: {error}") from error
    return Preset(path.stem, str(data.get("description", "")), dict(detector), dict(training),
                  path)


def list_presets(user_folder: str | os.PathLike | None = None) -> list[Preset]:
    """The program's presets, then the user's (``*.json`` in ``user_folder``), each by name;
    a user file that cannot be read is left out."""
    presets = [load_preset(path) for path in sorted(PRESETS_FOLDER.glob("*.json"))]
    if user_folder is not None and Path(user_folder).is_dir():
        for path in sorted(Path(user_folder).glob("*.json")):
            try:
                presets.append(load_preset(path))
            except ValueError:
                continue
    return presets


def find_preset(name: str, user_folder: str | os.PathLike | None = None) -> Preset:
    """A preset by name (``cpu``) or by file. ValueError listing the names there are."""
    if name.endswith(".json") or os.sep in name or "/" in name:
        return load_preset(name)
    presets = list_presets(user_folder)
    for preset in presets:
        if preset.name == name:
            return preset
    raise ValueError(f"no preset named {name!r}; there are "
                     f"{', '.join(p.name for p in presets)} (or give a settings file)")


@dataclass(frozen=True)
class DataProfile:
    """What a preset is fitted to: ``images``, the median short side of the images (px) and
    the 20th percentile of the boxes' short sides (px, None without boxes), and boxes per
    image on average."""

    images: int
    image_short_side: float | None
    small_object: float | None
    boxes_per_image: float

    @classmethod
    def of(cls, records: Sequence[TrainingRecord]) -> DataProfile:
        sides = [min(r.width, r.height) for r in records if r.width and r.height]
        objects = sorted(min(x1 - x0, y1 - y0) for r in records for x0, y0, x1, y1 in r.boxes)
        small = objects[int(0.2 * (len(objects) - 1))] if objects else None
        boxes = sum(len(r.boxes) for r in records)
        return cls(len(records), statistics.median(sides) if sides else None, small,
                   boxes / len(records) if records else 0.0)


def fit_to_data(preset: Preset, profile: DataProfile) -> Preset:
    """``preset`` (a CPU preset) with its image size, anchors and time budget fitted to the
    data (see the module docstring)."""
    detector, training, reasons = dict(preset.detector), dict(preset.training), []
    side = profile.image_short_side
    if side:
        size = min(CPU_MIN_SIZE, int(side))
        if profile.small_object:
            wanted = SMALL_OBJECT_PX * side / profile.small_object
            size = max(size, min(CPU_MAX_SIZE, _round_up(wanted)))
        detector["min_size"] = size
        detector["max_size"] = max(size, round(size * MAX_SIZE_RATIO))
        reasons.append(f"{size} px short side: the images' is {side:g} px"
                       + (f", the smaller objects {profile.small_object:g} px"
                          if profile.small_object else ""))
        if profile.small_object and profile.small_object * size / side < 32:
            detector["anchor_sizes"] = [list(level) for level in SMALL_ANCHORS]
            reasons.append("anchors from 16 px: the smaller objects are below 32 px at that "
                           "size")
    if profile.images and "time_budget_s" in training:
        low, high = BUDGET_BOUNDS_S
        # A step's time grows with the pixels: images larger than 320 px get more time each.
        size = detector.get("min_size", CPU_MIN_SIZE)
        per_image = BUDGET_S_PER_IMAGE * max(1.0, (size / CPU_MIN_SIZE) ** 2)
        budget = min(high, max(low, per_image * profile.images))
        training["time_budget_s"] = 60.0 * round(budget / 60)
        reasons.append(f"time budget {_minutes(training['time_budget_s'])} for "
                       f"{profile.images} training images")
    return replace(preset, detector=detector, training=training,
                   reasons=preset.reasons + tuple(reasons))


def _round_up(value: float) -> int:
    return int(math.ceil(value / SIZE_STEP) * SIZE_STEP)


def choose_preset(device_type: str, records: Sequence[TrainingRecord],
                  user_folder: str | os.PathLike | None = None) -> Preset:
    """The preset to start from on a device of ``device_type`` ("cuda" or "cpu") for the
    training ``records``; its ``reasons`` say why."""
    if device_type == "cuda":
        preset = find_preset(REFERENCE_PRESET, user_folder)
        return replace(preset, reasons=("the reference recipe on a GPU",))
    preset = replace(find_preset(CPU_PRESET, user_folder), reasons=("a short schedule on the CPU",))
    return fit_to_data(preset, DataProfile.of(records))
