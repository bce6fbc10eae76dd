"""Backend benchmark: torchvision eager and our torch backend vs ONNX Runtime and OpenVINO, one run.

Usage::

    python benchmarks/backends_cpu.py [VIDEO] [--frames 4] [--rounds 3] [--sizes 800 480]

For each ``--sizes`` min size, the two backends run the same decoded frames with the
same seeded random weights (``maskrcnn_resnet50_fpn``), ``score_thresh`` 0 and 20
detections per image, so every backend runs its mask head on exactly 20 RoIs:

* ``torchvision (eager)``: torchvision's own ``model([image])`` on the same weights (its
  transform, its postprocess with ``paste_masks_in_image``): the issue's baseline, and
  the speed-ups are over it;
* ``torch (graph, eager)``: :class:`~streamseg.backends.torch_backend.TorchBackend`
  (:class:`~streamseg.models.graph.MaskRCNNGraph` run eagerly over torchvision's own
  modules; its outputs equal torchvision's ``model(images)``, tests/test_parity.py);
* ``onnxruntime (ort)``: :class:`~streamseg.backends.onnxruntime_backend.OnnxRuntimeBackend`
  (the exported ort flavour, tuned CPU session);
* ``openvino fp32``, ``bf16`` and ``int8`` (when OpenVINO, and for INT8 NNCF, are installed):
  :class:`~streamseg.backends.openvino_backend.OpenVINOBackend`, the same file compiled for
  the CPU with the latency hint and the f32 or bf16 inference-precision hint, or quantized
  by NNCF on ``--calib-frames`` frames of the video (heads in float).

Each round times every backend on every frame (``infer``: preprocess, model and the
shared postprocess), alternating backends frame by frame, so drifts in the shared
machine's speed hit all of them alike; the table gives the median ms per frame over
all rounds and the speed-up over torchvision eager. Before timing, the outputs of
every backend on the first frame are compared with torchvision's (same labels,
boxes within 0.05 px, scores within 1e-3), so the speed is at equal outputs; bf16 is
bf16 and INT8 are reported but not held to it (with random weights near-tied scores
reorder: reduced precision is judged by AP on a trained model, benchmarks/accuracy_cpu.py).

The last row of each size, ``fp32 floor``, is the fastest any direct fp32 implementation
could be on this CPU: the graph's multiply-add count (torch's ``FlopCounterMode`` over the
torch backend's ``infer`` on the first frame, 2 FLOP per multiply-add) divided by the
fp32 matrix-multiply rate measured in the same run (``torch.mm`` of two 4096 x 4096
matrices on torch's threads, best of 3), with no time at all for anything else.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_VIDEO = REPO.parent / "shared" / "data" / "videos" / "vtest.avi"
MODEL = "maskrcnn_resnet50_fpn"


def _frames(video: str, count: int) -> list[np.ndarray]:
    import av

    frames = []
    with av.open(video) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) == count:
                break
    return frames


def _same(a, b) -> str:
    if len(a) != len(b):
        return f"{len(a)} vs {len(b)} detections"
    if not (a.labels == b.labels).all():
        return "labels differ"
    box = float(np.abs(a.boxes - b.boxes).max()) if len(a) else 0.0
    score = float(np.abs(a.scores - b.scores).max()) if len(a) else 0.0
    if box > 0.05 or score > 1e-3:
        return f"boxes differ by {box:.3g} px, scores by {score:.3g}"
    return f"equal (boxes within {box:.2g} px, scores within {score:.2g})"


def _graph_gflop(backend, frame: np.ndarray) -> float:
    """Multiply-add count of one ``backend.infer(frame)`` (a torch backend), GFLOP."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        backend.infer(frame)
    return counter.get_total_flops() / 1e9


def _sgemm_gflops(n: int = 4096) -> float:
    """fp32 matrix-multiply rate of this CPU on torch's threads, GFLOP/s (best of 3)."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


class TorchvisionEager:
    """torchvision's ``model([image])`` (eval, no grad) behind the backends' ``infer(frame)``."""

    def __init__(self, model) -> None:
        self.model = model.eval()

    def infer(self, frame: np.ndarray):
        import torch

        with torch.no_grad():
            image = torch.from_numpy(frame).permute(2, 0, 1).float().div_(255)
            out = self.model([image])[0]
        return _Outputs(out["boxes"].numpy(), out["scores"].numpy(), out["labels"].numpy()), {}


class _Outputs:
    def __init__(self, boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray) -> None:
        self.boxes, self.scores, self.labels = boxes, scores, labels

    def __len__(self) -> int:
        return len(self.boxes)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("video", nargs="?", default=str(DEFAULT_VIDEO))
    parser.add_argument("--frames", type=int, default=4, help="frames per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[800, 480], help="min sizes (short side, px)")
    parser.add_argument("--calib-frames", type=int, default=16, help="INT8 calibration frames of the video")
    args = parser.parse_args()
    if not Path(args.video).exists():
        print(f"video not found: {args.video}", file=sys.stderr)
        return 1

    import os

    import torch

    os.environ.setdefault("STREAMSEG_CACHE", tempfile.mkdtemp(prefix="streamseg-bench-"))
    from streamseg.backends.onnxruntime_backend import OnnxRuntimeBackend
    from streamseg.backends.torch_backend import TorchBackend

    frames = _frames(args.video, args.frames)
    print(f"{len(frames)} frames of {frames[0].shape[1]}x{frames[0].shape[0]} from {args.video}; "
          f"{MODEL}, random weights, score_thresh 0, 20 detections; torch threads {torch.get_num_threads()}")
    rows = []
    for min_size in args.sizes:
        common = {"weights": "random", "score_thresh": 0.0, "min_size": min_size, "detections_per_img": 20}
        torch_backend = TorchBackend(MODEL, **common)
        backends = {
            "torchvision (eager)": TorchvisionEager(torch_backend.model),
            "torch (graph, eager)": torch_backend,
            "onnxruntime (ort)": OnnxRuntimeBackend(MODEL, **common),
        }
        if importlib.util.find_spec("openvino") is not None:
            from streamseg.backends.openvino_backend import OpenVINOBackend

            for precision in ("fp32", "bf16"):
                backends[f"openvino {precision}"] = OpenVINOBackend(MODEL, precision=precision, **common)
            if importlib.util.find_spec("nncf") is not None:
                backends["openvino int8"] = OpenVINOBackend(
                    MODEL, precision="int8", calib=args.video, calib_frames=args.calib_frames, **common
                )
        reference = None
        for name, backend in backends.items():  # warm-up, export, and the equal-outputs check
            out, _ = backend.infer(frames[0])
            reference = out if reference is None else reference
            same = _same(reference, out)
            print(f"  {min_size} px {name}: {same}")
            if ("fp32" in name or "torch" in name or "onnx" in name) and not same.startswith("equal"):
                print(f"  {name} does not give torchvision's outputs: no speed is reported at unequal outputs")
                return 1
        times: dict[str, list[float]] = {name: [] for name in backends}
        for _ in range(args.rounds):
            for frame in frames:
                for name, backend in backends.items():
                    t0 = time.perf_counter()
                    backend.infer(frame)
                    times[name].append((time.perf_counter() - t0) * 1e3)
        base = statistics.median(times["torchvision (eager)"])
        for name, samples in times.items():
            med = statistics.median(samples)
            rows.append((min_size, name, med, base / med))
        gflop, peak = _graph_gflop(torch_backend, frames[0]), _sgemm_gflops()
        floor = gflop / peak * 1e3
        print(f"  {min_size} px: {gflop:.0f} GFLOP per frame; fp32 matrix multiply {peak:.0f} GFLOP/s")
        rows.append((min_size, "fp32 floor", floor, base / floor))

    print("\n| min size | backend | ms per frame (median) | speed-up vs torchvision eager |")
    print("|---|---|---|---|")
    for min_size, name, med, speedup in rows:
        print(f"| {min_size} | {name} | {med:.0f} | {speedup:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
