"""A video file source that starts at any frame, for the window's seek slider and step back.

:class:`SeekableVideoSource` is :class:`streamseg.sources.VideoFileSource` plus a
start frame: it seeks the container to the key frame at or before that frame, decodes
forward and delivers frames from the start frame on, each with its true index in the
file. Everything else (decoding, timestamps, truncation checks, errors) is the file
source's own.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av

from streamseg.errors import SourceError
from streamseg.sources.file import DEFAULT_FPS, VideoFileSource
from streamseg.types import Frame

__all__ = ["SeekableVideoSource"]


class SeekableVideoSource(VideoFileSource):
    """Decode a video file from ``start_frame`` on.

    Frame indices after a seek come from the timestamps: ``index = round(pts_s * fps)``
    (exact for constant frame rate files; for variable rate files it is the index the
    frame would have at the average rate). With ``start_frame = 0`` it is exactly a
    :class:`~streamseg.sources.VideoFileSource`.

    Args:
        path: the video file.
        start_frame: index of the first frame to deliver, >= 0.
        queue_size: frame queue capacity.
        max_frames: stop (without error) after this many frames; None for all.

    Raises:
        ValueError: ``start_frame`` < 0.
        SourceError: from :meth:`open` as the file source; from :meth:`read` if the
            container cannot seek.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        start_frame: int = 0,
        queue_size: int = 8,
        max_frames: int | None = None,
    ) -> None:
        if start_frame < 0:
            raise ValueError(f"start_frame must be >= 0, got {start_frame}")
        super().__init__(path, queue_size=queue_size, max_frames=max_frames)
        self.start_frame = int(start_frame)
        self._seek_base = 0  # file index of the first frame decoded after the seek

    def _frames(self) -> Iterator[Frame]:
        if self.start_frame == 0:
            yield from super()._frames()
            return
        container, stream, info = self._container, self._stream, self.info
        assert container is not None and stream is not None and info is not None
        fps = Fraction(info.fps or DEFAULT_FPS)
        target_s = float(self.start_frame / fps)
        start = stream.start_time or 0
        try:
            container.seek(
                int(target_s / stream.time_base) + start, stream=stream, backward=True, any_frame=False
            )
        except (av.FFmpegError, OSError) as e:
            raise SourceError(f"{self.uri}: cannot seek to frame {self.start_frame} ({e})") from e
        half_period_s = float(1 / fps) / 2
        first = True
        for frame in super()._frames():
            index = round(frame.pts_s * fps)
            if first:
                self._seek_base, first = index, False
            if frame.pts_s < target_s - half_period_s:
                continue  # decoded from the key frame on; not shown
            yield dataclasses.replace(frame, index=index)

    def _check_complete(self, decoded: int, last_pts_s: float | None, period_s: float) -> None:
        # After a seek the frames before the key frame were never decoded: count them.
        super()._check_complete(decoded + self._seek_base, last_pts_s, period_s)
