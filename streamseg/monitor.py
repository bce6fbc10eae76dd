"""``streamseg monitor CONFIG.toml``: several live streams at once, headless, for days.

Each stream has its own live source (reconnecting, newest-frame queue) and its
own tracker (its own track IDs); one model instance serves every stream, taking
the newest frame of each stream in turn (round-robin, so a busy stream cannot
starve the others). Per stream, an output thread renders and writes annotated
MP4 segments rolled by duration, a JSONL of results, and evaluates the event
rules; every ``health_interval_s`` seconds a health line per stream reports fps,
p50 / p95 frame age (ms), drops, reconnects and state.

A stream that cannot start (a malformed URL, a stream that sends garbage with
``fail_fast = true``, ...) or that gives up reconnecting is reported (health
line, ``error`` event) and the other streams keep running. Credentials in URLs
never appear in health lines, events, logs or errors: streams are shown by
name and by the redacted URL.

Config (TOML; unknown keys and missing fields are :class:`ConfigError` naming the key)::

    [monitor]                     # optional
    output_dir = "monitor-out"    # relative to the config file; default "monitor-out"
    health_interval_s = 10.0      # seconds between health lines
    duration_s = 0                # stop after this many seconds; 0 = until SIGINT/SIGTERM
    events = "events.jsonl"       # events file, in output_dir

    [model]                       # one model shared by every stream
    name = "maskrcnn_resnet50_fpn"
    weights = "random"            # optional: a file, "random", or absent (registry lookup)
    device = "cpu"                # cpu, cuda or auto
    score_thresh = 0.5
    min_size = 800
    max_detections = 100

    [[streams]]
    name = "front"                # letters, digits, "-", "_": used in file names
    url = "rtsp://user:pass@10.0.0.5/stream1"   # or http(s)://, /dev/video0, cam:0
    transport = "tcp"             # RTSP: tcp or udp
    queue_size = 1                # newest frames kept (1-2)
    open_timeout_s = 5.0
    read_timeout_s = 5.0
    reconnect_initial_s = 0.5     # backoff: 0.5 s doubling up to 30 s
    reconnect_max_s = 30.0
    max_attempts = 0              # 0 = retry forever
    fail_fast = false             # true: a stream that cannot be opened at start fails at once
    video = true                  # annotated MP4 segments: <output_dir>/<name>/<name>-00001-<UTC>.mp4
    segment_s = 300.0
    jsonl = true                  # <output_dir>/<name>/<name>.jsonl
    score_thresh = 0.6            # optional, stricter than the model's for this stream
    [streams.tracker]             # optional TrackerConfig fields, e.g. max_lost_frames = 30

    [[rules]]
    name = "crowd"
    kind = "count"                # fires when >= min_count instances of class for duration_s
    class = "person"
    min_count = 3
    duration_s = 2.0
    streams = ["front"]           # optional: default every stream

    [[rules]]
    name = "car arrives"
    kind = "new_track"            # fires for every new track ID of the class
    class = "car"

Events (one JSON object per line in ``events``): ``{"time": ISO-8601 UTC,
"stream": name, "type": "rule" | "state" | "error", ...}``; rule events add
``rule``, ``kind``, ``class``, ``frame``, ``pts_s`` and ``count`` or ``track_id``.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import logging
import re
import threading
import time
import tomllib
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from streamseg.errors import ConfigError, SinkError, SourceError, StreamsegError
from streamseg.pipeline import percentile
from streamseg.queues import BoundedQueue, QueueClosed
from streamseg.render import RenderOptions, render
from streamseg.sinks import JsonlWriter, VideoWriter
from streamseg.sources import open_source, redact_url
from streamseg.sources.base import scrub_credentials
from streamseg.sources.live import Backoff, LiveSource, StateEvent
from streamseg.tracking import ByteTracker, TrackerConfig
from streamseg.types import FrameResult

__all__ = [
    "ModelConfig",
    "StreamConfig",
    "RuleConfig",
    "MonitorConfig",
    "load_config",
    "parse_config",
    "Monitor",
    "StreamStats",
    "add_parser",
    "run",
]

log = logging.getLogger("streamseg.monitor")

_REQUIRED = object()
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


# -- configuration ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The shared model (see :class:`~streamseg.backends.torch_backend.TorchBackend`)."""

    name: str = "maskrcnn_resnet50_fpn"
    weights: str | None = None
    device: str = "cpu"
    score_thresh: float = 0.5
    min_size: int = 800
    max_detections: int = 100
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class StreamConfig:
    """One stream: where it comes from, how it reconnects, what it writes. Times in seconds."""

    name: str
    url: str
    transport: str = "tcp"
    queue_size: int = 1
    open_timeout_s: float = 5.0
    read_timeout_s: float = 5.0
    reconnect_initial_s: float = 0.5
    reconnect_max_s: float = 30.0
    max_attempts: int = 0
    fail_fast: bool = False
    video: bool = True
    segment_s: float = 300.0
    jsonl: bool = True
    score_thresh: float | None = None
    tracker: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def safe_url(self) -> str:
        """The URL without credentials."""
        return redact_url(self.url)


@dataclasses.dataclass(frozen=True)
class RuleConfig:
    """An event rule: ``count`` (>= min_count of class for duration_s) or ``new_track`` (of class)."""

    name: str
    kind: str
    class_name: str
    min_count: int = 1
    duration_s: float = 0.0
    streams: tuple[str, ...] | None = None


@dataclasses.dataclass(frozen=True)
class MonitorConfig:
    """A whole monitor run. Paths are absolute (resolved against the config file's folder)."""

    streams: tuple[StreamConfig, ...]
    model: ModelConfig = ModelConfig()
    rules: tuple[RuleConfig, ...] = ()
    output_dir: Path = Path("monitor-out")
    health_interval_s: float = 10.0
    duration_s: float = 0.0
    events: Path = Path("monitor-out/events.jsonl")


def _take(table: Any, spec: dict[str, tuple[type | tuple[type, ...], Any]], where: str) -> dict[str, Any]:
    """Check ``table`` against ``spec`` (key -> (types, default or _REQUIRED)); return the values.

    Raises:
        ConfigError: not a table, an unknown key, a missing field or a value of the wrong type.
    """
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: expected a table, got {type(table).__name__}")
    for key in table:
        if key not in spec:
            raise ConfigError(f"{where}: unknown key {key!r} (allowed: {', '.join(spec)})")
    out: dict[str, Any] = {}
    for key, (types, default) in spec.items():
        if key not in table:
            if default is _REQUIRED:
                raise ConfigError(f"{where}: missing field {key!r}")
            out[key] = default
            continue
        value = table[key]
        ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in _as_tuple(types))
        if not ok:
            names = " or ".join(t.__name__ for t in _as_tuple(types))
            raise ConfigError(f"{where}: {key!r} must be {names}, got {type(value).__name__} {value!r}")
        out[key] = float(value) if float in _as_tuple(types) and isinstance(value, int) else value
    return out


def _as_tuple(types: type | tuple[type, ...]) -> tuple[type, ...]:
    return types if isinstance(types, tuple) else (types,)


_NUM = (int, float)


def parse_config(data: dict[str, Any], *, base_dir: Path = Path(".")) -> MonitorConfig:
    """Validate a parsed TOML document and build the :class:`MonitorConfig`.

    Args:
        data: the document (``tomllib.load``'s result).
        base_dir: folder that relative output paths are resolved against.

    Raises:
        ConfigError: an unknown key, a missing field, a wrong type or value; the
            message names the table and the key (``streams[2] 'back': missing field 'url'``).
    """
    top = _take(
        data,
        {"monitor": (dict, {}), "model": (dict, {}), "streams": (list, _REQUIRED), "rules": (list, [])},
        "config",
    )
    mon = _take(
        top["monitor"],
        {
            "output_dir": (str, "monitor-out"),
            "health_interval_s": (_NUM, 10.0),
            "duration_s": (_NUM, 0.0),
            "events": (str, "events.jsonl"),
        },
        "[monitor]",
    )
    if not mon["health_interval_s"] > 0 or mon["duration_s"] < 0:
        raise ConfigError("[monitor]: health_interval_s must be > 0 and duration_s >= 0")
    d = ModelConfig()
    model = ModelConfig(
        **_take(
            top["model"],
            {
                "name": (str, d.name),
                "weights": (str, None),
                "device": (str, d.device),
                "score_thresh": (_NUM, d.score_thresh),
                "min_size": (int, d.min_size),
                "max_detections": (int, d.max_detections),
                "seed": (int, d.seed),
            },
            "[model]",
        )
    )
    if model.device not in ("cpu", "cuda", "auto") and not model.device.startswith("cuda:"):
        raise ConfigError(f"[model]: 'device' must be cpu, cuda, cuda:N or auto, got {model.device!r}")
    if not top["streams"]:
        raise ConfigError("config: 'streams' is empty: give at least one [[streams]] table")
    streams = tuple(_parse_stream(t, i) for i, t in enumerate(top["streams"]))
    names = [s.name for s in streams]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"[[streams]]: duplicate stream name(s): {', '.join(dupes)}")
    rules = tuple(_parse_rule(t, i, names) for i, t in enumerate(top["rules"]))
    output_dir = Path(mon["output_dir"])
    output_dir = output_dir if output_dir.is_absolute() else Path(base_dir) / output_dir
    return MonitorConfig(
        streams=streams,
        model=model,
        rules=rules,
        output_dir=output_dir,
        health_interval_s=float(mon["health_interval_s"]),
        duration_s=float(mon["duration_s"]),
        events=output_dir / mon["events"],
    )


def _parse_stream(table: Any, i: int, /) -> StreamConfig:
    where = f"streams[{i}]"
    if isinstance(table, dict) and isinstance(table.get("name"), str):
        where += f" {table['name']!r}"
    d = StreamConfig(name="", url="")
    v = _take(
        table,
        {
            "name": (str, _REQUIRED),
            "url": (str, _REQUIRED),
            "transport": (str, d.transport),
            "queue_size": (int, d.queue_size),
            "open_timeout_s": (_NUM, d.open_timeout_s),
            "read_timeout_s": (_NUM, d.read_timeout_s),
            "reconnect_initial_s": (_NUM, d.reconnect_initial_s),
            "reconnect_max_s": (_NUM, d.reconnect_max_s),
            "max_attempts": (int, d.max_attempts),
            "fail_fast": (bool, d.fail_fast),
            "video": (bool, d.video),
            "segment_s": (_NUM, d.segment_s),
            "jsonl": (bool, d.jsonl),
            "score_thresh": (_NUM, None),
            "tracker": (dict, {}),
        },
        where,
    )
    if not _NAME.match(v["name"]):
        raise ConfigError(f"{where}: 'name' must be 1-64 letters, digits, '-' or '_', got {v['name']!r}")
    if v["transport"] not in ("tcp", "udp"):
        raise ConfigError(f"{where}: 'transport' must be 'tcp' or 'udp', got {v['transport']!r}")
    if not 1 <= v["queue_size"] <= 8:
        raise ConfigError(f"{where}: 'queue_size' must be in 1..8, got {v['queue_size']}")
    for key in ("open_timeout_s", "read_timeout_s", "reconnect_initial_s", "segment_s"):
        if not v[key] > 0:
            raise ConfigError(f"{where}: {key!r} must be > 0, got {v[key]}")
    if v["reconnect_max_s"] < v["reconnect_initial_s"]:
        raise ConfigError(f"{where}: 'reconnect_max_s' must be >= 'reconnect_initial_s'")
    if v["max_attempts"] < 0:
        raise ConfigError(f"{where}: 'max_attempts' must be >= 0 (0 = forever), got {v['max_attempts']}")
    if v["score_thresh"] is not None and not 0 <= v["score_thresh"] <= 1:
        raise ConfigError(f"{where}: 'score_thresh' must be in [0, 1], got {v['score_thresh']}")
    fields = {f.name for f in dataclasses.fields(TrackerConfig)}
    for key in v["tracker"]:
        if key not in fields:
            raise ConfigError(f"{where}.tracker: unknown key {key!r} (allowed: {', '.join(sorted(fields))})")
    try:
        TrackerConfig(**v["tracker"])
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}.tracker: {e}") from None
    return StreamConfig(**v)


def _parse_rule(table: Any, i: int, stream_names: Sequence[str], /) -> RuleConfig:
    where = f"rules[{i}]"
    if isinstance(table, dict) and isinstance(table.get("name"), str):
        where += f" {table['name']!r}"
    v = _take(
        table,
        {
            "name": (str, _REQUIRED),
            "kind": (str, _REQUIRED),
            "class": (str, _REQUIRED),
            "min_count": (int, 1),
            "duration_s": (_NUM, 0.0),
            "streams": (list, None),
        },
        where,
    )
    if v["kind"] not in ("count", "new_track"):
        raise ConfigError(f"{where}: 'kind' must be 'count' or 'new_track', got {v['kind']!r}")
    if v["kind"] == "new_track" and ("min_count" in table or "duration_s" in table):
        raise ConfigError(f"{where}: 'min_count' and 'duration_s' apply to kind 'count' only")
    if v["min_count"] < 1 or v["duration_s"] < 0:
        raise ConfigError(f"{where}: 'min_count' must be >= 1 and 'duration_s' >= 0")
    streams = v["streams"]
    if streams is not None:
        unknown = [s for s in streams if s not in stream_names]
        if unknown or not all(isinstance(s, str) for s in streams):
            raise ConfigError(f"{where}: 'streams' names unknown stream(s): {unknown}")
        streams = tuple(streams)
    return RuleConfig(
        name=v["name"], kind=v["kind"], class_name=v["class"], min_count=v["min_count"],
        duration_s=float(v["duration_s"]), streams=streams,
    )


def load_config(path: str | Path) -> MonitorConfig:
    """Read and validate a monitor TOML file (see the module docstring for the format).

    Raises:
        ConfigError: the file is missing, is not valid TOML, or fails validation.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"monitor config not found: {path}") from None
    except OSError as e:
        raise ConfigError(f"cannot read monitor config {path}: {e.strerror or e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML ({e})") from None
    try:
        return parse_config(data, base_dir=path.resolve().parent)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


# -- outputs and rules ----------------------------------------------------------------------


def _utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class SegmentedVideo:
    """Annotated H.264 MP4 segments of at most ``segment_s`` seconds of stream time.

    A new file starts when the current one reaches ``segment_s`` (by ``pts_s``) or the
    frame size changes (a camera that came back with another resolution). Files are
    ``<folder>/<stem>-<NNNNN>-<YYYYmmddTHHMMSSZ>.mp4``; each is a complete MP4 once rolled.
    Across a reconnect the file continues (``pts_s`` is monotonic; the outage shows as
    a held frame).
    """

    def __init__(self, folder: Path, stem: str, *, segment_s: float, fps: float | None = None) -> None:
        self.folder, self.stem, self.segment_s, self.fps = folder, stem, segment_s, fps
        self.files: list[Path] = []
        self._writer: VideoWriter | None = None
        self._start_pts = 0.0

    def write(self, image: np.ndarray, pts_s: float) -> None:
        """Write one frame; rolls to a new file as needed. Raises SinkError."""
        w = self._writer
        if w is not None and (pts_s - self._start_pts >= self.segment_s or (w.height, w.width) != image.shape[:2]):
            self.close()
            w = None
        if w is None:
            stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
            path = self.folder / f"{self.stem}-{len(self.files) + 1:05d}-{stamp}.mp4"
            self._writer = VideoWriter(path, width=image.shape[1], height=image.shape[0], fps=self.fps)
            self.files.append(path)
            self._start_pts = pts_s
        assert self._writer is not None
        self._writer.write(image, pts_s)

    def close(self) -> None:
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.close()


class EventLog:
    """A thread-safe JSONL file of events, flushed per line; also passed to a callback."""

    def __init__(self, path: Path, callback: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.path = path
        self.callback = callback
        self._lock = threading.Lock()
        try:
            self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        except OSError as e:
            raise SinkError(f"cannot write events {path}: {e.strerror or e}") from None

    def write(self, event: dict[str, Any]) -> None:
        event = {"time": _utc_now(), **event}
        line = json.dumps(event, separators=(",", ":"), default=str)
        with self._lock:
            if not self._file.closed:
                self._file.write(line + "\n")
                self._file.flush()
        if self.callback is not None:
            self.callback(event)

    def close(self) -> None:
        with self._lock:
            self._file.close()


class _RuleState:
    """Evaluation state of one rule on one stream."""

    def __init__(self, rule: RuleConfig, label: int) -> None:
        self.rule, self.label = rule, label
        self.since_pts: float | None = None
        self.fired = False
        self.seen: set[int] = set()

    def update(self, result: FrameResult) -> list[dict[str, Any]]:
        inst, frame, rule = result.instances, result.frame, self.rule
        mask = inst.labels == self.label
        base = {"type": "rule", "rule": rule.name, "kind": rule.kind, "class": rule.class_name,
                "frame": frame.index, "pts_s": round(frame.pts_s, 3)}
        if rule.kind == "new_track":
            out = []
            for tid in inst.track_ids[mask]:
                if tid >= 0 and int(tid) not in self.seen:
                    self.seen.add(int(tid))
                    out.append({**base, "track_id": int(tid)})
            return out
        count = int(mask.sum())
        if count < rule.min_count:
            self.since_pts, self.fired = None, False
            return []
        if self.since_pts is None:
            self.since_pts = frame.pts_s
        if not self.fired and frame.pts_s - self.since_pts >= rule.duration_s:
            self.fired = True
            return [{**base, "count": count, "since_pts_s": round(self.since_pts, 3)}]
        return []


# -- streams ---------------------------------------------------------------------------------


@dataclasses.dataclass
class StreamStats:
    """One stream's health: what a health line shows.

    Attributes:
        name: the stream name.
        state: source state (connecting, streaming, reconnecting, stopped, failed).
        fps: frames written per second over the last interval.
        age_p50_ms, age_p95_ms: frame age (now - capture) when written, over the last interval, ms.
        drops: frames discarded so far by the newest-frame policy (source + result queues).
        reconnects: reconnections so far.
        frames: frames written so far.
        error: the latest error (no credentials), or None.
    """

    name: str
    state: str
    fps: float
    age_p50_ms: float
    age_p95_ms: float
    drops: int
    reconnects: int
    frames: int
    error: str | None = None

    def line(self) -> str:
        """``stream=NAME state=... fps=... age_p50_ms=... age_p95_ms=... drops=... reconnects=... frames=...``."""
        text = (
            f"stream={self.name} state={self.state} fps={self.fps:.1f} age_p50_ms={self.age_p50_ms:.0f} "
            f"age_p95_ms={self.age_p95_ms:.0f} drops={self.drops} reconnects={self.reconnects} frames={self.frames}"
        )
        return text + (f" error={json.dumps(self.error)}" if self.error else "")


class _Stream:
    """One stream's source, tracker, result queue, outputs and output thread."""

    def __init__(self, cfg: StreamConfig, monitor: Monitor) -> None:
        self.cfg, self.monitor = cfg, monitor
        self.source: LiveSource | None = None
        self.tracker = ByteTracker(TrackerConfig(**cfg.tracker))
        self.results: BoundedQueue[FrameResult] = BoundedQueue(2, "drop_oldest")
        self.state = "connecting"
        self.error: str | None = None
        self.done = False
        self.frames_out = 0
        self.errors = 0
        self.last_index: int | None = None  # frame index of the latest model run (tracker period)
        self._ages: deque[tuple[float, float]] = deque(maxlen=5000)  # (t_written, age_ms)
        self._last_health = (time.monotonic(), 0)
        self.folder = monitor.config.output_dir / cfg.name
        self.video: SegmentedVideo | None = None
        self.jsonl: JsonlWriter | None = None
        self.rules: list[_RuleState] = []
        self.thread = threading.Thread(target=self._output_loop, name=f"streamseg-monitor-output:{cfg.name}",
                                       daemon=True)

    def start(self) -> None:
        """Create the source and the outputs and start both threads; a bad source fails this stream only."""
        cfg = self.cfg
        self.thread.start()
        self.monitor.events.write({"type": "state", "stream": cfg.name, "state": "connecting",
                                   "detail": cfg.safe_url})
        try:
            source = open_source(
                cfg.url,
                queue_size=cfg.queue_size,
                open_timeout_s=cfg.open_timeout_s,
                read_timeout_s=cfg.read_timeout_s,
                backoff=Backoff(cfg.reconnect_initial_s, cfg.reconnect_max_s, 2.0, cfg.max_attempts or None),
                fail_fast=cfg.fail_fast,
                on_state=self._on_state,
                name=cfg.name,
                **({"transport": cfg.transport} if cfg.safe_url.lower().startswith("rtsp") else {}),
            )
            if not isinstance(source, LiveSource):
                raise SourceError(f"{cfg.safe_url} is not a live source (use rtsp://, http(s)://, /dev/videoN, cam:N)")
            self.folder.mkdir(parents=True, exist_ok=True)
            if cfg.jsonl:
                self.jsonl = JsonlWriter(self.folder / f"{cfg.name}.jsonl", categories=self.monitor.categories)
            if cfg.video:
                self.video = SegmentedVideo(self.folder, cfg.name, segment_s=cfg.segment_s)
            self.source = source
            source.start()
        except (StreamsegError, ValueError, OSError) as e:
            self.fail(e)

    def _on_state(self, event: StateEvent) -> None:
        self.state = event.state
        self.monitor.events.write({"type": "state", "stream": self.cfg.name, "state": event.state,
                                   "detail": _safe(event.detail, self.cfg)})

    def fail(self, error: BaseException) -> None:
        """The stream is over for good: report it; the other streams go on."""
        if self.done:
            return
        self.done, self.state = True, "failed"
        self.error = _safe(str(error), self.cfg)
        log.error("stream %s failed: %s", self.cfg.name, self.error)
        self.monitor.events.write({"type": "error", "stream": self.cfg.name, "error": self.error})
        self.results.close()

    def finish(self) -> None:
        if not self.done:
            self.done = True
            self.results.close()

    def _output_loop(self) -> None:
        categories = self.monitor.categories
        options = RenderOptions()
        while True:
            try:
                result = self.results.get()
            except QueueClosed:
                break
            try:
                if self.video is not None:
                    age_ms = (time.monotonic() - result.frame.t_capture) * 1000.0
                    hud = [f"{self.cfg.name}  age {age_ms:4.0f} ms"]
                    image = render(result.frame.image, result.instances, categories=categories,
                                   options=options, hud=hud)
                    self.video.write(image, result.frame.pts_s)
                if self.jsonl is not None:
                    self.jsonl.write(result)
                for rule in self.rules:
                    for event in rule.update(result):
                        self.monitor.events.write({"stream": self.cfg.name, **event})
            except StreamsegError as e:
                self.errors += 1
                self.error = _safe(str(e), self.cfg)
                log.error("stream %s: output failed: %s", self.cfg.name, self.error)
                continue
            now = time.monotonic()
            self._ages.append((now, (now - result.frame.t_capture) * 1000.0))
            self.frames_out += 1
        for out in (self.video, self.jsonl):
            if out is not None:
                try:
                    out.close()
                except StreamsegError as e:
                    log.error("stream %s: %s", self.cfg.name, _safe(str(e), self.cfg))

    def stats(self) -> StreamStats:
        now = time.monotonic()
        t_last, frames_last = self._last_health
        self._last_health = (now, self.frames_out)
        ages = [a for t, a in list(self._ages) if t >= t_last]
        src = self.source
        state = self.state if self.done or src is None else src.state
        return StreamStats(
            name=self.cfg.name,
            state=state,
            fps=(self.frames_out - frames_last) / max(now - t_last, 1e-9),
            age_p50_ms=percentile(ages, 50),
            age_p95_ms=percentile(ages, 95),
            drops=(src.dropped if src else 0) + self.results.dropped,
            reconnects=src.reconnects if src else 0,
            frames=self.frames_out,
            error=self.error or (src.last_error if src is not None and src.state == "reconnecting" else None),
        )


def _safe(text: str, cfg: StreamConfig) -> str:
    """``text`` without the stream's credentials (belt and braces over redact_url)."""
    text = scrub_credentials(text.replace(cfg.url, cfg.safe_url))
    m = re.match(r"^[a-zA-Z][a-zA-Z0-9+.\-]*://([^/@]*)@", cfg.url)
    if m:
        userinfo = m.group(1)
        secrets = [userinfo, userinfo.partition(":")[2]]
        for secret in secrets:
            if len(secret) >= 3:
                text = text.replace(secret, "***")
    return text


# -- the monitor ------------------------------------------------------------------------------


class Monitor:
    """Run every stream of a :class:`MonitorConfig` through one shared model.

    Args:
        config: the validated config.
        backend: the model to share; None builds a TorchBackend from ``config.model``.
        on_health: called with each :class:`StreamStats` every ``health_interval_s``
            seconds (default: log its line at INFO on ``streamseg.monitor``).
        on_event: called with each event dict as it is written to the events file.

    Raises:
        ConfigError: from :meth:`run`, a rule names a class the model does not have.
    """

    def __init__(
        self,
        config: MonitorConfig,
        *,
        backend: Any = None,
        on_health: Callable[[StreamStats], None] | None = None,
        on_event: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.config = config
        self.backend = backend
        self.on_health = on_health or (lambda s: log.info("%s", s.line()))
        self.on_event = on_event
        self.categories: Sequence[str] = ()
        self.streams: list[_Stream] = []
        self.events: EventLog  # created in run()
        self._stop = threading.Event()
        self._inference: threading.Thread | None = None
        self.model_errors = 0

    def stop(self) -> None:
        """Ask the run to stop (safe from a signal handler or another thread)."""
        self._stop.set()

    def _build_backend(self) -> Any:
        from streamseg.backends import create_backend

        m = self.config.model
        device = m.device
        if device == "auto":
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        return create_backend("torch", model_name=m.name, weights=m.weights, device=device,
                              score_thresh=m.score_thresh, min_size=m.min_size,
                              detections_per_img=m.max_detections, seed=m.seed)

    def run(self) -> list[StreamStats]:
        """Run until :meth:`stop`, ``duration_s``, or every stream has failed; then stop cleanly.

        Returns:
            The final :class:`StreamStats` of every stream (totals over the run in ``frames``).

        Raises:
            ConfigError: a rule names a class the model does not know.
            SinkError: the output folder or events file cannot be written.
            BackendError, WeightsError: the model cannot be built.
        """
        cfg = self.config
        if self.backend is None:
            self.backend = self._build_backend()
        self.categories = list(self.backend.categories)
        labels = {name: i for i, name in enumerate(self.categories)}
        for rule in cfg.rules:
            if rule.class_name not in labels:
                raise ConfigError(f"rule {rule.name!r}: unknown class {rule.class_name!r} for model "
                                  f"{getattr(self.backend, 'model_name', '?')}")
        try:
            cfg.output_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise SinkError(f"cannot create {cfg.output_dir}: {e.strerror or e}") from None
        self.events = EventLog(cfg.events, self.on_event)
        self.streams = [_Stream(s, self) for s in cfg.streams]
        for stream in self.streams:
            stream.rules = [_RuleState(r, labels[r.class_name]) for r in cfg.rules
                            if r.streams is None or stream.cfg.name in r.streams]
        t0 = time.monotonic()
        try:
            for stream in self.streams:
                stream.start()
            self._inference = threading.Thread(target=self._inference_loop, name="streamseg-monitor-inference",
                                               daemon=True)
            self._inference.start()
            next_health = t0 + cfg.health_interval_s
            while not self._stop.is_set():
                now = time.monotonic()
                if cfg.duration_s and now - t0 >= cfg.duration_s:
                    break
                if all(s.done for s in self.streams):
                    break
                if now >= next_health:
                    next_health += cfg.health_interval_s
                    self._health()
                self._stop.wait(min(0.2, max(next_health - now, 0.01)))
        finally:
            final = self._shutdown()
        return final

    def _health(self) -> list[StreamStats]:
        stats = [s.stats() for s in self.streams]
        for st in stats:
            try:
                self.on_health(st)
            except Exception:  # noqa: BLE001 - a bad callback must not stop the monitor
                log.exception("health callback failed")
        return stats

    def _shutdown(self) -> list[StreamStats]:
        self._stop.set()
        if self._inference is not None:
            self._inference.join(60)
        for stream in self.streams:
            if stream.source is not None:
                stream.source.stop()
        for stream in self.streams:
            stream.results.close()
            if stream.thread.is_alive():
                stream.thread.join(60)
            if not stream.done:
                stream.state = stream.source.state if stream.source is not None else "stopped"
        final = self._health()
        self.events.close()
        return final

    def _inference_loop(self) -> None:
        """Round-robin over the streams: the newest frame of the next stream that has one."""
        n, start = len(self.streams), 0
        while not self._stop.is_set():
            served = False
            for k in range(n):
                stream = self.streams[(start + k) % n]
                if stream.done or stream.source is None:
                    continue
                try:
                    item = stream.source.read(timeout=0)
                except TimeoutError:
                    continue
                except SourceError as e:
                    stream.fail(e)
                    continue
                if item is None:
                    stream.finish()
                    continue
                start = (start + k + 1) % n
                self._process(stream, *item)
                served = True
                break
            if not served:
                self._stop.wait(0.005)

    def _process(self, stream: _Stream, frame: Any, decode_ms: float) -> None:
        timings = {"decode": decode_ms}
        try:
            instances, model_timings = self.backend.infer(frame.image)
        except Exception as e:  # noqa: BLE001 - one bad frame must not stop the other streams
            self.model_errors += 1
            stream.error = _safe(f"model failed on frame {frame.index}: {e}", stream.cfg)
            log.error("stream %s: %s", stream.cfg.name, stream.error)
            return
        timings.update(model_timings)
        if stream.cfg.score_thresh is not None:
            instances = instances[instances.scores >= stream.cfg.score_thresh]
        t0 = time.perf_counter()
        # Frames dropped since the last model run still count as Kalman steps.
        period = 1 if stream.last_index is None else max(frame.index - stream.last_index, 1)
        stream.last_index = frame.index
        instances = stream.tracker.update(instances, period=period, timestamp_s=frame.pts_s)
        timings["track"] = (time.perf_counter() - t0) * 1000.0
        stream.results.put(FrameResult(frame=frame, instances=instances, timings_ms=timings))


# -- command line (wired by streamseg.cli) ------------------------------------------------------


def add_parser(subparsers: Any) -> Any:
    """Add the ``monitor`` subcommand to ``streamseg``'s subparsers; returns its parser."""
    p = subparsers.add_parser(
        "monitor",
        help="watch several live streams (RTSP, HTTP/HLS, cameras) headless, from a TOML config",
        description="Run several live streams through one shared model: annotated MP4 segments, "
        "JSONL results, event rules and periodic health lines. Stop with Ctrl-C or SIGTERM.",
    )
    p.add_argument("config", metavar="CONFIG.toml", help="the monitor config (see streamseg.monitor)")
    p.add_argument("--duration", type=float, default=None, metavar="S",
                   help="stop after S seconds (overrides [monitor] duration_s)")
    p.add_argument("--health-interval", type=float, default=None, metavar="S",
                   help="seconds between health lines (overrides [monitor] health_interval_s)")
    p.set_defaults(func=run)
    return p


def run(args: Any) -> int:
    """The ``streamseg monitor`` command: health lines on stdout; 0 when stopped, 1 if every stream failed."""
    import signal
    import sys

    config = load_config(args.config)
    overrides: dict[str, Any] = {}
    if getattr(args, "duration", None) is not None:
        overrides["duration_s"] = float(args.duration)
    if getattr(args, "health_interval", None) is not None:
        if not args.health_interval > 0:
            raise ConfigError("--health-interval must be > 0")
        overrides["health_interval_s"] = float(args.health_interval)
    if overrides:
        config = dataclasses.replace(config, **overrides)
    monitor = Monitor(config, on_health=lambda s: print(f"health {s.line()}", flush=True))
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: monitor.stop())
    try:
        final = monitor.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    for s in final:
        print(f"streamseg monitor: {s.line()}", file=sys.stderr)
    print(f"streamseg monitor: outputs in {config.output_dir}", file=sys.stderr)
    return 1 if final and all(s.state == "failed" for s in final) else 0
