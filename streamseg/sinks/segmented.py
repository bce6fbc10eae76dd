"""Annotated H.264 MP4 segments of bounded length, for streams that run for days."""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

import numpy as np

from streamseg.sinks.video import VideoWriter
from streamseg.types import FrameResult

__all__ = ["SegmentedVideoOutput"]


class SegmentedVideoOutput:
    """An :class:`~streamseg.sinks.outputs.Output` writing MP4 segments of at most ``segment_s`` seconds.

    A new file starts when the current one reaches ``segment_s`` of stream time (by
    ``Frame.pts_s``) or the frame size changes (a camera that came back with another
    resolution). Files are ``<folder>/<stem>-<NNNNN>-<YYYYmmddTHHMMSSZ>.mp4`` (UTC start
    time), numbered on from the highest ``NNNNN`` already in ``folder`` (a stream
    restarted after a crash starts a new segment, never overwrites one). Each is a
    fragmented MP4 (:class:`~streamseg.sinks.video.VideoWriter`'s ``fragmented``): complete
    once rolled or closed, and playable up to its last one-second fragment if the process
    is killed mid-segment. Across a reconnect the file continues (``pts_s`` is monotonic;
    the outage shows as a held frame).

    Args:
        folder: where the segments go (created on the first frame).
        stem: file-name prefix (the stream name).
        segment_s: longest segment, seconds of stream time (> 0).
        fps: nominal frame rate for the stream header, or None (timing from pts only).

    Attributes:
        files: the segments started so far, in order.
    """

    needs_image = True
    stage = "encode"
    threaded = True  # see VideoOutput: encoding overlaps drawing

    def __init__(self, folder: Path, stem: str, *, segment_s: float, fps: float | None = None) -> None:
        if not segment_s > 0:
            raise ValueError(f"segment_s must be > 0, got {segment_s}")
        self.folder, self.stem, self.segment_s, self.fps = Path(folder), stem, float(segment_s), fps
        self.files: list[Path] = []
        self._index: int | None = None  # number of the last segment started
        self._writer: VideoWriter | None = None
        self._start_pts = 0.0

    def write(self, result: FrameResult, image: np.ndarray | None) -> None:
        """Write one rendered frame; rolls to a new file as needed. Raises SinkError."""
        assert image is not None
        pts_s = result.frame.pts_s
        w = self._writer
        if w is not None and (pts_s - self._start_pts >= self.segment_s or (w.height, w.width) != image.shape[:2]):
            self.close()
            w = None
        if w is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
            self._index = (self._last_index() if self._index is None else self._index) + 1
            path = self.folder / f"{self.stem}-{self._index:05d}-{stamp}.mp4"
            self._writer = VideoWriter(
                path, width=image.shape[1], height=image.shape[0], fps=self.fps, fragmented=True
            )
            self.files.append(path)
            self._start_pts = pts_s
        assert self._writer is not None
        self._writer.write(image, pts_s)

    def _last_index(self) -> int:
        """The highest segment number of this stem already in the folder (0 when none)."""
        numbers = [0]
        for p in self.folder.glob(f"{self.stem}-*.mp4"):
            part = p.name[len(self.stem) + 1 :].split("-", 1)[0]
            if part.isdigit():
                numbers.append(int(part))
        return max(numbers)

    def close(self) -> None:
        """Finish the current segment (idempotent); the next frame starts a new one."""
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.close()
