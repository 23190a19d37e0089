"""Do the fast defaults give the same detections as exact arithmetic, on a *trained* model?

    python bench/bench_fast_path.py CHECKPOINT IMAGES... [--min-size 800]

Our default model folds frozen BatchNorm into the convolutions and runs them channels-last
(docs/benchmarks.md: 0.72 of torchvision's inference time on resnet50). "Exact"
(``fold_frozen_batchnorm=False, channels_last=False``) computes operation for operation what
torchvision computes, and the test suite checks it gives torchvision's detections to 1e-3 px.
On random weights the fast path's float rounding reorders near-tied proposals; this script
loads a trained checkpoint both ways and counts the detections the fast path reproduces
(same class, IoU >= 0.99, score within 1e-3), image by image, with the largest differences.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import torch
from torchvision.ops import box_iou

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from engine.data.images import load_image_tensor
from engine.detector.build import model_from_config
from engine.detector.checkpoint import read_checkpoint
from engine.detector.config import DetectorConfig


def load(checkpoint: Path, fast: bool, min_size: int | None) -> torch.nn.Module:
    data = read_checkpoint(checkpoint)
    config = DetectorConfig.from_dict(data["config"])
    changes = {"fold_frozen_batchnorm": fast, "channels_last": fast}
    if min_size is not None:
        changes.update(min_size=min_size, max_size=max(config.max_size, round(min_size * 1.6)))
    model = model_from_config(dataclasses.replace(config, **changes))
    model.load_state_dict(data["model"], strict=True)
    return model.eval()


def compare(exact: dict, fast: dict) -> tuple[int, int, float, float]:
    """(reproduced, total, largest box difference in px, largest score difference)."""
    total = len(exact["boxes"])
    if total == 0 or len(fast["boxes"]) == 0:
        return 0, total, 0.0, 0.0
    iou = box_iou(exact["boxes"], fast["boxes"])
    same_label = exact["labels"][:, None] == fast["labels"][None, :]
    iou = torch.where(same_label, iou, torch.zeros_like(iou))
    best_iou, match = iou.max(1)
    score_diff = (exact["scores"] - fast["scores"][match]).abs()
    box_diff = (exact["boxes"] - fast["boxes"][match]).abs().amax(1)
    ok = (best_iou >= 0.99) & (score_diff <= 1e-3)
    if not ok.any():
        return 0, total, 0.0, 0.0
    return int(ok.sum()), total, float(box_diff[ok].max()), float(score_diff[ok].max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("images", type=Path, nargs="+")
    parser.add_argument("--min-size", type=int, help="default: the checkpoint's own")
    args = parser.parse_args()
    exact, fast = (load(args.checkpoint, flag, args.min_size) for flag in (False, True))
    reproduced = total = 0
    box_max = score_max = 0.0
    times = {"exact": 0.0, "fast": 0.0}
    for path in args.images:
        image = load_image_tensor(path)
        outputs = {}
        with torch.inference_mode():
            for name, model in (("exact", exact), ("fast", fast)):
                start = time.perf_counter()
                outputs[name] = model([image])[0]
                times[name] += time.perf_counter() - start
        same, count, box_diff, score_diff = compare(outputs["exact"], outputs["fast"])
        reproduced, total = reproduced + same, total + count
        box_max, score_max = max(box_max, box_diff), max(score_max, score_diff)
        if same != count:
            print(f"{path.name}: {same} of {count} reproduced")
    print(f"{args.checkpoint} at min_size {args.min_size or 'as trained'}: {reproduced} of "
          f"{total} detections reproduced on {len(args.images)} images; largest differences "
          f"{box_max:.2e} px, {score_max:.2e} in score; time fast / exact "
          f"{times['fast'] / times['exact']:.2f}")


if __name__ == "__main__":
    main()
