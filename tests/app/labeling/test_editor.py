"""The labeling editor: box edits saved on flush, undo and redo of every kind of edit, and a
failed write that keeps the user's work."""

from __future__ import annotations

import dataclasses

import pytest

from app.labeling.editor import ProjectEditor
from engine.data.annotations import BoxRecord
from engine.data.demo import write_demo_project
from engine.data.project import EditConflictError, Project, ProjectError


@pytest.fixture
def project(tmp_path):
    folder = write_demo_project(tmp_path / "demo", count=3)
    with Project.open(folder) as project:
        yield project


def _stored(project, image_id):
    return tuple(box.to_record() for box in project.boxes(image_id))


def test_box_edits_reach_the_store_on_flush_and_mark_an_unlabeled_image_in_progress(project):
    first = project.images()[0].id
    project.set_boxes(first, [], status="unlabeled", base=project.boxes(first))
    changes = []
    editor = ProjectEditor(project, on_change=changes.append)
    editor.open_image(first)
    box = BoxRecord(10, 20, 30, 40, 1, source="manual")
    editor.edit_boxes([box], "Draw box")
    assert project.boxes(first) == []  # not yet written: the window's timer flushes
    assert editor.dirty and changes[-1].boxes and changes[-1].images == {first}
    assert editor.flush() is True
    assert _stored(project, first) == (box,)
    assert project.image(first).status == "in_progress"
    assert editor.flush() is False


def test_undo_and_redo_of_box_edits_switch_back_to_the_image_they_were_made_on(project):
    a, b = (image.id for image in project.images()[:2])
    editor = ProjectEditor(project)
    editor.open_image(a)
    original_a = editor.boxes
    editor.edit_boxes(original_a[1:], "Delete box")
    editor.open_image(b)  # flushes a's edit
    assert _stored(project, a) == original_a[1:]
    original_b = editor.boxes
    moved = dataclasses.replace(original_b[0], x0=original_b[0].x0 + 1)
    editor.edit_boxes((moved, *original_b[1:]), "Move box")

    assert editor.undo().text == "Move box"
    assert editor.image_id == b and editor.boxes == original_b
    undone = editor.undo()
    assert undone.text == "Delete box" and editor.image_id == a
    assert editor.boxes == original_a
    editor.flush()
    assert _stored(project, a) == original_a and _stored(project, b) == original_b
    assert editor.undo() is None

    editor.redo()
    editor.redo()
    assert editor.image_id == b and editor.boxes[0] == moved
    editor.flush()
    assert _stored(project, a) == original_a[1:]
    assert not editor.can_redo


def test_a_new_edit_clears_redo(project):
    editor = ProjectEditor(project)
    editor.open_image(project.images()[0].id)
    boxes = editor.boxes
    editor.edit_boxes(boxes[1:], "Delete box")
    editor.undo()
    assert editor.can_redo and editor.redo_text == "Delete box"
    editor.edit_boxes(boxes[:1], "Delete boxes")
    assert not editor.can_redo


def test_class_add_rename_recolour_undo_redo(project):
    editor = ProjectEditor(project)
    added = editor.add_category("  dog ")
    assert added.name == "dog" and added.id == 5
    editor.rename_category(added.id, "puppy")
    editor.recolor_category(added.id, "#00FF00")
    assert project.category(added.id) == dataclasses.replace(added, name="puppy",
                                                             color="#00ff00")
    editor.undo()
    editor.undo()
    assert project.category(added.id) == added
    editor.undo()
    assert project.category_by_name("dog") is None
    editor.redo()
    assert project.category(5) == added
    with pytest.raises(ProjectError):
        editor.add_category("circle")  # names are unique
    assert editor.undo_text == "Add class 'dog'"


def test_deleting_a_class_takes_its_boxes_and_undo_restores_both_exactly(project):
    editor = ProjectEditor(project)
    images = project.images()
    editor.open_image(images[0].id)
    before = {image.id: _stored(project, image.id) for image in images}
    counts = editor.box_counts()
    circle = project.category_by_name("circle")
    editor.delete_category(circle.id)
    assert project.category_by_name("circle") is None
    assert all(box.category_id != circle.id for box in editor.boxes)
    remaining = sum(len(project.boxes(image.id)) for image in images)
    assert remaining == sum(counts.values()) - counts.get(circle.id, 0)
    editor.undo()
    assert project.category(circle.id) == circle
    assert {image.id: _stored(project, image.id) for image in images} == before
    assert editor.boxes == before[images[0].id]


def test_merging_classes_and_undo(project):
    editor = ProjectEditor(project)
    images = project.images()
    before = {image.id: _stored(project, image.id) for image in images}
    square, circle = project.category_by_name("square"), project.category_by_name("circle")
    editor.merge_categories(square.id, circle.id)
    after = [box for image in images for box in project.boxes(image.id)]
    assert all(box.category_id != square.id for box in after)
    editor.undo()
    assert project.category(square.id) == square
    assert {image.id: _stored(project, image.id) for image in images} == before
    with pytest.raises(ValueError):
        editor.merge_categories(circle.id, circle.id)


def test_status_and_split_edits_undo(project):
    editor = ProjectEditor(project)
    ids = [image.id for image in project.images()]
    splits = {image.id: image.split for image in project.images()}
    editor.open_image(ids[0])
    editor.set_status(ids[:2], "skipped")
    assert [project.image(i).status for i in ids] == ["skipped", "skipped", "done"]
    assert editor.status == "skipped"
    editor.set_splits({ids[0]: "test", ids[1]: None})
    assert project.image(ids[0]).split == "test" and project.image(ids[1]).split is None
    editor.undo()
    assert {i: project.image(i).split for i in ids} == splits
    editor.undo()
    assert [project.image(i).status for i in ids] == ["done"] * 3
    assert editor.status == "done"


def test_a_failed_write_keeps_the_edit_in_memory_unsaved(project, monkeypatch):
    editor = ProjectEditor(project)
    image = project.images()[0].id
    editor.open_image(image)
    editor.edit_boxes(editor.boxes[:1], "Delete boxes")

    def busy(*_args, **_kwargs):
        raise ProjectError("cannot write, another program has held the project for 10 s")

    monkeypatch.setattr(project, "set_boxes", busy)
    with pytest.raises(ProjectError):
        editor.flush()
    assert editor.dirty and len(editor.boxes) == 1
    monkeypatch.undo()
    assert editor.flush()
    assert len(project.boxes(image)) == 1


def test_successive_nudges_of_one_box_are_one_undo_step(project):
    editor = ProjectEditor(project)
    editor.open_image(project.images()[0].id)
    original = editor.boxes
    box = original[0]
    for step in range(1, 4):
        moved = dataclasses.replace(box, x0=box.x0 + step, x1=box.x1 + step)
        editor.edit_boxes((moved, *original[1:]), "Nudge box", ("nudge", 0))
    assert editor.boxes[0].x0 == box.x0 + 3
    editor.undo()
    assert editor.boxes == original and not editor.can_undo


def test_accepting_and_rejecting_suggestions_is_saved_and_undone(project):
    image = project.images()[0].id
    suggestions = [BoxRecord(5, 5, 25, 25, 2, source="predicted", score=0.9),
                   BoxRecord(40, 5, 60, 25, 1, source="predicted", score=0.6),
                   BoxRecord(80, 5, 99, 25, 3, source="predicted", score=0.2)]
    project.set_predictions(image, suggestions, "runs/a/best.pt")
    editor = ProjectEditor(project)
    editor.open_image(image)
    boxes = editor.boxes
    assert editor.suggestions == tuple(suggestions)
    editor.accept_suggestions([0])
    editor.reject_suggestions([1])  # of the remaining two: the 0.2 one
    assert editor.boxes == (*boxes, suggestions[0])
    assert editor.suggestions == (suggestions[1],)
    editor.flush()
    stored = project.boxes(image)[-1]
    assert (stored.source, stored.score, stored.category_id) == ("predicted", 0.9, 2)
    assert [(r.score, r.model) for r in project.predictions(image)] == [(0.6, "runs/a/best.pt")]
    editor.undo()
    editor.undo()
    editor.flush()
    assert editor.boxes == boxes and editor.suggestions == tuple(suggestions)
    assert [r.score for r in project.predictions(image)] == [0.9, 0.6, 0.2]


def test_an_edit_over_boxes_another_program_changed_meanwhile_is_never_written_unseen(project):
    image = project.images()[0].id
    editor = ProjectEditor(project)
    editor.open_image(image)
    with Project.open(project.folder) as other:  # another process's connection
        other.add_boxes(image, [BoxRecord(1, 1, 9, 9, 1, source="manual")])
    theirs = _stored(project, image)
    mine = editor.boxes[:1]
    editor.edit_boxes(mine, "Delete boxes")
    with pytest.raises(EditConflictError, match="changed by another program"):
        editor.flush()
    assert _stored(project, image) == theirs and editor.dirty
    # Taking theirs shows the stored boxes; undo brings the discarded edit back.
    editor.resolve_conflict(keep_mine=False)
    assert editor.boxes == theirs and not editor.dirty
    editor.undo()
    assert editor.boxes == mine
    # Keeping mine writes it over theirs, knowingly.
    editor.resolve_conflict(keep_mine=True)
    assert _stored(project, image) == mine and not editor.dirty


def test_the_window_asks_whose_boxes_stay_when_another_program_changed_them(qtbot, tmp_path,
                                                                            monkeypatch):
    from PySide6.QtCore import QSettings

    from app.main_window import MainWindow
    from tests.app.conftest import wait_for_full_image

    folder = write_demo_project(tmp_path / "demo2", count=3)
    window = MainWindow(folder, settings=QSettings(str(tmp_path / "s.ini"),
                                                   QSettings.Format.IniFormat))
    qtbot.addWidget(window)
    window.show()
    wait_for_full_image(qtbot, window)
    labeling = window.labeling
    image = labeling.editor.image_id
    asked = []
    monkeypatch.setattr(labeling, "ask_keep_mine", lambda text: asked.append(text) or False)
    with Project.open(folder) as other:
        other.add_boxes(image, [BoxRecord(2, 2, 8, 8, 1, source="manual")])
        theirs = _stored(other, image)
    labeling.editor.edit_boxes(labeling.editor.boxes[:1], "Delete boxes")
    assert labeling.flush()
    assert len(asked) == 1 and "changed by another program" in asked[0]
    assert labeling.editor.boxes == theirs
    assert tuple(labeling.canvas.boxes) == theirs
    with Project.open(folder) as other:
        assert _stored(other, image) == theirs
    window.close()


def test_a_read_only_project_is_shown_and_every_edit_is_refused_with_a_word(project):
    folder = project.folder
    image = project.images()[0].id
    before = _stored(project, image)
    refused = []
    with Project.open(folder, read_only=True) as read_only:
        editor = ProjectEditor(read_only, on_refused=refused.append)
        editor.open_image(image)
        editor.edit_boxes(editor.boxes[:1], "Delete boxes")
        editor.set_status([image], "skipped")
        assert not editor.dirty and not editor.can_undo
        assert editor.boxes == before
        assert refused == ["Delete boxes: not done, this project is open read-only",
                           "Mark skipped: not done, this project is open read-only"]
        with pytest.raises(ProjectError, match="read-only"):
            editor.add_category("new")
    assert _stored(project, image) == before
