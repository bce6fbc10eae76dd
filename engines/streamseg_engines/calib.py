"""INT8 calibration data for ModelOpt: sampled frames, preprocessed as the engine's input.

The frames come from :func:`streamseg.calibration.sample_frames` (a sample of the user's
video or image folder); :func:`calibration_arrays` runs the TensorRT backend's
preprocessing on them and stacks them into the ``{input name: array}`` dict ModelOpt's
``quantize(calibration_data=...)`` takes.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["calibration_arrays"]


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
