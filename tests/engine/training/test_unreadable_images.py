"""A truncated image does not end a training run: it is left out, with a warning naming it.

An import reads only image headers, so a JPEG cut short on disk is stored as readable; its
pixels fail to decode only when training loads it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from engine.cli import main
from engine.data.demo import draw_demo_image
from engine.data.images import ImageLoadError
from engine.data.project import TrainingRecord
from engine.detector.checkpoint import ClassInfo
from engine.training.data import (
    DetectionDataset,
    TrainingBatches,
    UnreadableImage,
    epoch_batches,
    shard,
)

TINY = {
    "detector": {"backbone": "efficientnet_lite0", "min_size": 160, "max_size": 224,
                 "rpn_batch_size_per_image": 32, "box_batch_size_per_image": 32},
    "training": {"epochs": 1, "batch_size": 2, "eval_every": 1},
}


def _truncate(path: Path) -> None:
    """Keep the first half of the file: the header survives, the pixels do not."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _voc_folder(root: Path, train: list[str], val: list[str], truncated: set[str]) -> Path:
    """A Pascal VOC folder of demo JPEGs (320x240) with their boxes and a train/val split."""
    (root / "JPEGImages").mkdir(parents=True)
    (root / "Annotations").mkdir()
    for index, stem in enumerate(train + val):
        item = draw_demo_image(100 + index)
        path = root / "JPEGImages" / f"{stem}.jpg"
        item.image.save(path, quality=90)
        if stem in truncated:
            _truncate(path)
        objects = "".join(
            f"<object><name>{label}</name><difficult>0</difficult><bndbox><xmin>{x0 + 1}</xmin>"
            f"<ymin>{y0 + 1}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
            for (x0, y0, x1, y1), label in zip(item.boxes, item.labels))
        (root / "Annotations" / f"{stem}.xml").write_text(
            f"<annotation><filename>{stem}.jpg</filename><size><width>320</width>"
            f"<height>240</height><depth>3</depth></size>{objects}</annotation>")
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "ImageSets" / "Main" / "train.txt").write_text("\n".join(train) + "\n")
    (root / "ImageSets" / "Main" / "val.txt").write_text("\n".join(val) + "\n")
    return root


def test_frcnn_train_leaves_a_truncated_jpeg_out_and_names_it(tmp_path, capfd):
    source = _voc_folder(tmp_path / "voc", ["a", "b", "c", "d", "e"], ["f", "g"],
                         truncated={"c", "g"})
    project = tmp_path / "project"
    assert main(["import", str(source), "--project", str(project)]) == 0
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY))
    out = tmp_path / "run"
    code = main(["train", "--project", str(project), "--out", str(out), "--config", str(config),
                 "--device", "cpu"])
    printed = capfd.readouterr().err
    assert code == 0, printed
    bad_train, bad_val = source / "JPEGImages" / "c.jpg", source / "JPEGImages" / "g.jpg"
    assert f"warning: left out of training: {bad_train}: not a readable image (image file is " \
           "truncated" in printed
    assert f"warning: left out of evaluation: {bad_val}: not a readable image" in printed
    assert printed.count("warning:") == 2
    # 5 train images in batches of 2 (grouped by aspect ratio: all landscape): 3 steps.
    assert "finished at step 3" in printed
    assert (out / "best.pt").is_file()
    metrics = json.loads((out / "metrics.jsonl").read_text())
    assert metrics["images"] == 1  # f; g left out


def _records(folder: Path, names: list[str], truncated: set[str]) -> list[TrainingRecord]:
    records = []
    for image_id, name in enumerate(names, start=1):
        path = folder / f"{name}.jpg"
        Image.new("RGB", (32, 24), (image_id * 40, 90, 160)).save(path)
        if name in truncated:
            _truncate(path)
        records.append(TrainingRecord(image_id, path, 32, 24, ((1.0, 2.0, 20.0, 20.0),),
                                      (1,), (False,)))
    return records


CLASSES = [ClassInfo(1, "square", 1)]


def test_batches_leave_unreadable_images_out_and_never_come_empty(tmp_path):
    records = _records(tmp_path, ["ok0", "bad1", "bad2", "ok3"], truncated={"bad1", "bad2"})
    dataset = DetectionDataset(records, CLASSES)
    batches = TrainingBatches(dataset, [[0, 1], [1, 2], [2], [3]])
    assert len(batches) == 4

    mixed = batches[0]
    assert [s.image_id for s in mixed.samples] == [1]
    assert [u.image_id for u in mixed.unreadable] == [2]
    assert mixed.unreadable[0].path == str(tmp_path / "bad1.jpg")
    assert mixed.unreadable[0].reason.startswith(f"{tmp_path / 'bad1.jpg'}: not a readable image (")

    # No image of the batch can be read: the next readable one in dataset order stands in,
    # so the step still happens (every process of a data-parallel run takes every step).
    assert [s.image_id for s in batches[1].samples] == [4]  # after index 1: 2 bad, then 3
    assert [u.image_id for u in batches[1].unreadable] == [2, 3]
    assert [s.image_id for s in batches[2].samples] == [4]
    assert [s.image_id for s in batches[3].samples] == [4] and not batches[3].unreadable


def test_every_image_unreadable_is_an_error_naming_one(tmp_path):
    records = _records(tmp_path, ["bad0", "bad1"], truncated={"bad0", "bad1"})
    with pytest.raises(ImageLoadError, match=r"none of the 2 images to train on can be read; "
                                             r"the first: .*bad1\.jpg: not a readable image"):
        TrainingBatches(DetectionDataset(records, CLASSES), [[1]])[0]


def test_evaluation_set_without_its_unreadable_images(tmp_path):
    records = _records(tmp_path, ["ok0", "bad1", "ok2"], truncated={"bad1"})
    kept, unreadable = DetectionDataset(records, CLASSES).without_unreadable()
    assert [r.image_id for r in kept.records] == [1, 3]
    assert [kept[i].image_id for i in range(len(kept))] == [1, 3]
    assert unreadable == [UnreadableImage(2, str(tmp_path / "bad1.jpg"), unreadable[0].reason)]


def _rank_main(rank, world, port, records, out, result):
    import os

    import torch
    import torch.distributed as dist

    from engine.detector.config import DetectorConfig
    from engine.training import Trainer, TrainSettings

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    try:
        events, steps_taken = [], []
        trainer = Trainer(
            train_records=records, val_records=[], classes=CLASSES, out_dir=out,
            detector=DetectorConfig(backbone="efficientnet_lite0", min_size=64, max_size=96,
                                    rpn_batch_size_per_image=16, box_batch_size_per_image=16),
            settings=TrainSettings(epochs=2, batch_size=1, eval_every=0, seed=0),
            init_weights="imagenet", device="cpu", report=events.append)
        plain_step = trainer._step

        def counted(samples, per_epoch):
            steps_taken.append([s.image_id for s in samples])
            return plain_step(samples, per_epoch)

        trainer._step = counted
        outcome = trainer.run()
        torch.save({"outcome": outcome, "steps": steps_taken, "events": events},
                   f"{result}.{rank}")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_data_parallel_ranks_take_every_step_and_process_0_names_the_file(tmp_path):
    """Two processes (gloo), one image per step each; one of the four images is truncated.
    Both processes take the same steps (a process waiting for the other's gradients would
    hang), and process 0 reports the file whichever process met it."""
    import socket

    import torch
    import torch.multiprocessing as mp

    records = _records(tmp_path, ["ok0", "bad1", "ok2", "ok3"], truncated={"bad1"})
    # With seed 0 process 1 meets the bad image (index 1) at its first step: the report has
    # to come to process 0 from the other one.
    first_epoch = epoch_batches([32 / 24] * 4, 1, seed=0, epoch=0)
    assert shard(first_epoch, 1, 2)[0] == [1]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = tmp_path / "rank"
    mp.spawn(_rank_main, args=(2, port, records, tmp_path / "ddp", result), nprocs=2,
             join=True)
    ranks = [torch.load(f"{result}.{rank}", weights_only=True) for rank in range(2)]
    assert [r["outcome"] for r in ranks] == ["finished", "finished"]
    assert len(ranks[0]["steps"]) == len(ranks[1]["steps"]) == 4  # 2 epochs of 2 steps
    seen = [image_id for r in ranks for step in r["steps"] for image_id in step]
    assert 2 not in seen and sorted(set(seen)) == [1, 3, 4]
    warnings = [e for e in ranks[0]["events"] if e["event"] == "warning"]
    assert [(w["kind"], w["split"], w["image_id"], w["step"]) for w in warnings] == [
        ("unreadable_image", "train", 2, 0)]
    assert warnings[0]["path"] == str(tmp_path / "bad1.jpg")
    assert ranks[1]["events"] == []  # only process 0 reports
