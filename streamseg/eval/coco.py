"""COCO AP (bbox, segm, keypoints) with pycocotools, for our JSONL or COCO results json.

``streamseg eval RESULTS GT`` scores detections against a COCO json ground truth
with ``pycocotools.cocoeval.COCOeval`` (Lin et al. 2014; the official COCO
definitions: AP averaged over IoU / OKS thresholds 0.50:0.05:0.95, 101-point
interpolated precision, area ranges small < 32^2 <= medium < 96^2 <= large) and
prints the standard summaries: 12 numbers for bbox and segm, 10 for keypoints.

Results may be:
- our JSONL (:mod:`streamseg.sinks.jsonl`, one line per frame). A line with a
  ``file_name`` (a frame of an image folder, e.g. COCO val2017 photos) maps to the GT
  image of that file name (``images[].file_name``, folders ignored). A line without one
  (a video frame) maps by frame index: through the GT images' ``frame_index`` field (the
  demo world's clips have it), else ``image id = frame + 1`` (the convention of
  :func:`streamseg.datasets.demo_export.write_clip`). Frames with no GT image are left
  out (with a warning); when no frame matches any GT image, :class:`ConfigError` says
  so instead of scoring zeros. Every instance becomes a bbox result, a segm result (if
  it has a ``segmentation`` RLE) and a keypoints result (if it has ``keypoints`` and
  its category declares keypoints in the GT), all with the instance's score.
- a COCO results json (``streamseg run --coco-json``, or anyone's): a list of
  ``{"image_id", "category_id", "score", "bbox" | "segmentation" | "keypoints"}``.
  Results whose ``image_id`` is not a GT image are left out (with a warning); when none
  is, :class:`ConfigError`.

Which images are scored: those the results cover, as Detectron2's COCOEvaluator does
(``COCOeval.params.imgIds``), so a run on part of a dataset is scored on that part.
For our JSONL that is every matched frame, with or without detections; a COCO results
list does not name the images that had no detection, so there it is the images with
at least one result.

Keypoint AP is computed over the GT categories that declare ``keypoints`` (the
person), as the COCO keypoint task.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from streamseg.errors import ConfigError, SourceError

log = logging.getLogger("streamseg")

__all__ = [
    "IOU_TYPES",
    "add_parser",
    "evaluate_coco",
    "format_summary",
    "load_results",
    "run",
]

#: The iou types pycocotools evaluates, in summary order.
IOU_TYPES: tuple[str, ...] = ("bbox", "segm", "keypoints")
#: Number of summary numbers per iou type (``COCOeval.summarize``).
NUM_STATS = {"bbox": 12, "segm": 12, "keypoints": 10}

# (AP or AR, IoU threshold or None for 0.50:0.95, area range, maxDets), as COCOeval.summarize.
_DET_ROWS = (
    (1, None, "all", 100), (1, 0.5, "all", 100), (1, 0.75, "all", 100),
    (1, None, "small", 100), (1, None, "medium", 100), (1, None, "large", 100),
    (0, None, "all", 1), (0, None, "all", 10), (0, None, "all", 100),
    (0, None, "small", 100), (0, None, "medium", 100), (0, None, "large", 100),
)  # fmt: skip
_KP_ROWS = (
    (1, None, "all", 20), (1, 0.5, "all", 20), (1, 0.75, "all", 20),
    (1, None, "medium", 20), (1, None, "large", 20),
    (0, None, "all", 20), (0, 0.5, "all", 20), (0, 0.75, "all", 20),
    (0, None, "medium", 20), (0, None, "large", 20),
)  # fmt: skip


def _quiet() -> contextlib.AbstractContextManager[Any]:
    """pycocotools prints progress on stdout; library code does not."""
    return contextlib.redirect_stdout(io.StringIO())


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise SourceError(f"{path}: no such {what} file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"{path}: cannot read {what} ({exc})") from exc
    except ValueError as exc:
        raise ConfigError(f"{path}: not valid json ({exc})") from exc


def _load_gt(gt: str | os.PathLike[str] | Mapping[str, Any]) -> Any:
    """A ``pycocotools.coco.COCO`` from a path or a COCO dict (deep-copied)."""
    from pycocotools.coco import COCO

    if isinstance(gt, Mapping):
        data = copy.deepcopy(dict(gt))
        name = "ground truth"
    else:
        data = _read_json(Path(gt), "COCO ground truth")
        name = str(gt)
    if not isinstance(data, dict) or not all(k in data for k in ("images", "annotations", "categories")):
        raise ConfigError(f"{name}: not a COCO json (needs images, annotations and categories)")
    coco = COCO()
    coco.dataset = data
    with _quiet():
        coco.createIndex()
    return coco


def _frame_to_image_id(coco: Any) -> dict[int, int]:
    """Frame index -> image id from the GT images' ``frame_index`` (else ``id = frame + 1``)."""
    images = coco.dataset["images"]
    mapping = {int(img["frame_index"]): int(img["id"]) for img in images if "frame_index" in img}
    if mapping:
        return mapping
    return {int(img["id"]) - 1: int(img["id"]) for img in coco.dataset["images"]}


def _file_name_to_image_id(coco: Any) -> dict[str, int]:
    """File name (without folders) -> image id, from the GT images' ``file_name``.

    Raises:
        ConfigError: two GT images share a file name (a prediction could not be placed).
    """
    mapping: dict[str, int] = {}
    for img in coco.dataset["images"]:
        if "file_name" not in img:
            continue
        name = Path(str(img["file_name"])).name
        if name in mapping and mapping[name] != int(img["id"]):
            raise ConfigError(f"ground truth images {mapping[name]} and {img['id']} share the file name {name!r}")
        mapping[name] = int(img["id"])
    return mapping


def _examples(values: Iterable[Any], count: int = 3) -> str:
    """The first ``count`` values, for an error message: ``'a.jpg', 'b.jpg', ...``."""
    values = list(values)
    text = ", ".join(repr(v) for v in values[:count])
    return text + (", ..." if len(values) > count else "")


def _jsonl_to_results(path: Path, coco: Any) -> tuple[list[dict[str, Any]], set[int]]:
    """Our JSONL -> COCO results (one entry per instance with every field it has) and the images it covers.

    A line with a ``file_name`` (a frame of an image folder) maps to the GT image of that
    file name; a line without one (a video frame) maps by frame index
    (:func:`_frame_to_image_id`). Lines that map to no GT image are left out.

    Returns:
        ``(results, image_ids)``: the results, and the GT image ids of every mapped line
        (with or without instances: the images the run processed).

    Raises:
        ConfigError: a malformed line, or lines none of which maps to a GT image.
    """
    frame_map = _frame_to_image_id(coco)
    name_map: dict[str, int] | None = None
    out: list[dict[str, Any]] = []
    image_ids: set[int] = set()
    unmatched: list[Any] = []
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"{path}: cannot read results ({exc})") from exc
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            frame = int(rec["frame"])
            instances = rec["instances"]
            file_name = rec.get("file_name")
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{path}:{n}: not a streamseg JSONL line ({exc})") from exc
        if file_name:
            if name_map is None:
                name_map = _file_name_to_image_id(coco)
            image_id = name_map.get(Path(str(file_name)).name)
        else:
            image_id = frame_map.get(frame)
        if image_id is None:
            unmatched.append(file_name or f"frame {frame}")
            continue
        image_ids.add(image_id)
        for inst in instances:
            res: dict[str, Any] = {
                "image_id": image_id,
                "category_id": int(inst["category_id"]),
                "score": float(inst["score"]),
                "bbox": [float(v) for v in inst["bbox"]],
            }
            if "segmentation" in inst:
                res["segmentation"] = inst["segmentation"]
            if "keypoints" in inst:
                res["keypoints"] = [float(v) for v in inst["keypoints"]]
            out.append(res)
    if unmatched and not image_ids:
        how = (
            "by file name (COCO images[].file_name)"
            if any(not str(u).startswith("frame ") for u in unmatched)
            else "by frame index (the GT images' frame_index, else image id = frame + 1)"
        )
        raise ConfigError(
            f"{path}: none of its {len(unmatched)} frames ({_examples(unmatched)}) matches an image of the "
            f"ground truth {how}; GT images are e.g. {_examples(_gt_image_names(coco))}"
        )
    if unmatched:
        log.warning("%s: %d of %d frames match no ground-truth image and are left out (%s)", path,
                    len(unmatched), len(unmatched) + len(image_ids), _examples(unmatched))
    return out, image_ids


def _gt_image_names(coco: Any) -> list[Any]:
    """The GT images' file names (their ids where they have none), for error messages."""
    return [img.get("file_name", img["id"]) for img in coco.dataset["images"]]


def _load(
    results: str | os.PathLike[str] | Sequence[Mapping[str, Any]], gt: Any
) -> tuple[list[dict[str, Any]], set[int]]:
    """:func:`load_results`, and the GT image ids the results cover (see :func:`evaluate_coco`)."""
    if not isinstance(results, (str, os.PathLike)):
        data: Any = [dict(r) for r in results]
        path = None
    else:
        path = Path(results)
        if not path.is_file():
            raise SourceError(f"{path}: no such results file")
        if path.suffix.lower() == ".jsonl":
            return _jsonl_to_results(path, gt)
        data = _read_json(path, "results")
        if isinstance(data, dict) and "frame" in data:  # a one-line JSONL named .json
            return _jsonl_to_results(path, gt)
        if not isinstance(data, list):
            raise ConfigError(
                f"{path}: expected a COCO results list or streamseg JSONL, got {type(data).__name__}"
            )
    gt_ids = set(gt.getImgIds())
    try:
        ids = {int(r["image_id"]) for r in data}
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{path or 'results'}: a result without an integer image_id ({exc})") from exc
    if ids and not ids & gt_ids:
        raise ConfigError(
            f"{path or 'results'}: none of its image ids ({_examples(sorted(ids))}) is an image of the ground "
            f"truth (ids e.g. {_examples(sorted(gt_ids))})"
        )
    if ids - gt_ids:
        log.warning("%s: results on %d image ids that are not in the ground truth are left out (%s)",
                    path or "results", len(ids - gt_ids), _examples(sorted(ids - gt_ids)))
    return data, ids & gt_ids


def load_results(
    results: str | os.PathLike[str] | Sequence[Mapping[str, Any]], gt: Any
) -> list[dict[str, Any]]:
    """Read results (JSONL path, COCO results json path, or a list of dicts) as COCO results.

    Args:
        results: our JSONL (``.jsonl``), a COCO results json (a list), or the list itself.
        gt: the ``pycocotools.coco.COCO`` ground truth (for file name or frame -> image id).

    Returns:
        A list of result dicts (``image_id``, ``category_id``, ``score`` and any of
        ``bbox``, ``segmentation``, ``keypoints``).

    Raises:
        SourceError: missing or unreadable file.
        ConfigError: neither JSONL nor a COCO results list; results none of which
            matches a GT image.
    """
    return _load(results, gt)[0]


def _keypoint_categories(coco: Any) -> list[int]:
    return sorted(int(c["id"]) for c in coco.dataset["categories"] if c.get("keypoints"))


def _results_for(
    iou_type: str, results: Iterable[Mapping[str, Any]], coco: Any, img_ids: set[int]
) -> list[dict[str, Any]]:
    """The results one iou type needs, with only its geometry field.

    ``COCO.loadRes`` picks its branch from the first result's fields (a ``bbox`` wins
    over a ``segmentation``), so segm and keypoint results must not carry a box.
    """
    kp_cats = set(_keypoint_categories(coco))
    field = {"bbox": "bbox", "segm": "segmentation", "keypoints": "keypoints"}[iou_type]
    out = []
    for r in results:
        if field not in r or int(r["image_id"]) not in img_ids:
            continue
        if iou_type == "keypoints" and int(r["category_id"]) not in kp_cats:
            continue
        out.append(
            {
                "image_id": int(r["image_id"]),
                "category_id": int(r["category_id"]),
                "score": float(r["score"]),
                field: r[field],
            }
        )
    return out


def evaluate_coco(
    results: str | os.PathLike[str] | Sequence[Mapping[str, Any]],
    gt: str | os.PathLike[str] | Mapping[str, Any],
    iou_types: Sequence[str] = IOU_TYPES,
) -> dict[str, list[float]]:
    """COCO AP / AR of results against a COCO ground truth (pycocotools ``COCOeval``).

    Args:
        results: our JSONL path, a COCO results json path, or a list of result dicts.
        gt: a COCO json path or dict (RLE or polygon segmentations; crowd regions are
            handled by pycocotools as usual).
        iou_types: any of ``"bbox"``, ``"segm"``, ``"keypoints"``.

    Returns:
        ``{iou_type: stats}``: ``COCOeval.stats`` as floats, 12 numbers for bbox and
        segm, 10 for keypoints (AP@[.5:.95], AP@.5, AP@.75, ...; see
        :func:`format_summary`). -1 where pycocotools has nothing to score (no GT
        on the images scored); all zero where there are GT but no results of that
        type. The images scored are those the results cover (see the module docstring).

    Raises:
        ConfigError: unknown iou type; malformed json; results none of which matches
            a ground-truth image (by file name, frame index or image id).
        SourceError: missing or unreadable files.
    """
    from pycocotools.cocoeval import COCOeval

    for t in iou_types:
        if t not in NUM_STATS:
            raise ConfigError(f"unknown iou type {t!r}; use {', '.join(IOU_TYPES)}")
    coco = _load_gt(gt)
    all_results, img_ids = _load(results, coco)
    stats: dict[str, list[float]] = {}
    for iou_type in iou_types:
        dets = _results_for(iou_type, all_results, coco, img_ids)
        cat_ids = _keypoint_categories(coco) if iou_type == "keypoints" else sorted(coco.getCatIds())
        has_gt = any(
            not a.get("iscrowd", 0) and (iou_type != "keypoints" or a.get("num_keypoints", 0) > 0)
            for a in coco.dataset["annotations"]
            if int(a["category_id"]) in set(cat_ids) and (not img_ids or int(a["image_id"]) in img_ids)
        )
        if not has_gt:
            stats[iou_type] = [-1.0] * NUM_STATS[iou_type]
            continue
        if not dets:
            stats[iou_type] = [0.0] * NUM_STATS[iou_type]
            continue
        try:
            with _quiet():
                coco_dt = coco.loadRes(dets)
                ev = COCOeval(coco, coco_dt, iouType=iou_type)
                ev.params.catIds = cat_ids
                ev.params.imgIds = sorted(img_ids)
                ev.evaluate()
                ev.accumulate()
                ev.summarize()
        except (KeyError, TypeError, ValueError, IndexError, AssertionError) as exc:
            raise ConfigError(f"cannot score {iou_type} results: {type(exc).__name__}: {exc}") from exc
        stats[iou_type] = [float(v) for v in np.asarray(ev.stats).reshape(-1)]
    return stats


def format_summary(stats: Mapping[str, Sequence[float]]) -> str:
    """The standard pycocotools summary lines (``COCOeval.summarize``) of :func:`evaluate_coco`'s output.

    Args:
        stats: ``{iou_type: 12 or 10 numbers}``.

    Returns:
        Text: per iou type a header line (``IoU metric: bbox``) and its 12 (10) lines,
        e.g. `` Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.512``.
    """
    template = " {:<18} {} @[ IoU={:<9} | area={:>6s} | maxDets={:>3d} ] = {:0.3f}"
    lines: list[str] = []
    for iou_type, values in stats.items():
        rows = _KP_ROWS if iou_type == "keypoints" else _DET_ROWS
        lines.append(f"IoU metric: {iou_type}")
        for (ap, thr, area, max_dets), value in zip(rows, values):
            title = "Average Precision" if ap else "Average Recall"
            kind = "(AP)" if ap else "(AR)"
            iou = "0.50:0.95" if thr is None else f"{thr:0.2f}"
            lines.append(template.format(title, kind, iou, area, max_dets, float(value)))
    return "\n".join(lines)


def add_parser(subparsers: Any) -> None:
    """Add ``streamseg eval`` to an argparse subparsers object (``set_defaults(func=run)``)."""
    p = subparsers.add_parser(
        "eval",
        help="COCO AP (bbox, segm, keypoints) of results against a COCO ground truth",
        description=(
            "Score results (streamseg JSONL, or a COCO results json) against a COCO json ground truth "
            "with pycocotools and print the standard summaries, over the images the results cover. "
            "JSONL frames of an image folder map to GT images by file name (images[].file_name); "
            "video frames by the images' frame_index field, else image id = frame + 1. Results "
            "that match no GT image at all are an error, not zeros."
        ),
    )
    p.add_argument("results", metavar="RESULTS", help="streamseg JSONL (.jsonl) or COCO results json")
    p.add_argument("gt", metavar="GT", help="COCO ground-truth json")
    p.add_argument(
        "--iou-types",
        nargs="+",
        choices=IOU_TYPES,
        default=list(IOU_TYPES),
        metavar="TYPE",
        help="any of bbox segm keypoints (default: all three)",
    )
    p.add_argument("--json", metavar="PATH", help="also write {iou_type: stats} as json")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``streamseg eval``: print the summaries on stdout; returns 0."""
    stats = evaluate_coco(args.results, args.gt, iou_types=tuple(args.iou_types))
    print(format_summary(stats))
    if getattr(args, "json", None):
        try:
            Path(args.json).write_text(json.dumps(stats, indent=1))
        except OSError as exc:
            raise SourceError(f"{args.json}: cannot write ({exc})") from exc
    return 0
