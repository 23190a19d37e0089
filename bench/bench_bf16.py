"""bfloat16 autocast against float32 on this CPU: the speed of a training step and of
inference, and the validation AP of the same training in both.

    python bench/bench_bf16.py speed [--repeats 3]
    python bench/bench_bf16.py parity [--steps 60] [--data demo raccoon]

``speed``: EfficientNet-Lite0 at 320 px and resnet50 at 800 px (its own short side), on
``tests/data/raccoon-1.jpg`` and ``raccoon-10.jpg`` as one batch of two; per repeat a training
step (forward, backward, SGD) and an inference in float32 and in bf16, alternating, after one
untimed round. Medians and the ratio bf16 / float32 from the same process, so that a machine
others load slows both alike.

``parity``: the demo project with ``resources/configs/demo-cpu.json`` and the raccoon photos
(``../shared/data/raccoon``, their own train/test split) with ``raccoon-cpu.json``, each trained
with the same seed and the same number of steps (``--max-steps``) with ``--no-amp`` and without,
then ``frcnn eval`` of each ``last.pt`` in the precision it was trained in; prints both APs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.data.images import load_image_tensor  # noqa: E402
from engine.detector.build import build_model  # noqa: E402
from engine.detector.precision import autocast, cpu_supports_bf16  # noqa: E402

MODELS = (("efficientnet_lite0", 320, 512), ("resnet50", 800, 1333))


def _timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def speed(repeats: int) -> None:
    torch.set_flush_denormal(True)
    images = [load_image_tensor(ROOT / "tests" / "data" / name)
              for name in ("raccoon-1.jpg", "raccoon-10.jpg")]
    targets = [{"boxes": torch.tensor([[20.0, 30.0, 180.0, 190.0]]),
                "labels": torch.tensor([1])} for _ in images]
    print(f"load average before: {os.getloadavg()}; bf16 native: {cpu_supports_bf16()}")
    for backbone, min_size, max_size in MODELS:
        torch.manual_seed(0)
        model = build_model(backbone, num_classes=2, weights="none", min_size=min_size,
                            max_size=max_size)
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)

        def train(dtype, model=model, optimizer=optimizer):
            model.train()
            with autocast("cpu", dtype):
                loss = sum(model(images, targets).values())
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        def infer(dtype, model=model):
            model.eval()
            with torch.inference_mode(), autocast("cpu", dtype):
                model(images)

        times = {(kind, name): [] for kind in ("train", "infer") for name in ("fp32", "bf16")}
        for round_ in range(repeats + 1):
            for name, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
                for kind, function in (("train", train), ("infer", infer)):
                    seconds = _timed(lambda f=function, d=dtype: f(d))
                    if round_:
                        times[(kind, name)].append(seconds)
        for kind in ("train", "infer"):
            fp32 = statistics.median(times[(kind, "fp32")])
            bf16 = statistics.median(times[(kind, "bf16")])
            print(f"| {backbone} {min_size} px | {kind} | {fp32:.2f} s | {bf16:.2f} s | "
                  f"**{bf16 / fp32:.2f}** |")
    print(f"load average after: {os.getloadavg()}")


def parity(steps: int, data: str, keep: Path | None = None) -> None:
    frcnn = str(Path(sys.executable).with_name("frcnn"))
    config = ROOT / "resources" / "configs" / f"{data}-cpu.json"
    with tempfile.TemporaryDirectory(prefix="bench-bf16-") as temporary:
        folder = temporary if keep is None else str(keep)
        Path(folder).mkdir(parents=True, exist_ok=True)
        project = Path(folder) / data
        if data == "demo":
            subprocess.run([frcnn, "demo", "--out", str(project)], check=True)
        else:
            from bench.train_raccoon import build_project

            build_project(project)
        for name, flags in (("fp32", ["--no-amp"]), ("bf16", [])):
            run = Path(folder) / f"{data}-{name}"
            start = time.monotonic()
            subprocess.run([frcnn, "train", "--project", str(project), "--out", str(run),
                            "--config", str(config), "--max-steps", str(steps), "--seed", "0",
                            "--device", "cpu", *flags], check=True)
            took = time.monotonic() - start
            numbers = Path(folder) / f"{data}-{name}.json"
            subprocess.run([frcnn, "eval", "--checkpoint", str(run / "last.pt"), "--project",
                            str(project), "--device", "cpu", "--json", str(numbers), *flags],
                           check=True, stdout=subprocess.DEVNULL)
            result = json.loads(numbers.read_text())
            print(f"| {data}, {steps} steps | {name} | {result['AP']:.3f} | {result['AP50']:.3f} | "
                  f"{result['AP75']:.3f} | {took:.0f} s | load {os.getloadavg()[0]:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("speed", "parity"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--data", nargs="+", choices=("demo", "raccoon"), default=["demo"])
    parser.add_argument("--keep", type=Path, help="parity: keep the projects and runs here")
    args = parser.parse_args()
    if args.what == "speed":
        speed(args.repeats)
    else:
        for data in args.data:
            parity(args.steps, data, args.keep)


if __name__ == "__main__":
    main()
