"""The one stream-processing core under ``run``, ``monitor``, ``gui`` and ``demo``.

* :class:`StreamProcessor` (:mod:`streamseg.core.processor`): one stream's tracker,
  detect-every-K, score threshold, drawing, outputs and metrics;
* :class:`Runner` (:mod:`streamseg.core.runner`): the inference scheduler serving 1..N
  streams from one backend, with the queue policies and error handling;
* :class:`Pipeline` (:mod:`streamseg.core.pipeline`): one source, one backend;
* :class:`RunSummary` (:mod:`streamseg.core.metrics`): per-stream metrics.

See docs/architecture.md for how a frame flows through them.
"""

from __future__ import annotations

from streamseg.core.metrics import LIVE_SAMPLES, STAGES, RunSummary, describe, percentile
from streamseg.core.pipeline import Pipeline
from streamseg.core.processor import StreamProcessor
from streamseg.core.runner import Runner, Stream

__all__ = [
    "LIVE_SAMPLES",
    "STAGES",
    "Pipeline",
    "RunSummary",
    "Runner",
    "Stream",
    "StreamProcessor",
    "describe",
    "percentile",
]
