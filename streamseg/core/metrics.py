"""Per-stream metrics: frames in and out, per-stage times, frame age and drops.

Every stage times itself per frame in milliseconds; the times travel in
``FrameResult.timings_ms`` to the outputs and end up here. A live stream keeps only
the latest :data:`LIVE_SAMPLES` samples per series, so memory stays flat over days.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections import deque
from collections.abc import Sequence

import numpy as np

__all__ = ["LIVE_SAMPLES", "STAGES", "Rate", "RunSummary", "describe", "percentile"]

#: Stage names, in pipeline order, as keys of ``FrameResult.timings_ms``. On frames
#: where the model did not run (``detect_every > 1``), ``preprocess``, ``model`` and
#: ``postprocess`` are absent and the instances are the tracker's predictions.
STAGES = ("decode", "preprocess", "model", "postprocess", "track", "render", "encode", "jsonl", "mot")
#: Per-frame samples kept per stage (and of frame age) in a live run: the latest ones.
LIVE_SAMPLES = 10_000


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100, linear interpolation as numpy's default) of ``values``; NaN if empty."""
    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if len(values) else float("nan")


@dataclasses.dataclass
class RunSummary:
    """What one stream of a run did.

    Attributes:
        frames_in: frames the source delivered.
        frames_out: frames that went through every output.
        wall_s: wall time of the run in seconds, from the start to the outputs closed.
        stage_ms: per stage, the per-frame times in milliseconds.
        interrupted: the run was stopped (Ctrl-C, SIGTERM, :meth:`Runner.stop`).
        error: the error that ended the stream, or None.
        frame_age_ms: per written frame, ``time.monotonic() - Frame.t_capture`` when its
            outputs were written, in ms (the latest :data:`LIVE_SAMPLES` for a live source).
        live: the source was live (drop-oldest queues).
        dropped_source: frames the live source's queue discarded (the model was busy).
        dropped_results: results the result queue discarded (the outputs were busy).
        model_errors: frames on which the model failed and that were skipped (monitor mode).
        output_errors: frames whose outputs failed and that were skipped (monitor mode).
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
    model_errors: int = 0
    output_errors: int = 0

    def __post_init__(self) -> None:
        if self.live and not isinstance(self.frame_age_ms, deque):
            self.frame_age_ms = deque(self.frame_age_ms, maxlen=LIVE_SAMPLES)  # type: ignore[assignment]

    @property
    def dropped(self) -> int:
        """Frames lost on purpose by the live policy (source queue + result queue)."""
        return self.dropped_source + self.dropped_results

    def add(self, timings_ms: dict[str, float], age_ms: float) -> None:
        """Record one written frame: its stage times (ms) and its age when written (ms)."""
        for stage, ms in timings_ms.items():
            self.add_stage(stage, ms)
        self.frame_age_ms.append(age_ms)
        self.frames_out += 1

    def add_stage(self, stage: str, ms: float) -> None:
        """Record one frame's time of one ``stage`` (ms); safe from an output's own thread."""
        values = self.stage_ms.get(stage)
        if values is None:
            values = deque(maxlen=LIVE_SAMPLES) if self.live else []  # type: ignore[assignment]
            values = self.stage_ms.setdefault(stage, values)
        values.append(ms)

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


class Rate:
    """Frames per second over the last ``window`` ticks (for the HUD)."""

    def __init__(self, window: int = 30) -> None:
        self._times: deque[float] = deque(maxlen=window)

    def tick(self) -> float:
        """Count one frame now; return the rate in frames per second (0 until two ticks)."""
        self._times.append(time.monotonic())
        if len(self._times) < 2:
            return 0.0
        return (len(self._times) - 1) / max(self._times[-1] - self._times[0], 1e-9)


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
