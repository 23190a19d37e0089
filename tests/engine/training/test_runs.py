"""The project's training runs read back from their folders: configuration, checkpoints,
metrics and how each run ended."""

from __future__ import annotations

import json
import os
from datetime import datetime

import pytest

from engine.data.demo import write_demo_project
from engine.training.job import TrainingJob, run_job
from engine.training.runs import (
    list_runs,
    new_run_folder,
    read_events,
    read_metrics,
    runs_folder,
    write_job,
)

TINY_DETECTOR = {"backbone": "efficientnet_lite0", "min_size": 160, "max_size": 224,
                 "rpn_batch_size_per_image": 32, "box_batch_size_per_image": 32,
                 "representation_size": 128}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A demo project (3 train, 1 val images) with one finished run of one epoch (2 steps),
    written as the GUI's run is: job.json beside what the training process writes (the
    trainer's files and events.jsonl)."""
    project = write_demo_project(tmp_path_factory.mktemp("runs") / "demo", count=4)
    folder = new_run_folder(project, datetime(2026, 11, 25, 10, 41, 7))
    job = TrainingJob(project=str(project), out=str(folder), device="cpu",
                      detector=TINY_DETECTOR, training={"epochs": 1, "batch_size": 2})
    write_job(folder, job)
    run_job(job)
    return project, folder


def test_a_finished_run_is_listed_with_its_configuration_checkpoints_and_metrics(trained):
    project, folder = trained
    assert folder == runs_folder(project) / "2026-11-25_10-41-07"
    [run] = list_runs(project)
    assert run.name == "2026-11-25_10-41-07" and run.started == datetime(2026, 11, 25, 10, 41, 7)
    assert run.state == "finished" and not run.can_resume()
    assert run.checkpoints == {"best": folder / "best.pt", "last": folder / "last.pt"}
    assert run.job.device == "cpu" and run.weights == "imagenet"
    assert run.backbone == "efficientnet_lite0" and run.settings().epochs == 1
    [metrics] = run.epochs
    assert metrics["epoch"] == 1 and run.best_ap == metrics["AP"]
    assert run.best_ap50 == metrics["AP50"]
    assert (run.step, run.total_steps) == (2, 2)
    assert run.describe() == ("efficientnet_lite0, imagenet weights, 1 epoch, batch 2, 160 px, "
                              "lr 0.0025 (recipe)")
    assert [e["event"] for e in read_events(folder)][:2] == ["hello", "started"]


def _copy_run(source, target, *, events=None, job=True, checkpoint=True):
    """A run folder like ``source`` (hard links for the large files) with other events."""
    target.mkdir(parents=True)
    if job:
        (target / "job.json").write_text((source / "job.json").read_text())
    if checkpoint:
        os.link(source / "last.pt", target / "last.pt")
    (target / "metrics.jsonl").write_text((source / "metrics.jsonl").read_text())
    if events is not None:
        (target / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    return target


def test_how_a_run_ended_is_read_from_its_events(trained, tmp_path):
    _, source = trained
    dead_pid = 2**22 + 12345  # above Linux's pid_max: no such process
    runs = tmp_path / "p" / "runs"
    hello = {"event": "hello", "pid": dead_pid}
    step = {"event": "step", "step": 1, "total_steps": 4}
    _copy_run(source, runs / "2026-01-01_00-00-01",
              events=[hello, step, {"event": "stopped", "reason": "requested", "step": 1}])
    _copy_run(source, runs / "2026-01-01_00-00-02",
              events=[hello, step, {"event": "error", "kind": "nan", "message": "loss became nan"}])
    _copy_run(source, runs / "2026-01-01_00-00-03",
              events=[hello, step, {"event": "exited", "returncode": -9,
                                    "message": "killed by SIGKILL"}])
    _copy_run(source, runs / "2026-01-01_00-00-04", events=[hello, step])
    _copy_run(source, runs / "2026-01-01_00-00-05", checkpoint=False,
              events=[hello, step, {"event": "stopped", "step": 1},
                      {"event": "hello", "pid": os.getpid()}, {"event": "started"}])
    # A torn last line (a write cut short) is skipped, not an error.
    with open(runs / "2026-01-01_00-00-04" / "events.jsonl", "a") as stream:
        stream.write('{"event": "st')
    listed = list_runs(tmp_path / "p")
    assert [(r.name[-2:], r.state) for r in listed] == [
        ("05", "running"), ("04", "interrupted"), ("03", "failed"), ("02", "failed"),
        ("01", "stopped")]
    by_name = {r.name[-2:]: r for r in listed}
    assert by_name["01"].message == "stopped on request at step 1"
    assert by_name["02"].message == "loss became nan"
    assert by_name["03"].message == "killed by SIGKILL"
    assert (by_name["04"].step, by_name["04"].total_steps) == (1, 4)
    assert [r.can_resume() for r in listed] == [False, True, True, True, True]


def test_a_command_line_run_is_read_from_its_checkpoint(trained, tmp_path):
    _, source = trained
    folder = _copy_run(source, tmp_path / "p" / "runs" / "from-the-cli", job=False)
    [run] = list_runs(tmp_path / "p")
    assert run.job is None and run.state == "finished"
    assert run.detector["min_size"] == 160 and run.settings().batch_size == 2
    assert run.checkpoints == {"last": folder / "last.pt"}


def test_metrics_keep_one_line_per_epoch_and_empty_folders_are_not_runs(tmp_path):
    folder = tmp_path / "runs" / "r"
    folder.mkdir(parents=True)
    (tmp_path / "runs" / "not-a-run").mkdir()
    lines = [{"epoch": 2, "AP": 0.2}, {"epoch": 1, "AP": 0.1}, {"epoch": 2, "AP": 0.3}]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    assert read_metrics(folder) == [{"epoch": 1, "AP": 0.1}, {"epoch": 2, "AP": 0.3}]
    [run] = list_runs(tmp_path)
    assert run.state == "unknown" and run.best_ap == 0.3
    assert list_runs(tmp_path / "nowhere") == []


def test_run_names_are_start_times_and_never_collide(tmp_path):
    when = datetime(2026, 11, 25, 10, 41, 7)
    assert new_run_folder(tmp_path, when).name == "2026-11-25_10-41-07"
    assert new_run_folder(tmp_path, when).name == "2026-11-25_10-41-07-2"
