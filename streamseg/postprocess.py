"""Postprocessing shared by every backend, the renderer and the sinks.

Every backend (torch, onnxruntime, tensorrt) stops at :class:`RawDetections`, the
raw head outputs in network-input pixels, and this module turns them into
:class:`~streamseg.types.Instances` the same way torchvision's
``RoIHeads`` + ``GeneralizedRCNNTransform.postprocess`` do, so all backends agree.
Everything is numpy except keypoint decoding, which is torchvision's own code (torch
is imported only when keypoints are decoded, so the renderer and sinks never load it).

Masks stay M x M in the box frame here; pasting them into the image is
:mod:`streamseg.masks`.

Keypoint decoding is torchvision's ``heatmaps_to_keypoints`` (the function
``keypointrcnn_inference`` calls), run by torch on the heatmaps' device:
:func:`keypoints_from_heatmaps` on tensors (the torch backend decodes on its own
device, CPU or CUDA, before anything is copied to the host and hands over
:attr:`RawDetections.keypoints`), :func:`heatmaps_to_keypoints` on host arrays (the
ONNX Runtime and TensorRT outputs, decoded with torch on the CPU). Each RoI's heatmaps
are upsampled bicubically to the RoI's size rounded up and the peak of each gives the
keypoint, so the result is torchvision's on the same device bit for bit.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from typing import TYPE_CHECKING

import numpy as np
from scipy.optimize import linear_sum_assignment

from streamseg.masks import paste_window
from streamseg.types import MASK_SIZE, Instances

if TYPE_CHECKING:
    import torch

__all__ = [
    "RawDetections",
    "box_iou",
    "heatmaps_to_keypoints",
    "keypoints_from_heatmaps",
    "merge_keypoints",
    "postprocess",
    "resize_boxes",
    "resize_keypoints",
]

_F32 = np.float32


# --------------------------------------------------------------------------------------
# Raw model output
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class RawDetections:
    """Backend-independent model output for one image, before :func:`postprocess`.

    What torchvision's ``RoIHeads`` computes at inference, with nothing pasted and
    nothing rescaled to the original image. N is the number of detections (after
    torchvision's score threshold, NMS and top-k), M the mask side. Keypoints come
    either as heatmaps (decoded by :func:`postprocess`) or already decoded by the
    backend on its device (``keypoints``), never both.

    Attributes:
        boxes: (N, 4) float32 xyxy in network-input (resized) pixels, clipped to
            ``input_size`` (``RoIHeads.postprocess_detections``).
        scores: (N,) float32 class scores (softmax), descending per NMS output order.
        labels: (N,) int64 class indices (COCO ids for the COCO models).
        mask_probs: (N, M, M) float32 mask probabilities of the predicted class (sigmoid
            of the label's channel, as ``maskrcnn_inference``), or None.
        keypoint_heatmaps: (N, K, Hm, Wm) float32 keypoint logits (``keypoint_predictor``
            output, 56 x 56 for torchvision's Keypoint R-CNN), or None.
        input_size: (h, w) of the resized image the boxes refer to, pixels (before
            padding to a multiple of 32).
        image_size: (H, W) of the original image, pixels.
        keypoints: (N, K, 3) float32 ``(x, y, score)`` in network-input pixels, the
            heatmaps already decoded (:func:`keypoints_from_heatmaps`), or None.
    """

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    mask_probs: np.ndarray | None
    keypoint_heatmaps: np.ndarray | None
    input_size: tuple[int, int]
    image_size: tuple[int, int]
    keypoints: np.ndarray | None = None

    def __post_init__(self) -> None:
        boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        n = boxes.shape[0]
        scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        if scores.shape[0] != n or labels.shape[0] != n:
            raise ValueError(f"boxes ({n}), scores ({scores.shape[0]}) and labels ({labels.shape[0]}) differ")
        object.__setattr__(self, "boxes", boxes)
        object.__setattr__(self, "scores", scores)
        object.__setattr__(self, "labels", labels)
        if self.mask_probs is not None:
            masks = np.asarray(self.mask_probs, dtype=np.float32)
            if n == 0 and masks.size == 0:
                masks = masks.reshape(0, MASK_SIZE, MASK_SIZE) if masks.ndim != 3 else masks
            if masks.ndim != 3 or masks.shape[0] != n:
                raise ValueError(f"mask_probs must be (N={n}, M, M), got {masks.shape}")
            object.__setattr__(self, "mask_probs", masks)
        if self.keypoint_heatmaps is not None:
            maps = np.asarray(self.keypoint_heatmaps, dtype=np.float32)
            if maps.ndim != 4 or maps.shape[0] != n:
                raise ValueError(f"keypoint_heatmaps must be (N={n}, K, Hm, Wm), got {maps.shape}")
            object.__setattr__(self, "keypoint_heatmaps", maps)
        if self.keypoints is not None:
            if self.keypoint_heatmaps is not None:
                raise ValueError("give keypoint_heatmaps or decoded keypoints, not both")
            kps = np.asarray(self.keypoints, dtype=np.float32)
            if kps.ndim != 3 or kps.shape[0] != n or kps.shape[2] != 3:
                raise ValueError(f"keypoints must be (N={n}, K, 3), got {kps.shape}")
            object.__setattr__(self, "keypoints", kps)
        object.__setattr__(self, "input_size", (int(self.input_size[0]), int(self.input_size[1])))
        object.__setattr__(self, "image_size", (int(self.image_size[0]), int(self.image_size[1])))

    def __len__(self) -> int:
        return int(self.boxes.shape[0])


# --------------------------------------------------------------------------------------
# Keypoint decoding: torchvision's own function, in torch
# --------------------------------------------------------------------------------------


def keypoints_from_heatmaps(maps: torch.Tensor, rois: torch.Tensor) -> torch.Tensor:
    """Keypoints from heatmap logits with torchvision's ``heatmaps_to_keypoints``, on ``maps``' device.

    torchvision (``torchvision/models/detection/roi_heads.py``, called by
    ``keypointrcnn_inference``): for RoI i, ``w = max(x2 - x1, 1)``, ``h = max(y2 - y1, 1)``;
    the K maps are upsampled bicubically (``F.interpolate(mode="bicubic",
    align_corners=False)``) to ``(ceil(h), ceil(w))`` pixels; the peak (``argmax``) at
    integer ``(x_int, y_int)`` gives ``x = (x_int + 0.5) * w / ceil(w) + x1`` and
    ``y = (y_int + 0.5) * h / ceil(h) + y1`` (Heckbert 1990, c = d + 0.5), and the score is
    the upsampled logit at the peak.

    Args:
        maps: Tensor[N, K, Hm, Wm] float32 heatmap logits (the keypoint predictor's
            output, 17 x 56 x 56 for torchvision's Keypoint R-CNN), on any device.
        rois: Tensor[N, 4] float32 xyxy boxes the heatmaps belong to, pixels, same device.

    Returns:
        Tensor[N, K, 3] float32 ``(x, y, score)`` in the RoIs' pixel frame, on ``maps``'
        device. torchvision returns ``(x, y, 1)`` and the scores separately; here the
        score replaces the 1.
    """
    import torch
    from torchvision.models.detection.roi_heads import heatmaps_to_keypoints as tv_heatmaps_to_keypoints

    maps = maps.to(torch.float32)
    rois = rois.to(device=maps.device, dtype=torch.float32).reshape(-1, 4)
    with torch.inference_mode():
        xy, scores = tv_heatmaps_to_keypoints(maps, rois)
        return torch.cat([xy[..., :2], scores[..., None]], dim=-1)


def heatmaps_to_keypoints(maps: np.ndarray, rois: np.ndarray) -> np.ndarray:
    """:func:`keypoints_from_heatmaps` of host arrays, with torch on the CPU.

    Args:
        maps: (N, K, Hm, Wm) float32 heatmap logits.
        rois: (N, 4) float32 xyxy boxes the heatmaps belong to, pixels.

    Returns:
        (N, K, 3) float32 ``(x, y, score)`` in the RoIs' pixel frame.
    """
    import torch

    def tensor(a: np.ndarray) -> torch.Tensor:
        a = np.ascontiguousarray(a, dtype=_F32)
        return torch.from_numpy(a if a.flags.writeable else a.copy())  # from_numpy warns on read-only

    return keypoints_from_heatmaps(tensor(maps), tensor(rois)).numpy()


# --------------------------------------------------------------------------------------
# From raw detections to Instances
# --------------------------------------------------------------------------------------


def _ratios(from_size: tuple[int, int], to_size: tuple[int, int]) -> tuple[np.float32, np.float32]:
    """(ratio_h, ratio_w) = to / from per axis in float32, as torchvision's ``resize_boxes``."""
    return _F32(to_size[0]) / _F32(from_size[0]), _F32(to_size[1]) / _F32(from_size[1])


def resize_boxes(boxes: np.ndarray, from_size: tuple[int, int], to_size: tuple[int, int]) -> np.ndarray:
    """Rescale xyxy boxes between image sizes (torchvision ``transform.resize_boxes``).

    Args:
        boxes: (N, 4) float32 xyxy pixels in an image of ``from_size`` (h, w).
        from_size: (h, w) the boxes refer to, pixels.
        to_size: (H, W) to rescale to, pixels.

    Returns:
        (N, 4) float32: x multiplied by ``float32(W) / float32(w)``, y by ``H / h``.
    """
    ratio_h, ratio_w = _ratios(from_size, to_size)
    out = np.array(boxes, dtype=_F32, copy=True).reshape(-1, 4)
    out[:, 0::2] *= ratio_w
    out[:, 1::2] *= ratio_h
    return out


def resize_keypoints(
    keypoints: np.ndarray, from_size: tuple[int, int], to_size: tuple[int, int]
) -> np.ndarray:
    """Rescale (x, y, score) keypoints between image sizes (torchvision ``transform.resize_keypoints``).

    Args:
        keypoints: (N, K, 3) float32 (x, y, score), pixels in an image of ``from_size``.
        from_size: (h, w), pixels.
        to_size: (H, W), pixels.

    Returns:
        (N, K, 3) float32 with x, y rescaled (float32 ratios) and scores unchanged.
    """
    ratio_h, ratio_w = _ratios(from_size, to_size)
    out = np.array(keypoints, dtype=_F32, copy=True)
    out[..., 0] *= ratio_w
    out[..., 1] *= ratio_h
    return out


def postprocess(
    raw: RawDetections,
    *,
    score_thresh: float = 0.0,
    keypoint_labels: Collection[int] | None = None,
) -> Instances:
    """Turn raw head outputs into :class:`Instances` in original-image pixels.

    Steps, as torchvision's inference path:

    1. keep detections with ``score > score_thresh`` (the comparison of
       ``RoIHeads.postprocess_detections``; backends already apply the same threshold
       there, so this is a no-op for them and a filter for callers that raise it);
    2. decode keypoints on the resized-image boxes (``keypointrcnn_inference`` ->
       torchvision's ``heatmaps_to_keypoints``, :func:`heatmaps_to_keypoints`), unless
       the backend has decoded them (``raw.keypoints``);
    3. rescale boxes and keypoints from ``input_size`` to ``image_size``
       (``GeneralizedRCNNTransform.postprocess``: :func:`resize_boxes`,
       :func:`resize_keypoints`). Masks stay M x M in the box frame (never pasted).

    Args:
        raw: one image's raw detections.
        score_thresh: minimum score (exclusive), in [0, 1].
        keypoint_labels: the labels that have keypoints (e.g. person); the keypoint rows
            of other labels are NaN. A model whose keypoint head runs on every detection
            (the demo model: masks and keypoints in one ROI heads) predicts keypoints for
            balls and cars too, which mean nothing. None keeps every row.

    Returns:
        Instances with masks (N, M, M) or None, keypoints (N, K, 3) or None, track ids -1.
    """
    keep = raw.scores > _F32(score_thresh)
    boxes = raw.boxes[keep]
    keypoints = None
    if raw.keypoints is not None:
        keypoints = raw.keypoints[keep]
    elif raw.keypoint_heatmaps is not None:
        keypoints = heatmaps_to_keypoints(raw.keypoint_heatmaps[keep], boxes)
    if keypoints is not None:
        keypoints = resize_keypoints(keypoints, raw.input_size, raw.image_size)
        if keypoint_labels is not None:
            keypoints[~np.isin(raw.labels[keep], np.asarray(list(keypoint_labels), np.int64))] = np.nan
    return Instances(
        image_size=raw.image_size,
        boxes=resize_boxes(boxes, raw.input_size, raw.image_size),
        scores=raw.scores[keep],
        labels=raw.labels[keep],
        masks=None if raw.mask_probs is None else raw.mask_probs[keep],
        keypoints=keypoints,
    )


# --------------------------------------------------------------------------------------
# Combining a mask model with a keypoint model
# --------------------------------------------------------------------------------------


def box_iou(boxes1: np.ndarray, boxes2: np.ndarray) -> np.ndarray:
    """Pairwise IoU of xyxy boxes (torchvision ``ops.box_iou``), numpy.

    Args:
        boxes1: (N, 4) xyxy pixels.
        boxes2: (M, 4) xyxy pixels.

    Returns:
        (N, M) float64 IoU in [0, 1]; 0 where the union is empty.
    """
    a = np.asarray(boxes1, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(boxes2, dtype=np.float64).reshape(-1, 4)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0.0, None)
    inter = wh[..., 0] * wh[..., 1]
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def merge_keypoints(
    instances: Instances, kp_instances: Instances, *, person_label: int = 1, iou_thresh: float = 0.5
) -> Instances:
    """Attach a keypoint model's keypoints to a mask model's person instances.

    Person instances of ``instances`` and person detections of ``kp_instances`` are
    paired one-to-one by maximum total box IoU over the pairs with IoU >= ``iou_thresh``
    (Hungarian assignment, ``scipy.optimize.linear_sum_assignment``); the others stay
    unpaired. A paired person takes the keypoints; unpaired persons and all other
    classes get a NaN keypoint row ("no keypoints"). Keypoint-model persons left
    unpaired are appended (their box, score and keypoints, label ``person_label``, track
    id -1, and, when ``instances`` has masks, a NaN mask: "no mask for this instance",
    :attr:`Instances.mask_present`, so the JSONL and COCO results carry no
    ``segmentation`` for them; drawn and pasted, a NaN mask is empty). Existing
    keypoints of ``instances`` are replaced.

    Args:
        instances: the mask model's instances (any labels; masks may be None).
        kp_instances: the keypoint model's instances on the same image, with keypoints.
        person_label: the person label in both label spaces (1: COCO id, and index 1
            of torchvision's Keypoint R-CNN categories).
        iou_thresh: minimum box IoU of a pair, in [0, 1].

    Returns:
        Instances with keypoints (N', K, 3), sorted by score descending (stable).

    Raises:
        ValueError: ``kp_instances`` has no keypoints, or the image sizes differ.
    """
    if kp_instances.keypoints is None:
        raise ValueError("kp_instances has no keypoints")
    if tuple(instances.image_size) != tuple(kp_instances.image_size):
        raise ValueError(f"image sizes differ: {instances.image_size} vs {kp_instances.image_size}")
    num_kp = kp_instances.keypoints.shape[1]
    keypoints = np.full((len(instances), num_kp, 3), np.nan, dtype=_F32)
    persons = np.flatnonzero(instances.labels == person_label)
    kp_persons = np.flatnonzero(kp_instances.labels == person_label)
    used = np.zeros(len(kp_instances), dtype=bool)
    if persons.size and kp_persons.size:
        iou = box_iou(instances.boxes[persons], kp_instances.boxes[kp_persons])
        iou = np.where(iou >= iou_thresh, iou, 0.0)  # pairs below the threshold count for nothing
        rows, cols = linear_sum_assignment(iou, maximize=True)
        ok = iou[rows, cols] > 0
        keypoints[persons[rows[ok]]] = kp_instances.keypoints[kp_persons[cols[ok]]]
        used[kp_persons[cols[ok]]] = True
    extra = kp_persons[~used[kp_persons]]

    masks = instances.masks
    crops = instances.mask_crops
    if masks is not None:
        masks = np.concatenate([masks, np.full((extra.size, *masks.shape[1:]), np.nan, dtype=_F32)])
    if crops is not None:  # the added persons have no mask: an all-zero crop of their window
        for box in kp_instances.boxes[extra]:
            _, _, _, _, y0, y1, x0, x1 = paste_window(box, instances.masks.shape[-1], instances.image_size)
            empty = y1 <= y0 or x1 <= x0
            zeros = np.zeros((0, 0) if empty else (y1 - y0, x1 - x0), np.uint8)
            zeros.flags.writeable = False
            crops = (*crops, ((0, 0, 0, 0) if empty else (y0, y1, x0, x1), zeros))
    merged = Instances(
        image_size=instances.image_size,
        boxes=np.concatenate([instances.boxes, kp_instances.boxes[extra]]),
        scores=np.concatenate([instances.scores, kp_instances.scores[extra]]),
        labels=np.concatenate([instances.labels, np.full(extra.size, person_label, dtype=np.int64)]),
        masks=masks,
        keypoints=np.concatenate([keypoints, kp_instances.keypoints[extra]]),
        track_ids=np.concatenate([instances.track_ids, np.full(extra.size, -1, dtype=np.int64)]),
        mask_crops=crops,
    )
    return merged[np.argsort(-merged.scores, kind="stable")]
