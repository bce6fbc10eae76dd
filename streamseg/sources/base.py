"""The frame source base class: a decode thread feeding a bounded queue.

A :class:`Source` opens its input synchronously (:meth:`Source.open`, which
fills :attr:`Source.info` or raises :class:`~streamseg.errors.SourceError`),
then decodes in its own daemon thread into a
:class:`~streamseg.queues.BoundedQueue`. The consumer reads ``(frame,
decode_ms)`` pairs with :meth:`Source.read` or iterates frames. A file source
uses the ``"block"`` policy, so no frame is ever lost; a live source uses
``"drop_oldest"`` (DESIGN.md, "Data flow").

Subclasses implement three hooks: ``_open() -> SourceInfo``, ``_frames() ->
Iterator[Frame]`` (run in the decode thread; raises SourceError when the input
fails mid-way) and ``_close()``.
"""

from __future__ import annotations

import dataclasses
import re
import threading
import time
from collections.abc import Iterator
from fractions import Fraction
from types import TracebackType

from streamseg.errors import SourceError
from streamseg.queues import BoundedQueue, Policy, QueueClosed
from streamseg.types import Frame

__all__ = ["SourceInfo", "Source", "redact_url", "scrub_credentials"]

_URL_CREDENTIALS = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.\-]*://)[^/@]*@")
_ANY_URL_CREDENTIALS = re.compile(r"([a-zA-Z][a-zA-Z0-9+.\-]*://)[^/@\s'\"]*@")


def scrub_credentials(text: str) -> str:
    """Remove ``user:password@`` from every URL inside ``text`` (an error message, a log line).

    Args:
        text: any text, e.g. ``"cannot open 'rtsp://admin:pw@cam/s': refused"``.

    Returns:
        The text with each URL's credentials removed: ``"cannot open 'rtsp://cam/s': refused"``.
    """
    return _ANY_URL_CREDENTIALS.sub(r"\1", text)


def redact_url(uri: str) -> str:
    """Return ``uri`` with any ``user:password@`` removed, safe to print or log.

    Args:
        uri: a path or URL, e.g. ``rtsp://admin:secret@10.0.0.5/stream1``.

    Returns:
        The same string without credentials, e.g. ``rtsp://10.0.0.5/stream1``.
        Paths and URLs without credentials are returned unchanged.
    """
    return _URL_CREDENTIALS.sub(r"\1", uri)


@dataclasses.dataclass(frozen=True)
class SourceInfo:
    """What a source knows about its stream once opened.

    Attributes:
        uri: the path or URL, without credentials (safe to print).
        width: frame width in pixels (an image folder: its first image's; the others may differ).
        height: frame height in pixels (likewise).
        fps: average frame rate in frames per second, or None if unknown.
        num_frames: number of frames the container declares (or estimated as
            duration x fps), or None if unknown (live streams).
        codec: decoder name, e.g. ``"h264"``, or ``"images (jpg)"`` for an image folder.
        live: True for cameras and network streams (frames may be dropped).
    """

    uri: str
    width: int
    height: int
    fps: Fraction | None
    num_frames: int | None
    codec: str
    live: bool = False


class Source:
    """Base class of frame sources: decodes in a daemon thread into a bounded queue.

    A source is single-use: ``start()`` once, read until the end (or ``stop()``).
    Use it as a context manager (``with source:`` starts and stops it) or call
    :meth:`start` and :meth:`stop` yourself; :meth:`read` and iteration start it
    on first use.

    Args:
        uri: the path or URL (credentials are stripped before it is stored).
        queue_size: capacity of the frame queue, >= 1.
        max_frames: stop (without error) after this many frames; None for all.

    Attributes:
        info: the :class:`SourceInfo`, None until :meth:`open`.
        frames_decoded: frames the decode thread has produced so far.
        queue_policy: ``"block"`` (files) or ``"drop_oldest"`` (live sources).
        skip_before: frames with a lower ``Frame.index`` are decoded and discarded, not
            queued (0: none); set before :meth:`start` to resume a file after the frame
            a restarted stream last wrote.
        index_offset, pts_offset_s: added to every frame's ``index`` and ``pts_s`` (0: none);
            set before :meth:`start` so a live stream resumed in a new process continues
            its numbering and timeline.

    Raises:
        ValueError: if ``queue_size`` < 1 or ``max_frames`` < 0.
    """

    queue_policy: Policy = "block"
    #: Seconds :meth:`stop` waits for the decode thread to finish.
    stop_timeout_s: float = 1.0

    def __init__(self, uri: str, *, queue_size: int = 8, max_frames: int | None = None) -> None:
        if max_frames is not None and max_frames < 0:
            raise ValueError(f"max_frames must be >= 0 or None, got {max_frames}")
        self.uri = redact_url(str(uri))
        self.max_frames = max_frames
        self.info: SourceInfo | None = None
        self.frames_decoded = 0
        self.skip_before = 0
        self.index_offset = 0
        self.pts_offset_s = 0.0
        self._queue: BoundedQueue[tuple[Frame, float]] = BoundedQueue(queue_size, self.queue_policy)
        self._stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._opened = False
        self._closed = False

    # -- subclass hooks -------------------------------------------------------------------

    def _open(self) -> SourceInfo:
        """Open the input and describe it. Raises SourceError."""
        raise NotImplementedError

    def _frames(self) -> Iterator[Frame]:
        """Yield decoded frames in order (decode thread). Raises SourceError on failure."""
        raise NotImplementedError

    def _close(self) -> None:
        """Release the input (called once, from the decode thread or from stop())."""

    # -- public API -----------------------------------------------------------------------

    def open(self) -> SourceInfo:
        """Open the input synchronously and fill :attr:`info` (idempotent).

        Returns:
            The :class:`SourceInfo`.

        Raises:
            SourceError: the input is missing, unreadable, not a video, or has no
                video stream; the message names it.
        """
        if self._closed:
            raise SourceError(f"{self.uri}: source already stopped; create a new one")
        if not self._opened:
            self.info = self._open()
            self._opened = True
        assert self.info is not None
        return self.info

    def start(self) -> Source:
        """Open the input if needed and start the decode thread (idempotent).

        Returns:
            self, for chaining.

        Raises:
            SourceError: as :meth:`open`.
        """
        self.open()
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name=f"streamseg-source:{self.uri}", daemon=True
            )
            self._thread.start()
        return self

    def read(self, timeout: float | None = None) -> tuple[Frame, float] | None:
        """Return the next frame and the time it took to decode, in order.

        Starts the source on first use.

        Args:
            timeout: seconds to wait for a frame; None waits as long as needed.

        Returns:
            ``(frame, decode_ms)``, where ``decode_ms`` is the wall time the decode
            thread spent producing this frame (demux, decode and RGB conversion,
            in milliseconds); or None at the end of the stream or after :meth:`stop`.

        Raises:
            SourceError: after the last good frame, if decoding failed mid-way
                (truncated or corrupt input). Raised again on every later call.
            TimeoutError: no frame came within ``timeout`` seconds.
        """
        if self._thread is None and not self._closed:
            self.start()
        try:
            return self._queue.get(timeout)
        except QueueClosed:
            if self._queue.error is not None and not self._stop_event.is_set():
                raise self._queue.error from None
            return None

    def __iter__(self) -> Iterator[Frame]:
        """Yield frames until the end of the stream (see :meth:`read` for errors)."""
        while (item := self.read()) is not None:
            yield item[0]

    def stop(self) -> None:
        """Stop decoding, discard queued frames and join the decode thread (idempotent).

        Works when the consumer stopped reading and the decode thread is blocked
        on a full queue: the queue is cancelled, which wakes it. Waits up to
        :attr:`stop_timeout_s` seconds for the thread.
        """
        self._stop_event.set()
        self._queue.cancel()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(self.stop_timeout_s)
        if thread is None and self._opened and not self._closed:
            self._close()  # opened but never started: the thread will not close it
        self._closed = True

    @property
    def dropped(self) -> int:
        """Frames discarded by the queue's ``drop_oldest`` policy (0 for files)."""
        return self._queue.dropped

    @property
    def running(self) -> bool:
        """True while the decode thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> Source:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri!r})"

    # -- decode thread --------------------------------------------------------------------

    def _run(self) -> None:
        """Decode thread: pull frames from ``_frames()`` and queue them with their decode time."""
        error: BaseException | None = None
        frames: Iterator[Frame] | None = None
        try:
            frames = self._frames()
            while not self._stop_event.is_set():
                if self.max_frames is not None and self.frames_decoded >= self.max_frames:
                    break
                t0 = time.perf_counter()
                frame = next(frames, None)
                if frame is None:
                    break
                decode_ms = (time.perf_counter() - t0) * 1000.0
                self.frames_decoded += 1
                if frame.index < self.skip_before:
                    continue
                if self.index_offset or self.pts_offset_s:
                    frame = dataclasses.replace(
                        frame, index=frame.index + self.index_offset, pts_s=frame.pts_s + self.pts_offset_s
                    )
                if not self._queue.put((frame, decode_ms)):
                    break  # cancelled by stop()
        except SourceError as e:
            error = e
        except Exception as e:  # noqa: BLE001 - surfaced to the consumer as a SourceError
            error = SourceError(
                scrub_credentials(
                    f"{self.uri}: decoding failed after frame {self.frames_decoded} ({type(e).__name__}: {e})"
                )
            )
            error.__cause__ = e
        finally:
            try:
                if frames is not None:
                    frames.close()  # type: ignore[attr-defined]  # runs the generator's cleanup
                self._close()
            finally:
                self._queue.close(error)
