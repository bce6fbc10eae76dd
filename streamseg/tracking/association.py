"""Association helpers of :class:`~streamseg.tracking.ByteTracker`: validity, similarity, matching.

ByteTrack's ``matching.py`` in numpy and scipy (Zhang et al., ECCV 2022):

* :func:`valid_detections`: which detections the tracker may use at all (finite box
  and score, positive width and height);
* :func:`box_iou`: pairwise IoU of xyxy boxes, the similarity of every association step;
* :func:`mask_iou`: pairwise IoU of box-frame masks without full-size masks, the
  similarity with ``use_mask_iou``;
* :func:`linear_assignment`: ByteTrack's ``matching.linear_assignment`` (``lap.lapjv``
  with a cost limit) on :func:`scipy.optimize.linear_sum_assignment`.

All functions are pure: they return new arrays and never modify their arguments.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from streamseg.masks import paste_mask_in_box
from streamseg.types import Instances

__all__ = [
    "box_iou",
    "linear_assignment",
    "mask_iou",
    "valid_detections",
]


def valid_detections(instances: Instances) -> np.ndarray:
    """Which detections the tracker may use.

    A detection is valid when its box and score are finite and its box has a
    positive width and height (``x2 > x1`` and ``y2 > y1``).

    Args:
        instances: N detections.

    Returns:
        (N,) bool.
    """
    boxes = instances.boxes
    scores = instances.scores
    finite = np.isfinite(boxes).all(axis=1) & np.isfinite(scores)
    with np.errstate(invalid="ignore"):
        return finite & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])


def linear_assignment(cost: np.ndarray, max_cost: float) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-cost matching in which a pair is used only when its cost is below ``max_cost``.

    Equivalent to ByteTrack's ``matching.linear_assignment`` (``lap.lapjv`` with
    ``extend_cost=True, cost_limit=max_cost``: leaving a row and a column unmatched
    costs ``max_cost``): it maximises ``sum(max_cost - cost)`` over the matched pairs,
    solved as a full assignment of the weights ``max(max_cost - cost, 0)`` with
    :func:`scipy.optimize.linear_sum_assignment`, from which pairs of weight 0 are
    dropped (they can always be added to or removed from a matching for free).

    Args:
        cost: (R, C) float costs; NaN is treated as infinite.
        max_cost: pairs must cost strictly less.

    Returns:
        ``(rows, cols)``: int64 index arrays of the matched pairs, by increasing row.
    """
    cost = np.asarray(cost, dtype=np.float64)
    if cost.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    gain = np.nan_to_num(max_cost - cost, nan=0.0, neginf=0.0, posinf=0.0)
    np.maximum(gain, 0.0, out=gain)
    rows, cols = linear_sum_assignment(gain, maximize=True)
    keep = gain[rows, cols] > 0.0
    return rows[keep].astype(np.int64), cols[keep].astype(np.int64)


_NOT_PASTED: tuple[tuple[int, int, int, int], np.ndarray, int] = ((0, 0, 0, 0), np.zeros((0, 0), bool), 0)


def _pasted(
    masks: np.ndarray, boxes: np.ndarray, image_size: tuple[int, int], threshold: float, needed: np.ndarray
) -> list[tuple[tuple[int, int, int, int], np.ndarray, int]]:
    """Paste each needed mask into its box once: (window (y0, y1, x0, x1), bool region, area in pixels).

    Masks not ``needed`` get an empty window (they overlap nothing).
    """
    out = []
    for mask, box, need in zip(masks, boxes, needed, strict=True):
        if not need:
            out.append(_NOT_PASTED)
            continue
        window, region = paste_mask_in_box(mask, box, image_size)
        binary = region > threshold
        out.append((window, binary, int(np.count_nonzero(binary))))
    return out


def mask_iou(
    masks_a: np.ndarray,
    boxes_a: np.ndarray,
    masks_b: np.ndarray,
    boxes_b: np.ndarray,
    image_size: tuple[int, int],
    *,
    threshold: float = 0.5,
    candidates: np.ndarray | None = None,
) -> np.ndarray:
    """IoU of box-frame masks, computed without full-size masks.

    Each (M, M) mask is pasted once into its own box with
    :func:`streamseg.masks.paste_mask_in_box` (the same pixels as torchvision's
    ``paste_masks_in_image``, clipped to the image) and binarised at ``threshold``.
    The intersection of two masks lies inside the intersection of their pasted
    windows, so only that window is compared; the union is
    ``area_a + area_b - intersection``. Pairs whose windows do not overlap, or that
    ``candidates`` excludes, get 0 without any pixel work, and a mask that is in no
    candidate pair is not even pasted (the tracker passes the pairs whose boxes
    overlap, so most masks of a sparse scene cost nothing).

    Args:
        masks_a: (A, M, M) float32 probabilities in the frame of ``boxes_a``.
        boxes_a: (A, 4) xyxy pixels.
        masks_b: (B, M, M) float32 probabilities in the frame of ``boxes_b``.
        boxes_b: (B, 4) xyxy pixels.
        image_size: (H, W) of the image, pixels; parts outside it do not count.
        threshold: probability above which a pixel is inside.
        candidates: optional (A, B) bool: pairs to compute (others get 0).

    Returns:
        (A, B) float64 mask IoU in [0, 1]; 0 where both masks are empty.
    """
    n_a, n_b = len(masks_a), len(masks_b)
    out = np.zeros((n_a, n_b), dtype=np.float64)
    if n_a == 0 or n_b == 0:
        return out
    wanted = np.ones((n_a, n_b), dtype=bool) if candidates is None else np.asarray(candidates, dtype=bool)
    pa = _pasted(masks_a, boxes_a, image_size, threshold, wanted.any(axis=1))
    pb = _pasted(masks_b, boxes_b, image_size, threshold, wanted.any(axis=0))
    win_a = np.array([p[0] for p in pa], dtype=np.int64).reshape(n_a, 4)
    win_b = np.array([p[0] for p in pb], dtype=np.int64).reshape(n_b, 4)
    y0 = np.maximum(win_a[:, None, 0], win_b[None, :, 0])
    y1 = np.minimum(win_a[:, None, 1], win_b[None, :, 1])
    x0 = np.maximum(win_a[:, None, 2], win_b[None, :, 2])
    x1 = np.minimum(win_a[:, None, 3], win_b[None, :, 3])
    overlap = (y1 > y0) & (x1 > x0) & wanted
    for i, j in zip(*np.nonzero(overlap), strict=True):
        (ay0, _, ax0, _), region_a, area_a = pa[i]
        (by0, _, bx0, _), region_b, area_b = pb[j]
        if area_a == 0 or area_b == 0:
            continue
        ys, ye, xs, xe = y0[i, j], y1[i, j], x0[i, j], x1[i, j]
        inter = np.count_nonzero(
            region_a[ys - ay0 : ye - ay0, xs - ax0 : xe - ax0]
            & region_b[ys - by0 : ye - by0, xs - bx0 : xe - bx0]
        )
        out[i, j] = inter / (area_a + area_b - inter)
    return out


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of xyxy boxes.

    The same values as :func:`streamseg.postprocess.box_iou` (torchvision ``box_iou``),
    computed per axis with ``np.minimum.outer`` (about 3x faster for 200 x 200).

    Args:
        a: (A, 4) xyxy pixels, any float dtype.
        b: (B, 4) xyxy pixels, any float dtype.

    Returns:
        (A, B) float64 IoU in [0, 1]; 0 where the union is empty.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    iw = np.minimum.outer(a[:, 2], b[:, 2]) - np.maximum.outer(a[:, 0], b[:, 0])
    ih = np.minimum.outer(a[:, 3], b[:, 3]) - np.maximum.outer(a[:, 1], b[:, 1])
    np.maximum(iw, 0.0, out=iw)
    np.maximum(ih, 0.0, out=ih)
    inter = iw * ih
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = np.add.outer(area_a, area_b) - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
