"""The pipeline in-process: real sources, the real torch backend, real outputs."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import av
import pytest

from streamseg.backends.torch_backend import TorchBackend
from streamseg.errors import SinkError
from streamseg.core import Pipeline, StreamProcessor, describe
from streamseg.sinks import JsonlOutput, VideoOutput
from streamseg.sources import open_source
from tests.conftest import data_path


@pytest.fixture(scope="module")
def backend() -> TorchBackend:
    # Tiny input: these tests are about the threads and queues, not the model.
    return TorchBackend("maskrcnn_resnet50_fpn", weights="random", score_thresh=0.0, min_size=128)


def pipeline_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("streamseg")]


@pytest.mark.slow  # > 10 s on a 2-core CPU (pytest --durations)
def test_file_source_never_drops_a_frame(tmp_path: Path, backend: TorchBackend) -> None:
    n = 12
    source = open_source(str(data_path("videos", "bikes.mp4")), max_frames=n)
    source.open()
    jsonl = tmp_path / "r.jsonl"
    # queue_size 1 and a slow consumer side (video encode) still lose nothing.
    pipeline = Pipeline(
        source,
        backend,
        [VideoOutput(tmp_path / "r.mp4", fps=source.info.fps), JsonlOutput(jsonl, categories=backend.categories)],
        queue_size=1,
    )
    summary = pipeline.run()
    assert summary.frames_in == summary.frames_out == n
    frames = [json.loads(line)["frame"] for line in jsonl.read_text().splitlines()]
    assert frames == list(range(n))
    assert summary.median_ms("model") > 0 and summary.model_fps > 0
    assert "12 frames" in describe(summary)
    assert not pipeline_threads()


def test_sink_error_stops_cleanly_and_keeps_the_video_valid(tmp_path: Path, backend: TorchBackend) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("/dev/full is needed to make a real write fail")
    source = open_source(str(data_path("videos", "bikes.mp4")), max_frames=50)
    source.open()
    video = tmp_path / "r.mp4"
    pipeline = Pipeline(
        source,
        backend,
        [VideoOutput(video, fps=source.info.fps), JsonlOutput("/dev/full", categories=backend.categories)],
    )
    with pytest.raises(SinkError, match="/dev/full"):
        pipeline.run()
    # The video output was closed: it is a valid MP4 with the frame rendered before the failure.
    with av.open(str(video)) as container:
        assert len(list(container.decode(video=0))) == pipeline.summary.frames_out + 1
    assert not pipeline_threads()


def test_stop_from_another_thread_closes_outputs(tmp_path: Path, backend: TorchBackend) -> None:
    source = open_source(str(data_path("videos", "vtest.avi")))
    source.open()
    jsonl = tmp_path / "r.jsonl"
    pipeline = Pipeline(source, backend, [JsonlOutput(jsonl, categories=backend.categories)])

    def stop_after_two_frames() -> None:  # however slow the machine is
        while not (jsonl.exists() and len(jsonl.read_text().splitlines()) >= 2):
            time.sleep(0.05)
        pipeline.stop()

    stopper = threading.Thread(target=stop_after_two_frames, daemon=True)
    stopper.start()
    summary = pipeline.run()
    stopper.join(5)
    assert summary.interrupted and 2 <= summary.frames_out < 795
    assert len(jsonl.read_text().splitlines()) == summary.frames_out
    assert not pipeline_threads()


def test_tracking_with_detect_every_predicts_skipped_frames(tmp_path: Path, backend: TorchBackend) -> None:
    from streamseg.sinks import MotOutput
    from streamseg.tracking import ByteTracker

    n, k = 9, 3
    source = open_source(str(data_path("videos", "bikes.mp4")), max_frames=n)
    source.open()
    jsonl, mot = tmp_path / "r.jsonl", tmp_path / "r.txt"
    pipeline = Pipeline(
        source,
        backend,
        [VideoOutput(tmp_path / "r.mp4", fps=source.info.fps), JsonlOutput(jsonl, categories=backend.categories), MotOutput(mot)],
        processor=StreamProcessor(
            categories=backend.categories,
            # Random-weight scores peak near 0.5: lower the thresholds so that tracks start.
            tracker=ByteTracker(high_thresh=0.4, new_track_thresh=0.45, low_thresh=0.1),
            detect_every=k,
            trails=True,
        ),
    )
    summary = pipeline.run()
    assert summary.frames_out == n
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    ran_model = ["model" in r["timings_ms"] for r in records]
    assert ran_model == [i % k == 0 for i in range(n)]
    assert all("track" in r["timings_ms"] for r in records)
    tracked = [i for r in records for i in r["instances"] if i["track_id"] >= 0]
    assert tracked
    # Skipped frames carry the predicted confirmed tracks.
    assert all(inst["track_id"] >= 0 for r in records[1:] if "model" not in r["timings_ms"] for inst in r["instances"])
    lines = mot.read_text().splitlines()
    assert lines and all(len(line.split(",")) == 10 for line in lines)
    assert {int(line.split(",")[0]) for line in lines} <= set(range(1, n + 1))


def test_detect_every_needs_a_tracker(backend: TorchBackend) -> None:
    with pytest.raises(ValueError, match="tracker"):
        StreamProcessor(categories=backend.categories, detect_every=2)
