"""``streamseg monitor CONFIG.toml``: several streams at once, headless, for days.

* :mod:`streamseg.monitor.config`: the TOML format and its validation;
* :mod:`streamseg.monitor.rules`: event rules (count, new track) as a stream output;
* :mod:`streamseg.monitor.runner`: :class:`Monitor`, the streams on the core's runner,
  and the health lines.

The MP4 segments and the event log are sinks (:class:`streamseg.sinks.SegmentedVideoOutput`,
:class:`streamseg.sinks.EventLog`).
"""

from __future__ import annotations

import threading
from typing import Any

from streamseg.errors import ConfigError
from streamseg.monitor.config import MonitorConfig, RuleConfig, StreamConfig, load_config, parse_config
from streamseg.monitor.runner import Monitor, StreamStats

__all__ = [
    "Monitor",
    "MonitorConfig",
    "RuleConfig",
    "StreamConfig",
    "StreamStats",
    "add_parser",
    "load_config",
    "parse_config",
    "run",
]


def add_parser(subparsers: Any) -> Any:
    """Add the ``monitor`` subcommand to ``streamseg``'s subparsers; returns its parser."""
    p = subparsers.add_parser(
        "monitor",
        help="watch several live streams (RTSP, HTTP/HLS, cameras) headless, from a TOML config",
        description="Run several streams through one shared model: annotated MP4 segments, JSONL results, "
        "MOT tracks, event rules and periodic health lines; detect-every-K, trails and the backend are set "
        "per config (see streamseg.monitor.config for the format). Stop with Ctrl-C or SIGTERM.",
    )
    p.add_argument("config", metavar="CONFIG.toml", help="the monitor config (see streamseg.monitor.config)")
    p.add_argument("--duration", type=float, default=None, metavar="S",
                   help="stop after S seconds (overrides [monitor] duration_s)")
    p.add_argument("--health-interval", type=float, default=None, metavar="S",
                   help="seconds between health lines (overrides [monitor] health_interval_s)")
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="HOST:PORT",
                   help="run the streams and model replicas as Ray actors (pip install 'streamseg[ray]'): on the "
                   "cluster at HOST:PORT (from `ray start --head`), or without an address on a local Ray instance "
                   "started for this run; placement from the config's [cluster] table")
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
        config = config.model_copy(update=overrides)
    def on_health(s: StreamStats) -> None:
        print(f"health {s.line()}", flush=True)

    monitor: Any
    if getattr(args, "ray", None) is not None:
        from streamseg.monitor.cluster import RayMonitor  # imports Ray: only with --ray

        monitor = RayMonitor(config, address=args.ray or None, on_health=on_health)
    else:
        monitor = Monitor(config, on_health=on_health)
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
