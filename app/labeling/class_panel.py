"""The class panel: the project's classes with their colours and box counts; add, rename,
recolour, merge and delete, each an undoable edit; the current class for new boxes.

Keys 1-9 pick the first nine classes in the order shown (by id, the order a trainer numbers
them), so the panel shows that number beside each name. Deleting or merging says how many boxes
it affects and asks first.
"""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import (
    QColorDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from engine.data.project import CategoryRow, ProjectError
from engine.text import count as count_of

from .editor import ProjectEditor


def _swatch(color: str, size: int = 14) -> QIcon:
    pixmap = QPixmap(size, size)
    pixmap.fill(QColor(color))
    return QIcon(pixmap)


class ClassPanel(QWidget):
    """See the module docstring. ``current_changed`` carries the class for new boxes;
    ``apply_requested`` asks to give the selected box this class (double-click, Enter)."""

    current_changed = Signal(object)  # category id or None
    apply_requested = Signal(int)
    error = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.editor: ProjectEditor | None = None
        self._categories: list[CategoryRow] = []
        self._counts: dict[int, int] = {}
        title = QLabel("<b>Classes</b>")
        self.list = QListWidget()
        self.list.setIconSize(QSize(14, 14))
        self.list.setToolTip("The class for new boxes. Double-click (or press 1-9) to give the "
                             "selected box this class.")
        self.list.currentRowChanged.connect(self._current_row_changed)
        self.list.itemActivated.connect(self._activated)
        buttons = QHBoxLayout()
        buttons.setSpacing(2)
        self.buttons: dict[str, QToolButton] = {}
        for key, text, tip, slot in (
                ("add", "Add", "Add a class", self.ask_add),
                ("rename", "Rename", "Rename the chosen class", self.ask_rename),
                ("colour", "Colour", "Change the chosen class's colour", self.ask_recolour),
                ("merge", "Merge", "Give every box of the chosen class another class, then "
                                   "remove it", self.ask_merge),
                ("delete", "Delete", "Delete the chosen class and its boxes", self.ask_delete)):
            button = QToolButton(text=text, toolTip=tip)
            button.clicked.connect(slot)
            buttons.addWidget(button)
            self.buttons[key] = button
        buttons.addStretch()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(title)
        layout.addWidget(self.list, 1)
        layout.addLayout(buttons)
        self._update_buttons()

    # --- state ----------------------------------------------------------------------------------

    def set_editor(self, editor: ProjectEditor | None) -> None:
        self.editor = editor
        self.refresh()

    def refresh(self) -> None:
        """Re-read classes and counts (after any edit), keeping the current class."""
        current = self.current_category()
        if self.editor is None:
            self._categories, self._counts = [], {}
        else:
            self._categories = self.editor.project.categories()
            self._counts = self.editor.box_counts()
        self.list.blockSignals(True)
        self.list.clear()
        for number, category in enumerate(self._categories, start=1):
            key = f"{number}  " if number <= 9 else "   "
            count = self._counts.get(category.id, 0)
            item = QListWidgetItem(_swatch(category.color), f"{key}{category.name}  ({count})")
            item.setData(Qt.ItemDataRole.UserRole, category.id)
            item.setToolTip(f"{category.name}: {count_of(count, 'box')} in the project, id "
                            f"{category.id}, colour {category.color}")
            self.list.addItem(item)
        self.list.blockSignals(False)
        ids = [category.id for category in self._categories]
        row = ids.index(current) if current in ids else (0 if ids else -1)
        self.list.setCurrentRow(row)
        self._update_buttons()
        if (ids[row] if row >= 0 else None) != current:
            self.current_changed.emit(self.current_category())

    def current_category(self) -> int | None:
        item = self.list.currentItem()
        return None if item is None else item.data(Qt.ItemDataRole.UserRole)

    def set_current_category(self, category_id: int) -> None:
        for row in range(self.list.count()):
            if self.list.item(row).data(Qt.ItemDataRole.UserRole) == category_id:
                self.list.setCurrentRow(row)
                return

    def category_at(self, number: int) -> int | None:
        """The class that key ``number`` (1-9) picks."""
        if 1 <= number <= len(self._categories):
            return self._categories[number - 1].id
        return None

    def _current_row_changed(self, _row: int) -> None:
        self._update_buttons()
        self.current_changed.emit(self.current_category())

    def _activated(self, item: QListWidgetItem) -> None:
        self.apply_requested.emit(item.data(Qt.ItemDataRole.UserRole))

    def _update_buttons(self) -> None:
        chosen = self.current_category() is not None
        self.buttons["add"].setEnabled(self.editor is not None)
        for key in ("rename", "colour", "delete"):
            self.buttons[key].setEnabled(chosen)
        self.buttons["merge"].setEnabled(chosen and len(self._categories) > 1)

    def _category(self, category_id: int) -> CategoryRow:
        return next(c for c in self._categories if c.id == category_id)

    def _run(self, action) -> bool:
        """Run an editor action; a refused one (duplicate name, busy store) is reported."""
        try:
            action()
        except (ProjectError, ValueError) as error:
            self.error.emit(str(error))
            QMessageBox.warning(self, "Classes", str(error))
            return False
        return True

    # --- the buttons' dialogs -------------------------------------------------------------------

    def ask_add(self) -> int | None:
        """Ask for a name and add the class; returns its id (None if cancelled)."""
        if self.editor is None:
            return None
        name, ok = QInputDialog.getText(self, "Add class", "Name of the new class:")
        if not ok or not name.strip():
            return None
        added: list[CategoryRow] = []
        if not self._run(lambda: added.append(self.editor.add_category(name))):
            return None
        self.set_current_category(added[0].id)
        return added[0].id

    def ask_rename(self) -> None:
        category_id = self.current_category()
        if category_id is None:
            return
        category = self._category(category_id)
        name, ok = QInputDialog.getText(self, "Rename class", f"New name for {category.name!r}:",
                                        text=category.name)
        if ok and name.strip():
            self._run(lambda: self.editor.rename_category(category_id, name))

    def ask_recolour(self) -> None:
        category_id = self.current_category()
        if category_id is None:
            return
        category = self._category(category_id)
        color = QColorDialog.getColor(QColor(category.color), self,
                                      f"Colour of {category.name!r}")
        if color.isValid():
            self._run(lambda: self.editor.recolor_category(category_id, color.name()))

    def ask_merge(self) -> None:
        category_id = self.current_category()
        if category_id is None or len(self._categories) < 2:
            return
        source = self._category(category_id)
        others = [c for c in self._categories if c.id != category_id]
        name, ok = QInputDialog.getItem(
            self, "Merge class",
            f"Give the {count_of(self._counts.get(category_id, 0), 'box')} of {source.name!r} "
            f"the class:",
            [c.name for c in others], 0, False)
        if not ok:
            return
        into = next(c for c in others if c.name == name)
        self._run(lambda: self.editor.merge_categories(category_id, into.id))

    def ask_delete(self) -> None:
        category_id = self.current_category()
        if category_id is None:
            return
        category = self._category(category_id)
        count = self._counts.get(category_id, 0)
        question = (f"Delete the class {category.name!r}?" if count == 0 else
                    f"Delete the class {category.name!r} and its {count} "
                    f"box{'es' if count != 1 else ''} in the project?")
        answer = QMessageBox.question(
            self, "Delete class", question + "\n\nEdit > Undo brings them back.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Cancel)
        if answer == QMessageBox.StandardButton.Yes:
            self._run(lambda: self.editor.delete_category(category_id))
