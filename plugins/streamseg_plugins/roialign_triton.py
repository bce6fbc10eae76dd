"""Triton kernel of ``streamseg::MultiLevelRoIAlign``, and a PyTorch launcher for it.

This file has no TensorRT types: the TensorRT plugin (``trt_plugin.py``) compiles
:func:`multi_level_roi_align_kernel` ahead of time with the helpers below
(:func:`kernel_constexprs`, :func:`kernel_signature`, :func:`launch_grid`) and bakes it into
the engine. :func:`multi_level_roi_align_triton` runs the same kernel from PyTorch, on a CUDA
device or, with ``TRITON_INTERPRET=1`` in the environment *before this module is imported*
(``@triton.jit`` reads it when it decorates), on the CPU through Triton's interpreter.

Semantics are those of :func:`streamseg.ops.multi_level_roi_align` (torchvision's
``MultiScaleRoIAlign`` level rule and ``roi_align`` sampling; see ``streamseg.ops.roi_align``),
with one documented difference: the level is found by comparing ``sqrt(area)`` with the
thresholds of :func:`streamseg.ops.roi_align.fpn_level_thresholds` (FPN eq. 1 solved for the
RoI size) instead of evaluating ``log2``, so GPUs' approximate ``lg2`` cannot move a RoI to
another level. The two agree except within about 1e-7 (relative) of a level boundary.

Kernel parameters, in the order TensorRT's AOT plugins expect (input pointers, int32 scalars,
output pointers, then compile-time constants):

* ``rois_ptr`` (``*fp32`` or ``*fp16``): RoIs ``[N, 4]``, ``(x1, y1, x2, y2)`` in input pixels,
  contiguous; read as float32 (keep them float32: float16 has a 1-pixel step above 1024).
* ``p2_ptr, p3_ptr, p4_ptr, p5_ptr`` (``*fp32`` or ``*fp16``, one dtype): ``P2`` .. ``P5``,
  ``[1, C, H_l, W_l]`` contiguous NCHW.
* ``num_rois, channels`` (``i32``): ``N`` and ``C``.
* ``height2, width2, height3, width3, height4, width4, height5, width5`` (``i32``): the
  feature-map sizes ``H_l, W_l``.
* ``out_ptr`` (``*fp32`` or ``*fp16``, the feature dtype): output ``[N, C, OUT_H, OUT_W]``,
  contiguous; accumulation is float32.
* constexprs, all from the node's attributes (:func:`kernel_constexprs`): ``OUT_H, OUT_W``
  (``output_size``), ``SAMPLING_RATIO`` (0 = adaptive ``ceil(roi_size / S)``), ``ALIGNED``
  (bool), ``SCALE2 .. SCALE5`` (float, ``spatial_scales``), ``LEVEL3_MIN_SIZE ..
  LEVEL5_MIN_SIZE`` (float, :func:`~streamseg.ops.roi_align.fpn_level_thresholds`),
  ``BLOCK_C`` (channels per program, a power of two) and ``BLOCK_BINS``
  (``next_power_of_2(OUT_H * OUT_W)``).

Grid: ``(N, ceil(C / BLOCK_C), 1)`` (:func:`launch_grid`); program ``(n, j)`` writes channels
``[j * BLOCK_C, (j + 1) * BLOCK_C)`` of RoI ``n``, all bins; one program per RoI and channel
block, so there are no atomics and the result does not depend on the launch. Programs with
``n >= num_rois`` return at once, so a grid sized from an upper bound is safe.
:func:`kernel_signature` gives the Triton signature for ``triton.compiler.ASTSource``. Note
for the plugin: the compiled PTX entry of Triton 3.x takes two more pointer parameters after
``out_ptr`` (Triton's global and profile scratch buffers; this kernel uses neither, its
``metadata.global_scratch_size`` is 0).

The kernels use only built-in ``triton.language`` operations, none of the ``@triton.jit``
helpers of ``triton.language.standard`` (``tl.zeros``, ``tl.sum``, ``tl.cdiv``, ...): those are
interpreted only if ``TRITON_INTERPRET=1`` was set before ``triton`` itself was imported, so
with built-ins alone a fresh import of this file under the variable is enough for the CPU
tests (``tests/test_roialign.py``), whatever imported ``triton`` first.

For results that match torchvision's CPU kernel to the last bit as closely as possible, compile
with ``enable_fp_fusion=False`` (no ``a * b + c`` contracted into an FMA); the launcher does.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import triton
import triton.language as tl
from torch import Tensor

from streamseg.ops.roi_align import (
    DEFAULT_SPATIAL_SCALES,
    check_inputs,
    fpn_level_thresholds,
    make_config,
)

__all__ = [
    "INTERPRETED",
    "default_block_c",
    "kernel_constexprs",
    "kernel_signature",
    "launch_grid",
    "multi_level_roi_align_kernel",
    "multi_level_roi_align_triton",
]

#: Largest ``BLOCK_C * BLOCK_BINS`` tile the launcher picks by default (float32 accumulators).
_MAX_TILE = 4096


@triton.jit
def _bilinear_axis(coord, size, size_f):
    """One axis of torchvision's ``bilinear_interpolate``: validity, neighbours and weights.

    A sample outside ``[-1, size]`` contributes zero; otherwise it is clamped to
    ``[0, size - 1]`` and interpolated between the neighbouring cells ``low`` and
    ``high`` (both ``size - 1`` at the far edge), same float32 operation order.

    Args:
        coord: ``[BLOCK_BINS]`` float32 sample coordinates along the axis, feature cells.
        size: int32 ``H`` or ``W`` of the feature map, cells.
        size_f: ``size`` as float32.

    Returns:
        ``(ok, low, high, frac, one_minus_frac)``: ``[BLOCK_BINS]`` bool (the sample
        counts), int32 ``low`` and ``high`` cell indices, float32 weight of ``high``
        (``frac``) and of ``low`` (``1 - frac``).
    """
    ok = (coord >= -1.0) & (coord <= size_f)
    coord = tl.minimum(tl.maximum(coord, 0.0), size_f)
    low = coord.to(tl.int32)
    edge = low >= size - 1
    low = tl.where(edge, size - 1, low)
    high = tl.where(edge, size - 1, low + 1)
    coord = tl.where(edge, low.to(tl.float32), coord)
    frac = coord - low.to(tl.float32)
    return ok, low, high, frac, 1.0 - frac


@triton.jit
def _pool_one_level(
    feature_ptr,
    height,
    width,
    x1,
    y1,
    x2,
    y2,
    c_offs,
    c_mask,
    bins,
    bin_mask,
    SCALE: tl.constexpr,
    OUT_H: tl.constexpr,
    OUT_W: tl.constexpr,
    SAMPLING_RATIO: tl.constexpr,
    ALIGNED: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BLOCK_BINS: tl.constexpr,
):
    """RoIAlign of one RoI on one level: ``[BLOCK_C, BLOCK_BINS]`` float32 averages.

    torchvision ``roi_align_forward_kernel_impl`` and ``bilinear_interpolate``, same float32
    operation order; divisions are IEEE (``div_rn``) as in C++.
    """
    if ALIGNED:
        offset = 0.5
    else:
        offset = 0.0
    # RoI in feature pixels.
    start_x = x1 * SCALE - offset
    start_y = y1 * SCALE - offset
    roi_w = (x2 * SCALE - offset) - start_x
    roi_h = (y2 * SCALE - offset) - start_y
    if not ALIGNED:
        # Force malformed RoIs to be at least 1 x 1 feature pixel (torchvision, aligned=False).
        roi_w = tl.maximum(roi_w, 1.0)
        roi_h = tl.maximum(roi_h, 1.0)
    out_h = tl.full([], OUT_H, tl.float32)
    out_w = tl.full([], OUT_W, tl.float32)
    bin_h = tl.div_rn(roi_h, out_h)
    bin_w = tl.div_rn(roi_w, out_w)
    if SAMPLING_RATIO > 0:
        grid_h = tl.full([], SAMPLING_RATIO, tl.int32)
        grid_w = tl.full([], SAMPLING_RATIO, tl.int32)
    else:
        grid_h = tl.ceil(tl.div_rn(roi_h, out_h)).to(tl.int32)
        grid_w = tl.ceil(tl.div_rn(roi_w, out_w)).to(tl.int32)
    count = tl.maximum(grid_h * grid_w, 1).to(tl.float32)
    grid_h_f = grid_h.to(tl.float32)
    grid_w_f = grid_w.to(tl.float32)

    ph = (bins // OUT_W).to(tl.float32)
    pw = (bins % OUT_W).to(tl.float32)
    height_f = height.to(tl.float32)
    width_f = width.to(tl.float32)
    channel_base = feature_ptr + c_offs.to(tl.int64)[:, None] * (height * width)
    load_mask = c_mask[:, None] & bin_mask[None, :]

    acc = tl.full([BLOCK_C, BLOCK_BINS], 0.0, tl.float32)
    for iy in range(grid_h):
        y = (start_y + ph * bin_h) + tl.div_rn((iy + 0.5) * bin_h, grid_h_f)
        y_ok, y_low, y_high, ly, hy = _bilinear_axis(y, height, height_f)
        for ix in range(grid_w):
            x = (start_x + pw * bin_w) + tl.div_rn((ix + 0.5) * bin_w, grid_w_f)
            x_ok, x_low, x_high, lx, hx = _bilinear_axis(x, width, width_f)

            ok = y_ok & x_ok
            w1 = tl.where(ok, hy * hx, 0.0)[None, :]
            w2 = tl.where(ok, hy * lx, 0.0)[None, :]
            w3 = tl.where(ok, ly * hx, 0.0)[None, :]
            w4 = tl.where(ok, ly * lx, 0.0)[None, :]
            mask = load_mask & ok[None, :]
            row_low = y_low * width
            row_high = y_high * width
            v1 = tl.load(channel_base + (row_low + x_low)[None, :], mask=mask, other=0.0).to(tl.float32)
            v2 = tl.load(channel_base + (row_low + x_high)[None, :], mask=mask, other=0.0).to(tl.float32)
            v3 = tl.load(channel_base + (row_high + x_low)[None, :], mask=mask, other=0.0).to(tl.float32)
            v4 = tl.load(channel_base + (row_high + x_high)[None, :], mask=mask, other=0.0).to(tl.float32)
            acc += w1 * v1 + w2 * v2 + w3 * v3 + w4 * v4
    return tl.div_rn(acc, count)


@triton.jit
def multi_level_roi_align_kernel(
    rois_ptr,
    p2_ptr,
    p3_ptr,
    p4_ptr,
    p5_ptr,
    num_rois,
    channels,
    height2,
    width2,
    height3,
    width3,
    height4,
    width4,
    height5,
    width5,
    out_ptr,
    OUT_H: tl.constexpr,
    OUT_W: tl.constexpr,
    SAMPLING_RATIO: tl.constexpr,
    ALIGNED: tl.constexpr,
    SCALE2: tl.constexpr,
    SCALE3: tl.constexpr,
    SCALE4: tl.constexpr,
    SCALE5: tl.constexpr,
    LEVEL3_MIN_SIZE: tl.constexpr,
    LEVEL4_MIN_SIZE: tl.constexpr,
    LEVEL5_MIN_SIZE: tl.constexpr,
    BLOCK_C: tl.constexpr,
    BLOCK_BINS: tl.constexpr,
):
    """Multi-level RoIAlign; parameters and grid: see the module docstring."""
    roi = tl.program_id(0)
    if roi < num_rois:
        c_offs = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
        c_mask = c_offs < channels
        bins = tl.arange(0, BLOCK_BINS)
        bin_mask = bins < OUT_H * OUT_W

        box = rois_ptr + roi.to(tl.int64) * 4
        x1 = tl.load(box + 0).to(tl.float32)
        y1 = tl.load(box + 1).to(tl.float32)
        x2 = tl.load(box + 2).to(tl.float32)
        y2 = tl.load(box + 3).to(tl.float32)

        # FPN eq. 1 as size thresholds (fpn_level_thresholds): level in 2..5.
        size = tl.sqrt_rn((x2 - x1) * (y2 - y1))
        level = (
            2
            + (size >= LEVEL3_MIN_SIZE).to(tl.int32)
            + (size >= LEVEL4_MIN_SIZE).to(tl.int32)
            + (size >= LEVEL5_MIN_SIZE).to(tl.int32)
        )

        if level == 2:
            pooled = _pool_one_level(
                p2_ptr, height2, width2, x1, y1, x2, y2, c_offs, c_mask, bins, bin_mask,
                SCALE2, OUT_H, OUT_W, SAMPLING_RATIO, ALIGNED, BLOCK_C, BLOCK_BINS,
            )  # fmt: skip
        elif level == 3:
            pooled = _pool_one_level(
                p3_ptr, height3, width3, x1, y1, x2, y2, c_offs, c_mask, bins, bin_mask,
                SCALE3, OUT_H, OUT_W, SAMPLING_RATIO, ALIGNED, BLOCK_C, BLOCK_BINS,
            )  # fmt: skip
        elif level == 4:
            pooled = _pool_one_level(
                p4_ptr, height4, width4, x1, y1, x2, y2, c_offs, c_mask, bins, bin_mask,
                SCALE4, OUT_H, OUT_W, SAMPLING_RATIO, ALIGNED, BLOCK_C, BLOCK_BINS,
            )  # fmt: skip
        else:
            pooled = _pool_one_level(
                p5_ptr, height5, width5, x1, y1, x2, y2, c_offs, c_mask, bins, bin_mask,
                SCALE5, OUT_H, OUT_W, SAMPLING_RATIO, ALIGNED, BLOCK_C, BLOCK_BINS,
            )  # fmt: skip

        out = out_ptr + (roi.to(tl.int64) * channels + c_offs.to(tl.int64))[:, None] * (OUT_H * OUT_W)
        tl.store(
            out + bins[None, :],
            pooled.to(out_ptr.dtype.element_ty),
            mask=c_mask[:, None] & bin_mask[None, :],
        )


#: True when this module was imported under ``TRITON_INTERPRET=1`` (kernels run on the CPU).
INTERPRETED = not isinstance(multi_level_roi_align_kernel, triton.runtime.jit.JITFunction)


def default_block_c(channels: int, output_size: Sequence[int]) -> int:
    """Channels per program: up to ``4096 / BLOCK_BINS`` (64 for 7x7, 16 for 14x14), a power of two."""
    block_bins = triton.next_power_of_2(output_size[0] * output_size[1])
    return max(1, min(triton.next_power_of_2(channels), _MAX_TILE // block_bins))


def kernel_constexprs(
    *,
    output_size: int | Sequence[int],
    sampling_ratio: int,
    aligned: bool,
    spatial_scales: Sequence[float] = DEFAULT_SPATIAL_SCALES,
    block_c: int,
) -> dict[str, int | float | bool]:
    """Every ``tl.constexpr`` of :func:`multi_level_roi_align_kernel`, from the op's attributes.

    Args:
        output_size, sampling_ratio, aligned, spatial_scales: the node's attributes.
        block_c: channels per program (a power of two; see :func:`default_block_c`).

    Returns:
        ``{name: value}`` for ``triton.compiler.ASTSource(constexprs=...)`` or kernel launch.

    Raises:
        ConfigError: for invalid attributes.
        ValueError: if ``block_c`` is not a positive power of two.
    """
    config = make_config(output_size, sampling_ratio, aligned, spatial_scales)
    if block_c < 1 or block_c & (block_c - 1):
        raise ValueError(f"block_c must be a positive power of two, got {block_c}")
    out_h, out_w = config.output_size
    t3, t4, t5 = fpn_level_thresholds()
    s2, s3, s4, s5 = config.spatial_scales
    return {
        "OUT_H": out_h,
        "OUT_W": out_w,
        "SAMPLING_RATIO": config.sampling_ratio,
        "ALIGNED": config.aligned,
        "SCALE2": s2,
        "SCALE3": s3,
        "SCALE4": s4,
        "SCALE5": s5,
        "LEVEL3_MIN_SIZE": t3,
        "LEVEL4_MIN_SIZE": t4,
        "LEVEL5_MIN_SIZE": t5,
        "BLOCK_C": block_c,
        "BLOCK_BINS": triton.next_power_of_2(out_h * out_w),
    }


def kernel_signature(feature_dtype: str = "fp32", rois_dtype: str = "fp32") -> dict[str, str]:
    """Triton signature of :func:`multi_level_roi_align_kernel` for ahead-of-time compilation.

    Args:
        feature_dtype: ``"fp32"`` or ``"fp16"``, dtype of ``P2`` .. ``P5`` and of the output.
        rois_dtype: ``"fp32"`` or ``"fp16"``.

    Returns:
        ``{parameter: type}`` for every parameter, constexprs typed ``"constexpr"``, for
        ``triton.compiler.ASTSource(signature=...)``.
    """
    for name, value in (("feature_dtype", feature_dtype), ("rois_dtype", rois_dtype)):
        if value not in ("fp32", "fp16"):
            raise ValueError(f"{name} must be 'fp32' or 'fp16', got {value!r}")
    signature: dict[str, str] = {}
    for name in multi_level_roi_align_kernel.arg_names:
        if name == "rois_ptr":
            signature[name] = f"*{rois_dtype}"
        elif name.endswith("_ptr"):
            signature[name] = f"*{feature_dtype}"
        elif name.isupper():
            signature[name] = "constexpr"
        else:
            signature[name] = "i32"
    return signature


def launch_grid(num_rois: int, channels: int, block_c: int) -> tuple[int, int, int]:
    """Grid ``(N, ceil(C / BLOCK_C), 1)`` of :func:`multi_level_roi_align_kernel`."""
    return (num_rois, triton.cdiv(channels, block_c), 1)


def multi_level_roi_align_triton(
    rois: Tensor,
    p2: Tensor,
    p3: Tensor,
    p4: Tensor,
    p5: Tensor,
    *,
    output_size: int | Sequence[int],
    sampling_ratio: int,
    aligned: bool,
    spatial_scales: Sequence[float] = DEFAULT_SPATIAL_SCALES,
    block_c: int | None = None,
    num_warps: int = 4,
) -> Tensor:
    """Run :func:`multi_level_roi_align_kernel` on PyTorch tensors.

    Args:
        rois: ``Tensor[N, 4]`` float32 (or float16), ``(x1, y1, x2, y2)`` in input pixels.
        p2, p3, p4, p5: ``Tensor[1, C, H_l, W_l]``, float32 or float16, one dtype.
        output_size, sampling_ratio, aligned, spatial_scales: as
            :func:`streamseg.ops.multi_level_roi_align`.
        block_c: channels per program; default :func:`default_block_c`.
        num_warps: warps per program on a GPU.

    Returns:
        ``Tensor[N, C, S_h, S_w]``, dtype of the feature maps (float32 accumulation).
        All tensors must be on one CUDA device, or on the CPU under ``TRITON_INTERPRET=1``.

    Raises:
        ConfigError: for invalid attributes.
        ValueError: for badly shaped inputs or an unsupported dtype.
    """
    features = [p2, p3, p4, p5]
    config = make_config(output_size, sampling_ratio, aligned, spatial_scales)
    check_inputs(rois, features)
    if p2.dtype not in (torch.float32, torch.float16):
        raise ValueError(
            f"multi_level_roi_align_triton: feature maps must be float32 or float16, got {p2.dtype}"
        )
    if rois.dtype not in (torch.float32, torch.float16):
        raise ValueError(f"multi_level_roi_align_triton: rois must be float32 or float16, got {rois.dtype}")
    if p2.device.type != "cuda" and not INTERPRETED:
        raise ValueError(
            f"multi_level_roi_align_triton: the tensors are on {p2.device}; the kernel runs on a CUDA "
            "device, or on the CPU when TRITON_INTERPRET=1 was set before this module was imported"
        )
    num_rois, channels = rois.shape[0], p2.shape[1]
    out = p2.new_empty((num_rois, channels, *config.output_size))
    if num_rois == 0 or channels == 0:
        return out
    if block_c is None:
        block_c = default_block_c(channels, config.output_size)
    constexprs = kernel_constexprs(
        output_size=config.output_size,
        sampling_ratio=config.sampling_ratio,
        aligned=config.aligned,
        spatial_scales=config.spatial_scales,
        block_c=block_c,
    )
    features = [f.contiguous() for f in features]
    sizes = [int(d) for f in features for d in f.shape[2:]]
    multi_level_roi_align_kernel[launch_grid(num_rois, channels, block_c)](
        rois.contiguous(),
        *features,
        num_rois,
        channels,
        *sizes,
        out,
        **constexprs,
        num_warps=num_warps,
        enable_fp_fusion=False,
    )
    return out
