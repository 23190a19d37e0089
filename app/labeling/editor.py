"""The editing model under the labeling window: the current image's boxes, undo and redo of
every edit, and saving to the project store. Pure Python: no Qt, tested on its own.

Every change a user makes is an :class:`Edit` with ``apply`` and ``revert``; the editor keeps
the undo and redo stacks. Box edits change the current image's boxes in memory and mark them
unsaved; :meth:`ProjectEditor.flush` writes them (one transaction). The window calls ``flush``
on a short timer after each edit (autosave), before showing another image, and on close, so at
most the timer's delay of work is ever at risk. Project-wide edits (categories, statuses,
splits) go to the store at once, each one transaction, after any unsaved boxes are written.

Undoing an edit made on another image first shows that image (as in CVAT), so the user sees
what the undo changed. A failed write (the store busy for longer than its timeout, a full
disk) leaves the edit in memory, unsaved, and raises: nothing the user did is dropped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from engine.data.annotations import BoxRecord
from engine.data.project import CategoryRow, Project, ProjectReadOnlyError

Boxes = tuple[BoxRecord, ...]
# How many edits undo reaches back (each holds two copies of one image's boxes at most).
UNDO_LIMIT = 1000


@dataclass(frozen=True)
class Change:
    """What an edit changed, for the views to refresh: ``images`` whose rows (box count,
    status, split, classes) changed; ``categories`` whether the class list changed;
    ``current_image`` whether another image became current (an undo may switch images);
    ``boxes`` whether the current image's boxes changed."""

    images: frozenset[int] = frozenset()
    categories: bool = False
    current_image: bool = False
    boxes: bool = False


class Edit:
    """One undoable change. ``image_id`` is the image it belongs to (None: project-wide)."""

    # Annotations only: a default here would become every subclass's dataclass default.
    text: str
    image_id: int | None

    def apply(self, editor: ProjectEditor) -> Change:
        raise NotImplementedError

    def revert(self, editor: ProjectEditor) -> Change:
        raise NotImplementedError


@dataclass
class BoxesEdit(Edit):
    """The current image's boxes went from ``before`` to ``after`` (and its status with them:
    the first box on an unlabeled image makes it "in progress"), and its pending suggestions
    from ``suggestions_before`` to ``suggestions_after`` (None: unchanged)."""

    image_id: int
    before: Boxes
    after: Boxes
    text: str
    status_before: str
    status_after: str
    merge_key: object = None
    suggestions_before: Boxes | None = None
    suggestions_after: Boxes | None = None

    def apply(self, editor: ProjectEditor) -> Change:
        return editor._set_current(self.after, self.status_after, self.suggestions_after)

    def revert(self, editor: ProjectEditor) -> Change:
        return editor._set_current(self.before, self.status_before, self.suggestions_before)


@dataclass
class ImageFieldEdit(Edit):
    """Statuses or splits of several images, each from its old value to its new one."""

    field: str  # "status" or "split"
    before: dict[int, str | None]
    after: dict[int, str | None]
    text: str
    image_id: int | None = None

    def apply(self, editor: ProjectEditor) -> Change:
        return editor._write_image_field(self.field, self.after)

    def revert(self, editor: ProjectEditor) -> Change:
        return editor._write_image_field(self.field, self.before)


@dataclass
class CategoryEdit(Edit):
    """A category added (``before`` None), or renamed or recoloured (both given)."""

    before: CategoryRow | None
    after: CategoryRow
    text: str
    image_id: int | None = None

    def apply(self, editor: ProjectEditor) -> Change:
        return editor._write_category(self.before, self.after)

    def revert(self, editor: ProjectEditor) -> Change:
        return editor._write_category(self.after, self.before)


@dataclass
class CategoryRemoval(Edit):
    """A category deleted with its boxes (``into`` None) or merged into category ``into``.
    ``boxes_before`` holds every affected image's boxes as they were, so undo restores the
    category with its id, name and colour and then those boxes exactly."""

    category: CategoryRow
    into: int | None
    boxes_before: dict[int, Boxes]
    text: str
    image_id: int | None = None

    def apply(self, editor: ProjectEditor) -> Change:
        project = editor.project
        if self.into is None:
            project.delete_category(self.category.id, delete_boxes=True)
        else:
            project.merge_categories(self.category.id, self.into)
        return editor._after_project_change(self.boxes_before)

    def revert(self, editor: ProjectEditor) -> Change:
        project = editor.project
        with project.transaction():
            project.add_category(self.category.name, self.category.color,
                                 category_id=self.category.id)
            for image_id, boxes in self.boxes_before.items():
                project.set_boxes(image_id, boxes, base=self._after(boxes))
        return editor._after_project_change(self.boxes_before)

    def _after(self, boxes: Boxes) -> Boxes:
        """An image's boxes as :meth:`apply` left them (what undo expects to find)."""
        if self.into is None:
            return tuple(box for box in boxes if box.category_id != self.category.id)
        return tuple(dataclasses.replace(box, category_id=self.into)
                     if box.category_id == self.category.id else box for box in boxes)


@dataclass
class _History:
    undo: list[Edit] = field(default_factory=list)
    redo: list[Edit] = field(default_factory=list)


class ProjectEditor:
    """Edits one open project. ``on_change`` receives a :class:`Change` after every edit, undo
    and redo (the window refreshes its panels from it)."""

    def __init__(self, project: Project,
                 on_change: Callable[[Change], None] | None = None,
                 on_refused: Callable[[str], None] | None = None) -> None:
        self.project = project
        self.on_change = on_change
        # Told (with the reason) instead of applying an edit to a project opened read-only.
        self.on_refused = on_refused
        self.image_id: int | None = None
        self.boxes: Boxes = ()
        self.status: str | None = None
        # The current image's pending suggestions (a model's boxes, with scores) and the model
        # that made them; saved with the boxes.
        self.suggestions: Boxes = ()
        self.suggestion_model = ""
        self.dirty = False
        # The current image's boxes as last read from or written to the store: the base of the
        # next write, so that a change another process made meanwhile is never overwritten
        # unseen (Project.set_boxes raises EditConflictError).
        self._base: Boxes = ()
        self._history = _History()

    # --- the current image ------------------------------------------------------------------

    def open_image(self, image_id: int | None) -> None:
        """Make ``image_id`` current (writing the previous image's unsaved boxes first)."""
        self.flush()
        if image_id is None:
            self.image_id, self.boxes, self.status = None, (), None
            self.suggestions, self.suggestion_model = (), ""
            return
        row = self.project.image(image_id)
        self.image_id = image_id
        self.boxes = self._base = tuple(box.to_record() for box in self.project.boxes(image_id))
        self.status = row.status
        self._load_suggestions()

    def _load_suggestions(self) -> None:
        rows = self.project.predictions(self.image_id)
        self.suggestions = tuple(row.to_record() for row in rows)
        self.suggestion_model = rows[0].model if rows else ""

    def flush(self) -> bool:
        """Write the current image's unsaved boxes and status; True if anything was written.
        Raises (and stays unsaved) when the store refuses the write."""
        if not self.dirty or self.image_id is None:
            return False
        stored = self.project.set_boxes(self.image_id, self.boxes, base=self._base,
                                        status=self.status, predictions=self.suggestions,
                                        model=self.suggestion_model)
        self._base = tuple(box.to_record() for box in stored)
        self.dirty = False
        return True

    def resolve_conflict(self, keep_mine: bool) -> Change:
        """After :class:`EditConflictError` from :meth:`flush`: ``keep_mine`` writes this
        window's boxes over what another process stored; otherwise this window takes the
        stored boxes and status, and its unsaved edit stays one undo away."""
        if self.image_id is None:
            return Change()
        stored = tuple(box.to_record() for box in self.project.boxes(self.image_id))
        self._base = stored
        if keep_mine:
            self.flush()
            return Change(images=frozenset({self.image_id}))
        mine = self.boxes
        self.boxes = stored
        self.status = self.project.image(self.image_id).status
        self._load_suggestions()
        self.dirty = False
        if mine != stored:
            # Undo brings the discarded edit back (as an edit of the stored boxes).
            self._history.undo.append(BoxesEdit(self.image_id, mine, stored,
                                                "Take the other program's boxes",
                                                self.status, self.status))
            self._history.redo.clear()
        return Change(images=frozenset({self.image_id}), boxes=True)

    def edit_boxes(self, boxes: Sequence[BoxRecord], text: str,
                   merge_key: object = None) -> None:
        """Replace the current image's boxes with ``boxes`` as one undoable edit.

        ``merge_key``: an edit with the same key as the edit just made on this image joins it
        in one undo step (a box nudged ten times by the arrow keys is undone at once).
        """
        if self.image_id is None:
            raise RuntimeError("no image is open")
        after = tuple(boxes)
        if after == self.boxes or self._refused(text):
            return
        last = self._history.undo[-1] if self._history.undo else None
        if (merge_key is not None and isinstance(last, BoxesEdit) and not self._history.redo
                and last.image_id == self.image_id and last.merge_key == merge_key):
            last.after = after
            self._notify(last.apply(self))
            return
        status_after = self.status
        if self.status == "unlabeled" and after:
            status_after = "in_progress"
        self._do(BoxesEdit(self.image_id, self.boxes, after, text, self.status, status_after,
                           merge_key))

    def _set_current(self, boxes: Boxes, status: str, suggestions: Boxes | None) -> Change:
        self.boxes, self.status, self.dirty = boxes, status, True
        if suggestions is not None:
            self.suggestions = suggestions
        return Change(images=frozenset({self.image_id}), boxes=True)

    # --- suggestions (model-assisted labeling) ----------------------------------------------

    def set_suggestions(self, suggestions: Sequence[BoxRecord], model: str) -> None:
        """A model's new suggestions for the current image (replacing the pending ones), as
        an undoable edit."""
        self._suggestion_edit(self.boxes, tuple(suggestions), "Predict boxes")
        self.suggestion_model = model

    def accept_suggestions(self, indices: Iterable[int]) -> None:
        """Turn these pending suggestions into boxes (source "predicted", with their score)."""
        chosen = sorted(set(indices))
        if not chosen:
            return
        accepted = tuple(self.suggestions[i] for i in chosen)
        remaining = tuple(s for i, s in enumerate(self.suggestions) if i not in chosen)
        text = f"Accept {len(chosen)} suggestion{'s' if len(chosen) != 1 else ''}"
        self._suggestion_edit((*self.boxes, *accepted), remaining, text)

    def reject_suggestions(self, indices: Iterable[int]) -> None:
        chosen = set(indices)
        if not chosen:
            return
        remaining = tuple(s for i, s in enumerate(self.suggestions) if i not in chosen)
        text = f"Reject {len(chosen)} suggestion{'s' if len(chosen) != 1 else ''}"
        self._suggestion_edit(self.boxes, remaining, text)

    def _suggestion_edit(self, boxes: Boxes, suggestions: Boxes, text: str) -> None:
        if self.image_id is None:
            raise RuntimeError("no image is open")
        if boxes == self.boxes and suggestions == self.suggestions:
            return
        status_after = self.status
        if self.status == "unlabeled" and boxes:
            status_after = "in_progress"
        self._do(BoxesEdit(self.image_id, self.boxes, boxes, text, self.status, status_after,
                           None, self.suggestions, suggestions))

    # --- project-wide edits -----------------------------------------------------------------

    def set_status(self, image_ids: Iterable[int], status: str) -> None:
        self._edit_image_field("status", image_ids, lambda _id: status,
                               f"Mark {status.replace('_', ' ')}")

    def set_splits(self, assignment: Mapping[int, str | None], text: str = "Assign splits"
                   ) -> None:
        """Give each image id its split (train, val, test, or None)."""
        self._edit_image_field("split", assignment, assignment.__getitem__, text)

    def _edit_image_field(self, name: str, image_ids: Iterable[int],
                          value: Callable[[int], str | None], text: str) -> None:
        ids = list(image_ids)
        self.flush()
        before = {image_id: getattr(self._row(image_id), name) for image_id in ids}
        if name == "status" and self.image_id in before:
            before[self.image_id] = self.status
        after = {image_id: value(image_id) for image_id in ids}
        if before != after:
            self._do(ImageFieldEdit(name, before, after, text))

    def _row(self, image_id: int):
        return self.project.image(image_id)

    def _write_image_field(self, name: str, values: dict[int, str | None]) -> Change:
        self.flush()
        with self.project.transaction():
            by_value: dict[str | None, list[int]] = {}
            for image_id, value in values.items():
                by_value.setdefault(value, []).append(image_id)
            for value, ids in by_value.items():
                if name == "status":
                    self.project.set_status(ids, value)
                else:
                    self.project.set_split(ids, value)
        if name == "status" and self.image_id in values:
            self.status = values[self.image_id]
        return Change(images=frozenset(values))

    def add_category(self, name: str, color: str | None = None) -> CategoryRow:
        """A new category, as an undoable edit; returns it. Raises ProjectReadOnlyError on a
        project opened read-only."""
        if self.project.read_only:
            raise ProjectReadOnlyError(f"Add class {name.strip()!r}: not done, this project is "
                                       f"open read-only")
        color = color or self.project.next_color()
        row = CategoryRow(self._free_category_id(), name.strip(), color)
        self._do(CategoryEdit(None, row, f"Add class {row.name!r}"))
        return self.project.category(row.id)

    def rename_category(self, category_id: int, name: str) -> None:
        before = self.project.category(category_id)
        after = dataclasses.replace(before, name=name.strip())
        if after != before:
            self._do(CategoryEdit(before, after, f"Rename class {before.name!r}"))

    def recolor_category(self, category_id: int, color: str) -> None:
        before = self.project.category(category_id)
        after = dataclasses.replace(before, color=color.lower())
        if after != before:
            self._do(CategoryEdit(before, after, f"Recolour class {before.name!r}"))

    def delete_category(self, category_id: int) -> None:
        """Delete a category and every box of it (the window asks the user first)."""
        category = self.project.category(category_id)
        self._do(CategoryRemoval(category, None, self._boxes_using(category_id),
                                 f"Delete class {category.name!r}"))

    def merge_categories(self, source_id: int, into_id: int) -> None:
        """Give every box of ``source_id`` the class ``into_id``; ``source_id`` goes away."""
        if source_id == into_id:
            raise ValueError("cannot merge a class into itself")
        source, into = self.project.category(source_id), self.project.category(into_id)
        self._do(CategoryRemoval(source, into_id, self._boxes_using(source_id),
                                 f"Merge class {source.name!r} into {into.name!r}"))

    def box_counts(self) -> dict[int, int]:
        """Category id -> boxes of it in the whole project, the current image's unsaved
        boxes counted as they are now."""
        counts = dict(self.project.connection.execute(
            "SELECT category_id, count(*) FROM boxes WHERE image_id IS NOT ? "
            "GROUP BY category_id", (self.image_id,)))
        for box in self.boxes:
            counts[box.category_id] = counts.get(box.category_id, 0) + 1
        return counts

    def _free_category_id(self) -> int:
        ids = [category.id for category in self.project.categories()]
        return max(ids, default=0) + 1

    def _boxes_using(self, category_id: int) -> dict[int, Boxes]:
        self.flush()
        image_ids = [row[0] for row in self.project.connection.execute(
            "SELECT DISTINCT image_id FROM boxes WHERE category_id = ? ORDER BY image_id",
            (category_id,))]
        return {image_id: tuple(box.to_record() for box in self.project.boxes(image_id))
                for image_id in image_ids}

    def _write_category(self, before: CategoryRow | None, after: CategoryRow | None) -> Change:
        project = self.project
        if after is None:  # undoing an add: the category is unused unless boxes came since
            project.delete_category(before.id)
        elif before is None:
            project.add_category(after.name, after.color, category_id=after.id)
        else:
            with project.transaction():
                if after.name != before.name:
                    project.rename_category(after.id, after.name)
                if after.color != before.color:
                    project.recolor_category(after.id, after.color)
        return Change(categories=True)

    def _after_project_change(self, images: Mapping[int, Boxes]) -> Change:
        """Reload the current image's boxes after a change made in the store directly."""
        if self.image_id is not None and self.image_id in images:
            self.boxes = self._base = tuple(
                box.to_record() for box in self.project.boxes(self.image_id))
        return Change(images=frozenset(images), categories=True,
                      boxes=self.image_id in images)

    # --- undo and redo ------------------------------------------------------------------------

    @property
    def can_undo(self) -> bool:
        return bool(self._history.undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._history.redo)

    @property
    def undo_text(self) -> str:
        return self._history.undo[-1].text if self._history.undo else ""

    @property
    def redo_text(self) -> str:
        return self._history.redo[-1].text if self._history.redo else ""

    def undo(self) -> Edit | None:
        if not self._history.undo:
            return None
        edit = self._history.undo[-1]
        change = self._switch_to(edit)
        if not isinstance(edit, BoxesEdit):
            self.flush()
        change = _merge(change, edit.revert(self))
        self._history.undo.pop()
        self._history.redo.append(edit)
        self._notify(change)
        return edit

    def redo(self) -> Edit | None:
        if not self._history.redo:
            return None
        edit = self._history.redo[-1]
        change = self._switch_to(edit)
        if not isinstance(edit, BoxesEdit):
            self.flush()
        change = _merge(change, edit.apply(self))
        self._history.redo.pop()
        self._history.undo.append(edit)
        self._notify(change)
        return edit

    def clear_history(self) -> None:
        """Forget undo and redo (after an import changed the project underneath them)."""
        self._history = _History()

    def _switch_to(self, edit: Edit) -> Change:
        if isinstance(edit, BoxesEdit) and edit.image_id != self.image_id:
            self.open_image(edit.image_id)
            return Change(current_image=True)
        return Change()

    def _refused(self, text: str) -> bool:
        """True (and ``on_refused`` told) when the project is read-only."""
        if not self.project.read_only:
            return False
        if self.on_refused is not None:
            self.on_refused(f"{text}: not done, this project is open read-only")
        return True

    def _do(self, edit: Edit) -> None:
        if self._refused(edit.text):
            return
        if not isinstance(edit, BoxesEdit):
            self.flush()
        change = edit.apply(self)
        self._history.undo.append(edit)
        del self._history.undo[:-UNDO_LIMIT]
        self._history.redo.clear()
        self._notify(change)

    def _notify(self, change: Change) -> None:
        if self.on_change is not None:
            self.on_change(change)


def _merge(first: Change, second: Change) -> Change:
    return Change(images=first.images | second.images,
                  categories=first.categories or second.categories,
                  current_image=first.current_image or second.current_image,
                  boxes=first.boxes or second.boxes)
