"""The ``streamseg`` command line. The only module that prints errors and chooses exit codes.

Exit codes: 0 success; 1 a streamseg error (one line on stderr: what failed and
why); 2 a usage error (argparse); 130 interrupted by Ctrl-C (SIGINT), 143 by SIGTERM,
129 by SIGHUP (128 + the signal number; the outputs written so far are closed and valid).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from typing import TYPE_CHECKING

from streamseg.argtypes import positive_int
from streamseg.errors import ConfigError, StreamsegError
from streamseg.options import (
    add_live_options,
    add_model_options,
    add_tracking_options,
    live_options,
    model_config,
    stream_settings,
)

if TYPE_CHECKING:
    from streamseg.config import ModelConfig, OutputConfig, StreamSettings
    from streamseg.core import RunSummary

__all__ = ["COMMANDS_GROUP", "main", "build_parser"]

#: Entry-point group of subcommands added by installed packages: ``name = "module:add_parser"``.
COMMANDS_GROUP = "streamseg.commands"

log = logging.getLogger("streamseg")


def _add_registered_commands(sub: argparse._SubParsersAction, command: str | None) -> None:
    """Subcommands that installed packages register (``streamseg.commands`` entry points).

    ``gui`` (streamseg_app) and ``build-engine`` (streamseg_engines) come this way, so the
    library never imports them. Only the chosen command's module is loaded (all of them
    for ``--help`` or no command).
    """
    from importlib.metadata import entry_points

    for ep in entry_points(group=COMMANDS_GROUP):
        if command is None or ep.name == command:
            ep.load()(sub)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """Return the argument parser of the ``streamseg`` command.

    Args:
        command: the subcommand about to run, if known: of the registered subcommands
            only its module is imported (None imports them all, for ``--help``).
    """
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
        help="annotated video (H.264, yuv420p, same size and frame timing as the input; with the "
        "source file's audio, copied or re-encoded to AAC; for a folder of images of different sizes, the "
        "first image's size, the others letterboxed into it: aspect ratio kept, black bars)",
    )
    run.add_argument("--no-audio", action="store_true", help="write the --out video without the source's audio")
    run.add_argument(
        "--jsonl",
        metavar="FILE.jsonl",
        help="per-frame results: boxes (COCO xywh), scores, labels, masks (COCO RLE), keypoints, timings, "
        "and each image's file name for a folder of images (`streamseg eval` maps it to COCO images by it)",
    )
    run.add_argument(
        "--coco-json",
        metavar="FILE.json",
        help="a COCO results file: one json list of {image_id, category_id, bbox (xywh), score, segmentation "
        "(RLE; none for a person only --keypoints found), keypoints}, as pycocotools' COCO.loadRes reads. "
        "image_id is the number in the image's file name (COCO's 000000000139.jpg is 139), else frame + 1",
    )
    add_model_options(run)
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
    add_tracking_options(run)
    add_live_options(run)
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
        "TrackEval's metrics and MOT17 rules (the MOT Challenge's own definitions), computed by motrics "
        "(figures equal to trackeval 1.3.0's). PRED and GT are two txt files, or a folder of "
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

    from streamseg import doctor, export, monitor, train
    from streamseg.eval import coco

    train.add_parser(sub)
    coco.add_parser(sub)
    monitor.add_parser(sub)
    export.add_parser(sub)
    doctor.add_parser(sub)
    for library_command in sub.choices.values():  # before the registered ones (see main())
        library_command.set_defaults(_library_command=True)
    _add_registered_commands(sub, command)
    return parser


def _run(
    source_uri: str,
    *,
    model: ModelConfig,
    settings: StreamSettings,
    outputs: OutputConfig,
    max_frames: int | None = None,
    progress: bool = True,
    live: dict[str, float] | None = None,
) -> RunSummary:
    """Run one source through the core with the typed config; print what was written.

    ``live``: keyword arguments of a live source (``open_timeout_s``, ``read_timeout_s``);
    ignored for files and folders. A bad source or an output that cannot be written
    fails before the model loads.
    """
    from streamseg.backends import create_backend
    from streamseg.core import Pipeline, StreamProcessor, describe
    from streamseg.sinks import file_outputs
    from streamseg.sources import VideoFileSource, is_live, open_source

    live_options = (live or {}) if is_live(source_uri) else {}
    source = open_source(source_uri, max_frames=max_frames, **live_options)
    info = source.open()  # fail on a bad source before loading a model
    try:
        _check_outputs(outputs)
    except BaseException:
        source.stop()
        raise
    if model.name == "demo":
        from streamseg.datasets.demo_export import demo_model_warning

        if warning := demo_model_warning(model.name, source_uri):
            log.warning(warning)
    backend = create_backend(model)
    processor = StreamProcessor.from_settings(
        settings,
        model,
        categories=backend.categories,
        outputs=file_outputs(
            outputs,
            categories=backend.categories,
            fps=info.fps,
            audio_from=source.path if isinstance(source, VideoFileSource) else None,
        ),
        random_weights=backend.random_weights,
    )
    pipeline = Pipeline(source, backend, processor=processor, progress=progress)
    try:
        summary = pipeline.run()
    finally:
        s = pipeline.summary
        print(f"streamseg: frames in {s.frames_in}, frames out {s.frames_out}", file=sys.stderr)
        for path in (outputs.video, outputs.jsonl, outputs.coco_json, outputs.mot):
            if path is not None and path.exists():
                print(f"streamseg: wrote {path}", file=sys.stderr)
    print(f"streamseg: {describe(summary)}", file=sys.stderr)
    if backend.random_weights:
        log.warning("these results come from seeded RANDOM weights: they are not real detections")
    return summary


def _cmd_run(args: argparse.Namespace) -> int:
    from streamseg.config import OutputConfig, validated

    model = model_config(args)
    settings = stream_settings(args, hud=not args.no_hud)
    if args.mot and not settings.track:
        raise ConfigError("--mot needs tracking: drop --no-track")
    out, jsonl = args.out, args.jsonl
    if out is None and jsonl is None and args.mot is None and args.coco_json is None:
        from streamseg.sources import redact_url

        # A URL's last path part, without credentials (rtsp://user:pass@host has no path).
        stem = Path(redact_url(args.source).rstrip("/")).name.rsplit(".", 1)[0] or "output"
        out, jsonl = Path("streamseg-out") / f"{stem}.mp4", Path("streamseg-out") / f"{stem}.jsonl"
        log.warning("no --out or --jsonl given: writing %s and %s", out, jsonl)
    outputs = validated(
        OutputConfig,
        {"video": out, "audio": not args.no_audio, "jsonl": jsonl, "coco_json": args.coco_json, "mot": args.mot,
         "mot_interpolate": args.mot_interpolate},
        where="outputs",
    )
    _run(args.source, model=model, settings=settings, outputs=outputs, max_frames=args.max_frames,
         progress=not args.no_progress, live=live_options(args))
    return 0


#: OutputConfig field -> the flag that names it (for error messages).
_OUTPUT_FLAGS = {"video": "--out", "jsonl": "--jsonl", "coco_json": "--coco-json", "mot": "--mot"}


def _check_outputs(outputs: OutputConfig) -> None:
    """Check that every output file can be written (its folder created, the file opened), before any work.

    Creates the missing folders (the outputs would create them anyway); a file that did not
    exist is removed again, an existing one is left as it was (opened for appending).

    Raises:
        ConfigError: two outputs name the same file.
        SinkError: a path that cannot be written, in one line naming the flag and the path.
    """
    from streamseg.errors import SinkError

    seen: dict[Path, str] = {}
    for field, flag in _OUTPUT_FLAGS.items():
        path = getattr(outputs, field)
        if path is None:
            continue
        path = Path(path)
        key = path.resolve()
        if key in seen:
            raise ConfigError(f"{seen[key]} and {flag} name the same file {path}")
        seen[key] = flag
        where = f"cannot write {flag} {path}"
        if path.is_dir():
            raise SinkError(f"{where}: it is a folder")
        ancestor = next((p for p in path.parents if p.exists()), None)
        if ancestor is not None and not ancestor.is_dir():
            raise SinkError(f"{where}: {ancestor} is a file, not a folder")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SinkError(f"{where}: cannot create the folder {path.parent} ({exc.strerror or exc})") from None
        existed = path.exists()
        try:
            with open(path, "ab"):
                pass
        except OSError as exc:
            what = "cannot open it" if existed else "cannot create it"
            raise SinkError(f"{where}: {what} ({exc.strerror or exc})") from None
        if not existed:
            path.unlink(missing_ok=True)


def _cmd_demo(args: argparse.Namespace) -> int:
    from streamseg.config import ModelConfig, OutputConfig, StreamSettings
    from streamseg.datasets.demo_export import run_demo
    from streamseg.eval.coco import evaluate_coco, format_summary
    from streamseg.eval.mot import evaluate_mot, format_table
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
    # COCO AP ranks every detection by score, so the model and the JSONL go down to 0.05;
    # the video shows the confident ones (the model's default threshold).
    model = ModelConfig(name="demo", score_floor=0.05)  # the checkpoint bundled in the package
    _run(
        str(clip["video"]),
        model=model,
        settings=StreamSettings(
            score_thresh=0.05,
            tracker=TrackerConfig(fps=float(clip["fps"])),
            render=RenderOptions(score_thresh=model.spec.score_thresh),
        ),
        outputs=OutputConfig(video=annotated, jsonl=jsonl, mot=mot),
        progress=not args.no_progress,
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
    """Each registry model: its file and hash, its URL, and where its weights are found (nothing is
    downloaded, hashed or loaded: a found file is verified when a run uses it)."""
    from streamseg.models.registry import DEFAULT_MODEL, MODELS
    from streamseg.models.weights import ENV_OFFLINE, FOUND_PACKAGE, find_weights, where_to_put

    for name, spec in MODELS.items():
        default = " (default)" if name == DEFAULT_MODEL else ""
        print(f"{name}{default}: {spec.description}")
        print(f"    file  {spec.filename}  sha256 {spec.sha256 or spec.sha256_prefix + '...'}")
        path, where = find_weights(spec)
        if spec.url:
            print(f"    url   {spec.url}")
        if path is not None:
            print(f"    found {path} ({where})")
        elif where == FOUND_PACKAGE:
            print(f"    MISSING: {spec.filename} should be bundled in the package; reinstall streamseg")
        else:
            print(f"    missing: the first run downloads it (unless ${ENV_OFFLINE}=1), or download the url "
                  f"and {where_to_put(spec)} as {spec.filename}")
    return 0


class _Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised in the main thread like Ctrl-C's KeyboardInterrupt.

    A KeyboardInterrupt, so every stage that stops cleanly on Ctrl-C (the core's Runner:
    ``stop()``, outputs closed) does the same for these signals.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


#: Signals that end a command as Ctrl-C does (SIGINT itself is Python's KeyboardInterrupt).
_TERMINATING_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


@contextlib.contextmanager
def _signals_as_interrupts():
    """While inside, SIGTERM and SIGHUP raise :class:`_Terminated` in the main thread.

    Only the first such signal raises: a second one while the outputs are being closed is
    ignored, so a service manager that repeats SIGTERM does not cut the MP4 short
    (SIGKILL still ends the process). Outside the main thread nothing is installed.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    raised = False

    def handler(signum: int, frame: object) -> None:
        nonlocal raised
        if not raised:
            raised = True
            raise _Terminated(signum)

    previous = {sig: signal.signal(sig, handler) for sig in _TERMINATING_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _one_line(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return " ".join(text.split())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``streamseg`` command with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="streamseg: %(levelname)s: %(message)s",
        stream=sys.stderr,
    )
    # Subcommands of other packages (the Qt window) keep the default signal handling: an
    # exception raised inside Qt's event loop would abort the process.
    try:
        with _signals_as_interrupts() if getattr(args, "_library_command", False) else contextlib.nullcontext():
            return int(args.func(args))
    except StreamsegError as exc:
        print(f"streamseg: error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except _Terminated as exc:
        name = signal.Signals(exc.signum).name
        print(f"streamseg: stopped by {name}; the outputs written so far are closed and valid", file=sys.stderr)
        return 128 + exc.signum
    except KeyboardInterrupt:
        print("streamseg: interrupted; the outputs written so far are closed and valid", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of stdout went away (`streamseg models | head`): stop quietly, as a shell
        # tool killed by SIGPIPE would. Point stdout at /dev/null so that the interpreter's
        # flush at exit does not fail again (Python's docs, signal module, "Note on SIGPIPE").
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
