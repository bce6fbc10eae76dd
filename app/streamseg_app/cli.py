"""The ``streamseg gui`` subcommand. Importing this module does not import PyQt6.

Wire it into the main parser with::

    from streamseg_app import cli as gui_cli
    gui_cli.add_parser(subparsers)
"""

from __future__ import annotations

import argparse
from typing import Any

from streamseg.argtypes import positive_float, positive_int
from streamseg.options import MODEL_FLAGS, add_model_options
from streamseg.errors import ConfigError
from streamseg_app.preflight import check_display

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``gui`` subcommand to ``subparsers`` (from ``ArgumentParser.add_subparsers``).

    Returns:
        The subcommand's parser; its ``func`` default is :func:`run`.
    """
    p = subparsers.add_parser(
        "gui",
        help="the desktop window: play a file, camera or RTSP stream with live masks, tracks and controls",
        description="Open the PyQt6 window (needs `pip install streamseg[gui]`). Play a video file, a local "
        "camera or an RTSP / HTTP stream; masks, boxes, labels, track IDs, trails and skeletons are drawn "
        "live, with a list of the tracks on screen. Thresholds, classes and what is drawn change on the next "
        "frame; record the annotated video (H.264 MP4) and the results shown (JSONL), or save snapshots "
        "(PNG). Keys: Space play/pause, Left/Right frame step, R record, S snapshot, F full screen. "
        "Options given here override the settings the window remembers from the last session.",
    )
    p.add_argument(
        "source",
        nargs="?",
        metavar="SOURCE",
        help="open at start: a video file, a folder of images, rtsp://[user:pass@]host/path, "
        "http(s)://..., /dev/videoN or cam:N",
    )
    # The same model options as `streamseg run`; unset ones keep the window's stored settings.
    g = add_model_options(p, unset_defaults=True)
    g.add_argument(
        "--detect-every",
        type=positive_int,
        metavar="K",
        help="run the model on every K-th frame; the tracker predicts the others",
    )
    p.add_argument(
        "--output-dir",
        metavar="DIR",
        help="folder for recordings and snapshots (default: ~/Videos/streamseg)",
    )
    p.add_argument("--paused", action="store_true", help="open SOURCE paused on its first frame")
    p.add_argument(
        "--no-pace",
        dest="pace",
        action="store_false",
        default=None,
        help="play files as fast as the model goes instead of at their own frame rate",
    )
    p.add_argument(
        "--open-timeout",
        type=positive_float,
        default=5.0,
        metavar="S",
        help="seconds to connect to a camera or stream before reporting an error (default: 5)",
    )
    p.add_argument(
        "--read-timeout",
        type=positive_float,
        default=5.0,
        metavar="S",
        help="seconds without data before a live stream counts as stalled and reconnects (default: 5)",
    )
    p.add_argument("--settings", metavar="FILE.ini", help="keep the window's settings in this INI file")
    p.add_argument("--reset-settings", action="store_true", help="start from the default settings")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Run ``streamseg gui`` with parsed ``args``; returns the exit code.

    Raises:
        ConfigError: PyQt6 is not installed, there is no display, a library Qt's platform
            plugin needs is missing (checked before the QApplication exists: Qt would abort),
            or an option is invalid.
    """
    try:
        from PyQt6.QtCore import QCoreApplication, QSettings
    except ImportError as exc:
        raise ConfigError(
            f"the desktop window needs PyQt6 ({exc}); install it with: pip install 'streamseg[gui]'"
        ) from None
    if QCoreApplication.instance() is None:  # an existing one has its platform running already
        check_display()
    from streamseg_app.app import run_gui
    from streamseg.config import validated
    from streamseg_app.config import ModelConfig
    from streamseg_app.settings import default_settings, load_state

    model = None
    changes = {field: getattr(args, flag) for flag, field in MODEL_FLAGS.items() if getattr(args, flag, None) is not None}
    if changes:
        # Options given on the command line override the stored model settings, field by field.
        settings = (
            QSettings(args.settings, QSettings.Format.IniFormat) if args.settings else default_settings()
        )
        stored = ModelConfig() if args.reset_settings else load_state(settings).model
        if "name" in changes and "min_size" not in changes:
            changes["min_size"] = None  # the new model's own default input size
        model = validated(ModelConfig, {**stored.model_dump(), **changes})
    return run_gui(
        args.source,
        model=model,
        score_thresh=args.score_thresh,
        detect_every=args.detect_every,
        output_dir=args.output_dir,
        pace=args.pace,
        paused=args.paused,
        settings_file=args.settings,
        reset_settings=args.reset_settings,
        open_timeout_s=args.open_timeout,
        read_timeout_s=args.read_timeout,
    )
