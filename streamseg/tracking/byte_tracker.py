"""ByteTrack-style multi-object tracking of :class:`~streamseg.types.Instances`.

The association follows Zhang et al., "ByteTrack: Multi-Object Tracking by Associating
Every Detection Box" (ECCV 2022), section 3 and Algorithm 1, and its reference code
``yolox/tracker/byte_tracker.py`` (``BYTETracker.update``) and ``matching.py``:

1. every track's Kalman state (:mod:`streamseg.tracking.kalman`) is predicted to this
   frame (``period`` steps when the model skipped frames);
2. first association: high-score detections (``score > high_thresh``) against every
   confirmed track, tracked or lost, by IoU cost ``1 - IoU``; a pair is accepted only
   when its IoU exceeds ``match_iou_thresh`` (ByteTrack's ``match_thresh = 0.8`` on the
   cost);
3. second association ("BYTE"): low-score detections (``low_thresh < score <=
   high_thresh``) against the confirmed tracks still unmatched that were tracked in
   the previous frame (``second_match_iou_thresh``, ByteTrack's cost 0.5); tracked
   tracks still unmatched become lost;
4. tentative tracks (born in the previous frame) against the high-score detections
   left over (``unconfirmed_match_iou_thresh``, ByteTrack's cost 0.7); unmatched
   tentative tracks are deleted;
5. high-score detections still left with ``score >= new_track_thresh`` start new
   tentative tracks (ByteTrack's ``det_thresh = track_thresh + 0.1``);
6. lost tracks not seen for more than ``max_lost_frames`` frames are removed
   (ByteTrack's ``max_time_lost``).

Each step solves a linear assignment with :func:`scipy.optimize.linear_sum_assignment`
in the form of ByteTrack's ``lap.lapjv(cost, extend_cost=True, cost_limit=thresh)``:
a pair is matched only if that lowers the total cost against leaving both unmatched.

Differences from the reference, each deliberate:

* IDs: the reference numbers a track when it is born (a global counter shared by
  all trackers, so tentative tracks that die leave gaps). Here each tracker has its
  own counter, starting at 1, and a track gets its ID when it is confirmed, so IDs
  are dense and two streams never share a counter.
* Confirmation: ``min_hits`` consecutive associated frames (ByteTrack: 2). As in the
  reference (``STrack.activate``: ``if frame_id == 1``), tracks born on the tracker's
  first frame are confirmed at once: no earlier frame could have confirmed them.
* Tentative tracks are predicted too (the reference leaves them out of
  ``multi_predict``), so every track's filter advances with the frame count.
* Classes are tracked separately (``per_class``): pairs of different labels are never
  matched. ByteTrack itself is class-agnostic (``per_class=False``).
* Optional mask IoU (``use_mask_iou``) instead of box IoU, see :func:`mask_iou`.
* Score fusion (``fuse_score``, the reference's ``matching.fuse_score`` used on
  MOT17) is off by default.
* The reference's ``remove_duplicate_stracks`` step is left out.

Bad input, each documented and tested: an empty frame only ages the tracks; a
detection with a zero or negative area, or a NaN/inf box or score, is invalid: it is
never matched, never starts a track and gets track ID -1.

This module holds :class:`TrackerConfig` and :class:`ByteTracker`, the algorithm above.
The per-track record and its public view (:class:`TrackState`, :class:`TrackInfo`) are in
:mod:`streamseg.tracking.track`; validity, IoU and matching (:func:`valid_detections`,
:func:`mask_iou`, :func:`linear_assignment`) in :mod:`streamseg.tracking.association`.
Both are importable from here too, as before.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import numpy as np

from streamseg.errors import ConfigError
from streamseg.tracking import kalman
from streamseg.tracking.association import box_iou, linear_assignment, mask_iou, valid_detections
from streamseg.tracking.smoothing import OneEuroFilter
from streamseg.tracking.track import Track, TrackInfo, TrackState, predicted_instances
from streamseg.types import Instances

__all__ = [
    "TrackerConfig",
    "TrackState",
    "TrackInfo",
    "ByteTracker",
    "linear_assignment",
    "mask_iou",
    "valid_detections",
]


@dataclasses.dataclass(frozen=True)
class TrackerConfig:
    """Settings of :class:`ByteTracker`. Defaults are ByteTrack's (MOT17) values.

    Attributes:
        high_thresh: detections with ``score > high_thresh`` take part in the first
            association (ByteTrack ``track_thresh``, 0.5).
        low_thresh: detections with ``low_thresh < score <= high_thresh`` take part in
            the second association; lower ones are ignored (ByteTrack: 0.1).
        new_track_thresh: minimum score of a detection that starts a track
            (ByteTrack ``det_thresh = track_thresh + 0.1``).
        match_iou_thresh: minimum IoU (exclusive) of a first-association pair
            (ByteTrack ``match_thresh = 0.8`` is the cost ``1 - IoU``).
        second_match_iou_thresh: minimum IoU of a second-association pair (cost 0.5).
        unconfirmed_match_iou_thresh: minimum IoU of a tentative track's pair (cost 0.7).
        max_lost_frames: a lost track is removed once it has not been associated for
            more than this many frames (ByteTrack ``max_time_lost = buffer``, 30
            frames). Counted in video frames: with ``period=k`` one update counts k.
        min_hits: consecutive associated model frames that confirm a track (>= 1).
            ByteTrack confirms on the second, so 2.
        use_mask_iou: use the IoU of the binary masks (probability > ``mask_threshold``)
            as similarity where both the track and the detection have a mask;
            box IoU elsewhere.
        mask_threshold: mask probability above which a pixel is inside (0.5, as
            torchvision's ``paste_masks_in_image`` users do).
        per_class: never match a track with a detection of another label.
        fuse_score: multiply the IoU by the detection score in the first and the
            tentative association (ByteTrack ``matching.fuse_score``, used on MOT17).
        smooth_keypoints: smooth the keypoints of tracked instances per track with a
            One Euro filter (:mod:`streamseg.tracking.smoothing`).
        keypoint_min_cutoff_hz: One Euro minimum cutoff, Hz.
        keypoint_beta: One Euro speed coefficient, 1 / pixel.
        keypoint_d_cutoff_hz: One Euro derivative cutoff, Hz.
        fps: frame rate used to time the keypoint smoother when ``update`` is given no
            timestamp, frames per second.

    Raises:
        ConfigError: on a value out of range.
    """

    high_thresh: float = 0.5
    low_thresh: float = 0.1
    new_track_thresh: float = 0.6
    match_iou_thresh: float = 0.2
    second_match_iou_thresh: float = 0.5
    unconfirmed_match_iou_thresh: float = 0.3
    max_lost_frames: int = 30
    min_hits: int = 2
    use_mask_iou: bool = False
    mask_threshold: float = 0.5
    per_class: bool = True
    fuse_score: bool = False
    smooth_keypoints: bool = False
    keypoint_min_cutoff_hz: float = 1.0
    keypoint_beta: float = 0.01
    keypoint_d_cutoff_hz: float = 1.0
    fps: float = 30.0

    def __post_init__(self) -> None:
        for name in (
            "high_thresh",
            "low_thresh",
            "new_track_thresh",
            "match_iou_thresh",
            "second_match_iou_thresh",
            "unconfirmed_match_iou_thresh",
            "mask_threshold",
        ):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
                raise ConfigError(f"tracker {name} must be in [0, 1], got {value!r}")
        if self.low_thresh > self.high_thresh:
            raise ConfigError(
                f"tracker low_thresh ({self.low_thresh}) must not exceed high_thresh ({self.high_thresh})"
            )
        if not isinstance(self.max_lost_frames, int) or self.max_lost_frames < 0:
            raise ConfigError(f"tracker max_lost_frames must be an int >= 0, got {self.max_lost_frames!r}")
        if not isinstance(self.min_hits, int) or self.min_hits < 1:
            raise ConfigError(f"tracker min_hits must be an int >= 1, got {self.min_hits!r}")
        for name in ("keypoint_min_cutoff_hz", "keypoint_d_cutoff_hz", "fps"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ConfigError(f"tracker {name} must be > 0, got {value!r}")
        if not (isinstance(self.keypoint_beta, (int, float)) and self.keypoint_beta >= 0):
            raise ConfigError(f"tracker keypoint_beta must be >= 0, got {self.keypoint_beta!r}")


class ByteTracker:
    """ByteTrack-style tracker with its own ID counter (see the module docstring).

    Construct with a :class:`TrackerConfig`, keyword overrides, or both::

        tracker = ByteTracker(high_thresh=0.6, use_mask_iou=True)
        for frame in frames:
            tracked = tracker.update(instances)        # new Instances, track_ids filled

    With the model run on every k-th frame only::

        tracked = tracker.update(instances, period=k)  # on frames the model ran on
        boxes = tracker.predict(steps=j)               # j = 1 .. k-1 frames after it

    Output of :meth:`update`: the input's instances in the input's order with every
    field unchanged (boxes, scores, labels, masks, keypoints; keypoints smoothed only
    when ``smooth_keypoints`` is on) and ``track_ids`` filled: a confirmed track's ID
    (>= 1) for each detection associated with one, -1 for the rest: detections of
    tentative tracks (not yet confirmed: their ID appears from the frame they are
    confirmed on), low-score detections left unmatched, high-score ones that started
    nothing, and invalid detections (see :func:`valid_detections`).

    A tracker is not thread-safe; use one per stream.

    Args:
        config: settings; defaults to ``TrackerConfig()``.
        **overrides: fields of :class:`TrackerConfig` to replace.

    Attributes:
        id_source: None (IDs count 1, 2, ... from each :meth:`reset`), or a callable that
            returns the next unused ID each time a track is confirmed: a stream that
            resumes after its process was restarted gives its tracker one that hands out
            IDs its earlier life never used (:mod:`streamseg.monitor.cluster`).

    Raises:
        ConfigError: on an unknown or out-of-range setting.
    """

    def __init__(self, config: TrackerConfig | None = None, **overrides: object) -> None:
        base = config if config is not None else TrackerConfig()
        unknown = set(overrides) - {f.name for f in dataclasses.fields(TrackerConfig)}
        if unknown:
            raise ConfigError(f"unknown tracker setting(s): {', '.join(sorted(unknown))}")
        self.config: TrackerConfig = base
        self.id_source: Callable[[], int] | None = None
        if overrides:
            self.config = dataclasses.replace(base, **overrides)  # type: ignore[arg-type]
        self.reset()

    # -- public state --------------------------------------------------------------------

    @property
    def frame_count(self) -> int:
        """Frames seen so far, counting skipped ones (the sum of the ``period`` values)."""
        return self._frame

    @property
    def tracks(self) -> tuple[TrackInfo, ...]:
        """The confirmed tracks, tracked or lost (not yet removed), by increasing ID."""
        infos = [self._info(i) for i, t in enumerate(self._tracks) if t.track_id >= 0]
        return tuple(sorted(infos, key=lambda info: info.track_id))

    def reset(self) -> None:
        """Forget every track and restart the ID counter at 1 (as a new tracker)."""
        self._tracks: list[Track] = []
        self._mean = np.zeros((0, kalman.STATE_DIM))  # (T, 8) Kalman means, row i = self._tracks[i]
        self._cov = np.zeros((0, kalman.STATE_DIM, kalman.STATE_DIM))  # (T, 8, 8)
        self._next_id = 1
        self._frame = 0
        self._num_updates = 0
        self._image_size: tuple[int, int] = (0, 0)

    # -- the main entry point ------------------------------------------------------------

    def update(self, instances: Instances, period: int = 1, *, timestamp_s: float | None = None) -> Instances:
        """Associate one frame's detections with the tracks.

        Args:
            instances: the N detections of the frame (not modified).
            period: frames since the previous call: 1 when the model runs on every
                frame, k when it ran on this frame after skipping k - 1. The Kalman
                filters predict ``period`` steps and lost tracks age ``period`` frames.
                Ignored on the first call.
            timestamp_s: the frame's time in seconds (for example ``Frame.pts_s``), used
                only by keypoint smoothing; default ``frame_count / fps``.

        Returns:
            A new Instances: the input's fields in the input's order, ``track_ids``
            (N,) int64 filled (see the class docstring).

        Raises:
            ValueError: if ``period`` is not an int >= 1.
        """
        if not isinstance(period, (int, np.integer)) or isinstance(period, bool) or period < 1:
            raise ValueError(f"period must be an int >= 1, got {period!r}")
        cfg = self.config
        first_frame = self._num_updates == 0
        self._frame += 1 if first_frame else int(period)
        self._num_updates += 1
        self._image_size = instances.image_size
        if not first_frame:
            self._predict_tracks(int(period))

        valid = valid_detections(instances)
        scores = instances.scores
        with np.errstate(invalid="ignore"):
            high = np.flatnonzero(valid & (scores > cfg.high_thresh))
            low = np.flatnonzero(valid & (scores > cfg.low_thresh) & (scores <= cfg.high_thresh))
        # Similarity of every track to every usable detection: columns [high..., low...].
        similarity = self._similarity(instances, np.concatenate([high, low]))
        high_cols = np.arange(high.size)
        low_cols = np.arange(high.size, high.size + low.size)
        tracks = self._tracks
        is_confirmed = np.array([t.track_id >= 0 for t in tracks], dtype=bool)
        confirmed, tentative = np.flatnonzero(is_confirmed), np.flatnonzero(~is_confirmed)
        det_for_track: dict[int, int] = {}  # track index -> detection index

        # 1. High-score detections vs every confirmed track (tracked or lost).
        sim = similarity[np.ix_(confirmed, high_cols)]
        if cfg.fuse_score:
            sim = sim * scores[high][None, :]
        rows, cols = linear_assignment(1.0 - sim, 1.0 - cfg.match_iou_thresh)
        det_for_track.update(zip(confirmed[rows].tolist(), high[cols].tolist(), strict=True))
        left_cols = np.delete(high_cols, cols)
        unmatched = np.delete(confirmed, rows)

        # 2. Low-score detections vs the unmatched tracks that were tracked last frame.
        r_tracked = np.array([i for i in unmatched if tracks[i].state is TrackState.TRACKED], dtype=np.int64)
        sim = similarity[np.ix_(r_tracked, low_cols)]
        rows, cols = linear_assignment(1.0 - sim, 1.0 - cfg.second_match_iou_thresh)
        det_for_track.update(zip(r_tracked[rows].tolist(), low[cols].tolist(), strict=True))
        for i in np.delete(r_tracked, rows):
            tracks[i].state = TrackState.LOST

        # 3. Tentative tracks vs the high-score detections left over.
        sim = similarity[np.ix_(tentative, left_cols)]
        if cfg.fuse_score:
            sim = sim * scores[high[left_cols]][None, :]
        rows, cols = linear_assignment(1.0 - sim, 1.0 - cfg.unconfirmed_match_iou_thresh)
        det_for_track.update(zip(tentative[rows].tolist(), high[left_cols[cols]].tolist(), strict=True))
        dead = np.delete(tentative, rows)
        left_high = high[np.delete(left_cols, cols)]

        self._correct(instances, det_for_track)
        assigned = [(tracks[i], d) for i, d in det_for_track.items()]

        # 4. Remove dead tentative tracks and lost tracks too old.
        keep = np.ones(len(tracks), dtype=bool)
        keep[dead] = False
        for i, t in enumerate(tracks):
            if t.state is TrackState.LOST and self._frame - t.last_frame > cfg.max_lost_frames:
                keep[i] = False
        if not keep.all():
            self._tracks = [t for t, k in zip(tracks, keep, strict=True) if k]
            self._mean, self._cov = self._mean[keep], self._cov[keep]

        # 5. New tracks from confident detections left over.
        births = [int(d) for d in left_high if scores[d] >= cfg.new_track_thresh]
        born = self._start_tracks(instances, births, confirm=first_frame or cfg.min_hits <= 1)
        assigned += list(zip(born, births, strict=True))
        return self._output(instances, assigned, timestamp_s)

    # -- prediction for frames the model skipped ---------------------------------------------

    def predict(self, steps: int = 1) -> Instances:
        """Predicted instances of the tracked confirmed tracks, ``steps`` frames after the latest update.

        Does not change the tracker: on the j-th frame after an update (the model
        skipped it) call ``predict(steps=j)``; the next :meth:`update` takes
        ``period`` = frames since the previous update. Lost tracks are not included
        (as they are not drawn on frames with detections either).

        Returns an Instances for the image size of the latest update, one row per
        track that was associated at the latest update, by increasing ID:

        * ``boxes``: the Kalman prediction ``steps`` frames ahead, xyxy float32;
        * ``scores``, ``labels``: those of the track's latest detection;
        * ``track_ids``: the track IDs;
        * ``masks``: the latest detection's box-frame mask (it moves with the
          predicted box), or None when no track has one (zeros for a track without);
        * ``keypoints``: the latest (smoothed, when on) keypoints moved with the box:
          mapped from the latest detection's box to the predicted box by the affine
          map between the two boxes; None when no track has keypoints (NaN rows for a
          track without).

        Args:
            steps: frames ahead of the latest update, >= 0 (0 gives the filtered boxes).

        Raises:
            ValueError: if ``steps`` is not an int >= 0.
        """
        if not isinstance(steps, (int, np.integer)) or isinstance(steps, bool) or steps < 0:
            raise ValueError(f"steps must be an int >= 0, got {steps!r}")
        rows = [i for i, t in enumerate(self._tracks) if t.track_id >= 0 and t.state is TrackState.TRACKED]
        rows.sort(key=lambda i: self._tracks[i].track_id)
        live = [self._tracks[i] for i in rows]
        if not live:
            return Instances.empty(self._image_size, with_masks=False)
        mean, _ = kalman.predict(self._mean[rows], self._cov[rows], int(steps))
        return predicted_instances(live, kalman.xyah_to_xyxy(mean), self._image_size)

    # -- internals -----------------------------------------------------------------------

    def _info(self, index: int) -> TrackInfo:
        box = kalman.xyah_to_xyxy(self._mean[index : index + 1])[0].astype(np.float32)
        return self._tracks[index].info(box, self._frame)

    def _predict_tracks(self, steps: int) -> None:
        """Advance every track's Kalman state by ``steps`` frames (one batched call).

        As ByteTrack's ``STrack.multi_predict``, a track not tracked in the previous frame
        has its height velocity set to 0 first, so a lost box does not keep growing or
        shrinking.
        """
        if not self._tracks:
            return
        mean = self._mean.copy()
        not_tracked = np.array([t.state is not TrackState.TRACKED for t in self._tracks], dtype=bool)
        mean[not_tracked, 7] = 0.0
        self._mean, self._cov = kalman.predict(mean, self._cov, steps)

    def _similarity(self, instances: Instances, dets: np.ndarray) -> np.ndarray:
        """(num_tracks, len(dets)) similarity of each track's predicted box to each detection.

        Box IoU, or mask IoU where ``use_mask_iou`` is on and both sides have a mask;
        0 across labels when ``per_class``.
        """
        tracks = self._tracks
        if not tracks or dets.size == 0:
            return np.zeros((len(tracks), dets.size), dtype=np.float64)
        track_boxes = kalman.xyah_to_xyxy(self._mean)
        det_boxes = instances.boxes[dets]
        sim = box_iou(track_boxes, det_boxes)
        if self.config.per_class:
            track_labels = np.fromiter((t.label for t in tracks), dtype=np.int64, count=len(tracks))
            sim *= track_labels[:, None] == instances.labels[dets][None, :]
        if self.config.use_mask_iou and instances.masks is not None:
            rows = np.array([i for i, t in enumerate(tracks) if t.mask is not None], dtype=np.int64)
            if rows.size:
                sim[rows] = mask_iou(
                    np.stack([tracks[i].mask for i in rows]),
                    track_boxes[rows],
                    instances.masks[dets],
                    det_boxes,
                    instances.image_size,
                    threshold=self.config.mask_threshold,
                    candidates=sim[rows] > 0.0,
                )
        return sim

    def _correct(self, instances: Instances, det_for_track: dict[int, int]) -> None:
        """Kalman-correct the associated tracks with their detections and refresh their data."""
        if not det_for_track:
            return
        rows = np.fromiter(det_for_track.keys(), dtype=np.int64, count=len(det_for_track))
        dets = np.fromiter(det_for_track.values(), dtype=np.int64, count=len(det_for_track))
        self._mean[rows], self._cov[rows] = kalman.update(
            self._mean[rows], self._cov[rows], kalman.xyxy_to_xyah(instances.boxes[dets])
        )
        boxes = instances.boxes[dets].astype(np.float64)
        min_hits = self.config.min_hits
        for k, (i, d) in enumerate(zip(rows.tolist(), dets.tolist(), strict=True)):
            t = self._tracks[i]
            t.observe(instances, d, boxes[k], self._frame)
            if t.track_id < 0:
                if t.hits >= min_hits:
                    self._confirm(t)
            else:
                t.state = TrackState.TRACKED

    def _confirm(self, t: Track) -> None:
        if self.id_source is not None:
            t.track_id = int(self.id_source())
        else:
            t.track_id = self._next_id
            self._next_id += 1
        t.state = TrackState.TRACKED

    def _start_tracks(self, instances: Instances, dets: Sequence[int], *, confirm: bool) -> list[Track]:
        """Append new tracks started from detections ``dets`` (confirmed at once when ``confirm``)."""
        if not dets:
            return []
        idx = np.asarray(dets, dtype=np.int64)
        mean, cov = kalman.initiate(kalman.xyxy_to_xyah(instances.boxes[idx]))
        boxes = instances.boxes[idx].astype(np.float64)
        born = []
        for k, d in enumerate(idx.tolist()):
            t = Track.start(instances, d, boxes[k], self._frame)
            if confirm:
                self._confirm(t)
            born.append(t)
        self._tracks.extend(born)
        self._mean = np.concatenate([self._mean, mean])
        self._cov = np.concatenate([self._cov, cov])
        return born

    def _output(
        self, instances: Instances, assigned: list[tuple[Track, int]], timestamp_s: float | None
    ) -> Instances:
        """The returned Instances: track IDs of the (track, detection index) pairs; smoothed keypoints."""
        cfg = self.config
        track_ids = np.full(len(instances), -1, dtype=np.int64)
        for t, d in assigned:
            track_ids[d] = t.track_id
        if not cfg.smooth_keypoints or instances.keypoints is None:
            return instances.replace(track_ids=track_ids)
        t_s = float(timestamp_s) if timestamp_s is not None else self._frame / cfg.fps
        keypoints = np.array(instances.keypoints, dtype=np.float32, copy=True)
        for t, d in assigned:
            if t.track_id < 0:
                continue
            if t.smoother is None:
                t.smoother = OneEuroFilter(
                    min_cutoff_hz=cfg.keypoint_min_cutoff_hz,
                    beta=cfg.keypoint_beta,
                    d_cutoff_hz=cfg.keypoint_d_cutoff_hz,
                )
            keypoints[d, :, :2] = t.smoother(keypoints[d, :, :2], t_s)
            t.keypoints = keypoints[d].copy()
        return instances.replace(track_ids=track_ids, keypoints=keypoints)
