"""Screenshots of the streamseg window for the README, rendered offscreen.

Usage (from the repository root)::

    python app/screenshots.py [--out docs/images/gui.png] [--frame 36] [--window 1360x820]

It writes a held-out demo-world clip to a temporary folder, opens it in the real
window with the bundled demo model (CPU), plays it to ``--frame``, pauses, selects
a person's track (highlighted in the view and in the list) and grabs the window.
Settings go to a temporary file: the user's own settings are not touched.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

REPO = Path(__file__).resolve().parents[1]


def _wait(app, condition, timeout_s: float, what: str) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        app.processEvents()
        time.sleep(0.005)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(REPO / "docs" / "images" / "gui.png"), help="PNG to write")
    parser.add_argument("--frame", type=int, default=24, help="pause at this frame of the clip")
    parser.add_argument("--window", default="1360x820", help="window size WxH")
    parser.add_argument("--clip-size", default="320x240", help="size WxH of the generated demo clip")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the model")
    args = parser.parse_args()
    ww, wh = (int(v) for v in args.window.split("x"))
    cw, ch = (int(v) for v in args.clip_size.split("x"))

    from PyQt6.QtCore import QSettings
    from streamseg_app.app import application
    from streamseg_app.config import ModelConfig
    from streamseg_app.window import MainWindow

    from streamseg.datasets.demo_export import write_clip

    app = application()
    with tempfile.TemporaryDirectory() as tmp:
        clip = write_clip(tmp, num_frames=args.frame + 12, size=(ch, cw), name="demo-world")["video"]
        window = MainWindow(
            QSettings(str(Path(tmp) / "gui.ini"), QSettings.Format.IniFormat),
            model=ModelConfig(name="demo", device="cpu"),
            score_thresh=0.5,
            output_dir=tmp,
            pace=False,
        )
        window.resize(ww, wh)
        window.show()
        window.open_source(str(clip))
        controller = window.controller
        _wait(
            app,
            lambda: (controller.position or 0) >= args.frame or bool(window.error_text()),
            args.timeout,
            "frames",
        )
        if window.error_text():
            print(f"screenshots: error: {window.error_text()}", file=sys.stderr)
            return 1
        controller.pause()
        _wait(
            app,
            lambda: not (controller.session and controller.session.alive and controller.session.playing),
            10,
            "pause",
        )
        settle = time.monotonic() + 1.5  # a frame already in flight when paused is still shown
        _wait(app, lambda: time.monotonic() > settle, 10, "the last frame")
        frame = window.view.frame
        assert frame is not None
        persons = [
            (float((b[2] - b[0]) * (b[3] - b[1])), int(t))
            for b, t, label in zip(
                frame.instances.boxes, frame.instances.track_ids, frame.instances.labels, strict=True
            )
            if t >= 0 and frame.result.frame.source_id and label == 1
        ]
        if persons:
            window.tracks.select_track(max(persons)[1])
        window.statusBar().clearMessage()
        app.processEvents()
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        if not window.grab().save(str(out), "PNG", 0):  # quality 0: the strongest PNG compression
            print(f"screenshots: error: cannot write {out}", file=sys.stderr)
            return 1
        window.close()
        controller.wait(30)
    print(f"screenshots: wrote {out} ({ww}x{wh}, frame {frame.index} of a {cw}x{ch} demo clip)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
