"""Calibration frames for INT8: a sample of the user's own video or image folder, and its digest.

Calibration should look like deployment: frames of the cameras the model will watch.
:func:`sample_frames` picks frames spread over a video file or an image folder (any
source :func:`streamseg.sources.open_source` reads); :func:`calibration_source_digest`
names that calibration set in a cache key (the files' names and bytes and the frame
count), so a quantized model is never reused for another set. Used by the OpenVINO
backend's INT8 (NNCF) and by the TensorRT engine builder (ModelOpt).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from streamseg.errors import ConfigError, SourceError

__all__ = ["DEFAULT_CALIB_FRAMES", "calibration_source_digest", "sample_frames"]

#: Frames used for calibration by default (TensorRT suggests a few hundred for CNNs;
#: 64 keeps ModelOpt's ONNX Runtime calibration pass of Mask R-CNN to minutes).
DEFAULT_CALIB_FRAMES = 64


def sample_frames(source: str | Path, count: int) -> list[np.ndarray]:
    """Up to ``count`` RGB frames spread evenly over a video file or an image folder.

    Args:
        source: a video file or a folder of images.
        count: how many frames (at least 1).

    Returns:
        A list of (H, W, 3) uint8 RGB arrays (fewer than ``count`` for a short source).

    Raises:
        ConfigError: ``count`` < 1, or ``source`` is not a file or folder.
        SourceError: the source cannot be read or has no frame.
    """
    from streamseg.sources import open_source

    if count < 1:
        raise ConfigError(f"the number of calibration frames must be at least 1, got {count}")
    path = Path(source)
    if not path.exists():
        raise ConfigError(f"calibration source {source} does not exist (give a video file or an image folder)")
    src = open_source(str(path))
    try:
        info = src.open()
        total = info.num_frames or count
        stride = max(1, total // count)
        frames = []
        for index, frame in enumerate(src):
            if index % stride == 0:
                frames.append(np.array(frame.image))
                if len(frames) == count:
                    break
    finally:
        src.stop()
    if not frames:
        raise SourceError(f"no frame could be read from the calibration source {source}")
    return frames


def calibration_source_digest(source: str | Path, count: int) -> str:
    """sha256 naming an INT8 calibration set: the source's files (names and bytes) and the frame count.

    Raises:
        ConfigError: the source does not exist.
    """
    from streamseg.models.weights import file_sha256

    path = Path(source)
    if not path.exists():
        raise ConfigError(f"calibration source {source} does not exist (give a video file or an image folder)")
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    digest = hashlib.sha256(f"frames={int(count)};".encode())
    for f in files:
        digest.update(f"{f.relative_to(path) if path.is_dir() else f.name}:{file_sha256(f)};".encode())
    return digest.hexdigest()
