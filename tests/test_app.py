"""The desktop window on real input: a generated demo-world clip, the bundled demo model, real Qt widgets.

Qt runs offscreen (QT_QPA_PLATFORM=offscreen) and QStandardPaths is in test mode;
every window gets a QSettings file in tmp_path, so nothing touches the user's config.
No timed assertions: waits are qtbot.waitUntil with generous limits.
"""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import dataclasses
import json
import socket
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

pytest.importorskip("PyQt6.QtWidgets", reason="the desktop app needs PyQt6 (pip install 'streamseg[gui]')")

from PyQt6.QtCore import QSettings, QStandardPaths, Qt, QTimer  # noqa: E402
from streamseg_app.config import ModelConfig  # noqa: E402
from streamseg_app.output import ViewFrame  # noqa: E402
from streamseg_app.seekable import SeekableVideoSource  # noqa: E402
from streamseg_app.session import BackendCache, worker_threads  # noqa: E402
from streamseg_app.settings import load_state  # noqa: E402
from streamseg_app.window import MainWindow  # noqa: E402

from streamseg import cli  # noqa: E402
from streamseg.datasets.demo_export import write_clip  # noqa: E402
from streamseg.masks import paste_masks  # noqa: E402

QStandardPaths.setTestModeEnabled(True)

DEMO = ModelConfig(name="demo", device="cpu")
#: Generous limit for anything that waits on the model (a shared 2-core CPU).
WAIT_MS = 120_000


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 48-frame held-out demo-world clip (320 x 240, 24 fps, H.264)."""
    return write_clip(tmp_path_factory.mktemp("clip"), num_frames=48)["video"]


@pytest.fixture(scope="module")
def backends() -> BackendCache:
    """The demo model, loaded once for the module's windows."""
    cache = BackendCache()
    cache.get(DEMO)
    return cache


@pytest.fixture
def make_window(qtbot, tmp_path: Path, backends: BackendCache):  # noqa: ANN201
    """Build shown windows (settings in tmp_path); after the test, close them and wait for the workers."""
    windows: list[MainWindow] = []

    def make(**kwargs: object) -> MainWindow:
        settings = QSettings(str(tmp_path / "gui.ini"), QSettings.Format.IniFormat)
        kwargs.setdefault("model", DEMO)
        kwargs.setdefault("score_thresh", 0.3)
        kwargs.setdefault("output_dir", tmp_path / "out")
        kwargs.setdefault("backends", backends)
        window = MainWindow(settings, **kwargs)  # type: ignore[arg-type]
        qtbot.addWidget(window)
        window.show()
        qtbot.waitExposed(window)
        windows.append(window)
        return window

    yield make
    for window in windows:
        window.close()
    qtbot.waitUntil(lambda: not worker_threads(), timeout=WAIT_MS)


def wait_frames(qtbot, window: MainWindow, n: int) -> None:
    qtbot.waitUntil(lambda: window.controller.frames_shown >= n, timeout=WAIT_MS)


def wait_drawn(qtbot, window: MainWindow, predicate) -> ViewFrame:  # noqa: ANN001
    """Wait until the frame on screen satisfies ``predicate(frame)``; return it."""
    qtbot.waitUntil(lambda: window.view.frame is not None and predicate(window.view.frame), timeout=WAIT_MS)
    frame = window.view.frame
    assert frame is not None
    return frame


def grab_view(window: MainWindow, png: Path) -> tuple[np.ndarray, ViewFrame]:
    """Grab the view to ``png``, read it back; the frame area at frame size (RGB) and the frame shown."""
    frame = window.view.frame
    assert frame is not None
    assert window.view.grab().save(str(png))
    shot = cv2.cvtColor(cv2.imread(str(png)), cv2.COLOR_BGR2RGB)
    rect = window.view.image_rect()
    area = shot[rect.y() : rect.y() + rect.height(), rect.x() : rect.x() + rect.width()]
    h, w = frame.image.shape[:2]
    return cv2.resize(area, (w, h), interpolation=cv2.INTER_AREA), frame


def mask_interiors(frame: ViewFrame) -> np.ndarray:
    """(H, W) bool: inside a drawn instance's mask, 2 px away from its edge."""
    inst = frame.instances
    full = paste_masks(inst.masks, inst.boxes, inst.image_size).any(axis=0).astype(np.uint8)
    return cv2.erode(full, np.ones((3, 3), np.uint8), iterations=2).astype(bool)


def pixel_change(a: np.ndarray, b: np.ndarray, where: np.ndarray) -> float:
    """Median over ``where`` of the largest per-channel difference between two RGB images (grey levels)."""
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16)).max(axis=2)
    return float(np.median(diff[where]))


def unchanged(a: np.ndarray, b: np.ndarray, where: np.ndarray, tol: int = 10) -> float:
    """Fraction of the pixels in ``where`` whose channels all differ by at most ``tol`` between a and b."""
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16)).max(axis=2)
    return float((diff[where] <= tol).mean())


# ----------------------------------------------------------------------------- playing


def test_play_overlays_then_masks_off(qtbot, make_window, clip: Path, tmp_path: Path) -> None:
    window = make_window()
    window.open_source(str(clip))
    wait_frames(qtbot, window, 10)

    shown, frame = grab_view(window, tmp_path / "view.png")
    raw = frame.result.frame.image
    inside = mask_interiors(frame)
    assert len(frame.instances) >= 2 and inside.sum() > 500
    # The view shows the annotated frame, scaled: close to the drawing everywhere...
    assert np.abs(shown.astype(np.int16) - frame.image.astype(np.int16)).mean() < 8
    # ...and the overlays differ from the raw frame where instances are, not far from them.
    assert pixel_change(shown, raw, inside) > 20 and unchanged(shown, raw, inside) < 0.15
    boxes = frame.instances.boxes
    far = np.ones(inside.shape, bool)
    for x1, y1, x2, y2 in boxes.astype(int):
        far[max(0, y1 - 30) : y2 + 8, max(0, x1 - 8) : x2 + 8] = False
    if far.sum() > 1000:
        assert pixel_change(shown, raw, far) < 6

    window.controls.toggles["masks"].click()  # the check box, as a user clicks it
    off = wait_drawn(qtbot, window, lambda f: not f.options.masks)
    shown_off, frame_off = grab_view(window, tmp_path / "view-masks-off.png")
    assert frame_off is off and off.options.outlines  # only the fill is gone
    # Mask interiors are the raw frame again, but where outlines, boxes, labels and skeletons cross them
    # (labels whose place above the box is taken sit inside its top: 0.446 measured; with the fill on, ~0).
    assert unchanged(shown_off, frame_off.result.frame.image, mask_interiors(frame_off)) > 0.40
    assert window.status.state.text() == "playing" and window.status.fps.text().endswith("fps")


def test_threshold_classes_and_selection_act_on_the_paused_frame(
    qtbot, make_window, clip: Path, tmp_path: Path
) -> None:
    window = make_window()
    window.open_source(str(clip), paused=True)
    first = wait_drawn(qtbot, window, lambda f: True)
    assert first.index == 0 and not window.controller.playing
    rows = window.tracks.model.rows
    scores = sorted(r.score for r in rows)
    assert len(rows) == len(first.instances) >= 3 and all(s >= 0.3 for s in scores)
    assert scores[0] < scores[-1]

    thresh = round((scores[0] + scores[-1]) / 2, 2)
    window.controls.threshold.setValue(thresh)  # the spin box (the slider follows)
    redrawn = wait_drawn(qtbot, window, lambda f: f.options.score_thresh == thresh)
    assert redrawn.redraw and redrawn.index == first.index
    kept = window.tracks.model.rows
    assert [r for r in rows if r.score >= thresh] == kept  # the same frame, fewer rows
    assert 0 < len(kept) < len(rows)
    assert window.controls.threshold_slider.value() == round(thresh * 100)

    window.controls.threshold.setValue(0.3)
    wait_drawn(qtbot, window, lambda f: f.options.score_thresh == 0.3)
    names = {r.name for r in window.tracks.model.rows}
    hidden = sorted(names)[0]
    window.controls.set_class_checked(hidden, False)
    wait_drawn(qtbot, window, lambda f: f.options.classes is not None)
    assert {r.name for r in window.tracks.model.rows} == names - {hidden}

    # Selecting a track in the list highlights it in the view: the rest of the frame is shaded.
    before, _ = grab_view(window, tmp_path / "before.png")
    target = next(r for r in window.tracks.model.rows if r.track_id >= 0)
    row = [r.track_id for r in window.tracks.model.rows].index(target.track_id)
    window.tracks.table.selectRow(row)
    assert window.view.selected_track == target.track_id
    after, frame = grab_view(window, tmp_path / "after.png")
    box = frame.instances.boxes[list(frame.instances.track_ids).index(target.track_id)].astype(int)
    outside = np.ones(before.shape[:2], bool)
    outside[max(0, box[1] - 6) : box[3] + 6, max(0, box[0] - 6) : box[2] + 6] = False
    assert after[outside].mean() < 0.8 * before[outside].mean()
    inner = (slice(box[1] + 6, box[3] - 6), slice(box[0] + 6, box[2] - 6))
    assert np.abs(after[inner].astype(int) - before[inner].astype(int)).mean() < 3


def test_record_twenty_frames_to_mp4_and_jsonl(qtbot, make_window, clip: Path, tmp_path: Path) -> None:
    window = make_window()
    shown: dict[int, np.ndarray] = {}
    events = []
    window.controller.frameShown.connect(lambda f: shown.__setitem__(f.index, f.image))
    window.controller.recordingChanged.connect(events.append)
    window.open_source(str(clip))
    wait_frames(qtbot, window, 2)

    window.activateWindow()
    qtbot.waitActive(window)
    qtbot.keyClick(window, Qt.Key.Key_R)  # the shortcut
    assert window.controller.recording and window.transport.record.isChecked()
    qtbot.waitUntil(lambda: any(e.state == "started" for e in events), timeout=WAIT_MS)
    start = window.controller.frames_shown
    wait_frames(qtbot, window, start + 21)
    qtbot.keyClick(window, Qt.Key.Key_R)
    qtbot.waitUntil(lambda: any(e.state == "stopped" for e in events), timeout=WAIT_MS)
    stopped = next(e for e in events if e.state == "stopped")
    assert not window.controller.recording and not window.transport.record.isChecked()
    assert stopped.video.parent == tmp_path / "out" and stopped.video.suffix == ".mp4"

    with av.open(str(stopped.video)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        video = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    records = [json.loads(line) for line in stopped.jsonl.read_text().splitlines()]
    assert len(video) == len(records) == stopped.frames >= 20
    indices = [r["frame"] for r in records]
    assert indices == list(range(indices[0], indices[0] + len(indices)))  # a file source loses no frame
    assert all(i["score"] >= 0.3 for r in records for i in r["instances"])  # what was on screen
    assert all("segmentation" in i for r in records for i in r["instances"])
    assert video[0].shape == (240, 320, 3)
    # Each recorded frame is the annotated frame shown for that index (H.264 is lossy: PSNR, and
    # nearer to it than to the frames shown before and after it).
    compared = 0
    for image, record in zip(video, records, strict=True):
        index = record["frame"]
        if index not in shown:  # the UI may skip a frame when busy; the recording never does
            continue
        psnr = cv2.PSNR(image, shown[index])
        assert psnr > 24  # 4:2:0 chroma and crf 23 on a noisy 320 x 240 clip
        assert all(cv2.PSNR(image, shown[j]) < psnr for j in (index - 1, index + 1) if j in shown)
        compared += 1
    assert compared >= 10


def test_a_folder_of_photos_of_different_sizes_shows_each_at_its_own_shape(
    qtbot, make_window, tmp_path: Path
) -> None:
    """Real COCO val2017 photos (640x480, 640x424, 500x333, ...): each frame on screen is its own photo's
    size, drawn at its own aspect ratio, not the first photo's (the window's size came from it)."""
    from tests.conftest import coco_photo_folder

    folder, images = coco_photo_folder(tmp_path, 4)
    sizes = [cv2.imread(str(p)).shape[:2] for p in images]
    assert len(set(sizes)) >= 2
    window = make_window()
    shown: dict[int, tuple[int, int]] = {}
    aspect_errors: list[float] = []

    def on_frame(frame: ViewFrame) -> None:
        shown[frame.index] = frame.image.shape[:2]

    def on_paint() -> None:  # after the view took the frame: where it is drawn
        frame, rect = window.view.frame, window.view.image_rect()
        if frame is not None and rect.width() > 0:
            h, w = frame.image.shape[:2]
            # Letterboxed to the view: the drawn rectangle is the frame scaled by one factor, each side
            # rounded to a pixel, so |rect_w * h - rect_h * w| < w + h.
            aspect_errors.append(abs(rect.width() * h - rect.height() * w) - (w + h))

    window.controller.frameShown.connect(on_frame)
    window.controller.frameShown.connect(lambda _f: QTimer.singleShot(0, on_paint))
    window.open_source(str(folder))
    qtbot.waitUntil(lambda: len(shown) >= 3 and len(aspect_errors) >= 3, timeout=WAIT_MS)
    assert {i: sizes[i] for i in shown} == shown
    assert len(set(shown.values())) >= 2  # photos of two sizes were on screen
    assert max(aspect_errors) < 0


def test_closing_the_window_stops_every_worker_thread(qtbot, make_window, clip: Path) -> None:
    window = make_window()
    window.open_source(str(clip))
    wait_frames(qtbot, window, 3)
    names = {t.name for t in worker_threads()}
    assert "streamseg-inference" in names
    assert any(n.startswith("streamseg-output:") for n in names)
    assert any(n.startswith("streamseg-source:") for n in names)
    window.close()
    qtbot.waitUntil(lambda: not worker_threads(), timeout=WAIT_MS)
    assert window.controller.wait(0)


def test_switching_the_source_replaces_the_session(qtbot, make_window, clip: Path) -> None:
    window = make_window()
    window.open_source(str(clip))
    wait_frames(qtbot, window, 2)
    old = window.controller.session
    assert old is not None
    window.open_source(str(clip), paused=True)
    qtbot.waitUntil(lambda: not old.alive, timeout=WAIT_MS)
    frame = wait_drawn(qtbot, window, lambda f: f.index == 0)
    assert window.controller.session is not old and frame.index == 0
    sessions = {t.name for t in worker_threads() if t.name.startswith("streamseg-app-session")}
    assert sessions == {f"streamseg-app-session-{window.controller.session.id}"}


# ----------------------------------------------------------------------------- transport


def test_shortcuts_seek_and_frame_step(qtbot, make_window, clip: Path, tmp_path: Path) -> None:
    window = make_window()
    window.open_source(str(clip), paused=True)
    wait_drawn(qtbot, window, lambda f: f.index == 0)
    window.activateWindow()
    qtbot.waitActive(window)

    slider = window.transport.slider
    assert slider.isEnabled() and slider.maximum() == 47
    slider.setSliderDown(True)
    slider.setValue(30)
    slider.setSliderDown(False)  # released: seek
    wait_drawn(qtbot, window, lambda f: f.index == 30)
    qtbot.keyClick(window, Qt.Key.Key_Left)
    wait_drawn(qtbot, window, lambda f: f.index == 29)
    qtbot.keyClick(window, Qt.Key.Key_Right)
    frame = wait_drawn(qtbot, window, lambda f: f.index == 30)
    assert window.transport.position.text() == "31 / 48" and not window.controller.playing

    saved: list[str] = []
    window.controller.snapshotSaved.connect(saved.append)
    qtbot.keyClick(window, Qt.Key.Key_S)
    qtbot.waitUntil(lambda: bool(saved), timeout=WAIT_MS)
    png = cv2.cvtColor(cv2.imread(saved[0]), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(png, frame.image)  # the annotated frame, lossless

    qtbot.keyClick(window, Qt.Key.Key_Space)
    assert window.controller.playing
    wait_drawn(qtbot, window, lambda f: f.index > 30)
    qtbot.keyClick(window, Qt.Key.Key_Space)
    assert not window.controller.playing

    qtbot.keyClick(window, Qt.Key.Key_F)
    qtbot.waitUntil(window.isFullScreen)
    assert not window.side.isVisible() and window.view.isVisible()
    qtbot.keyClick(window, Qt.Key.Key_F)
    qtbot.waitUntil(lambda: not window.isFullScreen())
    assert window.side.isVisible()


def test_settings_persist_between_sessions(qtbot, make_window, tmp_path: Path) -> None:
    first = make_window()
    controls = first.controls
    controls.threshold.setValue(0.65)
    controls.toggles["boxes"].click()
    controls.toggles["trails"].click()
    controls.opacity.setValue(20)
    controls.set_class_checked("ball", False)
    controls.detect_every.setValue(3)
    first.open_source("rtsp://127.0.0.1:1/x")  # recent sources (without credentials)
    first.open_source("rtsp://admin:secret@127.0.0.1:1/y")
    first.close()
    assert Path(first.settings.fileName()) == tmp_path / "gui.ini"
    assert "secret" not in (tmp_path / "gui.ini").read_text()

    second = make_window(score_thresh=None, model=None)
    c = second.controls
    assert c.threshold.value() == 0.65 and c.threshold_slider.value() == 65
    assert not c.toggles["boxes"].isChecked() and not c.toggles["trails"].isChecked()
    assert c.toggles["masks"].isChecked() and c.opacity.value() == 20
    assert c.hidden_classes == ["ball"] and c.detect_every.value() == 3
    assert c.model_config().name == "demo"
    options = c.render_options()
    assert options.classes == frozenset({1, 3, 4}) and options.mask_alpha == 0.2 and not options.boxes
    assert second.controller.detect_every == 3 and second.controller.options == options
    recent = [second.source_bar.source.itemText(i) for i in range(second.source_bar.source.count())]
    assert recent[:2] == ["rtsp://127.0.0.1:1/y", "rtsp://127.0.0.1:1/x"]
    assert load_state(second.settings).render.score_thresh == 0.65


# ----------------------------------------------------------------------------- bad input


def cli_error(capsys: pytest.CaptureFixture[str], args: list[str]) -> str:
    """The message `streamseg run` prints for the same failure (after 'streamseg: error: ')."""
    capsys.readouterr()
    assert cli.main(["run", *args, "--no-progress"]) == 1
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("streamseg: error: ")
    return line.removeprefix("streamseg: error: ")


@pytest.mark.parametrize("kind", ["rtsp", "corrupt", "camera", "weights"])
def test_bad_input_shows_the_cli_message_and_the_window_stays_usable(
    qtbot, make_window, clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    model, extra = DEMO, []
    if kind == "rtsp":
        source = "rtsp://127.0.0.1:1/x"  # nothing listens on port 1
    elif kind == "corrupt":
        corrupt = tmp_path / "corrupt.mp4"
        corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 65536, dtype=np.uint8).tobytes())
        source = str(corrupt)
    elif kind == "camera":
        source = "cam:63"
        assert not Path("/dev/video63").exists()
    else:
        missing = tmp_path / "missing" / "demo.pt"
        source, model, extra = (
            str(clip),
            ModelConfig(name="demo", device="cpu", weights=str(missing)),
            ["--weights", str(missing)],
        )
    expected = cli_error(
        capsys, [source, "--model", "demo", "--device", "cpu", "--out", str(tmp_path / "cli.mp4"), *extra]
    )

    window = make_window(model=model, backends=BackendCache())
    window.open_source(source)
    qtbot.waitUntil(lambda: window.error_text() != "", timeout=WAIT_MS)
    assert window.error_text() == expected
    qtbot.waitUntil(lambda: window.status.state.text() == "error", timeout=WAIT_MS)
    assert window.view.frame is None and not window.controller.playing

    # Still usable: fix what was wrong and play.
    if kind == "weights":
        window.controls.weights.clear()
        window.controls.weights.editingFinished.emit()  # as leaving the field does
    else:
        window.open_source(str(clip), paused=True)
    wait_drawn(qtbot, window, lambda f: f.index == 0)
    assert window.error_text() == ""


def test_a_silent_rtsp_server_times_out_while_the_ui_keeps_running(qtbot, make_window) -> None:
    with socket.socket() as silent:  # accepts the connection (backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        url = f"rtsp://127.0.0.1:{silent.getsockname()[1]}/stream"
        window = make_window(open_timeout_s=1.0, read_timeout_s=1.0, backends=BackendCache())
        ticks = []
        timer = QTimer()
        timer.timeout.connect(lambda: ticks.append(window.error_text()))
        timer.start(10)
        window.open_source(url)
        qtbot.waitUntil(lambda: window.error_text() != "", timeout=WAIT_MS)
        timer.stop()
    assert window.error_text() == f"cannot open {url}: no valid answer within the open timeout (1 s)"
    assert len([t for t in ticks if t == ""]) >= 10  # the event loop ran while the source was connecting


def test_an_unavailable_backend_is_reported_and_torch_still_runs(qtbot, make_window, clip: Path) -> None:
    window = make_window(backends=BackendCache())  # the failed pick unloads the model: keep the shared one
    window.open_source(str(clip), paused=True)
    wait_drawn(qtbot, window, lambda f: f.index == 0)
    combo = window.controls.backend
    combo.setCurrentText("tensorrt")
    combo.activated.emit(combo.currentIndex())  # as a user's pick
    qtbot.waitUntil(lambda: window.error_text() != "", timeout=WAIT_MS)
    assert "tensorrt" in window.error_text().lower()
    assert window.view.frame is not None  # the last frame stays on screen
    shown = window.controller.frames_shown
    combo.setCurrentText("torch")
    combo.activated.emit(combo.currentIndex())
    wait_frames(qtbot, window, shown + 1)
    assert window.controller.model.backend == "torch" and window.view.frame.index == 0
    assert window.error_text() == ""


# ----------------------------------------------------------------------------- no Qt


def test_seekable_source_starts_at_any_frame(clip: Path) -> None:
    from streamseg.sources import open_source

    reference = [f.image for f in open_source(str(clip))]
    for start in (0, 17, 47):
        frames = list(SeekableVideoSource(clip, start_frame=start))
        assert [f.index for f in frames] == list(range(start, 48))
        assert all(np.array_equal(f.image, reference[f.index]) for f in frames)


# ----------------------------------------------------------------------------- command line


def test_gui_subcommand_opens_the_source_and_exits_cleanly(qtbot, clip: Path, tmp_path: Path) -> None:
    import argparse

    from PyQt6.QtWidgets import QApplication
    from streamseg_app import cli as gui_cli

    parser = argparse.ArgumentParser(prog="streamseg")
    gui_cli.add_parser(parser.add_subparsers(dest="command"))
    settings = tmp_path / "gui.ini"
    args = parser.parse_args(
        ["gui", str(clip), "--model", "demo", "--device", "cpu", "--paused", "--settings", str(settings),
         "--output-dir", str(tmp_path / "out"), "--score-thresh", "0.4"]
    )  # fmt: skip
    seen: list[MainWindow] = []

    def close_after_the_first_frame() -> None:
        windows = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()]
        if windows and windows[0].view.frame is not None:
            seen.append(windows[0])
            windows[0].close()
        else:
            QTimer.singleShot(50, close_after_the_first_frame)

    QTimer.singleShot(50, close_after_the_first_frame)
    assert args.func(args) == 0  # runs the event loop until the window closes, then joins the workers
    window = seen[0]
    assert window.view.frame.index == 0 and not window.controller.playing
    assert window.controls.threshold.value() == 0.4 and window.output_dir == tmp_path / "out"
    assert not worker_threads()
    assert load_state(QSettings(str(settings), QSettings.Format.IniFormat)).model.name == "demo"


def test_gui_module_imports_without_qt_and_says_how_to_install_it(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['PyQt6'] = None\n"  # as on a machine without the gui extra
        "import argparse\n"
        "from streamseg_app import cli\n"
        "from streamseg.errors import ConfigError\n"
        "p = argparse.ArgumentParser(); cli.add_parser(p.add_subparsers())\n"
        "args = p.parse_args(['gui'])\n"
        "try:\n"
        "    args.func(args)\n"
        "except ConfigError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert "pip install 'streamseg[gui]'" in out.stdout


def test_render_options_filter_classes_and_hide_trails() -> None:
    from streamseg.render import RenderOptions, TrackTrails, render, visible_instances
    from streamseg.types import Instances

    image = np.full((120, 160, 3), 128, np.uint8)
    masks = np.full((3, 28, 28), 0.9, np.float32)
    inst = Instances((120, 160), [[10, 10, 50, 50], [60, 10, 100, 50], [110, 60, 150, 110]], [0.9, 0.4, 0.8],
                     [1, 2, 1], masks, track_ids=[1, 2, 3])  # fmt: skip
    only_ones = visible_instances(inst, RenderOptions(classes=frozenset({1})))
    assert list(only_ones.track_ids) == [1, 3]
    assert list(
        visible_instances(inst, RenderOptions(score_thresh=0.5, classes=frozenset({1, 2}))).track_ids
    ) == [1, 3]
    assert visible_instances(inst, RenderOptions()) is inst
    assert len(visible_instances(inst, RenderOptions(classes=frozenset()))) == 0
    drawn = render(
        image, inst, categories=("bg", "a", "b"), options=RenderOptions(classes=frozenset({1}), labels=False)
    )
    assert np.all(drawn[15:45, 65:95] == 128) and np.any(drawn[15:45, 15:45] != 128)  # class 2 not drawn

    trails = TrackTrails()
    for dx in (0, 20):
        trails.update(inst.replace(boxes=inst.boxes + np.array([dx, 0, dx, 0], np.float32)))
    bare = RenderOptions(masks=False, outlines=False, boxes=False, labels=False, keypoints=False)
    with_trails = render(image, inst, categories=("bg", "a", "b"), options=bare, trails=trails)
    hidden = render(
        image,
        inst,
        categories=("bg", "a", "b"),
        options=dataclasses.replace(bare, trails=False),
        trails=trails,
    )
    assert np.any(with_trails != 128) and np.all(hidden == 128)
