from __future__ import annotations

import threading
import time

import pytest

from streamseg.queues import BoundedQueue, QueueClosed


def test_block_policy_never_drops_and_preserves_order() -> None:
    q: BoundedQueue[int] = BoundedQueue(2, "block")
    received: list[int] = []

    def consume() -> None:
        while True:
            try:
                received.append(q.get())
            except QueueClosed:
                return
            time.sleep(0.001)

    t = threading.Thread(target=consume)
    t.start()
    for i in range(100):
        assert q.put(i)
    q.close()
    t.join(5)
    assert received == list(range(100)) and q.dropped == 0


def test_drop_oldest_keeps_newest_and_counts() -> None:
    q: BoundedQueue[int] = BoundedQueue(2, "drop_oldest")
    for i in range(5):
        assert q.put(i)
    assert q.dropped == 3
    assert [q.get(), q.get()] == [3, 4]


def test_close_drains_then_raises_and_keeps_error() -> None:
    q: BoundedQueue[int] = BoundedQueue(3)
    q.put(1)
    q.close(RuntimeError("boom"))
    assert q.get() == 1
    with pytest.raises(QueueClosed):
        q.get()
    assert isinstance(q.error, RuntimeError)
    assert not q.put(2)


def test_cancel_wakes_a_blocked_producer() -> None:
    q: BoundedQueue[int] = BoundedQueue(1)
    q.put(0)
    results: list[bool] = []
    t = threading.Thread(target=lambda: results.append(q.put(1)))
    t.start()
    time.sleep(0.05)
    q.cancel()
    t.join(1)
    assert not t.is_alive() and results == [False]


def test_get_timeout() -> None:
    q: BoundedQueue[int] = BoundedQueue(1)
    with pytest.raises(TimeoutError):
        q.get(timeout=0.01)
