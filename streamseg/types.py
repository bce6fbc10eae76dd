"""Core types: one frame, the instances found in it, and the result of one frame.

These three types are shared by every backend, the tracker, the renderer, the
sinks and the UI, so none of those needs to know which backend ran.

All arrays are numpy and read-only. A type never mutates the arrays it is given:
it keeps read-only copies (or the caller's array when it is already read-only
and of the right dtype). Indexing returns a new object.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np

__all__ = ["Frame", "Instances", "FrameResult", "NUM_KEYPOINTS", "MASK_SIZE"]

#: Number of COCO person keypoints (Lin et al. 2014, COCO keypoint task).
NUM_KEYPOINTS = 17
#: Side of the per-instance mask in the box frame, as torchvision's MaskRCNNPredictor (28x28).
MASK_SIZE = 28


def _frozen(array: Any, dtype: Any, name: str, ndim: int | None = None) -> np.ndarray:
    """Return a read-only array of ``dtype``; copies unless already read-only and of that dtype."""
    arr = np.asarray(array)
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {arr.shape}")
    if arr.dtype != dtype or arr.flags.writeable or not arr.flags.c_contiguous:
        arr = np.array(arr, dtype=dtype, order="C", copy=True)
    arr.flags.writeable = False
    return arr


@dataclasses.dataclass(frozen=True, eq=False)
class Frame:
    """One decoded video frame.

    Attributes:
        source_id: name of the source that produced the frame (a file path, a
            camera or stream name; never contains URL credentials).
        index: 0-based index of the frame in its source, counting every decoded frame.
        pts_s: presentation time in seconds, from the container's timestamps
            (``frame.pts * time_base``, relative to the stream start); safe for
            variable frame rate. For image folders, ``index / fps``.
        t_capture: ``time.monotonic()`` when the frame left the decoder (seconds).
        image: (H, W, 3) uint8 RGB, read-only. Frames of one source may differ in
            size (a folder of photos): each frame carries its own.
        file_name: the image's file name (``000000000139.jpg``, no folder) for a frame
            read from an image folder, the name COCO's ``images[].file_name`` uses;
            None for video files and live streams.

    Raises:
        ValueError: if ``image`` is not (H, W, 3).
    """

    source_id: str
    index: int
    pts_s: float
    t_capture: float
    image: np.ndarray
    file_name: str | None = None

    def __post_init__(self) -> None:
        image = _frozen(self.image, np.uint8, "image", ndim=3)
        if image.shape[2] != 3:
            raise ValueError(f"image must be (H, W, 3) RGB, got shape {image.shape}")
        object.__setattr__(self, "image", image)

    @property
    def height(self) -> int:
        """Image height in pixels."""
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        """Image width in pixels."""
        return int(self.image.shape[1])


@dataclasses.dataclass(frozen=True, eq=False)
class Instances:
    """Instances detected in one image, as numpy arrays with documented shapes.

    N is the number of instances; M is the mask side (28 for torchvision's Mask R-CNN).

    Attributes:
        image_size: (H, W) of the image the coordinates refer to, in pixels.
        boxes: (N, 4) float32, xyxy in image pixels (x1, y1, x2, y2; x2 and y2 exclusive
            edges in continuous coordinates, as torchvision).
        scores: (N,) float32 detection scores in [0, 1].
        labels: (N,) int64 class indices into the model's category list (for COCO
            models these are the COCO category ids, 1 = person).
        masks: (N, M, M) float32 mask probabilities in the box frame (the box is
            split into M x M cells), or None for a model without a mask head. A mask of
            NaN means "no mask for this instance" (a person found only by the keypoint
            model, :func:`streamseg.postprocess.merge_keypoints`); pasted, it is empty, and
            outputs leave its ``segmentation`` out (:attr:`mask_present`). Use
            :func:`streamseg.masks.paste_masks` for full-size binary masks.
        keypoints: (N, 17, 3) float32 (x, y, score) in image pixels, or None for a
            model without keypoints. A row of NaN means "no keypoints for this
            instance" (for example a car, when keypoints come from a second model).
            The score is the keypoint heatmap logit at the peak (torchvision's
            ``keypoints_scores``).
        track_ids: (N,) int64 track IDs; -1 before tracking.
        mask_crops: derived from ``masks`` and ``boxes``, or None until asked for: each
            instance's mask pasted into its box's region of the image and binarised at 0.5,
            as N pairs ``((y0, y1, x0, x1), (y1 - y0, x1 - x0) uint8 crop)``. A GPU backend
            fills it on the device; otherwise :func:`streamseg.masks.mask_crops`
            computes it once, on first use, and keeps it here for the frame's other
            consumers (drawing, the JSONL). Kept by indexing and by :meth:`replace` of other
            fields; dropped when ``boxes``, ``masks`` or ``image_size`` change.

    Raises:
        ValueError: if array shapes disagree.
    """

    image_size: tuple[int, int]
    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    masks: np.ndarray | None = None
    keypoints: np.ndarray | None = None
    track_ids: np.ndarray | None = None
    mask_crops: tuple[tuple[tuple[int, int, int, int], np.ndarray], ...] | None = dataclasses.field(
        default=None, compare=False, repr=False
    )

    def __post_init__(self) -> None:
        h, w = (int(v) for v in self.image_size)
        object.__setattr__(self, "image_size", (h, w))
        boxes = _frozen(np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4), np.float32, "boxes", 2)
        n = boxes.shape[0]
        scores = _frozen(np.asarray(self.scores).reshape(-1), np.float32, "scores", 1)
        labels = _frozen(np.asarray(self.labels).reshape(-1), np.int64, "labels", 1)
        if scores.shape[0] != n or labels.shape[0] != n:
            raise ValueError(f"boxes ({n}), scores ({scores.shape[0]}) and labels ({labels.shape[0]}) differ in length")
        object.__setattr__(self, "boxes", boxes)
        object.__setattr__(self, "scores", scores)
        object.__setattr__(self, "labels", labels)
        if self.masks is not None:
            masks = np.asarray(self.masks)
            if n == 0 and masks.size == 0:
                masks = masks.reshape(0, *(masks.shape[1:] if masks.ndim == 3 else (MASK_SIZE, MASK_SIZE)))
            masks = _frozen(masks, np.float32, "masks", 3)
            if masks.shape[0] != n or masks.shape[1] != masks.shape[2]:
                raise ValueError(f"masks must be (N={n}, M, M), got {masks.shape}")
            object.__setattr__(self, "masks", masks)
        if self.keypoints is not None:
            kps = np.asarray(self.keypoints)
            if n == 0 and kps.size == 0:
                kps = kps.reshape(0, NUM_KEYPOINTS, 3)
            kps = _frozen(kps, np.float32, "keypoints", 3)
            if kps.shape[0] != n or kps.shape[2] != 3:
                raise ValueError(f"keypoints must be (N={n}, K, 3), got {kps.shape}")
            object.__setattr__(self, "keypoints", kps)
        if self.track_ids is None:
            track_ids = np.full(n, -1, dtype=np.int64)
        else:
            track_ids = np.asarray(self.track_ids).reshape(-1)
        track_ids = _frozen(track_ids, np.int64, "track_ids", 1)
        if track_ids.shape[0] != n:
            raise ValueError(f"track_ids must be (N={n},), got {track_ids.shape}")
        object.__setattr__(self, "track_ids", track_ids)
        if self.mask_crops is not None:
            crops = tuple(self.mask_crops)
            if len(crops) != n or self.masks is None:
                raise ValueError(f"mask_crops must hold one (region, crop) per instance ({n}) of a mask model")
            object.__setattr__(self, "mask_crops", crops)

    @classmethod
    def empty(
        cls, image_size: tuple[int, int], *, with_masks: bool = True, with_keypoints: bool = False
    ) -> Instances:
        """Return N = 0 instances for an image of ``image_size`` (H, W)."""
        return cls(
            image_size=image_size,
            boxes=np.zeros((0, 4), np.float32),
            scores=np.zeros((0,), np.float32),
            labels=np.zeros((0,), np.int64),
            masks=np.zeros((0, MASK_SIZE, MASK_SIZE), np.float32) if with_masks else None,
            keypoints=np.zeros((0, NUM_KEYPOINTS, 3), np.float32) if with_keypoints else None,
        )

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    def __getitem__(self, item: int | slice | np.ndarray | list[int]) -> Instances:
        """Select instances by an int, a slice, an int index array or a boolean mask of length N.

        Returns:
            A new Instances (an int gives N = 1).
        """
        if isinstance(item, (int, np.integer)):
            n = len(self)
            if not -n <= int(item) < n:
                raise IndexError(f"instance index {item} out of range for {n} instances")
            item = [int(item)]
        if isinstance(item, (list, tuple)):
            item = np.asarray(item, dtype=np.int64).reshape(-1)
        if isinstance(item, np.ndarray) and item.dtype == bool and item.shape != (len(self),):
            raise IndexError(f"boolean index of shape {item.shape} does not match {len(self)} instances")

        def pick(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[item]

        crops = None
        if self.mask_crops is not None:
            crops = tuple(self.mask_crops[k] for k in np.arange(len(self))[item].reshape(-1).tolist())

        return Instances(
            image_size=self.image_size,
            boxes=self.boxes[item],
            scores=self.scores[item],
            labels=self.labels[item],
            masks=pick(self.masks),
            keypoints=pick(self.keypoints),
            track_ids=self.track_ids[item],
            mask_crops=crops,
        )

    def replace(self, **changes: Any) -> Instances:
        """Return a copy with the given fields replaced (``dataclasses.replace``).

        ``mask_crops`` is kept unless ``boxes``, ``masks`` or ``image_size`` change (it derives
        from them) or it is given.
        """
        if "mask_crops" not in changes and changes.keys() & {"boxes", "masks", "image_size"}:
            changes["mask_crops"] = None
        return dataclasses.replace(self, **changes)

    def to_supervision(self, categories: Sequence[str] | None = None) -> Any:
        """These instances as ``supervision.Detections`` (needs ``streamseg[supervision]``).

        ``xyxy``, ``confidence``, ``class_id``, ``tracker_id`` (None when never tracked),
        ``mask`` (N, H, W) bool full-image masks and ``data["keypoints"]`` (N, 17, 3); with
        ``categories`` also ``data["class_name"]``. See :func:`streamseg.interop.to_supervision`.

        Raises:
            ImportError: supervision is not installed.
        """
        from streamseg.interop import to_supervision

        return to_supervision(self, categories)

    def to_supervision_keypoints(self) -> Any:
        """The keypoints as ``supervision.KeyPoints`` (xy, keypoint_confidence = heatmap logits,
        visible False on NaN rows). See :func:`streamseg.interop.to_supervision_keypoints`.

        Raises:
            ImportError: supervision is not installed.
            ValueError: no keypoints.
        """
        from streamseg.interop import to_supervision_keypoints

        return to_supervision_keypoints(self)

    @classmethod
    def from_supervision(cls, detections: Any, *, image_size: tuple[int, int] | None = None) -> Instances:
        """Instances from ``supervision.Detections``; full-image masks become (N, 28, 28) box-frame
        probabilities (torchvision's ``project_masks_on_boxes``, an approximation at the 28 x 28
        cell scale). See :func:`streamseg.interop.from_supervision`.

        Args:
            detections: ``sv.Detections`` with ``class_id``.
            image_size: (H, W) pixels; None takes it from ``detections.mask`` (required without masks).

        Raises:
            ValueError: no ``class_id``, or no image size to be had.
        """
        from streamseg.interop import from_supervision

        return from_supervision(detections, image_size=image_size)

    @property
    def has_masks(self) -> bool:
        """Whether the instances carry masks."""
        return self.masks is not None

    @property
    def has_keypoints(self) -> bool:
        """Whether the instances carry keypoints (some rows may still be NaN)."""
        return self.keypoints is not None

    @property
    def mask_present(self) -> np.ndarray:
        """(N,) bool: the instance has a mask (``masks`` is not None and its mask is not NaN)."""
        if self.masks is None:
            return np.zeros(len(self), dtype=bool)
        return ~np.isnan(self.masks).any(axis=(1, 2))

    @property
    def keypoints_present(self) -> np.ndarray:
        """(N,) bool: the instance has keypoints (``keypoints`` is not None and its row holds no NaN)."""
        if self.keypoints is None:
            return np.zeros(len(self), dtype=bool)
        return ~np.isnan(self.keypoints).any(axis=(1, 2))

    def to_coco(self, image_id: int, *, categories: Mapping[int, int] | None = None) -> list[dict[str, Any]]:
        """These instances as COCO result dicts, one per instance (:func:`streamseg.coco_results.coco_results`).

        The COCO results format (https://cocodataset.org/#format-results) that
        ``pycocotools.coco.COCO.loadRes`` reads; the JSONL and ``streamseg run --coco-json``
        write the same fields with the same code.

        Args:
            image_id: the image's COCO id (``images[].id`` of the ground truth).
            categories: label -> COCO category id, for a model whose labels are not COCO
                ids; None (default) writes the label itself, which is the COCO category id
                for torchvision's COCO models (their 91 labels are indexed by COCO id) and
                the demo model.

        Returns:
            N dicts ``{"image_id", "category_id", "score" (4 decimals), "bbox" ([x, y, w, h]
            pixels, 0.001 px), "segmentation" (compressed RLE ``{"size": [H, W], "counts":
            str}``, only for an instance with a mask), "keypoints" (17 x (x, y, 2), only for
            an instance with keypoints)}``.

        Raises:
            ValueError: a label has no entry in ``categories``.
        """
        from streamseg.coco_results import coco_results  # pycocotools, only when asked

        return coco_results(self, image_id, categories=categories)

    def __repr__(self) -> str:
        parts = [f"n={len(self)}", f"image_size={self.image_size}"]
        if self.masks is not None:
            parts.append(f"masks={self.masks.shape[1]}x{self.masks.shape[2]}")
        if self.keypoints is not None:
            parts.append("keypoints")
        return f"Instances({', '.join(parts)})"


@dataclasses.dataclass(frozen=True, eq=False)
class FrameResult:
    """What the pipeline produced for one frame.

    Attributes:
        frame: the input frame.
        instances: the instances found in it (coordinates in ``frame`` pixels).
        timings_ms: time spent per stage on this frame, in milliseconds, keyed by
            stage name (``decode``, ``preprocess``, ``model``, ``postprocess``,
            ``track``, ``render``, ``encode``). Read-only mapping.
    """

    frame: Frame
    instances: Instances
    timings_ms: Mapping[str, float] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "timings_ms", MappingProxyType(dict(self.timings_ms)))

    def with_timings(self, **timings_ms: float) -> FrameResult:
        """Return a new FrameResult with ``timings_ms`` extended by the given stages (ms)."""
        merged = dict(self.timings_ms)
        merged.update(timings_ms)
        return FrameResult(frame=self.frame, instances=self.instances, timings_ms=merged)
