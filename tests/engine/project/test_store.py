"""The store's API: categories, images, boxes, splits, missing files and training records."""

from __future__ import annotations

import pytest

from engine.data.annotations import BoxRecord
from engine.data.images import file_hash
from engine.data.project import (
    PALETTE,
    Project,
    ProjectError,
    TrainingRecord,
    split_assignment,
)

from .conftest import table_dump, write_image


def _box(x0, y0, x1, y1, category_id, **flags) -> BoxRecord:
    return BoxRecord(x0, y0, x1, y1, category_id, source=flags.pop("source", "manual"), **flags)


# --- categories ----------------------------------------------------------------------------


def test_categories_get_stable_ids_palette_colours_and_unique_names(project):
    cat = project.add_category("cat")
    dog = project.add_category("dog", "#FF0000")
    assert (cat.id, cat.color) == (1, PALETTE[0])
    assert (dog.id, dog.color) == (2, "#ff0000")
    assert project.add_category("bird", category_id=7).id == 7
    assert project.add_category("fish").id == 8  # after the highest id
    assert [c.name for c in project.categories()] == ["cat", "dog", "bird", "fish"]
    with pytest.raises(ProjectError, match="'cat' exists already"):
        project.add_category("cat")
    with pytest.raises(ProjectError, match="id 7 is taken"):
        project.add_category("cow", category_id=7)
    with pytest.raises(ValueError, match="#rrggbb"):
        project.add_category("cow", "red")
    with pytest.raises(ValueError, match="non-empty"):
        project.add_category("  ")


def test_rename_and_recolour(project):
    cat = project.add_category("cat")
    project.add_category("dog")
    assert project.rename_category(cat.id, "kitten").name == "kitten"
    assert project.recolor_category(cat.id, "#00AA00").color == "#00aa00"
    with pytest.raises(ProjectError, match="'dog' exists already"):
        project.rename_category(cat.id, "dog")
    with pytest.raises(ProjectError, match="no category with id 99"):
        project.rename_category(99, "x")


def _project_with_boxes(project: Project) -> tuple[int, int, int]:
    cat, dog = project.add_category("cat").id, project.add_category("dog").id
    image = project.insert_image(project.folder / "a.png", width=10, height=10, hash=None)
    project.set_boxes(image, [_box(0, 0, 1, 1, cat), _box(1, 1, 2, 2, dog),
                              _box(2, 2, 3, 3, dog)], base=project.boxes(image))
    return cat, dog, image


def test_merge_moves_every_box_and_removes_the_merged_category(project):
    cat, dog, image = _project_with_boxes(project)
    assert project.merge_categories(dog, cat) == 2
    assert [c.name for c in project.categories()] == ["cat"]
    assert [b.category_id for b in project.boxes(image)] == [cat, cat, cat]
    with pytest.raises(ValueError, match="into itself"):
        project.merge_categories(cat, cat)


def test_delete_refuses_while_boxes_use_the_category_unless_told(project):
    cat, dog, image = _project_with_boxes(project)
    before = table_dump(project)
    with pytest.raises(ProjectError, match="'dog' is used by 2 boxes"):
        project.delete_category(dog)
    assert table_dump(project) == before
    assert project.delete_category(dog, delete_boxes=True) == 2
    assert [b.category_id for b in project.boxes(image)] == [cat]
    other = project.add_category("other").id
    assert project.delete_category(cat, reassign_to=other) == 1
    assert [b.category_id for b in project.boxes(image)] == [other]
    unused = project.add_category("unused").id
    assert project.delete_category(unused) == 0
    # Automatic numbering never hands out a deleted id again (a checkpoint may remember it).
    assert project.add_category("new").id == unused + 1


# --- boxes ---------------------------------------------------------------------------------


def test_set_boxes_replaces_all_boxes_of_one_image_only(project):
    cat, dog, image = _project_with_boxes(project)
    other = project.insert_image(project.folder / "b.png", width=10, height=10, hash=None)
    project.set_boxes(other, [_box(0, 0, 5, 5, cat)], base=project.boxes(other))
    stored = project.set_boxes(image, [
        _box(0.5, 1.25, 7, 8, dog, difficult=True, truncated=True),
        _box(1, 1, 2, 2, cat, source="predicted", score=0.75)], status="done",
                               base=project.boxes(image))
    assert [(b.x0, b.y0, b.x1, b.y1, b.category_id, b.difficult, b.truncated, b.source, b.score)
            for b in stored] == [(0.5, 1.25, 7.0, 8.0, dog, True, True, "manual", None),
                                 (1.0, 1.0, 2.0, 2.0, cat, False, False, "predicted", 0.75)]
    assert project.image(image).status == "done"
    assert project.image(image).box_count == 2
    assert len(project.boxes(other)) == 1
    assert stored[0].to_record() == BoxRecord(0.5, 1.25, 7.0, 8.0, dog, True, True, "manual")


def test_a_refused_box_replacement_changes_nothing(project):
    cat, _dog, image = _project_with_boxes(project)
    before = table_dump(project)
    with pytest.raises(ProjectError, match="no category with id 42"):
        project.set_boxes(image, [_box(0, 0, 1, 1, cat), _box(0, 0, 1, 1, 42)],
                          base=project.boxes(image))
    with pytest.raises(ValueError, match="zero or negative size"):
        project.set_boxes(image, [_box(3, 0, 1, 1, cat)], base=project.boxes(image))
    with pytest.raises(ValueError, match="score is required"):
        project.set_boxes(image, [_box(0, 0, 1, 1, cat, source="predicted")],
                          base=project.boxes(image))
    with pytest.raises(ValueError, match="not finite"):
        project.set_boxes(image, [_box(0, 0, float("nan"), 1, cat)], base=project.boxes(image))
    assert table_dump(project) == before


def test_a_transaction_that_raises_rolls_back_everything_inside(project):
    _cat, _dog, image = _project_with_boxes(project)
    before = table_dump(project)
    with pytest.raises(RuntimeError, match="stop"), project.transaction():
        project.set_boxes(image, [], base=project.boxes(image))
        project.add_category("bird")
        raise RuntimeError("stop")
    assert table_dump(project) == before
    assert len(project.boxes(image)) == 3


# --- images --------------------------------------------------------------------------------


def test_add_images_measures_displayed_size_and_hash_and_notes_duplicates(project, tmp_path):
    inside = write_image(project.folder / "images" / "a.png", 64, 48, shade=1)
    # Stored 64x48 with EXIF orientation 6 (rotate 90°): displayed 48 wide, 64 high.
    rotated = write_image(tmp_path / "outside" / "rotated.jpg", 64, 48, shade=2, orientation=6)
    copy = write_image(tmp_path / "outside" / "copy_of_a.png", 64, 48, shade=1)
    result = project.add_images([inside, rotated, copy, tmp_path / "nope.png", inside])
    assert len(result.added) == 3
    a, r, c = (project.image(i) for i in result.added)
    assert (a.path, a.width, a.height, a.hash) == ("images/a.png", 64, 48, file_hash(inside))
    assert a.file == inside
    assert (r.path, r.width, r.height) == (str(rotated), 48, 64)  # outside: absolute
    # Same bytes under another path: added (an image is "already there" by its path only),
    # with a note naming the other file.
    assert (c.path, c.hash) == (str(copy), a.hash)
    assert [(e.file, e.action) for e in result.entries] == [
        (str(copy), "note"), (str(tmp_path / "nope.png"), "skipped"), (str(inside), "skipped")]
    reasons = [e.reason for e in result.entries]
    assert reasons[0].startswith("same content as images/a.png; added as an image of its own")
    assert "not found" in reasons[1]
    assert "already in the project" in reasons[2]
    assert [e.file for e in result.skipped] == [str(tmp_path / "nope.png"), str(inside)]
    # Adding again changes nothing and says why.
    again = project.add_images([inside])
    assert again.added == [] and again.entries[0].reason == "already in the project"


def test_add_images_searches_folders_and_skips_unreadable_files(project, tmp_path):
    write_image(tmp_path / "photos" / "b.png", shade=2)
    write_image(tmp_path / "photos" / "sub" / "a.jpg", shade=3)
    (tmp_path / "photos" / "notes.txt").write_text("not an image")
    (tmp_path / "photos" / "broken.png").write_bytes(b"\x89PNG not really")
    result = project.add_images([tmp_path / "photos"], split="train")
    names = [image.file.name for image in project.images()]
    assert names == ["b.png", "a.jpg"]  # sorted by path: b.png < sub/a.jpg
    assert {image.split for image in project.images()} == {"train"}
    assert [e.file for e in result.entries] == [str(tmp_path / "photos" / "broken.png")]
    assert "not a readable image" in result.entries[0].reason


def test_filters_by_split_and_status(project):
    ids = [project.insert_image(project.folder / f"{i}.png", width=4, height=4, hash=None)
           for i in range(5)]
    project.set_split(ids[:2], "train")
    project.set_split(ids[2:3], "val")
    project.set_status(ids[1:3], "done")
    assert [i.id for i in project.images(split="train")] == ids[:2]
    assert [i.id for i in project.images(split="none")] == ids[3:]
    assert [i.id for i in project.images(status="done")] == ids[1:3]
    assert [i.id for i in project.images(split="train", status="done")] == [ids[1]]
    project.set_split(ids[:1], None)
    assert [i.id for i in project.images(split="none")] == [ids[0], *ids[3:]]
    with pytest.raises(ValueError, match="unknown split 'training'"):
        project.images(split="training")
    with pytest.raises(ValueError, match="unknown status"):
        project.set_status(ids, "finished")


def test_split_assignment_is_seeded_exact_and_independent_of_order():
    ids = list(range(1, 11))
    first = split_assignment(ids, {"train": 0.8, "val": 0.2}, seed=3)
    assert first == split_assignment(reversed(ids), {"train": 0.8, "val": 0.2}, seed=3)
    assert sorted(first.values()) == ["train"] * 8 + ["val"] * 2
    assert first != split_assignment(ids, {"train": 0.8, "val": 0.2}, seed=4)
    # Largest remainder: 7 images at 1:1:1 -> 3, 2, 2 (ties go to the first named).
    thirds = split_assignment(range(7), {"train": 1, "val": 1, "test": 1})
    assert sorted(thirds.values()).count("train") == 3
    assert set(split_assignment(range(4), {"none": 1}).values()) == {None}
    with pytest.raises(ValueError, match="unknown split"):
        split_assignment(ids, {"holdout": 1})
    with pytest.raises(ValueError, match="all be zero"):
        split_assignment(ids, {"train": 0})


def test_assign_splits_stores_the_assignment_and_can_keep_existing_splits(project):
    ids = [project.insert_image(project.folder / f"{i}.png", width=4, height=4, hash=None)
           for i in range(10)]
    assert project.assign_splits({"train": 0.8, "val": 0.2}, seed=1) == {"train": 8, "val": 2}
    stored = {i.id: i.split for i in project.images()}
    assert stored == split_assignment(ids, {"train": 0.8, "val": 0.2}, seed=1)
    project.set_split(ids[:5], None)
    assert project.assign_splits({"test": 1}, only_unassigned=True) == {"test": 5}
    after = {i.id: i.split for i in project.images()}
    assert [after[i] for i in ids[:5]] == ["test"] * 5
    assert [after[i] for i in ids[5:]] == [stored[i] for i in ids[5:]]


def test_a_missing_file_is_flagged_and_kept_with_its_boxes_then_found_again(project):
    path = write_image(project.folder / "a.png", shade=5)
    image_id = project.add_images([path]).added[0]
    cat = project.add_category("cat").id
    project.set_boxes(image_id, [_box(1, 1, 5, 5, cat)], status="done",
                      base=project.boxes(image_id))
    assert project.check_missing() == []
    path.rename(path.with_suffix(".moved"))
    missing = project.check_missing()
    assert [(m.id, m.problem, m.box_count, m.width) for m in missing] == [
        (image_id, "missing", 1, 64)]
    assert project.missing_images() == missing
    assert project.dataset() == []  # a trainer is not handed a file that is not there
    path.with_suffix(".moved").rename(path)
    assert project.check_missing() == []
    assert project.image(image_id).problem is None
    assert len(project.dataset()) == 1


# --- training records ----------------------------------------------------------------------


def test_dataset_gives_done_images_of_a_split_with_pixel_boxes_and_project_ids(project):
    bird = project.add_category("bird", category_id=9).id
    cat = project.add_category("cat", category_id=2).id
    ids = [project.insert_image(project.folder / f"{i}.png", width=40, height=30, hash=None)
           for i in range(4)]
    project.set_boxes(ids[0], [_box(1, 2, 3, 4, bird), _box(5, 6, 7, 8, cat, difficult=True)],
                      base=project.boxes(ids[0]))
    project.set_boxes(ids[2], [_box(0, 0, 40, 30, cat)], base=project.boxes(ids[2]))
    project.set_status(ids[:3], "done")  # ids[1]: a negative; ids[3]: still unlabeled
    project.set_split(ids[:2], "train")
    project.set_split(ids[2:], "val")
    assert [c.id for c in project.categories()] == [cat, bird]  # ordered by id
    train = project.dataset("train")
    assert train == [
        TrainingRecord(ids[0], project.folder / "0.png", 40, 30,
                       ((1.0, 2.0, 3.0, 4.0), (5.0, 6.0, 7.0, 8.0)), (bird, cat), (False, True)),
        TrainingRecord(ids[1], project.folder / "1.png", 40, 30, (), (), ())]
    assert [r.image_id for r in project.dataset("val")] == [ids[2]]
    assert [r.image_id for r in project.dataset("val", statuses=("done", "unlabeled"))] == ids[2:]
    assert [r.image_id for r in project.dataset()] == ids[:3]


def test_two_connections_see_each_others_commits(project):
    cat = project.add_category("cat").id
    with Project.open(project.folder) as other:
        assert [c.id for c in other.categories()] == [cat]
        other.add_category("dog")
    assert [c.name for c in project.categories()] == ["cat", "dog"]
