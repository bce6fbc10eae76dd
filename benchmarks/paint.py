"""Paint benchmark of the desktop window: time per frame for 720p frames with 20 instances.

Usage::

    QT_QPA_PLATFORM=offscreen python benchmarks/paint.py [--frames 240] [--fps 60] [--instances 20]
        [--size 1280x720] [--window 1600x1000]

It feeds 1280 x 720 frames with 20 instances of the replay backend's generated scene
(``--replay synthetic``: masks, boxes, labels, track IDs, trails, and the 17-keypoint
skeleton on the persons) through the window's real code path, no model:

* worker side (the pipeline's output thread): :class:`streamseg_app.output.ViewOutput`
  filters, draws (``streamseg.render.render``) and converts each frame to BGRA;
* UI thread: the drawn frames are shown at 60 fps (the event loop runs between
  them, as in the app); per frame it times the window's frame slot (wrap the buffer
  as a QImage without a copy, update the track list, the position and the status bar)
  followed by every paint it triggers (``processEvents``: the video view scaled to its
  widget, the table, the labels). A second pass refreshes the track list on every
  frame (its worst case; by default it refreshes at most 20 times a second).

The window's frame rate with the replay backend is bounded by drawing plus painting:
reported as ``1000 / (worker median + UI median)`` fps, as if both ran on one core
(they run in two threads, so on two cores it is higher). Target: >= 30 fps at 720p.
The UI-thread time is what must stay under 8 ms for the view to keep up with a 60 fps
source (16.7 ms per frame, half of it left for the rest of the event loop); the worker
side runs in parallel in its own thread and bounds the frame rate separately. Also
reported: the view's paint alone at the window size, at 1:1 and at full HD.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402


def synthetic_frames(n: int, size: tuple[int, int], instances: int, seed: int = 0):  # noqa: ANN201
    """Yield ``n`` tracked FrameResults of the replay backend's generated scene on a textured background.

    The instances are :class:`~streamseg.backends.synthetic.SyntheticReplay`'s (what
    ``--backend replay --replay synthetic`` gives the window: 28x28 masks, keypoints on
    persons), tracked by ByteTrack as in the app, on a (H, W, 3) smooth random texture.
    """
    import cv2

    from streamseg.backends.synthetic import SyntheticReplay
    from streamseg.models.coco import COCO_CATEGORIES
    from streamseg.tracking import ByteTracker, TrackerConfig
    from streamseg.types import Frame, FrameResult

    h, w = size
    rng = np.random.default_rng(seed)
    base = cv2.resize(
        rng.integers(0, 255, (h // 16, w // 16, 3), dtype=np.uint8), (w, h), interpolation=cv2.INTER_CUBIC
    )
    scene = SyntheticReplay(categories=COCO_CATEGORIES, model_name="maskrcnn_resnet50_fpn", count=instances,
                            seed=seed)  # fmt: skip
    tracker = ByteTracker(TrackerConfig())
    for k in range(n):
        detections, _ = scene.infer(base)
        frame = Frame("bench", k, k / 60, time.monotonic(), base)
        yield FrameResult(frame, tracker.update(detections), {"decode": 1.0, "model": 10.0})


def summary(name: str, values: list[float]) -> str:
    v = np.asarray(values)
    p95 = np.percentile(v, 95)
    return f"{name:<46} median {np.median(v):6.2f} ms   p95 {p95:6.2f} ms   max {v.max():6.2f} ms"


def ui_pass(app, window, frames, count: int, fps: float) -> tuple[list[float], list[float], list[float]]:  # noqa: ANN001
    """Show ``count`` frames (cycled) at ``fps``; per frame: UI, slot and view paint times (ms)."""
    ui_ms, slot_ms, view_ms = [], [], []
    period = 1.0 / fps
    next_due = time.perf_counter()
    for k in range(count):
        while time.perf_counter() < next_due:  # idle until the frame is due, as at a real frame rate
            app.processEvents()
        next_due += period
        frame = frames[k % len(frames)]
        t0 = time.perf_counter()
        window._on_frame(frame)  # the UI thread's slot for a new frame
        t1 = time.perf_counter()
        app.processEvents()  # every paint the frame triggered
        t2 = time.perf_counter()
        window.view.repaint()  # the view's paint alone
        t3 = time.perf_counter()
        ui_ms.append((t2 - t0) * 1e3)
        slot_ms.append((t1 - t0) * 1e3)
        view_ms.append((t3 - t2) * 1e3)
    return ui_ms, slot_ms, view_ms


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=240, help="frames shown per pass")
    parser.add_argument("--distinct", type=int, default=60, help="distinct frames drawn (cycled)")
    parser.add_argument("--fps", type=float, default=60.0, help="rate frames are shown at")
    parser.add_argument("--instances", type=int, default=20)
    parser.add_argument("--size", default="1280x720", help="frame WxH (default 1280x720)")
    parser.add_argument("--window", default="1600x1000", help="window WxH (default 1600x1000)")
    args = parser.parse_args()
    fw, fh = (int(v) for v in args.size.split("x"))
    ww, wh = (int(v) for v in args.window.split("x"))

    from PyQt6.QtCore import QSettings
    from PyQt6.QtWidgets import QApplication
    from streamseg_app.output import ViewOutput
    from streamseg_app.tracks import TrackPanel
    from streamseg_app.window import MainWindow

    from streamseg.models.coco import COCO_CATEGORIES

    app = QApplication.instance() or QApplication(sys.argv[:1])
    with tempfile.TemporaryDirectory() as tmp:
        window = MainWindow(
            QSettings(str(Path(tmp) / "bench.ini"), QSettings.Format.IniFormat), score_thresh=0.5
        )
        window.resize(ww, wh)
        window.show()
        app.processEvents()
        window.tracks.set_categories(COCO_CATEGORIES)

        # Worker side, as in the pipeline's output thread. The frames for the UI passes are
        # drawn first; the timed pass keeps only the latest frame, as the window does
        # (holding every drawn frame would time the allocation of fresh memory instead).
        results = list(synthetic_frames(args.distinct + 5, (fh, fw), args.instances))
        frames: list = []
        output = ViewOutput(
            categories=COCO_CATEGORIES,
            on_frame=frames.append,
            options=window.controls.render_options(),
            pace=False,
        )
        for result in results:
            output.write(result, None)
        frames = frames[5:]
        latest: list = []
        output = ViewOutput(
            categories=COCO_CATEGORIES,
            on_frame=lambda frame: latest.__setitem__(slice(None), [frame]),
            options=window.controls.render_options(),
            pace=False,
        )
        worker_ms = []
        for k, result in enumerate(results):
            result = type(result)(result.frame, result.instances.replace(mask_crops=None), result.timings_ms)  # not pasted yet
            t0 = time.perf_counter()
            output.write(result, None)
            if k >= 5:  # warm-up
                worker_ms.append((time.perf_counter() - t0) * 1e3)

        ui_pass(app, window, frames, 30, args.fps)  # warm-up
        ui_ms, slot_ms, view_ms = ui_pass(app, window, frames, args.frames, args.fps)
        interval = TrackPanel.min_interval_s
        window.tracks.min_interval_s = 0.0  # worst case: the list refreshed on every frame
        ui_every_ms, _, _ = ui_pass(app, window, frames, args.frames, args.fps)
        window.tracks.min_interval_s = interval
        rect = window.view.rect()
        drawn_instances = len(frames[-1].instances)

        extra = {}
        last = frames[-1]
        for label, (vw, vh) in (
            ("1:1 (1280x720 view)", (fw, fh)),
            ("full HD view (1920x1080)", (1920, 1080)),
        ):
            window.view.setParent(None)
            window.view.resize(vw, vh)
            window.view.set_frame(last)
            window.view.show()
            app.processEvents()
            times = []
            for _ in range(60):
                t0 = time.perf_counter()
                window.view.repaint()
                times.append((time.perf_counter() - t0) * 1e3)
            extra[label] = times
        window.close()

    print(
        f"streamseg window paint benchmark: {args.frames} frames shown at {args.fps:g} fps, {fw}x{fh}, "
        f"{args.instances} instances ({drawn_instances} drawn at score >= 0.5), window {ww}x{wh} "
        f"(view {rect.width()}x{rect.height()}), Qt platform {os.environ.get('QT_QPA_PLATFORM')}, "
        f"{os.cpu_count()} CPUs"
    )
    print(summary("UI thread per frame (slot + all paints)", ui_ms))
    print("  (the track list's 20 Hz refresh runs from a timer between frames: see the worst case below)")
    print(summary("  frame slot (wrap, track list, status)", slot_ms))
    print(summary("  view paint alone (scaled to the window)", view_ms))
    for label, times in extra.items():
        print(summary(f"  view paint alone, {label}", times))
    print(summary("UI thread per frame, list every frame (worst)", ui_every_ms))
    print(summary("worker thread: filter + render + BGRA", worker_ms))
    worst = statistics.median(ui_every_ms)
    render_paint = statistics.median(worker_ms) + statistics.median(ui_ms)
    print(f"window fps, paint plus render on one core (worker + UI thread medians, {render_paint:.1f} ms): "
          f"{1000 / render_paint:.1f} fps (target >= 30)")
    ok = worst < 8.0
    print(
        f"target: UI thread under 8 ms per frame -> median {statistics.median(ui_ms):.2f} ms "
        f"(worst case {worst:.2f} ms, p95 {np.percentile(ui_every_ms, 95):.2f} ms): "
        f"{'met' if ok else 'NOT met'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
