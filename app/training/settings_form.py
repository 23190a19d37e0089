"""The training settings form: backbone, initial weights, device, epochs, batch size, image
size and learning rate, with the recipe's defaults shown.

The form makes the ``detector``, ``training``, ``weights`` and ``device`` parts of a
:class:`~engine.training.job.TrainingJob`. Settings the form does not show (say the RPN's batch
size, from a config file) can be given as :attr:`TrainingSettingsForm.overrides`; the form's
own fields win over them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QDoubleValidator
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QLineEdit,
    QSpinBox,
    QWidget,
)

from app import file_dialogs
from engine.detector.backbones import BACKBONES
from engine.detector.config import DetectorConfig
from engine.detector.weights import COCO_WEIGHTS
from engine.training.job import DEFAULT_BACKBONE, TrainingJob
from engine.training.settings import REFERENCE_BATCH, REFERENCE_LR, TrainSettings

CHECKPOINT_CHOICE = "checkpoint"
WEIGHT_CHOICES = (("imagenet", "ImageNet (backbone only)"), ("coco", "COCO detector"),
                  ("none", "None (random)"), (CHECKPOINT_CHOICE, "Checkpoint…"))
# torchvision's ratio of max_size to min_size (1333 / 800): the longer side's cap follows the
# size the user picks.
_MAX_SIZE_RATIO = 1333 / 800


def available_devices(torch_module=None) -> list[tuple[str, str]]:
    """``(device, label)`` for every CUDA GPU torch sees, then the CPU."""
    if torch_module is None:
        import torch as torch_module
    devices = []
    if torch_module.cuda.is_available():
        for index in range(torch_module.cuda.device_count()):
            name = torch_module.cuda.get_device_name(index)
            devices.append((f"cuda:{index}", f"GPU {index}: {name}"))
    devices.append(("cpu", "CPU"))
    return devices


def recipe_lr_text(batch_size: int) -> str:
    """The learning rate the recipe picks for ``batch_size``, with how it is made."""
    lr = TrainSettings(batch_size=batch_size).base_lr()
    return f"{lr:g} (recipe: {REFERENCE_LR:g} × {batch_size}/{REFERENCE_BATCH})"


class TrainingSettingsForm(QWidget):
    """See the module docstring. ``changed`` fires when any field changes."""

    changed = Signal()

    def __init__(self, parent: QWidget | None = None, *, devices: list[tuple[str, str]] | None
                 = None) -> None:
        super().__init__(parent)
        self.overrides: dict[str, dict[str, Any]] = {"detector": {}, "training": {}}
        self._checkpoint: Path | None = None
        defaults, detector_defaults = TrainSettings(), DetectorConfig()

        self.backbone = QComboBox()
        self.backbone.addItems(list(BACKBONES))
        self.backbone.setCurrentText(DEFAULT_BACKBONE)
        self.backbone.setToolTip("The network under the detector; EfficientNet-Lite0's ImageNet "
                                 "weights ship with the program (no download).")
        self.weights = QComboBox()
        for value, label in WEIGHT_CHOICES:
            self.weights.addItem(label, value)
        self.weights.setToolTip("What the network starts from. COCO: torchvision's detector "
                                "(resnet50, mobilenet_v3_large). A checkpoint: one of your runs.")
        self.device = QComboBox()
        for value, label in (devices if devices is not None else available_devices()):
            self.device.addItem(label, value)
        self.epochs = QSpinBox(minimum=1, maximum=1000, value=defaults.epochs)
        self.batch_size = QSpinBox(minimum=1, maximum=256, value=defaults.batch_size)
        self.batch_size.setToolTip("Images per step. Halve it when the GPU runs out of memory.")
        self.min_size = QSpinBox(minimum=64, maximum=2048, singleStep=32,
                                 value=int(detector_defaults.min_size), suffix=" px")
        self.min_size.setToolTip("Images are resized so their shorter side is this long (and "
                                 "the longer side at most 1.67 times that). Smaller is faster.")
        self.lr = QLineEdit()
        validator = QDoubleValidator(0.0, 10.0, 8)
        validator.setNotation(QDoubleValidator.Notation.ScientificNotation)
        self.lr.setValidator(validator)
        self.lr.setClearButtonEnabled(True)
        self.lr.setToolTip("Leave empty for the recipe's rate: 0.02 per 16 images, scaled to "
                           "the batch size.")

        layout = QFormLayout(self)
        layout.addRow("Backbone", self.backbone)
        layout.addRow("Initial weights", self.weights)
        layout.addRow("Device", self.device)
        layout.addRow("Epochs", self.epochs)
        layout.addRow("Batch size", self.batch_size)
        layout.addRow("Image size", self.min_size)
        layout.addRow("Learning rate", self.lr)

        self.backbone.currentTextChanged.connect(self._backbone_changed)
        self.weights.activated.connect(self._weights_activated)
        self.batch_size.valueChanged.connect(self._update_lr_placeholder)
        for spin in (self.epochs, self.batch_size, self.min_size):
            spin.valueChanged.connect(self.changed)
        for combo in (self.backbone, self.weights, self.device):
            combo.currentIndexChanged.connect(self.changed)
        self.lr.textChanged.connect(self.changed)
        self._backbone_changed(self.backbone.currentText())
        self._update_lr_placeholder()

    # ------------------------------------------------------------------ fields

    def _backbone_changed(self, name: str) -> None:
        coco = self.weights.findData("coco")
        item = self.weights.model().item(coco)
        item.setEnabled(name in COCO_WEIGHTS)
        if self.weights.currentData() == "coco" and name not in COCO_WEIGHTS:
            self.weights.setCurrentIndex(self.weights.findData("imagenet"))

    def _update_lr_placeholder(self) -> None:
        self.lr.setPlaceholderText(recipe_lr_text(self.batch_size.value()))

    def _weights_activated(self, index: int) -> None:
        if self.weights.itemData(index) != CHECKPOINT_CHOICE:
            return
        name, _ = file_dialogs.get_open_file_name(self, "Initial weights from a checkpoint",
                                                  "", "Checkpoints (*.pt *.pth);;All files (*)")
        if name:
            self.set_checkpoint(Path(name))
        else:
            self.weights.setCurrentIndex(self.weights.findData("imagenet"))

    def set_checkpoint(self, path: Path) -> None:
        """Start from the weights in ``path`` (the "Checkpoint…" choice)."""
        self._checkpoint = Path(path)
        index = self.weights.findData(CHECKPOINT_CHOICE)
        self.weights.setItemText(index, f"Checkpoint: {self._checkpoint.name}")
        self.weights.setItemData(index, str(self._checkpoint), Qt.ItemDataRole.ToolTipRole)
        self.weights.setCurrentIndex(index)

    def set_device(self, device: str) -> None:
        index = self.device.findData(device)
        if index < 0:
            raise ValueError(f"no device {device!r} here")
        self.device.setCurrentIndex(index)

    # ------------------------------------------------------------------ reading

    def weights_value(self) -> str:
        choice = self.weights.currentData()
        if choice == CHECKPOINT_CHOICE:
            return str(self._checkpoint)
        return choice

    def lr_value(self) -> float | None:
        """The typed learning rate, None when empty (the recipe's). Raises ValueError when it
        is not a positive number."""
        text = self.lr.text().strip().replace(",", ".")
        if not text:
            return None
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"the learning rate {text!r} is not a number") from None
        if not value > 0:
            raise ValueError("the learning rate must be above 0")
        return value

    def detector_settings(self) -> dict[str, Any]:
        size = self.min_size.value()
        settings = dict(self.overrides.get("detector", {}))
        settings.setdefault("max_size", max(size, round(size * _MAX_SIZE_RATIO)))
        return {**settings, "backbone": self.backbone.currentText(), "min_size": size}

    def training_settings(self) -> dict[str, Any]:
        settings = {**self.overrides.get("training", {}), "epochs": self.epochs.value(),
                    "batch_size": self.batch_size.value()}
        lr = self.lr_value()
        if lr is not None:
            settings["lr"] = lr
        else:
            settings.pop("lr", None)
        return settings

    def job(self, project: Path, out: Path) -> TrainingJob:
        """The job these settings describe. Raises ValueError for a bad learning rate."""
        return TrainingJob(project=str(project), out=str(out), weights=self.weights_value(),
                           device=self.device.currentData(), detector=self.detector_settings(),
                           training=self.training_settings())

    def apply_job(self, job: TrainingJob) -> None:
        """Show ``job``'s settings (e.g. to train again the way a past run did)."""
        detector = {"backbone": DEFAULT_BACKBONE, **job.detector}
        training = TrainSettings.from_dict(
            {k: v for k, v in job.training.items() if k in TrainSettings.__dataclass_fields__})
        self.backbone.setCurrentText(detector["backbone"])
        if job.weights in dict(WEIGHT_CHOICES):
            self.weights.setCurrentIndex(self.weights.findData(job.weights))
        else:
            self.set_checkpoint(Path(job.weights))
        if self.device.findData(job.device) >= 0:
            self.device.setCurrentIndex(self.device.findData(job.device))
        self.epochs.setValue(training.epochs)
        self.batch_size.setValue(training.batch_size)
        min_size = detector.get("min_size", DetectorConfig().min_size)
        self.min_size.setValue(int(min_size if isinstance(min_size, int) else min_size[0]))
        self.lr.setText("" if training.lr is None else f"{training.lr:g}")
        shown = {"backbone", "min_size", "max_size"}
        self.overrides = {
            "detector": {k: v for k, v in job.detector.items() if k not in shown},
            "training": {k: v for k, v in job.training.items()
                         if k not in ("epochs", "batch_size", "lr")}}
