"""GPU checks (marked ``gpu``; skipped with the reason on a machine without CUDA).

1. The Triton RoIAlign kernel launched on CUDA against torchvision's MultiScaleRoIAlign on
   CUDA: fp32 and fp16, 7x7 with sampling ratio 2 and 14x14 adaptive, 1000 and 100 RoIs,
   256 channels, RoIs at FPN level edges and outside the image.
2. The PTX exactly as ``@aot_impl`` builds it (``compile_ptx(aot_kernel_args(...))``), loaded
   with the CUDA driver (``cuModuleLoadData``, what TensorRT does with it) and launched in
   TensorRT's calling convention: the five input pointers, the int32 extras, the output,
   then two null scratch pointers; grid, block and shared memory as the plugin reports them.
3. The torch backend on CUDA against torchvision's own forward on CUDA, with the CPU parity
   tolerances (tests/test_graph.py).

Run them with ``pytest -m gpu`` on a machine with an NVIDIA GPU; ``benchmarks/gpu.py`` times
the same model there.
"""

from __future__ import annotations

import ctypes

import pytest
import torch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU visible to torch (these are GPU checks)"),
]

#: P2..P5 sizes of an 800 x 1344 input, and their scales.
LEVELS = [(200, 336), (100, 168), (50, 84), (25, 42)]
SCALES = (0.25, 0.125, 0.0625, 0.03125)
IMAGE = (800, 1344)
#: (dtype, output size, sampling ratio, RoIs, tolerance): the issue's cases.
CASES = [
    (torch.float32, 7, 2, 1000, 1e-4),
    (torch.float32, 14, 0, 100, 1e-4),
    (torch.float16, 7, 2, 1000, 2e-2),
    (torch.float16, 14, 0, 100, 2e-2),
]


def problem(n: int, channels: int, dtype: torch.dtype, seed: int = 0) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Random features and ``n`` RoIs on the GPU, the first ones at level edges and outside the image."""
    g = torch.Generator().manual_seed(seed)
    feats = [torch.randn(1, channels, h, w, generator=g).to("cuda", dtype) for h, w in LEVELS]
    xy = torch.rand(n, 2, generator=g) * torch.tensor([1300.0, 780.0]) - 20
    wh = torch.rand(n, 2, generator=g) ** 2 * 700 + 1
    rois = torch.cat([xy, xy + wh], 1)
    rois[:6] = torch.tensor([[10, 10, 122, 122], [10, 10, 234, 234], [5, 5, 453, 453],  # sqrt(area) 112, 224, 448
                             [-30, -30, 40, 40], [1300, 780, 1400, 850], [100, 100, 100.5, 100.5]])  # fmt: skip
    return rois.to("cuda"), feats


def torchvision_reference(rois: torch.Tensor, feats: list[torch.Tensor], size: int, ratio: int) -> torch.Tensor:
    from torchvision.ops import MultiScaleRoIAlign

    pool = MultiScaleRoIAlign(["p2", "p3", "p4", "p5"], size, ratio)
    return pool({f"p{k}": f.float() for k, f in zip((2, 3, 4, 5), feats)}, [rois], [IMAGE])


@pytest.mark.parametrize(("dtype", "size", "ratio", "n", "tol"), CASES)
def test_triton_kernel_on_cuda_equals_torchvision(dtype, size, ratio, n, tol) -> None:
    from streamseg_plugins.roialign_triton import multi_level_roi_align_triton

    rois, feats = problem(n, 256, dtype)
    ours = multi_level_roi_align_triton(rois, *feats, output_size=size, sampling_ratio=ratio, aligned=False)
    torch.testing.assert_close(ours.float(), torchvision_reference(rois, feats, size, ratio), rtol=tol, atol=tol)


def _launch_as_tensorrt(kernel, args, rois: torch.Tensor, feats: list[torch.Tensor], out: torch.Tensor) -> None:  # noqa: ANN001
    """Load the PTX with the driver and launch it with TensorRT's argument list for AOT plugins."""
    cuda = ctypes.CDLL("libcuda.so.1")
    module, function = ctypes.c_void_p(), ctypes.c_void_p()
    err = cuda.cuModuleLoadData(ctypes.byref(module), ctypes.c_char_p(kernel.ptx.encode() + b"\0"))
    assert err == 0, f"cuModuleLoadData -> CUresult {err} (222: a PTX ISA the driver does not know)"
    assert cuda.cuModuleGetFunction(ctypes.byref(function), module, kernel.name.encode()) == 0
    values = [ctypes.c_uint64(t.data_ptr()) for t in (rois, *feats)]
    values += [ctypes.c_int32(int(s)) for s in args.scalars]
    values += [ctypes.c_uint64(out.data_ptr()), ctypes.c_uint64(0), ctypes.c_uint64(0)]  # scratch: NULL
    params = (ctypes.c_void_p * len(values))(*[ctypes.cast(ctypes.pointer(v), ctypes.c_void_p) for v in values])
    gx, gy, gz = (int(g) for g in args.grid)
    stream = ctypes.c_void_p(torch.cuda.current_stream().cuda_stream)
    err = cuda.cuLaunchKernel(function, gx, gy, gz, kernel.num_warps * 32, 1, 1, kernel.shared_mem, stream, params, None)
    assert err == 0, f"cuLaunchKernel -> CUresult {err}"
    torch.cuda.synchronize()


@pytest.mark.parametrize(("dtype", "size", "ratio", "n", "tol"), CASES)
def test_aot_ptx_launched_as_tensorrt_does_equals_torchvision(dtype, size, ratio, n, tol) -> None:
    from streamseg_plugins import trt_plugin as tp

    torch.zeros(1, device="cuda")  # the primary context, current for the driver calls
    rois, feats = problem(n, 256, dtype, seed=1)
    attributes = tp.RoIAlignAttributes((size, size), ratio, False, SCALES)
    args = tp.aot_kernel_args(num_rois=n, channels=256, level_sizes=LEVELS, dtype=str(dtype).split(".")[-1],
                              attributes=attributes)  # fmt: skip
    kernel = tp.compile_ptx(args)  # exactly what @aot_impl calls: this GPU's arch, the ISA both accept
    out = torch.full((n, 256, size, size), float("nan"), device="cuda", dtype=dtype)
    _launch_as_tensorrt(kernel, args, rois, feats, out)
    torch.testing.assert_close(out.float(), torchvision_reference(rois, feats, size, ratio), rtol=tol, atol=tol)


def test_torch_backend_on_cuda_matches_torchvision_on_cuda() -> None:
    """Our graph on CUDA (preprocessing, keypoints and mask pasting on the GPU) against torchvision's forward."""
    from torchvision.transforms.functional import to_tensor

    from tests.test_graph import MASK, SAME_SIZE, assert_matches_torchvision
    from tests.test_parity import IMAGES, load_rgb

    from streamseg.backends.torch_backend import TorchBackend
    from streamseg.models.preprocess import max_size_for
    from streamseg.models.registry import get_model_spec
    from streamseg.models.weights import load_model

    if not (IMAGES / SAME_SIZE[0]).is_file():
        pytest.skip(f"COCO test images not found under {IMAGES}")
    backend = TorchBackend(MASK, weights="random", score_thresh=0.0, device="cuda")
    assert backend.device_masks
    reference, _ = load_model(get_model_spec(MASK), "random", box_score_thresh=0.0, min_size=800,
                              max_size=max_size_for(800), device="cuda")  # fmt: skip
    for name in SAME_SIZE:
        image = load_rgb(name)
        ours, _ = backend.infer(image)
        assert ours.mask_crops is not None  # pasted on the GPU
        with torch.inference_mode():
            theirs = reference([to_tensor(image).to("cuda")])[0]
        assert_matches_torchvision(ours, {k: v.cpu().numpy() for k, v in theirs.items()})
