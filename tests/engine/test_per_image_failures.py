"""One image the model cannot take (a 2000 x 10 strip) is named and skipped by predict,
evaluation, suggestions and training; the others' results are written. A score threshold the
user gives applies, also below the checkpoint's own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from engine.assist import Predictor
from engine.cli import main
from engine.data.images import ImageLoadError
from engine.data.project import CategoryRow, TrainingRecord
from engine.detector.build import build_model
from engine.detector.checkpoint import save_detector
from engine.detector.class_map import ClassInfo
from engine.training.data import DetectionDataset, UnreadableImage
from engine.training.evaluation import evaluate_model

CLASSES = 90  # a random classifier over 91 classes scores about 1/91 = 0.011: under 0.05


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = build_model("resnet18", num_classes=CLASSES + 1, weights="none", min_size=64,
                        max_size=96, box_score_thresh=0.05)
    path = tmp_path_factory.mktemp("model") / "model.pt"
    save_detector(path, model, [ClassInfo(class_id=i, name=f"c{i}", category_id=i)
                                for i in range(1, CLASSES + 1)])
    return path


def _images(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, size in (("a.png", (80, 60)), ("strip.png", (2000, 10)), ("b.png", (60, 80))):
        Image.effect_noise(size, 60).convert("RGB").save(folder / name)
        paths.append(folder / name)
    return paths


def test_predict_skips_the_image_it_cannot_take_and_writes_the_others(checkpoint, tmp_path,
                                                                         capsys):
    images = _images(tmp_path / "images")
    out = tmp_path / "results.json"
    code = main(["predict", *map(str, images), "--checkpoint", str(checkpoint), "--out",
                 str(out), "--device", "cpu", "--score-thresh", "0.00001"])
    captured = capsys.readouterr()
    assert code == 1
    assert f"skipped: {images[1]}: a 2000x10 image is too elongated" in captured.err
    results = json.loads(out.read_text())
    assert {Path(r["file_name"]).name for r in results} == {"a.png", "b.png"}
    assert "1 image skipped" in captured.out


def test_a_score_threshold_below_the_checkpoints_applies(checkpoint, tmp_path, capsys):
    image = _images(tmp_path / "images")[0]
    counts = []
    for threshold in ([], ["--score-thresh", "0.00001"]):
        out = tmp_path / "r.json"
        assert main(["predict", str(image), "--checkpoint", str(checkpoint), "--out", str(out),
                     "--device", "cpu", *threshold]) == 0
        results = json.loads(out.read_text())
        assert all(r["score"] >= (0.00001 if threshold else 0.05) for r in results)
        counts.append(len(results))
    capsys.readouterr()
    assert counts[0] == 0 and counts[1] > 0


def test_suggestions_name_the_image_they_cannot_take(checkpoint, tmp_path):
    good, strip, _ = _images(tmp_path / "images")
    predictor = Predictor(checkpoint, [CategoryRow(1, "c1", "#ff0000")])
    assert isinstance(predictor.predict(good), list)
    with pytest.raises(ImageLoadError, match=rf"{strip}: a 2000x10 image is too elongated"):
        predictor.predict(strip)


def test_evaluation_and_training_data_leave_it_out_by_name(checkpoint, tmp_path):
    from engine.detector.checkpoint import load_detector

    model = load_detector(checkpoint).model
    records = [TrainingRecord(i, path, *_size(path), ((1.0, 1.0, 9.0, 9.0),), (1,), (False,))
               for i, path in enumerate(_images(tmp_path / "images"), start=1)]
    classes = [ClassInfo(class_id=i, name=f"c{i}", category_id=i) for i in range(1, CLASSES + 1)]
    dataset = DetectionDataset(records, classes, input_check=model.transform.size_check())
    loaded = dataset.load(1)  # what training's batches and the validation check call
    assert isinstance(loaded, UnreadableImage) and loaded.path.endswith("strip.png")
    assert "too elongated" in loaded.reason and "strip.png" in loaded.reason
    skipped: list = []
    result = evaluate_model(model, dataset, classes, skipped=skipped)
    assert [item.image_id for item in skipped] == [2]
    assert result.images == 2  # the other two are evaluated


def _size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        return image.size


def test_training_leaves_it_out_by_name_and_says_what_initial_weights_left_out(tmp_path):
    from engine.detector.config import DetectorConfig
    from engine.training import Trainer, TrainSettings

    weights = tmp_path / "other.pt"
    torch.save(build_model("resnet18", num_classes=5, weights="none", min_size=64,
                           max_size=96).state_dict(), weights)
    records = [TrainingRecord(i, path, *_size(path), ((1.0, 1.0, 9.0, 9.0),), (1,), (False,))
               for i, path in enumerate(_images(tmp_path / "images"), start=1)]
    events: list[dict] = []
    trainer = Trainer(
        train_records=records, val_records=[], classes=[ClassInfo(1, "thing", 1)],
        out_dir=tmp_path / "run",
        detector=DetectorConfig(backbone="resnet18", min_size=64, max_size=96,
                                rpn_batch_size_per_image=16, box_batch_size_per_image=16),
        settings=TrainSettings(epochs=1, batch_size=1, eval_every=0, seed=0),
        init_weights=str(weights), device="cpu", report=events.append)
    assert trainer.run() == "finished"
    warnings = [e for e in events if e["event"] == "warning"]
    assert [e["kind"] for e in warnings] == ["initial_weights", "unreadable_image"]
    assert "5 classes" in warnings[0]["message"] and "this model has 2" in warnings[0]["message"]
    assert warnings[1]["path"].endswith("strip.png") and "too elongated" in warnings[1]["message"]
    # Its batch took another image instead (every batch gives a step).
    assert [e["step"] for e in events if e["event"] == "step"] == [1, 2, 3]
