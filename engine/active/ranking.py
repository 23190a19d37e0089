"""Which unlabeled images to label next: a trained detector's uncertainty on each, weighed by
how different each is from what is labeled and from the images ranked before it.

    ranking = rank_project("runs/x/best.pt", "myproject", progress=print)
    for image in ranking.images[:20]:
        print(image.path, image.score, image.uncertainty, image.diversity)

The candidates are the project's unlabeled images: status "unlabeled" or "in progress", no
box, the file present and readable (images marked "skipped" are the user's choice and are left
out). The labeled images (marked done, or holding a box) are the reference the diversity is
measured against.

Per candidate, one forward on the image and one on its mirror image, batched, at the
checkpoint's own input size (the model's transform resizes: 320 px for the CPU preset), with
the RPN keeping its 300 best proposals (:class:`RankingSettings`):

- ``class_uncertainty``: per detection scoring at least ``min_score`` (0.25: the many
  low-scoring boxes a detector keeps are noise whose doubt says little), the normalised entropy
  (or the margin) of its full class distribution, background included
  (:mod:`engine.active.uncertainty`);
- ``flip_disagreement``: per such detection, how far the mirror image's detections (all of
  them, at the model's own threshold) disagree;
- ``uncertainty``: per detection the mean of the two, then the mean of the image's 3 largest
  (1.0 for an image without any detection scoring ``min_score``: the model misses its objects
  or it has none, and labeling tells which);
- an embedding: the FPN maps pooled over the image (:mod:`engine.active.diversity`).

Then the uncertainty-weighted k-center greedy orders them: ``score = uncertainty *
diversity``, ``diversity`` half the embedding distance to the nearest labeled or
higher-ranked image. Sources: :mod:`engine.active.uncertainty` and
:mod:`engine.active.diversity`; the reasoning in ``docs/active-learning.md``.

The model is loaded once; ``progress(done, total)`` is called after every batch (the labeled
images' embeddings count in ``total``), and when ``cancelled()`` turns true the ranking stops
and returns None. A file that cannot be read, or that the model cannot take, is skipped with
its reason (:attr:`Ranking.skipped`), never ends the run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F

from ..data.images import ImageLoadError, image_to_tensor, load_thumbnail
from ..detector.checkpoint import LoadedDetector, load_detector, read_checkpoint
from ..detector.precision import autocast, autocast_dtype
from ..detector.rpn import ProposalSettings
from .diversity import greedy_order, pooled_embedding
from .uncertainty import (
    TOP_K,
    flip_boxes,
    flip_disagreement,
    image_uncertainty,
    margin_uncertainty,
    normalized_entropy,
)

Progress = Callable[[int, int], None]
CLASS_MEASURES = ("entropy", "margin")
# Statuses whose images (without boxes) are candidates; "skipped" is the user's own choice.
CANDIDATE_STATUSES = ("unlabeled", "in_progress")


@dataclass(frozen=True)
class RankingSettings:
    """``batch_size`` images per forward (each with its mirror image: twice as many run);
    ``class_measure`` "entropy" or "margin"; ``flip`` False leaves the mirror image out (half
    the time, the uncertainty is then the class measure alone); ``top_k`` detections per image
    averaged; ``min_score``: detections scoring less are not measured (they still count as
    the other view's matches for the flip); ``proposals``: the RPN keeps at most this many
    per image after its NMS (None: the model's own, 1000 by default); the box head's cost is
    proportional, and a ranking needs the confident detections, which the best-scored
    proposals hold (torchvision's 320 px mobile detector keeps 150); ``max_references``
    labeled images embedded at most (evenly spaced among them)."""

    batch_size: int = 4
    class_measure: str = "entropy"
    flip: bool = True
    top_k: int = TOP_K
    min_score: float = 0.25
    proposals: int | None = 300
    max_references: int = 1000

    def __post_init__(self) -> None:
        if self.class_measure not in CLASS_MEASURES:
            raise ValueError(f"class measure {self.class_measure!r}: use one of "
                             f"{', '.join(CLASS_MEASURES)}")
        if self.batch_size < 1 or self.top_k < 1 or self.max_references < 0:
            raise ValueError("batch size and top k must be at least 1, max references at "
                             "least 0")
        if self.proposals is not None and self.proposals < 1:
            raise ValueError(f"proposals {self.proposals}: keep at least 1")
        if not 0 <= self.min_score <= 1:
            raise ValueError(f"min score {self.min_score}: give a score from 0 to 1")


@dataclass(frozen=True)
class ImageAnalysis:
    """What the model makes of one image. ``embedding`` (E,) unit length; the others in
    [0, 1] (``flip_disagreement`` None when the mirror image was not run); ``detections`` the
    model's detections measured (scoring at least ``min_score``)."""

    embedding: torch.Tensor
    class_uncertainty: float
    flip_disagreement: float | None
    uncertainty: float
    detections: int


@dataclass(frozen=True)
class RankedImage:
    """One candidate in the ranking: ``rank`` from 1; ``score = uncertainty * diversity``;
    ``uncertainty`` and its parts ``class_uncertainty`` and ``flip_disagreement`` (None without
    the mirror image); ``diversity`` in [0, 1] at the moment it was ranked."""

    rank: int
    image_id: int
    path: str
    score: float
    uncertainty: float
    diversity: float
    class_uncertainty: float
    flip_disagreement: float | None
    detections: int


@dataclass(frozen=True)
class SkippedImage:
    image_id: int
    path: str
    reason: str


@dataclass
class Ranking:
    """The candidates best first, the ones skipped with their reason, and how many labeled
    images the diversity was measured against."""

    checkpoint: str
    settings: RankingSettings
    images: list[RankedImage] = field(default_factory=list)
    skipped: list[SkippedImage] = field(default_factory=list)
    references: int = 0

    def to_json(self) -> dict:
        return {"checkpoint": self.checkpoint, "settings": asdict(self.settings),
                "references": self.references,
                "images": [asdict(image) for image in self.images],
                "skipped": [asdict(image) for image in self.skipped]}


class ImageAnalyser:
    """A loaded detector turning batches of image tensors into :class:`ImageAnalysis` records
    and embeddings. Not thread-safe: one thread at a time."""

    def __init__(self, detector: LoadedDetector, settings: RankingSettings = RankingSettings(),
                 *, device: str | torch.device = "cpu", amp: bool | None = None) -> None:
        self.model = detector.model.eval()
        self.settings = settings
        self.device = torch.device(device)
        self.dtype = autocast_dtype(self.device, amp)

    def input_problem(self, image: torch.Tensor) -> str | None:
        return self.model.input_problem(image)

    @property
    def max_side(self) -> int:
        """The longest side the model's transform resizes an image to."""
        return int(self.model.transform.max_size)

    @property
    def _rpn_settings(self) -> ProposalSettings:
        own = self.model.rpn.test_settings
        if self.settings.proposals is None or self.settings.proposals >= own.post_nms_top_n:
            return own
        return replace(own, post_nms_top_n=self.settings.proposals)

    @torch.inference_mode()
    def embeddings(self, images: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """(E,) unit embeddings of (3, H, W) images in [0, 1]: the backbone and FPN only."""
        images = [image.to(self.device) for image in images]
        with autocast(self.device, self.dtype):
            batch, _ = self.model.transform(images, None)
            features = self.model.extract_features(batch)
        return [self._embedding(features.maps, batch, i).cpu() for i in range(len(images))]

    @staticmethod
    def _embedding(maps: list[torch.Tensor], batch, index: int) -> torch.Tensor:
        height, width = batch.image_sizes[index]
        padded = batch.tensors.shape[-2:]
        return pooled_embedding(maps, index, (height / padded[0], width / padded[1]))

    @torch.inference_mode()
    def analyse(self, images: Sequence[torch.Tensor]) -> list[ImageAnalysis]:
        """The analysis of each (3, H, W) image in [0, 1] (see the module docstring)."""
        images = [image.to(self.device) for image in images]
        n = len(images)
        views = list(images)
        if self.settings.flip:
            views += [image.flip(-1) for image in images]
        with autocast(self.device, self.dtype):
            # The model's forward, with the ranking's proposal count.
            batch, _ = self.model.transform(views, None)
            features = self.model.extract_features(batch)
            outputs = self.model.run_heads(batch, features, rpn_settings=self._rpn_settings)
        detections = outputs.detections
        classes = self.model.num_classes
        counts = [p.shape[0] for p in outputs.roi.proposals]
        logits = outputs.roi.head.class_logits.float().split(counts)
        probabilities = []
        for view in range(len(views)):
            # Candidate k is proposal k // (C - 1) (RoiOutputs' order): its full distribution.
            proposal = outputs.roi.stages[view].final // (classes - 1)
            probabilities.append(F.softmax(logits[view][proposal], dim=-1).cpu())
        boxes = [d["boxes"].float().cpu() for d in detections]
        measured = [(d["scores"] >= self.settings.min_score).cpu() for d in detections]
        measure = (normalized_entropy if self.settings.class_measure == "entropy"
                   else margin_uncertainty)
        results = []
        for i in range(n):
            keep = measured[i]
            class_part = measure(probabilities[i][keep])
            flip_part = None
            per_detection = class_part
            if self.settings.flip:
                width = float(images[i].shape[-1])
                back = flip_boxes(boxes[n + i], width)
                flip_part = flip_disagreement(boxes[i][keep], probabilities[i][keep], back,
                                              probabilities[n + i])
                per_detection = 0.5 * (class_part + flip_part)
            top_k = self.settings.top_k
            results.append(ImageAnalysis(
                embedding=self._embedding(outputs.features.maps, outputs.batch, i).cpu(),
                class_uncertainty=image_uncertainty(class_part, top_k),
                flip_disagreement=None if flip_part is None else image_uncertainty(flip_part,
                                                                                   top_k),
                uncertainty=image_uncertainty(per_detection, top_k),
                detections=int(class_part.numel())))
        return results


def _load(path: str | os.PathLike, analyser: ImageAnalyser) -> torch.Tensor | str:
    """The image tensor, or why it cannot be used. Decoded at most at the model's longest
    input side (a JPEG decoder reduces while decoding: a 12-megapixel photo costs little): the
    model would shrink it to no more than that anyway, and nothing here is reported in the
    image's own pixels."""
    try:
        image = image_to_tensor(load_thumbnail(path, analyser.max_side))
    except ImageLoadError as error:
        return str(error)
    except OSError as error:
        return f"{path}: {error.strerror or error}"
    problem = analyser.input_problem(image)
    return image if problem is None else f"{path}: {problem}"


def _run_batch(analyser: ImageAnalyser, loaded: list[tuple[int, str, torch.Tensor]],
               analyse: bool) -> list:
    """Per image an :class:`ImageAnalysis` (``analyse``) or an embedding; when the model
    fails on the batch, image by image, and for an image it fails on, the reason."""
    run = analyser.analyse if analyse else analyser.embeddings
    try:
        return run([image for _id, _path, image in loaded])
    except (RuntimeError, ValueError) as error:
        if len(loaded) == 1:
            return [_failure(loaded[0][1], error)]
    results: list = []
    for _id, path, image in loaded:
        try:
            results += run([image])
        except (RuntimeError, ValueError) as error:
            results.append(_failure(path, error))
    return results


def _failure(path: str, error: Exception) -> str:
    return f"{path}: the detector failed on this image ({error})"


def _evenly_spaced(items: Sequence, most: int) -> list:
    if len(items) <= most:
        return list(items)
    return [items[(i * len(items)) // most] for i in range(most)]


def rank_images(
    detector: LoadedDetector,
    candidates: Sequence[tuple[int, str | os.PathLike]],
    labeled: Sequence[tuple[int, str | os.PathLike]] = (),
    *,
    settings: RankingSettings = RankingSettings(),
    device: str | torch.device = "cpu",
    amp: bool | None = None,
    checkpoint: str = "",
    progress: Progress | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> Ranking | None:
    """Rank ``candidates`` ((image id, file) pairs) against the ``labeled`` ones (see the
    module docstring). None when ``cancelled()`` turned true."""
    analyser = ImageAnalyser(detector, settings, device=device, amp=amp)
    references = _evenly_spaced(list(labeled), settings.max_references)
    total = len(candidates) + len(references)
    done = 0
    ranking = Ranking(checkpoint, settings)
    analysed: list[tuple[int, str, ImageAnalysis]] = []
    reference_embeddings: list[torch.Tensor] = []

    def batches(items):
        size = settings.batch_size
        for start in range(0, len(items), size):
            yield items[start:start + size]

    for part, is_candidate in ((list(candidates), True), (references, False)):
        for chunk in batches(part):
            if cancelled is not None and cancelled():
                return None
            loaded = []
            for image_id, path in chunk:
                image = _load(path, analyser)
                if isinstance(image, str):
                    if is_candidate:
                        ranking.skipped.append(SkippedImage(image_id, str(path), image))
                else:
                    loaded.append((image_id, str(path), image))
            if loaded:
                results = _run_batch(analyser, loaded, is_candidate)
                for (image_id, path, _image), result in zip(loaded, results):
                    if isinstance(result, str):
                        if is_candidate:
                            ranking.skipped.append(SkippedImage(image_id, path, result))
                    elif is_candidate:
                        analysed.append((image_id, path, result))
                    else:
                        reference_embeddings.append(result)
            done += len(chunk)
            if progress is not None:
                progress(done, total)
    ranking.references = len(reference_embeddings)
    if not analysed:
        return ranking
    uncertainty = torch.tensor([a.uncertainty for _i, _p, a in analysed])
    embeddings = torch.stack([a.embedding for _i, _p, a in analysed])
    labeled_embeddings = torch.stack(reference_embeddings) if reference_embeddings else None
    for rank, pick in enumerate(greedy_order(uncertainty, embeddings, labeled_embeddings),
                                start=1):
        image_id, path, result = analysed[pick.index]
        ranking.images.append(RankedImage(
            rank=rank, image_id=image_id, path=path, score=pick.score,
            uncertainty=result.uncertainty, diversity=pick.diversity,
            class_uncertainty=result.class_uncertainty,
            flip_disagreement=result.flip_disagreement, detections=result.detections))
    return ranking


def project_candidates(project) -> tuple[list[tuple[int, Path]], list[tuple[int, Path]],
                                         list[SkippedImage]]:
    """A :class:`~engine.data.project.Project`'s candidates and labeled images as (id, file)
    pairs (see the module docstring), and the candidates whose file is missing or unreadable
    as skipped, with that reason."""
    candidates, labeled, skipped = [], [], []
    for row in project.images():
        is_labeled = row.box_count > 0 or row.status == "done"
        if is_labeled:
            if row.problem is None:
                labeled.append((row.id, row.file))
        elif row.status in CANDIDATE_STATUSES:
            if row.problem is None:
                candidates.append((row.id, row.file))
            else:
                reason = "file not found" if row.problem == "missing" else "file unreadable"
                skipped.append(SkippedImage(row.id, str(row.file), f"{row.file}: {reason}"))
    return candidates, labeled, skipped


def rank_project(
    checkpoint: str | os.PathLike,
    project_folder: str | os.PathLike,
    *,
    settings: RankingSettings = RankingSettings(),
    device: str | torch.device = "cpu",
    amp: bool | None = None,
    progress: Progress | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> Ranking | None:
    """:func:`rank_images` of a project's unlabeled images with a saved checkpoint (opened
    read-only: ranking never writes the project). Raises FileNotFoundError or ValueError for a
    checkpoint that cannot be read, ProjectError for a folder that is not a project."""
    from ..data.project import Project

    with Project.open(project_folder, read_only=True) as project:
        candidates, labeled, skipped = project_candidates(project)
    if not candidates:  # nothing to rank: the checkpoint is only checked
        read_checkpoint(checkpoint)
        return Ranking(str(checkpoint), settings, skipped=skipped)
    detector = load_detector(checkpoint, device)
    ranking = rank_images(detector, candidates, labeled, settings=settings, device=device,
                          amp=amp, checkpoint=str(checkpoint), progress=progress,
                          cancelled=cancelled)
    if ranking is not None:
        ranking.skipped = skipped + ranking.skipped
    return ranking
