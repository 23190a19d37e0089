"""Counts with the right plural and the natural order of names (engine/text.py)."""

from __future__ import annotations

from engine.text import count, natural_key, plural


def test_one_is_singular_every_other_count_plural():
    assert [count(n, "box") for n in (0, 1, 2)] == ["0 boxes", "1 box", "2 boxes"]
    assert count(1, "image") == "1 image" and count(3, "image") == "3 images"
    assert count(1, "file") == "1 file" and count(2, "file") == "2 files"
    assert count(2, "entry") == "2 entries" and count(2, "class") == "2 classes"
    assert count(3, "epoch") == "3 epochs" and count(2, "batch") == "2 batches"
    assert count(2, "report entry", "report entries") == "2 report entries"
    assert plural("day") == "days"


def test_names_sort_by_the_value_of_their_numbers():
    names = ["raccoon-100.jpg", "raccoon-10.jpg", "raccoon-2.jpg", "Raccoon-3.jpg",
             "raccoon-1.jpg"]
    assert sorted(names, key=natural_key) == [
        "raccoon-1.jpg", "raccoon-2.jpg", "Raccoon-3.jpg", "raccoon-10.jpg", "raccoon-100.jpg"]
    assert sorted(["b/img-10.png", "a/img-9.png", "b/img-9.png"], key=natural_key) == [
        "a/img-9.png", "b/img-9.png", "b/img-10.png"]
