"""Does "most useful to label next" save labeling? A simulated labeling campaign.

    python bench/simulate_label_next.py                   # demo and raccoon, 5 rounds, 3 seeds
    python bench/simulate_label_next.py --quick           # a few minutes: checks it all runs
    python bench/simulate_label_next.py --datasets demo --rounds 6 --budget 3m
    python bench/simulate_label_next.py --combine A/label-next-simulation.json B/...json

The datasets may run side by side, one process of one thread per core (``OMP_NUM_THREADS=1``,
one ``--datasets`` and ``--out`` each); ``--combine`` then writes their results as one (into
``--out``). With ``--work DIR`` a run that is stopped (Ctrl-C, a closed session) goes on after
its last finished round when started again with the same options: the full run is hours of
training on a small CPU, so it may be made in pieces.

For each dataset, strategy and seed: start from ``--start`` labeled images drawn at random
(the same for both strategies of a seed), train with ``frcnn train --time-budget`` (the same
budget every round, the dataset's CPU preset, one evaluation at the end), note AP50 on the
dataset's fixed val split, then "label" ``--step`` more images (their boxes copied from the
ground truth) chosen by

- ``ranking``: :func:`engine.active.ranking.rank_images` with the round's model (best.pt),
  the top ``--step``;
- ``random``: a seeded random draw from the rest of the pool;

and train again from the initial weights, for ``--rounds`` rounds. Round 0 is the same for
both strategies of a seed (the same images): it is trained once and its model serves both.
Datasets: the demo (``engine.data.demo``: 300 images, train 240 as the pool, val 60) and the
raccoon photos (``../shared/data/raccoon``, see SOURCES.md: the 160 photos of its train CSV as
the pool, its 40 test photos as val; skipped when absent).

Writes ``OUT/label-next-simulation.csv`` (one row per dataset, strategy, seed, round),
``OUT/label-next-simulation.json`` (the rows, the settings, the machine, and per dataset the
saving: the fewest labeled images with which ranking's mean AP50 reaches random order's at its
last round, by linear interpolation, where its curve first does and where it does for good;
and ranking's AP50 minus random order's seed by seed; the same for AP, keys ending ``_ap``)
and ``OUT/label-next-simulation.png`` (mean AP50 and AP against labeled images, the band one
standard deviation). OUT is ``docs/`` by
default, a folder under ``bench/out`` with ``--quick``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from bench.machine_info import cpu_model
from engine.active.ranking import project_candidates, rank_images
from engine.cli import main as frcnn
from engine.cli import parse_duration
from engine.data.demo import write_demo_project
from engine.data.project import Project
from engine.detector.checkpoint import load_detector

ROOT = Path(__file__).resolve().parents[1]
RACCOON = ROOT.parent / "shared" / "data" / "raccoon"
PRESETS = {"demo": "demo-cpu.json", "raccoon": "raccoon-cpu.json"}
STRATEGIES = ("ranking", "random")


@dataclass
class Row:
    dataset: str
    strategy: str
    seed: int
    round: int
    labeled: int
    ap50: float
    ap: float
    train_s: float
    rank_s: float


# --- the datasets: a ground-truth project with a pool (train) and a val split --------------

def demo_source(folder: Path, count: int) -> Path:
    """The ground truth (kept from an earlier run with the same ``--work``: its image ids are
    the ones the kept rounds picked)."""
    source = folder / f"demo-{count}-source"
    if (source / "project.sqlite").is_file():
        return source
    return write_demo_project(source, count=count)


def raccoon_source(folder: Path) -> Path | None:
    if not RACCOON.is_dir():
        print(f"raccoon: {RACCOON} is absent; skipped", file=sys.stderr)
        return None
    source = folder / "raccoon-source"
    if (source / "project.sqlite").is_file():
        return source
    sys.path.insert(0, str(ROOT / "bench"))
    from train_raccoon import build_project

    shutil.rmtree(source, ignore_errors=True)  # a build that was stopped half way
    return build_project(source)


def pool_and_val(source: Project, pool_size: int | None, val_size: int | None
                 ) -> tuple[list[int], list[int]]:
    """The source's train images (the pool) and val images, each cut to a size when given
    (the first ones by id: the same on every run)."""
    pool = [r.image_id for r in source.dataset("train")]
    val = [r.image_id for r in source.dataset("val")]
    return pool[:pool_size] if pool_size else pool, val[:val_size] if val_size else val


class Campaign:
    """One working project: the val images labeled, the pool unlabeled without boxes until
    :meth:`label` copies an image's boxes from the source."""

    def __init__(self, source: Project, folder: Path, pool: list[int], val: list[int]) -> None:
        self.source = source
        self.folder = folder
        self.project = Project.create(folder)
        for category in source.categories():
            self.project.add_category(category.name, category.color, category_id=category.id)
        self.to_working: dict[int, int] = {}
        for image_id in pool + val:
            row = source.image(image_id)
            self.to_working[image_id] = self.project.insert_image(
                row.file, width=row.width, height=row.height, hash=row.hash)
        self.to_source = {w: s for s, w in self.to_working.items()}
        self.pool = list(pool)
        self.labeled: list[int] = []
        self._label(val, "val")

    def _label(self, source_ids: list[int], split: str) -> None:
        for image_id in source_ids:
            working = self.to_working[image_id]
            boxes = [b.to_record() for b in self.source.boxes(image_id)]
            if boxes:
                self.project.add_boxes(working, boxes)
            self.project.set_status([working], "done")
            self.project.set_split([working], split)

    def label(self, source_ids: list[int]) -> None:
        self._label(source_ids, "train")
        self.labeled += source_ids
        chosen = set(source_ids)
        self.pool = [i for i in self.pool if i not in chosen]

    def close(self) -> None:
        self.project.close()


def train(project: Path, run: Path, config: Path, budget: float, seed: int, device: str
          ) -> tuple[float, float, float]:
    """AP50, AP of the run's final evaluation, and its wall time."""
    shutil.rmtree(run, ignore_errors=True)  # a round that was stopped half way begins again
    start = time.perf_counter()
    code = frcnn(["train", "--project", str(project), "--out", str(run), "--config",
                  str(config), "--time-budget", f"{budget}s", "--seed", str(seed),
                  "--device", device])
    seconds = time.perf_counter() - start
    if code != 0:
        raise RuntimeError(f"training in {run} ended with exit status {code}")
    last = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    return float(last["AP50"]), float(last["AP"]), seconds


def choose(strategy: str, campaign: Campaign, checkpoint: Path, step: int,
           rng: random.Random, device: str) -> tuple[list[int], float]:
    """The next ``step`` source ids, and the seconds the choice took."""
    start = time.perf_counter()
    if strategy == "random":
        picked = rng.sample(campaign.pool, min(step, len(campaign.pool)))
    else:
        candidates, labeled, _skipped = project_candidates(campaign.project)
        ranking = rank_images(load_detector(checkpoint, device), candidates, labeled,
                              device=device)
        picked = [campaign.to_source[image.image_id] for image in ranking.images[:step]]
    return picked, time.perf_counter() - start


class Record:
    """What a campaign has done, kept in ``FOLDER/campaign.json`` after every round, so that a
    run stopped (or a session ended) goes on where it was with the same ``--work``: the rows
    and the images each round picked. Round 0's training is shared by the strategies of a seed:
    it is kept in ``seed{N}-round0.json`` beside them."""

    def __init__(self, path: Path, initial: list[int]) -> None:
        self.path = path
        self.rounds: list[dict] = []
        if path.is_file():
            data = json.loads(path.read_text())
            if data["initial"] == initial:  # else another --start or pool: begin again
                self.rounds = data["rounds"]
        self.initial = initial

    def add(self, row: Row, picked: list[int]) -> None:
        self.rounds.append({"row": asdict(row), "picked": picked})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps({"initial": self.initial, "rounds": self.rounds}))


def first_round(path: Path, initial: list[int], run: Path, train_it
                ) -> tuple[float, float, float, Path]:
    """Round 0 of a seed, trained once (into ``run``) on the ``initial`` images for both
    strategies; kept in ``path``. AP50, AP, seconds and the run folder."""
    if path.is_file():
        kept = json.loads(path.read_text())
        if kept["initial"] == initial:
            ap50, ap, seconds, run_folder = kept["result"]
            return ap50, ap, seconds, Path(run_folder)
    ap50, ap, seconds = train_it()
    path.write_text(json.dumps({"initial": initial, "result": [ap50, ap, seconds, str(run)]}))
    return ap50, ap, seconds, run


def run_dataset(name: str, source_folder: Path, args, work: Path, config: Path,
                rows: list[Row], saved) -> None:
    """Append one row per round to ``rows``, calling ``saved(rows)`` after each (the results
    so far are on disk when a long run is stopped; rounds already recorded under ``work`` are
    not run again, see :class:`Record`). A training that fails ends its campaign (said on
    stderr); the others go on."""
    with Project.open(source_folder) as source:
        pool, val = pool_and_val(source, args.pool, args.val)
        print(f"{name}: pool {len(pool)}, val {len(val)}", file=sys.stderr)
        for seed in range(args.seeds):
            initial = random.Random(seed).sample(pool, args.start)
            shared = work / name / f"seed{seed}-round0.json"
            for strategy in args.strategies:
                folder = work / name / f"{strategy}-seed{seed}"
                record = Record(folder / "campaign.json", initial)
                if len(record.rounds) == args.rounds:
                    rows += [Row(**done["row"]) for done in record.rounds]
                    saved(rows)
                    continue
                shutil.rmtree(folder / "project", ignore_errors=True)
                campaign = Campaign(source, folder / "project", pool, val)
                campaign.label(initial)
                for done in record.rounds:  # replayed: the same images labeled
                    rows.append(Row(**done["row"]))
                    campaign.label(done["picked"])
                try:
                    for round_number in range(len(record.rounds), args.rounds):
                        run = folder / f"round{round_number}"
                        train_it = partial(train, folder / "project", run, config,
                                           args.budget, seed, args.device)
                        try:
                            if round_number == 0:
                                ap50, ap, train_s, run = first_round(shared, initial, run,
                                                                     train_it)
                            else:
                                ap50, ap, train_s = train_it()
                        except (RuntimeError, OSError, ValueError) as error:
                            print(f"{name} {strategy} seed {seed}: {error}; campaign ended",
                                  file=sys.stderr)
                            break
                        rank_s, picked = 0.0, []
                        if round_number + 1 < args.rounds and campaign.pool:
                            # random order's draw for a round depends on the seed and the
                            # round only: the same when a stopped run goes on
                            rng = random.Random(f"{seed}-{round_number}")
                            picked, rank_s = choose(strategy, campaign, run / "best.pt",
                                                    args.step, rng, args.device)
                        row = Row(name, strategy, seed, round_number, len(campaign.labeled),
                                  ap50, ap, round(train_s, 1), round(rank_s, 1))
                        record.add(row, picked)
                        rows.append(row)
                        saved(rows)
                        print(f"RESULT {json.dumps(asdict(row))}", file=sys.stderr, flush=True)
                        if picked:
                            campaign.label(picked)
                finally:
                    campaign.close()


# --- results ------------------------------------------------------------------------------

METRICS = ("ap50", "ap")  # the AP50, and COCO's AP (0.50:0.95), which has room left
#                          where 20 labeled images already give an AP50 near 1


def curves(rows: list[Row], metric: str = "ap50") -> dict:
    """dataset -> strategy -> [(labeled, mean of ``metric``, standard deviation, runs)]."""
    out: dict = {}
    for row in rows:
        out.setdefault(row.dataset, {}).setdefault(row.strategy, {}).setdefault(
            row.labeled, []).append(getattr(row, metric))
    return {dataset: {strategy: [(n, statistics.fmean(v),
                                  statistics.pstdev(v) if len(v) > 1 else 0.0, len(v))
                                 for n, v in sorted(points.items())]
                      for strategy, points in by_strategy.items()}
            for dataset, by_strategy in out.items()}


def crossing(points: list, target: float, *, stays: bool) -> float | None:
    """The labeled images at which the mean curve ``points`` [(labeled, mean AP50, ...)]
    reaches ``target`` (linear interpolation between rounds): where it first does, or with
    ``stays`` where it does and never falls below again (a single lucky round does not count).
    None when it never does."""
    start = 0
    if stays:
        below = [i for i, point in enumerate(points) if point[1] < target]
        start = below[-1] + 1 if below else 0
    for i in range(start, len(points)):
        n, ap50 = points[i][0], points[i][1]
        if ap50 >= target:
            if i == 0:
                return float(n)
            n0, a0 = points[i - 1][0], points[i - 1][1]
            return n0 + (target - a0) / (ap50 - a0) * (n - n0)
    return None


def saving(ranking: list, random_order: list) -> dict | None:
    """Random order's mean (AP50 or AP) at its last round, the labeled images ranking needs for it
    (where its mean curve first reaches it, and where it reaches it for good; None when it
    never does) and the savings (1 - needed / random order's)."""
    if not ranking or not random_order or random_order[-1][1] <= 0:
        return None  # nothing learned: no level to reach
    target_n, target = random_order[-1][0], random_order[-1][1]
    if target <= random_order[0][1]:
        # random order's labels gained nothing over the first round (the first round is the
        # same for both): no saving can be measured against it
        return {"random_last_labeled": target_n, "random_last": target,
                "random_first": random_order[0][1], "saving": None,
                "why": "random order's last round is no better than the first"}
    first = crossing(ranking, target, stays=False)
    for_good = crossing(ranking, target, stays=True)
    return {"random_last_labeled": target_n, "random_last": target,
            "ranking_labeled_for_it": first,
            "saving": None if first is None else 1 - first / target_n,
            "ranking_labeled_for_it_for_good": for_good,
            "saving_for_good": None if for_good is None else 1 - for_good / target_n}


def paired_differences(rows: list[Row], metric: str = "ap50") -> dict:
    """dataset -> labeled -> ranking's ``metric`` minus random order's, seed by seed (the same
    first images and training seed): the mean, the standard deviation and the values."""
    by_key = {(r.dataset, r.strategy, r.seed, r.labeled): getattr(r, metric) for r in rows}
    out: dict = {}
    for (dataset, strategy, seed, labeled), ap50 in sorted(by_key.items()):
        other = by_key.get((dataset, "random", seed, labeled))
        if strategy == "ranking" and other is not None:
            out.setdefault(dataset, {}).setdefault(labeled, []).append(round(ap50 - other, 4))
    return {dataset: {n: {"mean": statistics.fmean(v),
                          "sd": statistics.pstdev(v) if len(v) > 1 else 0.0, "per_seed": v}
                      for n, v in by_n.items()}
            for dataset, by_n in out.items()}


def plot(by_metric: dict, path: Path) -> None:
    """One row of charts per metric (AP50, AP), one column per dataset."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(by_metric["ap50"])
    figure, axes = plt.subplots(len(METRICS), len(datasets),
                                figsize=(5.5 * len(datasets), 4 * len(METRICS)), squeeze=False)
    for row_axes, metric in zip(axes, METRICS):
        for axis, dataset in zip(row_axes, datasets):
            draw(axis, by_metric[metric][dataset], dataset,
                 "AP50 on val" if metric == "ap50" else "AP (0.50:0.95) on val")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def draw(axis, summary: dict, dataset: str, ylabel: str) -> None:
    """Mean curve of each strategy, the band one standard deviation."""
    for strategy, points in summary.items():
        n = [p[0] for p in points]
        mean = [p[1] for p in points]
        sd = [p[2] for p in points]
        label = "most useful next (ranking)" if strategy == "ranking" else "random order"
        axis.plot(n, mean, marker="o", label=label)
        axis.fill_between(n, [m - s for m, s in zip(mean, sd)],
                          [m + s for m, s in zip(mean, sd)], alpha=0.2)
    axis.set_title(dataset)
    axis.set_xlabel("labeled images")
    axis.set_ylabel(ylabel)
    axis.grid(alpha=0.3)
    axis.legend()


def this_machine() -> dict:
    return {"platform": platform.platform(), "cpu": cpu_model(), "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "load_average": os.getloadavg()}


def write_results(rows: list[Row], settings: dict, out: Path, *, plot_it: bool = True,
                  machine: dict | list | None = None) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "label-next-simulation.csv", "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(asdict(rows[0])))
        writer.writeheader()
        writer.writerows(asdict(row) for row in rows)
    by_metric = {metric: curves(rows, metric) for metric in METRICS}
    data = {"settings": settings, "machine": machine or this_machine()}
    for metric in METRICS:  # "curves", "savings", ... for AP50; "curves_ap", ... for AP
        suffix = "" if metric == "ap50" else f"_{metric}"
        data["curves" + suffix] = by_metric[metric]
        data["savings" + suffix] = {
            dataset: saving(by.get("ranking", []), by.get("random", []))
            for dataset, by in by_metric[metric].items()}
        data["ranking_minus_random" + suffix] = paired_differences(rows, metric)
    data["rows"] = [asdict(row) for row in rows]
    (out / "label-next-simulation.json").write_text(json.dumps(data, indent=1, default=str))
    if plot_it:
        plot(by_metric, out / "label-next-simulation.png")
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", choices=("demo", "raccoon"),
                        default=["demo", "raccoon"])
    parser.add_argument("--strategies", nargs="+", choices=STRATEGIES, default=list(STRATEGIES))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--start", type=int, default=20, help="labeled images to start with")
    parser.add_argument("--step", type=int, default=20, help="images labeled per round")
    parser.add_argument("--budget", type=parse_duration, default=180.0,
                        help="training time per round (default 3m)")
    parser.add_argument("--pool", type=int, help="at most this many pool images")
    parser.add_argument("--val", type=int, help="at most this many val images")
    parser.add_argument("--demo-images", type=int, default=300,
                        help="demo images generated (80%% pool, 20%% val)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--work", type=Path,
                        help="keep the projects and runs here (default: a temporary folder); "
                             "started again with the same --work, a stopped run goes on "
                             "after its last finished round")
    parser.add_argument("--out", type=Path, help="results folder (default docs/, or "
                                                 "bench/out/label-next-quick with --quick)")
    parser.add_argument("--combine", nargs="+", type=Path, metavar="JSON",
                        help="run nothing: write the rows of earlier runs' "
                             "label-next-simulation.json files as one result (datasets run "
                             "as separate processes, one per core)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 1 seed, 2 rounds from 8 images by 8, 20 s budget, "
                             "40 pool and 12 val images")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.rounds, args.start, args.step = 1, 2, 8, 8
        args.budget, args.pool, args.val, args.demo_images = 20.0, 40, 12, 60
    out = args.out or (ROOT / "bench" / "out" / "label-next-quick" if args.quick
                       else ROOT / "docs")
    if args.combine:
        return report(*combined(args.combine), out)
    settings = {k: v for k, v in vars(args).items() if k not in ("out", "combine")}
    with tempfile.TemporaryDirectory(prefix="label-next-") as temporary:
        work = args.work or Path(temporary)
        rows: list[Row] = []
        for name in args.datasets:
            source = (demo_source(work, args.demo_images) if name == "demo"
                      else raccoon_source(work))
            if source is None:
                continue
            preset = json.loads((ROOT / "resources" / "configs" / PRESETS[name]).read_text())
            preset["training"]["eval_every"] = 0  # one evaluation, at the end of the budget
            config = work / f"{name}-config.json"
            config.write_text(json.dumps(preset))
            run_dataset(name, source, args, work, config, rows,
                        lambda so_far: write_results(so_far, settings, out, plot_it=False))
    return report(rows, settings, None, out)


def combined(paths: list[Path]) -> tuple[list[Row], dict, list]:
    """The rows of several runs' JSON files, their settings by dataset and their machines."""
    rows: list[Row] = []
    settings: dict = {}
    machines: list = []
    for path in paths:
        data = json.loads(path.read_text())
        runs = [Row(**row) for row in data["rows"]]
        rows += runs
        for dataset in sorted({row.dataset for row in runs}):
            settings[dataset] = data["settings"]
        machines.append(data["machine"])
    return rows, settings, machines


def report(rows: list[Row], settings: dict, machine, out: Path) -> int:
    """Write the results (with the figure) and print the savings and curves."""
    if not rows:
        print("no dataset ran", file=sys.stderr)
        return 1
    data = write_results(rows, settings, out, machine=machine)
    for suffix, name in (("", "AP50"), ("_ap", "AP")):
        for dataset, result in data["savings" + suffix].items():
            print(f"{dataset} {name}: {json.dumps(result)}")
        for dataset, by in data["curves" + suffix].items():
            for strategy, points in by.items():
                print(f"{dataset} {strategy} {name}: " + ", ".join(
                    f"{n}: {m:.3f}±{s:.3f}" for n, m, s, _r in points))
    print(f"wrote {out}/label-next-simulation.{{csv,json,png}}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
