"""Outputs written in their own threads (the MP4 encoder, the JSONL): same files, errors not lost."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest

from streamseg.backends.synthetic import SyntheticReplay
from streamseg.core import Pipeline, StreamProcessor
from streamseg.errors import SinkError
from streamseg.models.coco import COCO_CATEGORIES
from streamseg.sinks import JsonlOutput, MotOutput, VideoOutput
from streamseg.sources import open_source
from streamseg.tracking import ByteTracker, TrackerConfig
from streamseg.types import Frame
from tests.conftest import data_path


def run(video: Path, out: Path, *, threads: bool) -> tuple[list[dict], list[np.ndarray], str]:
    """The synthetic scene through the whole pipeline; the JSONL lines, decoded MP4 frames and MOT text."""
    out.mkdir()
    source = open_source(str(video), max_frames=20)
    source.open()
    backend = SyntheticReplay(categories=COCO_CATEGORIES, model_name="maskrcnn_resnet50_fpn")
    outputs = [VideoOutput(out / "a.mp4", fps=source.info.fps), JsonlOutput(out / "a.jsonl", categories=COCO_CATEGORIES),
               MotOutput(out / "a.txt")]  # fmt: skip
    processor = StreamProcessor(categories=COCO_CATEGORIES, outputs=outputs, tracker=ByteTracker(TrackerConfig()),
                                trails=True, hud=False, output_threads=threads)  # fmt: skip
    summary = Pipeline(source, backend, processor=processor).run()
    assert summary.frames_out == 20
    assert len(summary.stage_ms["encode"]) == len(summary.stage_ms["jsonl"]) == 20  # timed in their threads too
    lines = [json.loads(line) for line in (out / "a.jsonl").read_text().splitlines()]
    with av.open(str(out / "a.mp4")) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return lines, frames, (out / "a.txt").read_text()


def test_threaded_outputs_write_the_same_files(tmp_path: Path) -> None:
    video = data_path("videos", "bikes.mp4")
    threaded = run(video, tmp_path / "threads", threads=True)
    plain = run(video, tmp_path / "plain", threads=False)
    for a, b in zip(threaded[0], plain[0], strict=True):
        assert a["frame"] == b["frame"] and a["instances"] == b["instances"]  # timings differ run to run
    assert len(threaded[1]) == len(plain[1]) == 20
    for a, b in zip(threaded[1], plain[1]):
        np.testing.assert_array_equal(a, b)
    assert threaded[2] == plain[2]
    assert not [t for t in threading.enumerate() if t.name.startswith("streamseg")]


def feed(tmp: Path, *, threads: bool) -> tuple[int, int, int]:
    """Six frames into an MP4 and a JSONL on /dev/full: (errors raised by write, errors from close, MP4 frames)."""
    video = tmp / f"v{threads}.mp4"
    outputs = [VideoOutput(video, fps=10), JsonlOutput("/dev/full", categories=COCO_CATEGORIES)]
    processor = StreamProcessor(categories=COCO_CATEGORIES, hud=False, outputs=outputs, output_threads=threads)
    scene = SyntheticReplay(categories=COCO_CATEGORIES, model_name="m", count=3)
    image = np.zeros((96, 128, 3), np.uint8)
    raised = 0
    for k in range(6):
        frame = Frame(source_id="x", index=k, pts_s=k / 10, t_capture=time.monotonic(), image=image)
        instances, _ = scene.infer(image)
        try:
            processor.write(processor.track(frame, instances, {}))
        except SinkError as exc:
            assert "/dev/full" in str(exc)
            raised += 1
        time.sleep(0.05)  # let the JSONL thread fail on this frame before the next one
    errors = processor.close()
    assert all(isinstance(e, SinkError) for e in errors)
    with av.open(str(video)) as container:
        return raised, len(errors), len(list(container.decode(video=0)))


def test_a_failing_threaded_output_raises_every_error_and_the_others_keep_writing(tmp_path: Path) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("/dev/full is needed to make a real write fail")
    raised, closing, frames = feed(tmp_path, threads=True)
    plain_raised, plain_closing, plain_frames = feed(tmp_path, threads=False)
    assert raised >= 1  # raised in the stream's thread, not only at the end
    assert raised + closing == plain_raised + plain_closing  # as many errors as without threads: none lost
    assert frames == plain_frames == 6  # the encoder's thread wrote every frame
