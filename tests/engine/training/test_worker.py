"""The training worker process, driven the way the GUI drives it: start, progress, pause,
resume, stop, a crash, a kill."""

from __future__ import annotations

import json

import pytest

from engine.data.demo import write_demo_project
from engine.detector.checkpoint import load_detector
from engine.training.worker import (
    EXIT_BAD_JOB,
    EXIT_ERROR,
    EXIT_STOPPED,
    TrainingProcess,
)

TIMEOUT = 120  # seconds without any event before a test gives up


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return write_demo_project(tmp_path_factory.mktemp("demo") / "project", count=4, seed=5)


def _job(project, out, **training):
    return {
        "project": str(project), "out": str(out), "weights": "imagenet", "device": "cpu",
        "detector": {"backbone": "efficientnet_lite0", "min_size": 160, "max_size": 224,
                     "rpn_batch_size_per_image": 32, "box_batch_size_per_image": 32},
        "training": {"epochs": 50, "batch_size": 1, "eval_every": 0, **training},
    }


def _until(events, kind):
    seen = []
    for event in events:
        seen.append(event)
        if event["event"] == kind:
            return event, seen
        if event["event"] == "error":
            raise AssertionError(f"worker error: {event['message']}")
    raise AssertionError(f"the worker exited before {kind!r}; saw {[e['event'] for e in seen]}")


def test_progress_pause_resume_and_stop(project, tmp_path):
    worker = TrainingProcess(_job(project, tmp_path / "run"))
    events = worker.events(timeout=TIMEOUT)
    hello, _ = _until(events, "hello")
    assert hello["protocol"] == 1
    started, _ = _until(events, "started")
    assert started["train_images"] + started["val_images"] == 4
    assert started["classes"] == ["circle", "square", "triangle", "cross"]
    step, _ = _until(events, "step")
    assert set(step["losses"]) == {"loss_objectness", "loss_rpn_box_reg", "loss_classifier",
                                   "loss_box_reg"}
    assert step["epoch"] == 1 and step["lr"] > 0

    worker.pause()
    paused, _ = _until(events, "paused")
    worker.resume()
    resumed, _ = _until(events, "resumed")
    assert resumed["step"] == paused["step"]
    after, _ = _until(events, "step")
    assert after["step"] == paused["step"] + 1

    worker.stop()
    stopped, seen = _until(events, "stopped")
    assert stopped["reason"] == "requested"
    assert any(e["event"] == "checkpoint" and e["kind"] == "last" for e in seen)
    assert list(events) == []
    assert worker.returncode == EXIT_STOPPED
    # The checkpoint the stop wrote resumes where it stopped.
    saved = load_detector(tmp_path / "run" / "last.pt")
    assert saved.extra["training"]["position"]["step"] == stopped["step"]


def test_a_crash_is_reported_and_a_killed_worker_leaves_its_checkpoint(project, tmp_path):
    bad = TrainingProcess(_job(tmp_path / "no-such-project", tmp_path / "bad"))
    events = list(bad.events(timeout=TIMEOUT))
    assert events[-1]["event"] == "error" and "no-such-project" in events[-1]["message"]
    assert bad.returncode == EXIT_ERROR

    # One step per epoch (4 images: 3 train, batch 4 -> 1 batch), so checkpoints come fast.
    worker = TrainingProcess(_job(project, tmp_path / "killed", batch_size=4))
    events = worker.events(timeout=TIMEOUT)
    _until(events, "checkpoint")
    _until(events, "checkpoint")  # the next epoch's: one complete file exists for sure
    worker.kill()
    list(events)
    assert worker.returncode != 0
    saved = load_detector(tmp_path / "killed" / "last.pt")
    assert saved.extra["training"]["position"]["step"] >= 1


def test_a_bad_job_file_exits_with_its_own_status(tmp_path):
    worker = TrainingProcess({"project": str(tmp_path), "out": str(tmp_path / "o"),
                              "learning_rate": 3})
    events = list(worker.events(timeout=TIMEOUT))
    assert events[-1]["event"] == "error" and events[-1]["kind"] == "config"
    assert "learning_rate" in events[-1]["message"]
    assert worker.returncode == EXIT_BAD_JOB
    assert json.loads(json.dumps(events))  # every event is plain JSON
