"""An output written in its own thread, so its work overlaps drawing and the other outputs.

H.264 encoding (libx264 through PyAV) and the JSONL's mask RLEs (OpenCV, pycocotools)
run mostly in C with the GIL released, so on a multi-core CPU an encoder thread and a
JSONL thread run beside the stream's output thread, which draws the next frame
(``benchmarks/cpu_side.py`` measures the gain). An :class:`OutputWorker` gives one
:class:`~streamseg.sinks.outputs.Output` that thread: frames reach it in order through a
small blocking queue (a full queue holds the stream's output thread back, so nothing
is lost and memory stays bounded), and an error it raises is kept and raised again
by the next :meth:`OutputWorker.put` or by :meth:`OutputWorker.close`, after which the
worker keeps writing later frames (the monitor counts a failed frame and goes on;
``streamseg run`` stops at the error).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np

from streamseg.queues import BoundedQueue, QueueClosed
from streamseg.sinks.outputs import Output
from streamseg.types import FrameResult

__all__ = ["OutputWorker", "QUEUE_FRAMES"]

#: Frames queued before an output's thread (two keep it busy while the next frame is drawn).
QUEUE_FRAMES = 2


class OutputWorker:
    """One output's writing thread (see the module docstring).

    Args:
        output: the output to write; :meth:`close` closes it.
        name: the thread's name (``streamseg-<stage>:<stream>``).
        on_timing: called in the worker's thread with ``(stage, ms)`` after each write.

    Raises:
        Nothing at construction; the thread starts at once.
    """

    def __init__(self, output: Output, *, name: str, on_timing: Callable[[str, float], None]) -> None:
        self.output = output
        self._on_timing = on_timing
        self._queue: BoundedQueue[tuple[FrameResult, np.ndarray | None]] = BoundedQueue(QUEUE_FRAMES, "block")
        self._errors: list[BaseException] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def put(self, result: FrameResult, image: np.ndarray | None) -> None:
        """Queue one frame for the output (waits while the queue is full).

        The frame is queued even when an earlier frame's error is raised: an output that
        failed once (a full disk) still gets the frames after it.

        Raises:
            StreamsegError: the error an earlier frame's write raised (each error once, oldest first).
        """
        self._queue.put((result, image))
        self._raise_pending()

    def close(self) -> list[BaseException]:
        """Write what is queued, stop the thread, close the output; returns the errors not yet raised."""
        self._queue.close()
        self._thread.join()
        errors = self._take_errors()
        try:
            self.output.close()
        except BaseException as exc:  # noqa: BLE001 - returned to the caller
            errors.append(exc)
        return errors

    def _loop(self) -> None:
        stage = self.output.stage
        while True:
            try:
                result, image = self._queue.get()
            except QueueClosed:
                return
            t0 = time.perf_counter()
            try:
                self.output.write(result, image)
            except BaseException as exc:  # noqa: BLE001 - raised again in the stream's thread
                with self._lock:
                    self._errors.append(exc)
                continue
            self._on_timing(stage, (time.perf_counter() - t0) * 1000.0)

    def _take_errors(self) -> list[BaseException]:
        with self._lock:
            errors, self._errors = self._errors, []
        return errors

    def _raise_pending(self) -> None:
        with self._lock:
            error = self._errors.pop(0) if self._errors else None
        if error is not None:
            raise error
