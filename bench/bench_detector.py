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
from torchvision.ops import box_iou
from torchvision.ops.misc import FrozenBatchNorm2d

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.machine_info import cpu_model
from engine import build_model
from engine.data.images import load_image_tensor

IMAGE = Path(__file__).resolve().parents[1] / "tests" / "data" / "raccoon-1.jpg"
TARGET = [{"boxes": torch.tensor([[60.0, 10.0, 250.0, 200.0]]), "labels": torch.tensor([1])}]


def torchvision_model(backbone: str, num_classes: int, image: torch.Tensor) -> torch.nn.Module:
    """torchvision's detector as its builder makes it for fine-tuning (frozen BatchNorm, three
    trainable layers), with seeded weights and BatchNorm statistics measured on a real photo,
    so that activations have realistic scales."""
    torch.manual_seed(0)
    classifier = getattr(torchvision.models, backbone)
    measuring = classifier(norm_layer=lambda c: torch.nn.BatchNorm2d(c, momentum=None)).train()
    with torch.no_grad():
        measuring(torch.nn.functional.interpolate(image[None], size=(320, 320)))
    body = classifier(norm_layer=FrozenBatchNorm2d)
    body.load_state_dict(
        {k: v for k, v in measuring.state_dict().items() if "num_batches" not in k}
    )
    if backbone == "resnet50":
        return FasterRCNN(_resnet_fpn_extractor(body, 3), num_classes)
    anchors = AnchorGenerator(((32, 64, 128, 256, 512),) * 3, ((0.5, 1.0, 2.0),) * 3)
    return FasterRCNN(_mobilenet_extractor(body, True, 3), num_classes,
                      rpn_anchor_generator=anchors, rpn_score_thresh=0.05)


def agreement(ours: dict, theirs: dict) -> str:
    """How many of their detections we reproduce: same label and IoU >= 0.99."""
    if len(theirs["boxes"]) == 0:
        return f"torchvision: no detections; ours: {len(ours['boxes'])}"
    iou = box_iou(theirs["boxes"], ours["boxes"]) if len(ours["boxes"]) else None
    same = 0
    for i, label in enumerate(theirs["labels"]):
        if iou is not None and bool(((iou[i] >= 0.99) & (ours["labels"] == label)).any()):
            same += 1
    return (f"{same} of torchvision's {len(theirs['boxes'])} detections reproduced "
            f"(same class, IoU >= 0.99); ours has {len(ours['boxes'])}")


def timed(fn, device: str) -> float:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start


def machine() -> str:
    cpu = cpu_model() or platform.processor() or platform.machine()
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

    image = load_image_tensor(IMAGE)
    theirs = torchvision_model(args.backbone, 91, image)
    with torch.no_grad():  # a confident classifier, so that detections exist to compare
        theirs.roi_heads.box_predictor.cls_score.weight.mul_(30)
    variants = {
        # Our defaults: frozen BatchNorm folded into the convolutions, channels-last.
        "ours": build_model(args.backbone, 91, frozen_batchnorm=True,
                            trainable_backbone_layers=3),
        # The same arithmetic as torchvision, operation for operation.
        "ours, exact": build_model(args.backbone, 91, frozen_batchnorm=True,
                                   trainable_backbone_layers=3, fold_frozen_batchnorm=False,
                                   channels_last=False),
    }
    for model in variants.values():
        model.load_state_dict(theirs.state_dict())
        model.to(args.device)
    theirs.to(args.device)
    image = image.to(args.device)
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
    for stage, fn in (("inference", infer), ("training step", train_step)):
        for model in (*variants.values(), theirs):
            fn(model)  # warm-up
        times = {name: [] for name in (*variants, "torchvision")}
        contenders = [*variants.items(), ("torchvision", theirs)]
        for repeat in range(args.repeats):
            # Interleaved, and in a rotating order, so that drifts in machine load and what
            # the previous model left in caches hit every contender alike.
            shift = repeat % len(contenders)
            for name, model in contenders[shift:] + contenders[:shift]:
                times[name].append(timed(lambda: fn(model), args.device))  # noqa: B023
        medians = {name: statistics.median(t) for name, t in times.items()}
        for name in variants:
            rows.append((f"{stage} ({name})", medians[name], medians["torchvision"]))

    theirs_detections = infer(theirs)[0]
    detections = {name: agreement(infer(m)[0], theirs_detections) for name, m in variants.items()}

    mode = f"{args.device}{' + AMP' if args.amp else ''}"
    print(f"Machine: {machine()}")
    print(f"Model: {args.backbone} FPN, frozen BatchNorm, 800 px ({tuple(image.shape[1:])} input),"
          f" {mode}, median of {args.repeats}")
    print("| stage | ours (s) | torchvision (s) | ours / torchvision |")
    print("|---|---|---|---|")
    for name, mine, ref in rows:
        print(f"| {name} | {mine:.3f} | {ref:.3f} | {mine / ref:.2f} |")
    for name, text in detections.items():
        print(f"Detections, {name}: {text}")


if __name__ == "__main__":
    main()
