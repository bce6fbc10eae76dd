"""Multi-object tracking: a Kalman filter, ByteTrack-style association, per-tracker IDs.

The tracker takes and returns :class:`~streamseg.types.Instances`::

    from streamseg.tracking import ByteTracker

    tracker = ByteTracker()                 # one per stream: IDs start at 1
    tracked = tracker.update(instances)     # same instances, track_ids filled

See :mod:`streamseg.tracking.byte_tracker` for the algorithm (Zhang et al. 2022),
:mod:`streamseg.tracking.kalman` for the filter, :mod:`streamseg.tracking.smoothing`
for the optional keypoint smoothing, :mod:`streamseg.tracking.interpolation` for
offline gap filling of finished tracks, and :mod:`streamseg.tracking.synthetic` for
generated ground truth with crossings.
"""

from __future__ import annotations

from streamseg.tracking.byte_tracker import (
    ByteTracker,
    TrackerConfig,
    TrackInfo,
    TrackState,
    linear_assignment,
    mask_iou,
    valid_detections,
)
from streamseg.tracking.interpolation import interpolate_tracks
from streamseg.tracking.smoothing import OneEuroFilter

__all__ = [
    "ByteTracker",
    "TrackerConfig",
    "TrackInfo",
    "TrackState",
    "OneEuroFilter",
    "interpolate_tracks",
    "linear_assignment",
    "mask_iou",
    "valid_detections",
]
