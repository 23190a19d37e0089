"""The review queue: labels and predictions whose answer is known by hand (a missing box, a box
shifted by half its size, a swapped class, clean labels), the same scores as cleanlab called
directly, accepting a correction, and the split review's refusals, skips and cancel."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from engine import build_model
from engine.active.held_out import fold_assignment, review_kfold, review_split
from engine.active.review import (
    BADLOC,
    MISSING,
    SWAP,
    ImageLabels,
    ReviewCancelledError,
    cleanlab_inputs,
    confident_level,
    matched_score,
    score_labels,
)
from engine.cli import main
from engine.data.annotations import BoxRecord
from engine.data.demo import write_demo_project
from engine.data.project import Project
from engine.detector.checkpoint import save_detector
from engine.detector.class_map import classes_for

CAT, DOG = 1, 2  # project category ids


def predicted(box, category_id, score=0.99) -> BoxRecord:
    return BoxRecord(*box, category_id, source="predicted", score=score)


def known_case():
    """Six images of 40 px boxes, each prediction confident (0.99):

    1. clean: two cats labelled where the model sees them;
    2. a dog the model sees at (150, 150) that nobody labelled (missing box);
    3. a cat labelled 20 px (half its width) to the right of where the model sees it (badly
       placed box);
    4. a cat the model sees as a dog (swapped class);
    5, 6. clean: a dog, and a cat with a low-scoring second guess.
    """
    a, b, c = (10, 10, 50, 50), (100, 100, 140, 140), (150, 150, 190, 190)
    shifted = (30, 10, 70, 50)
    images = [ImageLabels(1, "1.png", (a, b), (CAT, CAT)),
              ImageLabels(2, "2.png", (a,), (CAT,)),
              ImageLabels(3, "3.png", (shifted,), (CAT,)),
              ImageLabels(4, "4.png", (a,), (CAT,)),
              ImageLabels(5, "5.png", (b,), (DOG,)),
              ImageLabels(6, "6.png", (c,), (CAT,))]
    predictions = [[predicted(a, CAT), predicted(b, CAT, 0.98)],
                   [predicted(a, CAT), predicted(c, DOG)],
                   [predicted(a, CAT, 0.97)],
                   [predicted(a, DOG)],
                   [predicted(b, DOG)],
                   [predicted(c, CAT), predicted(c, DOG, 0.2)]]
    return images, predictions


def test_each_known_error_is_found_with_its_correction_and_clean_labels_score_high():
    images, predictions = known_case()
    queue = score_labels(images, predictions, [CAT, DOG])
    worst = {e.image_id: e for e in queue.entries[:3]}
    assert set(worst) == {2, 3, 4}
    missing, badloc, swap = worst[2], worst[3], worst[4]
    assert (missing.kind, missing.box_index, missing.proposal, missing.proposal_category_id) \
        == (MISSING, None, (150.0, 150.0, 190.0, 190.0), DOG)
    assert (badloc.kind, badloc.box_index, badloc.box, badloc.proposal) == \
        (BADLOC, 0, (30, 10, 70, 50), (10.0, 10.0, 50.0, 50.0))
    assert (swap.kind, swap.box_index, swap.category_id, swap.proposal_category_id) == \
        (SWAP, 0, CAT, DOG)
    # Shifted by half its width: IoU 1/3, so cleanlab's similarity 0.9 / 3 + 0.1 e^-2.
    assert badloc.score == pytest.approx(0.9 / 3 + 0.1 * np.exp(-2.0), abs=1e-6)
    assert missing.score < 0.01 and swap.score < 0.01
    # Clean images: no entry below 0.9, image scores near 1, not flagged.
    assert all(e.score > 0.9 for e in queue.entries if e.image_id in (1, 5, 6))
    # find_label_issues flags by per-class thresholds (from the model's AP on the labels): the
    # shifted box's 0.31 stays above the cat's, so its image is listed but not flagged.
    assert queue.flagged == [2, 4]
    for image_id in (1, 5, 6):
        assert queue.image_scores[image_id] > 0.95
        assert image_id not in queue.flagged
    assert [e.score for e in queue.entries] == sorted(e.score for e in queue.entries)


def test_scores_are_cleanlabs_own():
    from cleanlab.object_detection import filter as cl_filter
    from cleanlab.object_detection import rank

    images, predictions = known_case()
    # With cleanlab's own confidence level (None: 0.95) every call is cleanlab's default one.
    queue = score_labels(images, predictions, [CAT, DOG], confident=None)
    assert queue.confident == 0.95
    labels, preds = cleanlab_inputs(images, predictions, [CAT, DOG])
    overlooked = rank.compute_overlooked_box_scores(labels=labels, predictions=preds)
    badloc = rank.compute_badloc_box_scores(labels=labels, predictions=preds)
    swap = rank.compute_swap_box_scores(labels=labels, predictions=preds)
    image_scores = rank.get_label_quality_scores(labels, preds, verbose=False)
    flagged = cl_filter.find_label_issues(labels, preds)
    position = {image.image_id: n for n, image in enumerate(images)}
    for entry in queue.entries:
        n = position[entry.image_id]
        if entry.kind == MISSING:
            assert entry.score in [pytest.approx(s) for s in overlooked[n]]
        else:
            scores = {BADLOC: badloc, SWAP: swap}[entry.kind]
            assert entry.score == pytest.approx(scores[n][entry.box_index])
        assert entry.image_score == pytest.approx(image_scores[n])
        assert entry.image_flagged == bool(flagged[n])
    assert list(queue.image_scores.values()) == pytest.approx(list(image_scores))


def test_a_less_sure_model_counts_as_confident_from_its_own_level():
    """The known case with every score 0.1 lower (the dog on the labelled cat at 0.92): at
    cleanlab's 0.95 no prediction is confident, so the missing box and the swapped class go
    unseen; at the model's own level (the lower quartile of its scores on the labels it finds)
    both are found again, with cleanlab's functions given that level."""
    from cleanlab.object_detection import rank

    images, predictions = known_case()
    unsure = [[BoxRecord(p.x0, p.y0, p.x1, p.y1, p.category_id, source="predicted",
                         score=p.score - 0.1) for p in found] for found in predictions]
    unsure[3] = [predicted((10, 10, 50, 50), DOG, 0.92)]  # the dog on the cat: above 0.89
    fixed = score_labels(images, unsure, [CAT, DOG], confident=None)
    assert {e.kind for e in fixed.entries if e.score < 0.5} == {BADLOC}
    # The labels it finds (not the shifted nor the swapped one), at 0.89, 0.88, 0.89, 0.89,
    # 0.89: the lower quartile 0.89.
    assert matched_score(images, unsure) == pytest.approx(0.89)
    auto = score_labels(images, unsure, [CAT, DOG])
    assert auto.confident == pytest.approx(0.89)
    worst = {e.image_id: e.kind for e in auto.entries[:3]}
    assert worst == {2: MISSING, 3: BADLOC, 4: SWAP}
    labels, preds = cleanlab_inputs(images, unsure, [CAT, DOG])
    swap = rank.compute_swap_box_scores(labels=labels, predictions=preds,
                                        high_probability_threshold=auto.confident)
    assert next(e.score for e in auto.entries if e.kind == SWAP) == pytest.approx(swap[3][0])
    assert auto.rescored(None).confident == 0.95
    assert confident_level(0.7, images, unsure) == 0.7
    with pytest.raises(ValueError):
        confident_level("sure", images, unsure)


def test_cleanlab_inputs_are_per_class_arrays_and_leave_out_unknown_classes():
    image = ImageLabels(7, "7.png", ((0, 0, 10, 10), (5, 5, 20, 20)), (DOG, 9))
    labels, preds = cleanlab_inputs([image], [[predicted((1, 1, 9, 9), DOG, 0.5),
                                               predicted((1, 1, 9, 9), 9, 0.5)]], [CAT, DOG])
    assert labels[0]["bboxes"].tolist() == [[0, 0, 10, 10]]
    assert labels[0]["labels"].tolist() == [1]
    assert [p.shape for p in preds[0]] == [(0, 5), (1, 5)]
    assert preds[0][1].tolist() == [[1, 1, 9, 9, 0.5]]


def test_accepting_a_correction_adds_moves_or_reclasses_the_box():
    images, predictions = known_case()
    queue = score_labels(images, predictions, [CAT, DOG])
    worst = {e.image_id: e for e in queue.entries[:3]}
    a = BoxRecord(10, 10, 50, 50, CAT, source="manual")
    added = worst[2].corrected((a,))
    assert added[0] == a and (added[1].x0, added[1].category_id, added[1].source) == \
        (150.0, DOG, "predicted")
    moved = worst[3].corrected((BoxRecord(30, 10, 70, 50, CAT, difficult=True),))
    assert moved == (BoxRecord(10.0, 10.0, 50.0, 50.0, CAT, difficult=True),)
    assert worst[4].corrected((a,)) == (BoxRecord(10, 10, 50, 50, DOG, source="manual"),)
    # The box was edited since the review: nothing to apply.
    assert worst[4].corrected((BoxRecord(11, 10, 50, 50, CAT),)) is None


def test_no_images_give_an_empty_queue():
    assert score_labels([], [], [CAT]).entries == []


def test_folds_are_balanced_and_seeded():
    folds = fold_assignment(list(range(10)), 3, seed=1)
    assert sorted(list(folds.values()).count(k) for k in range(3)) == [3, 3, 4]
    assert folds == fold_assignment(list(range(10)), 3, seed=1)
    with pytest.raises(ValueError):
        fold_assignment([1, 2], 3)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A 6-image demo project (3 in val, one of them an unreadable file) and a sharpened
    random resnet18 checkpoint at 128 px in a run folder that trained on train."""
    folder = tmp_path_factory.mktemp("review")
    project = write_demo_project(folder / "demo", count=6, val_fraction=0.5)
    with Project.open(project) as store:
        classes = classes_for(store.categories())
        broken = store.dataset("val")[0].path
    broken.write_bytes(b"not a png")
    torch.manual_seed(0)
    model = build_model("resnet18", num_classes=len(classes) + 1, min_size=128, max_size=160,
                        rpn_pre_nms_top_n_test=200, rpn_post_nms_top_n_test=100)
    with torch.no_grad():
        model.roi_heads.box_predictor.cls_score.weight.mul_(30)
    run = folder / "run"
    run.mkdir()
    (run / "job.json").write_text(json.dumps({"project": str(project), "out": str(run),
                                              "train_split": "train", "val_split": "val"}))
    checkpoint = save_detector(run / "best.pt", model, classes)
    return project, checkpoint, broken


def test_a_split_review_skips_a_bad_file_by_name_and_reports_progress(tiny):
    project, checkpoint, broken = tiny
    seen = []
    queue = review_split(checkpoint, project, "val", progress=lambda f, t: seen.append((f, t)))
    assert [path for path, _reason in queue.skipped] == [str(broken)]
    assert len(queue.image_scores) == 2
    assert seen[-1][0] == 1.0 and any("image 3 of 3" in t for _f, t in seen)
    assert "best.pt on the val split" in queue.source


def test_reviewing_the_split_a_model_trained_on_is_refused(tiny):
    project, checkpoint, _broken = tiny
    with pytest.raises(ValueError, match="trained on the train split"):
        review_split(checkpoint, project, "train")


def test_a_split_review_stops_when_asked(tiny):
    project, checkpoint, _broken = tiny
    with pytest.raises(ReviewCancelledError):
        review_split(checkpoint, project, "val", stop=lambda: True)


def test_frcnn_review_prints_the_queue_and_progress(tiny, capsys):
    project, checkpoint, broken = tiny
    assert main(["review", "--checkpoint", str(checkpoint), "--project", str(project),
                 "--top", "3", "--json"]) == 0
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert data["images"] == 2 and len(data["queue"]) <= 3
    assert "review: 100% done" in captured.err
    assert f"{broken}: skipped" in captured.err
    assert main(["review", "--checkpoint", str(checkpoint), "--project", str(project),
                 "--top", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "worst first" in lines[0] and len(lines) <= 3


@pytest.mark.slow
def test_kfold_reviews_every_done_image_with_models_trained_on_the_others(tiny, tmp_path):
    project, _checkpoint, broken = tiny
    seen = []
    queue = review_kfold(project, folds=2, budget_s=20, device="cpu", work=tmp_path,
                         progress=lambda f, t: seen.append((f, t)))
    assert sorted((tmp_path / f"fold-{k}").name for k in (1, 2)) == ["fold-1", "fold-2"]
    assert all((tmp_path / f"fold-{k}" / "last.pt").is_file() for k in (1, 2))
    assert len(queue.image_scores) == 5 and [p for p, _r in queue.skipped] == [str(broken)]
    assert "2-fold" in queue.source and seen[-1][0] == 1.0
    assert any("fold 2 of 2: training" in t for _f, t in seen)


def test_frcnn_review_needs_a_checkpoint_or_folds(tiny, capsys):
    project, _checkpoint, _broken = tiny
    assert main(["review", "--project", str(project)]) == 2
    assert "--folds" in capsys.readouterr().err


def test_the_trained_split_is_read_from_the_app_job_or_a_cli_run_log(tmp_path):
    from engine.active.held_out import trained_split

    app_run, cli_run, elsewhere = tmp_path / "app", tmp_path / "cli", tmp_path / "other"
    for folder in (app_run, cli_run, elsewhere):
        folder.mkdir()
    (app_run / "job.json").write_text(json.dumps({"train_split": "test"}))
    # frcnn train writes no job.json; its events.jsonl starts with these two events.
    (cli_run / "events.jsonl").write_text(
        '{"event": "hello", "time": 1.0, "protocol": 1, "pid": 7}\n'
        '{"event": "started", "time": 2.0, "device": "cpu", "train_images": 4}\n')
    assert trained_split(app_run / "best.pt") == "test"
    assert trained_split(cli_run / "best.pt") == "train"
    assert trained_split(elsewhere / "best.pt") is None
