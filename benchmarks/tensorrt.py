"""TensorRT benchmark: ms per frame of torch eager CUDA and TensorRT FP32, FP16 and INT8.

Runs the model on one frame padded to the network input (default 800x1344, the size of
a 1344-wide 16:9-ish frame at min_size 800) and reports median and p90 model
milliseconds (host-to-device copy, network, valid rows back; no pre/postprocessing)
per backend, after warm-up. Engines come from the engine cache (built on first use;
INT8 calibrates on --calib). Needs an NVIDIA GPU, TensorRT and the COCO weights;
exits with a message otherwise.

Usage::

    python benchmarks/tensorrt.py [--model maskrcnn_resnet50_fpn] [--size 800x1344]
        [--precisions fp32,fp16,int8] [--calib VIDEO_OR_DIR] [--frames 100] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
# Run as a script, this file's folder comes first on sys.path and this file would shadow the
# real ``tensorrt`` package: drop the folder.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(REPO))

from streamseg.errors import StreamsegError  # noqa: E402


def _stats(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms)
    return {"median_ms": float(np.median(a)), "p90_ms": float(np.percentile(a, 90)), "frames": len(a)}


def _frame(size: tuple[int, int]) -> np.ndarray:
    """A deterministic RGB frame that resizes exactly to ``size`` at min_size = size[0]."""
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (size[0], size[1], 3), dtype=np.uint8)


def bench_torch(model: str, size: tuple[int, int], frames: int, warmup: int) -> dict[str, float]:
    import torch

    from streamseg.backends.torch_backend import TorchBackend

    backend = TorchBackend(model, device="cuda", min_size=size[0], allow_download=False)
    image = _frame(size)
    times = []
    for i in range(warmup + frames):
        torch.cuda.synchronize()
        _, t = backend.infer_raw(image)
        if i >= warmup:
            times.append(t["model"])
    return _stats(times)


def bench_tensorrt(model: str, size: tuple[int, int], precision: str, calib: str | None, frames: int, warmup: int) -> dict[str, float]:
    from streamseg_engines.tensorrt_backend import TensorRTBackend

    backend = TensorRTBackend(model, device="cuda", precision=precision, min_size=size[0], size=size,
                              calib=calib, allow_download=False)
    image = _frame(size)
    times = []
    for i in range(warmup + frames):
        _, t = backend.infer(image)
        if i >= warmup:
            times.append(t["model"])
    return _stats(times)


def main(argv: list[str] | None = None) -> int:
    from streamseg_engines.cache import parse_size

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="maskrcnn_resnet50_fpn")
    p.add_argument("--size", default="800x1344")
    p.add_argument("--precisions", default="fp32,fp16,int8")
    p.add_argument("--calib", help="INT8 calibration video or image folder (default: skip INT8)")
    p.add_argument("--frames", type=int, default=100)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)
    size = parse_size(args.size)
    import torch

    if not torch.cuda.is_available():
        print("benchmarks/tensorrt.py: needs an NVIDIA GPU (torch.cuda.is_available() is False)", file=sys.stderr)
        return 2
    results: dict[str, object] = {"gpu": torch.cuda.get_device_name(), "size": args.size, "model": args.model}
    rows = []
    try:
        rows.append(("torch eager CUDA fp32", bench_torch(args.model, size, args.frames, args.warmup)))
        for precision in [s.strip() for s in args.precisions.split(",") if s.strip()]:
            if precision == "int8" and not args.calib:
                print("benchmarks/tensorrt.py: skipping INT8 (no --calib)", file=sys.stderr)
                continue
            t0 = time.perf_counter()
            stats = bench_tensorrt(args.model, size, precision, args.calib, args.frames, args.warmup)
            stats["setup_s"] = time.perf_counter() - t0
            rows.append((f"TensorRT {precision}", stats))
    except StreamsegError as exc:
        print(f"benchmarks/tensorrt.py: {exc}", file=sys.stderr)
        return 1
    print(f"{args.model} at {args.size} on {results['gpu']} (model time: copy in, network, valid rows out)")
    for name, stats in rows:
        print(f"  {name:<22} median {stats['median_ms']:7.2f} ms   p90 {stats['p90_ms']:7.2f} ms")
    results["results"] = {name: stats for name, stats in rows}
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
