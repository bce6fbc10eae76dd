"""Ahead-of-time compilation of the RoIAlign Triton kernel for the TensorRT plugin.

``@trtp.aot_impl`` (:mod:`streamseg_plugins.trt_plugin`) hands TensorRT PTX and launch
parameters; this module makes them, without TensorRT:

* :func:`aot_kernel_args` / :class:`AotKernelArgs`: the Triton signature, the
  constexprs (the node's attributes, compiled in), the int32 scalar arguments and the
  grid, in TensorRT's AOT calling convention (input pointers, int32 scalars, output
  pointers), on ints or ``tensorrt.plugin`` shape expressions;
* :func:`compile_ptx` / :class:`CompiledKernel`: Triton -> PTX for one GPU
  architecture (no GPU needed when the architecture is given), refusing kernels that
  need Triton scratch memory, which TensorRT does not provide;
* :func:`driver_ptx_version`: the highest PTX ISA the installed CUDA driver loads.

Triton, torch and cuda-python are imported only inside the functions that need them.
"""

import dataclasses
from collections.abc import Sequence
from typing import Any

from streamseg_plugins.trt_node import (
    NUM_LEVELS,
    PluginRegistrationError,
    RoIAlignAttributes,
    dtype_name,
)

__all__ = [
    "AOT_NUM_WARPS",
    "AotKernelArgs",
    "CompiledKernel",
    "aot_kernel_args",
    "compile_ptx",
    "driver_ptx_version",
    "ptxas_ptx_version",
]

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

    name = dtype_name(dtype)
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


def compile_ptx(
    args: AotKernelArgs, *, arch: int | None = None, ptx_version: int | None = None, kernel: Any = None
) -> CompiledKernel:
    """Compile the kernel to PTX for one GPU architecture (no GPU needed with ``arch``).

    FP contraction is off (``enable_fp_fusion=False``), as in the launcher, so the plugin
    rounds as torchvision's kernel does. The PTX ISA is the lowest of the driver's
    (:func:`driver_ptx_version`: TensorRT hands the PTX to the driver at engine load) and
    the one Triton's bundled ptxas accepts (:func:`ptxas_ptx_version`: a CUDA 13 driver
    takes PTX 9.0, which ptxas 12.9 refuses), as torch_tensorrt's
    ``_compile_within_driver_isa`` does.

    Args:
        args: from :func:`aot_kernel_args`.
        arch: compute capability as an int (90 for sm_90); default the current CUDA device's.
        ptx_version: PTX ISA to emit at most (e.g. 85 for 8.5); default the driver's.
        kernel: the ``@triton.jit`` kernel (default: ``roialign_triton``'s).

    Returns:
        The :class:`CompiledKernel`.

    Raises:
        PluginRegistrationError: the kernel is Triton's interpreter (``TRITON_INTERPRET=1``),
            Triton cannot compile it, or the compiled kernel needs Triton's global or
            profile scratch memory, which TensorRT does not provide to AOT plugins.
    """
    import triton
    from triton.backends.compiler import GPUTarget

    from streamseg_plugins import roialign_triton as rk

    kernel = rk.multi_level_roi_align_kernel if kernel is None else kernel
    if not isinstance(kernel, triton.runtime.JITFunction):
        raise PluginRegistrationError(
            f"the RoIAlign kernel is {type(kernel).__name__}, not compiled: TRITON_INTERPRET=1 runs Triton "
            "kernels in its interpreter, which has no PTX; unset it to build TensorRT engines"
        )
    if arch is None:
        import torch

        major, minor = torch.cuda.get_device_capability()
        arch = major * 10 + minor
    options: dict[str, Any] = {"num_warps": AOT_NUM_WARPS, "enable_fp_fusion": False}
    caps = [v for v in (ptx_version if ptx_version is not None else driver_ptx_version(), ptxas_ptx_version(arch))
            if v is not None]  # fmt: skip
    if caps:
        options["ptx_version"] = int(min(caps))
    src = triton.compiler.ASTSource(fn=kernel, signature=dict(args.signature), constexprs=dict(args.constexprs))
    try:
        compiled = triton.compile(src, target=GPUTarget("cuda", int(arch), 32), options=options)
    except Exception as exc:  # Triton raises its own compile and ptxas errors
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise PluginRegistrationError(
            f"Triton could not compile the RoIAlign kernel for sm_{arch} "
            f"(PTX ISA {options.get('ptx_version', 'default')}): {reason}"
        ) from exc
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


def ptxas_ptx_version(arch: int) -> int | None:
    """Highest PTX ISA Triton's ptxas for ``arch`` assembles, as Triton's int (e.g. 88 for 12.9), or None.

    Triton assembles the PTX with its bundled ptxas (``get_ptxas(arch).version``, a CUDA
    version) and maps CUDA versions to PTX ISAs with ``ptx_get_version``; both are
    Triton's own (triton/backends/nvidia/compiler.py). None when they cannot be read.
    """
    try:
        from triton.backends.nvidia.compiler import get_ptxas, ptx_get_version

        return int(ptx_get_version(get_ptxas(int(arch)).version))
    except Exception:  # noqa: BLE001 - best effort: Triton internals moved, no ptxas
        return None


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
