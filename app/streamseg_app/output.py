"""The window's end of the pipeline: a :class:`streamseg.sinks.Output` that draws frames for the view.

:class:`ViewOutput` runs in the pipeline's output thread. For every result it

1. waits while playback is paused (a frame step lets one result through), and, for
   files, until the frame's presentation time (so a file plays at its own speed
   when the model is faster than real time);
2. keeps what the current :class:`~streamseg.render.RenderOptions` show
   (:func:`~streamseg.render.visible_instances`: score threshold, classes) and draws
   it (:func:`~streamseg.render.render`), reading the options afresh for every frame;
3. converts the drawing to the byte order Qt paints fastest (BGRA, ``QImage.Format_RGB32``),
   so the UI thread only wraps the buffer and paints;
4. writes it to the recording, if one is running (annotated MP4 + JSONL of what is shown);
5. hands a :class:`ViewFrame` to a callback (the Qt bridge, which keeps only the newest).

While paused it also redraws the frame on screen when an option changes, and
finishes a recording that is stopped. No Qt here: the module is plain Python and
numpy, so the pipeline side is testable and usable without a display.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Sequence
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from streamseg.errors import StreamsegError
from streamseg.render import RenderOptions, TrackTrails, render, visible_instances
from streamseg.sinks import JsonlOutput, Output, VideoOutput
from streamseg.types import FrameResult, Instances

__all__ = ["ViewFrame", "ViewOutput", "RecordingEvent", "TrackAges", "Recorder"]

log = logging.getLogger("streamseg.app")

#: Frames a track ID stays in :class:`TrackAges` after it was last seen.
_AGE_MEMORY_FRAMES = 300
#: A file plays at its own speed; when the output is more than this late or early
#: (seconds: a slow model, a pts jump), the clock restarts at the current frame.
_PACE_SLACK_S = 1.0


@dataclasses.dataclass(frozen=True, eq=False)
class ViewFrame:
    """One frame as drawn for the window.

    Attributes:
        seq: 1, 2, ... per session, in drawing order (a redraw gets a new number).
        result: the frame and the instances drawn in it (those the options show), with
            ``timings_ms`` of every stage so far plus ``render`` (ms).
        image: (H, W, 3) uint8 RGB, the annotated frame (what snapshots and recordings hold).
        display: (H, W, 4) uint8 BGRA, the same pixels in the memory order of
            ``QImage.Format_RGB32`` on little-endian machines (wrapped without a copy).
        options: the render options it was drawn with.
        track_age_s: (N,) float64, for each drawn instance the seconds since its track was
            first seen (presentation time); NaN for untracked instances.
        render_ms: time to filter, draw and convert this frame, ms.
        dropped: frames the live policy discarded so far (source and result queues).
        num_frames: frames in the file, or None (live streams, unknown).
        live: the source is live (camera, RTSP, HTTP).
        redraw: a redraw of the paused frame after an option changed (not a new frame).
    """

    seq: int
    result: FrameResult
    image: np.ndarray
    display: np.ndarray
    options: RenderOptions
    track_age_s: np.ndarray
    render_ms: float
    dropped: int
    num_frames: int | None
    live: bool
    redraw: bool = False

    @property
    def index(self) -> int:
        """Index of the frame in its source."""
        return self.result.frame.index

    @property
    def instances(self) -> Instances:
        """The instances drawn in this frame."""
        return self.result.instances


@dataclasses.dataclass(frozen=True)
class RecordingEvent:
    """A change of the recording.

    Attributes:
        state: ``"requested"`` (the window asked for it; sent by the controller),
            ``"started"`` (the first frame was written), ``"stopped"`` (files closed and
            valid) or ``"failed"`` (a write failed; what was written is closed).
        video: the MP4 path.
        jsonl: the JSONL path.
        frames: frames written so far.
        message: why it failed (one line), else empty.
    """

    state: str
    video: Path
    jsonl: Path
    frames: int = 0
    message: str = ""


class TrackAges:
    """When each track ID was first seen, to show track ages.

    Only the output thread uses it. IDs unseen for :data:`_AGE_MEMORY_FRAMES`
    updates are forgotten, so memory stays flat on a stream that runs for days.
    """

    def __init__(self) -> None:
        self._first_s: dict[int, float] = {}
        self._last_update: dict[int, int] = {}
        self._updates = 0

    def update(self, instances: Instances, pts_s: float) -> None:
        """Record the tracked IDs of one frame shown at ``pts_s`` seconds."""
        self._updates += 1
        for tid in instances.track_ids:
            if tid >= 0:
                self._first_s.setdefault(int(tid), pts_s)
                self._last_update[int(tid)] = self._updates
        if self._updates % 64 == 0:
            stale = [t for t, seen in self._last_update.items() if self._updates - seen > _AGE_MEMORY_FRAMES]
            for tid in stale:
                del self._first_s[tid], self._last_update[tid]

    def ages_s(self, instances: Instances, pts_s: float) -> np.ndarray:
        """(N,) float64 seconds each instance's track has existed at ``pts_s``; NaN if untracked."""
        out = np.full(len(instances), np.nan)
        for i, tid in enumerate(instances.track_ids):
            first = self._first_s.get(int(tid)) if tid >= 0 else None
            if first is not None:
                out[i] = max(0.0, pts_s - first)
        return out


class Recorder:
    """Records drawn frames through the core's outputs: an annotated H.264 MP4 and a JSONL of the instances shown.

    The same :class:`~streamseg.sinks.VideoOutput` and :class:`~streamseg.sinks.JsonlOutput`
    that ``streamseg run`` writes: the MP4 opens on the first frame, when the size is
    known, its timing follows ``Frame.pts_s``, and it carries the source file's audio from
    the first recorded frame on (``audio_from``); the JSONL has one line per frame
    written, with only the instances drawn (that frame's score threshold and class
    filter applied). Used from one thread only.

    Args:
        video: the .mp4 path (its folder is created).
        jsonl: the .jsonl path.
        categories: class names indexed by label.
        fps: the source's frame rate for the MP4 header, or None (live: timing from pts only).
        audio_from: the source video file whose audio the MP4 carries, or None (video only:
            live sources, image folders).

    Raises:
        SinkError: the files cannot be created (from the constructor or :meth:`write`).
    """

    def __init__(
        self,
        video: Path,
        jsonl: Path,
        *,
        categories: Sequence[str],
        fps: Fraction | None,
        audio_from: Path | None = None,
    ) -> None:
        self.video, self.jsonl = Path(video), Path(jsonl)
        self.frames = 0
        self._outputs: list[Output] = [
            VideoOutput(self.video, fps=fps, audio_from=audio_from),
            JsonlOutput(self.jsonl, categories=categories),
        ]

    def write(self, frame: ViewFrame) -> None:
        """Append one drawn frame to both files.

        Raises:
            SinkError: a write failed (disk full, ...).
        """
        for output in self._outputs:
            output.write(frame.result, frame.image)
        self.frames += 1

    def close(self) -> None:
        """Finish both files (idempotent); they stay valid after a failed write too.

        Raises:
            SinkError: finishing a file failed.
        """
        try:
            self._outputs[0].close()
        finally:
            self._outputs[1].close()


class ViewOutput:
    """Pipeline output that draws each result for the window (see the module docstring).

    Thread use: :meth:`write` and :meth:`close` run in the pipeline's output thread;
    every other method is called from the UI thread and only sets state under a lock
    and wakes the output thread, so none of them blocks.

    Args:
        categories: class names indexed by label (the backend's).
        on_frame: called with every :class:`ViewFrame` (output thread); must be quick.
        options: the initial render options.
        live: the source is live: no pacing (frames are shown as soon as they are ready).
        num_frames: frames in the file, or None.
        fps: the source's frame rate, for recordings.
        audio_from: the source video file, whose audio recordings carry; None for live
            sources and image folders.
        pace: play files at their presentation times (True) or as fast as the model goes.
        start_paused: start paused, showing only the first frame.
        dropped: returns the frames the live policy dropped so far (the pipeline's count).
        on_recording: called with each :class:`RecordingEvent` (output thread).
    """

    needs_image = False  # it draws itself: one options snapshot per frame for drawing and JSONL
    stage = "display"

    def __init__(
        self,
        *,
        categories: Sequence[str],
        on_frame: Callable[[ViewFrame], None],
        options: RenderOptions | None = None,
        live: bool = False,
        num_frames: int | None = None,
        fps: Fraction | None = None,
        audio_from: Path | None = None,
        pace: bool = True,
        start_paused: bool = False,
        dropped: Callable[[], int] = lambda: 0,
        on_recording: Callable[[RecordingEvent], None] = lambda event: None,
    ) -> None:
        self.categories = list(categories)
        self.live = live
        self.num_frames = num_frames
        self.fps = fps
        self.audio_from = audio_from
        self.pace = pace and not live
        self._on_frame = on_frame
        self._on_recording = on_recording
        self._dropped = dropped
        self._cond = threading.Condition()
        self._options = options or RenderOptions()
        self._version = 0  # bumped by every set_options
        self._playing = not start_paused
        self._steps = 1 if start_paused else 0  # frames to let through while paused
        self._cancelled = False
        self._record_request: tuple[Path, Path] | None = None
        self._record_stop = False
        # Output thread only:
        self._recorder: Recorder | None = None
        self._trails = TrackTrails()
        self._ages = TrackAges()
        self._last: FrameResult | None = None
        self._shown_version = -1
        self._seq = 0
        self._anchor: tuple[float, float] | None = None  # (monotonic s, pts s) of the pacing clock

    # -- control (UI thread) --------------------------------------------------------
    def set_options(self, options: RenderOptions) -> None:
        """Draw the next frame with ``options`` (and redraw the paused frame)."""
        with self._cond:
            self._options = options
            self._version += 1
            self._cond.notify_all()

    @property
    def options(self) -> RenderOptions:
        """The render options in use."""
        return self._options

    def play(self) -> None:
        """Resume showing frames."""
        with self._cond:
            self._playing, self._steps, self._anchor = True, 0, None
            self._cond.notify_all()

    def pause(self) -> None:
        """Stop at the next frame (the output thread then waits; a file source stops decoding soon after)."""
        with self._cond:
            self._playing, self._steps = False, 0
            self._cond.notify_all()

    def step(self, frames: int = 1) -> None:
        """While paused, let ``frames`` more frames through (frame step forward)."""
        with self._cond:
            if not self._playing:
                self._steps += max(0, int(frames))
                self._anchor = None
                self._cond.notify_all()

    @property
    def playing(self) -> bool:
        """True unless paused."""
        return self._playing

    def start_recording(self, video: Path, jsonl: Path) -> None:
        """Start writing the frames shown from the next one on to ``video`` (MP4) and ``jsonl``."""
        with self._cond:
            self._record_request, self._record_stop = (Path(video), Path(jsonl)), False
            self._cond.notify_all()

    def stop_recording(self) -> None:
        """Finish the recording (in the output thread, at once even while paused)."""
        with self._cond:
            self._record_request, self._record_stop = None, True
            self._cond.notify_all()

    def cancel(self) -> None:
        """Stop showing frames: a waiting :meth:`write` returns at once (the pipeline is stopping)."""
        with self._cond:
            self._cancelled = True
            self._cond.notify_all()

    # -- Output protocol (output thread) ----------------------------------------------
    def write(self, result: FrameResult, image: np.ndarray | None) -> None:
        """Wait for play / a step / the frame's time, then draw, record and hand over ``result``."""
        while True:
            action = self._wait_for_action()
            if action == "cancel":
                return
            if action == "recording":
                self._service_recording()
            elif action == "redraw":
                self._redraw()
            else:
                break
        if self.pace and not self._wait_until_due(result.frame.pts_s):
            return
        with self._cond:
            options, version = self._options, self._version
        self._trails.update(result.instances)
        self._ages.update(result.instances, result.frame.pts_s)
        frame = self._draw(result, options, redraw=False)
        self._last, self._shown_version = result, version
        self._service_recording()
        if self._recorder is not None:
            self._record(frame)
        self._on_frame(frame)

    def close(self) -> None:
        """Finish a running recording; called once by the pipeline at the end of the run."""
        with self._cond:
            self._record_request, self._record_stop = None, True
        self._service_recording()

    # -- internals (output thread) ---------------------------------------------------
    def _wait_for_action(self) -> str:
        """Block until there is something to do: cancel, recording, redraw or go (show the next frame)."""
        with self._cond:
            while True:
                if self._cancelled:
                    return "cancel"
                if self._record_stop and self._recorder is not None:
                    return "recording"
                if self._playing:
                    return "go"
                if self._steps > 0:
                    self._steps -= 1
                    return "go"
                if self._last is not None and self._version != self._shown_version:
                    return "redraw"
                self._cond.wait()

    def _wait_until_due(self, pts_s: float) -> bool:
        """Sleep until the frame's presentation time on the playback clock; False if cancelled meanwhile."""
        with self._cond:
            now = time.monotonic()
            if self._anchor is None:
                self._anchor = (now, pts_s)
            due = self._anchor[0] + (pts_s - self._anchor[1])
            if abs(due - now) > _PACE_SLACK_S:  # far behind (slow model) or a pts jump: restart the clock
                self._anchor, due = (now, pts_s), now
            while not self._cancelled and (wait := due - time.monotonic()) > 0:
                self._cond.wait(wait)
            return not self._cancelled

    def _draw(self, result: FrameResult, options: RenderOptions, *, redraw: bool) -> ViewFrame:
        t0 = time.perf_counter()
        shown = visible_instances(result.instances, options)
        image = render(
            result.frame.image,
            shown,
            categories=self.categories,
            options=options,
            trails=self._trails,
            predicted="model" not in result.timings_ms,
        )
        display = cv2.cvtColor(image, cv2.COLOR_RGB2BGRA)
        render_ms = (time.perf_counter() - t0) * 1000.0
        timings = dict(result.timings_ms)
        timings["render"] = render_ms
        self._seq += 1
        return ViewFrame(
            seq=self._seq,
            result=FrameResult(frame=result.frame, instances=shown, timings_ms=timings),
            image=image,
            display=display,
            options=options,
            track_age_s=self._ages.ages_s(shown, result.frame.pts_s),
            render_ms=render_ms,
            dropped=int(self._dropped()),
            num_frames=self.num_frames,
            live=self.live,
            redraw=redraw,
        )

    def _redraw(self) -> None:
        """Draw the paused frame again with the current options (not recorded)."""
        with self._cond:
            options, version = self._options, self._version
        assert self._last is not None
        frame = self._draw(self._last, options, redraw=True)
        self._shown_version = version
        self._on_frame(frame)

    def _service_recording(self) -> None:
        """Open or finish the recording as requested from the UI thread."""
        with self._cond:
            request, stop = self._record_request, self._record_stop
            self._record_request, self._record_stop = None, False
        if (stop or request is not None) and self._recorder is not None:
            recorder, self._recorder = self._recorder, None
            try:
                recorder.close()
            except StreamsegError as exc:
                self._emit_recording("failed", recorder, str(exc))
            else:
                self._emit_recording("stopped", recorder)
        if request is not None:
            try:
                self._recorder = Recorder(
                    *request,
                    categories=self.categories,
                    fps=None if self.live else self.fps,
                    audio_from=self.audio_from,
                )
            except StreamsegError as exc:
                self._on_recording(RecordingEvent("failed", request[0], request[1], 0, str(exc)))

    def _record(self, frame: ViewFrame) -> None:
        recorder = self._recorder
        assert recorder is not None
        try:
            recorder.write(frame)
        except (StreamsegError, ValueError) as exc:
            self._recorder = None
            try:
                recorder.close()
            except StreamsegError:
                log.debug("closing a failed recording also failed", exc_info=True)
            self._emit_recording("failed", recorder, str(exc))
            return
        if recorder.frames == 1:
            self._emit_recording("started", recorder)

    def _emit_recording(self, state: str, recorder: Recorder, message: str = "") -> None:
        self._on_recording(RecordingEvent(state, recorder.video, recorder.jsonl, recorder.frames, message))
