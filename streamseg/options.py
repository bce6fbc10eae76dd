"""The command-line options every front-end shares, and their one translation into the typed config.

``streamseg run``, ``streamseg demo`` and ``streamseg gui`` add the same model and
tracking options (:func:`add_model_options`, :func:`add_tracking_options`) and turn
the parsed flags into :class:`~streamseg.config.ModelConfig` and
:class:`~streamseg.config.StreamSettings` with :func:`model_config` and
:func:`stream_settings`; validation happens in :mod:`streamseg.config`. The live-source
timeouts (:func:`add_live_options`) become keyword arguments of
:func:`~streamseg.sources.open_source` with :func:`live_options`.
"""

from __future__ import annotations

import argparse
from typing import Any

from streamseg.argtypes import positive_float, positive_int, unit_float
from streamseg.config import MODEL_SCORE_FLOOR, ModelConfig, StreamSettings, validated

__all__ = [
    "MODEL_FLAGS",
    "add_live_options",
    "add_model_options",
    "add_tracking_options",
    "live_options",
    "model_config",
    "stream_settings",
]

#: Flags of :func:`add_model_options` -> :class:`ModelConfig` field.
MODEL_FLAGS = {
    "model": "name",
    "weights": "weights",
    "backend": "backend",
    "device": "device",
    "min_size": "min_size",
    "keypoints": "keypoints",
    "max_detections": "max_detections",
    "seed": "seed",
    "onnx": "onnx",
    "precision": "precision",
    "replay": "replay",
    "calib": "calib",
}


def add_model_options(p: argparse.ArgumentParser, *, unset_defaults: bool = False) -> argparse._ArgumentGroup:
    """Add the model options (``--model``, ``--backend``, ``--device``, ``--min-size``, ...) to ``p``.

    Args:
        p: the subcommand's parser.
        unset_defaults: every option defaults to None (the window: unset options keep
            its stored settings); else the :class:`ModelConfig` defaults apply.

    Returns:
        The argument group (a front-end may add its own model options to it).
    """
    from streamseg.backends import backend_names
    from streamseg.models.registry import DEFAULT_MODEL, MODELS

    d = ModelConfig()

    def default(value: Any) -> Any:
        return None if unset_defaults else value

    g = p.add_argument_group("model")
    g.add_argument("--model", default=default(DEFAULT_MODEL), choices=list(MODELS), metavar="NAME",
                   help=f"model from the registry (default: {DEFAULT_MODEL}); one of: {', '.join(MODELS)}")
    g.add_argument("--weights", metavar="PATH|random",
                   help="weights file (a torchvision state dict or a streamseg checkpoint), or 'random' for seeded "
                   "random weights (a warning is printed on every run). Default: look up the official file in "
                   "$STREAMSEG_WEIGHTS, then torch's hub cache, then download it (verified by sha256)")
    g.add_argument("--keypoints", action="store_true", default=default(False),
                   help="also run keypointrcnn_resnet50_fpn and attach 17 COCO keypoints to matching persons (box IoU)")
    g.add_argument("--backend", default=default(d.backend), choices=list(backend_names()),
                   help="torch = torchvision's modules (CPU or CUDA); onnxruntime = the exported graph under ONNX "
                   "Runtime (exported and cached on first use, see `streamseg export`); openvino (with "
                   "streamseg[openvino]) = that graph compiled by OpenVINO for the CPU; replay = the detections of "
                   "a JSONL file (--replay); tensorrt (with streamseg[tensorrt]) = a TensorRT engine with our "
                   "RoIAlign plugin. Default: torch")
    g.add_argument("--device", default=default(d.device), choices=["auto", "cpu", "cuda"],
                   help="where the model runs (default: auto = cuda if available, else cpu)")
    g.add_argument("--min-size", type=positive_int, default=None, metavar="PX",
                   help="resize so the short side is PX pixels before the model, as torchvision's min_size "
                   "(default: the model's own: 800 for the COCO models, 240 for demo; smaller is faster and "
                   "misses small objects). The long side is capped at PX * 1333 / 800")
    g.add_argument("--max-detections", type=positive_int, default=default(d.max_detections), metavar="N",
                   help="keep at most the N most confident detections per frame and model (default: 100, "
                   "torchvision's detections_per_img)")
    g.add_argument("--seed", type=int, default=default(0), help="seed for --weights random (default: 0)")
    g.add_argument("--onnx", metavar="FILE.onnx",
                   help="with --backend onnxruntime or openvino: use this file from `streamseg export --flavour ort` instead "
                   "of the cache (its size fixes the network input)")
    g.add_argument("--precision", default=default(d.precision), choices=["fp32", "fp16", "bf16", "int8"],
                   help="engine precision: with --backend tensorrt fp32, fp16 or int8 (default: fp16); with "
                   "--backend openvino fp32, bf16 (where the CPU has it) or int8 (NNCF, needs --calib); "
                   "default fp32")
    g.add_argument("--calib", metavar="VIDEO_OR_DIR",
                   help="with --precision int8: calibrate on frames of this video file or image folder (your own "
                   "cameras' footage; the quantized model is cached per calibration set)")
    g.add_argument("--replay", metavar="FILE.jsonl",
                   help="with --backend replay: give back the detections of this streamseg JSONL frame by frame "
                   "instead of running a model (tracker, drawing and outputs run as usual); 'synthetic' or "
                   "'synthetic:N' generates N moving instances per frame (default 20) with masks, and keypoints "
                   "on persons with --keypoints")
    g.add_argument("--score-thresh", type=unit_float, default=None, metavar="F",
                   help=f"draw and write instances with a score of at least F, in [0, 1] (default: the model's, "
                   f"0.5). The model itself keeps every detection above {MODEL_SCORE_FLOOR:g} for the tracker "
                   "(ByteTrack's low threshold), so this never changes which tracks exist")
    return g


def add_tracking_options(p: argparse.ArgumentParser) -> None:
    """Add the tracking options (``--no-track``, ``--detect-every``, ``--track-buffer``, ...) to ``p``."""
    g = p.add_argument_group("tracking (ByteTrack-style: Kalman filter, two-stage IoU association)")
    g.add_argument("--no-track", action="store_true", help="do not track: every track_id is -1")
    g.add_argument("--detect-every", type=positive_int, default=1, metavar="K",
                   help="run the model on every K-th frame only; the tracker predicts the boxes in between "
                   "(drawn dashed, labelled '(pred)'). Default: 1 (every frame)")
    g.add_argument("--track-buffer", type=positive_int, default=30, metavar="FRAMES",
                   help="keep a lost track this many frames before removing it (default: 30)")
    g.add_argument("--track-mask-iou", action="store_true",
                   help="associate by mask IoU (on the overlap of the boxes) instead of box IoU")
    g.add_argument("--track-all-classes", action="store_true",
                   help="let a track match detections of any class (default: classes are tracked separately)")
    g.add_argument("--smooth-keypoints", action="store_true",
                   help="smooth each track's keypoints over time with a One Euro filter (default: off)")
    g.add_argument("--trails", action="store_true", help="draw a short trail of each track's box centre")


def add_live_options(p: argparse.ArgumentParser) -> None:
    """Add ``--open-timeout`` and ``--read-timeout`` (cameras and network streams) to ``p``."""
    g = p.add_argument_group("live sources (rtsp://, http(s)://, cameras)")
    g.add_argument("--open-timeout", type=positive_float, default=None, metavar="S",
                   help="seconds to connect to a camera or stream before reporting an error (default: 5)")
    g.add_argument("--read-timeout", type=positive_float, default=None, metavar="S",
                   help="seconds without data before a live stream counts as stalled and reconnects (default: 5)")


def live_options(args: argparse.Namespace) -> dict[str, float]:
    """The live-source keyword arguments (``open_timeout_s``, ``read_timeout_s``) given as flags."""
    flags = {"open_timeout": "open_timeout_s", "read_timeout": "read_timeout_s"}
    return {kw: float(getattr(args, f)) for f, kw in flags.items() if getattr(args, f, None) is not None}


def model_config(args: argparse.Namespace, **overrides: Any) -> ModelConfig:
    """The :class:`ModelConfig` of parsed model options (unset ones take the config's defaults).

    Raises:
        ConfigError: an invalid combination (e.g. ``--onnx`` without ``--backend onnxruntime``).
    """
    values = {field: getattr(args, flag) for flag, field in MODEL_FLAGS.items() if getattr(args, flag, None) is not None}
    return validated(ModelConfig, {**values, **overrides})


def stream_settings(args: argparse.Namespace, **overrides: Any) -> StreamSettings:
    """The :class:`StreamSettings` of parsed tracking options and ``--score-thresh``.

    Raises:
        ConfigError: e.g. ``--detect-every`` or ``--trails`` with ``--no-track``.
    """
    values = {
        "score_thresh": getattr(args, "score_thresh", None),
        "detect_every": args.detect_every,
        "track": not args.no_track,
        "trails": args.trails,
        "tracker": {
            "max_lost_frames": args.track_buffer,
            "use_mask_iou": args.track_mask_iou,
            "per_class": not args.track_all_classes,
            "smooth_keypoints": args.smooth_keypoints,
        },
    }
    if args.no_track and (args.detect_every > 1 or args.trails):
        from streamseg.errors import ConfigError

        raise ConfigError("--detect-every and --trails need tracking: drop --no-track")
    return validated(StreamSettings, {**values, **overrides})
