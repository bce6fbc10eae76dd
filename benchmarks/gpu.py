"""GPU benchmark: ms per frame at 800x1344 for torchvision eager, our graph, and our graph under CUDA graphs / torch.compile.

Usage (on a machine with an NVIDIA GPU; exits 0 with a message without one)::

    python benchmarks/gpu.py [--frames 20] [--rounds 3] [--fp16]

Seeded random ``maskrcnn_resnet50_fpn`` (speed does not depend on the weights), one 800x1344
input (a vtest frame scaled up, or noise without the shared data), score_thresh 0 and 20
detections so the heads' work is fixed. Alternating in every round:

* ``torchvision eager``: torchvision's own ``model([image])``;
* ``our graph (torch backend)``: :class:`~streamseg.backends.torch_backend.TorchBackend` on
  CUDA, preprocessing, keypoint decoding and mask pasting on the GPU (``backend.infer``);
* ``our graph, torch.compile``: the same graph compiled (``mode="reduce-overhead"``, which
  uses CUDA graphs), where torch.compile works on it; its failure is reported, not raised.

With ``--fp16`` each is also run under ``torch.autocast("cuda", torch.float16)`` and the
detections compared with fp32 (boxes, scores), to state the accuracy cost. The output is a
table of median ms per frame.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VIDEO = REPO.parent / "shared" / "data" / "videos" / "vtest.avi"
MODEL = "maskrcnn_resnet50_fpn"


def _image():  # noqa: ANN202 - numpy
    import cv2
    import numpy as np

    if VIDEO.exists():
        import av

        with av.open(str(VIDEO)) as container:
            frame = next(container.decode(video=0)).to_ndarray(format="rgb24")
        return cv2.resize(frame, (1344, 800), interpolation=cv2.INTER_LINEAR)
    return np.random.default_rng(0).integers(0, 255, (800, 1344, 3), dtype=np.uint8)


def _time(fn, frames: int) -> list[float]:  # noqa: ANN001
    import torch

    out = []
    for _ in range(frames):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--fp16", action="store_true", help="also time fp16 autocast and compare its detections")
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available():
        print("no CUDA GPU visible to torch: nothing to measure here (run this on a GPU machine)")
        return 0
    from torchvision.transforms.functional import to_tensor

    from streamseg.backends.torch_backend import TorchBackend
    from streamseg.models.preprocess import max_size_for
    from streamseg.models.registry import get_model_spec
    from streamseg.models.weights import load_model

    image = _image()
    tensor = to_tensor(image).to("cuda")
    reference, _ = load_model(get_model_spec(MODEL), "random", box_score_thresh=0.0, min_size=800,
                              max_size=max_size_for(800), detections_per_img=20, device="cuda")  # fmt: skip
    backend = TorchBackend(MODEL, weights="random", score_thresh=0.0, detections_per_img=20, device="cuda")
    runs = {
        "torchvision eager": lambda: reference([tensor]),
        "our graph (torch backend)": lambda: backend.infer(image),
    }
    try:
        size = backend.network_size(image.shape[:2])
        compiled = torch.compile(backend.graph(0, size), mode="reduce-overhead")
        inputs, _ = backend._inputs(image, size)
        from streamseg.models.graph import INPUT_NAMES

        feed = [inputs[k] for k in INPUT_NAMES]
        with torch.inference_mode():
            compiled(*feed)  # compile now, not inside the timing
        runs["our graph, torch.compile (CUDA graphs)"] = lambda: compiled(*feed)
    except Exception as exc:  # noqa: BLE001 - reported
        print(f"torch.compile of our graph failed: {type(exc).__name__}: {str(exc).splitlines()[0]}")
    if args.fp16:
        def autocast(fn):  # noqa: ANN001, ANN202
            def run():  # noqa: ANN202
                with torch.autocast("cuda", torch.float16):
                    return fn()
            return run

        for name in list(runs):
            runs[f"{name}, fp16 autocast"] = autocast(runs[name])
        with torch.inference_mode():
            a, _ = backend.infer(image)
            with torch.autocast("cuda", torch.float16):
                b, _ = backend.infer(image)
        n = min(len(a), len(b))
        print(f"fp16 autocast vs fp32 (our graph): {len(a)} vs {len(b)} detections; first {n}: boxes within "
              f"{float(abs(a.boxes[:n] - b.boxes[:n]).max()):.3g} px, scores within "
              f"{float(abs(a.scores[:n] - b.scores[:n]).max()):.3g}")

    times: dict[str, list[float]] = {name: [] for name in runs}
    with torch.inference_mode():
        for fn in runs.values():  # warm-up
            fn()
        for _ in range(args.rounds):
            for name, fn in runs.items():
                times[name].extend(_time(fn, args.frames))
    print(f"\n{torch.cuda.get_device_name(0)}, {MODEL}, 800x1344, random weights, 20 detections")
    print("| run | ms per frame (median) |")
    print("|---|---|")
    for name, samples in times.items():
        print(f"| {name} | {statistics.median(samples):.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
