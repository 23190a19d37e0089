"""Bad input gives a clear error naming the file and the reason, and leaves nothing behind."""

from __future__ import annotations

import re

import pytest
import torch

from engine.cli import main
from engine.export import ExportError, export_model


def test_a_file_that_is_not_our_checkpoint(tmp_path):
    bare = tmp_path / "weights.pth"
    torch.save({"conv.weight": torch.zeros(1)}, bare)
    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint")
    for path in (bare, text):
        with pytest.raises(ExportError, match=re.escape(str(path))):
            export_model(path, "torchscript", tmp_path / "out" / "model.ts")
    with pytest.raises(ExportError, match="does not exist"):
        export_model(tmp_path / "missing.pt", "onnx", tmp_path / "out" / "model.onnx")
    assert not (tmp_path / "out").exists()


def test_unknown_format_and_a_folder_as_out(trained_checkpoint, tmp_path):
    checkpoint, _ = trained_checkpoint
    with pytest.raises(ExportError, match="unknown export format 'tflite'; choose one of "
                                          "torchvision, torchscript, onnx"):
        export_model(checkpoint, "tflite", tmp_path / "model.tflite")
    with pytest.raises(ExportError, match="is a folder"):
        export_model(checkpoint, "onnx", tmp_path)


def test_failed_export_keeps_the_previous_file(trained_checkpoint, tmp_path):
    checkpoint, _ = trained_checkpoint
    out = tmp_path / "model.pt"
    out.write_bytes(b"the export from last week")
    with pytest.raises(ExportError):
        export_model(checkpoint, "torchvision", out)  # Lite0 has no torchvision form
    assert out.read_bytes() == b"the export from last week"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]


def test_unreadable_verification_image(trained_checkpoint, tmp_path):
    checkpoint, _ = trained_checkpoint
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(ExportError, match=r"broken\.jpg"):
        export_model(checkpoint, "torchscript", tmp_path / "model.ts", images=[broken])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.jpg"]


def test_cli_prints_the_reason(tmp_path, capsys):
    bare = tmp_path / "weights.pth"
    torch.save({"conv.weight": torch.zeros(1)}, bare)
    code = main(["export-model", "--checkpoint", str(bare), "--format", "onnx",
                 "--out", str(tmp_path / "model.onnx")])
    assert code == 2
    error = capsys.readouterr().err
    assert "frcnn: error:" in error and "is not a Faster R-CNN Workbench checkpoint" in error
    assert str(bare) in error
