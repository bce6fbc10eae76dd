"""The main window: source bar, video view, track list, controls, transport and status bar.

The window only wires widgets to the :class:`~streamseg_app.controller.PlayerController`
and paints: every frame arrives drawn and converted by the worker threads, and the
UI thread wraps it (no copy), paints it and updates the list and the status bar.

Keyboard: Space play/pause, ← / → frame step, R record, S snapshot, F full screen
(Esc leaves it), Ctrl+O open a file, Ctrl+L type a source, Ctrl+Q quit.
"""

from __future__ import annotations

import dataclasses
import time
from collections import deque
from pathlib import Path

from PyQt6.QtCore import QSettings, Qt
from PyQt6.QtGui import QAction, QCloseEvent, QKeySequence
from PyQt6.QtWidgets import (
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QScrollArea,
    QSplitter,
    QStyle,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from streamseg_app.config import ModelConfig
from streamseg_app.controller import PlayerController
from streamseg_app.controls import ControlPanel
from streamseg_app.output import RecordingEvent, ViewFrame
from streamseg_app.session import BackendCache, SessionInfo
from streamseg_app.settings import GuiState, default_output_dir, default_settings, load_state, save_state
from streamseg_app.source_bar import SourceBar, TransportBar
from streamseg_app.tracks import TrackPanel
from streamseg_app.view import VideoView

__all__ = ["MainWindow", "ErrorBanner", "StatusPanel", "window_title"]

#: Seconds between two status bar refreshes while frames stream in.
STATUS_INTERVAL_S = 0.25
#: The window's first size (until one is stored): it fits a 1280 x 800 screen with a
#: title bar, window borders and a desktop panel around it.
DEFAULT_SIZE = (1240, 720)
#: The side panel's first width (the video takes the rest).
SIDE_WIDTH = 340
#: The application's name in the title (Qt's display name, see streamseg_app.app.application).
APP_NAME = "streamseg"


def window_title(uri: str | None = None) -> str:
    """``"clip.mp4 — streamseg"`` (a URL without its credentials, or a device, in full), or ``"streamseg"``.

    It ends with the application's display name, so the platform (xcb, Windows), which
    appends " — <display name>" to any other title, does not name the app twice.
    """
    if not uri:
        return APP_NAME
    from streamseg.sources import redact_url

    shown = redact_url(uri) if "://" in uri or uri.startswith(("cam:", "/dev/")) else (Path(uri).name or uri)
    return f"{shown} — {APP_NAME}"


class ErrorBanner(QFrame):
    """A dismissable one-line error above the video (the window stays usable under it)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("errorBanner")
        self.setStyleSheet(
            "#errorBanner { background: #5c1d1d; border: 1px solid #a33; border-radius: 3px; }"
            "#errorBanner QLabel { color: #fde; }"
        )
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 4, 4)
        self.label = QLabel(self)
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        close = QToolButton(self)
        close.setText("✕")
        close.setAutoRaise(True)
        close.setToolTip("Dismiss")
        close.clicked.connect(self.clear)
        layout.addWidget(self.label, 1)
        layout.addWidget(close)
        self.hide()

    def show_error(self, message: str) -> None:
        """Show ``message`` (one line, as the CLI prints it after ``streamseg: error:``)."""
        self.label.setText(message)
        self.show()

    def clear(self) -> None:
        """Hide the banner."""
        self.label.clear()
        self.hide()

    def text(self) -> str:
        """The message shown, or "" when hidden."""
        return self.label.text()


#: Tool tips of the status bar's third field: frame age (live sources) or render time (files).
_AGE_TIP = "Frame age when painted: now − capture time (ms)"
_RENDER_TIP = "Time to draw this frame (ms); frame age is shown for live sources (a file decodes ahead)"


class StatusPanel:
    """The status bar fields: fps, model latency, frame age (live) or render time (files), dropped
    frames and stream state."""

    def __init__(self, window: QMainWindow) -> None:
        bar = window.statusBar()
        self.fps = QLabel("– fps")
        self.model = QLabel("model – ms")
        self.age = QLabel("age – ms")
        self.dropped = QLabel("dropped 0")
        self.state = QLabel("idle")
        self.fps.setToolTip("Frames shown per second (last 30 frames)")
        self.model.setToolTip("Model latency of the latest frame the model ran on (ms)")
        self.age.setToolTip(_AGE_TIP)
        self.dropped.setToolTip("Frames dropped by the live policy (stream queues) and by the view")
        width = self.fps.fontMetrics().horizontalAdvance("model 00000 ms") + 8
        for label in (self.fps, self.model, self.age, self.dropped):
            label.setFixedWidth(width)  # no status bar relayout when the numbers change
            bar.addPermanentWidget(label)
        self.state.setMinimumWidth(width)
        bar.addPermanentWidget(self.state)
        self._shown: deque[float] = deque(maxlen=30)
        self._last_update = 0.0
        self._model_ms: float | None = None

    def frame(self, frame: ViewFrame, ui_dropped: int, *, force: bool = False) -> None:
        """Account for one painted frame; refresh the labels at most every :data:`STATUS_INTERVAL_S`."""
        now = time.monotonic()
        if not frame.redraw:
            self._shown.append(now)
        model_ms = frame.result.timings_ms.get("model")
        if model_ms is not None:
            self._model_ms = float(model_ms)
        if not force and now - self._last_update < STATUS_INTERVAL_S:
            return
        self._last_update = now
        span = self._shown[-1] - self._shown[0] if len(self._shown) > 1 else 0.0
        fps = (len(self._shown) - 1) / span if span > 0 else 0.0
        self.fps.setText(f"{fps:.1f} fps")
        self.model.setText("model – ms" if self._model_ms is None else f"model {self._model_ms:.0f} ms")
        if frame.live:
            self.age.setText(f"age {(now - frame.result.frame.t_capture) * 1000:.0f} ms")
        else:  # a file decodes ahead into its queue: its frames' age counts the read-ahead
            self.age.setText(f"render {frame.render_ms:.0f} ms")
        tip = _AGE_TIP if frame.live else _RENDER_TIP
        if self.age.toolTip() != tip:
            self.age.setToolTip(tip)
        self.dropped.setText(f"dropped {frame.dropped + ui_dropped}")

    def set_state(self, state: str, detail: str = "") -> None:
        """Show the stream state (detail in the tool tip)."""
        self.state.setText(state)
        self.state.setToolTip(detail)

    def reset(self) -> None:
        """Forget the rates of the previous source."""
        self._shown.clear()
        self._model_ms = None


class MainWindow(QMainWindow):
    """The streamseg desktop window.

    Args:
        settings: where settings persist; None for the user's store
            (:func:`~streamseg_app.settings.default_settings`). Tests pass a temporary one.
        model: model settings overriding the stored ones (command-line options).
        score_thresh: score threshold overriding the stored one.
        detect_every: K overriding the stored one.
        output_dir: recordings and snapshots folder overriding the stored one.
        pace: play files at their own frame rate (None: stored setting).
        open_timeout_s: seconds to connect to a live source.
        read_timeout_s: seconds without data before a live stream counts as stalled.
        backends: keeps the loaded model; pass one to share it between windows.
    """

    def __init__(
        self,
        settings: QSettings | None = None,
        *,
        model: ModelConfig | None = None,
        score_thresh: float | None = None,
        detect_every: int | None = None,
        output_dir: str | Path | None = None,
        pace: bool | None = None,
        open_timeout_s: float = 5.0,
        read_timeout_s: float = 5.0,
        backends: BackendCache | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings if settings is not None else default_settings()
        self.state = load_state(self.settings)
        if model is not None:
            self.state.model = model
        if score_thresh is not None:
            self.state.render = dataclasses.replace(self.state.render, score_thresh=float(score_thresh))
        if detect_every is not None:
            self.state.detect_every = int(detect_every)
        if output_dir is not None:
            self.state.output_dir = str(output_dir)
        if pace is not None:
            self.state.pace = pace
        self.setWindowTitle(window_title())
        self.controller = PlayerController(
            model=self.state.model,
            detect_every=self.state.detect_every,
            pace=self.state.pace,
            open_timeout_s=open_timeout_s,
            read_timeout_s=read_timeout_s,
            backends=backends,
            parent=self,
        )
        self._build()
        self._build_actions()
        self._connect()
        self._apply_state()
        self._restore_geometry()

    # -- layout -------------------------------------------------------------------------
    def _build(self) -> None:
        self.source_bar = SourceBar(self)
        self.banner = ErrorBanner(self)
        self.view = VideoView(self)
        self.transport = TransportBar(self)
        left = QWidget(self)
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.setSpacing(2)
        left_layout.addWidget(self.source_bar)
        left_layout.addWidget(self.banner)
        left_layout.addWidget(self.view, 1)
        left_layout.addWidget(self.transport)
        self.tracks = TrackPanel(self)
        self.controls = ControlPanel(self)
        scroll = QScrollArea(self)
        scroll.setWidget(self.controls)
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        # Never narrower than the controls: the panel scrolls up and down, never cuts them at the right.
        scroll_bar = self.style().pixelMetric(QStyle.PixelMetric.PM_ScrollBarExtent)
        scroll.setMinimumWidth(self.controls.minimumSizeHint().width() + scroll_bar)
        self.side = QSplitter(Qt.Orientation.Vertical, self)
        self.side.addWidget(self.tracks)
        self.side.addWidget(scroll)
        self.side.setStretchFactor(0, 2)
        self.side.setStretchFactor(1, 3)
        self.splitter = QSplitter(Qt.Orientation.Horizontal, self)
        self.splitter.addWidget(left)
        self.splitter.addWidget(self.side)
        self.splitter.setStretchFactor(0, 1)
        self.splitter.setStretchFactor(1, 0)
        self.splitter.setSizes([DEFAULT_SIZE[0] - SIDE_WIDTH, SIDE_WIDTH])
        self.setCentralWidget(self.splitter)
        self.status = StatusPanel(self)
        self.resize(*DEFAULT_SIZE)

    def _action(
        self, text: str, shortcut: QKeySequence | str | None, slot: object, menu: object = None
    ) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.triggered.connect(slot)  # type: ignore[arg-type]
        self.addAction(action)  # window-wide shortcut, also while menus and panels are hidden
        if menu is not None:
            menu.addAction(action)  # type: ignore[attr-defined]
        return action

    def _build_actions(self) -> None:
        menus = self.menuBar()
        file_menu = menus.addMenu("&File")
        play_menu = menus.addMenu("&Playback")
        record_menu = menus.addMenu("&Record")
        view_menu = menus.addMenu("&View")
        self.act_open = self._action(
            "&Open file…", QKeySequence.StandardKey.Open, self.source_bar.choose_file, file_menu
        )
        self._action("Open &camera index…", None, self.source_bar.choose_camera_index, file_menu)
        self._action("Type a source / &URL", "Ctrl+L", self._focus_source, file_menu)
        file_menu.addSeparator()
        self._action("&Quit", QKeySequence.StandardKey.Quit, self.close, file_menu)
        self.act_play = self._action("&Play / pause", "Space", self.controller.toggle_play, play_menu)
        self._action("&Stop", None, self.controller.stop, play_menu)
        self.act_step_back = self._action("Step &back", "Left", lambda: self.controller.step(-1), play_menu)
        self.act_step = self._action("Step &forward", "Right", lambda: self.controller.step(1), play_menu)
        self.act_record = self._action("&Record", "R", self.toggle_recording, record_menu)
        self.act_snapshot = self._action("&Snapshot (PNG)", "S", self.snapshot, record_menu)
        self._action("&Output folder…", None, self._choose_output_dir, record_menu)
        self.act_fullscreen = self._action("&Full screen", "F", self.toggle_fullscreen, view_menu)
        self._action("Leave full screen", "Esc", self._leave_fullscreen)
        self.act_side = self._action("Side &panel", None, self._toggle_side, view_menu)
        self.act_side.setCheckable(True)
        self.act_side.setChecked(True)

    def _connect(self) -> None:
        c = self.controller
        self.source_bar.openRequested.connect(self.open_source)
        self.transport.playPauseClicked.connect(c.toggle_play)
        self.transport.stopClicked.connect(c.stop)
        self.transport.stepClicked.connect(c.step)
        self.transport.seekRequested.connect(c.seek)
        self.transport.recordClicked.connect(self.toggle_recording)
        self.transport.snapshotClicked.connect(self.snapshot)
        self.controls.optionsChanged.connect(c.set_options)
        self.controls.detectEveryChanged.connect(c.set_detect_every)
        self.controls.modelChanged.connect(self._on_model_changed)
        self.tracks.trackSelected.connect(self.view.set_selected_track)
        self.view.trackClicked.connect(lambda tid: self.tracks.select_track(tid if tid >= 0 else -1))
        self.view.doubleClicked.connect(self.toggle_fullscreen)
        c.frameShown.connect(self._on_frame)
        c.stateChanged.connect(self._on_state)
        c.sessionReady.connect(self._on_ready)
        c.errorRaised.connect(self.banner.show_error)
        c.recordingChanged.connect(self._on_recording)
        c.playingChanged.connect(self.transport.set_playing)
        c.snapshotSaved.connect(lambda path: self.statusBar().showMessage(f"snapshot saved: {path}", 8000))

    def _apply_state(self) -> None:
        state = self.state
        self.controls.set_model_config(state.model)
        self.controls.set_detect_every(state.detect_every)
        from streamseg.models.registry import MODELS

        spec = MODELS.get(state.model.name)
        if spec is not None:
            self.controls.set_categories(spec.categories)
            self.tracks.set_categories(spec.categories)
        self.controls.set_render_options(state.render, state.hidden_classes)
        self.controller.set_options(self.controls.render_options())
        self.source_bar.set_recent(state.recent)

    def _restore_geometry(self) -> None:
        geometry = self.settings.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        splitter = self.settings.value("window/splitter")
        if splitter is not None:
            self.splitter.restoreState(splitter)

    # -- public API --------------------------------------------------------------------
    @property
    def output_dir(self) -> Path:
        """Folder of recordings and snapshots."""
        return Path(self.state.output_dir) if self.state.output_dir else default_output_dir()

    def set_output_dir(self, folder: str | Path) -> None:
        """Use ``folder`` for recordings and snapshots."""
        self.state.output_dir = str(folder)

    def open_source(self, uri: str, *, paused: bool = False) -> None:
        """Play ``uri`` (file, folder, rtsp:// or http(s):// URL, /dev/videoN or cam:N); returns at once.

        Args:
            uri: the source.
            paused: show its first frame and wait (Space plays).
        """
        uri = uri.strip()
        if not uri:
            return
        self.banner.clear()
        self.status.reset()
        self.tracks.select_track(-1)
        self.state.add_recent(uri)
        self.source_bar.set_recent(self.state.recent)
        self.source_bar.set_current(uri)
        self.transport.set_seekable(None)
        self.transport.set_position(None, None)
        self.controller.open(uri, paused=paused)

    def error_text(self) -> str:
        """The error shown in the window, or ""."""
        return self.banner.text()

    def toggle_recording(self) -> None:
        """Start recording what is shown (MP4 + JSONL in :attr:`output_dir`) or stop it."""
        if self.controller.recording:
            self.controller.stop_recording()
        else:
            paths = self.controller.start_recording(self.output_dir)
            if paths is not None:
                self.statusBar().showMessage(f"recording to {paths[0]} and {paths[1].name}", 8000)
        self.transport.set_recording(self.controller.recording)

    def snapshot(self) -> None:
        """Save the annotated frame on screen as PNG in :attr:`output_dir`."""
        self.controller.snapshot(self.output_dir)

    def toggle_fullscreen(self) -> None:
        """Full screen with only the video, or back."""
        full = not self.isFullScreen()
        for widget in (self.source_bar, self.transport, self.side, self.menuBar(), self.statusBar()):
            widget.setVisible(not full if widget is not self.side else not full and self.act_side.isChecked())
        if full:
            self.showFullScreen()
        else:
            self.showNormal()

    # -- slots --------------------------------------------------------------------------
    def _leave_fullscreen(self) -> None:
        if self.isFullScreen():
            self.toggle_fullscreen()

    def _toggle_side(self) -> None:
        self.side.setVisible(self.act_side.isChecked())

    def _focus_source(self) -> None:
        self.source_bar.source.setFocus()
        self.source_bar.source.lineEdit().selectAll()

    def _choose_output_dir(self) -> None:
        folder = QFileDialog.getExistingDirectory(
            self, "Folder for recordings and snapshots", str(self.output_dir)
        )
        if folder:
            self.set_output_dir(folder)

    def _on_model_changed(self, model: ModelConfig) -> None:
        self.banner.clear()
        self.state.model = model
        self.controller.set_model(model)

    def _on_frame(self, frame: ViewFrame) -> None:
        self.view.set_frame(frame)
        self.tracks.show_frame(frame)
        self.transport.set_position(frame.index, frame.num_frames)
        self.status.frame(frame, self.controller.ui_dropped, force=frame.redraw)

    def _on_state(self, state: str, detail: str) -> None:
        label = state
        info = self.controller.info
        if info is not None and info.random_weights and state in ("playing", "streaming"):
            label += " (RANDOM weights)"
        self.status.set_state(label, detail)
        if state == "loading model":
            self.statusBar().showMessage(f"loading {detail}…", 5000)

    def _on_ready(self, info: SessionInfo) -> None:
        self.controls.set_categories(info.categories)
        self.tracks.set_categories(info.categories)
        self.transport.set_seekable(info.num_frames if info.seekable else None)
        self.setWindowTitle(window_title(info.uri))

    def _on_recording(self, event: RecordingEvent) -> None:
        self.transport.set_recording(self.controller.recording)
        if event.state == "stopped":
            self.statusBar().showMessage(
                f"recorded {event.frames} frames: {event.video} and {event.jsonl.name}", 10000
            )
        elif event.state == "failed":
            self.banner.show_error(f"recording stopped: {event.message}")

    # -- closing ------------------------------------------------------------------------
    def current_state(self) -> GuiState:
        """The settings as they are now (what closing the window stores)."""
        options = self.controls.render_options()
        self.state.render = dataclasses.replace(options, classes=None)
        self.state.hidden_classes = self.controls.hidden_classes
        self.state.model = self.controls.model_config()
        self.state.detect_every = int(self.controls.detect_every.value())
        return self.state

    def save_settings(self) -> None:
        """Store the settings and the window geometry."""
        save_state(self.settings, self.current_state())
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/splitter", self.splitter.saveState())
        self.settings.sync()

    def closeEvent(self, event: QCloseEvent | None) -> None:  # noqa: N802 - Qt API
        """Store the settings and stop every worker thread (without waiting; see PlayerController.wait)."""
        self.save_settings()
        self.controller.shutdown()
        super().closeEvent(event)
