"""The labeling view: the image list, the canvas and the class panel side by side, wired to
the project editor, with autosave and the labeling actions (the window puts them in its menus
and toolbar).

Autosave: every edit starts a short timer (:data:`AUTOSAVE_DELAY_MS`); when it fires, the
editor writes the current image's boxes in one transaction. Showing another image, closing the
window and quitting write at once. A write the store refuses (another program holding it for
longer than its timeout) is retried every :data:`RETRY_DELAY_MS` and said in the status bar;
the edit stays in memory meanwhile.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QLabel, QMessageBox, QSplitter, QVBoxLayout, QWidget

from engine.data.annotations import BoxRecord
from engine.data.project import EditConflictError, ImageRow, Project, ProjectError
from engine.text import count

from . import geometry
from .assist_panel import AssistPanel
from .canvas import DRAW, SELECT, LabelCanvas, zoom_percent
from .class_panel import ClassPanel
from .editor import Change, ProjectEditor
from .image_list import ImageListPanel
from .image_loader import ImageLoader, LoadedImage
from .label_next import LabelNextRanker
from .review_panel import ReviewPanel, proposal_box

AUTOSAVE_DELAY_MS = 300
RETRY_DELAY_MS = 2000
DUPLICATE_OFFSET = 10.0  # image pixels right and down, so the copy is seen beside its original


class LabelingView(QWidget):
    """See the module docstring. ``message`` carries transient status-bar text;
    ``image_changed`` the id of the image now shown (None: none)."""

    message = Signal(str)
    image_changed = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.project: Project | None = None
        self.editor: ProjectEditor | None = None
        self._row: ImageRow | None = None
        self._clipboard: tuple[BoxRecord, ...] = ()

        self.image_list = ImageListPanel()
        self.canvas = LabelCanvas()
        self.class_panel = ClassPanel()
        self.assist = AssistPanel()
        self.side = QSplitter(Qt.Orientation.Vertical)
        self.side.addWidget(self.class_panel)
        self.side.addWidget(self.assist)
        self.review = ReviewPanel()
        self.review.checkpoint = self.assist.checkpoint.currentData
        self.side.addWidget(self.review)
        self.side.setChildrenCollapsible(False)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.image_list)
        self.splitter.addWidget(self.canvas)
        self.splitter.addWidget(self.side)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([300, 900, 300])
        self.splitter.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.splitter)

        # The status bar's permanent fields (the window adds them to its status bar).
        self.cursor_label = QLabel()
        self.size_label = QLabel()
        self.zoom_label = QLabel()
        self.count_label = QLabel()
        self.status_widgets = (self.cursor_label, self.size_label, self.zoom_label,
                               self.count_label)

        self.loader = ImageLoader(self._image_loaded, self._image_failed, self)
        self.autosave = QTimer(self, singleShot=True, interval=AUTOSAVE_DELAY_MS)
        self.autosave.timeout.connect(self.flush)

        self.actions: dict[str, QAction] = {}
        self._active = True  # the view is the one shown (its actions act only then)
        self._make_actions()

        self.image_list.image_selected.connect(self.show_image)
        self.canvas.edit_requested.connect(self._canvas_edit)
        self.canvas.selection_changed.connect(self._update_actions)
        self.canvas.cursor_moved.connect(self._show_cursor)
        self.canvas.view_changed.connect(self._show_zoom)
        self.canvas.mode_changed.connect(self._mode_changed)
        self.canvas.navigate_requested.connect(self.step)
        self.canvas.class_needed.connect(self.class_panel.ask_add)
        self.class_panel.current_changed.connect(self._current_class_changed)
        self.class_panel.apply_requested.connect(self.set_selected_class)
        self.class_panel.error.connect(self.message)
        self.canvas.suggestion_selected.connect(self._suggestion_selected)
        self.canvas.suggestion_activated.connect(self._accept_suggestion)
        self.assist.suggestions_changed.connect(self._show_suggestions)
        self.assist.message.connect(self.message)
        self.ranker = LabelNextRanker(self)
        self.image_list.label_next_requested.connect(self.rank_label_next)
        self.image_list.label_next_cancelled.connect(self.cancel_label_next)
        self.ranker.progressed.connect(self.image_list.show_ranking_progress)
        self.ranker.finished.connect(self._label_next_ranked)
        self.ranker.failed.connect(self._label_next_failed)
        self.assist.checkpoint.currentIndexChanged.connect(lambda _i: self.review.update_buttons())
        self.review.entry_chosen.connect(self._show_review_entry)
        self.review.message.connect(self.message)
        self._update_actions()

    # --- actions ---

    def _action(self, key: str, text: str, slot, shortcuts=(), tip: str = "",
                checkable: bool = False) -> QAction:
        action = QAction(text, self)
        action.setShortcuts([QKeySequence(s) for s in shortcuts])
        action.setToolTip(f"{tip or text} ({', '.join(map(str, shortcuts))})"
                          if shortcuts else tip or text)
        action.setCheckable(checkable)
        action.triggered.connect(slot)
        self.addAction(action)
        self.actions[key] = action
        return action

    def _make_actions(self) -> None:
        a = self._action
        a("draw", "&Draw boxes", lambda: self.canvas.set_mode(DRAW), ["W"],
          "Draw boxes: drag on the image", checkable=True)
        a("select", "&Select and edit", lambda: self.canvas.set_mode(SELECT), ["V"],
          "Select, move and resize boxes; drag empty space to pan", checkable=True)
        self.actions["select"].setChecked(True)
        a("undo", "&Undo", self.undo, [QKeySequence.StandardKey.Undo])
        a("redo", "&Redo", self.redo, ["Ctrl+Shift+Z", "Ctrl+Y"])
        a("copy", "&Copy boxes", self.copy_boxes, [QKeySequence.StandardKey.Copy],
          "Copy the selected box (all boxes when none is selected)")
        a("paste", "&Paste boxes", self.paste_boxes, [QKeySequence.StandardKey.Paste],
          "Paste copied boxes into this image")
        a("duplicate", "D&uplicate box", self.duplicate_box, ["Ctrl+D"])
        a("delete", "&Delete box", self.delete_box, [QKeySequence.StandardKey.Delete,
                                                      "Backspace"])
        a("difficult", "Toggle di&fficult", self.toggle_difficult, ["T"],
          "Mark the selected box difficult (or not)")
        a("zoom_in", "Zoom &in", lambda: self.canvas.zoom_by(1.25), ["+", "=", "Ctrl++"])
        a("zoom_out", "Zoom &out", lambda: self.canvas.zoom_by(1 / 1.25), ["-", "Ctrl+-"])
        a("fit", "&Fit to window", self.canvas.fit, ["F", "Ctrl+0"])
        a("actual", "&Actual size (1:1)", self.canvas.actual_size, ["Ctrl+1"])
        a("previous", "&Previous image", lambda: self.step(-1), ["A"])
        a("next", "&Next image", lambda: self.step(1), ["D"])
        a("next_unlabeled", "Next &unlabeled image", self.next_unlabeled, ["U"])
        a("done", "Mark &done", lambda: self.mark("done"), ["Space"],
          "Mark this image done: its boxes are complete (only done images train)")
        a("in_progress", "Mark in &progress", lambda: self.mark("in_progress"), [])
        a("skipped", "Mark s&kipped", lambda: self.mark("skipped"), ["Ctrl+K"],
          "Skip this image (left out of training)")
        a("unlabeled", "Mark un&labeled", lambda: self.mark("unlabeled"), [])
        a("review_accept", "Accept the review's co&rrection", self.review.accept_current, ["Y"],
          "Review queue: apply the model's correction to the chosen label (undo: Ctrl+Z)")
        a("review_keep", "&Keep the reviewed label", self.review.keep_current, ["N"],
          "Review queue: the label is right; go to the next entry")
        for number in range(1, 10):
            a(f"class_{number}", f"Class {number}",
              lambda _checked=False, n=number: self.pick_class(n), [str(number)],
              f"Use class {number} (and give it to the selected box)")

    def set_active(self, active: bool) -> None:
        """Shown (True) or behind another tab (False): its keys and menu items must not
        change images nobody is looking at."""
        self._active = active
        self._update_actions()

    def _update_actions(self, *_args: object) -> None:
        if not self._active:
            for action in self.actions.values():
                action.setEnabled(False)
            return
        for action in self.actions.values():
            action.setEnabled(True)
        has_image = self.editor is not None and self.editor.image_id is not None
        selected = self.canvas.selected is not None
        editor = self.editor
        self.actions["undo"].setEnabled(editor is not None and editor.can_undo)
        self.actions["redo"].setEnabled(editor is not None and editor.can_redo)
        self.actions["undo"].setText(f"&Undo {editor.undo_text}" if editor and editor.can_undo
                                     else "&Undo")
        self.actions["redo"].setText(f"&Redo {editor.redo_text}" if editor and editor.can_redo
                                     else "&Redo")
        for key in ("duplicate", "difficult"):
            self.actions[key].setEnabled(selected)
        self.actions["delete"].setEnabled(
            selected or self.canvas.selected_suggestion is not None)
        for key in ("copy", "draw", "done", "in_progress", "skipped", "unlabeled"):
            self.actions[key].setEnabled(has_image)
        self.actions["paste"].setEnabled(has_image and bool(self._clipboard))
        self.count_label.setText("" if not has_image else
                                 f"{len(self.canvas.boxes)} box"
                                 f"{'es' if len(self.canvas.boxes) != 1 else ''}")

    # --- project and images ---

    def set_project(self, project: Project | None, *, image_id: int | None = None) -> None:
        """Show ``project`` (None: nothing), with ``image_id`` current when it is one of its
        images, else its first."""
        self.flush()
        self.ranker.cancel()
        self.project = project
        self.editor = None if project is None else ProjectEditor(project, self._changed,
                                                                  self.message.emit)
        self.loader.forget()
        self.class_panel.set_editor(self.editor)
        self.assist.set_editor(self.editor)
        self.review.set_editor(self.editor)
        self.canvas.set_categories([] if project is None else project.categories())
        self.canvas.set_boxes(())
        self.canvas.set_message("")
        self._row = None
        if project is None:
            return
        self.image_list.set_project(project)
        first = self.image_list.neighbour_id(1)
        if image_id is not None and self.image_list.model.row_of(image_id) is not None:
            first = image_id
        if first is not None:
            self.show_image(first)
        else:
            self.canvas.set_message("This project has no images yet.\n\n"
                                    "File > Add images… or File > Import annotations…")
        self._update_actions()

    def reload_project(self, *, keep_history: bool = False) -> None:
        """After a change made outside the editor: re-read everything. An import may change
        boxes under the undo history, which is then forgotten; ``keep_history`` for changes
        that leave every existing image's boxes as they were (added images)."""
        if self.project is None or self.editor is None:
            return
        self.flush()
        if not keep_history:
            self.editor.clear_history()
        current = self.editor.image_id
        self.image_list.refresh_images(None)
        self.class_panel.refresh()
        self.assist.refresh_classes()
        self.canvas.set_categories(self.project.categories())
        if current is not None:
            self.editor.open_image(current)
            self.canvas.set_boxes(self.editor.boxes)
            self._show_suggestions()
        else:
            first = self.image_list.neighbour_id(1)
            if first is not None:
                self.show_image(first)
        self._update_actions()

    def current_image(self) -> ImageRow | None:
        return self._row

    def show_image(self, image_id: int) -> bool:
        """Make ``image_id`` current: write the previous image's edits, then show this one
        (a preview at once, the full image when decoded). False if the previous image's
        edits could not be written (then nothing changes)."""
        if self.editor is None:
            return False
        try:
            self.editor.open_image(image_id)
        except ProjectError as error:
            self.message.emit(f"Not saved yet, retrying: {error}")
            self.autosave.start(RETRY_DELAY_MS)
            return False
        self._row = self.project.image(image_id)
        self.image_list.select_image(image_id)
        self.canvas.set_boxes(self.editor.boxes, selected=None)
        self._show_suggestions()
        entry = self.review.current_entry()
        self.canvas.set_review_mark(proposal_box(entry) if entry is not None
                                    and entry.image_id == image_id else None)
        row = self._row
        if row.problem is not None:
            reason = "file not found" if row.problem == "missing" else "file cannot be read"
            kept = "is" if row.box_count == 1 else "are"
            self.canvas.set_message(f"{row.file}\n\n{reason}; its {count(row.box_count, 'box')} "
                                    f"{kept} kept in the project.")
        else:
            size = (row.width, row.height) if row.width and row.height else None
            self.loader.request(row.file, size, prefetch=self._neighbour_files())
        self.size_label.setText(f"{row.width} × {row.height} px" if row.width else "")
        self._update_actions()
        self.image_changed.emit(image_id)
        return True

    def _neighbour_files(self) -> tuple[Path, ...]:
        files = []
        for step in (1, -1):
            image_id = self.image_list.neighbour_id(step)
            if image_id is not None:
                row = self.project.image(image_id)
                if row.problem is None:
                    files.append(row.file)
        return tuple(files)

    def _image_loaded(self, image: LoadedImage) -> None:
        if self._row is None or image.path != self._row.file:
            return
        shown = self.canvas.image_loaded
        self.canvas.set_image(image, keep_view=shown is not None and shown.path == image.path)
        self.size_label.setText(f"{image.size[0]} × {image.size[1]} px")
        self._show_zoom()

    def _image_failed(self, path: Path, reason: str) -> None:
        if self._row is not None and path == self._row.file:
            self.canvas.set_message(f"{reason}\n\nIts boxes are kept in the project.")

    def step(self, step: int) -> None:
        """Show the next (+1) or previous (-1) image in the list's filtered order."""
        image_id = self.image_list.neighbour_id(step)
        if image_id is None:
            self.message.emit("This is the last image." if step > 0 else
                              "This is the first image.")
            return
        self.show_image(image_id)

    def next_unlabeled(self) -> None:
        image_id = self.image_list.next_unlabeled_id()
        if image_id is None:
            self.message.emit("No other unlabeled image.")
            return
        self.show_image(image_id)

    # --- edits ---

    def _canvas_edit(self, boxes: tuple[BoxRecord, ...], text: str, merge_key: object) -> None:
        if self.editor is not None and self.editor.image_id is not None:
            self.editor.edit_boxes(boxes, text, merge_key)

    def _edit_selected(self, text: str, **changes: object) -> None:
        index = self.canvas.selected
        if index is None or self.editor is None:
            return
        boxes = list(self.editor.boxes)
        boxes[index] = dataclasses.replace(boxes[index], **changes)
        self.editor.edit_boxes(boxes, text)

    def _changed(self, change: Change) -> None:
        """The editor changed something: refresh what shows it, and schedule the save."""
        if change.current_image:
            self.show_image(self.editor.image_id)
        elif change.boxes:
            self.canvas.set_boxes(self.editor.boxes)
            self._show_suggestions()
        if change.categories:
            self.canvas.set_categories(self.project.categories())
            self.assist.refresh_classes()
        if change.categories or change.boxes:
            self.class_panel.refresh()
        if change.images:
            self.image_list.refresh_images(change.images)
        if self.editor.dirty:
            self.autosave.start(AUTOSAVE_DELAY_MS)
        self._update_actions()

    def flush(self) -> bool:
        """Write unsaved edits now. False (and retried shortly) if the store refused."""
        if self.editor is None:
            return True
        try:
            written = self.editor.flush()
        except EditConflictError as error:
            # Retrying cannot help: the user chooses whose boxes stay.
            keep_mine = self.ask_keep_mine(str(error))
            self._changed(self.editor.resolve_conflict(keep_mine))
            self.message.emit("Your boxes were saved over the other program's" if keep_mine
                              else "Took the other program's boxes (Ctrl+Z brings yours back)")
            return True
        except ProjectError as error:
            self.message.emit(f"Not saved yet, retrying: {error}")
            self.autosave.start(RETRY_DELAY_MS)
            return False
        if written and self.editor.image_id is not None:
            self.image_list.refresh_images([self.editor.image_id])
        return True

    def ask_keep_mine(self, conflict: str) -> bool:
        """Whether to write this window's boxes over another program's change of them."""
        answer = QMessageBox.question(
            self, "Boxes changed by another program",
            f"{conflict}.\n\nKeep your boxes (replacing the other program's), or take theirs?"
            f"\n(Taking theirs keeps yours one Ctrl+Z away.)",
            QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard,
            QMessageBox.StandardButton.Save)
        return answer == QMessageBox.StandardButton.Save

    def undo(self) -> None:
        if self.editor is not None:
            self._report(self.editor.undo, "Undid")

    def redo(self) -> None:
        if self.editor is not None:
            self._report(self.editor.redo, "Redid")

    def _report(self, action, verb: str) -> None:
        try:
            edit = action()
        except ProjectError as error:
            self.message.emit(str(error))
            return
        if edit is not None:
            self.message.emit(f"{verb}: {edit.text}")

    def delete_box(self) -> None:
        """Delete the selected box, or reject the selected suggestion."""
        if self.canvas.selected_suggestion is not None and self.editor is not None:
            self.editor.reject_suggestions([self.canvas.selected_suggestion])
            return
        index = self.canvas.selected
        if index is None or self.editor is None:
            return
        boxes = self.editor.boxes[:index] + self.editor.boxes[index + 1:]
        self.canvas.select(None)
        self.editor.edit_boxes(boxes, "Delete box")

    def duplicate_box(self) -> None:
        index = self.canvas.selected
        size = self.canvas.image_size
        if index is None or self.editor is None or size is None:
            return
        box = self.editor.boxes[index]
        rect = geometry.moved(box, DUPLICATE_OFFSET, DUPLICATE_OFFSET, size)
        copy = dataclasses.replace(box, x0=rect[0], y0=rect[1], x1=rect[2], y1=rect[3],
                                   source="manual", score=None)
        self.editor.edit_boxes((*self.editor.boxes, copy), "Duplicate box")
        self.canvas.select(len(self.editor.boxes) - 1)

    def copy_boxes(self) -> None:
        if self.editor is None:
            return
        index = self.canvas.selected
        boxes = self.editor.boxes if index is None else (self.editor.boxes[index],)
        self._clipboard = tuple(boxes)
        self.message.emit(f"Copied {len(boxes)} box{'es' if len(boxes) != 1 else ''}.")
        self._update_actions()

    def paste_boxes(self) -> None:
        size = self.canvas.image_size
        if self.editor is None or size is None or not self._clipboard:
            return
        known = {category.id for category in self.project.categories()}
        pasted = []
        for box in self._clipboard:
            rect = geometry.pasted(box, size)
            if rect is not None and box.category_id in known:
                pasted.append(dataclasses.replace(box, x0=rect[0], y0=rect[1], x1=rect[2],
                                                  y1=rect[3], source="manual", score=None))
        left_out = len(self._clipboard) - len(pasted)
        if pasted:
            self.editor.edit_boxes((*self.editor.boxes, *pasted), "Paste boxes")
            self.canvas.select(len(self.editor.boxes) - 1)
        self.message.emit(f"Pasted {len(pasted)} box{'es' if len(pasted) != 1 else ''}"
                          + (f"; {left_out} left out (outside this image or of a deleted "
                             f"class)" if left_out else "") + ".")

    def toggle_difficult(self) -> None:
        index = self.canvas.selected
        if index is None or self.editor is None:
            return
        difficult = not self.editor.boxes[index].difficult
        self._edit_selected("Mark difficult" if difficult else "Mark not difficult",
                            difficult=difficult)

    def set_selected_class(self, category_id: int) -> None:
        """Give the selected box the class ``category_id``."""
        index = self.canvas.selected
        if index is None or self.editor is None:
            return
        if self.editor.boxes[index].category_id != category_id:
            name = self.project.category(category_id).name
            self._edit_selected(f"Change class to {name!r}", category_id=category_id)

    def pick_class(self, number: int) -> None:
        """Key 1-9: use that class for new boxes and give it to the selected box."""
        category_id = self.class_panel.category_at(number)
        if category_id is None:
            self.message.emit(f"There is no class {number}.")
            return
        self.class_panel.set_current_category(category_id)
        self.set_selected_class(category_id)

    def mark(self, status: str) -> None:
        if self.editor is None or self.editor.image_id is None:
            return
        try:
            self.editor.set_status([self.editor.image_id], status)
        except ProjectError as error:
            self.message.emit(str(error))

    def _current_class_changed(self, category_id: int | None) -> None:
        self.canvas.current_category = category_id

    # --- suggestions ---

    def _show_suggestions(self) -> None:
        self.canvas.set_suggestions(self.assist.shown())
        self.assist.set_selected(self.canvas.selected_suggestion)
        self._update_actions()

    def _suggestion_selected(self, index: int | None) -> None:
        self.assist.set_selected(index)
        self._update_actions()

    def _accept_suggestion(self, index: int) -> None:
        if self.editor is not None:
            self.editor.accept_suggestions([index])

    # --- most useful to label next ---

    def rank_label_next(self) -> None:
        """Order the image list by the ranking of the model chosen under Suggestions (off the
        GUI thread; the list shows progress and Cancel)."""
        checkpoint = self.assist.checkpoint.currentData()
        if self.project is None or checkpoint is None:
            self.image_list.set_ranking(None)
            self.message.emit("Choose a model under Suggestions from a model first (train one "
                              "on the Train tab) to rank the unlabeled images.")
            return
        self.flush()
        candidates = self.ranker.start(self.project, checkpoint)
        if not candidates:
            self.image_list.set_ranking(None)
            self.message.emit("No unlabeled images to rank.")
            return
        self.image_list.show_ranking_progress(0.0, f"0 / {candidates} images")
        self.message.emit(f"Ranking {count(candidates, 'unlabeled image')} with "
                          f"{Path(checkpoint).name}…")

    def cancel_label_next(self) -> None:
        if self.ranker.cancel():
            self.message.emit("Ranking cancelled.")
        self.image_list.show_ranking_progress(None)
        self.image_list.set_ranking(None)

    def _label_next_ranked(self, ranking) -> None:
        self.image_list.show_ranking_progress(None)
        self.image_list.set_ranking(ranking.images)
        skipped = f"; {count(len(ranking.skipped), 'image')} skipped" if ranking.skipped \
            else ""
        self.message.emit(f"{count(len(ranking.images), 'unlabeled image')} ranked, most "
                          f"useful to label first{skipped}.")

    def _label_next_failed(self, text: str) -> None:
        self.image_list.show_ranking_progress(None)
        self.image_list.set_ranking(None)
        self.message.emit(f"Could not rank the images: {text}")

    # --- review queue ---

    def _show_review_entry(self, entry) -> None:
        """Show the review entry's image with its label box selected and the model's
        proposal drawn (None: clear the proposal)."""
        if entry is None or self.editor is None:
            self.canvas.set_review_mark(None)
            return
        if self.editor.image_id != entry.image_id and not self.show_image(entry.image_id):
            return
        self.canvas.set_review_mark(proposal_box(entry))
        index = entry.box_index
        self.canvas.select(index if index is not None and index < len(self.editor.boxes)
                           else None)
        self._update_actions()

    # --- status bar ---

    def _show_cursor(self, point: tuple[float, float] | None) -> None:
        self.cursor_label.setText("" if point is None else
                                  f"x {point[0]:.1f}  y {point[1]:.1f}")

    def _show_zoom(self) -> None:
        self.zoom_label.setText(zoom_percent(self.canvas.zoom)
                                if self.canvas.image_size else "")

    def _mode_changed(self, mode: str) -> None:
        self.actions["draw"].setChecked(mode == DRAW)
        self.actions["select"].setChecked(mode == SELECT)

    # --- persistence and shutdown ---

    def save_layout(self, settings: QSettings) -> None:
        settings.setValue("labeling/splitter", self.splitter.saveState())
        settings.setValue("labeling/side", self.side.saveState())

    def restore_layout(self, settings: QSettings) -> None:
        for key, splitter in (("labeling/splitter", self.splitter), ("labeling/side", self.side)):
            state = settings.value(key)
            if state is not None:
                splitter.restoreState(state)

    def shutdown(self) -> None:
        """Write what is unsaved, then stop background work."""
        self.autosave.stop()
        self.flush()
        self.assist.shutdown()
        self.ranker.shutdown()
        self.review.shutdown()
        self.loader.shutdown()
        self.image_list.shutdown()
