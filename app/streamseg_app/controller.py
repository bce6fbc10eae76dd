"""Playback control for the window: one session at a time, restarted on seek, step back and model change.

:class:`PlayerController` lives in the UI thread. It starts a
:class:`~streamseg_app.session.Session` per source (and per seek, step back or
model change, reusing the loaded model), connects its
:class:`~streamseg_app.bridge.SessionBridge` and re-emits what the window needs.
A replaced session is stopped without waiting and detached, so nothing it still
reports reaches the window, except how its recording ended.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from pathlib import Path

import cv2
from PyQt6.QtCore import QObject, pyqtSignal

from streamseg.render import RenderOptions
from streamseg.sources import redact_url
from streamseg_app.bridge import SessionBridge
from streamseg_app.config import ModelConfig
from streamseg_app.output import RecordingEvent, ViewFrame
from streamseg_app.session import THREAD_PREFIX, BackendCache, Session, SessionInfo

__all__ = ["PlayerController", "output_paths"]

log = logging.getLogger("streamseg.app")


def output_paths(
    folder: Path, uri: str, suffixes: tuple[str, ...], *, now: float | None = None
) -> list[Path]:
    """Files named after the source and the local time, e.g. ``folder/streamseg-clip-20250101-120000.mp4``.

    Args:
        folder: the output folder.
        uri: the source (credentials are removed; only its last path part is used).
        suffixes: one file per suffix (``(".mp4", ".jsonl")``).
        now: the time (seconds since the epoch); None for now.

    Returns:
        One path per suffix, with the same stem; a counter is added if a file exists.
    """
    name = Path(redact_url(uri).rstrip("/")).name.rsplit(".", 1)[0] or "stream"
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:60].strip("_") or "stream"
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    base = f"streamseg-{stem}-{stamp}"
    for k in range(1000):
        candidate = base if k == 0 else f"{base}-{k}"
        paths = [folder / f"{candidate}{s}" for s in suffixes]
        if not any(p.exists() for p in paths):
            return paths
    return [folder / f"{base}-{time.monotonic_ns()}{s}" for s in suffixes]  # pragma: no cover


class PlayerController(QObject):
    """Opens sources and controls playback (see the module docstring).

    Args:
        model: the initial model settings.
        options: the initial render options.
        detect_every: run the model every K frames.
        pace: play files at their own frame rate.
        open_timeout_s: seconds to connect to a live source.
        read_timeout_s: seconds without data before a live stream counts as stalled.
        backends: where the loaded backend is kept (None: a new, empty cache).
        parent: the owning QObject.

    Signals:
        frameShown(object): a :class:`~streamseg_app.output.ViewFrame` to show.
        stateChanged(str, str): ``(state, detail)`` of the current session.
        sessionReady(object): the :class:`~streamseg_app.session.SessionInfo` of a new session.
        errorRaised(str): a one-line error (the CLI's message for the same failure).
        recordingChanged(object): a :class:`~streamseg_app.output.RecordingEvent`.
        playingChanged(bool): play / pause.
        snapshotSaved(str): the PNG written.
    """

    frameShown = pyqtSignal(object)
    stateChanged = pyqtSignal(str, str)
    sessionReady = pyqtSignal(object)
    errorRaised = pyqtSignal(str)
    recordingChanged = pyqtSignal(object)
    playingChanged = pyqtSignal(bool)
    snapshotSaved = pyqtSignal(str)

    def __init__(
        self,
        *,
        model: ModelConfig | None = None,
        options: RenderOptions | None = None,
        detect_every: int = 1,
        pace: bool = True,
        open_timeout_s: float = 5.0,
        read_timeout_s: float = 5.0,
        backends: BackendCache | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.model = model or ModelConfig()
        self.options = options or RenderOptions()
        self.detect_every = detect_every
        self.pace = pace
        self.open_timeout_s = open_timeout_s
        self.read_timeout_s = read_timeout_s
        self.backends = backends if backends is not None else BackendCache()
        self.uri: str | None = None
        self.info: SessionInfo | None = None
        self.state = "idle"
        self.playing = False
        self.position: int | None = None
        self.last_frame: ViewFrame | None = None
        self.recording = False
        self.frames_shown = 0
        self._session: Session | None = None
        self._bridge: SessionBridge | None = None
        self._sessions: list[Session] = []  # every session whose threads may still run
        self._ended = False
        self._recording_video: Path | None = None

    # -- sessions ----------------------------------------------------------------------
    @property
    def session(self) -> Session | None:
        """The current session, or None."""
        return self._session

    @property
    def ui_dropped(self) -> int:
        """Frames the current session drew that the UI never showed (it was busy)."""
        return 0 if self._bridge is None else self._bridge.ui_dropped

    def open(self, uri: str, *, start_frame: int = 0, paused: bool = False) -> None:
        """Play ``uri`` (a file, URL or camera), replacing the current source; returns at once.

        Failures (a missing file, a camera that does not exist, an RTSP server that does
        not answer, missing weights) arrive later as :attr:`errorRaised`.
        """
        self._retire_session()
        if uri != self.uri:
            self.info, self.position, self.last_frame = None, None, None
        self.uri = uri
        self._ended = False
        # No Qt parent: the session's callbacks keep the bridge alive until its threads end,
        # even after the window (and this controller) is gone.
        bridge = SessionBridge()
        session = Session(
            uri,
            model=self.model,
            backends=self.backends,
            callbacks=bridge.callbacks(),
            options=self.options,
            detect_every=self.detect_every,
            start_frame=start_frame,
            start_paused=paused,
            pace=self.pace,
            open_timeout_s=self.open_timeout_s,
            read_timeout_s=self.read_timeout_s,
        )
        bridge.frameReady.connect(self._on_frame_ready)
        bridge.stateChanged.connect(self._on_state)
        bridge.ready.connect(self._on_ready)
        bridge.errorRaised.connect(self.errorRaised)
        bridge.recording.connect(self._on_recording)
        bridge.finished.connect(self._on_finished)
        self._session, self._bridge = session, bridge
        self._sessions = [s for s in self._sessions if s.alive] + [session]
        self._set_playing(not paused)
        session.start()

    def _retire_session(self) -> None:
        """Stop the current session without waiting and ignore what it reports from now on."""
        if self._session is not None:
            self._session.stop()
        if self._bridge is not None:
            self._bridge.detach()
        self._session, self._bridge = None, None

    def _restart(self, start_frame: int, *, paused: bool) -> None:
        if self.uri is not None:
            self.open(self.uri, start_frame=start_frame, paused=paused)

    @property
    def seekable(self) -> bool:
        """The current source is a video file (seek slider, step back)."""
        return self.info is not None and self.info.seekable

    # -- transport ---------------------------------------------------------------------
    def play(self) -> None:
        """Resume, or restart a stream that ended or was stopped (a file from its start)."""
        session = self._session
        if session is not None and session.alive and not session.stopping:
            session.play()
            self._set_playing(True)
        elif self.uri is not None:
            self._restart(0, paused=False)

    def pause(self) -> None:
        """Pause at the next frame (a live stream keeps connecting; its frames are dropped)."""
        if self._session is not None:
            self._session.pause()
        self._set_playing(False)

    def toggle_play(self) -> None:
        """Play if paused, else pause."""
        if self.playing and self._session is not None and self._session.alive:
            self.pause()
        else:
            self.play()

    def stop(self) -> None:
        """Stop the stream (every worker thread ends); the last frame stays on screen."""
        if self._session is not None:
            self._session.stop()
        self._set_playing(False)

    def step(self, direction: int) -> None:
        """Show the next (+1) or the previous (-1) frame and pause."""
        session = self._session
        if direction > 0:
            if session is not None and session.alive and not session.stopping:
                if self.playing:
                    self.pause()
                session.step()
            elif self.seekable and self.position is not None and not self._ended:
                self._restart(self.position + 1, paused=True)
        elif self.seekable and self.position is not None and self.position > 0:
            self._restart(self.position - 1, paused=True)

    def seek(self, frame_index: int) -> None:
        """Go to ``frame_index`` of a video file (restarts the pipeline there, keeps play / pause)."""
        if not self.seekable or self.info is None:
            return
        last = (self.info.num_frames or 1) - 1
        self._restart(min(max(0, int(frame_index)), max(0, last)), paused=not self.playing)

    def _set_playing(self, playing: bool) -> None:
        if playing != self.playing:
            self.playing = playing
            self.playingChanged.emit(playing)

    # -- settings --------------------------------------------------------------------
    def set_options(self, options: RenderOptions) -> None:
        """Draw with ``options`` from the next frame on (the paused frame is redrawn)."""
        self.options = options
        if self._session is not None:
            self._session.set_options(options)

    def set_detect_every(self, k: int) -> None:
        """Run the model every ``k`` frames from the next frame on."""
        self.detect_every = max(1, int(k))
        if self._session is not None:
            self._session.set_detect_every(self.detect_every)

    def set_model(self, model: ModelConfig) -> None:
        """Use another model or backend: restarts the stream where it is."""
        if model == self.model:
            return
        self.model = model
        if self.uri is not None:
            start = self.position if self.seekable and self.position is not None and not self._ended else 0
            self._restart(start, paused=not self.playing)

    # -- recording and snapshots ---------------------------------------------------------
    def start_recording(self, folder: Path) -> tuple[Path, Path] | None:
        """Record what is shown from the next frame on into ``folder``; the (MP4, JSONL) paths, or None.

        Returns None (and reports why through :attr:`errorRaised`) when no stream is running.
        """
        session = self._session
        if session is None or self.uri is None or session.info is None or not session.alive:
            self.errorRaised.emit("nothing to record: open a source and play it first")
            return None
        video, jsonl = output_paths(Path(folder), self.uri, (".mp4", ".jsonl"))
        if not session.start_recording(video, jsonl):
            self.errorRaised.emit("nothing to record: the stream is stopping")
            return None
        self.recording, self._recording_video = True, video
        self.recordingChanged.emit(RecordingEvent("requested", video, jsonl))
        return video, jsonl

    def stop_recording(self) -> None:
        """Finish the recording (the output thread closes the files; :attr:`recordingChanged` follows)."""
        if self._session is not None:
            self._session.stop_recording()

    def snapshot(self, folder: Path) -> Path | None:
        """Save the annotated frame on screen as PNG in ``folder`` (written in a worker thread).

        Returns:
            The path being written, or None when no frame is shown. :attr:`snapshotSaved`
            or :attr:`errorRaised` follows.
        """
        frame = self.last_frame
        if frame is None or self.uri is None:
            self.errorRaised.emit("no frame to save yet")
            return None
        (path,) = output_paths(Path(folder), self.uri, (".png",))
        bgr = cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR)

        def write() -> None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                if not cv2.imwrite(str(path), bgr):
                    raise OSError("the PNG encoder failed")
            except OSError as exc:
                self.errorRaised.emit(
                    f"cannot write snapshot {path}: {getattr(exc, 'strerror', None) or exc}"
                )
            else:
                self.snapshotSaved.emit(str(path))

        threading.Thread(target=write, name=f"{THREAD_PREFIX}-app-snapshot", daemon=True).start()
        return path

    # -- shutdown --------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Stop every session without waiting (closing the window)."""
        self._retire_session()
        for session in self._sessions:
            session.stop()
        self._set_playing(False)

    def wait(self, timeout_s: float = 10.0) -> bool:
        """Wait until every session's threads have ended (recordings are then closed); True if they did."""
        deadline = time.monotonic() + timeout_s
        for session in list(self._sessions):
            if not session.join(max(0.0, deadline - time.monotonic())):
                return False
        self._sessions = [s for s in self._sessions if s.alive]
        return not self._sessions

    # -- session reports (UI thread) ----------------------------------------------------
    def _on_frame_ready(self) -> None:
        bridge = self._bridge
        frame = bridge.take_frame() if bridge is not None else None
        if frame is None:
            return
        self.last_frame = frame
        self.position = frame.index
        self.frames_shown += 1
        self.frameShown.emit(frame)

    def _on_state(self, state: str, detail: str) -> None:
        self.state = state
        if state in ("ended", "stopped", "error"):
            self._set_playing(False)
            self._ended = state == "ended"
        self.stateChanged.emit(state, detail)

    def _on_ready(self, info: SessionInfo) -> None:
        self.info = info
        self.sessionReady.emit(info)

    def _on_recording(self, event: RecordingEvent) -> None:
        if event.state in ("stopped", "failed") and event.video == self._recording_video:
            self.recording, self._recording_video = False, None
        self.recordingChanged.emit(event)

    def _on_finished(self, state: str) -> None:
        self._sessions = [s for s in self._sessions if s.alive]
