"""Bounded queues between pipeline stages, with an explicit full-queue policy.

Two policies (DESIGN.md, "Data flow"):

* ``"block"``: ``put`` waits for room. Used after file sources, so no frame is ever lost.
* ``"drop_oldest"``: ``put`` never waits; when the queue is full, the oldest item is
  discarded and counted. Used after live sources, so latency stays bounded.

A queue is closed once by its producer (``close()``), optionally with an error;
the consumer then drains what is left and sees end of stream. ``cancel()`` is
for the consumer side: it wakes a blocked producer, which then gets ``False``
from ``put``.
"""

from __future__ import annotations

import collections
import threading
from typing import Generic, Literal, TypeVar

__all__ = ["BoundedQueue", "QueueClosed", "Policy"]

T = TypeVar("T")
Policy = Literal["block", "drop_oldest"]


class QueueClosed(Exception):
    """Raised by :meth:`BoundedQueue.get` once the queue is closed and drained."""


class BoundedQueue(Generic[T]):
    """A thread-safe FIFO of at most ``maxsize`` items with a full-queue policy.

    Args:
        maxsize: capacity, >= 1.
        policy: ``"block"`` or ``"drop_oldest"`` (see the module docstring).

    Attributes:
        dropped: number of items discarded by the ``drop_oldest`` policy.
        error: the exception the producer closed the queue with, or None.
    """

    def __init__(self, maxsize: int, policy: Policy = "block") -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1, got {maxsize}")
        if policy not in ("block", "drop_oldest"):
            raise ValueError(f"unknown queue policy {policy!r}")
        self.maxsize = maxsize
        self.policy: Policy = policy
        self.dropped = 0
        self.error: BaseException | None = None
        self._items: collections.deque[T] = collections.deque()
        self._closed = False
        self._cancelled = False
        self._cond = threading.Condition()

    def put(self, item: T, timeout: float | None = None) -> bool:
        """Append ``item``.

        Returns:
            True if the item was queued; False if the queue was cancelled or
            closed, or (``block`` policy) ``timeout`` seconds passed without room.
        """
        with self._cond:
            if self._closed or self._cancelled:
                return False
            if self.policy == "drop_oldest":
                while len(self._items) >= self.maxsize:
                    self._items.popleft()
                    self.dropped += 1
            else:
                ok = self._cond.wait_for(
                    lambda: len(self._items) < self.maxsize or self._cancelled or self._closed, timeout
                )
                if not ok or self._cancelled or self._closed:
                    return False
            self._items.append(item)
            self._cond.notify_all()
            return True

    def get(self, timeout: float | None = None) -> T:
        """Remove and return the oldest item.

        Raises:
            QueueClosed: the queue is closed (or cancelled) and empty.
            TimeoutError: ``timeout`` seconds passed with no item.
        """
        with self._cond:
            ok = self._cond.wait_for(lambda: self._items or self._closed or self._cancelled, timeout)
            if self._items and not self._cancelled:
                item = self._items.popleft()
                self._cond.notify_all()
                return item
            if self._closed or self._cancelled:
                raise QueueClosed
            if not ok:
                raise TimeoutError
            raise QueueClosed  # pragma: no cover - unreachable

    def close(self, error: BaseException | None = None) -> None:
        """Producer side: no more items will come. Items already queued can still be read."""
        with self._cond:
            if error is not None and self.error is None:
                self.error = error
            self._closed = True
            self._cond.notify_all()

    def cancel(self) -> None:
        """Consumer side: stop now. Pending items are discarded and blocked producers wake up."""
        with self._cond:
            self._cancelled = True
            self._items.clear()
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        """True once the producer closed the queue or the consumer cancelled it."""
        return self._closed or self._cancelled

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)
