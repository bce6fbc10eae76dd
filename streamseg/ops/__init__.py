"""Custom operators: ``streamseg::MultiLevelRoIAlign`` (FPN level assignment + RoIAlign).

Public API:

* :class:`MultiLevelRoIAlign`: the ``nn.Module`` (``forward(rois, p2, p3, p4, p5)``).
* :func:`multi_level_roi_align`: the PyTorch implementation (per-level torchvision ``roi_align``).
* :func:`multi_level_roi_align_reference`: float64 loop reference, for tests.
* :func:`fpn_levels`: FPN level of each RoI (FPN paper eq. 1, torchvision's ``LevelMapper``).
* :func:`onnx_flavour`: context manager choosing the ONNX export, ``"trt"`` or ``"ort"``.

The Triton kernel (used by the TensorRT plugin) is ``streamseg_plugins.roialign_triton``;
running the ``"trt"`` ONNX flavour under ONNX Runtime is :mod:`streamseg.ops.ort_custom_op`.
"""

from streamseg.ops.module import MultiLevelRoIAlign
from streamseg.ops.onnx_export import (
    CUSTOM_DOMAIN,
    CUSTOM_OP_TYPE,
    CUSTOM_OPSETS,
    FLAVOURS,
    current_onnx_flavour,
    onnx_flavour,
)
from streamseg.ops.roi_align import (
    DEFAULT_SPATIAL_SCALES,
    fpn_level_thresholds,
    fpn_levels,
    multi_level_roi_align,
    multi_level_roi_align_reference,
)

__all__ = [
    "CUSTOM_DOMAIN",
    "CUSTOM_OPSETS",
    "CUSTOM_OP_TYPE",
    "DEFAULT_SPATIAL_SCALES",
    "FLAVOURS",
    "MultiLevelRoIAlign",
    "current_onnx_flavour",
    "fpn_level_thresholds",
    "fpn_levels",
    "multi_level_roi_align",
    "multi_level_roi_align_reference",
    "onnx_flavour",
]
