"""One stream's work around the model: tracking, detect-every-K, the score threshold, drawing and outputs.

A :class:`StreamProcessor` belongs to one stream (its own tracker, so its own track-ID
space). The :class:`~streamseg.core.runner.Runner` calls it from two threads:

* the inference thread asks :meth:`StreamProcessor.wants_model` for each frame and
  passes the model's detections (or None on a skipped frame) to
  :meth:`StreamProcessor.track`, which runs the tracker: ``update`` on a model frame,
  ``predict`` on a skipped one (``detect_every > 1``);
* the stream's output thread passes each tracked result to
  :meth:`StreamProcessor.write`, which keeps the instances at or above
  ``score_thresh`` (the only place the threshold applies: the tracker saw every
  detection the model gave, as ByteTrack wants), updates the trails, draws the frame
  once if any output needs it, writes every output (each timed under its ``stage``)
  and records the stream's metrics (:class:`~streamseg.core.metrics.RunSummary`).
  The outputs that are ``threaded`` (the MP4 encoder, the JSONL) are handed the frame
  and write it in their own thread (:mod:`streamseg.core.output_worker`) while this
  thread draws the next one: on two or more cores encoding, RLE and drawing overlap.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from streamseg.core.metrics import Rate, RunSummary
from streamseg.core.output_worker import OutputWorker
from streamseg.render import RenderOptions, TrackTrails, render
from streamseg.sinks.outputs import Output
from streamseg.tracking import ByteTracker
from streamseg.types import Frame, FrameResult, Instances

if TYPE_CHECKING:
    from streamseg.config import ModelConfig, StreamSettings

__all__ = ["StreamProcessor"]


class StreamProcessor:
    """Tracking, thresholding, drawing and outputs of one stream (see the module docstring).

    Args:
        categories: class names indexed by label (the backend's).
        outputs: where written frames go; :meth:`close` closes them.
        score_thresh: write and draw only instances with ``score >= score_thresh``, in [0, 1].
        tracker: this stream's tracker, or None (every ``track_id`` stays -1).
        detect_every: run the model on every K-th frame (by frame index, so a live
            source that dropped frames still gets the right spacing); the tracker
            predicts the frames between. Needs ``tracker`` when > 1. May be changed
            while running (the window's control).
        trails: draw a short trail of each track's box centre (needs ``tracker``).
        render_options: what the annotated frame shows.
        hud: draw the heads-up display (fps, frame age, model time) on the annotated frame.
        title: a first HUD line (the stream name in a monitor), or empty.
        random_weights: the model runs seeded random weights: the HUD says so.
        live: a live source: metrics keep rolling windows.
        output_threads: write the outputs that ask for it (``threaded``: the MP4 encoder and
            the JSONL) each in its own thread (:class:`~streamseg.core.output_worker.OutputWorker`),
            beside this stream's drawing; False writes every output in the stream's output thread.

    Raises:
        ValueError: ``detect_every`` < 1, or > 1 (or ``trails``) without a tracker.
    """

    def __init__(
        self,
        *,
        categories: Sequence[str],
        outputs: Sequence[Output] = (),
        score_thresh: float = 0.0,
        tracker: ByteTracker | None = None,
        detect_every: int = 1,
        trails: bool = False,
        render_options: RenderOptions | None = None,
        hud: bool = True,
        title: str = "",
        random_weights: bool = False,
        live: bool = False,
        output_threads: bool = True,
    ) -> None:
        if detect_every < 1:
            raise ValueError(f"detect_every must be >= 1, got {detect_every}")
        if detect_every > 1 and tracker is None:
            raise ValueError("detect_every > 1 needs a tracker to predict the skipped frames")
        if not 0.0 <= score_thresh <= 1.0:
            raise ValueError(f"score_thresh must be in [0, 1], got {score_thresh}")
        self.categories = tuple(categories)
        self.outputs = list(outputs)
        self.score_thresh = float(score_thresh)
        self.tracker = tracker
        self.detect_every = int(detect_every)
        self.trails = TrackTrails() if trails and tracker is not None else None
        self.render_options = render_options or RenderOptions()
        self.hud = hud
        self.title = title
        self.random_weights = random_weights
        self.summary = RunSummary(live=live)
        self.output_threads = output_threads
        self._workers: dict[int, OutputWorker] = {}
        self._last_detect: int | None = None  # frame index of the latest model run
        self._rate = Rate()

    @classmethod
    def from_settings(
        cls,
        settings: StreamSettings,
        model: ModelConfig,
        *,
        categories: Sequence[str],
        outputs: Sequence[Output] = (),
        random_weights: bool = False,
        live: bool = False,
        title: str = "",
        render_options: RenderOptions | None = None,
    ) -> StreamProcessor:
        """A processor from the typed configuration (:class:`~streamseg.config.StreamSettings`).

        Args:
            settings: threshold, detect-every-K, tracking, trails, HUD.
            model: the model's config (for the registry's default threshold).
            categories: the backend's class names.
            outputs: the stream's outputs. (The tracker's keypoint smoother is timed by
                each frame's ``pts_s``, so the source's frame rate is not needed.)
            random_weights: the backend runs random weights.
            live: the source is live.
            title: first HUD line.
            render_options: what the annotated frame shows (default: ``settings.render``).
        """
        return cls(
            categories=categories,
            outputs=outputs,
            score_thresh=settings.threshold_for(model),
            tracker=ByteTracker(settings.tracker) if settings.track else None,
            detect_every=settings.detect_every,
            trails=settings.trails,
            render_options=render_options or settings.render,
            hud=settings.hud,
            title=title,
            random_weights=random_weights,
            live=live,
        )

    # -- inference thread ----------------------------------------------------------------
    def wants_model(self, frame: Frame) -> bool:
        """Whether the model should run on ``frame`` (every ``detect_every``-th frame index)."""
        since = None if self._last_detect is None else frame.index - self._last_detect
        return since is None or since >= self.detect_every or since < 0 or self.tracker is None

    def track(self, frame: Frame, detections: Instances | None, timings_ms: dict[str, float]) -> FrameResult:
        """Give ``frame``'s instances track IDs.

        Args:
            frame: the decoded frame.
            detections: the model's instances on it (every detection above the model's
                floor), or None on a frame the model skipped (:meth:`wants_model` False).
            timings_ms: the stage times so far (decode, preprocess, model, postprocess);
                ``track`` is added.

        Returns:
            The tracked result: the tracker's instances (on a skipped frame its
            predictions, and ``timings_ms`` has no ``model`` key).
        """
        self.summary.frames_in += 1
        timings = dict(timings_ms)
        since = None if self._last_detect is None else frame.index - self._last_detect
        t0 = time.perf_counter()
        if detections is not None:
            instances = detections
            if self.tracker is not None:
                # Frame indices, not counts: a live source that dropped frames still gives
                # the Kalman filter the true number of frames between two updates.
                period = max(since or 1, 1)
                instances = self.tracker.update(detections, period=period, timestamp_s=frame.pts_s)
            self._last_detect = frame.index
        else:
            assert self.tracker is not None, "a frame without detections needs a tracker"
            instances = self.tracker.predict(steps=max(since or 1, 1))
        if self.tracker is not None:
            timings["track"] = (time.perf_counter() - t0) * 1000.0
        return FrameResult(frame=frame, instances=instances, timings_ms=timings)

    # -- output thread -------------------------------------------------------------------
    def visible(self, instances: Instances) -> Instances:
        """The instances that are drawn and written: ``score >= score_thresh``."""
        if self.score_thresh <= 0.0 or not len(instances):
            return instances
        keep = instances.scores >= np.float32(self.score_thresh)
        return instances if keep.all() else instances[keep]

    def write(self, result: FrameResult) -> None:
        """Threshold, draw and write one tracked result to every output, and record its metrics.

        Raises:
            SinkError: an output failed: on this frame (the outputs after it did not get the
                frame), or, for a threaded output, on an earlier frame (raised here once).
        """
        fps = self._rate.tick()
        if self.trails is not None:
            self.trails.update(result.instances)
        shown = FrameResult(result.frame, self.visible(result.instances), result.timings_ms)
        timings = dict(result.timings_ms)
        image = None
        if any(o.needs_image for o in self.outputs):
            t0 = time.perf_counter()
            image = render(
                shown.frame.image,
                shown.instances,
                categories=self.categories,
                options=self.render_options,
                hud=self._hud_lines(shown, fps) if self.hud else (),
                trails=self.trails,
                predicted="model" not in timings,
            )
            timings["render"] = (time.perf_counter() - t0) * 1000.0
        for out in self.outputs:
            worker = self._worker_for(out)
            if worker is not None:
                worker.put(FrameResult(shown.frame, shown.instances, dict(timings)), image)
                continue
            t0 = time.perf_counter()
            out.write(FrameResult(shown.frame, shown.instances, dict(timings)), image)
            timings[out.stage] = (time.perf_counter() - t0) * 1000.0
        self.summary.add(timings, (time.monotonic() - shown.frame.t_capture) * 1000.0)

    def _worker_for(self, out: Output) -> OutputWorker | None:
        """The writing thread of ``out`` when it asks for one (``threaded``) and threads are on."""
        if not (self.output_threads and getattr(out, "threaded", False)):
            return None
        worker = self._workers.get(id(out))
        if worker is None:
            worker = OutputWorker(out, name=f"streamseg-{out.stage}:{self.title or 'main'}",
                                  on_timing=lambda stage, ms: self.summary.add_stage(stage, ms))  # fmt: skip
            self._workers[id(out)] = worker
        return worker

    def _hud_lines(self, result: FrameResult, fps: float) -> list[str]:
        """The HUD's text: throughput (fps), frame age for live sources only, and model time.

        Frame age (``now - Frame.t_capture``, "latency") is what a live viewer waits for.
        A file source decodes ahead into its queue, so there the age counts the
        read-ahead (seconds, not the model's time) and is left out.
        """
        model_ms = result.timings_ms.get("model")
        lines = [self.title] if self.title else []
        if self.summary.live:
            age_ms = (time.monotonic() - result.frame.t_capture) * 1000.0
            lines.append(f"{fps:5.1f} fps  latency {age_ms:6.0f} ms")
        else:
            lines.append(f"{fps:5.1f} fps")
        lines.append(f"model {model_ms:.0f} ms" if model_ms is not None else "tracker prediction (model skipped)")
        if self.random_weights:
            lines.append("RANDOM weights")
        return lines

    def close(self) -> list[BaseException]:
        """Close every output (each even if another fails; a threaded one after it wrote what is
        queued); returns the errors raised, including those of threaded writes not raised yet."""
        errors: list[BaseException] = []
        for out in self.outputs:
            worker = self._workers.pop(id(out), None)
            if worker is not None:
                errors.extend(worker.close())
                continue
            try:
                out.close()
            except BaseException as exc:  # noqa: BLE001 - returned to the caller
                errors.append(exc)
        return errors
