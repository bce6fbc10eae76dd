"""The HUD's lines: frame age ("latency") only for live sources (issue 13, item 6).

A file source decodes ahead into its queue, so now - t_capture counts the read-ahead
(seconds) rather than the model's time; a file run's HUD shows throughput and model time.
"""

from __future__ import annotations

import re
import time

import numpy as np

from streamseg.core.processor import StreamProcessor
from streamseg.types import Frame, FrameResult, Instances


def aged_result(age_s: float, *, model_ms: float | None = 150.0) -> FrameResult:
    frame = Frame("clip.mp4", 3, 0.1, time.monotonic() - age_s, np.zeros((48, 64, 3), np.uint8))
    timings = {"decode": 2.0, "model": model_ms} if model_ms is not None else {"decode": 2.0}
    return FrameResult(frame, Instances.empty((48, 64)), timings)


def figures_ms(lines: list[str]) -> list[float]:
    return [float(v) for v in re.findall(r"(\d+(?:\.\d+)?)\s*ms", " ".join(lines))]


def test_file_run_hud_shows_fps_and_model_time_but_no_frame_age() -> None:
    proc = StreamProcessor(categories=("a",), live=False)
    lines = proc._hud_lines(aged_result(2.5), 25.0)
    text = " ".join(lines).lower()
    assert "latency" not in text and "age" not in text
    assert "25.0 fps" in text and "model 150 ms" in text
    assert all(ms < 1000 for ms in figures_ms(lines))  # no 2500 ms read-ahead figure anywhere
    skipped = proc._hud_lines(aged_result(2.5, model_ms=None), 25.0)
    assert "latency" not in " ".join(skipped).lower() and "skipped" in " ".join(skipped)


def test_live_run_hud_keeps_frame_age() -> None:
    proc = StreamProcessor(categories=("a",), live=True)
    lines = proc._hud_lines(aged_result(0.4), 25.0)
    text = " ".join(lines)
    match = re.search(r"latency\s+(\d+)\s*ms", text)
    assert match is not None and 390 <= float(match.group(1)) < 1000
    assert "model 150 ms" in text
