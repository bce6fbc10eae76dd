"""The source's audio in the annotated MP4 (`streamseg run --out`): codec, duration and sync.

The clips are made here with PyAV: the first two seconds of a real video of ../shared/data
(bikes.mp4, 25 fps) with a generated audio track that is silent except for a 440 Hz tone
burst at a known source time. Sync is measured on the sound itself: the burst's onset
relative to the first video frame must be the same in the source and in the output.
"""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from streamseg.cli import main
from tests.conftest import data_path

FPS = 25
RATE = 48_000
#: The tone burst's start and length in the source, seconds (absolute container time).
BURST_S, BURST_LEN_S = 1.0, 0.2
#: Run without a model: generated instances, drawn and encoded as in any run.
RUN = ["--backend", "replay", "--replay", "synthetic:3", "--no-progress"]
#: One AAC frame (1024 samples at 48 kHz), seconds: the packet granularity of a remux
#: (MP3 frames are 1152 samples, Opus ones 20 ms: shorter than the tolerance used with them).
AAC_FRAME_S = 1024 / RATE
#: Sync tolerance, seconds: a fifth of a video frame (the brief asks for one frame; the
#: measured error is under 1 ms).
SYNC_TOL_S = 0.2 / FPS


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    """The first 50 frames (2 s) of bikes.mp4, (272, 640, 3) uint8 RGB."""
    with av.open(str(data_path("videos", "bikes.mp4"))) as c:
        out = []
        for frame in c.decode(video=0):
            out.append(frame.to_ndarray(format="rgb24"))
            if len(out) == 2 * FPS:
                return out
    raise AssertionError("bikes.mp4 has fewer than 50 frames")


def make_clip(
    path: Path,
    frames: list[np.ndarray],
    *,
    acodec: str,
    video_start_s: float = 0.0,
    frame_times_s: list[float] | None = None,
    audio_start_s: float = 0.0,
    audio_len_s: float = 2.0,
) -> None:
    """Write ``frames`` at 25 fps from ``video_start_s`` and a stereo track from ``audio_start_s``.

    ``frame_times_s`` gives each frame's time instead (variable frame rate, in a 1 ms time
    base). The audio is silent but for a 0.3-amplitude 440 Hz burst at [BURST_S, BURST_S +
    BURST_LEN_S). The container follows the suffix (.mp4, .mkv, .avi); AVI gets MPEG-4 Part 2.
    """
    times = frame_times_s or [video_start_s + i / FPS for i in range(len(frames))]
    tick = Fraction(1, 1000) if frame_times_s else Fraction(1, FPS)
    fmt = {".mp4": "mp4", ".mkv": "matroska", ".avi": "avi"}[path.suffix]
    with av.open(str(path), "w", format=fmt) as out:
        video = out.add_stream("mpeg4" if fmt == "avi" else "libx264", rate=FPS)
        video.height, video.width = frames[0].shape[:2]
        video.pix_fmt = "yuv420p"
        video.time_base = video.codec_context.time_base = tick
        audio = out.add_stream(acodec, rate=RATE)
        audio.layout = "stereo"
        fmt_name = audio.codec_context.format.name
        dtype = {"s16": np.int16, "s32": np.int32, "flt": np.float32}[fmt_name.removesuffix("p")]
        t = audio_start_s + np.arange(round(audio_len_s * RATE)) / RATE
        tone = np.where((t >= BURST_S) & (t < BURST_S + BURST_LEN_S), 0.3 * np.sin(2 * np.pi * 440 * t), 0.0)
        if dtype != np.float32:
            tone = np.round(tone * np.iinfo(dtype).max)
        first_audio = round(audio_start_s * RATE)

        def write_audio(k: int) -> None:  # the 1024 samples from sample k
            chunk = np.stack([tone[k : k + 1024]] * 2).astype(dtype)
            if not audio.codec_context.format.is_planar:
                chunk = chunk.T.reshape(1, -1)
            frame = av.AudioFrame.from_ndarray(chunk, format=fmt_name, layout="stereo")
            frame.sample_rate, frame.pts, frame.time_base = RATE, first_audio + k, Fraction(1, RATE)
            out.mux(audio.encode(frame))

        k = 0  # the next audio sample to write
        for i, image in enumerate(frames):  # interleaved in time, as a camera writes them
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = round(times[i] / tick), tick
            out.mux(video.encode(frame))
            while k < len(t) and t[k] < times[i] + 1 / FPS:
                write_audio(k)
                k += 1024
        out.mux(video.encode(None))
        while k < len(t):  # audio that lasts past the video
            write_audio(k)
            k += 1024
        out.mux(audio.encode(None))


def probe(path: Path) -> dict:
    """What a player gets from ``path``: the audio codec, decoded duration, and the burst onset vs the video.

    Returns a dict with ``codec`` (None without an audio stream), ``duration_s`` (decoded
    samples / rate), ``start_s`` (first decoded audio sample, relative to the first video
    frame), ``onset_s`` (first sample of the burst, |x| >= 0.15, relative to the first
    video frame; times in seconds) and ``frame_at_onset`` (the index of the video frame on
    screen when the burst starts).
    """
    with av.open(str(path)) as c:
        video_times = [float(f.pts * f.time_base) for f in c.decode(video=0)]
        video_t0 = video_times[0]
    with av.open(str(path)) as c:
        if not c.streams.audio:
            return {"codec": None}
        stream = c.streams.audio[0]
        codec = stream.codec_context.codec.canonical_name
        start, chunks = None, []
        to_mono = av.AudioResampler(format="flt", layout="mono", rate=stream.rate)
        for frame in c.decode(stream):
            if start is None:
                start = float(frame.pts * frame.time_base)
            chunks += [f.to_ndarray()[0] for f in to_mono.resample(frame)]
        chunks += [f.to_ndarray()[0] for f in to_mono.resample(None)]
    samples = np.concatenate(chunks)
    loud = np.flatnonzero(np.abs(samples) >= 0.15)
    onset = start + loud[0] / stream.rate if len(loud) else None
    return {
        "codec": codec,
        "duration_s": len(samples) / stream.rate,
        "start_s": start - video_t0,
        "onset_s": None if onset is None else onset - video_t0,
        "frame_at_onset": None if onset is None else int(np.searchsorted(video_times, onset, side="right")) - 1,
    }


def packets(path: Path) -> list[bytes]:
    """The audio packets' payloads of ``path``."""
    with av.open(str(path)) as c:
        return [bytes(p) for p in c.demux(audio=0) if p.size]


def run(source: Path, out: Path, *extra: str) -> None:
    assert main(["run", str(source), "--out", str(out), *RUN, *extra]) == 0


@pytest.mark.parametrize(
    ("name", "encoder", "codec"),
    [("aac.mp4", "aac", "aac"), ("mp3.mkv", "libmp3lame", "mp3"), ("opus.mkv", "libopus", "opus")],
)
def test_mp4_codecs_are_copied_in_sync(
    tmp_path: Path, frames: list[np.ndarray], name: str, encoder: str, codec: str
) -> None:
    source, out = tmp_path / name, tmp_path / "out.mp4"
    make_clip(source, frames, acodec=encoder)
    run(source, out)
    src, got = probe(source), probe(out)
    assert got["codec"] == codec
    assert packets(out) == packets(source)  # remuxed: the same packets, not re-encoded
    assert abs(got["duration_s"] - src["duration_s"]) <= AAC_FRAME_S
    assert abs(got["onset_s"] - src["onset_s"]) <= SYNC_TOL_S
    assert abs(src["onset_s"] - BURST_S) <= SYNC_TOL_S  # the probe finds the burst where it was made


@pytest.mark.parametrize("suffix", [".avi", ".mkv"])
def test_pcm_is_reencoded_to_aac_in_sync(tmp_path: Path, frames: list[np.ndarray], suffix: str) -> None:
    source, out = tmp_path / f"pcm{suffix}", tmp_path / "out.mp4"
    make_clip(source, frames, acodec="pcm_s16le")
    run(source, out)
    src, got = probe(source), probe(out)
    assert src["codec"] == "pcm_s16le" and got["codec"] == "aac"
    assert abs(got["duration_s"] - src["duration_s"]) <= AAC_FRAME_S
    assert abs(got["start_s"] - src["start_s"]) <= SYNC_TOL_S
    assert abs(got["onset_s"] - src["onset_s"]) <= SYNC_TOL_S


def test_audio_starting_after_the_video_keeps_its_offset(tmp_path: Path, frames: list[np.ndarray]) -> None:
    source, out = tmp_path / "late.mkv", tmp_path / "out.mp4"
    make_clip(source, frames, acodec="pcm_s16le", audio_start_s=0.3, audio_len_s=1.7)
    run(source, out)
    src, got = probe(source), probe(out)
    assert abs(src["start_s"] - 0.3) <= SYNC_TOL_S
    assert abs(got["onset_s"] - src["onset_s"]) <= SYNC_TOL_S
    # A late AAC track in MP4 starts with the encoder's 1024 priming samples (silence): the
    # mp4 muxer's empty edit ends at the first packet, priming included (any FFmpeg-written
    # MP4 does this). So its first sample may come one AAC frame early; it ends with the source.
    assert -AAC_FRAME_S - SYNC_TOL_S <= got["start_s"] - src["start_s"] <= SYNC_TOL_S
    end = got["start_s"] + got["duration_s"]
    assert abs(end - (src["start_s"] + src["duration_s"])) <= AAC_FRAME_S


def test_audio_before_the_first_frame_is_cut(tmp_path: Path, frames: list[np.ndarray]) -> None:
    # Video from 0.48 s, audio from 0: the MP4 starts at the first frame, the burst stays with it.
    source, out = tmp_path / "early.mkv", tmp_path / "out.mp4"
    make_clip(source, frames, acodec="pcm_s16le", video_start_s=0.48, audio_len_s=2.48)
    run(source, out)
    src, got = probe(source), probe(out)
    assert abs(src["onset_s"] - (BURST_S - 0.48)) <= SYNC_TOL_S
    assert abs(got["onset_s"] - src["onset_s"]) <= SYNC_TOL_S
    assert abs(got["start_s"]) <= SYNC_TOL_S  # the audio starts with the video
    assert abs(got["duration_s"] - 2.0) <= AAC_FRAME_S  # the video's 2 s, not the source's 2.48 s


def test_variable_frame_rate_keeps_each_sound_with_its_frame(tmp_path: Path, frames: list[np.ndarray]) -> None:
    # Frames 20 ms apart up to frame 24 (0.48 s), then 60 ms apart: the burst (1.0 s) starts
    # while frame 32 (0.96 s) is on screen, where a constant 25 fps would show frame 25.
    times = [0.02 * i if i <= 24 else 0.48 + 0.06 * (i - 24) for i in range(len(frames))]
    source, out = tmp_path / "vfr.mkv", tmp_path / "out.mp4"
    make_clip(source, frames, acodec="aac", frame_times_s=times, audio_len_s=times[-1] + 0.06)
    run(source, out)
    src, got = probe(source), probe(out)
    assert src["frame_at_onset"] == 32
    assert got["frame_at_onset"] == 32
    assert abs(got["onset_s"] - src["onset_s"]) <= SYNC_TOL_S


def test_max_frames_keeps_the_audio_of_the_frames_written(tmp_path: Path, frames: list[np.ndarray]) -> None:
    source, out = tmp_path / "aac.mp4", tmp_path / "out.mp4"
    make_clip(source, frames, acodec="aac")
    run(source, out, "--max-frames", "30", "--detect-every", "3")  # 1.2 s, past the burst's start
    got = probe(out)
    assert abs(got["duration_s"] - 30 / FPS) <= AAC_FRAME_S
    assert abs(got["onset_s"] - probe(source)["onset_s"]) <= SYNC_TOL_S


def test_no_audio_flag_and_sources_without_audio(tmp_path: Path, frames: list[np.ndarray]) -> None:
    source = tmp_path / "aac.mp4"
    make_clip(source, frames, acodec="aac")
    run(source, tmp_path / "silent.mp4", "--no-audio", "--max-frames", "5")
    assert probe(tmp_path / "silent.mp4")["codec"] is None
    run(data_path("videos", "bikes.mp4"), tmp_path / "bikes.mp4", "--max-frames", "5")  # no audio in the source
    with av.open(str(tmp_path / "bikes.mp4")) as c:
        assert [s.type for s in c.streams] == ["video"]
        assert c.streams.video[0].frames == 5


def test_corrupt_audio_packets_leave_the_video_whole_and_the_sound_in_sync(
    tmp_path: Path, frames: list[np.ndarray], caplog: pytest.LogCaptureFixture
) -> None:
    # MP2 is re-encoded (MP4 players do not play it), so its packets are decoded: zero the
    # payload of those between 0.5 s and 0.8 s (12 frames of 1152 samples), before the burst.
    # FFmpeg's MPEG audio parser finds no frame in them: the audio has a 0.3 s hole.
    source, out = tmp_path / "mp2.mkv", tmp_path / "out.mp4"
    make_clip(source, frames, acodec="mp2")
    data = bytearray(source.read_bytes())
    with av.open(str(source)) as c:
        spots = [(data.find(bytes(p), p.pos), p.size) for p in c.demux(audio=0)
                 if p.size and 0.5 <= p.pts * p.time_base < 0.8]  # fmt: skip
    assert len(spots) >= 10 and all(start >= 0 for start, _ in spots)
    for start, size in spots:
        data[start : start + size] = bytes(size)
    source.write_bytes(bytes(data))
    clean = tmp_path / "clean.mkv"
    make_clip(clean, frames, acodec="mp2")

    with caplog.at_level(logging.WARNING, logger="streamseg"):
        run(source, out)
    assert "its audio has gaps (0.288 s in all" in caplog.text  # 12 x 1152 samples at 48 kHz
    with av.open(str(out)) as c:
        assert len(list(c.decode(video=0))) == len(frames)  # every frame written and decodable
    src, got = probe(clean), probe(out)
    assert got["codec"] == "aac"
    assert abs(got["duration_s"] - src["duration_s"]) <= AAC_FRAME_S  # the gap is filled with silence
    assert abs(got["onset_s"] - src["onset_s"]) <= SYNC_TOL_S  # and the sound after it stays in sync


def test_window_recording_started_mid_file_carries_the_audio_from_there(
    tmp_path: Path, frames: list[np.ndarray]
) -> None:
    # The window records through the same VideoOutput: a recording started at frame 20
    # (0.8 s; the audio is read from a seek to 0.3 s) puts the burst (source 1.0 s) at 0.2 s.
    from streamseg_app.output import ViewOutput

    from streamseg.sources import VideoFileSource
    from streamseg.types import FrameResult, Instances

    source = tmp_path / "aac.mp4"
    make_clip(source, frames, acodec="aac")
    view = ViewOutput(categories=["__bg__"], on_frame=lambda frame: None, fps=Fraction(FPS), audio_from=source,
                      pace=False)  # fmt: skip
    with VideoFileSource(source) as src:
        for frame in src:
            if frame.index == 20:
                view.start_recording(tmp_path / "rec.mp4", tmp_path / "rec.jsonl")
            view.write(FrameResult(frame=frame, instances=Instances.empty(frame.image.shape[:2]), timings_ms={}), None)
    view.close()
    got = probe(tmp_path / "rec.mp4")
    assert got["codec"] == "aac"
    assert abs(got["onset_s"] - (probe(source)["onset_s"] - 20 / FPS)) <= SYNC_TOL_S
    assert abs(got["start_s"]) <= SYNC_TOL_S
    assert abs(got["duration_s"] - 30 / FPS) <= AAC_FRAME_S
