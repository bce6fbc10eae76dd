"""``streamseg monitor --ray`` on a real Ray cluster on this machine.

The test starts a Ray head with ``ray start --head --block`` on 127.0.0.1 (2 CPUs) and
stops it at the end; the streams are two real RTSP streams from the GStreamer test
server and one file. The model is the demo Mask R-CNN with seeded random weights at
min size 128 (as tests/test_monitor.py), so a frame costs tens of milliseconds.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import pytest

from tests.rtsp_server import RtspServer, free_port, two_servers

# Token authentication on the head and in this driver alike (the token in ~/.ray/auth_token),
# as the README asks of every node: Ray 2.60's `ray start --head` turns it on by default but a
# driver joining a running cluster does not, and a head and a driver that disagree cannot talk.
# Read when Ray is imported, so set before.
os.environ.setdefault("RAY_AUTH_MODE", "token")
ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'streamseg[ray]')")

from streamseg.monitor import Monitor, StreamStats, parse_config
from streamseg.monitor.cluster import ID_BLOCK, RayMonitor

pytestmark = pytest.mark.slow  # each starts Ray actors (a process per stream and replica)

VIDEO = Path(__file__).resolve().parents[2] / "shared" / "data" / "videos" / "bikes.mp4"
MODEL = {"name": "demo", "weights": "random", "min_size": 128, "max_detections": 5, "score_floor": 0.0}
TRACKER = {"new_track_thresh": 0.1, "high_thresh": 0.15}


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
        time.sleep(0.2)


def _lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory):
    """A Ray head on 127.0.0.1 with 2 CPUs, started for these tests and stopped after them."""
    port, dashboard = free_port(), free_port()
    ray_cli = Path(sys.executable).parent / "ray"
    log = open(tmp_path_factory.mktemp("ray") / "head.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [str(ray_cli), "start", "--head", "--block", f"--port={port}", "--num-cpus=2", "--num-gpus=0",
         "--node-ip-address=127.0.0.1", "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}",
         "--include-dashboard=true", "--disable-usage-stats"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    address = f"127.0.0.1:{port}"

    def listening() -> bool:
        assert proc.poll() is None, f"ray start exited: {Path(log.name).read_text()[-2000:]}"
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", dashboard)) == 0

    try:
        _wait(listening, 120, "the Ray head's dashboard")
        ray.init(address=address, log_to_driver=False)
        yield address
    finally:
        if ray.is_initialized():
            ray.shutdown()
        # --block: `ray start` stops the head's processes on SIGTERM (it waits for them up to
        # about 30 s); the rest of the session's process group goes after a few seconds.
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
        log.close()


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory):
    yield from two_servers(tmp_path_factory.getbasetemp() / "rtsp-cluster")


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 30 frames of a real clip, as an H.264 MP4 (a short file stream)."""
    if not VIDEO.exists():
        pytest.skip(f"{VIDEO} not found (../shared/data)")
    path = tmp_path_factory.mktemp("clip") / "bikes30.mp4"
    with av.open(str(VIDEO)) as src, av.open(str(path), "w") as dst:
        stream = dst.add_stream("libx264", rate=25)
        stream.width, stream.height = src.streams.video[0].width, src.streams.video[0].height
        for i, frame in enumerate(src.decode(video=0)):
            if i == 30:
                break
            frame.pts = None
            dst.mux(stream.encode(frame.reformat(format="yuv420p")))
        dst.mux(stream.encode(None))
    return path


def _doc(out: Path, streams: list[dict], **cluster: object) -> dict:
    return {
        "monitor": {"output_dir": str(out), "health_interval_s": 1.0},
        "model": dict(MODEL),
        "cluster": {"replicas": 1, "replica_cpus": 1.0, "stream_cpus": 0.25, "max_wait_ms": 2.0, **cluster},
        "streams": [{"tracker": TRACKER, "score_thresh": 0.0, **s} for s in streams],
    }


class _Run:
    """A RayMonitor run in a thread (the test kills actors meanwhile)."""

    def __init__(self, monitor: RayMonitor) -> None:
        self.monitor = monitor
        self.final: list[StreamStats] = []
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.final = self.monitor.run()
        except BaseException as exc:  # noqa: BLE001 - raised in the test
            self.error = exc

    def stop(self) -> dict[str, StreamStats]:
        self.monitor.stop()
        self.thread.join(180)
        assert not self.thread.is_alive(), "the Ray monitor did not stop"
        if self.error is not None:
            raise self.error
        return {s.name: s for s in self.final}


def _pid(actor_name: str) -> int:
    from ray.util.state import list_actors

    alive = list_actors(filters=[("name", "=", actor_name), ("state", "=", "ALIVE")])
    assert len(alive) == 1, alive
    return int(alive[0].pid)


def _instances(lines: list[dict]) -> list[tuple]:
    """Per frame: (frame, [(label, track_id, score, bbox)]), for comparing runs."""
    return [(x["frame"], [(i["label"], i["track_id"], i["score"], i["bbox"]) for i in x["instances"]]) for x in lines]


def test_streams_on_a_ray_cluster_write_what_local_mode_writes(
    ray_cluster: str, servers: tuple[RtspServer, RtspServer], clip: Path, tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    a, b = servers
    file_stream = {"name": "file", "url": str(clip), "mot": True}
    local = Monitor(parse_config(_doc(tmp_path / "local", [file_stream]))).run()
    assert [s.frames for s in local] == [30]

    out = tmp_path / "ray"
    streams = [file_stream, {"name": "cam1", "url": a.url}, {"name": "cam2", "url": b.url, "detect_every": 2}]
    run = _Run(RayMonitor(parse_config(_doc(out, streams)), address=ray_cluster))
    _wait(lambda: len(_lines(out / "file" / "file.jsonl")) == 30
          and min(len(_lines(out / n / f"{n}.jsonl")) for n in ("cam1", "cam2")) >= 5, 180, "30 + 5 + 5 frames")  # fmt: skip
    final = run.stop()

    # the file stream: what the local monitor wrote (same model and thresholds), up to float noise
    ours, theirs = _instances(_lines(out / "file" / "file.jsonl")), _instances(_lines(tmp_path / "local" / "file" / "file.jsonl"))
    assert [f for f, _ in ours] == [f for f, _ in theirs] == list(range(30))
    for (frame, got), (_, want) in zip(ours, theirs, strict=True):
        assert [(g[0], g[1]) for g in got] == [(w[0], w[1]) for w in want], frame
        for g, w in zip(got, want, strict=True):
            assert abs(g[2] - w[2]) <= 1e-4 and max(abs(p - q) for p, q in zip(g[3], w[3], strict=True)) <= 0.011
    assert (out / "file" / "file.txt").read_text() == (tmp_path / "local" / "file" / "file.txt").read_text()
    # the live streams: every written frame in the JSONL and in the playable MP4 segments
    for name in ("cam1", "cam2"):
        s = final[name]
        assert s.state == "stopped" and s.frames >= 5 and s.restarts == 0 and s.lost == 0, s.line()
        assert len(_lines(out / name / f"{name}.jsonl")) == s.frames
        decoded = 0
        for seg in sorted((out / name).glob(f"{name}-*.mp4")):
            with av.open(str(seg)) as c:
                decoded += sum(1 for _ in c.decode(video=0))
        assert decoded == s.frames
    events = _lines(out / "events.jsonl")
    assert [e["state"] for e in events if e["type"] == "state" and e["stream"] == "cam1"] == [
        "connecting", "streaming", "stopped"]  # fmt: skip
    assert not [e for e in events if e["type"] in ("error", "restart")]
    # Ray's core worker (in this process) warns when a restartable actor's constructor arguments
    # sit in the object store, where a restart could find them gone (ray-project/ray#53727).
    assert "constructor arguments in the object store" not in capfd.readouterr().err


def test_a_killed_stream_actor_resumes_with_its_ids_and_counts_the_outage(
    ray_cluster: str, servers: tuple[RtspServer, RtspServer], tmp_path: Path
) -> None:
    a, _ = servers
    out = tmp_path / "out"
    jsonl = out / "cam" / "cam.jsonl"
    health: list[StreamStats] = []
    monitor = RayMonitor(parse_config(_doc(out, [{"name": "cam", "url": a.url, "mot": True}])), address=ray_cluster,
                         on_health=health.append)  # fmt: skip
    run = _Run(monitor)
    def written_s() -> float:  # stream time the first life has written
        lines = _lines(jsonl)
        return lines[-1]["pts"] - lines[0]["pts"] if len(lines) >= 15 else 0.0

    # Killed after 2.5 s of stream time at least: the segment it cuts then has a whole 1 s fragment.
    _wait(lambda: written_s() >= 2.5, 180, "15 frames and 2.5 s of stream before the kill")
    pid = _pid(monitor.actor_name("cam"))
    os.kill(pid, signal.SIGKILL)
    before = len(_lines(jsonl))
    _wait(lambda: len(_lines(jsonl)) >= before + 15, 180, "15 frames after the restart")
    final = run.stop()["cam"]
    assert _pid_gone(pid)

    lines = _lines(jsonl)  # every line whole: the kill cut none
    events = _lines(out / "events.jsonl")
    restarts = [e for e in events if e["type"] == "restart"]
    assert len(restarts) == 1 and restarts[0]["stream"] == "cam" and restarts[0]["restarts"] == 1
    resumed = restarts[0]["resumed_at_frame"]
    # the outage: 25 fps live, an actor restart takes seconds: counted, in the health line and the event
    assert restarts[0]["lost_frames"] > 0 and restarts[0]["outage_s"] > 0.5
    assert final.restarts == 1 and final.lost == restarts[0]["lost_frames"], final.line()
    assert f"restarts=1 lost={final.lost}" in final.line()
    assert any(s.restarts == 1 and s.state == "streaming" for s in health)
    # frame numbering goes on, and no track ID of the first life is given again
    frames = [x["frame"] for x in lines]
    assert frames == sorted(frames) and len(set(frames)) == len(frames)
    first = [i["track_id"] for x in lines if x["frame"] < resumed for i in x["instances"] if i["track_id"] > 0]
    second = [i["track_id"] for x in lines if x["frame"] >= resumed for i in x["instances"] if i["track_id"] > 0]
    assert first and second and not set(first) & set(second)
    assert min(second) > ID_BLOCK  # the second life's block
    # a new MP4 segment; the one cut by the kill still plays up to its last fragment
    segments = sorted((out / "cam").glob("cam-*.mp4"))
    assert [p.name[:9] for p in segments] == ["cam-00001", "cam-00002"]
    with av.open(str(segments[0])) as c:
        assert sum(1 for _ in c.decode(video=0)) > 0
    with av.open(str(segments[1])) as c:
        assert sum(1 for _ in c.decode(video=0)) == sum(1 for x in lines if x["frame"] >= resumed)
    mot_frames = {int(r.split(",")[0]) - 1 for r in (out / "cam" / "cam.txt").read_text().splitlines()}
    assert mot_frames <= set(frames)


def _pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_killed_replica_drops_only_its_frame_and_the_other_keeps_serving(
    ray_cluster: str, clip: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    jsonl = out / "file" / "file.jsonl"
    monitor = RayMonitor(parse_config(_doc(out, [{"name": "file", "url": str(clip)}], replicas=2, replica_cpus=0.5)),
                         address=ray_cluster)  # fmt: skip
    run = _Run(monitor)
    _wait(lambda: len(_lines(jsonl)) >= 8, 180, "8 frames before the kill")
    os.kill(_pid(monitor.replica_name(0)), signal.SIGKILL)
    at_kill = len(_lines(jsonl))
    run.thread.join(180)  # the file ends: the run ends by itself
    final = run.stop()["file"]
    frames = [x["frame"] for x in _lines(jsonl)]
    assert len(frames) > at_kill  # served on after the kill
    # every frame is either written or counted as lost: nothing silent
    assert len(set(frames)) == len(frames) and set(frames) <= set(range(30))
    assert len(frames) + final.lost == 30 and final.frames == len(frames), final.line()
    assert final.restarts == 0 and final.state == "stopped"


def test_asking_for_more_cpus_than_the_cluster_has_is_said(ray_cluster: str, tmp_path: Path) -> None:
    from streamseg.sinks import EventLog

    cfg = parse_config(_doc(tmp_path, [{"name": "a", "url": "rtsp://127.0.0.1:9/x"}], replicas=3, replica_cpus=1.0))
    events = EventLog(tmp_path / "events.jsonl")
    message = RayMonitor(cfg, address=ray_cluster)._check_resources(cfg, events)
    events.close()
    assert message is not None and "asks for 3.25 CPU (the cluster has 2)" in message
    assert [e["error"] for e in _lines(tmp_path / "events.jsonl")] == [message]
    fits = parse_config(_doc(tmp_path, [{"name": "a", "url": "rtsp://127.0.0.1:9/x"}]))
    events = EventLog(tmp_path / "events2.jsonl")
    assert RayMonitor(fits, address=ray_cluster)._check_resources(fits, events) is None
    events.close()
