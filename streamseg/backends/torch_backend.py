"""The torch backend: torchvision's Mask R-CNN / Keypoint R-CNN, run piece by piece.

It runs the same modules as ``model([image])`` in torchvision's own order
(``GeneralizedRCNN.forward``: transform, backbone, rpn, roi_heads), but stops the
ROI heads at their raw outputs (:class:`~streamseg.postprocess.RawDetections`:
boxes in resized pixels, 28 x 28 mask probabilities, keypoint heatmaps) and leaves
the rest to the numpy :func:`~streamseg.postprocess.postprocess` that every
backend shares. No full-frame mask is ever made.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from streamseg.errors import BackendError, ConfigError
from streamseg.models.registry import DEFAULT_MODEL, ModelSpec, get_model_spec
from streamseg.models.weights import RANDOM, load_model
from streamseg.postprocess import RawDetections, merge_keypoints, postprocess
from streamseg.types import Instances

__all__ = ["KEYPOINT_MODEL", "TorchBackend", "max_size_for"]

#: The registry model that adds keypoints to a mask model (``keypoints=True``).
KEYPOINT_MODEL = "keypointrcnn_resnet50_fpn"


def max_size_for(min_size: int) -> int:
    """Longest resized side for a shorter side of ``min_size`` pixels: torchvision's 800:1333 ratio."""
    return round(min_size * 1333 / 800)


def _resolve_device(device: str) -> torch.device:
    """Parse and check a device string ("cpu", "cuda", "cuda:1")."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"invalid device {device!r} (use cpu, cuda or cuda:N)") from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise BackendError(
                f"CUDA requested ({device}) but torch.cuda.is_available() is False "
                "(no NVIDIA GPU or driver visible to torch); use --device cpu"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise BackendError(
                f"{device} requested but torch sees {torch.cuda.device_count()} CUDA device(s)"
            )
    elif dev.type != "cpu":
        raise BackendError(f"device {device!r} is not supported by the torch backend (use cpu or cuda)")
    return dev


def _same_transform(a: Any, b: Any) -> bool:
    """Whether two ``GeneralizedRCNNTransform`` produce the same tensors for the same image."""

    def key(t: Any) -> tuple[Any, ...]:
        return (
            tuple(t.min_size),
            t.max_size,
            tuple(t.image_mean),
            tuple(t.image_std),
            t.size_divisible,
            t.fixed_size,
        )

    return key(a) == key(b)


class TorchBackend:
    """Mask R-CNN / Keypoint R-CNN with torch and torchvision, on CPU or CUDA.

    Attributes:
        name: ``"torch"``.
        model_name: registry name of the main model.
        categories: class names indexed by label (index 0 is the background).
        random_weights: True when any model runs seeded random weights.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``.
        spec: registry entry of the main model.
        model: the torchvision model (eval mode).
        keypoint_model: the Keypoint R-CNN added by ``keypoints=True``, or None.
        score_thresh: minimum detection score (exclusive), torchvision's ``box_score_thresh``.
        min_size: shorter side of the network input, pixels.
        max_size: longest side of the network input, pixels.
    """

    name = "torch"

    def __init__(
        self,
        model_name: str = DEFAULT_MODEL,
        *,
        weights: str | None = None,
        device: str = "cpu",
        score_thresh: float = 0.5,
        min_size: int = 800,
        keypoints: bool = False,
        seed: int = 0,
        allow_download: bool = True,
        detections_per_img: int = 100,
    ) -> None:
        """Build the model(s) and load the weights.

        Args:
            model_name: registry name (see ``streamseg.models.registry.MODELS``).
            weights: weights file for the main model, ``"random"`` for seeded random
                weights (every model), or None to look the registry file up
                (``$STREAMSEG_WEIGHTS``, hub cache, download).
            device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
            score_thresh: minimum score, applied as torchvision's ``box_score_thresh``
                (``score > score_thresh``, before NMS), in [0, 1].
            min_size: shorter side of the network input in pixels; the longest side is
                capped at ``round(min_size * 1333 / 800)`` (torchvision's 800 / 1333).
            keypoints: with a mask model, also run Keypoint R-CNN and attach its keypoints
                to the person instances (:func:`~streamseg.postprocess.merge_keypoints`).
                Its weights follow ``weights`` only for ``"random"``; otherwise they are
                looked up from the registry.
            seed: torch seed for random weights.
            allow_download: allow downloading missing registry weights.
            detections_per_img: at most this many detections per image and model, the
                most confident (torchvision's ``box_detections_per_img``, default 100).

        Raises:
            ConfigError: unknown model, invalid device string, threshold or size.
            BackendError: CUDA requested but unavailable.
            WeightsError: weights missing, corrupt, or of another architecture.
        """
        spec = get_model_spec(model_name)
        if not 0.0 <= float(score_thresh) <= 1.0:
            raise ConfigError(f"score_thresh must be in [0, 1], got {score_thresh}")
        if int(min_size) < 32:
            raise ConfigError(f"min_size must be at least 32 pixels, got {min_size}")
        if int(detections_per_img) < 1:
            raise ConfigError(f"detections_per_img must be at least 1, got {detections_per_img}")
        dev = _resolve_device(device)
        self.spec: ModelSpec = spec
        self.model_name = spec.name
        self.categories: Sequence[str] = spec.categories
        self._keypoint_labels = tuple(i for i, name in enumerate(spec.categories) if name == "person")
        self.device = str(dev)
        self.score_thresh = float(score_thresh)
        self.min_size = int(min_size)
        self.max_size = max_size_for(self.min_size)
        self._dev = dev
        common = {
            "device": self.device,
            "seed": seed,
            "box_score_thresh": self.score_thresh,
            "min_size": self.min_size,
            "max_size": self.max_size,
            "allow_download": allow_download,
            "detections_per_img": int(detections_per_img),
        }
        self.model, self.random_weights = load_model(spec, weights, **common)
        self.keypoint_model: torch.nn.Module | None = None
        if keypoints and not spec.has_keypoints:
            kp_weights = RANDOM if weights is not None and str(weights).strip().lower() == RANDOM else None
            self.keypoint_model, kp_random = load_model(get_model_spec(KEYPOINT_MODEL), kp_weights, **common)
            self.random_weights = self.random_weights or kp_random
        self._share_transform = self.keypoint_model is not None and _same_transform(
            self.model.transform, self.keypoint_model.transform
        )

    def __repr__(self) -> str:
        extra = f" + {KEYPOINT_MODEL}" if self.keypoint_model is not None else ""
        random = ", RANDOM weights" if self.random_weights else ""
        return (
            f"TorchBackend({self.model_name}{extra}, device={self.device}, min_size={self.min_size}, "
            f"score_thresh={self.score_thresh}{random})"
        )

    # -- pieces -------------------------------------------------------------------------

    def _sync(self) -> None:
        if self._dev.type == "cuda":
            torch.cuda.synchronize(self._dev)

    def _to_tensor(self, image: np.ndarray) -> torch.Tensor:
        """(H, W, 3) uint8 RGB -> (3, H, W) float32 in [0, 1] on the device (``to_tensor``'s x / 255)."""
        if (
            not isinstance(image, np.ndarray)
            or image.ndim != 3
            or image.shape[2] != 3
            or image.dtype != np.uint8
        ):
            shape = getattr(image, "shape", None)
            dtype = getattr(image, "dtype", type(image).__name__)
            raise BackendError(f"expected an (H, W, 3) uint8 RGB image, got shape {shape} dtype {dtype}")
        array = image if image.flags.writeable and image.flags.c_contiguous else np.array(image, order="C")
        tensor = torch.from_numpy(array).to(self._dev, non_blocking=True)
        return tensor.permute(2, 0, 1).to(torch.float32).div(255)

    @staticmethod
    def _detect(model: Any, images: Any) -> dict[str, torch.Tensor | None]:
        """Backbone, RPN and ROI heads of one torchvision model up to the raw head outputs.

        Mirrors ``GeneralizedRCNN.forward`` and ``RoIHeads.forward`` (eval branch), but
        returns the label channel's mask probabilities (``maskrcnn_inference``) and the
        keypoint logits (input of ``keypointrcnn_inference``) instead of decoding them.
        """
        features = model.backbone(images.tensors)
        proposals, _ = model.rpn(images, features)
        heads = model.roi_heads
        sizes = images.image_sizes
        box_features = heads.box_head(heads.box_roi_pool(features, proposals, sizes))
        class_logits, box_regression = heads.box_predictor(box_features)
        boxes, scores, labels = heads.postprocess_detections(class_logits, box_regression, proposals, sizes)
        out: dict[str, torch.Tensor | None] = {
            "boxes": boxes[0],
            "scores": scores[0],
            "labels": labels[0],
            "mask_probs": None,
            "keypoint_heatmaps": None,
        }
        if heads.has_mask():
            mask_logits = heads.mask_predictor(heads.mask_head(heads.mask_roi_pool(features, boxes, sizes)))
            index = torch.arange(mask_logits.shape[0], device=mask_logits.device)
            out["mask_probs"] = mask_logits.sigmoid()[index, labels[0]]  # sigmoid first, as torchvision
        if heads.has_keypoint():
            kp_features = heads.keypoint_head(heads.keypoint_roi_pool(features, boxes, sizes))
            out["keypoint_heatmaps"] = heads.keypoint_predictor(kp_features)
        return out

    @staticmethod
    def _raw(
        out: dict[str, torch.Tensor | None], input_size: Any, image_size: tuple[int, int]
    ) -> RawDetections:
        def host(t: torch.Tensor | None) -> np.ndarray | None:
            return None if t is None else t.detach().to("cpu").numpy()

        return RawDetections(
            boxes=host(out["boxes"]),
            scores=host(out["scores"]),
            labels=host(out["labels"]),
            mask_probs=host(out["mask_probs"]),
            keypoint_heatmaps=host(out["keypoint_heatmaps"]),
            input_size=(int(input_size[0]), int(input_size[1])),
            image_size=image_size,
        )

    # -- Backend protocol ---------------------------------------------------------------

    def infer_raw(self, image: np.ndarray) -> tuple[list[RawDetections], dict[str, float]]:
        """Run the model(s) on one image up to the raw head outputs.

        Args:
            image: (H, W, 3) uint8 RGB.

        Returns:
            ``([main] or [main, keypoint], timings_ms)`` with ``preprocess`` and ``model``
            milliseconds.

        Raises:
            BackendError: not an (H, W, 3) uint8 image.
        """
        image_size = (int(image.shape[0]), int(image.shape[1])) if hasattr(image, "shape") else (0, 0)
        t0 = time.perf_counter()
        with torch.inference_mode():
            x = self._to_tensor(image)
            images, _ = self.model.transform([x])
            kp_images = None
            if self.keypoint_model is not None:
                kp_images = images if self._share_transform else self.keypoint_model.transform([x])[0]
            self._sync()
            t1 = time.perf_counter()
            outputs = [self._detect(self.model, images)]
            if self.keypoint_model is not None:
                outputs.append(self._detect(self.keypoint_model, kp_images))
            raws = [self._raw(outputs[0], images.image_sizes[0], image_size)]
            if kp_images is not None:
                raws.append(self._raw(outputs[1], kp_images.image_sizes[0], image_size))
            t2 = time.perf_counter()
        return raws, {"preprocess": (t1 - t0) * 1e3, "model": (t2 - t1) * 1e3}

    def infer(self, image: np.ndarray) -> tuple[Instances, dict[str, float]]:
        """Detect instances in one image.

        Args:
            image: (H, W, 3) uint8 RGB.

        Returns:
            ``(instances, timings_ms)``: instances in ``image`` pixels (masks (N, 28, 28)
            in the box frame; keypoints (N, 17, 3) for a keypoint model or with
            ``keypoints=True``, NaN rows for non-persons), and ``preprocess`` (uint8 to
            float tensor, resize, normalize), ``model`` (backbone to heads, both models,
            device to host copy) and ``postprocess`` (numpy) milliseconds.

        Raises:
            BackendError: not an (H, W, 3) uint8 image, or torch failed on it.
        """
        try:
            raws, timings = self.infer_raw(image)
        except BackendError:
            raise
        except (RuntimeError, ValueError) as exc:
            raise BackendError(
                f"torch backend failed on a {getattr(image, 'shape', '?')} image: {exc}"
            ) from exc
        t0 = time.perf_counter()
        # Keypoints only for persons: a model with both heads predicts them for every class.
        persons = self._keypoint_labels
        instances = postprocess(raws[0], score_thresh=self.score_thresh, keypoint_labels=persons)
        if len(raws) > 1:
            instances = merge_keypoints(instances, postprocess(raws[1], score_thresh=self.score_thresh))
        timings["postprocess"] = (time.perf_counter() - t0) * 1e3
        return instances, timings
