"""Instances to and from supervision's ``Detections`` and ``KeyPoints`` (``pip install streamseg[supervision]``).

supervision (Roboflow, https://supervision.roboflow.com) keeps one detection set as
``sv.Detections``: ``xyxy`` (N, 4), ``mask`` (N, H, W) bool full-image masks,
``confidence`` (N,), ``class_id`` (N,), ``tracker_id`` (N,) or None, and a ``data`` dict
of per-detection arrays; person keypoints are a separate ``sv.KeyPoints`` (``xy``
(N, K, 2), ``keypoint_confidence`` (N, K), ``visible`` (N, K)). The mapping:

================  =====================================================================
Instances         supervision
================  =====================================================================
``boxes``         ``xyxy`` (float32 pixels, unchanged: torchvision's continuous xyxy)
``scores``        ``confidence``
``labels``        ``class_id``; with ``categories`` also ``data["class_name"]``
``track_ids``     ``tracker_id``; None when every id is -1 (never tracked)
``masks``         ``mask``: each (28, 28) box-frame mask pasted and binarised at 0.5, the
                  pixels the renderer and the JSONL use (:func:`streamseg.masks.mask_crops`)
``keypoints``     ``data["keypoints"]`` (N, 17, 3) float32 (x, y, score) in ``Detections``;
                  ``sv.KeyPoints`` from :func:`to_supervision_keypoints`
================  =====================================================================

Full-image masks back to box-frame masks (:func:`from_supervision`) is torchvision's own
conversion of ground-truth masks into Mask R-CNN training targets,
``roi_heads.project_masks_on_boxes``: ``torchvision.ops.roi_align`` of the (H, W) mask over
the box at 28 x 28 (spatial scale 1, ``aligned=False``, adaptive sampling), which averages
the mask over each of the box's 28 x 28 cells. It is an approximation: pasting the result
back (bilinear upsampling, threshold 0.5) smooths the outline at the cell scale (box side /
28 pixels) and drops any part of the mask outside its box. On the 804 non-crowd masks of
../shared/data/coco/val2017-80, with their annotated boxes, the pasted mask's IoU with the
original averages 0.98 for large masks (area > 96^2 px, lowest 0.95), 0.95 for medium ones
and 0.85 for small ones (< 32^2 px), where one cell is a pixel or more (tests/test_supervision.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from streamseg.types import MASK_SIZE, Instances

if TYPE_CHECKING:
    import supervision as sv

__all__ = [
    "KEYPOINTS_DATA_FIELD",
    "from_supervision",
    "full_masks",
    "masks_to_box_frame",
    "to_supervision",
    "to_supervision_keypoints",
]

#: The ``Detections.data`` key that carries (N, K, 3) keypoints (x, y, score).
KEYPOINTS_DATA_FIELD = "keypoints"
#: supervision's ``Detections.data`` key for class names (``supervision.config.CLASS_NAME_DATA_FIELD``).
CLASS_NAME_DATA_FIELD = "class_name"


def _supervision() -> Any:
    """Import supervision, or raise ImportError naming the extra that installs it."""
    try:
        import supervision
    except ImportError as exc:
        raise ImportError(
            "supervision is not installed: pip install 'streamseg[supervision]' (or pip install supervision)"
        ) from exc
    return supervision


def full_masks(instances: Instances) -> np.ndarray:
    """The instances' full-image binary masks, from their pasted crops (:func:`streamseg.masks.mask_crops`).

    Args:
        instances: N instances with masks.

    Returns:
        (N, H, W) bool, True inside (probability > 0.5), H, W = ``instances.image_size``.

    Raises:
        ValueError: ``instances`` has no masks.
    """
    from streamseg.masks import mask_crops

    h, w = instances.image_size
    out = np.zeros((len(instances), h, w), dtype=bool)
    for i, ((y0, y1, x0, x1), crop) in enumerate(mask_crops(instances)):
        out[i, y0:y1, x0:x1] = crop.astype(bool)
    return out


def to_supervision(instances: Instances, categories: Sequence[str] | None = None) -> sv.Detections:
    """``sv.Detections`` of ``instances`` (the mapping in the module docstring).

    Args:
        instances: N instances.
        categories: class names indexed by label (``Predictor.categories``, a backend's
            ``categories``); given, ``data["class_name"]`` holds each instance's name, which
            supervision's ``LabelAnnotator`` shows.

    Returns:
        ``sv.Detections`` with ``xyxy`` (N, 4) float32, ``confidence`` (N,) float32,
        ``class_id`` (N,) int64, ``tracker_id`` (N,) int64 or None, ``mask`` (N, H, W) bool
        or None, and ``data["keypoints"]`` (N, 17, 3) float32 when the instances have keypoints.

    Raises:
        ImportError: supervision is not installed.
        ValueError: a label has no name in ``categories``.
    """
    sv = _supervision()
    data: dict[str, np.ndarray] = {}
    if categories is not None:
        names = list(categories)
        bad = [int(label) for label in instances.labels if not 0 <= int(label) < len(names)]
        if bad:
            raise ValueError(f"labels {sorted(set(bad))} have no name in the {len(names)} categories given")
        data[CLASS_NAME_DATA_FIELD] = np.array([names[int(label)] for label in instances.labels], dtype=str)
    if instances.keypoints is not None:
        data[KEYPOINTS_DATA_FIELD] = np.array(instances.keypoints, dtype=np.float32)
    tracked = bool((instances.track_ids >= 0).any())
    return sv.Detections(
        xyxy=np.array(instances.boxes, dtype=np.float32),
        mask=full_masks(instances) if instances.masks is not None else None,
        confidence=np.array(instances.scores, dtype=np.float32),
        class_id=np.array(instances.labels, dtype=np.int64),
        tracker_id=np.array(instances.track_ids, dtype=np.int64) if tracked else None,
        data=data,
    )


def to_supervision_keypoints(instances: Instances) -> sv.KeyPoints:
    """``sv.KeyPoints`` of the instances' keypoints, for supervision's ``EdgeAnnotator`` and ``VertexAnnotator``.

    Args:
        instances: N instances with keypoints.

    Returns:
        ``sv.KeyPoints`` with ``xy`` (N, K, 2) float32 pixels, ``keypoint_confidence`` (N, K)
        float32 (torchvision's ``keypoints_scores``: heatmap logits, not probabilities),
        ``class_id`` (N,), ``detection_confidence`` (N,) and ``visible`` (N, K) bool, False
        for the NaN rows of instances without keypoints (a car, when keypoints come from a
        second model). ``data["tracker_id"]`` carries the track IDs (-1: untracked).

    Raises:
        ImportError: supervision is not installed.
        ValueError: ``instances`` has no keypoints.
    """
    sv = _supervision()
    if instances.keypoints is None:
        raise ValueError("these instances have no keypoints (run a keypoint model, or keypoints=True)")
    kps = np.array(instances.keypoints, dtype=np.float32)
    return sv.KeyPoints(
        xy=np.ascontiguousarray(kps[:, :, :2]),
        keypoint_confidence=np.ascontiguousarray(kps[:, :, 2]),
        class_id=np.array(instances.labels, dtype=np.int64),
        detection_confidence=np.array(instances.scores, dtype=np.float32),
        visible=np.isfinite(kps).all(axis=2),
        data={"tracker_id": np.array(instances.track_ids, dtype=np.int64)},
    )


def masks_to_box_frame(masks: np.ndarray, boxes: np.ndarray, mask_size: int = MASK_SIZE) -> np.ndarray:
    """Full-image masks as box-frame mask probabilities: torchvision's ``project_masks_on_boxes``.

    The conversion torchvision's Mask R-CNN applies to ground-truth masks to make its
    training targets (torchvision/models/detection/roi_heads.py): ``roi_align`` of each
    (H, W) mask over its box, output ``mask_size`` x ``mask_size``, spatial scale 1,
    ``aligned=False``, adaptive sampling ratio. Each cell is the mean of the mask over that
    cell of the box, so the result is a probability in [0, 1]; the mask outside the box is lost.

    Args:
        masks: (N, H, W) bool or numeric (0 outside, 1 inside) full-image masks.
        boxes: (N, 4) float xyxy in image pixels.
        mask_size: M, the side of the result (28 for torchvision's Mask R-CNN).

    Returns:
        (N, M, M) float32 probabilities in the box frame (:attr:`Instances.masks`).

    Raises:
        ValueError: ``masks`` is not (N, H, W) or ``boxes`` not (N, 4).
    """
    import torch
    from torchvision.models.detection.roi_heads import project_masks_on_boxes

    masks = np.asarray(masks)
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    if masks.ndim != 3 or masks.shape[0] != boxes.shape[0]:
        raise ValueError(f"masks must be (N={boxes.shape[0]}, H, W), got shape {masks.shape}")
    if not len(boxes):
        return np.zeros((0, mask_size, mask_size), np.float32)
    with torch.inference_mode():
        projected = project_masks_on_boxes(
            torch.from_numpy(np.ascontiguousarray(masks, dtype=np.float32)),
            torch.from_numpy(boxes),
            torch.arange(len(boxes)),
            mask_size,
        )
    return projected.numpy().astype(np.float32)


def from_supervision(
    detections: sv.Detections,
    *,
    image_size: tuple[int, int] | None = None,
) -> Instances:
    """Instances from ``sv.Detections`` (the mapping in the module docstring).

    Masks go to the box frame by :func:`masks_to_box_frame` (an approximation: see the
    module docstring). Keypoints come from ``data["keypoints"]`` (N, K, 3), as
    :func:`to_supervision` writes them; other ``data`` keys are not kept.

    Args:
        detections: N detections; ``class_id`` is required. ``mask`` may be a dense
            (N, H, W) array or supervision's ``CompactMask``.
        image_size: (H, W) of the image in pixels; None takes it from ``detections.mask``
            (required without masks).

    Returns:
        Instances with ``boxes`` = ``xyxy``, ``scores`` = ``confidence`` (1.0 where None, as
        for ground truth), ``labels`` = ``class_id``, ``track_ids`` = ``tracker_id`` (-1 where
        None), ``masks`` (N, 28, 28) float32 or None, ``keypoints`` or None.

    Raises:
        ValueError: no ``class_id``; no ``image_size`` and no masks; ``image_size`` differs
            from the masks' size; badly shaped keypoints.
    """
    n = len(detections)
    if detections.class_id is None:
        raise ValueError("detections.class_id is None: Instances need a class per detection")
    mask = detections.mask
    if mask is not None:
        mask = np.asarray(mask)  # a CompactMask gives its dense (N, H, W) bool array
        if image_size is not None and tuple(image_size) != tuple(mask.shape[1:]):
            raise ValueError(f"image_size {tuple(image_size)} differs from the masks' (H, W) {tuple(mask.shape[1:])}")
        image_size = (int(mask.shape[1]), int(mask.shape[2]))
    if image_size is None:
        raise ValueError("give image_size=(H, W): these detections have no masks to take it from")
    keypoints = detections.data.get(KEYPOINTS_DATA_FIELD)
    if keypoints is not None:
        keypoints = np.asarray(keypoints, dtype=np.float32)
        if keypoints.ndim != 3 or keypoints.shape[0] != n or keypoints.shape[2] != 3:
            raise ValueError(f"data[{KEYPOINTS_DATA_FIELD!r}] must be (N={n}, K, 3), got {keypoints.shape}")
    return Instances(
        image_size=image_size,
        boxes=detections.xyxy,
        scores=np.ones(n, np.float32) if detections.confidence is None else detections.confidence,
        labels=detections.class_id,
        masks=None if mask is None else masks_to_box_frame(mask, detections.xyxy),
        keypoints=keypoints,
        track_ids=None if detections.tracker_id is None else detections.tracker_id,
    )
