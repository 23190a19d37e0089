"""The stage canvas: clicks come back in image pixels at any zoom, wheel zoom keeps the point
under the cursor, a drag pans without clicking, and layers are painted where they belong."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QColor, QImage, QPainter
from PySide6.QtTest import QTest

from app.inspector.scene import BoxLayer, Heatmap, Scene, TextLabel
from app.inspector.stage_canvas import StageCanvas


def _canvas(qtbot, width=400, height=300) -> StageCanvas:
    canvas = StageCanvas()
    qtbot.addWidget(canvas)
    canvas.resize(width, height)
    image = QImage(200, 100, QImage.Format.Format_RGB888)
    image.fill(QColor("#808080"))
    canvas.set_image(image)
    canvas.show()
    return canvas


def test_fit_centres_the_image_and_clicks_report_image_pixels(qtbot):
    canvas = _canvas(qtbot)
    # 200x100 into 400x300 less an 8 px margin: zoom 1.92, centred.
    assert canvas.zoom == 384 / 200
    corner = canvas.image_to_widget(0, 0)
    assert (corner.x(), corner.y()) == (8.0, 150 - 100 * 1.92 / 2)
    with qtbot.waitSignal(canvas.clicked) as clicked:
        qtbot.mouseClick(canvas, Qt.MouseButton.LeftButton,
                         pos=canvas.image_to_widget(50, 25).toPoint())
    x, y = clicked.args
    assert abs(x - 50) < 1 and abs(y - 25) < 1


def test_wheel_zoom_keeps_the_point_under_the_cursor(qtbot):
    canvas = _canvas(qtbot)
    under = QPointF(100.0, 120.0)
    before = canvas.widget_to_image(under)
    canvas.zoom_by(2.0, under)
    after = canvas.widget_to_image(under)
    assert np.allclose(before, after)
    assert canvas.zoom == 2 * 384 / 200
    canvas.fit()
    assert canvas.zoom == 384 / 200


def test_a_drag_pans_and_is_not_a_click(qtbot):
    canvas = _canvas(qtbot)
    clicks = []
    canvas.clicked.connect(lambda x, y: clicks.append((x, y)))
    start = canvas.image_to_widget(0, 0)
    QTest.mousePress(canvas, Qt.MouseButton.LeftButton, pos=QPoint(100, 100))
    QTest.mouseMove(canvas, QPoint(130, 110))
    QTest.mouseRelease(canvas, Qt.MouseButton.LeftButton, pos=QPoint(130, 110))
    moved = canvas.image_to_widget(0, 0)
    assert (moved.x() - start.x(), moved.y() - start.y()) == (30.0, 10.0)
    assert clicks == []


def test_layers_heat_and_labels_are_painted_where_they_belong(qtbot):
    canvas = _canvas(qtbot)
    scene = Scene(layers=[BoxLayer(np.array([[20.0, 20.0, 80.0, 60.0]]), "#ff0000", width=3)],
                  heatmap=Heatmap(np.array([[0.0, 1.0]]), (100.0, 0.0, 200.0, 100.0), alpha=1.0),
                  labels=[TextLabel(150, 80, "label", "#00ff00")])
    canvas.set_scene(scene)
    picture = canvas.grab().toImage()
    edge = canvas.image_to_widget(50, 20).toPoint()
    assert QColor(picture.pixel(edge)).name() == "#ff0000"
    inside = canvas.image_to_widget(50, 40).toPoint()
    assert QColor(picture.pixel(inside)).name() == "#808080"
    # The heat map's right cell (value 1) is opaque yellow; its left cell (0) transparent.
    hot = canvas.image_to_widget(190, 10).toPoint()
    cold = canvas.image_to_widget(110, 10).toPoint()
    assert QColor(picture.pixel(hot)).name() == "#ffff00"
    assert QColor(picture.pixel(cold)).name() == "#808080"
    canvas.set_scene(None)
    assert QColor(canvas.grab().toImage().pixel(edge)).name() == "#808080"


def test_show_rect_fills_the_widget_with_that_part_of_the_image(qtbot):
    canvas = _canvas(qtbot)
    canvas.show_rect(10.0, 10.0, 50.0, 30.0)  # 40x20 into 400x300: zoom 10
    assert canvas.zoom == 10.0
    centre = canvas.image_to_widget(30.0, 20.0)
    assert (centre.x(), centre.y()) == (200.0, 150.0)


def test_a_large_image_zoomed_out_is_drawn_where_its_pixels_belong(qtbot):
    canvas = _canvas(qtbot)
    image = QImage(2000, 1000, QImage.Format.Format_RGB888)
    image.fill(QColor("#808080"))
    painter = QPainter(image)
    painter.fillRect(1000, 200, 400, 400, QColor("#ff0000"))
    painter.end()
    canvas.set_image(image)
    assert canvas.zoom < 1
    picture = canvas.grab().toImage()
    assert QColor(picture.pixel(canvas.image_to_widget(1200, 400).toPoint())).name() == "#ff0000"
    assert QColor(picture.pixel(canvas.image_to_widget(500, 400).toPoint())).name() == "#808080"
    outside = canvas.image_to_widget(1000, -30).toPoint()
    assert QColor(picture.pixel(outside)).name() == "#202020"
