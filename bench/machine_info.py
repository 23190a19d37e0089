"""The CPU's model name, as the benchmarks report the machine they ran on."""

from __future__ import annotations

from pathlib import Path


def cpu_model() -> str | None:
    """The ``model name`` line of ``/proc/cpuinfo`` (Linux); None where there is none."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None
