"""The inference scheduler: 1..N streams served by one backend, each with its own output thread.

::

    source thread(s) --> inference thread (this scheduler) --[result queue per stream]--> output thread per stream
    (decode)             (model on the frames that need it,                                (StreamProcessor.write:
                          StreamProcessor.track)                                            threshold, draw, outputs)

The inference thread takes the next frame of the next stream that has one
(round-robin, so a busy stream cannot starve the others; with one stream it simply
waits for the next frame). Queue policies (DESIGN.md): a file source and its result
queue block, so no frame is ever lost; a live source (``queue_policy ==
"drop_oldest"``) and its result queue keep only the newest items, so the age of the
frame being written stays bounded by about one model latency plus decode and draw
time and never grows; discarded frames are counted in the stream's metrics.

Errors, by :attr:`Runner.fatal`:

* ``fatal=True`` (``streamseg run``, the window): the first error of any stage (a
  truncated video, a backend error, a full disk) stops every stream; frames already
  processed are still written, the outputs are closed so they stay valid (a playable
  MP4, a flushed JSONL), and :meth:`Runner.run` raises that error;
* ``fatal=False`` (``streamseg monitor``): a stream whose source fails for good ends
  alone (reported through ``on_stream_error``), a frame the model fails on is skipped
  and counted, an output that fails on a frame is counted; the other streams go on.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Sequence

from streamseg.backends.base import Backend
from streamseg.core.metrics import RunSummary
from streamseg.core.processor import StreamProcessor
from streamseg.errors import SourceError, StreamsegError
from streamseg.queues import BoundedQueue, QueueClosed
from streamseg.sources.base import Source
from streamseg.types import FrameResult

__all__ = ["Runner", "Stream"]


@dataclasses.dataclass(eq=False)
class Stream:
    """One stream of a :class:`Runner`: its source, its processor and its result queue.

    Args:
        name: the stream's name (thread names, logs).
        source: an unstarted source, or None for a stream that could not be created
            (it counts as failed from the start).
        processor: the stream's :class:`~streamseg.core.processor.StreamProcessor`.
        queue_size: capacity of the result queue; None for 4 after a file source
            (blocking) and 2 after a live one (drop-oldest).
        on_result: called in the output thread after each frame is written (e.g. a
            progress bar's update); must be quick.

    Attributes:
        done: the stream has ended (source finished, failed or stopped).
        error: the error that ended it, or None.
    """

    name: str
    source: Source | None
    processor: StreamProcessor
    queue_size: int | None = None
    on_result: Callable[[FrameResult], None] | None = None
    done: bool = False
    error: BaseException | None = None

    def __post_init__(self) -> None:
        live = self.live
        size = self.queue_size if self.queue_size is not None else (2 if live else 4)
        self.results: BoundedQueue[FrameResult] = BoundedQueue(size, "drop_oldest" if live else "block")
        if live and not self.processor.summary.live:
            self.processor.summary = RunSummary(live=True)  # rolling windows for a stream that runs for days
        self.thread: threading.Thread | None = None
        if self.source is None:
            self.done = True
            self.results.close()

    @property
    def live(self) -> bool:
        """A live source: drop-oldest queues."""
        return self.source is not None and self.source.queue_policy == "drop_oldest"

    @property
    def summary(self) -> RunSummary:
        """The stream's :class:`~streamseg.core.metrics.RunSummary` (drops brought up to date)."""
        s = self.processor.summary
        s.dropped_source = int(getattr(self.source, "dropped", 0))
        s.dropped_results = self.results.dropped
        return s


class Runner:
    """Runs streams through one backend (see the module docstring).

    Args:
        backend: any :class:`~streamseg.backends.base.Backend`.
        streams: the streams; each keeps its own tracker and outputs.
        fatal: the first error ends the whole run (True), or only its stream / frame (False).
        on_stream_error: ``(stream, error)`` when a stream ends with an error (any mode).
    """

    def __init__(
        self,
        backend: Backend,
        streams: Sequence[Stream],
        *,
        fatal: bool = True,
        on_stream_error: Callable[[Stream, BaseException], None] | None = None,
    ) -> None:
        self.backend = backend
        self.streams = list(streams)
        self.fatal = fatal
        self.on_stream_error = on_stream_error
        self._stop = threading.Event()
        self._errors: list[BaseException] = []
        self._lock = threading.Lock()
        self._inference: threading.Thread | None = None
        self._t_start = 0.0
        self.interrupted = False

    # -- control -------------------------------------------------------------------------
    def start(self) -> Runner:
        """Start every source, the output threads and the inference thread; returns self.

        Raises:
            SourceError: with ``fatal``, a source that cannot start (the outputs are closed first).
        """
        self._t_start = time.monotonic()
        for stream in self.streams:
            if stream.source is None:
                continue
            try:
                stream.source.start()
            except BaseException as exc:
                if self.fatal:
                    for s in self.streams:
                        s.processor.close()
                    raise
                self._end_stream(stream, exc)
        for stream in self.streams:
            stream.thread = threading.Thread(
                target=self._output_loop, args=(stream,), name=f"streamseg-output:{stream.name}", daemon=True
            )
            stream.thread.start()
        self._inference = threading.Thread(target=self._inference_loop, name="streamseg-inference", daemon=True)
        self._inference.start()
        return self

    def stop(self) -> None:
        """Stop every stream at its next frame; outputs are closed cleanly. Thread-safe, idempotent."""
        self._stop.set()
        self.interrupted = True
        for stream in self.streams:
            stream.processor.summary.interrupted = True
            stream.results.cancel()
            if stream.source is not None:
                stream.source.stop()

    @property
    def error(self) -> BaseException | None:
        """The first error of any stage so far (what :meth:`run` raises with ``fatal``), or None."""
        with self._lock:
            return self._errors[0] if self._errors else None

    @property
    def running(self) -> bool:
        """True while any output thread is alive."""
        return any(s.thread is not None and s.thread.is_alive() for s in self.streams)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for every output thread to end; True when all have (the run is over)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for stream in self.streams:
            if stream.thread is not None:
                stream.thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not self.running

    def join(self, timeout: float = 60.0) -> None:
        """Stop the sources and join every thread (the inference thread may be inside one model call)."""
        self.wait(timeout)
        for stream in self.streams:
            if stream.source is not None:
                stream.source.stop()
        self._stop.set()
        if self._inference is not None:
            self._inference.join(timeout)
        wall = time.monotonic() - self._t_start
        for stream in self.streams:
            stream.summary.wall_s = wall

    def run(self) -> list[Stream]:
        """Start, wait for every stream to end (or :meth:`stop`), join; return the streams.

        Raises:
            StreamsegError: with ``fatal``, the first error of any stage, after every
                frame processed before it was written and the outputs were closed.
            KeyboardInterrupt: Ctrl-C; the outputs written so far are closed first.
        """
        self.start()
        try:
            while not self.wait(0.1):
                pass
        except KeyboardInterrupt:
            self.stop()
            self.join()
            raise
        self.join()
        if self.fatal and self.error is not None:
            raise self.error
        return self.streams

    # -- internals -----------------------------------------------------------------------
    def _end_stream(self, stream: Stream, error: BaseException | None) -> None:
        """The stream is over (its output thread still writes what is queued)."""
        if stream.done:
            return
        stream.done = True
        if error is not None:
            stream.error = error
            stream.processor.summary.error = error
            with self._lock:
                self._errors.append(error)
            if self.on_stream_error is not None:
                self.on_stream_error(stream, error)
            if self.fatal:
                self._stop.set()
                for other in self.streams:
                    if other.source is not None:
                        other.source.stop()
        stream.results.close(error if self.fatal else None)

    def _next(self, stream: Stream, timeout: float) -> tuple | None | bool:
        """The stream's next ``(frame, decode_ms)``; None at its end; False if none is ready."""
        if not stream.live and stream.results.maxsize and len(stream.results) >= stream.results.maxsize:
            if len(self._active()) > 1:
                return False  # its outputs are behind: serve the others (no frame is lost)
        assert stream.source is not None
        try:
            return stream.source.read(timeout=timeout)
        except TimeoutError:
            return False

    def _active(self) -> list[Stream]:
        return [s for s in self.streams if not s.done]

    def _inference_loop(self) -> None:
        start = 0
        while not self._stop.is_set():
            active = self._active()
            if not active:
                break
            n = len(active)
            timeout = 0.1 if n == 1 else 0.0
            served = False
            for k in range(n):
                stream = active[(start + k) % n]
                try:
                    item = self._next(stream, timeout)
                except BaseException as exc:  # noqa: BLE001 - a SourceError: truncated file, dead stream
                    self._end_stream(stream, exc)
                    continue
                if item is False:
                    continue
                if item is None:
                    self._end_stream(stream, None)
                    continue
                start = (start + k + 1) % n
                served = True
                try:
                    self._process(stream, *item)
                except BaseException as exc:  # noqa: BLE001 - reported by run() or the callback
                    if self.fatal or not isinstance(exc, StreamsegError) or isinstance(exc, SourceError):
                        self._end_stream(stream, exc)
                    else:
                        stream.processor.summary.model_errors += 1
                break
            if not served and n > 1:
                self._stop.wait(0.005)
        for stream in self.streams:
            stream.results.close(None)  # close, not cancel: the output threads write what is queued

    def _process(self, stream: Stream, frame, decode_ms: float) -> None:  # noqa: ANN001 - Frame
        timings = {"decode": decode_ms}
        detections = None
        if stream.processor.wants_model(frame):
            detections, model_timings = self.backend.infer(frame.image)
            timings.update(model_timings)
        result = stream.processor.track(frame, detections, timings)
        stream.results.put(result)

    def _output_loop(self, stream: Stream) -> None:
        processor = stream.processor
        try:
            while True:
                try:
                    result = stream.results.get()
                except QueueClosed:
                    break
                try:
                    processor.write(result)
                except StreamsegError as exc:
                    if self.fatal:
                        raise
                    processor.summary.output_errors += 1
                    continue
                if stream.on_result is not None:
                    stream.on_result(result)
        except BaseException as exc:  # noqa: BLE001 - reported by run()
            with self._lock:
                self._errors.append(exc)
            self._stop.set()
            for s in self.streams:
                s.results.cancel()
                if s.source is not None:
                    s.source.stop()
        finally:
            for exc in processor.close():
                with self._lock:
                    self._errors.append(exc)
