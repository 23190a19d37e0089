"""Importing records into a project: categories, merging, missing files, one transaction."""

from __future__ import annotations

import pytest

from engine.data import importing
from engine.data.annotations import AnnotationSet, BoxRecord, Category, ImageRecord, ReportEntry
from engine.data.importing import import_annotation_set

from .conftest import table_dump, write_image


def _set(tmp_path, images, categories=None, report=None) -> AnnotationSet:
    return AnnotationSet(
        categories=categories or [Category(3, "cat"), Category(7, "dog", "#123456")],
        images=images, report=report or [], root=tmp_path / "data")


def _images(tmp_path, count=4, boxes_per_image=2):
    """``count`` 64x48 images in tmp_path/data with boxes alternating cat (3) and dog (7)."""
    records = []
    for i in range(count):
        path = write_image(tmp_path / "data" / f"{i}.png", shade=i + 1)
        records.append(ImageRecord(
            path, 64, 48, split="train" if i % 2 == 0 else "val",
            boxes=[BoxRecord(i, k, i + 10, k + 10, 3 if k % 2 == 0 else 7)
                   for k in range(boxes_per_image)]))
    return records


def test_import_into_a_new_project_keeps_ids_names_colours_and_measures(project, tmp_path):
    images = _images(tmp_path)
    images.append(ImageRecord(write_image(tmp_path / "data" / "empty.png", 30, 20, shade=9)))
    reader_note = ReportEntry("labels.json", "annotation 5", "skipped", "zero width")
    report = import_annotation_set(project, _set(tmp_path, images, report=[reader_note]),
                                   source="labels.json", format="coco")
    assert [(c.id, c.name) for c in project.categories()] == [(3, "cat"), (7, "dog")]
    assert project.category(7).color == "#123456"
    assert report.categories_created == ["cat", "dog"]
    assert (report.images_added, report.boxes_added, report.images_merged) == (5, 8, 0)
    assert report.entries == [reader_note]
    stored = project.images()
    assert [i.file for i in stored] == [i.path for i in images]  # outside: absolute paths
    assert [(i.width, i.height, i.status, i.split) for i in stored[3:]] == [
        (64, 48, "done", "val"), (30, 20, "unlabeled", None)]
    assert all(i.hash and i.problem is None for i in stored)
    assert [(b.x0, b.y1, b.category_id, b.source) for b in project.boxes(stored[1].id)] == [
        (1.0, 10.0, 3, "imported"), (1.0, 11.0, 7, "imported")]
    assert "5 images added" in report.summary()


def test_categories_are_matched_by_name_and_new_ones_keep_free_source_ids(project, tmp_path):
    project.add_category("dog", category_id=3)  # the file's "cat" id is taken by "dog"
    project.add_category("bird", category_id=4)
    categories = [Category(3, "cat"), Category(7, "dog"), Category(5, "fish")]
    images = [ImageRecord(write_image(tmp_path / "data" / "a.png"), boxes=[
        BoxRecord(0, 0, 1, 1, 3), BoxRecord(0, 0, 2, 2, 7), BoxRecord(0, 0, 3, 3, 5)])]
    report = import_annotation_set(project, _set(tmp_path, images, categories))
    assert [(c.id, c.name) for c in project.categories()] == [
        (3, "dog"), (4, "bird"), (5, "fish"), (6, "cat")]
    assert report.categories_matched == ["dog"]
    assert report.categories_created == ["cat", "fish"]
    boxes = project.boxes(project.images()[0].id)
    assert [(b.x1, b.category_id) for b in boxes] == [(1.0, 6), (2.0, 3), (3.0, 5)]


def test_reimporting_adds_only_boxes_that_are_not_there_yet(project, tmp_path):
    images = _images(tmp_path)
    import_annotation_set(project, _set(tmp_path, images))
    before = table_dump(project)
    again = import_annotation_set(project, _set(tmp_path, _images(tmp_path)))
    assert (again.images_added, again.images_merged) == (0, 4)
    assert (again.boxes_added, again.boxes_identical) == (0, 8)
    assert table_dump(project) == before
    assert [(e.item, e.action) for e in again.entries] == [("4 images", "note")]
    assert again.entries[0].reason.startswith("already in the project with all their boxes")
    # One new box on image 0: only that one is added.
    more = _images(tmp_path)
    more[0].boxes.append(BoxRecord(20, 20, 30, 30, 3))
    third = import_annotation_set(project, _set(tmp_path, more))
    assert (third.boxes_added, third.boxes_identical) == (1, 8)
    assert third.entries[0].reason == (
        "already in the project: 1 box added, 2 identical boxes left out")
    assert project.images()[0].box_count == 3


def test_the_same_content_under_another_name_is_added_with_a_note(project, tmp_path):
    """An image is "already there" by its path only: a byte-identical copy under another name
    is an image of its own with its own boxes (as the raccoon dataset's four duplicate pairs,
    labelled differently), and a note names the other file."""
    import_annotation_set(project, _set(tmp_path, _images(tmp_path, count=1)))
    copy = write_image(tmp_path / "elsewhere" / "copy.png", shade=1)  # same bytes as 0.png
    twin = write_image(tmp_path / "elsewhere" / "twin.png", shade=1)  # and again
    report = import_annotation_set(project, _set(tmp_path, [
        ImageRecord(copy, boxes=[BoxRecord(0, 0, 10, 10, 3), BoxRecord(5, 5, 6, 6, 7)]),
        ImageRecord(twin, boxes=[BoxRecord(1, 1, 9, 9, 3)])]))
    assert (report.images_added, report.images_merged, report.duplicates) == (2, 0, 2)
    assert (report.boxes_added, report.boxes_identical) == (3, 0)
    first = tmp_path / "data" / "0.png"
    assert [(e.item, e.action, e.reason) for e in report.entries] == [
        (str(copy), "note", f"same content as {first} (in the project); added as an image of "
                            f"its own with its 2 boxes: a duplicate you may want to look at"),
        (str(twin), "note", f"same content as {first} (in the project); added as an image of "
                            f"its own with its 1 box: a duplicate you may want to look at")]
    assert [(i.file.name, i.box_count) for i in project.images()] == [
        ("0.png", 2), ("copy.png", 2), ("twin.png", 1)]
    assert "2 images added (2 with the same content as another image)" in report.summary()


def test_a_duplicate_earlier_in_the_same_import_is_named_as_such(project, tmp_path):
    a = write_image(tmp_path / "data" / "a.png", shade=4)
    b = write_image(tmp_path / "data" / "b.png", shade=4)
    report = import_annotation_set(project, _set(tmp_path, [
        ImageRecord(a, boxes=[BoxRecord(0, 0, 1, 1, 3)]),
        ImageRecord(b, boxes=[BoxRecord(0, 0, 2, 2, 3)])]))
    assert (report.images_added, report.duplicates, report.boxes_added) == (2, 1, 2)
    assert report.entries[0].item == str(b)
    assert report.entries[0].reason.startswith(f"same content as {a} (earlier in this import)")
    assert [str(f) for f in report.files] == [f"added {a}: 1 box", f"added {b}: 1 box"]


def test_an_image_listed_twice_in_one_file_becomes_one_image(project, tmp_path):
    path = write_image(tmp_path / "data" / "a.png")
    twice = [ImageRecord(path, boxes=[BoxRecord(0, 0, 1, 1, 3)]),
             ImageRecord(path, boxes=[BoxRecord(0, 0, 1, 1, 3), BoxRecord(0, 0, 2, 2, 7)])]
    report = import_annotation_set(project, _set(tmp_path, twice))
    assert (report.images_added, report.images_merged) == (1, 1)
    assert (report.boxes_added, report.boxes_identical) == (2, 1)
    assert report.entries[0].reason == (
        "already earlier in this import: 1 box added, 1 identical box left out")
    assert [(f.outcome, f.boxes) for f in report.files] == [("added", 1), ("merged", 1)]


def test_merging_sets_a_status_and_split_only_where_there_were_none(project, tmp_path):
    path = write_image(tmp_path / "data" / "a.png")
    unlabeled = project.add_images([path]).added[0]
    other = write_image(tmp_path / "data" / "b.png", shade=2)
    labeled = project.add_images([other], split="val", status="in_progress").added[0]
    import_annotation_set(project, _set(tmp_path, [
        ImageRecord(path, split="train", boxes=[BoxRecord(0, 0, 1, 1, 3)]),
        ImageRecord(other, split="train", boxes=[BoxRecord(0, 0, 1, 1, 3)])]))
    assert (project.image(unlabeled).status, project.image(unlabeled).split) == ("done", "train")
    assert (project.image(labeled).status, project.image(labeled).split) == ("in_progress", "val")


def test_missing_and_unreadable_images_are_kept_with_their_boxes_and_declared_size(
        project, tmp_path):
    broken = tmp_path / "data" / "broken.jpg"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"\xff\xd8 truncated")
    gone = tmp_path / "data" / "gone.jpg"
    reader_said = ReportEntry("labels.json", str(gone), "missing", "image file not found")
    records = [ImageRecord(gone, 640, 480, boxes=[BoxRecord(0, 0, 5, 5, 3)]),
               ImageRecord(broken, None, None, boxes=[BoxRecord(0, 0, 5, 5, 7)]),
               ImageRecord(tmp_path / "data" / "also_gone.jpg", 10, 10)]
    report = import_annotation_set(project, _set(tmp_path, records, report=[reader_said]))
    stored = project.images()
    assert [(i.problem, i.width, i.height, i.box_count, i.hash) for i in stored] == [
        ("missing", 640, 480, 1, None), ("unreadable", None, None, 1, None),
        ("missing", 10, 10, 0, None)]
    assert (report.missing, report.unreadable, report.boxes_added) == (2, 1, 2)
    # The reader's entry for gone.jpg is not repeated; the other two get one each.
    assert [(e.item, e.action) for e in report.entries] == [
        (str(gone), "missing"), (str(broken), "note"),
        (str(tmp_path / "data" / "also_gone.jpg"), "missing")]
    assert "flagged unreadable" in report.entries[1].reason


def test_a_declared_size_that_differs_from_the_file_is_noted_and_the_file_wins(project,
                                                                              tmp_path):
    rotated = write_image(tmp_path / "data" / "r.jpg", 64, 48, orientation=6)
    report = import_annotation_set(project, _set(tmp_path, [ImageRecord(rotated, 64, 48)]))
    assert (project.images()[0].width, project.images()[0].height) == (48, 64)
    assert "says 64x48, the image file is 48x64" in report.entries[0].reason


def test_boxes_the_store_cannot_hold_are_skipped_and_reported(project, tmp_path):
    path = write_image(tmp_path / "data" / "a.png")
    report = import_annotation_set(project, _set(tmp_path, [ImageRecord(path, boxes=[
        BoxRecord(0, 0, 1, 1, 3), BoxRecord(5, 0, 1, 1, 3), BoxRecord(0, 0, 1, 1, 99)])]))
    assert (report.boxes_added, report.boxes_skipped) == (1, 2)
    assert [(e.item, e.action) for e in report.entries] == [(f"{path}: box 1", "skipped"),
                                                            (f"{path}: box 2", "skipped")]
    assert "category id 99" in report.entries[1].reason


@pytest.mark.parametrize("fresh", [True, False])
def test_an_import_failing_half_way_leaves_the_project_exactly_as_it_was(
        project, tmp_path, monkeypatch, fresh):
    if not fresh:  # a project with work in it already
        import_annotation_set(project, _set(tmp_path, _images(tmp_path, count=2)))
        project.add_category("bird")
    before = table_dump(project)
    records = _images(tmp_path, count=10, boxes_per_image=4)
    total = sum(len(r.boxes) for r in records)
    made = []
    real = importing.box_row_values

    def failing_half_way(image_id, box):
        if len(made) == total // 2:
            raise OSError("disk full (injected)")
        made.append(image_id)
        return real(image_id, box)

    monkeypatch.setattr(importing, "box_row_values", failing_half_way)
    with pytest.raises(OSError, match="injected"):
        import_annotation_set(project, _set(tmp_path, records,
                                            [Category(3, "cat"), Category(7, "dog"),
                                             Category(8, "newcomer")]))
    assert len(made) == total // 2  # it did fail in the middle of writing boxes
    assert table_dump(project) == before
    # The project is usable afterwards, and the same import then succeeds.
    monkeypatch.setattr(importing, "box_row_values", real)
    report = import_annotation_set(project, _set(tmp_path, records))
    assert report.boxes_added == total - (0 if fresh else 2 * 2)  # 2 images had 2 boxes


def test_an_unknown_split_or_status_is_noted_not_fatal(project, tmp_path):
    path = write_image(tmp_path / "data" / "a.png")
    report = import_annotation_set(project, _set(tmp_path, [
        ImageRecord(path, split="training", status="verified")]))
    image = project.images()[0]
    assert (image.split, image.status) == (None, "unlabeled")
    assert [e.reason for e in report.entries] == [
        "unknown status 'verified'; imported as unlabeled",
        "unknown split 'training'; imported without a split"]
