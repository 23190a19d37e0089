"""Ranking a project's unlabeled images with a checkpoint: which images are candidates, the
score's parts, skipped files, progress and cancel, and ``frcnn rank``'s output."""

from __future__ import annotations

import json

import pytest
import torch

from engine import build_model
from engine.active.ranking import RankingSettings, project_candidates, rank_images, rank_project
from engine.cli import main
from engine.data.annotations import BoxRecord
from engine.data.demo import CLASSES, write_demo_project
from engine.data.project import Project
from engine.detector.checkpoint import ClassInfo, load_detector, save_detector


@pytest.fixture(scope="module")
def project_and_checkpoint(tmp_path_factory):
    """A demo project of 3 labeled and 4 unlabeled images; a small random checkpoint with a
    sharpened classifier (it detects something on every image)."""
    folder = tmp_path_factory.mktemp("rank")
    project = write_demo_project(folder / "demo", count=3, unlabeled=4)
    torch.manual_seed(0)
    model = build_model("resnet18", num_classes=len(CLASSES) + 1, min_size=128, max_size=160)
    with torch.no_grad():
        model.roi_heads.box_predictor.cls_score.weight.mul_(3)
    classes = [ClassInfo(i + 1, name, i + 1) for i, name in enumerate(CLASSES)]
    return project, save_detector(folder / "best.pt", model, classes)


def test_candidates_are_unlabeled_images_without_boxes(tmp_path):
    folder = write_demo_project(tmp_path / "demo", count=2, unlabeled=4)
    with Project.open(folder) as project:
        rows = project.images()
        unlabeled = [row for row in rows if row.status == "unlabeled"]
        project.set_status([unlabeled[0].id], "skipped")  # the user's choice: left out
        project.set_status([unlabeled[1].id], "in_progress")  # no box yet: a candidate
        project.add_boxes(unlabeled[2].id, [BoxRecord(1, 1, 9, 9, 1)])  # a box: labeled
        unlabeled[3].file.unlink()
        project.check_missing()
        candidates, labeled, skipped = project_candidates(project)
    assert [c[0] for c in candidates] == [unlabeled[1].id]
    assert sorted(i for i, _f in labeled) == sorted([rows[0].id, rows[1].id, unlabeled[2].id])
    assert [s.image_id for s in skipped] == [unlabeled[3].id]
    assert "file not found" in skipped[0].reason and unlabeled[3].file.name in skipped[0].reason


def test_ranking_orders_every_unlabeled_image_with_its_score_parts(project_and_checkpoint):
    folder, checkpoint = project_and_checkpoint
    calls = []
    ranking = rank_project(checkpoint, folder, settings=RankingSettings(batch_size=2),
                           progress=lambda done, total: calls.append((done, total)))
    assert [image.rank for image in ranking.images] == [1, 2, 3, 4]
    assert ranking.references == 3
    with Project.open(folder) as project:
        unlabeled = {row.id for row in project.images(status="unlabeled")}
    assert {image.image_id for image in ranking.images} == unlabeled
    for image in ranking.images:
        assert 0 <= image.class_uncertainty <= 1 and 0 <= image.flip_disagreement <= 1
        assert 0 <= image.diversity <= 1
        assert image.score == pytest.approx(image.uncertainty * image.diversity)
    # Greedy: each image's score was the best left when it was picked, so the first is the
    # highest of all.
    assert ranking.images[0].score == max(image.score for image in ranking.images)
    assert calls == [(2, 7), (4, 7), (6, 7), (7, 7)]  # 4 candidates, then 3 labeled images


def test_a_bad_file_is_skipped_with_its_reason_and_cancel_returns_none(project_and_checkpoint,
                                                                        tmp_path):
    folder, checkpoint = project_and_checkpoint
    detector = load_detector(checkpoint)
    with Project.open(folder) as project:
        candidates, labeled, _skipped = project_candidates(project)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a picture")
    ranking = rank_images(detector, [(99, broken), *candidates[:1]], [],
                          settings=RankingSettings(flip=False))
    assert [image.image_id for image in ranking.images] == [candidates[0][0]]
    assert ranking.images[0].flip_disagreement is None
    assert ranking.images[0].uncertainty == ranking.images[0].class_uncertainty
    assert [s.image_id for s in ranking.skipped] == [99]
    assert "broken.png" in ranking.skipped[0].reason
    assert rank_images(detector, candidates, labeled, cancelled=lambda: True) is None


def test_frcnn_rank_prints_the_images_in_order_with_their_scores(project_and_checkpoint,
                                                                 capsys):
    folder, checkpoint = project_and_checkpoint
    assert main(["rank", "--checkpoint", str(checkpoint), "--project", str(folder),
                 "--top", "2"]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0].split() == ["rank", "score", "uncert", "divers", "class", "flip", "dets",
                                "image"]
    assert [line.split()[0] for line in lines[1:]] == ["1", "2"]
    assert "ranking: analysed 7 of 7 images" in captured.err
    assert "4 unlabeled images ranked against 3 labeled images" in captured.err

    assert main(["rank", "--checkpoint", str(checkpoint), "--project", str(folder), "--json",
                 "--measure", "margin"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["settings"]["class_measure"] == "margin"
    assert [image["rank"] for image in data["images"]] == [1, 2, 3, 4]
    assert set(data["images"][0]) >= {"score", "uncertainty", "diversity",
                                      "class_uncertainty", "flip_disagreement", "path"}


def test_frcnn_rank_names_a_missing_checkpoint(project_and_checkpoint, tmp_path, capsys):
    folder, _checkpoint = project_and_checkpoint
    assert main(["rank", "--checkpoint", str(tmp_path / "none.pt"), "--project",
                 str(folder)]) == 2
    assert "none.pt does not exist" in capsys.readouterr().err


def test_an_image_the_model_fails_on_is_skipped_and_the_batch_goes_on(
        project_and_checkpoint, tmp_path, monkeypatch):
    from PIL import Image

    from engine.active.ranking import ImageAnalyser

    folder, checkpoint = project_and_checkpoint
    with Project.open(folder) as project:
        candidates, _labeled, _skipped = project_candidates(project)
    odd = tmp_path / "odd.png"
    Image.new("RGB", (77, 60), (200, 10, 10)).save(odd)
    analyse = ImageAnalyser.analyse

    def failing(self, images):
        if any(image.shape[-1] == 77 for image in images):
            raise RuntimeError("boom")
        return analyse(self, images)

    monkeypatch.setattr(ImageAnalyser, "analyse", failing)
    ranking = rank_images(load_detector(checkpoint), [(99, odd), candidates[0]],
                          settings=RankingSettings(batch_size=2, flip=False))
    assert [image.image_id for image in ranking.images] == [candidates[0][0]]
    assert ranking.skipped[0].image_id == 99
    assert ranking.skipped[0].reason == f"{odd}: the detector failed on this image (boom)"
