"""Training data: project records -> (image, target) pairs, batches grouped by aspect ratio.

Detector class ids are the project's categories in id order, numbered 1..K (0 is the
background): :func:`~engine.detector.class_map.classes_for` makes them once and every checkpoint
saves them; :mod:`engine.detector.class_map` holds the rule between classes and categories.
Every random choice here (the order of images, which ones are flipped) is a function of the
seed and the epoch, so a run resumed at an epoch or a step sees exactly the batches an
uninterrupted run would have seen.

A file that cannot be decoded (a truncated JPEG passes an import, which reads only headers) does
not end a run: :class:`TrainingBatches` leaves it out of its batch and says so, and
:meth:`DetectionDataset.without_unreadable` leaves it out of an evaluation.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ..data.images import ImageLoadError, image_to_tensor, load_image
from ..data.project import TrainingRecord
from ..detector.class_map import ClassInfo, class_ids_by_category
from ..detector.class_map import classes_for as classes_for  # what training numbers 1..K


@dataclass
class Sample:
    """One training example: ``image`` (3, H, W) in [0, 1]; ``target`` with ``boxes`` (M, 4)
    x0 y0 x1 y1 pixels, ``labels`` (M,) class ids 1..K, ``iscrowd`` (M,) 1 for boxes marked
    difficult (evaluation ignores detections on them)."""

    image_id: int
    image: torch.Tensor
    target: dict[str, torch.Tensor]


@dataclass(frozen=True)
class UnreadableImage:
    """An image of a split whose file cannot be decoded; ``reason`` is the loader's message
    (it names the file)."""

    image_id: int
    path: str
    reason: str


@dataclass
class Batch:
    """One training step's images: ``samples`` the batch's readable images (never empty),
    ``unreadable`` the batch's images left out because their files cannot be decoded."""

    samples: list[Sample]
    unreadable: list[UnreadableImage]


class DetectionDataset(torch.utils.data.Dataset):
    """Records of one split as samples. ``flip_probability`` > 0 flips images horizontally at
    random (training); which ones is decided by (seed, epoch, index): see :meth:`set_epoch`."""

    def __init__(
        self,
        records: Sequence[TrainingRecord],
        classes: Sequence[ClassInfo],
        *,
        flip_probability: float = 0.0,
        seed: int = 0,
        input_check: Callable[[torch.Tensor], str | None] | None = None,
    ) -> None:
        self.records = list(records)
        # The model's size check (Transform.size_check()): an image it cannot take is left out
        # like an unreadable one.
        self.input_check = input_check
        self.classes = list(classes)
        self.class_of = class_ids_by_category(classes)
        self.flip_probability = flip_probability
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.records)

    def aspect_ratios(self) -> list[float]:
        """Width / height per image (1.0 where the size is unknown)."""
        return [r.width / r.height if r.width and r.height else 1.0 for r in self.records]

    def without_unreadable(self) -> tuple[DetectionDataset, list[UnreadableImage]]:
        """This dataset without the images that cannot be decoded, and those images. Decodes
        every image once."""
        readable, unreadable = [], []
        for index, record in enumerate(self.records):
            loaded = self.load(index)
            if isinstance(loaded, UnreadableImage):
                unreadable.append(loaded)
            else:
                readable.append(record)
        kept = DetectionDataset(readable, self.classes, flip_probability=self.flip_probability,
                                seed=self.seed, input_check=self.input_check)
        kept.set_epoch(self.epoch)
        return kept, unreadable

    def load(self, index: int) -> Sample | UnreadableImage:
        """``self[index]``, or what is wrong with its file when it cannot be decoded."""
        try:
            return self[index]
        except ImageLoadError as error:
            record = self.records[index]
            return UnreadableImage(record.image_id, str(record.path), str(error))

    def __getitem__(self, index: int) -> Sample:
        """Raises :class:`~engine.data.images.ImageLoadError` for a file it cannot decode, or
        whose image the model cannot take (``input_check``)."""
        record = self.records[index]
        image = image_to_tensor(load_image(record.path))
        problem = self.input_check(image) if self.input_check is not None else None
        if problem is not None:
            raise ImageLoadError(f"{record.path}: {problem}")
        boxes = torch.tensor(record.boxes, dtype=torch.float32).reshape(-1, 4)
        labels = torch.tensor([self.class_of[c] for c in record.category_ids], dtype=torch.int64)
        iscrowd = torch.tensor(record.difficult, dtype=torch.int64)
        if self.flip_probability and self._flips(index):
            width = image.shape[-1]
            image = image.flip(-1)
            boxes = torch.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0],
                                 boxes[:, 3]], dim=1)
        return Sample(record.image_id, image,
                      {"boxes": boxes, "labels": labels, "iscrowd": iscrowd})

    def _flips(self, index: int) -> bool:
        draw = random.Random(f"flip:{self.seed}:{self.epoch}:{index}").random()
        return draw < self.flip_probability


def epoch_batches(
    aspect_ratios: Sequence[float],
    batch_size: int,
    *,
    seed: int,
    epoch: int,
    shuffle: bool = True,
    group_by_aspect: bool = True,
) -> list[list[int]]:
    """The batches of one epoch, as lists of dataset indices.

    Images are shuffled by (seed, epoch); with ``group_by_aspect`` a batch holds only
    landscape (w >= h) or only portrait images, so padding to a common size wastes little
    (torchvision's reference groups the same way). Every image appears once; the last batch of
    a group may be smaller.
    """
    order = list(range(len(aspect_ratios)))
    if shuffle:
        generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
        order = torch.randperm(len(order), generator=generator).tolist()
    if not group_by_aspect:
        return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    batches, pending = [], {True: [], False: []}
    for index in order:
        group = pending[aspect_ratios[index] >= 1.0]
        group.append(index)
        if len(group) == batch_size:
            batches.append(list(group))
            group.clear()
    # Leftovers in order of their first image, so the batch order stays a function of the seed.
    batches.extend(group for group in pending.values() if group)
    return batches


def shard(batches: list[list[int]], rank: int, world_size: int) -> list[list[int]]:
    """This process's batches under data parallelism: every ``world_size``-th, cut to a
    multiple of ``world_size`` so all processes take the same number of steps."""
    usable = len(batches) - len(batches) % world_size
    return batches[rank:usable:world_size]


class TrainingBatches(torch.utils.data.Dataset):
    """The batches of an epoch as a dataset: item ``k`` is batch ``k`` (a list of ``dataset``
    indices, as :func:`epoch_batches` makes them) loaded as a :class:`Batch`. A DataLoader over
    it (``batch_size=None``) loads whole batches, so one unreadable file costs only itself.

    An unreadable image is left out of its batch. When no image of a batch can be read, the
    first readable image after the batch's first one (in dataset order, wrapping around) stands
    in, so that every batch still gives a step: under data parallelism every process must take
    the same number of steps. Which image stands in depends only on the files, so a resumed run
    sees the same batches. Raises ImageLoadError when no image of the dataset can be read.
    """

    def __init__(self, dataset: DetectionDataset, batches: Sequence[Sequence[int]]) -> None:
        self.dataset = dataset
        self.batches = [list(batch) for batch in batches]

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, k: int) -> Batch:
        samples, unreadable = [], []
        for index in self.batches[k]:
            loaded = self.dataset.load(index)
            (unreadable if isinstance(loaded, UnreadableImage) else samples).append(loaded)
        if not samples:
            samples.append(self._stand_in(self.batches[k][0], unreadable))
        return Batch(samples, unreadable)

    def _stand_in(self, first: int, unreadable: list[UnreadableImage]) -> Sample:
        count = len(self.dataset)
        for offset in range(1, count):
            loaded = self.dataset.load((first + offset) % count)
            if isinstance(loaded, Sample):
                return loaded
        raise ImageLoadError(
            f"none of the {count} images to train on can be read; the first: "
            f"{unreadable[0].reason}")


def as_is(item):
    """The DataLoader's collate function: its items are already whole batches."""
    return item


def left_out_counts(project, split: str) -> dict[str, int]:
    """Images of ``split`` in ``project`` (an open :class:`~engine.data.project.Project`) that
    training and evaluation leave out, by reason: their status when it is not "done" (only done
    images are used: one still being labeled would teach that its unlabeled objects are
    background), else "missing" or "unreadable" (the file, at the last look). Empty: none."""
    counts: dict[str, int] = {}
    for image in project.images(split=split):
        reason = image.status if image.status != "done" else image.problem
        if reason is not None:
            counts[reason] = counts.get(reason, 0) + 1
    return counts


def describe_left_out(left_out: dict[str, dict[str, int]]) -> str:
    """``left_out`` (split -> reason -> images) in words, e.g. "train: 3 images (2
    in_progress, 1 missing)"; empty when nothing is left out."""
    parts = []
    for split, counts in left_out.items():
        total = sum(counts.values())
        if total:
            reasons = ", ".join(f"{n} {reason}" for reason, n in sorted(counts.items()))
            parts.append(f"{split}: {total} image{'s' if total != 1 else ''} ({reasons})")
    return "; ".join(parts)
