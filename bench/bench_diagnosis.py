"""Diagnosis cost as ratios to a plain evaluation of the same split, measured in one process.

    python bench/bench_diagnosis.py --project DIR [--checkpoint CKPT] [--split val]

Times, on the same model and images: a plain evaluation (``evaluate_model``: the forward and
pycocotools), the diagnosis (every image through an Inspection, the funnel, pycocotools, TIDE,
then the anchor fit and search), and two what-ifs from the kept outputs: a box-head setting
(``box_score_thresh``) and an RPN setting (``rpn_nms_thresh``, which needs the box head on new
proposals). The plain evaluation runs before and after, and the ratios use their mean, so that
a change of load on a shared machine during the run counts half on each side. Without
``--checkpoint`` the model is EfficientNet-Lite0 with its ImageNet backbone and untrained heads
at 240/320 px (the demo preset's size): the worst case for the heads (every proposal scores
and 100 detections per image).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from engine import build_model
from engine.data.project import Project
from engine.detector.checkpoint import load_detector
from engine.detector.class_map import classes_for
from engine.diagnosis.diagnose import DiagnosisSession
from engine.training.evaluation import evaluate_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, required=True)
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--split", default="val")
    parser.add_argument("--limit", type=int, help="only the split's first N images")
    parser.add_argument("--out", type=Path, help="also write the diagnosis here (JSON, charts)")
    args = parser.parse_args()
    torch.manual_seed(0)
    if args.checkpoint is None:
        with Project.open(args.project, read_only=True) as store:
            classes = classes_for(store.categories())
        model = build_model("efficientnet_lite0", len(classes) + 1, "imagenet", min_size=240,
                            max_size=320)
        checkpoint = Path(os.environ.get("TMPDIR", "/tmp")) / "bench-diagnosis-untrained.pt"
        from engine.detector.checkpoint import save_detector

        save_detector(checkpoint, model, classes)
    else:
        checkpoint = args.checkpoint
    session = DiagnosisSession.open(checkpoint, args.project, args.split)
    if args.limit is not None:
        session = DiagnosisSession(
            session.detector, session.dataset.records[: args.limit], session.all_records,
            session.classes, checkpoint=session.checkpoint, project=session.project,
            split=session.split)
    model = load_detector(checkpoint).model.eval()

    def evaluation() -> float:
        start = time.perf_counter()
        evaluate_model(model, session.dataset, session.classes, batch_size=1)
        return time.perf_counter() - start

    load = os.getloadavg()
    before = evaluation()
    start = time.perf_counter()
    diagnosis = session.run()
    diagnose = time.perf_counter() - start
    start = time.perf_counter()
    session.what_if(box_score_thresh=0.3)
    what_if_roi = time.perf_counter() - start
    nms = float(diagnosis.base.settings["rpn_nms_thresh"]) - 0.1
    start = time.perf_counter()
    session.what_if(rpn_nms_thresh=nms)
    what_if_rpn = time.perf_counter() - start
    after = evaluation()
    load_after = os.getloadavg()
    plain = (before + after) / 2
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; load average "
          f"{load[0]:.1f} before, {load_after[0]:.1f} after")
    print(f"split: {args.split}, {len(session.dataset)} images, "
          f"{diagnosis.base.funnel.boxes} boxes; checkpoint: {checkpoint}")
    print(f"plain evaluation: {before:.1f} s before, {after:.1f} s after (mean {plain:.1f} s)")
    print(f"diagnosis: {diagnose:.1f} s = {diagnose / plain:.2f} x evaluation "
          f"(model+funnel+TIDE {diagnosis.seconds['model_and_funnel']:.1f} s, anchor fit and "
          f"search {diagnosis.seconds['anchor_fit_and_search']:.1f} s)")
    print(f"what-if box_score_thresh=0.3: {what_if_roi:.1f} s = {what_if_roi / plain:.2f} x")
    print(f"what-if rpn_nms_thresh={nms:.2f}: {what_if_rpn:.1f} s = {what_if_rpn / plain:.2f} x")
    if args.out is not None:
        from engine.diagnosis.report import write_diagnosis

        for path in write_diagnosis(diagnosis, args.out):
            print(f"wrote {path}")


if __name__ == "__main__":
    main()
