"""Start to a trained model on the CPU, as a user would: the bare ``frcnn`` of this environment,
the settings it chooses for the device and the data, and the ETA's error along the way.

    python bench/train_cpu_preset.py demo [--out runs/bench-demo] [-- TRAIN OPTIONS]
    python bench/train_cpu_preset.py raccoon --time-budget 15m

``demo`` writes the demo project (``frcnn demo``); ``raccoon`` imports ``../shared/data/raccoon``
with its own train/test split (as ``bench/train_raccoon.py`` does). Then it runs ``frcnn train``
(no ``--config``: the preset chosen for the CPU and the project) and prints, as JSON: the wall
time from the command's start to its exit, the load average before and after (the machine may be
shared), the run's evaluations, its steps and precision, and the ETA's error: at each step
after the first tenth of the run, ``|time + eta - end| / (end - time)``, where ``end`` is when
the run said it finished.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def frcnn_command() -> str:
    """The ``frcnn`` script beside this Python (the environment's own)."""
    return str(Path(sys.executable).with_name("frcnn"))


def eta_errors(events: list[dict]) -> list[float]:
    """Relative ETA errors of the step events in the run's last attempt (see the module
    docstring)."""
    started = max(i for i, e in enumerate(events) if e["event"] == "started")
    run = events[started:]
    end = next(e["time"] for e in run if e["event"] in ("finished", "stopped"))
    begin = run[0]["time"]
    errors = []
    for event in run:
        if event["event"] != "step" or event.get("eta_s") is None:
            continue
        if event["time"] - begin < 0.1 * (end - begin):
            continue
        left = end - event["time"]
        if left > 0:
            errors.append(abs(event["time"] + event["eta_s"] - end) / left)
    return errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", choices=("demo", "raccoon"))
    parser.add_argument("--out", type=Path)
    parser.add_argument("train_options", nargs="*", help="after --: more frcnn train options")
    args, extra = parser.parse_known_args()
    out = args.out or ROOT / "runs" / f"bench-{args.data}"
    project = out / "project"
    if args.data == "demo":
        subprocess.run([frcnn_command(), "demo", "--out", str(project)], check=True)
    else:
        from bench.train_raccoon import build_project

        build_project(project)
    run = out / "run"
    command = [frcnn_command(), "train", "--project", str(project), "--out", str(run),
               *args.train_options, *extra]
    load_before = os.getloadavg()
    start = time.monotonic()
    code = subprocess.run(command).returncode
    wall = time.monotonic() - start
    load_after = os.getloadavg()
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    started = next(e for e in events if e["event"] == "started")
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    errors = eta_errors(events)
    steps = [e for e in events if e["event"] == "step"]
    result = {
        "command": " ".join(command[1:]), "exit": code, "wall_s": round(wall, 1),
        "load_before": [round(v, 2) for v in load_before],
        "load_after": [round(v, 2) for v in load_after],
        "cpu": _cpu_name(), "precision": started.get("precision"),
        "time_budget_s": started.get("time_budget_s"), "steps": len(steps),
        "images_per_s_last": steps[-1]["images_per_s"] if steps else None,
        "evaluations": [{k: m[k] for k in ("epoch", "step", "AP", "AP50", "AP75")}
                        for m in metrics],
        "eta_error_max": round(max(errors), 3) if errors else None,
        "eta_error_median": round(sorted(errors)[len(errors) // 2], 3) if errors else None,
    }
    print(json.dumps(result, indent=1))
    (out / "result.json").write_text(json.dumps(result, indent=1))


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip() + f" ({os.cpu_count()} cores)"
    except OSError:
        pass
    return f"{os.cpu_count()} cores"


if __name__ == "__main__":
    main()
