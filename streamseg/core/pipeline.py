"""One source through one backend: the single-stream front of the :class:`~streamseg.core.runner.Runner`.

``streamseg run``, ``streamseg demo`` and the window each run one :class:`Pipeline`;
``streamseg monitor`` runs a :class:`~streamseg.core.runner.Runner` over many streams.
Both are the same core: a :class:`~streamseg.core.processor.StreamProcessor` per
stream and one inference scheduler.

Stopping: the source ends (every frame already decoded is processed and written,
then the outputs are closed); a stage fails (the frames already processed are
still written, the outputs are closed so they stay valid, and :meth:`Pipeline.run`
raises the first error); :meth:`Pipeline.stop` (Ctrl-C, SIGTERM in the CLI):
everything stops at the next frame and the outputs written so far are closed cleanly.
"""

from __future__ import annotations

from collections.abc import Sequence

from streamseg.backends.base import Backend
from streamseg.core.metrics import RunSummary
from streamseg.core.processor import StreamProcessor
from streamseg.core.runner import Runner, Stream
from streamseg.sinks.outputs import Output
from streamseg.sources.base import Source

__all__ = ["Pipeline"]


class Pipeline:
    """Runs a source through a backend into outputs, in a source, an inference and an output thread.

    Args:
        source: an unstarted :class:`~streamseg.sources.base.Source`.
        backend: any :class:`~streamseg.backends.base.Backend`.
        outputs: where results go (video, JSONL, MOT, the window); the pipeline closes them.
        processor: the stream's :class:`~streamseg.core.processor.StreamProcessor` (tracker,
            threshold, detect-every-K, drawing; a front-end with a typed config passes
            :meth:`StreamProcessor.from_settings <streamseg.core.processor.StreamProcessor.from_settings>`);
            None: one with the backend's categories and the defaults (no tracker, every
            detection, the default drawing).
        queue_size: capacity of the result queue; None for the default (4 after a file
            source, blocking; 2 after a live source, drop-oldest).
        progress: show a tqdm progress bar (frames done / total, fps).
    """

    def __init__(
        self,
        source: Source,
        backend: Backend,
        outputs: Sequence[Output] = (),
        *,
        processor: StreamProcessor | None = None,
        queue_size: int | None = None,
        progress: bool = False,
    ) -> None:
        if processor is None:
            processor = StreamProcessor(
                categories=backend.categories, random_weights=bool(getattr(backend, "random_weights", False))
            )
        processor.outputs.extend(outputs)
        self.source = source
        self.backend = backend
        self.processor = processor
        self._bar = self._progress_bar() if progress else None
        self.stream = Stream(
            name=getattr(source, "name", None) or "main",
            source=source,
            processor=processor,
            queue_size=queue_size,
            on_result=(lambda result: self._bar.update(1)) if self._bar is not None else None,
        )
        self.runner = Runner(backend, [self.stream], fatal=True)

    @property
    def live(self) -> bool:
        """The source is live (drop-oldest queues)."""
        return self.stream.live

    @property
    def summary(self) -> RunSummary:
        """The run's metrics so far (final after :meth:`run`)."""
        return self.stream.summary

    @property
    def detect_every(self) -> int:
        """Run the model on every K-th frame; settable while running (from the next frame)."""
        return self.processor.detect_every

    @detect_every.setter
    def detect_every(self, k: int) -> None:
        if k > 1 and self.processor.tracker is None:
            raise ValueError("detect_every > 1 needs a tracker to predict the skipped frames")
        self.processor.detect_every = max(1, int(k))

    def stop(self) -> None:
        """Ask every stage to stop at the next frame; outputs are closed cleanly. Thread-safe."""
        self.runner.stop()

    def _progress_bar(self):  # noqa: ANN202 - tqdm
        from tqdm import tqdm

        info = getattr(self.source, "info", None)
        total = getattr(info, "num_frames", None)
        limit = getattr(self.source, "max_frames", None)
        if limit is not None:
            total = min(total, limit) if total else limit
        return tqdm(total=total, unit="frame", desc="streamseg", dynamic_ncols=True, smoothing=0.1)

    def run(self) -> RunSummary:
        """Run to the end of the source (or :meth:`stop`) and return the summary.

        Raises:
            streamseg.errors.StreamsegError: the first error of any stage (a SourceError for a
                truncated video, a BackendError, a SinkError), after every frame
                processed before it was written and the outputs were closed.
            KeyboardInterrupt: Ctrl-C; the outputs written so far are closed first.
        """
        try:
            self.runner.run()
        finally:
            if self._bar is not None:
                self._bar.close()
        return self.summary
