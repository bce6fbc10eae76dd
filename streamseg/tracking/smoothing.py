"""The One Euro filter, for smoothing the keypoints of a track over time.

Casiez, Roussel and Vogel, "1 Euro Filter: A Simple Speed-based Low-pass Filter for
Noisy Input in Interactive Systems" (CHI 2012). Each signal is low-pass filtered by
an exponential smoother whose cutoff frequency rises with the signal's speed: slow
motion is smoothed strongly (less jitter), fast motion lightly (less lag). With
``dt`` the time since the previous sample (seconds):

* ``alpha(fc) = 1 / (1 + tau / dt)``, ``tau = 1 / (2 pi fc)`` (section "Implementation",
  the smoothing factor of a first-order low-pass filter of cutoff ``fc`` Hz);
* ``dx = (x - x_hat_prev) / dt``, smoothed with the fixed cutoff ``d_cutoff``:
  ``dx_hat = alpha(d_cutoff) dx + (1 - alpha(d_cutoff)) dx_hat_prev``;
* ``fc = min_cutoff + beta |dx_hat|``;
* ``x_hat = alpha(fc) x + (1 - alpha(fc)) x_hat_prev``.

The first sample passes through unchanged. Here every coordinate is its own signal,
as in the paper's reference code (one filter per dimension).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["OneEuroFilter", "smoothing_factor"]


def smoothing_factor(cutoff_hz: np.ndarray | float, dt_s: float) -> np.ndarray:
    """``alpha = 1 / (1 + tau / dt)`` with ``tau = 1 / (2 pi cutoff)`` (Casiez et al. 2012).

    Args:
        cutoff_hz: cutoff frequency in Hz, a scalar or an array.
        dt_s: time step in seconds, > 0.

    Returns:
        alpha in (0, 1], same shape as ``cutoff_hz`` (float64).
    """
    tau = 1.0 / (2.0 * math.pi * np.asarray(cutoff_hz, dtype=np.float64))
    return 1.0 / (1.0 + tau / dt_s)


class OneEuroFilter:
    """A One Euro filter over an array of independent signals (for example (17, 2) keypoints).

    NaN inputs (a keypoint the detector did not give) pass through as NaN and restart
    the filter of that signal: its next finite value is taken unchanged.

    Args:
        min_cutoff_hz: minimum cutoff frequency (Hz); lower smooths more at low speed.
        beta: speed coefficient (1 / signal unit, here 1 / pixel); higher lags less
            at high speed.
        d_cutoff_hz: cutoff (Hz) of the derivative's smoother (the paper uses 1 Hz).

    Raises:
        ValueError: if a cutoff is not positive or beta is negative.
    """

    def __init__(self, *, min_cutoff_hz: float = 1.0, beta: float = 0.01, d_cutoff_hz: float = 1.0) -> None:
        if min_cutoff_hz <= 0 or d_cutoff_hz <= 0 or beta < 0:
            raise ValueError(
                f"One Euro needs min_cutoff_hz > 0, d_cutoff_hz > 0 and beta >= 0, "
                f"got {min_cutoff_hz}, {d_cutoff_hz}, {beta}"
            )
        self.min_cutoff_hz = float(min_cutoff_hz)
        self.beta = float(beta)
        self.d_cutoff_hz = float(d_cutoff_hz)
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t: float | None = None

    def reset(self) -> None:
        """Forget the history: the next sample passes through unchanged."""
        self._x = self._dx = None
        self._t = None

    def __call__(self, x: np.ndarray, t_s: float) -> np.ndarray:
        """Filter one sample.

        Args:
            x: the signals at time ``t_s``, any shape (kept between calls; a change of
                shape restarts the filter), float.
            t_s: sample time in seconds; a time not after the previous one restarts
                the filter (the sample passes unchanged).

        Returns:
            The filtered signals, float64, same shape as ``x``; a new array.
        """
        x = np.asarray(x, dtype=np.float64)
        prev_x, prev_dx, prev_t = self._x, self._dx, self._t
        if prev_x is None or prev_dx is None or prev_t is None or prev_x.shape != x.shape or t_s <= prev_t:
            self._x, self._dx, self._t = x.copy(), np.zeros_like(x), float(t_s)
            return x.copy()
        dt = float(t_s) - prev_t
        fresh = ~np.isfinite(prev_x)  # restarted signals take the sample as is
        alpha_d = smoothing_factor(self.d_cutoff_hz, dt)
        dx_hat = np.where(fresh, 0.0, alpha_d * (x - prev_x) / dt + (1.0 - alpha_d) * prev_dx)
        alpha = smoothing_factor(self.min_cutoff_hz + self.beta * np.abs(dx_hat), dt)
        x_hat = np.where(fresh, x, alpha * x + (1.0 - alpha) * prev_x)
        missing = ~np.isfinite(x)
        x_hat = np.where(missing, np.nan, x_hat)
        dx_hat = np.where(missing, 0.0, dx_hat)
        self._x, self._dx, self._t = x_hat, dx_hat, float(t_s)
        return x_hat.copy()
