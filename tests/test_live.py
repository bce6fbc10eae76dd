"""Live sources against a real RTSP server (GStreamer, tests/rtsp_server.py): no mocks.

The server runs on the system python3 with python3-gi; these tests skip with the
reason when it cannot start (``.ci/run`` installs the packages).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest

from streamseg.errors import SourceError
from streamseg.core import Pipeline, percentile
from streamseg.sinks import JsonlOutput, VideoOutput
from streamseg.sources import (
    Backoff,
    CameraSource,
    HttpSource,
    RtspSource,
    VideoFileSource,
    open_source,
    redact_url,
)
from streamseg.types import Instances
from tests.rtsp_server import GarbageServer, RtspServer, free_port, server_unavailable

SECRET = "s3cretPW"


def streamseg_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("streamseg")]


@pytest.fixture
def server(tmp_path_factory: pytest.TempPathFactory):
    reason = server_unavailable()
    if reason:
        pytest.skip(reason)
    srv = RtspServer(tmp_path_factory.getbasetemp() / "rtsp")
    srv.start()
    yield srv
    srv.kill()


def with_credentials(url: str) -> str:
    return url.replace("rtsp://", f"rtsp://admin:{SECRET}@")


def read_frames(source, n: int, timeout: float = 15.0) -> list:
    frames, deadline = [], time.monotonic() + timeout
    while len(frames) < n:
        assert time.monotonic() < deadline, f"only {len(frames)} of {n} frames within {timeout} s"
        item = source.read(timeout=max(deadline - time.monotonic(), 0.01))
        assert item is not None
        frames.append(item[0])
    return frames


def test_reads_frames_over_tcp(server: RtspServer) -> None:
    source = open_source(server.url)
    assert isinstance(source, RtspSource) and source.options["rtsp_transport"] == "tcp"
    assert source.queue_policy == "drop_oldest"
    info = source.open()
    assert info.live and (info.width, info.height) == (320, 136) and info.codec == "h264"
    with source:
        frames = read_frames(source, 30)
    assert all(f.image.shape == (136, 320, 3) and f.image.dtype == np.uint8 for f in frames)
    indices = [f.index for f in frames]
    pts = [f.pts_s for f in frames]
    assert indices == sorted(indices) and len(set(indices)) == 30
    assert all(b > a for a, b in zip(pts, pts[1:]))
    assert [e.state for e in source.events] == ["connecting", "streaming", "stopped"]
    assert source.state == "stopped" and not streamseg_threads()


def test_reconnects_after_the_server_restarts(server: RtspServer) -> None:
    seen: list[str] = []
    source = RtspSource(
        server.url, backoff=Backoff(initial_s=0.25, max_s=1.0), read_timeout_s=3.0,
        on_state=lambda e: seen.append(e.state),
    )
    with source:
        before = read_frames(source, 20)
        threads_streaming = {t.name for t in streamseg_threads()}
        server.kill()
        time.sleep(3.0)
        server.start()
        after = []
        deadline = time.monotonic() + 25
        while len(after) < 10:
            assert time.monotonic() < deadline, f"no frames after the restart; events {source.events}"
            try:
                item = source.read(timeout=1.0)
            except TimeoutError:  # the outage: no frame for a while
                continue
            assert item is not None
            if item[0].pts_s > before[-1].pts_s + 2.5:
                after.append(item[0])
        # one decode thread for the whole life of the source: none per reconnect
        assert {t.name for t in streamseg_threads()} == threads_streaming
    states = [e.state for e in source.events]
    assert states == ["connecting", "streaming", "reconnecting", "streaming", "stopped"], states
    assert seen == states[1:]  # the callback gets every change after the initial one
    assert source.reconnects == 1 and source.attempts >= 2
    # index and pts keep counting across the reconnect; the outage (>= 3 s) is in pts
    assert after[0].index > before[-1].index
    assert after[0].pts_s - before[-1].pts_s >= 2.5
    assert not streamseg_threads()


class FixedDelayStage:
    """A stand-in model that finds nothing and takes ``delay_s`` per frame: what these tests
    measure is the queueing and reconnection policy, not the network (see test_monitor.py
    for the real model)."""

    name, model_name, categories, random_weights, device = "delay", "delay", ("__bg__",), False, "cpu"

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s

    def infer(self, image: np.ndarray) -> tuple[Instances, dict[str, float]]:
        time.sleep(self.delay_s)
        empty = Instances(image.shape[:2], np.zeros((0, 4)), np.zeros(0), np.zeros(0))
        return empty, {"model": self.delay_s * 1000.0}


def test_a_stalled_stream_reconnects_after_the_read_timeout(server: RtspServer) -> None:
    """SIGSTOP freezes the server: the TCP connection stays open but no data comes."""
    assert server.proc is not None
    source = RtspSource(server.url, open_timeout_s=2.0, read_timeout_s=2.0, backoff=Backoff(0.25, 1.0))
    with source:
        before = read_frames(source, 10)
        os.kill(server.proc.pid, signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            while source.state != "reconnecting":
                assert time.monotonic() - t0 < 8, "the stall was not detected"
                time.sleep(0.05)
            detected_s = time.monotonic() - t0
        finally:
            os.kill(server.proc.pid, signal.SIGCONT)
        deadline = time.monotonic() + 20
        while source.reconnects < 1 or source.state != "streaming":
            assert time.monotonic() < deadline, f"no reconnect after the stall; events {source.events}"
            time.sleep(0.1)
        after = read_frames(source, 5)
    assert 1.5 <= detected_s < 6.0, detected_s
    assert after[-1].index > before[-1].index and after[-1].pts_s > before[-1].pts_s
    assert not streamseg_threads()


@pytest.mark.slow  # > 10 s on a 2-core CPU (pytest --durations)
def test_pipeline_and_outputs_survive_a_reconnect(server: RtspServer, tmp_path: Path) -> None:
    source = RtspSource(server.url, backoff=Backoff(initial_s=0.25, max_s=1.0), read_timeout_s=3.0)
    source.open()
    video, jsonl = tmp_path / "r.mp4", tmp_path / "r.jsonl"
    pipeline = Pipeline(
        source, FixedDelayStage(0.05), [VideoOutput(video, fps=25), JsonlOutput(jsonl, categories=("__bg__",))]
    )
    runner = threading.Thread(target=pipeline.run, name="test-runner")
    runner.start()
    time.sleep(2.5)
    server.kill()
    time.sleep(3.0)
    server.start()
    deadline = time.monotonic() + 25
    while source.reconnects < 1 or pipeline.summary.frames_out < 60:
        assert time.monotonic() < deadline, f"no frames after the restart; events {source.events}"
        time.sleep(0.2)
    time.sleep(1.0)
    pipeline.stop()
    runner.join(30)
    summary = pipeline.summary
    assert summary.error is None and not runner.is_alive()
    rows = [json.loads(x) for x in jsonl.read_text().splitlines()]
    pts = [r["pts"] for r in rows]
    assert all(b > a for a, b in zip(pts, pts[1:]))
    gaps = [b - a for a, b in zip(pts, pts[1:])]
    outage = gaps.index(max(gaps))
    assert max(gaps) >= 2.5 and len(pts) - (outage + 1) >= 5  # the outage is in pts, frames follow it
    with av.open(str(video)) as c:  # one playable file across the outage
        assert sum(1 for _ in c.decode(video=0)) == summary.frames_out == len(rows)
    assert [e.state for e in source.events] == ["connecting", "streaming", "reconnecting", "streaming", "stopped"]
    assert not streamseg_threads()


@pytest.mark.slow  # > 10 s on a 2-core CPU (pytest --durations)
def test_slow_consumer_keeps_frame_age_bounded(server: RtspServer, tmp_path: Path) -> None:
    """A stage 5x slower than the 25 fps stream (200 ms per frame) for 15 s (75 consumer
    periods: long enough to see growth, which would be ~160 ms/s with a FIFO; the 5-minute
    run is benchmarks/live.py)."""
    period_s = 0.2
    source = RtspSource(server.url, queue_size=1)
    source.open()
    pipeline = Pipeline(
        source, FixedDelayStage(period_s), [JsonlOutput(tmp_path / "r.jsonl", categories=("__bg__",))]
    )
    timer = threading.Timer(15.0, pipeline.stop)
    timer.start()
    summary = pipeline.run()
    timer.cancel()
    ages = list(summary.frame_age_ms)
    assert summary.live and summary.frames_out >= 40
    p95 = percentile(ages, 95)
    assert p95 < 2 * period_s * 1000, f"frame age p95 {p95:.0f} ms"
    # it does not grow: the last third is no older than the first third (+ one stream period)
    third = len(ages) // 3
    assert np.median(ages[-third:]) < np.median(ages[:third]) + 40
    assert summary.dropped_source >= 200  # ~25 fps in, ~5 fps out
    assert not streamseg_threads()


def test_nothing_listening_is_a_clear_error_within_the_open_timeout() -> None:
    port = free_port()
    url = f"rtsp://admin:{SECRET}@127.0.0.1:{port}/stream"
    t0 = time.monotonic()
    with pytest.raises(SourceError) as info:
        open_source(url, open_timeout_s=2.0).open()
    assert time.monotonic() - t0 < 2.5
    assert str(info.value) == f"cannot open rtsp://127.0.0.1:{port}/stream: Connection refused"

    # retrying, per the config: gives up after max_attempts with the reason
    source = open_source(url, fail_fast=False, backoff=Backoff(0.1, 0.2, max_attempts=3))
    with source, pytest.raises(SourceError, match="gave up after 3 failed attempts.*Connection refused"):
        source.read(timeout=10)
    assert [e.state for e in source.events] == ["connecting", "reconnecting", "failed"]
    assert SECRET not in repr(source.events) and not streamseg_threads()


def test_a_server_that_never_answers_times_out() -> None:
    with socket.socket() as silent:  # accepts connections (backlog) and never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        url = f"rtsp://127.0.0.1:{silent.getsockname()[1]}/stream"
        t0 = time.monotonic()
        with pytest.raises(SourceError, match="no valid answer within the open timeout"):
            RtspSource(url, open_timeout_s=1.5, read_timeout_s=1.5).open()
        assert time.monotonic() - t0 < 4.0


def test_garbage_stream_is_a_clear_error() -> None:
    with GarbageServer() as garbage:
        url = with_credentials(garbage.url)
        with pytest.raises(SourceError) as info:
            RtspSource(url, open_timeout_s=3, read_timeout_s=3).open()
    message = str(info.value)
    assert message.startswith(f"cannot open {garbage.url}: ") and SECRET not in message and "admin" not in message
    assert "no valid answer within the open timeout (3 s)" in message or "invalid data" in message


@pytest.mark.parametrize(
    "url",
    ["rtsp://", "rtsp://admin:s3cretPW@/stream", "rtsp://admin:s3cretPW@host:99999/x", "rtsp://ho st/x"],
)
def test_malformed_urls(url: str) -> None:
    with pytest.raises(SourceError, match="malformed URL") as info:
        open_source(url)
    assert SECRET not in str(info.value)


def test_routing_and_cameras(tmp_path: Path) -> None:
    assert isinstance(open_source("http://127.0.0.1:9/live.m3u8"), HttpSource)
    assert isinstance(open_source("rtsps://cam.example/s", transport="udp"), RtspSource)
    for uri in ("cam:7", "camera:7", "/dev/video7", "7"):
        cam = open_source(uri)
        assert isinstance(cam, CameraSource) and cam.device == "/dev/video7"
    if Path("/dev/video7").exists():
        pytest.skip("/dev/video7 exists here")
    with pytest.raises(SourceError, match=r"^no such camera: /dev/video7"):
        open_source("cam:7").open()
    cam = CameraSource(7, size=(640, 480), fps=30)
    assert cam.options == {"video_size": "640x480", "framerate": "30"}
    with pytest.raises(SourceError, match="unsupported URL scheme 'ftp'") as info:
        open_source(f"ftp://admin:{SECRET}@host/x.mp4")
    assert SECRET not in str(info.value)
    with pytest.raises(ValueError):
        open_source(str(tmp_path), transport="tcp")
    video = tmp_path / "7"
    video.write_bytes(b"")
    # an existing file named like an index stays a file
    import os

    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert isinstance(open_source("7"), VideoFileSource)
    finally:
        os.chdir(cwd)


def test_credentials_never_appear(server: RtspServer, caplog: pytest.LogCaptureFixture) -> None:
    """Logs, state events, errors, thread names, frame ids and repr: never the password."""
    caplog.set_level(logging.DEBUG)
    url = with_credentials(server.url)
    source = RtspSource(url, backoff=Backoff(0.2, 0.5), read_timeout_s=2.0)
    texts: list[str] = []
    with source:
        frames = read_frames(source, 5)
        texts += [t.name for t in streamseg_threads()]
        server.kill()  # the reconnect path logs and records errors too
        deadline = time.monotonic() + 10
        while source.last_error is None or "refused" not in source.last_error:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    texts += [source.uri, repr(source), str(source.info), str(source.last_error), frames[0].source_id]
    texts += [f"{e.state} {e.detail}" for e in source.events]
    texts += [r.getMessage() for r in caplog.records]
    texts.append(str(source.stats()))
    joined = "\n".join(texts)
    assert SECRET not in joined and "admin" not in joined
    assert server.url in joined and redact_url(url) == server.url


def test_hls_over_http_and_reconnect_at_the_end(tmp_path: Path) -> None:
    """A real HTTP server (http.server) serving an HLS playlist PyAV wrote; the playlist is
    finite, so the end of it is a reconnect (live sources never just end)."""
    import functools
    import http.server

    hls = tmp_path / "hls"
    hls.mkdir()
    with av.open(str(hls / "live.m3u8"), "w", format="hls", options={"hls_time": "1", "hls_list_size": "0"}) as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 160, 96, "yuv420p"
        for i in range(40):
            image = np.full((96, 160, 3), i * 5, np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        out.mux(stream.encode(None))

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(hls)))
    serving = threading.Thread(target=httpd.serve_forever, name="http-server", daemon=True)
    serving.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/live.m3u8"
        source = open_source(url, queue_size=8, backoff=Backoff(0.1, 0.2))
        assert isinstance(source, HttpSource)
        info = source.open()
        assert info.live and (info.width, info.height) == (160, 96)
        with source:
            frames = read_frames(source, 50, timeout=30)
        assert source.reconnects >= 1
        assert [f.index for f in frames] == sorted(f.index for f in frames)
        assert all(b.pts_s > a.pts_s for a, b in zip(frames, frames[1:]))
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert not streamseg_threads()


def test_udp_on_request(server: RtspServer) -> None:
    source = open_source(server.url, transport="udp")
    assert source.options["rtsp_transport"] == "udp"
    with source:
        frames = read_frames(source, 10)
    assert len(frames) == 10 and not streamseg_threads()
