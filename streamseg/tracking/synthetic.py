"""Generated ground-truth box tracks with crossings, and noisy detections of them.

For testing and benchmarking trackers without a detector: :func:`generate_tracks`
moves boxes at constant velocity, bouncing off the image borders, so their paths
cross; :func:`noisy_detections` turns them into per-frame detections as a detector
would give them: jittered boxes, randomly dropped detections, occlusion gaps of
several consecutive frames, some low scores and a shuffled order. Both are
deterministic for a given seed (``numpy.random.default_rng``).

The issue's acceptance setting (box jitter 5% of the size, 10% of detections
dropped, occlusion gaps of up to 10 frames) is the default of
:func:`noisy_detections`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from streamseg.postprocess import box_iou
from streamseg.types import Instances

__all__ = ["SyntheticTracks", "generate_tracks", "noisy_detections", "crossing_events"]


@dataclasses.dataclass(frozen=True, eq=False)
class SyntheticTracks:
    """Ground-truth tracks: one row per object per frame.

    Attributes:
        image_size: (H, W) pixels.
        num_frames: frames in the sequence (0-based indices ``0 .. num_frames - 1``).
        frames: (R,) int64 0-based frame index of each row.
        ids: (R,) int64 object ID (>= 1) of each row.
        boxes: (R, 4) float32 xyxy pixels, inside the image.
        labels: (R,) int64 class label of each row.
    """

    image_size: tuple[int, int]
    num_frames: int
    frames: np.ndarray
    ids: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray

    @property
    def num_objects(self) -> int:
        """Number of distinct object IDs."""
        return int(np.unique(self.ids).size)

    def frame(self, index: int) -> Instances:
        """The ground truth of frame ``index`` as Instances (score 1, track_ids = object IDs)."""
        rows = self.frames == index
        return Instances(
            image_size=self.image_size,
            boxes=self.boxes[rows],
            scores=np.ones(int(rows.sum()), np.float32),
            labels=self.labels[rows],
            track_ids=self.ids[rows],
        )

    def write_mot(self, path: str | Path) -> None:
        """Write the ground truth as a MOT text file (every row counts: flag and class -1 columns).

        Uses :class:`streamseg.sinks.mot.MotWriter`; frames are written 1-based.
        """
        from streamseg.sinks.mot import MotWriter  # the sinks package imports PyAV; load it only here

        with MotWriter(path) as writer:
            for t in range(self.num_frames):
                writer.write(t, self.frame(t))


def generate_tracks(
    *,
    num_objects: int = 8,
    num_frames: int = 150,
    image_size: tuple[int, int] = (480, 640),
    width_range: tuple[float, float] = (30.0, 70.0),
    aspect_range: tuple[float, float] = (1.5, 2.5),
    speed_range: tuple[float, float] = (2.0, 6.0),
    labels: tuple[int, ...] = (1,),
    seed: int = 0,
) -> SyntheticTracks:
    """Boxes moving at constant velocity and bouncing off the image borders.

    Each object gets a random size (width in ``width_range``, height = width x aspect
    in ``aspect_range``), a random start inside the image, a random direction and a
    speed in ``speed_range`` pixels per frame; when its box would leave the image the
    velocity component is reflected (a bounce). With several objects in a small image
    their paths cross often (see :func:`crossing_events`). Every object is present
    in every frame.

    Args:
        num_objects: number of objects (IDs 1 .. num_objects).
        num_frames: frames to generate.
        image_size: (H, W) pixels.
        width_range: box width range, pixels.
        aspect_range: height / width range.
        speed_range: speed range, pixels per frame.
        labels: labels assigned to the objects in turn (object i gets
            ``labels[i % len(labels)]``).
        seed: random seed.

    Returns:
        The tracks, rows ordered by frame then ID.
    """
    rng = np.random.default_rng(seed)
    h_img, w_img = image_size
    w = rng.uniform(*width_range, size=num_objects)
    h = np.minimum(w * rng.uniform(*aspect_range, size=num_objects), 0.9 * h_img)
    x = rng.uniform(0, w_img - w)
    y = rng.uniform(0, h_img - h)
    angle = rng.uniform(0, 2 * np.pi, size=num_objects)
    speed = rng.uniform(*speed_range, size=num_objects)
    vx, vy = speed * np.cos(angle), speed * np.sin(angle)
    frames, ids, boxes = [], [], []
    for t in range(num_frames):
        frames.append(np.full(num_objects, t))
        ids.append(np.arange(1, num_objects + 1))
        boxes.append(np.stack([x, y, x + w, y + h], axis=1))
        x, y = x + vx, y + vy
        for pos, vel, size, limit in ((x, vx, w, w_img), (y, vy, h, h_img)):
            low, high = pos < 0, pos + size > limit
            pos[low] = -pos[low]
            pos[high] = 2 * (limit - size[high]) - pos[high]
            vel[low | high] *= -1
    label_arr = np.array([labels[i % len(labels)] for i in range(num_objects)], dtype=np.int64)
    return SyntheticTracks(
        image_size=(int(h_img), int(w_img)),
        num_frames=num_frames,
        frames=np.concatenate(frames).astype(np.int64),
        ids=np.concatenate(ids).astype(np.int64),
        boxes=np.concatenate(boxes).astype(np.float32),
        labels=np.tile(label_arr, num_frames),
    )


def crossing_events(tracks: SyntheticTracks, *, min_iou: float = 0.1) -> int:
    """Count crossings: times a pair of objects starts overlapping with IoU >= ``min_iou``.

    Args:
        tracks: ground truth.
        min_iou: IoU from which two boxes count as crossing.

    Returns:
        Number of (pair, start frame) events.
    """
    events = 0
    previous = np.zeros((0, 0), dtype=bool)
    for t in range(tracks.num_frames):
        rows = tracks.frames == t
        order = np.argsort(tracks.ids[rows])
        iou = box_iou(tracks.boxes[rows][order], tracks.boxes[rows][order])
        overlapping = np.triu(iou >= min_iou, k=1)
        if previous.shape == overlapping.shape:
            events += int((overlapping & ~previous).sum())
        else:
            events += int(overlapping.sum())
        previous = overlapping
    return events


def noisy_detections(
    tracks: SyntheticTracks,
    *,
    jitter: float = 0.05,
    drop_rate: float = 0.1,
    max_gap: int = 10,
    gaps_per_object: int = 1,
    low_score_rate: float = 0.1,
    seed: int = 0,
) -> list[Instances]:
    """Per-frame detections of the ground truth, degraded as a detector's.

    * each box edge moves by Gaussian noise of standard deviation ``jitter`` times the
      box width (x1, x2) or height (y1, y2);
    * each detection is dropped with probability ``drop_rate``;
    * each object is occluded (no detection) ``gaps_per_object`` times, for a random
      number of consecutive frames from 1 to ``max_gap``, at a random time;
    * a fraction ``low_score_rate`` of the remaining detections get a low score,
      uniform in [0.15, 0.5) (as a detector under partial occlusion); the others
      uniform in [0.6, 1.0);
    * the detections of a frame come in random order, with ``track_ids`` -1.

    Args:
        tracks: ground truth.
        jitter: edge noise std as a fraction of the box size.
        drop_rate: probability of dropping a detection, in [0, 1].
        max_gap: longest occlusion, frames (>= 1; 0 disables occlusions).
        gaps_per_object: occlusions per object.
        low_score_rate: fraction of detections with a low score.
        seed: random seed.

    Returns:
        ``tracks.num_frames`` Instances (masks and keypoints None).
    """
    rng = np.random.default_rng(seed)
    keep = rng.random(tracks.frames.size) >= drop_rate
    if max_gap > 0:
        for obj in np.unique(tracks.ids):
            for _ in range(gaps_per_object):
                length = int(rng.integers(1, max_gap + 1))
                start = int(rng.integers(0, max(tracks.num_frames - length, 1)))
                keep &= ~((tracks.ids == obj) & (tracks.frames >= start) & (tracks.frames < start + length))
    boxes = tracks.boxes.astype(np.float64)
    width, height = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    size = np.stack([width, height, width, height], axis=1)  # the scale of x1, y1, x2, y2
    noisy = boxes + rng.normal(0.0, jitter, size=boxes.shape) * size
    noisy[:, 2] = np.maximum(noisy[:, 2], noisy[:, 0] + 1.0)
    noisy[:, 3] = np.maximum(noisy[:, 3], noisy[:, 1] + 1.0)
    low = rng.random(tracks.frames.size) < low_score_rate
    scores = np.where(
        low, rng.uniform(0.15, 0.5, tracks.frames.size), rng.uniform(0.6, 1.0, tracks.frames.size)
    )
    out = []
    for t in range(tracks.num_frames):
        rows = np.flatnonzero((tracks.frames == t) & keep)
        rows = rows[rng.permutation(rows.size)]
        out.append(
            Instances(
                image_size=tracks.image_size,
                boxes=noisy[rows].astype(np.float32),
                scores=scores[rows].astype(np.float32),
                labels=tracks.labels[rows],
            )
        )
    return out
