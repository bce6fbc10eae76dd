"""``streamseg monitor``: config validation, and real multi-stream runs against real RTSP servers.

The model is the real TorchBackend, kept cheap: the registry's small ``demo``
Mask R-CNN with seeded random weights at min_size 128, 5 detections per image
and score threshold 0 (random weights score ~0.2, so the tracker is told to
start tracks from 0.1). The larger maskrcnn_resnet50_fpn takes 2-4 s per frame
on a busy 2-core CPU, which would leave a short run with a handful of frames.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import pytest

from streamseg.errors import ConfigError
from streamseg.monitor import Monitor, StreamStats, add_parser, load_config, parse_config
from tests.rtsp_server import GarbageServer, RtspServer, two_servers

SECRET = "hunter22pw"
REPO = Path(__file__).resolve().parents[1]

MODEL = {"name": "demo", "weights": "random", "min_size": 128, "max_detections": 5, "score_floor": 0.0}
TRACKER = {"new_track_thresh": 0.1, "high_thresh": 0.15}
#: Random-weight scores are far below the demo model's display threshold (0.5): draw and write them all.
SHOW_ALL = 0.0


def minimal(**stream: object) -> dict:
    return {"model": dict(MODEL), "streams": [{"name": "a", "url": "rtsp://127.0.0.1:9/x", **stream}]}


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({**minimal(), "extra": 1}, "config: unknown key 'extra'"),
        ({**minimal(), "monitor": {"health_interval": 5}}, "[monitor]: unknown key 'health_interval'"),
        (minimal(tranport="udp"), "streams[0] 'a': unknown key 'tranport'"),
        (minimal(tracker={"max_lost": 3}), "streams[0] 'a'.tracker: unknown key 'max_lost'"),
        ({"streams": [{"name": "a"}]}, "streams[0] 'a': missing field 'url'"),
        ({"streams": [{"url": "rtsp://h/x"}]}, "streams[0]: missing field 'name'"),
        ({"model": {}}, "config: missing field 'streams'"),
        (minimal(segment_s="60"), "streams[0] 'a'.segment_s: Input should be a valid number (got '60')"),
        (minimal(segment_s=0), "streams[0] 'a'.segment_s: Input should be greater than 0 (got 0)"),
        (minimal(fail_fast=1), "streams[0] 'a'.fail_fast: Input should be a valid boolean (got 1)"),
        (minimal(transport="http"), "streams[0] 'a'.transport: Input should be 'tcp' or 'udp' (got 'http')"),
        (minimal(detect_every=0), "streams[0] 'a'.detect_every: Input should be greater than or equal to 1"),
        (minimal(track=False, trails=True), "detect_every > 1 and trails need tracking"),
        ({**minimal(), "model": {"backend": "tensorflow"}}, "[model].backend: unknown backend 'tensorflow'"),
        ({**minimal(), "model": {"min_size": 16}}, "[model].min_size: Input should be greater than or equal to 32"),
        ({**minimal(), "rules": [{"name": "r", "kind": "count"}]}, "rules[0] 'r': missing field 'class'"),
        ({**minimal(), "rules": [{"name": "r", "kind": "cnt", "class": "person"}]},
         "rules[0] 'r'.kind: Input should be 'count' or 'new_track' (got 'cnt')"),
        (
            {**minimal(), "rules": [{"name": "r", "kind": "count", "class": "person", "streams": ["zz"]}]},
            "unknown stream(s): ['zz']",
        ),
        (
            {"streams": [{"name": "a", "url": "rtsp://h/1"}, {"name": "a", "url": "rtsp://h/2"}]},
            "duplicate stream name(s): a",
        ),
    ],
)
def test_config_errors_name_the_key(doc: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(doc)
    assert message in str(info.value)


def test_load_config_file(tmp_path: Path) -> None:
    cfg_file = tmp_path / "m.toml"
    cfg_file.write_text(
        '[monitor]\noutput_dir = "out"\nhealth_interval_s = 2\n\n'
        '[[streams]]\nname = "door"\nurl = "rtsp://u:p@10.0.0.5/s"\ntransport = "udp"\n\n'
        '[[rules]]\nname = "crowd"\nkind = "count"\nclass = "person"\nmin_count = 3\nduration_s = 2\n'
    )
    cfg = load_config(cfg_file)
    assert cfg.output_dir == tmp_path / "out" and cfg.events == tmp_path / "out" / "events.jsonl"
    assert cfg.streams[0].transport == "udp" and cfg.streams[0].safe_url == "rtsp://10.0.0.5/s"
    assert cfg.rules[0].min_count == 3 and cfg.rules[0].duration_s == 2.0 and cfg.health_interval_s == 2.0
    cfg_file.write_text("[[streams]\nname=")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_config(cfg_file)
    with pytest.raises(ConfigError, match="monitor config not found"):
        load_config(tmp_path / "missing.toml")


@pytest.fixture
def servers(tmp_path_factory: pytest.TempPathFactory):
    yield from two_servers(tmp_path_factory.getbasetemp() / "rtsp")


def monitor_doc(out: Path, a: RtspServer, b: RtspServer, garbage: GarbageServer, duration_s: float) -> dict:
    return {
        "monitor": {"output_dir": str(out), "health_interval_s": 1.0, "duration_s": duration_s},
        "model": dict(MODEL),
        "streams": [
            {"name": "front", "url": a.url.replace("rtsp://", f"rtsp://admin:{SECRET}@"), "segment_s": 2.0,
             "tracker": TRACKER, "score_thresh": SHOW_ALL},
            {"name": "back", "url": b.url, "tracker": TRACKER, "score_thresh": SHOW_ALL, "detect_every": 2},
            {"name": "typo", "url": f"rtsp://admin:{SECRET}@:554/stream"},
            {"name": "junk", "url": garbage.url.replace("rtsp://", f"rtsp://admin:{SECRET}@"),
             "fail_fast": True, "open_timeout_s": 2.0, "read_timeout_s": 2.0},
        ],
        "rules": [
            {"name": "boxes", "kind": "count", "class": "box", "min_count": 2, "duration_s": 0.3},
            {"name": "new box", "kind": "new_track", "class": "box", "streams": ["front", "back"]},
        ],
    }


@pytest.mark.slow  # > 10 s on a 2-core CPU (pytest --durations)
def test_two_streams_one_model_bad_streams_do_not_stop_the_others(
    servers: tuple[RtspServer, RtspServer], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    a, b = servers
    out = tmp_path / "out"
    health: list[StreamStats] = []
    with GarbageServer() as garbage:
        monitor = Monitor(parse_config(monitor_doc(out, a, b, garbage, 9.0)), on_health=health.append)
        final = {s.name: s for s in monitor.run()}
    assert not [t for t in threading.enumerate() if t.name.startswith("streamseg")]

    assert final["typo"].state == "failed" and "malformed URL" in str(final["typo"].error)
    assert final["junk"].state == "failed" and "cannot open" in str(final["junk"].error)
    for name in ("front", "back"):
        s = final[name]
        assert s.state == "stopped" and s.frames >= 5, s.line()
        assert s.drops > 0  # 25 fps in, a few fps of model out
        # own outputs: a JSONL with every written frame, playable MP4 segments
        lines = [json.loads(x) for x in (out / name / f"{name}.jsonl").read_text().splitlines()]
        assert len(lines) == s.frames
        segments = sorted((out / name).glob(f"{name}-*.mp4"))
        assert segments
        decoded = 0
        for seg in segments:
            with av.open(str(seg)) as c:
                decoded += sum(1 for _ in c.decode(video=0))
        assert decoded == s.frames
        # own tracker: IDs count from 1 in each stream
        ids = sorted({i["track_id"] for line in lines for i in line["instances"] if i["track_id"] >= 0})
        assert ids and ids[0] == 1
    assert len(sorted((out / "front").glob("front-*.mp4"))) >= 2  # rolled every 2 s
    # fair interleaving: neither stream starves
    assert min(final["front"].frames, final["back"].frames) >= 0.5 * max(final["front"].frames, final["back"].frames)

    events = [json.loads(x) for x in (out / "events.jsonl").read_text().splitlines()]
    rules = {(e["stream"], e["rule"]) for e in events if e["type"] == "rule"}
    assert ("front", "new box") in rules and ("back", "new box") in rules and ("front", "boxes") in rules
    states = [e["state"] for e in events if e["type"] == "state" and e["stream"] == "front"]
    assert states == ["connecting", "streaming", "stopped"]
    assert {e["stream"] for e in events if e["type"] == "error"} == {"typo", "junk"}

    # credentials: nowhere in health lines, events, logs, errors, output names
    texts = [s.line() for s in health] + [s.line() for s in final.values()]
    texts += [(out / "events.jsonl").read_text()] + [r.getMessage() for r in caplog.records]
    texts += [str(p) for p in out.rglob("*")]
    joined = "\n".join(texts)
    assert SECRET not in joined and "admin" not in joined
    assert any(s.name == "front" and s.state == "streaming" and s.age_p95_ms > 0 for s in health)


@pytest.mark.slow  # > 10 s on a 2-core CPU (pytest --durations)
def test_sigterm_stops_cleanly(servers: tuple[RtspServer, RtspServer], tmp_path: Path) -> None:
    """The command as users run it: SIGTERM after the first health lines; outputs are complete."""
    a, b = servers
    out = tmp_path / "out"
    cfg = tmp_path / "monitor.toml"
    doc = {
        "monitor": {"output_dir": str(out), "health_interval_s": 1.0},
        "model": dict(MODEL),
        "streams": [{"name": "cam1", "url": a.url.replace("rtsp://", f"rtsp://admin:{SECRET}@")}],
    }
    cfg.write_text(_toml(doc))
    script = (
        "import argparse, sys; from streamseg import monitor; p = argparse.ArgumentParser(); "
        "monitor.add_parser(p.add_subparsers()); a = p.parse_args(sys.argv[1:]); sys.exit(a.func(a))"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script, "monitor", str(cfg)], cwd=REPO, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 60
        streaming = 0
        assert proc.stdout is not None
        while streaming < 2:
            assert time.monotonic() < deadline, "no streaming health line within 60 s"
            line = proc.stdout.readline()
            assert line, f"monitor exited early: {proc.stderr.read() if proc.stderr else ''}"
            assert line.startswith("health stream=cam1 ") and SECRET not in line
            streaming += "state=streaming" in line and "frames=0 " not in line
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    assert "state=stopped" in stderr and SECRET not in stdout + stderr
    segments = list((out / "cam1").glob("cam1-*.mp4"))
    assert segments
    with av.open(str(segments[0])) as c:
        assert sum(1 for _ in c.decode(video=0)) > 0


def test_cli_parser_and_config_errors(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    cfg = tmp_path / "m.toml"
    cfg.write_text('[[streams]]\nname = "a"\nurl = "rtsp://h/x"\nbogus = 1\n')
    args = parser.parse_args(["monitor", str(cfg), "--duration", "5", "--health-interval", "2"])
    assert args.duration == 5.0 and args.health_interval == 2.0
    with pytest.raises(ConfigError, match="unknown key 'bogus'"):
        args.func(args)


def _toml(doc: dict) -> str:
    """A tiny TOML writer for the test configs (tables, arrays of tables, scalars)."""

    def scalar(v: object) -> str:
        return json.dumps(v) if not isinstance(v, bool) else str(v).lower()

    lines: list[str] = []
    for key, value in doc.items():
        if isinstance(value, dict):
            lines.append(f"[{key}]")
            lines += [f"{k} = {scalar(v)}" for k, v in value.items()]
        else:
            for table in value:
                lines.append(f"[[{key}]]")
                lines += [f"{k} = {scalar(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def test_ray_flag_and_a_clear_error_without_ray(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    assert parser.parse_args(["monitor", "m.toml"]).ray is None  # local mode
    assert parser.parse_args(["monitor", "m.toml", "--ray"]).ray == ""  # a local Ray instance
    assert parser.parse_args(["monitor", "m.toml", "--ray", "10.0.0.1:6379"]).ray == "10.0.0.1:6379"
    code = "import sys; sys.modules['ray'] = None\nimport streamseg.monitor.cluster"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.returncode != 0 and "streamseg monitor --ray needs Ray: pip install 'streamseg[ray]'" in out.stderr
