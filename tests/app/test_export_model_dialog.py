"""File > Export trained model…: the dialog exports a project checkpoint off the GUI thread
and reports where the files are and how the export compares with the checkpoint."""

from __future__ import annotations

import torch

from engine import build_model
from engine.data.demo import CLASSES
from engine.detector.checkpoint import ClassInfo, save_detector


def test_exporting_a_run_checkpoint_to_torchscript(qtbot, window):
    torch.manual_seed(0)
    model = build_model("resnet18", num_classes=len(CLASSES) + 1, min_size=224, max_size=320)
    with torch.no_grad():
        model.roi_heads.box_predictor.cls_score.weight.mul_(3)
    run = window.project.folder / "runs" / "2026-11-25_10-00-00"
    run.mkdir(parents=True)
    save_detector(run / "best.pt", model,
                  [ClassInfo(i + 1, name, i + 1) for i, name in enumerate(CLASSES)])
    window.ask_export_model()
    dialog = window.export_model_dialog
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
