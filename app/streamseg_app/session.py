"""One playback session: a source opened, a backend loaded and a pipeline run, all off the UI thread.

A :class:`Session` owns one thread (``streamseg-app-session``) that

1. opens the source (a file at any start frame, a camera, an RTSP or HTTP stream;
   a bad one fails here, before any model is loaded, as in the CLI),
2. gets the backend from the shared :class:`BackendCache` (loading it only when the
   model settings changed),
3. runs a :class:`streamseg.core.Pipeline` (source thread, inference thread with
   the tracker, output thread with a :class:`~streamseg_app.output.ViewOutput`) until
   the source ends, fails or :meth:`Session.stop` is called.

Live sources use the pipeline's drop-oldest policy, files the blocking one. Every
outcome reaches the window through :class:`SessionCallbacks` (the Qt bridge turns
them into signals); errors arrive as the one-line message the CLI prints after
``streamseg: error:``. :meth:`Session.stop` never blocks: it wakes the output
thread and stops the pipeline from a short-lived helper thread; the threads end
after the model call in progress (the source's decode thread after its read
timeout at most, for a stalled network stream).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

from streamseg.backends import create_backend
from streamseg.backends.base import Backend
from streamseg.errors import StreamsegError
from streamseg.core import Pipeline, StreamProcessor
from streamseg.render import RenderOptions
from streamseg.sources import Source, StateEvent, VideoFileSource, is_live, open_source
from streamseg.tracking import ByteTracker
from streamseg_app.config import ModelConfig
from streamseg_app.output import RecordingEvent, ViewFrame, ViewOutput
from streamseg_app.seekable import SeekableVideoSource

__all__ = [
    "BackendCache",
    "Session",
    "SessionCallbacks",
    "SessionInfo",
    "THREAD_PREFIX",
    "error_message",
    "make_source",
    "worker_threads",
]

log = logging.getLogger("streamseg.app")

#: Every thread the application and the pipeline start has a name with this prefix.
THREAD_PREFIX = "streamseg"


def worker_threads() -> list[threading.Thread]:
    """The live threads started by the app or the pipeline (names starting with :data:`THREAD_PREFIX`)."""
    return [t for t in threading.enumerate() if t.name.startswith(THREAD_PREFIX) and t.is_alive()]


def error_message(error: BaseException) -> str:
    """The one-line message the CLI prints for ``error`` (after ``streamseg: error:``).

    Errors streamseg raises on purpose give their own message; anything else is a
    bug and is named as one (the traceback goes to the log).
    """
    if isinstance(error, StreamsegError):
        text = str(error) or type(error).__name__
    else:
        text = f"internal error: {type(error).__name__}: {error}"
    return " ".join(text.split())


def make_source(
    uri: str,
    *,
    start_frame: int = 0,
    open_timeout_s: float = 5.0,
    read_timeout_s: float = 5.0,
    on_state: Callable[[StateEvent], None] | None = None,
) -> Source:
    """An unopened source for ``uri``, as :func:`streamseg.sources.open_source` picks it.

    Video files become a :class:`~streamseg_app.seekable.SeekableVideoSource` (starting at
    ``start_frame``); cameras and network streams get the timeouts and the state callback.

    Args:
        uri: a file, image folder, ``rtsp://``/``http(s)://`` URL, ``/dev/videoN`` or ``cam:N``.
        start_frame: first frame of a video file (ignored for other sources).
        open_timeout_s: seconds to connect to a live source before failing.
        read_timeout_s: seconds without data before a live stream counts as stalled.
        on_state: live source state changes (decode thread).

    Raises:
        SourceError: the path does not exist or the URL is malformed or unsupported.
    """
    if is_live(uri):
        return open_source(
            uri, open_timeout_s=open_timeout_s, read_timeout_s=read_timeout_s, on_state=on_state
        )
    source = open_source(uri)
    if isinstance(source, VideoFileSource):
        return SeekableVideoSource(source.path, start_frame=start_frame)
    return source


class BackendCache:
    """Keeps the one backend in use, so switching or seeking a source reuses the loaded model.

    Thread-safe; a load in progress makes other callers wait for it (and reuse it when
    their config is the same).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._config: ModelConfig | None = None
        self._backend: Backend | None = None

    def get(self, config: ModelConfig) -> Backend:
        """The backend for ``config``, loading it (and dropping the previous one) if needed.

        Raises:
            ConfigError, BackendError, WeightsError: as :func:`streamseg.backends.create_backend`.
        """
        with self._lock:
            if self._backend is not None and self._config == config:
                return self._backend
            self._backend, self._config = None, None  # free the old model before loading the new one
            backend = create_backend(config)
            self._backend, self._config = backend, config
            return backend

    def clear(self) -> None:
        """Forget the loaded backend."""
        with self._lock:
            self._backend, self._config = None, None


@dataclasses.dataclass(frozen=True)
class SessionInfo:
    """What a session knows once its source is open and its model loaded.

    Attributes:
        uri: the source without credentials.
        width: frame width in pixels (0 for a live source not connected yet).
        height: frame height in pixels.
        fps: the source's frame rate (frames per second), or None.
        num_frames: frames in the file, or None (live, unknown).
        live: camera or network stream.
        seekable: the seek slider and step back work (video files).
        categories: class names of the model, indexed by label.
        model: the model settings in use.
        random_weights: the model runs seeded random weights (no real detections).
    """

    uri: str
    width: int
    height: int
    fps: Fraction | None
    num_frames: int | None
    live: bool
    seekable: bool
    categories: tuple[str, ...]
    model: ModelConfig
    random_weights: bool


def _ignore(*args: object) -> None:
    return None


@dataclasses.dataclass(frozen=True)
class SessionCallbacks:
    """Where a session reports; every callback runs in a worker thread and must be quick.

    Attributes:
        frame: a drawn :class:`~streamseg_app.output.ViewFrame`.
        state: ``(state, detail)``: ``opening``, ``loading model``, ``playing``, ``paused``,
            the live source's ``connecting`` / ``streaming`` / ``reconnecting`` / ``failed``,
            then ``ended``, ``stopped`` or ``error``.
        ready: the :class:`SessionInfo`, once the source is open and the model loaded.
        error: the one-line error message (the CLI's); the session then ends.
        recording: a :class:`~streamseg_app.output.RecordingEvent`.
        finished: the session thread is about to end, with the final state.
    """

    frame: Callable[[ViewFrame], None] = _ignore
    state: Callable[[str, str], None] = _ignore
    ready: Callable[[SessionInfo], None] = _ignore
    error: Callable[[str], None] = _ignore
    recording: Callable[[RecordingEvent], None] = _ignore
    finished: Callable[[str], None] = _ignore


class Session:
    """Plays one source through one model in worker threads (see the module docstring).

    Args:
        uri: the source (file, folder, URL, camera).
        model: the model settings.
        backends: where the loaded backend is kept between sessions.
        callbacks: where the session reports.
        options: the initial render options.
        detect_every: run the model on every K-th frame (the tracker predicts the others).
        start_frame: first frame of a video file.
        start_paused: show the first frame, then wait for :meth:`play` or :meth:`step`.
        pace: play files at their own frame rate (else as fast as the model goes).
        open_timeout_s: seconds to connect to a live source.
        read_timeout_s: seconds without data before a live stream counts as stalled.

    Raises:
        ValueError: ``detect_every`` < 1.
    """

    _counter = 0

    def __init__(
        self,
        uri: str,
        *,
        model: ModelConfig,
        backends: BackendCache,
        callbacks: SessionCallbacks,
        options: RenderOptions | None = None,
        detect_every: int = 1,
        start_frame: int = 0,
        start_paused: bool = False,
        pace: bool = True,
        open_timeout_s: float = 5.0,
        read_timeout_s: float = 5.0,
    ) -> None:
        if detect_every < 1:
            raise ValueError(f"detect_every must be >= 1, got {detect_every}")
        Session._counter += 1
        self.id = Session._counter
        self.uri = uri
        self.model = model
        self.start_frame = max(0, int(start_frame))
        self.info: SessionInfo | None = None
        self.final_state: str | None = None
        self._backends = backends
        self._cb = callbacks
        self._options = options or RenderOptions()
        self._detect_every = int(detect_every)
        self._start_paused = start_paused
        self._pace = pace
        self._open_timeout_s = open_timeout_s
        self._read_timeout_s = read_timeout_s
        self._lock = threading.Lock()
        self._stop_requested = False
        self._playing = not start_paused
        self._live_state = ""
        self._source: Source | None = None
        self._pipeline: Pipeline | None = None
        self._output: ViewOutput | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"{THREAD_PREFIX}-app-session-{self.id}", daemon=True
        )

    # -- control (UI thread; none of these blocks) --------------------------------------
    def start(self) -> Session:
        """Start the session thread; returns self."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop every thread of the session soon, without waiting (idempotent).

        The output thread is woken at once; the pipeline (and its source) is stopped
        from a helper thread, so a source that takes time to close never blocks the caller.
        """
        with self._lock:
            if self._stop_requested:
                return
            self._stop_requested = True
            pipeline, output, source = self._pipeline, self._output, self._source
        if output is not None:
            output.cancel()
        target = pipeline.stop if pipeline is not None else (source.stop if source is not None else None)
        if target is not None:
            threading.Thread(target=target, name=f"{THREAD_PREFIX}-app-stop-{self.id}", daemon=True).start()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the session thread (and so its pipeline threads); True if it ended."""
        if self._thread.ident is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        """True while the session thread runs."""
        return self._thread.is_alive()

    @property
    def stopping(self) -> bool:
        """True once :meth:`stop` was called."""
        return self._stop_requested

    def set_options(self, options: RenderOptions) -> None:
        """Draw from the next frame on with ``options``."""
        self._options = options
        if self._output is not None:
            self._output.set_options(options)

    def set_detect_every(self, k: int) -> None:
        """Run the model on every ``k``-th frame from the next frame on (k >= 1)."""
        self._detect_every = max(1, int(k))
        if self._pipeline is not None:
            self._pipeline.detect_every = self._detect_every

    @property
    def playing(self) -> bool:
        """False while paused."""
        return self._playing

    def play(self) -> None:
        """Resume."""
        self._playing = True
        if self._output is not None:
            self._output.play()
        self._report_play_state()

    def pause(self) -> None:
        """Pause at the next frame."""
        self._playing = False
        if self._output is not None:
            self._output.pause()
        self._report_play_state()

    def step(self) -> None:
        """While paused, show one more frame."""
        if self._output is not None:
            self._output.step(1)

    def start_recording(self, video: Path, jsonl: Path) -> bool:
        """Record the frames shown from the next one on; False if the stream is not running yet."""
        if self._output is None or self._stop_requested:
            return False
        self._output.start_recording(video, jsonl)
        return True

    def stop_recording(self) -> None:
        """Finish the recording (the files are closed in the output thread)."""
        if self._output is not None:
            self._output.stop_recording()

    # -- session thread ----------------------------------------------------------------
    def _state(self, state: str, detail: str = "") -> None:
        self._cb.state(state, detail)

    def _report_play_state(self) -> None:
        if self.info is None or self._stop_requested:
            return
        if not self._playing:
            self._state("paused")
        elif self.info.live:
            self._state(self._live_state or "streaming")
        else:
            self._state("playing")

    def _on_live_state(self, event: StateEvent) -> None:
        self._live_state = event.state
        if self._playing and not self._stop_requested and event.state != "stopped":
            self._state(event.state, event.detail)

    def _run(self) -> None:
        final = "stopped"
        try:
            final = self._run_inner()
        except BaseException as exc:  # noqa: BLE001 - reported to the window, never raised into Qt
            if self._stop_requested:
                final = "stopped"  # e.g. the source closed under a pipeline stopped at start-up
                log.debug("error after stop was requested", exc_info=True)
            else:
                if not isinstance(exc, StreamsegError):
                    log.error("streamseg-app: unexpected error", exc_info=exc)
                final = "error"
                self._cb.error(error_message(exc))
        finally:
            with self._lock:
                source = self._source if self._pipeline is None else None
            if source is not None:
                source.stop()  # opened but never handed to a pipeline
            self.final_state = final
            self._state(final)
            self._cb.finished(final)

    def _run_inner(self) -> str:
        self._state("opening", self.uri)
        source = make_source(
            self.uri,
            start_frame=self.start_frame,
            open_timeout_s=self._open_timeout_s,
            read_timeout_s=self._read_timeout_s,
            on_state=self._on_live_state,
        )
        with self._lock:
            self._source = source
            if self._stop_requested:
                return "stopped"
        source_info = source.open()  # a bad source fails before the model loads, as in the CLI
        if self._stop_requested:
            return "stopped"
        from streamseg.datasets.demo_export import demo_model_warning

        if warning := demo_model_warning(self.model.name, self.uri):  # the CLI's warning, in the log
            log.warning(warning)
        self._state("loading model", self.model.describe())
        backend = self._backends.get(self.model)
        if self._stop_requested:
            return "stopped"
        live = source.queue_policy == "drop_oldest"
        fps = source_info.fps
        info = SessionInfo(
            uri=source.uri,
            width=source_info.width,
            height=source_info.height,
            fps=fps,
            num_frames=source_info.num_frames,
            live=live,
            seekable=isinstance(source, SeekableVideoSource),
            categories=tuple(backend.categories),
            model=self.model,
            random_weights=bool(backend.random_weights),
        )
        pipeline_box: list[Pipeline] = []
        output = ViewOutput(
            categories=backend.categories,
            on_frame=self._cb.frame,
            options=self._options,
            live=live,
            num_frames=source_info.num_frames,
            fps=fps,
            audio_from=source.path if isinstance(source, VideoFileSource) else None,
            pace=self._pace,
            start_paused=not self._playing,
            dropped=lambda: pipeline_box[0].summary.dropped if pipeline_box else 0,
            on_recording=self._cb.recording,
        )
        processor = StreamProcessor(
            categories=backend.categories,
            tracker=ByteTracker(),
            detect_every=self._detect_every,
            hud=False,
            random_weights=bool(backend.random_weights),
        )
        pipeline = Pipeline(source, backend, [output], processor=processor)
        pipeline_box.append(pipeline)
        with self._lock:
            if self._stop_requested:
                return "stopped"
            self._pipeline, self._output = pipeline, output
        output.set_options(self._options)  # options changed while loading
        if self._playing:  # play / pause may have changed while the output was built
            output.play()
        else:
            output.pause()
            output.step(1)  # show the first frame
        self.info = info
        self._cb.ready(info)
        self._report_play_state()
        summary = pipeline.run()
        return "stopped" if summary.interrupted or self._stop_requested else "ended"
