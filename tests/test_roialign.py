"""MultiLevelRoIAlign: parity of the PyTorch, float64 reference and Triton implementations.

Every implementation is compared with torchvision (``MultiScaleRoIAlign`` for
``aligned=False``, whose ``aligned`` is fixed to False; per-level ``roi_align`` with
``LevelMapper``'s assignment for ``aligned=True``) and with the float64 reference, on random
feature maps and RoIs of every level, including RoIs that touch or cross the image border,
zero-size RoIs and RoIs exactly at a level boundary. The Triton kernel runs through Triton's
interpreter on the CPU (``TRITON_INTERPRET=1``, read when ``@triton.jit`` decorates, so the
kernel module is loaded afresh with it set; see :func:`load_triton_module`).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
from collections import OrderedDict
from pathlib import Path
from types import ModuleType

import pytest
import torch
import torchvision
from torchvision.ops.poolers import LevelMapper

from streamseg.errors import ConfigError
from streamseg.ops import (
    MultiLevelRoIAlign,
    fpn_level_thresholds,
    fpn_levels,
    multi_level_roi_align,
    multi_level_roi_align_reference,
)

#: Image size, a multiple of 32 so that MultiScaleRoIAlign infers scales 1/4 .. 1/32 exactly;
#: not square, so a height/width mix-up shows.
IMAGE_H, IMAGE_W = 256, 320
CHANNELS = 8
SCALES = (1 / 4, 1 / 8, 1 / 16, 1 / 32)
#: The tolerance of the parity requirement.
ATOL = 1e-5
#: Configurations under test: (sampling_ratio, aligned).
CONFIGS = [(0, False), (2, False), (0, True), (2, True)]

KERNEL_FILE = Path(__file__).resolve().parents[1] / "plugins" / "streamseg_plugins" / "roialign_triton.py"


def make_features(
    channels: int = CHANNELS, dtype: torch.dtype = torch.float32, seed: int = 0
) -> list[torch.Tensor]:
    """Random ``P2`` .. ``P5``, ``Tensor[1, C, H / s, W / s]`` for strides 4 .. 32 (rough: N(0, 1))."""
    generator = torch.Generator().manual_seed(seed)
    return [
        torch.randn(1, channels, IMAGE_H // stride, IMAGE_W // stride, generator=generator).to(dtype)
        for stride in (4, 8, 16, 32)
    ]


def make_rois(per_level: int = 9, seed: int = 1) -> torch.Tensor:
    """``Tensor[N, 4]`` xyxy pixels: ``per_level`` random RoIs for each level 2..5, plus edge cases.

    Random RoIs have sizes inside their level's range, aspect ratios 1:2 .. 2:1 and centres up
    to 40 pixels outside the image, so many cross its border. The edge cases touch the border,
    lie partly outside it, have zero width or height, or sit exactly on a level boundary.
    """
    generator = torch.Generator().manual_seed(seed)

    def uniform(n: int, low: float, high: float) -> torch.Tensor:
        return torch.rand(n, generator=generator, dtype=torch.float64) * (high - low) + low

    size_ranges = [(4.0, 110.0), (114.0, 222.0), (226.0, 446.0), (452.0, 700.0)]  # levels 2, 3, 4, 5
    sizes = torch.cat([uniform(per_level, low, high) for low, high in size_ranges])
    n = sizes.numel()
    aspect = torch.exp(uniform(n, -0.69, 0.69))
    w, h = sizes * aspect.sqrt(), sizes / aspect.sqrt()
    cx, cy = uniform(n, -40, IMAGE_W + 40), uniform(n, -40, IMAGE_H + 40)
    random_rois = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=1)
    edge_cases = torch.tensor(
        [
            [0.0, 0.0, 60.0, 40.0],  # touches the top-left corner
            [IMAGE_W - 150.0, IMAGE_H - 130.0, IMAGE_W, IMAGE_H],  # touches the bottom-right corner
            [-30.0, 100.0, 20.0, 180.0],  # crosses the left border
            [200.0, -50.0, 330.0, 90.0],  # crosses the top and right borders
            [0.0, 0.0, IMAGE_W, IMAGE_H],  # the whole image
            [50.0, 60.0, 50.0, 90.0],  # zero width
            [70.0, 20.0, 70.0, 20.0],  # a point
            [10.0, 20.0, 10.5, 20.25],  # sub-pixel
            [30.0, 30.0, 142.0, 142.0],  # sqrt(area) = 112: exactly the level 3 boundary
            [40.0, 10.0, 264.0, 234.0],  # 224: level 4 boundary
            [-60.0, -80.0, 388.0, 368.0],  # 448: level 5 boundary
        ],
        dtype=torch.float64,
    )
    return torch.cat([random_rois, edge_cases]).to(torch.float32)


def torchvision_expected(
    rois: torch.Tensor,
    features: list[torch.Tensor],
    sampling_ratio: int,
    aligned: bool,
    output_size: int = 7,
) -> torch.Tensor:
    """What torchvision computes: MultiScaleRoIAlign, or, for aligned=True, roi_align per level."""
    if not aligned:
        pooler = torchvision.ops.MultiScaleRoIAlign(["p2", "p3", "p4", "p5"], output_size, sampling_ratio)
        return pooler(OrderedDict(zip(["p2", "p3", "p4", "p5"], features)), [rois], [(IMAGE_H, IMAGE_W)])
    levels = LevelMapper(k_min=2, k_max=5)([rois])  # 0-based
    expected = torch.zeros(rois.shape[0], features[0].shape[1], output_size, output_size)
    for i, (feature, scale) in enumerate(zip(features, SCALES)):
        index = torch.where(levels == i)[0]
        expected[index] = torchvision.ops.roi_align(
            feature,
            [rois[index]],
            output_size,
            spatial_scale=scale,
            sampling_ratio=sampling_ratio,
            aligned=aligned,
        )
    return expected


Case = tuple[torch.Tensor, list[torch.Tensor], torch.Tensor, torch.Tensor]


@functools.cache
def case(sampling_ratio: int, aligned: bool) -> Case:
    """(rois, features, torchvision's result, float64 reference) for one configuration, computed once."""
    rois, features = make_rois(), make_features()
    expected = torchvision_expected(rois, features, sampling_ratio, aligned)
    reference = multi_level_roi_align_reference(
        rois, features, output_size=7, sampling_ratio=sampling_ratio, aligned=aligned
    )
    return rois, features, expected, reference


def assert_close(actual: torch.Tensor, expected: torch.Tensor, atol: float = ATOL) -> None:
    torch.testing.assert_close(actual.double(), expected.double(), rtol=0.0, atol=atol)


# ---------------------------------------------------------------------------------------------
# Level assignment


def test_test_rois_cover_every_level_and_the_border() -> None:
    rois = make_rois()
    counts = torch.bincount(fpn_levels(rois), minlength=6)[2:]
    assert (counts >= 9).all(), counts
    crossing = (rois[:, 0] < 0) | (rois[:, 1] < 0) | (rois[:, 2] > IMAGE_W) | (rois[:, 3] > IMAGE_H)
    assert crossing.sum() >= 10


def test_fpn_levels_equal_torchvision_level_mapper() -> None:
    rois = torch.cat([make_rois(per_level=200, seed=5), make_rois()])
    expected = LevelMapper(k_min=2, k_max=5)([rois]) + 2
    assert torch.equal(fpn_levels(rois), expected)
    # FPN eq. 1 at the boundaries: sqrt(area) = 112, 224, 448 start levels 3, 4, 5.
    sides = (111.9, 112.0, 223.9, 224.0, 447.9, 448.0, 2000.0, 1.0)
    squares = torch.tensor([[0.0, 0.0, s, s] for s in sides])
    assert fpn_levels(squares).tolist() == [2, 3, 3, 4, 4, 5, 5, 2]


def test_fpn_level_thresholds_agree_with_the_log2_formula() -> None:
    thresholds = torch.tensor(fpn_level_thresholds())
    assert thresholds.tolist() == pytest.approx([112.0, 224.0, 448.0], rel=1e-5)
    sizes = torch.cat([torch.logspace(0, 4, 20001), torch.tensor([0.0, 112.0, 224.0, 448.0])])
    squares = torch.stack([torch.zeros_like(sizes), torch.zeros_like(sizes), sizes, sizes], dim=1)
    from_thresholds = 2 + (torch.sqrt(sizes * sizes)[:, None] >= thresholds).sum(dim=1)
    assert torch.equal(from_thresholds, fpn_levels(squares))


# ---------------------------------------------------------------------------------------------
# PyTorch implementation and reference


@pytest.mark.parametrize("sampling_ratio", [0, 2])
def test_torch_equals_multiscale_roialign(sampling_ratio: int) -> None:
    """The graph's eager pooler must reproduce torchvision's forward (bit-identical or 1e-6)."""
    rois, features, expected, _ = case(sampling_ratio, False)
    pooler = MultiLevelRoIAlign(output_size=7, sampling_ratio=sampling_ratio, aligned=False)
    assert_close(pooler(rois, *features), expected, atol=1e-6)
    # Box, mask and keypoint heads: 7 and 14 bins, as in torchvision's R-CNNs.
    expected_14 = torchvision_expected(rois, features, sampling_ratio, False, output_size=14)
    assert_close(MultiLevelRoIAlign(14, sampling_ratio, False)(rois, *features), expected_14, atol=1e-6)


@pytest.mark.parametrize("sampling_ratio, aligned", CONFIGS)
def test_torch_and_reference_equal_torchvision(sampling_ratio: int, aligned: bool) -> None:
    rois, features, expected, reference = case(sampling_ratio, aligned)
    ours = multi_level_roi_align(
        rois, features, output_size=7, sampling_ratio=sampling_ratio, aligned=aligned
    )
    assert ours.shape == (rois.shape[0], CHANNELS, 7, 7) and ours.dtype == torch.float32
    assert_close(ours, expected)
    assert_close(reference, expected)
    assert_close(ours, reference)
    assert ours.abs().sum() > 0


def test_reference_detects_a_wrong_convention() -> None:
    """The comparisons can fail: aligned=True vs False differ by far more than the tolerance."""
    rois, features, expected, _ = case(2, False)
    shifted = multi_level_roi_align_reference(rois, features, output_size=7, sampling_ratio=2, aligned=True)
    assert (shifted - expected.double()).abs().max() > 100 * ATOL


def test_reference_with_float64_sample_positions_is_close() -> None:
    """Exact (float64) sample positions differ from float32 ones by a few ulps only."""
    rois, features, expected, _ = case(2, True)
    exact = multi_level_roi_align_reference(
        rois, features, output_size=7, sampling_ratio=2, aligned=True, sample_dtype=torch.float64
    )
    assert_close(exact, expected, atol=5e-4)


def test_torch_non_square_output_custom_scales_and_gradient() -> None:
    rois, features = make_rois(per_level=2), make_features(channels=3)
    scales = (1 / 4, 1 / 8, 1 / 16, 1 / 32)
    features = [f.requires_grad_() for f in features]
    kwargs = {"output_size": (3, 5), "sampling_ratio": 2, "aligned": True}
    ours = multi_level_roi_align(rois, features, spatial_scales=scales, **kwargs)
    reference = multi_level_roi_align_reference(rois, features, **kwargs)
    assert ours.shape == (rois.shape[0], 3, 3, 5)
    assert_close(ours, reference)
    ours.sum().backward()
    assert all(f.grad is not None for f in features)
    # Halving P3's scale changes exactly the level-3 RoIs.
    other = multi_level_roi_align(rois, features, spatial_scales=(1 / 4, 1 / 16, 1 / 16, 1 / 32), **kwargs)
    changed = (other - ours).flatten(1).abs().amax(dim=1) > 0
    assert torch.equal(changed, fpn_levels(rois) == 3)


def test_torch_empty_rois() -> None:
    out = MultiLevelRoIAlign(7)(torch.zeros(0, 4), *make_features())
    assert out.shape == (0, CHANNELS, 7, 7)


# ---------------------------------------------------------------------------------------------
# Errors


def test_bad_inputs_raise_value_errors() -> None:
    rois, features = make_rois(per_level=1), make_features(channels=2)
    pooler = MultiLevelRoIAlign(7)
    with pytest.raises(ValueError, match=r"rois must have shape \(N, 4\).*got shape \(5,\)"):
        pooler(torch.zeros(5), *features)
    with pytest.raises(ValueError, match=r"rois must have shape \(N, 4\).*\(15, 5\)"):
        pooler(torch.cat([torch.zeros(len(rois), 1), rois], dim=1), *features)
    with pytest.raises(ValueError, match="expected 4 feature maps \\(P2, P3, P4, P5\\), got 3"):
        multi_level_roi_align(rois, features[:3], output_size=7, sampling_ratio=2, aligned=False)
    with pytest.raises(ValueError, match="expected 4 feature maps"):
        multi_level_roi_align(rois, features + features[:1], output_size=7, sampling_ratio=2, aligned=False)
    mismatched = features[:3] + [torch.zeros(1, 3, 8, 10)]
    with pytest.raises(ValueError, match="same number of channels, P2 has 2 but P5 has 3"):
        pooler(rois, *mismatched)
    with pytest.raises(ValueError, match=r"P3 must have shape \(1, C, H, W\) \(one image\)"):
        pooler(rois, features[0], features[1].expand(2, -1, -1, -1), *features[2:])
    with pytest.raises(ValueError, match="same dtype"):
        pooler(rois, features[0], features[1].double(), *features[2:])
    with pytest.raises(ValueError, match="rois must be a floating tensor"):
        pooler(rois.long(), *features)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"output_size": 0}, "output_size must be a positive int"),
        ({"output_size": (7, 7, 7)}, "output_size must be a positive int"),
        ({"sampling_ratio": -1}, "sampling_ratio must be an int >= 0"),
        ({"aligned": 1}, "aligned must be a bool"),
        ({"spatial_scales": (0.25, 0.125, 0.0625)}, "spatial_scales must be 4 positive floats"),
        ({"spatial_scales": (0.25, 0.125, 0.0625, 0.0)}, "spatial_scales must be 4 positive floats"),
    ],
)
def test_bad_attributes_raise_config_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        MultiLevelRoIAlign(**kwargs)
    arguments = {"output_size": 7, "sampling_ratio": 2, "aligned": False} | kwargs
    with pytest.raises(ConfigError, match=message):
        multi_level_roi_align(make_rois(per_level=1), make_features(channels=1), **arguments)


# ---------------------------------------------------------------------------------------------
# Triton kernel (interpreted on the CPU)


def load_triton_module(interpret: bool) -> ModuleType:
    """A fresh copy of ``streamseg_plugins.roialign_triton`` with ``TRITON_INTERPRET`` set as asked.

    ``@triton.jit`` decides at decoration time whether a kernel is interpreted, so the file is
    executed again as a private module (``sys.modules`` and the real package are untouched) with
    the variable set, and the environment is restored afterwards.
    """
    pytest.importorskip("triton")
    saved = os.environ.get("TRITON_INTERPRET")
    os.environ["TRITON_INTERPRET"] = "1" if interpret else "0"
    try:
        name = f"_roialign_triton_{'interpreted' if interpret else 'compiled'}"
        spec = importlib.util.spec_from_file_location(name, KERNEL_FILE)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        if saved is None:
            del os.environ["TRITON_INTERPRET"]
        else:
            os.environ["TRITON_INTERPRET"] = saved
    return module


@pytest.fixture(scope="module")
def triton_module() -> ModuleType:
    return load_triton_module(interpret=True)


@pytest.mark.parametrize("sampling_ratio, aligned", CONFIGS)
def test_triton_equals_torchvision_and_reference(
    triton_module: ModuleType, sampling_ratio: int, aligned: bool
) -> None:
    rois, features, expected, reference = case(sampling_ratio, aligned)
    out = triton_module.multi_level_roi_align_triton(
        rois, *features, output_size=7, sampling_ratio=sampling_ratio, aligned=aligned
    )
    assert out.shape == (rois.shape[0], CHANNELS, 7, 7) and out.dtype == torch.float32
    assert_close(out, expected)
    assert_close(out, reference)


def test_triton_channel_blocks_non_square_output(triton_module: ModuleType) -> None:
    """Channel blocks that do not divide C, and OUT_H != OUT_W (masks on both axes)."""
    rois, features = make_rois(per_level=2, seed=7), make_features(channels=6, seed=3)
    out = triton_module.multi_level_roi_align_triton(
        rois, *features, output_size=(3, 5), sampling_ratio=2, aligned=True, block_c=4
    )
    expected = multi_level_roi_align(rois, features, output_size=(3, 5), sampling_ratio=2, aligned=True)
    assert_close(out, expected)


def test_triton_float16_accumulates_in_float32(triton_module: ModuleType) -> None:
    rois, features = make_rois(per_level=3, seed=11), make_features(channels=4, dtype=torch.float16)
    out = triton_module.multi_level_roi_align_triton(
        rois, *features, output_size=7, sampling_ratio=2, aligned=False
    )
    assert out.dtype == torch.float16
    # Same float16 inputs in float32: only the final rounding to float16 differs.
    expected = multi_level_roi_align(
        rois, [f.float() for f in features], output_size=7, sampling_ratio=2, aligned=False
    )
    torch.testing.assert_close(out.float(), expected, rtol=1e-3, atol=1e-3)


def test_triton_empty_rois_and_bad_inputs(triton_module: ModuleType) -> None:
    features = make_features(channels=2)
    out = triton_module.multi_level_roi_align_triton(
        torch.zeros(0, 4), *features, output_size=7, sampling_ratio=2, aligned=False
    )
    assert out.shape == (0, 2, 7, 7)
    with pytest.raises(ValueError, match=r"rois must have shape \(N, 4\)"):
        triton_module.multi_level_roi_align_triton(
            torch.zeros(3, 5), *features, output_size=7, sampling_ratio=2, aligned=False
        )
    with pytest.raises(ValueError, match="same number of channels"):
        mismatched = [*features[:3], torch.zeros(1, 4, 8, 10)]
        triton_module.multi_level_roi_align_triton(
            torch.zeros(3, 4), *mismatched, output_size=7, sampling_ratio=2, aligned=False
        )
    with pytest.raises(ValueError, match="float32 or float16"):
        triton_module.multi_level_roi_align_triton(
            torch.zeros(3, 4), *[f.double() for f in features], output_size=7, sampling_ratio=2, aligned=False
        )
    with pytest.raises(ConfigError, match="sampling_ratio"):
        triton_module.multi_level_roi_align_triton(
            torch.zeros(3, 4), *features, output_size=7, sampling_ratio=-1, aligned=False
        )


def test_triton_kernel_compiles_ahead_of_time_for_a_gpu() -> None:
    """The TensorRT plugin's path: ASTSource + triton.compile from the helpers, no GPU needed.

    Checks the PTX entry's parameter list (5 input pointers, 10 int32 scalars, the output
    pointer, then Triton's two scratch pointers) and that no approximate log2 or FMA is used.
    """
    module = load_triton_module(interpret=False)
    assert not module.INTERPRETED
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="TRITON_INTERPRET=1 was set before"):
            rois, features = make_rois(per_level=1), make_features(channels=1)
            kwargs = {"output_size": 7, "sampling_ratio": 2, "aligned": False}
            module.multi_level_roi_align_triton(rois, *features, **kwargs)
    import triton
    from triton.backends import backends
    from triton.backends.compiler import GPUTarget

    if "nvidia" not in backends:
        pytest.skip("Triton's NVIDIA backend is not installed")
    source = triton.compiler.ASTSource(
        fn=module.multi_level_roi_align_kernel,
        signature=module.kernel_signature("fp16"),
        constexprs=module.kernel_constexprs(output_size=14, sampling_ratio=0, aligned=True, block_c=16),
    )
    options = {"num_warps": 4, "enable_fp_fusion": False}
    compiled = triton.compile(source, target=GPUTarget("cuda", 90, 32), options=options)
    ptx = compiled.asm["ptx"]
    params = re.search(r"\.entry\s+multi_level_roi_align_kernel\s*\(([^)]*)\)", ptx).group(1)
    kinds = re.findall(r"\.param \.(u64 \.ptr|u32)", params)
    assert kinds == ["u64 .ptr"] * 5 + ["u32"] * 10 + ["u64 .ptr"] * 3
    assert "lg2." not in ptx and "fma.rn.f32" not in ptx
    assert compiled.metadata.global_scratch_size == 0
    assert module.launch_grid(1000, 256, 16) == (1000, 16, 1)
