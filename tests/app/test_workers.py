"""The task runner the views use to keep long work off the GUI thread."""

from __future__ import annotations

import threading

from app.workers import TaskRunner


def test_tasks_run_off_the_gui_thread_in_order_and_report_back(qtbot):
    runner = TaskRunner()
    threads, results = [], []

    def work(value):
        threads.append(threading.current_thread())
        return value * 2

    for value in (1, 2, 3):
        runner.submit(work, value, on_done=results.append)
    qtbot.waitUntil(lambda: results == [2, 4, 6])
    assert threading.main_thread() not in threads
    assert not runner.busy
    runner.shutdown()


def test_progress_errors_and_cancel(qtbot):
    runner = TaskRunner()
    release = threading.Event()
    progress, errors, done = [], [], []

    def slow(task):
        task.progress(0.5, "half")
        release.wait(5)
        return "slow"

    def broken():
        raise ValueError("bad file")

    runner.submit(slow, on_done=done.append, on_progress=lambda f, t: progress.append((f, t)))
    runner.submit(broken, on_error=lambda error, details: errors.append((error, details)))
    dropped = runner.submit(lambda: "dropped", on_done=done.append)
    dropped.cancel()
    with qtbot.waitSignal(runner.busy_changed, timeout=5000) as idle:
        release.set()
    assert idle.args == [False]
    assert done == ["slow"] and progress == [(0.5, "half")]
    assert isinstance(errors[0][0], ValueError) and "bad file" in errors[0][1]
    runner.shutdown()
