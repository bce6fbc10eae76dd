"""Live latency benchmark: a 25 fps RTSP stream through a deliberately slow stage for N minutes.

Starts the GStreamer RTSP test server (tests/rtsp_server.py, system python3 with
python3-gi) on 127.0.0.1, reads it with :class:`~streamseg.sources.RtspSource`
(TCP, newest-frame queue) through :class:`~streamseg.core.Pipeline` whose
"model" sleeps ``--stage-ms`` per frame, and reports per window (default 30 s):
frame age (time from decode to output, ms) p50 / p95 / max, frames out, frames
dropped, and the process RSS (MiB). With the live policy the age must stay flat
(about one stage period plus up to one stream period) and RSS must not grow.

Usage::

    python benchmarks/live.py --minutes 5 [--stage-ms 200] [--window-s 30] [--video out.mp4] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from streamseg.core import Pipeline  # noqa: E402
from streamseg.sinks import VideoOutput  # noqa: E402
from streamseg.sources import RtspSource  # noqa: E402
from streamseg.types import Instances  # noqa: E402
from tests.rtsp_server import RtspServer, server_unavailable  # noqa: E402


def rss_mib() -> float:
    """Resident set size of this process in MiB (Linux /proc)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class SlowStage:
    """A stand-in model: no detections, ``delay_s`` per frame (the deliberately slow stage)."""

    name, model_name, categories, random_weights, device = "slow", "slow", ("__bg__",), False, "cpu"

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s

    def infer(self, image: np.ndarray) -> tuple[Instances, dict[str, float]]:
        time.sleep(self.delay_s)
        return Instances(image.shape[:2], np.zeros((0, 4)), np.zeros(0), np.zeros(0)), {"model": self.delay_s * 1e3}


class AgeProbe:
    """An output that records each frame's age (ms) when it reaches the outputs."""

    needs_image = False
    stage = "probe"

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []
        self.lock = threading.Lock()

    def write(self, result, image) -> None:  # noqa: ANN001
        now = time.monotonic()
        with self.lock:
            self.samples.append((now, (now - result.frame.t_capture) * 1000.0))

    def take(self) -> list[float]:
        with self.lock:
            out, self.samples = [a for _, a in self.samples], []
        return out

    def close(self) -> None:
        pass


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=5.0, help="run length in minutes (default 5)")
    p.add_argument("--stage-ms", type=float, default=200.0, help="slow stage time per frame, ms (default 200)")
    p.add_argument("--window-s", type=float, default=30.0, help="report window, seconds (default 30)")
    p.add_argument("--fps", type=int, default=25, help="stream frame rate (default 25)")
    p.add_argument("--queue-size", type=int, default=1, help="newest frames kept after the source (default 1)")
    p.add_argument("--video", type=Path, help="also render and encode the annotated MP4 here")
    p.add_argument("--json", type=Path, help="write the per-window figures here")
    args = p.parse_args(argv)
    reason = server_unavailable()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 1
    work = Path(tempfile.mkdtemp(prefix="streamseg-live-bench-"))
    server = RtspServer(work, fps=args.fps).start()
    source = RtspSource(server.url, queue_size=args.queue_size)
    source.open()
    probe = AgeProbe()
    outputs: list = [probe]
    if args.video:
        outputs.append(VideoOutput(args.video, fps=args.fps))
    pipeline = Pipeline(source, SlowStage(args.stage_ms / 1000.0), outputs)
    runner = threading.Thread(target=pipeline.run, name="bench-runner", daemon=True)
    rss_start = rss_mib()
    print(f"stream {args.fps} fps over RTSP/TCP, slow stage {args.stage_ms:.0f} ms/frame, "
          f"{args.minutes:g} min, windows of {args.window_s:g} s; RSS at start {rss_start:.1f} MiB")
    print(f"{'t_end_s':>7} {'frames':>6} {'age_p50':>8} {'age_p95':>8} {'age_max':>8} {'dropped':>8} {'rss_MiB':>8}")
    t0 = time.monotonic()
    runner.start()
    windows = []
    dropped_before = 0
    end = t0 + args.minutes * 60.0
    try:
        while time.monotonic() < end:
            time.sleep(min(args.window_s, max(end - time.monotonic(), 0.0)))
            ages = probe.take()
            dropped = source.dropped + pipeline._results.dropped  # noqa: SLF001 - benchmark introspection
            row = {
                "t_end_s": round(time.monotonic() - t0, 1),
                "frames": len(ages),
                "age_p50_ms": float(np.percentile(ages, 50)) if ages else float("nan"),
                "age_p95_ms": float(np.percentile(ages, 95)) if ages else float("nan"),
                "age_max_ms": float(np.max(ages)) if ages else float("nan"),
                "dropped": dropped - dropped_before,
                "rss_mib": rss_mib(),
            }
            dropped_before = dropped
            windows.append(row)
            print(f"{row['t_end_s']:7.1f} {row['frames']:6d} {row['age_p50_ms']:8.0f} {row['age_p95_ms']:8.0f} "
                  f"{row['age_max_ms']:8.0f} {row['dropped']:8d} {row['rss_mib']:8.1f}", flush=True)
    finally:
        pipeline.stop()
        runner.join(30)
        server.kill()
    s = pipeline.summary
    rss_end = rss_mib()
    print(f"total: frames out {s.frames_out}, dropped {s.dropped} (source {s.dropped_source}, results "
          f"{s.dropped_results}), reconnects {source.reconnects}; RSS start {rss_start:.1f} MiB, end {rss_end:.1f} MiB")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "windows": windows,
                                         "rss_start_mib": rss_start, "rss_end_mib": rss_end,
                                         "frames_out": s.frames_out, "dropped": s.dropped}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
