"""The training loop: what ``frcnn train``, the training worker and torchrun all run.

Makes a typed record per event (:mod:`engine.training.events`) and reports it through a
callback as its plain dict (the worker protocol's events, see :mod:`engine.training.worker`),
obeys pause and stop through a :class:`Control`, evaluates with pycocotools after every epoch
(announcing it and its progress), keeps ``last.pt`` and ``best.pt`` and appends
``metrics.jsonl`` in the run folder. ``last.pt`` holds the position (epoch, batch), the
optimizer and gradient-scaler state and the random state, so a resumed run takes exactly the
steps the uninterrupted run would have taken; ``best.pt`` (the weights of the highest AP, written
whenever an evaluation ran) holds the weights and settings only, a third of the size.

With a time budget (:class:`TrainSettings` ``time_budget_s``) the learning rate follows the
time spent (:meth:`TrainSettings.budget_lr_factor`), the run ends when the budget less the time
its final evaluation is expected to take is spent, then evaluates and finishes; a resumed run
keeps the budget and the time already spent (pauses do not count). Its steps depend on the
machine's speed, so it does not repeat step for step.

Training and evaluation run under autocast where :func:`engine.detector.precision.autocast_dtype`
says (bfloat16 on CPUs that have it, float16 on CUDA).

Under torchrun (``WORLD_SIZE`` > 1) every process trains on its share of each epoch's batches
with DistributedDataParallel (gradients averaged); process 0 alone evaluates, reports and
writes files.

An image whose file cannot be decoded is left out (of its batch, or of the evaluation) with a
``warning`` event naming it, once per run; training goes on.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist

from ..data.images import ImageLoadError
from ..data.project import TrainingRecord
from ..detector.build import build_model, model_from_config
from ..detector.checkpoint import ClassInfo, read_checkpoint, save_detector
from ..detector.config import DetectorConfig
from ..detector.precision import autocast, autocast_dtype, precision_name
from . import events
from .data import (
    DetectionDataset,
    TrainingBatches,
    UnreadableImage,
    as_is,
    epoch_batches,
    shard,
)
from .evaluation import EvalResult, evaluate_model
from .settings import TrainSettings

Report = Callable[[dict], None]
# Evaluation takes about this share of a training step's time per image (inference alone,
# measured 0.57-0.60 on EfficientNet-Lite0 and ResNet-50 in float32): the guess until a
# budgeted run has timed an inference itself.
EVAL_TIME_PER_TRAIN_TIME = 0.6
TIME_INFERENCE_AT_STEP = 2  # a budgeted run times one validation image after this step
EVAL_REPORT_EVERY_S = 10.0


class TrainingError(RuntimeError):
    """Training cannot go on. ``kind``: "nan", "oom", "data" or "config"."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class Control:
    """Pause, resume and stop requests from another thread (the worker's stdin reader, a test).
    The trainer looks at them between steps."""

    def __init__(self) -> None:
        self._running = threading.Event()
        self._running.set()
        self._stop = threading.Event()

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def stop(self) -> None:
        self._stop.set()
        self._running.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def wait_while_paused(self) -> None:
        self._running.wait()


def resolve_device(name: str = "auto") -> torch.device:
    """"auto" is the first CUDA GPU when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise TrainingError("config", f"device {name} was asked for, but CUDA is not available")
    return device


@dataclass
class _Position:
    epoch: int = 0
    batch: int = 0  # batches of this epoch already done
    step: int = 0  # steps done in all


class Trainer:
    """One training run; see the module docstring. ``init_weights``: "imagenet", "coco",
    "none" or a weights file, used unless ``resume`` names a checkpoint to continue (with its
    own settings unless ``settings`` are given)."""

    def __init__(
        self,
        *,
        train_records: Sequence[TrainingRecord],
        val_records: Sequence[TrainingRecord],
        classes: Sequence[ClassInfo],
        out_dir: str | os.PathLike,
        detector: DetectorConfig | None = None,
        settings: TrainSettings | None = None,
        init_weights: str = "imagenet",
        device: str = "auto",
        resume: str | os.PathLike | None = None,
        report: Report | None = None,
        control: Control | None = None,
        left_out: dict[str, dict[str, int]] | None = None,
    ) -> None:
        if not train_records:
            raise TrainingError(
                "data", "the train split has no labeled images (status done); give images a "
                "split first, e.g. frcnn split --project DIR --train 0.8 --val 0.2")
        if not classes:
            raise TrainingError("data", "the project has no categories to learn")
        self._settings_given = settings is not None
        self.left_out = dict(left_out or {})
        self.settings = settings or TrainSettings()
        self.classes = list(classes)
        # Kept in every checkpoint, for model cards: what the model was trained and tested on.
        self.data_counts = {"train": _split_counts(train_records, self.classes),
                            "val": _split_counts(val_records, self.classes)}
        self.out_dir = Path(out_dir)
        self.report = report or (lambda event: None)
        self.control = control or Control()
        self.world_size = dist.get_world_size() if dist.is_initialized() else 1
        self.rank = dist.get_rank() if dist.is_initialized() else 0
        self.device = resolve_device(device)
        if self.device.type == "cuda" and self.world_size > 1:
            self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.manual_seed(self.settings.seed)
        self.position = _Position()
        self.elapsed_s = 0.0  # time spent training and evaluating (over resumes), pauses not
        self._clock = time.perf_counter()  # when elapsed_s was last brought up to date
        self._last_rate: float | None = None  # images per second, lately
        # (seconds to run one validation image, seconds of training per image then)
        self._inference_s: tuple[float, float] | None = None
        self._weights_notes: list[str] = []  # what the initial weights left out, said at start
        resume_state = self._build_model(detector, init_weights, resume)
        fits = self.model.transform.size_check()  # too elongated: left out, like unreadable
        self.autocast_dtype = autocast_dtype(self.device, self.settings.amp)
        self.amp = self.autocast_dtype is not None
        self.train_data = DetectionDataset(train_records, self.classes,
                                           flip_probability=self.settings.flip_probability,
                                           seed=self.settings.seed, input_check=fits)
        self.val_data = DetectionDataset(val_records, self.classes, input_check=fits)
        self._val_checked = False  # unreadable validation images left out yet?
        self._warned: set[tuple[str, int]] = set()  # (split, image id) already reported
        self.optimizer = torch.optim.SGD(
            [p for p in self.model.parameters() if p.requires_grad],
            lr=self.settings.base_lr(self.world_size), momentum=self.settings.momentum,
            weight_decay=self.settings.weight_decay,
        )
        # Loss scaling keeps float16 gradients from underflowing; bfloat16 has float32's range.
        self.scaler = torch.amp.GradScaler(self.device.type,
                                           enabled=self.autocast_dtype == torch.float16)
        self.best_ap = -1.0
        if resume_state is not None:
            self._restore(resume_state)
        self.network = self.model
        if self.world_size > 1:
            self.network = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)

    # ------------------------------------------------------------------ setup

    def _build_model(self, detector: DetectorConfig | None, init_weights: str, resume):
        if resume is not None:
            data = read_checkpoint(resume)
            saved_classes = [ClassInfo(**c) for c in data["categories"]]
            if [c.name for c in saved_classes] != [c.name for c in self.classes]:
                raise TrainingError(
                    "config",
                    f"{resume} was trained on classes {[c.name for c in saved_classes]}, the "
                    f"project now has {[c.name for c in self.classes]}; start a new run instead",
                )
            self.model = model_from_config(DetectorConfig.from_dict(data["config"]))
            self.model.load_state_dict(data["model"])
            state = data.get("extra", {}).get("training")
            if state is None:
                raise TrainingError("config", f"{resume} holds no training state to resume")
            if "optimizer" not in state:
                raise TrainingError(
                    "config", f"{resume} holds the weights only (a best.pt), not the optimizer "
                              f"state a run continues from: resume from the run's last.pt")
            if not self._settings_given:
                self.settings = TrainSettings.from_dict(state["settings"])
            self.model.to(self.device)
            return state
        config = detector or DetectorConfig()
        options = {k: v for k, v in config.to_dict().items()
                   if k not in ("backbone", "num_classes")}
        self.model = build_model(config.backbone, num_classes=len(self.classes) + 1,
                                 weights=init_weights, report=self._weights_notes.append,
                                 **options)
        self.model.to(self.device)
        return None

    def _restore(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self.position = _Position(**state["position"])
        self.elapsed_s = float(state.get("elapsed_s", 0.0))
        self.best_ap = state["best_ap"]
        torch.set_rng_state(state["rng"])
        if self.device.type == "cuda" and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)

    # ------------------------------------------------------------------ running

    def steps_per_epoch(self) -> int:
        return len(self._batches(0))

    def _batches(self, epoch: int) -> list[list[int]]:
        batches = epoch_batches(
            self.train_data.aspect_ratios(), self.settings.batch_size,
            seed=self.settings.seed, epoch=epoch, group_by_aspect=self.settings.group_by_aspect,
        )
        return shard(batches, self.rank, self.world_size)

    def run(self) -> str:
        """Train to the end (returns "finished") or until stopped (returns "stopped"; a
        checkpoint of the position is written first). Raises :class:`TrainingError`."""
        # Gradients flowing back through RoIAlign into the feature maps underflow to denormal
        # floats, which x86 CPUs compute up to 100 times slower: treat them as zero.
        flushing = self.device.type == "cpu" and torch.set_flush_denormal(True)
        try:
            return self._run()
        except ImageLoadError as error:  # no image left to train on, or one went bad mid-run
            raise TrainingError("data", str(error)) from error
        finally:
            if flushing:
                torch.set_flush_denormal(False)

    def _run(self) -> str:
        settings = self.settings
        self.out_dir.mkdir(parents=True, exist_ok=True)
        per_epoch = self.steps_per_epoch()
        if per_epoch == 0:
            raise TrainingError("data", "too few training images for one batch per process")
        budget = settings.time_budget_s
        total = per_epoch * settings.epochs
        if settings.max_steps is not None:
            total = min(total, settings.max_steps)
        self._emit(events.Started(
            device=str(self.device), amp=self.amp, precision=precision_name(self.autocast_dtype),
            train_images=len(self.train_data), val_images=len(self.val_data),
            classes=[c.name for c in self.classes], epochs=settings.epochs,
            steps_per_epoch=per_epoch, total_steps=total if budget is None else 0,
            batch_size=settings.batch_size, world_size=self.world_size,
            lr=settings.base_lr(self.world_size), resumed_at_step=self.position.step,
            time_budget_s=budget, left_out=self.left_out))
        for note in self._weights_notes:
            self._emit(events.WarningEvent(kind="initial_weights", message=note,
                                           step=self.position.step))
        self.model.train()
        self._clock = time.perf_counter()
        self._resumed_at = self.position.step
        timer = _Throughput()
        while budget is not None or self.position.epoch < settings.epochs:
            epoch = self.position.epoch
            self.train_data.set_epoch(epoch)
            batches = self._batches(epoch)
            loader = torch.utils.data.DataLoader(
                TrainingBatches(self.train_data, batches), batch_size=None,
                sampler=range(self.position.batch, len(batches)),
                collate_fn=as_is, num_workers=self._workers(),
                # Its own generator: creating a loader must not draw from the global random
                # state, or a resumed run would draw differently from an uninterrupted one.
                generator=torch.Generator().manual_seed(self.settings.seed + epoch),
            )
            for batch in loader:
                self._warn_unreadable("train", self._gather(batch.unreadable))
                if self._should_stop():
                    return self._stopped()
                samples = batch.samples
                losses = self._step(samples, per_epoch)
                self.position.batch += 1
                self.position.step += 1
                images = len(samples) * self.world_size
                rate = self._last_rate = timer.tick(images)
                elapsed = self._tick()
                if budget is None:
                    eta = (total - self.position.step) * images / rate if rate else None
                else:
                    left = max(0.0, self._training_time(rate) - elapsed)
                    total = self.position.step + (round(left * rate / images) if rate else 0)
                    eta = budget - elapsed if rate else None
                self._emit(events.Step(
                    step=self.position.step, total_steps=total, epoch=epoch + 1,
                    batch=self.position.batch, batches=per_epoch, losses=losses,
                    loss=sum(losses.values()), lr=self.optimizer.param_groups[0]["lr"],
                    images_per_s=rate, eta_s=eta))
                if settings.max_steps is not None and self.position.step >= settings.max_steps:
                    return self._stopped(reason="max_steps")
                if budget is not None and self._budget_spent(rate):
                    return self._finish_budget(epoch)
                if budget is not None and self.position.step == TIME_INFERENCE_AT_STEP + \
                        self._resumed_at and self._steps_left(rate) > 20:
                    self._time_inference()
            self.position = _Position(epoch + 1, 0, self.position.step)
            evaluate = budget is None and (
                (settings.eval_every and (epoch + 1) % settings.eval_every == 0)
                or epoch + 1 == settings.epochs)
            result = self._evaluate(epoch + 1) if evaluate else None
            self._save_checkpoints(result)
            self._tick()
        return self._finished()

    # ------------------------------------------------------------------ time budget

    def _tick(self) -> float:
        """Add the time since the last tick to the run's elapsed time; returns it."""
        now = time.perf_counter()
        self.elapsed_s += now - self._clock
        self._clock = now
        return self.elapsed_s

    def _eval_reserve(self, rate: float | None) -> float:
        """Seconds kept from the budget for the final evaluation and checkpoints: the
        validation images at the time one took when timed (:meth:`_time_inference`), scaled
        by how much the training's speed changed since (a machine others load slows both), or
        at :data:`EVAL_TIME_PER_TRAIN_TIME` of a training image's time before that; at most
        half the budget."""
        if not rate:
            return 0.0
        per_image = self.world_size / rate  # seconds of one process's training per image
        if self._inference_s is not None:
            measured, train_then = self._inference_s
            eval_per_image = measured * per_image / train_then
        else:
            eval_per_image = per_image * EVAL_TIME_PER_TRAIN_TIME
        seconds = len(self.val_data) * eval_per_image + 2.0
        return min(seconds, 0.5 * self.settings.time_budget_s)

    def _time_inference(self) -> None:
        """Time the model on one validation image (the second of two runs: the first pays
        for warm-up), as the evaluation runs it; kept with the training's time per image."""
        if self.rank != 0 or len(self.val_data) == 0 or not self._last_rate:
            return
        try:
            sample = self.val_data[0]
        except ImageLoadError:
            return
        self.model.eval()
        try:
            with torch.inference_mode(), autocast(self.device, self.autocast_dtype):
                image = [sample.image.to(self.device)]
                self.model(image)
                start = time.perf_counter()
                self.model(image)
                seconds = time.perf_counter() - start
        finally:
            self.model.train()
        self._inference_s = (seconds, self.world_size / self._last_rate)

    def _training_time(self, rate: float | None) -> float:
        return self.settings.time_budget_s - self._eval_reserve(rate)

    def _budget_spent(self, rate: float | None) -> bool:
        spent = self.elapsed_s >= self._training_time(rate)
        if self.world_size > 1:
            # Every process ends at the same step: process 0's clock decides.
            flag = torch.tensor([1.0 if spent else 0.0], device=self._collective_device())
            dist.broadcast(flag, 0)
            spent = bool(flag.item() > 0)
        return spent

    def _steps_left(self, rate: float | None) -> float:
        """Steps the budget's training time still holds at the current speed."""
        if not rate:
            return math.inf
        per_step = self.settings.batch_size * self.world_size / rate
        return (self._training_time(rate) - self.elapsed_s) / per_step

    def _lr_factor(self, per_epoch: int) -> float:
        """The rate's multiplier for the step about to run. With a budget, taken at the time
        the step is expected to end, so that the step that spends the budget runs at the fully
        decayed rate."""
        settings = self.settings
        if settings.time_budget_s is None:
            return settings.lr_factor(self.position.step, per_epoch)
        self._tick()
        rate = self._last_rate
        ahead = settings.batch_size * self.world_size / rate if rate else 0.0
        fraction = (self.elapsed_s + ahead) / max(self._training_time(rate), 1e-9)
        if self.world_size > 1:
            # One rate for every process (their clocks differ a little): process 0's.
            shared = torch.tensor([fraction], device=self._collective_device())
            dist.broadcast(shared, 0)
            fraction = float(shared.item())
        return settings.budget_lr_factor(self.position.step, min(fraction, 1.0), per_epoch)

    def _finish_budget(self, epoch: int) -> str:
        """The budget's training time is spent: evaluate, write the checkpoints, finish."""
        result = self._evaluate(epoch + 1)
        self._save_checkpoints(result)
        self._tick()
        return self._finished()

    def _finished(self) -> str:
        self._emit(events.Finished(step=self.position.step,
                                   best_AP=self.best_ap if self.best_ap >= 0 else None))
        return "finished"

    # ------------------------------------------------------------------ steps

    def _workers(self) -> int:
        if self.settings.workers is not None:
            return self.settings.workers
        return 2 if self.device.type == "cuda" else 0

    def _should_stop(self) -> bool:
        if self.control.paused and not self.control.stop_requested:
            self._tick()
            self._emit(events.Paused(step=self.position.step))
            self.control.wait_while_paused()
            self._clock = time.perf_counter()  # the pause does not count
            if not self.control.stop_requested:
                self._emit(events.Resumed(step=self.position.step))
        stop = self.control.stop_requested
        if self.world_size > 1:
            # Every process stops at the same step, or the others would wait forever.
            flag = torch.tensor([1.0 if stop else 0.0], device=self._collective_device())
            dist.all_reduce(flag)
            stop = bool(flag.item() > 0)
        return stop

    def _gather(self, found: list[UnreadableImage]) -> list[UnreadableImage]:
        """What every process found in its batch of this step (collective under torchrun, so
        that process 0 reports the others' files too)."""
        if self.world_size == 1:
            return found
        count = torch.tensor([float(len(found))], device=self._collective_device())
        dist.all_reduce(count)
        if count.item() == 0:
            return []
        everyone: list[list[UnreadableImage] | None] = [None] * self.world_size
        dist.all_gather_object(everyone, found)
        return [item for part in everyone for item in part]

    def _warn_unreadable(self, split: str, found: list[UnreadableImage]) -> None:
        """One ``warning`` event per unreadable image and split in a run."""
        for item in found:
            if (split, item.image_id) in self._warned:
                continue
            self._warned.add((split, item.image_id))
            purpose = "training" if split == "train" else "evaluation"
            self._emit(events.WarningEvent(
                kind="unreadable_image", step=self.position.step,
                message=f"left out of {purpose}: {item.reason}",
                details={"split": split, "image_id": item.image_id, "path": item.path}))

    def _collective_device(self) -> torch.device:
        return self.device if dist.get_backend() == "nccl" else torch.device("cpu")

    def _step(self, samples, per_epoch: int) -> dict[str, float]:
        settings = self.settings
        lr = settings.base_lr(self.world_size) * self._lr_factor(per_epoch)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        images = [s.image.to(self.device, non_blocking=True) for s in samples]
        targets = [{k: v.to(self.device) for k, v in s.target.items() if k != "iscrowd"}
                   for s in samples]
        try:
            with autocast(self.device, self.autocast_dtype):
                losses = self.network(images, targets)
            loss = sum(losses.values())
            if not math.isfinite(float(loss.detach())):
                parts = ", ".join(f"{k} {float(v.detach()):.4g}" for k, v in losses.items())
                value = float(loss.detach())
                raise TrainingError(
                    "nan",
                    f"the loss became {value} at step {self.position.step + 1} (epoch "
                    f"{self.position.epoch + 1}; {parts}). Training stopped; the last "
                    f"checkpoint is intact. Try a lower learning rate than {lr:.4g} (--lr) or "
                    "check the boxes of this batch.",
                )
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.optimizer.zero_grad(set_to_none=True)
        except torch.OutOfMemoryError as error:
            smaller = max(1, settings.batch_size // 2)
            raise TrainingError(
                "oom",
                f"out of memory on {self.device} at batch size {settings.batch_size}: try "
                f"--batch-size {smaller}" + (" or a smaller --min-size" if smaller == 1 else ""),
            ) from error
        return {k: round(float(v.detach()), 6) for k, v in losses.items()}

    def _evaluate(self, epoch: int) -> EvalResult | None:
        if self.rank != 0 or len(self.val_data) == 0:
            return None
        if not self._val_checked:
            self.val_data, unreadable = self.val_data.without_unreadable()
            self._val_checked = True
            self._warn_unreadable("val", unreadable)
            if len(self.val_data) == 0:
                return None
        total = len(self.val_data)
        self._emit(events.Evaluating(epoch=epoch, step=self.position.step, done=0, total=total))
        reported = [time.perf_counter()]

        def progress(done: int) -> None:
            if time.perf_counter() - reported[0] >= EVAL_REPORT_EVERY_S or done == total:
                reported[0] = time.perf_counter()
                self._emit(events.Evaluating(epoch=epoch, step=self.position.step, done=done,
                                             total=total))

        result = evaluate_model(self.model, self.val_data, self.classes, device=self.device,
                                autocast_dtype=self.autocast_dtype, progress=progress)
        record = events.Evaluated(epoch=epoch, step=self.position.step,
                                  metrics=result.to_dict())
        with open(self.out_dir / "metrics.jsonl", "a", encoding="utf-8") as metrics:
            metrics.write(json.dumps(record.to_dict()) + "\n")
        self._emit(record)
        return result

    def _checkpoint_state(self, resumable: bool = True) -> dict:
        """What a checkpoint keeps of the run: the settings and position always; for a
        resumable one (last.pt) also the optimizer, scaler and random states."""
        state = {
            "settings": self.settings.to_dict(),
            "position": vars(self.position).copy(),
            "elapsed_s": round(self.elapsed_s, 3),
            "best_ap": self.best_ap,
        }
        if resumable:
            state.update({
                "optimizer": self.optimizer.state_dict(),
                "scaler": self.scaler.state_dict(),
                "rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state(self.device)
                if self.device.type == "cuda" else None,
            })
        return state

    def _save_checkpoints(self, result: EvalResult | None) -> None:
        if self.rank != 0:
            self._barrier()
            return
        best = self.out_dir / "best.pt"
        # best.pt: the highest AP so far, and there whenever an evaluation has run (even one
        # pycocotools could not score, AP -1: no boxes to find).
        improved = result is not None and (result.ap > self.best_ap or not best.is_file())
        if improved:
            self.best_ap = max(result.ap, self.best_ap)
        metrics = result.to_dict() if result else None
        last = save_detector(self.out_dir / "last.pt", self.model, self.classes,
                             extra={"training": self._checkpoint_state(),
                                    "metrics": metrics, "data": self.data_counts})
        self._emit(events.CheckpointSaved(kind="last", path=str(last),
                                          step=self.position.step))
        if improved:
            save_detector(best, self.model, self.classes,
                          extra={"training": self._checkpoint_state(resumable=False),
                                 "metrics": metrics, "data": self.data_counts})
            self._emit(events.CheckpointSaved(kind="best", path=str(best),
                                              step=self.position.step, AP=result.ap))
        self._barrier()

    def _barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()

    def _stopped(self, reason: str = "requested") -> str:
        self._tick()
        self._save_checkpoints(None)
        self._emit(events.Stopped(reason=reason, step=self.position.step))
        return "stopped"

    def _emit(self, record: events.TrainingEvent) -> None:
        if self.rank == 0:
            self.report(record.to_dict())


def _split_counts(records: Sequence[TrainingRecord], classes: Sequence[ClassInfo]) -> dict:
    """Images and boxes of one split, and boxes per class name."""
    names = {c.category_id: c.name for c in classes}
    per_class = dict.fromkeys(names.values(), 0)
    for record in records:
        for category_id in record.category_ids:
            if category_id in names:
                per_class[names[category_id]] += 1
    return {"images": len(records), "boxes": sum(len(r.boxes) for r in records),
            "boxes_per_class": per_class}


class _Throughput:
    """Images per second over the last steps (the first step, with its warm-up, excluded)."""

    def __init__(self, window: int = 20) -> None:
        self.window = window
        self.marks: list[tuple[float, int]] = []

    def tick(self, images: int) -> float | None:
        self.marks.append((time.perf_counter(), images))
        self.marks = self.marks[-(self.window + 1):]
        if len(self.marks) < 2:
            return None
        elapsed = self.marks[-1][0] - self.marks[0][0]
        counted = sum(n for _, n in self.marks[1:])
        return counted / elapsed if elapsed > 0 else None
