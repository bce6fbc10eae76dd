"""The monitor's TOML configuration, validated by pydantic (:mod:`streamseg.config`).

Format (unknown keys and missing fields are :class:`~streamseg.errors.ConfigError`
naming the table and the key, with the allowed values)::

    [monitor]                     # optional
    output_dir = "monitor-out"    # relative to the config file; default "monitor-out"
    health_interval_s = 10.0      # seconds between health lines
    duration_s = 0                # stop after this many seconds; 0 = until SIGINT/SIGTERM
    events = "events.jsonl"       # events file, in output_dir

    [model]                       # one model shared by every stream: streamseg.config.ModelConfig
    name = "maskrcnn_resnet50_fpn"
    backend = "torch"             # torch, onnxruntime, or a registered one (tensorrt)
    weights = "random"            # optional: a file, "random", or absent (registry lookup)
    device = "auto"               # auto, cpu, cuda or cuda:N
    min_size = 800                # optional: default the model's (240 for demo)
    score_floor = 0.1             # the model's own threshold: the tracker sees everything above it

    [[streams]]                   # streamseg.config.StreamSettings plus the source and outputs
    name = "front"                # letters, digits, "-", "_": used in file names
    url = "rtsp://user:pass@10.0.0.5/stream1"   # or http(s)://, /dev/video0, cam:0, a file
    transport = "tcp"             # RTSP: tcp or udp
    queue_size = 1                # newest frames kept (1-8)
    open_timeout_s = 5.0
    read_timeout_s = 5.0
    reconnect_initial_s = 0.5     # backoff: 0.5 s doubling up to 30 s
    reconnect_max_s = 30.0
    max_attempts = 0              # 0 = retry forever
    fail_fast = false             # true: a stream that cannot be opened at start fails at once
    video = true                  # annotated MP4 segments: <output_dir>/<name>/<name>-00001-<UTC>.mp4
    segment_s = 300.0
    jsonl = true                  # <output_dir>/<name>/<name>.jsonl
    mot = false                   # <output_dir>/<name>/<name>.txt (MOT Challenge tracks)
    score_thresh = 0.6            # optional: what is drawn and written; default the model's (0.5)
    detect_every = 1              # run the model on every K-th frame; the tracker predicts the rest
    trails = false
    [streams.tracker]             # optional TrackerConfig fields, e.g. max_lost_frames = 30

    [cluster]                     # optional: used by `streamseg monitor --ray` only
    replicas = 1                  # model replicas (Ray actors), each with its own copy of the model
    replica_cpus = 1.0            # Ray CPU resources per replica
    replica_gpus = 0.0            # Ray GPU resources per replica (1.0: one GPU each)
    batch_size = 4                # a replica takes up to this many frames (of any streams) at a time
    max_wait_ms = 5.0             # ... waiting at most this long after the first for the others
    stream_cpus = 0.5             # Ray CPU resources per stream actor (decode, tracking, outputs)
    max_restarts = 5              # Ray restarts a dead stream or replica actor this many times (-1: always)

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
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, StrictBool, StrictFloat, StrictInt, StrictStr, model_validator

from streamseg.config import ModelConfig, StreamSettings, _Config, validated
from streamseg.errors import ConfigError
from streamseg.sources import redact_url

__all__ = ["ClusterConfig", "MonitorConfig", "MonitorSettings", "RuleConfig", "StreamConfig", "load_config", "parse_config"]


class MonitorSettings(_Config):
    """The ``[monitor]`` table: where outputs go, health lines, run length."""

    output_dir: StrictStr = "monitor-out"
    health_interval_s: StrictFloat = Field(default=10.0, gt=0)
    duration_s: StrictFloat = Field(default=0.0, ge=0)
    events: StrictStr = "events.jsonl"


class ClusterConfig(_Config):
    """The ``[cluster]`` table: how ``streamseg monitor --ray`` places the work on a Ray cluster.

    See :mod:`streamseg.monitor.cluster`; resources are Ray's logical CPU and GPU counts.
    """

    replicas: StrictInt = Field(default=1, ge=1)
    replica_cpus: StrictFloat = Field(default=1.0, ge=0)
    replica_gpus: StrictFloat = Field(default=0.0, ge=0)
    batch_size: StrictInt = Field(default=4, ge=1)
    max_wait_ms: StrictFloat = Field(default=5.0, ge=0)
    stream_cpus: StrictFloat = Field(default=0.5, ge=0)
    max_restarts: StrictInt = Field(default=5, ge=-1)


class StreamConfig(StreamSettings):
    """One ``[[streams]]`` table: the source, how it reconnects, what it writes. Times in seconds.

    The processing keys (``score_thresh``, ``detect_every``, ``track``, ``tracker``,
    ``trails``, ``hud``) are :class:`~streamseg.config.StreamSettings`'.
    """

    name: StrictStr = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    url: StrictStr
    transport: Literal["tcp", "udp"] = "tcp"
    queue_size: StrictInt = Field(default=1, ge=1, le=8)
    open_timeout_s: StrictFloat = Field(default=5.0, gt=0)
    read_timeout_s: StrictFloat = Field(default=5.0, gt=0)
    reconnect_initial_s: StrictFloat = Field(default=0.5, gt=0)
    reconnect_max_s: StrictFloat = Field(default=30.0, gt=0)
    max_attempts: StrictInt = Field(default=0, ge=0)
    fail_fast: StrictBool = False
    video: StrictBool = True
    segment_s: StrictFloat = Field(default=300.0, gt=0)
    jsonl: StrictBool = True
    mot: StrictBool = False

    @model_validator(mode="after")
    def _backoff(self) -> StreamConfig:
        if self.reconnect_max_s < self.reconnect_initial_s:
            raise ValueError("reconnect_max_s must be >= reconnect_initial_s")
        return self

    @property
    def safe_url(self) -> str:
        """The URL without credentials."""
        return redact_url(self.url)


class RuleConfig(_Config):
    """An event rule: ``count`` (>= min_count of class for duration_s) or ``new_track`` (of class)."""

    name: StrictStr
    kind: Literal["count", "new_track"]
    class_name: StrictStr = Field(alias="class")
    min_count: StrictInt = Field(default=1, ge=1)
    duration_s: StrictFloat = Field(default=0.0, ge=0)
    streams: list[str] | None = None


class MonitorConfig(_Config):
    """A whole monitor run. Paths are absolute (resolved against the config file's folder)."""

    streams: tuple[StreamConfig, ...]
    model: ModelConfig = ModelConfig()
    rules: tuple[RuleConfig, ...] = ()
    cluster: ClusterConfig = ClusterConfig()
    output_dir: Path = Path("monitor-out")
    health_interval_s: float = 10.0
    duration_s: float = 0.0
    events: Path = Path("monitor-out/events.jsonl")


class _File(_Config):
    monitor: dict[str, Any] = {}
    model: dict[str, Any] = {}
    cluster: dict[str, Any] = {}
    streams: list[Any]
    rules: list[Any] = []


def _named(table: Any, kind: str, i: int) -> str:
    where = f"{kind}[{i}]"
    return where + (f" {table['name']!r}" if isinstance(table, dict) and isinstance(table.get("name"), str) else "")


def parse_config(data: dict[str, Any], *, base_dir: Path = Path(".")) -> MonitorConfig:
    """Validate a parsed TOML document and build the :class:`MonitorConfig`.

    Args:
        data: the document (``tomllib.load``'s result).
        base_dir: folder that relative output paths are resolved against.

    Raises:
        ConfigError: an unknown key, a missing field, a wrong type or value; the
            message names the table and the key (``streams[2] 'back': missing field 'url'``).
    """
    top = validated(_File, data, where="config")
    mon = validated(MonitorSettings, top.monitor, where="[monitor]")
    model = validated(ModelConfig, top.model, where="[model]")
    cluster = validated(ClusterConfig, top.cluster, where="[cluster]")
    if not top.streams:
        raise ConfigError("config: 'streams' is empty: give at least one [[streams]] table")
    streams = tuple(
        validated(StreamConfig, t, where=_named(t, "streams", i)) for i, t in enumerate(top.streams)
    )
    names = [s.name for s in streams]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"[[streams]]: duplicate stream name(s): {', '.join(dupes)}")
    rules = []
    for i, t in enumerate(top.rules):
        where = _named(t, "rules", i)
        if isinstance(t, dict) and t.get("kind") == "new_track" and ({"min_count", "duration_s"} & set(t)):
            raise ConfigError(f"{where}: 'min_count' and 'duration_s' apply to kind 'count' only")
        rule = validated(RuleConfig, t, where=where)
        unknown = [s for s in rule.streams or () if s not in names]
        if unknown:
            raise ConfigError(f"{where}: 'streams' names unknown stream(s): {unknown}")
        rules.append(rule)
    output_dir = Path(mon.output_dir)
    output_dir = output_dir if output_dir.is_absolute() else Path(base_dir) / output_dir
    return MonitorConfig(
        streams=streams,
        model=model,
        rules=tuple(rules),
        cluster=cluster,
        output_dir=output_dir,
        health_interval_s=mon.health_interval_s,
        duration_s=mon.duration_s,
        events=output_dir / mon.events,
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
