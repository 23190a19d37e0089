"""``export_model``: a training checkpoint -> a file other runtimes load, a model card beside
it, and a check that the file gives the checkpoint's detections. What ``frcnn export-model``
and the GUI call.

Nothing half-written is left at ``out``: the model and its card are written beside it as
``*.partial`` files, run and compared with our model, and only then renamed into place
(together with the card). An error removes the partial files and leaves an existing ``out``
as it was.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..data.images import ImageLoadError, load_image_tensor
from ..detector.checkpoint import LoadedDetector, load_detector
from ..safe_load import load_torch_file
from . import model_card
from .compare import Verification, compare_detections
from .errors import ExportCancelledError, ExportError

FORMATS = ("torchvision", "torchscript", "onnx")
# Largest differences accepted between an export and our model (see compare.py): a tenth of
# a pixel and a thousandth in score. Measured differences are far below (docs/benchmarks.md).
BOX_TOL = 0.1
SCORE_TOL = 1e-3
# Plus this fraction of the box's longer side: box decoding's rounding grows with the box.
REL_BOX_TOL = 1e-4

Report = Callable[[str], None]
# on_step(number, total, text): step ``number`` (from 1) of ``total`` begins.
Steps = Callable[[int, int, str], None]


@dataclass
class ExportResult:
    """``model_path`` and ``card_path`` written; ``card`` the card's contents;
    ``verification`` the comparison with our model (None when not asked for); ``seconds``
    the time taken in all."""

    format: str
    model_path: Path
    card_path: Path
    card: dict[str, Any]
    verification: Verification | None
    seconds: float

    @property
    def paths(self) -> list[Path]:
        return [self.model_path, self.card_path]


def export_model(
    checkpoint: str | os.PathLike,
    format: str,
    out: str | os.PathLike,
    *,
    images: Sequence[str | os.PathLike] | None = None,
    verify: bool = True,
    report: Report | None = None,
    on_step: Steps | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> ExportResult:
    """Export ``checkpoint`` (written by training or :func:`save_detector`) as ``format``
    ("torchvision", "torchscript" or "onnx") to the file ``out``, with the model card at
    ``out``'s name + ``.card.json`` (``model.onnx`` -> ``model.card.json``).

    ``images``: pictures to compare the export with the checkpoint on (default: one
    generated picture); ``verify=False`` skips the comparison. ``report`` receives a line of
    text per step; ``on_step(number, total, text)`` is called as each of the steps (load,
    export, compare unless ``verify`` is off, write) begins. ``cancelled()`` is asked before
    every step and every compared image: True stops the export there with
    :class:`ExportCancelledError`, nothing written (a step under way, such as ONNX's tracing,
    finishes first). Raises :class:`ExportError` for a file that is not our checkpoint, an
    unknown format, a backbone the format cannot express, an unreadable image, or an export
    whose detections differ from the checkpoint's.
    """
    started = time.perf_counter()
    say = report or (lambda _line: None)
    total = 4 if verify else 3
    done_steps = [0]

    def step(text: str) -> None:
        if cancelled is not None and cancelled():
            raise ExportCancelledError("export cancelled; nothing was written")
        done_steps[0] += 1
        if on_step is not None:
            on_step(done_steps[0], total, text)
        say(text)

    checkpoint, out = Path(checkpoint), Path(out)
    if format not in FORMATS:
        raise ExportError(f"unknown export format {format!r}; choose one of {', '.join(FORMATS)}")
    if out.is_dir():
        raise ExportError(f"{out} is a folder; give the path of the file to write, e.g. "
                          f"{out / ('model' + _SUFFIXES[format])}")
    step(f"loading {checkpoint}")
    loaded = _load(checkpoint)
    exporter = _EXPORTERS[format]
    exporter.check(loaded, checkpoint)
    pictures = _verification_images(images, loaded) if verify else []

    card_path = model_card.card_path_for(out)
    partial = out.with_name(out.name + ".partial")
    card_partial = card_path.with_name(card_path.name + ".partial")
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        step(f"exporting as {format}")
        interface, loading = exporter.write(loaded, checkpoint, partial, out.name)
        verification = None
        if verify:
            step(f"comparing with the checkpoint on {len(pictures)} image(s)")
            verification = _verify(loaded, exporter, partial, loading, pictures, cancelled)
            say(verification.summary())
            if verification.skipped is None and not verification.ok:
                raise ExportError(
                    f"the {format} export of {checkpoint} does not give the checkpoint's "
                    f"detections ({verification.summary()}); nothing was written"
                )
        card = model_card.build_card(
            loaded, checkpoint=checkpoint, export_format=format, file_name=out.name,
            interface=interface, loading=loading,
        )
        card["verification"] = verification.to_dict() if verification else None
        step(f"writing {out.name} and its model card")
        model_card.write_card(card_partial, card)
        os.replace(partial, out)
        os.replace(card_partial, card_path)
    finally:
        partial.unlink(missing_ok=True)
        card_partial.unlink(missing_ok=True)
    say(f"wrote {out} and {card_path}")
    return ExportResult(format, out, card_path, card, verification,
                        time.perf_counter() - started)


def export_formats(checkpoint: str | os.PathLike) -> dict[str, str | None]:
    """Which formats ``checkpoint`` can be exported as: format -> None when it can, else the
    reason it cannot (e.g. torchvision's builders have no EfficientNet-Lite backbone). Loads
    the checkpoint (a second or two); raises :class:`ExportError` for a file that is not one."""
    checkpoint = Path(checkpoint)
    loaded = _load(checkpoint)
    reasons: dict[str, str | None] = {}
    for format in FORMATS:
        try:
            _EXPORTERS[format].check(loaded, checkpoint)
            reasons[format] = None
        except ExportError as error:
            reasons[format] = str(error)
    return reasons


def _load(checkpoint: Path) -> LoadedDetector:
    try:
        return load_detector(checkpoint)
    except FileNotFoundError as error:
        raise ExportError(f"checkpoint {checkpoint} does not exist") from error
    except ValueError as error:  # not ours, unsafe, damaged, or newer
        raise ExportError(str(error)) from error
    except RuntimeError as error:  # our format, but the weights do not fit the configuration
        raise ExportError(f"{checkpoint} could not be loaded: {error}") from error


def _verification_images(
    images: Sequence[str | os.PathLike] | None, loaded: LoadedDetector
) -> list[tuple[str, torch.Tensor]]:
    if not images:
        return [("generated picture", generated_picture(loaded.model.transform.min_size[-1]))]
    pictures = []
    for path in images:
        try:
            pictures.append((str(path), load_image_tensor(path)))
        except ImageLoadError as error:
            raise ExportError(f"cannot compare the export on {path}: {error}") from error
    return pictures


def generated_picture(short_side: int) -> torch.Tensor:
    """A fixed (3, short_side, 1.5 * short_side) picture in [0, 1]: smooth gradients with a
    few solid rectangles and mild noise, something for the backbone to respond to. Its size
    differs from the model's input size, so the resize is exercised too."""
    height, width = int(short_side) + 7, int(short_side * 1.5) + 3
    generator = torch.Generator().manual_seed(0)
    ys = torch.linspace(0, 1, height)[:, None].expand(height, width)
    xs = torch.linspace(0, 1, width)[None, :].expand(height, width)
    picture = torch.stack((xs, ys, 0.5 * (1 - xs) + 0.25 * ys))
    for _ in range(6):
        y0, x0 = (int(torch.randint(0, n // 2, (1,), generator=generator)) for n in (height,
                                                                                       width))
        y1, x1 = y0 + height // 4, x0 + width // 5
        picture[:, y0:y1, x0:x1] = torch.rand(3, 1, 1, generator=generator)
    picture += 0.03 * torch.randn(picture.shape, generator=generator)
    return picture.clamp(0, 1)


def _verify(loaded: LoadedDetector, exporter, path: Path, loading: dict,
            pictures: list[tuple[str, torch.Tensor]],
            cancelled: Callable[[], bool] | None = None) -> Verification:
    settings = loaded.model.roi_heads.detection_settings
    verification = Verification(runtime=exporter.runtime(), box_tol=BOX_TOL,
                                score_tol=SCORE_TOL)
    try:
        run = exporter.runner(path, loading)
    except ImportError as error:
        verification.skipped = f"{exporter.runtime()} is not installed ({error})"
        return verification
    for name, picture in pictures:
        if cancelled is not None and cancelled():
            raise ExportCancelledError("export cancelled; nothing was written")
        with torch.inference_mode():
            reference = loaded.model([picture])[0]
        exported = run(picture)
        verification.images.append(compare_detections(
            reference, exported, image=name, box_tol=BOX_TOL, score_tol=SCORE_TOL,
            score_thresh=settings.score_thresh,
            detections_per_img=settings.detections_per_img,
            rel_box_tol=REL_BOX_TOL, nms_thresh=settings.nms_thresh,
        ))
    if verification.ok and verification.compared == 0:
        # Nothing on either side: a check that could not have failed is no check.
        verification.skipped = (
            f"nothing was compared: the checkpoint detects nothing above its score threshold "
            f"{settings.score_thresh:g} on the {len(pictures)} check image(s), and neither "
            f"does the export; give images where it detects objects to check the export")
    return verification


# ----------------------------------------------------------------------------- the formats

_IMAGE_INPUT = {
    "name": "image",
    "dtype": "float32",
    "shape": "(3, H, W): one image, no batch dimension",
    "channels": "RGB",
    "range": "[0, 1] (8-bit values divided by 255)",
    "size": "any H and W: the module resizes and normalizes the image itself (see "
            "preprocessing), so give it the image as it is",
    "orientation": "as displayed: apply the EXIF orientation before (boxes refer to that "
                   "image)",
}
_TUPLE_OUTPUT = {"structure": "a tuple (boxes, labels, scores)", **model_card.OUTPUT}


class _Torchvision:
    suffix = ".pt"

    @staticmethod
    def runtime() -> str:
        import torchvision

        return f"torchvision {torchvision.__version__} FasterRCNN"

    @staticmethod
    def check(loaded: LoadedDetector, checkpoint: Path) -> None:
        from .torchvision_format import torchvision_recipe

        try:
            torchvision_recipe(loaded.model)
        except ExportError as error:
            raise ExportError(f"{checkpoint}: {error}") from error

    @staticmethod
    def write(loaded: LoadedDetector, checkpoint: Path, path: Path, file_name: str):
        from .torchvision_format import loading_code, save_torchvision

        recipe = save_torchvision(loaded.model, path)
        interface = {
            "input": {
                "what": "a list of images, each float32 (3, H, W), RGB, values in [0, 1], "
                        "any size",
                "resize_and_normalize": "done inside the model by torchvision's "
                                        "GeneralizedRCNNTransform, with the min_size, "
                                        "max_size, image_mean and image_std of loading.code",
                "orientation": _IMAGE_INPUT["orientation"],
            },
            "output": {"structure": "in eval mode, a list with one dict per image: "
                                    "{'boxes', 'labels', 'scores'}", **model_card.OUTPUT},
        }
        loading = {
            "file": "a state dict (torch.save), loadable with torch.load(weights_only=True)",
            "builder": recipe["builder"],
            "builder_kwargs": recipe["kwargs"],
            "backbone": recipe["backbone"],
            "code": loading_code(recipe, file_name),
            "needs": "torch and torchvision",
        }
        return interface, loading

    @staticmethod
    def runner(path: Path, loading: dict):
        from .torchvision_format import build_torchvision_model

        model = build_torchvision_model(
            {"backbone": loading["backbone"], "kwargs": loading["builder_kwargs"]})
        model.load_state_dict(load_torch_file(path, what="exported state dict"))
        model.eval()

        def run(picture: torch.Tensor) -> dict[str, torch.Tensor]:
            with torch.inference_mode():
                return model([picture])[0]

        return run


class _TorchScript:
    suffix = ".ts"

    @staticmethod
    def check(loaded: LoadedDetector, checkpoint: Path) -> None:
        """Every backbone exports in this format."""

    @staticmethod
    def runtime() -> str:
        return f"TorchScript, torch {torch.__version__}"

    @staticmethod
    def write(loaded: LoadedDetector, checkpoint: Path, path: Path, file_name: str):
        from .torchscript_format import save_torchscript

        save_torchscript(loaded.model, path)
        loading = {
            "code": "import torch, torchvision  # torchvision registers nms and roi_align\n"
                    f"model = torch.jit.load({file_name!r})\n"
                    "boxes, labels, scores = model(image)",
            "needs": "torch and torchvision (not this program)",
            "device": "saved for the CPU; model.to('cuda') with the image on the GPU is meant "
                      "to work but has not been tested",
        }
        return {"input": _IMAGE_INPUT, "output": _TUPLE_OUTPUT}, loading

    @staticmethod
    def runner(path: Path, loading: dict):
        from .torchscript_format import load_torchscript

        module = load_torchscript(path)

        def run(picture: torch.Tensor) -> dict[str, torch.Tensor]:
            with torch.inference_mode():
                boxes, labels, scores = module(picture)
            return {"boxes": boxes, "labels": labels, "scores": scores}

        return run


class _Onnx:
    suffix = ".onnx"

    @staticmethod
    def check(loaded: LoadedDetector, checkpoint: Path) -> None:
        """Every backbone exports in this format."""

    @staticmethod
    def runtime() -> str:
        try:
            import onnxruntime
        except ImportError:
            return "onnxruntime"
        return f"onnxruntime {onnxruntime.__version__}"

    @staticmethod
    def write(loaded: LoadedDetector, checkpoint: Path, path: Path, file_name: str):
        from .onnx_format import INPUT_NAMES, MAX_SIDE, MIN_SIDE, OPSET, OUTPUT_NAMES, save_onnx

        save_onnx(loaded.model, path)
        interface = {
            "input": {**_IMAGE_INPUT,
                      "size": f"any H and W from {MIN_SIDE} to {MAX_SIDE} pixels: the graph "
                              "resizes and normalizes the image itself (see preprocessing), so "
                              "give it the image as it is"},
            "output": _TUPLE_OUTPUT,
        }
        loading = {
            "opset": OPSET,
            "inputs": INPUT_NAMES,
            "outputs": OUTPUT_NAMES,
            "code": "import onnxruntime\n"
                    f"session = onnxruntime.InferenceSession({file_name!r})\n"
                    "boxes, labels, scores = session.run(None, {'image': image})  "
                    "# image: numpy float32 (3, H, W)",
            "needs": "an ONNX runtime with opset 18 (onnxruntime >= 1.14)",
        }
        return interface, loading

    @staticmethod
    def runner(path: Path, loading: dict):
        from .onnx_format import onnxruntime_session

        session = onnxruntime_session(path, threads=torch.get_num_threads())

        def run(picture: torch.Tensor) -> dict[str, torch.Tensor]:
            boxes, labels, scores = session.run(None, {"image": picture.numpy()})
            return {"boxes": torch.from_numpy(boxes), "labels": torch.from_numpy(labels),
                    "scores": torch.from_numpy(scores)}

        return run


_EXPORTERS = {"torchvision": _Torchvision, "torchscript": _TorchScript, "onnx": _Onnx}
_SUFFIXES = {name: exporter.suffix for name, exporter in _EXPORTERS.items()}
