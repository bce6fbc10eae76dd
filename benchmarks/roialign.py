"""MultiLevelRoIAlign benchmark: milliseconds per call of each implementation.

Usage::

    python benchmarks/roialign.py [--rois 1000] [--channels 256] [--size 7] [--repeats 5]
                                  [--image 800 1216] [--triton-interpreter]

Setting: torchvision's Mask R-CNN box pooler (``output_size=7``, ``sampling_ratio=2``,
``aligned=False``) on random ``P2`` .. ``P5`` of an ``--image`` sized input (both sides
multiples of 32) and ``--rois`` random RoIs of every level. Reported: the median over
``--repeats`` calls after one warm-up of

* torchvision ``MultiScaleRoIAlign`` and :func:`streamseg.ops.multi_level_roi_align` (CPU,
  and CUDA when there is a GPU);
* ONNX Runtime on the CPU running the "ort" flavour (standard RoiAlign per level) and the
  "trt" flavour (the custom node as an onnxruntime-extensions Python op);
* the Triton kernel on CUDA when there is a GPU; with ``--triton-interpreter`` also under
  Triton's CPU interpreter, on a 30-RoI, 16-channel subset (the interpreter is slow).

The largest absolute difference from torchvision is printed next to each time.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
import warnings
from collections import OrderedDict

from pathlib import Path

# Python puts this script's folder first on sys.path, and benchmarks/ holds scripts named
# onnxruntime.py and tensorrt.py that would shadow the real packages.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import torch  # noqa: E402
import torchvision  # noqa: E402


def timed(fn, repeats: int) -> tuple[float, torch.Tensor]:
    """(median milliseconds, last result) over ``repeats`` calls after one warm-up call."""
    result = fn()
    times = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        start = time.perf_counter()
        result = fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), result


def make_inputs(num_rois: int, channels: int, image: tuple[int, int], seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    height, width = image
    features = [
        torch.randn(1, channels, height // s, width // s, generator=generator) for s in (4, 8, 16, 32)
    ]
    sizes = torch.exp(torch.rand(num_rois, generator=generator) * (6.5 - 2.5) + 2.5)  # 12 .. 665 px
    aspect = torch.exp(torch.rand(num_rois, generator=generator) * 1.4 - 0.7)
    cx = torch.rand(num_rois, generator=generator) * width
    cy = torch.rand(num_rois, generator=generator) * height
    w, h = sizes * aspect.sqrt(), sizes / aspect.sqrt()
    rois = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=1)
    return rois, features


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rois", type=int, default=1000)
    parser.add_argument("--channels", type=int, default=256)
    parser.add_argument("--size", type=int, default=7)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--image", type=int, nargs=2, default=(800, 1216), metavar=("H", "W"))
    parser.add_argument("--triton-interpreter", action="store_true")
    args = parser.parse_args(argv)
    if args.triton_interpreter:
        os.environ["TRITON_INTERPRET"] = "1"  # before triton is imported

    from streamseg.ops import CUSTOM_OPSETS, MultiLevelRoIAlign, onnx_flavour

    image = tuple(args.image)
    rois, features = make_inputs(args.rois, args.channels, image)
    pool = MultiLevelRoIAlign(args.size, sampling_ratio=2, aligned=False).eval()
    names = ["p2", "p3", "p4", "p5"]
    tv_pool = torchvision.ops.MultiScaleRoIAlign(names, args.size, 2)

    def torchvision_call(r=rois, f=features):
        return tv_pool(OrderedDict(zip(names, f)), [r], [image])

    print(
        f"{args.rois} RoIs, {args.channels} channels, {args.size}x{args.size}, image {image[0]}x{image[1]}, "
        f"torch threads {torch.get_num_threads()}"
    )
    with torch.no_grad():
        ms, expected = timed(torchvision_call, args.repeats)
        print(f"  torchvision MultiScaleRoIAlign (cpu)   {ms:9.2f} ms")
        ms, out = timed(lambda: pool(rois, *features), args.repeats)
        diff = (out - expected).abs().max()
        print(f"  streamseg torch (cpu)                  {ms:9.2f} ms   max|diff| {diff:.2e}")

    try:
        import onnxruntime  # noqa: F401

        from streamseg.ops.ort_custom_op import inference_session
    except ImportError:
        print("  onnxruntime not installed: ONNX timings skipped")
    else:
        feed = {n: t.numpy() for n, t in zip(["rois", *names], [rois, *features])}
        for flavour in ("ort", "trt"):
            buffer = io.BytesIO()
            with warnings.catch_warnings(), onnx_flavour(flavour):
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    pool, (rois, *features), buffer, opset_version=17, dynamo=False,
                    input_names=["rois", *names], dynamic_axes={"rois": {0: "n"}},
                    custom_opsets=CUSTOM_OPSETS if flavour == "trt" else None,
                )  # fmt: skip
            session = inference_session(buffer.getvalue())
            ms, out = timed(lambda s=session: s.run(None, feed)[0], args.repeats)
            diff = abs(torch.from_numpy(out) - expected).max()
            print(f"  onnxruntime '{flavour}' flavour (cpu)       {ms:9.2f} ms   max|diff| {diff:.2e}")

    from streamseg_plugins.roialign_triton import multi_level_roi_align_triton

    def triton_call(r, f):
        return multi_level_roi_align_triton(r, *f, output_size=args.size, sampling_ratio=2, aligned=False)

    if torch.cuda.is_available():
        cuda_rois, cuda_features = rois.cuda(), [f.cuda() for f in features]
        with torch.no_grad():
            ms, cuda_expected = timed(lambda: torchvision_call(cuda_rois, cuda_features), args.repeats)
            print(f"  torchvision MultiScaleRoIAlign (cuda)  {ms:9.2f} ms")
            ms, out = timed(lambda: triton_call(cuda_rois, cuda_features), args.repeats)
            print(f"  Triton kernel (cuda)                   {ms:9.2f} ms   max|diff| "
                  f"{(out - cuda_expected).abs().max():.2e}")  # fmt: skip
    if args.triton_interpreter:
        small_rois, small_features = rois[:30], [f[:, :16].contiguous() for f in features]
        small_expected = torchvision_call(small_rois, small_features)
        ms, out = timed(lambda: triton_call(small_rois, small_features), 1)
        print(f"  Triton interpreter, 30 RoIs x 16 ch    {ms:9.2f} ms   max|diff| "
              f"{(out - small_expected).abs().max():.2e}")  # fmt: skip
    sys.stdout.flush()


if __name__ == "__main__":
    main()
