"""Model replicas for ``streamseg monitor --ray``: Ray actors that batch frames of any streams.

* :class:`ModelReplica` (a Ray async actor): one backend; collects the frames that arrive
  from any streams, up to ``batch_size``, waiting at most ``max_wait_ms`` after the first,
  and runs them one after another in one call into its backend (the exported graphs have
  batch 1: batching here bounds the wait and amortises the dispatch, it does not make one
  batched forward pass). What goes back are the Instances with their 28 x 28 box-frame
  masks, never pasted ones.
* :class:`ReplicaPool`: the replicas behind the Backend protocol, in a stream actor.

See :mod:`streamseg.monitor.cluster` for the whole layout and the faults.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from streamseg.config import ModelConfig
from streamseg.errors import BackendError, ConfigError, StreamsegError
from streamseg.optional import import_optional
from streamseg.types import Instances

__all__ = ["REPLICA_BACKOFF_S", "ModelReplica", "ReplicaLost", "ReplicaPool", "import_ray"]

#: Seconds a replica that lost a frame is passed over before it is tried again (Ray restarts it).
REPLICA_BACKOFF_S = 5.0


def import_ray() -> Any:
    """The ``ray`` module.

    Raises:
        ConfigError: Ray is not installed (with the command that installs it).
    """
    return import_optional("ray", ConfigError("streamseg monitor --ray needs Ray: pip install 'streamseg[ray]'"))


ray = import_ray()


class ReplicaLost(BackendError):
    """A model replica died (or did not answer) with the frame in flight: the frame is dropped and counted."""


class ModelReplica:
    """One copy of the model, serving frames of any streams in batches (a Ray async actor).

    Args:
        model: the model's config (:func:`streamseg.backends.create_backend` builds it here).
        batch_size: most frames per batch, >= 1.
        max_wait_ms: longest wait after a batch's first frame for more, ms.

    Raises:
        BackendError, WeightsError, ConfigError: the model cannot be built (the actor fails).
    """

    def __init__(self, model: ModelConfig, batch_size: int, max_wait_ms: float) -> None:
        from streamseg.backends import create_backend

        self.backend = create_backend(model)
        self.batch_size = int(batch_size)
        self.max_wait_s = float(max_wait_ms) / 1000.0
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="streamseg-replica")
        self.batches = 0
        self.frames = 0

    async def info(self) -> dict[str, Any]:
        """``model_name``, ``categories``, ``random_weights``, ``device``, ``pid``, ``batches``, ``frames``."""
        b = self.backend
        return {"model_name": b.model_name, "categories": list(b.categories), "random_weights": bool(b.random_weights),
                "device": str(b.device), "pid": os.getpid(), "batches": self.batches, "frames": self.frames}  # fmt: skip

    async def infer(self, image: np.ndarray) -> tuple[Instances, dict[str, float]]:
        """The backend's ``infer(image)`` for one frame, run in the next batch.

        Returns:
            ``(instances, timings_ms)``: the Instances without pasted mask crops, and the
            backend's stage times plus ``replica_wait`` (ms in this replica's queue).
        """
        loop = asyncio.get_running_loop()
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._task = loop.create_task(self._batches())
        future = loop.create_future()
        await self._queue.put((image, future, time.perf_counter()))
        return await future

    async def _batches(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            deadline = loop.time() + self.max_wait_s
            while len(batch) < self.batch_size:
                if not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                    continue
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), remaining))
                except TimeoutError:
                    break
            t_run = time.perf_counter()
            results = await loop.run_in_executor(self._executor, self._run, [item[0] for item in batch])
            self.batches += 1
            self.frames += len(batch)
            for (_, future, t_queued), result in zip(batch, results, strict=True):
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    result[1]["replica_wait"] = (t_run - t_queued) * 1000.0
                    future.set_result(result)

    def _run(self, images: list[np.ndarray]) -> list[Any]:
        out: list[Any] = []
        for image in images:
            try:
                instances, timings = self.backend.infer(image)
                out.append((instances.replace(mask_crops=None), dict(timings)))  # 28x28 masks only
            except Exception as exc:  # noqa: BLE001 - returned to the frame's caller
                out.append(exc if isinstance(exc, StreamsegError) else BackendError(f"{type(exc).__name__}: {exc}"))
        return out


class ReplicaPool:
    """The model replicas behind the :class:`~streamseg.backends.base.Backend` protocol (in a stream actor).

    Frames go round-robin to the replicas, skipping for :data:`REPLICA_BACKOFF_S` one that
    just lost a frame (Ray is restarting it).

    Args:
        replicas: the :class:`ModelReplica` actor handles.
        info: a replica's :meth:`ModelReplica.info`.
        timeout_s: longest wait for one frame's result, s.

    Attributes:
        lost: frames dropped because their replica died or did not answer.
    """

    name = "ray"

    def __init__(self, replicas: list[Any], info: dict[str, Any], *, timeout_s: float = 300.0) -> None:
        if not replicas:
            raise ConfigError("the ray backend needs at least one model replica")
        self.replicas = list(replicas)
        self.model_name = str(info["model_name"])
        self.categories = tuple(info["categories"])
        self.random_weights = bool(info["random_weights"])
        self.device = f"ray ({len(self.replicas)} replica(s) on {info['device']})"
        self.timeout_s = float(timeout_s)
        self.lost = 0
        self._next = 0
        self._down_until = [0.0] * len(self.replicas)
        self._lock = threading.Lock()

    def _pick(self) -> int:
        now = time.monotonic()
        n = len(self.replicas)
        with self._lock:
            order = [(self._next + k) % n for k in range(n)]
            up = [i for i in order if self._down_until[i] <= now]
            chosen = (up or order)[0]
            self._next = chosen + 1
        return chosen

    def infer(self, image: np.ndarray) -> tuple[Instances, dict[str, float]]:
        """One frame on the next replica.

        Returns:
            ``(instances, timings_ms)``, the timings with ``replica_rtt`` (ms from sending the
            frame to having the result, the model's time included).

        Raises:
            ReplicaLost: the replica died or did not answer in ``timeout_s``; counted in :attr:`lost`.
            BackendError: the model failed on the frame.
        """
        index = self._pick()
        t0 = time.perf_counter()
        try:
            instances, timings = ray.get(self.replicas[index].infer.remote(image), timeout=self.timeout_s)
        except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError) as exc:
            with self._lock:
                self.lost += 1
                self._down_until[index] = time.monotonic() + REPLICA_BACKOFF_S
            raise ReplicaLost(f"model replica {index} lost the frame ({type(exc).__name__}); frame dropped") from None
        except ray.exceptions.RayTaskError as exc:
            raise BackendError(f"model replica {index}: {exc.cause if exc.cause is not None else exc}") from None
        timings = dict(timings)
        timings["replica_rtt"] = (time.perf_counter() - t0) * 1000.0
        return instances, timings
