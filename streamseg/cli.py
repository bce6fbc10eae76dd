"""The ``streamseg`` command line. The only module that prints errors and chooses exit codes.

Exit codes: 0 success; 1 a streamseg error (one line on stderr: what failed and
why); 2 a usage error (argparse); 130 interrupted by Ctrl-C (outputs written so
far are closed and valid).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from typing import TYPE_CHECKING

from streamseg.argtypes import positive_int, unit_float
from streamseg.errors import ConfigError, StreamsegError

if TYPE_CHECKING:
    from streamseg.pipeline import RunSummary
    from streamseg.render import RenderOptions
    from streamseg.tracking import TrackerConfig

__all__ = ["main", "build_parser"]

log = logging.getLogger("streamseg")


def _add_model_options(p: argparse.ArgumentParser) -> None:
    from streamseg.models.registry import DEFAULT_MODEL, MODELS

    g = p.add_argument_group("model")
    g.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        metavar="NAME",
        help=f"model from the registry (default: {DEFAULT_MODEL}); one of: {', '.join(MODELS)}",
    )
    g.add_argument(
        "--weights",
        metavar="PATH|random",
        help="weights file (a torchvision state dict or a streamseg checkpoint), or 'random' for seeded "
        "random weights (a warning is printed on every run). Default: look up the official file in "
        "$STREAMSEG_WEIGHTS, then torch's hub cache, then download it (verified by sha256)",
    )
    g.add_argument(
        "--keypoints",
        action="store_true",
        help="also run keypointrcnn_resnet50_fpn and attach 17 COCO keypoints to matching persons (box IoU)",
    )
    g.add_argument(
        "--device",
        default="auto",
        choices=["auto", "cpu", "cuda"],
        help="where the model runs (default: auto = cuda if available, else cpu)",
    )
    g.add_argument(
        "--score-thresh",
        type=unit_float,
        default=0.5,
        metavar="F",
        help="keep detections with score above F, in [0, 1] (default: 0.5)",
    )
    g.add_argument(
        "--min-size",
        type=positive_int,
        default=800,
        metavar="PX",
        help="resize so the short side is PX pixels before the model, as torchvision's min_size "
        "(default: 800; smaller is faster and misses small objects). The long side is capped at "
        "PX * 1333 / 800",
    )
    g.add_argument(
        "--max-detections",
        type=positive_int,
        default=100,
        metavar="N",
        help="keep at most the N most confident detections per frame and model (default: 100, "
        "torchvision's detections_per_img)",
    )
    g.add_argument("--seed", type=int, default=0, help="seed for --weights random (default: 0)")
    g.add_argument(
        "--backend",
        default="torch",
        choices=["torch", "onnxruntime", "tensorrt"],
        help="torch = torchvision's modules (CPU or CUDA); onnxruntime = the exported graph under ONNX "
        "Runtime (exported and cached on first use, see `streamseg export`); tensorrt = a TensorRT engine "
        "with our RoIAlign plugin (built and cached on first use, NVIDIA GPU only). Default: torch",
    )
    g.add_argument(
        "--onnx",
        metavar="FILE.onnx",
        help="with --backend onnxruntime: use this file from `streamseg export --flavour ort` instead of "
        "the cache (its size fixes the network input)",
    )
    g.add_argument(
        "--precision",
        default="fp16",
        choices=["fp32", "fp16", "int8"],
        help="with --backend tensorrt: engine precision (default: fp16)",
    )


def _add_tracking_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("tracking (ByteTrack-style: Kalman filter, two-stage IoU association)")
    g.add_argument("--no-track", action="store_true", help="do not track: every track_id is -1")
    g.add_argument(
        "--detect-every",
        type=positive_int,
        default=1,
        metavar="K",
        help="run the model on every K-th frame only; the tracker predicts the boxes in between "
        "(drawn dashed, labelled '(pred)'). Default: 1 (every frame)",
    )
    g.add_argument(
        "--track-buffer",
        type=positive_int,
        default=30,
        metavar="FRAMES",
        help="keep a lost track this many frames before removing it (default: 30)",
    )
    g.add_argument(
        "--track-mask-iou",
        action="store_true",
        help="associate by mask IoU (on the overlap of the boxes) instead of box IoU",
    )
    g.add_argument(
        "--track-all-classes",
        action="store_true",
        help="let a track match detections of any class (default: classes are tracked separately)",
    )
    g.add_argument(
        "--smooth-keypoints",
        action="store_true",
        help="smooth each track's keypoints over time with a One Euro filter (default: off)",
    )
    g.add_argument("--trails", action="store_true", help="draw a short trail of each track's box centre")


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``streamseg`` command."""
    parser = argparse.ArgumentParser(
        prog="streamseg",
        description="Instance segmentation (Mask R-CNN) and person keypoints (Keypoint R-CNN) on video.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="process a video file, image folder or live stream into an annotated MP4 and per-frame JSONL",
        description="Process a video file (any container/codec PyAV decodes), a folder of images "
        "(e.g. MOT17 img1/) or a live stream (rtsp://, http(s):// incl. HLS, a camera /dev/videoN or "
        "cam:N) into an annotated H.264 MP4 and per-frame JSONL results. Files never drop a frame; "
        "live streams keep only the newest frames (bounded latency) and reconnect when they drop.",
    )
    run.add_argument(
        "source",
        metavar="SOURCE",
        help="a video file, a folder of images, rtsp://[user:pass@]host/path, http(s)://..., "
        "/dev/videoN or cam:N",
    )
    run.add_argument(
        "--out",
        metavar="FILE.mp4",
        help="annotated video (H.264, yuv420p, same size and frame timing as the input)",
    )
    run.add_argument(
        "--jsonl",
        metavar="FILE.jsonl",
        help="per-frame results: boxes (COCO xywh), scores, labels, masks (COCO RLE), keypoints, timings",
    )
    _add_model_options(run)
    run.add_argument(
        "--mot",
        metavar="FILE.txt",
        help="tracks in MOT Challenge format (frame,id,x,y,w,h,conf,-1,-1,-1; frames 1-based)",
    )
    run.add_argument(
        "--mot-interpolate",
        type=int,
        default=0,
        metavar="N",
        help="when the run ends, fill gaps of up to N frames inside each track of the --mot file by "
        "linear interpolation (ByteTrack's offline post-processing; 20 in its MOT17 results). "
        "Default: 0 (the online rows only)",
    )
    _add_tracking_options(run)
    run.add_argument("--max-frames", type=positive_int, metavar="N", help="stop after N frames")
    run.add_argument("--no-hud", action="store_true", help="do not draw the fps/latency HUD on the video")
    run.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    run.set_defaults(func=_cmd_run)

    demo = sub.add_parser(
        "demo",
        help="the whole pipeline and its scores on a held-out clip of the demo world (no download needed)",
        description="Generate a held-out clip of the synthetic demo world (a seed never used in "
        "training) with exact ground truth, run the full pipeline on it with the bundled demo model "
        "(a small Mask R-CNN with a keypoint head trained here on that world), write the annotated "
        "MP4, JSONL and MOT tracks, and print COCO AP (bbox, segm, keypoints) and MOT metrics.",
    )
    demo.add_argument("--out-dir", default="streamseg-demo", metavar="DIR", help="where to write (default: %(default)s)")
    demo.add_argument("--frames", type=positive_int, default=120, metavar="N", help="clip length (default: %(default)s)")
    demo.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    demo.set_defaults(func=_cmd_demo)

    models = sub.add_parser("models", help="list the registered models and where their weights are found")
    models.set_defaults(func=_cmd_models)

    track_eval = sub.add_parser(
        "track-eval",
        help="score MOT txt tracks against ground truth: HOTA, MOTA, IDF1, ID switches, FP, FN",
        description="Score tracking results in MOT Challenge format against ground truth with "
        "trackeval (the MOT Challenge's own code). PRED and GT are two txt files, or a folder of "
        "<sequence>.txt results and a folder in MOT layout (<sequence>/gt/gt.txt).",
    )
    track_eval.add_argument("pred", metavar="PRED", help="MOT txt file or folder of <sequence>.txt")
    track_eval.add_argument("gt", metavar="GT", help="MOT gt.txt file or folder of <sequence>/gt/gt.txt")
    track_eval.add_argument(
        "--gt-filter",
        choices=["auto", "mot17", "all"],
        default="auto",
        help="which ground-truth rows count: mot17 = pedestrians marked to consider (the benchmark's "
        "rule), all = every row, auto = mot17 when the file looks like MOT17 (default)",
    )
    track_eval.set_defaults(func=_cmd_track_eval)

    from streamseg_app import cli as gui_cli
    from streamseg_engines import cli as engines_cli

    from streamseg import doctor, export, monitor, train
    from streamseg.eval import coco

    train.add_parser(sub)
    coco.add_parser(sub)
    monitor.add_parser(sub)
    export.add_parser(sub)
    engines_cli.add_parser(sub)
    doctor.add_parser(sub)
    gui_cli.add_parser(sub)
    return parser


def _resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _run_pipeline(
    *,
    source_uri: str,
    out: Path | None,
    jsonl: Path | None,
    model: str,
    weights: str | None,
    keypoints: bool,
    device: str,
    score_thresh: float,
    min_size: int,
    max_detections: int,
    seed: int,
    max_frames: int | None,
    hud: bool,
    progress: bool,
    mot: Path | None = None,
    mot_interpolate: int = 0,
    tracker_config: TrackerConfig | None = None,
    detect_every: int = 1,
    trails: bool = False,
    render_options: RenderOptions | None = None,
    backend_name: str = "torch",
    onnx: str | None = None,
    precision: str = "fp16",
) -> RunSummary:
    from streamseg.backends import create_backend
    from streamseg.models.registry import get_model_spec
    from streamseg.pipeline import JsonlOutput, MotOutput, Pipeline, VideoOutput, describe
    from streamseg.tracking import ByteTracker
    from streamseg.sources import open_source

    get_model_spec(model)  # an unknown model name fails before any work
    source = open_source(source_uri, max_frames=max_frames)
    source.open()  # fail on a bad source before loading a model
    options = {
        "model_name": model,
        "weights": weights,
        "score_thresh": score_thresh,
        "min_size": min_size,
        "keypoints": keypoints,
        "seed": seed,
        "detections_per_img": max_detections,
    }
    if onnx is not None and backend_name != "onnxruntime":
        raise ConfigError("--onnx is for --backend onnxruntime")
    if backend_name == "onnxruntime":
        options["onnx_path"] = onnx
    if backend_name == "tensorrt":
        options["precision"] = precision
        # TensorRT only runs on a GPU: say "no GPU" rather than "use --device cuda".
        device = "cuda" if device == "auto" else device
    backend = create_backend(backend_name, device=_resolve_device(device), **options)
    outputs = []
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        outputs.append(VideoOutput(out, fps=source.info.fps))
    if jsonl is not None:
        jsonl.parent.mkdir(parents=True, exist_ok=True)
        outputs.append(JsonlOutput(jsonl, categories=backend.categories))
    if mot is not None:
        mot.parent.mkdir(parents=True, exist_ok=True)
        outputs.append(MotOutput(mot, interpolate_max_gap=mot_interpolate))
    tracker = ByteTracker(tracker_config) if tracker_config is not None else None
    pipeline = Pipeline(
        source,
        backend,
        outputs,
        tracker=tracker,
        detect_every=detect_every,
        trails=trails,
        render_options=render_options,
        hud=hud,
        progress=progress,
    )
    try:
        summary = pipeline.run()
    finally:
        s = pipeline.summary
        print(f"streamseg: frames in {s.frames_in}, frames out {s.frames_out}", file=sys.stderr)
        for path in (out, jsonl, mot):
            if path is not None and path.exists():
                print(f"streamseg: wrote {path}", file=sys.stderr)
    print(f"streamseg: {describe(summary)}", file=sys.stderr)
    if backend.random_weights:
        log.warning("these results come from seeded RANDOM weights: they are not real detections")
    return summary


def _tracker_config(args: argparse.Namespace, fps: float = 30.0) -> TrackerConfig | None:
    from streamseg.tracking import TrackerConfig

    if args.no_track:
        if args.detect_every > 1 or args.mot or args.trails:
            raise ConfigError("--detect-every, --mot and --trails need tracking: drop --no-track")
        return None
    return TrackerConfig(
        max_lost_frames=args.track_buffer,
        use_mask_iou=args.track_mask_iou,
        per_class=not args.track_all_classes,
        smooth_keypoints=args.smooth_keypoints,
        fps=fps,
    )


def _cmd_run(args: argparse.Namespace) -> int:
    out = Path(args.out) if args.out else None
    jsonl = Path(args.jsonl) if args.jsonl else None
    mot = Path(args.mot) if args.mot else None
    tracker_config = _tracker_config(args)
    if args.mot_interpolate < 0:
        raise ConfigError(f"--mot-interpolate must be >= 0 frames, got {args.mot_interpolate}")
    if args.mot_interpolate and mot is None:
        raise ConfigError("--mot-interpolate fills gaps in the --mot file: give --mot FILE.txt")
    if out is None and jsonl is None and mot is None:
        from streamseg.sources import redact_url

        # A URL's last path part, without credentials (rtsp://user:pass@host has no path).
        stem = Path(redact_url(args.source).rstrip("/")).name.rsplit(".", 1)[0] or "output"
        out, jsonl = Path("streamseg-out") / f"{stem}.mp4", Path("streamseg-out") / f"{stem}.jsonl"
        log.warning("no --out or --jsonl given: writing %s and %s", out, jsonl)
    if out is not None and out.suffix.lower() != ".mp4":
        raise ConfigError(f"--out must end in .mp4 (H.264 MP4), got {out}")
    _run_pipeline(
        source_uri=args.source,
        out=out,
        jsonl=jsonl,
        model=args.model,
        weights=args.weights,
        keypoints=args.keypoints,
        device=args.device,
        score_thresh=args.score_thresh,
        min_size=args.min_size,
        max_detections=args.max_detections,
        seed=args.seed,
        max_frames=args.max_frames,
        hud=not args.no_hud,
        progress=not args.no_progress,
        mot=mot,
        mot_interpolate=args.mot_interpolate,
        tracker_config=tracker_config,
        detect_every=args.detect_every,
        trails=args.trails,
        backend_name=args.backend,
        onnx=args.onnx,
        precision=args.precision,
    )
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from streamseg.eval.coco import evaluate_coco, format_summary
    from streamseg.eval.mot import evaluate_mot, format_table
    from streamseg.models.demo import run_demo
    from streamseg.models.demo_model import DEMO_MIN_SIZE
    from streamseg.render import RenderOptions
    from streamseg.tracking import TrackerConfig

    out_dir = Path(args.out_dir)
    clip = run_demo(out_dir, num_frames=args.frames)
    h, w = clip["size"]
    print(
        f"streamseg demo: generated a held-out demo-world clip {clip['video']} ({args.frames} frames, "
        f"{w}x{h}, {clip['fps']} fps; a seed never used in training) with its ground truth",
        file=sys.stderr,
    )
    annotated, jsonl, mot = out_dir / "annotated.mp4", out_dir / "results.jsonl", out_dir / "tracks.txt"
    _run_pipeline(
        source_uri=str(clip["video"]),
        out=annotated,
        jsonl=jsonl,
        mot=mot,
        model="demo",
        weights=None,  # the checkpoint bundled in the package
        keypoints=False,  # the demo model has its own keypoint head
        device="auto",
        # Low threshold for AP (pycocotools ranks by score); the video shows the confident ones.
        score_thresh=0.05,
        render_options=RenderOptions(score_thresh=0.5),
        min_size=DEMO_MIN_SIZE,
        max_detections=100,
        seed=0,
        max_frames=None,
        hud=True,
        progress=not args.no_progress,
        tracker_config=TrackerConfig(fps=float(clip["fps"])),
    )
    stats = evaluate_coco(jsonl, clip["coco"])
    print(format_summary(stats))
    print(format_table(evaluate_mot(mot, clip["mot"], gt_filter="all")))
    ap = {k: v[0] for k, v in stats.items()}
    print(
        "streamseg demo: AP on the held-out clip: "
        + ", ".join(f"{k} {v:.3f}" for k, v in ap.items())
        + f"\nstreamseg demo: open {annotated} in any player; per-frame results are in {jsonl}",
        file=sys.stderr,
    )
    return 0


def _cmd_track_eval(args: argparse.Namespace) -> int:
    from streamseg.eval.mot import evaluate_mot, format_table

    results = evaluate_mot(args.pred, args.gt, gt_filter=args.gt_filter)
    print(format_table(results))
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from streamseg.models.registry import DEFAULT_MODEL, MODELS

    for name, spec in MODELS.items():
        default = " (default)" if name == DEFAULT_MODEL else ""
        print(f"{name}{default}: {spec.description}")
        print(f"    file {spec.filename}  sha256 {spec.sha256 or spec.sha256_prefix + '...'}")
        print(f"    url  {spec.url}")
    return 0


def _one_line(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return " ".join(text.split())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``streamseg`` command with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="streamseg: %(levelname)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.func(args))
    except StreamsegError as exc:
        print(f"streamseg: error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("streamseg: interrupted; the outputs written so far are closed and valid", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
