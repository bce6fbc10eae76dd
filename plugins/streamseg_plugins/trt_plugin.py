"""TensorRT registration of ``streamseg::MultiLevelRoIAlign`` (the ``tensorrt.plugin`` API).

The plugin is a thin wrapper around the Triton kernel in
:mod:`streamseg_plugins.roialign_triton`: ``@trtp.register`` gives TensorRT the
output shape and dtype, ``@trtp.autotune`` offers FP32 and FP16, and
``@trtp.aot_impl`` compiles the kernel to PTX ahead of time, so the kernel is
baked into the engine and the engine runs without Python (``trtexec``,
DeepStream, C++). ``@trtp.impl`` (a Python callback calling the same kernel) is
registered too, for graphs whose node says ``aot=0`` (debugging only).

Nothing here imports TensorRT (or Triton, or torch) at import time:
:func:`register` does, when called. The shape, dtype and attribute logic the
decorated functions use are plain functions of this module
(:func:`output_shape`, :func:`output_dtype`, :class:`RoIAlignAttributes`,
:func:`autotune_io_types`, :func:`aot_kernel_args`), tested on any machine.

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
import math
import threading
from collections.abc import Sequence
from typing import Any

__all__ = [
    "AOT_ATTRIBUTE",
    "AUTOTUNE_IO_TYPES",
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
        """The values TensorRT hands the decorated functions (numpy arrays for lists).

        Returns:
            ``{"output_size": int32 (2,), "sampling_ratio": int, "aligned": int,
            "spatial_scales": float32 (4,)}``; the parser packs ONNX ``ints`` as int32
            and ``floats`` as float32 plugin fields.
        """
        import numpy as np

        return {
            "output_size": np.asarray(self.output_size, dtype=np.int32),
            "sampling_ratio": self.sampling_ratio,
            "aligned": int(self.aligned),
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


def _dtype_name(dtype: Any) -> str:
    """``"float32"``, ``"float16"``, ... for a TensorRT, numpy or torch dtype, or a string."""
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
    if _dtype_name(rois_dtype) != "float32":
        raise ValueError(f"rois must be float32 (pixel coordinates), got {_dtype_name(rois_dtype)}")
    names = {_dtype_name(d) for d in feature_dtypes}
    if len(names) != 1 or next(iter(names)) not in _SUPPORTED_FEATURE_DTYPES:
        raise ValueError(f"P2..P5 must all be float32 or all float16, got {sorted(names)}")
    return feature_dtypes[0]


def autotune_io_types() -> str:
    """The ``AutoTuneCombination`` type string (see :data:`AUTOTUNE_IO_TYPES`)."""
    return AUTOTUNE_IO_TYPES


# --------------------------------------------------------------------------------------
# The ahead-of-time kernel: signature, constexprs, scalar arguments and grid
# --------------------------------------------------------------------------------------

#: Triton element type per feature dtype name.
_TRITON_TYPE = {"float32": "fp32", "float16": "fp16"}
#: Warps per program of the AOT kernel (the launcher's default).
AOT_NUM_WARPS = 4


@dataclasses.dataclass(frozen=True)
class AotKernelArgs:
    """What ``@aot_impl`` compiles and how TensorRT launches it.

    TensorRT launches an AOT plugin kernel as ``kernel(input pointers..., extra int32
    scalars..., output pointers...)``, which is the parameter order of
    ``roialign_triton.multi_level_roi_align_kernel``.

    Attributes:
        signature: ``{parameter: triton type}`` for ``triton.compiler.ASTSource``
            (``roialign_triton.kernel_signature``).
        constexprs: ``{parameter: value}`` compiled into the kernel: the attributes
            (TensorRT does not serialise the attributes of an AOT plugin).
        scalars: the int32 scalar arguments in order: N, C, H2, W2, .., H5, W5 (ints or
            shape expressions).
        grid: ``(N, ceil(C / BLOCK_C), 1)`` (ints or shape expressions).
    """

    signature: dict[str, str]
    constexprs: dict[str, Any]
    scalars: tuple[Any, ...]
    grid: tuple[Any, Any, Any]


@dataclasses.dataclass(frozen=True)
class CompiledKernel:
    """PTX of the kernel and its launch facts.

    Attributes:
        name: the PTX entry name.
        ptx: PTX text.
        num_warps: warps per program (``block_x = 32 * num_warps``).
        shared_mem: dynamic shared memory per program, bytes.
        arch: compute capability it was compiled for, e.g. 90.
    """

    name: str
    ptx: str
    num_warps: int
    shared_mem: int
    arch: int


def _constant(value: Any) -> int | None:
    """An int, or a constant ``tensorrt.plugin.ShapeExpr``'s value, else None."""
    if isinstance(value, int):
        return value
    try:
        if value.is_constant:
            return int(value.constant_value())
    except (AttributeError, RuntimeError):
        pass
    return None


def aot_kernel_args(
    *,
    num_rois: Any,
    channels: Any,
    level_sizes: Sequence[tuple[Any, Any]],
    dtype: Any,
    attributes: RoIAlignAttributes,
    block_c: int | None = None,
    cdiv: Any = None,
) -> AotKernelArgs:
    """Signature, constexprs, int32 scalar arguments and grid of the AOT kernel.

    Pure bookkeeping on ints or ``tensorrt.plugin`` shape expressions: ``@aot_impl``
    calls it with its inputs' shape expressions, tests with ints.

    Args:
        num_rois: N.
        channels: C (a constant C picks the block size; 256 is assumed otherwise).
        level_sizes: ((H2, W2), (H3, W3), (H4, W4), (H5, W5)) in feature cells.
        dtype: feature and output dtype (float32 or float16); the rois are float32.
        attributes: the node's attributes.
        block_c: channels per program; default ``roialign_triton.default_block_c``.
        cdiv: ceiling division for a symbolic C (``tensorrt.plugin.cdiv``); ints use ``-(-a // b)``.

    Returns:
        The :class:`AotKernelArgs`.

    Raises:
        ValueError: unsupported dtype or not four levels.
    """
    from streamseg_plugins import roialign_triton as rk

    name = _dtype_name(dtype)
    if name not in _TRITON_TYPE:
        raise ValueError(f"the plugin supports float32 and float16 features, got {name}")
    if len(level_sizes) != NUM_LEVELS:
        raise ValueError(f"expected {NUM_LEVELS} level sizes, got {len(level_sizes)}")
    c_const = _constant(channels)
    if block_c is None:
        block_c = rk.default_block_c(c_const if c_const is not None else 256, attributes.output_size)
    constexprs = rk.kernel_constexprs(
        output_size=attributes.output_size,
        sampling_ratio=attributes.sampling_ratio,
        aligned=attributes.aligned,
        spatial_scales=attributes.spatial_scales,
        block_c=block_c,
    )
    if c_const is not None:
        grid_y: Any = -(-c_const // block_c)
    elif cdiv is not None:
        grid_y = cdiv(channels, block_c)
    else:
        raise ValueError("a symbolic channel count needs cdiv (tensorrt.plugin.cdiv)")
    scalars = (num_rois, channels) + tuple(d for hw in level_sizes for d in hw)
    return AotKernelArgs(
        signature=rk.kernel_signature(_TRITON_TYPE[name], "fp32"),
        constexprs=constexprs,
        scalars=scalars,
        grid=(num_rois, grid_y, 1),
    )


def compile_ptx(args: AotKernelArgs, *, arch: int | None = None, ptx_version: int | None = None) -> CompiledKernel:
    """Compile the kernel to PTX for one GPU architecture (no GPU needed with ``arch``).

    FP contraction is off (``enable_fp_fusion=False``), as in the launcher, so the plugin
    rounds as torchvision's kernel does.

    Args:
        args: from :func:`aot_kernel_args`.
        arch: compute capability as an int (90 for sm_90); default the current CUDA device's.
        ptx_version: PTX ISA to emit (e.g. 85 for 8.5), to stay within what the driver loads;
            default: Triton's choice, lowered to the driver's if :func:`driver_ptx_version` knows it.

    Returns:
        The :class:`CompiledKernel`.

    Raises:
        PluginRegistrationError: the compiled kernel needs Triton's global or profile
            scratch memory, which TensorRT does not provide to AOT plugins.
    """
    import triton
    from triton.backends.compiler import GPUTarget

    from streamseg_plugins import roialign_triton as rk

    if arch is None:
        import torch

        major, minor = torch.cuda.get_device_capability()
        arch = major * 10 + minor
    options: dict[str, Any] = {"num_warps": AOT_NUM_WARPS, "enable_fp_fusion": False}
    if ptx_version is None:
        ptx_version = driver_ptx_version()
    if ptx_version is not None:
        options["ptx_version"] = int(ptx_version)
    src = triton.compiler.ASTSource(
        fn=rk.multi_level_roi_align_kernel, signature=dict(args.signature), constexprs=dict(args.constexprs)
    )
    compiled = triton.compile(src, target=GPUTarget("cuda", int(arch), 32), options=options)
    meta = compiled.metadata
    for field in ("global_scratch_size", "profile_scratch_size"):
        if int(getattr(meta, field, 0) or 0) > 0:
            raise PluginRegistrationError(
                f"the RoIAlign kernel needs Triton {field.replace('_size', '')} memory "
                f"({getattr(meta, field)} bytes), which TensorRT does not pass to AOT plugins"
            )
    return CompiledKernel(
        name=str(meta.name),
        ptx=compiled.asm["ptx"],
        num_warps=int(meta.num_warps),
        shared_mem=int(meta.shared),
        arch=int(arch),
    )


def driver_ptx_version() -> int | None:
    """Highest PTX ISA the CUDA driver loads, as Triton's int (e.g. 88), or None if unknown.

    TensorRT hands the PTX to the driver at engine load; PTX newer than the driver's
    CUDA version fails there (CUDA_ERROR_UNSUPPORTED_PTX_VERSION). Read with cuda-python
    (``cuDriverGetVersion``) and mapped with Triton's own table; None without a driver.
    """
    try:
        from cuda.bindings import driver
        from triton.backends.nvidia.compiler import ptx_get_version

        err, raw = driver.cuDriverGetVersion()
        if int(err) != 0 or raw <= 0:
            return None
        return int(ptx_get_version(f"{raw // 1000}.{(raw % 1000) // 10}"))
    except Exception:  # noqa: BLE001 - best effort: no cuda-python, no driver, Triton internals moved
        return None


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
        PluginRegistrationError: TensorRT (10.7 or newer, for ``tensorrt.plugin``
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
                "install TensorRT 10.7 or newer (pip install 'streamseg[tensorrt]')"
            ) from exc
        if not hasattr(trtp, "aot_impl"):
            raise PluginRegistrationError(
                f"cannot register {PLUGIN_ID}: this TensorRT has no tensorrt.plugin.aot_impl "
                "(needs TensorRT 10.7 or newer)"
            )
        try:
            _define(trtp)
        except ValueError as exc:
            # Registered earlier in this process by other code (the QDP registry is global).
            if "already" not in str(exc).lower():
                raise PluginRegistrationError(f"registering {PLUGIN_ID} failed: {exc}") from exc
        _REGISTERED = True


def _define(trtp: Any) -> None:
    """Apply the ``tensorrt.plugin`` decorators. Thin: all logic is in the functions above."""
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
        sampling_ratio: int,
        aligned: int,
        spatial_scales: npt.NDArray[np.float32],
    ) -> trtp.TensorDesc:
        attrs = RoIAlignAttributes(output_size, sampling_ratio, aligned, spatial_scales)
        levels = (p2, p3, p4, p5)
        shape = output_shape(
            tuple(rois.shape_expr), [tuple(p.shape_expr) for p in levels], attrs.output_size
        )
        dtype = output_dtype(rois.dtype, [p.dtype for p in levels])
        return trtp.from_shape_expr(trtp.ShapeExprs.from_tuple(shape), dtype=dtype)

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
        sampling_ratio: int,
        aligned: int,
        spatial_scales: npt.NDArray[np.float32],
        outputs: Tuple[trtp.TensorDesc],
        tactic: int,
    ) -> Tuple[bytes, bytes, trtp.KernelLaunchParams, trtp.SymExprs]:
        attrs = RoIAlignAttributes(output_size, sampling_ratio, aligned, spatial_scales)
        args = aot_kernel_args(
            num_rois=rois.shape_expr[0],
            channels=p2.shape_expr[1],
            level_sizes=[(p.shape_expr[2], p.shape_expr[3]) for p in (p2, p3, p4, p5)],
            dtype=p2.dtype,
            attributes=attrs,
            cdiv=trtp.cdiv,
        )
        compiled = compile_ptx(args)
        params = trtp.KernelLaunchParams()
        params.grid_x, params.grid_y, params.grid_z = args.grid
        params.block_x = compiled.num_warps * 32
        params.shared_mem = compiled.shared_mem
        extra = trtp.SymIntExprs.from_tuple([trtp.SymInt32(v) for v in args.scalars])
        return compiled.name.encode(), compiled.ptx.encode(), params, extra

    @trtp.impl(PLUGIN_ID)
    def _impl(
        rois: trtp.Tensor,
        p2: trtp.Tensor,
        p3: trtp.Tensor,
        p4: trtp.Tensor,
        p5: trtp.Tensor,
        output_size: npt.NDArray[np.int32],
        sampling_ratio: int,
        aligned: int,
        spatial_scales: npt.NDArray[np.float32],
        outputs: Tuple[trtp.Tensor],
        stream: int,
    ) -> None:
        # Python callback (ONNX node with aot = 0): for debugging, not for deployment.
        import torch

        from streamseg_plugins.roialign_triton import multi_level_roi_align_triton

        attrs = RoIAlignAttributes(output_size, sampling_ratio, aligned, spatial_scales)
        with torch.cuda.stream(torch.cuda.ExternalStream(stream)):
            tensors = [torch.as_tensor(t, device="cuda") for t in (rois, p2, p3, p4, p5)]
            out = torch.as_tensor(outputs[0], device="cuda")
            out.copy_(
                multi_level_roi_align_triton(
                    *tensors,
                    output_size=attrs.output_size,
                    sampling_ratio=attrs.sampling_ratio,
                    aligned=attrs.aligned,
                    spatial_scales=attrs.spatial_scales,
                )
            )
