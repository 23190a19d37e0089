"""The built-in demo project: shapes on textured backgrounds, drawn from a seed.

Four classes a detector learns in minutes on a CPU (circle, square, triangle, cross), 1-5 per
image, 20-90 px across, in varied colours, sometimes overlapping (never hiding more than a
third of another shape's box), on backgrounds that mix a colour gradient with one of several
textures (grain, stripes, a checkerboard, soft blotches). The same seed always gives the
same images, boxes and project, so the demo is identical on every machine and nothing needs to
be downloaded.

Boxes follow the project convention: pixel-edge ``(x0, y0, x1, y1)``, a shape drawn over
pixel columns ``x0 .. x1 - 1`` has ``x1`` as its right edge.
"""

from __future__ import annotations

import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

CLASSES = ("circle", "square", "triangle", "cross")
# Category colours in the demo project, one per class (the canvas draws boxes in them).
CLASS_COLORS = ("#e6194b", "#3cb44b", "#4363d8", "#f58231")
_COLOURS = [(220, 50, 47), (38, 139, 210), (133, 153, 0), (211, 54, 130), (181, 137, 0),
            (42, 161, 152), (108, 113, 196), (240, 240, 240), (30, 30, 30)]
_TEXTURES = ("grain", "stripes", "checker", "blotches")
# A new shape may cover at most this fraction of an earlier shape's box (and vice versa).
_MAX_COVER = 1 / 3


@dataclass
class DemoImage:
    """One demo image; ``boxes`` are (x0, y0, x1, y1) in pixels, ``labels`` class names."""

    name: str
    image: Image.Image
    boxes: list[tuple[float, float, float, float]]
    labels: list[str]


def _background(rng: random.Random, width: int, height: int) -> Image.Image:
    generator = np.random.default_rng(rng.randrange(2**32))
    start = np.array([rng.randrange(60, 200) for _ in range(3)], dtype=np.float64)
    end = np.array([rng.randrange(60, 200) for _ in range(3)], dtype=np.float64)
    angle = rng.uniform(0, np.pi)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    along = xs * np.cos(angle) + ys * np.sin(angle)
    ramp = ((along - along.min()) / max(np.ptp(along), 1.0))[..., None]
    pixels = start + (end - start) * ramp
    texture = rng.choice(_TEXTURES)
    strength = rng.uniform(10, 30)
    if texture == "stripes":
        period = rng.uniform(6, 30)
        phase = rng.uniform(0, 2 * np.pi)
        across = -xs * np.sin(angle) + ys * np.cos(angle)
        pixels += strength * np.sin(2 * np.pi * across / period + phase)[..., None]
    elif texture == "checker":
        cell = rng.randint(8, 32)
        pixels += strength * (((xs // cell + ys // cell) % 2) * 2 - 1)[..., None]
    elif texture == "blotches":
        coarse = generator.normal(0, 1, (height // 16 + 2, width // 16 + 2, 3))
        smooth = Image.fromarray(((coarse + 3) * 40).clip(0, 255).astype(np.uint8))
        smooth = smooth.resize((width, height), Image.Resampling.BICUBIC)
        pixels += (np.asarray(smooth, dtype=np.float64) - 120) * strength / 40
    else:  # grain: noise in 2x2 pixel cells (per-pixel noise would triple the PNG size)
        grain = generator.normal(0, strength / 2, (height // 2 + 1, width // 2 + 1, 3))
        pixels += grain.repeat(2, axis=0).repeat(2, axis=1)[:height, :width]
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """Area of a ∩ b over the smaller of the two areas."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return w * h / smaller


def _draw_shape(draw: ImageDraw.ImageDraw, kind: str, box: tuple[int, int, int, int],
                colour: tuple[int, int, int], outline: tuple[int, int, int] | None) -> None:
    x0, y0, x1, y1 = box
    size = x1 - x0
    if kind == "circle":
        draw.ellipse((x0, y0, x1 - 1, y1 - 1), fill=colour, outline=outline)
    elif kind == "square":
        draw.rectangle((x0, y0, x1 - 1, y1 - 1), fill=colour, outline=outline)
    elif kind == "triangle":
        draw.polygon([(x0 + size / 2, y0), (x1 - 1, y1 - 1), (x0, y1 - 1)], fill=colour,
                     outline=outline)
    else:  # cross: a plus sign whose arms are a third of its size wide
        a, b = x0 + size // 3, x0 + size - size // 3
        c, d = y0 + size // 3, y0 + size - size // 3
        draw.polygon([(a, y0), (b - 1, y0), (b - 1, c), (x1 - 1, c), (x1 - 1, d - 1),
                      (b - 1, d - 1), (b - 1, y1 - 1), (a, y1 - 1), (a, d - 1), (x0, d - 1),
                      (x0, c), (a, c)], fill=colour, outline=outline)


def draw_demo_image(seed: int, width: int = 320, height: int = 240) -> DemoImage:
    """One image with 1-5 shapes, from ``seed``."""
    rng = random.Random(seed)
    image = _background(rng, width, height)
    draw = ImageDraw.Draw(image)
    boxes: list[tuple[int, int, int, int]] = []
    labels = []
    for _ in range(rng.randint(1, 5)):
        size = rng.randint(20, min(90, width, height))
        # A few tries to place the shape without hiding too much of another; else leave it out.
        for _attempt in range(10):
            x0 = rng.randint(0, width - size)
            y0 = rng.randint(0, height - size)
            box = (x0, y0, x0 + size, y0 + size)
            if all(_overlap(box, other) <= _MAX_COVER for other in boxes):
                break
        else:
            continue
        kind = rng.choice(CLASSES)
        base = rng.choice(_COLOURS)
        colour = tuple(int(np.clip(c + rng.randint(-25, 25), 0, 255)) for c in base)
        outline = rng.choice([(0, 0, 0), (255, 255, 255), None])
        _draw_shape(draw, kind, box, colour, outline)
        boxes.append(box)
        labels.append(kind)
    return DemoImage(f"demo_{seed:03d}.png", image,
                     [tuple(float(v) for v in box) for box in boxes], labels)


def demo_images(count: int = 24, seed: int = 0) -> list[DemoImage]:
    """The demo set: ``count`` images drawn from consecutive seeds."""
    return [draw_demo_image(seed * 1000 + i) for i in range(count)]


def write_demo_project(out: str | os.PathLike, count: int = 300, seed: int = 0, *,
                       val_fraction: float = 0.2, unlabeled: int = 0) -> Path:
    """Write a demo project: ``count`` PNGs in ``out/images`` and ``out/project.sqlite``.

    Categories are :data:`CLASSES` with ids 1..4; every image is "done" with its boxes; splits
    are train/val in the proportion ``1 - val_fraction : val_fraction`` (seeded). Then
    ``unlabeled`` more images, drawn the same way, without their boxes, status "unlabeled" and
    no split: what is left to label (by hand or with a trained model's suggestions). ``out`` must
    not exist or be an empty folder. The project is built in a temporary sibling folder and
    renamed into place, so an interrupted run never leaves a half-made demo behind.
    """
    from .annotations import BoxRecord
    from .project import Project, ProjectError, measure_image, split_assignment

    out = Path(os.path.abspath(out))
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ProjectError(f"{out}: exists and is not an empty folder; choose a new folder")
    if count < 1:
        raise ValueError(f"a demo project needs at least one image, not {count}")
    out.parent.mkdir(parents=True, exist_ok=True)
    building = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(building, ignore_errors=True)
    try:
        (building / "images").mkdir(parents=True)
        with Project.create(building) as project, project.transaction():
            ids = [project.add_category(name, color, category_id=index + 1).id
                   for index, (name, color) in enumerate(zip(CLASSES, CLASS_COLORS))]
            by_name = dict(zip(CLASSES, ids))
            labeled_ids: list[int] = []
            for index in range(count + unlabeled):
                # One at a time, not demo_images(count): 300 images would hold 70 MB at once.
                item = draw_demo_image(seed * 1000 + index)
                path = building / "images" / item.name
                # Level 3: a third of level 6's time for 15% larger files.
                item.image.save(path, compress_level=3)
                measured = measure_image(path)
                labeled = index < count
                image_id = project.insert_image(
                    path, width=measured.width, height=measured.height, hash=measured.hash,
                    status="done" if labeled else "unlabeled")
                if labeled:
                    labeled_ids.append(image_id)
                    project.add_boxes(image_id, [
                        BoxRecord(*box, by_name[label], source="manual")
                        for box, label in zip(item.boxes, item.labels)])
            assignment = split_assignment(
                labeled_ids, {"train": 1 - val_fraction, "val": val_fraction}, seed)
            for split in ("train", "val"):
                project.set_split([i for i, s in assignment.items() if s == split], split)
        if out.exists():
            out.rmdir()
        building.rename(out)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return out
