"""Offline gap filling of finished tracks by linear interpolation (ByteTrack's post-processing).

An online tracker can only report a track on frames where it was associated with
a detection. When a detector misses an object for a few frames (occlusion,
motion blur, a low score) the track survives (``TrackerConfig.max_lost_frames``)
and keeps its ID, but those frames have no box, and every one of them is a false
negative for MOTA and IDF1. Once a file has been processed the boxes on both sides
of a gap are known, so the gap can be filled by linear interpolation of the box,
which ByteTrack does for its MOT17/MOT20 results (Zhang et al., "ByteTrack",
ECCV 2022, Sec. 4.1, "linear interpolation ... the max interval is set to 20";
``tools/interpolation.py`` of its repository).

This works on MOT Challenge rows (``frame, id, x, y, w, h, conf, ...``) and is used
by :class:`~streamseg.sinks.MotOutput` when the run is given
``--mot-interpolate N``: the MOT file is flushed frame by frame during the run
and rewritten with the filled gaps once, when it is closed.
"""

from __future__ import annotations

import numpy as np

__all__ = ["interpolate_tracks"]


def interpolate_tracks(rows: np.ndarray, max_gap: int) -> np.ndarray:
    """Fill the gaps of up to ``max_gap`` frames inside each track with interpolated boxes.

    For two consecutive rows of one track at frames ``f0`` and ``f1`` with
    ``1 < f1 - f0 <= max_gap + 1``, a row is added for every frame ``f`` in between
    with the box ``(1 - t) * box0 + t * box1``, ``t = (f - f0) / (f1 - f0)``
    (x, y, w, h interpolated independently; ByteTrack's rule), the confidence of
    the earlier row, and the other columns copied from the earlier row. Longer
    gaps (the object left, or was lost too long to be sure) stay empty.

    Args:
        rows: (R, C) float array of MOT rows, C >= 6: frame (1-based), track id,
            x, y, w, h (pixels), then any further columns (conf, ...). Rows with a
            negative id are kept unchanged and never interpolated.
        max_gap: longest run of missing frames to fill, >= 0 (0 returns the rows
            unchanged).

    Returns:
        (R + A, C) float64: the input rows and the A added rows, sorted by frame
        then track id (the MOT Challenge order).

    Raises:
        ValueError: ``rows`` is not 2-D with at least 6 columns, or ``max_gap`` is
            negative or not an integer.
    """
    rows = np.asarray(rows, dtype=np.float64)
    if rows.ndim != 2 or rows.shape[1] < 6:
        raise ValueError(f"expected MOT rows of shape (R, C >= 6), got {rows.shape}")
    if isinstance(max_gap, bool) or not isinstance(max_gap, (int, np.integer)) or max_gap < 0:
        raise ValueError(f"max_gap must be an int >= 0, got {max_gap!r}")
    added = []
    if max_gap > 0:
        for track_id in np.unique(rows[:, 1]):
            if track_id < 0:
                continue
            track = rows[rows[:, 1] == track_id]
            track = track[np.argsort(track[:, 0], kind="stable")]
            gaps = np.diff(track[:, 0])
            for i in np.flatnonzero((gaps > 1) & (gaps <= max_gap + 1)):
                before, after = track[i], track[i + 1]
                steps = np.arange(1, int(gaps[i]))[:, None]
                t = steps / gaps[i]
                fill = np.repeat(before[None, :], steps.shape[0], axis=0)
                fill[:, 0] = before[0] + steps[:, 0]
                fill[:, 2:6] = (1.0 - t) * before[2:6] + t * after[2:6]
                added.append(fill)
    out = np.concatenate([rows, *added]) if added else rows.copy()
    return out[np.lexsort((out[:, 1], out[:, 0]))]
