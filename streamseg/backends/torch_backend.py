"""The torch backend: the inference graph run eagerly by torch, on the CPU or a CUDA GPU.

:class:`TorchBackend` is a :class:`~streamseg.backends.graph_backend.GraphBackend` whose
graph call is :class:`~streamseg.models.graph.MaskRCNNGraph` itself, run eagerly on the
backend's device over the torchvision model's own modules (the same graph the ONNX
Runtime and TensorRT backends run exported, so it is also their reference). Eagerly,
the graph is torchvision's ``model([image])`` step by step (``GeneralizedRCNN.forward``,
``RegionProposalNetwork.filter_proposals``, ``RoIHeads.postprocess_detections``) with
torchvision's own NMS and RoIAlign kernels. Per frame:

1. the uint8 frame is copied to the device and preprocessed there
   (:func:`~streamseg.models.preprocess.preprocess_tensor`, the arithmetic of
   ``GeneralizedRCNNTransform``);
2. the graph for the frame's network size runs (built once per size: its anchors);
3. keypoint heatmaps are decoded on the device by torchvision's
   ``heatmaps_to_keypoints`` (:func:`~streamseg.postprocess.keypoints_from_heatmaps`);
4. only boxes, scores, labels, 28 x 28 mask probabilities and decoded keypoints are
   copied to the host, as :class:`~streamseg.postprocess.RawDetections`, and go through
   the :func:`~streamseg.postprocess.postprocess` every backend shares. No full-frame
   mask is ever made;
5. on CUDA (``device_masks``), the kept masks are also pasted into their boxes and
   binarised on the GPU as torchvision's ``paste_masks_in_image`` does
   (:func:`~streamseg.masks.paste_crops_tensor`), and the uint8 box crops come back
   in one copy as ``Instances.mask_crops``, so the drawing and the JSONL paste nothing.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from streamseg.backends.graph_backend import KEYPOINT_MODEL, GraphBackend
from streamseg.errors import BackendError, ConfigError
from streamseg.models.graph import INPUT_NAMES, MaskRCNNGraph
from streamseg.models.preprocess import IMAGE_MEAN, IMAGE_STD, SIZE_DIVISIBLE, max_size_for
from streamseg.models.registry import DEFAULT_MODEL
from streamseg.models.weights import load_model
from streamseg.postprocess import keypoints_from_heatmaps

__all__ = ["KEYPOINT_MODEL", "TorchBackend", "max_size_for"]


def _resolve_device(device: str) -> torch.device:
    """Parse and check a device string ("cpu", "cuda", "cuda:1").

    Raises:
        ConfigError: not a device string.
        BackendError: CUDA requested but not available, or another device type.
    """
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


def _check_transform(model: Any, name: str) -> None:
    """The graph's preprocessing is this model's ``GeneralizedRCNNTransform`` (mean, std, padding).

    Raises:
        ConfigError: the model normalises or pads differently (no registry model does).
    """
    t = model.transform
    same = (
        tuple(t.image_mean) == IMAGE_MEAN
        and tuple(t.image_std) == IMAGE_STD
        and t.size_divisible == SIZE_DIVISIBLE
        and t.fixed_size is None
    )
    if not same:
        raise ConfigError(
            f"model {name} preprocesses differently from the streamseg graph (mean {t.image_mean}, "
            f"std {t.image_std}, size_divisible {t.size_divisible}, fixed_size {t.fixed_size})"
        )


class TorchBackend(GraphBackend):
    """Mask R-CNN / Keypoint R-CNN with torch and torchvision, on CPU or CUDA.

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
        device_masks: paste and binarise the masks on the device, copying back only the
            uint8 box crops (``Instances.mask_crops``); None (default) does so on CUDA.

    Attributes:
        name: ``"torch"``.
        model_name: registry name of the main model.
        categories: class names indexed by label (index 0 is the background).
        random_weights: True when any model runs seeded random weights.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``.
        spec: registry entry of the main model.
        model: the torchvision model (eval mode, on ``device``) whose modules the graph runs.
        keypoint_model: the Keypoint R-CNN added by ``keypoints=True``, or None.
        score_thresh: minimum detection score (exclusive), torchvision's ``box_score_thresh``.
        min_size: shorter side of the network input, pixels.
        max_size: longest side of the network input, pixels.

    Raises:
        ConfigError: unknown model, invalid device string, threshold or size.
        BackendError: CUDA requested but unavailable.
        WeightsError: weights missing, corrupt, or of another architecture.
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
        device_masks: bool | None = None,
    ) -> None:
        super().__init__(
            model_name,
            score_thresh=score_thresh,
            min_size=min_size,
            keypoints=keypoints,
            detections_per_img=detections_per_img,
            weights=weights,
            seed=seed,
            allow_download=allow_download,
        )
        self._dev = _resolve_device(device)
        self.device = str(self._dev)
        self.device_masks = self._dev.type == "cuda" if device_masks is None else bool(device_masks)
        self._mask_probs: torch.Tensor | None = None  # the main model's last masks, on the device
        common = {
            "device": self.device,
            "seed": self.seed,
            "box_score_thresh": self.score_thresh,
            "min_size": self.min_size,
            "max_size": self.max_size,
            "allow_download": self.allow_download,
            "detections_per_img": self.detections_per_img,
        }
        kp_weights = self.weights_for(1)
        self.model, self.random_weights = load_model(self.spec, weights, **common)
        self.keypoint_model: torch.nn.Module | None = None
        if len(self.models) > 1:
            self.keypoint_model, kp_random = load_model(self.models[1].spec, kp_weights, **common)
            self.random_weights = self.random_weights or kp_random
        self._torch_models = [self.model] if self.keypoint_model is None else [self.model, self.keypoint_model]
        for m, torch_model in zip(self.models, self._torch_models, strict=True):
            _check_transform(torch_model, m.spec.name)
        self._graphs: dict[tuple[int, tuple[int, int]], MaskRCNNGraph] = {}

    def graph(self, index: int, size: tuple[int, int]) -> MaskRCNNGraph:
        """The :class:`~streamseg.models.graph.MaskRCNNGraph` of model ``index`` at network size ``size``.

        Built on first use for each size (it computes the anchors once, with one
        backbone pass on a blank input) and kept; graphs share the model's modules.
        """
        key = (index, size)
        graph = self._graphs.get(key)
        if graph is None:
            with torch.no_grad():
                graph = MaskRCNNGraph(
                    self._torch_models[index], size=size, detections_per_img=self.detections_per_img
                ).eval()
            self._graphs[key] = graph
        return graph

    def _sync(self) -> None:
        """Wait for the device's queued work (CUDA), so that the timings are the work's."""
        if self._dev.type == "cuda":
            torch.cuda.synchronize(self._dev)

    def _inputs(self, image: np.ndarray, size: tuple[int, int]) -> tuple[dict[str, Any], tuple[int, int]]:
        """The graph's inputs as tensors on the device: the uint8 frame is copied, then preprocessed there.

        Returns:
            ``(inputs, (h, w))``: ``images`` (1, 3, H', W') float32, ``image_size`` (2,)
            float32, ``score_thresh`` (1,) float32, all on the device; (h, w) pixels.
        """
        inputs, (h, w) = self._device_inputs(image, size, self._dev)
        self._sync()
        return inputs, (h, w)

    def _run(self, index: int, size: tuple[int, int], inputs: dict[str, Any]) -> dict[str, np.ndarray]:
        """Run the graph eagerly, decode keypoints on the device, copy the rows to the host.

        Returns:
            Host arrays ``boxes``, ``scores``, ``labels``, and ``mask_probs`` and / or
            ``keypoints`` (N, K, 3) (``keypoint_heatmaps`` decoded by
            :func:`~streamseg.postprocess.keypoints_from_heatmaps`).
        """
        graph = self.graph(index, size)
        with torch.inference_mode():
            outputs = dict(zip(graph.output_names, graph(*(inputs[k] for k in INPUT_NAMES)), strict=True))
            del outputs["num_detections"]  # dynamic shapes: every row is valid
            heatmaps = outputs.pop("keypoint_heatmaps", None)
            if heatmaps is not None:
                outputs["keypoints"] = keypoints_from_heatmaps(heatmaps, outputs["boxes"])
            if index == 0:
                self._mask_probs = outputs.get("mask_probs") if self.device_masks else None
            return {name: t.to("cpu").numpy() for name, t in outputs.items()}

    def _device_mask_probs(self) -> torch.Tensor | None:
        """The main model's last mask probabilities on the device when ``device_masks``, else None."""
        return self._mask_probs
