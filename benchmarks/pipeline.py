"""Pipeline benchmark: per-stage time and end-to-end fps over model-only fps, in one run.

Usage::

    python benchmarks/pipeline.py [VIDEO] [--frames 40] [--min-size 800] [--keypoints]

It alternates, for ``--rounds`` rounds, timing the model alone (``backend.infer``
on frames decoded beforehand, same weights) and the full pipeline (decode,
inference, render, H.264 encode, JSONL) on the same frames, so that drifts in
the machine's speed (a shared 2-core CPU varies by 10-15 % between minutes) hit
both sides of each ratio alike. It reports:

* the median ms per frame of each stage (decode, preprocess, model, postprocess,
  render, encode, jsonl) inside the pipeline;
* end-to-end fps / model-only fps per round and their median. Stages run in
  their own threads, so with the model as the bottleneck the ratio should be >= 0.95.

Weights are seeded random (speed does not depend on the values; score_thresh 0
with at most 20 detections keeps the heads' work fixed and equal between runs).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_VIDEO = REPO.parent / "shared" / "data" / "videos" / "vtest.avi"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("video", nargs="?", default=str(DEFAULT_VIDEO))
    parser.add_argument("--frames", type=int, default=10, help="frames per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--min-size", type=int, default=800)
    parser.add_argument("--keypoints", action="store_true")
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()

    from streamseg.backends.torch_backend import TorchBackend
    from streamseg.core import STAGES, Pipeline
    from streamseg.sinks import JsonlOutput, VideoOutput
    from streamseg.sources import open_source

    if not Path(args.video).exists():
        print(f"video not found: {args.video}", file=sys.stderr)
        return 1
    backend = TorchBackend(
        "maskrcnn_resnet50_fpn",
        weights="random",
        score_thresh=0.0,
        min_size=args.min_size,
        keypoints=args.keypoints,
        detections_per_img=20,  # fixes the heads' work: 20 RoIs per image and model
    )

    with open_source(args.video, max_frames=args.frames) as source:
        frames = [f.image for f in source]
    for image in frames[: args.warmup]:
        backend.infer(image)

    ratios, model_ms, summary = [], [], None
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        for image in frames:
            t = time.perf_counter()
            backend.infer(image)
            model_ms.append((time.perf_counter() - t) * 1000)
        model_fps = len(frames) / (time.perf_counter() - t0)
        with tempfile.TemporaryDirectory() as tmp:
            source = open_source(args.video, max_frames=args.frames)
            source.open()
            outputs = [
                VideoOutput(Path(tmp) / "out.mp4", fps=source.info.fps),
                JsonlOutput(Path(tmp) / "out.jsonl", categories=backend.categories),
            ]
            summary = Pipeline(source, backend, outputs).run()
        ratios.append(summary.fps / model_fps)
        print(f"round {len(ratios)}: model-only {model_fps:.3f} fps, end-to-end {summary.fps:.3f} fps, ratio {ratios[-1]:.3f}")

    print(f"video {args.video}, {len(frames)} frames, min_size {args.min_size}, keypoints {args.keypoints}")
    print(f"{'stage':<12} {'median ms/frame':>16}")
    for stage in STAGES:
        if summary.stage_ms.get(stage):
            print(f"{stage:<12} {summary.median_ms(stage):>16.1f}")
    print("(stage times: the last round's pipeline)")
    print(f"model-only (backend.infer alone): median {statistics.median(model_ms):.1f} ms per frame")
    print(f"ratio end-to-end / model-only:    median {statistics.median(ratios):.3f} over {len(ratios)} rounds "
          f"(min {min(ratios):.3f}, max {max(ratios):.3f}; target >= 0.95)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
