"""Screenshot of the image list panel on a demo project: docs/screenshots/image-list.png.

    xvfb-run -s "-screen 0 1600x1000x24" .venv/bin/python docs/screenshots/make_image_list.py

A 40-image demo project with every status, a missing file and an unreadable one; the panel
filtered to the "train" split, its third image selected, once every thumbnail in view is
painted.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from PySide6.QtCore import QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from app.labeling.image_list import ImageListPanel  # noqa: E402
from engine.data.demo import write_demo_project  # noqa: E402
from engine.data.project import Project  # noqa: E402


def main() -> None:
    app = QApplication(sys.argv[:1])
    with tempfile.TemporaryDirectory() as work:
        folder = write_demo_project(Path(work) / "demo", count=40)
        with Project.open(folder) as project:
            project.set_status([2, 3, 9], "unlabeled")
            project.set_status([4, 12], "in_progress")
            project.set_status([6], "skipped")
            (folder / "images" / "demo_004.png").unlink()  # image 5
            project.check_missing()
            (folder / "images" / "demo_007.png").write_bytes(b"broken")  # image 8
            panel = ImageListPanel()
            panel.setWindowTitle("Images")
            panel.set_project(project)
            panel.split_filter.setCurrentIndex(panel.split_filter.findData("train"))
            panel.resize(340, 760)
            panel.show()
            panel.select_image(panel.model.shown_ids()[2])

            def grab_when_loaded() -> None:
                if not panel.loader.idle:
                    QTimer.singleShot(50, grab_when_loaded)
                    return
                out = Path(__file__).with_name("image-list.png")
                panel.grab().save(str(out))
                print(f"wrote {out}")
                app.quit()

            QTimer.singleShot(300, grab_when_loaded)
            app.exec()
            panel.shutdown()


if __name__ == "__main__":
    main()
