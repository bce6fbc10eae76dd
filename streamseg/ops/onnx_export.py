"""ONNX export of ``MultiLevelRoIAlign``: the two flavours and the switch between them.

One export, two graphs (DESIGN.md, "Decisions already taken"):

* ``"trt"``: the op is ONE custom node ``streamseg::MultiLevelRoIAlign(rois, p2, p3, p4, p5)``
  (domain ``"streamseg"``, opset version 1) with attributes ``output_size`` (ints, 2),
  ``sampling_ratio`` (int), ``aligned`` (int, 0 or 1) and ``spatial_scales`` (floats, 4). The
  TensorRT plugin implements it with the Triton kernel; ONNX Runtime runs it through
  :mod:`streamseg.ops.ort_custom_op`.
* ``"ort"``: the op decomposed into standard opset-16+ nodes: the FPN level of every RoI from
  ``Sqrt`` and ``GreaterOrEqual`` against :func:`~streamseg.ops.roi_align.fpn_level_thresholds`,
  then per level ``Equal -> NonZero -> Gather`` of that level's RoIs, one ``RoiAlign`` on
  them (``mode="avg"``, ``coordinate_transformation_mode`` ``"half_pixel"`` if aligned else
  ``"output_half_pixel"``, ``sampling_ratio``, ``spatial_scale``, ``output_height`` and
  ``output_width`` always written out, because TensorRT's parser and ONNX Runtime disagree on
  the defaults) and a ``ScatterND`` back into RoI order. No ``Loop`` or ``If`` nodes.

Usage, with the TorchScript exporter (``dynamo=False``)::

    with onnx_flavour("trt"):
        torch.onnx.export(model, args, path, opset_version=17, dynamo=False,
                          custom_opsets=CUSTOM_OPSETS)

Outside :func:`onnx_flavour` the op never exports (it raises :class:`ConfigError`); outside
``torch.onnx.export`` the flavour has no effect and the op runs its PyTorch implementation.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

import torch
from torch import Tensor

from streamseg.errors import ConfigError
from streamseg.ops.roi_align import (
    RoIAlignConfig,
    _multi_level_roi_align,
    fpn_level_thresholds,
)

__all__ = [
    "CUSTOM_DOMAIN",
    "CUSTOM_OPSETS",
    "CUSTOM_OP_TYPE",
    "FLAVOURS",
    "MIN_ONNX_OPSET",
    "current_onnx_flavour",
    "export_multi_level_roi_align",
    "onnx_flavour",
]

#: ONNX domain and op type of the custom node (the "trt" flavour).
CUSTOM_DOMAIN = "streamseg"
CUSTOM_OP_TYPE = "MultiLevelRoIAlign"
#: Pass as ``torch.onnx.export(..., custom_opsets=CUSTOM_OPSETS)``: version of our domain.
CUSTOM_OPSETS = {CUSTOM_DOMAIN: 1}
#: The two graph flavours (see the module docstring).
FLAVOURS = ("trt", "ort")
#: RoiAlign's ``coordinate_transformation_mode`` appeared in opset 16.
MIN_ONNX_OPSET = 16

_FLAVOUR: contextvars.ContextVar[str | None] = contextvars.ContextVar("streamseg_onnx_flavour", default=None)

# ONNX TensorProto.DataType codes (onnx.proto), so this module does not need the onnx package.
_ONNX_FLOAT = 1
_ONNX_INT64 = 7


@contextlib.contextmanager
def onnx_flavour(flavour: str) -> Iterator[str]:
    """Select how ``MultiLevelRoIAlign`` exports inside this ``with`` block.

    Contexts nest (the innermost wins) and are per thread / per asyncio task
    (a :class:`contextvars.ContextVar`).

    Args:
        flavour: ``"trt"`` (one ``streamseg::MultiLevelRoIAlign`` node) or ``"ort"``
            (standard ``RoiAlign`` nodes per level).

    Yields:
        The flavour.

    Raises:
        ConfigError: if ``flavour`` is not one of :data:`FLAVOURS`.
    """
    if flavour not in FLAVOURS:
        expected = ", ".join(map(repr, FLAVOURS))
        raise ConfigError(f"unknown ONNX flavour {flavour!r}: expected one of {expected}")
    token = _FLAVOUR.set(flavour)
    try:
        yield flavour
    finally:
        _FLAVOUR.reset(token)


def current_onnx_flavour() -> str | None:
    """The flavour selected by the innermost :func:`onnx_flavour`, or None outside one."""
    return _FLAVOUR.get()


def _require_flavour() -> str:
    flavour = _FLAVOUR.get()
    if flavour is None:
        raise ConfigError(
            "MultiLevelRoIAlign is being exported to ONNX without a flavour: wrap torch.onnx.export "
            "in `with streamseg.ops.onnx_flavour('trt'):` (one streamseg::MultiLevelRoIAlign node, "
            "for TensorRT) or `with streamseg.ops.onnx_flavour('ort'):` (standard RoiAlign nodes, "
            "for ONNX Runtime)"
        )
    return flavour


class _MultiLevelRoIAlignFunction(torch.autograd.Function):
    """Export vehicle: the PyTorch implementation forward, a flavour-dependent ``symbolic``.

    Used only while ``torch.onnx.export`` traces the model (there is no backward; eager code
    calls the differentiable implementation directly).
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx,
        rois: Tensor,
        p2: Tensor,
        p3: Tensor,
        p4: Tensor,
        p5: Tensor,
        output_size: tuple[int, int],
        sampling_ratio: int,
        aligned: bool,
        spatial_scales: tuple[float, float, float, float],
    ) -> Tensor:
        config = RoIAlignConfig(tuple(output_size), sampling_ratio, aligned, tuple(spatial_scales))
        return _multi_level_roi_align(rois, [p2, p3, p4, p5], config)

    @staticmethod
    def symbolic(g, rois, p2, p3, p4, p5, output_size, sampling_ratio, aligned, spatial_scales):
        config = RoIAlignConfig(tuple(output_size), int(sampling_ratio), bool(aligned), tuple(spatial_scales))
        if _require_flavour() == "trt":
            return _symbolic_trt(g, rois, [p2, p3, p4, p5], config)
        return _symbolic_ort(g, rois, [p2, p3, p4, p5], config)


def export_multi_level_roi_align(rois: Tensor, features: list[Tensor], config: RoIAlignConfig) -> Tensor:
    """The op as traced by ``torch.onnx.export``; called by ``MultiLevelRoIAlign.forward``.

    Raises:
        ConfigError: if no :func:`onnx_flavour` is active.
    """
    _require_flavour()
    return _MultiLevelRoIAlignFunction.apply(rois, *features, *config)


def _set_output_type(out, rois, feature, config: RoIAlignConfig) -> None:
    """Give ``out`` the features' dtype and sizes ``[N, C, S_h, S_w]``, where they are known.

    The exporter's shape inference does not know the ``streamseg`` domain. If the inputs'
    types are not known either (possible inside larger traced graphs), ``out`` stays untyped.
    """
    try:
        rois_sizes = rois.type().varyingSizes() or [None]
        feature_sizes = feature.type().varyingSizes() or [None, None]
        sizes = [rois_sizes[0], feature_sizes[1], *config.output_size]
        out.setType(feature.type().with_sizes(sizes))
    except (AttributeError, RuntimeError):
        pass


def _symbolic_trt(g, rois, features, config: RoIAlignConfig):
    """One ``streamseg::MultiLevelRoIAlign`` node with all four attributes."""
    out = g.op(
        f"{CUSTOM_DOMAIN}::{CUSTOM_OP_TYPE}",
        rois,
        *features,
        output_size_i=list(config.output_size),
        sampling_ratio_i=config.sampling_ratio,
        aligned_i=int(config.aligned),
        spatial_scales_f=list(config.spatial_scales),
    )
    _set_output_type(out, rois, features[0], config)
    return out


def _const(g, values, dtype: torch.dtype):
    return g.op("Constant", value_t=torch.tensor(values, dtype=dtype))


def _symbolic_ort(g, rois, features, config: RoIAlignConfig):
    """Standard-ONNX decomposition: level per RoI, one ``RoiAlign`` per level, ``ScatterND``."""
    if g.opset < MIN_ONNX_OPSET:
        raise ConfigError(
            f"the 'ort' flavour of MultiLevelRoIAlign needs ONNX opset >= {MIN_ONNX_OPSET} "
            f"(RoiAlign's coordinate_transformation_mode), got opset {g.opset}"
        )
    feature_type = torch.onnx.JitScalarType.from_value(features[0], torch.onnx.JitScalarType.FLOAT)
    rois_type = torch.onnx.JitScalarType.from_value(rois, torch.onnx.JitScalarType.FLOAT)
    out_h, out_w = config.output_size

    # Level of each RoI (FPN eq. 1 as size thresholds), 0-based: Tensor[N] int64 in 0..3.
    boxes = g.op("Cast", rois, to_i=_ONNX_FLOAT)
    x1, y1, x2, y2 = (g.op("Gather", boxes, _const(g, i, torch.int64), axis_i=1) for i in range(4))
    area = g.op("Mul", g.op("Sub", x2, x1), g.op("Sub", y2, y1))
    size = g.op("Sqrt", area)
    level_index = None
    for threshold in fpn_level_thresholds():
        above = g.op("GreaterOrEqual", size, _const(g, threshold, torch.float32))
        step = g.op("Cast", above, to_i=_ONNX_INT64)
        level_index = step if level_index is None else g.op("Add", level_index, step)

    # RoiAlign wants rois in the features' dtype (its T1), as torchvision's roi_align does.
    if rois_type != feature_type:
        rois = g.op("Cast", rois, to_i=feature_type.onnx_type())

    # result = zeros[N, C, S_h, S_w] in the features' dtype.
    num_rois = g.op("Gather", g.op("Shape", rois), _const(g, [0], torch.int64), axis_i=0)
    channels = g.op("Gather", g.op("Shape", features[0]), _const(g, [1], torch.int64), axis_i=0)
    out_shape = g.op("Concat", num_rois, channels, _const(g, [out_h, out_w], torch.int64), axis_i=0)
    result = g.op("ConstantOfShape", out_shape, value_t=torch.zeros(1, dtype=feature_type.dtype()))

    mode = "half_pixel" if config.aligned else "output_half_pixel"
    for i, (feature, scale) in enumerate(zip(features, config.spatial_scales)):
        in_level = g.op("Equal", level_index, _const(g, i, torch.int64))
        where = g.op("NonZero", in_level)  # [1, M]
        index = g.op("Reshape", where, _const(g, [-1], torch.int64))  # [M]
        level_rois = g.op("Gather", rois, index, axis_i=0)  # [M, 4]
        batch_index = g.op("ConstantOfShape", g.op("Shape", index), value_t=torch.zeros(1, dtype=torch.int64))
        pooled = g.op(
            "RoiAlign",
            feature,
            level_rois,
            batch_index,
            coordinate_transformation_mode_s=mode,
            mode_s="avg",
            output_height_i=out_h,
            output_width_i=out_w,
            sampling_ratio_i=config.sampling_ratio,
            spatial_scale_f=scale,
        )
        result = g.op("ScatterND", result, g.op("Transpose", where, perm_i=[1, 0]), pooled)
    _set_output_type(result, rois, features[0], config)
    return result
