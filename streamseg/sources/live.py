"""Live sources: RTSP, HTTP/HLS and local cameras, with reconnection and a reported state.

A :class:`LiveSource` decodes with PyAV (FFmpeg) in the base class's decode
thread into a ``"drop_oldest"`` queue of depth 1-2, so the consumer always gets
the newest frame and the age of the frame it processes stays bounded by one
consumer period plus decode time, however slow the consumer is. Frames the
consumer never saw are counted in :attr:`Source.dropped`.

Reconnection: when the stream fails (a socket error, a decode error), stalls for
longer than the read timeout, or ends, the same decode thread closes the input
and opens it again after a capped exponential backoff (0.5 s, 1 s, 2 s, ...,
30 s by default; see :class:`Backoff`), forever by default. No thread is created
per reconnect. The state goes ``connecting -> streaming -> reconnecting ->
streaming -> ... -> stopped`` (or ``failed`` when the attempts run out); every
change is kept in :attr:`LiveSource.events` and passed to the ``on_state``
callback.

Timestamps: ``Frame.pts_s`` is seconds since the source first started
streaming, and it never goes back. Within one connection it follows the
stream's own timestamps (relative to the first frame of the connection, so
variable rate and jitter are kept); across a reconnect the outage is counted in
wall time (``time.monotonic()``), so the timeline of a recording matches the
wall clock and a gap shows as a gap. ``Frame.index`` counts every frame
decoded since the start, across reconnects (dropped frames keep their index, so
the consumer sees the jump).

Credentials: the URL given with ``user:password@`` is used to connect, but
only :func:`~streamseg.sources.base.redact_url`'s form is stored in
:attr:`Source.uri`, thread names, events, errors and logs.

The states, :class:`StateEvent` and :class:`Backoff` are defined in
:mod:`streamseg.sources.live_state` and importable from here as before.

Timeouts: ``open_timeout_s`` bounds connecting (and probing the stream);
``read_timeout_s`` bounds any single wait for data. Both go to PyAV's own
interrupt callback (``av.open(timeout=(open, read))``); for RTSP the FFmpeg
``timeout`` option (socket I/O timeout in microseconds, FFmpeg >= 5; PyAV 18
bundles FFmpeg 8) is also set. :meth:`Source.stop` may therefore wait up to
``read_timeout_s`` for a decode thread stuck in a read.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from fractions import Fraction

import av

from streamseg.errors import SourceError
from streamseg.sources.base import Source, SourceInfo, redact_url, scrub_credentials
from streamseg.sources.live_state import STATES, Backoff, State, StateEvent
from streamseg.types import Frame

__all__ = [
    "Backoff",
    "LiveSource",
    "RtspSource",
    "HttpSource",
    "CameraSource",
    "StateEvent",
    "State",
    "STATES",
]

log = logging.getLogger("streamseg.sources.live")


def _av_reason(e: BaseException) -> str:
    """The human part of a PyAV/OS error: ``strerror`` only, never the URL PyAV attaches."""
    reason = getattr(e, "strerror", None) or type(e).__name__
    return str(reason)


class LiveSource(Source):
    """A network stream or camera read with PyAV, newest frames first, reconnecting on failure.

    Args:
        uri: the URL or device; may carry ``user:password@`` (used, never shown).
        fmt: FFmpeg input format (``"rtsp"``, ``"v4l2"``) or None to let FFmpeg guess.
        options: FFmpeg input options (strings), e.g. ``{"rtsp_transport": "tcp"}``.
        queue_size: frames kept for the consumer, newest first (default 2; 1 gives
            the lowest latency).
        open_timeout_s: seconds to connect and probe the stream before an attempt fails.
        read_timeout_s: seconds without data before the stream counts as stalled.
        backoff: reconnection delays and attempt limit.
        reconnect: reconnect when the stream fails, stalls or ends; False ends the
            source at the first failure (an error) or end of stream.
        fail_fast: :meth:`open` connects once and raises :class:`SourceError` if
            that fails (a clear error within ``open_timeout_s``). False: :meth:`open`
            returns at once (the info has size 0 until connected) and the decode
            thread keeps retrying per ``backoff``.
        on_state: called as ``on_state(event)`` from the decode thread on each
            state change; must be quick and must not raise.
        max_frames: stop (without error) after this many frames; None for all.
        name: the ``Frame.source_id`` (default: the redacted URL).

    Attributes:
        state: the current state (see :data:`STATES`).
        events: every :class:`StateEvent` so far, in order.
        reconnects: connections made after the first one.
        attempts: connection attempts so far (successful or not).
        last_error: the latest connection or stream error (no credentials), or None.

    Raises:
        ValueError: invalid timeouts or queue size.
    """

    queue_policy = "drop_oldest"

    def __init__(
        self,
        uri: str,
        *,
        fmt: str | None = None,
        options: dict[str, str] | None = None,
        queue_size: int = 2,
        open_timeout_s: float = 5.0,
        read_timeout_s: float = 5.0,
        backoff: Backoff | None = None,
        reconnect: bool = True,
        fail_fast: bool = True,
        on_state: Callable[[StateEvent], None] | None = None,
        max_frames: int | None = None,
        name: str | None = None,
    ) -> None:
        if not open_timeout_s > 0 or not read_timeout_s > 0:
            raise ValueError(
                f"timeouts must be > 0 s, got open {open_timeout_s}, read {read_timeout_s}"
            )
        super().__init__(uri, queue_size=queue_size, max_frames=max_frames)
        self._url = str(uri)  # with credentials: only ever passed to FFmpeg
        self.name = name or self.uri
        self.fmt = fmt
        self.options = dict(options or {})
        self.open_timeout_s = float(open_timeout_s)
        self.read_timeout_s = float(read_timeout_s)
        self.backoff = backoff or Backoff()
        self.reconnect_enabled = reconnect
        self.fail_fast = fail_fast
        self.on_state = on_state
        self.stop_timeout_s = self.read_timeout_s + 2.0
        self.state: str = "connecting"
        self.events: list[StateEvent] = [StateEvent("connecting", time.monotonic(), self.uri)]
        self.reconnects = 0
        self.attempts = 0
        self.last_error: str | None = None
        self._container: av.container.InputContainer | None = None
        self._stream: av.VideoStream | None = None
        self._lock = threading.Lock()
        self._connections = 0

    # -- state ----------------------------------------------------------------------------

    def _set_state(self, state: str, detail: str = "") -> None:
        detail = scrub_credentials(detail.replace(self._url, self.uri))
        with self._lock:
            if state == self.state:
                return  # repeated attempts while reconnecting are counted in attempts
            self.state = state
            event = StateEvent(state, time.monotonic(), detail)
            self.events.append(event)
        log.info("%s: %s%s", self.uri, state, f" ({detail})" if detail else "")
        if self.on_state is not None:
            with contextlib.suppress(Exception):
                self.on_state(event)

    @property
    def frames(self) -> int:
        """Frames decoded so far (all connections)."""
        return self.frames_decoded

    # -- connecting -----------------------------------------------------------------------

    def _connect(self) -> SourceInfo:
        """One connection attempt: open the input and its first video stream. Raises SourceError."""
        self.attempts += 1
        t0 = time.monotonic()
        try:
            container = av.open(
                self._url,
                mode="r",
                format=self.fmt,
                options=self.options,
                timeout=(self.open_timeout_s, self.read_timeout_s),
            )
        except (av.FFmpegError, OSError) as e:
            timed_out = time.monotonic() - t0 >= 0.9 * min(self.open_timeout_s, self.read_timeout_s)
            raise SourceError(self._message(e, timed_out=timed_out)) from None
        if not container.streams.video:
            container.close()
            raise SourceError(f"{self.uri}: the stream has no video")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        self._container, self._stream = container, stream
        ctx = stream.codec_context
        fps = stream.average_rate or stream.guessed_rate or None
        self._connections += 1
        return SourceInfo(
            uri=self.uri,
            width=ctx.width,
            height=ctx.height,
            fps=Fraction(fps) if fps else None,
            num_frames=None,
            codec=ctx.name,
            live=True,
        )

    def _message(self, e: BaseException, *, timed_out: bool = False) -> str:
        """A one-line, credential-free description of a connection error."""
        reason = _av_reason(e)
        if timed_out or isinstance(e, av.ExitError) or "Immediate exit" in reason:
            reason = f"no valid answer within the open timeout ({self.open_timeout_s:g} s)"
        elif isinstance(e, av.FFmpegError) and getattr(e, "errno", None) == 1094995529:  # AVERROR_INVALIDDATA
            reason = "invalid data (not a video stream this protocol can read)"
        return scrub_credentials(f"cannot open {self.uri}: {reason}")

    def _disconnect(self) -> None:
        if self._container is not None:
            with contextlib.suppress(Exception):
                self._container.close()
        self._container, self._stream = None, None

    def _open(self) -> SourceInfo:
        if not self.fail_fast:
            return SourceInfo(uri=self.uri, width=0, height=0, fps=None, num_frames=None, codec="", live=True)
        try:
            info = self._connect()
        except SourceError as e:
            self.last_error = str(e)
            self._set_state("failed", str(e))
            raise
        return info

    # -- decoding -------------------------------------------------------------------------

    def _frames(self) -> Iterator[Frame]:
        index = 0
        pts_offset = 0.0  # pts_s of this connection's first timestamped frame
        last_pts: float | None = None
        last_t: float | None = None
        failures = 0
        connected = self._container is not None
        while not self._stop_event.is_set():
            if not connected:
                if failures:
                    if self.backoff.max_attempts is not None and failures >= self.backoff.max_attempts:
                        msg = f"{self.uri}: gave up after {failures} failed attempts ({self.last_error})"
                        self._set_state("failed", msg)
                        raise SourceError(msg)
                    if self._stop_event.wait(self.backoff.delay_s(failures)):
                        break
                try:
                    self.info = self._connect()
                except SourceError as e:
                    failures += 1
                    self.last_error = str(e)
                    self._set_state("reconnecting", str(e))
                    continue
                if self._connections > 1:
                    self.reconnects += 1
                connected = True
            first_of_connection = True
            base_ts: float | None = None
            error = f"{self.uri}: the stream ended after frame {index}"
            try:
                for ts, image in self._decode_connection():
                    now = time.monotonic()
                    # Wall-clock estimate: the previous frame + the time since it (0 at the start).
                    wall_pts = 0.0 if last_pts is None or last_t is None else last_pts + max(now - last_t, 1e-3)
                    if first_of_connection:
                        failures = 0
                        self._set_state("streaming", f"{self.info.width}x{self.info.height}" if self.info else "")
                        first_of_connection = False
                    if base_ts is None and ts is not None:
                        base_ts, pts_offset = ts, wall_pts  # anchor this connection's clock
                    pts_s = pts_offset + (ts - base_ts) if ts is not None and base_ts is not None else wall_pts
                    if last_pts is not None and pts_s <= last_pts:
                        pts_s = last_pts + 1e-3  # never backwards (a wrap or a reset of the stream clock)
                    last_pts, last_t = pts_s, now
                    yield Frame(source_id=self.name, index=index, pts_s=pts_s, t_capture=now, image=image)
                    index += 1
            except (av.FFmpegError, OSError, ValueError) as e:
                error = f"{self.uri}: stream failed after frame {index} ({_av_reason(e)})"
            finally:
                self._disconnect()
                connected = False
            if self._stop_event.is_set():
                break
            if first_of_connection:
                failures += 1  # connected but got no frame: counts as a failed attempt
            self.last_error = error
            if not self.reconnect_enabled:
                if "the stream ended" in error:
                    break
                raise SourceError(error)
            self._set_state("reconnecting", error)

    def _decode_connection(self) -> Iterator[tuple[float | None, object]]:
        """Yield ``(timestamp_s or None, rgb image)`` from the open connection until it ends or fails."""
        container, stream = self._container, self._stream
        assert container is not None and stream is not None
        time_base = stream.time_base
        for av_frame in container.decode(stream):
            if self._stop_event.is_set():
                return
            ts = av_frame.pts if av_frame.pts is not None else av_frame.dts
            ts_s = float(ts * time_base) if ts is not None and time_base else None
            image = av_frame.to_ndarray(format="rgb24")
            image.flags.writeable = False
            yield ts_s, image

    def _close(self) -> None:
        self._disconnect()
        if self.state != "failed":  # a failed source keeps "failed" as its final state
            self._set_state("stopped")

    def stop(self) -> None:
        """Stop decoding and join the decode thread (idempotent); the state becomes ``stopped``.

        May wait up to ``read_timeout_s`` + 2 s for a decode thread stuck in a read.
        """
        super().stop()
        if self._thread is None and self.state not in ("stopped", "failed"):
            self._set_state("stopped")

    def stats(self) -> dict[str, object]:
        """Counters and state, safe to log: state, frames, dropped, reconnects, attempts, last_error."""
        return {
            "state": self.state,
            "frames": self.frames_decoded,
            "dropped": self.dropped,
            "reconnects": self.reconnects,
            "attempts": self.attempts,
            "last_error": self.last_error,
        }


class RtspSource(LiveSource):
    """An RTSP (or RTSPS) stream: TCP interleaved by default, UDP on request.

    Args:
        url: ``rtsp://[user:password@]host[:port]/path`` or ``rtsps://...``.
        transport: ``"tcp"`` (default: works through NAT and firewalls, no packet
            loss) or ``"udp"`` (lower latency on a clean LAN, may lose packets).
        **kwargs: as :class:`LiveSource` (timeouts, backoff, queue size, ...).

    Raises:
        SourceError: a malformed URL (no host).
        ValueError: an unknown transport.
    """

    def __init__(self, url: str, *, transport: str = "tcp", **kwargs: object) -> None:
        if transport not in ("tcp", "udp"):
            raise ValueError(f"transport must be 'tcp' or 'udp', got {transport!r}")
        _check_url(url, ("rtsp", "rtsps"))
        options = {
            "rtsp_transport": transport,
            # FFmpeg >= 5: socket I/O timeout in microseconds (older FFmpeg called it stimeout).
            "timeout": str(int(float(kwargs.get("read_timeout_s", 5.0)) * 1e6)),  # type: ignore[arg-type]
            "fflags": "nobuffer",
            "flags": "low_delay",
        }
        options.update(kwargs.pop("options", None) or {})  # type: ignore[arg-type]
        super().__init__(url, fmt="rtsp", options=options, **kwargs)  # type: ignore[arg-type]
        self.transport = transport


class HttpSource(LiveSource):
    """An HTTP(S) stream FFmpeg can read: HLS playlists (``.m3u8``), MJPEG, MPEG-TS, FLV.

    FFmpeg's own ``reconnect`` options are not used: :class:`LiveSource` reconnects.

    Raises:
        SourceError: a malformed URL (no host).
    """

    def __init__(self, url: str, **kwargs: object) -> None:
        _check_url(url, ("http", "https"))
        options = {"rw_timeout": str(int(float(kwargs.get("read_timeout_s", 5.0)) * 1e6))}  # type: ignore[arg-type]
        options.update(kwargs.pop("options", None) or {})  # type: ignore[arg-type]
        super().__init__(url, options=options, **kwargs)  # type: ignore[arg-type]


class CameraSource(LiveSource):
    """A local V4L2 camera (``/dev/videoN``) through FFmpeg's ``v4l2`` input.

    Args:
        device: ``/dev/videoN``, or an index ``N`` (meaning ``/dev/videoN``).
        size: requested ``(width, height)`` in pixels, or None for the driver default.
        fps: requested frame rate in frames per second, or None for the default.
        input_format: FFmpeg pixel/codec format name asked of the camera (e.g.
            ``"mjpeg"``, ``"yuyv422"``), or None.
        **kwargs: as :class:`LiveSource`.

    Raises:
        SourceError: from :meth:`open`, the device does not exist, is busy or
            rejects the size or rate.
    """

    def __init__(
        self,
        device: str | int,
        *,
        size: tuple[int, int] | None = None,
        fps: float | None = None,
        input_format: str | None = None,
        **kwargs: object,
    ) -> None:
        path = f"/dev/video{int(device)}" if isinstance(device, int) or str(device).isdigit() else str(device)
        options: dict[str, str] = {}
        if size is not None:
            options["video_size"] = f"{int(size[0])}x{int(size[1])}"
        if fps is not None:
            options["framerate"] = f"{float(fps):g}"
        if input_format is not None:
            options["input_format"] = input_format
        options.update(kwargs.pop("options", None) or {})  # type: ignore[arg-type]
        super().__init__(path, fmt="v4l2", options=options, **kwargs)  # type: ignore[arg-type]
        self.device = path

    def _connect(self) -> SourceInfo:
        import os

        if not os.path.exists(self.device):
            self.attempts += 1
            raise SourceError(f"no such camera: {self.device} (is it plugged in? see `ls /dev/video*`)")
        return super()._connect()


_HOST = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.\-]*://(?:[^/@]*@)?([^/:?#\s]+|\[[0-9a-fA-F:.]+\])(?::(\d*))?(?:[/?#]|$)")


def _check_url(url: str, schemes: tuple[str, ...]) -> None:
    """Raise SourceError (without credentials) if ``url`` is not ``scheme://host[:port]/...``."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    safe = redact_url(url)
    if scheme not in schemes:
        raise SourceError(f"malformed URL {safe!r}: expected {' or '.join(s + '://' for s in schemes)}")
    m = _HOST.match(url)
    if m is None or not m.group(1):
        raise SourceError(f"malformed URL {safe!r}: no host (expected {scheme}://host[:port]/path)")
    port = m.group(2)
    if port is not None and (not port.isdigit() or not 0 < int(port) < 65536):
        raise SourceError(f"malformed URL {safe!r}: invalid port {port!r}")
    if any(c.isspace() for c in url):
        raise SourceError(f"malformed URL {safe!r}: contains whitespace")
