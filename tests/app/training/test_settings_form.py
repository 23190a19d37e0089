"""The training settings form: recipe defaults shown, a user's entries turned into a job."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from app.training.settings_form import TrainingSettingsForm, available_devices
from engine.training.job import TrainingJob


@pytest.fixture
def form(qtbot):
    form = TrainingSettingsForm(devices=[("cuda:0", "GPU 0: Test"), ("cpu", "CPU")])
    qtbot.addWidget(form)
    form.show()
    return form


def _type(qtbot, widget, text):
    widget.setFocus()
    widget.selectAll()
    qtbot.keyClicks(widget, text)


def test_the_recipe_defaults_are_shown(form):
    assert form.backbone.currentText() == "efficientnet_lite0"
    assert form.weights.currentData() == "imagenet"
    assert form.device.currentData() == "cuda:0"
    assert (form.epochs.value(), form.batch_size.value(), form.min_size.value()) == (12, 2, 800)
    assert form.lr.text() == ""
    assert form.lr.placeholderText() == "0.0025 (recipe: 0.02 × 2/16)"


def test_the_learning_rate_placeholder_follows_the_batch_size(form, qtbot):
    _type(qtbot, form.batch_size, "8")
    assert form.batch_size.value() == 8
    assert form.lr.placeholderText() == "0.01 (recipe: 0.02 × 8/16)"
    assert "lr" not in form.training_settings()  # empty: the trainer scales it itself


def test_what_the_user_enters_becomes_the_job(form, qtbot):
    _type(qtbot, form.epochs, "3")
    _type(qtbot, form.batch_size, "4")
    _type(qtbot, form.min_size, "320")
    _type(qtbot, form.lr, "0.005")
    form.device.setCurrentIndex(1)
    job = form.job(Path("/p"), Path("/p/runs/r"))
    assert job.device == "cpu" and job.weights == "imagenet"
    assert job.detector == {"backbone": "efficientnet_lite0", "min_size": 320, "max_size": 533}
    assert job.training == {"epochs": 3, "batch_size": 4, "lr": 0.005}


def test_coco_weights_only_for_backbones_that_have_them(form, qtbot):
    coco = form.weights.model().item(form.weights.findData("coco"))
    assert not coco.isEnabled()
    form.backbone.setCurrentText("resnet50")
    assert coco.isEnabled()
    form.weights.setCurrentIndex(form.weights.findData("coco"))
    form.backbone.setCurrentText("resnet18")
    assert form.weights.currentData() == "imagenet"


def test_a_checkpoint_as_initial_weights(form, tmp_path):
    form.set_checkpoint(tmp_path / "best.pt")
    assert form.weights.currentText() == "Checkpoint: best.pt"
    assert form.weights_value() == str(tmp_path / "best.pt")


def test_a_bad_learning_rate_is_refused_with_a_reason(form, qtbot):
    form.lr.setText("0")
    with pytest.raises(ValueError, match="above 0"):
        form.job(Path("/p"), Path("/o"))


def test_a_past_runs_settings_come_back_into_the_form(form):
    job = TrainingJob(project="/p", out="/o", weights="none", device="cpu",
                      detector={"backbone": "resnet18", "min_size": 480,
                                "rpn_batch_size_per_image": 64},
                      training={"epochs": 7, "batch_size": 4, "lr": 0.01, "max_steps": 9})
    form.apply_job(job)
    again = form.job(Path("/p"), Path("/o"))
    assert again.weights == "none" and again.device == "cpu"
    assert again.detector == {"backbone": "resnet18", "min_size": 480, "max_size": 800,
                              "rpn_batch_size_per_image": 64}
    assert again.training == {"epochs": 7, "batch_size": 4, "lr": 0.01, "max_steps": 9}


def test_devices_are_the_cuda_gpus_then_the_cpu():
    names = ["A100", "T4"]
    fake = SimpleNamespace(cuda=SimpleNamespace(
        is_available=lambda: True, device_count=lambda: 2, get_device_name=names.__getitem__))
    assert available_devices(fake) == [("cuda:0", "GPU 0: A100"), ("cuda:1", "GPU 1: T4"),
                                       ("cpu", "CPU")]
    none = SimpleNamespace(cuda=SimpleNamespace(is_available=lambda: False))
    assert available_devices(none) == [("cpu", "CPU")]
