"""Training curves from protocol events: live, from a run's files, and across a resume."""

from __future__ import annotations

from app.training.plots import LOSS_NAMES, CurveData, TrainingPlots


def _step(step, loss=1.0, lr=0.01):
    return {"event": "step", "step": step, "loss": loss, "lr": lr,
            "losses": dict.fromkeys(LOSS_NAMES, loss / 4)}


def test_steps_and_evaluations_make_the_curves():
    data = CurveData()
    assert data.add(_step(1, 4.0)) and data.add(_step(2, 2.0, lr=0.02))
    assert not data.add({"event": "checkpoint", "kind": "last"})
    assert data.add({"event": "eval", "epoch": 1, "AP": 0.25, "AP50": 0.5})
    assert data.steps == [1, 2] and data.losses["loss"] == [4.0, 2.0]
    assert data.losses["loss_classifier"] == [1.0, 0.5] and data.lr == [0.01, 0.02]
    assert (data.epochs, data.ap, data.ap50) == ([1], [0.25], [0.5])


def test_a_resumed_run_takes_its_steps_again_from_the_checkpoint():
    # Killed at step 5 with last.pt at step 3: steps 4 and 5 are trained again.
    events = [_step(s) for s in range(1, 6)]
    events += [{"event": "started", "resumed_at_step": 3}, _step(4, 0.5), _step(5, 0.4)]
    data = CurveData.from_events(events)
    assert data.steps == [1, 2, 3, 4, 5]
    assert data.losses["loss"] == [1.0, 1.0, 1.0, 0.5, 0.4]


def test_a_command_line_run_gets_its_evaluations_from_metrics():
    data = CurveData.from_events([], [{"epoch": 1, "AP": 0.1, "AP50": 0.3},
                                      {"epoch": 2, "AP": 0.2, "AP50": 0.4}])
    assert data.epochs == [1, 2] and data.ap50 == [0.3, 0.4]


def _xs(curve):
    x, _ = curve.getData()
    return [] if x is None else list(x)


def test_the_plots_draw_what_came(qtbot):
    plots = TrainingPlots()
    qtbot.addWidget(plots)
    for step in (1, 2, 3):
        plots.add_event(_step(step, loss=1.0 / step))
    plots.add_event({"event": "eval", "epoch": 1, "AP": 0.3, "AP50": 0.6})
    qtbot.waitUntil(lambda: _xs(plots.loss_curves["loss"]) == [1, 2, 3])
    x, y = plots.loss_curves["loss_box_reg"].getData()
    assert list(x) == [1, 2, 3] and list(y) == [0.25, 0.125, 1 / 12]
    assert list(plots.ap50_curve.getData()[1]) == [0.6]
    plots.clear()
    assert _xs(plots.lr_curve) == []
