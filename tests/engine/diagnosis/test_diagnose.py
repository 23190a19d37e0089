"""A diagnosis of a tiny checkpoint on a tiny project: the split's answers equal the
inspector's box by box, the counts add up, what-ifs reuse the outputs, and ``frcnn diagnose``
writes its files."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image

from engine import build_model
from engine.cli import main
from engine.data.demo import write_demo_project
from engine.data.project import Project
from engine.detector.checkpoint import save_detector
from engine.detector.class_map import classes_for
from engine.detector.config import DetectorConfig
from engine.detector.inspection import Inspection
from engine.diagnosis.diagnose import DiagnosisSession
from engine.diagnosis.explained import decoded_boxes
from engine.diagnosis.funnel import INSPECTOR_STAGE, box_fates
from engine.diagnosis.split import DiagnosisCancelledError
from engine.training.evaluation import evaluate_model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A 6-image demo project (3 in val) and a resnet18 checkpoint at 128 px whose class
    scores are sharpened, so that it detects something."""
    folder = tmp_path_factory.mktemp("diagnose")
    project = write_demo_project(folder / "demo", count=6, val_fraction=0.5)
    with Project.open(project) as store:
        classes = classes_for(store.categories())
    torch.manual_seed(0)
    model = build_model("resnet18", num_classes=len(classes) + 1, min_size=128, max_size=160,
                        rpn_pre_nms_top_n_test=200, rpn_post_nms_top_n_test=100)
    with torch.no_grad():
        model.roi_heads.box_predictor.cls_score.weight.mul_(30)
    checkpoint = folder / "model.pt"
    save_detector(checkpoint, model, classes)
    return project, checkpoint


@pytest.fixture(scope="module")
def session(tiny):
    project, checkpoint = tiny
    session = DiagnosisSession.open(checkpoint, project, "val")
    session.run()
    return session


def test_every_box_gets_the_inspectors_stage(session):
    diagnosis = session.diagnosis
    model = session.detector.model
    dataset = session.dataset
    assert len(diagnosis.base.images) == len(dataset) == 3
    for position, outcome in enumerate(diagnosis.base.images):
        sample = dataset[position]
        inspection = Inspection(model, sample.image, {"boxes": sample.target["boxes"],
                                                      "labels": sample.target["labels"]})
        trace = inspection.run()  # the full trace, as the inspector builds it
        inspector = box_fates(trace, decoded_boxes(inspection.outputs))
        assert [(f.fate, f.reason) for f in outcome.fates] == [
            (f.fate, f.reason) for f in inspector]
        assert [INSPECTOR_STAGE[f.fate] for f in outcome.fates] == [f.stage for f in inspector]


def test_counts_add_up_and_the_ap_is_the_evaluations(session):
    diagnosis = session.diagnosis
    boxes = sum(len(r.boxes) for r in session.dataset.records)
    assert diagnosis.base.funnel.boxes == boxes == len(diagnosis.boxes())
    for table in (diagnosis.base.funnel.by_class, diagnosis.base.funnel.by_size):
        assert sum(sum(row.values()) for row in table.values()) == boxes
    plain = evaluate_model(session.detector.model, session.dataset, session.classes)
    assert diagnosis.base.evaluation.stats == pytest.approx(plain.stats)


def test_a_what_if_reuses_the_outputs_and_reports_before_and_after(session):
    before = session.diagnosis.base
    after = session.what_if(box_score_thresh=0.9, rpn_post_nms_top_n=5)
    assert after.settings["box_score_thresh"] == 0.9 and after.settings["rpn_post_nms_top_n"] == 5
    assert after.funnel.boxes == before.funnel.boxes
    assert sum(len(o.detections.scores) for o in after.images) <= sum(
        len(o.detections.scores) for o in before.images)
    assert all(float(s) > 0.9 for o in after.images for s in o.detections.scores)
    # Back to the checkpoint's settings: the same answers as the first pass.
    again = session.what_if(box_score_thresh=before.settings["box_score_thresh"],
                            rpn_post_nms_top_n=before.settings["rpn_post_nms_top_n"])
    assert again.funnel.total == before.funnel.total
    assert again.evaluation.stats == pytest.approx(before.evaluation.stats)


def test_a_stopped_pass_raises_and_keeps_nothing(tiny):
    project, checkpoint = tiny
    session = DiagnosisSession.open(checkpoint, project, "val")
    with pytest.raises(DiagnosisCancelledError):
        session.run(stop=lambda: True)
    assert not session.runner.loaded and session.diagnosis is None


def test_frcnn_diagnose_writes_json_preset_and_charts(tiny, tmp_path, capsys):
    project, checkpoint = tiny
    out = tmp_path / "out"
    code = main(["diagnose", "--checkpoint", str(checkpoint), "--project", str(project),
                 "--out", str(out), "--device", "cpu", "--what-if", "box_score_thresh=0.5"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "AP50" in printed and "wrote" in printed
    data = json.loads((out / "diagnosis.json").read_text())
    assert data["split"] == "val" and data["funnel"]["boxes"] == len(data["boxes"])
    assert set(data["tide"]["dap_points"]) == {"cls", "loc", "both", "dupe", "bkg", "missed"}
    assert data["what_if"][0]["settings"]["box_score_thresh"] == 0.5
    assert data["anchor_fit"]["table"]["all"]["all"]["boxes"] == len(data["boxes"])
    preset = json.loads((out / "suggested-preset.json").read_text())
    assert preset == data["preset"]
    config = DetectorConfig.from_dict({**preset["detector"], "num_classes": 5})
    assert config.backbone == "resnet18"
    for name in ("funnel.png", "dap.png", "anchor_iou.png", "what_if.png"):
        with Image.open(out / name) as image:
            assert image.width > 300


def test_frcnn_diagnose_names_a_bad_what_if(tiny, tmp_path, capsys):
    project, checkpoint = tiny
    code = main(["diagnose", "--checkpoint", str(checkpoint), "--project", str(project),
                 "--out", str(tmp_path), "--what-if", "nms=0.3"])
    assert code == 2
    assert "--what-if nms=0.3" in capsys.readouterr().err
