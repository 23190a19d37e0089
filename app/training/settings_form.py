"""The training settings form: a preset, backbone, initial weights, device, epochs or a time
budget, batch size, image size, learning rate and mixed precision, with the recipe's defaults
shown.

The preset list holds the program's presets and the user's own (``*.json`` in
``presets_folder``, see :mod:`engine.training.presets`), and "Load from file…"; choosing one
shows its settings in the fields (:meth:`TrainingSettingsForm.apply_preset`). Setting the
epochs turns the time budget off (the run then lasts its epochs), setting a budget makes the
epochs not count.

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
    QCheckBox,
    QComboBox,
    QFormLayout,
    QLineEdit,
    QSpinBox,
    QWidget,
)

from app import file_dialogs
from engine.detector.backbones import BACKBONES
from engine.detector.config import DetectorConfig
from engine.detector.precision import cpu_supports_bf16
from engine.detector.weights import COCO_WEIGHTS
from engine.training.job import DEFAULT_BACKBONE, TrainingJob
from engine.training.presets import Preset, list_presets, load_preset
from engine.training.settings import REFERENCE_BATCH, REFERENCE_LR, TrainSettings

CHECKPOINT_CHOICE = "checkpoint"
LOAD_PRESET = "load…"
SHOWN_TRAINING = ("epochs", "batch_size", "lr", "time_budget_s", "amp")
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
                 = None, presets_folder: Path | None = None) -> None:
        super().__init__(parent)
        self.overrides: dict[str, dict[str, Any]] = {"detector": {}, "training": {}}
        self._checkpoint: Path | None = None
        self.presets_folder = presets_folder
        defaults, detector_defaults = TrainSettings(), DetectorConfig()

        self.preset = QComboBox()
        self.preset.setToolTip("Settings to start from: the program's presets (resources/"
                               "configs), your own, or a settings file. Choosing one fills in "
                               "the fields below.")
        self.presets: list[Preset] = []
        self.reload_presets()

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
        self.time_budget = QSpinBox(minimum=0, maximum=24 * 60, value=0, suffix=" min")
        self.time_budget.setSpecialValueText("off: train the epochs")
        self.time_budget.setToolTip("Train this long, evaluation included: the learning-rate "
                                    "schedule is laid out over the time, and the run ends "
                                    "with an evaluation and best.pt. Setting the epochs turns "
                                    "it off.")
        self.amp = QCheckBox("bfloat16 on this CPU" if cpu_supports_bf16() else
                             "float16 on a GPU; float32 on this CPU")
        self.amp.setChecked(True)
        self.amp.setToolTip("Mixed precision (autocast): faster, the same accuracy within "
                            "noise. Off: float32 everywhere.")
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
        layout.addRow("Preset", self.preset)
        layout.addRow("Backbone", self.backbone)
        layout.addRow("Initial weights", self.weights)
        layout.addRow("Device", self.device)
        layout.addRow("Epochs", self.epochs)
        layout.addRow("Time budget", self.time_budget)
        layout.addRow("Batch size", self.batch_size)
        layout.addRow("Image size", self.min_size)
        layout.addRow("Learning rate", self.lr)
        layout.addRow("Mixed precision", self.amp)

        self.backbone.currentTextChanged.connect(self._backbone_changed)
        self.weights.activated.connect(self._weights_activated)
        self.batch_size.valueChanged.connect(self._update_lr_placeholder)
        self.preset.activated.connect(self._preset_activated)
        self.epochs.valueChanged.connect(lambda _value: self.time_budget.setValue(0))
        for spin in (self.epochs, self.batch_size, self.min_size, self.time_budget):
            spin.valueChanged.connect(self.changed)
        self.amp.toggled.connect(self.changed)
        for combo in (self.backbone, self.weights, self.device):
            combo.currentIndexChanged.connect(self.changed)
        self.lr.textChanged.connect(self.changed)
        self._backbone_changed(self.backbone.currentText())
        self._update_lr_placeholder()

    # ------------------------------------------------------------------ presets

    def reload_presets(self) -> None:
        """List the program's presets and the user's own again."""
        current = self.preset.currentText()
        self.presets = list_presets(self.presets_folder)
        self.preset.blockSignals(True)
        self.preset.clear()
        self.preset.addItem("(as set below)", None)
        for preset in self.presets:
            self.preset.addItem(preset.name, preset.name)
            self.preset.setItemData(self.preset.count() - 1, preset.description,
                                    Qt.ItemDataRole.ToolTipRole)
        self.preset.addItem("Load from file…", LOAD_PRESET)
        index = self.preset.findText(current)
        self.preset.setCurrentIndex(max(index, 0))
        self.preset.blockSignals(False)

    def _preset_activated(self, index: int) -> None:
        name = self.preset.itemData(index)
        if name is None:
            return
        if name == LOAD_PRESET:
            path, _ = file_dialogs.get_open_file_name(self, "Training settings from a file", "",
                                                      "Settings (*.json);;All files (*)")
            if not path:
                self.preset.setCurrentIndex(0)
                return
            try:
                preset = load_preset(path)
            except ValueError as error:
                self.preset.setCurrentIndex(0)
                self.preset.setToolTip(f"Not loaded: {error}")
                return
            self.presets.append(preset)
            self.preset.insertItem(self.preset.count() - 1, preset.name, preset.name)
            self.preset.setItemData(self.preset.count() - 2, str(preset.path),
                                    Qt.ItemDataRole.ToolTipRole)
        else:
            preset = next(p for p in self.presets if p.name == name)
        self.apply_preset(preset)

    def apply_preset(self, preset: Preset) -> None:
        """Show ``preset``'s settings in the fields (those it leaves out at their defaults);
        the ones the form has no field for become :attr:`overrides`."""
        index = self.preset.findText(preset.name)
        if index < 0:
            self.preset.insertItem(self.preset.count() - 1, preset.name, preset.name)
            self.presets.append(preset)
            index = self.preset.count() - 2
        device = self.device.currentData()
        weights = self.weights.currentIndex()
        self.apply_job(TrainingJob(project="", out="", weights="imagenet", device=device,
                                   detector=dict(preset.detector),
                                   training=dict(preset.training)))
        self.weights.setCurrentIndex(weights)
        self.preset.setCurrentIndex(index)

    def selected_preset(self) -> Preset | None:
        name = self.preset.currentData()
        return next((p for p in self.presets if p.name == name), None)

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
        if self.time_budget.value():
            settings["time_budget_s"] = 60.0 * self.time_budget.value()
        if not self.amp.isChecked():
            settings["amp"] = False
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
        self.time_budget.setValue(round((training.time_budget_s or 0) / 60))
        self.amp.setChecked(training.amp is not False)
        self.batch_size.setValue(training.batch_size)
        min_size = detector.get("min_size", DetectorConfig().min_size)
        self.min_size.setValue(int(min_size if isinstance(min_size, int) else min_size[0]))
        self.lr.setText("" if training.lr is None else f"{training.lr:g}")
        shown = {"backbone", "min_size", "max_size"}
        self.overrides = {
            "detector": {k: v for k, v in job.detector.items() if k not in shown},
            "training": {k: v for k, v in job.training.items() if k not in SHOWN_TRAINING}}
