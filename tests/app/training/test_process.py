"""How the end of a training worker is put into words."""

from __future__ import annotations

from app.training.process import describe_exit


def test_a_normal_end():
    assert describe_exit({"event": "finished", "step": 9}, 0).state == "finished"
    stopped = describe_exit({"event": "stopped", "reason": "requested", "step": 4}, 3)
    assert (stopped.state, stopped.message) == ("stopped", "stopped at step 4")


def test_an_error_the_worker_reported_keeps_its_words():
    result = describe_exit({"event": "error", "kind": "oom",
                            "message": "out of memory on cuda:0 at batch size 8: try "
                                       "--batch-size 4"}, 1, "ignored")
    assert result.state == "failed"
    assert result.message == ("Training failed (out of memory): out of memory on cuda:0 at "
                              "batch size 8: try --batch-size 4")


def test_a_silent_death_names_the_signal_or_the_status_and_the_log():
    killed = describe_exit(None, -9)
    assert killed.state == "failed" and killed.returncode == -9
    assert killed.message == ("The training process was killed with SIGKILL (by a user, or by "
                              "the system when memory ran out).")
    crashed = describe_exit(None, -11)
    assert crashed.message.startswith("The training process was killed with SIGSEGV.")
    status = describe_exit(None, 1, "Traceback ... / ImportError: no module named torch")
    assert status.message == ("The training process ended unexpectedly (exit status 1). Its "
                              "last words: Traceback ... / ImportError: no module named torch")
