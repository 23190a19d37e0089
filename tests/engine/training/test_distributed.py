"""Data-parallel training: two CPU processes (gloo) against one process with the same batch.

Faster R-CNN's losses are means over the sampled anchors and proposals of the whole batch, so
two processes of one image each equal one process of two images exactly when every image
contributes as many samples. The test arranges that: both images have the same box layout
(so the same anchors are positive and negative), samplers take every candidate, and the RPN
keeps a fixed 32 proposals per image. Then the averaged gradients, and so the weights after
every step, must agree up to float rounding. Both sides compute in torchvision's exact mode on
one thread each: a random RPN scores many proposals within rounding of each other, and another
order of float sums would let a different one into the top 32.
"""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from PIL import Image, ImageDraw

from engine.data.project import TrainingRecord
from engine.detector.checkpoint import ClassInfo
from engine.detector.config import DetectorConfig
from engine.training import Trainer, TrainSettings

BOXES = ((20.0, 30.0, 90.0, 100.0), (120.0, 40.0, 200.0, 130.0))
CLASSES = [ClassInfo(1, "square", 1), ClassInfo(2, "circle", 2)]
DETECTOR = DetectorConfig(
    backbone="efficientnet_lite0", min_size=160, max_size=224,
    rpn_batch_size_per_image=100_000, box_batch_size_per_image=100_000,
    rpn_post_nms_top_n_train=32, fold_frozen_batchnorm=False, channels_last=False,
)
STEPS = 3


def _records(folder) -> list[TrainingRecord]:
    records = []
    for index, (background, fill) in enumerate((((40, 90, 160), (240, 200, 0)),
                                                 ((170, 60, 60), (20, 220, 120)))):
        image = Image.new("RGB", (240, 160), background)
        draw = ImageDraw.Draw(image)
        draw.rectangle(BOXES[0], fill=fill)
        draw.ellipse(BOXES[1], fill=fill[::-1])
        path = folder / f"image{index}.png"
        image.save(path)
        records.append(TrainingRecord(index + 1, path, 240, 160, BOXES, (1, 2), (False, False)))
    return records


def _settings(batch_size: int) -> TrainSettings:
    # float32 (amp off): a parity check of sums in another order, which bf16 would blur.
    return TrainSettings(epochs=STEPS, batch_size=batch_size, flip_probability=0.0,
                         eval_every=0, warmup_factor=1.0, lr=0.01, seed=7, amp=False)


def _trainer(records, out, batch_size) -> Trainer:
    return Trainer(train_records=records, val_records=[], classes=CLASSES, out_dir=out,
                   detector=DETECTOR, settings=_settings(batch_size), init_weights="imagenet",
                   device="cpu")


def _flat(model) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def _rank_main(rank, world, port, records, out, result):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    try:
        trainer = _trainer(records, out, batch_size=1)
        plain_step, after_each_step = trainer._step, []

        def step_then_compare(samples, per_epoch):
            losses = plain_step(samples, per_epoch)
            mine = _flat(trainer.model)
            everyone = [torch.empty_like(mine) for _ in range(world)]
            dist.all_gather(everyone, mine)
            after_each_step.append((samples[0].image_id, mine.clone(),
                                    all(torch.equal(everyone[0], w) for w in everyone)))
            return losses

        trainer._step = step_then_compare
        trainer.run()
        if rank == 0:
            torch.save(after_each_step, result)
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_two_processes_equal_one_with_the_same_global_batch(tmp_path):
    records = _records(tmp_path)
    result = tmp_path / "ranks.pt"
    mp.spawn(_rank_main, args=(2, _free_port(), records, tmp_path / "ddp", result), nprocs=2,
             join=True)
    distributed = torch.load(result, weights_only=True)
    assert len(distributed) == STEPS
    assert all(identical for _, _, identical in distributed), "ranks disagree after a step"
    assert {image_id for image_id, _, _ in distributed} == {1, 2}  # each rank its own image

    single = _trainer(records, tmp_path / "single", batch_size=2)
    plain_step, weights = single._step, []

    def step_and_keep(samples, per_epoch):
        assert sorted(s.image_id for s in samples) == [1, 2]
        losses = plain_step(samples, per_epoch)
        weights.append(_flat(single.model).clone())
        return losses

    single._step = step_and_keep
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each rank: the same order of float sums
    try:
        single.run()
    finally:
        torch.set_num_threads(threads)
    start = _flat(_trainer(records, tmp_path / "start", batch_size=2).model)
    for (_, after_ddp, _), after_single in zip(distributed, weights, strict=True):
        moved = (after_single - start).abs().max()
        assert moved > 1e-4  # training changed the weights...
        # ...and both ways the same, up to the order of float sums.
        difference = (after_ddp - after_single).abs().max()
        assert difference <= 1e-5 * moved
