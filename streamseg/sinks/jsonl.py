"""Per-frame results as JSON Lines: one JSON object per frame, flushed per line.

Schema of one line (coordinates in image pixels, times in seconds or ms)::

    {"frame": 12,                       # Frame.index
     "pts": 1.2,                        # Frame.pts_s, seconds, 6 decimals
     "source": "video.mp4",             # Frame.source_id
     "image_size": [576, 768],          # [H, W]
     "instances": [
       {"track_id": 3,                  # -1 if untracked
        "category_id": 1,               # the model's label (COCO category id for COCO models)
        "label": "person",              # categories[category_id]
        "score": 0.9871,                # 4 decimals
        "bbox": [x, y, w, h],           # COCO xywh, float pixels, 2 decimals
        "segmentation": {"size": [H, W], "counts": "..."},  # COCO RLE, if the instance has a mask
        "keypoints": [x1, y1, 2, ...],  # COCO 17 x (x, y, v), v = 2; if keypoints exist
        "keypoint_scores": [...]},      # 17 floats (heatmap logits)
     ],
     "timings_ms": {"decode": 2.113, "model": 151.2}}  # ms of the stages before the outputs

``timings_ms`` holds the frame's stages up to its hand-over to the outputs (decode,
preprocess, model, postprocess, track, render, and the outputs written in the stream's
own thread before this one); the MP4 encoder and this writer run in threads of their
own (:mod:`streamseg.core.output_worker`), so their times are in the run's summary, not
here.

The RLE is ``pycocotools.mask.encode`` of the full-size binary mask
(probability > 0.5, pasted as torchvision's ``paste_masks_in_image``), so
``pycocotools.mask.decode`` gives back exactly
:func:`streamseg.masks.paste_masks` for that instance.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_util

from streamseg.masks import mask_crops
from streamseg.sinks.textfile import FlushedTextFile
from streamseg.types import FrameResult, Instances

__all__ = ["JsonlWriter", "result_to_dict", "read_jsonl", "MASK_THRESHOLD"]

#: Mask probability above which a pixel is inside the instance (torchvision's convention).
MASK_THRESHOLD = 0.5
#: COCO keypoint visibility flag written for every predicted keypoint ("labeled and visible").
_VISIBLE = 2


def crop_rle_counts(crop: np.ndarray, region: tuple[int, int, int, int], image_size: tuple[int, int]) -> np.ndarray:
    """Uncompressed COCO RLE counts of a full-size binary mask that is zero outside ``region``.

    COCO RLE runs over the image in column-major (Fortran) order and starts with a run
    of zeros (``pycocotools.mask.encode``'s convention, ``maskApi.c``). Only the columns
    the crop spans are looked at: the columns left and right of it are zeros and join
    the first and last runs, so the cost is the crop's width times H, not H x W.

    Args:
        crop: (y1 - y0, x1 - x0) bool or uint8 (0 or 1), the mask inside ``region``.
        region: ``(y0, y1, x0, x1)`` half-open pixel ranges inside the image (may be empty).
        image_size: (H, W) of the full image.

    Returns:
        (K,) uint32 run lengths (zeros, ones, zeros, ...), summing to H x W.
    """
    h, w = int(image_size[0]), int(image_size[1])
    y0, y1, x0, x1 = region
    if crop.size == 0 or y1 <= y0 or x1 <= x0:
        return np.array([h * w], np.uint32)
    columns = np.zeros((x1 - x0, h), np.uint8)  # the crop's columns, each a full image column
    columns[:, y0:y1] = crop.T
    flat = columns.reshape(-1)
    edges = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    runs = np.diff(np.concatenate(([0], edges, [flat.size]))).astype(np.int64)
    before, after = x0 * h, (w - x1) * h
    if flat[0]:  # the first run is of ones: an empty run of zeros starts the counts
        runs = np.concatenate(([before], runs))
    else:
        runs[0] += before
    if flat[-1] and after:  # the last run is of ones: the zeros after the crop follow it
        runs = np.concatenate((runs, [after]))
    elif not flat[-1]:
        runs[-1] += after
    return runs.astype(np.uint32)


def _rle(region: tuple[int, int, int, int], crop: np.ndarray, image_size: tuple[int, int]) -> dict[str, Any]:
    """COCO RLE of one pasted, binarised mask crop (:func:`~streamseg.masks.mask_crops`) in the full image.

    The same string as ``pycocotools.mask.encode`` of the full-size mask: the run lengths
    come from the box's crop (:func:`crop_rle_counts`) and pycocotools compresses them
    (``frPyObjects`` of an uncompressed RLE).
    """
    h, w = int(image_size[0]), int(image_size[1])
    counts = crop_rle_counts(crop, region, (h, w))
    rle = mask_util.frPyObjects({"size": [h, w], "counts": counts}, h, w)
    return {"size": [h, w], "counts": rle["counts"].decode("ascii")}


def _instance_dict(inst: Instances, i: int, categories: Sequence[str]) -> dict[str, Any]:
    """The JSON object of instance ``i`` of ``inst``."""
    x1, y1, x2, y2 = (float(v) for v in inst.boxes[i])
    label = int(inst.labels[i])
    out: dict[str, Any] = {
        "track_id": int(inst.track_ids[i]),
        "category_id": label,
        "label": categories[label] if 0 <= label < len(categories) else str(label),
        "score": round(float(inst.scores[i]), 4),
        "bbox": [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)],
    }
    if inst.mask_present[i]:  # a keypoint-only person (NaN mask) has none
        out["segmentation"] = _rle(*mask_crops(inst, MASK_THRESHOLD)[i], inst.image_size)
    if inst.keypoints is not None and not np.isnan(inst.keypoints[i]).any():
        kps = inst.keypoints[i]
        out["keypoints"] = [v for x, y, _ in kps for v in (round(float(x), 2), round(float(y), 2), _VISIBLE)]
        out["keypoint_scores"] = [round(float(s), 4) for s in kps[:, 2]]
    return out


def result_to_dict(result: FrameResult, categories: Sequence[str]) -> dict[str, Any]:
    """Convert one frame's result to the JSON-ready dict of the module's schema.

    Args:
        result: the frame, its instances (N) and stage timings.
        categories: class names indexed by label (e.g. ``COCO_CATEGORIES``); a
            label outside the list is written as its number.

    Returns:
        A dict of plain Python types (int, float, str, list, dict), ready for
        ``json.dumps``. Keypoints are left out for instances whose keypoint row
        holds NaN; ``segmentation`` is left out when the model has no masks.
    """
    frame, inst = result.frame, result.instances
    return {
        "frame": int(frame.index),
        "pts": round(float(frame.pts_s), 6),
        "source": frame.source_id,
        "image_size": [int(inst.image_size[0]), int(inst.image_size[1])],
        "instances": [_instance_dict(inst, i, categories) for i in range(len(inst))],
        "timings_ms": {str(k): round(float(v), 3) for k, v in result.timings_ms.items()},
    }


class JsonlWriter(FlushedTextFile):
    """Write one JSON line per frame, flushed after every line.

    An interrupted run leaves a file of complete, valid lines. Use it as a
    context manager, or call :meth:`close`.

    Args:
        path: output file (created or truncated; its folder must exist).
        categories: class names indexed by label, for the ``label`` field.

    Attributes:
        frames_written: lines written so far.

    Raises:
        SinkError: the file cannot be created.
    """

    def __init__(self, path: str | Path, *, categories: Sequence[str]) -> None:
        super().__init__(path, what="results")
        self.categories = tuple(categories)
        self.frames_written = 0

    def write(self, result: FrameResult) -> None:
        """Append the line of one frame and flush it to the OS.

        Raises:
            SinkError: the writer is closed, or writing failed (e.g. disk full).
        """
        self._check_open()
        line = json.dumps(result_to_dict(result, self.categories), separators=(",", ":"), allow_nan=False)
        self._write_flushed(line + "\n")
        self.frames_written += 1


def read_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    """Yield the per-frame dicts of a JSONL results file, in order.

    Blank lines are skipped. A last line without its newline that does not
    parse (a run killed mid-write) is skipped too.

    Args:
        path: a file written by :class:`JsonlWriter`.

    Yields:
        One dict per frame, in the module's schema.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: a line is not valid JSON (the message gives ``path:line``).
    """
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as e:
                if not line.endswith("\n"):
                    return  # an interrupted last write
                raise ValueError(f"{path}:{number}: not valid JSON ({e.msg})") from e
