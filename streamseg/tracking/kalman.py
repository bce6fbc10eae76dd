"""A constant-velocity Kalman filter for image boxes, as in DeepSORT and ByteTrack.

State (8,): ``(cx, cy, a, h, vcx, vcy, va, vh)``: the box centre (pixels), its aspect
ratio ``a = w / h`` (unitless), its height (pixels) and their velocities per frame.
The measurement (4,) is ``(cx, cy, a, h)``. The motion model is constant velocity
with a time step of one frame; process and measurement noise standard deviations
are proportional to the box height, so that a large (near) box may move and jitter
more pixels than a small (far) one.

Sources: Wojke, Bewley and Paulus, "Simple Online and Realtime Tracking with a Deep
Association Metric" (ICIP 2017), section 2.1, and its ``deep_sort/kalman_filter.py``;
Zhang et al., "ByteTrack: Multi-Object Tracking by Associating Every Detection Box"
(ECCV 2022), whose ``yolox/tracker/kalman_filter.py`` is the same filter with a
vectorised ``multi_predict``. Every constant below is taken from those files.

Every function here is vectorised over a leading batch axis (T tracks) and pure: it
returns new arrays and never modifies its arguments.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "STATE_DIM",
    "MEASUREMENT_DIM",
    "STD_WEIGHT_POSITION",
    "STD_WEIGHT_VELOCITY",
    "initiate",
    "predict",
    "project",
    "update",
    "xyxy_to_xyah",
    "xyah_to_xyxy",
]

#: Length of the state vector (cx, cy, a, h, vcx, vcy, va, vh).
STATE_DIM = 8
#: Length of the measurement vector (cx, cy, a, h).
MEASUREMENT_DIM = 4
#: Position noise std as a fraction of the box height (``_std_weight_position = 1. / 20``).
STD_WEIGHT_POSITION = 1.0 / 20.0
#: Velocity noise std as a fraction of the box height per frame (``_std_weight_velocity = 1. / 160``).
STD_WEIGHT_VELOCITY = 1.0 / 160.0

#: Constant-velocity transition F (8, 8) for one frame: position += velocity.
_MOTION = np.eye(STATE_DIM) + np.eye(STATE_DIM, k=MEASUREMENT_DIM)


def xyxy_to_xyah(boxes: np.ndarray) -> np.ndarray:
    """Convert xyxy boxes to the measurement space.

    Args:
        boxes: (T, 4) xyxy pixels.

    Returns:
        (T, 4) float64 ``(cx, cy, w / h, h)``. A zero height gives an infinite or NaN
        aspect ratio: callers pass only boxes of positive area.
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    w = b[:, 2] - b[:, 0]
    h = b[:, 3] - b[:, 1]
    return np.stack([b[:, 0] + 0.5 * w, b[:, 1] + 0.5 * h, w / h, h], axis=1)


def xyah_to_xyxy(xyah: np.ndarray) -> np.ndarray:
    """Convert ``(cx, cy, a, h, ...)`` rows back to xyxy boxes.

    Negative widths or heights (a filter driven far by a large velocity) are clipped to 0.

    Args:
        xyah: (T, >=4) states or measurements; only the first four columns are read.

    Returns:
        (T, 4) float64 xyxy pixels.
    """
    s = np.asarray(xyah, dtype=np.float64).reshape(len(xyah), -1)
    h = np.maximum(s[:, 3], 0.0)
    w = np.maximum(s[:, 2] * h, 0.0)
    return np.stack([s[:, 0] - 0.5 * w, s[:, 1] - 0.5 * h, s[:, 0] + 0.5 * w, s[:, 1] + 0.5 * h], axis=1)


def initiate(measurements: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Create tracks from unassociated measurements (``KalmanFilter.initiate``).

    The velocities start at 0. The initial standard deviations are
    ``[2 wp h, 2 wp h, 1e-2, 2 wp h, 10 wv h, 10 wv h, 1e-5, 10 wv h]`` with
    ``wp = STD_WEIGHT_POSITION``, ``wv = STD_WEIGHT_VELOCITY`` (ByteTrack kalman_filter.py).

    Args:
        measurements: (T, 4) ``(cx, cy, a, h)``, pixels (a unitless).

    Returns:
        ``(mean, covariance)``: (T, 8) and (T, 8, 8) float64.
    """
    m = np.asarray(measurements, dtype=np.float64).reshape(-1, MEASUREMENT_DIM)
    n = m.shape[0]
    mean = np.concatenate([m, np.zeros_like(m)], axis=1)
    h = m[:, 3]
    wp, wv = STD_WEIGHT_POSITION, STD_WEIGHT_VELOCITY
    std = np.stack(
        [
            2 * wp * h,
            2 * wp * h,
            np.full(n, 1e-2),
            2 * wp * h,
            10 * wv * h,
            10 * wv * h,
            np.full(n, 1e-5),
            10 * wv * h,
        ],
        axis=1,
    )
    cov = np.zeros((n, STATE_DIM, STATE_DIM))
    idx = np.arange(STATE_DIM)
    cov[:, idx, idx] = std**2
    return mean, cov


def predict(mean: np.ndarray, covariance: np.ndarray, steps: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Run the prediction step ``steps`` times (``KalmanFilter.multi_predict``).

    One step: ``x' = F x``, ``P' = F P F^T + Q`` with F the constant-velocity transition
    and ``Q = diag([wp h, wp h, 1e-2, wp h, wv h, wv h, 1e-5, wv h]^2)``, h the current
    height estimate (ByteTrack kalman_filter.py ``multi_predict``). Repeating the step
    ``steps`` times (rather than using ``F^k`` once) accumulates the process noise of
    every skipped frame.

    Args:
        mean: (T, 8) states.
        covariance: (T, 8, 8) covariances.
        steps: number of frames to predict ahead, >= 0.

    Returns:
        ``(mean, covariance)``: new (T, 8) and (T, 8, 8) float64 arrays.
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    mean = np.array(mean, dtype=np.float64, copy=True).reshape(-1, STATE_DIM)
    cov = np.array(covariance, dtype=np.float64, copy=True).reshape(-1, STATE_DIM, STATE_DIM)
    if mean.shape[0] == 0:
        return mean, cov
    wp, wv = STD_WEIGHT_POSITION, STD_WEIGHT_VELOCITY
    idx = np.arange(STATE_DIM)
    for _ in range(steps):
        h = mean[:, 3]
        const_a = np.full_like(h, 1e-2)
        const_va = np.full_like(h, 1e-5)
        std = np.stack([wp * h, wp * h, const_a, wp * h, wv * h, wv * h, const_va, wv * h], axis=1)
        mean = mean @ _MOTION.T
        cov = _MOTION @ cov @ _MOTION.T
        cov[:, idx, idx] += std**2
    return mean, cov


def project(mean: np.ndarray, covariance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project states to measurement space (``KalmanFilter.project``).

    ``z = H x``, ``S = H P H^T + R`` with ``R = diag([wp h, wp h, 1e-1, wp h]^2)``.

    Args:
        mean: (T, 8) states.
        covariance: (T, 8, 8) covariances.

    Returns:
        ``(mean, covariance)``: (T, 4) and (T, 4, 4) float64.
    """
    mean = np.asarray(mean, dtype=np.float64).reshape(-1, STATE_DIM)
    cov = np.asarray(covariance, dtype=np.float64).reshape(-1, STATE_DIM, STATE_DIM)
    h = mean[:, 3]
    wp = STD_WEIGHT_POSITION
    std = np.stack([wp * h, wp * h, np.full_like(h, 1e-1), wp * h], axis=1)
    proj_mean = mean[:, :MEASUREMENT_DIM].copy()
    proj_cov = cov[:, :MEASUREMENT_DIM, :MEASUREMENT_DIM].copy()
    idx = np.arange(MEASUREMENT_DIM)
    proj_cov[:, idx, idx] += std**2
    return proj_mean, proj_cov


def update(
    mean: np.ndarray, covariance: np.ndarray, measurements: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Run the correction step (``KalmanFilter.update``), batched over T tracks.

    ``K = P H^T S^-1``, ``x' = x + K (z - H x)``, ``P' = P - K S K^T`` with ``S`` from
    :func:`project`. ByteTrack solves with a Cholesky factorisation per track; here one
    batched ``numpy.linalg.solve`` of the (T, 4, 4) symmetric positive definite S.

    Args:
        mean: (T, 8) predicted states.
        covariance: (T, 8, 8) predicted covariances.
        measurements: (T, 4) ``(cx, cy, a, h)`` associated with each track.

    Returns:
        ``(mean, covariance)``: corrected (T, 8) and (T, 8, 8) float64.
    """
    mean = np.asarray(mean, dtype=np.float64).reshape(-1, STATE_DIM)
    cov = np.asarray(covariance, dtype=np.float64).reshape(-1, STATE_DIM, STATE_DIM)
    z = np.asarray(measurements, dtype=np.float64).reshape(-1, MEASUREMENT_DIM)
    if mean.shape[0] == 0:
        return mean.copy(), cov.copy()
    proj_mean, proj_cov = project(mean, cov)
    pht = cov[:, :, :MEASUREMENT_DIM]  # P H^T: (T, 8, 4)
    # K^T = S^-1 (P H^T)^T, S symmetric.
    gain = np.swapaxes(np.linalg.solve(proj_cov, np.swapaxes(pht, 1, 2)), 1, 2)  # (T, 8, 4)
    innovation = z - proj_mean
    new_mean = mean + np.einsum("tij,tj->ti", gain, innovation)
    new_cov = cov - gain @ proj_cov @ np.swapaxes(gain, 1, 2)
    return new_mean, new_cov
