"""The installed Qt binding survives what the app does all day: many signal emissions.

PySide6 6.12.0 on Python 3.11 drops a reference to True on every ``Signal.emit`` and aborts the
process after about a thousand ("deallocating True or False"); pyproject.toml excludes it. Run
in a child process, so that a broken binding fails this test instead of killing the suite.
"""

from __future__ import annotations

import subprocess
import sys

EMITS = """
from PySide6.QtCore import QCoreApplication, QObject, Signal
app = QCoreApplication([])
class Source(QObject):
    number = Signal(int)
    anything = Signal(object)
source, seen = Source(), []
source.number.connect(seen.append)
source.anything.connect(seen.append)
for _ in range(20000):
    source.number.emit(1)
    source.anything.emit(None)
print(len(seen))
"""


def test_twenty_thousand_signals_do_not_corrupt_reference_counts():
    result = subprocess.run([sys.executable, "-c", EMITS], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "40000"
