"""Comparing an export's detections with ours: float rounding at a threshold is explained and
named, anything else fails and is named, and a check that compared nothing does not pass."""

from __future__ import annotations

import torch

from engine.export.api import _verify
from engine.export.compare import compare_detections


def _run(boxes, labels, scores):
    return {"boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "labels": torch.tensor(labels, dtype=torch.int64),
            "scores": torch.tensor(scores, dtype=torch.float32)}


def _compare(reference, exported, **options):
    settings = dict(image="dog.jpg", box_tol=0.01, score_tol=1e-3, score_thresh=0.05,
                    detections_per_img=100, nms_thresh=0.5)
    settings.update(options)
    return compare_detections(reference, exported, **settings)


def test_an_nms_flip_at_the_iou_threshold_is_explained_and_named():
    # Box B is the top half of box A: IoU 50 / 100 = 0.5, exactly the threshold. Our run keeps
    # both, the export suppressed B.
    a, b = [0, 0, 10, 10], [0, 0, 10, 5]
    reference = _run([a, b], [1, 1], [0.9, 0.8])
    exported = _run([a], [1], [0.9])
    comparison = _compare(reference, exported)
    assert (comparison.matched, comparison.unexplained) == (1, 0)
    (note,) = comparison.notes
    assert "dog.jpg" in note and "NMS flip: IoU 0.5000" in note and "reference detection 1" in note


def test_a_missing_detection_away_from_every_threshold_is_unexplained_and_named():
    a, b = [0, 0, 10, 10], [50, 50, 70, 70]
    comparison = _compare(_run([a, b], [1, 1], [0.9, 0.8]), _run([a], [1], [0.9]))
    assert comparison.unexplained == 1
    assert comparison.notes == [
        "image 'dog.jpg': reference detection 1 (class 1, score 0.8000, box [50.0, 50.0, 70.0, "
        "70.0]) only in the reference: unexplained (nearest on the other side: box 60 px away, "
        "score 0.1 away)"]


def test_score_threshold_and_top_k_boundaries_are_explained():
    a, b, c = [0, 0, 10, 10], [50, 50, 70, 70], [100, 100, 120, 120]
    # b sits on the score threshold; c is the last of a list cut at 2.
    at_threshold = _compare(_run([a, b], [1, 1], [0.9, 0.0505]), _run([a], [1], [0.9]))
    assert at_threshold.unexplained == 0 and "score threshold" in at_threshold.notes[0]
    cut = _compare(_run([a, c], [1, 2], [0.9, 0.7]), _run([a, b], [1, 1], [0.9, 0.7004]),
                   detections_per_img=2)
    assert cut.unexplained == 0 and len(cut.notes) == 2
    assert all("top-k" in note for note in cut.notes)


def test_box_tolerance_grows_with_the_box():
    big = [0, 0, 400, 300]
    moved = [0, 0, 400.03, 300]
    strict = _compare(_run([big], [1], [0.9]), _run([moved], [1], [0.9]))
    assert strict.unexplained == 2  # one on each side, each saying how close the other is
    assert "nearest on the other side: box 0.03 px away, score 0 away" in strict.notes[0]
    comparison = _compare(_run([big], [1], [0.9]), _run([moved], [1], [0.9]), rel_box_tol=1e-4)
    assert comparison.matched == 1 and comparison.notes == []


class _SameDetections:
    """An exporter stub whose runner gives exactly the model's detections."""

    def __init__(self, model):
        self.model = model

    def runtime(self) -> str:
        return "stub"

    def runner(self, _path, _loading):
        def run(picture):
            with torch.inference_mode():
                return self.model([picture])[0]
        return run


def test_a_check_that_compared_nothing_does_not_pass(tmp_path):
    from engine.detector.build import build_model
    from engine.detector.checkpoint import LoadedDetector
    from engine.detector.class_map import ClassInfo

    model = build_model("resnet18", num_classes=2, weights="none", min_size=64, max_size=96,
                        box_score_thresh=1.0).eval()
    loaded = LoadedDetector(model, [ClassInfo(class_id=1, name="thing")])
    pictures = [("blank.png", torch.zeros(3, 40, 50))]
    verification = _verify(loaded, _SameDetections(model), tmp_path / "m", {}, pictures)
    assert not verification.ok and verification.compared == 0
    assert "nothing was compared" in verification.summary()
