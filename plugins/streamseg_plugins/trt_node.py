"""The contract of the ``streamseg::MultiLevelRoIAlign`` node, with no TensorRT in it.

What TensorRT's ``tensorrt.plugin`` decorators (:mod:`streamseg_plugins.trt_plugin`) and
TensorRT's ONNX parser need to know about the node, as plain functions tested on any
machine:

* the names (:data:`PLUGIN_NAMESPACE`, :data:`PLUGIN_NAME`, :data:`PLUGIN_ID`) and ONNX
  attributes (:data:`AOT_ATTRIBUTE`, :data:`NAMESPACE_ATTRIBUTE`);
* :class:`RoIAlignAttributes`: ``output_size``, ``sampling_ratio``, ``aligned`` and
  ``spatial_scales``, validated, read from an ONNX node or TensorRT's plugin fields;
* :func:`output_shape` and :func:`output_dtype`: ``(N, C, S0, S1)`` in the dtype of
  P2..P5, on ints or on ``tensorrt.plugin.ShapeExpr``;
* :data:`AUTOTUNE_IO_TYPES` / :func:`autotune_io_types`: the FP32 and FP16 type
  combinations offered to TensorRT;
* :class:`PluginRegistrationError`, raised when the plugin cannot be registered or
  compiled for TensorRT.

Nothing heavy is imported: numpy and onnx only inside the functions that need them.
"""

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

__all__ = [
    "AOT_ATTRIBUTE",
    "AUTOTUNE_IO_TYPES",
    "NAMESPACE_ATTRIBUTE",
    "NUM_LEVELS",
    "PLUGIN_ID",
    "PLUGIN_NAME",
    "PLUGIN_NAMESPACE",
    "PluginRegistrationError",
    "RoIAlignAttributes",
    "autotune_io_types",
    "dtype_name",
    "output_dtype",
    "output_shape",
]

#: Plugin namespace; also the ONNX domain of the node.
PLUGIN_NAMESPACE = "streamseg"
#: Plugin name; also the ONNX op_type of the node.
PLUGIN_NAME = "MultiLevelRoIAlign"
#: ``"{namespace}::{name}"``, the id ``tensorrt.plugin`` registers.
PLUGIN_ID = f"{PLUGIN_NAMESPACE}::{PLUGIN_NAME}"
#: FPN levels pooled from (P2..P5).
NUM_LEVELS = 4
#: ONNX attribute that asks TensorRT's parser for the ahead-of-time implementation.
AOT_ATTRIBUTE = "aot"
#: ONNX attribute that tells TensorRT's parser the plugin namespace.
NAMESPACE_ATTRIBUTE = "plugin_namespace"
#: Type combinations offered to TensorRT (inputs rois, p2, p3, p4, p5, then the output):
#: rois always FP32 (coordinates up to ~1344 px need more than FP16's 11 bits), the
#: features and the output either all FP32 or all FP16 (``|`` ties them together).
AUTOTUNE_IO_TYPES = "FP32, FP32|FP16, FP32|FP16, FP32|FP16, FP32|FP16, FP32|FP16"

_SUPPORTED_FEATURE_DTYPES = ("float32", "float16")


class PluginRegistrationError(RuntimeError):
    """The plugin could not be registered with TensorRT (no TensorRT, or no kernel)."""


@dataclasses.dataclass(frozen=True)
class RoIAlignAttributes:
    """The node's attributes, validated.

    Attributes:
        output_size: (S0, S1) pooled height and width, cells (7 x 7 for the box head,
            14 x 14 for the mask and keypoint heads in torchvision).
        sampling_ratio: bilinear samples per cell side; 0 means adaptive,
            ``ceil(roi_size / output_size)`` per RoI (torchvision's convention).
        aligned: True shifts box coordinates by -0.5 px (pixel centres,
            Detectron2 / torchvision ``aligned=True``); torchvision's Mask R-CNN uses False.
        spatial_scales: (4,) feature-map scale of P2..P5 relative to the input,
            1/4, 1/8, 1/16, 1/32 for a ResNet-FPN.

    Raises:
        ValueError: out-of-range or wrongly sized values.
    """

    output_size: tuple[int, int]
    sampling_ratio: int
    aligned: bool
    spatial_scales: tuple[float, ...]

    def __post_init__(self) -> None:
        size = tuple(int(v) for v in _flat(self.output_size))
        if len(size) != 2 or min(size) < 1:
            raise ValueError(f"output_size must be two positive ints, got {self.output_size!r}")
        ratio = int(_scalar(self.sampling_ratio))
        if ratio < 0:
            raise ValueError(f"sampling_ratio must be >= 0 (0 = adaptive), got {ratio}")
        aligned = int(_scalar(self.aligned))
        if aligned not in (0, 1):
            raise ValueError(f"aligned must be 0 or 1, got {aligned}")
        scales = tuple(float(v) for v in _flat(self.spatial_scales))
        if len(scales) != NUM_LEVELS or not all(math.isfinite(s) and s > 0 for s in scales):
            raise ValueError(f"spatial_scales must be {NUM_LEVELS} positive floats, got {self.spatial_scales!r}")
        object.__setattr__(self, "output_size", size)
        object.__setattr__(self, "sampling_ratio", ratio)
        object.__setattr__(self, "aligned", bool(aligned))
        object.__setattr__(self, "spatial_scales", scales)

    def to_onnx(self, *, aot: bool = True) -> dict[str, Any]:
        """Attributes for the ONNX node, as TensorRT's ONNX parser needs them.

        Args:
            aot: add ``aot = 1`` so the parser uses the ahead-of-time implementation
                (the kernel is compiled into the engine); ``False`` writes ``aot = 0``.

        Returns:
            ``{name: value}`` for ``onnx.helper.make_node(**attrs)``: output_size (list of 2
            ints), sampling_ratio (int), aligned (int), spatial_scales (list of 4 floats),
            plugin_namespace (str) and aot (int).
        """
        return {
            "output_size": list(self.output_size),
            "sampling_ratio": self.sampling_ratio,
            "aligned": int(self.aligned),
            "spatial_scales": list(self.spatial_scales),
            NAMESPACE_ATTRIBUTE: PLUGIN_NAMESPACE,
            AOT_ATTRIBUTE: int(bool(aot)),
        }

    def to_plugin_fields(self) -> dict[str, Any]:
        """The plugin fields TensorRT's ONNX parser makes of the node's attributes.

        Returns:
            ``{"output_size": int32 (2,), "sampling_ratio": int32 (1,), "aligned": int32 (1,),
            "spatial_scales": float32 (4,)}``: the parser packs an ONNX ``int`` or ``ints``
            as an int32 field and ``floats`` as a float32 field, a scalar as a
            one-element array. ``create_plugin`` then converts each by its annotation in
            the decorated functions (:func:`streamseg_plugins.trt_plugin._define`).
        """
        import numpy as np

        return {
            "output_size": np.asarray(self.output_size, dtype=np.int32),
            "sampling_ratio": np.array([self.sampling_ratio], dtype=np.int32),
            "aligned": np.array([int(self.aligned)], dtype=np.int32),
            "spatial_scales": np.asarray(self.spatial_scales, dtype=np.float32),
        }

    @classmethod
    def from_onnx_node(cls, node: Any) -> "RoIAlignAttributes":
        """Read the attributes of an ``onnx.NodeProto``.

        Raises:
            ValueError: an attribute is missing or invalid.
        """
        from onnx import helper

        values = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        missing = [k for k in ("output_size", "sampling_ratio", "aligned", "spatial_scales") if k not in values]
        if missing:
            raise ValueError(f"{PLUGIN_ID} node {node.name!r} lacks attribute(s) {', '.join(missing)}")
        return cls(
            output_size=tuple(values["output_size"]),
            sampling_ratio=values["sampling_ratio"],
            aligned=values["aligned"],
            spatial_scales=tuple(values["spatial_scales"]),
        )


def _flat(value: Any) -> list[Any]:
    """A list from a sequence or numpy array (the plugin fields arrive as numpy arrays)."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def _scalar(value: Any) -> Any:
    """A Python scalar from a scalar or a one-element array."""
    flat = _flat(value)
    if len(flat) != 1:
        raise ValueError(f"expected a scalar, got {value!r}")
    return flat[0]


def output_shape(
    rois_shape: Sequence[Any], feature_shapes: Sequence[Sequence[Any]], output_size: Sequence[Any]
) -> tuple[Any, ...]:
    """Output shape ``(N, C, S0, S1)`` of the node.

    Works on plain ints and on ``tensorrt.plugin.ShapeExpr`` (only indexes them), so
    ``@register`` calls it with symbolic shapes. Dimensions that are ints are checked.

    Args:
        rois_shape: (N, 4).
        feature_shapes: four (1, C, H_l, W_l) shapes, P2..P5.
        output_size: (S0, S1).

    Returns:
        ``(N, C, S0, S1)`` with N from the rois and C from P2.

    Raises:
        ValueError: wrong ranks, a rois width other than 4, a batch other than 1, or
            channel counts that differ between levels (where known).
    """
    if len(rois_shape) != 2:
        raise ValueError(f"rois must be (N, 4), got rank {len(rois_shape)}")
    if isinstance(rois_shape[1], int) and rois_shape[1] != 4:
        raise ValueError(f"rois must be (N, 4) xyxy, got (N, {rois_shape[1]})")
    if len(feature_shapes) != NUM_LEVELS:
        raise ValueError(f"expected {NUM_LEVELS} feature maps (P2..P5), got {len(feature_shapes)}")
    channels = []
    for level, shape in enumerate(feature_shapes, start=2):
        if len(shape) != 4:
            raise ValueError(f"p{level} must be (1, C, H, W), got rank {len(shape)}")
        if isinstance(shape[0], int) and shape[0] != 1:
            raise ValueError(f"p{level} must have batch 1, got {shape[0]}")
        channels.append(shape[1])
    known = {c for c in channels if isinstance(c, int)}
    if len(known) > 1:
        raise ValueError(f"P2..P5 must have the same channel count, got {channels}")
    size = [int(v) for v in _flat(output_size)]
    if len(size) != 2:
        raise ValueError(f"output_size must have 2 values, got {output_size!r}")
    return (rois_shape[0], channels[0], size[0], size[1])


def dtype_name(dtype: Any) -> str:
    """The numpy-style name of a dtype, so TensorRT, numpy and torch dtypes compare.

    Args:
        dtype: a ``trt.DataType`` (``FLOAT``, ``HALF``), numpy or torch dtype, or a
            string (``"fp32"``, ``"float16"``, ...).

    Returns:
        ``"float32"``, ``"float16"``, ... (lower case; other names pass through).
    """
    text = str(getattr(dtype, "name", dtype)).lower()
    text = text.rsplit(".", 1)[-1]
    return {"float": "float32", "half": "float16", "fp32": "float32", "fp16": "float16"}.get(text, text)


def output_dtype(rois_dtype: Any, feature_dtypes: Sequence[Any]) -> Any:
    """Output dtype of the node: the features' dtype.

    Args:
        rois_dtype: dtype of the rois (must be float32).
        feature_dtypes: dtypes of P2..P5 (all float32 or all float16).

    Returns:
        ``feature_dtypes[0]``, the same object (a ``trt.DataType`` under TensorRT).

    Raises:
        ValueError: rois not float32, mixed or unsupported feature dtypes.
    """
    if dtype_name(rois_dtype) != "float32":
        raise ValueError(f"rois must be float32 (pixel coordinates), got {dtype_name(rois_dtype)}")
    names = {dtype_name(d) for d in feature_dtypes}
    if len(names) != 1 or next(iter(names)) not in _SUPPORTED_FEATURE_DTYPES:
        raise ValueError(f"P2..P5 must all be float32 or all float16, got {sorted(names)}")
    return feature_dtypes[0]


def autotune_io_types() -> str:
    """The ``AutoTuneCombination`` type string (see :data:`AUTOTUNE_IO_TYPES`)."""
    return AUTOTUNE_IO_TYPES
