"""TIDE's error types and dAP: golden cases by hand, and the reference implementation
(``tidecv``) on the same random detections."""

from __future__ import annotations

import random

import pytest
import torch

from engine.diagnosis.tide import ImageEval, average_precision, tide


def _image(image_id, gt, gt_labels, dets, labels, scores, ignore=None):
    return ImageEval(image_id, torch.tensor(gt, dtype=torch.float64).reshape(-1, 4),
                     torch.tensor(gt_labels),
                     torch.tensor(dets, dtype=torch.float64).reshape(-1, 4),
                     torch.tensor(labels), torch.tensor(scores, dtype=torch.float64),
                     None if ignore is None else torch.tensor(ignore))


def test_average_precision_golden_values():
    # Two boxes; detections TP (0.9), FP (0.8), TP (0.7): precision 1 up to recall 0.5, then
    # 2/3 up to recall 1: 51 recall points at 1 and 50 at 2/3 -> (51 + 100/3) / 101.
    ap = average_precision([(0.9, True), (0.8, False), (0.7, True)], 2)
    assert ap == pytest.approx((51 + 50 * 2 / 3) / 101 * 100)
    assert average_precision([], 3) == 0.0
    assert average_precision([(0.5, True)], 0) == 0.0


def test_each_error_type_by_hand():
    box = [0, 0, 10, 10]
    image = _image(
        1, [box, [50, 50, 60, 60], [80, 80, 90, 90]], [1, 2, 1],
        [box,  # true positive
         [0, 0, 10, 10],  # the same box again: duplicate
         [50, 50, 60, 60],  # class 1 on the class-2 box: classification
         [80, 80, 90, 96],  # class 1 at IoU 100/160 = 0.625 -> true positive of box 3
         [20, 20, 30, 30],  # nowhere: background
         [0, 0, 10, 30]],  # class 2 near box 1 (IoU 1/3): both
        [1, 1, 1, 1, 1, 2], [0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    result = tide([image])
    kinds = {e.detection: e.kind for e in result.errors if e.detection >= 0}
    assert kinds == {1: "dupe", 2: "cls", 4: "bkg", 5: "both"}
    assert result.counts == {"cls": 1, "loc": 0, "both": 1, "dupe": 1, "bkg": 1, "missed": 0}
    # Fixing the classification error finds box 2: class 2 goes from AP 0 to 100, class 1
    # loses its false positive.
    assert result.dap["cls"] > 0 and result.dap["missed"] == 0


def test_a_localization_error_takes_the_box_it_would_have_found():
    image = _image(1, [[0, 0, 10, 10]], [1], [[0, 0, 10, 30]], [1], [0.9])  # IoU 1/3
    result = tide([image])
    assert [e.kind for e in result.errors] == ["loc"]  # the box is not also "missed"
    assert result.ap == 0.0 and result.dap["loc"] == pytest.approx(100.0)


def test_missed_boxes_and_ignored_regions():
    image = _image(1, [[0, 0, 10, 10], [40, 40, 60, 60], [70, 70, 90, 90]], [1, 1, 1],
                   [[40, 40, 60, 60], [70, 70, 90, 90]], [1, 1], [0.9, 0.8],
                   ignore=[False, True, False])
    result = tide([image])
    # The detection on the ignored (difficult) box counts nowhere; the first box is missed.
    assert [e.kind for e in result.errors] == ["missed"]
    # Recall 1/2 at precision 1: 51 of 101 recall points. Without the missed box: all 101.
    assert result.ap == pytest.approx(51 / 101 * 100)
    assert result.dap["missed"] == pytest.approx(100 - 51 / 101 * 100)


def _random_split(seed=0, images=40):
    rng = random.Random(seed)

    def box():
        x, y = rng.uniform(0, 80), rng.uniform(0, 80)
        return [x, y, x + rng.uniform(5, 40), y + rng.uniform(5, 40)]

    split = []
    for image_id in range(images):
        gt = [box() for _ in range(rng.randint(0, 4))]
        gt_labels = [rng.randint(1, 3) for _ in gt]
        dets, labels, scores = [], [], []
        for b, label in zip(gt, gt_labels):
            for _ in range(rng.randint(0, 3)):
                dets.append([v + rng.uniform(-6, 6) for v in b])
                labels.append(label if rng.random() < 0.7 else rng.randint(1, 3))
                scores.append(round(rng.random(), 3))
        for _ in range(rng.randint(0, 2)):
            dets.append(box())
            labels.append(rng.randint(1, 3))
            scores.append(round(rng.random(), 3))
        split.append((image_id, gt, gt_labels, dets, labels, scores))
    return split


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_same_dap_as_tidecv(seed):
    tidecv = pytest.importorskip("tidecv")
    split = _random_split(seed)
    gt, predictions = tidecv.Data("gt"), tidecv.Data("predictions")
    for image_id, boxes, gt_labels, dets, labels, scores in split:
        gt.add_image(image_id, str(image_id))  # so that images without boxes count too
        for (x0, y0, x1, y1), label in zip(boxes, gt_labels):
            gt.add_ground_truth(image_id, label, [x0, y0, x1 - x0, y1 - y0])
        for (x0, y0, x1, y1), label, score in zip(dets, labels, scores):
            predictions.add_detection(image_id, label, score, [x0, y0, x1 - x0, y1 - y0])
    reference = tidecv.TIDE()
    run = reference.evaluate(gt, predictions, mode=tidecv.TIDE.BOX)
    theirs = reference.get_main_errors()["predictions"]
    ours = tide([_image(*item) for item in split])
    assert ours.ap == pytest.approx(run.ap, abs=0.1)
    names = {"cls": "Cls", "loc": "Loc", "both": "Both", "dupe": "Dupe", "bkg": "Bkg",
             "missed": "Miss"}
    for kind, name in names.items():
        assert ours.dap[kind] == pytest.approx(theirs[name], abs=0.1), kind
    assert {k: len(v) for k, v in run.error_dict.items()} == {
        getattr(tidecv.quantify, cls): ours.counts[kind] for kind, cls in (
            ("cls", "ClassError"), ("loc", "BoxError"), ("both", "OtherError"),
            ("dupe", "DuplicateError"), ("bkg", "BackgroundError"), ("missed", "MissedError"))}
