"""The project store: a folder with ``project.sqlite`` shared by the GUI, importer and trainer.

The schema (categories, images, boxes) and its migrations are in :mod:`engine.data.schema`; in
short: categories have stable ids, unique names and ``#rrggbb`` colours; images are referenced
in place with their displayed size (after EXIF orientation), a content hash, a status
(unlabeled, in_progress, done, skipped), a split (train, val, test or none) and a problem flag
(missing, unreadable); boxes are float ``x0, y0, x1, y1`` pixel-edge coordinates of the
displayed image with a category, difficult and truncated flags and a source (manual, imported,
predicted with a score).

Paths: an image inside the project folder is stored relative to it (POSIX separators), so the
folder can be moved or copied whole; an image elsewhere is stored by its absolute path, so
moving the project alone does not lose it. :meth:`Project.file` turns either back into a path.

Every change is one SQLite transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``, rollback journal,
``synchronous=FULL``): a crash or a kill of the writing process at any moment leaves the last
committed state, and even a power cut loses nothing that was committed. Several processes may
open the same project (the GUI, a training worker, the CLI, a script): each waits up to
:data:`BUSY_TIMEOUT_S` for another's transaction. An edit made from what a process read
earlier names what it read (``base``), and is refused with :class:`EditConflictError` when
another process changed it meanwhile: no edit is ever silently lost. A project whose file or
folder the user may not write is opened read-only. The whole contract, and why the store does
not use SQLite's WAL mode, is in ``docs/store.md``.

Images whose file is missing or unreadable are flagged and kept with their boxes; nothing here
ever deletes an image record or a file on its own.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import random
import sqlite3
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from engine.text import count as count_of
from engine.text import natural_key

from ..box_validity import box_problem as geometry_problem
from .annotations import SPLITS, STATUSES, BoxRecord, ReportEntry
from .images import ImageLoadError, file_hash, image_size
from .paths import unreachable_reason
from .schema import (
    APPLICATION_ID,
    SCHEMA_VERSION,
    ProjectError,
    ProjectVersionError,
    migrate,
    schema_version,
)
from .store_files import PROJECT_FILE

__all__ = [
    "NO_SPLIT", "PROJECT_FILE", "AddImagesResult", "BoxRow", "CategoryCount", "CategoryRow",
    "EditConflictError", "ImageMeasurement", "ImageRow", "PredictionRow", "Project",
    "ProjectError", "ProjectInfo", "ProjectReadOnlyError", "ProjectVersionError",
    "TrainingRecord", "measure_image", "split_assignment",
]

BUSY_TIMEOUT_S = 10.0
# Filters take "none" for images without a split (stored as NULL).
NO_SPLIT = "none"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
# Distinct colours for new categories, taken in order while unused (Tableau 10, then more).
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39",
           "#7b4173", "#3182bd", "#e6550d", "#31a354", "#756bb1", "#636363")


class ProjectReadOnlyError(ProjectError):
    """A write to a project opened read-only, or a write asked of a project this user may
    not write."""


class EditConflictError(ProjectError):
    """An edit based on what a process read earlier, refused because another process (or
    another window) changed it meanwhile. Nothing was written: read again and redo the edit."""


# ---------------------------------------------------------------------------------------------
# Rows returned to callers


@dataclass(frozen=True)
class CategoryRow:
    id: int
    name: str
    color: str  # "#rrggbb"


@dataclass(frozen=True)
class ImageRow:
    """One image. ``path`` as stored (relative to the project or absolute), ``file`` absolute.

    ``width``/``height`` are displayed pixels (after EXIF orientation), None when unknown;
    ``split`` is None for none; ``problem`` is None, "missing" or "unreadable".
    """

    id: int
    path: str
    file: Path
    width: int | None
    height: int | None
    hash: str | None
    status: str
    split: str | None
    problem: str | None
    box_count: int

    @property
    def missing(self) -> bool:
        return self.problem == "missing"


@dataclass(frozen=True)
class BoxRow:
    """One stored box: pixel-edge coordinates in the displayed image."""

    id: int
    image_id: int
    category_id: int
    x0: float
    y0: float
    x1: float
    y1: float
    difficult: bool
    truncated: bool
    source: str
    score: float | None

    def to_record(self) -> BoxRecord:
        return BoxRecord(self.x0, self.y0, self.x1, self.y1, self.category_id,
                         difficult=self.difficult, truncated=self.truncated,
                         source=self.source, score=self.score)


@dataclass(frozen=True)
class PredictionRow:
    """A model's suggested box waiting for the user's decision (see ``predictions`` in
    :mod:`engine.data.schema`); ``model`` names the checkpoint that made it."""

    id: int
    image_id: int
    category_id: int
    x0: float
    y0: float
    x1: float
    y1: float
    score: float
    model: str

    def to_record(self) -> BoxRecord:
        """As the box it becomes when accepted (source "predicted", with its score)."""
        return BoxRecord(self.x0, self.y0, self.x1, self.y1, self.category_id,
                         source="predicted", score=self.score)


@dataclass(frozen=True)
class TrainingRecord:
    """One image for training or evaluation.

    ``boxes`` are ``(x0, y0, x1, y1)`` displayed-image pixels; ``category_ids`` are *project*
    category ids (the trainer maps them to detector classes 1..K, ordered by id, as
    :meth:`Project.categories` lists them); ``difficult`` parallels ``boxes``.
    """

    image_id: int
    path: Path
    width: int | None
    height: int | None
    boxes: tuple[tuple[float, float, float, float], ...]
    category_ids: tuple[int, ...]
    difficult: tuple[bool, ...]


@dataclass
class AddImagesResult:
    """What :meth:`Project.add_images` did: ids of the new images, and report entries: what it
    left out and why (action "skipped") and what is worth knowing about an image it added
    (action "note": a duplicate of another image's content)."""

    added: list[int] = field(default_factory=list)
    entries: list[ReportEntry] = field(default_factory=list)

    @property
    def skipped(self) -> list[ReportEntry]:
        """The entries of the files left out."""
        return [entry for entry in self.entries if entry.action == "skipped"]


@dataclass(frozen=True)
class CategoryCount:
    category: CategoryRow
    boxes: int
    images: int  # images with at least one box of this category
    boxes_by_split: dict[str, int]  # keys: train, val, test, none


@dataclass(frozen=True)
class ProjectInfo:
    """The counts ``frcnn info`` prints. Sizes are ``(width, height)`` displayed pixels."""

    folder: Path
    images: int
    boxes: int
    by_split: dict[str, int]  # train, val, test, none -> images
    by_status: dict[str, int]  # every status -> images
    categories: list[CategoryCount]  # ordered by category id
    boxes_per_image: tuple[int, float, int] | None  # (min, mean, max); None without images
    smallest_size: tuple[int, int] | None  # by area, over images of known size
    largest_size: tuple[int, int] | None
    most_common_size: tuple[tuple[int, int], int] | None  # (size, how many images)
    unknown_size: int
    missing: list[str]  # stored paths
    unreadable: list[str]

    def lines(self) -> list[str]:
        """Human-readable lines, as ``frcnn info`` prints them."""
        splits = (*SPLITS, NO_SPLIT)
        out = [f"project: {self.folder}",
               f"images: {self.images}, boxes: {self.boxes}, categories: {len(self.categories)}",
               "images per split: " + ", ".join(f"{s} {self.by_split[s]}" for s in splits),
               "images per status: " + ", ".join(f"{s} {self.by_status[s]}" for s in STATUSES)]
        if self.categories:
            width = max(len(c.category.name) for c in self.categories)
            out.append(f"boxes per class:  {'id':>4} {'class':<{width}} "
                       + " ".join(f"{s:>6}" for s in splits) + f" {'total':>7} {'images':>7}")
            for count in self.categories:
                out.append(
                    f"                  {count.category.id:>4} {count.category.name:<{width}} "
                    + " ".join(f"{count.boxes_by_split[s]:>6}" for s in splits)
                    + f" {count.boxes:>7} {count.images:>7}")
        if self.boxes_per_image is not None:
            low, mean, high = self.boxes_per_image
            out.append(f"boxes per image: min {low}, mean {mean:.2f}, max {high}")
        if self.smallest_size is not None:
            (cw, ch), common = self.most_common_size
            out.append(f"image sizes: smallest {self.smallest_size[0]}x{self.smallest_size[1]}, "
                       f"largest {self.largest_size[0]}x{self.largest_size[1]}, "
                       f"most common {cw}x{ch} ({count_of(common, 'image')})")
        if self.unknown_size:
            out.append(f"images of unknown size: {self.unknown_size}")
        out.append(f"missing images: {len(self.missing)}")
        out.extend(f"  missing: {path}" for path in sorted(self.missing, key=natural_key))
        if self.unreadable:
            out.append(f"unreadable images: {len(self.unreadable)}")
            out.extend(f"  unreadable: {path}"
                       for path in sorted(self.unreadable, key=natural_key))
        return out


# ---------------------------------------------------------------------------------------------
# Pure helpers


@dataclass(frozen=True)
class ImageMeasurement:
    """Displayed size and content hash of an image file, or why they could not be had."""

    width: int | None
    height: int | None
    hash: str | None
    problem: str | None  # None, "missing" or "unreadable"
    reason: str = ""


def measure_image(path: str | os.PathLike) -> ImageMeasurement:
    """Size after EXIF orientation (header only) and BLAKE2b hash of ``path``; never raises."""
    path = Path(path)
    if not path.is_file():
        reason = unreachable_reason(path, missing="image file not found")
        if reason is None or reason == "image file not found":
            return ImageMeasurement(None, None, None, "missing", "image file not found")
        return ImageMeasurement(None, None, None, "unreadable", reason)
    try:
        width, height, _orientation = image_size(path)
        digest = file_hash(path)
    except (ImageLoadError, OSError) as error:
        return ImageMeasurement(None, None, None, "unreadable", str(error))
    return ImageMeasurement(width, height, digest, None)


def split_assignment(image_ids: Iterable[int], ratios: Mapping[str, float],
                     seed: int = 0) -> dict[int, str | None]:
    """Each image id -> a split, in the given proportions, the same for the same ids and seed.

    ``ratios`` maps split names (train, val, test, or "none") to non-negative weights, e.g.
    ``{"train": 0.8, "val": 0.2}``; they need not sum to 1. The ids are shuffled with
    ``random.Random(seed)`` after sorting (so their order does not matter) and cut into runs
    whose lengths are the weights times the count, rounded by largest remainder so that they
    add up. "none" maps to None.
    """
    for name, weight in ratios.items():
        if name not in (*SPLITS, NO_SPLIT):
            raise ValueError(f"unknown split {name!r}; use one of {(*SPLITS, NO_SPLIT)}")
        if not (weight >= 0 and math.isfinite(weight)):
            raise ValueError(f"split ratio for {name!r} must be a non-negative number: {weight}")
    total = sum(ratios.values())
    if total <= 0:
        raise ValueError("split ratios must not all be zero")
    ids = sorted(image_ids)
    random.Random(seed).shuffle(ids)
    exact = [weight / total * len(ids) for weight in ratios.values()]
    counts = [math.floor(value) for value in exact]
    by_remainder = sorted(range(len(exact)), key=lambda i: (counts[i] - exact[i], i))
    for i in by_remainder[: len(ids) - sum(counts)]:
        counts[i] += 1
    assignment: dict[int, str | None] = {}
    start = 0
    for name, count in zip(ratios, counts):
        for image_id in ids[start:start + count]:
            assignment[image_id] = None if name == NO_SPLIT else name
        start += count
    return assignment


def normalize_color(color: str) -> str:
    """``#RRGGBB`` in any case -> ``#rrggbb``; anything else is a ValueError."""
    text = color.strip().lower() if isinstance(color, str) else ""
    if len(text) != 7 or text[0] != "#" or any(c not in "0123456789abcdef" for c in text[1:]):
        raise ValueError(f"colour must be written #rrggbb, not {color!r}")
    return text


def _check_split(split: str | None) -> str | None:
    """A split argument -> what is stored (None for none)."""
    if split is None or split == NO_SPLIT:
        return None
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; use one of {(*SPLITS, NO_SPLIT)}")
    return split


def _check_status(status: str) -> str:
    if status not in STATUSES:
        raise ValueError(f"unknown status {status!r}; use one of {STATUSES}")
    return status


def box_problem(box: BoxRecord) -> str | None:
    """Why ``box`` cannot be stored, or None when it can: :mod:`engine.box_validity`'s rules 1-3
    (finite, not inverted, not zero area; the store does not check against the image size),
    then the source and score."""
    coords = (box.x0, box.y0, box.x1, box.y1)
    problem = geometry_problem(coords, tolerance=0.0)
    if problem is not None:
        return f"box {problem}: {coords}"
    if box.source not in ("manual", "imported", "predicted"):
        return f"unknown box source {box.source!r}"
    if (box.source == "predicted") != (box.score is not None):
        return "a score is required for predicted boxes and only for them"
    if box.score is not None and not 0 <= box.score <= 1:
        return f"score must be in [0, 1]: {box.score}"
    return None


def _check_boxes(image_id: int, boxes: Iterable[BoxRecord]) -> None:
    for box in boxes:
        problem = box_problem(box)
        if problem is not None:
            raise ValueError(f"image {image_id}: {problem}")


def _count(n: int, noun: str) -> str:
    """``1 box``, ``2 boxes``."""
    plural = noun + ("es" if noun.endswith(("s", "x")) else "s")
    return f"{n} {noun if n == 1 else plural}"


def box_row_values(image_id: int, box: BoxRecord) -> tuple:
    """The ``boxes`` columns after ``id`` for one box (what executemany inserts)."""
    return (image_id, box.category_id, float(box.x0), float(box.y0), float(box.x1),
            float(box.y1), int(bool(box.difficult)), int(bool(box.truncated)), box.source,
            None if box.score is None else float(box.score))


INSERT_BOX_SQL = ("INSERT INTO boxes (image_id, category_id, x0, y0, x1, y1, difficult, "
                  "truncated, source, score) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
_IMAGE_COLUMNS = "i.id, i.path, i.width, i.height, i.hash, i.status, i.split, i.problem"
_BOX_COLUMNS = "id, image_id, category_id, x0, y0, x1, y1, difficult, truncated, source, score"


# ---------------------------------------------------------------------------------------------
# Opening the database file (only ever through SQLite: see engine.data.store_files)


def _identify(path: Path) -> None:
    """Refuse ``path`` unless it is a workbench project (or an empty database left by an
    interrupted :meth:`Project.create`), without writing to it.

    Read through SQLite in read-only mode, never with ``open()``: a plain open and close of the
    file would drop the locks of this process's own connections to it.
    """
    if path.stat().st_size == 0:
        return  # creation was interrupted before SQLite wrote its header: nothing to lose
    connection = None
    try:
        connection = _connect_read_only(path)
        application_id = connection.execute("PRAGMA application_id").fetchone()[0]
        version = schema_version(connection)
        tables = [row[0] for row in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    except sqlite3.DatabaseError as error:
        raise ProjectError(f"{path}: not a readable project database: not an SQLite file "
                           f"({error}); left untouched") from error
    finally:
        if connection is not None:
            connection.close()
    if application_id == APPLICATION_ID or (application_id == 0 and version == 0
                                            and not tables):
        return
    shown = ", ".join(tables[:5]) + (", ..." if len(tables) > 5 else "")
    raise ProjectError(
        f"{path}: an SQLite database of another program (tables: {shown or 'none'}), not a "
        f"workbench project; left untouched. Create a project in another folder.")


def _writable(path: Path) -> bool:
    """Whether this user may write the database and create its journal beside it."""
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK | os.X_OK)


def _connect_read_only(path: Path) -> sqlite3.Connection:
    """A connection that never writes the file nor creates one beside it.

    ``mode=ro`` reads like any other connection (and sees other processes' commits). A project
    of an earlier version left in WAL mode cannot be read that way from a folder this user may
    not write (SQLite would need to create the WAL index there); it is then read as
    ``immutable``, a snapshot of the file as it is.
    """
    uri = path.as_uri()
    _roll_back_hot_journal(path)
    try:
        connection = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S,
                                     isolation_level=None)
        connection.execute("PRAGMA schema_version").fetchone()
        return connection
    except sqlite3.OperationalError:
        if os.access(path.parent, os.W_OK):
            raise
        if _hot_journal(path).exists():
            raise ProjectError(
                f"{path}: left in the middle of a change by a process that was stopped, and "
                f"this user may not write it to undo that change; open it once as a user who "
                f"can write the folder (or copy the folder) and it will be as it was before "
                f"that change") from None
        return sqlite3.connect(f"{uri}?immutable=1", uri=True, isolation_level=None)


def _hot_journal(path: Path) -> Path:
    """The rollback journal SQLite keeps beside ``path`` while a change is written."""
    return path.with_name(path.name + "-journal")


def _roll_back_hot_journal(path: Path) -> None:
    """Undo a change that a killed process left half-written, if there is one.

    A process killed inside a transaction leaves ``project.sqlite-journal`` (a "hot journal")
    that the next connection must play back before anyone reads; a ``mode=ro`` connection may
    not, and fails with "attempt to write a readonly database". A read-write connection that
    reads the schema plays it back (under SQLite's own exclusive lock, so a transaction of a
    live process is never touched: its journal is not hot). This is what any SQLite program
    does at open; the file is left at its last committed state.
    """
    journal = _hot_journal(path)
    if not journal.exists() or journal.stat().st_size == 0 or not _writable(path):
        return
    connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    try:
        connection.execute("PRAGMA schema_version").fetchone()
    finally:
        connection.close()


def _use_rollback_journal(connection: sqlite3.Connection) -> None:
    """Keep the database in rollback-journal mode (``journal_mode=DELETE``).

    Projects written by earlier versions are in WAL mode; they are turned back at the first
    open that finds no other connection. Why not WAL: in WAL mode every connection holds a
    lock on the database file and on its ``-shm`` index for as long as it is open; when
    anything else in that process opens and closes one of those files (a file dialog sniffing
    its type), the locks go, and the next process to close the project believes it is the last
    one and deletes the WAL under the first, with every commit still in it (docs/store.md).
    With a rollback journal a connection holds locks only while a transaction runs, and a
    commit is in the database file itself when COMMIT returns.
    """
    # When another process still has an earlier-version project open in WAL mode, the change
    # fails; the file stays in WAL mode until a later open finds it alone.
    with contextlib.suppress(sqlite3.OperationalError):
        connection.execute("PRAGMA journal_mode = DELETE").fetchone()


# ---------------------------------------------------------------------------------------------
# The store


class Project:
    """An open project. Create with :meth:`create`, :meth:`open` or :meth:`open_or_create`.

    Use as a context manager (or call :meth:`close`). One ``Project`` belongs to the thread
    that opened it (sqlite3's rule); another thread or process opens its own.
    """

    def __init__(self, folder: Path, connection: sqlite3.Connection) -> None:
        # Private: the class methods below check the folder and the schema first.
        self.folder = folder
        self._db = connection
        self._depth = 0
        # True when opened read-only (see open()): every write raises ProjectReadOnlyError.
        self.read_only = False

    # --- opening --------------------------------------------------------------------------

    @staticmethod
    def database_path(folder: str | os.PathLike) -> Path:
        return Path(folder) / PROJECT_FILE

    @classmethod
    def exists(cls, folder: str | os.PathLike) -> bool:
        return cls.database_path(folder).is_file()

    @classmethod
    def create(cls, folder: str | os.PathLike) -> Project:
        """A new, empty project in ``folder`` (made if absent; may already hold images)."""
        folder = Path(os.path.abspath(folder))
        if cls.exists(folder):
            raise ProjectError(f"{folder}: already holds a project ({PROJECT_FILE})")
        if folder.exists() and not folder.is_dir():
            raise ProjectError(f"{folder}: not a folder")
        folder.mkdir(parents=True, exist_ok=True)
        return cls._connect(folder, read_only=False)

    @classmethod
    def open(cls, folder: str | os.PathLike, *, read_only: bool | None = None) -> Project:
        """The project in ``folder`` (or the folder of a given ``project.sqlite``).

        ``read_only``: None opens read-only exactly when this user may not write the database
        file or its folder (SQLite writes its journal beside the file); True never writes;
        False insists on writing. A file that is not a workbench project (some other
        program's SQLite database, or no database at all) is refused with
        :class:`ProjectError`, untouched.
        """
        folder = Path(os.path.abspath(folder))
        if folder.name == PROJECT_FILE and folder.is_file():
            folder = folder.parent
        if not cls.exists(folder):
            raise ProjectError(f"{folder}: not a project folder (no {PROJECT_FILE} in it)")
        path = cls.database_path(folder)
        _identify(path)
        if read_only is None:
            read_only = not _writable(path)
        elif not read_only and not _writable(path):
            raise ProjectReadOnlyError(
                f"{path}: cannot be written by this user (the file or its folder is "
                f"read-only); open it read-only, or ask for write permission")
        return cls._connect(folder, read_only=read_only)

    @classmethod
    def open_or_create(cls, folder: str | os.PathLike) -> Project:
        return cls.open(folder) if cls.exists(folder) else cls.create(folder)

    @classmethod
    def _connect(cls, folder: Path, *, read_only: bool) -> Project:
        path = cls.database_path(folder)
        connection = None
        try:
            if read_only:
                connection = _connect_read_only(path)
                found = schema_version(connection)
                if found != SCHEMA_VERSION:
                    # Reading an older layout would need its upgrade, which writes.
                    newer = found > SCHEMA_VERSION
                    raise (ProjectVersionError if newer else ProjectError)(
                        f"{path}: project schema version {found}, this version reads "
                        f"{SCHEMA_VERSION}; "
                        + ("update the workbench to open it" if newer else
                           "open it once with write permission to upgrade it"))
            else:
                # isolation_level=None: we issue BEGIN/COMMIT ourselves (see transaction()).
                connection = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S,
                                             isolation_level=None)
                connection.execute("PRAGMA foreign_keys = ON")
                _use_rollback_journal(connection)
                # FULL: a commit survives a power cut too, not only a crash.
                connection.execute("PRAGMA synchronous = FULL")
                migrate(connection, str(path))
        except sqlite3.DatabaseError as error:
            if connection is not None:
                connection.close()
            raise ProjectError(f"{path}: not a readable project database ({error})") from error
        except BaseException:
            if connection is not None:
                connection.close()
            raise
        project = cls(folder, connection)
        project.read_only = read_only
        return project

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Project({str(self.folder)!r}{', read-only' if self.read_only else ''})"

    @property
    def connection(self) -> sqlite3.Connection:
        """The raw connection, for engine.data's bulk importer; others use the methods."""
        return self._db

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic change: everything inside commits together or not at all.

        A transaction opened inside another joins it (the outer one commits or rolls back).
        """
        if self._depth:
            self._depth += 1
            try:
                yield self._db
            finally:
                self._depth -= 1
            return
        if self.read_only:
            raise ProjectReadOnlyError(
                f"{self.database_path(self.folder)}: opened read-only (this user may not "
                f"write the file or its folder); nothing was changed")
        # IMMEDIATE takes the write lock now, so the reads inside see what we then write over.
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            raise ProjectError(
                f"{self.database_path(self.folder)}: cannot write, another program has held "
                f"the project for {BUSY_TIMEOUT_S:.0f} s ({error}); try again") from error
        self._depth = 1
        try:
            yield self._db
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise
        finally:
            self._depth = 0

    # --- paths ----------------------------------------------------------------------------

    def stored_path(self, path: str | os.PathLike) -> str:
        """How ``path`` is stored: relative POSIX inside the project folder, else absolute."""
        absolute = Path(os.path.abspath(path))
        try:
            return absolute.relative_to(self.folder).as_posix()
        except ValueError:
            return str(absolute)

    def file(self, stored: str) -> Path:
        """A stored image path -> the absolute path of the file."""
        path = Path(stored)
        return path if path.is_absolute() else self.folder / path

    # --- categories -----------------------------------------------------------------------

    def categories(self) -> list[CategoryRow]:
        """All categories, ordered by id (the order a trainer numbers classes 1..K in)."""
        rows = self._db.execute("SELECT id, name, color FROM categories ORDER BY id")
        return [CategoryRow(*row) for row in rows]

    def category(self, category_id: int) -> CategoryRow:
        row = self._db.execute("SELECT id, name, color FROM categories WHERE id = ?",
                               (category_id,)).fetchone()
        if row is None:
            raise ProjectError(f"{self.folder}: no category with id {category_id}")
        return CategoryRow(*row)

    def category_by_name(self, name: str) -> CategoryRow | None:
        row = self._db.execute("SELECT id, name, color FROM categories WHERE name = ?",
                               (name,)).fetchone()
        return None if row is None else CategoryRow(*row)

    def next_color(self) -> str:
        """The first palette colour no category uses yet (cycling once all are used)."""
        used = {row[0] for row in self._db.execute("SELECT color FROM categories")}
        for color in PALETTE:
            if color not in used:
                return color
        return PALETTE[len(used) % len(PALETTE)]

    def add_category(self, name: str, color: str | None = None, *,
                     category_id: int | None = None) -> CategoryRow:
        """A new category; ``category_id`` asks for that id (it must be free), else the next."""
        name = _check_name(name)
        with self.transaction() as db:
            if self.category_by_name(name) is not None:
                raise ProjectError(f"{self.folder}: a category named {name!r} exists already")
            color = self.next_color() if color is None else normalize_color(color)
            if category_id is not None:
                if category_id < 0:
                    raise ValueError(f"category ids are not negative: {category_id}")
                if db.execute("SELECT 1 FROM categories WHERE id = ?",
                              (category_id,)).fetchone():
                    raise ProjectError(f"{self.folder}: category id {category_id} is taken")
            cursor = db.execute("INSERT INTO categories (id, name, color) VALUES (?, ?, ?)",
                                (category_id, name, color))
            return CategoryRow(cursor.lastrowid, name, color)

    def rename_category(self, category_id: int, name: str) -> CategoryRow:
        name = _check_name(name)
        with self.transaction() as db:
            self.category(category_id)
            other = self.category_by_name(name)
            if other is not None and other.id != category_id:
                raise ProjectError(f"{self.folder}: a category named {name!r} exists already")
            db.execute("UPDATE categories SET name = ? WHERE id = ?", (name, category_id))
            return self.category(category_id)

    def recolor_category(self, category_id: int, color: str) -> CategoryRow:
        color = normalize_color(color)
        with self.transaction() as db:
            self.category(category_id)
            db.execute("UPDATE categories SET color = ? WHERE id = ?", (color, category_id))
            return self.category(category_id)

    def merge_categories(self, source_id: int, into_id: int) -> int:
        """Move every box of ``source_id`` to ``into_id``, then delete ``source_id``.

        Returns how many boxes moved. Merging a category into itself is an error.
        """
        if source_id == into_id:
            raise ValueError("cannot merge a category into itself")
        with self.transaction() as db:
            self.category(source_id)
            self.category(into_id)
            moved = db.execute("UPDATE boxes SET category_id = ? WHERE category_id = ?",
                               (into_id, source_id)).rowcount
            db.execute("UPDATE predictions SET category_id = ? WHERE category_id = ?",
                       (into_id, source_id))
            db.execute("DELETE FROM categories WHERE id = ?", (source_id,))
            return moved

    def delete_category(self, category_id: int, *, reassign_to: int | None = None,
                        delete_boxes: bool = False) -> int:
        """Delete a category. Refused while boxes use it, unless told what to do with them.

        ``reassign_to``: move its boxes to that category first (as :meth:`merge_categories`);
        ``delete_boxes=True``: delete its boxes. Returns how many boxes were moved or deleted.
        """
        if reassign_to is not None and delete_boxes:
            raise ValueError("give reassign_to or delete_boxes, not both")
        if reassign_to is not None:
            return self.merge_categories(category_id, reassign_to)
        with self.transaction() as db:
            category = self.category(category_id)
            in_use = self._category_box_count(category_id)
            if in_use and not delete_boxes:
                raise ProjectError(
                    f"{self.folder}: category {category.name!r} is used by "
                    f"{count_of(in_use, 'box')}; reassign them to another category or delete "
                    f"them with it")
            if in_use:
                db.execute("DELETE FROM boxes WHERE category_id = ?", (category_id,))
            db.execute("DELETE FROM categories WHERE id = ?", (category_id,))
            return in_use

    def _category_box_count(self, category_id: int) -> int:
        return self._db.execute("SELECT count(*) FROM boxes WHERE category_id = ?",
                                (category_id,)).fetchone()[0]

    # --- images ---------------------------------------------------------------------------

    def images(self, *, split: str | None = None, status: str | None = None) -> list[ImageRow]:
        """Images in the order they were added, each with its box count.

        ``split``: train, val, test or "none" (no split); ``status``: one of STATUSES; None
        means any.
        """
        where, params = [], []
        if split is not None:
            stored = _check_split(split)
            where.append("i.split IS ?")
            params.append(stored)
        if status is not None:
            where.append("i.status = ?")
            params.append(_check_status(status))
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self._db.execute(
            f"SELECT {_IMAGE_COLUMNS}, (SELECT count(*) FROM boxes b WHERE b.image_id = i.id) "
            f"FROM images i {clause} ORDER BY i.id", params)
        return [self._image_row(row) for row in rows]

    def image(self, image_id: int) -> ImageRow:
        row = self._db.execute(
            f"SELECT {_IMAGE_COLUMNS}, (SELECT count(*) FROM boxes b WHERE b.image_id = i.id) "
            f"FROM images i WHERE i.id = ?", (image_id,)).fetchone()
        if row is None:
            raise ProjectError(f"{self.folder}: no image with id {image_id}")
        return self._image_row(row)

    def _image_row(self, row: tuple) -> ImageRow:
        image_id, path, width, height, digest, status, split, problem, box_count = row
        return ImageRow(image_id, path, self.file(path), width, height, digest, status, split,
                        problem, box_count)

    def image_categories(self, image_ids: Iterable[int] | None = None
                         ) -> dict[int, frozenset[int]]:
        """Image id -> the ids of the categories its boxes have (what a class filter needs).

        Images without boxes are left out. ``image_ids``: only these images; None: all.
        """
        query = "SELECT DISTINCT image_id, category_id FROM boxes"
        if image_ids is None:
            rows = self._db.execute(query).fetchall()
        else:
            ids = list(image_ids)
            rows = []
            # SQLite allows 999 parameters per statement in older builds.
            for start in range(0, len(ids), 900):
                chunk = ids[start:start + 900]
                rows += self._db.execute(
                    f"{query} WHERE image_id IN ({', '.join('?' * len(chunk))})",
                    chunk).fetchall()
        found: dict[int, set[int]] = {}
        for image_id, category_id in rows:
            found.setdefault(image_id, set()).add(category_id)
        return {image_id: frozenset(ids) for image_id, ids in found.items()}

    def image_count(self) -> int:
        return self._db.execute("SELECT count(*) FROM images").fetchone()[0]

    def insert_image(self, path: str | os.PathLike, *, width: int | None, height: int | None,
                     hash: str | None, problem: str | None = None, split: str | None = None,
                     status: str = "unlabeled") -> int:
        """Register one image as measured by the caller; returns its id. No duplicate check
        but the path's (:meth:`add_images` measures files and notes duplicate contents)."""
        with self.transaction() as db:
            stored = self.stored_path(path)
            if db.execute("SELECT 1 FROM images WHERE path = ?", (stored,)).fetchone():
                raise ProjectError(f"{path}: already in the project")
            cursor = db.execute(
                "INSERT INTO images (path, width, height, hash, status, split, problem) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (stored, width, height, hash, _check_status(status), _check_split(split),
                 problem))
            return cursor.lastrowid

    def add_images(self, paths: Iterable[str | os.PathLike], *, split: str | None = None,
                   status: str = "unlabeled") -> AddImagesResult:
        """Add image files (folders are searched recursively for image files), in one
        transaction. Measures each file's displayed size and hash first; skips, with a
        "skipped" entry, paths already in the project and files missing or unreadable. As
        for an import, an image is "already there" only by its path: a file whose content is
        already in the project or earlier in ``paths`` (same hash) under another path is added,
        with a "note" naming the other file (a duplicate the user may want to look at)."""
        split, status = _check_split(split), _check_status(status)
        files = list(image_files(paths))
        measured = [(path, measure_image(path)) for path in files]
        result = AddImagesResult()
        with self.transaction() as db:
            by_path = {row[0] for row in db.execute("SELECT path FROM images")}
            by_hash = dict(db.execute(
                "SELECT hash, path FROM images WHERE hash IS NOT NULL ORDER BY id DESC"))
            for path, measure in measured:
                stored = self.stored_path(path)
                skip = None
                if stored in by_path:
                    skip = "already in the project"
                elif measure.problem is not None:
                    skip = measure.reason
                if skip is not None:
                    result.entries.append(ReportEntry(str(path), "image", "skipped", skip))
                    continue
                if measure.hash in by_hash:
                    result.entries.append(ReportEntry(
                        str(path), "image", "note",
                        f"same content as {by_hash[measure.hash]}; added as an image of its "
                        f"own: a duplicate you may want to look at"))
                cursor = db.execute(
                    "INSERT INTO images (path, width, height, hash, status, split) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (stored, measure.width, measure.height, measure.hash, status, split))
                by_path.add(stored)
                by_hash.setdefault(measure.hash, stored)
                result.added.append(cursor.lastrowid)
        return result

    def set_split(self, image_ids: Iterable[int], split: str | None) -> None:
        """Put images in ``split`` (train, val, test, or None / "none")."""
        stored = _check_split(split)
        with self.transaction() as db:
            db.executemany("UPDATE images SET split = ? WHERE id = ?",
                           ((stored, image_id) for image_id in image_ids))

    def set_status(self, image_ids: Iterable[int], status: str) -> None:
        status = _check_status(status)
        with self.transaction() as db:
            db.executemany("UPDATE images SET status = ? WHERE id = ?",
                           ((status, image_id) for image_id in image_ids))

    def assign_splits(self, ratios: Mapping[str, float], seed: int = 0, *,
                      only_unassigned: bool = False) -> dict[str, int]:
        """Split the images at random in the proportions ``ratios`` (see
        :func:`split_assignment`); ``only_unassigned`` leaves images with a split alone.
        Returns the number of images given to each split."""
        with self.transaction() as db:
            query = "SELECT id FROM images" + (" WHERE split IS NULL" if only_unassigned else "")
            ids = [row[0] for row in db.execute(query)]
            assignment = split_assignment(ids, ratios, seed)
            db.executemany("UPDATE images SET split = ? WHERE id = ?",
                           ((split, image_id) for image_id, split in assignment.items()))
        counts = Counter(NO_SPLIT if split is None else split for split in assignment.values())
        return {name: counts.get(name, 0) for name in ratios}

    def check_missing(self) -> list[ImageRow]:
        """Look at every image file again; flag the absent ones "missing" (kept, with their
        boxes), and re-measure flagged ones whose file has come back. Returns the missing.
        A read-only project is only looked at: the flags stay as they were stored."""
        images = self.images()
        absent = {image.id for image in images if not image.file.is_file()}
        if self.read_only:
            # What is on disk now, without recording it.
            return [dataclasses.replace(image, problem="missing") for image in images
                    if image.id in absent]
        returned = [(image.id, measure_image(image.file)) for image in images
                    if image.missing and image.id not in absent]
        with self.transaction() as db:
            db.executemany("UPDATE images SET problem = 'missing' WHERE id = ?",
                           ((image_id,) for image_id in absent))
            for image_id, measure in returned:
                # Keep a size recorded earlier (e.g. declared by an imported file) if the file
                # that came back cannot be read.
                db.execute("UPDATE images SET problem = ?, width = coalesce(?, width), "
                           "height = coalesce(?, height), hash = coalesce(?, hash) "
                           "WHERE id = ?", (measure.problem, measure.width, measure.height,
                                            measure.hash, image_id))
        return [image for image in self.images() if image.missing]

    def missing_images(self) -> list[ImageRow]:
        """Images flagged missing at the last look (see :meth:`check_missing`)."""
        return [image for image in self.images() if image.missing]

    # --- boxes ----------------------------------------------------------------------------

    def boxes(self, image_id: int) -> list[BoxRow]:
        rows = self._db.execute(
            f"SELECT {_BOX_COLUMNS} FROM boxes WHERE image_id = ? ORDER BY id", (image_id,))
        return [box_from_row(row) for row in rows]

    def set_boxes(self, image_id: int, boxes: Iterable[BoxRecord], *,
                  base: Iterable[BoxRecord | BoxRow],
                  status: str | None = None,
                  predictions: Iterable[BoxRecord] | None = None,
                  model: str = "") -> list[BoxRow]:
        """Replace all boxes of an image (and optionally its status, and its pending
        ``predictions`` made by ``model``) in one transaction: what the labeling GUI's save
        does. Returns the stored boxes (the ``base`` of the next edit).

        ``base`` is required: the image's boxes this edit was made from, as they were read
        (:meth:`boxes`, or what the previous ``set_boxes`` returned; ``()`` for an image read
        without boxes). When the stored boxes are no longer those (another process or window
        changed them since), nothing is written and :class:`EditConflictError` is raised, so
        two processes that each read, change and write never lose one another's edit. To add
        boxes whatever is there, use :meth:`add_boxes`.
        """
        boxes = list(boxes)
        _check_boxes(image_id, boxes)
        expected = [box.to_record() if isinstance(box, BoxRow) else box for box in base]
        with self.transaction() as db:
            image = self.image(image_id)
            current = [row.to_record() for row in self.boxes(image_id)]
            if current != expected:
                raise EditConflictError(
                    f"{image.path}: its boxes were changed by another program or window since "
                    f"they were read ({_count(len(expected), 'box')} then, "
                    f"{_count(len(current), 'box')} now); nothing was written: read them again "
                    f"and redo the edit")
            self._check_categories(box.category_id for box in boxes)
            db.execute("DELETE FROM boxes WHERE image_id = ?", (image_id,))
            db.executemany(INSERT_BOX_SQL, (box_row_values(image_id, box) for box in boxes))
            if status is not None:
                db.execute("UPDATE images SET status = ? WHERE id = ?",
                           (_check_status(status), image_id))
            if predictions is not None:
                self.set_predictions(image_id, predictions, model)
            return self.boxes(image_id)

    def add_boxes(self, image_id: int, boxes: Iterable[BoxRecord]) -> list[BoxRow]:
        """Append boxes to an image's boxes, whatever other processes wrote before, in one
        transaction. Returns the image's stored boxes."""
        boxes = list(boxes)
        _check_boxes(image_id, boxes)
        with self.transaction() as db:
            self.image(image_id)
            self._check_categories(box.category_id for box in boxes)
            db.executemany(INSERT_BOX_SQL, (box_row_values(image_id, box) for box in boxes))
            return self.boxes(image_id)

    def _check_categories(self, category_ids: Iterable[int]) -> None:
        known = {row[0] for row in self._db.execute("SELECT id FROM categories")}
        for category_id in category_ids:
            if category_id not in known:
                raise ProjectError(f"{self.folder}: no category with id {category_id}")

    # --- pending predictions (model-assisted labeling) --------------------------------------

    def predictions(self, image_id: int) -> list[PredictionRow]:
        """The image's pending predictions, best score first."""
        rows = self._db.execute(
            "SELECT id, image_id, category_id, x0, y0, x1, y1, score, model FROM predictions "
            "WHERE image_id = ? ORDER BY score DESC, id", (image_id,))
        return [PredictionRow(*row) for row in rows]

    def set_predictions(self, image_id: int, predictions: Iterable[BoxRecord],
                        model: str) -> None:
        """Replace the image's pending predictions (boxes with a score, from ``model``)."""
        predictions = list(predictions)
        for box in predictions:
            problem = box_problem(BoxRecord(box.x0, box.y0, box.x1, box.y1, box.category_id,
                                            source="predicted", score=box.score))
            if problem is not None:
                raise ValueError(f"image {image_id}: prediction: {problem}")
        with self.transaction() as db:
            self.image(image_id)
            self._check_categories(box.category_id for box in predictions)
            db.execute("DELETE FROM predictions WHERE image_id = ?", (image_id,))
            db.executemany(
                "INSERT INTO predictions (image_id, category_id, x0, y0, x1, y1, score, model) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                ((image_id, box.category_id, float(box.x0), float(box.y0), float(box.x1),
                  float(box.y1), float(box.score), model) for box in predictions))

    def prediction_counts(self) -> dict[int, int]:
        """Image id -> number of pending predictions, for images that have any."""
        return dict(self._db.execute(
            "SELECT image_id, count(*) FROM predictions GROUP BY image_id"))

    # --- for training and for `frcnn info` ------------------------------------------------

    def dataset(self, split: str | None = None, *,
                statuses: Sequence[str] = ("done",)) -> list[TrainingRecord]:
        """Training records of ``split`` (None: all; "none": images without a split).

        Only images whose status is in ``statuses`` (by default "done": an image still being
        labeled would teach that its unlabeled objects are background) and whose file was
        readable at the last look (see :meth:`check_missing`). Images without boxes are
        included: they are negatives.
        """
        where = ["i.problem IS NULL",
                 f"i.status IN ({', '.join('?' * len(statuses))})"]
        params: list = [_check_status(status) for status in statuses]
        if split is not None:
            where.append("i.split IS ?")
            params.append(_check_split(split))
        clause = " AND ".join(where)
        images = self._db.execute(
            f"SELECT i.id, i.path, i.width, i.height FROM images i WHERE {clause} "
            f"ORDER BY i.id", params).fetchall()
        boxes: dict[int, list[tuple]] = {}
        for row in self._db.execute(
                f"SELECT b.image_id, b.x0, b.y0, b.x1, b.y1, b.category_id, b.difficult "
                f"FROM boxes b JOIN images i ON i.id = b.image_id WHERE {clause} "
                f"ORDER BY b.image_id, b.id", params):
            boxes.setdefault(row[0], []).append(row)
        records = []
        for image_id, path, width, height in images:
            rows = boxes.get(image_id, [])
            records.append(TrainingRecord(
                image_id, self.file(path), width, height,
                tuple((r[1], r[2], r[3], r[4]) for r in rows),
                tuple(r[5] for r in rows), tuple(bool(r[6]) for r in rows)))
        return records

    def info(self) -> ProjectInfo:
        """Counts per split, status and class; boxes per image; image sizes; problems."""
        db = self._db
        splits = (*SPLITS, NO_SPLIT)
        by_split = dict.fromkeys(splits, 0)
        for split, count in db.execute("SELECT split, count(*) FROM images GROUP BY split"):
            by_split[split or NO_SPLIT] = count
        by_status = dict.fromkeys(STATUSES, 0)
        by_status.update(db.execute("SELECT status, count(*) FROM images GROUP BY status"))
        per_split: dict[int, dict[str, int]] = {}
        for category_id, split, count in db.execute(
                "SELECT b.category_id, i.split, count(*) FROM boxes b "
                "JOIN images i ON i.id = b.image_id GROUP BY b.category_id, i.split"):
            per_split.setdefault(category_id, dict.fromkeys(splits, 0))[split or NO_SPLIT] = count
        image_counts = dict(db.execute(
            "SELECT category_id, count(DISTINCT image_id) FROM boxes GROUP BY category_id"))
        categories = []
        for category in self.categories():
            split_counts = per_split.get(category.id, dict.fromkeys(splits, 0))
            categories.append(CategoryCount(category, sum(split_counts.values()),
                                            image_counts.get(category.id, 0), split_counts))
        images = self.images()
        counts = [image.box_count for image in images]
        sizes = [(image.width, image.height) for image in images
                 if image.width is not None and image.height is not None]
        by_area = sorted(sizes, key=lambda size: (size[0] * size[1], size))
        common = Counter(sizes).most_common()
        most_common = None
        if common:
            # Ties go to the smaller size, so the answer does not depend on insertion order.
            top = common[0][1]
            most_common = (min(size for size, n in common if n == top), top)
        return ProjectInfo(
            folder=self.folder, images=len(images), boxes=sum(counts), by_split=by_split,
            by_status=by_status, categories=categories,
            boxes_per_image=(min(counts), sum(counts) / len(counts), max(counts))
            if counts else None,
            smallest_size=by_area[0] if by_area else None,
            largest_size=by_area[-1] if by_area else None,
            most_common_size=most_common, unknown_size=len(images) - len(sizes),
            missing=[image.path for image in images if image.problem == "missing"],
            unreadable=[image.path for image in images if image.problem == "unreadable"])


def box_from_row(row: tuple) -> BoxRow:
    (box_id, image_id, category_id, x0, y0, x1, y1, difficult, truncated, source, score) = row
    return BoxRow(box_id, image_id, category_id, x0, y0, x1, y1, bool(difficult),
                  bool(truncated), source, score)


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"a category name must be a non-empty text: {name!r}")
    return name.strip()


def image_files(paths: Iterable[str | os.PathLike]) -> Iterator[Path]:
    """Files as given; folders -> their image files (by suffix), recursively, in natural
    order (img-2 before img-10)."""
    for path in paths:
        path = Path(path)
        if path.is_dir():
            # Links that lead nowhere (broken, or a loop) are listed too, for the caller to
            # report: left out silently they would look like images never found.
            yield from sorted((p for p in path.rglob("*")
                               if p.suffix.lower() in IMAGE_SUFFIXES
                               and (p.is_file() or p.is_symlink())),
                              key=lambda p: natural_key(str(p)))
        else:
            yield path
