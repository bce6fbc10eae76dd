"""TensorRT registration of ``streamseg::MultiLevelRoIAlign`` (the ``tensorrt.plugin`` API).

The plugin is a thin wrapper around the Triton kernel in
:mod:`streamseg_plugins.roialign_triton`: ``@trtp.register`` gives TensorRT the
output shape and dtype, ``@trtp.autotune`` offers FP32 and FP16, and
``@trtp.aot_impl`` compiles the kernel to PTX ahead of time, so the kernel is
baked into the engine and the engine runs without Python (``trtexec``,
DeepStream, C++). ``@trtp.impl`` (a Python callback calling the same kernel) is
registered too, for graphs whose node says ``aot=0`` (debugging only).

Nothing here imports TensorRT (or Triton, or torch) at import time:
:func:`register` does, when called. This module holds the registration only; the
shape, dtype and attribute logic the decorated functions use are plain functions,
tested on any machine, in :mod:`streamseg_plugins.trt_node` (:func:`output_shape`,
:func:`output_dtype`, :class:`RoIAlignAttributes`, :func:`autotune_io_types`) and the
PTX compilation in :mod:`streamseg_plugins.trt_aot` (:func:`aot_kernel_args`,
:func:`compile_ptx`). Every name of ``__all__`` is importable from here, as before.

The ONNX node (see plugins/README.md for the conventions table)::

    streamseg::MultiLevelRoIAlign(rois, p2, p3, p4, p5) -> pooled
        rois    (N, 4) float32, xyxy, network-input pixels
        p2..p5  (1, C, H_l, W_l) float32 or float16, FPN levels 2..5
        pooled  (N, C, S0, S1), dtype of p2..p5
        attributes: output_size (ints, 2), sampling_ratio (int), aligned (int),
                    spatial_scales (floats, 4); for TensorRT's ONNX parser also
                    plugin_namespace = "streamseg" and aot = 1.
"""

# No ``from __future__ import annotations`` here: ``tensorrt.plugin`` reads the decorated
# functions' annotations as objects (TensorDesc marks an input, anything else an attribute).
import dataclasses
import threading
from typing import Any

from streamseg_plugins.trt_aot import (
    AOT_NUM_WARPS,
    AotKernelArgs,
    CompiledKernel,
    aot_kernel_args,
    compile_ptx,
    driver_ptx_version,
)
from streamseg_plugins.trt_node import (
    AOT_ATTRIBUTE,
    AUTOTUNE_IO_TYPES,
    NAMESPACE_ATTRIBUTE,
    NUM_LEVELS,
    PLUGIN_ID,
    PLUGIN_NAME,
    PLUGIN_NAMESPACE,
    PluginRegistrationError,
    RoIAlignAttributes,
    autotune_io_types,
    output_dtype,
    output_shape,
)

__all__ = [
    "AOT_ATTRIBUTE",
    "AOT_NUM_WARPS",
    "AUTOTUNE_IO_TYPES",
    "NAMESPACE_ATTRIBUTE",
    "NUM_LEVELS",
    "PLUGIN_ID",
    "PLUGIN_NAME",
    "PLUGIN_NAMESPACE",
    "PluginRegistrationError",
    "RoIAlignAttributes",
    "AotKernelArgs",
    "CompiledKernel",
    "aot_kernel_args",
    "autotune_io_types",
    "compile_ptx",
    "driver_ptx_version",
    "is_registered",
    "output_dtype",
    "output_shape",
    "register",
]

# --------------------------------------------------------------------------------------
# Registration (imports TensorRT)
# --------------------------------------------------------------------------------------

_LOCK = threading.Lock()
_REGISTERED = False


def is_registered() -> bool:
    """Whether :func:`register` has registered the plugin in this process."""
    return _REGISTERED


def register() -> None:
    """Register ``streamseg::MultiLevelRoIAlign`` with TensorRT (idempotent, thread-safe).

    Imports ``tensorrt.plugin`` and decorates the plugin's functions; call it before
    parsing an ONNX file that has the node. Running an engine built with the AOT
    implementation does not need it.

    Raises:
        PluginRegistrationError: TensorRT (10.9 or newer, for ``tensorrt.plugin``
            with ``aot_impl``) is not installed, or the registration failed.
    """
    global _REGISTERED
    with _LOCK:
        if _REGISTERED:
            return
        try:
            import tensorrt.plugin as trtp
        except ImportError as exc:
            raise PluginRegistrationError(
                f"cannot register {PLUGIN_ID}: tensorrt.plugin is not importable ({exc}); "
                "install TensorRT 10.9 or newer (pip install 'streamseg[tensorrt]')"
            ) from exc
        if not hasattr(trtp, "aot_impl"):
            raise PluginRegistrationError(
                f"cannot register {PLUGIN_ID}: this TensorRT has no tensorrt.plugin.aot_impl "
                "(needs TensorRT 10.9 or newer)"
            )
        try:
            _define(trtp)
        except ValueError as exc:
            # "already has a definition": registered earlier in this process (the QDP registry is
            # global), by other code or by an earlier call whose later decorators failed.
            if "already" not in str(exc).lower():
                raise PluginRegistrationError(f"registering {PLUGIN_ID} failed: {exc}") from exc
            if not _has_aot_impl():
                raise PluginRegistrationError(
                    f"{PLUGIN_ID} is registered in this process without its AOT implementation (an earlier "
                    "registration failed half way); start a new process to register it again"
                ) from exc
        except Exception as exc:  # tensorrt.plugin raises TypeError, AssertionError, ... on bad definitions
            raise PluginRegistrationError(f"registering {PLUGIN_ID} failed: {type(exc).__name__}: {exc}") from exc
        _REGISTERED = True


def _has_aot_impl() -> bool:
    """Whether tensorrt.plugin's registry holds our plugin with its ``@aot_impl`` (``QDP_REGISTRY``, _lib.py).

    True when the registry cannot be read (a TensorRT that moved it): the parser then says
    what is missing.
    """
    try:
        from tensorrt.plugin._lib import QDP_REGISTRY
    except ImportError:
        return True
    entry = QDP_REGISTRY.get(PLUGIN_ID)
    return entry is not None and getattr(entry, "aot_impl_func", None) is not None


@dataclasses.dataclass(frozen=True)
class _NodeArgs:
    """The arguments TensorRT passes every decorated function, grouped and validated.

    Attributes:
        rois: the (N, 4) float32 rois: a ``trtp.TensorDesc`` at build time, a
            ``trtp.Tensor`` in ``@impl``.
        levels: P2..P5, each (1, C, H_l, W_l), of the same kind as ``rois``.
        attributes: the node's attributes, from TensorRT's plugin fields.
    """

    rois: Any
    levels: tuple[Any, Any, Any, Any]
    attributes: RoIAlignAttributes


def _node_args(
    rois: Any,
    p2: Any,
    p3: Any,
    p4: Any,
    p5: Any,
    output_size: Any,
    sampling_ratio: Any,
    aligned: Any,
    spatial_scales: Any,
) -> _NodeArgs:
    """Group the decorated functions' common parameters (the same names, in the same order).

    Raises:
        ValueError: invalid attributes (see :class:`RoIAlignAttributes`).
    """
    return _NodeArgs(
        rois=rois,
        levels=(p2, p3, p4, p5),
        attributes=RoIAlignAttributes(output_size, sampling_ratio, aligned, spatial_scales),
    )


def _output_desc(trtp: Any, node: _NodeArgs) -> Any:
    """``@register``: the output's ``trtp.TensorDesc``, (N, C, S0, S1) in the features' dtype."""
    shape = output_shape(
        tuple(node.rois.shape_expr), [tuple(p.shape_expr) for p in node.levels], node.attributes.output_size
    )
    dtype = output_dtype(node.rois.dtype, [p.dtype for p in node.levels])
    return trtp.from_shape_expr(trtp.ShapeExprs.from_tuple(shape), dtype=dtype)


def _aot_kernel(trtp: Any, node: _NodeArgs) -> tuple[bytes, bytes, Any, Any]:
    """``@aot_impl``: (kernel name, PTX, ``trtp.KernelLaunchParams``, int32 extra arguments)."""
    p2 = node.levels[0]
    args = aot_kernel_args(
        num_rois=node.rois.shape_expr[0],
        channels=p2.shape_expr[1],
        level_sizes=[(p.shape_expr[2], p.shape_expr[3]) for p in node.levels],
        dtype=p2.dtype,
        attributes=node.attributes,
        cdiv=trtp.cdiv,
    )
    compiled = compile_ptx(args)
    params = trtp.KernelLaunchParams()
    params.grid_x, params.grid_y, params.grid_z = args.grid
    params.block_x = compiled.num_warps * 32
    params.shared_mem = compiled.shared_mem
    extra = trtp.SymIntExprs.from_tuple([trtp.SymInt32(v) for v in args.scalars])
    return compiled.name.encode(), compiled.ptx.encode(), params, extra


def _run_kernel(node: _NodeArgs, output: Any, stream: int) -> None:
    """``@impl`` (ONNX node with aot = 0): run the kernel from PyTorch on TensorRT's stream.

    For debugging, not for deployment.

    Args:
        node: the inputs as ``trtp.Tensor`` and the attributes.
        output: the ``trtp.Tensor`` to write, (N, C, S0, S1).
        stream: TensorRT's CUDA stream handle.
    """
    import torch

    from streamseg_plugins.roialign_triton import multi_level_roi_align_triton

    attrs = node.attributes
    with torch.cuda.stream(torch.cuda.ExternalStream(stream)):
        tensors = [torch.as_tensor(t, device="cuda") for t in (node.rois, *node.levels)]
        out = torch.as_tensor(output, device="cuda")
        out.copy_(
            multi_level_roi_align_triton(
                *tensors,
                output_size=attrs.output_size,
                sampling_ratio=attrs.sampling_ratio,
                aligned=attrs.aligned,
                spatial_scales=attrs.spatial_scales,
            )
        )


def _define(trtp: Any) -> None:
    """Apply the ``tensorrt.plugin`` decorators. Thin: all logic is in the functions above.

    The parameter lists and annotations are what ``tensorrt.plugin`` inspects (a
    ``TensorDesc`` / ``Tensor`` marks an input, anything else an attribute): keep them
    as they are; the bodies hand the common parameters to :func:`_node_args`. Every
    attribute is annotated ``npt.NDArray``: the parser hands each ONNX attribute over as a
    one-element (or longer) plugin-field array, and ``create_plugin`` converts a field
    with ``annotation(f.data)`` for a built-in annotation, which for ``int`` is
    ``int(np.array([2], np.int32))``: a TypeError from NumPy 2.4 on (an NDArray
    annotation gets ``f.data.astype(dtype)`` instead; ``_lib.py`` in tensorrt.plugin).
    """
    from typing import List, Tuple

    import numpy as np
    import numpy.typing as npt

    @trtp.register(PLUGIN_ID)
    def _desc(
        rois: trtp.TensorDesc,
        p2: trtp.TensorDesc,
        p3: trtp.TensorDesc,
        p4: trtp.TensorDesc,
        p5: trtp.TensorDesc,
        output_size: npt.NDArray[np.int32],
        sampling_ratio: npt.NDArray[np.int32],
        aligned: npt.NDArray[np.int32],
        spatial_scales: npt.NDArray[np.float32],
    ) -> trtp.TensorDesc:
        node = _node_args(rois, p2, p3, p4, p5, output_size, sampling_ratio, aligned, spatial_scales)
        return _output_desc(trtp, node)

    @trtp.autotune(PLUGIN_ID)
    def _autotune(
        rois: trtp.TensorDesc,
        p2: trtp.TensorDesc,
        p3: trtp.TensorDesc,
        p4: trtp.TensorDesc,
        p5: trtp.TensorDesc,
        outputs: Tuple[trtp.TensorDesc],
    ) -> List[trtp.AutoTuneCombination]:
        return [trtp.AutoTuneCombination(autotune_io_types())]

    @trtp.aot_impl(PLUGIN_ID)
    def _aot(
        rois: trtp.TensorDesc,
        p2: trtp.TensorDesc,
        p3: trtp.TensorDesc,
        p4: trtp.TensorDesc,
        p5: trtp.TensorDesc,
        output_size: npt.NDArray[np.int32],
        sampling_ratio: npt.NDArray[np.int32],
        aligned: npt.NDArray[np.int32],
        spatial_scales: npt.NDArray[np.float32],
        outputs: Tuple[trtp.TensorDesc],
        tactic: int,
    ) -> Tuple[bytes, bytes, trtp.KernelLaunchParams, trtp.SymExprs]:
        node = _node_args(rois, p2, p3, p4, p5, output_size, sampling_ratio, aligned, spatial_scales)
        return _aot_kernel(trtp, node)

    @trtp.impl(PLUGIN_ID)
    def _impl(
        rois: trtp.Tensor,
        p2: trtp.Tensor,
        p3: trtp.Tensor,
        p4: trtp.Tensor,
        p5: trtp.Tensor,
        output_size: npt.NDArray[np.int32],
        sampling_ratio: npt.NDArray[np.int32],
        aligned: npt.NDArray[np.int32],
        spatial_scales: npt.NDArray[np.float32],
        outputs: Tuple[trtp.Tensor],
        stream: int,
    ) -> None:
        node = _node_args(rois, p2, p3, p4, p5, output_size, sampling_ratio, aligned, spatial_scales)
        _run_kernel(node, outputs[0], stream)
