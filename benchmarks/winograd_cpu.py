"""Would Winograd's 3x3 convolution, written as graph ops, speed up OpenVINO fp32? One run.

Usage::

    python benchmarks/winograd_cpu.py [--rounds 5] [--size 200x272]

The FPN's and the RPN head's 3x3 convolutions on P2 (256 -> 256 channels, 200 x 272 at a
800 x 1088 network input, 64 GFLOP each) are the two largest layers of Mask R-CNN, and
OpenVINO's CPU plugin runs them as direct convolutions at the CPU's fp32 matrix-multiply
rate. OpenVINO has no Winograd convolution on CPU, so this benchmark writes one from
ONNX-exportable torch ops and lets OpenVINO compile it: F(4x4, 3x3) (Lavin & Gray,
"Fast Algorithms for Convolutional Neural Networks", 2015, section 4; interpolation
points 0, 1, -1, 2, -2), which needs 4x fewer multiplications in its 36 batched matrix
products, at the price of an input and an output transform that move about 2.3x the
feature map's bytes each way.

It compiles both (``PERFORMANCE_HINT`` LATENCY, ``INFERENCE_PRECISION_HINT`` f32), checks
both against a float64 convolution, times them alternating, and prints the median ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

# F(4, 3) for correlation (what Conv2d computes): Y = A^T [(G g G^T) * (B^T d B)] A.
B_T = [
    [4, 0, -5, 0, 1, 0],
    [0, -4, -4, 1, 1, 0],
    [0, 4, -4, -1, 1, 0],
    [0, -2, -1, 2, 1, 0],
    [0, 2, -1, -2, 1, 0],
    [0, 4, 0, -5, 0, 1],
]
G = [[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6], [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]]
A_T = [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]]
M, A = 4, 6  # output tile, input tile


class Winograd3x3(nn.Module):
    """A stride-1, padding-1 3x3 ``nn.Conv2d`` as Winograd F(4x4, 3x3) in MatMul / Reshape / Transpose.

    Input (1, C, H, W) float32 with H and W multiples of 4; output (1, K, H, W). Tiles are
    taken by reshapes (a 6-row tile is a 4-row block and the first 2 rows of the next), so
    the graph has no strided slices.
    """

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        bt, g, at = (torch.tensor(x, dtype=torch.float64) for x in (B_T, G, A_T))
        w = conv.weight.detach().double()
        u = torch.einsum("ij,kcjl,ml->imkc", g, w, g).reshape(A * A, w.shape[0], w.shape[1])
        self.register_buffer("u", u.float())  # (36, K, C): the transformed filters
        self.register_buffer("bias", conv.bias.detach().float().view(1, -1, 1, 1))
        tail = torch.zeros(A, M, dtype=torch.float64)
        tail[:, : A - M] = bt[:, M:]
        self.register_buffer("rows_head", bt[:, :M].float())  # (6, 4): rows 0-3 of a tile
        self.register_buffer("rows_tail", tail.float())  # (6, 4): rows 4-5 (the next block's 0-1)
        self.register_buffer("cols_head", bt[:, :M].t().float().contiguous())
        self.register_buffer("cols_tail", tail.t().float().contiguous())
        self.register_buffer("a_t", at.float())

    def forward(self, x: Tensor) -> Tensor:
        _, c, h, w = x.shape
        nh, nw = h // M, w // M
        blocks = F.pad(x, (1, M - 1, 1, M - 1))[0].reshape(c, nh + 1, M, w + M)
        rows = self.rows_head @ blocks[:, :nh] + self.rows_tail @ blocks[:, 1:]  # (C, nh, 6, W+4)
        rows = rows.reshape(c, nh, A, nw + 1, M)
        v = rows[:, :, :, :nw] @ self.cols_head + rows[:, :, :, 1:] @ self.cols_tail  # (C, nh, 6, nw, 6)
        v = v.permute(2, 4, 0, 1, 3).reshape(A * A, c, nh * nw)
        m = self.u @ v  # (36, K, T): the 36 batched products
        k = m.shape[1]
        y = (self.a_t @ m.reshape(A, -1)).reshape(M, A, -1)
        y = (self.a_t @ y.transpose(0, 1).reshape(A, -1)).reshape(M, M, k, nh, nw)
        return y.permute(2, 3, 1, 4, 0).reshape(1, k, h, w) + self.bias


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size", default="200x272", help="feature map HxW (multiples of 4)")
    parser.add_argument("--channels", type=int, default=256)
    args = parser.parse_args()
    try:
        import openvino as ov
    except ImportError:
        print("needs OpenVINO: pip install 'streamseg[openvino]'", file=sys.stderr)
        return 1
    h, w = (int(v) for v in args.size.split("x"))
    torch.manual_seed(0)
    conv = nn.Conv2d(args.channels, args.channels, 3, padding=1).eval()
    x = torch.randn(1, args.channels, h, w)
    with torch.no_grad():
        exact = F.conv2d(x.double(), conv.weight.double(), conv.bias.double(), padding=1).numpy()
    core, compiled = ov.Core(), {}
    config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
    with tempfile.TemporaryDirectory() as tmp:
        for name, module in (("direct 3x3 convolution", conv), ("Winograd F(4x4,3x3)", Winograd3x3(conv))):
            path = Path(tmp) / "conv.onnx"
            torch.onnx.export(module, (x,), path, opset_version=17, dynamo=False)
            compiled[name] = core.compile_model(str(path), "CPU", config)
    xn = x.numpy()
    gflop = 2 * 9 * args.channels**2 * h * w / 1e9
    print(f"{args.channels} -> {args.channels} channels, {h}x{w}: {gflop:.1f} GFLOP as a direct convolution")
    for name, model in compiled.items():
        err = float(np.abs(model(xn)[0].astype(np.float64) - exact).max())
        print(f"  {name}: max abs error vs float64 {err:.2g} (outputs up to {np.abs(exact).max():.2f})")
    times: dict[str, list[float]] = {name: [] for name in compiled}
    for _ in range(args.rounds):
        for name, model in compiled.items():
            t0 = time.perf_counter()
            model(xn)
            times[name].append((time.perf_counter() - t0) * 1e3)
    base = statistics.median(times["direct 3x3 convolution"])
    print("\n| OpenVINO fp32 | ms (median) | vs direct |\n|---|---|---|")
    for name, samples in times.items():
        med = statistics.median(samples)
        print(f"| {name} | {med:.0f} | {base / med:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
