"""Multi-level RoIAlign: FPN level assignment and bilinear RoI pooling in one step.

This module holds the two PyTorch implementations of ``streamseg::MultiLevelRoIAlign``:

* :func:`multi_level_roi_align`, the vectorised one the inference graph runs in eager mode.
  It calls :func:`torchvision.ops.roi_align` once per level on that level's RoIs, which is
  exactly what :class:`torchvision.ops.MultiScaleRoIAlign` does, so the two agree bit for bit.
* :func:`multi_level_roi_align_reference`, a float64 loop implementation written from the
  formulas below, for tests only.

The third implementation, the Triton kernel used by the TensorRT plugin, lives in
``streamseg_plugins.roialign_triton``.

Conventions (identical to torchvision's ``roi_align`` CPU/CUDA kernels, from Caffe2's
``RoIAlignOp``; Mask R-CNN, He et al. 2017, section 3):

* RoIs are ``(x1, y1, x2, y2)`` in input-image pixels of a single image (batch 1).
* Level: ``k = floor(4 + log2(sqrt(w * h) / 224) + 1e-6)`` clamped to ``[2, 5]``, where
  ``w = x2 - x1`` and ``h = y2 - y1`` (FPN paper, Lin et al. 2017, eq. 1;
  ``torchvision.ops.poolers.LevelMapper``). Level ``k`` pools from ``P_k`` with spatial
  scale ``spatial_scales[k - 2]`` (``1/4 .. 1/32`` by default); the scales do not change the
  level rule. The Triton kernel and the "ort" ONNX graph evaluate the same rule as
  comparisons of ``sqrt(w * h)`` with :func:`fpn_level_thresholds` (no ``log2``).
* RoI in feature pixels: ``x * scale - offset`` with ``offset = 0.5`` if ``aligned`` else 0.
  Without ``aligned``, RoI width and height are clamped to at least 1 feature pixel.
* Each of the ``S_h x S_w`` bins averages ``g_h x g_w`` bilinear samples at the centres of a
  regular sub-grid; ``g = sampling_ratio`` if it is positive, otherwise
  ``ceil(roi_size / S)`` per RoI (adaptive). The average divides by ``max(g_h * g_w, 1)``.
* Bilinear sampling (torchvision ``bilinear_interpolate``): a sample with ``y < -1`` or
  ``y > H`` (or the same for ``x`` and ``W``) contributes 0; otherwise ``y`` is clamped
  to ``[0, H - 1]`` and interpolated between the two neighbouring rows (same for ``x``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
import torchvision
from torch import Tensor

from streamseg.errors import ConfigError

__all__ = [
    "CANONICAL_LEVEL",
    "CANONICAL_SCALE",
    "DEFAULT_SPATIAL_SCALES",
    "LEVEL_EPS",
    "MAX_LEVEL",
    "MIN_LEVEL",
    "RoIAlignConfig",
    "check_inputs",
    "fpn_level_thresholds",
    "fpn_levels",
    "make_config",
    "multi_level_roi_align",
    "multi_level_roi_align_reference",
]

#: Canonical ImageNet pre-training size in pixels (FPN paper eq. 1, ``LevelMapper.s0``).
CANONICAL_SCALE = 224
#: Level a ``224 x 224`` RoI maps to (FPN paper eq. 1, ``LevelMapper.lvl0``).
CANONICAL_LEVEL = 4
#: Finest and coarsest pyramid levels (``P2`` .. ``P5``), as torchvision's Mask R-CNN.
MIN_LEVEL = 2
MAX_LEVEL = 5
#: ``LevelMapper.eps``: keeps exact powers of two (e.g. a 112 x 112 RoI) on the upper level.
LEVEL_EPS = 1e-6
#: Feature stride ``1 / 2**k`` of ``P2`` .. ``P5``.
DEFAULT_SPATIAL_SCALES = (1 / 4, 1 / 8, 1 / 16, 1 / 32)

NUM_LEVELS = MAX_LEVEL - MIN_LEVEL + 1


class RoIAlignConfig(NamedTuple):
    """Validated attributes of the op; build it with :func:`make_config`. Hashable."""

    #: ``(S_h, S_w)``, bins per RoI.
    output_size: tuple[int, int]
    #: Samples per bin side; 0 means adaptive, ``ceil(roi_size / S)``.
    sampling_ratio: int
    #: Shift the RoI by -0.5 feature pixel (Detectron2's ROIAlignV2).
    aligned: bool
    #: Feature pixels per image pixel of ``P2`` .. ``P5``.
    spatial_scales: tuple[float, float, float, float]


def make_config(
    output_size: int | Sequence[int],
    sampling_ratio: int,
    aligned: bool,
    spatial_scales: Sequence[float] = DEFAULT_SPATIAL_SCALES,
) -> RoIAlignConfig:
    """Validate and normalise the op's attributes.

    Args:
        output_size: ``S`` or ``(S_h, S_w)``, positive ints (bins per RoI).
        sampling_ratio: samples per bin side, ``>= 0`` (0 = adaptive). torchvision also
            accepts negative values and treats them as 0; here they are an error, so the
            exported graphs and the kernel never see them.
        aligned: pixel-shift convention (see the module docstring).
        spatial_scales: four positive floats, the scales of ``P2`` .. ``P5``.

    Returns:
        The validated :class:`RoIAlignConfig`.

    Raises:
        ConfigError: if any attribute is out of range or of the wrong type.
    """
    if isinstance(output_size, bool):
        raise ConfigError(f"MultiLevelRoIAlign: output_size must be an int or two ints, got {output_size!r}")
    if isinstance(output_size, int):
        size = (output_size, output_size)
    else:
        try:
            size = tuple(output_size)
        except TypeError:
            raise ConfigError(
                f"MultiLevelRoIAlign: output_size must be an int or two ints, got {output_size!r}"
            ) from None
    if len(size) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size):
        raise ConfigError(
            "MultiLevelRoIAlign: output_size must be a positive int or two positive ints, "
            f"got {output_size!r}"
        )
    if isinstance(sampling_ratio, bool) or not isinstance(sampling_ratio, int) or sampling_ratio < 0:
        raise ConfigError(
            f"MultiLevelRoIAlign: sampling_ratio must be an int >= 0 (0 = adaptive), got {sampling_ratio!r}"
        )
    if not isinstance(aligned, bool):
        raise ConfigError(f"MultiLevelRoIAlign: aligned must be a bool, got {aligned!r}")
    try:
        scales = tuple(float(s) for s in spatial_scales)
    except (TypeError, ValueError):
        raise ConfigError(
            f"MultiLevelRoIAlign: spatial_scales must be {NUM_LEVELS} floats, got {spatial_scales!r}"
        ) from None
    if len(scales) != NUM_LEVELS or not all(math.isfinite(s) and s > 0 for s in scales):
        raise ConfigError(
            f"MultiLevelRoIAlign: spatial_scales must be {NUM_LEVELS} positive floats (P2..P5), "
            f"got {spatial_scales!r}"
        )
    return RoIAlignConfig((int(size[0]), int(size[1])), int(sampling_ratio), aligned, scales)


def check_inputs(rois: Tensor, features: Sequence[Tensor]) -> None:
    """Check the tensors given to the op; shapes are documented in :func:`multi_level_roi_align`.

    Raises:
        ValueError: with a message naming the offending input, if ``rois`` is not a floating
            ``(N, 4)`` tensor, if ``features`` is not exactly four feature maps, or if the maps
            are not ``(1, C, H_l, W_l)`` floating tensors with one channel count, dtype and
            device.
    """
    if not isinstance(rois, Tensor):
        raise ValueError(f"MultiLevelRoIAlign: rois must be a Tensor[N, 4], got {type(rois).__name__}")
    if rois.dim() != 2 or rois.shape[1] != 4:
        raise ValueError(
            f"MultiLevelRoIAlign: rois must have shape (N, 4) as (x1, y1, x2, y2) in pixels of one image, "
            f"got shape {tuple(rois.shape)}"
        )
    if not rois.is_floating_point():
        raise ValueError(f"MultiLevelRoIAlign: rois must be a floating tensor, got {rois.dtype}")
    if isinstance(features, Tensor) or not isinstance(features, Sequence):
        raise ValueError(
            "MultiLevelRoIAlign: features must be a sequence of 4 feature maps (P2, P3, P4, P5), "
            f"got {type(features).__name__}"
        )
    if len(features) != NUM_LEVELS:
        raise ValueError(
            f"MultiLevelRoIAlign: expected {NUM_LEVELS} feature maps (P2, P3, P4, P5), got {len(features)}"
        )
    for level, feature in enumerate(features, start=MIN_LEVEL):
        if not isinstance(feature, Tensor):
            raise ValueError(f"MultiLevelRoIAlign: P{level} must be a Tensor, got {type(feature).__name__}")
        if feature.dim() != 4 or feature.shape[0] != 1:
            raise ValueError(
                f"MultiLevelRoIAlign: P{level} must have shape (1, C, H, W) (one image), "
                f"got shape {tuple(feature.shape)}"
            )
        if not feature.is_floating_point():
            raise ValueError(f"MultiLevelRoIAlign: P{level} must be a floating tensor, got {feature.dtype}")
    first = features[0]
    for level, feature in enumerate(features[1:], start=MIN_LEVEL + 1):
        if feature.shape[1] != first.shape[1]:
            raise ValueError(
                f"MultiLevelRoIAlign: all feature maps must have the same number of channels, "
                f"P2 has {first.shape[1]} but P{level} has {feature.shape[1]}"
            )
        if feature.dtype != first.dtype:
            raise ValueError(
                f"MultiLevelRoIAlign: all feature maps must have the same dtype, "
                f"P2 is {first.dtype} but P{level} is {feature.dtype}"
            )
        if feature.device != first.device:
            raise ValueError(
                f"MultiLevelRoIAlign: all feature maps must be on one device, "
                f"P2 is on {first.device} but P{level} is on {feature.device}"
            )
    if rois.device != first.device:
        raise ValueError(
            f"MultiLevelRoIAlign: rois are on {rois.device} but the feature maps are on {first.device}"
        )


def fpn_levels(rois: Tensor) -> Tensor:
    """FPN level of each RoI, exactly as ``torchvision.ops.poolers.LevelMapper`` computes it.

    ``k = floor(4 + log2(sqrt(area) / 224) + 1e-6)``, clamped to ``[2, 5]``
    (FPN paper, Lin et al. 2017, eq. 1; canonical scale 224, canonical level 4), with
    ``area = (x2 - x1) * (y2 - y1)``, evaluated with torch in the dtype of ``rois`` in the
    same operation order as torchvision, so the levels are bit-identical to
    :class:`torchvision.ops.MultiScaleRoIAlign`'s.

    Args:
        rois: ``Tensor[N, 4]`` float, ``(x1, y1, x2, y2)`` in input pixels.

    Returns:
        ``Tensor[N]`` int64, absolute levels in ``[2, 5]`` (not 0-based like torchvision's).
        RoIs with ``x2 < x1`` or ``y2 < y1`` get an unspecified level, as in torchvision.
    """
    sizes = torch.sqrt(torchvision.ops.box_area(rois))
    levels = torch.floor(
        CANONICAL_LEVEL + torch.log2(sizes / CANONICAL_SCALE) + torch.tensor(LEVEL_EPS, dtype=sizes.dtype)
    )
    levels = torch.clamp(levels, min=MIN_LEVEL, max=MAX_LEVEL)
    return levels.to(torch.int64)


def fpn_level_thresholds() -> tuple[float, float, float]:
    """RoI sizes ``sqrt(area)`` (pixels) at which levels 3, 4 and 5 start.

    Eq. 1 of the FPN paper solved for the size: ``k >= j`` exactly when
    ``sqrt(area) >= 224 * 2**(j - 4 - 1e-6)``. Each threshold is rounded up to the next
    float32, so for a float32 ``sqrt(area)``,
    ``level = 2 + sum(sqrt(area) >= t for t in thresholds)``. The Triton kernel and the
    ONNX Runtime graph use this form: it needs only an IEEE square root and comparisons,
    which every backend evaluates identically, whereas ``log2`` is approximated differently
    by GPUs and ONNX (which has only ``Log``). It agrees with :func:`fpn_levels` except for
    sizes within a few float32 ulps (about 1e-7 relative) of a threshold.

    Returns:
        ``(t3, t4, t5)``, float32-representable Python floats (about 112, 224, 448 pixels).
    """
    thresholds = []
    for level in range(MIN_LEVEL + 1, MAX_LEVEL + 1):
        exact = CANONICAL_SCALE * 2.0 ** (level - CANONICAL_LEVEL - LEVEL_EPS)
        value = torch.tensor(exact, dtype=torch.float32)
        if float(value) < exact:
            value = torch.nextafter(value, torch.tensor(math.inf, dtype=torch.float32))
        thresholds.append(float(value))
    return tuple(thresholds)


def multi_level_roi_align(
    rois: Tensor,
    features: Sequence[Tensor],
    *,
    output_size: int | Sequence[int],
    sampling_ratio: int,
    aligned: bool,
    spatial_scales: Sequence[float] = DEFAULT_SPATIAL_SCALES,
) -> Tensor:
    """Multi-level RoIAlign in PyTorch: per-level :func:`torchvision.ops.roi_align`.

    The same computation as :class:`torchvision.ops.MultiScaleRoIAlign` for one image (level
    by :func:`fpn_levels`, then ``roi_align`` on each level's RoIs and a scatter back into
    RoI order), with ``aligned`` exposed. Differentiable; runs on any device torchvision's
    ``roi_align`` runs on. Formulas: see the module docstring.

    Args:
        rois: ``Tensor[N, 4]`` float, ``(x1, y1, x2, y2)`` in input pixels of one image.
        features: ``[P2, P3, P4, P5]``, each ``Tensor[1, C, H_l, W_l]`` of one floating dtype.
        output_size: ``S`` or ``(S_h, S_w)``.
        sampling_ratio: samples per bin side, 0 = adaptive.
        aligned: half-pixel shift (see the module docstring).
        spatial_scales: scales of ``P2`` .. ``P5``, default ``(1/4, 1/8, 1/16, 1/32)``.

    Returns:
        ``Tensor[N, C, S_h, S_w]`` in the dtype and on the device of the feature maps.

    Raises:
        ConfigError: for invalid attributes (see :func:`make_config`).
        ValueError: for badly shaped inputs (see :func:`check_inputs`).
    """
    config = make_config(output_size, sampling_ratio, aligned, spatial_scales)
    check_inputs(rois, features)
    return _multi_level_roi_align(rois, list(features), config)


def _multi_level_roi_align(rois: Tensor, features: list[Tensor], config: RoIAlignConfig) -> Tensor:
    """:func:`multi_level_roi_align` on already validated arguments."""
    first = features[0]
    levels = fpn_levels(rois)
    # torchvision's roi_align wants rois as (K, 5) [batch_index, x1, y1, x2, y2] in the
    # feature dtype (torchvision.ops.poolers._convert_to_roi_format); one image: index 0.
    boxes = rois.to(first.dtype)
    rois5 = torch.cat([torch.zeros_like(boxes[:, :1]), boxes], dim=1)
    result = first.new_zeros((rois.shape[0], first.shape[1], *config.output_size))
    for level, (feature, scale) in enumerate(zip(features, config.spatial_scales), start=MIN_LEVEL):
        index = torch.where(levels == level)[0]
        pooled = torchvision.ops.roi_align(
            feature,
            rois5[index],
            output_size=config.output_size,
            spatial_scale=scale,
            sampling_ratio=config.sampling_ratio,
            aligned=config.aligned,
        )
        result[index] = pooled.to(result.dtype)
    return result


def multi_level_roi_align_reference(
    rois: Tensor,
    features: Sequence[Tensor],
    *,
    output_size: int | Sequence[int],
    sampling_ratio: int,
    aligned: bool,
    spatial_scales: Sequence[float] = DEFAULT_SPATIAL_SCALES,
    sample_dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Float64 loop reference of multi-level RoIAlign, written from the formulas; for tests.

    Slow (Python loops over RoIs, bins and samples; channels vectorised): keep inputs small.
    Levels come from ``math.log2`` in float64 (FPN eq. 1), not from :func:`fpn_levels`.

    Sample positions: the fast implementations compute them in float32 (torchvision:
    ``y = y1 + ph * bin_h + (iy + 0.5) * bin_h / g_h``, rounding after each operation).
    With ``sample_dtype=torch.float32`` (default) the reference rounds each of those
    operations to float32 in the same order, so all implementations sample at the same
    points and the comparison tests interpolation, weights and averaging (done here in
    float64) at a 1e-5 tolerance. With ``torch.float64`` the positions are exact too; they
    then differ from the float32 ones by up to a few float32 ulps of the feature-pixel
    coordinate (about 1e-5 feature pixels on a 128-pixel map), which on rough random maps
    moves the result by up to ~1e-4.

    Args:
        rois: ``Tensor[N, 4]``, ``(x1, y1, x2, y2)`` in input pixels.
        features: ``[P2, P3, P4, P5]``, each ``Tensor[1, C, H_l, W_l]``.
        output_size, sampling_ratio, aligned, spatial_scales: as :func:`multi_level_roi_align`.
        sample_dtype: ``torch.float32`` or ``torch.float64``, precision of the sample positions.

    Returns:
        ``Tensor[N, C, S_h, S_w]`` float64, on the CPU.

    Raises:
        ConfigError, ValueError: as :func:`multi_level_roi_align`.
    """
    config = make_config(output_size, sampling_ratio, aligned, spatial_scales)
    check_inputs(rois, features)
    if sample_dtype not in (torch.float32, torch.float64):
        raise ValueError(f"sample_dtype must be torch.float32 or torch.float64, got {sample_dtype}")
    if sample_dtype == torch.float32:

        def rnd(value: float) -> float:
            return float(np.float32(value))
    else:

        def rnd(value: float) -> float:
            return value

    out_h, out_w = config.output_size
    maps = [f[0].detach().to("cpu", torch.float64) for f in features]
    boxes = rois.detach().to("cpu", torch.float64).tolist()
    channels = maps[0].shape[0]
    result = torch.zeros((len(boxes), channels, out_h, out_w), dtype=torch.float64)
    offset = 0.5 if config.aligned else 0.0

    for n, (x1, y1, x2, y2) in enumerate(boxes):
        size = math.sqrt(max((x2 - x1) * (y2 - y1), 0.0))
        if size > 0:
            level = math.floor(CANONICAL_LEVEL + math.log2(size / CANONICAL_SCALE) + LEVEL_EPS)
        else:
            level = MIN_LEVEL
        level = min(max(level, MIN_LEVEL), MAX_LEVEL)
        feature = maps[level - MIN_LEVEL]
        scale = config.spatial_scales[level - MIN_LEVEL]
        height, width = feature.shape[1], feature.shape[2]

        start_x = rnd(rnd(x1 * scale) - offset)
        start_y = rnd(rnd(y1 * scale) - offset)
        roi_w = rnd(rnd(rnd(x2 * scale) - offset) - start_x)
        roi_h = rnd(rnd(rnd(y2 * scale) - offset) - start_y)
        if not config.aligned:
            roi_w, roi_h = max(roi_w, 1.0), max(roi_h, 1.0)
        bin_w, bin_h = rnd(roi_w / out_w), rnd(roi_h / out_h)
        if config.sampling_ratio > 0:
            grid_h = grid_w = config.sampling_ratio
        else:
            grid_h, grid_w = math.ceil(rnd(roi_h / out_h)), math.ceil(rnd(roi_w / out_w))
        count = max(grid_h * grid_w, 1)

        for ph in range(out_h):
            for pw in range(out_w):
                total = torch.zeros(channels, dtype=torch.float64)
                for iy in range(grid_h):
                    y = rnd(rnd(start_y + rnd(ph * bin_h)) + rnd(rnd((iy + 0.5) * bin_h) / grid_h))
                    for ix in range(grid_w):
                        x = rnd(rnd(start_x + rnd(pw * bin_w)) + rnd(rnd((ix + 0.5) * bin_w) / grid_w))
                        total += _bilinear(feature, y, x, height, width)
                result[n, :, ph, pw] = total / count
    return result


def _bilinear(feature: Tensor, y: float, x: float, height: int, width: int) -> Tensor:
    """Bilinear sample of ``feature`` (``Tensor[C, H, W]`` float64) at ``(y, x)`` feature pixels.

    torchvision's ``bilinear_interpolate`` (roi_align_kernel.cpp): zero outside
    ``[-1, H] x [-1, W]``, coordinates clamped to ``[0, H - 1] x [0, W - 1]`` otherwise.

    Returns:
        ``Tensor[C]`` float64.
    """
    if y < -1.0 or y > height or x < -1.0 or x > width:
        return torch.zeros(feature.shape[0], dtype=torch.float64)
    y, x = max(y, 0.0), max(x, 0.0)
    y_low, x_low = int(y), int(x)
    if y_low >= height - 1:
        y_low = y_high = height - 1
        y = float(y_low)
    else:
        y_high = y_low + 1
    if x_low >= width - 1:
        x_low = x_high = width - 1
        x = float(x_low)
    else:
        x_high = x_low + 1
    ly, lx = y - y_low, x - x_low
    hy, hx = 1.0 - ly, 1.0 - lx
    return (
        hy * hx * feature[:, y_low, x_low]
        + hy * lx * feature[:, y_low, x_high]
        + ly * hx * feature[:, y_high, x_low]
        + ly * lx * feature[:, y_high, x_high]
    )
