"""Our Faster R-CNN against torchvision's: same weights, same image, one process, interleaved.

Measures inference and one training step (forward, backward, zero_grad) at the default
800 px, for a model built as for fine-tuning (ImageNet-style frozen BatchNorm, 3 trainable
backbone layers). Reports medians and our time / theirs, plus how far the detections differ.

    python bench/bench_detector.py [--backbone resnet50] [--device cpu|cuda] [--amp] [--repeats 5]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torchvision
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import _mobilenet_extractor, _resnet_fpn_extractor
from torchvision.ops.misc import FrozenBatchNorm2d

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from engine import build_model
from engine.data.images import load_image_tensor

IMAGE = Path(__file__).resolve().parents[1] / "tests" / "data" / "raccoon-1.jpg"
TARGET = [{"boxes": torch.tensor([[60.0, 10.0, 250.0, 200.0]]), "labels": torch.tensor([1])}]


def torchvision_model(backbone: str, num_classes: int) -> torch.nn.Module:
    torch.manual_seed(0)
    if backbone == "resnet50":
        body = torchvision.models.resnet50(norm_layer=FrozenBatchNorm2d)
        return FasterRCNN(_resnet_fpn_extractor(body, 3), num_classes)
    body = torchvision.models.mobilenet_v3_large(norm_layer=FrozenBatchNorm2d)
    anchors = AnchorGenerator(((32, 64, 128, 256, 512),) * 3, ((0.5, 1.0, 2.0),) * 3)
    return FasterRCNN(_mobilenet_extractor(body, True, 3), num_classes,
                      rpn_anchor_generator=anchors, rpn_score_thresh=0.05)


def timed(fn, device: str) -> float:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return (f"{cpu}, {torch.get_num_threads()} threads{gpu}; Python {platform.python_version()}, "
            f"torch {torch.__version__}, torchvision {torchvision.__version__}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet50",
                        choices=["resnet50", "mobilenet_v3_large"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--amp", action="store_true", help="autocast to float16 (CUDA)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    theirs = torchvision_model(args.backbone, 91)
    with torch.no_grad():  # a confident classifier, so that detections exist to compare
        theirs.roi_heads.box_predictor.cls_score.weight.mul_(30)
    ours = build_model(args.backbone, 91, frozen_batchnorm=True, trainable_backbone_layers=3)
    ours.load_state_dict(theirs.state_dict())
    ours.to(args.device)
    theirs.to(args.device)
    image = load_image_tensor(IMAGE).to(args.device)
    targets = [{k: v.to(args.device) for k, v in t.items()} for t in TARGET]
    autocast = torch.autocast(args.device.split(":")[0], enabled=args.amp)

    def infer(model):
        model.eval()
        with torch.inference_mode(), autocast:
            return model([image])

    def train_step(model):
        model.train()
        with autocast:
            losses = model([image], targets)
        sum(losses.values()).backward()
        model.zero_grad(set_to_none=True)

    rows = []
    for name, fn in (("inference", infer), ("training step", train_step)):
        fn(ours)
        fn(theirs)  # warm-up
        ours_t, theirs_t = [], []
        for _ in range(args.repeats):
            ours_t.append(timed(lambda: fn(ours), args.device))  # noqa: B023
            theirs_t.append(timed(lambda: fn(theirs), args.device))  # noqa: B023
        rows.append((name, statistics.median(ours_t), statistics.median(theirs_t)))

    ours_det, theirs_det = infer(ours)[0], infer(theirs)[0]
    same_count = len(ours_det["boxes"]) == len(theirs_det["boxes"])
    agreement = "different numbers of detections"
    if same_count:
        box_diff = (ours_det["boxes"] - theirs_det["boxes"]).abs().max().item()
        labels_equal = bool((ours_det["labels"] == theirs_det["labels"]).all())
        agreement = (f"{len(ours_det['boxes'])} detections, labels equal: {labels_equal}, "
                     f"max box difference {box_diff:.4f} px")

    mode = f"{args.device}{' + AMP' if args.amp else ''}"
    print(f"Machine: {machine()}")
    print(f"Model: {args.backbone} FPN, frozen BatchNorm, 800 px ({tuple(image.shape[1:])} input),"
          f" {mode}, median of {args.repeats}")
    print("| stage | ours (s) | torchvision (s) | ours / torchvision |")
    print("|---|---|---|---|")
    for name, mine, ref in rows:
        print(f"| {name} | {mine:.3f} | {ref:.3f} | {mine / ref:.2f} |")
    print(f"Detections: {agreement}")


if __name__ == "__main__":
    main()
