"""Predictions from models that did not train on the images they predict, and the review queue
made from them (:func:`engine.active.review.score_labels`).

Two ways, one result (a :class:`~engine.active.review.ReviewQueue`):

- :func:`review_split`: a trained checkpoint on a split it did not train on (by default
  ``val``; a run's ``job.json``, written by the app's Train tab, names its train split, and
  reviewing that split is refused: a model repeats the labels it learned, errors included;
  without one, a note says the split could not be checked).
- :func:`review_kfold`: k-fold over the project's done images: k small models, each trained
  with the CPU preset under a time budget on the other folds, predict their own fold. Every
  done image is reviewed; it costs k trainings.

Both report ``progress(fraction, text)`` and look at ``stop()`` between images and training
steps (raising :class:`~engine.active.review.ReviewCancelledError`), so the app (on a worker
thread) and ``frcnn review`` share them. An image file that cannot be read is skipped and
named with the reason; training leaves it out the same way.
"""

from __future__ import annotations

import json
import os
import random
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from ..assist import SCORE_FLOOR, Predictor
from ..data.annotations import BoxRecord
from ..data.images import ImageLoadError
from ..data.project import CategoryRow, Project, TrainingRecord
from ..text import count
from .review import ImageLabels, Progress, ReviewCancelledError, ReviewQueue, score_labels

DEFAULT_FOLDS = 3
DEFAULT_FOLD_BUDGET_S = 240.0  # seconds of training per fold (evaluation included)


def _no_progress(_fraction: float, _text: str) -> None:
    pass


def _never() -> bool:
    return False


def labels_of(record: TrainingRecord) -> ImageLabels:
    return ImageLabels(record.image_id, str(record.path), tuple(record.boxes),
                       tuple(record.category_ids))


def trained_split(checkpoint: str | os.PathLike) -> str | None:
    """The split the checkpoint's run trained on: from ``job.json`` beside it (the run folder
    the app's Train tab writes), else ``"train"`` when an ``events.jsonl`` beside it holds a
    ``started`` event (a run of ``frcnn train``, which always trains on the train split);
    None when neither says (a checkpoint from elsewhere)."""
    folder = Path(checkpoint).resolve().parent
    try:
        return json.loads((folder / "job.json").read_text(encoding="utf-8")).get(
            "train_split", "train")
    except (OSError, ValueError, AttributeError):
        pass
    from ..training.runs import read_events  # skips lines cut short by a kill

    try:
        if any(event.get("event") == "started" for event in read_events(folder)):
            return "train"
    except OSError:
        pass
    return None


def predict_records(predictor: Predictor, records: Sequence[TrainingRecord], *,
                    progress: Progress = _no_progress, stop: Callable[[], bool] = _never,
                    start: float = 0.0, share: float = 1.0, what: str = "predicting"
                    ) -> tuple[list[TrainingRecord], list[list[BoxRecord]], list[tuple[str, str]]]:
    """``predictor`` on each record's image: (records predicted, their predictions, (path,
    reason) of the images skipped). Progress from ``start`` over ``share`` of the whole."""
    done, found, skipped = [], [], []
    for position, record in enumerate(records):
        if stop():
            raise ReviewCancelledError("review stopped")
        try:
            boxes = predictor.predict(record.path)
        except (ImageLoadError, OSError) as error:
            skipped.append((str(record.path), str(error)))
        else:
            done.append(record)
            found.append(boxes)
        progress(start + share * (position + 1) / max(len(records), 1),
                 f"{what}: image {position + 1} of {len(records)}")
    return done, found, skipped


def _known_notes(predictor: Predictor, records: Sequence[TrainingRecord],
                 categories: Sequence[CategoryRow]) -> tuple[list[int], list[str]]:
    """The category ids the model knows, and a note on boxes of categories it does not."""
    mapping = predictor.mapping
    known = sorted(set(mapping.to_category.values()))
    names = {c.id: c.name for c in categories}
    unknown = mapping.unknown_categories(c for r in records for c in r.category_ids)
    notes = []
    if unknown:
        notes.append("the model was not trained on "
                     f"{', '.join(sorted(names.get(c, str(c)) for c in unknown))}; "
                     "those boxes are not reviewed")
    return known, notes


def review_split(checkpoint: str | os.PathLike, project: str | os.PathLike,
                 split: str = "val", *, device: str | torch.device = "cpu",
                 confident: float | str | None = "auto", progress: Progress = _no_progress,
                 stop: Callable[[], bool] = _never) -> ReviewQueue:
    """The review queue of the done images of ``split`` from ``checkpoint``'s predictions
    (``confident``: see :func:`~engine.active.review.score_labels`). Raises ValueError when
    the checkpoint's run trained on ``split`` or the split has no done image;
    :class:`ReviewCancelledError` when ``stop()`` turns true."""
    trained = trained_split(checkpoint)
    if trained is not None and trained == split:
        raise ValueError(f"{checkpoint}: this model trained on the {split} split, so its "
                         f"predictions repeat those labels (errors included); review another "
                         f"split (--split val) or use k-fold (--folds 3)")
    with Project.open(project, read_only=True) as store:
        records = store.dataset(split)
        categories = store.categories()
    if not records:
        raise ValueError(f"{project}: the {split} split has no done images to review")
    progress(0.0, "loading the model")
    predictor = Predictor(checkpoint, categories, device=device, score_floor=SCORE_FLOOR)
    known, notes = _known_notes(predictor, records, categories)
    if trained is None:
        notes.append(f"no job.json beside {Path(checkpoint).name} says which split it trained "
                     f"on: the review is only worth it if that was not {split}")
    done, found, skipped = predict_records(predictor, records, progress=progress, stop=stop,
                                           share=0.95)
    progress(0.95, "scoring the labels")
    queue = score_labels([labels_of(r) for r in done], found, known, confident=confident)
    queue.skipped, queue.notes = skipped, notes
    queue.source = (f"{Path(checkpoint).name} on the {split} split "
                    f"({count(len(done), 'image')})")
    progress(1.0, "done")
    return queue


def fold_assignment(image_ids: Sequence[int], folds: int, seed: int = 0) -> dict[int, int]:
    """Image id -> fold (0..folds-1), shuffled by ``seed``, fold sizes differing by one at
    most. Raises ValueError for fewer than 2 folds or fewer images than folds."""
    if folds < 2:
        raise ValueError(f"k-fold needs at least 2 folds, not {folds}")
    if len(image_ids) < folds:
        raise ValueError(f"{count(len(image_ids), 'done image')} cannot make {folds} folds")
    order = sorted(image_ids)
    random.Random(seed).shuffle(order)
    return {image_id: position % folds for position, image_id in enumerate(order)}


def review_kfold(project: str | os.PathLike, *, folds: int = DEFAULT_FOLDS,
                 budget_s: float = DEFAULT_FOLD_BUDGET_S, device: str = "auto", seed: int = 0,
                 work: str | os.PathLike | None = None, confident: float | str | None = "auto",
                 progress: Progress = _no_progress,
                 stop: Callable[[], bool] = _never) -> ReviewQueue:
    """The review queue of every done image of ``project`` by k-fold: for each fold, a model
    trained (CPU preset fitted to the data, ``budget_s`` seconds) on the other folds predicts
    it. Checkpoints go to ``work`` (default: a temporary folder, removed after). Raises
    ValueError for too few done images; :class:`ReviewCancelledError` on ``stop()``."""
    from ..detector.class_map import classes_for
    from ..detector.config import DetectorConfig
    from ..training.job import DEFAULT_BACKBONE
    from ..training.presets import choose_preset
    from ..training.settings import TrainSettings
    from ..training.trainer import Control, Trainer, resolve_device

    with Project.open(project, read_only=True) as store:
        records = store.dataset(None)
        categories = store.categories()
    assignment = fold_assignment([r.image_id for r in records], folds, seed)
    classes = classes_for(categories)
    torch_device = resolve_device(device)
    temporary = tempfile.TemporaryDirectory(prefix="frcnn-review-") if work is None else None
    folder = Path(temporary.name if temporary else work)
    labels, found, skipped, notes = [], [], [], []
    share = 1.0 / folds
    try:
        for fold in range(folds):
            train = [r for r in records if assignment[r.image_id] != fold]
            held = [r for r in records if assignment[r.image_id] == fold]
            preset = choose_preset(torch_device.type, train)
            settings = TrainSettings.from_dict({**preset.training, "time_budget_s": budget_s,
                                                "eval_every": 0, "seed": seed})
            detector = DetectorConfig.from_dict({"backbone": DEFAULT_BACKBONE,
                                                 **preset.detector})
            control = Control()
            begun = time.monotonic()
            text = f"fold {fold + 1} of {folds}: training on {count(len(train), 'image')}"

            def report(_event: dict, begun=begun, fold=fold, text=text,
                       control=control) -> None:
                if stop():
                    control.stop()
                spent = min((time.monotonic() - begun) / max(budget_s, 1e-9), 1.0)
                progress(share * (fold + 0.85 * spent), text)

            progress(share * fold, text)
            out = folder / f"fold-{fold + 1}"
            Trainer(train_records=train, val_records=held, classes=classes, out_dir=out,
                    detector=detector, settings=settings, device=str(torch_device),
                    report=report, control=control).run()
            if stop():
                raise ReviewCancelledError("review stopped")
            checkpoint = out / "best.pt" if (out / "best.pt").is_file() else out / "last.pt"
            predictor = Predictor(checkpoint, categories, device=torch_device,
                                  score_floor=SCORE_FLOOR)
            done, boxes, bad = predict_records(
                predictor, held, progress=progress, stop=stop, start=share * (fold + 0.85),
                share=share * 0.15, what=f"fold {fold + 1} of {folds}: predicting")
            labels += [labels_of(r) for r in done]
            found += boxes
            skipped += bad
    finally:
        if temporary is not None:
            temporary.cleanup()
    progress(0.99, "scoring the labels")
    known = [c.id for c in categories]
    queue = score_labels(labels, found, known, confident=confident)
    queue.skipped, queue.notes = skipped, notes
    queue.source = (f"{folds}-fold over {count(len(labels), 'done image')} "
                    f"({budget_s:g} s of training per fold)")
    progress(1.0, "done")
    return queue
