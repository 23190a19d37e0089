"""Pending predictions: a model's suggestions kept in the project until the user decides."""

from __future__ import annotations

import pytest

from engine.data.annotations import BoxRecord
from engine.data.project import Project, ProjectError


@pytest.fixture
def project(tmp_path):
    with Project.create(tmp_path / "p") as project:
        project.add_category("cat")
        project.add_category("dog")
        project.insert_image(tmp_path / "a.png", width=100, height=80, hash=None)
        project.insert_image(tmp_path / "b.png", width=100, height=80, hash=None)
        yield project


def _suggestion(x0, score, category_id=1):
    return BoxRecord(x0, 10, x0 + 20, 30, category_id, source="predicted", score=score)


def test_predictions_are_replaced_per_image_and_listed_best_first(project):
    project.set_predictions(1, [_suggestion(5, 0.4), _suggestion(40, 0.9, 2)], "run/best.pt")
    project.set_predictions(2, [_suggestion(5, 0.7)], "run/best.pt")
    rows = project.predictions(1)
    assert [(r.x0, r.score, r.category_id, r.model) for r in rows] == \
        [(40, 0.9, 2, "run/best.pt"), (5, 0.4, 1, "run/best.pt")]
    assert rows[0].to_record() == BoxRecord(40, 10, 60, 30, 2, source="predicted", score=0.9)
    project.set_predictions(1, [_suggestion(7, 0.5)], "other.pt")
    assert [(r.x0, r.model) for r in project.predictions(1)] == [(7, "other.pt")]
    assert project.prediction_counts() == {1: 1, 2: 1}
    assert project.boxes(1) == []  # suggestions are not boxes until accepted


def test_bad_predictions_are_refused_and_change_nothing(project):
    project.set_predictions(1, [_suggestion(5, 0.4)], "m")
    with pytest.raises(ValueError, match="score must be in"):
        project.set_predictions(1, [_suggestion(5, 1.5)], "m")
    with pytest.raises(ProjectError, match="no category with id 9"):
        project.set_predictions(1, [_suggestion(5, 0.5, 9)], "m")
    assert [r.score for r in project.predictions(1)] == [0.4]


def test_accepting_is_one_transaction_with_the_boxes(project):
    project.set_predictions(1, [_suggestion(5, 0.4), _suggestion(40, 0.9)], "m")
    accepted = project.predictions(1)[0].to_record()
    project.set_boxes(1, [accepted], predictions=[_suggestion(5, 0.4)], model="m",
                      base=project.boxes(1))
    assert [(b.x0, b.source, b.score) for b in project.boxes(1)] == [(40, "predicted", 0.9)]
    assert [r.x0 for r in project.predictions(1)] == [5]


def test_merging_classes_moves_predictions_and_deleting_one_drops_them(project):
    project.set_predictions(1, [_suggestion(5, 0.4, 2), _suggestion(40, 0.9, 1)], "m")
    project.merge_categories(2, 1)
    assert {r.category_id for r in project.predictions(1)} == {1}
    assert len(project.predictions(1)) == 2
    project.delete_category(1)  # no boxes use it; its suggestions go with it
    assert project.predictions(1) == []
