"""``MultiLevelRoIAlign``, the ``nn.Module`` the inference graph uses for its RoI poolers."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from streamseg.ops.onnx_export import export_multi_level_roi_align
from streamseg.ops.roi_align import (
    DEFAULT_SPATIAL_SCALES,
    _multi_level_roi_align,
    check_inputs,
    make_config,
)

__all__ = ["MultiLevelRoIAlign"]


class MultiLevelRoIAlign(nn.Module):
    """FPN level assignment plus RoIAlign, for one image: ``streamseg::MultiLevelRoIAlign``.

    Equal to :class:`torchvision.ops.MultiScaleRoIAlign` on ``P2`` .. ``P5`` (bit-identical in
    eager mode: it runs the same per-level :func:`torchvision.ops.roi_align`), with ``aligned``
    and the spatial scales as explicit attributes instead of being inferred from image sizes.
    Level rule (FPN paper eq. 1, ``torchvision.ops.poolers.LevelMapper``):
    ``k = clamp(floor(4 + log2(sqrt(area) / 224) + 1e-6), 2, 5)``. Sampling: see
    :mod:`streamseg.ops.roi_align`.

    In eager mode ``forward`` runs :func:`~streamseg.ops.roi_align.multi_level_roi_align`
    (differentiable). Under ``torch.onnx.export`` (TorchScript exporter, ``dynamo=False``) it
    exports as chosen by :func:`~streamseg.ops.onnx_export.onnx_flavour`.

    Args:
        output_size: ``S`` or ``(S_h, S_w)`` bins per RoI (7 for boxes, 14 for masks and
            keypoints in torchvision's Mask / Keypoint R-CNN).
        sampling_ratio: samples per bin side; 0 = adaptive ``ceil(roi_size / S)``
            (torchvision's R-CNNs use 2).
        aligned: shift RoIs by -0.5 feature pixel (Detectron2's ROIAlignV2); torchvision's
            R-CNNs use False.
        spatial_scales: scales of ``P2`` .. ``P5``, default ``(1/4, 1/8, 1/16, 1/32)``.

    Raises:
        ConfigError: for invalid attributes.
    """

    def __init__(
        self,
        output_size: int | Sequence[int] = 7,
        sampling_ratio: int = 2,
        aligned: bool = False,
        spatial_scales: Sequence[float] = DEFAULT_SPATIAL_SCALES,
    ) -> None:
        super().__init__()
        self.config = make_config(output_size, sampling_ratio, aligned, spatial_scales)

    @property
    def output_size(self) -> tuple[int, int]:
        return self.config.output_size

    @property
    def sampling_ratio(self) -> int:
        return self.config.sampling_ratio

    @property
    def aligned(self) -> bool:
        return self.config.aligned

    @property
    def spatial_scales(self) -> tuple[float, float, float, float]:
        return self.config.spatial_scales

    def forward(self, rois: Tensor, p2: Tensor, p3: Tensor, p4: Tensor, p5: Tensor) -> Tensor:
        """Pool every RoI from its level.

        Args:
            rois: ``Tensor[N, 4]`` float, ``(x1, y1, x2, y2)`` in input-image pixels (one image).
            p2, p3, p4, p5: ``Tensor[1, C, H_l, W_l]``, one floating dtype, strides 4 .. 32.

        Returns:
            ``Tensor[N, C, S_h, S_w]`` in the features' dtype.

        Raises:
            ValueError: for badly shaped inputs (see :func:`~streamseg.ops.roi_align.check_inputs`).
            ConfigError: when exported to ONNX outside :func:`~streamseg.ops.onnx_export.onnx_flavour`.
        """
        features = [p2, p3, p4, p5]
        if torch.onnx.is_in_onnx_export():
            # The checks read static shapes and the traced PyTorch implementation is replaced
            # by the flavour's symbolic: the tracer's "might not generalize" warnings about
            # them are noise in the exporter's output.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", torch.jit.TracerWarning)
                check_inputs(rois, features)
                return export_multi_level_roi_align(rois, features, self.config)
        check_inputs(rois, features)
        return _multi_level_roi_align(rois, features, self.config)

    def extra_repr(self) -> str:
        scales = ", ".join(f"{s:g}" for s in self.spatial_scales)
        return (
            f"output_size={self.output_size}, sampling_ratio={self.sampling_ratio}, "
            f"aligned={self.aligned}, spatial_scales=({scales})"
        )
