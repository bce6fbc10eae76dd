"""Monitor scale-out benchmark: local mode against ``--ray`` with 1 and 2 model replicas, one run.

Usage::

    python benchmarks/ray_scale.py [--streams 1 2 4] [--seconds 20] [--rounds 1]

For each stream count N, N real RTSP streams (the GStreamer test server of
tests/rtsp_server.py, 640x272 at 25 fps each, live) are monitored by the demo model
(its bundled weights, min size 240, every frame, JSONL only: no MP4, so the model and the
transport are what is measured) in three set-ups, one after the other in each round:

* ``local``: ``streamseg monitor`` as it runs on one machine (one process, one model);
* ``ray, 1 replica`` and ``ray, 2 replicas``: ``streamseg monitor --ray`` on a local Ray
  instance started for the run (2 CPUs here), stream actors of 0.25 CPU, the replicas
  sharing the rest, at most 1 CPU each (batch size 4, max wait 5 ms).

Each run lasts ``--seconds`` after every stream has written its first frame (the start-up,
Ray's and the actors' included, is left out); from the health lines (every 2 s) it reports
the frames per second served (summed over the streams) and the p95 frame age (capture to
written, ms; the median over the streams' intervals). From the Ray runs' JSONL timings it
reports Ray's cost per model frame: ``replica_rtt`` minus the replica's own stages
(preprocess, model, postprocess) minus the time the frame waited in the replica's queue,
i.e. serialising the frame and the Instances, the object store, and the two RPC hops.
It also prints the bytes that cross the network per frame (the frame, and the pickled
Instances with 28 x 28 masks for the instances found).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import pickle
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _rtsp_server_module():
    """tests/rtsp_server.py, loaded by path (its GStreamer server runs on the system python3)."""
    spec = importlib.util.spec_from_file_location("streamseg_bench_rtsp", REPO / "tests" / "rtsp_server.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


#: Ray CPUs of the local instance (this machine's cores) and of each stream actor.
CPUS, STREAM_CPUS = 2.0, 0.25


def _doc(out: Path, urls: list[str], replicas: int, seconds: float) -> dict:
    # The replicas share what the stream actors leave, at most 1 CPU each.
    replica_cpus = min(1.0, (CPUS - STREAM_CPUS * len(urls)) / replicas)
    return {
        "monitor": {"output_dir": str(out), "health_interval_s": 2.0, "duration_s": seconds},
        "model": {"name": "demo"},
        "cluster": {"replicas": replicas, "replica_cpus": replica_cpus, "stream_cpus": STREAM_CPUS,
                    "batch_size": 4, "max_wait_ms": 5.0, "max_restarts": 0},
        "streams": [{"name": f"cam{i}", "url": url, "video": False} for i, url in enumerate(urls)],
    }  # fmt: skip


def _run(mode: str, urls: list[str], replicas: int, seconds: float, work: Path) -> dict:
    from streamseg.monitor import Monitor, parse_config

    out = Path(tempfile.mkdtemp(prefix=f"{mode}-", dir=work))
    health: list[tuple[float, object]] = []

    def on_health(stats) -> None:  # noqa: ANN001 - StreamStats
        health.append((time.monotonic(), stats))

    # Long enough for the start-up plus the measured seconds: the start-up is cut out below.
    config = parse_config(_doc(out, urls, replicas, seconds + (25.0 if mode == "ray" else 10.0)))
    if mode == "ray":
        from streamseg.monitor.cluster import RayMonitor

        RayMonitor(config, on_health=on_health).run()
    else:
        Monitor(config, on_health=on_health).run()
    names = {f"cam{i}" for i in range(len(urls))}
    # intervals after every stream has written a frame, and one more (warm-up)
    started = None
    for t, s in health:
        seen = {x.name for _, x in health if _ <= t and x.frames > 0}
        if seen >= names:
            started = t
            break
    rows = [(t, s) for t, s in health if started is not None and t > started + 2.5 and s.state == "streaming"]
    t_end = rows[0][0] + seconds if rows else 0.0
    rows = [(t, s) for t, s in rows if t <= t_end]
    by_time: dict[float, float] = {}
    for t, s in rows:
        key = round(t, 0)
        by_time[key] = by_time.get(key, 0.0) + s.fps
    fps = statistics.median(by_time.values()) if by_time else 0.0
    ages = [s.age_p95_ms for _, s in rows if s.age_p95_ms == s.age_p95_ms]
    overhead: list[float] = []
    for name in names:
        path = out / name / f"{name}.jsonl"
        for line in path.read_text().splitlines() if path.exists() else []:
            t = json.loads(line)["timings_ms"]
            if "replica_rtt" in t:
                own = sum(t.get(k, 0.0) for k in ("preprocess", "model", "postprocess")) + t.get("replica_wait", 0.0)
                overhead.append(t["replica_rtt"] - own)
    return {"fps": fps, "age_p95_ms": statistics.median(ages) if ages else float("nan"),
            "ray_ms": statistics.median(overhead) if overhead else None}  # fmt: skip


def _bytes_per_frame() -> tuple[int, int, int]:
    """(frame bytes, pickled Instances bytes, instances) for one demo-world frame through the demo model."""
    import numpy as np

    from streamseg.backends import create_backend
    from streamseg.config import ModelConfig
    from streamseg.datasets.demo_world import clip_frames

    backend = create_backend(ModelConfig(name="demo"))
    image = np.ascontiguousarray(next(iter(clip_frames(seed=3, num_frames=1))).image)
    instances, _ = backend.infer(image)
    return image.nbytes, len(pickle.dumps(instances.replace(mask_crops=None), protocol=5)), len(instances)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds per run")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    rtsp = _rtsp_server_module()
    reason = rtsp.server_unavailable()
    if reason:
        print(f"the RTSP test server cannot run here: {reason}", file=sys.stderr)
        return 1
    work = Path(tempfile.mkdtemp(prefix="streamseg-ray-bench-"))
    servers = [rtsp.RtspServer(work / "rtsp").start() for _ in range(max(args.streams))]
    setups = [("local", 1), ("ray", 1), ("ray", 2)]
    results: dict[tuple[int, str, int], list[dict]] = {}
    try:
        for _ in range(args.rounds):
            for n in args.streams:
                urls = [s.url for s in servers[:n]]
                for mode, replicas in setups:
                    r = _run(mode, urls, replicas, args.seconds, work)
                    results.setdefault((n, mode, replicas), []).append(r)
                    print(f"  {n} stream(s) {mode} x{replicas}: {r['fps']:.1f} fps, p95 age {r['age_p95_ms']:.0f} ms"
                          + (f", Ray {r['ray_ms']:.1f} ms/frame" if r["ray_ms"] is not None else ""), flush=True)
    finally:
        for s in servers:
            s.kill()
    print("\n| streams | set-up | fps served | p95 frame age ms | fps vs local | Ray cost ms per model frame |")
    print("|---|---|---|---|---|---|")
    for n in args.streams:
        local_fps = statistics.median(r["fps"] for r in results[(n, "local", 1)])
        for mode, replicas in setups:
            rs = results[(n, mode, replicas)]
            fps = statistics.median(r["fps"] for r in rs)
            age = statistics.median(r["age_p95_ms"] for r in rs)
            ray_ms = [r["ray_ms"] for r in rs if r["ray_ms"] is not None]
            label = "local" if mode == "local" else f"ray, {replicas} replica{'s' if replicas > 1 else ''}"
            print(f"| {n} | {label} | {fps:.1f} | {age:.0f} | {fps / local_fps:.2f}x | "
                  f"{statistics.median(ray_ms):.1f} |" if ray_ms else
                  f"| {n} | {label} | {fps:.1f} | {age:.0f} | {fps / local_fps:.2f}x | - |")  # fmt: skip
    try:
        frame_b, inst_b, count = _bytes_per_frame()
        print(f"\nper model frame over the network: the frame {frame_b} B (H x W x 3), the Instances "
              f"{inst_b} B pickled for {count} instance(s) with 28x28 masks")
    except Exception as exc:  # noqa: BLE001 - the table above stands without it
        print(f"(bytes per frame not measured: {exc})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
