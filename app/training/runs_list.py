"""The project's past runs: when, how it ended (or running, or paused), best AP and AP50,
configuration (on a few lines, its column as wide as they are).

Reads ``<project>/runs`` through :func:`engine.training.runs.list_runs` (small files only).
``run_selected`` carries the selected :class:`~engine.training.runs.RunInfo` (None when
nothing is selected). Other views add their own actions on a run (export it, pre-label with
it) with :meth:`RunsList.add_run_action`; they appear in the list's context menu.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QAction, QBrush, QColor
from PySide6.QtWidgets import QAbstractItemView, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from engine.training.runs import RunInfo, list_runs

COLUMNS = ("Run", "State", "Best AP", "AP50", "Epochs", "Configuration")
CONFIGURATION = COLUMNS.index("Configuration")
PARTS_PER_LINE = 3  # the configuration's parts, a few to a line, so that the column stays narrow
STATE_COLORS = {"running": "#1f78b4", "paused": "#1f78b4", "finished": "#2b8a3e",
                "stopped": "#8a6d00", "failed": "#c92a2a", "interrupted": "#c92a2a",
                "unknown": "#666666"}


def _number(value: float | None) -> str:
    return "–" if value is None or value < 0 else f"{value:.3f}"


def configuration_lines(description: str) -> str:
    """A run's one-line configuration (``RunInfo.describe()``) on a few short lines."""
    parts = description.split(", ")
    return "\n".join(", ".join(parts[i:i + PARTS_PER_LINE])
                     for i in range(0, len(parts), PARTS_PER_LINE))


class RunsList(QWidget):
    run_selected = Signal(object)

    def __init__(self, project_folder: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.project_folder = Path(project_folder)
        self.runs: list[RunInfo] = []
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(list(COLUMNS))
        self.tree.setRootIsDecorated(False)
        self.tree.setAlternatingRowColors(True)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.tree.setContextMenuPolicy(Qt.ContextMenuPolicy.ActionsContextMenu)
        self.tree.itemSelectionChanged.connect(self._selection_changed)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.tree)
        self.refresh()

    def refresh(self, select: Path | None = None) -> None:
        """Read the runs again; keep the selection (or select the run in ``select``)."""
        current = self.selected_run()
        wanted = Path(select) if select is not None else (current.folder if current else None)
        self.runs = list_runs(self.project_folder)
        self.tree.blockSignals(True)
        self.tree.clear()
        chosen = None
        for run in self.runs:
            item = QTreeWidgetItem([
                run.name, run.state, _number(run.best_ap), _number(run.best_ap50),
                str(len(run.epochs)), configuration_lines(run.describe())])
            item.setForeground(1, QBrush(QColor(STATE_COLORS.get(run.state, "#000000"))))
            tip = run.message or run.state
            if run.checkpoints:
                tip += "\n" + "\n".join(str(path) for path in run.checkpoints.values())
            for column in range(len(COLUMNS)):
                item.setToolTip(column, tip)
            item.setToolTip(CONFIGURATION, run.describe())
            item.setData(0, Qt.ItemDataRole.UserRole, str(run.folder))
            self.tree.addTopLevelItem(item)
            if wanted is not None and run.folder == wanted:
                chosen = item
        # Every column as wide as its text, the configuration's included (a horizontal scroll
        # bar appears when the panel is narrower than the whole).
        for column in range(len(COLUMNS)):
            self.tree.resizeColumnToContents(column)
        if chosen is not None:
            self.tree.setCurrentItem(chosen)
        self.tree.blockSignals(False)
        # Always: the selected run's files may say more now (a new checkpoint, its end).
        self._selection_changed()

    def selected_run(self) -> RunInfo | None:
        items = self.tree.selectedItems()
        if not items:
            return None
        folder = Path(items[0].data(0, Qt.ItemDataRole.UserRole))
        return next((run for run in self.runs if run.folder == folder), None)

    def select(self, folder: Path) -> None:
        for index in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(index)
            if Path(item.data(0, Qt.ItemDataRole.UserRole)) == Path(folder):
                self.tree.setCurrentItem(item)
                return

    def add_run_action(self, text: str, callback: Callable[[RunInfo], None],
                       enabled: Callable[[RunInfo], bool] | None = None) -> QAction:
        """A context-menu action on the selected run, e.g. ("Export…", export_dialog).
        ``enabled(run)`` decides whether it applies (default: the run has a checkpoint)."""
        action = QAction(text, self.tree)
        check = enabled or (lambda run: bool(run.checkpoints))

        def trigger() -> None:
            run = self.selected_run()
            if run is not None:
                callback(run)

        def update(run: RunInfo | None) -> None:
            action.setEnabled(run is not None and check(run))

        action.triggered.connect(trigger)
        self.run_selected.connect(update)
        update(self.selected_run())
        self.tree.addAction(action)
        return action

    def _selection_changed(self) -> None:
        self.run_selected.emit(self.selected_run())
