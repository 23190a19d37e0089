"""The labeling window's image list: thumbnails, status badges, filters, search, navigation.

A :class:`QListView` over :class:`ImageListModel` (uniform row heights, one delegate paints
every row, no widget per row), so 5,000 images cost a list of rows in memory and nothing per
row on screen but what is in view. Thumbnails are asked for only when a row is painted and load
on a worker thread (:mod:`app.labeling.thumbnails`); a placeholder of the image's shape stands
in until they arrive.

Filters (status, class, split, name) are combined; the model keeps the project's order (the
order images were added) and shows the rows that pass. The *current* image is the one last
chosen by the user or by :meth:`ImageListPanel.select_image`; it stays current while a filter
hides it (the window still shows it, the list highlights nothing), and next/previous then go
from where it would be in the list. Rows are re-filtered after :meth:`refresh_images`, so an
image labeled "done" leaves an "unlabeled" filter at once. (Tabbing into the list while it
highlights nothing makes its first row current, as in any Qt list, and so selects that image.)

"Sort by: most useful to label next" puts the unlabeled images first, in the order a trained
model ranked them (:mod:`app.labeling.label_next`), each with its score, and the others after
them in their usual order; the panel shows the ranking's progress and a Cancel meanwhile.

Run ``python -m app.labeling.image_list [PROJECT]`` to see the panel alone (the demo project
without a folder).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QPoint,
    QRect,
    QSize,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QColor, QFont, QIcon, QPainter, QPen, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QProgressBar,
    QPushButton,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QWidget,
)

from engine.data.annotations import SPLITS, STATUSES
from engine.data.project import NO_SPLIT, ImageRow, Project, ProjectError
from engine.text import count, natural_key

from .thumbnails import ThumbnailLoader

if TYPE_CHECKING:  # the ranking's records only; the list does not need torch to show rows
    from engine.active.ranking import RankedImage

# The status filter's choice for images whose file is missing or unreadable.
PROBLEM_FILTER = "problem"
STATUS_TEXT = {"unlabeled": "unlabeled", "in_progress": "in progress", "done": "done",
               "skipped": "skipped"}
# One colour per status, told apart also by their words (for colour-blind users).
STATUS_COLORS = {"unlabeled": "#7f8790", "in_progress": "#d98b00", "done": "#2e9d4a",
                 "skipped": "#7b61b5"}
PROBLEM_COLOR = "#d32f2f"
THUMBNAIL_SIDE = 64  # logical pixels, the long side
_ROW_PADDING = 4

# Model roles.
ROW_ROLE = Qt.ItemDataRole.UserRole + 1  # the ImageRow
THUMBNAIL_ROLE = Qt.ItemDataRole.UserRole + 2  # QPixmap, or None until loaded (asks for it)
PROBLEM_ROLE = Qt.ItemDataRole.UserRole + 3  # None, "missing" or "unreadable"
IMAGE_ID_ROLE = Qt.ItemDataRole.UserRole + 4
RANK_ROLE = Qt.ItemDataRole.UserRole + 5  # the RankedImage, or None when not ranked

# The sort choices.
USUAL_ORDER = "usual"
LABEL_NEXT_ORDER = "label_next"


# ---------------------------------------------------------------------------------------------
# Filtering and navigation: pure logic


@dataclass(frozen=True)
class ImageFilter:
    """What the list shows. Each field None (or "") means any.

    ``status``: one of STATUSES, or PROBLEM_FILTER for images whose file is missing or
    unreadable; ``category_id``: images with at least one box of it; ``split``: train, val,
    test or "none" (no split); ``text``: a case-insensitive part of the image's path.
    """

    status: str | None = None
    category_id: int | None = None
    split: str | None = None
    text: str = ""

    def accepts(self, row: ImageRow, categories: frozenset[int], problem: str | None) -> bool:
        """``categories``: the ids of the row's box classes; ``problem``: the row's problem as
        known now (the store's flag, or what loading its thumbnail found)."""
        if self.status == PROBLEM_FILTER:
            if problem is None:
                return False
        elif self.status is not None and row.status != self.status:
            return False
        if self.category_id is not None and self.category_id not in categories:
            return False
        if self.split is not None and (row.split or NO_SPLIT) != self.split:
            return False
        return not self.text or self.text.casefold() in row.path.casefold()


def step_position(shown: Sequence[int], current: int | None, step: int) -> int | None:
    """The position ``step`` rows away from ``current`` among the ``shown`` positions.

    Positions index the full (unfiltered) list; ``shown`` is sorted. When ``current`` is not
    shown (a filter hides it), counting starts from where it would be, so +1 is the first shown
    row after it; with no current, +1 is the first row and -1 the last. None past either end.
    """
    if step == 0:
        return current
    if current is None:
        index = step - 1 if step > 0 else len(shown) + step
    elif step > 0:
        index = bisect.bisect_right(shown, current) + step - 1
    else:
        index = bisect.bisect_left(shown, current) + step
    return shown[index] if 0 <= index < len(shown) else None


def next_matching(shown: Sequence[int], current: int | None,
                  matches: Callable[[int], bool]) -> int | None:
    """The first shown position after ``current`` (wrapping round, ``current`` itself last
    excluded) for which ``matches`` is true; None when there is none."""
    start = 0 if current is None else bisect.bisect_right(shown, current)
    for index in range(start, start + len(shown)):
        position = shown[index % len(shown)]
        if position != current and matches(position):
            return position
    return None


# ---------------------------------------------------------------------------------------------
# The model


class ImageListModel(QAbstractListModel):
    """The project's images (rows in the order added), filtered; thumbnails from ``loader``."""

    def __init__(self, loader: ThumbnailLoader, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.loader = loader
        self._rows: list[ImageRow] = []  # every image, in project order
        self._position: dict[int, int] = {}  # image id -> index in _rows
        self._categories: dict[int, frozenset[int]] = {}  # image id -> box classes
        self._filter = ImageFilter()
        self._shown: list[int] = []  # indexes into _rows that pass the filter, ascending
        self._shown_row: dict[int, int] = {}  # image id -> row in the view
        self._ranked: dict[int, RankedImage] = {}  # image id -> its place in the ranking
        self._usual: dict[int, int] = {}  # image id -> its index in the usual order
        loader.thumbnail_ready.connect(self._thumbnail_ready)

    # --- Qt's model interface ---------------------------------------------------------------

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self._shown)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if not index.isValid() or not 0 <= index.row() < len(self._shown):
            return None
        row = self._rows[self._shown[index.row()]]
        if role == Qt.ItemDataRole.DisplayRole:
            return Path(row.path).name
        if role == Qt.ItemDataRole.ToolTipRole:
            ranked = self._ranked.get(row.id)
            return row.path if ranked is None else f"{row.path}\n{ranking_text(ranked)}"
        if role == RANK_ROLE:
            return self._ranked.get(row.id)
        if role == ROW_ROLE:
            return row
        if role == IMAGE_ID_ROLE:
            return row.id
        if role == PROBLEM_ROLE:
            return self.problem(row)
        if role == THUMBNAIL_ROLE:
            if row.problem == "missing":
                return None
            pixmap = self.loader.get(row.id)
            if pixmap is None:
                self.loader.request(row.id, row.file)
            return pixmap
        return None

    # --- contents ---------------------------------------------------------------------------

    def set_rows(self, rows: list[ImageRow], categories: dict[int, frozenset[int]]) -> None:
        """Every image of a project, anew (the view's selection is reset); ranked images
        first when a ranking is set."""
        self.beginResetModel()
        self._rows = self._arranged(rows)
        self._position = {row.id: index for index, row in enumerate(self._rows)}
        self._categories = dict(categories)
        self._shown = self._passing(self._filter)
        self._shown_row = {self._rows[p].id: r for r, p in enumerate(self._shown)}
        self.endResetModel()

    def update_rows(self, rows: Iterable[ImageRow],
                    categories: Mapping[int, frozenset[int]]) -> list[int]:
        """Replace known rows (by id) and their classes; re-filter. Returns the ids whose file
        changed (hash or problem), whose thumbnails are stale."""
        changed_files = []
        for row in rows:
            index = self._position[row.id]
            old = self._rows[index]
            if (old.hash, old.problem, old.file) != (row.hash, row.problem, row.file):
                changed_files.append(row.id)
            self._rows[index] = row
            self._categories[row.id] = categories.get(row.id, frozenset())
        self.set_filter(self._filter, force=True)
        return changed_files

    def set_filter(self, image_filter: ImageFilter, *, force: bool = False) -> None:
        """Show the rows ``image_filter`` accepts. Rows that stay keep their selection."""
        shown = self._passing(image_filter)
        if shown != self._shown or image_filter != self._filter:
            self.layoutAboutToBeChanged.emit()
            old_ids = [self._rows[p].id for p in self._shown]
            self._filter = image_filter
            self._shown = shown
            self._shown_row = {self._rows[p].id: r for r, p in enumerate(self._shown)}
            # Persistent indexes (the selection, the current row) follow their image.
            old = self.persistentIndexList()
            new = []
            for index in old:
                row = self._shown_row.get(old_ids[index.row()]) if index.isValid() else None
                new.append(QModelIndex() if row is None else self.index(row, 0))
            self.changePersistentIndexList(old, new)
            self.layoutChanged.emit()
        if force and self._shown:
            self.dataChanged.emit(self.index(0, 0), self.index(len(self._shown) - 1, 0))

    def set_ranking(self, ranked: Iterable[RankedImage] | None) -> None:
        """Put the ranked images first, best first, the others after them in their order;
        None: back to the order the rows were set in (the view's selection is reset)."""
        usual = sorted(self._rows, key=lambda row: self._usual.get(row.id, 0))
        self._ranked = {} if ranked is None else {image.image_id: image for image in ranked}
        self.set_rows(usual, self._categories)

    def forget_ranking(self) -> None:
        """No ranking for the next :meth:`set_rows` (a new project's)."""
        self._ranked = {}

    @property
    def ranked(self) -> bool:
        return bool(self._ranked)

    def _arranged(self, rows: Iterable[ImageRow]) -> list[ImageRow]:
        """``rows`` (in their usual order, remembered) with the ranked ones moved first."""
        rows = list(rows)
        self._usual = {row.id: index for index, row in enumerate(rows)}
        if not self._ranked:
            return rows
        last = len(self._ranked) + 1
        return sorted(rows, key=lambda row: self._ranked[row.id].rank
                      if row.id in self._ranked else last)

    def _passing(self, image_filter: ImageFilter) -> list[int]:
        empty = frozenset()
        categories = self._categories
        return [index for index, row in enumerate(self._rows)
                if image_filter.accepts(row, categories.get(row.id, empty), self.problem(row))]

    # --- queries ----------------------------------------------------------------------------

    @property
    def image_filter(self) -> ImageFilter:
        return self._filter

    @property
    def total(self) -> int:
        return len(self._rows)

    def problem(self, row: ImageRow) -> str | None:
        """The store's flag, else what loading the thumbnail found (a file gone since)."""
        return row.problem or self.loader.problem(row.id)

    def image_row(self, image_id: int) -> ImageRow | None:
        position = self._position.get(image_id)
        return None if position is None else self._rows[position]

    def row_of(self, image_id: int) -> int | None:
        """The view row showing ``image_id``; None when it is filtered out or unknown."""
        return self._shown_row.get(image_id)

    def image_id(self, row: int) -> int:
        return self._rows[self._shown[row]].id

    def shown_ids(self) -> list[int]:
        return [self._rows[p].id for p in self._shown]

    def neighbour_id(self, current: int | None, step: int) -> int | None:
        position = step_position(self._shown, self._position.get(current), step)
        return None if position is None else self._rows[position].id

    def next_unlabeled_id(self, current: int | None) -> int | None:
        def unlabeled(position: int) -> bool:
            row = self._rows[position]
            return row.status == "unlabeled" and self.problem(row) is None

        position = next_matching(self._shown, self._position.get(current), unlabeled)
        return None if position is None else self._rows[position].id

    def _thumbnail_ready(self, image_id: int) -> None:
        row = self._shown_row.get(image_id)
        if row is not None:
            index = self.index(row, 0)
            self.dataChanged.emit(index, index, [THUMBNAIL_ROLE, PROBLEM_ROLE])


# ---------------------------------------------------------------------------------------------
# Painting a row


def _split_text(row: ImageRow) -> str:
    return row.split if row.split else "no split"


def row_details(row: ImageRow, ranked: RankedImage | None = None) -> str:
    """The second line of a row: ``"3 boxes · train"``; ranked: ``"#2 · score 0.41 · 0 boxes
    · no split"``."""
    boxes = "1 box" if row.box_count == 1 else f"{row.box_count} boxes"
    rank = "" if ranked is None else f"#{ranked.rank} · score {ranked.score:.2f} · "
    return f"{rank}{boxes} · {_split_text(row)}"


def ranking_text(ranked: RankedImage) -> str:
    """The tooltip's line on a ranked image: its place, score and the score's parts."""
    flip = ("" if ranked.flip_disagreement is None
            else f", flip disagreement {ranked.flip_disagreement:.2f}")
    return (f"Label next #{ranked.rank}: score {ranked.score:.3f} = uncertainty "
            f"{ranked.uncertainty:.2f} × diversity {ranked.diversity:.2f} (class scores "
            f"{ranked.class_uncertainty:.2f}{flip}; {count(ranked.detections, 'detection')})")


class ImageRowDelegate(QStyledItemDelegate):
    """Paints a row: thumbnail (or placeholder, or a crossed-out frame for a missing file), the
    file name, box count and split, the status badge and a problem badge."""

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:  # noqa: N802
        return QSize(THUMBNAIL_SIDE + 120, THUMBNAIL_SIDE + 2 * _ROW_PADDING)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem,
              index: QModelIndex) -> None:
        row: ImageRow | None = index.data(ROW_ROLE)
        if row is None:
            return
        style = option.widget.style() if option.widget else None
        panel = QStyleOptionViewItem(option)
        self.initStyleOption(panel, index)
        panel.text = ""
        if style is not None:
            style.drawPrimitive(QStyle.PrimitiveElement.PE_PanelItemViewItem, panel, painter,
                                option.widget)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        rect = option.rect
        frame = QRect(rect.left() + _ROW_PADDING, rect.top() + _ROW_PADDING,
                      THUMBNAIL_SIDE, THUMBNAIL_SIDE)
        problem = index.data(PROBLEM_ROLE)
        self._paint_thumbnail(painter, frame, row, problem, index)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        text_color = option.palette.highlightedText() if selected else option.palette.text()
        left = frame.right() + 10
        width = max(rect.right() - left - _ROW_PADDING, 10)
        metrics = option.fontMetrics
        line = metrics.height() + 2
        top = rect.top() + _ROW_PADDING
        name_font = QFont(option.font)
        name_font.setBold(True)
        painter.setFont(name_font)
        painter.setPen(text_color.color())
        name = painter.fontMetrics().elidedText(Path(row.path).name,
                                                Qt.TextElideMode.ElideMiddle, width)
        painter.drawText(QRect(left, top, width, line), Qt.AlignmentFlag.AlignVCenter, name)
        painter.setFont(option.font)
        details = metrics.elidedText(row_details(row, index.data(RANK_ROLE)),
                                     Qt.TextElideMode.ElideRight, width)
        painter.drawText(QRect(left, top + line, width, line), Qt.AlignmentFlag.AlignVCenter,
                         details)
        badge_left = left
        badge_top = top + 2 * line + 2
        badge_left = _paint_badge(painter, option, badge_left, badge_top,
                                  STATUS_TEXT.get(row.status, row.status),
                                  STATUS_COLORS.get(row.status, "#7f8790"))
        if problem:
            _paint_badge(painter, option, badge_left + 4, badge_top, problem, PROBLEM_COLOR)
        painter.restore()

    def _paint_thumbnail(self, painter: QPainter, frame: QRect, row: ImageRow,
                         problem: str | None, index: QModelIndex) -> None:
        pixmap = None if problem else index.data(THUMBNAIL_ROLE)
        if pixmap is not None:
            size = pixmap.deviceIndependentSize().toSize()
            target = QRect(QPoint(0, 0), size)
            target.moveCenter(frame.center())
            painter.drawPixmap(target, pixmap)
            return
        # A placeholder with the image's shape, so the list does not jump when it arrives.
        shape = frame
        if row.width and row.height:
            scale = THUMBNAIL_SIDE / max(row.width, row.height)
            shape = QRect(0, 0, max(round(row.width * scale), 4), max(round(row.height * scale), 4))
            shape.moveCenter(frame.center())
        if problem:
            painter.setPen(QPen(QColor(PROBLEM_COLOR), 2))
            painter.setBrush(QColor(211, 47, 47, 40))
            painter.drawRect(shape.adjusted(1, 1, -1, -1))
            painter.drawLine(shape.topLeft() + QPoint(6, 6), shape.bottomRight() - QPoint(6, 6))
            painter.drawLine(shape.topRight() + QPoint(-6, 6), shape.bottomLeft() + QPoint(6, -6))
        else:
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor(128, 128, 128, 60))
            painter.drawRoundedRect(shape, 3, 3)


def _paint_badge(painter: QPainter, option: QStyleOptionViewItem, left: int, top: int,
                 text: str, color: str) -> int:
    """A filled rounded label at (left, top); returns its right edge."""
    font = QFont(option.font)
    font.setPointSizeF(max(font.pointSizeF() * 0.85, 6))
    painter.setFont(font)
    metrics = painter.fontMetrics()
    badge = QRect(left, top, metrics.horizontalAdvance(text) + 10, metrics.height() + 2)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(QColor(color))
    painter.drawRoundedRect(badge, badge.height() / 2, badge.height() / 2)
    painter.setPen(QColor("white"))
    painter.drawText(badge, Qt.AlignmentFlag.AlignCenter, text)
    painter.setFont(option.font)
    return badge.right()


# ---------------------------------------------------------------------------------------------
# The panel


class _ImageListView(QListView):
    """A QListView without type-to-jump: letters such as D and A belong to the window."""

    def keyboardSearch(self, search: str) -> None:  # noqa: N802
        pass


def _swatch(color: str) -> QIcon:
    pixmap = QPixmap(12, 12)
    pixmap.fill(QColor(color))
    return QIcon(pixmap)


class ImageListPanel(QWidget):
    """The image list with its filters; see the module docstring.

    ``image_selected(image_id)`` is emitted when the user picks a row (click, keys in the
    list), never for :meth:`select_image`. The panel reads from the project but does not own
    it; call :meth:`shutdown` before the project closes or the app quits.
    """

    image_selected = Signal(int)
    # The user chose "most useful to label next" (the window runs the ranking), or Cancel.
    label_next_requested = Signal()
    label_next_cancelled = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._project: Project | None = None
        self._current_id: int | None = None
        self._quiet = False  # True while the panel itself moves the selection
        self.loader = ThumbnailLoader(THUMBNAIL_SIDE, scale=self.devicePixelRatioF(),
                                      parent=self)
        self.model = ImageListModel(self.loader, self)

        self.status_filter = QComboBox()
        self.status_filter.addItem("Any status", None)
        for status in STATUSES:
            self.status_filter.addItem(STATUS_TEXT[status].capitalize(), status)
        self.status_filter.addItem("Missing or unreadable", PROBLEM_FILTER)
        self.class_filter = QComboBox()
        self.class_filter.addItem("Any class", None)
        self.split_filter = QComboBox()
        self.split_filter.addItem("Any split", None)
        for split in SPLITS:
            self.split_filter.addItem(split.capitalize(), split)
        self.split_filter.addItem("No split", NO_SPLIT)
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search names")
        self.search.setClearButtonEnabled(True)
        for combo, tip in ((self.status_filter, "Show images with this status"),
                           (self.class_filter, "Show images with a box of this class"),
                           (self.split_filter, "Show images of this split")):
            combo.setToolTip(tip)
            combo.currentIndexChanged.connect(self._filters_changed)
        self.search.textChanged.connect(self._filters_changed)
        self.count_label = QLabel("0 of 0 images")
        self.sort = QComboBox()
        self.sort.addItem("Sort by: usual order", USUAL_ORDER)
        self.sort.addItem("Sort by: most useful to label next", LABEL_NEXT_ORDER)
        self.sort.setToolTip("Most useful to label next: the unlabeled images a trained model "
                             "(the one chosen under Suggestions) is least sure of, unlike "
                             "each other and the labeled ones, first")
        self.sort.activated.connect(self._sort_chosen)
        self.rank_progress = QProgressBar()
        self.rank_progress.setRange(0, 1000)
        self.rank_cancel = QPushButton("Cancel")
        self.rank_cancel.clicked.connect(self.label_next_cancelled)
        self.rank_progress.hide()
        self.rank_cancel.hide()

        self.view = _ImageListView()
        self.view.setModel(self.model)
        self.view.setItemDelegate(ImageRowDelegate(self.view))
        self.view.setUniformItemSizes(True)
        self.view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.view.selectionModel().currentChanged.connect(self._current_changed)

        layout = QGridLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.status_filter, 0, 0)
        layout.addWidget(self.class_filter, 0, 1)
        layout.addWidget(self.split_filter, 1, 0)
        layout.addWidget(self.search, 1, 1)
        layout.addWidget(self.sort, 2, 0, 1, 2)
        ranking = QHBoxLayout()
        ranking.addWidget(self.rank_progress, 1)
        ranking.addWidget(self.rank_cancel)
        layout.addLayout(ranking, 3, 0, 1, 2)
        layout.addWidget(self.count_label, 4, 0, 1, 2)
        layout.addWidget(self.view, 5, 0, 1, 2)
        layout.setRowStretch(5, 1)

        # After a scroll, a resize or a filter change: drop thumbnail requests out of view.
        self._trim_timer = QTimer(self, singleShot=True, interval=0)
        self._trim_timer.timeout.connect(self._trim_requests)
        for signal in (self.view.verticalScrollBar().valueChanged, self.model.layoutChanged,
                       self.model.modelReset):
            signal.connect(lambda *_: self._trim_timer.start())

    # --- the API the window uses ------------------------------------------------------------

    def set_project(self, project: Project) -> None:
        """Show ``project``'s images, all filters reset; nothing is current."""
        self._project = project
        self._current_id = None
        self.loader.clear()
        self._quiet = True
        try:
            for combo in (self.status_filter, self.class_filter, self.split_filter):
                combo.blockSignals(True)
                combo.setCurrentIndex(0)
                combo.blockSignals(False)
            self.search.blockSignals(True)
            self.search.clear()
            self.search.blockSignals(False)
            self._fill_class_filter(project)
            self.model.set_filter(ImageFilter())
            self.model.forget_ranking()
            self.show_ranking_progress(None)
            self.sort.setCurrentIndex(0)
            self.model.set_rows(project.images(), project.image_categories())
        finally:
            self._quiet = False
        self._update_count()

    def refresh_images(self, image_ids: Iterable[int] | None = None) -> None:
        """Re-read these images' rows (status, box count, classes, problem) after an edit;
        None: all (after an import), and the class list too. Keeps the current selection."""
        if self._project is None:
            return
        project = self._project
        self._quiet = True
        try:
            if image_ids is None:
                self._reload_all(project)
            else:
                ids = list(dict.fromkeys(image_ids))
                try:
                    rows = [project.image(image_id) for image_id in ids]
                except ProjectError:  # an image gone from the store: read everything again
                    self._reload_all(project)
                else:
                    unknown = [row for row in rows if self.model.image_row(row.id) is None]
                    if unknown:
                        self._reload_all(project)
                    else:
                        stale = self.model.update_rows(rows, project.image_categories(ids))
                        self.loader.forget(stale)
            self._restore_selection()
        finally:
            self._quiet = False
        self._update_count()

    def select_image(self, image_id: int) -> None:
        """Make ``image_id`` current and scroll to it (no signal). A filtered-out image becomes
        current without a highlighted row."""
        self._current_id = image_id
        self._quiet = True
        try:
            self._restore_selection(scroll=True)
        finally:
            self._quiet = False

    def current_image_id(self) -> int | None:
        return self._current_id

    def neighbour_id(self, step: int) -> int | None:
        """The image ``step`` rows away (+1 next, -1 previous) in the *filtered* order, or None
        at the ends. From a filtered-out current image, +1 is the first shown image after it;
        with no current image, +1 is the first row and -1 the last."""
        return self.model.neighbour_id(self._current_id, step)

    def next_unlabeled_id(self) -> int | None:
        """The next image after the current one (wrapping) whose status is unlabeled, among
        the rows the filters show; images whose file is missing or unreadable are passed over.
        None when there is no other."""
        return self.model.next_unlabeled_id(self._current_id)

    def set_ranking(self, ranked: Iterable[RankedImage] | None) -> None:
        """Order the list by ``ranked`` (see the module docstring); None: the usual order.
        Keeps the current image and scrolls the list to the top."""
        self._quiet = True
        try:
            self.model.set_ranking(ranked)
            self.sort.setCurrentIndex(self.sort.findData(
                LABEL_NEXT_ORDER if ranked is not None else USUAL_ORDER))
            self._restore_selection()
        finally:
            self._quiet = False
        self.view.scrollToTop()
        self._update_count()

    def show_ranking_progress(self, fraction: float | None, text: str = "") -> None:
        """The ranking's progress bar and Cancel; None hides them (done or cancelled)."""
        running = fraction is not None
        self.rank_progress.setVisible(running)
        self.rank_cancel.setVisible(running)
        if running:
            self.rank_progress.setValue(round(1000 * fraction))
            self.rank_progress.setFormat(text or "%p%")

    def _sort_chosen(self, _index: int) -> None:
        if self.sort.currentData() == LABEL_NEXT_ORDER:
            self.label_next_requested.emit()
            return
        if self.model.ranked:
            self.set_ranking(None)
        self.label_next_cancelled.emit()  # the usual order: a ranking still running stops

    def shutdown(self) -> None:
        """Stop thumbnail work (waits for the one load running)."""
        self.loader.shutdown()

    # --- internals --------------------------------------------------------------------------

    def _reload_all(self, project: Project) -> None:
        self._fill_class_filter(project)
        scroll = self.view.verticalScrollBar().value()
        # Folder by folder, names in natural order (raccoon-2 before raccoon-10), as a file
        # manager lists them; by the file's full path, so that images inside the project
        # (stored relative) and outside it (absolute) sort alike.
        rows = sorted(project.images(), key=lambda row: natural_key(str(row.file)))
        self.loader.forget([row.id for row in rows
                            if (old := self.model.image_row(row.id)) is not None
                            and (old.hash, old.problem) != (row.hash, row.problem)])
        self.model.set_rows(rows, project.image_categories())
        self.view.verticalScrollBar().setValue(scroll)

    def _fill_class_filter(self, project: Project) -> None:
        """The project's classes in the class filter, keeping the chosen one if it remains."""
        chosen = self.class_filter.currentData()
        self.class_filter.blockSignals(True)
        self.class_filter.clear()
        self.class_filter.addItem("Any class", None)
        for category in project.categories():
            self.class_filter.addItem(_swatch(category.color), category.name, category.id)
        found = self.class_filter.findData(chosen) if chosen is not None else 0
        self.class_filter.setCurrentIndex(max(found, 0))
        self.class_filter.blockSignals(False)
        if chosen is not None and found < 0:
            self._filters_changed()

    def _filters_changed(self, *_args: object) -> None:
        image_filter = ImageFilter(status=self.status_filter.currentData(),
                                   category_id=self.class_filter.currentData(),
                                   split=self.split_filter.currentData(),
                                   text=self.search.text().strip())
        self._quiet = True
        try:
            self.model.set_filter(image_filter)
            self._restore_selection()
        finally:
            self._quiet = False
        self._update_count()

    def _restore_selection(self, *, scroll: bool = False) -> None:
        """Highlight the current image if it is shown, else highlight nothing."""
        row = None if self._current_id is None else self.model.row_of(self._current_id)
        selection = self.view.selectionModel()
        if row is None:
            selection.clear()
            return
        index = self.model.index(row, 0)
        if self.view.currentIndex() != index or not selection.isSelected(index):
            self.view.setCurrentIndex(index)
        if scroll:
            self.view.scrollTo(index)

    def _current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if self._quiet or not current.isValid():
            return
        self._current_id = current.data(IMAGE_ID_ROLE)
        self.image_selected.emit(self._current_id)

    def _update_count(self) -> None:
        self.count_label.setText(f"{self.model.rowCount()} of {count(self.model.total, 'image')}")

    def _trim_requests(self) -> None:
        """Keep only thumbnail requests for the rows in view (and a screenful around them)."""
        rows = self.model.rowCount()
        if not rows:
            self.loader.keep_only(())
            return
        viewport = self.view.viewport()
        top = self.view.indexAt(QPoint(1, 1))
        bottom = self.view.indexAt(QPoint(1, viewport.height() - 2))
        first = top.row() if top.isValid() else 0
        last = bottom.row() if bottom.isValid() else rows - 1
        margin = last - first + 1
        keep = {self.model.image_id(r)
                for r in range(max(first - margin, 0), min(last + margin, rows - 1) + 1)}
        self.loader.keep_only(keep)


def _main(argv: list[str] | None = None) -> int:
    """Show the panel alone on a project folder (the app's demo project is ``frcnn-workbench``
    without a folder; this panel does not depend on the app around it)."""
    import argparse
    import sys

    from PySide6.QtWidgets import QApplication

    parser = argparse.ArgumentParser(description="The image list panel on its own.")
    parser.add_argument("project", type=Path, help="project folder")
    args = parser.parse_args(argv)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    with Project.open(args.project) as project:
        panel = ImageListPanel()
        panel.setWindowTitle(f"Images — {project.folder.name}")
        panel.set_project(project)
        panel.image_selected.connect(lambda image_id: print(f"selected image {image_id}"))
        panel.resize(340, 800)
        panel.show()
        code = app.exec()
        panel.shutdown()
    return code


if __name__ == "__main__":
    raise SystemExit(_main())
