"""MOT Challenge text files: tracking results written per frame, and a reader.

One line per tracked instance, in the MOT Challenge result format (Milan et al.,
"MOT16: A Benchmark for Multi-Object Tracking", 2016, section 3.2 and table 3;
the same for MOT17 and MOT20)::

    <frame>,<id>,<bb_left>,<bb_top>,<bb_width>,<bb_height>,<conf>,-1,-1,-1

``frame`` is 1-based (``Frame.index + 1``), ``id`` the track ID, the box is in image
pixels (top-left corner, width, height; 2 decimals) and ``conf`` the detection score
(4 decimals). The last three fields are the 3D world coordinates, unused in 2D
tracking (``-1``). Ground-truth files use the same first six columns, then
``consider flag, class, visibility`` (MOT17).
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import numpy as np

from streamseg.errors import ConfigError
from streamseg.sinks.textfile import FlushedTextFile
from streamseg.types import Instances

__all__ = ["MotWriter", "read_mot", "format_mot_lines"]

_SPLIT = re.compile(r"[,\s]+")


def format_mot_lines(frame_index: int, instances: Instances) -> list[str]:
    """The MOT lines of one frame's tracked instances.

    Args:
        frame_index: 0-based frame index (``Frame.index``); written 1-based.
        instances: the frame's instances; only those with ``track_id >= 0`` and a
            finite box are written. A non-finite score is written as -1.

    Returns:
        One string per written instance, without newline, in the instances' order.
    """
    lines = []
    frame = int(frame_index) + 1
    for box, score, track_id in zip(instances.boxes, instances.scores, instances.track_ids, strict=True):
        if track_id < 0 or not np.isfinite(box).all():
            continue
        x1, y1, x2, y2 = (float(v) for v in box)
        conf = float(score) if math.isfinite(float(score)) else -1.0
        lines.append(
            f"{frame},{int(track_id)},{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},{conf:.4f},-1,-1,-1"
        )
    return lines


class MotWriter(FlushedTextFile):
    """Write tracking results as a MOT Challenge text file, flushed after every frame.

    An interrupted run leaves a file of complete lines. Use it as a context manager,
    or call :meth:`close`.

    Args:
        path: output file (created or truncated; its folder must exist).
        interpolate_max_gap: when > 0, :meth:`close` rewrites the file once with the
            gaps of up to this many frames inside each track filled by linear
            interpolation (:func:`~streamseg.tracking.interpolation.interpolate_tracks`,
            ByteTrack's offline post-processing). The file is replaced atomically, so
            it holds either the online rows or the filled ones, never a mix. 0 (the
            default) leaves the online rows as written.
        append: write after the lines the file holds (see
            :class:`~streamseg.sinks.textfile.FlushedTextFile`).

    Attributes:
        frames_written: calls to :meth:`write` so far (frames, with or without lines).
        rows_written: lines written so far (before interpolation).
        rows_interpolated: rows added by interpolation at :meth:`close`.

    Raises:
        SinkError: the file cannot be created.
        ValueError: ``interpolate_max_gap`` is negative.
    """

    def __init__(self, path: str | Path, *, interpolate_max_gap: int = 0, append: bool = False) -> None:
        if int(interpolate_max_gap) < 0:
            raise ValueError(f"interpolate_max_gap must be >= 0, got {interpolate_max_gap}")
        super().__init__(path, what="MOT results", encoding="ascii", append=append)
        self.frames_written = 0
        self.rows_written = 0
        self.rows_interpolated = 0
        self._max_gap = int(interpolate_max_gap)

    def write(self, frame_index: int, instances: Instances) -> None:
        """Append the lines of one frame (see :func:`format_mot_lines`) and flush them.

        Args:
            frame_index: 0-based frame index (``Frame.index``); the file holds it 1-based.
            instances: the frame's instances, with track IDs.

        Raises:
            SinkError: the writer is closed, or writing failed (e.g. disk full).
            ValueError: ``frame_index`` is negative.
        """
        self._check_open()
        if frame_index < 0:
            raise ValueError(f"frame_index must be >= 0 (0-based), got {frame_index}")
        lines = format_mot_lines(frame_index, instances)
        self._write_flushed("\n".join(lines) + "\n" if lines else "")
        self.frames_written += 1
        self.rows_written += len(lines)

    def close(self) -> None:
        """Close the file; with ``interpolate_max_gap`` > 0, then fill the track gaps (idempotent).

        Raises:
            SinkError: the final flush or the rewrite failed (the online rows stay in place).
        """
        if self.closed:
            return
        super().close()
        if self._max_gap > 0 and self.rows_written:
            self._rewrite_interpolated()

    def _rewrite_interpolated(self) -> None:
        from streamseg.tracking.interpolation import interpolate_tracks

        rows = read_mot(self.path, min_columns=10)
        filled = interpolate_tracks(rows, self._max_gap)
        lines = [
            f"{int(r[0])},{int(r[1])},{r[2]:.2f},{r[3]:.2f},{r[4]:.2f},{r[5]:.2f},{r[6]:.4f},-1,-1,-1"
            for r in filled
        ]
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            tmp.write_text("".join(line + "\n" for line in lines), encoding="ascii")
            os.replace(tmp, self.path)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise self._error(e) from e
        self.rows_interpolated = len(filled) - len(rows)


def read_mot(path: str | Path, *, min_columns: int = 6) -> np.ndarray:
    """Read a MOT Challenge text file (results, ground truth or detections).

    Fields are separated by commas (or white space); blank lines are skipped; a
    trailing separator is allowed. Every line must have the same number of fields,
    at least ``min_columns``, all numbers, and a whole frame number >= 1.

    Args:
        path: the file.
        min_columns: fewest fields a line may have (6: frame, id and the box).

    Returns:
        (R, C) float64, one row per line in file order; (0, max(min_columns, 10))
        for a file without lines.

    Raises:
        ConfigError: the file is missing or unreadable, or a line is malformed (the
            message gives ``path:line`` and the reason).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise ConfigError(f"MOT file not found: {path}") from e
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read MOT file {path}: {e}") from e
    rows: list[list[float]] = []
    width = None
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip().strip(",").strip()
        if not stripped:
            continue
        fields = _SPLIT.split(stripped)
        where = f"{path}:{number}"
        if len(fields) < min_columns:
            raise ConfigError(
                f"{where}: expected at least {min_columns} comma-separated fields, got {len(fields)}"
            )
        if width is None:
            width = len(fields)
        elif len(fields) != width:
            raise ConfigError(f"{where}: {len(fields)} fields, but the first line has {width}")
        try:
            values = [float(f) for f in fields]
        except ValueError as e:
            raise ConfigError(f"{where}: not a number ({e})") from e
        frame = values[0]
        if not (math.isfinite(frame) and frame >= 1 and frame == int(frame)):
            raise ConfigError(
                f"{where}: the frame number must be a whole number >= 1 (1-based), got {fields[0]}"
            )
        rows.append(values)
    if not rows:
        return np.zeros((0, max(min_columns, 10)), dtype=np.float64)
    return np.array(rows, dtype=np.float64)
