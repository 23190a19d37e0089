"""Inference latency of the exports against our eager model, on this CPU, in one process.

Exports a checkpoint as TorchScript and ONNX (through ``engine.export.export_model``, which
also checks their detections against the checkpoint on the benchmark image), then times one
image through each: our model in eager PyTorch (the reference), the TorchScript module, and
the ONNX file in onnxruntime. Each repeat runs the three in a rotating order, so that load
drifts on a shared machine hit them alike; reported are medians and ratios to eager. The
torchvision format is left out: it is torchvision's own model, timed against ours in
``bench_detector.py``.

    python bench/bench_export.py [--checkpoint RUN/best.pt] [--min-size 800 --max-size 1333]
                                 [--image tests/data/raccoon-1.jpg] [--repeats 7] [--threads N]

Without ``--checkpoint`` the model is EfficientNet-Lite0 (the default backbone) with its
packaged ImageNet weights and seeded random heads, at ``--min-size``/``--max-size``.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.machine_info import cpu_model
from engine import build_model
from engine.data.images import load_image_tensor
from engine.detector.checkpoint import ClassInfo, load_detector, save_detector
from engine.export import export_model
from engine.export.onnx_format import onnxruntime_session
from engine.export.torchscript_format import load_torchscript

REPO = Path(__file__).resolve().parents[1]


def make_checkpoint(folder: Path, min_size: int, max_size: int) -> Path:
    torch.manual_seed(0)
    model = build_model("efficientnet_lite0", num_classes=3, weights="imagenet",
                        min_size=min_size, max_size=max_size)
    classes = [ClassInfo(1, "a"), ClassInfo(2, "b")]
    return save_detector(folder / "bench.pt", model, classes)


def cpu_name() -> str:
    return cpu_model() or platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--min-size", type=int, default=800)
    parser.add_argument("--max-size", type=int, default=1333)
    parser.add_argument("--image", type=Path, default=REPO / "tests" / "data" / "raccoon-1.jpg")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, help="torch and onnxruntime threads "
                                                    "(default: torch's default)")
    args = parser.parse_args()

    import onnxruntime

    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    folder = Path(tempfile.mkdtemp(prefix="bench_export_"))
    checkpoint = args.checkpoint or make_checkpoint(folder, args.min_size, args.max_size)
    image = load_image_tensor(args.image)

    exports = {}
    for fmt, name in (("torchscript", "model.ts"), ("onnx", "model.onnx")):
        started = time.perf_counter()
        result = export_model(checkpoint, fmt, folder / name, images=[args.image])
        exports[fmt] = result
        print(f"{fmt}: exported in {time.perf_counter() - started:.1f} s; "
              f"{result.verification.summary()}", flush=True)

    eager = load_detector(checkpoint).model
    scripted = load_torchscript(exports["torchscript"].model_path)
    session = onnxruntime_session(exports["onnx"].model_path, threads=threads)
    pixels = image.numpy()

    def run_eager():
        with torch.inference_mode():
            return len(eager([image])[0]["boxes"])

    def run_torchscript():
        with torch.inference_mode():
            return len(scripted(image)[0])

    def run_onnxruntime():
        return len(session.run(None, {"image": pixels})[0])

    runners = {"eager (ours)": run_eager, "TorchScript": run_torchscript,
               "onnxruntime": run_onnxruntime}
    detections = {name: run() for name, run in runners.items()}  # warm-up
    for run in runners.values():
        run()
    times: dict[str, list[float]] = {name: [] for name in runners}
    names = list(runners)
    for repeat in range(args.repeats):
        shift = repeat % len(names)
        for name in names[shift:] + names[:shift]:
            started = time.perf_counter()
            runners[name]()
            times[name].append(time.perf_counter() - started)

    config = eager.config
    print()
    print(f"Machine: {cpu_name()} ({torch.get_num_threads()} torch threads, onnxruntime "
          f"intra-op threads {threads}), no GPU used; Python {platform.python_version()}, "
          f"torch {torch.__version__}, torchvision {__import__('torchvision').__version__}, "
          f"onnxruntime {onnxruntime.__version__}.")
    print(f"Model: {config.backbone}, min_size {config.min_size}, max_size {config.max_size}; "
          f"checkpoint {checkpoint}; image {args.image.name} {tuple(image.shape[1:])}; "
          f"medians of {args.repeats}.")
    print()
    print("| runtime | time (ms) | / eager | detections |")
    print("|---|---|---|---|")
    reference = statistics.median(times["eager (ours)"])
    for name in names:
        median = statistics.median(times[name])
        print(f"| {name} | {median * 1000:.1f} | {median / reference:.2f} | "
              f"{detections[name]} |")


if __name__ == "__main__":
    main()
