"""The ``frcnn`` command. Thin: every subcommand calls engine functions the GUI calls too."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import __doc__ as engine_doc


def _cmd_backbones(_args: argparse.Namespace) -> int:
    from .detector.backbones import BACKBONES

    for name, spec in BACKBONES.items():
        print(f"{name:20s} levels {','.join(spec.level_names):18s} strides {spec.strides}")
    return 0


def _cmd_detect(args: argparse.Namespace) -> int:
    import torch

    from .data.images import ImageLoadError, load_image_tensor
    from .detector import build_model

    model = build_model(args.backbone, num_classes=args.num_classes, weights=args.weights)
    model.eval()
    results = []
    for path in args.images:
        try:
            image = load_image_tensor(path)
        except ImageLoadError as error:
            print(f"skipped: {error}", file=sys.stderr)
            continue
        with torch.inference_mode():
            detections = model([image])[0]
        for box, label, score in zip(
            detections["boxes"].tolist(), detections["labels"].tolist(),
            detections["scores"].tolist(),
        ):
            x0, y0, x1, y1 = box
            results.append({
                "file_name": str(path), "category_id": label, "score": round(score, 5),
                "bbox": [round(v, 2) for v in (x0, y0, x1 - x0, y1 - y0)],
            })
    text = json.dumps(results, indent=1)
    if args.out:
        Path(args.out).write_text(text)
    else:
        print(text)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="frcnn", description=engine_doc)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("backbones", help="list the available backbones").set_defaults(
        func=_cmd_backbones
    )
    detect = commands.add_parser("detect", help="run a detector on images, print COCO results")
    detect.add_argument("images", nargs="+", type=Path)
    detect.add_argument("--backbone", default="resnet50")
    detect.add_argument("--weights", default="coco",
                        help="none, imagenet, coco (torchvision's, from the hub cache) or a file")
    detect.add_argument("--num-classes", type=int, default=91)
    detect.add_argument("--out", type=Path, help="write the JSON here instead of printing it")
    detect.set_defaults(func=_cmd_detect)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, RuntimeError, FileNotFoundError) as error:
        print(f"frcnn: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
