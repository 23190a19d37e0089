"""The ``frcnn`` command. Thin: every subcommand calls engine functions the GUI calls too."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .text import count


def _cmd_backbones(_args: argparse.Namespace) -> int:
    from .detector.backbones import BACKBONES

    for name, spec in BACKBONES.items():
        print(f"{name:20s} levels {','.join(spec.level_names):18s} strides {spec.strides}")
    return 0


def _open_model(args: argparse.Namespace):
    from .detector.checkpoint import open_detector

    return open_detector(args.checkpoint, weights=args.weights, backbone=args.backbone,
                         num_classes=args.num_classes)


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", type=Path,
                        help="a checkpoint written by training (overrides the options below)")
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--weights", default="coco",
                        help="none, imagenet, coco (torchvision's, from the hub cache) or a "
                             "state-dict file")
    parser.add_argument("--num-classes", type=int, default=91,
                        help="classes including the background (91 for COCO)")


def _cmd_detect(args: argparse.Namespace) -> int:


    model = _open_model(args).model
    results = []
    for path in args.images:
        detections = _detect_one(model, path, "cpu")
        if detections is None:
            continue
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


def _parse_box(text: str) -> tuple[list[float], int]:
    parts = text.split(",")
    if len(parts) not in (4, 5):
        raise argparse.ArgumentTypeError(f"{text!r}: give x0,y0,x1,y1 or x0,y0,x1,y1,class_id")
    try:
        return [float(v) for v in parts[:4]], int(parts[4]) if len(parts) == 5 else 1
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r}: {error}") from error


def _cmd_inspect(args: argparse.Namespace) -> int:
    import torch

    from .data.images import image_to_tensor, load_image
    from .detector import inspect
    from .detector.overlays import write_inspection_report

    detector = _open_model(args)
    image = load_image(args.image)
    problem = detector.model.transform.size_check().problem(image.height, image.width)
    if problem is not None:
        raise ValueError(f"{args.image}: {problem}")
    target = None
    if args.box:
        target = {"boxes": torch.tensor([box for box, _ in args.box]),
                  "labels": torch.tensor([label for _, label in args.box])}
    overrides = {name: getattr(args, name) for name in _INSPECT_OVERRIDES
                 if getattr(args, name) is not None}
    trace = inspect(detector.model, image_to_tensor(image), target, **overrides)
    written = write_inspection_report(trace, image, args.out, detector.class_names())
    if args.save_trace:
        from .detector import save_trace

        written.append(save_trace(trace, args.out / "trace.pt"))
    counts = trace.summary()
    print(f"{args.image}: {count(counts['anchors'], 'anchor')}, "
          f"{count(counts['rpn']['proposals'], 'proposal')}, "
          f"{count(counts['detections'], 'detection')}")
    print(f"wrote {count(len(written), 'file')} to {args.out}")
    return 0


_INSPECT_OVERRIDES = (
    "rpn_pre_nms_top_n", "rpn_post_nms_top_n", "rpn_nms_thresh", "rpn_score_thresh",
    "box_score_thresh", "box_nms_thresh", "box_detections_per_img",
)


def _cmd_train(args: argparse.Namespace) -> int:
    from .training import Control, TrainingError, TrainingJob, run_job
    from .training.progress import TerminalProgress

    job = TrainingJob(project=str(args.project), out=str(args.out), weights=args.weights,
                      device=args.device, resume=str(args.resume) if args.resume else None)
    if args.config and args.preset:
        raise ValueError("give --config or --preset, not both (a preset is a settings file)")
    # A resumed run keeps the settings its checkpoint holds, unless a file is named.
    if args.config or args.preset or not args.resume:
        preset = _train_preset(args)
        job.detector, job.training = dict(preset.detector), dict(preset.training)
    if args.time_budget is not None:
        job.training["time_budget_s"] = args.time_budget
    if args.no_amp:
        job.training["amp"] = False
    if args.backbone:
        job.detector["backbone"] = args.backbone
    for option, key in (("epochs", "epochs"), ("batch_size", "batch_size"), ("lr", "lr"),
                        ("max_steps", "max_steps"), ("seed", "seed")):
        if getattr(args, option) is not None:
            job.training[key] = getattr(args, option)
    if args.min_size is not None:
        job.detector["min_size"] = args.min_size
    if args.max_size is not None:
        job.detector["max_size"] = args.max_size
    distributed = _init_distributed()
    control = Control()
    restore_interrupt = _stop_on_first_interrupt(control)
    progress = TerminalProgress()
    progress.start_heartbeat()  # in a log: never silent for longer than 30 s
    try:
        run_job(job, report=progress, control=control)
    except TrainingError as error:
        if error.kind == "config":  # settings that cannot be used: nothing was trained
            print(f"frcnn: error: {error}", file=sys.stderr)
            return 2
        print(f"frcnn: training stopped: {error}", file=sys.stderr)
        return 1
    finally:
        progress.close()
        restore_interrupt()
        if distributed:
            import torch.distributed as dist

            dist.destroy_process_group()
    return 0  # finished, or stopped as asked (Ctrl-C, --max-steps) with last.pt written


def _train_preset(args: argparse.Namespace):
    """The settings a new run starts from: --config's file, --preset's, or the preset chosen
    for the device and the project's training images (said on stderr)."""
    from .data.project import Project
    from .training.presets import choose_preset, find_preset, load_preset
    from .training.trainer import resolve_device

    if args.config:
        return load_preset(args.config)
    if args.preset:
        return find_preset(args.preset)
    with Project.open(args.project) as project:
        records = project.dataset("train")
    preset = choose_preset(resolve_device(args.device).type, records)
    print(f"settings: preset {preset.summary()} ({'; '.join(preset.reasons)}); --preset or "
          "--config for others", file=sys.stderr)
    return preset


def parse_duration(text: str) -> float:
    """Seconds in "90s", "10m", "1h", "1h30m" or a bare number of seconds. ArgumentTypeError
    for anything else."""
    import re

    match = re.fullmatch(r"\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*"
                         r"(?:(\d+(?:\.\d+)?)s?)?\s*", text)
    if not text.strip() or match is None or not any(match.groups()):
        raise argparse.ArgumentTypeError(f"{text!r}: give a duration such as 10m, 90s or 1h30m")
    hours, minutes, seconds = (float(part or 0) for part in match.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if total <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: a time budget must be above zero")
    return total


TRAIN_EXIT_CODES = """exit status:
  0  training finished (all epochs, or its --time-budget), or stopped as asked (Ctrl-C,
     --max-steps); last.pt holds the run, best.pt the best evaluated weights (after an
     evaluation)
  1  training failed (the loss became NaN, out of memory, unusable data); the last checkpoint
     written stays
  2  bad options, files or settings (nothing trained)"""


def _stop_on_first_interrupt(control):
    """Ctrl-C once: stop after the current step, with a checkpoint. Twice: stop at once.
    Returns a function that puts the previous handler back."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.getsignal(signal.SIGINT)

    def interrupted(_signal, _frame):
        print("\nstopping after this step (Ctrl-C again to stop at once)", file=sys.stderr)
        control.stop()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    signal.signal(signal.SIGINT, interrupted)
    return lambda: signal.signal(signal.SIGINT, previous)


def _init_distributed() -> bool:
    """Join the process group torchrun describes in the environment (WORLD_SIZE > 1)."""
    import os

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    import torch
    import torch.distributed as dist

    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend)
    return True


def _add_train_commands(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser(
        "train", help="train a detector on a project's train split, evaluating on val",
        epilog=TRAIN_EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
    train.add_argument("--project", type=Path, required=True)
    train.add_argument("--out", type=Path, required=True, help="the run folder")
    train.add_argument("--config", type=Path,
                       help='JSON: {"detector": {DetectorConfig fields}, "training": '
                            '{TrainSettings fields}}')
    train.add_argument("--preset", help="a preset by name (cpu, reference-gpu, demo-cpu, ...: "
                                        "the files in resources/configs) or file; default: "
                                        "the one chosen for the device and the data")
    train.add_argument("--time-budget", type=parse_duration, metavar="DURATION",
                       help="train this long (10m, 90s, 1h30m), final evaluation included: the "
                            "learning-rate schedule is laid out over the time; epochs no "
                            "longer limit the run")
    train.add_argument("--no-amp", action="store_true",
                       help="train in float32 (default: bfloat16 autocast on CPUs that have "
                            "it, float16 on CUDA)")
    train.add_argument("--backbone", help="efficientnet_lite0 (default: its ImageNet weights "
                                          "ship with the program), resnet18/34/50/101, "
                                          "mobilenet_v3_large")
    train.add_argument("--weights", default="imagenet",
                       help="imagenet (default), coco, none, or a weights/checkpoint file")
    train.add_argument("--device", default="auto", help="auto, cpu or cuda:N")
    train.add_argument("--epochs", type=int)
    train.add_argument("--batch-size", type=int)
    train.add_argument("--lr", type=float, help="default: 0.02 x global batch / 16")
    train.add_argument("--min-size", type=int, help="short side the images are resized to")
    train.add_argument("--max-size", type=int, help="longest side at most")
    train.add_argument("--max-steps", type=int, help="stop (with a checkpoint) after N steps")
    train.add_argument("--seed", type=int)
    train.add_argument("--resume", type=Path, help="continue from this checkpoint (last.pt)")
    train.add_argument("--distributed", action="store_true",
                       help="one of several processes started by torchrun (detected from its "
                            "environment anyway): torchrun --nproc_per_node=N -m "
                            "engine.training ...")
    train.set_defaults(func=_cmd_train)

    evaluate = commands.add_parser("eval", help="COCO metrics of a checkpoint on a project split")
    evaluate.add_argument("--checkpoint", type=Path, required=True)
    evaluate.add_argument("--project", type=Path, required=True)
    evaluate.add_argument("--split", default="val")
    evaluate.add_argument("--device", default="auto")
    evaluate.add_argument("--json", type=Path, help="also write the numbers here")
    evaluate.add_argument("--no-amp", action="store_true",
                          help="run in float32 (default: bfloat16 autocast on CPUs that have "
                               "it, float16 on CUDA)")
    evaluate.set_defaults(func=_cmd_eval)

    predict = commands.add_parser(
        "predict", help="a checkpoint's detections as COCO results (image_id, category_id, "
                        "bbox, score; plus file_name and category to read them)")
    predict.add_argument("images", nargs="+", type=Path)
    predict.add_argument("--checkpoint", type=Path, required=True)
    predict.add_argument("--out", type=Path, required=True, help="the results JSON")
    predict.add_argument("--device", default="auto")
    predict.add_argument("--score-thresh", type=float, help="drop detections below this")
    predict.add_argument("--no-amp", action="store_true",
                         help="run in float32 (default: bfloat16 autocast on CPUs that have "
                              "it, float16 on CUDA)")
    predict.add_argument("--coco", type=Path, metavar="GT.json",
                         help="take each image's image_id from this COCO file (e.g. from "
                              "frcnn export-annotations), so that pycocotools' loadRes and "
                              "COCOeval pair the results with it; default: 1, 2, ... in the "
                              "order the images are given")
    predict.set_defaults(func=_cmd_predict)


def _cmd_eval(args: argparse.Namespace) -> int:
    from .data.project import Project
    from .detector.checkpoint import load_detector
    from .detector.class_map import map_classes
    from .detector.precision import autocast_dtype
    from .training.data import DetectionDataset
    from .training.evaluation import evaluate_model
    from .training.trainer import resolve_device

    device = resolve_device(args.device)
    detector = load_detector(args.checkpoint, device)
    project = Project.open(args.project)
    try:
        records = project.dataset(args.split)
        categories = project.categories()
    finally:
        project.close()
    if not records:
        print(f"frcnn: error: the {args.split} split has no labeled images", file=sys.stderr)
        return 2
    class_map = map_classes(detector.classes, categories)
    names = {c.id: c.name for c in categories}
    unknown = class_map.unknown_categories(c for r in records for c in r.category_ids)
    if unknown:
        print(f"frcnn: note: the model was not trained on "
              f"{', '.join(sorted(names.get(c, str(c)) for c in unknown))}; "
              "those boxes are left out of the evaluation", file=sys.stderr)
    if class_map.unmapped:
        print(f"frcnn: note: no category of the project has the name of the model's class "
              f"{', '.join(class_map.unmapped_notes())}", file=sys.stderr)
    classes = class_map.project_classes()
    records = [_only_categories(r, set(class_map.to_category.values())) for r in records]
    dataset = DetectionDataset(records, classes,
                               input_check=detector.model.transform.size_check())
    print(f"evaluating {count(len(records), args.split + ' image')}...", file=sys.stderr)
    skipped: list = []
    result = evaluate_model(detector.model, dataset, classes, device=device, skipped=skipped,
                            autocast_dtype=autocast_dtype(device, False if args.no_amp else None))
    for item in skipped:
        print(f"skipped: {item.reason}", file=sys.stderr)
    if skipped:
        print(f"frcnn: note: {len(skipped)} of {len(records)} images left out of the evaluation "
              f"(above); the others are evaluated", file=sys.stderr)
    print(result.summary.rstrip())
    for name, ap in result.per_class.items():
        print(f"{name:24s} AP {ap:.3f}  AP50 {result.per_class_ap50[name]:.3f}")
    if args.json:
        args.json.write_text(json.dumps(result.to_dict(), indent=1))
    return 0


def _only_categories(record, category_ids: set[int]):
    from dataclasses import replace

    keep = [i for i, c in enumerate(record.category_ids) if c in category_ids]
    return replace(record, boxes=tuple(record.boxes[i] for i in keep),
                   category_ids=tuple(record.category_ids[i] for i in keep),
                   difficult=tuple(record.difficult[i] for i in keep))


def _cmd_predict(args: argparse.Namespace) -> int:

    from .detector.checkpoint import load_detector
    from .detector.precision import autocast_dtype
    from .training.trainer import resolve_device

    # Image ids first: an image missing from --coco fails before the model is loaded.
    image_ids = _coco_image_ids(args.coco, args.images) if args.coco else {
        path: number for number, path in enumerate(args.images, start=1)}
    device = resolve_device(args.device)
    detector = load_detector(args.checkpoint, device)
    names = detector.class_names()
    category_of = {c.class_id: c.category_id for c in detector.classes}
    dtype = autocast_dtype(device, False if args.no_amp else None)
    results, skipped = [], 0
    if args.score_thresh is not None:
        from dataclasses import replace

        # The user's threshold replaces the checkpoint's own (else a lower one would do nothing).
        settings = detector.model.roi_heads.detection_settings
        detector.model.roi_heads.detection_settings = replace(
            settings, score_thresh=args.score_thresh)
    for path in args.images:
        # One image that fails is reported by name and skipped: the others' results are kept.
        found = _detect_one(detector.model, path, device, dtype)
        if found is None:
            skipped += 1
            continue
        for box, label, score in zip(found["boxes"].tolist(), found["labels"].tolist(),
                                     found["scores"].tolist()):
            if args.score_thresh is not None and score < args.score_thresh:
                continue
            x0, y0, x1, y1 = box
            results.append({
                "image_id": image_ids[path], "file_name": str(path),
                "category_id": category_of.get(label, label),
                "category": names.get(label, str(label)), "score": round(score, 5),
                "bbox": [round(v, 2) for v in (x0, y0, x1 - x0, y1 - y0)],
            })
    args.out.write_text(json.dumps(results, indent=1))
    ids = f"image ids from {args.coco}" if args.coco else "image ids 1.. in the order given"
    print(f"{count(len(results), 'detection')} in {count(len(args.images) - skipped, 'image')} "
          f"-> {args.out} ({ids})"
          + (f"; {count(skipped, 'image')} skipped (above)" if skipped else ""))
    return 0 if not skipped else 1


def _detect_one(model, path: Path, device, dtype=None) -> dict | None:
    """The model's detections on one image file (under autocast in ``dtype`` unless None), or
    None after saying on stderr why this file could not be used (unreadable, an input the
    model cannot take, the model failing on it)."""
    import torch

    from .data.images import ImageLoadError, load_image_tensor
    from .detector.precision import autocast

    try:
        image = load_image_tensor(path).to(device)
    except ImageLoadError as error:
        print(f"skipped: {error}", file=sys.stderr)
        return None
    problem = model.input_problem(image)
    if problem is not None:
        print(f"skipped: {path}: {problem}", file=sys.stderr)
        return None
    try:
        with torch.inference_mode(), autocast(device, dtype):
            return model([image])[0]
    except (RuntimeError, ValueError) as error:
        print(f"skipped: {path}: the detector failed on this image ({error})", file=sys.stderr)
        return None


def _coco_image_ids(coco_file: Path, images: list[Path]) -> dict[Path, int]:
    """The id each image has in the COCO file ``coco_file``, matched by path (its
    ``file_name`` relative to the file's folder, or absolute), else by a file name that only
    one of its images has. ValueError naming an image it does not hold."""
    from .data.formats.common import load_json

    data = load_json(coco_file)
    entries = data.get("images") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise ValueError(f'{coco_file}: not a COCO file (no "images" list)')
    by_path: dict[str, int] = {}
    by_name: dict[str, list[int]] = {}
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("file_name"), str):
            continue
        name = entry["file_name"].replace("\\", "/")
        by_path[os.path.abspath(coco_file.parent / name)] = entry.get("id")
        by_name.setdefault(Path(name).name, []).append(entry.get("id"))
    ids = {}
    for path in images:
        image_id = by_path.get(os.path.abspath(path))
        if image_id is None and len(by_name.get(path.name, [])) == 1:
            image_id = by_name[path.name][0]
        if image_id is None:
            raise ValueError(f"{path}: not among the images of {coco_file} (by path, or by a "
                             f"file name only one of them has)")
        ids[path] = image_id
    return ids


def _add_inspect_command(commands: argparse._SubParsersAction) -> None:
    inspect = commands.add_parser(
        "inspect", help="trace one image through the detector: a picture per stage and counts")
    inspect.add_argument("image", type=Path)
    inspect.add_argument("--out", type=Path, required=True, help="folder for the PNGs and JSON")
    _add_model_options(inspect)
    inspect.add_argument("--box", type=_parse_box, action="append", metavar="X0,Y0,X1,Y1[,C]",
                         help="a ground-truth box (repeatable) to show anchor matching")
    inspect.add_argument("--save-trace", action="store_true",
                         help="also write trace.pt (load with engine.detector.load_trace)")
    for name in _INSPECT_OVERRIDES:
        kind = int if name.endswith(("_n", "_img")) else float
        inspect.add_argument(f"--{name.replace('_', '-')}", dest=name, type=kind)
    inspect.set_defaults(func=_cmd_inspect)


def _cmd_import(args: argparse.Namespace) -> int:
    from .data.formats import FormatError
    from .data.importing import import_annotations
    from .data.project import image_files

    try:
        report = import_annotations(args.project, args.source, format=args.format)
    except FormatError as error:
        # A folder of bare images is not an annotation source: say which command takes it.
        if (error.reason.startswith("no recognizable annotations") and args.source.is_dir()
                and next(image_files([args.source]), None) is not None):
            raise FormatError(error.file, f"{error.reason}. To add its images without "
                                          f"annotations: frcnn add-images {args.source} "
                                          f"--project {args.project}") from error
        raise
    print(report.summary())
    if args.verbose:
        for imported in report.files:
            print(f"  {imported}")
    for entry in report.entries:
        print(f"  {entry}")
    _say_not_done(args.project)
    return 0


def _say_not_done(folder: Path) -> None:
    """A note on the images training will leave out because they are not marked done."""
    from .data.project import Project

    with Project.open(folder) as project:
        by_status = project.info().by_status
    waiting = {status: n for status, n in by_status.items() if status != "done" and n}
    if waiting:
        counts = ", ".join(f"{n} {status}" for status, n in waiting.items())
        print(f"note: {sum(waiting.values())} images are not marked done ({counts}): training "
              f"and evaluation leave them out. To use them: frcnn set-status --project "
              f"{folder} --status done --all (or --split, --files)")


def _cmd_set_status(args: argparse.Namespace) -> int:
    from .data.project import Project

    with Project.open(args.project) as project:
        rows = project.images(split=args.split) if args.split else project.images()
        if args.files:
            wanted = _images_in_list(args.files, rows)
            rows = [row for row in rows if row.id in wanted]
        before = {}
        for row in rows:
            before[row.status] = before.get(row.status, 0) + 1
        project.set_status([row.id for row in rows], args.status)
    changed = sum(n for status, n in before.items() if status != args.status)
    where = f" of the {args.split} split" if args.split else ""
    listed = f" listed in {args.files}" if args.files else ""
    print(f"{changed} images{where}{listed} marked {args.status} "
          f"({len(rows) - changed} already were)")
    return 0


def _images_in_list(list_file: Path, rows) -> set[int]:
    """Ids of the images ``list_file`` names, one per line (a path as the project stores it,
    a path to the file, or a file name only one image has; blank lines and lines starting
    with # skipped). ValueError naming the lines that match no image."""
    by_path: dict[str, int] = {}
    by_name: dict[str, list[int]] = {}
    for row in rows:
        by_path[row.path] = row.id
        by_path[os.path.abspath(row.file)] = row.id
        by_name.setdefault(row.file.name, []).append(row.id)
    found, unknown = set(), []
    for number, line in enumerate(list_file.read_text(encoding="utf-8").splitlines(), 1):
        name = line.strip()
        if not name or name.startswith("#"):
            continue
        image_id = by_path.get(name, by_path.get(os.path.abspath(name)))
        if image_id is None and len(by_name.get(Path(name).name, [])) == 1:
            image_id = by_name[Path(name).name][0]
        if image_id is None:
            unknown.append(f"line {number} ({name})")
        else:
            found.add(image_id)
    if unknown:
        shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5
                                          else "")
        raise ValueError(f"{list_file}: no image of the project (in the chosen split) for "
                         f"{shown}; nothing was changed")
    return found


def _cmd_add_images(args: argparse.Namespace) -> int:
    from .data.paths import unreachable_reason
    from .data.project import Project, image_files

    # Checked before the project folder is created, so a typo creates nothing.
    for path in args.paths:
        reason = unreachable_reason(path)
        if reason is not None:
            raise ValueError(f"{path}: {reason}")
    if next(image_files(args.paths), None) is None:
        names = ", ".join(str(path) for path in args.paths)
        raise ValueError(f"{names}: no image files (.jpg, .png, ...) there")
    with Project.open_or_create(args.project) as project:
        result = project.add_images(args.paths, split=args.split)
    print(f"added {count(len(result.added), 'image')} to {args.project} (unlabeled); "
          f"{len(result.skipped)} left out")
    for entry in result.entries:
        print(f"  {entry}")
    return 0


def _cmd_export_annotations(args: argparse.Namespace) -> int:
    from .data.exporting import export_annotations

    written, entries = export_annotations(args.project, args.format, args.out,
                                          split=args.split, images=args.images)
    print(f"wrote {count(len(written), 'file')} to {args.out}")
    for entry in entries:
        print(f"  {entry}")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from .data.project import Project

    with Project.open(args.project) as project:
        if project.read_only:
            print(f"{project.folder}: opened read-only (this user may not write it)",
                  file=sys.stderr)
        project.check_missing()  # so that "missing" is what is on disk now
        print("\n".join(project.info().lines()))
    return 0


def _cmd_split(args: argparse.Namespace) -> int:
    from .data.project import Project

    ratios = {"train": args.train, "val": args.val, "test": args.test}
    ratios = {name: value for name, value in ratios.items() if value > 0}
    with Project.open(args.project) as project:
        counts = project.assign_splits(ratios, args.seed, only_unassigned=args.only_unassigned)
    print(", ".join(f"{name} {count}" for name, count in counts.items()))
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from .data.demo import write_demo_project
    from .data.project import Project

    folder = write_demo_project(args.out, count=args.count, seed=args.seed)
    with Project.open(folder) as project:
        info = project.info()
    print(f"demo project written to {folder}: {count(info.images, 'image')}, "
          f"{count(info.boxes, 'box')}, "
          f"train {info.by_split['train']}, val {info.by_split['val']}")
    return 0


def _add_project_commands(commands: argparse._SubParsersAction) -> None:
    from .data.formats import FORMATS
    imp = commands.add_parser(
        "import", help="import annotations into a project (created if absent)")
    imp.add_argument("source", type=Path, help="annotation file or folder")
    imp.add_argument("--project", type=Path, required=True, help="project folder")
    imp.add_argument("--format", choices=(*FORMATS, "auto"), default="auto")
    imp.add_argument("--verbose", action="store_true",
                     help="also print one line per image: added or merged, and its boxes")
    imp.set_defaults(func=_cmd_import)
    add = commands.add_parser(
        "add-images", help="add image files or folders (searched recursively) to a project "
                           "(created if absent) as unlabeled images, without annotations")
    add.add_argument("paths", nargs="+", type=Path, help="image files or folders")
    add.add_argument("--project", type=Path, required=True, help="project folder")
    add.add_argument("--split", choices=("train", "val", "test"),
                     help="put the new images in this split")
    add.set_defaults(func=_cmd_add_images)
    export = commands.add_parser(
        "export-annotations", help="write a project's annotations in a dataset format")
    export.add_argument("--project", type=Path, required=True, help="project folder")
    export.add_argument("--format", choices=FORMATS, required=True)
    export.add_argument("--out", type=Path, required=True, help="file or folder to write")
    export.add_argument("--split", choices=("train", "val", "test", "none"),
                        help="only this split (default: every image)")
    export.add_argument("--images", choices=("copy", "link", "none"), default="copy",
                        help="VOC and YOLO: copy the images into the layout (default), "
                             "hard-link them, or write labels only")
    export.set_defaults(func=_cmd_export_annotations)
    info = commands.add_parser("info", help="counts of a project's images, boxes and classes")
    info.add_argument("--project", type=Path, required=True, help="project folder")
    info.set_defaults(func=_cmd_info)
    split = commands.add_parser(
        "split", help="assign images to train/val/test at random (seeded), e.g. after import")
    split.add_argument("--project", type=Path, required=True)
    split.add_argument("--train", type=float, default=0.8)
    split.add_argument("--val", type=float, default=0.2)
    split.add_argument("--test", type=float, default=0.0)
    split.add_argument("--seed", type=int, default=0)
    split.add_argument("--only-unassigned", action="store_true",
                       help="leave images that already have a split alone")
    split.set_defaults(func=_cmd_split)
    from .data.annotations import STATUSES

    status = commands.add_parser(
        "set-status", help="set the status of images (only images marked done train and "
                           "evaluate): all of them, a split's, or those a file lists")
    status.add_argument("--project", type=Path, required=True, help="project folder")
    status.add_argument("--status", choices=STATUSES, required=True)
    which = status.add_mutually_exclusive_group(required=True)
    which.add_argument("--all", action="store_true", help="every image (of --split, if given)")
    which.add_argument("--files", type=Path, metavar="LIST.txt",
                       help="a text file naming images, one per line (the path as imported, "
                            "the file's path, or a file name)")
    status.add_argument("--split", choices=("train", "val", "test", "none"),
                        help="only images of this split")
    status.set_defaults(func=_cmd_set_status)
    demo = commands.add_parser("demo", help="write the demo project (generated shapes)")
    demo.add_argument("--out", type=Path, required=True, help="new or empty folder")
    demo.add_argument("--count", type=int, default=300, help="number of images (default 300)")
    demo.add_argument("--seed", type=int, default=0, help="same seed, same project")
    demo.set_defaults(func=_cmd_demo)


def _cmd_export_model(args: argparse.Namespace) -> int:
    from .export import export_model

    # Detections that differ from the checkpoint's raise ExportError (exit 2), files unwritten.
    export_model(args.checkpoint, args.format, args.out, images=args.image,
                 verify=not args.no_verify, report=print)
    return 0


def _add_export_command(commands: argparse._SubParsersAction) -> None:
    from .export import FORMATS

    export = commands.add_parser(
        "export-model", help="export a checkpoint for torchvision, TorchScript or ONNX, with a "
                             "model card (JSON) beside it")
    export.add_argument("--checkpoint", type=Path, required=True,
                        help="a checkpoint written by training")
    export.add_argument("--format", choices=FORMATS, required=True,
                        help="torchvision: a state dict for torchvision's Faster R-CNN; "
                             "torchscript and onnx: one image in, boxes/labels/scores out")
    export.add_argument("--out", type=Path, required=True,
                        help="the file to write; the card goes beside it as NAME.card.json")
    export.add_argument("--image", type=Path, action="append",
                        help="compare the export with the checkpoint on this image "
                             "(repeatable; default: a generated picture)")
    export.add_argument("--no-verify", action="store_true",
                        help="skip running the export to compare its detections")
    export.set_defaults(func=_cmd_export_model)


def _cmd_diagnose(args: argparse.Namespace) -> int:
    from .diagnosis.diagnose import DiagnosisSession
    from .diagnosis.report import write_diagnosis
    from .training.trainer import resolve_device

    overrides = {}
    for item in args.what_if or []:
        name, _, value = item.partition("=")
        if name not in _INSPECT_OVERRIDES or not value:
            print(f"frcnn: error: --what-if {item}: give NAME=VALUE with NAME one of "
                  f"{', '.join(_INSPECT_OVERRIDES)}", file=sys.stderr)
            return 2
        overrides[name] = float(value)
    session = DiagnosisSession.open(args.checkpoint, args.project, args.split,
                                    resolve_device(args.device))
    for note in session.notes:
        print(f"frcnn: note: {note}", file=sys.stderr)
    diagnosis = session.run()
    if overrides:
        session.what_if(**overrides)
    written = write_diagnosis(diagnosis, args.out, charts=not args.no_charts)
    base = diagnosis.base
    print(f"{args.split}: {len(base.images)} images, {base.funnel.boxes} boxes; "
          f"AP {base.evaluation.ap:.3f}, AP50 {base.evaluation.ap50:.3f}")
    for fate, boxes in base.funnel.total.items():
        if boxes:
            print(f"  {fate:16s} {boxes}")
    tide = base.tide
    print("TIDE dAP (AP points): " + ", ".join(f"{k} {v:.2f}" for k, v in tide.dap.items()))
    print(f"anchors: {diagnosis.advice.text}")
    for result in diagnosis.what_ifs:
        print(f"what-if {result.settings}: AP {result.evaluation.ap:.3f}, "
              f"AP50 {result.evaluation.ap50:.3f}")
    for path in written:
        print(f"wrote {path}")
    return 0


def _add_diagnose_command(commands: argparse._SubParsersAction) -> None:
    diagnose = commands.add_parser(
        "diagnose", help="where a checkpoint loses each box of a split, TIDE's error types, "
                         "the anchors' fit and a suggested training preset")
    diagnose.add_argument("--checkpoint", type=Path, required=True)
    diagnose.add_argument("--project", type=Path, required=True)
    diagnose.add_argument("--split", default="val")
    diagnose.add_argument("--out", type=Path, default=Path("diagnosis"),
                          help="folder for diagnosis.json, suggested-preset.json and the PNG "
                               "charts (default: ./diagnosis)")
    diagnose.add_argument("--device", default="auto")
    diagnose.add_argument("--what-if", action="append", metavar="NAME=VALUE",
                          help="also re-evaluate with this setting (repeatable), e.g. "
                               "rpn_nms_thresh=0.6 or box_score_thresh=0.3")
    diagnose.add_argument("--no-charts", action="store_true", help="write no PNG charts")
    diagnose.set_defaults(func=_cmd_diagnose)


def _cmd_rank(args: argparse.Namespace) -> int:
    from .active.ranking import RankingSettings, rank_project
    from .training.trainer import resolve_device

    settings = RankingSettings(batch_size=args.batch_size, class_measure=args.measure,
                               flip=not args.no_flip)
    ranking = rank_project(args.checkpoint, args.project, settings=settings,
                           device=resolve_device(args.device), progress=_progress_printer(
                               "ranking: analysed {done} of {total} images"))
    for skipped in ranking.skipped:
        print(f"skipped: {skipped.reason}", file=sys.stderr)
    shown = ranking.images[:args.top] if args.top else ranking.images
    if args.json:
        data = ranking.to_json()
        data["images"] = data["images"][:len(shown)]
        print(json.dumps(data, indent=1))
        return 0
    if not ranking.images:
        print("no unlabeled images to rank" + (" (all skipped, above)" if ranking.skipped
                                               else ""))
        return 0
    print(f"{'rank':>4}  {'score':>6}  {'uncert':>6}  {'divers':>6}  {'class':>6}  "
          f"{'flip':>6}  {'dets':>4}  image")
    for image in shown:
        flip = "-" if image.flip_disagreement is None else f"{image.flip_disagreement:.3f}"
        print(f"{image.rank:>4}  {image.score:6.3f}  {image.uncertainty:6.3f}  "
              f"{image.diversity:6.3f}  {image.class_uncertainty:6.3f}  {flip:>6}  "
              f"{image.detections:>4}  {image.path}")
    print(f"{count(len(ranking.images), 'unlabeled image')} ranked against "
          f"{count(ranking.references, 'labeled image')}", file=sys.stderr)
    return 0


def _progress_printer(text: str):
    """A ``progress(done, total)`` that writes ``text`` to stderr: in place on a terminal,
    else a line at every tenth of the way and at the end."""
    terminal = sys.stderr.isatty()
    last = [-1]

    def progress(done: int, total: int) -> None:
        tenth = done * 10 // max(total, 1)
        if terminal:
            print("\r" + text.format(done=done, total=total), end="\n" if done == total
                  else "", file=sys.stderr, flush=True)
        elif tenth != last[0] or done == total:
            last[0] = tenth
            print(text.format(done=done, total=total), file=sys.stderr, flush=True)

    return progress


def _add_rank_command(commands: argparse._SubParsersAction) -> None:
    rank = commands.add_parser(
        "rank", help="the unlabeled images most useful to label next, by a checkpoint's "
                     "uncertainty on each and how different each is (docs/active-learning.md)")
    rank.add_argument("--checkpoint", type=Path, required=True)
    rank.add_argument("--project", type=Path, required=True)
    rank.add_argument("--top", type=int, default=0, metavar="N",
                      help="print the N best only (default: all)")
    rank.add_argument("--json", action="store_true",
                      help="print JSON: every image's score and its parts, the skipped ones")
    rank.add_argument("--measure", choices=("entropy", "margin"), default="entropy",
                      help="the class-score uncertainty of a detection (default entropy)")
    rank.add_argument("--no-flip", action="store_true",
                      help="leave out the disagreement with the mirror image (half the time)")
    rank.add_argument("--batch-size", type=int, default=4)
    rank.add_argument("--device", default="auto")
    rank.set_defaults(func=_cmd_rank)


def _cmd_review(args: argparse.Namespace) -> int:
    from .active.held_out import review_kfold, review_split
    from .data.project import Project
    from .training.trainer import resolve_device

    if (args.checkpoint is None) == (args.folds is None):
        print("frcnn: error: give --checkpoint (a model that did not train on --split) or "
              "--folds K (train K models, each predicting the images it left out)",
              file=sys.stderr)
        return 2
    last = [""]

    def progress(fraction: float, text: str) -> None:
        line = f"review: {100 * fraction:3.0f}% {text}"
        if line != last[0]:
            last[0] = line
            print(line, file=sys.stderr, flush=True)

    if args.checkpoint is not None:
        queue = review_split(args.checkpoint, args.project, args.split,
                             device=resolve_device(args.device), confident=args.confident,
                             progress=progress)
    else:
        queue = review_kfold(args.project, folds=args.folds, budget_s=args.time_budget,
                             device=args.device, seed=args.seed, confident=args.confident,
                             progress=progress)
    for path, reason in queue.skipped:
        print(f"frcnn: note: {path}: skipped, {reason}", file=sys.stderr)
    for note in queue.notes:
        print(f"frcnn: note: {note}", file=sys.stderr)
    with Project.open(args.project, read_only=True) as store:
        names = {c.id: c.name for c in store.categories()}
    if args.json:
        print(json.dumps(queue.to_dict(names, args.top), indent=2))
        return 0
    print(f"{queue.source}: {count(len(queue.entries), 'entry')}, worst first; "
          f"{count(len(queue.flagged), 'image')} flagged by cleanlab; predictions from score "
          f"{queue.confident:.2f} count as confident")
    for entry in queue.top(args.top):
        data = entry.to_dict(names)
        label = "" if data["box"] is None else f" {data['class']} {data['box']}"
        if entry.kind == "swapped class":
            proposal = f" -> {data['proposal_class']}" if data["proposal_class"] else ""
        else:
            proposal = "" if data["proposal"] is None else \
                f" -> {data['proposal_class']} {data['proposal']} ({data['proposal_score']:.2f})"
        print(f"{entry.score:.4f}  {entry.kind:16s}  {entry.path}{label}{proposal}")
    return 0


def _confident(text: str) -> str | float:
    if text == "auto":
        return text
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a score between 0 and 1, or auto")
    return value


def _add_review_command(commands: argparse._SubParsersAction) -> None:
    review = commands.add_parser(
        "review", help="labels that look wrong (missing boxes, badly placed boxes, swapped "
                       "classes), scored by cleanlab from a model that did not train on them")
    review.add_argument("--project", type=Path, required=True)
    review.add_argument("--checkpoint", type=Path,
                        help="a model trained on another split than --split")
    review.add_argument("--split", default="val", help="the split to review with --checkpoint "
                                                       "(default: val)")
    review.add_argument("--folds", type=int, metavar="K",
                        help="instead of --checkpoint: train K models, each on the other folds "
                             "of the done images, to review them all (slow on a CPU)")
    review.add_argument("--time-budget", type=parse_duration, default=240.0, metavar="TIME",
                        help="training time per fold with --folds, e.g. 90s or 4m "
                             "(default: 4m)")
    review.add_argument("--seed", type=int, default=0, help="the folds' shuffle (default: 0)")
    review.add_argument("--confident", type=_confident, default="auto", metavar="SCORE|auto",
                        help="the score from which a prediction is sure enough to call a box "
                             "missing or of another class: 'auto' (default), the model's own "
                             "level (the score above which it finds 3 of 4 labelled boxes it "
                             "finds, between 0.5 and 0.95), or a number (cleanlab's: 0.95)")
    review.add_argument("--top", type=int, metavar="N", help="list only the N worst")
    review.add_argument("--json", action="store_true", help="print the queue as JSON")
    review.add_argument("--device", default="auto")
    review.set_defaults(func=_cmd_review)


# What `frcnn --help` says first: for the user of the command, not the code's reader.
HELP_DESCRIPTION = ("Faster R-CNN Workbench on the command line: import and export annotations, "
                    "train and evaluate a detector, look inside it on an image, export a "
                    "trained model.")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="frcnn", description=HELP_DESCRIPTION,
        epilog="`frcnn COMMAND --help` lists a command's options. The app: frcnn-workbench.")
    parser.add_argument("--max-image-pixels", type=_pixel_limit, metavar="N",
                        default=argparse.SUPPRESS,
                        help="refuse images of more pixels than this, a protection against "
                             "decompression bombs (default 89478485, or the environment "
                             "variable FRCNN_MAX_IMAGE_PIXELS; 'none': no limit)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("backbones", help="list the available backbones").set_defaults(
        func=_cmd_backbones
    )
    detect = commands.add_parser("detect", help="run a detector on images, print COCO results")
    detect.add_argument("images", nargs="+", type=Path)
    _add_model_options(detect)
    detect.add_argument("--out", type=Path, help="write the JSON here instead of printing it")
    detect.set_defaults(func=_cmd_detect)
    _add_inspect_command(commands)
    _add_train_commands(commands)
    _add_project_commands(commands)
    _add_export_command(commands)
    _add_diagnose_command(commands)
    _add_rank_command(commands)
    _add_review_command(commands)
    return parser


def _pixel_limit(text: str) -> int | None:
    if text.strip().lower() == "none":
        return None
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: give a number of pixels or none")
    return value


def _error_text(error: Exception) -> str:
    """``<path>: <reason>`` for a file system error (Python's own text is "[Errno 20] Not a
    directory: 'x'"); the engine's errors already name their file."""
    if isinstance(error, OSError) and error.strerror:
        where = error.filename if error.filename is not None else ""
        if error.filename2 is not None:
            where = f"{where} -> {error.filename2}"
        return f"{where}: {error.strerror}" if where != "" else error.strerror
    return str(error)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if hasattr(args, "max_image_pixels"):  # given: for this process and its workers
        from .data.images import set_max_image_pixels

        set_max_image_pixels(args.max_image_pixels)
    try:
        return args.func(args)
    except BrokenPipeError:
        # The reader of our output went away (frcnn ... | head): stop quietly, and keep Python
        # from failing again when it flushes stdout on exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    # The engine's user errors (ProjectError, FormatError, ImageLoadError, ExportError,
    # TrainingError ...) are ValueError or RuntimeError; OSError is a file or folder that
    # cannot be written or read. None is a bug, so none deserves a traceback.
    except (ValueError, RuntimeError, OSError) as error:
        print(f"frcnn: error: {_error_text(error)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
