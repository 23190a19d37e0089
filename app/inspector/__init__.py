"""The pipeline inspector: step through the detector's stages on one image.

``view.InspectorView`` is the widget (the main window's "Inspect" tab); it composes
``stage_canvas.StageCanvas`` (the zoomable image with the stage drawn over it),
``controls.InspectionControls`` (the settings a rerun may change) and ``charts.StageChart``.
What each stage draws and what a click on it means is plain data built in ``stages`` (on
``scene``, ``hit_testing`` and ``ground_truth``): those modules never import Qt and are tested
without it, so this package imports the view only when asked for it.
"""

from __future__ import annotations


def __getattr__(name: str):
    if name == "InspectorView":
        from .view import InspectorView

        return InspectorView
    raise AttributeError(name)


__all__ = ["InspectorView"]
