"""The Python API: :class:`Predictor`, one model on one image or on a whole stream.

::

    import streamseg

    predictor = streamseg.Predictor(model="demo")
    instances = predictor(image)                      # (H, W, 3) uint8 RGB -> Instances
    for result in predictor.stream("clip.mp4"):       # -> FrameResult, tracked
        print(result.frame.index, result.instances.track_ids)

A :class:`Predictor` is the typed configuration (:class:`~streamseg.config.ModelConfig`,
validated as every front-end's is) and the backend it builds
(:func:`~streamseg.backends.create_backend`). :meth:`Predictor.stream` runs the same core
as ``streamseg run``: a :class:`~streamseg.core.Pipeline` with its source, inference and
output threads, tracker, detect-every-K and score threshold; the only output is a queue
the generator reads (frames in order and none lost for files; the newest ones for live
sources). Thresholds as everywhere (ByteTrack): the model runs at
``ModelConfig.score_floor`` (0.1), the tracker sees every detection, and
``score_thresh`` filters what is returned.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from streamseg.backends import create_backend
from streamseg.config import ModelConfig, StreamSettings, validated
from streamseg.core import Pipeline, StreamProcessor
from streamseg.queues import BoundedQueue, QueueClosed
from streamseg.sources import Source, open_source
from streamseg.sources.file import read_image
from streamseg.tracking import TrackerConfig
from streamseg.types import FrameResult, Instances

__all__ = ["Predictor"]

log = logging.getLogger("streamseg")


def _check_image(image: Any) -> np.ndarray:
    """``image`` if it is an (H, W, 3) uint8 array, else a ValueError or TypeError that says how to make one."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"expected an (H, W, 3) uint8 RGB numpy array or an image path, got {type(image).__name__}")
    if image.dtype != np.uint8:
        hint = " (a float image in [0, 1]: (image * 255).round().astype(np.uint8))" if image.dtype.kind == "f" else ""
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got dtype {image.dtype}{hint}")
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        raise ValueError(f"expected an (H, W, 3) RGB image, got a grey one of shape {image.shape} "
                         "(np.repeat(image.reshape(*image.shape[:2], 1), 3, axis=2) makes it RGB)")  # fmt: skip
    if image.ndim == 3 and image.shape[2] == 4:
        raise ValueError(f"expected an (H, W, 3) RGB image, got RGBA {image.shape}: pass image[:, :, :3]")
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got shape {image.shape}")
    return image


class _ResultQueue:
    """The stream's one output: each written :class:`FrameResult`, into a queue the generator reads.

    ``block`` after a file source (none lost: the pipeline waits for the caller) and
    ``drop_oldest`` after a live one (the caller gets the newest frames).
    """

    needs_image = False
    stage = "yield"

    def __init__(self, *, live: bool) -> None:
        self.queue: BoundedQueue[FrameResult] = BoundedQueue(2 if live else 4, "drop_oldest" if live else "block")

    def write(self, result: FrameResult, image: np.ndarray | None) -> None:
        self.queue.put(result)  # False once the caller stopped reading (cancelled): nothing to keep

    def close(self) -> None:
        self.queue.close()


class Predictor:
    """A model on a backend: call it on an image, or :meth:`stream` a video, folder, URL or camera.

    Args:
        model: a registry name (``streamseg models``): ``maskrcnn_resnet50_fpn`` (None, the
            default; torchvision's COCO weights, downloaded on first use),
            ``maskrcnn_resnet50_fpn_v2``, ``keypointrcnn_resnet50_fpn``, or ``demo`` (bundled,
            offline; it knows only the synthetic demo world of ``streamseg demo``).
        backend: ``torch``, ``onnxruntime``, ``openvino`` or an installed one (``tensorrt``).
        device: ``auto`` (CUDA when torch sees a GPU), ``cpu``, ``cuda`` or ``cuda:N``.
        keypoints: with a mask model, also run Keypoint R-CNN for person keypoints.
        weights: a weights file, ``"random"``, or None for the registry's verified file.
        score_thresh: return only instances with a score at least this, in [0, 1]; None for
            the model's registry default (0.5). The tracker of :meth:`stream` still sees
            every detection down to the model's floor (0.1).
        **options: any other :class:`~streamseg.config.ModelConfig` field: ``min_size``,
            ``max_detections``, ``score_floor``, ``onnx``, ``precision``, ``calib``, ``seed``.

    Attributes:
        config: the validated :class:`~streamseg.config.ModelConfig`.
        backend: the loaded :class:`~streamseg.backends.base.Backend`.
        score_thresh: the threshold in use (the model's default when None was given).

    One call at a time: a Predictor is not meant to be used from two threads, nor
    called while one of its streams runs (both would use the one backend).

    Raises:
        ConfigError: a bad value (unknown model or backend, a threshold out of [0, 1], an
            unknown option), naming the field and what is allowed.
        WeightsError: the weights cannot be found or do not match.
        BackendError: the backend cannot run here (its runtime or a GPU is missing).
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        backend: str = "torch",
        device: str = "auto",
        keypoints: bool = False,
        weights: str | os.PathLike[str] | None = None,
        score_thresh: float | None = None,
        **options: Any,
    ) -> None:
        fields: dict[str, Any] = {"backend": backend, "device": device, "keypoints": keypoints, **options}
        if model is not None:
            fields["name"] = model
        if weights is not None:
            fields["weights"] = os.fspath(weights)
        config = validated(ModelConfig, fields, where="Predictor")
        self._init(config, score_thresh)

    @classmethod
    def from_config(cls, config: ModelConfig, *, score_thresh: float | None = None) -> Predictor:
        """A Predictor from a :class:`~streamseg.config.ModelConfig` built elsewhere (a monitor TOML's ``[model]``).

        Raises:
            ConfigError, WeightsError, BackendError: as the constructor.
        """
        predictor = cls.__new__(cls)
        predictor._init(config, score_thresh)
        return predictor

    def _init(self, config: ModelConfig, score_thresh: float | None) -> None:
        if isinstance(score_thresh, int) and not isinstance(score_thresh, bool):
            score_thresh = float(score_thresh)  # 0 or 1: the config's fields are strict floats
        self._settings = validated(StreamSettings, {"score_thresh": score_thresh}, where="Predictor")
        self.config = config
        self.score_thresh = self._settings.threshold_for(config)
        self.backend = create_backend(config)
        # The one place the threshold applies (StreamProcessor.visible), here for single images.
        self._threshold = StreamProcessor(categories=self.backend.categories, score_thresh=self.score_thresh)

    @property
    def categories(self) -> Sequence[str]:
        """Class names indexed by label (index 0 is the background): ``categories[instances.labels[i]]``."""
        return self.backend.categories

    def __repr__(self) -> str:
        return f"Predictor({self.config.describe()}, score_thresh={self.score_thresh})"

    def __call__(self, image: np.ndarray | str | os.PathLike[str]) -> Instances:
        """Detect instances in one image.

        Args:
            image: (H, W, 3) uint8 **RGB** (a BGR array from ``cv2.imread`` cannot be told
                apart and gives worse results: convert it with ``cv2.cvtColor(bgr,
                cv2.COLOR_BGR2RGB)``), or the path of a JPEG, PNG or BMP file.

        Returns:
            The instances with ``score >= score_thresh``, in image pixels: boxes (N, 4) xyxy,
            scores, labels (``categories[label]``), masks (N, 28, 28) box-frame probabilities
            (full-size with :func:`streamseg.masks.paste_masks` or :meth:`Instances.to_supervision`),
            keypoints (N, 17, 3) for keypoint models; ``track_ids`` all -1.

        Raises:
            TypeError: neither an array nor a path.
            ValueError: not an (H, W, 3) uint8 array (the message says how to convert).
            SourceError: the file cannot be read as an image.
            BackendError: the backend failed on the image.
        """
        if isinstance(image, (str, os.PathLike)):
            image = read_image(image)  # the image folders' reader: cv2, BGR -> RGB
        instances, _ = self.backend.infer(_check_image(image))
        return self._threshold.visible(instances)

    def stream(
        self,
        source: str | os.PathLike[str] | int,
        *,
        track: bool = True,
        detect_every: int = 1,
        tracker: TrackerConfig | None = None,
        max_frames: int | None = None,
        **live_options: Any,
    ) -> Iterator[FrameResult]:
        """Run a video file, image folder, RTSP/HTTP URL or camera through the core, frame by frame.

        The source opens when the iteration starts. Breaking out of the loop, closing the
        generator or an exception in the caller's loop body stops the source, inference
        and output threads and joins them.

        Args:
            source: a path, a URL (``rtsp://``, ``http(s)://``), or a camera (``0``,
                ``cam:0``, ``/dev/video0``), as ``streamseg run`` takes it
                (:func:`~streamseg.sources.open_source`).
            track: give instances track IDs (ByteTrack-style tracker, one per stream).
            detect_every: run the model on every K-th frame; the tracker predicts the others
                (needs ``track``).
            tracker: the tracker's settings (:class:`~streamseg.tracking.TrackerConfig`);
                None for the defaults (at the source's frame rate).
            max_frames: stop after this many frames; None for all.
            **live_options: for a live source, :func:`~streamseg.sources.open_source`'s options
                (``transport``, ``open_timeout_s``, ``read_timeout_s``, ...).

        Yields:
            One :class:`~streamseg.types.FrameResult` per frame, in order: ``frame`` (its
            index, ``pts_s``, the (H, W, 3) RGB image), ``instances`` (``score >=
            score_thresh``, tracked), ``timings_ms``. Every frame of a file or folder; for a
            live source the newest ones (older ones are dropped while the caller is busy).

        Raises:
            ConfigError: bad settings (``detect_every`` < 1, or > 1 without tracking).
            SourceError: the source does not exist (at the call), cannot be opened (at the
                first ``next``), or fails while decoding (after every frame decoded before
                the failure was yielded).
            BackendError: the backend failed on a frame.
            ValueError: live options given for a file or folder.
        """
        fields: dict[str, Any] = {"score_thresh": self.score_thresh, "track": track, "detect_every": detect_every,
                                  "hud": False}  # fmt: skip
        if tracker is not None:
            fields["tracker"] = tracker
        settings = validated(StreamSettings, fields, where="Predictor.stream")
        uri = os.fspath(source) if isinstance(source, os.PathLike) else str(source)
        return self._results(uri, open_source(uri, max_frames=max_frames, **live_options), settings)

    def _results(self, uri: str, source: Source, settings: StreamSettings) -> Iterator[FrameResult]:
        """The generator of :meth:`stream`: one :class:`~streamseg.core.Pipeline`, its results queue read here."""
        source.open()
        try:
            if self.config.name == "demo":
                from streamseg.datasets.demo_export import demo_model_warning

                if warning := demo_model_warning(self.config.name, uri):
                    log.warning(warning)
            live = source.queue_policy == "drop_oldest"
            results = _ResultQueue(live=live)
            processor = StreamProcessor.from_settings(
                settings,
                self.config,
                categories=self.categories,
                outputs=[results],
                random_weights=self.backend.random_weights,
                live=live,
            )
            runner = Pipeline(source, self.backend, processor=processor).runner
        except BaseException:
            source.stop()
            raise
        runner.start()
        finished = False
        try:
            while True:
                try:
                    result = results.queue.get()
                except QueueClosed:
                    break
                yield result
            finished = True
        finally:
            if not finished:  # the caller broke out, closed the generator or raised
                results.queue.cancel()
                runner.stop()
            runner.join()
        if runner.error is not None:
            raise runner.error
