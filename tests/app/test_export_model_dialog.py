"""File > Export trained model…: the dialog exports a project checkpoint off the GUI thread
and reports where the files are and how the export compares with the checkpoint."""

from __future__ import annotations

import torch
from PySide6.QtCore import Qt

from engine import build_model
from engine.data.demo import CLASSES
from engine.detector.checkpoint import ClassInfo, save_detector


def _run_checkpoint(window, backbone="resnet18"):
    torch.manual_seed(0)
    model = build_model(backbone, num_classes=len(CLASSES) + 1, min_size=224, max_size=320)
    with torch.no_grad():
        model.roi_heads.box_predictor.cls_score.weight.mul_(3)
    run = window.project.folder / "runs" / "2026-11-25_10-00-00"
    run.mkdir(parents=True)
    save_detector(run / "best.pt", model,
                  [ClassInfo(i + 1, name, i + 1) for i, name in enumerate(CLASSES)])
    return run


def _open_dialog(qtbot, window):
    window.ask_export_model()
    dialog = window.export_model_dialog
    qtbot.waitUntil(lambda: not dialog.formats_note.text().startswith("Checking"),
                    timeout=60000)
    qtbot.waitUntil(dialog.export_button.isEnabled, timeout=10000)
    return dialog


def test_exporting_a_run_checkpoint_to_torchscript(qtbot, window):
    run = _run_checkpoint(window)
    dialog = _open_dialog(qtbot, window)
    assert dialog.checkpoint.currentData() == str(run / "best.pt")
    dialog.format.setCurrentIndex(dialog.format.findData("torchscript"))
    assert dialog.out.text() == str(run / "exports" / "2026-11-25_10-00-00-best.pt")
    dialog.export_button.click()
    qtbot.waitUntil(lambda: dialog.result_ is not None or "Not exported" in
                    dialog.log.toPlainText(), timeout=120000)
    assert dialog.result_ is not None, dialog.log.toPlainText()
    assert dialog.result_.model_path.is_file() and dialog.result_.card_path.is_file()
    assert dialog.result_.verification.ok
    assert "Check against the checkpoint" in dialog.log.toPlainText()
    dialog.close()


def test_the_format_offered_first_is_one_the_checkpoint_supports(qtbot, window):
    # The default backbone: torchvision's builders have none for it.
    _run_checkpoint(window, "efficientnet_lite0")
    dialog = _open_dialog(qtbot, window)
    assert dialog.format.currentData() == "torchscript"
    torchvision = dialog.format.findData("torchvision")
    assert not dialog.format.model().item(torchvision).isEnabled()
    assert "efficientnet_lite0" in dialog.format.itemData(torchvision,
                                                          Qt.ItemDataRole.ToolTipRole)
    assert "torchvision" in dialog.formats_note.text()
    dialog.close()


def test_the_export_shows_its_steps_and_can_be_cancelled(qtbot, window):
    run = _run_checkpoint(window)
    dialog = _open_dialog(qtbot, window)
    dialog.format.setCurrentIndex(dialog.format.findData("onnx"))
    steps = []
    real = dialog._stepped
    dialog._stepped = lambda fraction, text: (steps.append(text), real(fraction, text))
    # A first export runs to its end through every step, with the progress bar shown.
    dialog.export_button.click()
    assert dialog.progress.isVisible() and dialog.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: dialog.result_ is not None or "Not exported" in
                    dialog.log.toPlainText(), timeout=300000)
    assert dialog.result_ is not None, dialog.log.toPlainText()
    assert not dialog.progress.isVisible()
    assert any(text.startswith("2/4 exporting as onnx") for text in steps), steps
    # Then one cancelled at once: nothing written, the dialog ready again.
    out = run / "exports" / "again.onnx"
    dialog.out.setText(str(out))
    dialog.export_button.click()
    qtbot.mouseClick(dialog.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "Cancelled: nothing was written." in dialog.log.toPlainText(),
                    timeout=300000)
    assert not out.exists() and not list(out.parent.glob("*.partial"))
    assert dialog.export_button.isEnabled() and not dialog.cancel_button.isEnabled()
    dialog.close()
