"""``streamseg train``: the subcommand's arguments (:func:`add_parser`) and :func:`run`.

With ``--synthetic N_CLIPS``, :func:`streamseg.datasets.demo_export.write_dataset`
writes the demo-world training set under ``OUT/data`` first (reused while its
parameters are unchanged); otherwise ``--coco JSON --images DIR`` name the data.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from streamseg.errors import ConfigError
from streamseg.train.data import CocoTrainingSet
from streamseg.train.loop import TrainConfig, train

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> None:
    """Add ``streamseg train`` to an argparse subparsers object (``set_defaults(func=run)``)."""
    p = subparsers.add_parser(
        "train",
        help="train a Mask R-CNN + keypoint model on a COCO dataset or the demo world",
        description=(
            "Train a small Mask R-CNN with a keypoint head (torchvision's losses) on a COCO-format "
            "dataset (--coco JSON --images DIR) or on generated demo-world clips (--synthetic N). "
            "The final checkpoint loads with `--model demo --weights PATH`."
        ),
    )
    data = p.add_argument_group("data")
    data.add_argument(
        "--coco", metavar="JSON",
        help="COCO instances json (with keypoints for persons, optional)",
    )
    data.add_argument("--images", metavar="DIR", help="folder the json's file_name entries are relative to")
    data.add_argument(
        "--synthetic",
        type=int,
        metavar="N_CLIPS",
        help="generate N demo-world clips into OUT/data and train on them (instead of --coco)",
    )
    data.add_argument(
        "--frames-per-clip", type=int, default=48, metavar="N",
        help="rendered frames per clip (default: %(default)s)",
    )
    data.add_argument(
        "--frame-stride", type=int, default=4, metavar="N",
        help="keep every N-th frame (default: %(default)s)",
    )
    p.add_argument(
        "--out", required=True, metavar="DIR",
        help="run folder: data/, last.pt, final.pt, log.jsonl",
    )
    p.add_argument("--final", metavar="PATH", help="where to write the final model (default: OUT/final.pt)")
    p.add_argument("--iters", type=int, default=1000, metavar="N", help="iterations (default: %(default)s)")
    p.add_argument(
        "--time-limit", type=float, metavar="MIN",
        help="stop after MIN minutes (the schedule anneals to it)",
    )
    p.add_argument(
        "--batch-size", type=int, default=4, metavar="N",
        help="images per iteration (default: %(default)s)",
    )
    p.add_argument("--lr", type=float, default=1e-3, help="AdamW peak learning rate (default: %(default)s)")
    p.add_argument(
        "--weight-decay", type=float, default=1e-4,
        help="AdamW weight decay (default: %(default)s)",
    )
    p.add_argument(
        "--warmup", type=int, default=100, metavar="N",
        help="linear warm-up iterations (default: %(default)s)",
    )
    p.add_argument(
        "--seed", type=int, default=0,
        help="seed of the data generator, init and shuffling (default: %(default)s)",
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: %(default)s)")
    p.add_argument(
        "--checkpoint-every", type=int, default=200, metavar="N",
        help="write OUT/last.pt every N iterations",
    )
    p.add_argument(
        "--resume", metavar="CKPT",
        help="continue from a last.pt (model, optimiser, iteration, time)",
    )
    p.add_argument("--threads", type=int, metavar="N", help="torch CPU threads (default: torch's choice)")
    p.add_argument(
        "--workers", type=int, default=0, metavar="N",
        help="data loader worker processes (default: 0)",
    )
    p.add_argument(
        "--log-every", type=int, default=20, metavar="N",
        help="append mean losses to OUT/log.jsonl every N iterations",
    )
    p.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``streamseg train``; returns 0. Raises ConfigError / SourceError / WeightsError on bad input."""
    out = Path(args.out)
    progress = not getattr(args, "no_progress", False)
    if args.synthetic is not None:
        if args.coco or args.images:
            raise ConfigError("use either --synthetic or --coco/--images, not both")
        if args.synthetic < 1:
            raise ConfigError(f"--synthetic needs at least 1 clip, got {args.synthetic}")
        from streamseg.datasets.demo_export import write_dataset

        data_dir = out / "data"
        coco = data_dir / "annotations.json"
        stamp = data_dir / "params.json"
        params = {
            "clips": args.synthetic,
            "frames_per_clip": args.frames_per_clip,
            "frame_stride": args.frame_stride,
            "seed": args.seed,
        }
        if not (coco.is_file() and stamp.is_file() and json.loads(stamp.read_text()) == params):
            write_dataset(
                data_dir,
                num_clips=args.synthetic,
                frames_per_clip=args.frames_per_clip,
                frame_stride=args.frame_stride,
                seed=args.seed,
                progress=progress,
            )
            stamp.write_text(json.dumps(params))
        images = data_dir / "images"
    else:
        if not args.coco or not args.images:
            raise ConfigError("give --coco JSON and --images DIR, or --synthetic N_CLIPS")
        coco, images = Path(args.coco), Path(args.images)
    dataset = CocoTrainingSet(coco, images)
    config = TrainConfig(
        out_dir=out,
        iters=args.iters,
        time_limit_min=args.time_limit,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        warmup=args.warmup,
        seed=args.seed,
        device=args.device,
        checkpoint_every=args.checkpoint_every,
        resume=args.resume,
        final=args.final,
        threads=args.threads,
        workers=args.workers,
        progress=progress,
        log_every=args.log_every,
    )
    train(dataset, config)
    return 0
