"""Typed training events, presets fitted to a device and data, the time budget's learning-rate
schedule, and progress lines in a log: pure functions, no training."""

from __future__ import annotations

import io
import os

import pytest

from engine.data.project import TrainingRecord
from engine.training import events
from engine.training.presets import (
    SMALL_ANCHORS,
    DataProfile,
    choose_preset,
    find_preset,
    list_presets,
    load_preset,
)
from engine.training.progress import TerminalProgress
from engine.training.runs import EventLog, read_run
from engine.training.settings import TrainSettings


def test_every_record_round_trips_through_its_protocol_dict():
    records = [
        events.Hello(protocol=1, pid=7, time=1.0),
        events.Started(device="cpu", amp=True, precision="bf16", train_images=3, val_images=1,
                       classes=["a"], epochs=2, steps_per_epoch=2, total_steps=4, batch_size=2,
                       world_size=1, lr=0.0025, resumed_at_step=0, time_budget_s=60.0,
                       left_out={"train": {"in_progress": 2}}, time=2.0),
        events.Step(step=1, total_steps=4, epoch=1, batch=1, batches=2, losses={"l": 1.0},
                    loss=1.0, lr=0.001, images_per_s=None, eta_s=None, time=3.0),
        events.Evaluating(epoch=1, step=2, done=0, total=1, time=4.0),
        events.Evaluated(epoch=1, step=2, metrics={"AP": 0.5, "AP50": 0.9}, time=5.0),
        events.CheckpointSaved(kind="best", path="run/best.pt", step=2, AP=0.5, time=6.0),
        events.WarningEvent(kind="unreadable_image", message="x", step=2,
                            details={"split": "val", "image_id": 3, "path": "p"}, time=7.0),
        events.Stopped(reason="requested", step=2, time=8.0),
        events.Finished(step=4, best_AP=None, time=9.0),
        events.Failed(kind="nan", message="the loss became nan", time=10.0),
    ]
    for record in records:
        data = record.to_dict()
        assert data["event"] == record.EVENT and data["time"] == record.time
        assert events.parse_event(data) == record
    # The open sets of numbers sit in the object itself, as the protocol has always had them.
    assert records[4].to_dict() == {"event": "eval", "time": 5.0, "epoch": 1, "step": 2,
                                    "AP": 0.5, "AP50": 0.9}
    assert records[6].to_dict()["path"] == "p"
    assert events.parse_event({"event": "output", "text": "x"}) is None


def test_a_paused_run_reads_as_paused_and_a_resumed_one_as_running(tmp_path):
    with EventLog(tmp_path) as log:
        log.append(events.Hello(protocol=1, pid=os.getpid()))
        log.append(events.Paused(step=3))
    assert read_run(tmp_path).state == "paused"
    with EventLog(tmp_path) as log:
        log.append(events.Resumed(step=3))
    assert read_run(tmp_path).state == "running"


def test_the_budget_schedule_warms_up_then_decays_over_the_time():
    settings = TrainSettings(warmup_iters=1000)
    # 60 steps an epoch: warmup over 59 steps (the recipe's cap), or 30% of the time, but
    # never fewer than 50 steps.
    assert settings.budget_lr_factor(0, 0.0, 60) == pytest.approx(0.001)
    assert settings.budget_lr_factor(10, 0.05, 60) == pytest.approx(0.001 * 0.83 + 0.17, abs=0.01)
    assert settings.budget_lr_factor(10, 0.15, 60) == pytest.approx(0.001 * 0.8 + 0.2)  # floor
    assert settings.budget_lr_factor(55, 0.3, 60) == pytest.approx(1.0)  # by the time
    assert settings.budget_lr_factor(59, 0.1, 60) == pytest.approx(1.0)  # by the steps
    assert settings.budget_lr_factor(70, 16 / 26 - 1e-6, 60) == pytest.approx(1.0)
    assert settings.budget_lr_factor(80, 16 / 26, 60) == pytest.approx(0.1)
    assert settings.budget_lr_factor(90, 1.0, 60) == pytest.approx(0.01)  # fully decayed


def test_a_short_budget_or_tiny_data_still_warms_up_over_fifty_steps():
    settings = TrainSettings(warmup_iters=1000)
    # A one-minute budget: 30% of the time is spent after 12 steps; the rate is still 1/4.
    assert settings.budget_lr_factor(12, 0.3, 60) == pytest.approx(0.001 * 0.76 + 0.24)
    # Five images, two a step: the recipe's cap would be 2 steps; the floor keeps 50.
    assert settings.budget_lr_factor(25, 0.1, 3) == pytest.approx(0.001 * 0.5 + 0.5)
    assert settings.budget_lr_factor(50, 0.2, 3) == pytest.approx(1.0)
    # A recipe asking for fewer warmup steps than the floor gets what it asks.
    assert TrainSettings(warmup_iters=10).budget_lr_factor(10, 0.0, 60) == pytest.approx(1.0)


def _records(side_w, side_h, box_sizes, count=40):
    return [TrainingRecord(i, f"/x/{i}.png", side_w, side_h,
                           tuple((0.0, 0.0, float(s), float(s)) for s in box_sizes),
                           (1,) * len(box_sizes), (False,) * len(box_sizes))
            for i in range(count)]


def test_the_cpu_preset_fits_the_image_size_anchors_and_budget_to_the_data():
    # The demo: 320x240 images, shapes of 20-90 px: its own size, default anchors.
    demo = choose_preset("cpu", _records(320, 240, [35, 45, 55, 70, 90], count=240))
    assert demo.name == "cpu" and demo.detector["backbone"] == "efficientnet_lite0"
    assert (demo.detector["min_size"], demo.detector["max_size"]) == (240, 400)
    assert "anchor_sizes" not in demo.detector
    assert demo.training["time_budget_s"] == 480.0  # 2 s x 240 images
    # Dense small objects (13 boxes of 12-30 px on 640x480): larger input, anchors from 16 px.
    dense = choose_preset("cpu", _records(640, 480, [12, 14, 15, 16, 18, 20, 20, 22, 24, 25,
                                                     26, 28, 30], count=96))
    assert dense.detector["min_size"] == 512
    assert dense.detector["anchor_sizes"] == [list(level) for level in SMALL_ANCHORS]
    assert dense.training["time_budget_s"] == 480.0  # 2 s x (512 / 320)^2 x 96 images
    # Large photos with large objects: 320 px.
    photos = choose_preset("cpu", _records(1024, 768, [300, 400], count=160))
    assert photos.detector["min_size"] == 320
    assert any("320 px" in reason for reason in photos.reasons)
    # On a GPU: the reference recipe.
    gpu = choose_preset("cuda", _records(1024, 768, [300]))
    assert gpu.detector["min_size"] == 800 and gpu.training["epochs"] == 12
    assert DataProfile.of([]).images == 0


def test_presets_are_listed_with_the_users_own_and_bad_files_are_named(tmp_path):
    (tmp_path / "mine.json").write_text('{"detector": {"min_size": 416}, "training": {}}')
    (tmp_path / "broken.json").write_text("{")
    names = [preset.name for preset in list_presets(tmp_path)]
    assert {"cpu", "reference-gpu", "demo-cpu", "raccoon-cpu", "mine"} <= set(names)
    assert "broken" not in names
    assert find_preset("mine", tmp_path).detector == {"min_size": 416}
    with pytest.raises(ValueError, match=r"broken\.json: not JSON"):
        load_preset(tmp_path / "broken.json")
    with pytest.raises(ValueError, match="no preset named 'nope'; there are cpu"):
        find_preset("nope")
    (tmp_path / "typo.json").write_text('{"detector": {}, "training": {"epoch": 3}}')
    with pytest.raises(ValueError, match=r"typo\.json: unknown training settings: epoch"):
        load_preset(tmp_path / "typo.json")


class _Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def _step(step, total=1000):
    return {"event": "step", "step": step, "total_steps": total, "epoch": 1, "batch": step,
            "batches": total, "losses": {}, "loss": 1.0, "lr": 0.01, "images_per_s": 0.5,
            "eta_s": 100.0}


def test_a_log_gets_a_line_at_least_every_interval_and_evaluation_says_so():
    stream, clock = io.StringIO(), _Clock()
    progress = TerminalProgress(stream, log_every=1000, every_s=20.0, clock=clock)
    for step in range(1, 40):  # 1 s a step: a line every 20 s, not every step
        clock.now = float(step)
        progress(_step(step))
    lines = stream.getvalue().splitlines()
    assert [line.split("] ")[1].split("/")[0] for line in lines] == ["20"]
    progress({"event": "evaluating", "epoch": 1, "step": 39, "done": 0, "total": 60})
    clock.now = 100.0
    progress({"event": "evaluating", "epoch": 1, "step": 39, "done": 30, "total": 60})
    progress({"event": "evaluating", "epoch": 1, "step": 39, "done": 32, "total": 60})
    lines = stream.getvalue().splitlines()[1:]
    assert lines == ["evaluating on 60 val images...", "evaluating: 30/60 images"]


def test_the_start_line_names_the_budget_precision_and_what_is_left_out():
    stream = io.StringIO()
    TerminalProgress(stream)(events.Started(
        device="cpu", amp=True, precision="bf16", train_images=3, val_images=1, classes=["a"],
        epochs=12, steps_per_epoch=2, total_steps=0, batch_size=4, world_size=1, lr=0.005,
        resumed_at_step=0, time_budget_s=480.0,
        left_out={"train": {"in_progress": 2, "missing": 1}}).to_dict())
    first, second = stream.getvalue().splitlines()
    assert first == ("training on cpu (bf16 autocast): 3 train / 1 val image, 1 class, a "
                     "time budget of 08:00, batch 4, lr 0.005")
    assert second.startswith("left out of training and evaluation: train: 3 images (2 "
                             "in_progress, 1 missing). Only images marked done")


def test_a_step_longer_than_the_interval_still_gets_a_line_from_the_heartbeat():
    stream, clock = io.StringIO(), _Clock()
    progress = TerminalProgress(stream, every_s=20.0, clock=clock)
    clock.now = 29.0
    progress.beat()  # steps that end print their own line after 20 s: no beat before 30 s
    assert stream.getvalue() == ""
    clock.now = 31.0
    progress.beat()  # still loading the model: said so
    progress(_step(1))
    clock.now = 62.0
    progress.beat()  # step 2 takes long: the log hears of it
    assert stream.getvalue().splitlines() == [
        "starting: loading the model and the images (00:31 since the last line)",
        "at step 1/1000: the next step is under way (00:31 since the last line)"]
    progress.start_heartbeat(period_s=0.01)  # the thread runs and stops
    progress.close()
