"""What every backend shares: sizing, preprocessing, the graph call's outputs, postprocessing.

Every backend runs :class:`~streamseg.models.graph.MaskRCNNGraph`: the torch backend
eagerly on its device (:class:`~streamseg.backends.torch_backend.TorchBackend`),
ONNX Runtime and TensorRT as exported. They differ only in how the inputs are made
and how one call of the graph is run; this module does the rest the same way for all:

1. pick the network-input size from the frame size (:func:`network_size_for`, the
   size torchvision would pad the frame to), once per frame size;
2. preprocess the frame (:meth:`GraphBackend._inputs`: by default
   :func:`~streamseg.models.preprocess.preprocess` on the CPU to numpy; the torch
   backend does the same arithmetic on its device);
3. run the graph (the subclass's :meth:`GraphBackend._run`, which returns host arrays
   of the valid detection rows only);
4. build :class:`~streamseg.postprocess.RawDetections` (:func:`raw_from_outputs`) and
   call the shared :func:`~streamseg.postprocess.postprocess`, attaching a second
   model's keypoints to the persons (:func:`~streamseg.postprocess.merge_keypoints`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from streamseg.errors import BackendError, ConfigError, StreamsegError
from streamseg.masks import paste_crops_tensor
from streamseg.models.preprocess import IMAGE_MEAN, IMAGE_STD, max_size_for, network_size_for, preprocess
from streamseg.models.registry import DEFAULT_MODEL, ModelSpec, get_model_spec
from streamseg.postprocess import RawDetections, merge_keypoints, postprocess
from streamseg.types import Instances

__all__ = [
    "KEYPOINT_MODEL",
    "OUTPUT_ROWS",
    "GraphBackend",
    "GraphModel",
    "raw_from_outputs",
    "valid_rows",
]

#: The registry model that adds keypoints to a mask model (``keypoints=True``).
KEYPOINT_MODEL = "keypointrcnn_resnet50_fpn"

#: Graph outputs with one row per detection (the rest: ``num_detections``).
OUTPUT_ROWS = ("boxes", "scores", "labels", "mask_probs", "keypoint_heatmaps")


def valid_rows(num_detections: Any, rows: int) -> int:
    """Valid detection rows of a padded (static) output: ``num_detections`` clamped to [0, rows].

    Args:
        num_detections: the graph's (1,) int64 output (array, tensor or int).
        rows: D, the static number of rows.
    """
    n = int(np.asarray(num_detections).reshape(-1)[0])
    return max(0, min(n, int(rows)))


def raw_from_outputs(
    outputs: Mapping[str, np.ndarray], *, input_size: tuple[int, int], image_size: tuple[int, int]
) -> RawDetections:
    """Turn the valid rows of the graph's outputs into :class:`RawDetections`.

    Args:
        outputs: host arrays ``boxes`` (n, 4) float32 xyxy network-input pixels, ``scores`` (n,),
            ``labels`` (n,) int64, and ``mask_probs`` (n, 28, 28) and/or either
            ``keypoint_heatmaps`` (n, 17, 56, 56) float32 logits or ``keypoints``
            (n, 17, 3) float32 already decoded (each may be absent); float16 outputs
            are widened.
        input_size: (h, w) of the valid resized region, pixels.
        image_size: (H, W) of the original frame, pixels.

    Raises:
        BackendError: missing or inconsistent outputs.
    """

    def optional(name: str) -> np.ndarray | None:
        value = outputs.get(name)
        return None if value is None else np.asarray(value, np.float32)

    try:
        return RawDetections(
            boxes=np.asarray(outputs["boxes"], np.float32),
            scores=np.asarray(outputs["scores"], np.float32),
            labels=np.asarray(outputs["labels"], np.int64),
            mask_probs=optional("mask_probs"),
            keypoint_heatmaps=optional("keypoint_heatmaps"),
            input_size=input_size,
            image_size=image_size,
            keypoints=optional("keypoints"),
        )
    except (KeyError, ValueError) as exc:
        raise BackendError(f"the model's outputs are not the streamseg graph's: {exc}") from exc


class GraphModel:
    """One model a backend runs (the main one, or the keypoint model added by ``keypoints=True``).

    Attributes:
        spec: its registry entry.
        keypoint_labels: labels whose keypoints are kept (the "person" class).
    """

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self.keypoint_labels = tuple(i for i, name in enumerate(spec.categories) if name == "person")


class GraphBackend:
    """Base of the backends that run :class:`~streamseg.models.graph.MaskRCNNGraph` (see the module docstring).

    Subclasses implement :meth:`_run` (and may override :meth:`_inputs`) and set
    :attr:`name` and :attr:`device`.

    Args:
        model_name: registry name of the main model.
        score_thresh: minimum detection score (exclusive), in [0, 1]; a graph input.
        min_size: shorter side of the network input before padding, pixels.
        keypoints: with a mask model, also run Keypoint R-CNN and attach its keypoints
            to matching persons.
        detections_per_img: at most this many detections per image and model.
        weights: weights file, ``"random"``, or None for the registry's file.
        seed: torch seed for random weights.
        allow_download: allow downloading missing registry weights.

    Attributes:
        models: the main :class:`GraphModel`, then the keypoint one if any.
        random_weights: whether the weights are seeded random.

    Raises:
        ConfigError: unknown model, bad threshold or size.
        WeightsError: the weights cannot be found or read.
    """

    name = "graph"
    device = "cpu"

    def __init__(
        self,
        model_name: str = DEFAULT_MODEL,
        *,
        score_thresh: float = 0.5,
        min_size: int = 800,
        keypoints: bool = False,
        detections_per_img: int = 100,
        weights: str | None = None,
        seed: int = 0,
        allow_download: bool = True,
    ) -> None:
        spec = get_model_spec(model_name)
        if not 0.0 <= float(score_thresh) <= 1.0:
            raise ConfigError(f"score_thresh must be in [0, 1], got {score_thresh}")
        if int(min_size) < 32:
            raise ConfigError(f"min_size must be at least 32 pixels, got {min_size}")
        if int(detections_per_img) < 1:
            raise ConfigError(f"detections_per_img must be at least 1, got {detections_per_img}")
        self.spec = spec
        self.model_name = spec.name
        self.categories: Sequence[str] = spec.categories
        self.score_thresh = float(score_thresh)
        self.min_size = int(min_size)
        self.max_size = max_size_for(self.min_size)
        self.detections_per_img = int(detections_per_img)
        self.weights = weights
        self.seed = int(seed)
        self.allow_download = bool(allow_download)
        self.random_weights = weights is not None and str(weights).strip().lower() == "random"
        self.models = [GraphModel(spec)]
        if keypoints and not spec.has_keypoints:
            self.models.append(GraphModel(get_model_spec(KEYPOINT_MODEL)))
        self._sizes: dict[tuple[int, int], tuple[int, int]] = {}

    def __repr__(self) -> str:
        extra = f" + {KEYPOINT_MODEL}" if len(self.models) > 1 else ""
        random = ", RANDOM weights" if self.random_weights else ""
        return (
            f"{type(self).__name__}({self.model_name}{extra}, device={self.device}, min_size={self.min_size}, "
            f"score_thresh={self.score_thresh}{random})"
        )

    def weights_for(self, index: int) -> str | None:
        """Weights argument of model ``index``: the user's for the main one; the keypoint model
        follows only ``"random"`` (otherwise its registry file is looked up)."""
        if index == 0 or self.random_weights:
            return self.weights
        return None

    def network_size(self, image_size: tuple[int, int]) -> tuple[int, int]:
        """Network-input (H, W) for frames of ``image_size`` (torchvision's padded size)."""
        size = self._sizes.get(image_size)
        if size is None:
            size = network_size_for(image_size, min_size=self.min_size, max_size=self.max_size)
            self._sizes[image_size] = size
        return size

    def _inputs(self, image: np.ndarray, size: tuple[int, int]) -> tuple[dict[str, Any], tuple[int, int]]:
        """The graph's inputs for one frame (:data:`~streamseg.models.graph.INPUT_NAMES`).

        Args:
            image: (H, W, 3) uint8 RGB, already checked.
            size: (H', W') network-input size, pixels.

        Returns:
            ``(inputs, (h, w))``: ``images`` (1, 3, H', W') float32, ``image_size`` (2,)
            float32 and ``score_thresh`` (1,) float32, here numpy arrays made on the CPU
            (:func:`~streamseg.models.preprocess.preprocess`); and (h, w), the resized
            size in pixels.

        Raises:
            ConfigError: the resized frame does not fit in ``size``.
        """
        images, (h, w) = preprocess(
            image, size=size, min_size=self.min_size, max_size=self.max_size, image_mean=IMAGE_MEAN, image_std=IMAGE_STD
        )
        inputs = {
            "images": images,
            "image_size": np.array([h, w], dtype=np.float32),
            "score_thresh": np.array([self.score_thresh], dtype=np.float32),
        }
        return inputs, (h, w)

    def _device_inputs(self, image: np.ndarray, size: tuple[int, int], device: Any) -> tuple[dict[str, Any], tuple[int, int]]:
        """The graph's inputs made on a torch ``device``: the uint8 frame is copied there and preprocessed there.

        The one implementation for the backends that preprocess on their GPU (torch on CUDA,
        ONNX Runtime on CUDA, TensorRT): :func:`~streamseg.models.preprocess.preprocess_tensor`
        on the device, so only the (H, W, 3) uint8 frame crosses PCIe. The caller waits for
        the device's work when its runtime runs on another stream.

        Returns:
            ``(inputs, (h, w))``: ``images`` (1, 3, H', W') float32, ``image_size`` (2,)
            float32, ``score_thresh`` (1,) float32, torch tensors on ``device``; (h, w) pixels.
        """
        import torch

        from streamseg.models.preprocess import preprocess_tensor

        array = image if image.flags.writeable and image.flags.c_contiguous else np.array(image, order="C")
        with torch.inference_mode():
            frame = torch.from_numpy(array).to(device, non_blocking=True)
            images, (h, w) = preprocess_tensor(frame, size=size, min_size=self.min_size, max_size=self.max_size)
            inputs = {
                "images": images,
                "image_size": torch.tensor([h, w], dtype=torch.float32, device=device),
                "score_thresh": torch.tensor([self.score_thresh], dtype=torch.float32, device=device),
            }
        return inputs, (h, w)

    def _run(self, index: int, size: tuple[int, int], inputs: dict[str, Any]) -> dict[str, np.ndarray]:
        """Run model ``index``'s graph for network size ``size`` on :meth:`_inputs`' inputs.

        Returns:
            Host arrays of its outputs by name (:data:`OUTPUT_ROWS`, or ``keypoints``
            decoded in place of ``keypoint_heatmaps``), valid detection rows only.
        """
        raise NotImplementedError

    def _device_mask_probs(self) -> Any:
        """The main model's last (n, M, M) mask probabilities as a device tensor, or None.

        A GPU backend returns the graph's ``mask_probs`` rows of its last :meth:`_run`
        (still on the GPU): :meth:`infer` then pastes and binarises them there
        (:func:`~streamseg.masks.paste_crops_tensor`) and only the uint8 box crops
        come back (``Instances.mask_crops``). The default (CPU backends): None, the crops
        are pasted on the CPU when first drawn or written.
        """
        return None

    def infer_raw(self, image: np.ndarray) -> tuple[list[RawDetections], dict[str, float]]:
        """Run the graph(s) on one image up to :class:`RawDetections` (valid rows only).

        Args:
            image: (H, W, 3) uint8 RGB.

        Returns:
            ``([main] or [main, keypoint], timings_ms)`` with ``preprocess`` (:meth:`_inputs`)
            and ``model`` (:meth:`_run` of every model, including the copy to the host)
            milliseconds.

        Raises:
            BackendError: not an (H, W, 3) uint8 image, or the runtime failed.
        """
        if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise BackendError(
                f"expected an (H, W, 3) uint8 RGB image, got shape {getattr(image, 'shape', None)} "
                f"dtype {getattr(image, 'dtype', type(image).__name__)}"
            )
        image_size = (int(image.shape[0]), int(image.shape[1]))
        size = self.network_size(image_size)
        t0 = time.perf_counter()
        inputs, (h, w) = self._inputs(image, size)
        t1 = time.perf_counter()
        raws = [
            raw_from_outputs(self._run(index, size, inputs), input_size=(h, w), image_size=image_size)
            for index in range(len(self.models))
        ]
        t2 = time.perf_counter()
        return raws, {"preprocess": (t1 - t0) * 1e3, "model": (t2 - t1) * 1e3}

    def infer(self, image: np.ndarray) -> tuple[Instances, dict[str, float]]:
        """Detect instances in one image (the :class:`~streamseg.backends.base.Backend` protocol).

        Args:
            image: (H, W, 3) uint8 RGB.

        Returns:
            ``(instances, timings_ms)``: instances in ``image`` pixels (masks (N, 28, 28)
            in the box frame; keypoints (N, 17, 3) for a keypoint model or with
            ``keypoints=True``, NaN rows for non-persons), and ``preprocess``, ``model``
            (:meth:`infer_raw`) and ``postprocess`` milliseconds.

        Raises:
            BackendError: not an (H, W, 3) uint8 image, or the runtime failed on it.
        """
        try:
            raws, timings = self.infer_raw(image)
        except StreamsegError:
            raise
        except (RuntimeError, ValueError) as exc:
            raise BackendError(f"{self.name} backend failed on a {getattr(image, 'shape', '?')} image: {exc}") from exc
        t0 = time.perf_counter()
        instances = postprocess(raws[0], score_thresh=self.score_thresh, keypoint_labels=self.models[0].keypoint_labels)
        device_masks = self._device_mask_probs()
        if device_masks is not None and instances.masks is not None:
            # The rows postprocess kept (score > threshold), pasted on the device.
            keep = np.flatnonzero(raws[0].scores > np.float32(self.score_thresh))
            crops = paste_crops_tensor(device_masks[keep], instances.boxes, instances.image_size)
            instances = instances.replace(mask_crops=crops)
        if len(raws) > 1:
            instances = merge_keypoints(instances, postprocess(raws[1], score_thresh=self.score_thresh))
        timings["postprocess"] = (time.perf_counter() - t0) * 1e3
        return instances, timings
