"""The source file's audio, carried into the annotated MP4 (PyAV: demux, remux or re-encode to AAC).

:class:`SourceAudio` reads the audio stream of the video file a run reads and writes it
into the MP4 that :class:`~streamseg.sinks.video.VideoWriter` writes, interleaved with
the video and on the same clock:

* **Remux** (no re-encoding) when the codec is one MP4 carries and browsers play:
  AAC, MP3, Opus, FLAC (:data:`REMUX_CODECS`).
* **Re-encode to AAC-LC** (FFmpeg's native ``aac`` encoder, 64 kb/s per channel) for
  every other codec (PCM in AVI/MOV/MKV, AC-3, MP2, Vorbis, ...).

Timing: a video frame's ``Frame.pts_s`` counts from the source's video stream start
(:class:`~streamseg.sources.file.VideoFileSource`), and the MP4's first frame is at 0. An
audio sample at source time ``t`` (seconds, the audio stream's own timestamps) is written
at ``t - video_start - first_pts_s``, so every sound stays with the frame it went with in
the source (start offsets and variable frame rate included). The audio covers the
annotated video's span: what the source has before the first written frame is cut (the
MP4's edit list trims the packet across time 0 to the exact sample) and what it has after
the last written frame's end is cut (to the packet: at most one audio frame more). A run
stopped early (``--max-frames``, an error) therefore has the audio of the frames it wrote.

A source whose audio cannot be read to the end (truncated or corrupt) loses only audio:
the video is written in full, the audio stops where reading failed, and a warning says
so. When re-encoding, packets that cannot be decoded are skipped, and every hole in the
source's timestamps (skipped, lost or missing packets) is filled with silence, so the
sound after it stays in sync; a warning gives the count and total length.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from streamseg.errors import SinkError

__all__ = ["AAC_BITRATE_PER_CHANNEL", "REMUX_CODECS", "SourceAudio"]

log = logging.getLogger("streamseg")

#: Audio codecs copied into the MP4 as they are (FFmpeg codec names): the ones FFmpeg's
#: mp4 muxer writes without ``-strict experimental`` and that Chrome, Firefox and Safari
#: play from MP4. Everything else is re-encoded to AAC.
REMUX_CODECS = ("aac", "mp3", "opus", "flac")
#: AAC-LC bit rate of re-encoded audio, bits/s per channel (128 kb/s stereo), the rule of
#: thumb of FFmpeg's AAC encoding guide (trac.ffmpeg.org/wiki/Encode/AAC).
AAC_BITRATE_PER_CHANNEL = 64_000
#: The most channels re-encoded as they are (FFmpeg's AAC encoder goes up to 7.1);
#: wider audio is downmixed to stereo.
_MAX_AAC_CHANNELS = 8
#: The sample rate of re-encoded audio whose own rate AAC does not have (samples/s).
_FALLBACK_RATE = 48_000
#: Seconds before the MP4's time 0 to seek the source's audio to (more than any codec's
#: pre-roll: Opus asks for 80 ms, RFC 7845 section 4.2).
_SEEK_MARGIN_S = Fraction(1, 2)


def _reason(e: Exception) -> str:
    """The human part of a PyAV error (``strerror`` without errno and path)."""
    return getattr(e, "strerror", None) or str(e) or type(e).__name__


def _silence(like: av.AudioFrame, samples: int) -> av.AudioFrame:
    """``samples`` samples of silence in the format, layout and rate of ``like``."""
    arr = like.to_ndarray()  # (channels, n) planar or (1, n * channels) packed
    zero = 128 if like.format.name.startswith("u8") else 0  # unsigned 8-bit PCM is centred on 128
    data = np.full((arr.shape[0], samples * arr.shape[1] // like.samples), zero, dtype=arr.dtype)
    frame = av.AudioFrame.from_ndarray(data, format=like.format.name, layout=like.layout.name)
    frame.sample_rate = like.sample_rate
    return frame


class SourceAudio:
    """Copy a source file's audio stream into an output MP4 container, in sync with its video.

    Create it before the container's header is written (it adds the audio stream), call
    :meth:`write_until` after each video frame and :meth:`finish` before closing the
    container. Times are seconds on the MP4's clock (0 at its first frame); the
    ``first_pts_s`` they come with (that frame's ``Frame.pts_s``) ties it to the source.

    Use :meth:`open`, which returns None for a file without audio (or whose audio cannot
    be set up: a warning says why) instead of raising.

    Args:
        source: the source video file.
        input_container: ``source`` opened with PyAV for reading (this object closes it).
        stream: the audio stream of ``input_container`` to copy.
        output: the MP4 container being written, header not yet written.

    Attributes:
        mode: ``"remux"`` (packets copied) or ``"aac"`` (decoded and re-encoded).
        codec: the source's audio codec (FFmpeg name, e.g. ``"aac"``, ``"pcm_s16le"``).
        packets_written: audio packets muxed so far.
        packets_skipped: source packets that could not be decoded (``"aac"`` mode).
        gap_s: seconds of silence put where the source's audio has none (``"aac"`` mode:
            packets missing, lost to corruption, or undecodable).
    """

    def __init__(
        self,
        source: Path,
        input_container: av.container.InputContainer,
        stream: av.AudioStream,
        output: av.container.OutputContainer,
    ) -> None:
        self.source = source
        self._input = input_container
        self._in_stream = stream
        self._output = output
        self.codec = stream.codec_context.codec.canonical_name if stream.codec_context else stream.codec_name
        self.mode = "remux" if self.codec in REMUX_CODECS else "aac"
        self.packets_written = 0
        self.packets_skipped = 0
        self.gap_s = Fraction(0)
        self._first_gap_s = Fraction(0)
        video = input_container.streams.video[0]
        # The origin of Frame.pts_s (VideoFileSource: (pts - start_time) * time_base).
        self._video_start = (video.start_time or 0) * video.time_base if video.time_base else Fraction(0)
        self._origin: Fraction | None = None  # source time of the MP4's time 0
        self._packets: Iterator[av.Packet] | None = None
        self._pending: av.Packet | None = None  # read, not yet due
        self._preroll: av.Packet | None = None  # the latest packet wholly before time 0
        self._done = False  # the source's audio is exhausted (or unreadable)
        self._last_dts: int | None = None
        self._next_t: Fraction | None = None  # "aac" mode: where the next decoded frame should start
        if self.mode == "remux":
            self._out_stream = output.add_stream_from_template(stream)
            self.rate = stream.codec_context.sample_rate if stream.codec_context else stream.rate
        else:
            self._out_stream = self._add_aac_stream(stream)
            self.rate = self._out_stream.codec_context.sample_rate
        self._out_stream.time_base = Fraction(1, self.rate)
        self._out_time_base = Fraction(1, self.rate)

    @classmethod
    def open(cls, source: str | Path, output: av.container.OutputContainer) -> SourceAudio | None:
        """The audio of ``source`` added to ``output``, or None when there is none to add.

        Picks the audio stream FFmpeg's ``av_find_best_stream`` picks (the default one).
        None, with a log line saying why, when the file has no audio stream, or its audio
        cannot be read or re-encoded (a warning: the video is written without audio).

        Args:
            source: the source video file.
            output: the MP4 container being written, header not yet written.
        """
        source = Path(source)
        try:
            container = av.open(str(source), mode="r")
        except (av.FFmpegError, OSError, UnicodeDecodeError) as e:
            log.warning("%s: cannot read its audio (%s): the annotated video has no audio", source, _reason(e))
            return None
        try:
            stream = container.streams.best("audio")
            if stream is None or not container.streams.video:
                container.close()
                return None
            if stream.codec_context is None and (stream.codec_name or "") not in REMUX_CODECS:
                raise ValueError(f"FFmpeg has no decoder for its {stream.codec_name or 'unknown'} audio")
            audio = cls(source, container, stream, output)
        except (av.FFmpegError, ValueError) as e:
            with contextlib.suppress(av.FFmpegError):
                container.close()
            log.warning("%s: cannot copy its audio (%s): the annotated video has no audio", source, _reason(e))
            return None
        log.info("%s: %s audio %s into the annotated video", source,
                 audio.codec, "copied" if audio.mode == "remux" else "re-encoded to AAC")  # fmt: skip
        return audio

    def _add_aac_stream(self, stream: av.AudioStream) -> av.AudioStream:
        """Add an AAC-LC encoder stream with the source's rate and channels (where AAC has them)."""
        ctx = stream.codec_context
        aac = av.Codec("aac", "w")
        rate = ctx.sample_rate if ctx.sample_rate in (aac.audio_rates or ()) else _FALLBACK_RATE
        channels = ctx.layout.nb_channels
        # An unspecified channel order ("2 channels", PCM in AVI) gets FFmpeg's default layout
        # for its count ("2c" -> stereo); the encoder's own resampler converts the samples.
        layout = "stereo" if channels > _MAX_AAC_CHANNELS else f"{channels}c"
        out = self._output.add_stream("aac", rate=rate)
        out.layout = layout
        out.bit_rate = AAC_BITRATE_PER_CHANNEL * out.codec_context.layout.nb_channels
        return out

    def _read(self) -> av.Packet | None:
        """The next source audio packet with a timestamp, or None at its end (or a read error: warned)."""
        if self._done:
            return None
        if self._packets is None:
            self._packets = self._input.demux(self._in_stream)
        try:
            for packet in self._packets:
                if packet.pts is not None or packet.dts is not None:
                    return packet
        except av.FFmpegError as e:
            log.warning("%s: its audio is truncated or corrupt (%s): the annotated video's audio stops "
                        "after %d packets", self.source, _reason(e), self.packets_written)  # fmt: skip
        self._done = True
        return None

    def _start_s(self, packet: av.Packet) -> Fraction:
        """A packet's start on the MP4's clock, seconds (exact)."""
        assert self._origin is not None and packet.time_base is not None
        ts = packet.pts if packet.pts is not None else packet.dts
        return ts * packet.time_base - self._origin

    def write_until(self, t_s: float, *, first_pts_s: float) -> None:
        """Write the audio that starts before ``t_s`` on the MP4's clock.

        Args:
            t_s: seconds after the MP4's first video frame (the frame just written).
            first_pts_s: the ``Frame.pts_s`` of the MP4's first frame (its time 0).

        Raises:
            SinkError: muxing into the MP4 failed (disk full, ...).
        """
        if self._origin is None:
            self._origin = self._video_start + Fraction(first_pts_s)
            self._seek_near_origin()
        while True:
            packet = self._pending if self._pending is not None else self._read()
            self._pending = None
            if packet is None:
                return
            start = self._start_s(packet)
            if start >= t_s:
                self._pending = packet
                return
            duration = packet.duration * packet.time_base if packet.duration and packet.time_base else Fraction(0)
            if start + duration <= 0:
                # Wholly before the MP4's time 0: only the last such packet is written, as the
                # decoder's pre-roll (AAC's MDCT overlap); the MP4's edit list hides it.
                self._preroll = packet
                continue
            if self._preroll is not None:
                preroll, self._preroll = self._preroll, None
                self._write(preroll)
            self._write(packet)

    def _write(self, packet: av.Packet) -> None:
        """Copy or re-encode one source packet into the MP4."""
        if self.mode == "remux":
            self._remux(packet)
        else:
            self._reencode(packet)

    def _seek_near_origin(self) -> None:
        """Start reading the audio :data:`_SEEK_MARGIN_S` before the MP4's time 0, not at the file's start.

        A recording started minutes into a file then does not demux all the audio before it.
        A container that cannot seek is read from its start (the packets before are skipped).
        """
        assert self._origin is not None
        stream = self._in_stream
        target = self._origin - _SEEK_MARGIN_S
        first = (stream.start_time or 0) * stream.time_base if stream.time_base else Fraction(0)
        if target <= first or not stream.time_base:
            return
        try:
            self._input.seek(int(target / stream.time_base), stream=stream, backward=True)
        except av.FFmpegError:
            log.debug("%s: cannot seek its audio; reading it from the start", self.source, exc_info=True)

    def _mux(self, packets: list[av.Packet]) -> None:
        try:
            self._output.mux(packets)
        except (av.FFmpegError, OSError) as e:
            raise SinkError(f"cannot write the audio of the annotated video: {_reason(e)}") from e
        self.packets_written += len(packets)

    def _remux(self, packet: av.Packet) -> None:
        """Copy one packet, its timestamps rescaled to the output's 1/sample_rate clock."""
        start = self._start_s(packet)
        duration = packet.duration * packet.time_base if packet.duration and packet.time_base else Fraction(0)
        pts = round(start * self.rate)
        dts = pts if packet.dts is None or packet.pts is None else pts - round(
            (packet.pts - packet.dts) * packet.time_base * self.rate
        )
        if self._last_dts is not None and dts <= self._last_dts:
            return  # a repeated or out-of-order timestamp in the source: the muxer would refuse it
        self._last_dts = dts
        packet.pts, packet.dts = pts, dts
        packet.duration = round(duration * self.rate)
        packet.stream = self._out_stream
        packet.time_base = self._out_time_base
        self._mux([packet])

    def _reencode(self, packet: av.Packet) -> None:
        """Decode one packet and encode its samples as AAC, timed sample-continuously."""
        assert self._origin is not None
        try:
            frames = self._in_stream.codec_context.decode(packet)
        except av.FFmpegError:
            self.packets_skipped += 1
            return
        tick = packet.time_base or Fraction(0)
        for frame in frames:
            self._encode(frame, tick)

    def _encode(self, frame: av.AudioFrame, tick: Fraction, *, end_s: float | None = None) -> None:
        """Encode one decoded frame at its time on the MP4's clock (none if it starts at or after ``end_s``)."""
        assert self._origin is not None
        if frame.samples == 0:
            return
        if frame.pts is not None and frame.time_base is not None:
            t = frame.pts * frame.time_base - self._origin
        else:
            t = self._next_t if self._next_t is not None else Fraction(0)
        if end_s is not None and t >= end_s:
            return
        if self._next_t is not None:
            # Timestamps in a coarse time base (Matroska: 1 ms) round each frame's start; a start
            # within one tick and one sample of where the previous frame ended is that end. A
            # later start is a gap in the source (packets lost or undecodable): it is filled
            # with silence, because the encoder (and players) take AAC samples as contiguous.
            gap = t - self._next_t
            if gap > tick + Fraction(1, frame.sample_rate):
                if self.gap_s == 0:
                    self._first_gap_s = self._next_t
                self.gap_s += gap
                self._encode_at(_silence(frame, round(gap * frame.sample_rate)), self._next_t)
            t = self._next_t  # an overlap (a broken source) is played on, not mixed
        self._encode_at(frame, t)

    def _encode_at(self, frame: av.AudioFrame, t: Fraction) -> None:
        """Encode ``frame`` starting at ``t`` seconds on the MP4's clock and mux the packets."""
        self._next_t = t + Fraction(frame.samples, frame.sample_rate)
        frame.pts, frame.time_base = round(t * self.rate), self._out_time_base
        try:
            packets = self._out_stream.encode(frame)
        except (av.FFmpegError, ValueError) as e:
            raise SinkError(f"cannot encode the audio of the annotated video: {_reason(e)}") from e
        self._mux(packets)

    def finish(self, end_s: float | None, *, first_pts_s: float | None) -> None:
        """Write the audio up to the video's end ``end_s``, flush the encoder, close the source.

        Args:
            end_s: the end of the MP4's last video frame (its pts + duration), seconds on the
                MP4's clock; None when no frame was written (no audio is written then).
            first_pts_s: the ``Frame.pts_s`` of the MP4's first frame; None with ``end_s``.

        Raises:
            SinkError: muxing into the MP4 failed.
        """
        try:
            if end_s is not None and first_pts_s is not None:
                self.write_until(end_s, first_pts_s=first_pts_s)
                if self.mode == "aac":
                    self._flush_encoder(end_s)
            if self.packets_skipped:
                log.warning("%s: %d audio packets could not be decoded and were left out of the annotated "
                            "video (silent there)", self.source, self.packets_skipped)  # fmt: skip
            if self.gap_s:
                log.warning("%s: its audio has gaps (%.3f s in all, the first at %.3f s of the annotated video; "
                            "missing or corrupt packets): the annotated video is silent there, and in sync "
                            "after them", self.source, self.gap_s, self._first_gap_s)  # fmt: skip
        finally:
            self.close()

    def _flush_encoder(self, end_s: float) -> None:
        """Encode the frames the decoder still holds (those before ``end_s``), then flush the encoder."""
        try:
            frames = self._in_stream.codec_context.decode(None)
        except av.FFmpegError:
            frames = []
        for frame in frames:
            self._encode(frame, Fraction(0), end_s=end_s)
        try:
            packets = self._out_stream.encode(None)
        except (av.FFmpegError, ValueError) as e:
            raise SinkError(f"cannot finish the audio of the annotated video: {_reason(e)}") from e
        self._mux(packets)

    def close(self) -> None:
        """Close the source file (idempotent); writes nothing more."""
        self._done = True
        self._pending = self._preroll = None
        with contextlib.suppress(av.FFmpegError):
            self._input.close()

    def __repr__(self) -> str:
        return f"SourceAudio({str(self.source)!r}, {self.codec}, {self.mode}, {self.rate} Hz)"

