"""The pipeline: a source thread, an inference thread and an output thread joined by bounded queues.

::

    source thread --[source queue]--> inference thread --[result queue]--> output thread
    (decode)                          (preprocess, model,                  (render, encode,
                                       postprocess)                          JSONL)

Queue policies (DESIGN.md): after a file source every queue blocks, so no frame
is ever lost. After a live source (camera, RTSP; ``source.queue_policy ==
"drop_oldest"``) both the source queue and the result queue keep only the
newest items (depth 1-2), so the age of the frame being written
(``time.monotonic() - Frame.t_capture``) stays bounded by about one model
latency plus decode and render time and never grows; discarded frames are
counted (:attr:`RunSummary.dropped_source`, :attr:`RunSummary.dropped_results`)
and every written frame's age is recorded (:attr:`RunSummary.frame_age_ms`).
For live runs the per-frame samples are kept in rolling windows of
:data:`LIVE_SAMPLES` so memory stays flat over days. Every stage times itself per frame; the times travel in
``FrameResult.timings_ms`` to the outputs (the JSONL carries them).

Stopping:

* the source ends: every frame already decoded is processed and written, then
  the outputs are closed;
* a stage fails (a corrupt video, a backend error, a full disk): the stages
  before it stop, the frames already processed are still written, the outputs
  are closed so they stay valid (a playable MP4, a flushed JSONL), and
  :meth:`Pipeline.run` raises the first error;
* :meth:`Pipeline.stop` (Ctrl-C in the CLI): everything stops at the next frame
  and the outputs written so far are closed cleanly.
"""

from __future__ import annotations

import dataclasses
import statistics
import threading
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from streamseg.backends.base import Backend
from streamseg.queues import BoundedQueue, QueueClosed
from streamseg.render import RenderOptions, TrackTrails, render
from streamseg.sinks import JsonlWriter, VideoWriter
from streamseg.sinks.mot import MotWriter
from streamseg.sources.base import Source
from streamseg.tracking import ByteTracker
from streamseg.types import FrameResult

__all__ = [
    "Pipeline",
    "RunSummary",
    "Output",
    "VideoOutput",
    "JsonlOutput",
    "MotOutput",
    "STAGES",
    "LIVE_SAMPLES",
    "describe",
    "percentile",
]

#: Stage names, in pipeline order, as keys of ``FrameResult.timings_ms``. On frames
#: where the model did not run (``detect_every > 1``), ``preprocess``, ``model`` and
#: ``postprocess`` are absent and the instances are the tracker's predictions.
STAGES = ("decode", "preprocess", "model", "postprocess", "track", "render", "encode", "jsonl", "mot")
#: Per-frame samples kept per stage (and of frame age) in a live run: the latest ones.
LIVE_SAMPLES = 10_000


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100, linear interpolation as numpy's default) of ``values``; NaN if empty."""
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if len(values) else float("nan")


class Output(Protocol):
    """Where results go. ``needs_image`` outputs receive the rendered frame."""

    needs_image: bool
    stage: str  # the timing key of this output's write, e.g. "encode"

    def write(self, result: FrameResult, image: np.ndarray | None) -> None:
        """Write one frame's result (and its rendered image when ``needs_image``)."""

    def close(self) -> None:
        """Flush and close; idempotent. What was written stays valid."""


class VideoOutput:
    """The annotated video: H.264 MP4 with the input's size and frame timing.

    The writer opens on the first frame, when the frame size is known.

    Args:
        path: the .mp4 to write.
        fps: the source's average frame rate (frames per second), for the stream header.
    """

    needs_image = True
    stage = "encode"

    def __init__(self, path: str | Path, *, fps: float | None) -> None:
        self.path = Path(path)
        self.fps = fps
        self._writer: VideoWriter | None = None

    def write(self, result: FrameResult, image: np.ndarray | None) -> None:
        assert image is not None
        if self._writer is None:
            self._writer = VideoWriter(self.path, width=image.shape[1], height=image.shape[0], fps=self.fps)
        self._writer.write(image, result.frame.pts_s)

    @property
    def frames_written(self) -> int:
        """Frames written so far."""
        return 0 if self._writer is None else self._writer.frames_written

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


class JsonlOutput:
    """Per-frame results as JSON lines (see :mod:`streamseg.sinks.jsonl` for the schema)."""

    needs_image = False
    stage = "jsonl"

    def __init__(self, path: str | Path, *, categories: Sequence[str]) -> None:
        self._writer = JsonlWriter(path, categories=categories)

    def write(self, result: FrameResult, image: np.ndarray | None) -> None:
        self._writer.write(result)

    def close(self) -> None:
        self._writer.close()


class MotOutput:
    """Tracks as a MOT Challenge txt file (``frame,id,x,y,w,h,conf,-1,-1,-1``, frames 1-based).

    ``interpolate_max_gap`` > 0 fills track gaps of up to that many frames when the
    output is closed (see :class:`~streamseg.sinks.mot.MotWriter`).
    """

    needs_image = False
    stage = "mot"

    def __init__(self, path: str | Path, *, interpolate_max_gap: int = 0) -> None:
        self._writer = MotWriter(path, interpolate_max_gap=interpolate_max_gap)

    def write(self, result: FrameResult, image: np.ndarray | None) -> None:
        self._writer.write(result.frame.index, result.instances)

    def close(self) -> None:
        self._writer.close()


@dataclasses.dataclass
class RunSummary:
    """What a run did.

    Attributes:
        frames_in: frames the source delivered.
        frames_out: frames that went through every output.
        wall_s: wall time of the run in seconds, from the first frame decoded to the
            outputs closed.
        stage_ms: per stage, the list of per-frame times in milliseconds.
        interrupted: the run was stopped by :meth:`Pipeline.stop` (Ctrl-C).
        error: the error that ended the run, or None.
        frame_age_ms: per written frame, ``time.monotonic() - Frame.t_capture`` when its
            outputs were written, in ms (the latest :data:`LIVE_SAMPLES` for a live source).
        live: the source was live (drop-oldest queues).
        dropped_source: frames the live source's queue discarded (the model was busy).
        dropped_results: results the result queue discarded (the outputs were busy).
    """

    frames_in: int = 0
    frames_out: int = 0
    wall_s: float = 0.0
    stage_ms: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    interrupted: bool = False
    error: BaseException | None = None
    frame_age_ms: list[float] = dataclasses.field(default_factory=list)
    live: bool = False
    dropped_source: int = 0
    dropped_results: int = 0

    @property
    def dropped(self) -> int:
        """Frames lost on purpose by the live policy (source queue + result queue)."""
        return self.dropped_source + self.dropped_results

    def median_ms(self, stage: str) -> float:
        """Median time of ``stage`` per frame in ms (NaN if the stage never ran)."""
        values = self.stage_ms.get(stage)
        return statistics.median(values) if values else float("nan")

    @property
    def fps(self) -> float:
        """End-to-end frames per second (frames out / wall time)."""
        return self.frames_out / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def model_fps(self) -> float:
        """Frames per second of the inference stage alone (preprocess + model + postprocess),
        from the same run: what the pipeline could reach if every other stage were free."""
        per_frame = [
            sum(vals) for vals in zip(*(self.stage_ms.get(s, []) for s in ("preprocess", "model", "postprocess")))
        ]
        total_s = sum(per_frame) / 1000.0
        return len(per_frame) / total_s if total_s > 0 else 0.0


class _Rate:
    """Frames per second over the last ``window`` frames."""

    def __init__(self, window: int = 30) -> None:
        self._times: deque[float] = deque(maxlen=window)

    def tick(self) -> float:
        self._times.append(time.monotonic())
        if len(self._times) < 2:
            return 0.0
        return (len(self._times) - 1) / max(self._times[-1] - self._times[0], 1e-9)


class Pipeline:
    """Runs a source through a backend into outputs, one thread per stage.

    Args:
        source: an opened or unopened :class:`~streamseg.sources.base.Source`.
        backend: any :class:`~streamseg.backends.base.Backend`.
        outputs: where results go (video, JSONL, ...); the pipeline closes them.
        render_options: what the annotated video shows.
        tracker: gives instances track IDs (one tracker per stream), or None.
        detect_every: run the model on every K-th frame only; the tracker predicts the
            boxes of the frames in between (needs ``tracker``). 1 = every frame.
        trails: draw a short trail of each track's box centre (needs ``tracker``).
        hud: draw the fps / latency HUD on the annotated video.
        queue_size: capacity of the queue between inference and outputs; None for the
            default: 4 after a file source (blocking), 2 after a live source (drop-oldest).
        progress: show a tqdm progress bar (frames done / total, fps).
        live: use the live policy (drop-oldest result queue, rolling metrics); None
            decides from the source (``source.queue_policy == "drop_oldest"``).
    """

    def __init__(
        self,
        source: Source,
        backend: Backend,
        outputs: Sequence[Output] = (),
        *,
        render_options: RenderOptions | None = None,
        tracker: ByteTracker | None = None,
        detect_every: int = 1,
        trails: bool = False,
        hud: bool = True,
        queue_size: int | None = None,
        progress: bool = False,
        live: bool | None = None,
    ) -> None:
        if detect_every < 1:
            raise ValueError(f"detect_every must be >= 1, got {detect_every}")
        if detect_every > 1 and tracker is None:
            raise ValueError("detect_every > 1 needs a tracker to predict the skipped frames")
        self.source = source
        self.backend = backend
        self.outputs = list(outputs)
        self.tracker = tracker
        self.detect_every = detect_every
        self.trails = TrackTrails() if trails and tracker is not None else None
        self.render_options = render_options or RenderOptions()
        self.hud = hud
        self.progress = progress
        self.live = source.queue_policy == "drop_oldest" if live is None else bool(live)
        if queue_size is None:
            queue_size = 2 if self.live else 4
        self._results: BoundedQueue[FrameResult] = BoundedQueue(
            queue_size, "drop_oldest" if self.live else "block"
        )
        self._stop = threading.Event()
        self._errors: list[BaseException] = []
        self._errors_lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.summary = RunSummary(live=self.live)
        if self.live:
            self.summary.frame_age_ms = deque(maxlen=LIVE_SAMPLES)  # type: ignore[assignment]

    # -- control -------------------------------------------------------------------
    def stop(self) -> None:
        """Ask every stage to stop at the next frame; outputs are closed cleanly. Thread-safe."""
        self._stop.set()
        self.summary.interrupted = True
        self._results.cancel()
        self.source.stop()

    def _fail(self, error: BaseException) -> None:
        with self._errors_lock:
            self._errors.append(error)

    # -- stages --------------------------------------------------------------------
    def _inference_loop(self) -> None:
        error: BaseException | None = None
        last_detect: int | None = None  # frame index of the latest model run
        try:
            while not self._stop.is_set():
                item = self.source.read()
                if item is None:
                    break
                frame, decode_ms = item
                self.summary.frames_in += 1
                timings: dict[str, float] = {"decode": decode_ms}
                # Frame indices, not counts: a live source that dropped frames still
                # gives the tracker the true number of frames between two updates.
                since = None if last_detect is None else frame.index - last_detect
                if since is None or since >= self.detect_every:
                    instances, model_timings = self.backend.infer(frame.image)
                    timings.update(model_timings)
                    if self.tracker is not None:
                        t0 = time.perf_counter()
                        instances = self.tracker.update(instances, period=max(since or 1, 1), timestamp_s=frame.pts_s)
                        timings["track"] = (time.perf_counter() - t0) * 1000.0
                    last_detect = frame.index
                else:
                    assert self.tracker is not None
                    t0 = time.perf_counter()
                    instances = self.tracker.predict(steps=since)
                    timings["track"] = (time.perf_counter() - t0) * 1000.0
                result = FrameResult(frame=frame, instances=instances, timings_ms=timings)
                if not self._results.put(result):
                    break
        except BaseException as exc:  # noqa: BLE001 - reported by run()
            error = exc
            self._fail(exc)
        finally:
            # close (not cancel): the output thread still writes what was processed.
            self._results.close(error)

    def _output_loop(self) -> None:
        rate = _Rate()
        bar = self._progress_bar()
        try:
            while True:
                try:
                    result = self._results.get()
                except QueueClosed:
                    break
                fps = rate.tick()
                timings = dict(result.timings_ms)
                image = None
                if self.trails is not None:
                    self.trails.update(result.instances)
                if any(o.needs_image for o in self.outputs):
                    t0 = time.perf_counter()
                    hud = self._hud_lines(result, fps) if self.hud else ()
                    image = render(
                        result.frame.image,
                        result.instances,
                        categories=self.backend.categories,
                        options=self.render_options,
                        hud=hud,
                        trails=self.trails,
                        predicted="model" not in result.timings_ms,
                    )
                    timings["render"] = (time.perf_counter() - t0) * 1000.0
                for out in self.outputs:
                    t0 = time.perf_counter()
                    out.write(FrameResult(result.frame, result.instances, timings), image)
                    timings[out.stage] = (time.perf_counter() - t0) * 1000.0
                self.summary.frame_age_ms.append((time.monotonic() - result.frame.t_capture) * 1000.0)
                for stage, ms in timings.items():
                    self._samples(stage).append(ms)
                self.summary.frames_out += 1
                self._update_drops()
                if bar is not None:
                    bar.update(1)
        except BaseException as exc:  # noqa: BLE001 - reported by run()
            self._fail(exc)
            self._stop.set()
            self._results.cancel()
            self.source.stop()
        finally:
            for out in self.outputs:
                try:
                    out.close()
                except BaseException as exc:  # noqa: BLE001
                    self._fail(exc)
            if bar is not None:
                bar.close()

    def _samples(self, stage: str) -> list[float]:
        """The per-frame sample list of ``stage`` (a rolling window in a live run)."""
        values = self.summary.stage_ms.get(stage)
        if values is None:
            values = deque(maxlen=LIVE_SAMPLES) if self.live else []  # type: ignore[assignment]
            self.summary.stage_ms[stage] = values  # type: ignore[assignment]
        return values  # type: ignore[return-value]

    def _update_drops(self) -> None:
        self.summary.dropped_source = int(getattr(self.source, "dropped", 0))
        self.summary.dropped_results = self._results.dropped

    def _hud_lines(self, result: FrameResult, fps: float) -> list[str]:
        latency_ms = (time.monotonic() - result.frame.t_capture) * 1000.0
        model_ms = result.timings_ms.get("model")
        lines = [
            f"{fps:5.1f} fps  latency {latency_ms:6.0f} ms",
            f"model {model_ms:.0f} ms" if model_ms is not None else "tracker prediction (model skipped)",
        ]
        if self.backend.random_weights:
            lines.append("RANDOM weights")
        return lines

    def _progress_bar(self):  # noqa: ANN202 - tqdm or None
        if not self.progress:
            return None
        from tqdm import tqdm

        info = getattr(self.source, "info", None)
        total = getattr(info, "num_frames", None)
        limit = getattr(self.source, "max_frames", None)
        if limit is not None:
            total = min(total, limit) if total else limit
        return tqdm(total=total, unit="frame", desc="streamseg", dynamic_ncols=True, smoothing=0.1)

    # -- run -----------------------------------------------------------------------
    def run(self) -> RunSummary:
        """Run to the end of the source (or :meth:`stop`) and return the summary.

        Raises:
            streamseg.errors.StreamsegError: the first error of any stage (a SourceError for a
                truncated video, a BackendError, a SinkError), after every frame
                processed before it was written and the outputs were closed.
            KeyboardInterrupt: Ctrl-C; the outputs written so far are closed first.
        """
        t_start = time.monotonic()
        try:
            self.source.start()
        except BaseException:
            for out in self.outputs:
                out.close()
            raise
        self._threads = [
            threading.Thread(target=self._inference_loop, name="streamseg-inference", daemon=True),
            threading.Thread(target=self._output_loop, name="streamseg-output", daemon=True),
        ]
        for t in self._threads:
            t.start()
        try:
            while self._threads[1].is_alive():
                self._threads[1].join(0.1)
        except KeyboardInterrupt:
            self.stop()
            self._join()
            self.summary.wall_s = time.monotonic() - t_start
            raise
        self._join()
        self.summary.wall_s = time.monotonic() - t_start
        if self._errors:
            self.summary.error = self._errors[0]
            raise self._errors[0]
        return self.summary

    def _join(self, timeout: float = 60.0) -> None:
        """Join the output thread, then the inference thread (which may be inside one model call)."""
        self._threads[1].join(timeout)
        self.source.stop()
        self._threads[0].join(timeout)
        self._update_drops()


def describe(summary: RunSummary) -> str:
    """One human-readable line about a run: frames, wall time, fps and per-stage medians (ms)."""
    stages = ", ".join(
        f"{s} {summary.median_ms(s):.1f}" for s in STAGES if s in summary.stage_ms and summary.stage_ms[s]
    )
    line = (
        f"{summary.frames_out} frames in {summary.wall_s:.1f} s ({summary.fps:.2f} fps); "
        f"median ms per frame: {stages}"
    )
    if summary.live:
        line += (
            f"; frame age p50 {percentile(summary.frame_age_ms, 50):.0f} ms, "
            f"p95 {percentile(summary.frame_age_ms, 95):.0f} ms; dropped {summary.dropped}"
        )
    return line

