"""Detector checkpoints as plain data, and ``frcnn inspect`` writing a picture per stage."""

from __future__ import annotations

import json

import pytest
import torch

from engine import build_model
from engine.cli import main
from engine.detector import load_trace
from engine.detector.checkpoint import ClassInfo, load_detector, read_checkpoint, save_detector

from ..conftest import TEST_DATA

CLASSES = [ClassInfo(1, "circle", 3, "#ff0000"), ClassInfo(2, "square", 5),
           ClassInfo(3, "triangle", 9)]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model("resnet18", num_classes=4, min_size=224, max_size=320)
    with torch.no_grad():
        model.roi_heads.box_predictor.cls_score.weight.mul_(30)
    path = tmp_path_factory.mktemp("ckpt") / "model.pt"
    save_detector(path, model, CLASSES, extra={"epoch": 3})
    return path, model.eval()


def test_checkpoint_round_trip(checkpoint, real_images):
    path, model = checkpoint
    loaded = load_detector(path)
    assert loaded.classes == CLASSES
    assert loaded.class_names() == {0: "background", 1: "circle", 2: "square", 3: "triangle"}
    assert loaded.extra == {"epoch": 3}
    assert loaded.model.config == model.config
    with torch.inference_mode():
        ours, theirs = loaded.model(real_images[:1])[0], model(real_images[:1])[0]
    assert len(ours["boxes"]) > 0
    for key in ours:
        assert torch.equal(ours[key], theirs[key])
    assert not path.with_name(path.name + ".partial").exists()


def test_checkpoint_classes_must_cover_every_class(checkpoint, tmp_path):
    _, model = checkpoint
    with pytest.raises(ValueError, match="numbered"):
        save_detector(tmp_path / "x.pt", model, CLASSES[:2])


class _Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_checkpoint_with_code_or_foreign_content_is_refused(tmp_path):
    evil = tmp_path / "evil.pt"
    torch.save({"format": "frcnn-workbench detector", "object": _Payload()}, evil)
    with pytest.raises(ValueError, match="not a safe checkpoint"):
        read_checkpoint(evil)
    bare = tmp_path / "bare.pt"
    torch.save({"weight": torch.zeros(2)}, bare)
    with pytest.raises(ValueError, match="not a Faster R-CNN Workbench checkpoint"):
        read_checkpoint(bare)
    with pytest.raises(FileNotFoundError):
        read_checkpoint(tmp_path / "missing.pt")


def test_frcnn_inspect_writes_every_stage(checkpoint, tmp_path, capsys):
    path, _ = checkpoint
    out = tmp_path / "report"
    code = main([
        "inspect", str(TEST_DATA / "raccoon-1.jpg"), "--checkpoint", str(path), "--out", str(out),
        "--box", "60,10,250,200,1", "--box", "10,150,40,190,2", "--rpn-nms-thresh", "0.6",
        "--box-score-thresh", "0.2", "--save-trace",
    ])
    assert code == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "01_anchors_P2.png", "02_anchors_P3.png", "03_anchors_P4.png", "04_anchors_P5.png",
        "05_anchors_P6.png", "06_anchor_matching.png", "07_proposals_before_nms.png",
        "08_proposals_after_nms.png", "09_roi_levels.png", "10_postprocess_above_score.png",
        "11_postprocess_large_enough.png", "12_postprocess_nms.png",
        "13_postprocess_detections.png", "summary.json", "trace.pt",
    ]
    summary = json.loads((out / "summary.json").read_text())
    trace = load_trace(out / "trace.pt")
    assert summary["settings"]["rpn_nms_thresh"] == 0.6
    assert summary["settings"]["box_score_thresh"] == 0.2
    assert summary["anchors"] == trace.num_anchors == sum(lv["anchors"] for lv in summary["levels"])
    assert summary["detections"] == len(summary["detection_list"]) == len(trace.detections.boxes)
    assert {d["name"] for d in summary["detection_list"]} <= {"circle", "square", "triangle"}
    assert "anchor_matching" in summary
    assert "proposals" in capsys.readouterr().out


def test_frcnn_inspect_without_cached_coco_weights_says_where_to_put_them(tmp_path, capsys):
    code = main(["inspect", str(TEST_DATA / "raccoon-1.jpg"), "--weights", "coco",
                 "--out", str(tmp_path / "out")])
    assert code == 2
    error = capsys.readouterr().err
    assert "fasterrcnn_resnet50_fpn" in error and "checkpoints" in error


def test_frcnn_inspect_bad_box_is_a_usage_error(checkpoint, tmp_path, capsys):
    path, _ = checkpoint
    with pytest.raises(SystemExit) as exit_info:
        main(["inspect", str(TEST_DATA / "raccoon-1.jpg"), "--checkpoint", str(path),
              "--out", str(tmp_path), "--box", "1,2,3"])
    assert exit_info.value.code == 2
    assert "x0,y0,x1,y1" in capsys.readouterr().err
