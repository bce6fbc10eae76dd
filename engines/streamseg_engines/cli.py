"""``streamseg build-engine``: build (or find) the TensorRT engine of a model.

Wired into the ``streamseg`` command by :func:`add_parser`. Importing this module
imports neither TensorRT nor torch.
"""

from __future__ import annotations

import argparse
import sys

from streamseg.errors import ConfigError

__all__ = ["add_parser", "cmd_build_engine"]


def _size(text: str) -> tuple[int, int]:
    from streamseg_engines.cache import parse_size

    try:
        return parse_size(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``build-engine`` subcommand to ``subparsers``; its ``func`` is :func:`cmd_build_engine`."""
    from streamseg_engines.cache import CACHE_ENV, PRECISIONS

    p = subparsers.add_parser(
        "build-engine",
        help="build the TensorRT engine of a model (cached per GPU, TensorRT version, ONNX, precision and size)",
        description="Export the model's TensorRT-flavour ONNX, parse it with TensorRT (the RoIAlign plugin "
        "compiled into the engine), build with a timing cache, and store the engine in the engine cache "
        f"(${CACHE_ENV}, default ~/.cache/streamseg/engines), keyed by GPU name and compute capability, "
        "TensorRT version, ONNX sha256, precision and size. An existing engine is reused. FP16 and INT8 follow "
        "the installed TensorRT: builder flags on 10.x, strongly typed networks on 11.x (FP16 by casting the "
        "ONNX, INT8 by Q/DQ nodes from NVIDIA ModelOpt calibrated on --calib frames).",
    )
    from streamseg.models.registry import DEFAULT_MODEL

    p.add_argument("--model", default=DEFAULT_MODEL, metavar="NAME", help=f"registry model (default: {DEFAULT_MODEL})")
    p.add_argument("--size", required=True, type=_size, metavar="HxW",
                   help="network input size in pixels, multiples of 32, e.g. 800x1344")
    p.add_argument("--precision", default="fp16", choices=PRECISIONS, help="engine precision (default: fp16)")
    p.add_argument("--calib", metavar="DIR_OR_VIDEO", help="INT8: video file or image folder to calibrate on")
    p.add_argument("--calib-frames", type=int, default=64, metavar="N", help="INT8: frames to calibrate on (default: 64)")
    p.add_argument("--min-size", type=int, default=800, metavar="PX",
                   help="INT8: shorter side the calibration frames are resized to, as `run --min-size` (default: 800)")
    p.add_argument("--weights", metavar="PATH|random", help="weights to export (default: the registry's file)")
    p.add_argument("--max-detections", type=int, default=100, metavar="N",
                   help="detection rows of the engine, torchvision's detections_per_img (default: 100)")
    p.add_argument("--onnx", metavar="FILE.onnx", help="build from this trt-flavour ONNX instead of exporting")
    p.add_argument("--cache-dir", metavar="DIR", help=f"engine cache folder (default: ${CACHE_ENV} or ~/.cache/streamseg/engines)")
    p.add_argument("--rebuild", action="store_true", help="build even if the cache has the engine")
    p.set_defaults(func=cmd_build_engine)
    return p


def cmd_build_engine(args: argparse.Namespace) -> int:
    """Run ``build-engine``; print the engine path on stdout and progress on stderr. Returns 0.

    Raises:
        ConfigError, BackendError, EngineError, WeightsError: see
        :func:`streamseg_engines.build.ensure_engine`.
    """
    from streamseg_engines.build import ensure_engine
    from streamseg_engines.cache import EngineCache

    if args.calib is not None and args.precision != "int8":
        raise ConfigError("--calib is only used with --precision int8")
    record = ensure_engine(
        args.model,
        size=args.size,
        precision=args.precision,
        calib=args.calib,
        calib_frames=args.calib_frames,
        min_size=args.min_size,
        weights=args.weights,
        detections_per_img=args.max_detections,
        cache=EngineCache(args.cache_dir),
        rebuild=args.rebuild,
        onnx_path=args.onnx,
        progress=lambda msg: print(f"streamseg: {msg}", file=sys.stderr),
        verbose=bool(getattr(args, "verbose", False)),
    )
    state = "built" if record.built else "reused"
    print(f"streamseg: {state} {record.path}", file=sys.stderr)
    print(record.path)
    return 0
