"""INT8 calibration data: frames of a video or an image folder, preprocessed as the engine's input.

Calibration should look like deployment: frames of the cameras the engine will
watch. :func:`calibration_arrays` samples ``count`` frames spread over a video file
or an image folder (any source :func:`streamseg.sources.open_source` reads), runs
the same preprocessing as the TensorRT backend, and stacks them into the
``{input name: array}`` dict ModelOpt's ``quantize(calibration_data=...)`` takes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from streamseg.errors import ConfigError, SourceError

__all__ = ["DEFAULT_CALIB_FRAMES", "calibration_arrays", "sample_frames"]

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


def calibration_arrays(
    frames: list[np.ndarray],
    preprocess: Callable[[np.ndarray], tuple[np.ndarray, tuple[int, int]]],
    *,
    score_thresh: float = 0.05,
) -> dict[str, np.ndarray]:
    """Stack preprocessed frames into the graph's inputs.

    Args:
        frames: (H, W, 3) uint8 RGB images.
        preprocess: ``image -> ((1, 3, H, W) float32, (h, w))``, the engine's preprocessing.
        score_thresh: the ``score_thresh`` input during calibration (low, so the mask
            head sees many RoIs, as it does at a low deployment threshold).

    Returns:
        ``{"images": (N, 3, H, W) float32, "image_size": (2 N,) float32,
        "score_thresh": (N,) float32}``, N = len(frames): ModelOpt splits every array
        along its first axis into N pieces of the input's shape ((1, 3, H, W), (2,), (1,)).
    """
    images, sizes = [], []
    for frame in frames:
        array, (h, w) = preprocess(frame)
        images.append(np.asarray(array, np.float32).reshape(array.shape[-3:]))
        sizes.append((h, w))
    n = len(images)
    return {
        "images": np.stack(images).astype(np.float32),
        "image_size": np.asarray(sizes, np.float32).reshape(2 * n),
        "score_thresh": np.full((n,), score_thresh, np.float32),
    }
