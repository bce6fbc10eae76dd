"""Per-track state of :class:`~streamseg.tracking.ByteTracker`: life cycle, public view, record.

* :class:`TrackState`: a track's life cycle (tentative -> tracked <-> lost);
* :class:`TrackInfo`: the read-only view of a confirmed track that
  ``ByteTracker.tracks`` gives UIs and logs;
* :class:`Track`: the tracker's mutable record of one track, ByteTrack's ``STrack``
  (Zhang et al., ECCV 2022, ``yolox/tracker/byte_tracker.py``) without the Kalman
  state, which the tracker keeps batched in its own (T, 8) and (T, 8, 8) arrays;
* :func:`predicted_instances` and :func:`move_keypoints`: what tracks show on frames
  the model skipped (``ByteTracker.predict``).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Sequence

import numpy as np

from streamseg.tracking.smoothing import OneEuroFilter
from streamseg.types import Instances

__all__ = [
    "Track",
    "TrackInfo",
    "TrackState",
    "move_keypoints",
    "predicted_instances",
]


class TrackState(enum.Enum):
    """Life cycle of a track.

    ``TENTATIVE`` (born, not yet confirmed, no ID) -> ``TRACKED`` (confirmed and
    associated in its latest frame) <-> ``LOST`` (confirmed, not associated lately);
    removed tracks are forgotten.
    """

    TENTATIVE = "tentative"
    TRACKED = "tracked"
    LOST = "lost"


@dataclasses.dataclass(frozen=True)
class TrackInfo:
    """A read-only view of one confirmed track, for UIs and logs.

    Attributes:
        track_id: the track's ID (>= 1).
        label: class label of its latest detection.
        score: score of its latest detection.
        box: (4,) float32 xyxy pixels: the Kalman estimate at the latest frame
            (corrected if the track was associated there, predicted if it is lost).
        age: frames since the track was first seen (0 on its first frame).
        hits: number of detections associated with it.
        time_since_update: frames since its latest associated detection (0 if
            associated in the latest frame).
        state: ``TrackState.TRACKED`` or ``TrackState.LOST``.
    """

    track_id: int
    label: int
    score: float
    box: np.ndarray
    age: int
    hits: int
    time_since_update: int
    state: TrackState


def _row(values: np.ndarray | None, index: int) -> np.ndarray | None:
    """A copy of ``values[index]``, or None when the field is absent."""
    return None if values is None else values[index].copy()


@dataclasses.dataclass(eq=False)
class Track:
    """Mutable record of one track, owned by one :class:`~streamseg.tracking.ByteTracker`.

    The track's Kalman mean and covariance are rows of the tracker's arrays, at the
    track's position in the tracker's list. Not part of the public API: callers see
    :class:`TrackInfo`.

    Attributes:
        track_id: the ID (>= 1) once confirmed; -1 while tentative.
        label: class label of the latest associated detection.
        score: score of the latest associated detection.
        state: the life-cycle state.
        start_frame: tracker frame (``frame_count``) the track was born on.
        last_frame: tracker frame of the latest associated detection.
        hits: detections associated so far (1 at birth).
        box: (4,) float64 xyxy pixels of the latest associated detection.
        mask: (M, M) float32 box-frame mask of the latest detection, or None.
        keypoints: (K, 3) float32 keypoints of the latest output (smoothed when
            smoothing is on), or None.
        smoother: the track's keypoint One Euro filter, made on first use.
    """

    track_id: int
    label: int
    score: float
    state: TrackState
    start_frame: int
    last_frame: int
    hits: int
    box: np.ndarray
    mask: np.ndarray | None
    keypoints: np.ndarray | None
    smoother: OneEuroFilter | None = None

    @classmethod
    def start(cls, instances: Instances, index: int, box: np.ndarray, frame: int) -> Track:
        """A new tentative track (no ID, one hit) from detection ``index``.

        Args:
            instances: the frame's detections.
            index: the detection's row in ``instances``.
            box: (4,) float64 xyxy pixels, the detection's box.
            frame: the tracker's current frame.
        """
        return cls(
            track_id=-1,
            label=int(instances.labels[index]),
            score=float(instances.scores[index]),
            state=TrackState.TENTATIVE,
            start_frame=frame,
            last_frame=frame,
            hits=1,
            box=box,
            mask=_row(instances.masks, index),
            keypoints=_row(instances.keypoints, index),
        )

    def observe(self, instances: Instances, index: int, box: np.ndarray, frame: int) -> None:
        """Record that detection ``index`` was associated with this track on ``frame``.

        Counts a hit and takes the detection's label, score, box, mask and keypoints;
        the state is left to the tracker (confirmation needs its ID counter).

        Args:
            instances: the frame's detections.
            index: the detection's row in ``instances``.
            box: (4,) float64 xyxy pixels, the detection's box.
            frame: the tracker's current frame.
        """
        self.last_frame = frame
        self.hits += 1
        self.score = float(instances.scores[index])
        self.label = int(instances.labels[index])
        self.box = box
        self.mask = _row(instances.masks, index)
        self.keypoints = _row(instances.keypoints, index)

    def info(self, box: np.ndarray, frame: int) -> TrackInfo:
        """The read-only view of this track.

        Args:
            box: (4,) float32 xyxy pixels, the track's current Kalman estimate
                (made read-only here).
            frame: the tracker's current frame.
        """
        box.flags.writeable = False
        return TrackInfo(
            track_id=self.track_id,
            label=self.label,
            score=self.score,
            box=box,
            age=frame - self.start_frame,
            hits=self.hits,
            time_since_update=frame - self.last_frame,
            state=self.state,
        )


def predicted_instances(tracks: Sequence[Track], boxes: np.ndarray, image_size: tuple[int, int]) -> Instances:
    """Instances of tracks at predicted boxes, for a frame the model skipped.

    Args:
        tracks: T >= 1 confirmed tracks, in output order.
        boxes: (T, 4) xyxy pixels, the tracks' predicted boxes.
        image_size: (H, W) of the frame, pixels.

    Returns:
        T instances: ``boxes`` as float32; the scores and labels of the tracks' latest
        detections; their IDs; their latest box-frame masks (they move with the box),
        or None when no track has one (NaN, "no mask", for a track without); their latest
        keypoints moved from the detection's box to the predicted box
        (:func:`move_keypoints`), or None when no track has any (NaN rows for a track
        without, or with another keypoint count).
    """
    n = len(tracks)
    masks = None
    if any(t.mask is not None for t in tracks):
        size = next(t.mask for t in tracks if t.mask is not None).shape
        masks = np.stack([t.mask if t.mask is not None else np.full(size, np.nan, np.float32) for t in tracks])
    keypoints = None
    if any(t.keypoints is not None for t in tracks):
        k = next(t.keypoints for t in tracks if t.keypoints is not None).shape[0]
        keypoints = np.full((n, k, 3), np.nan, dtype=np.float32)
        for row, t in enumerate(tracks):
            if t.keypoints is not None and t.keypoints.shape[0] == k:
                keypoints[row] = move_keypoints(t.keypoints, t.box, boxes[row])
    return Instances(
        image_size=image_size,
        boxes=boxes.astype(np.float32),
        scores=np.array([t.score for t in tracks], dtype=np.float32),
        labels=np.array([t.label for t in tracks], dtype=np.int64),
        masks=masks,
        keypoints=keypoints,
        track_ids=np.array([t.track_id for t in tracks], dtype=np.int64),
    )


def move_keypoints(keypoints: np.ndarray, from_box: np.ndarray, to_box: np.ndarray) -> np.ndarray:
    """Map keypoints from one box to another by the affine map between the boxes.

    Args:
        keypoints: (K, 3) float32 (x, y, score), pixels; not modified.
        from_box: (4,) xyxy pixels the keypoints were detected in (a width or height
            below 1e-6 px counts as 1e-6).
        to_box: (4,) xyxy pixels to move them to.

    Returns:
        (K, 3) float32: x and y mapped, scores unchanged.
    """
    out = np.array(keypoints, dtype=np.float32, copy=True)
    fw = max(float(from_box[2] - from_box[0]), 1e-6)
    fh = max(float(from_box[3] - from_box[1]), 1e-6)
    sx = (float(to_box[2]) - float(to_box[0])) / fw
    sy = (float(to_box[3]) - float(to_box[1])) / fh
    out[:, 0] = (out[:, 0] - from_box[0]) * sx + to_box[0]
    out[:, 1] = (out[:, 1] - from_box[1]) * sy + to_box[1]
    return out
