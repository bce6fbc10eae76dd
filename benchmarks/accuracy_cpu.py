"""Accuracy of reduced precision: COCO AP of the demo model per CPU backend and precision, side by side.

Usage::

    python benchmarks/accuracy_cpu.py [--frames 120] [--calib-frames 64]

bf16 and INT8 change the arithmetic, so they are judged by accuracy on a trained model,
not by parity: the bundled demo model (trained on the synthetic demo world) runs on the
demo world's held-out clip (the clip ``streamseg demo`` scores; a seed never used in
training), and its bbox, segm and keypoints AP (pycocotools, :mod:`streamseg.eval.coco`)
is given for the torch backend, OpenVINO fp32, bf16 and INT8. INT8 is calibrated on
another demo-world clip (a training-split seed, never the held-out one). Detections go
down to a 0.05 score, as ``streamseg demo`` does (AP ranks every detection).

Target (issue 15): bf16 within 0.01 AP of fp32, INT8 within 0.02.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

#: The calibration clip's seed: a training-split seed of the demo world, not the held-out clip's.
CALIB_SEED = 21


def score(config, clip: dict, out: Path) -> dict[str, float]:  # noqa: ANN001 - ModelConfig
    """AP (bbox, segm, keypoints) of one backend configuration on the held-out clip."""
    from streamseg.backends import create_backend
    from streamseg.eval.coco import evaluate_coco
    from streamseg.sinks import JsonlWriter
    from streamseg.sources import open_source
    from streamseg.types import FrameResult

    backend = create_backend(config)
    with JsonlWriter(out, categories=backend.categories) as writer, open_source(str(clip["video"])) as source:
        for frame in source:
            instances, timings = backend.infer(frame.image)
            writer.write(FrameResult(frame, instances, timings))
    return {k: v[0] for k, v in evaluate_coco(out, clip["coco"]).items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=120, help="held-out clip length (default: 120, as the demo)")
    parser.add_argument("--calib-frames", type=int, default=64, help="INT8 calibration frames (default: 64)")
    args = parser.parse_args()

    from streamseg.config import ModelConfig
    from streamseg.datasets.demo_export import run_demo, write_clip

    with tempfile.TemporaryDirectory(prefix="streamseg-accuracy-") as tmp_name:
        tmp = Path(tmp_name)
        clip = run_demo(tmp / "heldout", num_frames=args.frames)
        calib = write_clip(tmp / "calib", seed=CALIB_SEED, num_frames=max(args.calib_frames, 1))["video"]
        configs = {
            "torch fp32": ModelConfig(name="demo", score_floor=0.05),
            "openvino fp32": ModelConfig(name="demo", backend="openvino", score_floor=0.05),
            "openvino bf16": ModelConfig(name="demo", backend="openvino", precision="bf16", score_floor=0.05),
            "openvino int8": ModelConfig(
                name="demo", backend="openvino", precision="int8", calib=str(calib), score_floor=0.05
            ),
        }
        rows = {}
        for name, config in configs.items():
            rows[name] = score(config, clip, tmp / f"{name.replace(' ', '-')}.jsonl")
            print(f"{name}: " + ", ".join(f"{k} {v:.3f}" for k, v in rows[name].items()), flush=True)

    kinds = list(rows["openvino fp32"])
    print(f"\nCOCO AP of the demo model on the held-out demo-world clip ({args.frames} frames); "
          f"INT8 calibrated on {args.calib_frames} frames of another clip")
    print("| backend | " + " | ".join(f"{k} AP" for k in kinds) + " | max drop vs openvino fp32 |")
    print("|---|" + "---|" * (len(kinds) + 1))
    for name, ap in rows.items():
        drop = max(rows["openvino fp32"][k] - ap[k] for k in kinds)
        print(f"| {name} | " + " | ".join(f"{ap[k]:.3f}" for k in kinds) + f" | {drop:+.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
