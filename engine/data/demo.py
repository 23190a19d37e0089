"""The built-in demo project's images: shapes on textured backgrounds, drawn from a seed.

Three classes a detector learns in minutes on a CPU (circle, square, triangle), in several
sizes and colours, sometimes overlapping, on noisy gradient backgrounds. The same seed always
gives the same images and boxes, so the demo is identical on every machine and nothing needs
to be downloaded.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

CLASSES = ("circle", "square", "triangle")
_COLOURS = [(220, 50, 47), (38, 139, 210), (133, 153, 0), (211, 54, 130), (181, 137, 0)]


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
    ramp = np.linspace(0.0, 1.0, width)[None, :, None]
    pixels = start + (end - start) * ramp + generator.normal(0, 12, (height, width, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def draw_demo_image(seed: int, width: int = 320, height: int = 240) -> DemoImage:
    """One image with 1-4 shapes, from ``seed``."""
    rng = random.Random(seed)
    image = _background(rng, width, height)
    draw = ImageDraw.Draw(image)
    boxes, labels = [], []
    for _ in range(rng.randint(1, 4)):
        size = rng.randint(28, 90)
        x0 = rng.randint(0, width - size)
        y0 = rng.randint(0, height - size)
        kind = rng.choice(CLASSES)
        colour = rng.choice(_COLOURS)
        x1, y1 = x0 + size, y0 + size
        if kind == "circle":
            draw.ellipse((x0, y0, x1 - 1, y1 - 1), fill=colour, outline=(0, 0, 0))
        elif kind == "square":
            draw.rectangle((x0, y0, x1 - 1, y1 - 1), fill=colour, outline=(0, 0, 0))
        else:
            draw.polygon([(x0 + size / 2, y0), (x1 - 1, y1 - 1), (x0, y1 - 1)], fill=colour,
                         outline=(0, 0, 0))
        boxes.append((float(x0), float(y0), float(x1), float(y1)))
        labels.append(kind)
    return DemoImage(f"demo_{seed:03d}.png", image, boxes, labels)


def demo_images(count: int = 24, seed: int = 0) -> list[DemoImage]:
    """The demo set: ``count`` images drawn from consecutive seeds."""
    return [draw_demo_image(seed * 1000 + i) for i in range(count)]
