"""Annotated video output: H.264 in MP4 with PyAV, timed from each frame's pts.

The file plays in browsers: H.264 High profile, yuv420p (4:2:0, 8 bit),
BT.709 limited-range colour (converted and tagged), and ``movflags=+faststart``
so the index (moov atom) comes first and playback can start before the whole
file has downloaded. Given the source file (``audio_from``), it also carries the
source's audio, in sync (:class:`~streamseg.sinks.audio.SourceAudio`).
"""

from __future__ import annotations

import contextlib
import logging
import math
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import cv2
import numpy as np

from streamseg.errors import SinkError
from streamseg.sinks.audio import SourceAudio

__all__ = ["VideoWriter", "encoded_size", "letterbox"]

log = logging.getLogger("streamseg")

#: The MPEG 90 kHz clock: the time base used when it represents 1 / fps exactly.
_BASE_CLOCK = 90_000
#: Largest time base denominator we use (the MP4 timescale is 32 bit).
_MAX_CLOCK = 10_000_000
#: Nominal rate given to the encoder's rate control when the fps is unknown (frames/s).
_NOMINAL_FPS = 30
#: AVCOL_PRI_BT709 / AVCOL_TRC_BT709 / AVCOL_SPC_BT709 and AVCOL_RANGE_MPEG (libavutil/pixfmt.h).
_BT709 = 1
_RANGE_MPEG = 1


def _mp4_options(fragmented: bool) -> dict[str, str]:
    """The MP4 muxer's options (see :class:`VideoWriter`'s ``fragmented``)."""
    if fragmented:
        return {"movflags": "+empty_moov+default_base_moof", "frag_duration": "1000000", "flush_packets": "1"}
    return {"movflags": "+faststart"}


def _reason(e: Exception) -> str:
    """The human part of an OS or PyAV error (``strerror`` without errno and path)."""
    return getattr(e, "strerror", None) or str(e) or type(e).__name__


#: Odd input sizes (width, height) already reported in this process (a monitor opens a
#: writer per segment: the warning is given once, later writers log it at INFO).
_reported_odd_sizes: set[tuple[int, int]] = set()


def encoded_size(width: int, height: int) -> tuple[int, int]:
    """The (width, height) of the MP4 written for ``width`` x ``height`` frames, in pixels.

    H.264 4:2:0 (yuv420p, the format browsers play) needs an even width and height:
    libx264 refuses odd ones, and the SPS frame cropping that could hide a padded
    pixel counts in steps of 2 pixels in 4:2:0. So an odd width or height is padded by
    one pixel (the edge repeated; nothing cropped or scaled): 720x405 is written, and
    decoded by every player, as 720x406. Even sizes are kept.
    """
    return width + width % 2, height + height % 2


def letterbox(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Fit ``image`` into a ``height`` x ``width`` frame: scaled to keep its aspect ratio, centred, black bars.

    The scale is ``s = min(width / w, height / h)``; the image is resized to
    ``round(w * s)`` x ``round(h * s)`` (``cv2.resize``: INTER_AREA when shrinking,
    INTER_LINEAR when enlarging) and placed at ``((width - w') // 2, (height - h') // 2)``;
    the rest is black (0, 0, 0). An image of the frame's size is returned as it is.

    Args:
        image: (h, w, 3) uint8 RGB.
        height: the frame's height in pixels.
        width: the frame's width in pixels.

    Returns:
        (height, width, 3) uint8 RGB.
    """
    h, w = image.shape[:2]
    if (h, w) == (height, width):
        return image
    scale = min(width / w, height / h)
    new_w, new_h = min(width, max(1, round(w * scale))), min(height, max(1, round(h * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(np.ascontiguousarray(image), (new_w, new_h), interpolation=interpolation)
    out = np.zeros((height, width, 3), np.uint8)
    x0, y0 = (width - new_w) // 2, (height - new_h) // 2
    out[y0 : y0 + new_h, x0 : x0 + new_w] = resized
    return out


def _report_odd_size(width: int, height: int, path: Path) -> None:
    out_w, out_h = encoded_size(width, height)
    level = logging.INFO if (width, height) in _reported_odd_sizes else logging.WARNING
    _reported_odd_sizes.add((width, height))
    log.log(
        level,
        "%dx%d frames are written as a %dx%d MP4 (%s): H.264 yuv420p needs an even width and "
        "height, so the last %s is repeated (nothing is cropped or scaled)",
        width, height, out_w, out_h, path,
        "row and column" if out_w != width and out_h != height else "column" if out_w != width else "row",
    )  # fmt: skip


def _as_fraction(fps: Fraction | float | int | None) -> Fraction | None:
    """``fps`` as an exact Fraction (floats such as 29.97002997 become 30000/1001)."""
    if fps is None:
        return None
    fps = Fraction(fps) if isinstance(fps, (int, Fraction)) else Fraction(fps).limit_denominator(1001)
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    return fps


class VideoWriter:
    """Write RGB frames to an H.264 MP4 file, keeping each frame's presentation time.

    Each frame's pts is its ``pts_s`` minus the first frame's ``pts_s``, in a fine
    time base (1/90000 s, or a multiple of it that represents 1/fps exactly),
    so output timing equals input timing, variable frame rate included. A pts
    that does not increase is nudged to the previous one + 1 tick.

    Odd sizes: H.264 4:2:0 needs an even width and height, so an odd width or
    height is padded by one pixel on the right or bottom, replicating the edge
    pixels (nothing is cropped). The output is then (width + width % 2) x
    (height + height % 2), as :func:`encoded_size` gives it (see :attr:`out_width`,
    :attr:`out_height`), and the writer logs it (a warning the first time a size is seen).

    Audio: with ``audio_from`` (the video file the frames come from, whose ``Frame.pts_s``
    they carry), the MP4 also has that file's audio over the span of the frames written,
    copied where MP4 allows the codec and re-encoded to AAC otherwise, on the video's
    clock (see :mod:`streamseg.sinks.audio`). A file without audio, or whose audio
    cannot be read, gives a video-only MP4 (the latter with a warning).

    The file is a valid, playable MP4 once :meth:`close` returns (also when it is
    called after a failure part-way through). The file and its header are written
    when the writer is created; a writer closed before any frame leaves an MP4
    whose video track is empty (players see no video). Use it as a context manager.

    Args:
        path: output file (``.mp4``); its folder must exist.
        width: frame width in pixels, >= 1.
        height: frame height in pixels, >= 1.
        fps: nominal frame rate in frames per second (the input's average rate);
            the output stream's average rate. None if unknown (variable rate).
        codec: FFmpeg encoder name.
        crf: x264 constant rate factor (0 = lossless ... 51; 23 is x264's default).
        preset: x264 speed preset (``ultrafast`` ... ``veryslow``).
        fragmented: write a fragmented MP4 (an empty ``moov``, then a fragment about every
            second, each handed to the OS when written: FFmpeg's ``movflags=+empty_moov+default_base_moof``,
            ``frag_duration``, ``flush_packets``),
            which stays playable up to its last fragment when the process is killed before
            :meth:`close`; otherwise one ``moov`` written at :meth:`close`, moved to the front
            (``+faststart``), as players stream best. Fragmented, x264 also runs with
            ``tune=zerolatency`` (no lookahead, no B-frames), so each frame's packet is out at
            once and a kill loses at most the last second, not the encoder's queue too.
        audio_from: the source video file whose audio to carry, or None (no audio).

    Attributes:
        frames_written: frames passed to the encoder so far.
        audio: the source's audio being carried, or None.

    Raises:
        SinkError: the file cannot be created or the encoder cannot be set up.
        ValueError: ``width``, ``height`` or ``fps`` is not positive.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        width: int,
        height: int,
        fps: Fraction | float | None,
        codec: str = "libx264",
        crf: int = 23,
        preset: str = "veryfast",
        fragmented: bool = False,
        audio_from: str | Path | None = None,
    ) -> None:
        if width < 1 or height < 1:
            raise ValueError(f"width and height must be >= 1, got {width}x{height}")
        self.path = Path(path)
        self.width, self.height = int(width), int(height)
        self.out_width, self.out_height = encoded_size(self.width, self.height)
        self.fps = _as_fraction(fps)
        self.fragmented = bool(fragmented)
        self.frames_written = 0
        clock = _BASE_CLOCK if self.fps is None else math.lcm(_BASE_CLOCK, self.fps.numerator)
        self.time_base = Fraction(1, clock if clock <= _MAX_CLOCK else _BASE_CLOCK)
        self._first_pts_s: float | None = None
        self._last_pts: int | None = None
        self._end_pts: int | None = None  # the last frame's pts + duration
        self._closed = False
        self.audio: SourceAudio | None = None
        if self.path.is_dir():
            raise SinkError(f"cannot write video {self.path}: it is a directory")
        if not self.path.parent.is_dir():
            raise SinkError(f"cannot write video {self.path}: folder {self.path.parent} does not exist")
        try:
            self._container = av.open(str(self.path), mode="w", format="mp4", options=_mp4_options(fragmented))
        except (av.FFmpegError, OSError) as e:
            raise SinkError(f"cannot write video {self.path}: {_reason(e)}") from e
        try:
            self._stream = self._open_encoder(codec, crf, preset)
        except (av.FFmpegError, ValueError) as e:
            self._abort()
            raise SinkError(
                f"cannot set up encoder {codec!r} (crf={crf}, preset={preset!r}) "
                f"for {self.path}: {_reason(e)}"
            ) from e
        if audio_from is not None:
            self.audio = SourceAudio.open(audio_from, self._container)
        try:
            # Create the file and write the header now, so a bad path fails here and
            # close() always leaves a complete MP4 file.
            self._container.start_encoding()
        except (av.FFmpegError, OSError) as e:
            self._abort()
            raise SinkError(f"cannot write video {self.path}: {_reason(e)}") from e
        if (self.out_width, self.out_height) != (self.width, self.height):
            _report_odd_size(self.width, self.height, self.path)

    def _open_encoder(self, codec: str, crf: int, preset: str) -> av.VideoStream:
        """Add the video stream and open its encoder (H.264 High, yuv420p, BT.709 tags)."""
        try:
            stream = self._container.add_stream(
                codec,
                rate=self.fps or _NOMINAL_FPS,
                options={"crf": str(crf), "preset": preset, "profile": "high",
                         **({"tune": "zerolatency"} if self.fragmented else {})},
            )
        except av.codec.codec.UnknownCodecError:
            raise ValueError(f"FFmpeg has no encoder named {codec!r}") from None
        stream.width, stream.height = self.out_width, self.out_height
        stream.pix_fmt = "yuv420p"
        stream.time_base = self.time_base
        ctx = stream.codec_context
        ctx.time_base = self.time_base
        ctx.color_primaries, ctx.color_trc, ctx.colorspace = _BT709, _BT709, _BT709
        ctx.color_range = _RANGE_MPEG
        ctx.open()
        return stream

    def _abort(self) -> None:
        """Close the container after a failed set-up, ignoring errors."""
        self._closed = True
        if self.audio is not None:
            self.audio.close()
        with contextlib.suppress(av.FFmpegError, OSError):
            self._container.close()

    def write(self, image: np.ndarray, pts_s: float) -> None:
        """Encode one frame.

        Args:
            image: (height, width, 3) uint8 RGB.
            pts_s: presentation time in seconds (any origin: the first frame
                written is time 0).

        Raises:
            ValueError: ``image`` is not (height, width, 3) uint8.
            SinkError: the writer is closed, or encoding or writing failed.
        """
        if self._closed:
            raise SinkError(f"cannot write to {self.path}: the writer is closed")
        image = np.asarray(image)
        if image.shape != (self.height, self.width, 3) or image.dtype != np.uint8:
            raise ValueError(
                f"image must be ({self.height}, {self.width}, 3) uint8, got {image.shape} {image.dtype}"
            )
        if self.out_width != self.width or self.out_height != self.height:
            pad = ((0, self.out_height - self.height), (0, self.out_width - self.width), (0, 0))
            image = np.pad(image, pad, mode="edge")
        if self._first_pts_s is None:
            self._first_pts_s = float(pts_s)
        pts = round((float(pts_s) - self._first_pts_s) / self.time_base)
        if self._last_pts is not None and pts <= self._last_pts:
            pts = self._last_pts + 1
        # Wrap the RGB array without a copy (from_ndarray copies it row by row: 4 ms at 720p);
        # the reformat to BT.709 yuv420p reads it once and gives the encoder its own frame.
        frame = av.VideoFrame.from_numpy_buffer(np.ascontiguousarray(image), format="rgb24")
        frame = frame.reformat(format="yuv420p", dst_colorspace="itu709", dst_color_range="MPEG")
        frame.pts, frame.time_base = pts, self.time_base
        if self.fps is not None:
            frame.duration = round(1 / (self.fps * self.time_base))
        elif self._last_pts is not None:
            frame.duration = pts - self._last_pts  # the last frame lasts as long as the one before
        self._last_pts = pts
        self._end_pts = pts + (frame.duration or 0)
        try:
            self._container.mux(self._stream.encode(frame))
        except (av.FFmpegError, OSError) as e:
            raise SinkError(f"cannot write video {self.path}: {_reason(e)}") from e
        self.frames_written += 1
        if self.audio is not None:  # the audio up to this frame, so the two are interleaved
            self.audio.write_until(float(pts * self.time_base), first_pts_s=self._first_pts_s)

    def close(self) -> None:
        """Flush the encoder and finish the file (idempotent).

        Raises:
            SinkError: flushing or finishing the file failed.
        """
        if self._closed:
            return
        self._closed = True
        try:
            self._container.mux(self._stream.encode(None))
            if self.audio is not None:
                end_s = None if self._end_pts is None else float(self._end_pts * self.time_base)
                self.audio.finish(end_s, first_pts_s=self._first_pts_s)
        except (av.FFmpegError, OSError) as e:
            raise SinkError(f"cannot finish video {self.path}: {_reason(e)}") from e
        finally:
            if self.audio is not None:
                self.audio.close()
            try:
                self._container.close()
            except (av.FFmpegError, OSError) as e:
                raise SinkError(f"cannot finish video {self.path}: {_reason(e)}") from e

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has been called."""
        return self._closed

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"VideoWriter({str(self.path)!r}, {self.out_width}x{self.out_height}, fps={self.fps})"
