"""Instances as COCO results: the one place that builds COCO result fields (bbox xywh, RLE, keypoints).

:meth:`Instances.to_coco <streamseg.types.Instances.to_coco>`, the JSONL
(:mod:`streamseg.sinks.jsonl`) and the ``--coco-json`` results file
(:class:`~streamseg.sinks.outputs.CocoJsonOutput`) all take their COCO fields from
:func:`coco_fields`, so the three never disagree. The format is the COCO results
format (https://cocodataset.org/#format-results), which ``pycocotools.coco.COCO.loadRes``
reads::

    {"image_id": 139,                        # only in to_coco / the results file
     "category_id": 1,                       # COCO category id
     "score": 0.9871,                        # 4 decimals
     "bbox": [x, y, w, h],                   # xywh pixels, 3 decimals (0.001 px)
     "segmentation": {"size": [H, W], "counts": "..."},  # compressed RLE; absent without a mask
     "keypoints": [x1, y1, 2, ...]}          # 17 x (x, y, v = 2), 3 decimals; absent without

Precision: x and y are rounded to 0.001 px and ``w = round(x2, 3) - round(x1, 3)`` (rounded
again, to drop the float noise of the subtraction), so ``x + w`` gives back ``x2`` within
0.0005 px. The RLE is ``pycocotools.mask.encode`` of the full-size binary mask
(probability > 0.5, pasted as torchvision's ``paste_masks_in_image``), built from the box's
crop (:func:`crop_rle`). A keypoint-only instance (a NaN mask,
:attr:`Instances.mask_present <streamseg.types.Instances.mask_present>`) gets no
``segmentation``: an empty mask would be a false positive in COCO segm evaluation.

Category ids: the label is written as it is unless a ``categories`` mapping is given.
For torchvision's COCO models the label is the COCO category id (their 91-entry label
list, :data:`streamseg.models.coco.COCO_CATEGORIES`, is indexed by COCO id, gaps
included), and the demo world's labels are its category ids; ``streamseg eval`` reads
``category_id`` the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pycocotools import mask as mask_util

from streamseg.masks import mask_crops

if TYPE_CHECKING:
    from streamseg.types import Frame, Instances

__all__ = [
    "KEYPOINT_VISIBLE",
    "MASK_THRESHOLD",
    "coco_fields",
    "coco_image_id",
    "coco_results",
    "crop_rle",
    "crop_rle_counts",
]

#: Mask probability above which a pixel is inside the instance (torchvision's convention).
MASK_THRESHOLD = 0.5
#: COCO keypoint visibility flag written for every predicted keypoint ("labeled and visible").
KEYPOINT_VISIBLE = 2
#: Decimals of pixel coordinates (bbox, keypoints): 0.001 px.
_PIXEL_DECIMALS = 3
#: Decimals of scores.
_SCORE_DECIMALS = 4


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


def crop_rle(region: tuple[int, int, int, int], crop: np.ndarray, image_size: tuple[int, int]) -> dict[str, Any]:
    """COCO RLE of one pasted, binarised mask crop (:func:`~streamseg.masks.mask_crops`) in the full image.

    The same string as ``pycocotools.mask.encode`` of the full-size mask: the run lengths
    come from the box's crop (:func:`crop_rle_counts`) and pycocotools compresses them
    (``frPyObjects`` of an uncompressed RLE).

    Args:
        region: ``(y0, y1, x0, x1)`` half-open pixel ranges of the crop in the image.
        crop: (y1 - y0, x1 - x0) uint8 (0 or 1) mask inside ``region``.
        image_size: (H, W) of the full image, pixels.

    Returns:
        ``{"size": [H, W], "counts": str}``: compressed COCO RLE, ``counts`` as ASCII text
        (JSON-ready; ``pycocotools.mask.decode`` wants it back as bytes).
    """
    h, w = int(image_size[0]), int(image_size[1])
    counts = crop_rle_counts(crop, region, (h, w))
    rle = mask_util.frPyObjects({"size": [h, w], "counts": counts}, h, w)
    return {"size": [h, w], "counts": rle["counts"].decode("ascii")}



def _xywh(box: np.ndarray) -> list[float]:
    """COCO ``[x, y, w, h]`` of one xyxy box at 0.001 px, with ``x + w`` = ``round(x2, 3)``."""
    x1, y1, x2, y2 = (round(float(v), _PIXEL_DECIMALS) for v in box)
    return [x1, y1, round(x2 - x1, _PIXEL_DECIMALS), round(y2 - y1, _PIXEL_DECIMALS)]


def coco_fields(instances: Instances, *, categories: Mapping[int, int] | None = None) -> list[dict[str, Any]]:
    """The COCO result fields of every instance, without ``image_id`` (see the module docstring).

    Args:
        instances: N instances of one image (masks, keypoints optional).
        categories: label -> COCO category id, for a model whose labels are not COCO ids
            (e.g. a contiguous 80-class head); None writes the label itself (the COCO id
            for torchvision's COCO models and the demo model).

    Returns:
        N dicts of plain Python types: ``category_id``, ``score``, ``bbox`` (xywh pixels),
        ``segmentation`` (compressed RLE, only where the instance has a mask) and
        ``keypoints`` (51 numbers, only where its keypoint row is finite).

    Raises:
        ValueError: a label has no entry in ``categories``.
    """
    crops = mask_crops(instances, MASK_THRESHOLD) if instances.masks is not None else None
    has_mask, has_keypoints = instances.mask_present, instances.keypoints_present
    out: list[dict[str, Any]] = []
    for i in range(len(instances)):
        label = int(instances.labels[i])
        if categories is not None and label not in categories:
            raise ValueError(f"label {label} has no COCO category id in categories")
        fields: dict[str, Any] = {
            "category_id": int(categories[label]) if categories is not None else label,
            "score": round(float(instances.scores[i]), _SCORE_DECIMALS),
            "bbox": _xywh(instances.boxes[i]),
        }
        if has_mask[i]:
            assert crops is not None
            fields["segmentation"] = crop_rle(*crops[i], instances.image_size)
        if has_keypoints[i]:
            assert instances.keypoints is not None
            fields["keypoints"] = [
                v
                for x, y, _ in instances.keypoints[i]
                for v in (round(float(x), _PIXEL_DECIMALS), round(float(y), _PIXEL_DECIMALS), KEYPOINT_VISIBLE)
            ]
        out.append(fields)
    return out


def coco_results(
    instances: Instances, image_id: int, *, categories: Mapping[int, int] | None = None
) -> list[dict[str, Any]]:
    """COCO result dicts of one image's instances: :func:`coco_fields` with ``image_id`` first.

    Args:
        instances: N instances of the image.
        image_id: the image's COCO id (``images[].id`` of the ground truth).
        categories: label -> COCO category id, or None (the label is the id).

    Returns:
        N dicts ``{"image_id", "category_id", "score", "bbox", ["segmentation"], ["keypoints"]}``,
        a list ``pycocotools.coco.COCO.loadRes`` accepts.

    Raises:
        ValueError: a label has no entry in ``categories``.
    """
    return [{"image_id": int(image_id), **fields} for fields in coco_fields(instances, categories=categories)]


def coco_image_id(frame: Frame) -> int:
    """The COCO image id a frame's results are written with (``streamseg run --coco-json``).

    COCO names its images by their id (``000000000139.jpg`` is image 139, zero-padded to
    12 digits), so for a frame of an image folder whose file name is a number, that
    number is the id; MOT17's ``img1/000001.jpg`` gives 1 = frame + 1 as well. Any
    other frame (a video, a file named otherwise) gets ``frame.index + 1``, the convention
    of :func:`streamseg.datasets.demo_export.write_clip`. ``streamseg eval`` maps the
    JSONL by file name instead, which needs no such rule.

    Args:
        frame: the frame (its ``file_name`` and ``index``).

    Returns:
        The image id, >= 0 (>= 1 from the frame index).
    """
    if frame.file_name is not None:
        stem = Path(frame.file_name).stem
        if stem.isdecimal() and stem.isascii():
            return int(stem)
    return int(frame.index) + 1
