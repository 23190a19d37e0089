"""The screenshots of docs/diagnosis.md: the Diagnose tab on a project and checkpoint.

    xvfb-run -s "-screen 0 1600x1000x24" python bench/diagnosis_screenshots.py \
        --project DIR --checkpoint CKPT [--out docs/screenshots]

Runs the diagnosis in the app as a user would (the Diagnose tab's worker), then grabs the
funnel and errors, the anchors with the suggestion, a what-if (``--what-if NAME=VALUE``), and
the inspector opened on the first box the detector lost.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PySide6.QtCore import QEventLoop, QSettings, QTimer
from PySide6.QtWidgets import QApplication

from app.main_window import MainWindow


def wait_for(signal, seconds: float) -> None:
    loop = QEventLoop()
    signal.connect(loop.quit)
    QTimer.singleShot(int(seconds * 1000), loop.quit)
    loop.exec()


def settle(ms: int = 500) -> None:
    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, required=True)
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    parser.add_argument("--what-if", default="box_score_thresh=0.5")
    args = parser.parse_args()
    app = QApplication.instance() or QApplication([])
    settings = QSettings(str(args.out / ".screenshots.ini"), QSettings.Format.IniFormat)
    window = MainWindow(args.project, settings=settings)
    window.resize(1500, 900)
    window.show()
    view = window.diagnose
    window.tabs.setCurrentWidget(view)
    view.set_checkpoints([args.checkpoint])
    view.start()
    wait_for(view.diagnosis_ready, 3600)
    settle()
    args.out.mkdir(parents=True, exist_ok=True)
    view.tabs.setCurrentIndex(0)
    view.fate_filter.setCurrentIndex(1)  # the boxes not detected
    settle()
    window.grab().save(str(args.out / "diagnose-funnel.png"))
    view.tabs.setCurrentIndex(1)
    settle()
    window.grab().save(str(args.out / "diagnose-anchors.png"))
    name, _, value = args.what_if.partition("=")
    view.tabs.setCurrentIndex(2)
    view.what_if_fields[name].setValue(float(value))
    view.start_what_if()
    wait_for(view.diagnosis_ready, 3600)
    settle()
    window.grab().save(str(args.out / "diagnose-what-if.png"))
    if view.box_rows():
        view.open_box(0)
        wait_for(window.inspector.trace_changed, 600)
        settle(1500)
        window.grab().save(str(args.out / "diagnose-inspector.png"))
    (args.out / ".screenshots.ini").unlink(missing_ok=True)
    window.close()
    app.quit()


if __name__ == "__main__":
    main()
