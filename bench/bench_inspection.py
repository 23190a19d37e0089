"""What inspecting costs: the traced run against plain inference, and the reruns a slider makes.

One image at the default 800 px through resnet50 (the detector bench's seeded weights with
measured BatchNorm statistics). With ``--proposals trained`` (the default) the RPN's box
regression weights are scaled down (by ``TRAINED_LIKE_DELTAS``) so that its proposals stay
near their anchors, as a trained RPN's do around objects: nearly every candidate is valid,
about half are suppressed by NMS, and the post-NMS top-k of 1000 is filled, as a trained model
fills it. Random weights (``--proposals random``) regress wildly: most candidates are pushed
out of the image (clipped to zero area) and only about 480 proposals remain, so a rerun has
half the work.

Per repeat, interleaved in a rotating order with plain inference: a fresh
:class:`Inspection` (the traced run, without and with a target), then a rerun that changes
the RPN's NMS IoU (proposal filtering, then the box head for proposals not seen before), a
rerun that changes only the box score threshold (postprocessing only), a return to the first
RPN settings (every proposal's box head output already cached), and the worst case: an RPN
rerun where no proposal's box head output is cached yet.

    python bench/bench_inspection.py [--backbone resnet50] [--repeats 5] [--proposals trained]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_detector import IMAGE, TARGET, machine, timed, torchvision_model

from engine import build_model
from engine.data.images import load_image_tensor
from engine.detector import Inspection

# Scale of the RPN's box-regression weights that gives trained-like proposals (see above).
TRAINED_LIKE_DELTAS = 0.03


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet50",
                        choices=["resnet50", "mobilenet_v3_large"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--proposals", choices=["trained", "random"], default="trained",
                        help="trained: the post-NMS top-k filled (see the module docstring)")
    args = parser.parse_args()

    image = load_image_tensor(IMAGE)
    reference = torchvision_model(args.backbone, 91, image)
    with torch.no_grad():
        reference.roi_heads.box_predictor.cls_score.weight.mul_(30)
    model = build_model(args.backbone, 91, frozen_batchnorm=True, trainable_backbone_layers=3)
    model.load_state_dict(reference.state_dict())
    model.eval()
    del reference
    if args.proposals == "trained":
        with torch.no_grad():
            model.rpn.head.bbox_pred.weight.mul_(TRAINED_LIKE_DELTAS)
            model.rpn.head.bbox_pred.bias.mul_(TRAINED_LIKE_DELTAS)

    def plain():
        with torch.inference_mode():
            model([image])

    times: dict[str, list[float]] = {name: [] for name in (
        "plain inference", "inspect", "inspect with a target", "RPN rerun (NMS IoU 0.7 -> 0.6)",
        "ROI rerun (score threshold)", "RPN rerun (back to NMS IoU 0.7)",
        "RPN rerun (every proposal new)", "RPN rerun (every proposal new, after precompute)",
        "precompute_box_head (background)")}
    counts: dict[str, int] = {}

    def inspected(target):
        inspection = Inspection(model, image, target)
        key = "inspect with a target" if target else "inspect"
        times[key].append(timed(inspection.run, "cpu"))
        return inspection

    def reruns():
        inspection = inspected(None)
        first = inspection.run().rpn.final
        settings = {"rpn_nms_thresh": 0.6}
        times["RPN rerun (NMS IoU 0.7 -> 0.6)"].append(
            timed(lambda: inspection.run(**settings), "cpu"))
        changed = inspection.run(**settings).rpn
        rpn = inspection.run().summary()["rpn"]
        counts["RPN candidates (valid, suppressed by NMS at 0.7)"] = (
            f"{rpn['pre_nms_candidates']} ({rpn['valid']}, {rpn['suppressed']})")
        counts["proposals at NMS IoU 0.7"] = first.numel()
        counts["proposals at NMS IoU 0.6"] = changed.final.numel()
        counts["of which new (box head run for them)"] = int(
            (~torch.isin(changed.anchors[changed.final], inspection.run().rpn.anchors[first]))
            .sum())
        settings["box_score_thresh"] = 0.3
        times["ROI rerun (score threshold)"].append(
            timed(lambda: inspection.run(**settings), "cpu"))
        times["RPN rerun (back to NMS IoU 0.7)"].append(timed(inspection.run, "cpu"))
        counts["detections"] = inspection.run().summary()["detections"]

    def cold_rerun():
        # Only one proposal's box head output is cached; the rerun computes all the others.
        inspection = Inspection(model, image)
        inspection.run(rpn_post_nms_top_n=1)
        times["RPN rerun (every proposal new)"].append(timed(inspection.run, "cpu"))
        inspection = Inspection(model, image)
        inspection.run(rpn_post_nms_top_n=1)
        times["precompute_box_head (background)"].append(
            timed(inspection.precompute_box_head, "cpu"))
        times["RPN rerun (every proposal new, after precompute)"].append(
            timed(inspection.run, "cpu"))

    contenders = [
        lambda: times["plain inference"].append(timed(plain, "cpu")),
        reruns,
        lambda: inspected(TARGET[0]),
        cold_rerun,
    ]
    plain()
    Inspection(model, image).run()  # warm-up
    for repeat in range(args.repeats):
        shift = repeat % len(contenders)
        for contender in contenders[shift:] + contenders[:shift]:
            contender()

    medians = {name: statistics.median(values) for name, values in times.items()}
    base = medians["plain inference"]
    print(f"Machine: {machine()}")
    print(f"Model: {args.backbone} FPN, 800 px ({tuple(image.shape[1:])} input), CPU, "
          f"{args.proposals} proposals, {torch.get_num_threads()} threads, "
          f"median of {args.repeats}")
    print("| run | time (ms) | / plain inference |")
    print("|---|---|---|")
    for name, value in medians.items():
        print(f"| {name} | {value * 1000:.0f} | {value / base:.3f} |")
    for name, value in counts.items():
        print(f"{name}: {value}")


if __name__ == "__main__":
    main()
