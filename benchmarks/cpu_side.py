"""CPU-side benchmark: the pipeline around a zero-cost model, against the decode + encode limit.

Usage::

    python benchmarks/cpu_side.py [--frames 120] [--rounds 3] [--instances 20]

On three clips, vtest.avi (768x576), juggle.mp4 (1280x720) and a 1920x1080 clip made
once from juggle.mp4 (scaled up with cv2 and encoded to H.264 in a temporary folder),
it measures in one run, alternating the three measurements on each clip in every
round so that drifts of the shared machine's speed hit them alike:

* ``decode``: frames per second of the source alone (PyAV decode and RGB conversion,
  in the source's thread, as in every run);
* ``limit``: decode plus H.264 encoding of every frame (:class:`~streamseg.sinks.VideoWriter`),
  the most any annotated-video run can reach;
* ``pipeline``: ``streamseg run`` 's full core with the replay backend generating
  ``--instances`` moving instances per frame (28x28 masks, keypoints on persons;
  :mod:`streamseg.backends.synthetic`): decode, track, render, H.264 encode, JSONL with
  RLE masks and MOT txt, with the HUD and track trails on; the encoder and the JSONL
  write in their own threads (:mod:`streamseg.core.output_worker`);
* ``one thread``: the same pipeline with every output written in the stream's output
  thread, after the drawing (what the output threads give).

It prints per clip the median fps of each measurement over the rounds, the ratio
pipeline / limit, the median and p95 ms per frame of each stage inside the pipeline
(wall time, all rounds pooled: on 2 cores the stages share the CPU with the encoder's
threads, so each takes longer than alone), and the render and JSONL cost alone (one
thread, nothing else running). Its last line is, for the 720p clip,
``ratio_vs_limit=R render_ms=X jsonl_ms=Y`` with X and Y the costs alone.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VIDEOS = REPO.parent / "shared" / "data" / "videos"
#: The stages reported, in pipeline order.
REPORTED = ("decode", "track", "render", "encode", "jsonl", "mot")


def make_1080p(source: Path, out: Path, frames: int) -> Path:
    """Write ``frames`` frames of ``source`` scaled to 1920x1080 (cv2 INTER_LINEAR) as an H.264 MP4."""
    import cv2

    from streamseg.sinks import VideoWriter
    from streamseg.sources import open_source

    with open_source(str(source), max_frames=frames) as src, VideoWriter(out, width=1920, height=1080, fps=24) as w:
        for frame in src:
            w.write(cv2.resize(frame.image, (1920, 1080), interpolation=cv2.INTER_LINEAR), frame.pts_s)
    return out


def decode_fps(video: Path, frames: int) -> float:
    """Frames per second of decoding ``frames`` frames (the source's thread, RGB frames)."""
    from streamseg.sources import open_source

    t0 = time.perf_counter()
    n = 0
    with open_source(str(video), max_frames=frames) as src:
        for _ in src:
            n += 1
    return n / (time.perf_counter() - t0)


def limit_fps(video: Path, frames: int, tmp: Path) -> float:
    """Frames per second of decoding and H.264-encoding ``frames`` frames."""
    from streamseg.sinks import VideoWriter
    from streamseg.sources import open_source

    t0 = time.perf_counter()
    n = 0
    with open_source(str(video), max_frames=frames) as src:
        writer = None
        for frame in src:
            if writer is None:
                writer = VideoWriter(tmp / "limit.mp4", width=frame.width, height=frame.height, fps=src.info.fps)
            writer.write(frame.image, frame.pts_s)
            n += 1
        if writer is not None:
            writer.close()
    return n / (time.perf_counter() - t0)


def pipeline_run(video: Path, frames: int, tmp: Path, instances: int, *, threads: bool = True):  # noqa: ANN201
    """The full pipeline on ``frames`` frames with generated instances; returns its RunSummary.

    ``threads`` False writes every output in the stream's output thread (no encoder and
    JSONL threads), to measure what the output threads give.
    """
    from streamseg.backends import create_backend
    from streamseg.config import ModelConfig, OutputConfig, StreamSettings
    from streamseg.core import Pipeline, StreamProcessor
    from streamseg.sinks import file_outputs
    from streamseg.sources import open_source

    model = ModelConfig(backend="replay", replay=f"synthetic:{instances}", keypoints=True)
    backend = create_backend(model)
    source = open_source(str(video), max_frames=frames)
    source.open()
    outputs = file_outputs(
        OutputConfig(video=str(tmp / "out.mp4"), jsonl=str(tmp / "out.jsonl"), mot=str(tmp / "out.txt")),
        categories=backend.categories,
        fps=source.info.fps,
    )
    settings = StreamSettings(track=True, trails=True)
    processor = StreamProcessor.from_settings(settings, model, categories=backend.categories, outputs=outputs)
    processor.output_threads = threads
    return Pipeline(source, backend, processor=processor).run()


def stage_costs(video: Path, frames: int, instances: int) -> tuple[list[float], list[float]]:
    """Render and JSONL ms per frame alone: in this thread, one after the other (the source decodes ahead).

    Per frame, as the pipeline does it: the tracked generated instances, drawn (with the
    HUD and trails; the masks are pasted here), then turned into the JSONL line (reusing
    the pasted masks, :func:`streamseg.postprocess.mask_crops`) and serialised.
    """
    import json

    from streamseg.backends.synthetic import SyntheticReplay
    from streamseg.models.coco import COCO_CATEGORIES
    from streamseg.render import TrackTrails, render
    from streamseg.sinks.jsonl import result_to_dict
    from streamseg.sources import open_source
    from streamseg.tracking import ByteTracker, TrackerConfig
    from streamseg.types import FrameResult

    scene = SyntheticReplay(categories=COCO_CATEGORIES, model_name="maskrcnn_resnet50_fpn", count=instances)
    tracker, trails = ByteTracker(TrackerConfig()), TrackTrails()
    render_ms, jsonl_ms = [], []
    with open_source(str(video), max_frames=frames) as src:
        for frame in src:
            tracked = tracker.update(scene.infer(frame.image)[0])
            trails.update(tracked)
            t0 = time.perf_counter()
            render(frame.image, tracked, categories=COCO_CATEGORIES, hud=["30.0 fps", "model 1 ms"], trails=trails)
            t1 = time.perf_counter()
            line = result_to_dict(FrameResult(frame, tracked, {"decode": 1.0}), COCO_CATEGORIES)
            json.dumps(line, separators=(",", ":"), allow_nan=False)
            t2 = time.perf_counter()
            render_ms.append((t1 - t0) * 1000)
            jsonl_ms.append((t2 - t1) * 1000)
    return render_ms, jsonl_ms


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=120, help="frames per measurement (default: 120)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default: 3)")
    parser.add_argument("--instances", type=int, default=20, help="generated instances per frame (default: 20)")
    args = parser.parse_args()

    from streamseg.core.metrics import percentile

    if not (VIDEOS / "vtest.avi").exists() or not (VIDEOS / "juggle.mp4").exists():
        print(f"the clips are not here: {VIDEOS} (vtest.avi, juggle.mp4)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="streamseg-cpu-side-") as tmp_name:
        tmp = Path(tmp_name)
        print(f"making the 1080p clip ({args.frames} frames of juggle.mp4 scaled to 1920x1080) ...", flush=True)
        clips = {
            "vtest 768x576": VIDEOS / "vtest.avi",
            "juggle 1280x720": VIDEOS / "juggle.mp4",
            "juggle 1920x1080": make_1080p(VIDEOS / "juggle.mp4", tmp / "juggle1080.mp4", args.frames),
        }
        fps: dict[str, dict[str, list[float]]] = {
            c: {"decode": [], "limit": [], "pipeline": [], "one thread": []} for c in clips
        }
        stages: dict[str, dict[str, list[float]]] = {c: {s: [] for s in REPORTED} for c in clips}
        alone: dict[str, dict[str, list[float]]] = {c: {"render": [], "jsonl": []} for c in clips}
        for r in range(args.rounds):
            for name, video in clips.items():
                fps[name]["decode"].append(decode_fps(video, args.frames))
                fps[name]["limit"].append(limit_fps(video, args.frames, tmp))
                summary = pipeline_run(video, args.frames, tmp, args.instances)
                fps[name]["pipeline"].append(summary.fps)
                fps[name]["one thread"].append(pipeline_run(video, args.frames, tmp, args.instances, threads=False).fps)
                for s in REPORTED:
                    stages[name][s].extend(summary.stage_ms.get(s, []))
                render_ms, jsonl_ms = stage_costs(video, args.frames, args.instances)
                alone[name]["render"].extend(render_ms)
                alone[name]["jsonl"].extend(jsonl_ms)
                print(f"round {r + 1} {name}: decode {fps[name]['decode'][-1]:.1f} fps, limit "
                      f"{fps[name]['limit'][-1]:.1f} fps, pipeline {fps[name]['pipeline'][-1]:.1f} fps "
                      f"(outputs in one thread {fps[name]['one thread'][-1]:.1f})", flush=True)

    print(f"\n{args.instances} instances per frame, {args.frames} frames per measurement, {args.rounds} rounds "
          "(medians over rounds)")
    print("| clip | decode fps | decode+encode fps (limit) | pipeline fps | pipeline / limit | "
          "outputs in one thread fps |")
    print("|---|---|---|---|---|---|")
    ratios = {}
    for name in clips:
        med = {k: statistics.median(v) for k, v in fps[name].items()}
        ratios[name] = statistics.median(p / lim for p, lim in zip(fps[name]["pipeline"], fps[name]["limit"]))
        print(f"| {name} | {med['decode']:.1f} | {med['limit']:.1f} | {med['pipeline']:.1f} | {ratios[name]:.2f} "
              f"| {med['one thread']:.1f} |")
    print("\nms per frame in the pipeline, median / p95:")
    print("| clip | " + " | ".join(REPORTED) + " |")
    print("|---|" + "---|" * len(REPORTED))
    for name in clips:
        cells = [
            f"{statistics.median(v):.1f} / {percentile(v, 95):.1f}" if (v := stages[name][s]) else "-" for s in REPORTED
        ]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("\nrender and JSONL alone (in one thread, one after the other; the source decodes ahead), ms per frame, "
          "median / p95:")
    print("| clip | render | jsonl |")
    print("|---|---|---|")
    for name in clips:
        cells = [f"{statistics.median(v):.1f} / {percentile(v, 95):.1f}" for v in alone[name].values()]
        print(f"| {name} | " + " | ".join(cells) + " |")
    hd = "juggle 1280x720"
    print(f"ratio_vs_limit={ratios[hd]:.2f} render_ms={statistics.median(alone[hd]['render']):.1f} "
          f"jsonl_ms={statistics.median(alone[hd]['jsonl']):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
