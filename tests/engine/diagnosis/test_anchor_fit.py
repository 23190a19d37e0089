"""Anchor fit and the anchor search, on boxes of sizes a reader can check by hand."""

from __future__ import annotations

import json

import pytest
import torch
from torchvision.ops import box_iou

from engine.detector.anchors import (
    DEFAULT_ASPECT_RATIOS,
    DEFAULT_SIZES,
    AnchorSpec,
    anchors_for_features,
)
from engine.detector.config import DetectorConfig
from engine.diagnosis.anchor_fit import (
    AnchorSettings,
    FitBoxes,
    anchor_fit,
    level_ious,
    resized_boxes,
    suggest_anchors,
)

STRIDES = (4, 8, 16, 32, 64)
LEVELS = ("P2", "P3", "P4", "P5", "P6")
DEFAULT = AnchorSettings(320, 320, DEFAULT_SIZES, DEFAULT_ASPECT_RATIOS)


def _centred_boxes(side: float, label: int, count: int = 4) -> list:
    """``count`` side x side boxes centred on multiples of 64 px (a grid point of every level)
    in 320 x 320 images (not resized at 320 px)."""
    images = []
    for k in range(count):
        cx = cy = 64.0 * (1 + k % 3)
        box = torch.tensor([[cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2]])
        images.append((100 * label + k, (320, 320), box, torch.tensor([label])))
    return images


def test_best_iou_equals_iou_against_every_anchor():
    generator = torch.Generator().manual_seed(0)
    images = []
    for k in range(30):
        h, w = int(torch.randint(150, 700, (1,), generator=generator)), \
            int(torch.randint(150, 700, (1,), generator=generator))
        xy = torch.rand(2, generator=generator) * torch.tensor([w * 0.7, h * 0.7])
        wh = 8 + torch.rand(2, generator=generator) * torch.tensor([w * 0.3, h * 0.3])
        images.append((k, (h, w), torch.cat([xy, xy + wh])[None], torch.tensor([1])))
    boxes = FitBoxes.from_images(images)
    settings = AnchorSettings(240, 400, ((24, 32),) * 5, ((0.5, 1.0, 2.0),) * 5)
    ours = level_ious(boxes, settings, STRIDES)
    resized, padded = resized_boxes(boxes, 240, 400)
    spec = AnchorSpec(settings.sizes, settings.aspect_ratios)
    for i in range(len(boxes)):
        ph, pw = padded[i].tolist()
        feature_sizes = [(-(-ph // s), -(-pw // s)) for s in STRIDES]
        for level, anchors in enumerate(anchors_for_features(spec, (ph, pw), feature_sizes)):
            every = box_iou(resized[i:i + 1], anchors.double()).max()
            assert float(ours[i, level]) == pytest.approx(float(every), abs=1e-9)


def test_the_default_anchors_miss_90_px_boxes_and_fit_64_px_ones():
    # 90 x 90 against the default anchors, centred: the best is size 64 at ratio 0.5, whose
    # corners round to 90 x 46 px: IoU 90 * 46 / 90^2 = 0.511 (64 x 64: 0.506, 128 x 128:
    # 0.494). No anchor reaches 0.7.
    fit = anchor_fit(FitBoxes.from_images(_centred_boxes(90, 1) + _centred_boxes(64, 2)),
                     DEFAULT, STRIDES, LEVELS)
    assert fit.best_iou[:4].tolist() == pytest.approx([90 * 46 / 90**2] * 4)
    assert fit.best_iou[4:].tolist() == pytest.approx([1.0] * 4)
    assert fit.share(0.7) == 0.5 and fit.share(0.5) == 1.0
    assert [u["label"] for u in fit.unreached()] == [1] * 4
    table = fit.table()
    assert table["P3"]["medium"]["share_at_0.7"] == 0.5
    assert table["all"]["large"]["boxes"] == 0
    assert sum(fit.histogram()) == 8 and sum(fit.histogram(level=1)) == 8


def test_the_suggestion_fits_90_px_boxes_without_losing_the_64_px_ones():
    boxes = FitBoxes.from_images(_centred_boxes(90, 1) + _centred_boxes(64, 2))
    suggestion = suggest_anchors(boxes, DEFAULT, STRIDES, LEVELS)
    assert suggestion.changed
    assert suggestion.before.share(0.7) == 0.5
    assert suggestion.after.share(0.7) == 1.0  # every box now has an anchor at IoU >= 0.7
    # Not by losing the 64 px boxes: each class keeps (at least) its share.
    assert suggestion.after.share(0.7, suggestion.after.class_mask(2)) == 1.0
    sizes = {s for level in suggestion.after.settings.sizes for s in level}
    # Some anchor within IoU 0.7 of 90 x 90 (side 75.3 to 107.6) and of 64 x 64 (53.5 to 76.5).
    assert any(75.3 <= s <= 107.6 for s in sizes)
    assert any(53.5 <= s <= 76.5 for s in sizes)
    assert suggestion.after.settings.min_size == 320  # no need for another input size


def test_a_box_of_another_shape_gets_its_aspect_ratio():
    # 40 wide, 160 high (ratio 4): the default ratios stop at 2.
    images = []
    for k in range(6):
        cx = cy = 128.0
        images.append((k, (320, 320), torch.tensor([[cx - 20, cy - 80, cx + 20, cy + 80]]),
                       torch.tensor([1])))
    suggestion = suggest_anchors(FitBoxes.from_images(images), DEFAULT, STRIDES, LEVELS,
                                 input_factors=(1.0,))
    assert suggestion.before.share(0.7) == 0.0
    assert suggestion.after.share(0.7) == 1.0
    assert 4.0 in suggestion.after.settings.aspect_ratios[0]


def test_the_preset_is_what_train_config_takes(tmp_path):
    boxes = FitBoxes.from_images(_centred_boxes(90, 1))
    suggestion = suggest_anchors(boxes, DEFAULT, STRIDES, LEVELS, input_factors=(1.0,))
    preset = suggestion.preset({"backbone": "efficientnet_lite0"}, {"epochs": 3})
    path = tmp_path / "preset.json"
    path.write_text(json.dumps(preset))
    loaded = json.loads(path.read_text())
    config = DetectorConfig.from_dict(loaded["detector"])
    assert config.anchor_sizes == suggestion.after.settings.sizes
    assert config.aspect_ratios == suggestion.after.settings.aspect_ratios
    assert loaded["training"] == {"epochs": 3}


def test_no_boxes_no_change():
    suggestion = suggest_anchors(FitBoxes.from_images([]), DEFAULT, STRIDES, LEVELS)
    assert not suggestion.changed and suggestion.after.share(0.7) == 1.0


@pytest.mark.slow
def test_on_the_demo_project_the_suggestion_reaches_95_percent(tmp_path):
    from engine.data.demo import write_demo_project
    from engine.data.project import Project

    folder = write_demo_project(tmp_path / "demo")
    with Project.open(folder) as project:
        records = project.dataset(None)
    boxes = FitBoxes.from_images([
        (r.image_id, (r.height, r.width), torch.tensor(r.boxes).reshape(-1, 4),
         torch.tensor(r.category_ids)) for r in records])
    current = AnchorSettings(240, 320, DEFAULT_SIZES, DEFAULT_ASPECT_RATIOS)  # demo-cpu.json
    suggestion = suggest_anchors(boxes, current, STRIDES, LEVELS)
    assert suggestion.before.share(0.7) < 0.6  # 51.8% when measured
    assert suggestion.after.share(0.7) >= 0.95  # 99.9% when measured
    for bucket in ("small", "medium", "large"):
        assert suggestion.after.share(0.7, suggestion.after.bucket_mask(bucket)) >= \
            suggestion.before.share(0.7, suggestion.before.bucket_mask(bucket))


def _funnel(anchors: int, proposals: int, detected: int):
    from engine.diagnosis.funnel import FATES, FunnelCounts

    total = dict.fromkeys(FATES, 0)
    total.update(anchors=anchors, proposals=proposals, detected=detected)
    return FunnelCounts(total, {"box": dict(total)}, {"medium": dict(total)})


def test_the_suggestion_is_recommended_only_where_boxes_are_lost_at_the_rpn():
    from engine.diagnosis.advice import anchor_advice
    from engine.diagnosis.tide import TideResult

    suggestion = suggest_anchors(FitBoxes.from_images(_centred_boxes(90, 1)), DEFAULT, STRIDES,
                                 LEVELS)
    tide = TideResult(60.0, {"cls": 0.0, "loc": 15.8, "dupe": 1.5}, {})
    # Two boxes no proposal covers (one with no anchor at 0.7): new anchors may find them.
    lost = anchor_advice(_funnel(1, 1, 8), tide, suggestion)
    assert lost.recommended and lost.lost_at_rpn == 2
    assert "2 of the split's 10 boxes are lost at the RPN" in lost.text
    assert "0.0% of the project's boxes" in lost.text and "100.0%" in lost.text
    # Every box covered by the RPN: the advice points at TIDE's largest error instead.
    found = anchor_advice(_funnel(0, 0, 10), tide, suggestion)
    assert not found.recommended and found.lost_at_rpn == 0
    assert "unlikely to raise AP" in found.text
    assert "largest error is localization (15.8 AP points)" in found.text
    # Nothing better found: nothing recommended, whatever the funnel.
    fitted = suggest_anchors(FitBoxes.from_images(_centred_boxes(64, 1)), DEFAULT, STRIDES,
                             LEVELS)
    assert not fitted.changed
    assert not anchor_advice(_funnel(3, 0, 7), tide, fitted).recommended
