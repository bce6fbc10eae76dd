"""File sources: video files decoded with PyAV, and folders of images.

Both deliver every frame (queue policy ``"block"``). Frame timestamps come from
the container for videos (variable frame rate safe) and from ``index / fps``
for image folders.
"""

from __future__ import annotations

import configparser
import contextlib
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from streamseg.errors import SourceError
from streamseg.sources.base import Source, SourceInfo
from streamseg.types import Frame

__all__ = ["VideoFileSource", "ImageFolderSource", "IMAGE_EXTENSIONS", "DEFAULT_FPS", "read_image"]

#: File name extensions :class:`ImageFolderSource` reads (case-insensitive).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
#: Frame rate assumed for an image folder without ``seqinfo.ini`` and for a video
#: whose container gives no rate, in frames per second.
DEFAULT_FPS = 25


def _frames_text(n: int) -> str:
    """``"1 frame"``, ``"92 frames"``: how many frames decoded before a failure (not an index)."""
    return f"{n} frame" if n == 1 else f"{n} frames"


def _av_reason(e: Exception) -> str:
    """The human part of a PyAV error (its ``strerror`` without the errno and path)."""
    return getattr(e, "strerror", None) or str(e) or type(e).__name__


class VideoFileSource(Source):
    """Decode a video file with PyAV (FFmpeg) in a background thread.

    Decoding is multi-threaded inside FFmpeg (``stream.thread_type``). Frames are
    (H, W, 3) uint8 RGB, converted with the colour matrix the stream declares.

    ``Frame.pts_s`` is ``(frame.pts - stream.start_time) * stream.time_base`` in
    seconds, so the first frame of most files is at 0.0 and variable frame rate
    timing is kept. When a frame has no pts, its packet dts is used (PyAV does
    not expose FFmpeg's ``best_effort_timestamp``; dts is what it falls back to),
    and failing that ``index / fps``.

    Truncated or corrupt input: every frame that decodes is delivered, then
    :meth:`read` raises :class:`SourceError`. Truncation is detected when PyAV
    raises while demuxing or decoding, when fewer frames decode than the
    container declares (by more than ``max(2, 2 %)``), or when the last frame
    ends well short of the stream (or, for Matroska, file) duration (by more
    than ``max(1 s, 5 %)``). Formats whose duration is measured from the data
    itself (MPEG program and transport streams, raw H.264) cannot be checked
    this way: a cut file then simply ends early.

    Args:
        path: the video file; also the frames' ``source_id``.
        queue_size: frame queue capacity (frames held ahead of the consumer).
        max_frames: stop (without error) after this many frames; None for all.
        thread_type: FFmpeg decoder threading, ``"AUTO"`` (frame and slice),
            ``"FRAME"``, ``"SLICE"`` or ``"NONE"``.

    Raises:
        SourceError: from :meth:`open` if the file is missing, is not a video
            PyAV can decode, or has no video stream.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        queue_size: int = 8,
        max_frames: int | None = None,
        thread_type: str = "AUTO",
    ) -> None:
        super().__init__(str(path), queue_size=queue_size, max_frames=max_frames)
        self.path = Path(path)
        self.thread_type = thread_type
        self._container: av.container.InputContainer | None = None
        self._stream: av.VideoStream | None = None

    @property
    def decoder_thread_type(self) -> str | None:
        """FFmpeg threading in use on the open stream (``"AUTO"``, ...), or None when not open."""
        stream = self._stream
        return None if stream is None or self._container is None else stream.thread_type.name

    def _open(self) -> SourceInfo:
        path = self.uri
        if not self.path.exists():
            raise SourceError(f"no such file: {path}")
        if self.path.is_dir():
            raise SourceError(f"{path} is a directory, not a video file (use ImageFolderSource)")
        try:
            container = av.open(path, mode="r")
        except PermissionError:
            raise SourceError(f"cannot open {path}: permission denied") from None
        except (av.FFmpegError, OSError, UnicodeDecodeError) as e:
            raise SourceError(f"cannot open {path}: not a video PyAV can decode ({_av_reason(e)})") from e
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams}) or ["none"]
            container.close()
            raise SourceError(f"{path} has no video stream (streams: {', '.join(kinds)})")
        stream = container.streams.video[0]
        if stream.codec_context is None:
            container.close()
            raise SourceError(f"cannot open {path}: no decoder for its video codec")
        stream.thread_type = self.thread_type
        self._container, self._stream = container, stream
        fps = stream.average_rate or stream.guessed_rate or None
        return SourceInfo(
            uri=path,
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            fps=Fraction(fps) if fps else None,
            num_frames=self._declared_frames() or self._estimated_frames(fps),
            codec=stream.codec_context.name,
            live=False,
        )

    def _declared_frames(self) -> int | None:
        """Frame count from the container header (e.g. MP4 sample count), or None."""
        assert self._stream is not None
        return self._stream.frames or None

    def _stream_duration_s(self) -> float | None:
        """Stream duration in seconds from the container, or None."""
        stream = self._stream
        assert stream is not None
        if stream.duration and stream.time_base:
            return float(stream.duration * stream.time_base)
        return None

    def _estimated_frames(self, fps: Fraction | None) -> int | None:
        """Frame count estimated as duration x fps, or None if either is unknown."""
        duration = self._stream_duration_s()
        if duration is None and self._container is not None and self._container.duration:
            duration = self._container.duration / av.time_base
        if duration is None or not fps:
            return None
        return round(duration * float(fps))

    def _frames(self) -> Iterator[Frame]:
        container, stream, info = self._container, self._stream, self.info
        assert container is not None and stream is not None and info is not None
        time_base = stream.time_base
        start = stream.start_time or 0
        fps = Fraction(info.fps or DEFAULT_FPS)
        period_s = float(1 / fps)
        index = 0
        last_pts_s = None
        try:
            for av_frame in container.decode(stream):
                ts = av_frame.pts if av_frame.pts is not None else av_frame.dts
                if ts is not None and time_base:
                    pts_s = float((ts - start) * time_base)
                else:
                    pts_s = float(index / fps)
                image = av_frame.to_ndarray(format="rgb24")
                image.flags.writeable = False  # Frame keeps it without a copy
                yield Frame(
                    source_id=self.uri,
                    index=index,
                    pts_s=pts_s,
                    t_capture=time.monotonic(),
                    image=image,
                )
                index += 1
                last_pts_s = pts_s
        except av.FFmpegError as e:
            raise SourceError(
                f"{self.uri}: video is truncated or corrupt after {_frames_text(index)} ({_av_reason(e)})"
            ) from e
        self._check_complete(index, last_pts_s, period_s)

    def _check_complete(self, decoded: int, last_pts_s: float | None, period_s: float) -> None:
        """Raise SourceError if the stream ended clearly before the container says it should."""
        if decoded == 0:
            raise SourceError(
                f"{self.uri}: video is truncated or corrupt: no frame could be decoded"
            )
        declared = self._declared_frames()
        if declared and declared - decoded > max(2, 0.02 * declared):
            raise SourceError(
                f"{self.uri}: video is truncated or corrupt after {_frames_text(decoded)} "
                f"(the container declares {declared} frames)"
            )
        duration, end_s = self._stream_duration_s(), None
        if last_pts_s is not None:
            end_s = last_pts_s + period_s  # relative to the stream start, as stream.duration
            if duration is None and self._container is not None and self._container.duration:
                # Some containers (Matroska) only give the file duration, which counts
                # from time 0, not from the stream start: compare absolute end times.
                duration = self._container.duration / av.time_base
                end_s += self._stream_start_s()
        if duration and end_s is not None and duration - end_s > max(1.0, 0.05 * duration):
            raise SourceError(
                f"{self.uri}: video is truncated or corrupt after {_frames_text(decoded)} "
                f"(frames end at {end_s:.2f} s, the stream lasts {duration:.2f} s)"
            )

    def _stream_start_s(self) -> float:
        """Stream start time in seconds (0 when the container gives none)."""
        stream = self._stream
        assert stream is not None
        return float(stream.start_time * stream.time_base) if stream.start_time and stream.time_base else 0.0

    def _close(self) -> None:
        if self._container is not None:
            with contextlib.suppress(av.FFmpegError):  # closing an input does not fail in practice
                self._container.close()
            self._container = None


class ImageFolderSource(Source):
    """Read a folder of images, sorted by file name, as a video.

    Reads ``.jpg``, ``.jpeg``, ``.png`` and ``.bmp`` files (case-insensitive) with
    OpenCV and converts them to RGB. Images may differ in size (a folder of photos):
    each frame has its own image's size, and ``Frame.file_name`` is the image's file
    name. :attr:`info` gives the first image's size.

    MOT Challenge layout: for ``SEQ/img1/`` the frame rate is read from
    ``SEQ/seqinfo.ini`` (``[Sequence] frameRate``); a sequence folder ``SEQ/``
    itself is also accepted (its ``imDir``, default ``img1``, is read).

    ``Frame.pts_s = index / fps``.

    Args:
        path: the folder; also the frames' ``source_id``.
        fps: frame rate in frames per second; None reads ``seqinfo.ini`` or
            assumes :data:`DEFAULT_FPS` (25).
        queue_size: frame queue capacity.
        max_frames: stop (without error) after this many frames; None for all.

    Raises:
        SourceError: from :meth:`open` if the folder is missing or has no images,
            or ``seqinfo.ini`` has an invalid ``frameRate``; from :meth:`read` if
            an image cannot be read.
        ValueError: if ``fps`` <= 0.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        fps: float | Fraction | None = None,
        queue_size: int = 8,
        max_frames: int | None = None,
    ) -> None:
        super().__init__(str(path), queue_size=queue_size, max_frames=max_frames)
        if fps is not None and not fps > 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        self.path = Path(path)
        self.fps = fps
        self._files: list[Path] = []
        self._first: np.ndarray | None = None

    def _open(self) -> SourceInfo:
        folder = self.path
        if not folder.exists():
            raise SourceError(f"no such directory: {self.uri}")
        if not folder.is_dir():
            raise SourceError(f"{self.uri} is not a directory")
        files = _list_images(folder)
        seqinfo = folder.parent / "seqinfo.ini"
        if not files and (folder / "seqinfo.ini").is_file():  # a MOT sequence folder
            seqinfo = folder / "seqinfo.ini"
            folder = folder / _read_seqinfo(seqinfo).get("imDir", "img1")
            files = _list_images(folder) if folder.is_dir() else []
        if not files:
            raise SourceError(f"{self.uri}: no images ({', '.join(IMAGE_EXTENSIONS)}) in this folder")
        self._files = files
        self._first = read_image(files[0])
        h, w = self._first.shape[:2]
        return SourceInfo(
            uri=self.uri,
            width=w,
            height=h,
            fps=self._resolve_fps(seqinfo),
            num_frames=len(files),
            codec=f"images ({files[0].suffix.lower().lstrip('.')})",
            live=False,
        )

    def _resolve_fps(self, seqinfo: Path) -> Fraction:
        """The given fps, else ``seqinfo.ini``'s frameRate, else DEFAULT_FPS."""
        if self.fps is not None:
            return Fraction(self.fps).limit_denominator(1001)
        if seqinfo.is_file():
            rate = _read_seqinfo(seqinfo).get("frameRate")
            if rate is not None:
                try:
                    fps = Fraction(rate.strip()).limit_denominator(1001)
                except ValueError:
                    fps = Fraction(0)
                if fps <= 0:
                    raise SourceError(f"{seqinfo}: frameRate {rate!r} is not a positive number")
                return fps
        return Fraction(DEFAULT_FPS)

    def _frames(self) -> Iterator[Frame]:
        info = self.info
        assert info is not None and info.fps
        for index, file in enumerate(self._files):
            image = self._first if index == 0 else read_image(file)
            assert image is not None
            self._first = None
            yield Frame(
                source_id=self.uri,
                index=index,
                pts_s=float(index / info.fps),
                t_capture=time.monotonic(),
                image=image,
                file_name=file.name,
            )


def read_image(file: str | Path) -> np.ndarray:
    """Read one image file (JPEG, PNG, ... as OpenCV reads them) as (H, W, 3) uint8 RGB, read-only.

    The image folders' reader, and :class:`~streamseg.Predictor`'s for a path.

    Raises:
        SourceError: the file is missing, corrupt or not an image.
    """
    bgr = cv2.imread(str(file), cv2.IMREAD_COLOR)
    if bgr is None:
        raise SourceError(f"cannot read image {file} (missing, corrupt or not an image)")
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    rgb.flags.writeable = False
    return rgb


def _list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, sorted by name."""
    return sorted(
        (p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()),
        key=lambda p: p.name,
    )


def _read_seqinfo(path: Path) -> dict[str, str]:
    """The ``[Sequence]`` section of a MOT Challenge ``seqinfo.ini`` (empty if unreadable)."""
    parser = configparser.ConfigParser()
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keep "frameRate" case
    try:
        parser.read(path)
    except configparser.Error:
        return {}
    return dict(parser["Sequence"]) if parser.has_section("Sequence") else {}
