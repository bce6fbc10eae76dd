"""What a live source reports and how it retries: its states, state events and backoff.

* :data:`State` / :data:`STATES`: the states of a :class:`~streamseg.sources.LiveSource`
  (``connecting -> streaming -> reconnecting -> streaming -> ... -> stopped``, or
  ``failed`` when the attempts run out);
* :class:`StateEvent`: one state change, with its ``time.monotonic()`` time and a
  credential-free reason, as kept in ``LiveSource.events`` and passed to ``on_state``;
* :class:`Backoff`: the capped exponential delays between reconnection attempts and
  the attempt limit.

Plain values with no PyAV or thread in them, so UIs, monitors and configuration can use
them without opening a stream. Also importable from :mod:`streamseg.sources` and
:mod:`streamseg.sources.live`.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

__all__ = [
    "Backoff",
    "StateEvent",
    "State",
    "STATES",
]

#: A live source's state, one of :data:`STATES`.
State = Literal["connecting", "streaming", "reconnecting", "stopped", "failed"]
#: Every state a live source reports, in the order they normally occur.
STATES: tuple[str, ...] = ("connecting", "streaming", "reconnecting", "stopped", "failed")


@dataclasses.dataclass(frozen=True)
class Backoff:
    """Capped exponential backoff between reconnection attempts.

    The n-th consecutive failed attempt (n = 1, 2, ...) waits
    ``min(initial_s * factor ** (n - 1), max_s)`` seconds; a connection that
    delivers a frame resets n.

    Attributes:
        initial_s: first delay in seconds, > 0.
        max_s: largest delay in seconds, >= initial_s.
        factor: growth per failed attempt, >= 1.
        max_attempts: give up (state ``failed``, :class:`SourceError` from
            ``read``) after this many consecutive failed attempts; None retries forever.

    Raises:
        ValueError: ``initial_s <= 0``, ``max_s < initial_s``, ``factor < 1`` or
            ``max_attempts < 1``.
    """

    initial_s: float = 0.5
    max_s: float = 30.0
    factor: float = 2.0
    max_attempts: int | None = None

    def __post_init__(self) -> None:
        if not self.initial_s > 0 or self.max_s < self.initial_s or self.factor < 1:
            raise ValueError(
                f"backoff needs 0 < initial_s <= max_s and factor >= 1, got "
                f"initial_s={self.initial_s}, max_s={self.max_s}, factor={self.factor}"
            )
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1 or None, got {self.max_attempts}")

    def delay_s(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        return min(self.initial_s * self.factor ** max(attempt - 1, 0), self.max_s)


@dataclasses.dataclass(frozen=True)
class StateEvent:
    """One state change of a live source.

    Attributes:
        state: the new state.
        t: ``time.monotonic()`` of the change, seconds.
        detail: why, without credentials (e.g. the error that caused a reconnect).
    """

    state: str
    t: float
    detail: str = ""
