"""The monitor: many streams through one shared model on the core's :class:`~streamseg.core.Runner`.

Each stream has its own source (a live one reconnects and keeps only its newest
frames), its own :class:`~streamseg.core.StreamProcessor` (tracker and track-ID space,
detect-every-K, threshold, outputs: MP4 segments, JSONL, MOT, rules), and its own
output thread; one inference scheduler serves them all round-robin. Every
``health_interval_s`` seconds a health line per stream reports fps, p50 / p95 frame
age (ms), drops, reconnects and state.

A stream that cannot start (a malformed URL, a stream that sends garbage with
``fail_fast = true``, ...) or that gives up reconnecting is reported (health line,
``error`` event) and the other streams keep running. Credentials in URLs never appear
in health lines, events, logs or errors: streams are shown by name and by the
redacted URL.

Events (one JSON object per line in ``events``): ``{"time": ISO-8601 UTC, "stream":
name, "type": "rule" | "state" | "error", ...}``; rule events add ``rule``, ``kind``,
``class``, ``frame``, ``pts_s`` and ``count`` or ``track_id``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from streamseg.core import Runner, Stream, StreamProcessor, percentile
from streamseg.errors import ConfigError, SinkError, StreamsegError
from streamseg.monitor.config import MonitorConfig, StreamConfig
from streamseg.monitor.rules import RulesOutput
from streamseg.sinks import EventLog, JsonlOutput, MotOutput, Output, SegmentedVideoOutput
from streamseg.sources import is_live, open_source
from streamseg.sources.base import scrub_credentials
from streamseg.sources.live import Backoff, StateEvent

__all__ = ["Monitor", "StreamStats"]

log = logging.getLogger("streamseg.monitor")


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
        restarts: times the stream's process was restarted (``--ray``: its actor died).
        lost: frames lost to those restarts (the outage) and to model replicas that died
            with the frame in flight (``--ray``); 0 in local mode.
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
    restarts: int = 0
    lost: int = 0

    def line(self) -> str:
        """``stream=NAME state=... fps=... age_p50_ms=... age_p95_ms=... drops=... reconnects=... frames=...``,
        then ``restarts=... lost=...`` once the stream has had a restart or a lost frame, then ``error=...``."""
        text = (
            f"stream={self.name} state={self.state} fps={self.fps:.1f} age_p50_ms={self.age_p50_ms:.0f} "
            f"age_p95_ms={self.age_p95_ms:.0f} drops={self.drops} reconnects={self.reconnects} frames={self.frames}"
        )
        if self.restarts or self.lost:
            text += f" restarts={self.restarts} lost={self.lost}"
        return text + (f" error={json.dumps(self.error)}" if self.error else "")


def _safe(text: str, cfg: StreamConfig) -> str:
    """``text`` without the stream's credentials (belt and braces over redact_url)."""
    text = scrub_credentials(text.replace(cfg.url, cfg.safe_url))
    m = re.match(r"^[a-zA-Z][a-zA-Z0-9+.\-]*://([^/@]*)@", cfg.url)
    if m:
        userinfo = m.group(1)
        for secret in (userinfo, userinfo.partition(":")[2]):
            if len(secret) >= 3:
                text = text.replace(secret, "***")
    return text


class _Health:
    """What a stream's health lines need between two reports."""

    def __init__(self, cfg: StreamConfig) -> None:
        self.cfg = cfg
        self.state = "connecting"
        self.error: str | None = None
        self.last = (time.monotonic(), 0)  # (time, frames_out) at the previous health line


class Monitor:
    """Run every stream of a :class:`~streamseg.monitor.config.MonitorConfig` through one shared model.

    Args:
        config: the validated config.
        backend: the model to share; None builds it from ``config.model``
            (:func:`streamseg.backends.create_backend`).
        on_health: called with each :class:`StreamStats` every ``health_interval_s``
            seconds (default: log its line at INFO on ``streamseg.monitor``).
        on_event: called with each event dict as it is written to the events file.
        resume: the streams continue earlier runs' outputs (``--ray``: a restarted stream
            actor): JSONL and MOT files are appended to; MP4 segments are numbered on.
        prepare: called with each :class:`~streamseg.core.Stream` and its config before the
            runner starts (``--ray`` sets the tracker's ID source and the resume point there).
    """

    def __init__(
        self,
        config: MonitorConfig,
        *,
        backend: Any = None,
        on_health: Callable[[StreamStats], None] | None = None,
        on_event: Callable[[dict[str, Any]], None] | None = None,
        resume: bool = False,
        prepare: Callable[[Stream, StreamConfig], None] | None = None,
    ) -> None:
        self.config = config
        self.backend = backend
        self.on_health = on_health or (lambda s: log.info("%s", s.line()))
        self.on_event = on_event
        self.resume = resume
        self.prepare = prepare
        self.events: EventLog  # created in run()
        self.runner: Runner | None = None
        self._health: dict[str, _Health] = {}
        self._stop = threading.Event()

    def stop(self) -> None:
        """Ask the run to stop (safe from a signal handler or another thread)."""
        self._stop.set()

    # -- streams ---------------------------------------------------------------------------
    def event(self, stream: str, kind: str, **fields: Any) -> None:
        """Write one event (``{"time", "type": kind, "stream": stream, **fields}``) to the events log."""
        self.events.write({"type": kind, "stream": stream, **fields})

    def _on_state(self, health: _Health) -> Callable[[StateEvent], None]:
        def on_state(event: StateEvent) -> None:
            health.state = event.state
            self.event(health.cfg.name, "state", state=event.state, detail=_safe(event.detail, health.cfg))

        return on_state

    def _stream(self, cfg: StreamConfig) -> Stream:
        """Build one stream (source, outputs, processor); a bad source makes a failed stream."""
        health = self._health[cfg.name] = _Health(cfg)
        self.event(cfg.name, "state", state="connecting", detail=cfg.safe_url)
        categories = list(self.backend.categories)
        folder = self.config.output_dir / cfg.name
        source = None
        outputs: list[Output] = []
        try:
            if is_live(cfg.url):
                source = open_source(
                    cfg.url,
                    queue_size=cfg.queue_size,
                    open_timeout_s=cfg.open_timeout_s,
                    read_timeout_s=cfg.read_timeout_s,
                    backoff=Backoff(cfg.reconnect_initial_s, cfg.reconnect_max_s, 2.0, cfg.max_attempts or None),
                    fail_fast=cfg.fail_fast,
                    on_state=self._on_state(health),
                    name=cfg.name,
                    **({"transport": cfg.transport} if cfg.safe_url.lower().startswith("rtsp") else {}),
                )
            else:
                source, health.state = open_source(cfg.url), "streaming"
            folder.mkdir(parents=True, exist_ok=True)
            if cfg.video:
                outputs.append(SegmentedVideoOutput(folder, cfg.name, segment_s=cfg.segment_s))
            if cfg.jsonl:
                outputs.append(JsonlOutput(folder / f"{cfg.name}.jsonl", categories=categories, append=self.resume))
            if cfg.mot:
                outputs.append(MotOutput(folder / f"{cfg.name}.txt", append=self.resume))
        except (StreamsegError, ValueError, OSError) as exc:
            self._fail(health, exc)
            source = None
        rules = [r for r in self.config.rules if r.streams is None or cfg.name in r.streams]
        outputs.append(RulesOutput(cfg.name, rules, categories=categories, events=self.events))
        processor = StreamProcessor.from_settings(
            cfg, self.config.model, categories=categories, outputs=outputs, title=cfg.name,
            random_weights=bool(self.backend.random_weights), live=True,
        )
        return Stream(name=cfg.name, source=source, processor=processor)

    def _fail(self, health: _Health, error: BaseException) -> None:
        health.state = "failed"
        health.error = _safe(str(error), health.cfg)
        log.error("stream %s failed: %s", health.cfg.name, health.error)
        self.event(health.cfg.name, "error", error=health.error)

    def _stats(self, stream: Stream) -> StreamStats:
        health = self._health[stream.name]
        summary = stream.summary
        now = time.monotonic()
        (t_last, frames_last), frames = health.last, summary.frames_out
        health.last = (now, frames)
        new = min(frames - frames_last, len(summary.frame_age_ms))
        ages = list(summary.frame_age_ms)[len(summary.frame_age_ms) - new :] if new > 0 else []
        src = stream.source
        state = health.state if health.state == "failed" or src is None else getattr(src, "state", health.state)
        error = health.error
        if error is None and src is not None and getattr(src, "state", "") == "reconnecting":
            error = _safe(str(src.last_error), health.cfg) if src.last_error else None
        return StreamStats(
            name=stream.name, state=state, fps=(frames - frames_last) / max(now - t_last, 1e-9),
            age_p50_ms=percentile(ages, 50), age_p95_ms=percentile(ages, 95), drops=summary.dropped,
            reconnects=int(getattr(src, "reconnects", 0)), frames=frames, error=error,
        )

    def _report(self) -> list[StreamStats]:
        stats = self.stats()
        for st in stats:
            try:
                self.on_health(st)
            except Exception:  # noqa: BLE001 - a bad callback must not stop the monitor
                log.exception("health callback failed")
        return stats

    # -- run -------------------------------------------------------------------------------
    def start(self) -> Monitor:
        """Build the model (unless given), the events log and every stream, and start them; returns self.

        Raises:
            ConfigError: a rule names a class the model does not know.
            SinkError: the output folder or events file cannot be written.
            BackendError, WeightsError: the model cannot be built.
        """
        cfg = self.config
        if self.backend is None:
            from streamseg.backends import create_backend

            self.backend = create_backend(cfg.model)
        categories = list(self.backend.categories)
        for rule in cfg.rules:
            if rule.class_name not in categories:
                raise ConfigError(f"rule {rule.name!r}: unknown class {rule.class_name!r} for model "
                                  f"{getattr(self.backend, 'model_name', '?')}")
        try:
            cfg.output_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise SinkError(f"cannot create {cfg.output_dir}: {e.strerror or e}") from None
        self.events = EventLog(cfg.events, self.on_event)
        try:
            streams = [self._stream(s) for s in cfg.streams]
            if self.prepare is not None:
                for stream, stream_cfg in zip(streams, cfg.streams, strict=True):
                    self.prepare(stream, stream_cfg)
            self.runner = Runner(self.backend, streams, fatal=False,
                                 on_stream_error=lambda s, e: self._fail(self._health[s.name], e))
            self.runner.start()
        except BaseException:
            self.events.close()
            raise
        return self

    def stats(self) -> list[StreamStats]:
        """Every stream's :class:`StreamStats` since the previous call (fps and ages over that interval)."""
        assert self.runner is not None
        return [self._stats(s) for s in self.runner.streams]

    def finish(self) -> list[StreamStats]:
        """Stop every stream, close the outputs and the events log; the final stats (also reported)."""
        assert self.runner is not None
        try:
            self.runner.stop()
            self.runner.join()
            for stream in self.runner.streams:
                health = self._health[stream.name]
                if health.state != "failed":
                    health.state = getattr(stream.source, "state", "stopped") if stream.source else "stopped"
                    if health.state == "streaming":  # a file source: it ended or was stopped
                        health.state = "stopped"
            return self._report()
        finally:
            self.events.close()

    def run(self) -> list[StreamStats]:
        """Run until :meth:`stop`, ``duration_s``, or every stream has ended; then stop cleanly.

        Returns:
            The final :class:`StreamStats` of every stream (totals over the run in ``frames``).

        Raises:
            ConfigError: a rule names a class the model does not know.
            SinkError: the output folder or events file cannot be written.
            BackendError, WeightsError: the model cannot be built.
        """
        cfg = self.config
        self.start()
        assert self.runner is not None
        try:
            t0 = time.monotonic()
            next_health = t0 + cfg.health_interval_s
            while not self._stop.is_set():
                now = time.monotonic()
                if (cfg.duration_s and now - t0 >= cfg.duration_s) or not self.runner.running:
                    break
                if now >= next_health:
                    next_health += cfg.health_interval_s
                    self._report()
                self._stop.wait(min(0.2, max(next_health - now, 0.01)))
        finally:
            final = self.finish()
        return final
