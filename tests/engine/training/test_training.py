"""Training: the recipe's numbers, overfitting, exact resume, errors, COCO evaluation."""

from __future__ import annotations

import json

import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from engine.data.demo import write_demo_project
from engine.data.project import Project
from engine.detector.checkpoint import ClassInfo, load_detector
from engine.detector.config import DetectorConfig
from engine.training import Trainer, TrainingError, TrainSettings
from engine.training.data import classes_for, epoch_batches, shard
from engine.training.evaluation import coco_evaluate, coco_ground_truth, coco_results

# Small and quick: EfficientNet-Lite0 from its packaged ImageNet weights, 240 px demo images.
TINY = DetectorConfig(backbone="efficientnet_lite0", min_size=240, max_size=320,
                      rpn_batch_size_per_image=64, box_batch_size_per_image=64)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    folder = write_demo_project(tmp_path_factory.mktemp("demo") / "project", count=6, seed=3)
    project = Project.open(folder)
    try:
        return project.dataset(None), classes_for(project.categories())
    finally:
        project.close()


def _trainer(records, classes, out, report=None, **settings):
    values = {"batch_size": 2, "flip_probability": 0.5, "warmup_iters": 5, "eval_every": 0}
    values.update(settings)
    return Trainer(train_records=records, val_records=records, classes=classes, out_dir=out,
                   detector=TINY, settings=TrainSettings(**values), init_weights="imagenet",
                   device="cpu", report=report)


def test_learning_rate_recipe_golden_values():
    settings = TrainSettings(epochs=26, batch_size=2, warmup_iters=1000)
    assert settings.base_lr() == pytest.approx(0.02 * 2 / 16)  # 0.0025
    assert settings.base_lr(world_size=4) == pytest.approx(0.01)
    # 100 steps per epoch: warmup capped at 99 steps, decays at epochs 16 and 22.
    assert settings.lr_factor(0, 100) == pytest.approx(0.001)
    assert settings.lr_factor(99, 100) == pytest.approx(1.0)
    assert settings.lr_factor(1599, 100) == pytest.approx(1.0)
    assert settings.lr_factor(1600, 100) == pytest.approx(0.1)
    assert settings.lr_factor(2200, 100) == pytest.approx(0.01)


def test_epoch_batches_group_by_aspect_and_repeat_per_seed():
    ratios = [1.5, 0.5, 1.5, 1.5, 0.5, 1.5, 0.5]  # landscape: 0 2 3 5; portrait: 1 4 6
    batches = epoch_batches(ratios, 2, seed=0, epoch=0)
    assert sorted(i for b in batches for i in b) == list(range(7))
    for batch in batches:
        assert len({ratios[i] >= 1 for i in batch}) == 1
    assert batches == epoch_batches(ratios, 2, seed=0, epoch=0)
    assert batches != epoch_batches(ratios, 2, seed=0, epoch=1)
    assert shard([[0], [1], [2], [3], [4]], 1, 2) == [[1], [3]]


def test_overfitting_two_images_reaches_ap50_of_one(demo, tmp_path):
    records, classes = demo
    records = records[:2]
    losses, evals = [], []

    def report(event):
        if event["event"] == "step":
            losses.append(event["loss"])
        elif event["event"] == "eval":
            evals.append(event)

    trainer = _trainer(records, classes, tmp_path, report, epochs=60, flip_probability=0.0,
                       lr_steps=())
    assert trainer.run() == "finished"
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 / 2
    assert evals[-1]["AP50"] == pytest.approx(1.0)
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert json.loads(lines[-1])["AP50"] == pytest.approx(1.0)
    best = load_detector(tmp_path / "best.pt")
    assert [c.name for c in best.classes] == [c.name for c in classes]


def test_resume_takes_exactly_the_uninterrupted_steps(demo, tmp_path):
    records, classes = demo
    uninterrupted, resumed = [], []

    def keep(into):
        return lambda event: into.append(event["loss"]) if event["event"] == "step" else None

    _trainer(records, classes, tmp_path / "a", keep(uninterrupted), epochs=2,
             max_steps=5).run()
    assert _trainer(records, classes, tmp_path / "b", keep(resumed), epochs=2,
                    max_steps=2).run() == "stopped"
    # Step 3 is in the middle of epoch 1 (3 batches per epoch): position, optimizer state
    # and the random state all come back.
    Trainer(train_records=records, val_records=records, classes=classes,
            out_dir=tmp_path / "b", settings=TrainSettings(
                batch_size=2, flip_probability=0.5, warmup_iters=5, eval_every=0, epochs=2,
                max_steps=5),
            device="cpu", resume=tmp_path / "b" / "last.pt", report=keep(resumed)).run()
    assert len(uninterrupted) == len(resumed) == 5
    assert resumed == uninterrupted


def test_a_diverging_loss_stops_with_the_step_named(demo, tmp_path):
    records, classes = demo
    trainer = _trainer(records, classes, tmp_path, epochs=3, lr=50.0, warmup_iters=1)
    with pytest.raises(TrainingError) as error:
        trainer.run()
    assert error.value.kind == "nan"
    assert "at step" in str(error.value) and "learning rate" in str(error.value)


def test_resume_refuses_a_checkpoint_of_other_classes(demo, tmp_path):
    records, classes = demo
    _trainer(records, classes, tmp_path, epochs=1, max_steps=1).run()
    renamed = [ClassInfo(c.class_id, c.name + "x", c.category_id) for c in classes]
    with pytest.raises(TrainingError, match="classes"):
        Trainer(train_records=records, val_records=records, classes=renamed, out_dir=tmp_path,
                device="cpu", resume=tmp_path / "last.pt")


def test_our_evaluation_equals_pycocotools_run_directly(tmp_path):
    classes = [ClassInfo(1, "cat"), ClassInfo(2, "dog")]
    images = [(1, 100, 120), (2, 80, 80)]
    targets = [
        {"boxes": torch.tensor([[10.0, 10, 50, 60], [60, 20, 110, 90]]),
         "labels": torch.tensor([1, 2])},
        {"boxes": torch.tensor([[5.0, 5, 40, 40]]), "labels": torch.tensor([1])},
    ]
    detections = [
        {"boxes": torch.tensor([[12.0, 11, 50, 58], [60, 25, 100, 90], [0, 0, 20, 20]]),
         "labels": torch.tensor([1, 2, 2]), "scores": torch.tensor([0.9, 0.8, 0.7])},
        {"boxes": torch.tensor([[30.0, 30, 70, 70]]), "labels": torch.tensor([1]),
         "scores": torch.tensor([0.6])},
    ]
    ground_truth = coco_ground_truth(images, targets, classes)
    results = coco_results([1, 2], detections)
    ours = coco_evaluate(ground_truth, results, classes)

    gt_file, dt_file = tmp_path / "gt.json", tmp_path / "dt.json"
    gt_file.write_text(json.dumps(ground_truth))
    dt_file.write_text(json.dumps(results))
    coco = COCO(str(gt_file))
    direct = COCOeval(coco, coco.loadRes(str(dt_file)), "bbox")
    direct.evaluate()
    direct.accumulate()
    direct.summarize()
    assert list(ours.stats.values()) == pytest.approx(list(direct.stats))
    # By hand: dogs have one box, found once (IoU 0.8) above one false positive: AP50 1.0;
    # cats have two boxes, one found (IoU 0.87): AP50 about 0.5.
    assert ours.per_class_ap50["dog"] == pytest.approx(1.0)
    assert ours.per_class_ap50["cat"] == pytest.approx(0.5, abs=0.01)


def test_evaluation_without_detections_scores_zero():
    classes = [ClassInfo(1, "cat")]
    ground_truth = coco_ground_truth(
        [(1, 10, 10)], [{"boxes": torch.tensor([[0.0, 0, 5, 5]]), "labels": torch.tensor([1])}],
        classes)
    result = coco_evaluate(ground_truth, [], classes)
    assert result.ap == 0.0 and result.per_class == {"cat": 0.0}


def test_out_of_memory_names_the_batch_size_and_a_smaller_one(demo, tmp_path):
    records, classes = demo
    trainer = _trainer(records, classes, tmp_path, epochs=1, batch_size=4)

    def exhausted(*_args, **_kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    trainer.network = exhausted
    with pytest.raises(TrainingError) as error:
        trainer.run()
    assert error.value.kind == "oom"
    assert "batch size 4" in str(error.value) and "--batch-size 2" in str(error.value)
