"""``streamseg monitor CONFIG.toml --ray [ADDRESS]``: the monitor's streams and model replicas as Ray actors.

Imported only with ``--ray`` (``pip install 'streamseg[ray]'``); local mode never imports Ray.

Who runs where::

    driver (`streamseg monitor --ray`)      starts or joins Ray, creates the actors, prints health lines
    StreamLedger       (1 actor, 0 CPU)     what must outlive a stream actor: the track-ID blocks handed
                                            out, the last frame written, restarts and frames lost
    ModelReplica       (replicas = N)       one backend each (replica_cpus / replica_gpus of Ray's
                                            resources); batches the frames of every stream
    StreamActor        (one per stream)     the stream's source (decode, reconnects), tracker and outputs
                                            (MP4 segments, JSONL, MOT, rules, events): local mode's
                                            Monitor with this one stream, whose backend is a ReplicaPool

A stream actor runs exactly the local monitor's code (:class:`~streamseg.monitor.runner.Monitor`
over the core's :class:`~streamseg.core.Runner`), so its outputs are the local mode's; only
``backend.infer`` crosses the network. Per model frame, the decoded RGB frame (H x W x 3 uint8,
through Ray's object store) goes to a replica, and the :class:`~streamseg.types.Instances`
come back with their 28 x 28 box-frame masks, never pasted ones (about 3.2 kB per instance
with keypoints), plus the stage timings.

Batching: a replica collects the frames that arrive from any streams, up to ``batch_size``,
waiting at most ``max_wait_ms`` after the first, and runs them one after another in one
call into its backend (:mod:`streamseg.monitor.replicas`).

Faults (Ray restarts an actor up to ``max_restarts`` times):

* a stream actor that dies (its process killed, its node lost) is restarted by Ray. It
  resumes with the same outputs (JSONL and MOT appended to, a new MP4 segment numbered
  on; the segment cut by the kill plays up to its last one-second fragment) and the same
  track-ID space: IDs come in blocks reserved from the ledger before they are used, so no
  ID of its earlier life is given again. A live stream's ``Frame.index`` goes on from the
  last frame written and its ``pts_s`` from that frame's plus the outage (wall time), as a
  reconnect does in local mode. The frames lost in the outage are counted
  (``lost=`` in the health line, a ``restart`` event with ``lost_frames``): for a live
  source, the outage's length times the stream's frame rate; a file resumes after the
  last frame written (its outputs are written synchronously in Ray mode, so "written"
  means on disk) and loses none;
* a model replica that dies takes its in-flight frames with it: each is counted in its
  stream's ``lost``, and the stream's next frames go to the other replicas while Ray
  restarts it;
* a stream whose source fails reconnects exactly as in local mode (it is the same code).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from streamseg.core import Stream
from streamseg.errors import BackendError, ConfigError, SinkError
from streamseg.monitor.config import MonitorConfig, StreamConfig
from streamseg.monitor.replicas import ModelReplica, ReplicaLost, ReplicaPool, import_ray
from streamseg.monitor.runner import Monitor, StreamStats
from streamseg.sinks import EventLog

__all__ = ["ID_BLOCK", "RayMonitor", "ReplicaLost", "ReplicaPool", "StreamActor", "StreamLedger", "import_ray"]

#: Track IDs a stream actor reserves from the ledger at a time.
ID_BLOCK = 1000

ray = import_ray()
log = logging.getLogger("streamseg.monitor")


# -- the ledger ---------------------------------------------------------------------------


class StreamLedger:
    """The state of every stream that must outlive its actor (one small actor per monitor run).

    Per stream: ``next_id`` (the first track ID not reserved yet), ``starts`` (actor
    starts; ``restarts = starts - 1``), ``last_index``, ``last_pts_s`` and ``last_wall_s`` (the
    last frame written: its ``Frame.index``, ``Frame.pts_s`` and ``time.time()``), ``fps`` (its
    source's rate), ``lost`` (frames lost so far).
    """

    def __init__(self) -> None:
        self._streams: dict[str, dict[str, Any]] = {}

    def _get(self, name: str) -> dict[str, Any]:
        return self._streams.setdefault(
            name, {"next_id": 1, "starts": 0, "last_index": -1, "last_pts_s": 0.0, "last_wall_s": None, "lost": 0,
                   "fps": None}
        )

    def begin(self, name: str) -> dict[str, Any]:
        """A stream actor starts: count it; returns the stream's state (``starts`` > 1: a restart)."""
        state = self._get(name)
        state["starts"] += 1
        return dict(state)

    def reserve_ids(self, name: str, count: int) -> int:
        """Reserve ``count`` track IDs for ``name``; returns the first (IDs first .. first + count - 1)."""
        state = self._get(name)
        first = state["next_id"]
        state["next_id"] += int(count)
        return first

    def progress(self, name: str, index: int, pts_s: float, wall_s: float, fps: float | None) -> None:
        """Frame ``index`` (at ``pts_s``) of ``name`` was written at ``wall_s`` (``time.time()``);
        ``fps``: its source's rate, when known."""
        state = self._get(name)
        state["last_index"], state["last_pts_s"], state["last_wall_s"] = int(index), float(pts_s), float(wall_s)
        if fps:
            state["fps"] = float(fps)

    def add_lost(self, name: str, count: int) -> int:
        """Count ``count`` more lost frames of ``name``; returns the total."""
        state = self._get(name)
        state["lost"] += int(count)
        return state["lost"]


# -- stream actors ------------------------------------------------------------------------


class _IdBlocks:
    """Track IDs from blocks of :data:`ID_BLOCK` reserved in the ledger before any is used."""

    def __init__(self, ledger: Any, name: str) -> None:
        self.ledger, self.name = ledger, name
        self._next = self._end = 0

    def __call__(self) -> int:
        if self._next >= self._end:
            self._next = int(ray.get(self.ledger.reserve_ids.remote(self.name, ID_BLOCK)))
            self._end = self._next + ID_BLOCK
        self._next += 1
        return self._next - 1


class StreamActor:
    """One monitor stream in its own process: local mode's :class:`Monitor` with this one stream.

    Started by Ray; started again by Ray after its process died (see the module docstring).

    Args:
        config: the whole monitor config (this actor runs the stream named ``name``).
        name: the stream's name.
        replicas: the Ray actor names of the :class:`ModelReplica` actors.
        ledger: the Ray actor name of the :class:`StreamLedger`.
        info: a replica's :meth:`ModelReplica.info` (categories, random weights).

    The other actors are passed by name and looked up here: Ray keeps a restartable actor's
    constructor arguments for its restarts only when they are plain values held in the task
    itself; an actor handle passed as an argument goes through the object store, where it
    can be lost before a restart (ray-project/ray#53727).
    """

    def __init__(self, config: MonitorConfig, name: str, replicas: list[str], ledger: str, info: dict) -> None:
        self.name = name
        self.ledger = ray.get_actor(ledger)
        state = ray.get(self.ledger.begin.remote(name))
        self.restarts = int(state["starts"]) - 1
        self._resume: dict[str, Any] | None = state if self.restarts else None
        self._lost_outage = int(state["lost"])
        self._fps: float | None = None
        self._source: Any = None
        stream_cfg = next(s for s in config.streams if s.name == name)
        one = config.model_copy(update={"streams": (stream_cfg,)})
        self.pool = ReplicaPool([ray.get_actor(r) for r in replicas], info)
        self._ids = _IdBlocks(self.ledger, name)
        self.monitor = Monitor(one, backend=self.pool, on_health=lambda _: None, resume=bool(self.restarts),
                               prepare=self._prepare)  # fmt: skip
        self.monitor.start()

    def _prepare(self, stream: Stream, cfg: StreamConfig) -> None:
        if stream.processor.tracker is not None:
            stream.processor.tracker.id_source = self._ids
        # Written synchronously, so a frame reported to the ledger is on disk (a file resumes after it).
        stream.processor.output_threads = False
        if stream.source is not None:
            resume = self._resume
            if resume is not None and not stream.live:  # a file: on after the last frame written
                stream.source.skip_before = int(resume["last_index"]) + 1
            elif resume is not None and resume["last_wall_s"] is not None:  # live: numbering and timeline go on
                stream.source.index_offset = int(resume["last_index"]) + 1
                stream.source.pts_offset_s = float(resume["last_pts_s"]) + max(0.0, time.time() - resume["last_wall_s"])
            self._source = stream.source
        stream.on_result = self._on_result

    def _on_result(self, result: Any) -> None:
        frame = result.frame
        now = time.time()
        if self._fps is None and self._source is not None:
            info = getattr(self._source, "info", None)  # filled once the source has opened
            self._fps = float(info.fps) if info is not None and info.fps else None
        if self._resume is not None:
            self._count_outage(frame.index, now)
        self.ledger.progress.remote(self.name, frame.index, frame.pts_s, now, self._fps)

    def _count_outage(self, index: int, now: float) -> None:
        """The first frame written after a restart: count and log the frames the outage lost."""
        resume, self._resume = self._resume, None
        assert resume is not None
        stream = self.monitor.runner.streams[0] if self.monitor.runner else None
        last_index, last_wall = int(resume["last_index"]), resume["last_wall_s"]
        fps = self._fps or resume.get("fps")
        if stream is not None and not stream.live:
            lost = max(0, index - last_index - 1)  # a file resumes after the last frame written
        elif last_wall is not None and fps:
            lost = max(0, round((now - float(last_wall)) * float(fps)) - 1)
        else:
            lost = 0
        self._lost_outage = int(ray.get(self.ledger.add_lost.remote(self.name, lost)))
        outage_s = None if last_wall is None else round(now - float(last_wall), 3)
        self.monitor.event(self.name, "restart", restarts=self.restarts, lost_frames=lost, outage_s=outage_s,
                            resumed_at_frame=int(index), detail=f"stream actor restarted (pid {os.getpid()})")  # fmt: skip

    def _with_counts(self, stats: StreamStats) -> StreamStats:
        stats.restarts = self.restarts
        stats.lost = self._lost_outage + self.pool.lost
        return stats

    def stats(self) -> tuple[StreamStats, bool]:
        """``(stats since the previous call, still running)``."""
        return self._with_counts(self.monitor.stats()[0]), self.running()

    def running(self) -> bool:
        """Whether the stream still runs (its output thread is alive)."""
        runner = self.monitor.runner
        return bool(runner is not None and runner.running)

    def stop(self) -> StreamStats:
        """Stop the stream, close its outputs; its final stats (totals)."""
        return self._with_counts(self.monitor.finish()[0])


# -- the driver ---------------------------------------------------------------------------


class RayMonitor:
    """Run a :class:`~streamseg.monitor.config.MonitorConfig` on a Ray cluster (see the module docstring).

    Args:
        config: the validated config; its ``[cluster]`` table places the actors.
        address: a running cluster's ``HOST:PORT`` (``ray start --head`` prints it), or None
            to start a local Ray instance for this run (stopped at the end).
        on_health: called with each stream's :class:`StreamStats` every ``health_interval_s``
            seconds and once at the end (default: nothing).
        namespace: the Ray namespace of the actors (default: a fresh one per run).
    """

    def __init__(
        self,
        config: MonitorConfig,
        *,
        address: str | None = None,
        on_health: Callable[[StreamStats], None] | None = None,
        namespace: str | None = None,
    ) -> None:
        self.config = config
        self.address = address
        self.on_health = on_health or (lambda _: None)
        self.run_id = uuid.uuid4().hex[:8]
        self.namespace = namespace or f"streamseg-{self.run_id}"
        self._stop = threading.Event()
        self.actors: dict[str, Any] = {}
        self.replicas: list[Any] = []
        self.ledger: Any = None
        self._last: dict[str, StreamStats] = {}
        self.resource_warning: str | None = None

    def stop(self) -> None:
        """Ask the run to stop (safe from a signal handler or another thread)."""
        self._stop.set()

    def actor_name(self, stream: str) -> str:
        """The Ray actor name of ``stream``'s actor (``ray.util.state.list_actors`` shows it)."""
        return f"streamseg-{self.run_id}-stream-{stream}"

    def ledger_name(self) -> str:
        """The Ray actor name of this run's :class:`StreamLedger`."""
        return f"streamseg-{self.run_id}-ledger"

    def replica_name(self, index: int) -> str:
        """The Ray actor name of model replica ``index``."""
        return f"streamseg-{self.run_id}-replica-{index}"

    def run(self) -> list[StreamStats]:
        """Run until :meth:`stop`, ``duration_s``, or every stream has ended; then stop cleanly.

        Returns:
            The final :class:`StreamStats` of every stream.

        Raises:
            ConfigError: Ray is not installed, the address cannot be reached, a rule names
                an unknown class.
            BackendError: the model cannot be built on a replica.
            SinkError: the output folder or events file cannot be written.
        """
        cfg, cluster = self.config, self.config.cluster
        started = not ray.is_initialized()
        if started:
            try:
                ray.init(address=self.address or "local", namespace=self.namespace, log_to_driver=False,
                         **({} if self.address else {"include_dashboard": True}))  # fmt: skip
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise ConfigError(f"cannot reach the Ray cluster at {self.address}: {exc}") from None
        try:
            try:
                cfg.output_dir.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise SinkError(f"cannot create {cfg.output_dir}: {e.strerror or e}") from None
            events = EventLog(cfg.events)
            try:
                return self._run(cfg, cluster, events)
            finally:
                events.close()
        finally:
            for handle in [*self.actors.values(), *self.replicas, *([self.ledger] if self.ledger else [])]:
                try:
                    ray.kill(handle, no_restart=True)
                except Exception:  # noqa: BLE001, S110 - already gone
                    pass
            if started:
                ray.shutdown()

    def _check_resources(self, cfg: MonitorConfig, events: EventLog) -> str | None:
        """A warning when the actors ask for more CPUs or GPUs than the cluster has now (they would wait)."""
        cluster = cfg.cluster
        want = {"CPU": cluster.replicas * cluster.replica_cpus + len(cfg.streams) * cluster.stream_cpus,
                "GPU": cluster.replicas * cluster.replica_gpus}  # fmt: skip
        have = ray.cluster_resources()
        short = [f"{want[k]:g} {k} (the cluster has {have.get(k, 0.0):g})" for k in want if want[k] > have.get(k, 0.0)]
        if not short:
            return None
        message = (f"the [cluster] table asks for {' and '.join(short)}: actors that do not fit wait for "
                   f"resources (an autoscaling cluster adds nodes); lower replica_cpus, replica_gpus or stream_cpus")  # fmt: skip
        log.warning("%s", message)
        events.write({"type": "error", "stream": "*", "error": message})
        return message

    def _run(self, cfg: MonitorConfig, cluster: Any, events: EventLog) -> list[StreamStats]:
        self.resource_warning = self._check_resources(cfg, events)
        self.ledger = ray.remote(StreamLedger).options(num_cpus=0, name=self.ledger_name()).remote()
        replica_cls = ray.remote(ModelReplica)
        self.replicas = [
            replica_cls.options(
                num_cpus=cluster.replica_cpus, num_gpus=cluster.replica_gpus, max_restarts=cluster.max_restarts,
                max_task_retries=0, name=self.replica_name(i),
            ).remote(cfg.model, cluster.batch_size, cluster.max_wait_ms)
            for i in range(cluster.replicas)
        ]  # fmt: skip
        try:
            info = ray.get(self.replicas[0].info.remote())
        except ray.exceptions.RayActorError as exc:
            raise BackendError(f"the model replica could not start: {exc}") from None
        for rule in cfg.rules:
            if rule.class_name not in info["categories"]:
                raise ConfigError(f"rule {rule.name!r}: unknown class {rule.class_name!r} for model {info['model_name']}")
        events.write({"type": "cluster", "stream": "*", "replicas": cluster.replicas, "streams": len(cfg.streams),
                      "detail": f"ray {ray.__version__}, namespace {self.namespace}"})  # fmt: skip
        stream_cls = ray.remote(StreamActor)
        for s in cfg.streams:
            self.actors[s.name] = stream_cls.options(
                num_cpus=cluster.stream_cpus, max_restarts=cluster.max_restarts, max_task_retries=0,
                name=self.actor_name(s.name),
            ).remote(cfg, s.name, [self.replica_name(i) for i in range(cluster.replicas)], self.ledger_name(), info)  # fmt: skip
        t0 = time.monotonic()
        next_health = t0 + cfg.health_interval_s
        while not self._stop.is_set():
            now = time.monotonic()
            if cfg.duration_s and now - t0 >= cfg.duration_s:
                break
            report = now >= next_health
            running = self._poll(report)
            if not running:
                break
            if report:
                next_health += cfg.health_interval_s
            self._stop.wait(min(1.0, max(next_health - time.monotonic(), 0.01)))
        return self._finish()

    def _poll(self, report: bool) -> bool:
        """Ask every stream actor whether it runs, and for its stats when ``report``; True while any runs."""
        refs = {name: (actor.stats if report else actor.running).remote() for name, actor in self.actors.items()}
        any_running = False
        for name, ref in refs.items():
            try:
                if not report:
                    any_running = any_running or bool(ray.get(ref, timeout=30))
                    continue
                stats, running = ray.get(ref, timeout=30)
            except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError) as exc:
                last = self._last.get(name)
                dead = isinstance(exc, ray.exceptions.ActorDiedError)
                stats = StreamStats(name=name, state="failed" if dead else "restarting", fps=0.0, age_p50_ms=0.0,
                                    age_p95_ms=0.0, drops=last.drops if last else 0,
                                    reconnects=last.reconnects if last else 0, frames=last.frames if last else 0,
                                    error=f"stream actor {'died' if dead else 'unavailable'} ({type(exc).__name__})",
                                    restarts=last.restarts if last else 0, lost=last.lost if last else 0)  # fmt: skip
                running = not dead
            self._last[name] = stats
            any_running = any_running or running
            if report:
                self.on_health(stats)
        return any_running

    def _finish(self) -> list[StreamStats]:
        """Stop every stream actor (at most 60 s in all: one still waiting for resources never
        started) and report their final stats."""
        refs = {name: actor.stop.remote() for name, actor in self.actors.items()}
        ready, _ = ray.wait(list(refs.values()), num_returns=len(refs), timeout=60.0)
        done = {ref.hex() for ref in ready}
        final = []
        for name, ref in refs.items():
            try:
                if ref.hex() not in done:
                    raise ray.exceptions.GetTimeoutError("no answer in 60 s")
                stats = ray.get(ref)
            except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError) as exc:
                stats = self._last.get(name) or StreamStats(name, "failed", 0.0, 0.0, 0.0, 0, 0, 0)
                stats.state, stats.error = "failed", f"stream actor did not stop cleanly ({type(exc).__name__}: {exc})"
            final.append(stats)
            self.on_health(stats)
        return final
