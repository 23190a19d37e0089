"""``frcnn train``, ``frcnn eval`` and ``frcnn predict`` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.cli import main
from engine.data.demo import write_demo_project
from engine.detector.checkpoint import load_detector, read_checkpoint
from engine.training.job import TrainingJob, make_trainer

from ...conftest import REPO

TINY_CONFIG = {
    "detector": {"min_size": 160, "max_size": 224, "rpn_batch_size_per_image": 32,
                 "box_batch_size_per_image": 32},
    "training": {"epochs": 2, "batch_size": 2},
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    project = write_demo_project(folder / "project", count=6, seed=11)
    config = folder / "tiny.json"
    config.write_text(json.dumps(TINY_CONFIG))
    code = main(["train", "--project", str(project), "--out", str(folder / "run"),
                 "--config", str(config), "--device", "cpu"])
    return project, folder / "run", code


def test_train_writes_checkpoints_and_metrics(run):
    _, out, code = run
    assert code == 0
    assert (out / "last.pt").is_file() and (out / "best.pt").is_file()
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [1, 2]
    assert {"AP", "AP50", "AP75", "per_class"} <= set(lines[0])
    detector = load_detector(out / "last.pt")
    assert detector.model.config.backbone == "efficientnet_lite0"  # the offline default
    assert [c.name for c in detector.classes] == ["circle", "square", "triangle", "cross"]


def test_eval_prints_pycocotools_numbers(run, capsys, tmp_path):
    project, out, _ = run
    numbers = tmp_path / "eval.json"
    assert main(["eval", "--checkpoint", str(out / "last.pt"), "--project", str(project),
                 "--split", "val", "--device", "cpu", "--json", str(numbers)]) == 0
    printed = capsys.readouterr().out
    assert "Average Precision  (AP) @[ IoU=0.50:0.95" in printed
    assert set(json.loads(numbers.read_text())["per_class"]) <= {
        "circle", "square", "triangle", "cross"}


def test_predict_writes_coco_results(run, tmp_path):
    project, out, _ = run
    images = sorted((project / "images").iterdir())[:2]
    results = tmp_path / "preds.json"
    assert main(["predict", *map(str, images), "--checkpoint", str(out / "last.pt"),
                 "--out", str(results), "--device", "cpu"]) == 0
    for item in json.loads(results.read_text()):
        assert set(item) == {"image_id", "file_name", "category_id", "category", "score",
                             "bbox"}
        assert item["category_id"] in (1, 2, 3, 4)
        # Without --coco, image ids are 1, 2, ... in the order the images were given.
        assert item["image_id"] == images.index(Path(item["file_name"])) + 1


def test_resume_and_a_missing_checkpoint(run, capsys):
    project, out, _ = run
    code = main(["train", "--project", str(project), "--out", str(out), "--device", "cpu",
                 "--resume", str(out / "missing.pt")])
    assert code == 2 and "missing.pt" in capsys.readouterr().err


def _position(checkpoint) -> dict:
    return read_checkpoint(checkpoint)["extra"]["training"]["position"]


def test_resume_after_max_steps_runs_to_the_end_of_its_epochs(run, tmp_path):
    """--max-steps belongs to the job that stopped, not to the recipe: resuming without it
    trains to the last epoch, as the uninterrupted run did."""
    project, uninterrupted, _ = run
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY_CONFIG))
    out = tmp_path / "run"
    common = ["--project", str(project), "--out", str(out), "--device", "cpu"]
    assert main(["train", *common, "--config", str(config), "--max-steps", "2"]) == 0
    assert _position(out / "last.pt") == {"epoch": 0, "batch": 2, "step": 2}
    assert not (out / "best.pt").exists() and not (out / "metrics.jsonl").exists()

    # A limit the new job names still applies.
    job = TrainingJob(project=str(project), out=str(out), resume=str(out / "last.pt"),
                      training={"max_steps": 3})
    assert make_trainer(job).settings.max_steps == 3

    assert main(["train", *common, "--resume", str(out / "last.pt")]) == 0
    end = _position(uninterrupted / "last.pt")
    assert end["epoch"] == 2 and end["step"] > 2
    assert _position(out / "last.pt") == end
    assert (out / "best.pt").is_file()
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [1, 2]


def test_shipped_configs_are_valid():
    from engine.detector.config import DetectorConfig
    from engine.training import TrainSettings

    for path in (REPO / "resources" / "configs").glob("*.json"):
        data = json.loads(path.read_text())
        DetectorConfig.from_dict(data["detector"])
        TrainSettings.from_dict(data["training"])


def test_predict_results_load_in_pycocotools_with_the_ground_truths_image_ids(run, tmp_path,
                                                                             capsys):
    """``--coco GT.json`` takes each image's id from the ground truth (here the project's own
    COCO export), so that ``COCO(GT).loadRes`` and COCOeval pair them. ``file_name`` says
    which image each detection is on."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    project, out, _ = run
    ground_truth_file = tmp_path / "gt.json"
    assert main(["export-annotations", "--project", str(project), "--format", "coco",
                 "--out", str(ground_truth_file)]) == 0
    ground_truth = COCO(str(ground_truth_file))
    id_of = {Path(image["file_name"]).name: image["id"]
             for image in ground_truth.dataset["images"]}
    images = sorted((project / "images").iterdir())[-2:]  # ids other than 1, 2
    results = tmp_path / "preds.json"
    assert main(["predict", *map(str, images), "--checkpoint", str(out / "last.pt"),
                 "--device", "cpu", "--out", str(results), "--coco",
                 str(ground_truth_file)]) == 0
    predictions = json.loads(results.read_text())
    assert predictions, "the tiny model finds nothing: nothing to load"
    for item in predictions:
        assert set(item) == {"image_id", "file_name", "category_id", "category", "score",
                             "bbox"}
        assert item["image_id"] == id_of[Path(item["file_name"]).name]
    loaded = ground_truth.loadRes(str(results))
    assert len(loaded.getAnnIds()) == len(predictions)
    evaluation = COCOeval(ground_truth, loaded, "bbox")
    evaluation.params.imgIds = [id_of[image.name] for image in images]
    evaluation.evaluate()
    evaluation.accumulate()
    assert evaluation.eval["precision"].shape[2] == 4  # the 4 demo classes
    # An image the ground truth does not hold: an error before any work, nothing written.
    capsys.readouterr()
    stranger = tmp_path / "stranger.png"
    stranger.write_bytes(images[0].read_bytes())
    assert main(["predict", str(stranger), "--checkpoint", str(out / "last.pt"), "--out",
                 str(tmp_path / "none.json"), "--coco", str(ground_truth_file)]) == 2
    assert f"{stranger}: not among the images of {ground_truth_file}" in capsys.readouterr().err
    assert not (tmp_path / "none.json").exists()
