"""``streamseg train``: train a Mask R-CNN with a keypoint head on a COCO-format dataset.

The model is one torchvision ``MaskRCNN`` whose ``RoIHeads`` also has the keypoint
branch (:func:`streamseg.models.demo_model.build_maskrcnn_keypoint_model`), trained
with torchvision's own losses (``model(images, targets)`` in train mode: RPN
objectness and box regression, Fast R-CNN classification and box regression, mask
BCE and keypoint cross-entropy; He et al. 2017). Non-person targets carry
keypoints with visibility 0, which torchvision's ``keypointrcnn_loss`` ignores.

Data: any COCO json (``--coco``) with its image folder (``--images``), or the demo
world (``--synthetic N_CLIPS``: :func:`streamseg.models.demo.write_dataset` writes
the images and json under ``OUT/data`` first). Category ids are used as labels
directly (``num_classes = max id + 1``), so predictions carry the dataset's ids.

Optimiser: AdamW (Loshchilov and Hutter 2019) with linear warm-up and a cosine
decay over training progress, where progress is the larger of ``iteration /
--iters`` and ``elapsed / --time-limit`` (so a time-limited run still anneals).

Checkpoints (``torch.save`` of a dict readable with ``torch.load(weights_only=True)``):
``OUT/last.pt`` every ``--checkpoint-every`` iterations and at the end (model,
optimiser, iteration, elapsed seconds, categories: for ``--resume``), and the
final model ``OUT/final.pt`` (or ``--final PATH``): ``{"model": state_dict,
"categories": [...], "meta": {...}}``, which the registry loads by path
(``--model demo --weights PATH``; :func:`streamseg.models.weights.read_state_dict`
takes the ``"model"`` entry).

The demo model is trained by one command (see streamseg/models/weights/DEMO_MODEL.md)::

    streamseg train --synthetic 500 --frames-per-clip 48 --frame-stride 4 --out runs/demo \\
        --iters 5000 --time-limit 54 --batch-size 4 --lr 1.5e-3 --warmup 200 --seed 0 \\
        --threads 1 --checkpoint-every 200 --final streamseg/models/weights/demo.pt
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from streamseg.errors import ConfigError, SourceError, WeightsError

__all__ = [
    "CocoTrainingSet",
    "TrainConfig",
    "add_parser",
    "build_model",
    "collate",
    "run",
    "train",
]

_EXAMPLES = 3
_NUM_KEYPOINTS = 17


# --------------------------------------------------------------------------- data


class CocoTrainingSet:
    """A COCO-format detection dataset as torchvision detection targets.

    Item ``i`` is ``(image, target)``: ``image`` a (3, H, W) float32 tensor in [0, 1]
    (RGB), ``target`` a dict of ``boxes`` (N, 4) float32 xyxy pixels, ``labels`` (N,)
    int64 category ids, ``masks`` (N, H, W) uint8, ``keypoints`` (N, 17, 3) float32
    (x, y, visibility; all zero for annotations without keypoints), ``image_id``.

    Crowd annotations (``iscrowd`` 1) and boxes under 1 pixel are skipped; images
    left without annotations are dropped (as torchvision's detection references do).

    Args:
        coco_json: the annotation file.
        images_dir: the folder that ``file_name`` is relative to.

    Attributes:
        categories: names indexed by category id (``"N/A"`` for unused ids; 0 is
            ``"__background__"``).
        num_classes: ``max category id + 1``.
        has_keypoints: whether any category declares keypoints.

    Raises:
        ConfigError: unreadable or malformed json; no categories; no usable image.
        SourceError: image files listed in the json are missing or unreadable.
    """

    def __init__(self, coco_json: str | os.PathLike[str], images_dir: str | os.PathLike[str]) -> None:
        path = Path(coco_json)
        root = Path(images_dir)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"{path}: no such COCO annotation file") from None
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path}: not a readable COCO json ({exc})") from exc
        if not isinstance(data, dict) or not all(k in data for k in ("images", "annotations", "categories")):
            raise ConfigError(f"{path}: not a COCO instances json (needs images, annotations and categories)")
        if not root.is_dir():
            raise SourceError(f"{root}: image folder not found (for {path})")
        cats = data["categories"]
        if not cats:
            raise ConfigError(f"{path}: no categories")
        try:
            self.num_classes = max(int(c["id"]) for c in cats) + 1
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{path}: malformed categories ({exc})") from exc
        names = ["N/A"] * self.num_classes
        names[0] = "__background__"
        for c in cats:
            names[int(c["id"])] = str(c.get("name", c["id"]))
        self.categories: tuple[str, ...] = tuple(names)
        self.has_keypoints = any(c.get("keypoints") for c in cats)
        by_image: dict[int, list[dict[str, Any]]] = {}
        for ann in data["annotations"]:
            if ann.get("iscrowd", 0):
                continue
            x, y, w, h = (float(v) for v in ann["bbox"])
            if w < 1 or h < 1:
                continue
            by_image.setdefault(int(ann["image_id"]), []).append(ann)
        images = [img for img in data["images"] if int(img["id"]) in by_image]
        if not images:
            raise ConfigError(
                f"{path}: empty dataset ({len(data['images'])} images, {len(data['annotations'])} "
                f"annotations, none usable: non-crowd with a box of at least 1 x 1 pixel)"
            )
        missing = [img["file_name"] for img in images if not (root / img["file_name"]).is_file()]
        if missing:
            shown = ", ".join(missing[:_EXAMPLES]) + (", ..." if len(missing) > _EXAMPLES else "")
            raise SourceError(
                f"{len(missing)} of {len(images)} images listed in {path} are missing under {root} ({shown})"
            )
        self.root = root
        self.path = path
        self.images = images
        self.annotations = by_image

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Any, dict[str, Any]]:
        import cv2
        import torch
        from pycocotools import mask as mask_util

        info = self.images[index]
        file = self.root / info["file_name"]
        bgr = cv2.imread(str(file), cv2.IMREAD_COLOR)
        if bgr is None:
            raise SourceError(f"{file}: cannot read image (listed in {self.path})")
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        h, w = rgb.shape[:2]
        anns = self.annotations[int(info["id"])]
        boxes = np.zeros((len(anns), 4), np.float32)
        labels = np.zeros(len(anns), np.int64)
        masks = np.zeros((len(anns), h, w), np.uint8)
        keypoints = np.zeros((len(anns), _NUM_KEYPOINTS, 3), np.float32)
        for i, ann in enumerate(anns):
            x, y, bw, bh = (float(v) for v in ann["bbox"])
            boxes[i] = (x, y, x + bw, y + bh)
            labels[i] = int(ann["category_id"])
            seg = ann.get("segmentation")
            if isinstance(seg, list):  # polygons
                rle = mask_util.merge(mask_util.frPyObjects(seg, h, w)) if seg else None
            elif isinstance(seg, dict):
                rle = mask_util.frPyObjects(seg, h, w) if isinstance(seg.get("counts"), list) else seg
            else:
                rle = None
            if rle is not None:
                masks[i] = mask_util.decode(rle)
            else:  # no segmentation: the box
                masks[i, int(y) : int(math.ceil(y + bh)), int(x) : int(math.ceil(x + bw))] = 1
            kps = ann.get("keypoints")
            if kps and len(kps) == 3 * _NUM_KEYPOINTS:
                keypoints[i] = np.asarray(kps, np.float32).reshape(_NUM_KEYPOINTS, 3)
        image = torch.from_numpy(rgb).permute(2, 0, 1).float().div_(255)
        target = {
            "boxes": torch.from_numpy(boxes),
            "labels": torch.from_numpy(labels),
            "masks": torch.from_numpy(masks),
            "keypoints": torch.from_numpy(keypoints),
            "image_id": int(info["id"]),
        }
        return image, target


def collate(batch: Sequence[tuple[Any, dict[str, Any]]]) -> tuple[list[Any], list[dict[str, Any]]]:
    """Lists of images and targets (torchvision detection models take lists)."""
    return [b[0] for b in batch], [b[1] for b in batch]


# --------------------------------------------------------------------------- model


def build_model(num_classes: int, **kwargs: Any) -> Any:
    """The trainable architecture: :func:`~streamseg.models.demo_model.build_maskrcnn_keypoint_model`."""
    from streamseg.models.demo_model import build_maskrcnn_keypoint_model

    return build_maskrcnn_keypoint_model(num_classes, **kwargs)


def _check_architecture(model: Any, state: dict[str, Any], path: Path) -> None:
    """WeightsError unless ``state`` has exactly the model's keys and shapes."""
    from streamseg.models.weights import state_dict_problems

    problems = state_dict_problems(model, state)
    if problems:
        raise WeightsError(
            f"{path} is a checkpoint of another architecture than this training run: {'; '.join(problems)}"
        )


# --------------------------------------------------------------------------- training


class TrainConfig:
    """Settings of one training run (plain attributes; see :func:`add_parser` for meanings)."""

    def __init__(
        self,
        *,
        out_dir: str | os.PathLike[str],
        iters: int = 1000,
        time_limit_min: float | None = None,
        batch_size: int = 4,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        warmup: int = 100,
        seed: int = 0,
        device: str = "cpu",
        checkpoint_every: int = 200,
        resume: str | os.PathLike[str] | None = None,
        final: str | os.PathLike[str] | None = None,
        threads: int | None = None,
        workers: int = 0,
        progress: bool = True,
        log_every: int = 20,
    ) -> None:
        if iters < 1:
            raise ConfigError(f"--iters must be at least 1, got {iters}")
        if batch_size < 1:
            raise ConfigError(f"--batch-size must be at least 1, got {batch_size}")
        if not lr > 0:
            raise ConfigError(f"--lr must be > 0, got {lr}")
        if time_limit_min is not None and not time_limit_min > 0:
            raise ConfigError(f"--time-limit must be > 0 minutes, got {time_limit_min}")
        self.out_dir = Path(out_dir)
        self.iters = int(iters)
        self.time_limit_s = None if time_limit_min is None else float(time_limit_min) * 60.0
        self.batch_size = int(batch_size)
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)
        self.warmup = int(warmup)
        self.seed = int(seed)
        self.device = device
        self.checkpoint_every = int(checkpoint_every)
        self.resume = None if resume is None else Path(resume)
        self.final = Path(final) if final is not None else self.out_dir / "final.pt"
        self.threads = threads
        self.workers = int(workers)
        self.progress = progress
        self.log_every = int(log_every)


def _lr_factor(progress: float, iteration: int, warmup: int) -> float:
    """Linear warm-up over ``warmup`` iterations, then cosine from 1 to 0.02 over progress [0, 1]."""
    warm = min(1.0, (iteration + 1) / warmup) if warmup > 0 else 1.0
    cosine = 0.02 + 0.98 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return warm * cosine


def _batches(
    dataset: CocoTrainingSet, batch_size: int, seed: int, workers: int, start_epoch: int
) -> Iterator[Any]:
    """Endless shuffled batches (a new permutation per epoch, seeded by ``seed + epoch``)."""
    import torch
    from torch.utils.data import DataLoader

    epoch = start_epoch
    while True:
        gen = torch.Generator().manual_seed(seed + epoch)
        loader = DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=True,
            generator=gen,
            collate_fn=collate,
            num_workers=workers,
            drop_last=len(dataset) >= batch_size,
        )
        yield from loader
        epoch += 1


def _device(device: str) -> Any:
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"invalid device {device!r} (use cpu, cuda or cuda:N)") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: CUDA is not available here (use --device cpu)")
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"--device {device}: use cpu, cuda or cuda:N")
    return dev


def train(dataset: CocoTrainingSet, config: TrainConfig) -> dict[str, Any]:
    """Train on ``dataset`` and write the checkpoints.

    Args:
        dataset: the training set.
        config: the run's settings.

    Returns:
        Summary: ``iterations``, ``seconds`` (wall time of this and resumed runs),
        ``losses`` (mean of each loss over the last ``log_every`` iterations), ``final``
        (path of the final checkpoint), ``last`` (path of the resumable checkpoint).

    Raises:
        WeightsError: ``--resume`` file unreadable or of another architecture.
        ConfigError: bad settings (device).
    """
    import torch
    from tqdm import tqdm

    from streamseg.models.weights import read_state_dict

    dev = _device(config.device)
    if config.threads:
        torch.set_num_threads(int(config.threads))
    torch.manual_seed(config.seed)
    random.seed(config.seed)
    np.random.seed(config.seed)
    model = build_model(dataset.num_classes).to(dev)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.lr,
    )
    start_iter, elapsed_before, history = 0, 0.0, []
    if config.resume is not None:
        if not config.resume.is_file():
            raise WeightsError(f"{config.resume}: no such checkpoint to resume from")
        state = read_state_dict(config.resume)
        _check_architecture(model, state, config.resume)
        model.load_state_dict(state)
        full = torch.load(config.resume, map_location="cpu", weights_only=True)
        if isinstance(full, dict) and "optimizer" in full:
            try:
                optimizer.load_state_dict(full["optimizer"])
            except (ValueError, KeyError) as exc:
                raise WeightsError(
                    f"{config.resume}: optimiser state does not fit this model ({exc})"
                ) from exc
            start_iter = int(full.get("iteration", 0))
            elapsed_before = float(full.get("seconds", 0.0))
            history = list(full.get("history", []))
    config.out_dir.mkdir(parents=True, exist_ok=True)
    last_path = config.out_dir / "last.pt"
    log_path = config.out_dir / "log.jsonl"

    def save_last(iteration: int, seconds: float) -> None:
        tmp = last_path.with_suffix(".pt.tmp")
        torch.save(
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "iteration": iteration,
                "seconds": seconds,
                "categories": list(dataset.categories),
                "history": history,
            },
            tmp,
        )
        os.replace(tmp, last_path)

    epoch0 = start_iter * config.batch_size // max(1, len(dataset))
    batches = _batches(dataset, config.batch_size, config.seed, config.workers, epoch0)
    window: dict[str, list[float]] = {}
    t_start = time.perf_counter()
    iteration = start_iter
    bar = tqdm(
        total=config.iters,
        initial=start_iter,
        desc="train",
        unit="it",
        disable=not config.progress,
        dynamic_ncols=True,
    )

    def progress_now() -> float:
        seconds = elapsed_before + time.perf_counter() - t_start
        p = iteration / config.iters
        if config.time_limit_s is not None:
            p = max(p, seconds / config.time_limit_s)
        return p

    with bar, open(log_path, "a") as log:
        while progress_now() < 1.0:
            factor = _lr_factor(progress_now(), iteration, config.warmup)
            for group in optimizer.param_groups:
                group["lr"] = config.lr * factor
            images, targets = next(batches)
            images = [im.to(dev, non_blocking=True) for im in images]
            targets = [{k: (v.to(dev) if hasattr(v, "to") else v) for k, v in t.items()} for t in targets]
            losses = model(images, targets)
            total = sum(losses.values())
            if not torch.isfinite(total):
                raise ConfigError(
                    f"training diverged at iteration {iteration} (loss {float(total)}); lower --lr"
                )
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            torch.nn.utils.clip_grad_norm_(params, 10.0)
            optimizer.step()
            iteration += 1
            for k, v in losses.items():
                window.setdefault(k, []).append(float(v.detach()))
            window.setdefault("loss", []).append(float(total.detach()))
            for k in window:
                window[k] = window[k][-config.log_every :]
            means = {k: sum(v) / len(v) for k, v in window.items()}
            bar.update(1)
            bar.set_postfix({k.replace("loss_", ""): f"{v:.3f}" for k, v in means.items()}, refresh=False)
            seconds = elapsed_before + time.perf_counter() - t_start
            if iteration % config.log_every == 0:
                entry = {"iteration": iteration, "seconds": round(seconds, 1), "lr": config.lr * factor}
                entry.update({k: round(v, 4) for k, v in means.items()})
                history.append(entry)
                log.write(json.dumps(entry) + "\n")
                log.flush()
            if config.checkpoint_every > 0 and iteration % config.checkpoint_every == 0:
                save_last(iteration, seconds)
    seconds = elapsed_before + time.perf_counter() - t_start
    save_last(iteration, seconds)
    means = {k: sum(v) / len(v) for k, v in window.items()} if window else {}
    config.final.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "categories": list(dataset.categories),
            "meta": {
                "iterations": iteration,
                "seconds": round(seconds, 1),
                "batch_size": config.batch_size,
                "lr": config.lr,
                "seed": config.seed,
                "dataset": str(dataset.path),
                "images": len(dataset),
                "final_losses": {k: round(v, 4) for k, v in means.items()},
            },
        },
        config.final,
    )
    return {
        "iterations": iteration,
        "seconds": seconds,
        "losses": means,
        "final": config.final,
        "last": last_path,
    }


# --------------------------------------------------------------------------- CLI


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
        from streamseg.models.demo import write_dataset

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
