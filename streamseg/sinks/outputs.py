"""The :class:`Output` protocol every stream output follows, and the file outputs of a run.

A stream's processor (:class:`~streamseg.core.processor.StreamProcessor`) hands each
written frame to its outputs in order. Outputs that ``needs_image`` receive the
rendered frame (drawn once per frame for all of them). Each output is timed under its
``stage`` name, which becomes a key of ``FrameResult.timings_ms`` for the outputs after
it and of the run's metrics.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from streamseg.sinks.coco_json import CocoJsonWriter
from streamseg.sinks.jsonl import JsonlWriter
from streamseg.sinks.mot import MotWriter
from streamseg.sinks.video import VideoWriter, letterbox
from streamseg.types import FrameResult

if TYPE_CHECKING:
    from streamseg.config import OutputConfig

__all__ = ["Output", "VideoOutput", "JsonlOutput", "CocoJsonOutput", "MotOutput", "file_outputs"]


@runtime_checkable
class Output(Protocol):
    """Where a stream's results go.

    Attributes:
        needs_image: receive the rendered (H, W, 3) uint8 RGB frame in :meth:`write`.
        stage: the timing key of this output's write, e.g. ``"encode"``.

    An output may also set ``threaded = True``: the stream's processor then writes it from
    a thread of its own (:class:`~streamseg.core.output_worker.OutputWorker`), frames in
    order, so its work (mostly with the GIL released: encoding, RLE) overlaps drawing.
    It must then not need the other outputs' timings of the same frame.
    """

    needs_image: bool
    stage: str

    def write(self, result: FrameResult, image: np.ndarray | None) -> None:
        """Write one frame's result (and its rendered image when ``needs_image``).

        Raises:
            SinkError: the write failed (disk full, ...); what was written stays valid.
        """

    def close(self) -> None:
        """Flush and close; idempotent. What was written stays valid."""


class VideoOutput:
    """The annotated video: H.264 MP4 with the input's size and frame timing.

    The writer opens on the first frame, when the frame size is known. The video has
    the first frame's size: a later frame of another size (a folder of photos of
    different sizes) is letterboxed into it (scaled to keep its aspect ratio, centred,
    black bars; :func:`~streamseg.sinks.video.letterbox`). The JSONL and COCO outputs
    keep each frame's own size and coordinates.

    Args:
        path: the .mp4 to write (its folder is created).
        fps: the source's average frame rate (frames per second) for the stream header,
            or None (live: timing from pts only).
        audio_from: the video file the frames come from, whose audio the MP4 carries
            (in sync, over the span of the frames written; see :mod:`streamseg.sinks.audio`),
            or None for a video-only MP4 (live sources, image folders, ``--no-audio``).
    """

    needs_image = True
    stage = "encode"
    threaded = True  # libx264 and the RGB -> YUV conversion run with the GIL released

    def __init__(self, path: str | Path, *, fps: float | None, audio_from: str | Path | None = None) -> None:
        self.path = Path(path)
        self.fps = fps
        self.audio_from = audio_from
        self._writer: VideoWriter | None = None

    def write(self, result: FrameResult, image: np.ndarray | None) -> None:
        assert image is not None
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = VideoWriter(
                self.path, width=image.shape[1], height=image.shape[0], fps=self.fps, audio_from=self.audio_from
            )
        self._writer.write(letterbox(image, self._writer.height, self._writer.width), result.frame.pts_s)

    @property
    def frames_written(self) -> int:
        """Frames written so far."""
        return 0 if self._writer is None else self._writer.frames_written

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


class JsonlOutput:
    """Per-frame results as JSON lines (see :mod:`streamseg.sinks.jsonl` for the schema), flushed per line.

    ``append`` writes after the lines the file already holds (a monitor stream resumed
    after its process was restarted).
    """

    needs_image = False
    stage = "jsonl"
    threaded = True  # mask pasting (cv2) and RLE compression (pycocotools) overlap drawing

    def __init__(self, path: str | Path, *, categories: Sequence[str], append: bool = False) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = JsonlWriter(self.path, categories=categories, append=append)

    def write(self, result: FrameResult, image: np.ndarray | None) -> None:
        self._writer.write(result)

    def close(self) -> None:
        self._writer.close()


class CocoJsonOutput:
    """A COCO results json list of every frame's instances (``--coco-json``; :mod:`streamseg.sinks.coco_json`)."""

    needs_image = False
    stage = "coco_json"
    threaded = True  # RLE compression (pycocotools) overlaps drawing

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = CocoJsonWriter(self.path)

    def write(self, result: FrameResult, image: np.ndarray | None) -> None:
        self._writer.write(result)

    def close(self) -> None:
        self._writer.close()


class MotOutput:
    """Tracks as a MOT Challenge txt file (``frame,id,x,y,w,h,conf,-1,-1,-1``, frames 1-based).

    ``interpolate_max_gap`` > 0 fills track gaps of up to that many frames when the
    output is closed (see :class:`~streamseg.sinks.mot.MotWriter`); ``append`` writes
    after the lines the file already holds.
    """

    needs_image = False
    stage = "mot"

    def __init__(self, path: str | Path, *, interpolate_max_gap: int = 0, append: bool = False) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = MotWriter(self.path, interpolate_max_gap=interpolate_max_gap, append=append)

    def write(self, result: FrameResult, image: np.ndarray | None) -> None:
        self._writer.write(result.frame.index, result.instances)

    def close(self) -> None:
        self._writer.close()


def file_outputs(
    config: OutputConfig,
    *,
    categories: Sequence[str],
    fps: float | None,
    audio_from: str | Path | None = None,
) -> list[Output]:
    """The file outputs a :class:`~streamseg.config.OutputConfig` asks for: video, JSONL, COCO json, MOT (in that order).

    Args:
        config: which files to write.
        categories: the backend's class names (the JSONL's ``label``).
        fps: the source's frame rate, for the MP4 header.
        audio_from: the source video file, whose audio the MP4 carries unless
            ``config.audio`` is False; None for a source without a file (live, image folder).

    Raises:
        SinkError: a file cannot be created.
    """
    outputs: list[Output] = []
    if config.video is not None:
        outputs.append(VideoOutput(config.video, fps=fps, audio_from=audio_from if config.audio else None))
    if config.jsonl is not None:
        outputs.append(JsonlOutput(config.jsonl, categories=categories))
    if config.coco_json is not None:
        outputs.append(CocoJsonOutput(config.coco_json))
    if config.mot is not None:
        outputs.append(MotOutput(config.mot, interpolate_max_gap=config.mot_interpolate))
    return outputs
